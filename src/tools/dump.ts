// `harmonydb dump`: every record of the log, in order, with where it sits (like etcd-dump-logs).

import { bufferOf } from "../bytes.ts";
import * as path from "node:path";
import { CorruptionError, InvalidArgumentError } from "../errors.ts";
import { listSnapshots, type SnapshotHeader } from "../snapshot/file.ts";
import { valueDecoder } from "../codec/cbor.ts";
import { snapshotName } from "../format/constants.ts";
import { nodeIO } from "../io/file-io.ts";
import { scanLog, scanSnapshot, snapDirOf, walDirOf, type LogRecord, type MarkerRecord, type Problem, type ScanResult, type SnapshotEntryRecord } from "./scan.ts";
import { verdictOf, type VerifyResult } from "./verify.ts";

export interface DumpOptions {
  /** Records below this revision are checked but not printed. */
  fromRev?: number;
  /** One JSON object per record and line instead of the text form. */
  json?: boolean;
}

/** Text summaries of values are cut to this many characters. */
export const valueSummaryCharsMax = 80;

/**
 * Writes the records of `dir` to `write`, one call per line, until the end of the log or the first
 * problem; returns what verify would say, so the caller can report the problem after the records.
 */
export function dump(dir: string, opts: DumpOptions, write: (line: string) => void): VerifyResult {
  const fromRev = opts.fromRev ?? 0;
  const scan = scanLog(dir, {
    record(r) {
      if (r.rev < fromRev) return;
      if (opts.json) write(JSON.stringify(jsonRecord(r)));
      else for (const line of textLines(r)) write(line);
    },
    marker(m) {
      if (m.rev >= fromRev) write(opts.json ? JSON.stringify(jsonMarker(m)) : markerLine(m));
    },
  });
  return verdictOf(scan);
}

/**
 * Revisions from `fromRev` that the log no longer lists because the snapshot it starts from holds
 * them (its segments were deleted, or their entries are skipped on replay); null when none are.
 */
export function compactedNote(scan: ScanResult, fromRev: number, dir: string): string | null {
  const s = scan.snapshot;
  if (!s || fromRev > s.rev) return null;
  return (
    `harmonydb: revisions ${Math.max(fromRev, 1)}..${s.rev} are compacted into snapshot ${s.file}: ` +
    `the log is listed from rev ${s.rev + 1}; \`harmonydb dump ${dir} --snapshot\` lists its keys`
  );
}

/** `marker rev=… seg=… off=… snapshot=<file> bytes=…`: a snapshot became durable at this point of the log. */
export function markerLine(m: MarkerRecord): string {
  const snap = m.snapshotRev === null ? "(undecodable payload)" : snapshotName(m.snapshotRev);
  return `marker rev=${m.rev} seg=${m.segment} off=${m.offset} snapshot=${snap} bytes=${m.snapshotBytes ?? "?"}`;
}

export interface JsonMarker {
  rev: number;
  segment: string;
  offset: number;
  marker: { snapshotRev: number | null; bytes: number | null };
}

export function jsonMarker(m: MarkerRecord): JsonMarker {
  return { rev: m.rev, segment: m.segment, offset: m.offset, marker: { snapshotRev: m.snapshotRev, bytes: m.snapshotBytes } };
}

/** `rev=… seg=… off=… ops=…`, then one indented line per operation. */
export function textLines(r: LogRecord): string[] {
  const lines = [`rev=${r.rev} seg=${r.segment} off=${r.offset} ops=${r.ops.length}`];
  for (const op of r.ops) {
    const key = JSON.stringify(op[0]); // quoted: keys may hold spaces or newlines
    lines.push(op.length === 1 ? `  delete ${key}` : `  put ${key} ${summarize(op[1])}`);
  }
  return lines;
}

export interface JsonRecord {
  rev: number;
  segment: string;
  offset: number;
  ops: ({ op: "put"; key: string; value: unknown } | { op: "delete"; key: string })[];
}

export function jsonRecord(r: LogRecord): JsonRecord {
  return {
    rev: r.rev,
    segment: r.segment,
    offset: r.offset,
    ops: r.ops.map((op) => (op.length === 1 ? { op: "delete", key: op[0] } : { op: "put", key: op[0], value: decodeValue(op[1]) })),
  };
}

/** The user's value, decoded as get() would, then made JSON-safe; an undecodable one says so. */
function decodeValue(bytes: Uint8Array): unknown {
  try {
    return toJsonValue(valueDecoder.decode(bytes));
  } catch (err) {
    return { $undecodable: (err as Error).message, $bytes: base64(bytes) };
  }
}

function summarize(bytes: Uint8Array): string {
  const text = JSON.stringify(decodeValue(bytes)) ?? "null";
  if (text.length <= valueSummaryCharsMax) return text;
  return `${text.slice(0, valueSummaryCharsMax - 1)}… (${bytes.length} bytes)`;
}

/**
 * A decoded value in a form JSON keeps: what JSON cannot say becomes a one-key object named with a
 * `$` (bytes as base64, bigints as decimal text, Map and Set as arrays, undefined and non-finite
 * numbers tagged). Dates stay ISO strings, other typed arrays plain number arrays.
 */
export function toJsonValue(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $bytes: base64(v) };
  if (typeof v === "bigint") return { $bigint: v.toString() };
  if (v === undefined) return { $undefined: true };
  if (typeof v === "number" && !Number.isFinite(v)) return { $number: String(v) };
  if (v === null || typeof v !== "object") return v;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? { $date: "Invalid Date" } : v.toISOString();
  if (v instanceof Map) return { $map: [...v].map(([k, x]) => [toJsonValue(k), toJsonValue(x)]) };
  if (v instanceof Set) return { $set: [...v].map(toJsonValue) };
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, toJsonValue);
  if (Array.isArray(v)) return v.map(toJsonValue);
  const out: Record<string, unknown> = Object.create(null); // a "__proto__" key stays a key
  for (const [k, x] of Object.entries(v)) out[k] = toJsonValue(x);
  return out;
}

function base64(b: Uint8Array): string {
  return bufferOf(b).toString("base64");
}

// ---- dump --snapshot ----

export interface SnapshotDumpOptions {
  /** A file name in `<dir>/snap`, or a path; default: the newest snapshot. */
  file?: string;
  json?: boolean;
}

export type SnapshotDumpResult =
  | { kind: "clean"; file: string; header: SnapshotHeader }
  | { kind: "corrupt"; file: string; problem: Problem };

/**
 * Writes the keys of one snapshot, in key order, up to the end or the first problem (reported in
 * the result, as dump reports the log's). Text form: a header line, then one line per key.
 */
export function dumpSnapshot(dir: string, opts: SnapshotDumpOptions, write: (line: string) => void): SnapshotDumpResult {
  const file = snapshotFile(dir, opts.file);
  try {
    const { header } = scanSnapshot(file, {
      header: (h) => void (opts.json || write(`snapshot=${path.basename(file)} rev=${h.rev} keys=${h.keys} db=${h.db}`)),
      entry: (e) => write(opts.json ? JSON.stringify(jsonEntry(e)) : entryLine(e)),
    });
    return { kind: "clean", file, header };
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    return { kind: "corrupt", file, problem: { message: err.message, file: err.file, offset: err.offset, rev: err.rev, kind: "snapshot" } };
  }
}

function snapshotFile(dir: string, given: string | undefined): string {
  walDirOf(dir); // the same "not a data directory" error as the other commands
  const snapDir = snapDirOf(dir);
  if (given !== undefined) return given.includes(path.sep) ? given : path.join(snapDir, given);
  const newest = listSnapshots(nodeIO, snapDir, false)[0];
  if (!newest) throw new InvalidArgumentError(`no snapshot in ${snapDir}`);
  return path.join(snapDir, newest.name);
}

/** `"<key>" rev=… createRev=… version=… <value, as JSON, cut to 80 characters>` */
export function entryLine(e: SnapshotEntryRecord): string {
  return `${JSON.stringify(e.key)} rev=${e.rev} createRev=${e.createRev} version=${e.version} ${summarize(e.value)}`;
}

export interface JsonEntry {
  key: string;
  rev: number;
  createRev: number;
  version: number;
  value: unknown;
}

export function jsonEntry(e: SnapshotEntryRecord): JsonEntry {
  return { key: e.key, rev: e.rev, createRev: e.createRev, version: e.version, value: decodeValue(e.value) };
}

/** What the CLI prints (to stderr) when a snapshot dump stopped at damage. */
export function formatSnapshotProblem(r: Extract<SnapshotDumpResult, { kind: "corrupt" }>): string[] {
  return [
    `corrupt: ${r.problem.message}`,
    `  file:          ${r.problem.file}`,
    `  offset:        ${r.problem.offset}`,
    `  open() skips a damaged snapshot for an older one, or refuses when the log no longer covers it`,
  ];
}
