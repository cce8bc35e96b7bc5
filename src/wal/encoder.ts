// Record → framed bytes. The caller owns the returned buffer.

import { assert } from "../assert.ts";
import { payloadEncoder } from "./cbor.ts";
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
} from "./format.ts";

/** One operation of an entry: [key, encodedValue] puts, [key] deletes. */
export type Op = [key: string, value: Uint8Array] | [key: string];

export interface SegmentHeader {
  v: number;
  db: string;
  seq: number;
  firstRev: number;
  prevCrc: number;
}

/** Frames `payload` as one record; the checksum covers len, rev, type and payload. */
export function encodeFrame(type: number, rev: number, payload: Uint8Array): Uint8Array {
  assert(Number.isSafeInteger(rev) && rev >= 0 && rev <= REV_MAX, `rev ${rev} in range`);
  assert(payload.length > 0, "payload is never empty");
  const frame = new Uint8Array(frameBytes(payload.length));
  const view = new DataView(frame.buffer);
  view.setUint32(FRAME_LEN_OFFSET, payload.length, true);
  view.setUint32(FRAME_REV_OFFSET, rev % 0x1_0000_0000, true);
  view.setUint16(FRAME_REV_OFFSET + 4, Math.floor(rev / 0x1_0000_0000) & 0xffff, true);
  frame[FRAME_REV_OFFSET + 6] = Math.floor(rev / 0x1_0000_0000_0000) & 0xff;
  frame[FRAME_TYPE_OFFSET] = type;
  frame.set(payload, FRAME_HEADER_BYTES);
  const crc = Bun.hash.crc32(frame.subarray(FRAME_LEN_OFFSET, FRAME_HEADER_BYTES + payload.length));
  view.setUint32(FRAME_CRC_OFFSET, crc, true);
  return frame;
}

export function encodeEntry(rev: number, ops: Op[]): Uint8Array {
  return encodeFrame(TYPE_ENTRY, rev, payloadEncoder.encode(ops));
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

/** The CRC field of a frame that starts at `offset` of `bytes`. */
export function frameCrc(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0, true);
}
