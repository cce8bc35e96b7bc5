// The SharedArrayBuffer ring between the main thread (producer) and the writer worker (consumer).
//
// Protocol. Positions are free-running int32 byte counters (they wrap from 2^31−1 to −2^31; compare
// with `diff`, step with `advance`). They start 64 KiB before that wrap, so every database crosses it
// early and every test exercises it.
// The main thread copies whole frames to data[head & mask] and then stores HEAD; the worker owns
// [ACKED, HEAD), writes it to the WAL, and stores ACKED once those bytes are acknowledged (after the
// fdatasync with sync "always"). Only then may the main thread reuse the space and resolve the writes.
// The plain writes to `data` before an Atomics.store are visible after the Atomics.load that reads it.

import { assert } from "../assert.ts";
import { copyBytes } from "../bytes.ts";
import { sealFrame, writeEntryPayload, writePutPayload, type Op } from "../format/encoder.ts";
import { FRAME_HEADER_BYTES, FRAME_TYPE_OFFSET, TYPE_ENTRY } from "../format/constants.ts";
import { readSharedText, writeSharedText } from "../io/shared-text.ts";

/** Int32 slots at the start of the buffer. */
export const HEAD = 0; // written by main: bytes published
export const ACKED = 1; // written by worker: bytes acknowledged; main waits on it
export const STATE = 2; // written by main: RUNNING or CLOSING
export const FAILED = 3; // written by worker: 0, or an ErrorKind once the WAL is poisoned
export const SLEEPING = 4; // written by worker: 1 while it is parked in Atomics.wait on HEAD
export const CAPACITY = 5; // set once: ring capacity in bytes (a power of two)
export const EVENTS = 6; // written by worker: bumped after every ACKED store and on failure; main waits on it
export const CTL_SLOTS = 8;

export const RUNNING = 0;
export const CLOSING = 1;

export const FAIL_NONE = 0;
export const FAIL_IO = 1;
export const FAIL_NO_SPACE = 2;

/** Float64 counters written by the worker, read by stats(). */
export const STAT_FSYNCS = 0;
export const STAT_RECORDS = 1;
export const STAT_WRITES = 2;
export const STAT_BYTES = 3;
export const STAT_FSYNC_NS_TOTAL = 4;
export const STAT_FSYNC_NS_MAX = 5;
export const STAT_SEGMENT_SEQ = 6;
export const STAT_LAST_REV = 7;
export const STAT_SYNCED_REV = 8;
export const STAT_PREPARE_FSYNCS = 9; // fdatasyncs of zero-filled space, not of records
export const STAT_BATCHES = 10; // group commits
/** Snapshots, written by the worker before it acknowledges a snapshot's footer frame. */
export const STAT_SNAP_REV = 11; // revision of the newest durable snapshot (0: none)
export const STAT_SNAP_BYTES = 12; // its size in bytes
export const STAT_SNAP_FAILED_REV = 13; // revision of the last snapshot that failed (−1: none); message in snapError
export const STAT_SNAP_FAIL_KIND = 14; // FAIL_IO or FAIL_NO_SPACE for that failure
export const STAT_SNAP_SEGMENTS_DELETED = 15; // WAL segments removed because a snapshot covers them
/** Histograms: per-bucket counts (not cumulative); bucket i counts values ≤ the i-th bound. */
export const STAT_FSYNC_HIST = 16;
export const STAT_BATCH_HIST = 32;
export const HIST_BUCKETS = 16;
/**
 * The archiver's (docs/archive-format.md), written by it, read by the writer and the main thread.
 * ARCHIVE_REV: every revision up to it is in the archive; −1 while the store is not archived (the
 * writer then deletes segments as soon as a snapshot covers them).
 */
export const STAT_ARCHIVE_REV = 48;
/** Date.now() when the oldest durable revision not yet archived was first seen (0: none waiting). */
export const STAT_ARCHIVE_WAITING_SINCE = 49;
export const STAT_ARCHIVE_OBJECTS = 50; // objects uploaded (log and snapshots)
export const STAT_ARCHIVE_BYTES = 51; // their bytes
export const STAT_ARCHIVE_CALLS = 52; // S3 requests made, failed ones included
export const STAT_ARCHIVE_ERRORS = 53; // S3 requests that failed; the last one's message in archiveError
export const STAT_ARCHIVE_SNAP_REV = 54; // the newest snapshot in the archive (0: none)
export const STAT_ARCHIVE_CPU_US = 55; // CPU time of the archiver's thread
export const STAT_ARCHIVE_DELETED = 56; // objects deleted by retention
export const STAT_ARCHIVE_LISTS = 57; // LIST requests (retention's one per run; none otherwise)
/** 1 once the archiver has given up (another database's prefix, or its thread died): why in archiveError. */
export const STAT_ARCHIVE_STOPPED = 58;
export const STAT_SLOTS = 59;
/** fdatasync latency buckets, µs: 64, 128, … 2^20 (~1 s), then +Inf. */
export const FSYNC_US_BOUNDS: readonly number[] = [...Array.from({ length: HIST_BUCKETS - 1 }, (_, i) => 64 * 2 ** i), Infinity];
/** Records per group commit buckets: 1, 2, 4, … 2^14, then +Inf. */
export const BATCH_RECORDS_BOUNDS: readonly number[] = [...Array.from({ length: HIST_BUCKETS - 1 }, (_, i) => 2 ** i), Infinity];

/** Counts `value` into the histogram whose buckets start at slot `base`. */
export function observe(stats: Float64Array, base: number, bounds: readonly number[], value: number): void {
  let i = 0;
  while (value > bounds[i]!) i++;
  stats[base + i]! += 1;
}

const CTL_BYTES = CTL_SLOTS * 4;
const STATS_OFFSET = CTL_BYTES;
const ERROR_OFFSET = STATS_OFFSET + STAT_SLOTS * 8;
/** The worker's error message, UTF-8, NUL-padded. */
export const ERROR_BYTES = 1024;
const SNAP_ERROR_OFFSET = ERROR_OFFSET + ERROR_BYTES;
const ARCHIVE_ERROR_OFFSET = SNAP_ERROR_OFFSET + ERROR_BYTES;
const DATA_OFFSET = ARCHIVE_ERROR_OFFSET + ERROR_BYTES;

export interface RingViews {
  sab: SharedArrayBuffer;
  ctl: Int32Array;
  stats: Float64Array;
  error: Uint8Array;
  /** Why the last snapshot failed (the WAL goes on; see STAT_SNAP_FAILED_REV). */
  snapError: Uint8Array;
  /** The archiver's last failure (see STAT_ARCHIVE_ERRORS). */
  archiveError: Uint8Array;
  /** capacity + slack bytes: the main thread writes a frame contiguously from any position < capacity. */
  data: Uint8Array;
  view: DataView;
  capacity: number;
  mask: number;
}

/**
 * A ring of `capacityBytes` plus `slackBytes` past its end. The producer writes each frame
 * contiguously (into the slack when it runs past the end) and then mirrors the overflow to the
 * start, so frames can be built in place and the consumer still sees a plain ring.
 */
export function createRing(capacityBytes: number, slackBytes: number): RingViews {
  assert(capacityBytes >= 1024 && (capacityBytes & (capacityBytes - 1)) === 0, "ring capacity is a power of two");
  const sab = new SharedArrayBuffer(DATA_OFFSET + capacityBytes + slackBytes);
  const ctl = new Int32Array(sab, 0, CTL_SLOTS);
  ctl[CAPACITY] = capacityBytes;
  ctl[HEAD] = ctl[ACKED] = START_POS;
  const views = ringViews(sab);
  views.stats[STAT_SNAP_FAILED_REV] = -1;
  views.stats[STAT_ARCHIVE_REV] = -1;
  return views;
}

export function ringViews(sab: SharedArrayBuffer): RingViews {
  const ctl = new Int32Array(sab, 0, CTL_SLOTS);
  const capacity = ctl[CAPACITY]!;
  const data = new Uint8Array(sab, DATA_OFFSET);
  return {
    sab,
    ctl,
    stats: new Float64Array(sab, STATS_OFFSET, STAT_SLOTS),
    error: new Uint8Array(sab, ERROR_OFFSET, ERROR_BYTES),
    snapError: new Uint8Array(sab, SNAP_ERROR_OFFSET, ERROR_BYTES),
    archiveError: new Uint8Array(sab, ARCHIVE_ERROR_OFFSET, ERROR_BYTES),
    data,
    view: new DataView(sab, DATA_OFFSET),
    capacity,
    mask: capacity - 1,
  };
}

/** Where HEAD and ACKED start: 64 KiB before the int32 wrap. */
export const START_POS = 0x7fff_0000;

/** a − b for the int32 counters, as a signed distance (valid while they are within 2^31 of each other). */
export function diff(a: number, b: number): number {
  return (a - b) | 0;
}

/** The counter `bytes` after `pos`, wrapped as Atomics.load would return it. */
export function advance(pos: number, bytes: number): number {
  return (pos + bytes) | 0;
}

/**
 * Builds the entry frame for `ops` in place at counter `head` and returns the counter after it. The
 * caller has checked there is room (frameBytes(payloadBytes) ≤ capacity − used) and stores HEAD.
 */
export function putEntry(ring: RingViews, head: number, rev: number, ops: Op[], keyBytes: number[], payloadBytes: number): number {
  const at = head & ring.mask;
  writeEntryPayload(ring.data, at + FRAME_HEADER_BYTES, ops, keyBytes);
  return sealEntry(ring, head, rev, payloadBytes);
}

/**
 * Builds the entry frame of one put in place at counter `head`, as putEntry: the value is bytes
 * [0, valueBytes) of `value`, and ends up as the last `valueBytes` bytes of the payload.
 */
export function putPut(ring: RingViews, head: number, rev: number, key: string, keyBytes: number, value: Uint8Array, valueBytes: number, payloadBytes: number): number {
  writePutPayload(ring.data, (head & ring.mask) + FRAME_HEADER_BYTES, key, keyBytes, value, valueBytes);
  return sealEntry(ring, head, rev, payloadBytes);
}

/** Seals the entry whose payload was just written at counter `head`; returns the counter after it. */
function sealEntry(ring: RingViews, head: number, rev: number, payloadBytes: number): number {
  const at = head & ring.mask;
  const size = sealFrame(ring.data, ring.view, at, TYPE_ENTRY, rev, payloadBytes);
  mirrorOverflow(ring, at, size);
  return advance(head, size);
}

/** Frames a ready payload (snapshot frames) in place at counter `head`; as putEntry. */
export function putFrame(ring: RingViews, head: number, type: number, rev: number, payload: Uint8Array): number {
  const at = head & ring.mask;
  copyBytes(ring.data, at + FRAME_HEADER_BYTES, payload, 0, payload.length);
  const size = sealFrame(ring.data, ring.view, at, type, rev, payload.length);
  mirrorOverflow(ring, at, size);
  return advance(head, size);
}

/** The type byte of the frame at counter `pos`. */
export function typeAt(ring: RingViews, pos: number): number {
  return ring.data[((pos & ring.mask) + FRAME_TYPE_OFFSET) & ring.mask]!;
}

/** The revision of the frame at counter `pos`. */
export function revAt(ring: RingViews, pos: number): number {
  const lo = readU32(ring, pos + 8);
  const hi = readU32(ring, pos + 12) & 0xffffff;
  return lo + hi * 0x1_0000_0000;
}

/** After a frame was written contiguously at `at`, copies what ran into the slack to the start. */
export function mirrorOverflow(ring: RingViews, at: number, size: number): void {
  if (at + size > ring.capacity) ring.data.copyWithin(0, ring.capacity, at + size);
}

/** Reads the u32 at counter `pos`; `pos` is 4-aligned so the word never wraps. */
export function readU32(ring: RingViews, pos: number): number {
  const at = pos & ring.mask;
  const d = ring.data;
  return (d[at]! | (d[at + 1]! << 8) | (d[at + 2]! << 16) | (d[at + 3]! << 24)) >>> 0;
}

/** Puts the worker's error message in `area` (ERROR_BYTES of it at most). */
/** Wakes the main thread's waiter on EVENTS (WritePipeline.run): an ack, a failure, the archive's progress. */
export function signalEvents(ring: RingViews): void {
  Atomics.add(ring.ctl, EVENTS, 1);
  Atomics.notify(ring.ctl, EVENTS);
}

export function writeError(ring: RingViews, message: string, area: Uint8Array = ring.error): void {
  writeSharedText(area, message);
}

export function readError(ring: RingViews, area: Uint8Array = ring.error): string {
  return readSharedText(area);
}
