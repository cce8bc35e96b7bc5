// The CBOR head (RFC 8949 §3): a major type and its argument, written and read by hand where cbor-x
// would cost more than the rest of the work (a put's payload, a get's record, a snapshot's chunks).

import { assert } from "../assert.ts";

/** Major types, already shifted into the top three bits of a head's first byte. */
export const MAJOR_UINT = 0 << 5;
export const MAJOR_BYTES = 2 << 5;
export const MAJOR_TEXT = 3 << 5;
export const MAJOR_ARRAY = 4 << 5;
export const MAJOR_TAG = 6 << 5;
export const MAJOR_SIMPLE = 7 << 5;

/** The simple values a head alone holds. */
export const SIMPLE_FALSE = MAJOR_SIMPLE | 20;
export const SIMPLE_TRUE = MAJOR_SIMPLE | 21;
export const SIMPLE_NULL = MAJOR_SIMPLE | 22;

/** Additional info 24-27: the argument follows in 1, 2, 4 or 8 big-endian bytes. */
export const INFO_U8 = 24;
export const INFO_U16 = 25;
export const INFO_U32 = 26;
export const INFO_U64 = 27;

/** Bytes of a head whose argument is written in 4 bytes, whatever its value: room to patch it later. */
export const HEAD_U32_BYTES = 5;
/** Bytes of a head whose argument is written in 8 bytes. */
export const HEAD_U64_BYTES = 9;

/** RFC 8746 tag 64 (uint8 typed array): cbor-x writes it before a Uint8Array's byte string. */
export const TAG_UINT8ARRAY = 64;
/** The first byte of that tag's head (1-byte argument): 0xd8, then 0x40. */
export const TAG_UINT8ARRAY_HEAD = MAJOR_TAG | INFO_U8;

/** The major type of a head's first byte, shifted as the MAJOR_* constants are. */
export function majorOf(first: number): number {
  return first & 0xe0;
}

/** Bytes of the argument after a head's first byte: 0 for info < 24, then 1, 2, 4, 8 for 24-27. */
export function headArgBytes(first: number): number {
  const info = first & 31;
  return info < INFO_U8 ? 0 : 1 << (info - INFO_U8);
}

/** Bytes of the shortest CBOR head (major type + argument) for `n`. */
export function headBytes(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x1_0000_0000 ? 5 : 9;
}

/** Writes the shortest head for `n` at `pos` of `buf`; returns the end. `major` is a MAJOR_* constant. */
export function writeHead(buf: Uint8Array, pos: number, major: number, n: number): number {
  if (n < 24) {
    buf[pos] = major | n;
    return pos + 1;
  }
  if (n < 0x100) {
    buf[pos] = major | INFO_U8;
    buf[pos + 1] = n;
    return pos + 2;
  }
  if (n < 0x10000) {
    buf[pos] = major | INFO_U16;
    buf[pos + 1] = n >>> 8;
    buf[pos + 2] = n & 0xff;
    return pos + 3;
  }
  if (n >= 0x1_0000_0000) return writeHeadU64(buf, pos, major, n);
  return writeHeadU32(buf, pos, major, n);
}

/** Writes a head with a 4-byte argument (n < 2^32), even when a shorter one would do. */
export function writeHeadU32(buf: Uint8Array, pos: number, major: number, n: number): number {
  buf[pos] = major | INFO_U32;
  buf[pos + 1] = n >>> 24;
  buf[pos + 2] = (n >>> 16) & 0xff;
  buf[pos + 3] = (n >>> 8) & 0xff;
  buf[pos + 4] = n & 0xff;
  return pos + HEAD_U32_BYTES;
}

/** Writes a head with an 8-byte argument (a safe integer), even when a shorter one would do. */
export function writeHeadU64(buf: Uint8Array, pos: number, major: number, n: number): number {
  assert(Number.isSafeInteger(n) && n >= 0, "CBOR arguments are safe integers");
  buf[pos] = major | INFO_U64;
  const hi = Math.floor(n / 0x1_0000_0000);
  for (let i = 0; i < 4; i++) buf[pos + 1 + i] = (hi >>> (24 - 8 * i)) & 0xff;
  const lo = n >>> 0;
  for (let i = 0; i < 4; i++) buf[pos + 5 + i] = (lo >>> (24 - 8 * i)) & 0xff;
  return pos + HEAD_U64_BYTES;
}

/** A read position in bytes [pos, end) of a buffer; readHead and skip advance it. */
export interface Cursor {
  pos: number;
  end: number;
}

/**
 * Reads a head of major type `major` (a MAJOR_* constant) with a definite length (or, for
 * MAJOR_UINT, an unsigned integer) at `cur`; returns its argument. Throws on anything else, or on a
 * head that runs past `cur.end`. 8-byte arguments are accepted up to 2^53 − 1.
 */
export function readHead(b: Uint8Array, cur: Cursor, major: number): number {
  const first = cur.pos < cur.end ? b[cur.pos++] : undefined;
  if (first === undefined || majorOf(first) !== major) throw new Error(`expected CBOR major type ${major >> 5} at ${cur.pos - 1}`);
  const info = first & 31;
  if (info < 24) return info;
  const bytes = info <= INFO_U64 ? headArgBytes(first) : 0;
  if (bytes === 0 || cur.pos + bytes > cur.end) throw new Error(`unsupported CBOR length at ${cur.pos - 1}`);
  let n = 0;
  for (let i = 0; i < bytes; i++) n = n * 256 + b[cur.pos++]!;
  if (n > Number.MAX_SAFE_INTEGER) throw new Error(`CBOR integer above 2^53 at ${cur.pos - 1 - bytes}`);
  return n;
}

/** Steps over `n` bytes; returns where they start. */
export function skip(cur: Cursor, n: number): number {
  if (cur.pos + n > cur.end) throw new Error("string runs past the end of the entry");
  const at = cur.pos;
  cur.pos += n;
  return at;
}

/**
 * The argument a definite head at `at` declares, not checked against anything; −1 for an
 * indefinite or reserved one (info 28-31).
 */
export function headArgument(b: Uint8Array, at: number): number {
  const first = b[at]!;
  const info = first & 31;
  if (info < 24) return info;
  if (info > INFO_U64) return -1;
  let n = 0;
  for (let i = 1; i <= headArgBytes(first); i++) n = n * 256 + b[at + i]!;
  return n;
}

/**
 * The cursor of readTrustedHead: one for the module, so reading a record (on every get) makes no
 * object. Callers set `trusted.pos`, read heads, and read `trusted.pos` back before anyone else does.
 */
export const trusted = { pos: 0 };

/**
 * Reads the head at `trusted.pos` of `b` and advances past it; returns its argument. For bytes
 * this process wrote or already validated (arena records): the major type is not checked, and a
 * head must be definite.
 */
export function readTrustedHead(b: Uint8Array): number {
  let pos = trusted.pos;
  const first = b[pos++]!;
  const info = first & 31;
  let n: number;
  if (info < 24) n = info;
  else if (info === INFO_U8) n = b[pos++]!;
  else if (info === INFO_U16) {
    n = (b[pos]! << 8) | b[pos + 1]!;
    pos += 2;
  } else if (info === INFO_U32) {
    n = ((b[pos]! << 24) >>> 0) + ((b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!);
    pos += 4;
  } else {
    assert(info === INFO_U64, "trusted heads are definite");
    n = 0;
    for (let i = 0; i < 8; i++) n = n * 256 + b[pos++]!;
  }
  trusted.pos = pos;
  return n;
}

assert(HEAD_U32_BYTES === 1 + 4 && HEAD_U64_BYTES === 1 + 8, "a head is its first byte and the argument");
assert(TAG_UINT8ARRAY_HEAD === 0xd8 && MAJOR_ARRAY === 0x80, "major types sit in the top three bits");
assert(SIMPLE_FALSE === 0xf4 && SIMPLE_TRUE === 0xf5 && SIMPLE_NULL === 0xf6, "false, true, null are simple values 20-22");
