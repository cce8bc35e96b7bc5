// The record: one key's durable state as a CBOR array, the unit of the arena and of snapshot chunks
// (docs/snapshot-format.md): [ key:text, value:bytes, rev:uint, createRev:uint, version:uint ].

import { assert } from "../assert.ts";
import { copyBytes } from "../bytes.ts";
import { HEAD_U64_BYTES, INFO_U64, MAJOR_BYTES, MAJOR_UINT, headBytes, readTrustedHead as head, trusted, writeHead, writeHeadU64 } from "../codec/cbor-head.ts";
import { writeText } from "./encoder.ts";
import { RECORD_HEAD } from "./constants.ts";

/** Where the parts of a record are within its buffer `b`; filled in by parseRecord (callers keep one scratch object). */
export interface Located {
  b: Uint8Array;
  text: Buffer;
  /** Offsets within the block `b`. */
  start: number;
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
  rev: number;
  /** Where the createRev and version heads begin. */
  countsStart: number;
  createRev: number;
  version: number;
  end: number;
}

export function emptyLocated(): Located {
  return { b: new Uint8Array(0), text: Buffer.alloc(0), start: 0, keyStart: 0, keyEnd: 0, valueStart: 0, valueEnd: 0, rev: 0, countsStart: 0, createRev: 0, version: 0, end: 0 };
}

/** Parses the record at `at` of `b` into `s` (all but `s.text`, the caller's); asserts the shape. */
export function parseRecord(b: Uint8Array, at: number, s: Located): Located {
  assert(b[at] === RECORD_HEAD, "a record starts with a 5-element array");
  trusted.pos = at + 1;
  s.b = b;
  s.start = at;
  const keyLen = head(b);
  s.keyStart = trusted.pos;
  s.keyEnd = trusted.pos += keyLen;
  const valueLen = head(b);
  s.valueStart = trusted.pos;
  s.valueEnd = trusted.pos += valueLen;
  s.rev = head(b);
  s.countsStart = trusted.pos;
  s.createRev = head(b);
  s.version = head(b);
  s.end = trusted.pos;
  return s;
}

/** Whether the record at `at` of `b` is for the key whose UTF-8 bytes are `key[0, n)` (only its key is read). */
export function recordKeyAt(b: Uint8Array, at: number, key: Uint8Array, n: number): boolean {
  trusted.pos = at + 1; // past RECORD_HEAD
  if (head(b) !== n) return false;
  const pos = trusted.pos;
  for (let i = 0; i < n; i++) if (b[pos + i] !== key[i]) return false;
  return true;
}

/** Writes the record for a put at `p` of `b` (value: bytes [vs, ve) of `src`); returns the end. */
export function writeRecord(
  b: Uint8Array,
  p: number,
  key: string,
  keyBytes: number,
  src: Uint8Array,
  vs: number,
  ve: number,
  rev: number,
  createRev: number,
  version: number,
  wide: boolean,
): number {
  b[p++] = RECORD_HEAD;
  p = writeText(b, p, key, keyBytes);
  p = writeHead(b, p, MAJOR_BYTES, ve - vs);
  p = copyBytes(b, p, src, vs, ve);
  p = writeHead(b, p, MAJOR_UINT, rev);
  if (wide) {
    p = writeWideUint(b, p, createRev);
    return writeWideUint(b, p, version);
  }
  p = writeHead(b, p, MAJOR_UINT, createRev);
  return writeHead(b, p, MAJOR_UINT, version);
}

/** A CBOR unsigned integer with an 8-byte argument, whatever its value: room to patch it later. */
export function writeWideUint(b: Uint8Array, p: number, n: number): number {
  return writeHeadU64(b, p, MAJOR_UINT, n);
}

/** Bytes the two counts of a record appended wide take at its end. */
const WIDE_COUNTS_BYTES = 2 * HEAD_U64_BYTES;

/** Whether the located record's counts are both in the 8-byte form (appended wide, or that large). */
export function wideCounts(r: Located): boolean {
  return r.end - r.countsStart === WIDE_COUNTS_BYTES && r.b[r.countsStart] === (MAJOR_UINT | INFO_U64) && r.b[r.countsStart + HEAD_U64_BYTES] === (MAJOR_UINT | INFO_U64);
}

/** Bytes of a record for a key of `keyBytes` UTF-8 bytes and a value of `valueBytes`. */
export function recordBytes(keyBytes: number, valueBytes: number, rev: number, createRev: number, version: number, wide = false): number {
  const counts = wide ? WIDE_COUNTS_BYTES : headBytes(createRev) + headBytes(version);
  return 1 + headBytes(keyBytes) + keyBytes + headBytes(valueBytes) + valueBytes + headBytes(rev) + counts;
}

