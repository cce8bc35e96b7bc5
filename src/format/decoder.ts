// Bytes → records + a verdict for each position. Pure: never throws on bad bytes, never allocates
// more than the input already holds.

import { bufferOf } from "../bytes.ts";
import { payloadDecoder } from "../codec/cbor.ts";
import { crc32 } from "../codec/crc.ts";
import { MAJOR_ARRAY, MAJOR_BYTES, MAJOR_TEXT, readHead, skip } from "../codec/cbor-head.ts";
import { utf8Scratch, utf8ToScratch, type Op, type SegmentHeader } from "./encoder.ts";
import {
  FRAME_ALIGN_BYTES,
  FRAME_HEADER_BYTES,
  FRAME_LEN_OFFSET,
  FRAME_REV_OFFSET,
  FRAME_TYPE_OFFSET,
  TYPE_ENTRY,
  TYPE_HEADER,
  TYPE_MAX,
  frameBytes,
} from "./constants.ts";

export type FrameVerdict =
  | { kind: "frame"; type: number; rev: number; crc: number; start: number; len: number; next: number }
  | { kind: "end" } // crc = len = 0: zeros, the end of what was written
  | { kind: "incomplete"; reason: string }
  /** `whole`: the checksum holds, so the frame was written whole (it is never a torn tail). */
  | { kind: "bad"; reason: string; whole?: boolean };

/** The revision field of the frame at `offset` (not yet checked). */
/** The revision in the frame header at `offset`. */
export function frameRev(bytes: Uint8Array, view: DataView, offset: number): number {
  return (
    view.getUint32(offset + FRAME_REV_OFFSET, true) +
    view.getUint16(offset + FRAME_REV_OFFSET + 4, true) * 0x1_0000_0000 +
    bytes[offset + FRAME_REV_OFFSET + 6]! * 0x1_0000_0000_0000
  );
}

/** A DataView over the whole of `bytes`, made once per segment and passed to readFrame. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Reads the frame at `offset`. `bytes` is the whole segment; `offset` is 8-byte aligned. */
export function readFrame(bytes: Uint8Array, offset: number, view: DataView = viewOf(bytes)): FrameVerdict {
  if (offset + FRAME_HEADER_BYTES > bytes.length) {
    return allZero(bytes, offset, bytes.length) ? { kind: "end" } : { kind: "incomplete", reason: "short frame header" };
  }
  const crc = view.getUint32(offset, true);
  const len = view.getUint32(offset + FRAME_LEN_OFFSET, true);
  if (crc === 0 && len === 0) return { kind: "end" };
  if (len === 0) return { kind: "bad", reason: "zero-length frame" };
  if (offset + FRAME_HEADER_BYTES + len > bytes.length) {
    return { kind: "incomplete", reason: `frame length ${len} runs past the end of the file` };
  }
  const actual = crc32(bytes, offset + FRAME_LEN_OFFSET, offset + FRAME_HEADER_BYTES + len);
  if (actual !== crc) return { kind: "bad", reason: "crc mismatch" };
  const type = bytes[offset + FRAME_TYPE_OFFSET]!;
  if (type < TYPE_HEADER || type > TYPE_MAX) return { kind: "bad", reason: `unknown frame type ${type}`, whole: true };
  const rev = frameRev(bytes, view, offset);
  // The payload is returned as offsets, not a view: JSC registers every view of an ArrayBuffer with
  // it, and a view per record made replay several times slower (measured with bench/replay.ts).
  return { kind: "frame", type, rev, crc, start: offset + FRAME_HEADER_BYTES, len, next: offset + frameBytes(len) };
}

/** The payload of a frame as a view (headers, tools, tests; replay uses visitOps on offsets). */
export function payloadOf(bytes: Uint8Array, f: { start: number; len: number }): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + f.start, f.len);
}

/**
 * A buffer of encoded records seen two ways over the same memory: `bytes`, a plain Uint8Array (JSC
 * indexes and slices those fastest; a Buffer's slice goes through its species constructor), and
 * `text`, a Buffer for its native latin1/utf8 string decoding. Made once per segment.
 */
export interface Encoded {
  bytes: Uint8Array;
  text: Buffer;
}

export function encoded(bytes: Uint8Array): Encoded {
  const plain = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { bytes: plain, text: bufferOf(plain) };
}

/** What visitOps reports for each operation of an entry, in order. */
export interface OpVisitor {
  /** A put; the value's CBOR encoding is bytes [start, end) of `e` (the caller copies what it keeps). */
  put(key: string, e: Encoded, start: number, end: number): void;
  delete(key: string): void;
}

/**
 * Walks an entry payload, bytes [start, end) of `b`, by hand (the grammar in docs/wal-format.md: an
 * array of [text] or [text, bytes]), without making a view or an array per operation. Throws on
 * anything else; the caller names the place.
 */
export function visitOps(e: Encoded, start: number, end: number, visit: OpVisitor): void {
  const b = e.bytes;
  const cur = { pos: start, end };
  const n = readHead(b, cur, MAJOR_ARRAY);
  if (n === 0) throw new Error("entry has no operations");
  if (n > end - start) throw new Error(`entry claims ${n} operations`);
  for (let i = 0; i < n; i++) {
    const arity = readHead(b, cur, MAJOR_ARRAY);
    if (arity !== 1 && arity !== 2) throw new Error(`operation with ${arity} fields`);
    const keyLen = readHead(b, cur, MAJOR_TEXT);
    const key = decodeKey(e.bytes, e.text, skip(cur, keyLen), cur.pos);
    if (arity === 1) {
      visit.delete(key);
    } else {
      const valueLen = readHead(b, cur, MAJOR_BYTES);
      const valueStart = skip(cur, valueLen);
      visit.put(key, e, valueStart, cur.pos);
    }
  }
  if (cur.pos !== end) throw new Error("trailing bytes after the operations");
}

/** Decodes an entry payload into Ops with copied values (tools and tests; replay uses visitOps). */
export function decodeOps(payload: Uint8Array): Op[] {
  const ops: Op[] = [];
  visitOps(encoded(payload), 0, payload.length, {
    put: (key, e, s, end) => ops.push([key, e.bytes.slice(s, end)]),
    delete: (key) => ops.push([key]),
  });
  return ops;
}

/**
 * The key in bytes [start, end) of `b` (`text`: a Buffer over the same memory). Keys are ASCII
 * almost always: latin1 then is a plain byte-to-char copy, the cheapest decode.
 */
export function decodeKey(b: Uint8Array, text: Buffer, start: number, end: number): string {
  return isAscii(b, start, end) ? text.toString("latin1", start, end) : text.toString("utf8", start, end);
}

export function isAscii(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i]! >= 0x80) return false;
  return true;
}

/**
 * decodeKey for bytes that stay in use as they are (a snapshot's records become arena blocks, looked
 * up by their key's bytes): throws unless they are the key's exact UTF-8 form. Invalid UTF-8 would
 * decode to U+FFFD, a string whose bytes differ from the record's.
 */
export function readExactKey(e: Encoded, start: number, end: number): string {
  const b = e.bytes;
  if (isAscii(b, start, end)) return e.text.toString("latin1", start, end);
  const key = e.text.toString("utf8", start, end);
  const n = end - start;
  let same = utf8ToScratch(key) === n;
  for (let i = 0; same && i < n; i++) same = utf8Scratch[i] === b[start + i];
  if (!same) throw new Error(`key ${JSON.stringify(key)} is not UTF-8`);
  return key;
}

export function decodeHeader(payload: Uint8Array): SegmentHeader {
  // A copy: cbor-x given a view into a whole segment was measured taking ~0.25 s per call.
  const h: unknown = payloadDecoder.decode(payload.slice());
  if (typeof h !== "object" || h === null) throw new Error("header payload is not a map");
  const { v, db, seq, firstRev, prevCrc } = h as Record<string, unknown>;
  if (typeof v !== "number" || typeof db !== "string" || !isUint(seq) || !isUint(firstRev) || !isUint(prevCrc)) {
    throw new Error("header payload is missing fields");
  }
  return { v, db, seq, firstRev, prevCrc };
}

/**
 * The first aligned offset in [from, end) holding a frame with a valid checksum and a revision above
 * `afterRev`, or -1. Tells a torn tail (nothing valid after it) from corruption in the middle
 * (acknowledged data after it). Type and revision are checked before the checksum, so garbage costs
 * a few byte compares per offset, not a CRC over a random length.
 */
export function findValidFrameAfter(bytes: Uint8Array, from: number, afterRev: number): number {
  const end = bytes.length - FRAME_HEADER_BYTES;
  const revMax = afterRev + Math.ceil((bytes.length - from) / FRAME_ALIGN_BYTES);
  const view = viewOf(bytes);
  for (let off = from; off <= end; off += FRAME_ALIGN_BYTES) {
    const type = bytes[off + FRAME_TYPE_OFFSET];
    if (type !== TYPE_ENTRY && type !== TYPE_HEADER) continue;
    // The revision must be plausible before a CRC over a claimed length is worth computing:
    // without this, structured garbage (many fake headers) made the scan quadratic.
    const rev = frameRev(bytes, view, off);
    if (rev <= afterRev || rev > revMax) continue;
    const v = readFrame(bytes, off, view);
    if (v.kind === "frame") return off;
  }
  return -1;
}

const ZEROS = new Uint8Array(64 * 1024);

/** Are bytes [from, to) all zero? memcmp against a zero block: a 64 MiB segment takes a few ms. */
export function allZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i += ZEROS.length) {
    const n = Math.min(ZEROS.length, to - i);
    if (Buffer.compare(bytes.subarray(i, i + n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

function isUint(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}
