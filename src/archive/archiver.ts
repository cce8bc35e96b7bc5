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
import {
  decodePosition,
  encodeLogObject,
  encodePosition,
  LOG_DIR,
  logObjectName,
  parseLogName,
  parseSnapName,
  POSITION_NAME,
  SNAP_DIR,
  snapObjectName,
  type Position,
} from "./object.ts";

export interface ArchiverConfig {
  dir: string;
  dbId: string;
  url: string;
  s3: S3Settings;
  maxLagMs: number;
  timeoutMs: number;
  /** Retention (0: keep everything; docs/archive-format.md, "Retention"). */
  retainMs: number;
  /** Zero RPO: writes wait for the bucket, so each durable revision is shipped at once. */
  sync: boolean;
  sab: SharedArrayBuffer;
}

/** A log object is shipped once this many bytes wait, whatever the lag. */
export const archiveObjectBytes = 8 * 1024 * 1024;
/** Segment bytes read per step while collecting entries. */
const readBytes = 1024 * 1024;

/** Retention looks at the archive at least this often. */
const retentionEveryMsMax = 60_000;

/** What the archive holds, for retention: one LIST per run, then what this run uploads. */
interface Catalog {
  snaps: { name: string; rev: number; time: number }[];
  logs: { name: string; firstRev: number; lastRev: number }[];
}

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
  private catalog: Catalog | null = null;
  /** The revision the position object last written names, and when it was written. */
  private positionRev = -1;
  private positionAt = 0;
  /** The ring's EVENTS counter when step() last looked at the synced revision. */
  private eventsSeen = 0;
  private retentionDue = 0;

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
        if (this.cfg.retainMs > 0 && Date.now() >= this.retentionDue && !this.flushing) await this.retainOrReport();
        const cpu = process.threadCpuUsage();
        this.stats[R.STAT_ARCHIVE_CPU_US] = cpu.user + cpu.system;
        this.failures = 0;
        if (this.flushing && !shipped) {
          if (this.positionRev !== this.stats[R.STAT_ARCHIVE_REV]) await this.writePosition();
          return; // everything durable is in the bucket
        }
        if (!shipped) await this.pause(this.pollMs(), this.cfg.sync);
      } catch (err) {
        this.report(err);
        if (err instanceof ArchiveError) {
          gaveUp(this.ring, (err as Error).message); // a prefix of another database: nothing to retry
          return;
        }
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
    this.eventsSeen = Atomics.load(this.ring.ctl, R.EVENTS); // (before the synced revision is read)
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
    const due = this.flushing || this.cfg.sync || now - this.stats[R.STAT_ARCHIVE_WAITING_SINCE]! >= this.cfg.maxLagMs / 2;
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
    const name = logObjectName(first, last);
    try {
      await this.call(() => this.bucket.put(name, object));
    } catch (err) {
      this.cursor = saved; // shipped again from here on the next try
      throw err;
    }
    this.catalog?.logs.push({ name, firstRev: first, lastRev: last }); // (the LIST, if made, came before the PUT)
    this.stats[R.STAT_ARCHIVE_OBJECTS]!++;
    this.stats[R.STAT_ARCHIVE_BYTES]! += object.length;
    this.stats[R.STAT_ARCHIVE_REV] = last;
    this.stats[R.STAT_ARCHIVE_WAITING_SINCE] = last < this.stats[R.STAT_SYNCED_REV]! ? Date.now() : 0;
    // Writes waiting for the bucket (sync) are settled by the main thread's waiter on EVENTS.
    Atomics.add(this.ring.ctl, R.EVENTS, 1);
    Atomics.notify(this.ring.ctl, R.EVENTS);
    if (Date.now() - this.positionAt >= this.cfg.maxLagMs / 2) await this.writePosition();
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
    const name = snapObjectName(newest.rev);
    await this.call(() => this.bucket.put(name, bytes));
    this.catalog?.snaps.push({ name, rev: newest.rev, time: Date.now() });
    this.stats[R.STAT_ARCHIVE_OBJECTS]!++;
    this.stats[R.STAT_ARCHIVE_BYTES]! += bytes.length;
    this.stats[R.STAT_ARCHIVE_SNAP_REV] = newest.rev;
    if (this.stats[R.STAT_ARCHIVE_REV]! >= 0) await this.writePosition();
    return newest.rev;
  }

  /** Retention's failures are reported and tried again at its next pass; shipping goes on meanwhile. */
  private async retainOrReport(): Promise<void> {
    try {
      await this.retain();
    } catch (err) {
      this.report(err);
    }
  }

  /**
   * Deletes what no restore inside the retention window needs: snapshots older than the base (the
   * newest uploaded at least retainMs ago) and log objects the base covers, oldest first.
   */
  private async retain(): Promise<void> {
    const now = Date.now();
    this.retentionDue = now + Math.min(retentionEveryMsMax, this.cfg.retainMs / 10);
    if (this.catalog === null) this.catalog = await this.listCatalog();
    const c = this.catalog;
    let base: Catalog["snaps"][number] | null = null;
    for (const s of c.snaps) if (s.time <= now - this.cfg.retainMs && (!base || s.rev > base.rev)) base = s;
    if (base === null) return;
    const baseRev = base.rev;
    const doomed = [
      ...c.snaps.filter((s) => s.rev < baseRev).map((s) => ({ name: s.name, from: s.rev })),
      ...c.logs.filter((l) => l.lastRev <= baseRev).map((l) => ({ name: l.name, from: l.firstRev })),
    ].sort((a, b) => a.from - b.from);
    const gone = new Set<string>();
    try {
      for (const d of doomed) {
        await this.call(() => this.bucket.delete(d.name));
        gone.add(d.name);
        this.stats[R.STAT_ARCHIVE_DELETED]!++;
      }
    } finally {
      c.snaps = c.snaps.filter((s) => !gone.has(s.name));
      c.logs = c.logs.filter((l) => !gone.has(l.name));
    }
  }

  /** The one LIST of a run (objects of earlier runs are named nowhere else). */
  private async listCatalog(): Promise<Catalog> {
    const before = this.bucket.calls.list;
    try {
      const [snaps, logs] = await Promise.all([this.bucket.list(SNAP_DIR), this.bucket.list(LOG_DIR)]);
      return {
        snaps: snaps.flatMap((s) => {
          const rev = parseSnapName(s.name);
          // S3 tells the upload time to the second (rounded up here); none told: as if uploaded now.
          return rev === null ? [] : [{ name: s.name, rev, time: Number.isNaN(s.modified) ? Date.now() : s.modified + 1000 }];
        }),
        logs: logs.flatMap((l) => {
          const r = parseLogName(l.name);
          return r ? [{ name: l.name, ...r }] : [];
        }),
      };
    } finally {
      const pages = this.bucket.calls.list - before;
      this.stats[R.STAT_ARCHIVE_LISTS]! += pages;
      this.stats[R.STAT_ARCHIVE_CALLS]! += pages;
    }
  }

  private async writePosition(): Promise<void> {
    const rev = this.stats[R.STAT_ARCHIVE_REV]!;
    const p = encodePosition({ db: this.cfg.dbId, rev, snapshot: this.stats[R.STAT_ARCHIVE_SNAP_REV]!, time: Date.now() });
    await this.call(() => this.bucket.put(POSITION_NAME, p));
    this.positionRev = rev;
    this.positionAt = Date.now();
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

  /** Sleeps `ms`, or less if stop() is called (or, with `writes`, once the writer reports an ack). */
  private pause(ms: number, writes = false): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      if (writes) {
        // (bumped after every ack: a write waiting for the bucket is shipped at once)
        const w = Atomics.waitAsync(this.ring.ctl, R.EVENTS, this.eventsSeen, ms);
        if (w.async) void w.value.then(done);
        else done();
      }
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

/**
 * Marks archiving as given up, with why, and wakes the main thread's waiter: with `sync`, writes
 * waiting for the bucket then fail (WritePipeline.poll).
 */
export function gaveUp(ring: R.RingViews, why: string): void {
  R.writeError(ring, why, ring.archiveError);
  ring.stats[R.STAT_ARCHIVE_STOPPED] = 1;
  Atomics.add(ring.ctl, R.EVENTS, 1);
  Atomics.notify(ring.ctl, R.EVENTS);
}
