// Reading the WAL's durable entries from the segment files, from a revision on, while the writer
// goes on appending (and deleting segments a snapshot covers): the archiver's and the WAL stream's
// reader (docs/archive-format.md, docs/replication.md).

import * as path from "node:path";
import { frameRev, readFrame, viewOf } from "../format/decoder.ts";
import {
  FRAME_ALIGN_BYTES,
  FRAME_CRC_OFFSET,
  FRAME_HEADER_BYTES,
  FRAME_LEN_OFFSET,
  FRAME_TYPE_OFFSET,
  frameBytes,
  HEADER_FRAME_OFFSET,
  TYPE_ENTRY,
  TYPE_HEADER,
  TYPE_MAX,
} from "../format/constants.ts";
import type { FileIO } from "../io/file-io.ts";
import { lastSegmentStartingBy, listSegments } from "./reader.ts";

/** Segment bytes read per step. */
const readBytes = 1024 * 1024;

/** Where the next entry to read is: its segment, offset and revision. */
export interface TailCursor {
  seq: number;
  file: string;
  offset: number;
  rev: number;
}

export class WalTail {
  private cursor: TailCursor | null = null;

  constructor(
    private readonly io: FileIO,
    private readonly walDir: string,
  ) {}

  /** The revision of the next entry read() returns. */
  get next(): number {
    return this.cursor?.rev ?? 0;
  }

  /** A copy of the position, for reset(): a reader that fails to hand on what it read goes back. */
  mark(): TailCursor {
    return { ...this.cursor! };
  }

  reset(c: TailCursor): void {
    this.cursor = { ...c };
  }

  /**
   * Puts the cursor on entry `rev`, scanning its segment from the start. False when no local
   * segment holds it (the log starts later: a snapshot covered it); true also when `rev` is not
   * written yet (open() always leaves a segment).
   */
  seek(rev: number): boolean {
    const segments = listSegments(this.io, this.walDir, false);
    const i = lastSegmentStartingBy(segments, rev);
    if (i < 0) return false;
    const seg = segments[i]!;
    this.cursor = { seq: seg.seq, file: path.join(this.walDir, seg.name), offset: HEADER_FRAME_OFFSET, rev: seg.firstRev };
    this.skipHeader();
    return this.read(rev - 1, Infinity, true).next === rev;
  }

  /**
   * Reads entry frames from the cursor while their revision is at most `upTo` and their bytes under
   * `maxBytes`, moving to the next segment at a segment's end. Only durable revisions may be asked
   * for, so every frame read is whole: the writer fdatasynced it. Runs of frames come as views of
   * what was read (no copy per frame); snapshot markers are left out. `skipping`: reads nothing.
   *
   * Frame headers are checked (type, revision, length), their checksums are not: each frame goes
   * on with its own, and its reader checks it (restore, a replica). That halves the archiver's CPU
   * per entry (bench/archive.ts).
   */
  read(upTo: number, maxBytes: number, skipping = false): { frames: Uint8Array[]; next: number } {
    const c = this.cursor!;
    const frames: Uint8Array[] = [];
    let bytes = 0;
    let want = readBytes;
    while (c.rev <= upTo && (skipping || bytes < maxBytes)) {
      let size: number;
      try {
        size = this.io.fileSize(c.file);
      } catch (err) {
        // Read to its end and then deleted by the writer: the next segment starts at c.rev
        // (nextSegment checks; if it was deleted before it was read to its end, it does not).
        if ((err as NodeJS.ErrnoException).code !== "ENOENT" || !this.nextSegment()) throw err;
        continue;
      }
      const left = size - c.offset;
      const buf = new Uint8Array(Math.min(want, left));
      const n = buf.length > 0 ? this.io.readAt(c.file, buf, c.offset) : 0;
      const bytesRead = buf.subarray(0, n);
      const view = viewOf(bytesRead);
      let at = 0;
      let ended = false;
      let runStart = 0;
      const endRun = () => {
        if (!skipping && at > runStart) frames.push(bytesRead.subarray(runStart, at));
      };
      want = readBytes;
      while (c.rev <= upTo && (skipping || bytes < maxBytes)) {
        // The frame's header, without the frame: one read of each field, no object per frame.
        const whole = at + FRAME_HEADER_BYTES <= n;
        const len = whole ? view.getUint32(at + FRAME_LEN_OFFSET, true) : 0;
        if (!whole || at + FRAME_HEADER_BYTES + len > n || len === 0) {
          // Past the last frame of this segment (zeros), or a frame cut by the end of what was read:
          // read again from it (all of it, if it is large).
          ended = (whole && len === 0 && view.getUint32(at + FRAME_CRC_OFFSET, true) === 0) || n >= left;
          if (!ended && at === 0) want = FRAME_HEADER_BYTES + len + FRAME_ALIGN_BYTES;
          break;
        }
        const type = bytesRead[at + FRAME_TYPE_OFFSET]!;
        const next = at + frameBytes(len);
        if (type === TYPE_ENTRY) {
          const rev = frameRev(bytesRead, view, at);
          if (rev !== c.rev) throw new Error(`${c.file} at offset ${c.offset + at}: revision ${rev}, expected ${c.rev}`);
          bytes += next - at;
          c.rev++;
        } else if (type === TYPE_HEADER || type > TYPE_MAX) throw new Error(`${c.file}: a frame of type ${type} at offset ${c.offset + at}`);
        else {
          endRun(); // a snapshot marker
          runStart = next;
        }
        at = next;
      }
      endRun();
      c.offset += at;
      if (ended && c.rev <= upTo && !this.nextSegment()) throw new Error(`revision ${c.rev} is durable but no segment after ${c.file} holds it`);
    }
    return { frames, next: c.rev };
  }

  private nextSegment(): boolean {
    const c = this.cursor!;
    const next = listSegments(this.io, this.walDir, false).find((s) => s.seq === c.seq + 1);
    if (!next) return false;
    if (next.firstRev !== c.rev) throw new Error(`segment ${next.name} starts at revision ${next.firstRev}, expected ${c.rev}`);
    Object.assign(c, { seq: next.seq, file: path.join(this.walDir, next.name), offset: HEADER_FRAME_OFFSET });
    this.skipHeader();
    return true;
  }

  /** Moves the cursor past its segment's header frame (checked when the segment was opened). */
  private skipHeader(): void {
    const c = this.cursor!;
    const head = new Uint8Array(Math.min(readBytes, this.io.fileSize(c.file) - c.offset));
    this.io.readAt(c.file, head, c.offset);
    const f = readFrame(head, 0);
    if (f.kind !== "frame" || f.type !== TYPE_HEADER) throw new Error(`${c.file}: no header frame`);
    c.offset += f.next;
  }
}
