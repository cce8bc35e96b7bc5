// Scenario: put latency with one write in flight, against a raw write + fdatasync loop on the same disk.

import * as path from "node:path";
import { open, type Db } from "../src/index.ts";
import * as B from "./lib.ts";

const ROUNDS = B.numberFlag("rounds", 6);
const PER_ROUND = B.numberFlag("puts", 3000) / ROUNDS;
const WARMUP = 300;

type Variant = "raw append" | "raw overwrite" | "db.put";
const VARIANTS: Variant[] = ["raw append", "raw overwrite", "db.put"];

async function dbLatencyNs(db: Db, from: number, n: number, value: Uint8Array): Promise<number[]> {
  const out: number[] = [];
  for (let i = from; i < from + n; i++) {
    const k = B.key(i);
    const t0 = B.nowNs();
    await db.put(k, value);
    out.push(B.nowNs() - t0);
  }
  return out;
}

await B.withTmpDir(async (dir) => {
  const db = await open(path.join(dir, "db"));
  const settle = await B.settleWriter(db);
  const capacity = (WARMUP + ROUNDS * PER_ROUND) * B.RAW_RECORD_BYTES + 1024 * 1024;
  const raw = {
    "raw append": new B.RawLog(path.join(dir, "raw-append"), "append", capacity),
    "raw overwrite": new B.RawLog(path.join(dir, "raw-overwrite"), "overwrite", capacity),
  };
  const value = B.bytesValue();
  let next = 0;
  B.rawLatencyNs(raw["raw append"], WARMUP);
  B.rawLatencyNs(raw["raw overwrite"], WARMUP);
  await dbLatencyNs(db, next, WARMUP, value);
  next += WARMUP;

  // Rounds interleave the variants so that drift in the disk's speed hits all of them alike.
  const p50: Record<Variant, number[]> = { "raw append": [], "raw overwrite": [], "db.put": [] };
  const p99: Record<Variant, number[]> = { "raw append": [], "raw overwrite": [], "db.put": [] };
  const ratio = { "raw append": [] as number[], "raw overwrite": [] as number[] };
  const before = db.stats();
  for (let r = 0; r < ROUNDS; r++) {
    const round: Record<Variant, { p50: number; p99: number }> = {
      "raw append": B.latencySummaryUs(B.rawLatencyNs(raw["raw append"], PER_ROUND)),
      "raw overwrite": B.latencySummaryUs(B.rawLatencyNs(raw["raw overwrite"], PER_ROUND)),
      "db.put": B.latencySummaryUs(await dbLatencyNs(db, next, PER_ROUND, value)),
    };
    next += PER_ROUND;
    for (const v of VARIANTS) {
      p50[v].push(round[v].p50);
      p99[v].push(round[v].p99);
    }
    ratio["raw append"].push(round["db.put"].p50 / round["raw append"].p50);
    ratio["raw overwrite"].push(round["db.put"].p50 / round["raw overwrite"].p50);
  }
  const after = db.stats();
  raw["raw append"].close();
  raw["raw overwrite"].close();
  await db.close();

  console.log(`## put latency, 1 in flight (${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values)\n`);
  console.log(`${ROUNDS} interleaved rounds × ${PER_ROUND} commits per variant after ${WARMUP} warm-up; medians over rounds.\n`);
  const describe: Record<Variant, string> = {
    "raw append": `raw: write ${B.RAW_RECORD_BYTES} B + fdatasync, appending to an empty file`,
    "raw overwrite": `raw: write ${B.RAW_RECORD_BYTES} B + fdatasync, over preallocated zeros`,
    "db.put": "db.put, awaited one at a time",
  };
  B.table(
    ["variant", "p50 µs", "p99 µs"],
    VARIANTS.map((v) => [describe[v], B.fmt(B.median(p50[v])), B.fmt(B.median(p99[v]))]),
  );
  const vsAppend = B.median(ratio["raw append"]);
  const vsOverwrite = B.median(ratio["raw overwrite"]);
  console.log(`p50 ratio db.put / raw overwrite: ${B.verdict(vsOverwrite, "≤", 1.2)}`);
  console.log(`p50 ratio db.put / raw append:    ${B.verdict(vsAppend, "≤", 1.2)}`);
  const zeroFills = after.wal.prepareFsyncs - before.wal.prepareFsyncs;
  console.log(`db.stats(): ${B.fmt(after.wal.recordsPerFsync, 2)} records per fdatasync; ${zeroFills} zero-fill fdatasyncs during the rounds`);
  console.log(`writer zero-filling after open (waited out before measuring): ${B.fmt(settle.ms)} ms, ${settle.fsyncs} fdatasyncs\n`);
});
B.finish();

