// `harmonydb dump`: every record of the log, in order, with where it sits (like etcd-dump-logs).

import { valueDecoder } from "../wal/cbor.ts";
import { scanLog, type LogRecord } from "./scan.ts";
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
  const scan = scanLog(dir, (r) => {
    if (r.rev < fromRev) return;
    if (opts.json) write(JSON.stringify(jsonRecord(r)));
    else for (const line of textLines(r)) write(line);
  });
  return verdictOf(scan);
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
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}
