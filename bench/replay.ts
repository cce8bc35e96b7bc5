// Scenario: reopen time, replaying a WAL of 1M records into the index.

import * as fs from "node:fs";
import * as path from "node:path";
import { open, type Db } from "../src/index.ts";
import * as B from "./lib.ts";

const RECORDS = B.numberFlag("records", 1_000_000);
const REOPENS = 3;
const INFLIGHT = 1024;
const BATCH_OPS = 1000;

/** RECORDS puts, one WAL record each, with INFLIGHT outstanding; sync "never" to write them quickly. */
async function loadPuts(db: Db, value: Uint8Array): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < RECORDS) await db.put(B.key(next++), value);
  };
  await Promise.all(Array.from({ length: INFLIGHT }, lane));
}

/** The same RECORDS puts as batch() records of BATCH_OPS puts each. */
async function loadBatches(db: Db, value: Uint8Array): Promise<void> {
  for (let i = 0; i < RECORDS; i += BATCH_OPS) {
    const n = Math.min(BATCH_OPS, RECORDS - i);
    await db.batch(Array.from({ length: n }, (_, j) => ({ type: "put" as const, key: B.key(i + j), value })));
  }
}

interface Row {
  layout: string;
  loadS: number;
  walMiB: number;
  records: number;
  openMs: number;
  recoveryMs: number;
}

/** Writes the WAL with sync "never" (quick), closes; returns seconds taken. */
async function write(dir: string, load: (db: Db, v: Uint8Array) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const db = await open(dir, { sync: "never" });
  await load(db, B.bytesValue());
  await db.close();
  return (performance.now() - t0) / 1000;
}

async function measure(dir: string, layout: string, load: (db: Db, v: Uint8Array) => Promise<void>): Promise<Row> {
  const loadS = await write(dir, load);
  const walDir = path.join(dir, "wal");
  const walMiB = fs.readdirSync(walDir).reduce((n, f) => n + fs.statSync(path.join(walDir, f)).size, 0) / 2 ** 20;
  const opens: number[] = [];
  const recovery: number[] = [];
  let records = 0;
  for (let i = 0; i < REOPENS; i++) {
    Bun.gc(true); // the previous index is garbage: collect it outside the measurement
    const t = performance.now();
    const db = await open(dir);
    opens.push(performance.now() - t);
    const s = db.stats();
    recovery.push(s.recovery.ms);
    records = s.recovery.records;
    if (s.keys !== RECORDS) throw new Error(`reopened with ${s.keys} keys, expected ${RECORDS}`);
    await db.close();
  }
  return { layout, loadS, walMiB, records, openMs: B.median(opens), recoveryMs: B.median(recovery) };
}

await B.withTmpDir(async (dir) => {
  const rows = [
    await measure(path.join(dir, "puts"), `${B.fmt(RECORDS)} put records`, loadPuts),
    await measure(path.join(dir, "batches"), `${B.fmt(RECORDS / BATCH_OPS)} batch records × ${BATCH_OPS} puts`, loadBatches),
  ];
  console.log(`## replay on reopen (${B.fmt(RECORDS)} puts, ${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values)\n`);
  console.log(`Median of ${REOPENS} reopens; the WAL was just written, so it is read from the page cache.\n`);
  B.table(
    ["WAL", "WAL files MiB", "records replayed", "open() ms", "recovery.ms", "records/s", "puts/s"],
    rows.map((r) => [
      r.layout,
      B.fmt(r.walMiB),
      B.fmt(r.records),
      B.fmt(r.openMs),
      B.fmt(r.recoveryMs),
      B.fmt(r.records / (r.openMs / 1000)),
      B.fmt(RECORDS / (r.openMs / 1000)),
    ]),
  );
  const puts = rows[0]!;
  console.log(`${puts.layout}: ${B.verdict(puts.records / (puts.openMs / 1000), "≥", 1_000_000, 0)} records/s over open()`);
  console.log(`(writing them with sync "never" took ${B.fmt(puts.loadS, 1)} s as puts, ${B.fmt(rows[1]!.loadS, 1)} s as batches)\n`);
});
B.finish();
