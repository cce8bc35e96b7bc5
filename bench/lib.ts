// Shared benchmark helpers: temp dirs, timing, statistics, markdown tables and the raw disk baselines.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Db } from "../src/index.ts";

export const KEY_BYTES = 16;
export const VALUE_BYTES = 100;
/** A raw baseline record: about what one 16 B key + 100 B value put frames to in the WAL. */
export const RAW_RECORD_BYTES = 128;

const MiB = 1024 * 1024;

// ---- temp dirs ----

/**
 * Runs `fn` in a fresh directory under os.tmpdir() (honours TMPDIR), removed afterwards whatever
 * happens, Ctrl-C and the runner's timeout (SIGTERM) included.
 */
export async function withTmpDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-bench-"));
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    remove();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await fn(dir);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    remove();
  }
}

// ---- data ----

/** The i-th key: 16 ASCII bytes, a fresh string on every call. */
export function key(i: number): string {
  return `k${i.toString().padStart(KEY_BYTES - 1, "0")}`;
}

export function bytesValue(seed = 1): Uint8Array {
  const v = new Uint8Array(VALUE_BYTES);
  for (let i = 0; i < v.length; i++) v[i] = (seed * 31 + i * 7) & 0xff;
  return v;
}

export function stringValue(): string {
  return "v".repeat(VALUE_BYTES);
}

/**
 * `count` different values of VALUE_BYTES each, from a seeded generator: random bytes, or random
 * letters for strings. Different from key to key, so an engine that compresses (LevelDB: snappy)
 * stores about what real data would cost, not a run of copies.
 */
export function valuePool(count: number, kind: "bytes" | "string" = "bytes", seed = 7): (Uint8Array | string)[] {
  const random = rng(seed);
  return Array.from({ length: count }, () => {
    const v = Uint8Array.from({ length: VALUE_BYTES }, () => Math.floor(random() * 256));
    return kind === "bytes" ? v : String.fromCharCode(...v.map((b) => 97 + (b % 26)));
  });
}

/** xorshift32: a seeded, reproducible source of random indexes. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

// ---- timing and statistics ----

export const nowNs = (): number => Bun.nanoseconds();

/** The p-th percentile (0…1) of already sorted numbers, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: readonly number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 0.5);
}

export function latencySummaryUs(ns: readonly number[]): { p50: number; p99: number } {
  const s = [...ns].sort((a, b) => a - b);
  return { p50: percentile(s, 0.5) / 1000, p99: percentile(s, 0.99) / 1000 };
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Against a target: "1.07 (target ≤ 1.2: ok)". */
export function verdict(value: number, op: "≤" | "≥", target: number, digits = 2): string {
  const ok = op === "≤" ? value <= target : value >= target;
  return `${fmt(value, digits)} (target ${op} ${fmt(target, digits)}: ${ok ? "ok" : "MISSED"})`;
}

// ---- output ----

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  console.log(line(headers));
  console.log(line(headers.map(() => "---")));
  for (const r of rows) console.log(line(r));
  console.log();
}

/** CPUs, memory, kernel, Bun, the directory measured and the date, on one line. */
export function machine(): string {
  const cpus = os.cpus();
  return (
    `${cpus.length} cpus (${cpus[0]?.model ?? "?"}), ${fmt(os.totalmem() / 2 ** 30)} GiB, ` +
    `${os.type()} ${os.release()}, Bun ${Bun.version} (${Bun.revision.slice(0, 8)}), dir ${os.tmpdir()}, ${new Date().toISOString()}`
  );
}

/** The last two lines of every scenario: how to reproduce it, and on what. */
export function footer(): void {
  const script = path.relative(process.cwd(), process.argv[1] ?? "bench/?.ts");
  console.log(`reproduce: bun ${[script, ...process.argv.slice(2)].join(" ")}`);
  console.log(`machine: ${machine()}`);
}

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

export function numberFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} needs a positive integer`);
  return n;
}

// ---- the engine ----

/**
 * After open() the writer zero-fills the rest of the segment and a spare, 1 MiB and one fdatasync at a
 * time, while it is idle. Waits until that has been quiet for 250 ms, so that a measurement sees the
 * steady state; returns how long it took and how many fdatasyncs it cost.
 */
export async function settleWriter(db: Db, maxMs = 30_000): Promise<{ ms: number; fsyncs: number }> {
  const count = () => db.stats().wal.prepareFsyncs;
  const t0 = performance.now();
  const first = count();
  let last = first;
  let quietSince = t0;
  while (performance.now() - quietSince < 250 && performance.now() - t0 < maxMs) {
    await Bun.sleep(25);
    if (count() !== last) {
      last = count();
      quietSince = performance.now();
    }
  }
  return { ms: quietSince - t0, fsyncs: last - first };
}

/**
 * Prints the footer and exits: db.close() leaves its 30 s worker-exit timeout pending, which would
 * otherwise keep the process alive that long after the scenario is done.
 */
export function finish(): never {
  footer();
  process.exit(0);
}

// ---- raw baselines: node:fs on a file in the same directory as the database ----

/** A file of `bytes` real zeros, written 1 MiB at a time and fdatasynced: how the WAL prepares segments. */
export function zeroFilledFile(file: string, bytes: number): number {
  const fd = fs.openSync(file, "w");
  const zeros = new Uint8Array(MiB);
  for (let at = 0; at < bytes; at += MiB) fs.writeSync(fd, zeros, 0, Math.min(MiB, bytes - at), at);
  fs.fdatasyncSync(fd);
  return fd;
}

export type RawMode = "append" | "overwrite";

/** A raw WAL: `append` grows an empty file, `overwrite` writes over zeros prepared ahead of time. */
export class RawLog {
  private readonly fd: number;
  private offset = 0;

  /** `overwrite` wraps around to offset 0 at `capacityBytes`: still overwriting, like a reused segment. */
  constructor(file: string, readonly mode: RawMode, private readonly capacityBytes: number) {
    this.fd = mode === "append" ? fs.openSync(file, "w") : zeroFilledFile(file, capacityBytes);
  }

  /** One write of `bytes` at the end of the log, then one fdatasync. */
  commit(bytes: Uint8Array): void {
    if (this.mode === "overwrite" && this.offset + bytes.length > this.capacityBytes) this.offset = 0;
    fs.writeSync(this.fd, bytes, 0, bytes.length, this.offset);
    this.offset += bytes.length;
    fs.fdatasyncSync(this.fd);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Latency of `n` commits of one 128 B record each, in ns. */
export function rawLatencyNs(log: RawLog, n: number): number[] {
  const record = new Uint8Array(RAW_RECORD_BYTES).fill(0xab);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowNs();
    log.commit(record);
    out.push(nowNs() - t0);
  }
  return out;
}

/** The disk's group-commit limit: `records` 128 B records, `group` per write + fdatasync; records/s. */
export function rawGroupRate(log: RawLog, records: number, group: number): number {
  const batch = new Uint8Array(RAW_RECORD_BYTES * group).fill(0xab);
  const t0 = nowNs();
  for (let done = 0; done < records; done += group) log.commit(batch);
  return (Math.ceil(records / group) * group) / ((nowNs() - t0) / 1e9);
}

/** The group-commit limit measured for `ms`: `group` 128 B records per write + fdatasync; records/s. */
export function rawGroupRateFor(log: RawLog, group: number, ms: number): number {
  const batch = new Uint8Array(RAW_RECORD_BYTES * group).fill(0xab);
  const t0 = nowNs();
  let commits = 0;
  do {
    log.commit(batch);
    commits++;
  } while (nowNs() - t0 < ms * 1e6);
  return (commits * group) / ((nowNs() - t0) / 1e9);
}

// ---- drivers ----

/**
 * Calls `put(i)` for i = 0, 1, … keeping exactly `inflight` promises outstanding, until `maxPuts` have
 * been issued or `ms` have passed (whichever comes first); returns puts/s over all that completed.
 */
export async function drivePuts(
  put: (i: number) => Promise<unknown>,
  inflight: number,
  limit: { maxPuts?: number; ms?: number },
): Promise<{ puts: number; perSecond: number }> {
  const maxPuts = limit.maxPuts ?? Number.MAX_SAFE_INTEGER;
  const deadline = limit.ms === undefined ? Infinity : nowNs() + limit.ms * 1e6;
  let next = 0;
  const lane = async () => {
    while (next < maxPuts && nowNs() < deadline) await put(next++);
  };
  const t0 = nowNs();
  await Promise.all(Array.from({ length: inflight }, lane));
  return { puts: next, perSecond: next / ((nowNs() - t0) / 1e9) };
}

/** Calls `step(i)` for i = 0, 1, … in chunks of `chunk` until `ms` have passed; returns calls/s. */
export function syncRate(step: (i: number) => void, ms: number, chunk = 1024): number {
  const t0 = nowNs();
  const end = t0 + ms * 1e6;
  let i = 0;
  do {
    for (const stop = i + chunk; i < stop; i++) step(i);
  } while (nowNs() < end);
  return i / ((nowNs() - t0) / 1e9);
}

// ---- statistics over runs ----

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(xs: readonly number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** 1234567 → "1.23M": for min–max ranges, where three digits say enough. */
export function fmtShort(n: number): string {
  const abs = Math.abs(n);
  if (abs < 1e4) return fmt(n, abs < 10 ? 1 : 0);
  const [d, s] = abs >= 1e9 ? [1e9, "G"] : abs >= 1e6 ? [1e6, "M"] : [1e3, "k"];
  return `${(n / d).toLocaleString("en-US", { maximumSignificantDigits: 3 })}${s}`;
}

// ---- footprint ----

/** Bytes allocated on disk under `dir` (st_blocks × 512: preallocated zeros count, holes do not). */
export function diskBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? diskBytes(p) : fs.statSync(p).blocks * 512;
  }
  return total;
}

/** This process's peak resident set size so far, in bytes (getrusage ru_maxrss). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

// ---- flags, versions, machine-readable results ----

export function stringFlag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`--${name} needs a value`);
  return v;
}

const ROOT = path.join(import.meta.dir, "..");

/** The installed version of a package in node_modules, or "not installed". */
export function packageVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "not installed";
  }
}

/** The commit the working tree is at, with "+dirty" when it has changes. */
export function gitDescribe(): string {
  const run = (args: string[]) => Bun.spawnSync(["git", ...args], { cwd: ROOT }).stdout.toString().trim();
  const head = run(["rev-parse", "--short", "HEAD"]) || "unknown";
  return run(["status", "--porcelain"]) === "" ? head : `${head}+dirty`;
}

/**
 * Puts paced at `rate` a second for `seconds` (as many as are due each millisecond, not waiting for
 * their acks), put(i) making the i-th; resolves once every one has settled, with how many there
 * were and how long it took.
 */
export async function pacedPuts(rate: number, seconds: number, put: (i: number) => Promise<unknown>): Promise<{ puts: number; secs: number }> {
  const t0 = performance.now();
  let i = 0;
  const inflight = new Set<Promise<unknown>>();
  while (performance.now() - t0 < seconds * 1000) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (i < due) {
      const p = put(i++);
      inflight.add(p);
      void p.then(() => inflight.delete(p));
    }
    await Bun.sleep(1);
  }
  await Promise.all(inflight);
  return { puts: i, secs: (performance.now() - t0) / 1000 };
}
