// The record: one key's durable state as a CBOR array, the unit of the arena and of snapshot chunks
// (docs/snapshot-format.md): [ key:text, value:bytes, rev:uint, createRev:uint, version:uint ].

import { assert } from "../assert.ts";
import { copyBytes } from "../bytes.ts";
import { headBytes, writeHead, writeText } from "./encoder.ts";

const MAJOR_UINT = 0;
const MAJOR_BYTES = 2 << 5;
const MAJOR_ARRAY = 4 << 5;
export const RECORD_HEAD = MAJOR_ARRAY | 5;

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

let pos = 0;

/** Reads a CBOR head at `pos` (definite length or unsigned integer); advances `pos`. */
function head(b: Uint8Array): number {
  const first = b[pos++]!;
  const info = first & 31;
  if (info < 24) return info;
  if (info === 24) return b[pos++]!;
  if (info === 25) {
    const n = (b[pos]! << 8) | b[pos + 1]!;
    pos += 2;
    return n;
  }
  if (info === 26) {
    const n = ((b[pos]! << 24) >>> 0) + ((b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!);
    pos += 4;
    return n;
  }
  assert(info === 27, "record heads are definite");
  let n = 0;
  for (let i = 0; i < 8; i++) n = n * 256 + b[pos++]!;
  return n;
}

/** Parses the record at `at` of `b` into `s` (all but `s.text`, the caller's); asserts the shape. */
export function parseRecord(b: Uint8Array, at: number, s: Located): Located {
  pos = at;
  assert(b[pos] === RECORD_HEAD, "a record starts with a 5-element array");
  pos++;
  s.b = b;
  s.start = at;
  const keyLen = head(b);
  s.keyStart = pos;
  s.keyEnd = pos += keyLen;
  const valueLen = head(b);
  s.valueStart = pos;
  s.valueEnd = pos += valueLen;
  s.rev = head(b);
  s.countsStart = pos;
  s.createRev = head(b);
  s.version = head(b);
  s.end = pos;
  return s;
}

/** Whether the record at `at` of `b` is for the key whose UTF-8 bytes are `key[0, n)` (only its key is read). */
export function recordKeyAt(b: Uint8Array, at: number, key: Uint8Array, n: number): boolean {
  pos = at + 1; // past RECORD_HEAD
  if (head(b) !== n) return false;
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
const WIDE_UINT_BYTES = 9;

export function writeWideUint(b: Uint8Array, p: number, n: number): number {
  assert(Number.isSafeInteger(n) && n >= 0, "a wide count is a safe integer");
  b[p] = MAJOR_UINT | 27;
  const hi = Math.floor(n / 0x1_0000_0000);
  const lo = n >>> 0;
  for (let i = 0; i < 4; i++) b[p + 1 + i] = (hi >>> (24 - 8 * i)) & 0xff;
  for (let i = 0; i < 4; i++) b[p + 5 + i] = (lo >>> (24 - 8 * i)) & 0xff;
  return p + WIDE_UINT_BYTES;
}

/** Bytes the two counts of a record appended wide take at its end. */
const WIDE_COUNTS_BYTES = 2 * WIDE_UINT_BYTES;

/** Whether the located record's counts are both in the 8-byte form (appended wide, or that large). */
export function wideCounts(r: Located): boolean {
  return r.end - r.countsStart === WIDE_COUNTS_BYTES && r.b[r.countsStart] === (MAJOR_UINT | 27) && r.b[r.countsStart + WIDE_UINT_BYTES] === (MAJOR_UINT | 27);
}

/** Bytes of a record for a key of `keyBytes` UTF-8 bytes and a value of `valueBytes`. */
export function recordBytes(keyBytes: number, valueBytes: number, rev: number, createRev: number, version: number, wide = false): number {
  const counts = wide ? WIDE_COUNTS_BYTES : headBytes(createRev) + headBytes(version);
  return 1 + headBytes(keyBytes) + keyBytes + headBytes(valueBytes) + valueBytes + headBytes(rev) + counts;
}

