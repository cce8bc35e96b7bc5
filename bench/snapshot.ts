// Scenario: snapshots (docs/snapshot-format.md), the four targets, each against a baseline measured in
// the same run: restart after many overwrites, bytes on disk during them, durable puts and get
// latency while a snapshot is written, and RSS of a store opened from a snapshot.
//
//   bun bench/snapshot.ts                        all parts, one fresh process each, then a summary
//   bun bench/snapshot.ts --part restart         one part: restart | disk | throughput | memory
//   [--overwrites 10000000] [--keys 1000000] [--batches-in-flight 16] [--window-ms 2000] [--rounds 3]

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { heapStats } from "bun:jsc";
import { open, type Db, type OpenOptions, type SnapshotInfo, type Stats } from "../src/index.ts";
import * as D from "./dataset.ts";
import * as B from "./lib.ts";

const KEYS = B.numberFlag("keys", 1_000_000);
const OVERWRITES = B.numberFlag("overwrites", 10_000_000);
/** Throughput part: the length of a window without a snapshot, and how many rounds. */
const WINDOW_MS = B.numberFlag("window-ms", 2000);
const ROUNDS = B.numberFlag("rounds", 3);
const REOPENS = 3;
/** Loads and overwrites: batch() records of this many puts, this many batches in flight. */
const BATCH_OPS = 1000;
const BATCHES_IN_FLIGHT = B.numberFlag("batches-in-flight", 16);
/** Throughput part: single puts outstanding, as bench/put-throughput.ts. */
const PUTS_IN_FLIGHT = 256;
/** Disk is sampled this often (allocated blocks of everything under the store's directory). */
const DISK_SAMPLE_MS = 50;
/** The reader of the throughput part asks for one key every this many ms. */
const READ_EVERY_MS = 1;
/** Live data: what the keys and values themselves take, without any framing. */
const LIVE_BYTES = KEYS * (B.KEY_BYTES + B.VALUE_BYTES);
const PARTS = ["restart", "disk", "throughput", "memory"] as const;
type Part = (typeof PARTS)[number];

const MiB = 1024 * 1024;
const VALUES = D.values();
const NO_AUTO: OpenOptions = { snapshotEveryBytes: 0 };

/** One line of the summary: what, measured, baseline, verdict. */
type TargetRow = [string, string, string, string];

// ---- workloads ----

/** One batch() of puts of keys `keyOf(0…n−1)`, each with the next value of the pool. */
function batchOf(n: number, keyOf: (j: number) => string, seq: number): Parameters<Db["batch"]>[0] {
  const ops = new Array(n);
  for (let j = 0; j < n; j++) ops[j] = { type: "put", key: keyOf(j), value: VALUES[(seq + j) % VALUES.length]! };
  return ops;
}

/** Runs `total` puts as batch() records of BATCH_OPS, BATCHES_IN_FLIGHT at a time; returns seconds. */
async function batches(db: Db, total: number, keyAt: (i: number) => string): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const from = next;
      next = Math.min(total, next + BATCH_OPS);
      await db.batch(batchOf(next - from, (j) => keyAt(from + j), from));
    }
  };
  await Promise.all(Array.from({ length: BATCHES_IN_FLIGHT }, lane));
  return (performance.now() - t0) / 1000;
}

/** Keys 0…KEYS−1, once each. */
const load = (db: Db) => batches(db, KEYS, B.key);

/** `n` puts to uniformly random existing keys (seeded), so the live data stays KEYS keys. */
function overwrite(db: Db, n: number, seed = 42): Promise<number> {
  const random = B.rng(seed);
  return batches(db, n, () => B.key(Math.floor(random() * KEYS)));
}

/** An automatic snapshot still running is let finish, so that close() does not cut it off. */
async function snapshotsIdle(db: Db): Promise<void> {
  while (db.stats().snapshot.running) await Bun.sleep(10);
}

// ---- disk ----

interface DiskSample {
  ms: number;
  total: number;
  wal: number;
  snap: number;
  /** A snapshot being written (a .snap.tmp file), and the complete snapshots there. */
  writing: boolean;
  snaps: string[];
}

/** Allocated bytes under `dir` (st_blocks × 512); a file deleted between readdir and stat counts 0. */
function allocated(dir: string): number {
  let total = 0;
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of names) {
    const p = path.join(dir, e.name);
    try {
      total += e.isDirectory() ? allocated(p) : fs.statSync(p).blocks * 512;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return total;
}

function diskSample(dir: string, t0: number): DiskSample {
  const wal = allocated(path.join(dir, "wal"));
  const snap = allocated(path.join(dir, "snap"));
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(dir, "snap"));
  } catch {}
  return {
    ms: performance.now() - t0,
    total: allocated(dir),
    wal,
    snap,
    writing: names.some((n) => n.endsWith(".tmp")),
    snaps: names.filter((n) => n.endsWith(".snap")),
  };
}

/**
 * Samples the store's bytes on disk every DISK_SAMPLE_MS until stop(). It runs in the process that
 * does not write: under many batches in flight the writing process's timers wait for seconds.
 */
function sampleDisk(dir: string): { stop(): DiskSample[] } {
  const t0 = performance.now();
  const samples: DiskSample[] = [diskSample(dir, t0)];
  const timer = setInterval(() => samples.push(diskSample(dir, t0)), DISK_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      samples.push(diskSample(dir, t0));
      return samples;
    },
  };
}

/** What a fill process reports when it is done (it then exits without close(): a crash image). */
interface Filled {
  loadS: number;
  overwriteS: number;
  /** Waiting, after the last write, for an automatic snapshot still running to finish. */
  snapshotWaitS: number;
  stats: Stats;
}

interface DiskRun {
  label: string;
  filled: Filled;
  maxBytes: number;
  maxAt: DiskSample;
  finalBytes: number;
  /** Snapshots that became complete while the workload ran (not counting the wait after it). */
  completedDuring: number;
  /** Seconds with a snapshot being written, in all and the longest stretch. */
  writingS: number;
  longestWritingS: number;
}

/**
 * Runs this file with --part fill in a fresh process: `mode` "overwrite" loads KEYS keys and
 * overwrites OVERWRITES times, "threshold" overwrites up to just below the next automatic snapshot.
 * Samples the bytes on disk from this process meanwhile.
 */
async function fillProcess(dir: string, mode: "overwrite" | "threshold", auto: boolean, label: string): Promise<DiskRun> {
  const sampler = sampleDisk(dir);
  const args = [process.execPath, import.meta.path, "--part", "fill", "--dir", dir, "--mode", mode, ...(auto ? [] : ["--no-auto"])];
  const p = Bun.spawn([...args, ...passedFlags()], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(p.stdout).text();
  const code = await p.exited;
  const samples = sampler.stop();
  if (code !== 0) throw new Error(`fill process (${mode}) failed: exit ${code}`);
  const filled = JSON.parse(out.trim().split("\n").at(-1)!) as Filled;
  const maxAt = samples.reduce((a, b) => (b.total > a.total ? b : a));
  const workEndMs = samples.at(-1)!.ms - filled.snapshotWaitS * 1000;
  const during = samples.filter((x) => x.ms <= workEndMs);
  const seen = new Set(samples[0]!.snaps);
  let completedDuring = 0;
  for (const x of during) for (const n of x.snaps) if (!seen.has(n)) (seen.add(n), completedDuring++);
  let writing = 0;
  let stretch = 0;
  let longest = 0;
  for (const x of samples) {
    stretch = x.writing ? stretch + 1 : 0;
    writing += x.writing ? 1 : 0;
    longest = Math.max(longest, stretch);
  }
  return {
    label,
    filled,
    maxBytes: maxAt.total,
    maxAt,
    finalBytes: samples.at(-1)!.total,
    completedDuring,
    writingS: (writing * DISK_SAMPLE_MS) / 1000,
    longestWritingS: (longest * DISK_SAMPLE_MS) / 1000,
  };
}

/** The flags a child process must see as this one did. */
function passedFlags(): string[] {
  const out: string[] = [];
  for (const name of ["overwrites", "keys", "window-ms", "rounds", "batches-in-flight"]) {
    const i = process.argv.indexOf(`--${name}`);
    if (i >= 0) out.push(`--${name}`, process.argv[i + 1]!);
  }
  return out;
}

/** The fill process: writes, lets a running snapshot finish, reports, exits without close(). */
async function fill(dir: string, mode: string, auto: boolean): Promise<never> {
  const db = await open(dir, auto ? {} : NO_AUTO);
  const r: Filled = { loadS: 0, overwriteS: 0, snapshotWaitS: 0, stats: db.stats() };
  if (mode === "overwrite") {
    r.loadS = await load(db);
    r.overwriteS = await overwrite(db, OVERWRITES);
  } else await fillToThreshold(db);
  const t0 = performance.now();
  await snapshotsIdle(db);
  r.snapshotWaitS = (performance.now() - t0) / 1000;
  r.stats = db.stats();
  console.log(JSON.stringify(r));
  // No close(): every write was acknowledged, so this is a crash image right after the last one
  // (close() would take a snapshot, which a crash does not).
  process.exit(0);
}

function printDisk(runs: DiskRun[]): void {
  console.log(
    `Live data = ${B.fmt(KEYS)} × (${B.KEY_BYTES} B key + ${B.VALUE_BYTES} B value) = ${B.fmt(LIVE_BYTES / MiB, 1)} MiB. ` +
      `Disk = allocated blocks (st_blocks × 512) of everything under the store's directory (wal/, snap/, LOCK), ` +
      `sampled every ${DISK_SAMPLE_MS} ms by a separate process while one process loads the keys and overwrites ` +
      `${B.fmt(OVERWRITES)} times (batch() of ${B.fmt(BATCH_OPS)} puts, ${BATCHES_IN_FLIGHT} in flight, sync "always"); ` +
      `final = when that process is done (an automatic snapshot still running after the last write let finish).\n`,
  );
  B.table(
    [
      "run",
      "max MiB",
      "max ÷ live",
      "wal / snap at max MiB",
      "final MiB",
      "final ÷ live",
      "snapshots completed during the writes",
      "s with a snapshot being written (longest)",
      "snapshot finished after the writes, s",
      "overwrite puts/s",
    ],
    runs.map((r) => [
      r.label,
      B.fmt(r.maxBytes / MiB),
      B.fmt(r.maxBytes / LIVE_BYTES, 2),
      `${B.fmt(r.maxAt.wal / MiB)} / ${B.fmt(r.maxAt.snap / MiB)}`,
      B.fmt(r.finalBytes / MiB),
      B.fmt(r.finalBytes / LIVE_BYTES, 2),
      B.fmt(r.completedDuring),
      `${B.fmt(r.writingS, 1)} (${B.fmt(r.longestWritingS, 1)})`,
      B.fmt(r.filled.snapshotWaitS, 1),
      B.fmt(OVERWRITES / r.filled.overwriteS),
    ]),
  );
}

// ---- part: restart (targets 1 and 2) ----

interface Reopen {
  ms: number;
  recovery: Stats["recovery"];
  walBytesSince: number;
}

/**
 * open() until a get of the first key answers, garbage collected before (untimed); closed again
 * with snapshotEveryBytes 0, so that close() takes no snapshot and the next round finds the same
 * directory (the option does not change what open() reads).
 */
async function reopen(dir: string): Promise<Reopen> {
  Bun.gc(true);
  const t0 = performance.now();
  const db = await open(dir, NO_AUTO);
  if (db.get(B.key(0)) === undefined) throw new Error(`reopened ${dir} without the first key`);
  const ms = performance.now() - t0;
  const s = db.stats();
  if (s.keys !== KEYS) throw new Error(`reopened with ${s.keys} keys, expected ${KEYS}`);
  await db.close();
  return { ms, recovery: s.recovery, walBytesSince: s.snapshot.walBytesSince };
}

interface ReopenSet {
  label: string;
  subject: Reopen[];
  base: Reopen[];
}

/** A subject reopen slower than this ends its rounds early (one replay of a long log takes minutes). */
const REOPEN_SLOW_MS = 60_000;

/** REOPENS rounds of (baseline, subject), interleaved so that drift hits both alike. */
async function reopenRounds(label: string, baseDir: string, subjDir: string): Promise<ReopenSet> {
  const set: ReopenSet = { label, subject: [], base: [] };
  for (let r = 0; r < REOPENS; r++) {
    set.base.push(await reopen(baseDir));
    set.subject.push(await reopen(subjDir));
    if (set.subject.at(-1)!.ms > REOPEN_SLOW_MS) break;
  }
  return set;
}

const medianOf = (xs: Reopen[]) => B.median(xs.map((x) => x.ms));
const ratioOf = (s: ReopenSet) => B.median(s.subject.map((x, i) => x.ms / s.base[i]!.ms));

/**
 * Overwrites one batch at a time until the WAL after the last snapshot is just below the threshold
 * of the next automatic one: the longest log a restart can find behind the snapshot.
 */
async function fillToThreshold(db: Db): Promise<void> {
  const random = B.rng(7);
  let seq = 0;
  let batchBytes = 0;
  for (;;) {
    const s = db.stats().snapshot;
    if (s.running) {
      await snapshotsIdle(db);
      continue;
    }
    if (batchBytes > 0 && s.walBytesSince + 2 * batchBytes >= s.everyBytes) return;
    const before = db.stats().wal.bytes;
    await db.batch(batchOf(BATCH_OPS, () => B.key(Math.floor(random() * KEYS)), seq++));
    batchBytes = Math.max(batchBytes, db.stats().wal.bytes - before);
  }
}

const snapNames = (dir: string) => fs.readdirSync(path.join(dir, "snap")).join(",");

async function partRestart(root: string): Promise<TargetRow[]> {
  const baseDir = path.join(root, "once");
  const subjDir = path.join(root, "overwritten");

  const base = await open(baseDir, NO_AUTO);
  const baseLoadS = await load(base);
  await base.close();

  const run = await fillProcess(subjDir, "overwrite", true, `default options, ${B.fmtShort(OVERWRITES)} overwrites`);
  const sets = [await reopenRounds(`crash after ${B.fmtShort(OVERWRITES)} overwrites`, baseDir, subjDir)];

  // A clean shutdown: close() may take a snapshot first.
  const before = snapNames(subjDir);
  const db = await open(subjDir, {});
  const c0 = performance.now();
  await db.close();
  const closeMs = performance.now() - c0;
  const snapshotAtClose = snapNames(subjDir) !== before;
  sets.push(await reopenRounds(`after a clean close() (${snapshotAtClose ? "it took a snapshot" : "no snapshot"}, ${B.fmt(closeMs)} ms)`, baseDir, subjDir));

  const worst = await fillProcess(subjDir, "threshold", true, "up to the threshold");
  const near = worst.filled.stats.snapshot;
  sets.push(await reopenRounds(`crash just below the next automatic snapshot (worst case)`, baseDir, subjDir));

  console.log(`## snapshots: restart after overwrites (${B.fmt(KEYS)} live keys, ${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values)\n`);
  console.log(
    `Subject: ${B.fmt(KEYS)} keys loaded, then ${B.fmt(OVERWRITES)} puts to random existing keys, as batch() records of ` +
      `${B.fmt(BATCH_OPS)} puts with ${BATCHES_IN_FLIGHT} batches in flight, sync "always", default options (automatic ` +
      `snapshots), in a process that exits without close() once its writes are acknowledged (and an automatic snapshot ` +
      `still running has finished): a crash image. Then a clean open + close(); then, again as a crash, overwrites one batch ` +
      `at a time up to just below the next automatic snapshot. Baseline: the same ${B.fmt(KEYS)} keys written once the same ` +
      `way, snapshotEveryBytes 0 (no snapshot). Restart = open() until a get of the first key answers, after Bun.gc(true); ` +
      `${REOPENS} interleaved rounds (baseline, subject; fewer when a subject reopen takes over ${REOPEN_SLOW_MS / 1000} s), ` +
      `medians; ratio = median of per-round ratios. Files in the page cache.\n`,
  );
  console.log(
    `(load: ${B.fmt(baseLoadS, 1)} s baseline, ${B.fmt(run.filled.loadS, 1)} s subject; ${B.fmt(OVERWRITES)} overwrites in ` +
      `${B.fmt(run.filled.overwriteS, 1)} s; automatic snapshots taken by the writing process: ${B.fmt(run.filled.stats.snapshot.taken)}, ` +
      `the last ${B.fmt(run.filled.stats.snapshot.bytes / MiB, 1)} MiB; threshold ${B.fmt(run.filled.stats.snapshot.everyBytes / MiB, 1)} MiB ` +
      `of WAL; worst case filled to ${B.fmt(near.walBytesSince / MiB, 1)} MiB of ${B.fmt(near.everyBytes / MiB, 1)} MiB)\n`,
  );
  B.table(
    ["state", "restart ms", "baseline ms", "ratio", "rounds", "snapshot keys", "snapshot MiB", "WAL records replayed", "WAL segments read", "WAL MiB after snapshot", "baseline records replayed"],
    sets.map((s) => {
      const r = s.subject.at(-1)!;
      return [
        s.label,
        B.fmt(medianOf(s.subject)),
        B.fmt(medianOf(s.base)),
        B.fmt(ratioOf(s), 2),
        String(s.subject.length),
        B.fmt(r.recovery.snapshot?.keys ?? 0),
        B.fmt((r.recovery.snapshot?.bytes ?? 0) / MiB, 1),
        B.fmt(r.recovery.records),
        B.fmt(r.recovery.segments),
        B.fmt(r.walBytesSince / MiB, 1),
        B.fmt(s.base.at(-1)!.recovery.records),
      ];
    }),
  );
  const rows: TargetRow[] = [];
  const names = ["restart, crash after the overwrites", "restart after a clean close", "restart, crash at the worst moment"];
  for (const [i, s] of sets.entries()) {
    const which = names[i]!;
    const ms = medianOf(s.subject);
    console.log(`${which}: ${B.verdict(ms / 1000, "≤", 1.5)} s; ÷ baseline ${B.verdict(ratioOf(s), "≤", 2)}`);
    rows.push([`${which}, s`, B.fmt(ms / 1000, 2), "—", B.verdict(ms / 1000, "≤", 1.5)]);
    rows.push([`${which} ÷ written once`, `${B.fmt(ms)} ms`, `${B.fmt(medianOf(s.base))} ms`, B.verdict(ratioOf(s), "≤", 2)]);
  }
  console.log();

  console.log(`## snapshots: disk during ${B.fmt(OVERWRITES)} overwrites\n`);
  printDisk([run]);
  console.log(`max ÷ live ${B.verdict(run.maxBytes / LIVE_BYTES, "≤", 3)}; final ÷ live ${B.verdict(run.finalBytes / LIVE_BYTES, "≤", 3)}\n`);
  rows.push(["disk max ÷ live", `${B.fmt(run.maxBytes / MiB)} MiB`, `${B.fmt(LIVE_BYTES / MiB)} MiB live`, B.verdict(run.maxBytes / LIVE_BYTES, "≤", 3)]);
  rows.push(["disk final ÷ live", `${B.fmt(run.finalBytes / MiB)} MiB`, `${B.fmt(LIVE_BYTES / MiB)} MiB live`, B.verdict(run.finalBytes / LIVE_BYTES, "≤", 3)]);
  return rows;
}

// ---- part: disk (the baseline of target 2: no snapshots) ----

async function partDisk(root: string): Promise<TargetRow[]> {
  const dir = path.join(root, "no-snapshots");
  const run = await fillProcess(dir, "overwrite", false, `snapshotEveryBytes 0, ${B.fmtShort(OVERWRITES)} overwrites`);
  const r = await reopen(dir);
  console.log(`## snapshots: disk during ${B.fmt(OVERWRITES)} overwrites without snapshots (the baseline)\n`);
  printDisk([run]);
  console.log(
    `Restart of this store (no snapshot, one reopen): ${B.fmt(r.ms)} ms, ${B.fmt(r.recovery.records)} WAL records replayed ` +
      `(${B.fmt(r.recovery.segments)} segments).\n`,
  );
  return [
    ["disk max ÷ live, no snapshots (baseline)", B.fmt(run.maxBytes / LIVE_BYTES, 2), `${B.fmt(LIVE_BYTES / MiB)} MiB live`, "grows with the log"],
    ["restart with no snapshot after the overwrites, s", B.fmt(r.ms / 1000, 2), "—", "(for scale)"],
  ];
}

// ---- part: throughput (target 3) ----

/**
 * Single puts to random existing keys, PUTS_IN_FLIGHT outstanding, until stop(). The keys come from
 * a pool made before any window (D.queries), each window starting at its own place in it.
 */
function startPuts(db: Db, from: number): { stop(): Promise<{ puts: number; perSecond: number; maxGapMs: number }> } {
  const keys = D.queries(KEYS, 1);
  let stopped = false;
  let done = 0;
  let i = from;
  const t0 = B.nowNs();
  // The longest stretch in which no put completed: a writer busy with something else.
  let last = t0;
  let maxGap = 0;
  const lane = async () => {
    while (!stopped) {
      const n = i++;
      await db.put(keys[n & D.QUERY_MASK]!, VALUES[n % VALUES.length]!);
      if (stopped) break;
      done++;
      const now = B.nowNs();
      if (now - last > maxGap) maxGap = now - last;
      last = now;
    }
  };
  const lanes = Promise.all(Array.from({ length: PUTS_IN_FLIGHT }, lane));
  return {
    async stop() {
      stopped = true;
      const seconds = (B.nowNs() - t0) / 1e9;
      const puts = done;
      await lanes;
      return { puts, perSecond: puts / seconds, maxGapMs: maxGap / 1e6 };
    },
  };
}

/**
 * A reader: one get of a random key every READ_EVERY_MS from a timer. Each sample is how long the
 * reader waited beyond the timer's own delay (the event loop's lateness) plus the get itself, in ns.
 */
function startReader(db: Db): { stop(): number[] } {
  const keys = D.queries(KEYS, 99);
  const out: number[] = [];
  let stopped = false;
  let i = 0;
  let timer: ReturnType<typeof setTimeout>;
  const schedule = () => {
    const at = B.nowNs();
    timer = setTimeout(() => {
      if (db.get(keys[i++ & D.QUERY_MASK]!) === undefined) throw new Error("a loaded key is missing");
      out.push(Math.max(0, B.nowNs() - at - READ_EVERY_MS * 1e6));
      if (!stopped) schedule();
    }, READ_EVERY_MS);
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      return out;
    },
  };
}

interface Window {
  perSecond: number;
  ms: number;
  reads: number[];
  /** Group commits in the window, how many records each carried, and their mean fdatasync. */
  fsyncs: number;
  recordsPerFsync: number;
  fsyncMs: number;
  /** The longest time no put completed. */
  maxGapMs: number;
  snapshot?: { ms: number; bytes: number; keys: number };
}

/** Puts and the reader for as long as `body` runs: WINDOW_MS of sleep, or a snapshot. */
async function measureWindow(db: Db, from: number, body: () => Promise<SnapshotInfo | void>): Promise<Window> {
  const w0 = db.stats().wal;
  const reader = startReader(db);
  const puts = startPuts(db, from);
  const t0 = performance.now();
  const info = await body();
  const r = await puts.stop();
  const ms = performance.now() - t0;
  const reads = reader.stop();
  const w1 = db.stats().wal;
  const fsyncs = w1.fsyncs - w0.fsyncs;
  return {
    perSecond: r.perSecond,
    ms,
    reads,
    maxGapMs: r.maxGapMs,
    fsyncs,
    recordsPerFsync: (w1.records - w0.records) / fsyncs,
    fsyncMs: (w1.fsyncLatencyUs.sum - w0.fsyncLatencyUs.sum) / fsyncs / 1000,
    ...(info ? { snapshot: { ms: info.ms, bytes: info.bytes, keys: info.keys } } : {}),
  };
}

const windowWithout = (db: Db, from: number) => measureWindow(db, from, () => Bun.sleep(WINDOW_MS));
const windowWith = (db: Db, from: number) => measureWindow(db, from, () => db.snapshot());

const latencyMs = (ns: number[]) => {
  const s = [...ns].sort((a, b) => a - b);
  return { p50: B.percentile(s, 0.5) / 1e6, p99: B.percentile(s, 0.99) / 1e6, max: (s.at(-1) ?? NaN) / 1e6, n: s.length };
};

async function partThroughput(root: string): Promise<TargetRow[]> {
  const db = await open(path.join(root, "loaded"), NO_AUTO);
  const loadS = await load(db);
  D.queries(KEYS, 1); // the key pools of the writers and the reader, made before any window
  D.queries(KEYS, 99);
  await B.settleWriter(db);
  // Untimed: the JIT, and the heap's growth after the load.
  await windowWithout(db, 1);
  const without: Window[] = [];
  const during: Window[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    without.push(await windowWithout(db, (2 * r + 1) * 100_003));
    during.push(await windowWith(db, (2 * r + 2) * 100_003));
  }
  const stats = db.stats();
  await db.close();

  const ratios = during.map((d, i) => d.perSecond / without[i]!.perSecond);
  const ratio = B.median(ratios);
  const lat = (ws: Window[]) => latencyMs(ws.flatMap((w) => w.reads));
  const lw = lat(without);
  const ld = lat(during);
  const p99s = (ws: Window[]) => ws.map((w) => latencyMs(w.reads).p99);

  console.log(`## snapshots: durable puts and gets while a snapshot of ${B.fmt(KEYS)} keys is written\n`);
  console.log(
    `${B.fmt(KEYS)} keys loaded (${B.fmt(loadS, 1)} s), snapshotEveryBytes 0. ${ROUNDS} rounds of: ${B.fmt(WINDOW_MS)} ms of single ` +
      `puts to random existing keys with ${PUTS_IN_FLIGHT} in flight (sync "always"), then the same puts for the duration of ` +
      `an explicit \`await db.snapshot()\`. Throughout, a reader gets a random key every ${READ_EVERY_MS} ms from a timer; its ` +
      `latency is the timer's lateness plus the get (how long the event loop kept a reader waiting). Puts/s: medians; ` +
      `ratio: median of per-round ratios; read latency: percentiles over all samples of all rounds.\n`,
  );
  B.table(
    ["window", "ms (median)", "puts/s (median)", "runs puts/s", "records/fdatasync", "fdatasync ms", "longest with no put done ms", "reads", "get p50 ms", "get p99 ms", "get max ms", "p99 per round ms"],
    [
      ["without a snapshot", without, lw],
      ["while db.snapshot() runs", during, ld],
    ].map(([label, ws, l]) => {
      const w = ws as Window[];
      const x = l as ReturnType<typeof latencyMs>;
      return [
        label as string,
        B.fmt(B.median(w.map((y) => y.ms))),
        B.fmt(B.median(w.map((y) => y.perSecond))),
        w.map((y) => B.fmtShort(y.perSecond)).join(", "),
        B.fmt(B.median(w.map((y) => y.recordsPerFsync)), 1),
        B.fmt(B.median(w.map((y) => y.fsyncMs)), 2),
        B.fmt(B.median(w.map((y) => y.maxGapMs))),
        B.fmt(x.n),
        B.fmt(x.p50, 2),
        B.fmt(x.p99, 2),
        B.fmt(x.max, 1),
        p99s(w).map((p) => B.fmt(p, 2)).join(", "),
      ];
    }),
  );
  const snap = during.at(-1)!.snapshot!;
  console.log(
    `snapshots: ${during.map((d) => `${B.fmt(d.snapshot!.ms)} ms`).join(", ")}; ${B.fmt(snap.keys)} keys, ${B.fmt(snap.bytes / MiB, 1)} MiB ` +
      `each; per-round ratios ${ratios.map((x) => B.fmt(x, 2)).join(", ")}; records/fdatasync over the run ${B.fmt(stats.wal.recordsPerFsync, 1)}\n`,
  );
  console.log(`puts/s during ÷ without ${B.verdict(ratio, "≥", 0.7)}`);
  console.log(`get p99 during a snapshot ${B.verdict(ld.p99, "≤", 5)} ms (without: ${B.fmt(lw.p99, 2)} ms)\n`);
  return [
    ["puts/s during a snapshot ÷ without", B.fmt(B.median(during.map((d) => d.perSecond))), B.fmt(B.median(without.map((d) => d.perSecond))), B.verdict(ratio, "≥", 0.7)],
    ["get p99 during a snapshot, ms", B.fmt(ld.p99, 2), B.fmt(lw.p99, 2), B.verdict(ld.p99, "≤", 5)],
  ];
}

// ---- part: memory (target 4) ----

interface Probe {
  rssBefore: number;
  rss: number;
  peakRss: number;
  openMs: number;
  heapSize: number;
  heapCapacity: number;
  extraMemorySize: number;
  objectCount: number;
  arrayBuffers: number;
  top: [string, number][];
}

/** In a fresh process: RSS before, open `dir`, first get, Bun.gc(true), RSS after. Prints one JSON line. */
async function probe(dir: string): Promise<never> {
  Bun.gc(true);
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const db = await open(dir, NO_AUTO);
  if (db.get(B.key(0)) === undefined) throw new Error("opened without the first key");
  const openMs = performance.now() - t0;
  if (db.stats().keys !== KEYS) throw new Error(`opened with ${db.stats().keys} keys`);
  // The hash map fills in the background after open: measure the index whole.
  while (!db.stats().memory.mapFilled) await Bun.sleep(10);
  Bun.gc(true);
  await Bun.sleep(50);
  Bun.gc(true);
  const m = process.memoryUsage();
  const h = heapStats();
  const p: Probe = {
    rssBefore,
    rss: m.rss,
    peakRss: peakRssOfThisImage(),
    openMs,
    heapSize: h.heapSize,
    heapCapacity: h.heapCapacity,
    extraMemorySize: h.extraMemorySize,
    objectCount: h.objectCount,
    arrayBuffers: m.arrayBuffers,
    top: Object.entries(h.objectTypeCounts).slice(0, 6),
  };
  console.log(JSON.stringify(p));
  process.exit(0);
}

/**
 * Peak RSS since this process's exec: VmHWM on Linux. Not getrusage's maxRSS, which a spawned child
 * inherits from its parent's copy before exec (here: the process that loaded 1M keys twice).
 */
function peakRssOfThisImage(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {}
  return B.peakRssBytes();
}

function spawnProbe(dir: string): Probe {
  const args = [process.execPath, import.meta.path, "--part", "probe", "--dir", dir, "--keys", String(KEYS)];
  const p = Bun.spawnSync(args, { stdout: "pipe", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`probe of ${dir} failed: exit ${p.exitCode}`);
  return JSON.parse(p.stdout.toString().trim().split("\n").at(-1)!) as Probe;
}

async function partMemory(root: string): Promise<TargetRow[]> {
  const snapDir = path.join(root, "from-snapshot");
  const walDir = path.join(root, "from-wal");
  let db = await open(snapDir, NO_AUTO);
  await load(db);
  const info = await db.snapshot();
  const walLeft = allocated(path.join(snapDir, "wal"));
  await db.close();
  db = await open(walDir, NO_AUTO);
  await load(db);
  await db.close();

  const snap: Probe[] = [];
  const wal: Probe[] = [];
  for (let r = 0; r < REOPENS; r++) {
    snap.push(spawnProbe(snapDir));
    wal.push(spawnProbe(walDir));
  }
  const med = (ps: Probe[], f: (p: Probe) => number) => B.median(ps.map(f));
  const row = (label: string, ps: Probe[]) => [
    label,
    B.fmt(med(ps, (p) => p.rss) / MiB),
    B.fmt(med(ps, (p) => p.rss) / KEYS),
    B.fmt(med(ps, (p) => p.rss - p.rssBefore) / KEYS),
    B.fmt(med(ps, (p) => p.rssBefore) / MiB),
    B.fmt(med(ps, (p) => p.peakRss) / MiB),
    B.fmt(med(ps, (p) => p.heapSize) / MiB),
    B.fmt(med(ps, (p) => p.extraMemorySize) / MiB),
    B.fmt(med(ps, (p) => p.objectCount)),
    B.fmt(med(ps, (p) => p.openMs)),
  ];
  const rss = med(snap, (p) => p.rss);
  const ratio = B.median(snap.map((p, i) => p.rss / wal[i]!.rss));

  console.log(`## snapshots: memory of a store of ${B.fmt(KEYS)} keys opened from a snapshot\n`);
  console.log(
    `Each open in a fresh process: RSS before open() (after Bun.gc(true)), open, first get, Bun.gc(true) twice, RSS ` +
      `(process.memoryUsage) and heapStats() from bun:jsc. ${REOPENS} interleaved rounds, medians. Subject: the store ` +
      `after \`db.snapshot()\` (${B.fmt(info.bytes / MiB, 1)} MiB snapshot, ${B.fmt(walLeft / MiB)} MiB of WAL left). ` +
      `Baseline: the same keys opened by replaying the WAL (no snapshot).\n`,
  );
  B.table(
    ["opened from", "RSS MiB", "RSS B/key", "(RSS − RSS before) B/key", "RSS before MiB", "peak RSS MiB", "JS heap MiB", "of which extra (buffers, strings) MiB", "heap cells", "open ms"],
    [row("snapshot", snap), row("WAL replay (baseline)", wal)],
  );
  console.log(`most common cells (snapshot open): ${snap.at(-1)!.top.map(([k, n]) => `${k} ${B.fmt(n)}`).join(", ")}\n`);
  console.log(`RSS ${B.verdict(rss / 1e6, "≤", 350, 0)} MB; ÷ WAL-replay open ${B.fmt(ratio, 2)}\n`);
  return [["RSS after open from a snapshot, MB", B.fmt(rss / 1e6), `${B.fmt(med(wal, (p) => p.rss) / 1e6)} (WAL replay)`, B.verdict(rss / 1e6, "≤", 350, 0)]];
}

// ---- driver ----

/** Every part in a fresh process: the memory of one never weighs on the next. */
function runAll(): void {
  const passed = passedFlags();
  const only = B.stringFlag("parts")?.split(",") ?? [...PARTS];
  const rows: TargetRow[] = [];
  const status: string[][] = [];
  const jsonDir = fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-bench-json-"));
  try {
    for (const part of only) {
      const json = path.join(jsonDir, `${part}.json`);
      const t0 = performance.now();
      const p = Bun.spawnSync([process.execPath, import.meta.path, "--part", part, ...passed, "--json", json], { stdout: "inherit", stderr: "inherit" });
      status.push([part, p.exitCode === 0 ? "ok" : `exit ${p.exitCode ?? p.signalCode}`, B.fmt((performance.now() - t0) / 1000, 1)]);
      if (fs.existsSync(json)) rows.push(...(JSON.parse(fs.readFileSync(json, "utf8")) as TargetRow[]));
    }
  } finally {
    fs.rmSync(jsonDir, { recursive: true, force: true });
  }
  console.log(`## snapshots: targets\n`);
  B.table(["target", "measured", "baseline (same run)", "verdict"], rows);
  B.table(["part", "status", "seconds"], status);
  B.footer();
  process.exit(status.every((s) => s[1] === "ok") ? 0 : 1);
}

const part = B.stringFlag("part");
if (part === undefined) runAll();
else if (part === "probe") await probe(B.stringFlag("dir")!);
else if (part === "fill") await fill(B.stringFlag("dir")!, B.stringFlag("mode")!, !B.flag("no-auto"));
else {
  if (!(PARTS as readonly string[]).includes(part)) throw new Error(`--part must be one of ${PARTS.join(", ")}`);
  const run: Record<Part, (root: string) => Promise<TargetRow[]>> = {
    restart: partRestart,
    disk: partDisk,
    throughput: partThroughput,
    memory: partMemory,
  };
  const rows = await B.withTmpDir((root) => run[part as Part](root));
  const json = B.stringFlag("json");
  if (json) {
    fs.writeFileSync(json, JSON.stringify(rows));
    process.exit(0);
  }
  B.finish();
}
