// Reading WAL segments: which to read, a segment's bytes and header, its frames, and where they stop and why.

import { CorruptionError, WalFailedError } from "../errors.ts";
import { allZero, decodeHeader, encoded, findValidFrameAfter, payloadOf, readFrame, viewOf, type Encoded, type FrameVerdict } from "../format/decoder.ts";
import type { SegmentHeader } from "../format/encoder.ts";
import { FORMAT_VERSION, FRAME_ALIGN_BYTES, HEADER_FRAME_OFFSET, MAGIC, MAGIC_BYTES, TYPE_HEADER } from "../format/constants.ts";
import type { FileIO } from "../io/file-io.ts";
import type { SegmentFile } from "./segment.ts";

// Listing stays in segment.ts with naming and creating (the writer lists too); readers take it from here.
export { listSegments, type SegmentFile } from "./segment.ts";

/**
 * The index of the last segment that starts at or before `rev`, or -1: where reading from `rev`
 * starts (the segments before it end before `rev`).
 */
export function lastSegmentStartingBy(segments: readonly SegmentFile[], rev: number): number {
  let last = -1;
  for (let i = 0; i < segments.length; i++) if (segments[i]!.firstRev <= rev) last = i;
  return last;
}

/**
 * A segment's (or snapshot's) bytes: into `into` when it is large enough (a view of it then), or
 * into fresh shared memory with "shared". Throws WalFailedError: what cannot be read is never
 * taken for damage.
 */
export function readSegment(io: FileIO, file: string, into?: Uint8Array | "shared"): Uint8Array {
  try {
    return io.readFile(file, into === "shared" ? new Uint8Array(new SharedArrayBuffer(io.fileSize(file))) : into);
  } catch (cause) {
    throw readFailure(file, cause);
  }
}

/** EIO and friends: refuse to open, and never truncate what could not be read. */
export function readFailure(file: string, cause: unknown): WalFailedError {
  return new WalFailedError(`cannot read ${file}: ${(cause as Error).message}`, { cause });
}

/** A segment's header, checked on its own (its frame's revision: the last one before the segment). */
export interface SegmentStart {
  header: SegmentHeader;
  rev: number;
}

/** Where a segment's frames stopped being read: the clean end (no damage) or the first damage. */
export interface FramesStop {
  offset: number;
  damage: string | null;
  /** The damaged frame's checksum holds: it was written whole, so no crash tore it. */
  complete: boolean;
}

/** What the end of a segment's frames means for the log. */
export type SegmentEnd =
  | { kind: "clean"; offset: number }
  /** Damage in the last segment that no valid frame follows: a crash tore the tail there. */
  | { kind: "torn"; offset: number; reason: string }
  | { kind: "corrupt"; offset: number; reason: string };

/**
 * One segment's bytes and a cursor over its frames. The caller owns `bytes` and keeps them whole
 * while the reader is in use. next() allocates nothing beyond readFrame's verdict: replay runs it
 * once per record.
 */
export class SegmentReader {
  readonly view: DataView;
  readonly segment: Encoded;
  /** Where the frame next() reads next starts. */
  offset: number;
  /** Where the frame next() read last starts. */
  at: number;

  constructor(
    readonly file: string,
    readonly bytes: Uint8Array,
    offset: number = HEADER_FRAME_OFFSET,
  ) {
    this.view = viewOf(bytes);
    this.segment = encoded(bytes);
    this.offset = this.at = offset;
  }

  /** The frame at `offset`, which then moves past it; anything else leaves `offset` where it stopped. */
  next(): FrameVerdict {
    const v = readFrame(this.bytes, this.offset, this.view);
    this.at = this.offset;
    if (v.kind === "frame") this.offset = v.next;
    return v;
  }

  /** Where next() stopped on `v` (not a frame): the clean end when only zeros follow, else damage. */
  stop(v: Exclude<FrameVerdict, { kind: "frame" }>): FramesStop {
    if (v.kind === "end") {
      const clean = allZero(this.bytes, this.at, this.bytes.length);
      return { offset: this.at, damage: clean ? null : "non-zero bytes after the end of the log", complete: false };
    }
    return { offset: this.at, damage: `${v.kind} frame: ${v.reason}`, complete: v.kind === "bad" && v.whole === true };
  }

  /** The frame next() read last is whole but has no place here (its type, its revision, its payload). */
  wrong(damage: string): FramesStop {
    return { offset: this.at, damage, complete: true };
  }

  /**
   * What the stop means: damage is a torn tail only in the `last` segment, in a frame not written
   * whole, with no valid frame (of a revision above `lastRev`) after it; anything else is corruption.
   */
  verdict(s: FramesStop, last: boolean, lastRev: number): SegmentEnd {
    if (s.damage === null) return { kind: "clean", offset: s.offset };
    if (s.complete) return { kind: "corrupt", offset: s.offset, reason: s.damage };
    const validAfter = this.validFrameAfter(s.offset, lastRev);
    if (!last || validAfter >= 0) {
      const why = validAfter >= 0 ? `a valid record follows at offset ${validAfter}` : "later segments follow";
      return { kind: "corrupt", offset: s.offset, reason: `${s.damage}; ${why}` };
    }
    return { kind: "torn", offset: s.offset, reason: s.damage };
  }

  /** The first frame after `offset` with a valid checksum and a revision above `afterRev`, or -1. */
  validFrameAfter(offset: number, afterRev: number): number {
    return findValidFrameAfter(this.bytes, offset + FRAME_ALIGN_BYTES, afterRev);
  }

  /**
   * Checks magic, the header frame, its payload and format version, and moves to the first frame
   * after it. Errors name this file and `nextRev`, the revision the log would continue with.
   */
  header(nextRev: number): SegmentStart {
    const b = this.bytes;
    if (b.length < MAGIC_BYTES || !MAGIC.every((x, i) => b[i] === x)) throw this.corruption("bad magic", 0, nextRev);
    const v = readFrame(b, HEADER_FRAME_OFFSET, this.view);
    if (v.kind !== "frame" || v.type !== TYPE_HEADER) {
      throw this.corruption(`bad segment header (${v.kind === "frame" ? "wrong type" : v.kind})`, HEADER_FRAME_OFFSET, nextRev);
    }
    let header: SegmentHeader;
    try {
      header = decodeHeader(payloadOf(b, v));
    } catch (cause) {
      throw this.corruption(`undecodable segment header: ${(cause as Error).message}`, HEADER_FRAME_OFFSET, nextRev);
    }
    if (header.v !== FORMAT_VERSION) throw this.corruption(`unknown format version ${header.v}`, HEADER_FRAME_OFFSET, nextRev);
    this.offset = this.at = v.next;
    return { header, rev: v.rev };
  }

  /** Checks the header agrees with the file's name and with its own frame's revision. */
  checkName(seg: SegmentFile, s: SegmentStart, nextRev: number): void {
    const h = s.header;
    if (h.seq !== seg.seq || h.firstRev !== seg.firstRev) throw this.corruption("header does not match the file name", HEADER_FRAME_OFFSET, nextRev);
    if (s.rev !== h.firstRev - 1) throw this.corruption("header revision does not precede firstRev", HEADER_FRAME_OFFSET, nextRev);
  }

  /** Damage at `offset` of this segment; `rev` is the first revision it costs. */
  corruption(message: string, offset: number, rev: number): CorruptionError {
    return new CorruptionError(message, this.file, offset, rev);
  }
}
