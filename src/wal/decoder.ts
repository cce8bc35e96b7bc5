// Bytes → records + a verdict for each position. Pure: never throws on bad bytes, never allocates
// more than the input already holds.

import { payloadDecoder } from "./cbor.ts";
import type { Op, SegmentHeader } from "./encoder.ts";
import {
  FRAME_ALIGN_BYTES,
  FRAME_HEADER_BYTES,
  FRAME_LEN_OFFSET,
  FRAME_REV_OFFSET,
  FRAME_TYPE_OFFSET,
  TYPE_ENTRY,
  TYPE_HEADER,
  frameBytes,
} from "./format.ts";

export type FrameVerdict =
  | { kind: "frame"; type: number; rev: number; crc: number; payload: Uint8Array; next: number }
  | { kind: "end" } // crc = len = 0: zeros, the end of what was written
  | { kind: "incomplete"; reason: string }
  | { kind: "bad"; reason: string };

/** Reads the frame at `offset`. `bytes` is the whole segment; `offset` is 8-byte aligned. */
export function readFrame(bytes: Uint8Array, offset: number): FrameVerdict {
  if (offset + FRAME_HEADER_BYTES > bytes.length) {
    return allZero(bytes, offset, bytes.length) ? { kind: "end" } : { kind: "incomplete", reason: "short frame header" };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, FRAME_HEADER_BYTES);
  const crc = view.getUint32(0, true);
  const len = view.getUint32(FRAME_LEN_OFFSET, true);
  if (crc === 0 && len === 0) return { kind: "end" };
  if (len === 0) return { kind: "bad", reason: "zero-length frame" };
  if (offset + FRAME_HEADER_BYTES + len > bytes.length) {
    return { kind: "incomplete", reason: `frame length ${len} runs past the end of the file` };
  }
  const actual = Bun.hash.crc32(bytes.subarray(offset + FRAME_LEN_OFFSET, offset + FRAME_HEADER_BYTES + len));
  if (actual !== crc) return { kind: "bad", reason: "crc mismatch" };
  const type = bytes[offset + FRAME_TYPE_OFFSET]!;
  if (type !== TYPE_HEADER && type !== TYPE_ENTRY) return { kind: "bad", reason: `unknown frame type ${type}` };
  const rev =
    view.getUint32(FRAME_REV_OFFSET, true) +
    view.getUint16(FRAME_REV_OFFSET + 4, true) * 0x1_0000_0000 +
    bytes[offset + FRAME_REV_OFFSET + 6]! * 0x1_0000_0000_0000;
  const payload = bytes.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + len);
  return { kind: "frame", type, rev, crc, payload, next: offset + frameBytes(len) };
}

/** Decodes an entry payload; throws if it is not a well-formed op list (the caller names the place). */
export function decodeOps(payload: Uint8Array): Op[] {
  const ops: unknown = payloadDecoder.decode(payload);
  if (!Array.isArray(ops) || ops.length === 0) throw new Error("entry payload is not a non-empty array");
  for (const op of ops) {
    if (!Array.isArray(op) || typeof op[0] !== "string") throw new Error("malformed op");
    if (op.length === 2 ? !(op[1] instanceof Uint8Array) : op.length !== 1) throw new Error("malformed op");
  }
  return ops as Op[];
}

export function decodeHeader(payload: Uint8Array): SegmentHeader {
  const h: unknown = payloadDecoder.decode(payload);
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
  for (let off = from; off <= end; off += FRAME_ALIGN_BYTES) {
    const type = bytes[off + FRAME_TYPE_OFFSET];
    if (type !== TYPE_ENTRY && type !== TYPE_HEADER) continue;
    const v = readFrame(bytes, off);
    if (v.kind === "frame" && v.rev > afterRev && v.rev <= revMax) return off;
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
