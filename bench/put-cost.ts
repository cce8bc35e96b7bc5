// Scenario: what a durable put costs in CPU, per thread and per stage of the write path.
//
// Part 1 runs real puts (a new key each, 100 B values) at 1, 16 and 256 in flight and reads each
// thread's CPU time from /proc/self/task/*/schedstat (nanoseconds on a CPU, not 10 ms ticks): the
// main thread, the writer worker, and the rest (JSC's GC and JIT threads). Part 2 times each stage
// of the main thread's share alone, with the engine's own functions, in a tight loop: what is left
// of the end-to-end figure is the event loop, the promise machinery, wake-ups and GC.

import * as fs from "node:fs";
import { open } from "../src/index.ts";
import type { Op } from "../src/format/encoder.ts";
import { entryPayloadBytes, utf8Bytes } from "../src/format/encoder.ts";
import { frameBytes } from "../src/format/constants.ts";
import * as L from "../src/limits.ts";
import { Replay } from "../src/store/replay.ts";
import * as R from "../src/wal/ring.ts";
import { checkedValue, checkKey, condition } from "../src/write/validate.ts";
import * as B from "./lib.ts";

const LEVELS = [1, 16, 256];
const MS = B.numberFlag("ms", 1500);
const STAGE_OPS = B.numberFlag("ops", 200_000);
const RUNS = 5;
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

interface ThreadSplit {
  puts: number;
  perSecond: number;
  mainUs: number;
  writerUs: number;
  otherUs: number;
}

/** Puts at `inflight` for MS; CPU µs per put on the main thread, the writer worker and the rest. */
async function endToEnd(dir: string, inflight: number): Promise<ThreadSplit> {
  const db = await open(dir);
  await B.settleWriter(db);
  const value = B.bytesValue();
  await B.drivePuts((i) => db.put(`w${B.key(i)}`, value), inflight, { ms: 200 }); // warm-up
  const before = threadCpu();
  const r = await B.drivePuts((i) => db.put(B.key(i), value), inflight, { ms: MS });
  const after = threadCpu();
  await db.close();
  const main = String(process.pid);
  let mainNs = 0;
  let writerNs = 0;
  let otherNs = 0;
  for (const [tid, a] of after) {
    const ns = a.ns - (before.get(tid)?.ns ?? 0);
    if (tid === main) mainNs += ns;
    else if (a.name === "Worker") writerNs += ns; // the only worker while no snapshot runs
    else otherNs += ns;
  }
  const us = (ns: number) => ns / 1000 / r.puts;
  return { puts: r.puts, perSecond: r.perSecond, mainUs: us(mainNs), writerUs: us(writerNs), otherUs: us(otherNs) };
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
  const ops: Op[][] = keys.map((k) => [[k, encoded]]);
  const ring = R.createRing(L.ringBytesDefault, L.valueBytesMax + L.recordSlackBytes);
  let head = R.START_POS;
  let index = new Replay().finish();
  let rev = 0;
  let pending: { rev: number }[] = [];
  const out: [string, number][] = [
    ["validate: key and condition", stage((i) => (checkKey(keys[i]!, limits), condition(keys[i]!, undefined)))],
    ["encode: the value's CBOR in a buffer of its own", stage(() => checkedValue(value, limits))],
    ["measure: key UTF-8, payload and frame size", stage((i) => frameBytes(entryPayloadBytes(ops[i]!, [utf8Bytes(keys[i]!)])))],
    [
      "frame + CRC into the ring",
      stage(
        (i) => (head = R.putEntry(ring, head, i + 1, ops[i]!, [16], entryPayloadBytes(ops[i]!, [16]))),
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
        (i) => index.apply(++rev, ops[i]!),
        () => ((index = new Replay().finish()), (rev = 0)),
      ),
    ],
    ["apply to the index (an overwrite)", stage((i) => index.apply(++rev, ops[i]!))],
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

const rows: ThreadSplit[] = [];
await B.withTmpDir(async (dir) => {
  for (const inflight of LEVELS) rows.push(await endToEnd(`${dir}/${inflight}`, inflight));
});
console.log(`## CPU per durable put, by thread (${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values, a new key each, ${MS} ms per level)\n`);
B.table(
  ["in flight", "puts/s", "main thread µs/put", "writer worker µs/put", "other threads µs/put"],
  LEVELS.map((n, i) => {
    const r = rows[i]!;
    return [String(n), B.fmt(r.perSecond), B.fmt(r.mainUs, 2), B.fmt(r.writerUs, 2), B.fmt(r.otherUs, 2)];
  }),
);
const top = rows[rows.length - 1]!;
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
