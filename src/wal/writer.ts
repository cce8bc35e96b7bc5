// The writer's loop over src/wal/*: take every pending frame from the ring, one write, one fdatasync.

import * as path from "node:path";
import { assert } from "../assert.ts";
import * as L from "../limits.ts";
import * as R from "./ring.ts";
import { listSnapshots } from "../snapshot/file.ts";
import { SnapshotFileWriter } from "../snapshot/file-writer.ts";
import { payloadEncoder } from "../codec/cbor.ts";
import { encodeFrame } from "../format/encoder.ts";
import {
  FORMAT_VERSION,
  FRAME_HEADER_BYTES,
  SPARE_NAME,
  TYPE_ENTRY,
  TYPE_SNAP_CHUNK,
  TYPE_SNAP_FOOTER,
  TYPE_SNAP_HEADER,
  TYPE_SNAPSHOT_MARKER,
  frameBytes,
  snapshotName,
} from "../format/constants.ts";
import { nodeIO, type FileIO } from "../io/file-io.ts";
import type { OpenLog } from "./recovery.ts";
import { installSegment, listSegments } from "./segment.ts";

export type SyncMode = "always" | "interval" | "never";

/** What the main thread hands the worker (structured-cloned; the SharedArrayBuffer is shared). */
export interface WriterConfig {
  sab: SharedArrayBuffer;
  walDir: string;
  /** Where snapshot files go (the writer writes what the main thread encodes). */
  snapDir: string;
  /** The newest snapshot at open (0: none) and its size. */
  snapRev: number;
  snapBytes: number;
  dbId: string;
  segmentPath: string;
  seq: number;
  /** Where the next frame goes in the current segment, and where its first entry starts. */
  offset: number;
  segmentStart: number;
  lastRev: number;
  lastCrc: number;
  segmentBytes: number;
  sync: SyncMode;
  syncIntervalMs: number;
  commitDelayUs: number;
  /**
   * Tests only: a module whose default export `(options) => FileIO` replaces node:fs in the worker
   * (fault injection through the real worker). Absent in production.
   */
  ioModule?: { path: string; options: unknown };
}

/** The half of a WriterConfig that says where a recovered log goes on. */
export function continueLog(log: OpenLog): Pick<
  WriterConfig,
  "dbId" | "segmentPath" | "seq" | "offset" | "segmentStart" | "lastRev" | "lastCrc" | "snapRev" | "snapBytes"
> {
  const t = log.tail;
  return {
    dbId: log.dbId,
    segmentPath: t.path,
    seq: t.seq,
    offset: t.offset,
    segmentStart: t.start,
    lastRev: log.lastRev,
    lastCrc: log.lastCrc,
    snapRev: log.snapshot?.rev ?? 0,
    snapBytes: log.snapshot?.bytes ?? 0,
  };
}

interface Group {
  end: number; // ring counter after the last frame taken
  bytes: number;
  records: number;
  lastRev: number;
  lastCrc: number;
}

export class WalWriter {
  private readonly ring: R.RingViews;
  private fd: number;
  private seq: number;
  private offset: number;
  private segmentStart: number;
  /** Bytes of the current segment known to be written (zeros or frames). */
  private filledTo: number;
  private tail: number;
  private lastRev: number;
  private lastCrc: number;
  private unsynced = false;
  private lastSyncMs = performance.now();
  private spareFd = -1;
  private spareFilled = 0;
  private groupsSincePrepare = 0;
  private readonly zeros = new Uint8Array(L.spareChunkBytes);
  private snap: SnapshotFileWriter | null = null;
  /** A snapshot's revision whose covered segments are kept until the archive holds them (0: none). */
  private heldBack = 0;

  constructor(
    private readonly cfg: WriterConfig,
    private readonly io: FileIO = nodeIO,
  ) {
    this.ring = R.ringViews(cfg.sab);
    this.fd = io.openWrite(cfg.segmentPath);
    this.filledTo = io.size(this.fd);
    this.seq = cfg.seq;
    this.offset = cfg.offset;
    this.segmentStart = cfg.segmentStart;
    this.lastRev = cfg.lastRev;
    this.lastCrc = cfg.lastCrc;
    this.tail = Atomics.load(this.ring.ctl, R.ACKED);
    this.ring.stats[R.STAT_SEGMENT_SEQ] = this.seq;
    this.ring.stats[R.STAT_LAST_REV] = this.lastRev;
    this.ring.stats[R.STAT_SYNCED_REV] = this.lastRev;
    this.ring.stats[R.STAT_SNAP_REV] = cfg.snapRev;
    this.ring.stats[R.STAT_SNAP_BYTES] = cfg.snapBytes;
  }

  /** Runs until the main thread asks to close, or the WAL fails. */
  run(): void {
    for (;;) {
      const head = Atomics.load(this.ring.ctl, R.HEAD);
      if (head === this.tail && Atomics.load(this.ring.ctl, R.STATE) === R.CLOSING) break;
      if (!this.step(head)) {
        if (this.failed) break;
        this.sleep(head);
      }
    }
    this.finish();
  }

  /**
   * One unit of work, never blocking: a group commit when frames wait in the ring, else one idle
   * task. Returns whether it did anything. A failed write or fdatasync poisons the writer here.
   * (The simulator in test/ drives the writer through this, in its own thread.)
   */
  step(head: number = Atomics.load(this.ring.ctl, R.HEAD)): boolean {
    if (this.failed) return false;
    try {
      if (head !== this.tail) {
        if (R.typeAt(this.ring, this.tail) === TYPE_ENTRY) this.commitGroup(head);
        else this.snapshotFrame();
        return true;
      }
      return this.idleWork();
    } catch (err) {
      this.poison(err);
      return false;
    }
  }

  /** Makes what was written durable (unless poisoned: never fsync again after a failure) and closes. */
  finish(): void {
    try {
      if (this.unsynced && !this.failed) this.fdatasync(this.fd);
    } catch (err) {
      this.poison(err);
    } finally {
      this.closeFiles();
      this.snap?.drop();
      this.snap = null;
    }
  }

  get failed(): boolean {
    return Atomics.load(this.ring.ctl, R.FAILED) !== R.FAIL_NONE;
  }

  private commitGroup(head: number): void {
    if (this.cfg.commitDelayUs > 0) {
      // Wait for more writers to pile in (RocksDB's delayed write), then take everything.
      Atomics.wait(this.ring.ctl, R.CTL_SLOTS - 1, 0, this.cfg.commitDelayUs / 1000);
      head = Atomics.load(this.ring.ctl, R.HEAD);
    }
    const firstBytes = this.frameAt(this.tail);
    if (this.offset + firstBytes > this.cfg.segmentBytes && this.offset > this.segmentStart) this.rotate();
    const g = this.takeGroup(head);
    this.writeGroup(g);
    if (this.cfg.sync === "always") this.fdatasync(this.fd);
    else this.unsynced = true;
    this.lastRev = g.lastRev;
    this.lastCrc = g.lastCrc;
    const s = this.ring.stats;
    s[R.STAT_RECORDS]! += g.records;
    s[R.STAT_BYTES]! += g.bytes;
    s[R.STAT_BATCHES]! += 1;
    R.observe(s, R.STAT_BATCH_HIST, R.BATCH_RECORDS_BOUNDS, g.records);
    s[R.STAT_LAST_REV] = g.lastRev;
    if (this.cfg.sync === "always") s[R.STAT_SYNCED_REV] = g.lastRev;
    this.tail = g.end;
    Atomics.store(this.ring.ctl, R.ACKED, g.end);
    this.signal();
    if (++this.groupsSincePrepare >= L.prepareEveryGroups) this.prepareChunk();
  }

  /**
   * The frames from the tail, capped as LevelDB caps a group (~1 MiB, or the first record + 128 KiB
   * when it is small, so a small write is not held back by a large one) and by the segment's room.
   */
  private takeGroup(head: number): Group {
    const first = this.frameAt(this.tail);
    const cap = first <= L.groupSmallRecordBytes ? first + L.groupSmallRecordBytes : Math.max(first, L.groupBytesMax);
    const room = Math.max(first, this.cfg.segmentBytes - this.offset);
    const g: Group = { end: this.tail, bytes: 0, records: 0, lastRev: this.lastRev, lastCrc: this.lastCrc };
    while (g.end !== head && R.typeAt(this.ring, g.end) === TYPE_ENTRY) {
      const size = this.frameAt(g.end);
      if (g.records > 0 && (g.bytes + size > cap || g.bytes + size > room)) break;
      const rev = R.revAt(this.ring, g.end);
      // (Messages only on failure: template strings here would be built for every frame.)
      if (rev !== g.lastRev + 1) assert(false, `ring frame rev ${rev} follows ${g.lastRev}`);
      g.lastRev = rev;
      g.lastCrc = R.readU32(this.ring, g.end);
      g.bytes += size;
      g.end = R.advance(g.end, size);
      g.records++;
    }
    return g;
  }

  /** Size of the frame at ring counter `pos`, padding included. */
  private frameAt(pos: number): number {
    const size = frameBytes(R.readU32(this.ring, pos + 4));
    if (!(size > FRAME_HEADER_BYTES && size <= L.recordBytesMax + 64)) assert(false, `ring frame size ${size} is sane`);
    return size;
  }

  private writeGroup(g: Group): void {
    const at = this.tail & this.ring.mask;
    const data = this.ring.data;
    const cap = this.ring.capacity;
    if (at + g.bytes <= cap) {
      this.io.pwrite(this.fd, data.subarray(at, at + g.bytes), this.offset);
    } else {
      const first = cap - at;
      this.io.pwrite(this.fd, data.subarray(at, cap), this.offset);
      this.io.pwrite(this.fd, data.subarray(0, g.bytes - first), this.offset + first);
    }
    this.ring.stats[R.STAT_WRITES]! += 1;
    this.offset += g.bytes;
    this.filledTo = Math.max(this.filledTo, this.offset);
  }

  private fdatasync(fd: number, prepare = false): void {
    const t0 = performance.now();
    this.io.fdatasync(fd);
    const ns = (performance.now() - t0) * 1e6;
    const s = this.ring.stats;
    if (prepare) {
      s[R.STAT_PREPARE_FSYNCS]! += 1;
      return;
    }
    s[R.STAT_FSYNCS]! += 1;
    s[R.STAT_FSYNC_NS_TOTAL]! += ns;
    R.observe(s, R.STAT_FSYNC_HIST, R.FSYNC_US_BOUNDS, ns / 1000);
    if (ns > s[R.STAT_FSYNC_NS_MAX]!) s[R.STAT_FSYNC_NS_MAX] = ns;
    if (fd === this.fd) {
      this.unsynced = false;
      this.lastSyncMs = performance.now();
      s[R.STAT_SYNCED_REV] = this.lastRev;
    }
  }

  /** Work for a quiet moment: the interval fdatasync, else one chunk of zero-filling. */
  private idleWork(): boolean {
    if (this.unsynced && (this.cfg.sync === "interval" || this.cfg.sync === "never")) {
      if (this.cfg.sync === "interval" && performance.now() - this.lastSyncMs >= this.cfg.syncIntervalMs) {
        this.fdatasync(this.fd);
        return true;
      }
    }
    return this.prepareChunk();
  }

  /**
   * Zero-fills one chunk, first of the current segment past its last write, then of the spare, and
   * fdatasyncs it: overwriting zeros later is cheaper than appending (no size or extent change to
   * flush), and a full disk shows up here, before any record depends on that space.
   */
  private prepareChunk(): boolean {
    this.groupsSincePrepare = 0;
    const segBytes = this.cfg.segmentBytes;
    if (this.filledTo < segBytes) {
      const n = Math.min(this.zeros.length, segBytes - this.filledTo);
      this.io.pwrite(this.fd, this.zeros.subarray(0, n), this.filledTo);
      this.filledTo += n;
      this.fdatasync(this.fd, true);
      return true;
    }
    if (this.spareFilled < segBytes) {
      if (this.spareFd < 0) this.spareFd = this.io.openWrite(this.sparePath(), { create: true, truncate: true });
      const n = Math.min(this.zeros.length, segBytes - this.spareFilled);
      this.io.pwrite(this.spareFd, this.zeros.subarray(0, n), this.spareFilled);
      this.spareFilled += n;
      this.fdatasync(this.spareFd, true);
      return true;
    }
    return false;
  }

  /** fdatasync the old segment, install the spare as the next one, continue there. */
  private rotate(): void {
    if (this.unsynced) this.fdatasync(this.fd);
    while (this.spareFilled < this.cfg.segmentBytes) this.prepareChunk();
    this.io.close(this.spareFd);
    this.spareFd = -1;
    this.spareFilled = 0;
    const header = { v: FORMAT_VERSION, db: this.cfg.dbId, seq: this.seq + 1, firstRev: this.lastRev + 1, prevCrc: this.lastCrc };
    const next = installSegment(this.io, this.cfg.walDir, this.sparePath(), header);
    this.io.close(this.fd);
    this.fd = this.io.openWrite(next.path);
    this.seq = header.seq;
    this.offset = this.segmentStart = next.start;
    this.filledTo = this.cfg.segmentBytes;
    this.ring.stats[R.STAT_SEGMENT_SEQ] = this.seq;
    if (this.heldBack > 0) {
      try {
        this.deleteCovered(this.heldBack);
      } catch (err) {
        this.reportSnapshotFailure(this.heldBack, err, `removing segments the archive now holds failed: `);
      }
    }
  }

  // ---- snapshots: the main thread encodes frames into the ring, the writer puts them in a file ----

  /** One snapshot frame from the ring: header (start a file), chunk (append) or footer (finish). */
  private snapshotFrame(): void {
    const size = this.frameAt(this.tail);
    const type = R.typeAt(this.ring, this.tail);
    const rev = R.revAt(this.ring, this.tail);
    const at = this.tail & this.ring.mask;
    // Written contiguously by the producer (into the slack past the end when it wraps).
    const frame = this.ring.data.subarray(at, at + size);
    if (type === TYPE_SNAP_HEADER) this.startSnapshot(rev, frame);
    else {
      const snap = this.snap;
      assert(snap !== null && snap.rev === rev, `snapshot frame (type ${type}) belongs to the snapshot in progress`);
      if (type === TYPE_SNAP_CHUNK) snap.write(frame);
      else {
        assert(type === TYPE_SNAP_FOOTER, `frame type ${type} is a snapshot frame`);
        snap.write(frame);
        this.finishSnapshot(snap);
      }
    }
    this.tail = R.advance(this.tail, size);
    Atomics.store(this.ring.ctl, R.ACKED, this.tail);
    this.signal();
  }

  private startSnapshot(rev: number, frame: Uint8Array): void {
    this.snap?.drop(); // abandoned: the main thread's encoder failed mid-snapshot
    this.ring.stats[R.STAT_SNAP_FAILED_REV] = -1;
    this.snap = new SnapshotFileWriter(this.io, this.cfg.snapDir, rev);
    this.snap.write(frame);
  }

  /**
   * The snapshot's order, as etcd's: the WAL is durable up to here (so a snapshot never holds a
   * revision the log could lose); the file is fdatasynced, read back and checked, renamed and its
   * directory fsynced; a marker goes into the WAL, fdatasynced; only then are the segments it
   * covers and older snapshots deleted. A crash between any two steps leaves a directory that opens.
   */
  private finishSnapshot(snap: SnapshotFileWriter): void {
    this.snap = null;
    // The WAL's own durability first: a failure here is the log's, and poisons (by throwing).
    try {
      if (this.unsynced) this.fdatasync(this.fd);
    } catch (err) {
      snap.drop();
      throw err;
    }
    try {
      snap.install();
    } catch (err) {
      this.reportSnapshotFailure(snap.rev, err, "");
      return;
    }
    this.ring.stats[R.STAT_SNAP_REV] = snap.rev;
    this.ring.stats[R.STAT_SNAP_BYTES] = snap.bytes;
    this.appendMarker(snap.rev, snap.bytes); // the log's: throws (poisons) on failure
    try {
      this.deleteCovered(snap.rev);
    } catch (err) {
      this.reportSnapshotFailure(snap.rev, err, `snapshot at rev ${snap.rev} is durable, but removing what it covers failed: `);
    }
  }

  /** A marker frame in the WAL, fdatasynced: records that the snapshot exists (dump, verify). */
  private appendMarker(snapRev: number, bytes: number): void {
    const frame = encodeFrame(TYPE_SNAPSHOT_MARKER, this.lastRev, payloadEncoder.encode({ rev: snapRev, bytes }));
    if (this.offset + frame.length > this.cfg.segmentBytes && this.offset > this.segmentStart) this.rotate();
    this.io.pwrite(this.fd, frame, this.offset);
    this.offset += frame.length;
    this.filledTo = Math.max(this.filledTo, this.offset);
    this.lastCrc = new DataView(frame.buffer).getUint32(0, true);
    this.fdatasync(this.fd);
  }

  /**
   * Deletes segments whose every entry is at or below `snapRev` (the next segment starts at or
   * before snapRev + 1), oldest first, and snapshots older than this one; then fsyncs both
   * directories. The segment holding snapRev + 1 and everything after it stay.
   */
  private deleteCovered(snapRev: number): void {
    // While the store is archived, a segment also waits until the archive holds it (no hole for a
    // restore: docs/archive-format.md); rotate() tries again for the ones held back.
    const archived = this.ring.stats[R.STAT_ARCHIVE_REV]!;
    const upTo = archived < 0 ? snapRev : Math.min(snapRev, archived);
    const segments = listSegments(this.io, this.cfg.walDir, false);
    let deleted = 0;
    this.heldBack = 0;
    for (let i = 0; i + 1 < segments.length; i++) {
      const seg = segments[i]!;
      if (segments[i + 1]!.firstRev > snapRev + 1 || seg.seq >= this.seq) break;
      if (segments[i + 1]!.firstRev > upTo + 1) {
        this.heldBack = snapRev;
        break;
      }
      this.io.unlink(path.join(this.cfg.walDir, seg.name));
      deleted++;
    }
    if (deleted > 0) this.io.fsyncDir(this.cfg.walDir);
    this.ring.stats[R.STAT_SNAP_SEGMENTS_DELETED]! += deleted;
    let old = 0;
    for (const s of listSnapshots(this.io, this.cfg.snapDir, false)) {
      if (s.rev < snapRev) {
        this.io.unlink(path.join(this.cfg.snapDir, s.name));
        old++;
      }
    }
    if (old > 0) this.io.fsyncDir(this.cfg.snapDir);
  }

  private reportSnapshotFailure(rev: number, err: unknown, prefix: string): void {
    const code = (err as NodeJS.ErrnoException).code;
    R.writeError(this.ring, `${prefix}${(err as Error).message ?? String(err)}`, this.ring.snapError);
    this.ring.stats[R.STAT_SNAP_FAIL_KIND] = code === "ENOSPC" ? R.FAIL_NO_SPACE : R.FAIL_IO;
    this.ring.stats[R.STAT_SNAP_FAILED_REV] = rev;
  }

  private sleep(head: number): void {
    const ctl = this.ring.ctl;
    const spinUntil = performance.now() + L.writerSpinUs / 1000;
    while (performance.now() < spinUntil) if (Atomics.load(ctl, R.HEAD) !== head) return;
    Atomics.store(ctl, R.SLEEPING, 1);
    // Interval mode must wake to sync; otherwise wake for zero-filling work now and then.
    const timeoutMs = this.unsynced && this.cfg.sync === "interval" ? this.cfg.syncIntervalMs : 1000;
    if (Atomics.load(ctl, R.HEAD) === head) Atomics.wait(ctl, R.HEAD, head, timeoutMs);
    Atomics.store(ctl, R.SLEEPING, 0);
  }

  private sparePath(): string {
    return path.join(this.cfg.walDir, SPARE_NAME);
  }

  /** Fail-stop: no retry on the same file (fsyncgate); the main thread fails every pending write. */
  private poison(err: unknown): void {
    const code = (err as NodeJS.ErrnoException).code;
    R.writeError(this.ring, `${(err as Error).message ?? String(err)}`);
    Atomics.store(this.ring.ctl, R.FAILED, code === "ENOSPC" ? R.FAIL_NO_SPACE : R.FAIL_IO);
    this.signal();
  }

  /** Wakes the main thread's waiter (WritePipeline.run): it waits on EVENTS, so neither an ack nor a failure is missed. */
  private signal(): void {
    R.signalEvents(this.ring);
  }

  private closeFiles(): void {
    for (const fd of [this.fd, this.spareFd]) {
      if (fd >= 0) {
        try {
          this.io.close(fd);
        } catch {
          // Closing after a failure may fail again; nothing depends on it.
        }
      }
    }
  }
}

