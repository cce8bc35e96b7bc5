// Scenario: reopen time, replaying a WAL of 1M records into the index; and, apart, reopening from a snapshot.

import * as fs from "node:fs";
import * as path from "node:path";
import { open, type Db } from "../src/index.ts";
import * as B from "./lib.ts";

const RECORDS = B.numberFlag("records", 1_000_000);
const REOPENS = 3;
const INFLIGHT = 1024;
const BATCH_OPS = 1000;
/**
 * Automatic snapshots off, on the writes and on every reopen: a snapshot taken while loading (or by
 * close()) would leave nothing to replay, and the bench would time a snapshot load instead.
 */
const NO_SNAPSHOTS = { snapshotEveryBytes: 0 } as const;

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
  /** open() of the same store once a snapshot covers it (nothing left to replay). */
  snapshotOpenMs: number;
}

/** Writes the WAL with sync "never" (quick), closes; returns seconds taken. */
async function write(dir: string, load: (db: Db, v: Uint8Array) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const db = await open(dir, { ...NO_SNAPSHOTS, sync: "never" });
  await load(db, B.bytesValue());
  await db.close();
  return (performance.now() - t0) / 1000;
}

/** REOPENS opens of `dir`, each checked for every key: median open() ms and recovery.ms, and records replayed. */
async function reopen(dir: string): Promise<{ openMs: number; recoveryMs: number; records: number }> {
  const opens: number[] = [];
  const recovery: number[] = [];
  let records = 0;
  for (let i = 0; i < REOPENS; i++) {
    Bun.gc(true); // the previous index is garbage: collect it outside the measurement
    const t = performance.now();
    const db = await open(dir, NO_SNAPSHOTS);
    opens.push(performance.now() - t);
    const s = db.stats();
    recovery.push(s.recovery.ms);
    records = s.recovery.records;
    if (s.keys !== RECORDS) throw new Error(`reopened with ${s.keys} keys, expected ${RECORDS}`);
    await db.close();
  }
  return { openMs: B.median(opens), recoveryMs: B.median(recovery), records };
}

async function measure(dir: string, layout: string, load: (db: Db, v: Uint8Array) => Promise<void>): Promise<Row> {
  const loadS = await write(dir, load);
  const walDir = path.join(dir, "wal");
  const walMiB = fs.readdirSync(walDir).reduce((n, f) => n + fs.statSync(path.join(walDir, f)).size, 0) / 2 ** 20;
  const replayed = await reopen(dir);
  if (replayed.records === 0) throw new Error("nothing was replayed: a snapshot covers the log");
  const db = await open(dir, NO_SNAPSHOTS);
  await db.snapshot();
  await db.close();
  const fromSnapshot = await reopen(dir);
  return { layout, loadS, walMiB, ...replayed, snapshotOpenMs: fromSnapshot.openMs };
}

await B.withTmpDir(async (dir) => {
  const rows = [
    await measure(path.join(dir, "puts"), `${B.fmt(RECORDS)} put records`, loadPuts),
    await measure(path.join(dir, "batches"), `${B.fmt(RECORDS / BATCH_OPS)} batch records × ${BATCH_OPS} puts`, loadBatches),
  ];
  console.log(`## replay on reopen (${B.fmt(RECORDS)} puts, ${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values)\n`);
  console.log(`Median of ${REOPENS} reopens; the WAL was just written, so it is read from the page cache.\n`);
  B.table(
    ["WAL", "WAL files MiB", "records replayed", "open() ms", "recovery.ms", "records/s", "puts/s", "open() from a snapshot ms"],
    rows.map((r) => [
      r.layout,
      B.fmt(r.walMiB),
      B.fmt(r.records),
      B.fmt(r.openMs),
      B.fmt(r.recoveryMs),
      B.fmt(r.records / (r.openMs / 1000)),
      B.fmt(RECORDS / (r.openMs / 1000)),
      B.fmt(r.snapshotOpenMs),
    ]),
  );
  console.log("Replay: automatic snapshots off (snapshotEveryBytes 0). From a snapshot: the same store after db.snapshot(), apart.\n");
  const puts = rows[0]!;
  console.log(`${puts.layout}: ${B.verdict(puts.records / (puts.openMs / 1000), "≥", 1_000_000, 0)} records/s over open()`);
  console.log(`(writing them with sync "never" took ${B.fmt(puts.loadS, 1)} s as puts, ${B.fmt(rows[1]!.loadS, 1)} s as batches)\n`);
});
B.finish();
