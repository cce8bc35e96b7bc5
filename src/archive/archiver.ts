// The archiver (docs/archive-format.md): ships durable WAL entries and new snapshots to the bucket,
// on a worker thread of its own; the writer and the main thread see its progress in the ring.

import * as path from "node:path";
import { concatBytes } from "../bytes.ts";
import { ArchiveError } from "../errors.ts";
import { readFrame, viewOf } from "../format/decoder.ts";
import {
  FRAME_ALIGN_BYTES,
  FRAME_HEADER_BYTES,
  FRAME_LEN_OFFSET,
  HEADER_FRAME_OFFSET,
  TYPE_ENTRY,
  TYPE_HEADER,
  snapshotName,
} from "../format/constants.ts";
import type { FileIO } from "../io/file-io.ts";
import { listSnapshots } from "../snapshot/file.ts";
import { lastSegmentStartingBy, listSegments } from "../wal/reader.ts";
import * as R from "../wal/ring.ts";
import { backoffMs, Bucket, type S3Settings } from "./bucket.ts";
import { decodePosition, encodeLogObject, encodePosition, logObjectName, POSITION_NAME, snapObjectName, type Position } from "./object.ts";

export interface ArchiverConfig {
  dir: string;
  dbId: string;
  url: string;
  s3: S3Settings;
  maxLagMs: number;
  timeoutMs: number;
  sab: SharedArrayBuffer;
}

/** A log object is shipped once this many bytes wait, whatever the lag. */
export const archiveObjectBytes = 8 * 1024 * 1024;
/** Segment bytes read per step while collecting entries. */
const readBytes = 1024 * 1024;

/** Where the next entry to ship is: its segment, offset and revision. */
interface Cursor {
  seq: number;
  file: string;
  offset: number;
  rev: number;
}

export class Archiver {
  private readonly ring: R.RingViews;
  private readonly bucket: Bucket;
  private readonly walDir: string;
  private readonly snapDir: string;
  private cursor: Cursor | null = null;
  private stopping = false;
  /** Set when stop() asks for what is durable to be shipped first. */
  private flushing = false;
  private wake: (() => void) | null = null;
  private failures = 0;

  constructor(
    private readonly cfg: ArchiverConfig,
    private readonly io: FileIO,
  ) {
    this.ring = R.ringViews(cfg.sab);
    this.bucket = new Bucket(cfg.url, cfg.s3, cfg.timeoutMs);
    this.walDir = path.join(cfg.dir, "wal");
    this.snapDir = path.join(cfg.dir, "snap");
  }

  private get stats(): Float64Array {
    return this.ring.stats;
  }

  /** Runs until stop(); every failure is reported in the ring and retried after a jittered wait. */
  async run(): Promise<void> {
    let started = false;
    while (!this.stopping) {
      try {
        if (!started) {
          await this.start();
          started = true;
        }
        const shipped = await this.step();
        const cpu = process.threadCpuUsage();
        this.stats[R.STAT_ARCHIVE_CPU_US] = cpu.user + cpu.system;
        this.failures = 0;
        if (this.flushing && !shipped) return; // everything durable is in the bucket
        if (!shipped) await this.pause(this.pollMs());
      } catch (err) {
        this.report(err);
        if (err instanceof ArchiveError) return; // a prefix of another database: nothing to retry
        if (this.flushing) return;
        await this.pause(backoffMs(this.failures++));
      }
    }
  }

  /** Asks run() to ship what is durable (flush) or just to end; it returns at its next step. */
  stop(flush: boolean): void {
    if (flush) this.flushing = true;
    else this.stopping = true;
    this.wake?.();
  }

  /** Reads the position object (no LIST) and sets where shipping starts. */
  private async start(): Promise<void> {
    this.stats[R.STAT_ARCHIVE_CALLS]!++;
    const text = await this.bucket.get(POSITION_NAME);
    let rev = 0;
    let p: Position | null = null;
    if (text !== null) {
      try {
        p = decodePosition(new TextDecoder().decode(text), this.bucket.key(POSITION_NAME));
      } catch (err) {
        // Only a store that keeps a cut PUT leaves one (s3rver; not S3): shipping starts over, and
        // restore takes overlapping objects.
        this.report(err);
      }
    }
    if (p !== null) {
      if (p.db !== this.cfg.dbId) {
        throw new ArchiveError(`${this.cfg.url} holds the archive of database ${p.db}; this is ${this.cfg.dbId}`, this.bucket.key(POSITION_NAME));
      }
      rev = p.rev;
      this.stats[R.STAT_ARCHIVE_SNAP_REV] = p.snapshot;
    }
    if (!this.seek(rev + 1)) {
      // The local log no longer reaches back to the archive's end (or there is no archive yet):
      // the newest snapshot goes first, and the log follows from it.
      const snap = await this.shipNewestSnapshot();
      if (snap === null || !this.seek(snap + 1)) throw new Error(`the log after revision ${rev} is not on disk any more, and no snapshot covers it`);
      rev = snap;
    }
    this.stats[R.STAT_ARCHIVE_REV] = rev;
  }

  /**
   * Puts the cursor on entry `rev` (the next to ship), scanning its segment from the start. False
   * when no local segment holds it (the log starts later); true also when `rev` is not written yet
   * (open() always leaves a segment).
   */
  private seek(rev: number): boolean {
    const segments = listSegments(this.io, this.walDir, false);
    const i = lastSegmentStartingBy(segments, rev);
    if (i < 0) return false;
    const seg = segments[i]!;
    this.cursor = { seq: seg.seq, file: path.join(this.walDir, seg.name), offset: HEADER_FRAME_OFFSET, rev: seg.firstRev };
    this.skipHeader();
    return this.collect(rev - 1, true).next === rev;
  }

  /** One round: a new snapshot, then the log if it is due. Returns whether anything was shipped. */
  private async step(): Promise<boolean> {
    let shipped = false;
    const snapRev = this.stats[R.STAT_SNAP_REV]!;
    if (snapRev > this.stats[R.STAT_ARCHIVE_SNAP_REV]!) shipped = (await this.shipNewestSnapshot()) !== null;
    const synced = this.stats[R.STAT_SYNCED_REV]!;
    const archived = this.stats[R.STAT_ARCHIVE_REV]!;
    if (synced <= archived) {
      this.stats[R.STAT_ARCHIVE_WAITING_SINCE] = 0;
      return shipped;
    }
    const now = Date.now();
    if (this.stats[R.STAT_ARCHIVE_WAITING_SINCE] === 0) this.stats[R.STAT_ARCHIVE_WAITING_SINCE] = now;
    const due = this.flushing || now - this.stats[R.STAT_ARCHIVE_WAITING_SINCE]! >= this.cfg.maxLagMs / 2;
    if (!due && !this.enoughWaiting(synced)) return shipped;
    return (await this.shipLog(synced)) || shipped;
  }

  /** Whether a full object's worth of entries is waiting (estimated from the WAL's byte counter). */
  private enoughWaiting(synced: number): boolean {
    const records = this.stats[R.STAT_RECORDS]!;
    const bytes = this.stats[R.STAT_BYTES]!;
    const waiting = synced - this.stats[R.STAT_ARCHIVE_REV]!;
    return records > 0 && (bytes / records) * waiting >= archiveObjectBytes;
  }

  /** Ships entries from the cursor up to `synced` (at most an object's worth) as one log object. */
  private async shipLog(synced: number): Promise<boolean> {
    const c = this.cursor!;
    const saved = { ...c };
    const first = c.rev;
    const got = this.collect(synced, false);
    if (got.frames.length === 0) return false;
    const last = got.next - 1;
    const body = concatBytes(got.frames);
    const object = encodeLogObject(this.cfg.dbId, first, last, body);
    try {
      await this.call(() => this.bucket.put(logObjectName(first, last), object));
    } catch (err) {
      this.cursor = saved; // shipped again from here on the next try
      throw err;
    }
    this.stats[R.STAT_ARCHIVE_OBJECTS]!++;
    this.stats[R.STAT_ARCHIVE_BYTES]! += object.length;
    this.stats[R.STAT_ARCHIVE_REV] = last;
    this.stats[R.STAT_ARCHIVE_WAITING_SINCE] = last < this.stats[R.STAT_SYNCED_REV]! ? Date.now() : 0;
    await this.writePosition();
    return true;
  }

  /**
   * Reads entry frames from the cursor while their revision is at most `upTo` (and, unless
   * `skipping`, their bytes under an object's worth), moving to the next segment at a segment's end.
   * Only durable revisions are asked for, so every frame read is whole: the writer fdatasynced it.
   */
  private collect(upTo: number, skipping: boolean): { frames: Uint8Array[]; next: number } {
    const c = this.cursor!;
    const frames: Uint8Array[] = [];
    let bytes = 0;
    let want = readBytes;
    while (c.rev <= upTo && (skipping || bytes < archiveObjectBytes)) {
      let size: number;
      try {
        size = this.io.fileSize(c.file);
      } catch (err) {
        // Read to its end and then deleted by the writer (the archive held all of it): the next
        // segment starts at c.rev (nextSegment checks).
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
      // Entry frames lie back to back but for a snapshot marker now and then: each run of them is
      // handed on as one view of what was read (no copy per frame).
      let runStart = 0;
      const endRun = () => {
        if (!skipping && at > runStart) frames.push(bytesRead.subarray(runStart, at));
      };
      want = readBytes;
      while (c.rev <= upTo && (skipping || bytes < archiveObjectBytes)) {
        const f = readFrame(bytesRead, at, view);
        if (f.kind !== "frame") {
          ended = f.kind === "end" || n >= left; // past the last frame of this segment
          // A frame cut by the end of what was read: read again from it (all of it, if it is large).
          if (!ended && at === 0) want = FRAME_HEADER_BYTES + view.getUint32(FRAME_LEN_OFFSET, true) + FRAME_ALIGN_BYTES;
          break;
        }
        if (f.type === TYPE_ENTRY) {
          if (f.rev !== c.rev) throw new Error(`${c.file} at offset ${c.offset + at}: revision ${f.rev}, expected ${c.rev}`);
          bytes += f.next - at;
          c.rev++;
        } else if (f.type === TYPE_HEADER) throw new Error(`${c.file}: a header frame at offset ${c.offset + at}`);
        else {
          endRun(); // a marker: not shipped
          runStart = f.next;
        }
        at = f.next;
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

  /** Uploads the newest local snapshot whole; returns its revision, or null when there is none. */
  private async shipNewestSnapshot(): Promise<number | null> {
    const snaps = listSnapshots(this.io, this.snapDir, false);
    const newest = snaps[snaps.length - 1];
    if (!newest) return null;
    let bytes: Uint8Array;
    try {
      bytes = this.io.readFile(path.join(this.snapDir, snapshotName(newest.rev)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null; // replaced meanwhile: the next round ships the newer one
      throw err;
    }
    await this.call(() => this.bucket.put(snapObjectName(newest.rev), bytes));
    this.stats[R.STAT_ARCHIVE_OBJECTS]!++;
    this.stats[R.STAT_ARCHIVE_BYTES]! += bytes.length;
    this.stats[R.STAT_ARCHIVE_SNAP_REV] = newest.rev;
    if (this.stats[R.STAT_ARCHIVE_REV]! >= 0) await this.writePosition();
    return newest.rev;
  }

  private async writePosition(): Promise<void> {
    const p = encodePosition({ db: this.cfg.dbId, rev: this.stats[R.STAT_ARCHIVE_REV]!, snapshot: this.stats[R.STAT_ARCHIVE_SNAP_REV]!, time: Date.now() });
    await this.call(() => this.bucket.put(POSITION_NAME, p));
  }

  /** One S3 call, counted (a failure is counted by report()). */
  private async call<T>(f: () => Promise<T>): Promise<T> {
    this.stats[R.STAT_ARCHIVE_CALLS]!++;
    return f();
  }

  private report(err: unknown): void {
    this.stats[R.STAT_ARCHIVE_ERRORS]!++;
    R.writeError(this.ring, `${new Date().toISOString()} ${(err as Error).message ?? String(err)}`, this.ring.archiveError);
  }

  private pollMs(): number {
    return Math.max(5, Math.min(50, this.cfg.maxLagMs / 10));
  }

  /** Sleeps `ms`, or less if stop() is called. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }
}
