// Record → framed bytes. Entry payloads are encoded by hand, straight into the caller's buffer (the
// ring, on the hot path): the grammar is three CBOR types, and cbor-x's general encoder plus a copy
// per layer cost more than the whole rest of a put.

import { assert } from "../assert.ts";
import { copyBytes } from "../bytes.ts";
import { payloadEncoder } from "../codec/cbor.ts";
import { crc32 } from "../codec/crc.ts";
import { MAJOR_ARRAY, MAJOR_BYTES, MAJOR_TEXT, headBytes, writeHead } from "../codec/cbor-head.ts";
import {
  FORMAT_VERSION,
  FRAME_CRC_OFFSET,
  FRAME_HEADER_BYTES,
  FRAME_LEN_OFFSET,
  FRAME_REV_OFFSET,
  FRAME_TYPE_OFFSET,
  MAGIC,
  MAGIC_BYTES,
  REV_MAX,
  TYPE_ENTRY,
  TYPE_HEADER,
  frameBytes,
} from "./constants.ts";

/**
 * One operation of an entry: [key, value] puts, [key] deletes. `value` is the CBOR encoding of the
 * user's value; whoever builds an Op hands that buffer over and must not change it afterwards.
 */
export type Op = [key: string, value: Uint8Array] | [key: string];

export interface SegmentHeader {
  v: number;
  db: string;
  seq: number;
  firstRev: number;
  prevCrc: number;
}

export const utf8 = new TextEncoder();

/** The UTF-8 of the last string given to utf8ToScratch: read it before the next call (it may be replaced as it grows). */
export let utf8Scratch = new Uint8Array(3 * 4096);

/**
 * Writes `s` as UTF-8 into utf8Scratch; returns its length, which equals s.length exactly when `s`
 * is ASCII. A lone surrogate becomes U+FFFD, as everywhere TextEncoder is used.
 */
export function utf8ToScratch(s: string): number {
  const n = s.length;
  if (3 * n > utf8Scratch.length) utf8Scratch = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return utf8.encodeInto(s, utf8Scratch).written;
    utf8Scratch[i] = c;
  }
  return n;
}

/** UTF-8 length of a key: its length when it is ASCII (the common case), else counted. */
export function utf8Bytes(s: string): number {
  const n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return Buffer.byteLength(s, "utf8");
  }
  return n;
}

/** Payload size of an entry: the CBOR array of ops. `keyBytes[i]` is utf8Bytes(ops[i][0]). */
export function entryPayloadBytes(ops: Op[], keyBytes: number[]): number {
  let n = headBytes(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const k = keyBytes[i]!;
    n += op.length === 2 ? putOpBytes(k, op[1].length) : 1 + headBytes(k) + k;
  }
  return n;
}

/** Writes the entry payload at `pos` of `buf`; returns the end. The caller sized it with entryPayloadBytes. */
export function writeEntryPayload(buf: Uint8Array, pos: number, ops: Op[], keyBytes: number[]): number {
  pos = writeHead(buf, pos, MAJOR_ARRAY, ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.length === 2) {
      pos = writePutOp(buf, pos, op[0], keyBytes[i]!, op[1], op[1].length);
    } else {
      buf[pos++] = MAJOR_ARRAY | 1;
      pos = writeText(buf, pos, op[0], keyBytes[i]!);
    }
  }
  return pos;
}

/** Size of one put op, [key, value]: a key of `keyBytes` UTF-8 bytes, a value of `valueBytes`. */
export function putOpBytes(keyBytes: number, valueBytes: number): number {
  return 1 + headBytes(keyBytes) + keyBytes + headBytes(valueBytes) + valueBytes;
}

/** Payload size of an entry of one put (the commonest write), as writePutPayload writes it. */
export function putPayloadBytes(keyBytes: number, valueBytes: number): number {
  return 1 + putOpBytes(keyBytes, valueBytes);
}

/**
 * Writes the payload of an entry of one put, value bytes [0, valueBytes) of `value`, at `pos` of
 * `buf`; returns the end. The value comes last: it is the payload's final `valueBytes` bytes.
 */
export function writePutPayload(buf: Uint8Array, pos: number, key: string, keyBytes: number, value: Uint8Array, valueBytes: number): number {
  buf[pos++] = MAJOR_ARRAY | 1;
  return writePutOp(buf, pos, key, keyBytes, value, valueBytes);
}

function writePutOp(buf: Uint8Array, pos: number, key: string, keyBytes: number, value: Uint8Array, valueBytes: number): number {
  buf[pos++] = MAJOR_ARRAY | 2;
  pos = writeText(buf, pos, key, keyBytes);
  pos = writeHead(buf, pos, MAJOR_BYTES, valueBytes);
  return copyBytes(buf, pos, value, 0, valueBytes); // not `set`: see src/bytes.ts
}

export function writeText(buf: Uint8Array, pos: number, s: string, bytes: number): number {
  pos = writeHead(buf, pos, MAJOR_TEXT, bytes);
  if (bytes === s.length) {
    for (let i = 0; i < s.length; i++) buf[pos + i] = s.charCodeAt(i);
  } else {
    const r = utf8.encodeInto(s, buf.subarray(pos, pos + bytes));
    assert(r.written === bytes, "key encoded to its measured UTF-8 length");
  }
  return pos + bytes;
}

/**
 * Fills in the frame header in front of a payload already at `at + 16` of `buf`: len, rev, type,
 * then the CRC over them and the payload. Zeroes the padding. Returns the frame's total size.
 */
export function sealFrame(buf: Uint8Array, view: DataView, at: number, type: number, rev: number, len: number): number {
  // (The message only on failure: a template string here would be built for every frame.)
  if (!(Number.isSafeInteger(rev) && rev >= 0 && rev <= REV_MAX)) assert(false, `rev ${rev} in range`);
  assert(len > 0, "payload is never empty");
  view.setUint32(at + FRAME_LEN_OFFSET, len, true);
  view.setUint32(at + FRAME_REV_OFFSET, rev % 0x1_0000_0000, true);
  view.setUint16(at + FRAME_REV_OFFSET + 4, Math.floor(rev / 0x1_0000_0000) & 0xffff, true);
  buf[at + FRAME_REV_OFFSET + 6] = Math.floor(rev / 0x1_0000_0000_0000) & 0xff;
  buf[at + FRAME_TYPE_OFFSET] = type;
  const size = frameBytes(len);
  buf.fill(0, at + FRAME_HEADER_BYTES + len, at + size);
  view.setUint32(at + FRAME_CRC_OFFSET, crc32(buf, at + FRAME_LEN_OFFSET, at + FRAME_HEADER_BYTES + len), true);
  return size;
}

/** Frames `payload` as one record in a buffer of its own. */
export function encodeFrame(type: number, rev: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(frameBytes(payload.length));
  frame.set(payload, FRAME_HEADER_BYTES);
  sealFrame(frame, new DataView(frame.buffer), 0, type, rev, payload.length);
  return frame;
}

/** An entry in a buffer of its own (tests, tools, the golden file); the hot path writes into the ring. */
export function encodeEntry(rev: number, ops: Op[]): Uint8Array {
  const keyBytes = ops.map((op) => utf8Bytes(op[0]));
  const len = entryPayloadBytes(ops, keyBytes);
  const frame = new Uint8Array(frameBytes(len));
  const end = writeEntryPayload(frame, FRAME_HEADER_BYTES, ops, keyBytes);
  assert(end === FRAME_HEADER_BYTES + len, "payload size as measured");
  sealFrame(frame, new DataView(frame.buffer), 0, TYPE_ENTRY, rev, len);
  return frame;
}

/** Magic + header frame: the first bytes of every segment. */
export function encodeSegmentStart(header: SegmentHeader): Uint8Array {
  assert(header.v === FORMAT_VERSION, "writes only the current version");
  const frame = encodeFrame(TYPE_HEADER, header.firstRev - 1, payloadEncoder.encode(header));
  const out = new Uint8Array(MAGIC_BYTES + frame.length);
  out.set(MAGIC, 0);
  out.set(frame, MAGIC_BYTES);
  return out;
}
