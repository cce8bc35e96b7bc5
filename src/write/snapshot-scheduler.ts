// Snapshots, from the main thread: when to take one, walking a view of the index into chunks, and
// handing the frames to the writer through the pipeline at a pace that leaves room for writes.

import * as path from "node:path";
import { ClosedError, HarmonyError, NoSpaceError, SnapshotFailedError } from "../errors.ts";
import { FORMAT_VERSION, TYPE_SNAP_CHUNK, TYPE_SNAP_FOOTER, TYPE_SNAP_HEADER, snapshotName } from "../format/constants.ts";
import * as L from "../limits.ts";
import { footerPayload, headerPayload } from "../snapshot/file.ts";
import type { IndexView, KeyIndex } from "../store/key-index.ts";
import { EncoderThread, snapshotChunks, type EncoderReply, type SnapshotChunks } from "../store/snapshot-encoder.ts";
import * as R from "../wal/ring.ts";
import type { WritePipeline } from "./pipeline.ts";

/** What a finished snapshot covers. */
export interface SnapshotInfo {
  /** Every write up to this revision is in the snapshot. */
  rev: number;
  keys: number;
  bytes: number;
  file: string;
  ms: number;
}

export interface SnapshotConfig {
  dir: string;
  dbId: string;
  /** Automatic snapshots after this many WAL bytes (0: off); undefined: the default, by live data. */
  everyBytes: number | undefined;
  chunkBytes: number;
  /** A snapshot of at least this many bytes is encoded in a worker. */
  workerBytes: number;
  log: (line: string) => void;
  /** WAL bytes after the newest snapshot when the store was opened. */
  walBytesAtOpen: number;
}

/**
 * While a snapshot runs with automatic snapshots on, the log may grow `logBytes` (the threshold) in
 * proportion to the bytes of snapshot `sent` out of about `expected`, from `log0`; writes beyond that
 * stall (as RocksDB's when compaction falls behind), so the log kept for a restart stays within
 * twice the threshold however hard it is written.
 */
interface SnapshotPace {
  log0: number;
  expected: number;
  logBytes: number;
  sent: number;
}

/** Submits one snapshot frame (a chunk's buffer goes back to `from` once written); drain() waits for all. */
type SnapshotSend = ((type: number, payload: Uint8Array, from?: SnapshotChunks) => Promise<void>) & { drain(): Promise<void> };

export class SnapshotScheduler {
  private run: Promise<SnapshotInfo> | null = null;
  /** The snapshot encoder worker, once a snapshot needed it (src/store/snapshot-encoder.ts). */
  private encoderThread: EncoderThread | null = null;
  /** WAL bytes after the newest snapshot: `walBytesBefore` + what the writer wrote since `walBytesMark`. */
  private walBytesBefore: number;
  private walBytesMark = 0;
  private taken = 0;
  private lastError: string | null = null;

  constructor(
    private readonly cfg: SnapshotConfig,
    private readonly ring: R.RingViews,
    private readonly index: KeyIndex,
    private readonly pipeline: WritePipeline,
  ) {
    this.walBytesBefore = cfg.walBytesAtOpen;
  }

  /**
   * Writes the index as of the newest durable revision to `snap/<rev>.snap`, then lets the writer
   * delete the WAL segments it covers. Reads and writes go on meanwhile (the index is cloned
   * copy-on-write in O(1) and encoded in chunks). One runs at a time: a second call joins it.
   */
  snapshot(): Promise<SnapshotInfo> {
    this.run ??= this.write().finally(() => (this.run = null));
    return this.run;
  }

  /** Starts a snapshot in the background once enough log has piled up since the last one. */
  maybeStart(): void {
    if (this.run !== null || this.pipeline.failure) return;
    const every = this.everyBytes();
    if (every <= 0 || this.walBytesSince() < every) return;
    this.snapshot().catch((err: Error) => this.cfg.log(`harmonydb: automatic ${err.message}`));
  }

  /**
   * A running snapshot finishes before the writer stops. And when the log since the last snapshot
   * is a good part of an automatic snapshot's worth, one is taken now, so the next open loads it
   * instead of replaying that log (as RocksDB flushes its memtable and PostgreSQL checkpoints at
   * shutdown). A failure is logged: the WAL still holds everything.
   */
  async beforeClose(): Promise<void> {
    const every = this.everyBytes();
    if (!this.run && !this.pipeline.failure && every > 0 && this.walBytesSince() >= every * L.snapshotOnCloseFraction) {
      this.snapshot().catch(() => {}); // awaited just below
    }
    if (this.run) await this.run.catch((err: Error) => this.cfg.log(`harmonydb: snapshot at close: ${err.message}`));
    this.encoderThread?.terminate();
  }

  stats() {
    const s = this.ring.stats;
    return {
      rev: s[R.STAT_SNAP_REV]!,
      bytes: s[R.STAT_SNAP_BYTES]!,
      running: this.run !== null,
      walBytesSince: this.walBytesSince(),
      everyBytes: this.everyBytes(),
      taken: this.taken,
      segmentsDeleted: s[R.STAT_SNAP_SEGMENTS_DELETED]!,
      writeStalls: this.pipeline.writeStalls,
      lastError: this.lastError,
    };
  }

  private async write(): Promise<SnapshotInfo> {
    const t0 = performance.now();
    const rev = this.pipeline.durableRev;
    const view = this.index.view();
    const keys = view.tree.size;
    const file = path.join(this.cfg.dir, "snap", snapshotName(rev));
    const stats = this.ring.stats;
    if (stats[R.STAT_SNAP_REV] === rev) return { rev, keys, bytes: stats[R.STAT_SNAP_BYTES]!, file, ms: 0 }; // nothing new
    this.walBytesBefore = 0;
    this.walBytesMark = stats[R.STAT_BYTES]!;
    const every = this.everyBytes();
    const expected = Math.max(1, this.index.liveBytes); // about the snapshot's size
    const pace = every > 0 ? { log0: stats[R.STAT_BYTES]!, expected, logBytes: every, sent: 0 } : null;
    const send = this.sender(rev, pace);
    let enc: SnapshotChunks | null = null;
    // Writes wait at the pipeline's gate while the snapshot is behind the log.
    if (pace !== null) this.pipeline.gate = () => !this.behind(pace);
    try {
      const thread = expected >= this.cfg.workerBytes ? (this.encoderThread ??= new EncoderThread()) : null;
      enc = snapshotChunks(view.blocks(), this.cfg.chunkBytes, thread);
      await send(TYPE_SNAP_HEADER, headerPayload({ v: FORMAT_VERSION, db: this.cfg.dbId, rev, keys }));
      const chunks = await this.sendChunks(view, enc, send, pace);
      await send(TYPE_SNAP_FOOTER, footerPayload({ keys, chunks }));
      await send.drain();
    } catch (err) {
      this.lastError = (err as Error).message;
      // Ours (the WAL failed, the store closed) as they are; the encoder's, as this snapshot's.
      if (err instanceof HarmonyError) throw err;
      throw new SnapshotFailedError(`harmonydb: snapshot at rev ${rev} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      enc?.close();
      this.pipeline.gate = null;
      this.pipeline.drainQueue(); // writes a stall held
    }
    if (stats[R.STAT_SNAP_REV] !== rev) {
      const msg = `harmonydb: snapshot at rev ${rev} failed: ${R.readError(this.ring, this.ring.snapError)}`;
      this.lastError = msg;
      throw stats[R.STAT_SNAP_FAIL_KIND] === R.FAIL_NO_SPACE ? new NoSpaceError(msg) : new SnapshotFailedError(msg);
    }
    this.taken++;
    this.lastError = stats[R.STAT_SNAP_FAILED_REV] === rev ? R.readError(this.ring, this.ring.snapError) : null;
    return { rev, keys, bytes: stats[R.STAT_SNAP_BYTES]!, file, ms: performance.now() - t0 };
  }

  /**
   * Walks the view in key order, has `enc` encode the records a batch of refs at a time, and sends
   * the chunks on; returns how many. The refs go one batch ahead: the encoder encodes the next
   * while the chunks of the last are passed on.
   */
  private async sendChunks(view: IndexView, enc: SnapshotChunks, send: SnapshotSend, pace: SnapshotPace | null): Promise<number> {
    let chunks = 0;
    const pass = async (reply: Promise<EncoderReply>) => {
      for (const c of (await reply).chunks) {
        chunks++;
        await send(TYPE_SNAP_CHUNK, c, enc);
      }
    };
    let ahead: Promise<EncoderReply> | null = null;
    let refs = enc.refsArray(L.snapshotRefsPerBatch);
    let n = 0;
    const flush = async () => {
      const next = enc.refs(refs, n);
      next.catch(() => {}); // seen when awaited; until then (or if an earlier one fails) not unhandled
      if (ahead) await pass(ahead);
      ahead = next;
      refs = enc.refsArray(L.snapshotRefsPerBatch);
      n = 0;
      // A turn of the event loop per batch, through a 0 ms timer: a timer runs after those already
      // due (readers'), where resuming from a frame's ack ran in the same turn as the writes' own
      // work, and setImmediate Bun runs seconds late under a steady write load. Not when the
      // snapshot is behind the log: writes are stalled then, and it must catch up.
      if (pace === null || !this.behind(pace, 0.5)) await new Promise((resolve) => setTimeout(resolve, 0));
    };
    for (const slot of view.tree.values()) {
      refs[n++] = view.ref(slot);
      if (n === refs.length) await flush();
    }
    if (n > 0) await flush();
    if (ahead) await pass(ahead);
    await pass(enc.end());
    return chunks;
  }

  /**
   * Hands snapshot frames to the writer, paced by it (docs/design-notes.md, "Snapshots"):
   * - at most snapshotFramesInFlight frames not yet written: the next one is sent once the oldest
   *   is written;
   * - while writes are in flight, at most snapshotBytesPerSecond (the snapshot's writeback slowed
   *   the WAL's fdatasyncs ~5x at full speed), waiting for its own frames rather than on a timer,
   *   unless the snapshot is falling behind the log (`pace`: then it goes as fast as it can, and
   *   each frame sent may end a write stall).
   */
  private sender(rev: number, pace: SnapshotPace | null): SnapshotSend {
    const t0 = performance.now();
    const inFlight: Promise<unknown>[] = [];
    let sentBytes = 0;
    // Polite, unless the log has used half of what the pace allows it so far.
    const ahead = () =>
      (sentBytes / L.snapshotBytesPerSecond) * 1000 - (performance.now() - t0) > 1 && !(pace !== null && this.behind(pace, 0.5));
    const send = async (type: number, payload: Uint8Array, from?: SnapshotChunks) => {
      const written = this.pipeline.submitFrame(type, rev, payload);
      // Once written (copied into the ring long before), the chunk's buffer holds a later one.
      written.then(() => from?.recycle(payload), () => {}); // a failure is seen where it is awaited
      inFlight.push(written);
      sentBytes += payload.length;
      if (pace !== null) {
        pace.sent = sentBytes;
        if (this.pipeline.queuedCount() > 0) this.pipeline.drainQueue(); // the stall may be over
      }
      if (inFlight.length > L.snapshotFramesInFlight) await inFlight.shift();
      while (ahead() && this.pipeline.pendingCount() > inFlight.length) {
        if (inFlight.length > 0) await inFlight.shift();
        else await Bun.sleep(5);
      }
    };
    return Object.assign(send, { drain: async () => void (await Promise.all(inFlight)) });
  }

  /**
   * Whether the log grew more than `fraction` of what the pace allows it by now: in proportion to
   * the snapshot's progress, up to `logBytes` (docs/design-notes.md: disk budget). Writes then stall.
   */
  private behind(p: SnapshotPace, fraction = 1): boolean {
    const allowed = p.logBytes * Math.min(1, (p.sent + L.snapshotPaceSlackBytes) / p.expected);
    return this.ring.stats[R.STAT_BYTES]! - p.log0 > fraction * allowed;
  }

  private walBytesSince(): number {
    return this.walBytesBefore + this.ring.stats[R.STAT_BYTES]! - this.walBytesMark;
  }

  private everyBytes(): number {
    if (this.cfg.everyBytes !== undefined) return this.cfg.everyBytes;
    return Math.max(L.snapshotEveryBytesMin, this.index.liveBytes * L.snapshotEveryLiveFraction);
  }
}
