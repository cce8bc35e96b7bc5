// Every on-disk constant, WAL and snapshot (docs/wal-format.md and docs/snapshot-format.md are the spec; this is its only copy in code).

import { assert } from "../assert.ts";
import { HEAD_U32_BYTES, INFO_U32, MAJOR_ARRAY } from "../codec/cbor-head.ts";

/** "HDBWAL\r\n": the first 8 bytes of every segment. */
export const MAGIC = new Uint8Array([0x48, 0x44, 0x42, 0x57, 0x41, 0x4c, 0x0d, 0x0a]);
export const MAGIC_BYTES = 8;
export const FORMAT_VERSION = 1;

/** Frame header: crc u32 | len u32 | rev u56 | type u8, little-endian. */
export const FRAME_CRC_OFFSET = 0;
export const FRAME_LEN_OFFSET = 4;
export const FRAME_REV_OFFSET = 8;
export const FRAME_TYPE_OFFSET = 15;
export const FRAME_HEADER_BYTES = 16;
/** Frames start on this boundary; padding bytes are zero and not checksummed. */
export const FRAME_ALIGN_BYTES = 8;

export const TYPE_HEADER = 1;
export const TYPE_ENTRY = 2;
/** In a segment: a snapshot at the revision in the payload is durable (rev = the entry before it). */
export const TYPE_SNAPSHOT_MARKER = 3;
/** In a snapshot file (docs/snapshot-format.md): header, chunk of entries, footer; rev = the snapshot's. */
export const TYPE_SNAP_HEADER = 4;
export const TYPE_SNAP_CHUNK = 5;
export const TYPE_SNAP_FOOTER = 6;
/** Frame types a reader accepts at all; where each may appear is the caller's check. */
export const TYPE_MAX = 6;

/** The largest revision a frame may carry: JavaScript integers are exact below 2^53. */
export const REV_MAX = Number.MAX_SAFE_INTEGER;

/** The first frame (the header) starts right after the magic. */
export const HEADER_FRAME_OFFSET = MAGIC_BYTES;

export const SEGMENT_NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;
export const SPARE_NAME = "spare.tmp";

/** "HDBSNAP\n": the first 8 bytes of every snapshot file. */
export const SNAP_MAGIC = new Uint8Array([0x48, 0x44, 0x42, 0x53, 0x4e, 0x41, 0x50, 0x0a]);
export const SNAP_NAME_RE = /^([0-9a-f]{16})\.snap$/;
/** A snapshot being written; renamed to its final name only once complete and fdatasynced. */
export const SNAP_TMP_SUFFIX = ".tmp";

/**
 * A record (a snapshot entry, and the unit of the arena) starts with exactly this byte, a CBOR array
 * of 5: the arena finds records by it, so no other head that says 5 is accepted.
 */
export const RECORD_HEAD = MAJOR_ARRAY | 5;
/** A lower bound on a record's size: the array's head and at least a byte for each of its five items. */
export const RECORD_BYTES_MIN = 6;
/** A chunk's entry count is a head with a 4-byte argument, reserved before the count is known. */
export const CHUNK_COUNT_HEAD_BYTES = HEAD_U32_BYTES;

/** Total bytes a frame with a payload of `len` bytes takes, padding included. */
export function frameBytes(len: number): number {
  return (FRAME_HEADER_BYTES + len + FRAME_ALIGN_BYTES - 1) & ~(FRAME_ALIGN_BYTES - 1);
}

export function segmentName(seq: number, firstRev: number): string {
  return `${hex16(seq)}-${hex16(firstRev)}.wal`;
}

export function snapshotName(rev: number): string {
  return `${hex16(rev)}.snap`;
}

export function hex16(n: number): string {
  return n.toString(16).padStart(16, "0");
}

assert(FRAME_HEADER_BYTES === 4 + 4 + 7 + 1, "frame header is crc + len + rev + type");
assert(FRAME_TYPE_OFFSET === FRAME_REV_OFFSET + 7, "type follows the 7-byte revision");
assert(MAGIC.length === MAGIC_BYTES && MAGIC_BYTES % FRAME_ALIGN_BYTES === 0, "magic keeps frames aligned");
assert(SNAP_MAGIC.length === MAGIC_BYTES, "snapshot magic keeps frames aligned");
assert(RECORD_HEAD === 0x85, "a record is a 5-element array (0x85)");
assert((MAJOR_ARRAY | INFO_U32) === 0x9a && CHUNK_COUNT_HEAD_BYTES === 1 + 4, "a chunk count is 0x9a + u32 big-endian");
assert(frameBytes(1) === 24 && frameBytes(8) === 24 && frameBytes(9) === 32, "frameBytes pads to 8");
