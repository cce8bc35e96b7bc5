// The archiver (docs/archive-format.md): ships durable WAL entries and new snapshots to the bucket,
// on a worker thread of its own; the writer and the main thread see its progress in the ring.

import * as path from "node:path";
import { ArchiveError } from "../errors.ts";
import { snapshotName } from "../format/constants.ts";
import type { FileIO } from "../io/file-io.ts";
import { listSnapshots } from "../snapshot/file.ts";
import { WalTail } from "../wal/tail.ts";
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
  /** A new local snapshot is uploaded once the log shipped since the last upload is this many times its size. */
  snapshotLogRatio: number;
  sab: SharedArrayBuffer;
}

/** A log object is shipped once this many bytes wait, whatever the lag. */
export const archiveObjectBytes = 8 * 1024 * 1024;

/** Retention looks at the archive at least this often. */
const retentionEveryMsMax = 60_000;

/** What the archive holds, for retention: one LIST per run, then what this run uploads. */
interface Catalog {
  snaps: { name: string; rev: number; time: number }[];
  logs: { name: string; firstRev: number; lastRev: number }[];
}

export class Archiver {
  private readonly ring: R.RingViews;
  private readonly bucket: Bucket;
  private readonly snapDir: string;
  private readonly tail: WalTail;
  private stopping = false;
  /** Set when stop() asks for what is durable to be shipped first. */
  private flushing = false;
  private wake: (() => void) | null = null;
  private failures = 0;
  private catalog: Catalog | null = null;
  /** What this run uploads while its one LIST is under way (merged into the catalog after it). */
  private listing: Catalog | null = null;
  /**
   * A snapshot upload, and a retention pass, run beside the log's shipping, never in its way: a
   * large snapshot takes seconds, and with archive.sync writes wait for the log (review finding).
   */
  private snapshotUpload: Promise<void> | null = null;
  private retention: Promise<void> | null = null;
  private snapshotFailures = 0;
  private snapshotRetryAt = 0;
  /** The revision the position object last written names, and when it was written. */
  private positionRev = -1;
  private positionAt = 0;
  /** The ring's EVENTS counter when step() last looked at the synced revision. */
  private eventsSeen = 0;
  /** Log bytes shipped since the last snapshot upload, and that snapshot's size (0: none this run). */
  private logBytesSinceSnap = 0;
  private snapBytes = 0;
  private retentionDue = 0;

  constructor(
    private readonly cfg: ArchiverConfig,
    private readonly io: FileIO,
  ) {
    this.ring = R.ringViews(cfg.sab);
    this.bucket = new Bucket(cfg.url, cfg.s3, cfg.timeoutMs);
    this.tail = new WalTail(io, path.join(cfg.dir, "wal"));
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
        if (this.cfg.retainMs > 0 && Date.now() >= this.retentionDue && !this.flushing && this.retention === null) {
          this.retention = this.retainOrReport().finally(() => (this.retention = null));
        }
        const cpu = process.threadCpuUsage();
        this.stats[R.STAT_ARCHIVE_CPU_US] = cpu.user + cpu.system;
        this.failures = 0;
        if (this.flushing && !shipped) {
          if (this.snapshotUpload) await this.snapshotUpload;
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
    if (!this.tail.seek(rev + 1)) {
      // The local log no longer reaches back to the archive's end (or there is no archive yet):
      // the newest snapshot goes first, and the log follows from it.
      const snap = await this.shipNewestSnapshot();
      if (snap === null || !this.tail.seek(snap + 1)) throw new Error(`the log after revision ${rev} is not on disk any more, and no snapshot covers it`);
      rev = snap;
    }
    this.stats[R.STAT_ARCHIVE_REV] = rev;
    if (p !== null && p.rev === rev) this.positionRev = rev; // (the position says so already)
  }

  /**
   * One round: starts a snapshot's upload if one is due (it runs beside the log), then ships the log
   * if it is due. Returns whether an object (or the position) was written.
   */
  private async step(): Promise<boolean> {
    this.eventsSeen = Atomics.load(this.ring.ctl, R.EVENTS); // (before the synced revision is read)
    const snapRev = this.stats[R.STAT_SNAP_REV]!;
    const snapDue = snapRev > this.stats[R.STAT_ARCHIVE_SNAP_REV]! && this.logBytesSinceSnap >= this.cfg.snapshotLogRatio * this.snapBytes;
    if (snapDue && this.snapshotUpload === null && Date.now() >= this.snapshotRetryAt) {
      this.snapshotUpload = this.shipNewestSnapshot().then(
        () => void (this.snapshotFailures = 0),
        (err: unknown) => {
          this.report(err);
          this.snapshotRetryAt = Date.now() + backoffMs(this.snapshotFailures++);
        },
      );
      void this.snapshotUpload.finally(() => (this.snapshotUpload = null));
    }
    const synced = this.stats[R.STAT_SYNCED_REV]!;
    const archived = this.stats[R.STAT_ARCHIVE_REV]!;
    if (synced <= archived) {
      this.stats[R.STAT_ARCHIVE_WAITING_SINCE] = 0;
      // The position's rewrite is held back after a quick object; idle, it catches up within maxLagMs / 2
      // (replicas of the archive read it to learn what is new).
      if (this.positionRev !== archived && Date.now() - this.positionAt >= this.cfg.maxLagMs / 2) {
        await this.writePosition();
        return true;
      }
      return false;
    }
    const now = Date.now();
    if (this.stats[R.STAT_ARCHIVE_WAITING_SINCE] === 0) this.stats[R.STAT_ARCHIVE_WAITING_SINCE] = now;
    const due = this.flushing || this.cfg.sync || now - this.stats[R.STAT_ARCHIVE_WAITING_SINCE]! >= this.cfg.maxLagMs / 2;
    if (!due && !this.enoughWaiting(synced)) return false;
    return this.shipLog(synced);
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
    const saved = this.tail.mark();
    const first = this.tail.next;
    const got = this.tail.read(synced, archiveObjectBytes);
    if (got.frames.length === 0) return false;
    const last = got.next - 1;
    const object = encodeLogObject(this.cfg.dbId, first, last, got.frames);
    const name = logObjectName(first, last);
    try {
      await this.call(() => this.bucket.put(name, object));
    } catch (err) {
      this.tail.reset(saved); // shipped again from here on the next try
      throw err;
    }
    (this.catalog ?? this.listing)?.logs.push({ name, firstRev: first, lastRev: last });
    this.stats[R.STAT_ARCHIVE_OBJECTS]!++;
    this.stats[R.STAT_ARCHIVE_BYTES]! += object.length;
    this.logBytesSinceSnap += object.length;
    this.stats[R.STAT_ARCHIVE_REV] = last;
    this.stats[R.STAT_ARCHIVE_WAITING_SINCE] = last < this.stats[R.STAT_SYNCED_REV]! ? Date.now() : 0;
    // Writes waiting for the bucket (sync) are settled by the main thread's waiter on EVENTS.
    R.signalEvents(this.ring);
    if (Date.now() - this.positionAt >= this.cfg.maxLagMs / 2) await this.writePosition();
    return true;
  }

  /** Uploads the newest local snapshot whole; returns its revision, or null when there is none. */
  private async shipNewestSnapshot(): Promise<number | null> {
    const snaps = listSnapshots(this.io, this.snapDir, false);
    const newest = snaps[snaps.length - 1];
    if (!newest) return null;
    const name = snapObjectName(newest.rev);
    let size: number;
    try {
      size = await this.call(() => this.bucket.putFile(name, path.join(this.snapDir, snapshotName(newest.rev))));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null; // replaced meanwhile: the next round ships the newer one
      throw err;
    }
    // (as restore will judge it: S3's upload time, to the second, plus a second)
    (this.catalog ?? this.listing)?.snaps.push({ name, rev: newest.rev, time: Date.now() + 1000 });
    this.stats[R.STAT_ARCHIVE_OBJECTS]!++;
    this.stats[R.STAT_ARCHIVE_BYTES]! += size;
    this.stats[R.STAT_ARCHIVE_SNAP_REV] = newest.rev;
    this.snapBytes = size;
    this.logBytesSinceSnap = 0;
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
    this.listing = { snaps: [], logs: [] };
    try {
      const [snaps, logs] = await Promise.all([this.bucket.list(SNAP_DIR), this.bucket.list(LOG_DIR)]);
      const listed: Catalog = {
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
      // Uploaded while the LIST ran: in it or not, known either way.
      const names = new Set([...listed.snaps, ...listed.logs].map((x) => x.name));
      for (const s of this.listing.snaps) if (!names.has(s.name)) listed.snaps.push(s);
      for (const l of this.listing.logs) if (!names.has(l.name)) listed.logs.push(l);
      return listed;
    } finally {
      this.listing = null;
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
  R.signalEvents(ring);
}
