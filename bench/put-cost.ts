// Scenario: what a durable put costs in CPU, per thread and per stage of the write path.
//
// Part 1 runs real puts (a new key each, 100 B values) at 1, 16 and 256 in flight and reads each
// thread's CPU time from /proc/self/task/*/schedstat (nanoseconds on a CPU, not 10 ms ticks): the
// main thread, the workers, and the rest (JSC's GC and JIT threads). The workers are the WAL writer
// and, while an automatic snapshot runs, its encoder (both are threads named "Worker"): a last row at
// 256 in flight with automatic snapshots off shows what they cost, and a table after it what one
// snapshot of 1M keys costs each thread (--snapshot-keys N for another size). Part 2 times each stage
// of the main thread's share alone, with the engine's own functions, in a tight loop: what is left
// of the end-to-end figure is the event loop, the promise machinery, wake-ups and GC.

import * as fs from "node:fs";
import { open } from "../src/index.ts";
import { putPayloadBytes, utf8Bytes } from "../src/format/encoder.ts";
import { frameBytes } from "../src/format/constants.ts";
import * as L from "../src/limits.ts";
import { Replay } from "../src/store/replay.ts";
import * as R from "../src/wal/ring.ts";
import { checkedValue, checkedValueView, checkKey, condition } from "../src/write/validate.ts";
import * as B from "./lib.ts";

/** In flight, and whether automatic snapshots are on (the default) or off (snapshotEveryBytes 0). */
const LEVELS: { inflight: number; snapshots: boolean }[] = [
  { inflight: 1, snapshots: true },
  { inflight: 16, snapshots: true },
  { inflight: 256, snapshots: true },
  { inflight: 256, snapshots: false },
];
const MS = B.numberFlag("ms", 1500);
const STAGE_OPS = B.numberFlag("ops", 200_000);
const RUNS = 5;
const SNAP_KEYS = B.numberFlag("snapshot-keys", 1_000_000);
const SNAP_ROUNDS = 3;
const limits = { keyBytesMax: L.keyBytesMax, valueBytesMax: L.valueBytesMax, batchOpsMax: L.batchOpsMax };

/** CPU nanoseconds so far of every thread of this process, by thread id, with its name. */
function threadCpu(): Map<string, { name: string; ns: number }> {
  const out = new Map<string, { name: string; ns: number }>();
  for (const tid of fs.readdirSync("/proc/self/task")) {
    try {
      const name = fs.readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
      const ns = Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      out.set(tid, { name, ns });
    } catch {
      // a thread that ended meanwhile
    }
  }
  return out;
}

/** CPU ns between two threadCpu() readings: the main thread, the workers, and the rest (JSC's GC and JIT). */
function cpuSplit(before: Map<string, { name: string; ns: number }>, after: Map<string, { name: string; ns: number }>) {
  const main = String(process.pid);
  let mainNs = 0;
  let writerNs = 0;
  let otherNs = 0;
  for (const [tid, a] of after) {
    const ns = a.ns - (before.get(tid)?.ns ?? 0);
    if (tid === main) mainNs += ns;
    else if (a.name === "Worker") writerNs += ns; // the WAL writer, and a snapshot's encoder
    else otherNs += ns;
  }
  return { mainNs, writerNs, otherNs };
}

interface ThreadSplit {
  puts: number;
  /** Automatic snapshots that completed, and writes held back for one (stalls), during the run. */
  snapshots: number;
  stalls: number;
  perSecond: number;
  mainUs: number;
  writerUs: number;
  otherUs: number;
}

/** Puts at `inflight` for MS; CPU µs per put on the main thread, the workers and the rest. */
async function endToEnd(dir: string, inflight: number, snapshots: boolean): Promise<ThreadSplit> {
  const db = await open(dir, snapshots ? {} : { snapshotEveryBytes: 0 });
  await B.settleWriter(db);
  const value = B.bytesValue();
  await B.drivePuts((i) => db.put(`w${B.key(i)}`, value), inflight, { ms: 200 }); // warm-up
  const snapBefore = db.stats().snapshot;
  const before = threadCpu();
  const r = await B.drivePuts((i) => db.put(B.key(i), value), inflight, { ms: MS });
  const after = threadCpu();
  const snapAfter = db.stats().snapshot;
  await db.close();
  const { mainNs, writerNs, otherNs } = cpuSplit(before, after);
  const us = (ns: number) => ns / 1000 / r.puts;
  return {
    puts: r.puts,
    snapshots: snapAfter.taken - snapBefore.taken,
    stalls: snapAfter.writeStalls - snapBefore.writeStalls,
    perSecond: r.perSecond,
    mainUs: us(mainNs),
    writerUs: us(writerNs),
    otherUs: us(otherNs),
  };
}

/** ns per call of `step`, median of RUNS runs of STAGE_OPS calls (`setup` before each run, untimed). */
function stage(step: (i: number) => void, setup: () => void = () => {}): number {
  const runs: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    setup();
    const t0 = B.nowNs();
    for (let i = 0; i < STAGE_OPS; i++) step(i);
    runs.push((B.nowNs() - t0) / STAGE_OPS);
  }
  return B.median(runs);
}

/** The main thread's stages of a put, each alone. */
async function stages(): Promise<[string, number][]> {
  const keys = Array.from({ length: STAGE_OPS }, (_, i) => B.key(i));
  const value = B.bytesValue();
  const encoded = checkedValue(value, limits);
  const ring = R.createRing(L.ringBytesDefault, L.valueBytesMax + L.recordSlackBytes);
  let head = R.START_POS;
  let index = new Replay().finish();
  let rev = 0;
  let pending: { rev: number }[] = [];
  const out: [string, number][] = [
    ["validate: key and condition", stage((i) => (checkKey(keys[i]!, limits), condition(keys[i]!, undefined)))],
    ["encode: the value's CBOR, in a buffer shared by every put", stage(() => checkedValueView(value, limits))],
    ["measure: key UTF-8, payload and frame size", stage((i) => frameBytes(putPayloadBytes(utf8Bytes(keys[i]!), encoded.length)))],
    [
      "frame + CRC into the ring (putPut)",
      stage(
        (i) => (head = R.putPut(ring, head, i + 1, keys[i]!, 16, encoded, encoded.length, putPayloadBytes(16, encoded.length))),
        () => (head = R.START_POS),
      ),
    ],
    ["hand-off: store HEAD, look at SLEEPING", stage((i) => (Atomics.store(ring.ctl, R.HEAD, i), Atomics.load(ring.ctl, R.SLEEPING)))],
    [
      "pending queue: push, then settle in order",
      stage(
        (i) => {
          pending.push({ rev: i });
          if (pending.length === 256) pending = [];
        },
        () => (pending = []),
      ),
    ],
    [
      "apply to the index (a new key)",
      stage(
        (i) => index.applyPut(++rev, keys[i]!, 16, encoded, 0, encoded.length),
        () => ((index = new Replay().finish()), (rev = 0)),
      ),
    ],
    ["apply to the index (an overwrite)", stage((i) => index.applyPut(++rev, keys[i]!, 16, encoded, 0, encoded.length))],
  ];
  out.push(["promise: create, resolve, await (per put)", await promiseCost()]);
  return out;
}

/** ns per put of the promise machinery alone: 256 awaiting callers, settled together once per turn. */
async function promiseCost(): Promise<number> {
  const runs: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    let waiting: (() => void)[] = [];
    let done = 0;
    const lane = async () => {
      while (done < STAGE_OPS) {
        await new Promise<void>((resolve) => waiting.push(resolve));
        done++;
      }
    };
    const settle = () => {
      const now = waiting;
      waiting = [];
      for (const f of now) f();
      if (done < STAGE_OPS) queueMicrotask(settle);
    };
    const t0 = B.nowNs();
    const lanes = Promise.all(Array.from({ length: 256 }, lane));
    queueMicrotask(settle);
    await lanes;
    runs.push((B.nowNs() - t0) / done);
  }
  return B.median(runs);
}

/**
 * What one snapshot of SNAP_KEYS keys costs each thread: a sustained load of new keys pays for one
 * every max(16 MiB, live/8) of log, so its CPU per put is this times the snapshots per put. The
 * store is loaded with automatic snapshots off, then `db.snapshot()` runs alone, after one put.
 */
async function snapshotCost(dir: string): Promise<{ ms: number; mib: number; mainMs: number; workersMs: number; otherMs: number }[]> {
  const db = await open(dir, { snapshotEveryBytes: 0, sync: "never" });
  const value = B.bytesValue();
  for (let i = 0; i < SNAP_KEYS; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => db.put(B.key(i + j), value)));
  const out = [];
  // Round 0 is not reported: it starts the encoder worker, and JIT-compiles the encoder.
  for (let r = 0; r <= SNAP_ROUNDS; r++) {
    await db.put("x", value); // (a snapshot at an unchanged revision is the one already there)
    const before = threadCpu();
    const t0 = performance.now();
    const info = await db.snapshot();
    const ms = performance.now() - t0;
    const split = cpuSplit(before, threadCpu());
    if (r > 0) out.push({ ms, mib: info.bytes / 2 ** 20, mainMs: split.mainNs / 1e6, workersMs: split.writerNs / 1e6, otherMs: split.otherNs / 1e6 });
  }
  await db.close();
  return out;
}

const rows: ThreadSplit[] = [];
let snaps: Awaited<ReturnType<typeof snapshotCost>> = [];
await B.withTmpDir(async (dir) => {
  for (const [i, l] of LEVELS.entries()) rows.push(await endToEnd(`${dir}/${i}`, l.inflight, l.snapshots));
  snaps = await snapshotCost(`${dir}/snapshot`);
});
console.log(`## CPU per durable put, by thread (${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values, a new key each, ${MS} ms per level)\n`);
B.table(
  ["in flight", "automatic snapshots", "puts/s", "main thread µs/put", "workers µs/put", "other threads µs/put", "snapshots done, write stalls"],
  LEVELS.map((l, i) => {
    const r = rows[i]!;
    const fmt2 = (us: number) => B.fmt(us, 2);
    return [String(l.inflight), l.snapshots ? "on" : "off", B.fmt(r.perSecond), fmt2(r.mainUs), fmt2(r.writerUs), fmt2(r.otherUs), `${r.snapshots}, ${r.stalls}`];
  }),
);
console.log(`## CPU of one snapshot of ${B.fmt(SNAP_KEYS)} keys, by thread (db.snapshot() with nothing else running, after one untimed)\n`);
B.table(
  ["round", "ms", "MiB", "main thread ms", "workers ms (writer + encoder)", "other threads ms"],
  snaps.map((s, i) => [String(i + 1), B.fmt(s.ms), B.fmt(s.mib, 1), B.fmt(s.mainMs), B.fmt(s.workersMs), B.fmt(s.otherMs)]),
);
console.log("");
/** The target's row: 256 in flight, as a user opens a store (automatic snapshots on). */
const top = rows[LEVELS.findIndex((l) => l.inflight === 256 && l.snapshots)]!;
console.log(`main-thread CPU per put at 256 in flight: ${B.verdict(top.mainUs, "≤", 1.5, 2)} µs\n`);
const parts = await stages();
const sum = parts.filter(([name]) => !name.includes("overwrite")).reduce((n, [, ns]) => n + ns, 0);
console.log(`## the main thread's stages of a put, each alone (median of ${RUNS} × ${B.fmt(STAGE_OPS)} calls)\n`);
B.table(
  ["stage", "ns/put", `share of ${B.fmt(top.mainUs * 1000)} ns (main thread at 256)`],
  [
    ...parts.map(([name, ns]): string[] => [name, B.fmt(ns), name.includes("overwrite") ? "(instead of a new key)" : `${B.fmt((100 * ns) / (top.mainUs * 1000))}%`]),
    ["the rest: event loop, waiter wake-ups, allocation, GC", B.fmt(top.mainUs * 1000 - sum), `${B.fmt((100 * (top.mainUs * 1000 - sum)) / (top.mainUs * 1000))}%`],
  ],
);
console.log("");
B.finish();
