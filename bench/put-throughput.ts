// Scenario: put throughput with N writes in flight, against the disk's group-commit limit.

import * as path from "node:path";
import { open, type Db } from "../src/index.ts";
import * as B from "./lib.ts";

const ROUNDS = 3;
const PUTS = B.numberFlag("puts", 100_000);
const INFLIGHT = B.flag("sweep") ? [1, 16, 256] : [B.numberFlag("inflight", 256)];

/** Puts keys[from, from + n) keeping exactly `inflight` promises outstanding; returns puts/s. */
async function drive(db: Db, keys: string[], from: number, n: number, inflight: number, value: Uint8Array): Promise<number> {
  return (await B.drivePuts((i) => db.put(keys[from + i]!, value), inflight, { maxPuts: n })).perSecond;
}

interface Result {
  inflight: number;
  puts: number;
  db: number;
  append: number;
  overwrite: number;
  ratioAppend: number;
  ratioOverwrite: number;
  recordsPerFsync: number;
}

/** One database, and raw logs grouping `inflight` records per fdatasync, measured in interleaved rounds. */
async function measure(dir: string, inflight: number): Promise<Result> {
  // One write in flight commits one at a time: fewer puts keep the run short.
  const n = Math.min(PUTS, inflight * 3000);
  const db = await open(path.join(dir, `db-${inflight}`));
  await B.settleWriter(db);
  const capacity = ROUNDS * n * B.RAW_RECORD_BYTES + 1024 * 1024;
  const append = new B.RawLog(path.join(dir, `raw-append-${inflight}`), "append", capacity);
  const overwrite = new B.RawLog(path.join(dir, `raw-overwrite-${inflight}`), "overwrite", capacity);
  const keys = Array.from({ length: ROUNDS * n }, (_, i) => B.key(i));
  const value = B.bytesValue();
  const r = { db: [] as number[], append: [] as number[], overwrite: [] as number[], ra: [] as number[], ro: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    r.append.push(B.rawGroupRate(append, n, inflight));
    r.overwrite.push(B.rawGroupRate(overwrite, n, inflight));
    r.db.push(await drive(db, keys, round * n, n, inflight, value));
    r.ra.push(r.db.at(-1)! / r.append.at(-1)!);
    r.ro.push(r.db.at(-1)! / r.overwrite.at(-1)!);
  }
  const after = db.stats();
  append.close();
  overwrite.close();
  await db.close();
  return {
    inflight,
    puts: n,
    db: B.median(r.db),
    append: B.median(r.append),
    overwrite: B.median(r.overwrite),
    ratioAppend: B.median(r.ra),
    ratioOverwrite: B.median(r.ro),
    recordsPerFsync: after.wal.recordsPerFsync,
  };
}

await B.withTmpDir(async (dir) => {
  const results: Result[] = [];
  for (const inflight of INFLIGHT) results.push(await measure(dir, inflight));
  console.log(`## put throughput, N in flight (${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values)\n`);
  console.log(
    `Raw: ${B.RAW_RECORD_BYTES} B records, N per write + one fdatasync. ${ROUNDS} interleaved rounds (raw append, ` +
      `raw overwrite, db); medians over rounds. Ratio = db puts/s ÷ raw records/s, per round.\n`,
  );
  B.table(
    ["in flight", "puts/round", "db puts/s", "raw append rec/s", "raw overwrite rec/s", "db/append", "db/overwrite", "db.stats() records/fdatasync"],
    results.map((x) => [
      String(x.inflight),
      B.fmt(x.puts),
      B.fmt(x.db),
      B.fmt(x.append),
      B.fmt(x.overwrite),
      B.fmt(x.ratioAppend, 2),
      B.fmt(x.ratioOverwrite, 2),
      B.fmt(x.recordsPerFsync, 1),
    ]),
  );
  const main = results.find((x) => x.inflight === 256) ?? results.at(-1)!;
  console.log(`at ${main.inflight} in flight: db / raw overwrite ${B.verdict(main.ratioOverwrite, "≥", 0.6)}`);
  console.log(`at ${main.inflight} in flight: db / raw append    ${B.verdict(main.ratioAppend, "≥", 0.6)}`);
  console.log(`at ${main.inflight} in flight: records per fdatasync ${B.verdict(main.recordsPerFsync, "≥", 64, 1)}\n`);
});
B.finish();
