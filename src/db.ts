// The main-thread engine: the durable index, pending writes, revisions, the ring producer.

import * as fs from "node:fs";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import hyperid from "hyperid";
import { verifyEnabled } from "./assert.ts";
import { copyBytes } from "./bytes.ts";
import {
  ClosedError,
  ConflictError,
  HarmonyError,
  InvalidArgumentError,
  InvalidKeyError,
  InvalidValueError,
  KeyTooLargeError,
  NoSpaceError,
  SnapshotFailedError,
  ValueTooLargeError,
  WalFailedError,
} from "./errors.ts";
import * as L from "./limits.ts";
import { KeyIndex, type IndexView } from "./store/key-index.ts";
import { Replay } from "./store/replay.ts";
import { footerPayload, headerPayload } from "./snapshot/file.ts";
import { EncoderThread, snapshotChunks, type EncoderReply, type SnapshotChunks } from "./store/snapshot-encoder.ts";
import { lockDir, type DirLock } from "./io/lock.ts";
import { checkWatchOptions, historyEvents, keyFilter, Watcher, type WatchEvent, type WatchOptions } from "./watch.ts";
import * as R from "./wal/ring.ts";
import { valueEncoder } from "./codec/cbor.ts";
import { entryPayloadBytes, utf8, utf8Bytes, writeHead, type Op } from "./format/encoder.ts";
import { FORMAT_VERSION, TYPE_SNAP_CHUNK, TYPE_SNAP_FOOTER, TYPE_SNAP_HEADER, frameBytes, snapshotName } from "./format/constants.ts";
import { nodeIO } from "./io/file-io.ts";
import { openLogAsync, type Apply, type ReplayProgress, type TornTail } from "./wal/recovery.ts";
import { continueLog, type SyncMode, type WriterConfig } from "./wal/writer.ts";

export interface Limits {
  keyBytesMax: number;
  valueBytesMax: number;
  batchOpsMax: number;
}

export interface OpenOptions {
  /** "always" (default): a write resolves after the fdatasync that covers it. See README. */
  sync?: SyncMode;
  /** With sync "interval": how often the writer fdatasyncs. */
  syncIntervalMs?: number;
  segmentBytes?: number;
  /** How long the writer may wait for more writes before a commit (default 0: natural batching). */
  commitDelayUs?: number;
  /** Ring between the main thread and the writer; a power of two ≥ 2 × the largest record. */
  ringBytes?: number;
  limits?: Partial<Limits>;
  /**
   * Take a snapshot once this many bytes were written to the WAL since the last one (0: never
   * automatically, nor at close). Default: the larger of 16 MiB and an eighth of the live data (the
   * bytes of the current records, about a snapshot's size); docs/design-notes.md says why not twice it.
   */
  snapshotEveryBytes?: number;
  /** @internal size of the chunks a snapshot is written in (tests use small ones). */
  snapshotChunkBytes?: number;
  /** @internal a snapshot of at least this many bytes is encoded in a worker (tests use 0). */
  snapshotWorkerBytes?: number;
  /** @internal open reads a snapshot of at least this many bytes on another thread (tests use 0). */
  snapshotPrefetchBytes?: number;
  onProgress?: (p: ReplayProgress) => void;
  /** Where recovery and the writer report events (torn tails). Default: console.warn. */
  log?: (line: string) => void;
  /** @internal tests only: replace the writer's file I/O (see WriterConfig.ioModule). */
  writerIO?: { path: string; options: unknown };
}

export interface Entry<V = unknown> {
  value: V;
  /** Revision of the last change to this key. */
  rev: number;
  /** Revision that created this key (since it last did not exist). */
  createRev: number;
  /** Number of changes since creation (1 after the first put). */
  version: number;
}

export interface RangeOptions {
  prefix?: string;
  gte?: string;
  gt?: string;
  lte?: string;
  lt?: string;
  reverse?: boolean;
  limit?: number;
}

export type BatchOp =
  | { type: "put"; key: string; value: unknown; ifRev?: number }
  | { type: "delete"; key: string; ifRev?: number };

export interface WriteOptions {
  /** The key's current revision must be this; 0 means the key must not exist. */
  ifRev?: number;
}

/** Per-bucket counts (not cumulative): counts[i] values were ≤ le[i] and above le[i − 1]. */
export interface Histogram {
  le: number[];
  counts: number[];
  sum: number;
  count: number;
}

export interface SnapshotInfo {
  /** Every write up to this revision is in the snapshot. */
  rev: number;
  keys: number;
  bytes: number;
  file: string;
  ms: number;
}

export interface Stats {
  rev: number;
  keys: number;
  sync: SyncMode;
  pendingWrites: number;
  queuedWrites: number;
  failed: string | null;
  wal: {
    segmentSeq: number;
    records: number;
    /** fdatasyncs that made records durable (group commits). */
    fsyncs: number;
    /** fdatasyncs of zero-filled space ahead of the log. */
    prepareFsyncs: number;
    writes: number;
    bytes: number;
    recordsPerFsync: number;
    fsyncMsAvg: number;
    fsyncMsMax: number;
    syncedRev: number;
    /** fdatasyncs of group commits by latency in µs. */
    fsyncLatencyUs: Histogram;
    /** Group commits by the number of records they carried. */
    batchRecords: Histogram;
  };
  /** Open watch() iterators. */
  watchers: number;
  /**
   * The value arena: bytes allocated, bytes of current records, bytes of overwritten ones awaiting
   * compaction; and whether the hash map is complete (false for a moment after a snapshot load).
   */
  memory: { arenaBytes: number; liveBytes: number; garbageBytes: number; mapFilled: boolean };
  recovery: {
    records: number;
    segments: number;
    ms: number;
    tornTail: TornTail | null;
    /** The snapshot open() started from, if any. */
    snapshot: { rev: number; keys: number; bytes: number } | null;
  };
  snapshot: {
    /** Revision and size of the newest durable snapshot (0 when there is none). */
    rev: number;
    bytes: number;
    running: boolean;
    /** WAL bytes written after the newest snapshot's revision (what a restart replays). */
    walBytesSince: number;
    /** The threshold for the next automatic snapshot (0: automatic snapshots are off). */
    everyBytes: number;
    taken: number;
    segmentsDeleted: number;
    /** Times writes had to wait for a running automatic snapshot that fell behind the log (write stalls). */
    writeStalls: number;
    lastError: string | null;
  };
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

interface Write {
  /** A snapshot frame instead of an entry: published as is, resolved with `rev` once written. */
  frame?: { type: number; rev: number; payload: Uint8Array };
  ops: Op[];
  /** UTF-8 length of each op's key, and the payload length they add up to. */
  keyBytes: number[];
  payloadBytes: number;
  conds: { key: string; ifRev: number }[];
  /** A delete; of a key that does not exist, it writes nothing. */
  isDelete: boolean;
  /** Called with the revision, or with { rev, deleted } for a delete. */
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
}

interface Pending {
  end: number; // ring counter after this frame: durable once ACKED reaches it
  rev: number;
  ops: Op[] | null;
  /** null: resolve with the revision; else a delete, resolved with { rev, deleted }. */
  deleted: boolean | null;
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
}

export class Db {
  private readonly index: KeyIndex;
  private readonly limits: Limits;
  private readonly syncMode: SyncMode;
  /**
   * Newest state of keys with writes in flight, for conditions and deletes: rev if the last write
   * put the key, −rev if it deleted it; entries at or below durableRev are stale (the index knows
   * better). Built from the pending queue by the first write that needs it, kept up to date only
   * while valid, dropped when nothing is in flight: writes without conditions never pay for it
   * (a Map insert is ~0.5 µs, a fifth of a put's main-thread work).
   */
  private readonly newest = new Map<string, number>();
  private newestValid = false;
  private readonly watchers = new Set<Watcher>();
  private readonly pending: Pending[] = [];
  private pendingHead = 0;
  private readonly queued: Write[] = [];
  private queuedHead = 0;
  /** Snapshot frames waiting for room in the ring; they go before queued writes. */
  private readonly queuedFrames: Write[] = [];
  /** The running snapshot's pace, when automatic snapshots are on (snapshotPace). */
  private pace: SnapshotPace | null = null;
  private writeStalls = 0;
  /** The snapshot encoder worker, once a snapshot needed it (src/store/snapshot-encoder.ts). */
  private encoderThread: EncoderThread | null = null;
  private stalled = false;
  private head = R.START_POS;
  private seenAcked = R.START_POS;
  private workerExited = false;
  private nextRev: number;
  private durableRev: number;
  private state: "open" | "closing" | "closed" = "open";
  private failure: HarmonyError | null = null;
  private workerRefd = false;
  private closePromise: Promise<void> | null = null;
  /** close() waiting for the writes in flight; called once nothing is pending or queued. */
  private onIdle: (() => void) | null = null;
  private snapshotRun: Promise<SnapshotInfo> | null = null;
  /** WAL bytes after the newest snapshot: `walBytesBefore` + what the writer wrote since `walBytesMark`. */
  private walBytesBefore: number;
  private walBytesMark = 0;
  private snapshotsTaken = 0;
  private snapshotError: string | null = null;

  /** @internal use open() */
  constructor(
    readonly dir: string,
    private readonly ring: R.RingViews,
    private readonly worker: Worker,
    private readonly lock: DirLock,
    private readonly o: Resolved,
    private readonly dbId: string,
    private readonly recoveryStats: Stats["recovery"],
    index: KeyIndex,
    lastRev: number,
    walBytesAfterSnapshot: number,
  ) {
    this.index = index;
    this.limits = o.limits;
    this.syncMode = o.sync;
    this.walBytesBefore = walBytesAfterSnapshot;
    this.nextRev = lastRev + 1;
    this.durableRev = lastRev;
    this.worker.unref();
    this.worker.on("error", (err: Error) => this.poison(new WalFailedError(`writer worker crashed: ${err.message}`, { cause: err })));
    this.worker.on("exit", (code) => {
      this.workerExited = true;
      // Whatever the worker made durable before it went is settled first; the rest fails, with
      // the worker's own error when it reported one (a full disk must say NO_SPACE).
      if (Atomics.load(this.ring.ctl, R.FAILED) !== R.FAIL_NONE) this.poison(failureFromRing(this.ring));
      else if (this.state === "open" || !this.idle()) {
        this.poison(new WalFailedError(`writer worker exited unexpectedly (code ${code})`));
      }
    });
    void this.dispatch();
    // From the next turn on: the tree serves reads meanwhile. Its first slice reserves the map's
    // table (16 MB for 1M keys, ~50-80 ms of fresh memory here), which open() need not wait for.
    setTimeout(() => this.indexWork(), 0).unref();
  }

  /**
   * The index's background work after open (filling its hash map, then compacting what replay
   * left), a slice per event-loop turn: open() does not wait for a million map inserts. Under a
   * steady write load timers run late, so dispatch() also does a slice per round (settle).
   */
  private indexWork(): void {
    if (this.state === "closed" || this.index.backgroundWork(L.indexWorkPerTurn)) return;
    setTimeout(() => this.indexWork(), 0).unref();
  }

  /** The revision of the newest durable write. */
  get rev(): number {
    return this.durableRev;
  }

  get(key: string): unknown {
    checkKeyType(key);
    return this.index.get(key);
  }

  getEntry(key: string): Entry | undefined {
    checkKeyType(key);
    return this.index.getEntry(key);
  }

  has(key: string): boolean {
    checkKeyType(key);
    return this.index.has(key);
  }

  /**
   * Keys in JavaScript string order (UTF-16 code units). The iteration sees the index as it was when
   * range() was called (an O(1) copy-on-write clone), whatever is written meanwhile.
   */
  range(opts: RangeOptions = {}): Iterable<{ key: string; value: unknown; rev: number }> {
    const b = rangeBounds(opts);
    const view = this.index.view();
    return {
      *[Symbol.iterator]() {
        if (b.limit <= 0) return;
        let n = 0;
        const it = b.reverse ? view.tree.entriesReversed(b.hi) : view.tree.entries(b.lo);
        for (const [key, slot] of it) {
          // Past the far bound: done. Before the near bound (an exclusive start): skip.
          if (b.reverse ? !b.aboveLo(key) : !b.belowHi(key)) return;
          if (b.reverse ? !b.belowHi(key) : !b.aboveLo(key)) continue;
          const rev = view.record(slot).rev;
          yield { key, value: view.value(slot), rev };
          if (++n >= b.limit) return;
        }
      },
    };
  }

  /**
   * Changes to keys matching `opts`, in revision order, durable ones only: from `fromRev` (read from
   * the WAL while it reaches back that far, else CompactedError), then live. A consumer that falls
   * `bufferMax` events behind is cut off with WatchOverflowError; `return()` cancels.
   */
  watch(opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    checkWatchOptions(opts);
    if (this.state !== "open") throw new ClosedError();
    const upTo = this.durableRev;
    const fromRev = opts.fromRev ?? upTo + 1;
    const history = fromRev <= upTo ? historyEvents(path.join(this.dir, "wal"), fromRev, upTo, keyFilter(opts)) : null;
    const w = new Watcher(opts, history, (x) => this.watchers.delete(x));
    this.watchers.add(w);
    return w;
  }

  // put/delete/batch are plain functions returning the write's own promise (not async functions
  // wrapping it): one promise per write instead of two. Every error still arrives as a rejection.

  put(key: string, value: unknown, opts?: WriteOptions): Promise<number> {
    try {
      this.checkWritable();
      checkKey(key, this.limits);
      const conds = condition(key, opts?.ifRev);
      return this.submit([[key, this.encodeValue(value)]], conds, false) as Promise<number>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  delete(key: string, opts?: WriteOptions): Promise<{ rev: number; deleted: boolean }> {
    try {
      this.checkWritable();
      checkKey(key, this.limits);
      return this.submit([[key]], condition(key, opts?.ifRev), true) as Promise<{ rev: number; deleted: boolean }>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** All operations in one WAL record: after a crash they are all there or all gone. */
  batch(ops: BatchOp[]): Promise<number> {
    try {
      return this.submit(...this.batchWrite(ops)) as Promise<number>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private batchWrite(ops: BatchOp[]): [Op[], Write["conds"], boolean] {
    this.checkWritable();
    if (!Array.isArray(ops) || ops.length === 0) throw new InvalidArgumentError("batch needs a non-empty array of operations");
    if (ops.length > this.limits.batchOpsMax) {
      throw new InvalidArgumentError(`batch has ${ops.length} operations, the limit is ${this.limits.batchOpsMax}`);
    }
    const out: Op[] = [];
    const conds: Write["conds"] = [];
    for (const op of ops) {
      checkKey(op?.key, this.limits);
      conds.push(...condition(op.key, op.ifRev));
      if (op.type === "put") out.push([op.key, this.encodeValue(op.value)]);
      else if (op.type === "delete") out.push([op.key]);
      else throw new InvalidArgumentError(`batch op type must be "put" or "delete", got ${JSON.stringify((op as { type: unknown }).type)}`);
    }
    return [out, conds, false];
  }

  stats(): Stats {
    const s = this.ring.stats;
    const fsyncs = s[R.STAT_FSYNCS]!;
    return {
      rev: this.durableRev,
      keys: this.index.size,
      sync: this.syncMode,
      pendingWrites: this.pending.length - this.pendingHead,
      queuedWrites: this.queued.length - this.queuedHead,
      failed: this.failure?.message ?? null,
      wal: {
        segmentSeq: s[R.STAT_SEGMENT_SEQ]!,
        records: s[R.STAT_RECORDS]!,
        fsyncs,
        prepareFsyncs: s[R.STAT_PREPARE_FSYNCS]!,
        writes: s[R.STAT_WRITES]!,
        bytes: s[R.STAT_BYTES]!,
        recordsPerFsync: fsyncs === 0 ? 0 : s[R.STAT_RECORDS]! / fsyncs,
        fsyncMsAvg: fsyncs === 0 ? 0 : s[R.STAT_FSYNC_NS_TOTAL]! / fsyncs / 1e6,
        fsyncMsMax: s[R.STAT_FSYNC_NS_MAX]! / 1e6,
        syncedRev: s[R.STAT_SYNCED_REV]!,
        fsyncLatencyUs: histogram(s, R.STAT_FSYNC_HIST, R.FSYNC_US_BOUNDS, s[R.STAT_FSYNC_NS_TOTAL]! / 1000),
        batchRecords: histogram(s, R.STAT_BATCH_HIST, R.BATCH_RECORDS_BOUNDS, s[R.STAT_RECORDS]!),
      },
      watchers: this.watchers.size,
      memory: { ...this.index.memory(), mapFilled: this.index.mapFilled },
      recovery: this.recoveryStats,
      snapshot: {
        rev: s[R.STAT_SNAP_REV]!,
        bytes: s[R.STAT_SNAP_BYTES]!,
        running: this.snapshotRun !== null,
        walBytesSince: this.walBytesSince(),
        everyBytes: this.snapshotEveryBytes(),
        taken: this.snapshotsTaken,
        segmentsDeleted: s[R.STAT_SNAP_SEGMENTS_DELETED]!,
        writeStalls: this.writeStalls,
        lastError: this.snapshotError,
      },
    };
  }

  // ---- snapshots ----

  /**
   * Writes the index as of the newest durable revision to `snap/<rev>.snap`, then lets the writer
   * delete the WAL segments it covers. Reads and writes go on meanwhile (the index is cloned
   * copy-on-write in O(1) and encoded in chunks). One runs at a time: a second call joins it.
   */
  snapshot(): Promise<SnapshotInfo> {
    if (this.state !== "open") return Promise.reject(new ClosedError());
    if (this.failure) return Promise.reject(this.failure);
    this.snapshotRun ??= this.writeSnapshot().finally(() => (this.snapshotRun = null));
    return this.snapshotRun;
  }

  private async writeSnapshot(): Promise<SnapshotInfo> {
    const t0 = performance.now();
    const rev = this.durableRev;
    const view = this.index.view();
    const keys = view.tree.size;
    const file = path.join(this.dir, "snap", snapshotName(rev));
    const stats = this.ring.stats;
    if (stats[R.STAT_SNAP_REV] === rev) return { rev, keys, bytes: stats[R.STAT_SNAP_BYTES]!, file, ms: 0 }; // nothing new
    this.walBytesBefore = 0;
    this.walBytesMark = stats[R.STAT_BYTES]!;
    const every = this.snapshotEveryBytes();
    const expected = Math.max(1, this.index.liveBytes); // about the snapshot's size
    const pace = every > 0 ? { log0: stats[R.STAT_BYTES]!, expected, logBytes: every, sent: 0 } : null;
    const send = this.snapshotSender(rev, pace);
    let enc: SnapshotChunks | null = null;
    this.pace = pace;
    try {
      const thread = expected >= this.o.snapshotWorkerBytes ? (this.encoderThread ??= new EncoderThread()) : null;
      enc = snapshotChunks(view.blocks(), this.o.snapshotChunkBytes, thread);
      await send(TYPE_SNAP_HEADER, headerPayload({ v: FORMAT_VERSION, db: this.dbId, rev, keys }));
      const chunks = await this.sendChunks(view, enc, send, pace);
      await send(TYPE_SNAP_FOOTER, footerPayload({ keys, chunks }));
      await send.drain();
    } catch (err) {
      this.snapshotError = (err as Error).message;
      // Ours (the WAL failed, the store closed) as they are; the encoder's, as this snapshot's.
      if (err instanceof HarmonyError) throw err;
      throw new SnapshotFailedError(`harmonydb: snapshot at rev ${rev} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      enc?.close();
      this.pace = null;
      this.drainQueue(); // writes a stall held
    }
    if (stats[R.STAT_SNAP_REV] !== rev) {
      const msg = `harmonydb: snapshot at rev ${rev} failed: ${R.readError(this.ring, this.ring.snapError)}`;
      this.snapshotError = msg;
      throw stats[R.STAT_SNAP_FAIL_KIND] === R.FAIL_NO_SPACE ? new NoSpaceError(msg) : new SnapshotFailedError(msg);
    }
    this.snapshotsTaken++;
    this.snapshotError = stats[R.STAT_SNAP_FAILED_REV] === rev ? R.readError(this.ring, this.ring.snapError) : null;
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
      if (pace === null || !this.snapshotBehind(pace, 0.5)) await new Promise((resolve) => setTimeout(resolve, 0));
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
  private snapshotSender(rev: number, pace: SnapshotPace | null): SnapshotSend {
    const t0 = performance.now();
    const inFlight: Promise<unknown>[] = [];
    let sentBytes = 0;
    // Polite, unless the log has used half of what the pace allows it so far.
    const ahead = () =>
      (sentBytes / L.snapshotBytesPerSecond) * 1000 - (performance.now() - t0) > 1 && !(pace !== null && this.snapshotBehind(pace, 0.5));
    const send = async (type: number, payload: Uint8Array, from?: SnapshotChunks) => {
      const written = this.submitFrame(type, rev, payload);
      // Once written (copied into the ring long before), the chunk's buffer holds a later one.
      written.then(() => from?.recycle(payload), () => {}); // a failure is seen where it is awaited
      inFlight.push(written);
      sentBytes += payload.length;
      if (pace !== null) {
        pace.sent = sentBytes;
        if (this.queued.length > this.queuedHead) {
          this.drainQueue(); // the stall may be over
        }
      }
      if (inFlight.length > L.snapshotFramesInFlight) await inFlight.shift();
      while (ahead() && this.pendingCount() > inFlight.length) {
        if (inFlight.length > 0) await inFlight.shift();
        else await Bun.sleep(5);
      }
    };
    return Object.assign(send, { drain: async () => void (await Promise.all(inFlight)) });
  }

  private submitFrame(type: number, rev: number, payload: Uint8Array): Promise<unknown> {
    // A snapshot in progress goes on while close() waits for it; writes do not.
    if (this.state === "closed") return Promise.reject(new ClosedError());
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const w: Write = { frame: { type, rev, payload }, ops: [], keyBytes: [], payloadBytes: payload.length, conds: [], isDelete: false, resolve, reject };
      if (this.queuedFrames.length > 0 || !this.publish(w)) this.queuedFrames.push(w);
    });
  }

  /**
   * Whether the log grew more than `fraction` of what the pace allows it by now: in proportion to
   * the snapshot's progress, up to `logBytes` (docs/design-notes.md: disk budget). Writes then stall.
   */
  private snapshotBehind(p: SnapshotPace, fraction = 1): boolean {
    const allowed = p.logBytes * Math.min(1, (p.sent + L.snapshotPaceSlackBytes) / p.expected);
    return this.ring.stats[R.STAT_BYTES]! - p.log0 > fraction * allowed;
  }

  private walBytesSince(): number {
    return this.walBytesBefore + this.ring.stats[R.STAT_BYTES]! - this.walBytesMark;
  }

  private snapshotEveryBytes(): number {
    if (this.o.snapshotEveryBytes !== undefined) return this.o.snapshotEveryBytes;
    return Math.max(L.snapshotEveryBytesMin, this.index.liveBytes * L.snapshotEveryLiveFraction);
  }

  /** Starts a snapshot in the background once enough log has piled up since the last one. */
  private maybeAutoSnapshot(): void {
    if (this.snapshotRun !== null || this.state !== "open" || this.failure) return;
    const every = this.snapshotEveryBytes();
    if (every <= 0 || this.walBytesSince() < every) return;
    this.snapshot().catch((err: Error) => this.o.log(`harmonydb: automatic ${err.message}`));
  }

  /** Waits for every accepted write, stops the writer, releases the lock. Idempotent. */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.state = "closing";
    // Every write accepted before close() lands (or fails) first.
    if (!this.idle()) await new Promise<void>((resolve) => (this.onIdle = resolve));
    await this.snapshotBeforeClose();
    this.encoderThread?.terminate();
    const closed = new Promise<void>((resolve) => {
      if (this.workerExited) return resolve(); // it stopped on a failure already
      this.worker.once("exit", () => resolve());
      this.worker.once("message", (m: { type?: string }) => m?.type === "closed" && resolve());
    });
    this.worker.ref();
    Atomics.store(this.ring.ctl, R.STATE, R.CLOSING);
    Atomics.notify(this.ring.ctl, R.HEAD);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, L.workerStartMsMax)))]);
    clearTimeout(timer);
    await this.worker.terminate();
    this.state = "closed";
    for (const w of [...this.watchers]) w.fail(new ClosedError());
    Atomics.notify(this.ring.ctl, R.EVENTS); // ends dispatch()
    this.lock.release();
  }

  /**
   * A running snapshot finishes before the writer stops. And when the log since the last snapshot
   * is a good part of an automatic snapshot's worth, one is taken now, so the next open loads it
   * instead of replaying that log (as RocksDB flushes its memtable and PostgreSQL checkpoints at
   * shutdown). A failure is logged: the WAL still holds everything.
   */
  private async snapshotBeforeClose(): Promise<void> {
    const every = this.snapshotEveryBytes();
    if (!this.snapshotRun && !this.failure && every > 0 && this.walBytesSince() >= every * L.snapshotOnCloseFraction) {
      this.snapshotRun = this.writeSnapshot().finally(() => (this.snapshotRun = null));
    }
    if (this.snapshotRun) await this.snapshotRun.catch((err: Error) => this.o.log(`harmonydb: snapshot at close: ${err.message}`));
  }

  // ---- write path ----

  private checkWritable(): void {
    if (this.state !== "open") throw new ClosedError();
    if (this.failure) throw this.failure;
  }

  /** The value's CBOR encoding, in a buffer of its own (so later changes by the caller do not matter). */
  private encodeValue(value: unknown): Uint8Array {
    if (value === undefined) throw new InvalidValueError("value is undefined (use delete to remove a key)");
    if (typeof value === "string" && !value.isWellFormed()) {
      throw new InvalidValueError("string value has a lone UTF-16 surrogate (it would not read back the same)");
    }
    let bytes: Uint8Array;
    try {
      // cbor-x returns a view into its reusable buffer (which grows to the largest value ever
      // encoded): copy it, or one small value would keep that whole buffer alive.
      bytes = fastEncode(value) ?? new Uint8Array(valueEncoder.encode(value));
    } catch (cause) {
      throw new InvalidValueError(`value cannot be encoded as CBOR: ${(cause as Error).message}`, { cause });
    }
    if (bytes.length > this.limits.valueBytesMax) throw new ValueTooLargeError(bytes.length, this.limits.valueBytesMax);
    return bytes;
  }

  private submit(
    ops: Op[],
    conds: Write["conds"],
    isDelete: boolean,
  ): Promise<unknown> {
    const keyBytes = ops.length === 1 ? [utf8Bytes(ops[0]![0])] : ops.map((op) => utf8Bytes(op[0]));
    const payloadBytes = entryPayloadBytes(ops, keyBytes);
    const recordMax = this.limits.valueBytesMax + L.recordSlackBytes;
    if (frameBytes(payloadBytes) > recordMax) throw new ValueTooLargeError(payloadBytes, recordMax);
    return new Promise((resolve, reject) => {
      const w: Write = { ops, keyBytes, payloadBytes, conds, isDelete, resolve, reject };
      if (this.queued.length > this.queuedHead || !this.publish(w)) this.queued.push(w);
    });
  }

  /**
   * Assigns the next revision and copies the frame into the ring, or returns false when the ring
   * has no room (the write then queues: backpressure, never a drop). Conditions are checked here,
   * against the newest state including writes not yet durable.
   */
  private publish(w: Write): boolean {
    const ring = this.ring;
    const size = frameBytes(w.payloadBytes);
    if (size > ring.capacity - R.diff(this.head, this.seenAcked)) return false;
    if (!w.frame && this.pace !== null && this.snapshotBehind(this.pace)) {
      if (!this.stalled) this.writeStalls++; // it waits in the queue until the snapshot catches up
      this.stalled = true;
      return false;
    }
    if (!w.frame) this.stalled = false;
    if (w.frame) {
      this.head = R.putFrame(ring, this.head, w.frame.type, w.frame.rev, w.frame.payload);
      this.enqueuePending({ end: this.head, rev: w.frame.rev, ops: null, deleted: null, resolve: w.resolve, reject: w.reject });
      this.publishHead();
      return true;
    }
    for (const c of w.conds) {
      const cur = this.newestRev(c.key);
      if (cur !== c.ifRev) {
        w.reject(new ConflictError(c.key, c.ifRev, cur));
        return true;
      }
    }
    if (w.isDelete && this.newestRev(w.ops[0]![0]) === 0) {
      // Nothing to delete: no record, but resolve only once everything before it is durable.
      this.enqueuePending({ end: this.head, rev: this.nextRev - 1, ops: null, deleted: false, resolve: w.resolve, reject: w.reject });
      return true;
    }
    const rev = this.nextRev++;
    // The frame is built in place: payload first, then the header with its CRC over both.
    this.head = R.putEntry(ring, this.head, rev, w.ops, w.keyBytes, w.payloadBytes);
    if (this.newestValid) for (const op of w.ops) this.newest.set(op[0], op.length === 2 ? rev : -rev);
    this.enqueuePending({ end: this.head, rev, ops: w.ops, deleted: w.isDelete ? true : null, resolve: w.resolve, reject: w.reject });
    this.publishHead();
    return true;
  }

  /**
   * Published at once, so the writer starts its write and fdatasync while we frame the next
   * writes (pipelining); it is woken only if it is parked, which it says in SLEEPING.
   */
  private publishHead(): void {
    Atomics.store(this.ring.ctl, R.HEAD, this.head);
    if (Atomics.load(this.ring.ctl, R.SLEEPING) === 1) Atomics.notify(this.ring.ctl, R.HEAD);
  }

  private newestRev(key: string): number {
    if (!this.newestValid) this.buildNewest();
    const n = this.newest.get(key);
    if (n !== undefined && Math.abs(n) > this.durableRev) return n > 0 ? n : 0;
    return this.index.revOf(key);
  }

  private buildNewest(): void {
    this.newest.clear();
    for (let i = this.pendingHead; i < this.pending.length; i++) {
      const p = this.pending[i]!;
      if (p.ops) for (const op of p.ops) this.newest.set(op[0], op.length === 2 ? p.rev : -p.rev);
    }
    this.newestValid = true;
  }

  private enqueuePending(p: Pending): void {
    if (this.pendingCount() === 0 && p.ops === null && p.deleted === false) {
      p.resolve({ rev: this.durableRev, deleted: false });
      return;
    }
    this.pending.push(p);
    if (!this.workerRefd) {
      this.worker.ref(); // a pending write keeps the process alive; an idle database does not
      this.workerRefd = true;
    }
  }

  private pendingCount(): number {
    return this.pending.length - this.pendingHead;
  }

  private idle(): boolean {
    return this.pendingCount() === 0 && this.queued.length === this.queuedHead && this.queuedFrames.length === 0;
  }

  private notifyIfIdle(): void {
    if (this.onIdle && this.idle()) {
      const f = this.onIdle;
      this.onIdle = null;
      f();
    }
  }

  // ---- durable side ----

  /** The one waiter on ACKED: applies what became durable, resolves it, refills the ring. */
  private async dispatch(): Promise<void> {
    const ctl = this.ring.ctl;
    while (this.state !== "closed") {
      // Read EVENTS before looking: a change after this point makes the wait return at once.
      const events = Atomics.load(ctl, R.EVENTS);
      const acked = Atomics.load(ctl, R.ACKED);
      if (acked !== this.seenAcked) {
        this.seenAcked = acked;
        this.settle(acked);
        this.drainQueue();
        this.maybeAutoSnapshot();
        if (!this.index.mapFilled) this.index.backgroundWork(L.indexWorkPerDispatch);
        continue;
      }
      if (Atomics.load(ctl, R.FAILED) !== R.FAIL_NONE && !this.failure) {
        this.poison(failureFromRing(this.ring));
        continue;
      }
      const w = Atomics.waitAsync(ctl, R.EVENTS, events);
      if (w.async) await w.value;
    }
  }

  private settle(acked: number): void {
    const done: Pending[] = [];
    while (this.pendingHead < this.pending.length) {
      const p = this.pending[this.pendingHead]!;
      if (R.diff(acked, p.end) < 0) break;
      this.pendingHead++;
      if (p.ops) {
        this.apply(p.rev, p.ops);
        if (this.watchers.size > 0) this.fanOut(p.rev, p.ops);
      }
      done.push(p);
    }
    if (this.pendingHead === this.pending.length) {
      this.pending.length = 0;
      this.pendingHead = 0;
      this.newest.clear(); // nothing in flight: every entry is stale
      this.newestValid = false;
      if (this.workerRefd) {
        this.worker.unref();
        this.workerRefd = false;
      }
    }
    if (this.newestValid && this.newest.size > 4 * this.pendingCount() + 1024) {
      this.newest.clear(); // mostly stale: rebuild from the pending queue when next needed
      this.newestValid = false;
    }
    // Visible in the index before any of these promises resolves, never before it is durable.
    for (const p of done) p.resolve(p.deleted === null ? p.rev : { rev: p.rev, deleted: p.deleted });
  }

  private apply(rev: number, ops: Op[]): void {
    this.index.apply(rev, ops);
    this.durableRev = rev;
  }

  private fanOut(rev: number, ops: Op[]): void {
    for (const op of ops) {
      const key = op[0];
      const stored = op.length === 2 ? this.index.handle(key) : null;
      for (const w of this.watchers) if (w.matches(key)) w.push(rev, key, stored);
    }
  }

  /**
   * Publishes what waits for the ring (frames first), then tells close() if that left nothing in
   * flight: a queued write may settle at once (a failed condition, a delete of a missing key).
   */
  private drainQueue(): void {
    this.publishQueued();
    this.notifyIfIdle();
  }

  private publishQueued(): void {
    while (this.queuedFrames.length > 0 && this.state !== "closed" && !this.failure) {
      if (!this.publish(this.queuedFrames[0]!)) return;
      this.queuedFrames.shift();
    }
    while (this.queuedHead < this.queued.length && this.state !== "closed" && !this.failure) {
      if (!this.publish(this.queued[this.queuedHead]!)) return;
      this.queued[this.queuedHead++] = undefined as unknown as Write;
    }
    if (this.queuedHead === this.queued.length) {
      this.queued.length = 0;
      this.queuedHead = 0;
    }
  }

  /** The WAL failed: every write in flight and every later one fails; reads go on. */
  private poison(err: HarmonyError): void {
    if (this.failure) return;
    // Writes the worker acknowledged before it failed are durable: they resolve, not fail.
    const acked = Atomics.load(this.ring.ctl, R.ACKED);
    if (acked !== this.seenAcked) {
      this.seenAcked = acked;
      this.settle(acked);
    }
    this.failure = err;
    for (let i = this.pendingHead; i < this.pending.length; i++) this.pending[i]!.reject(err);
    for (let i = this.queuedHead; i < this.queued.length; i++) this.queued[i]!.reject(err);
    for (const w of this.queuedFrames.splice(0)) w.reject(err);
    this.pending.length = this.pendingHead = 0;
    this.queued.length = this.queuedHead = 0;
    this.newest.clear();
    this.newestValid = false;
    if (this.workerRefd) {
      this.worker.unref();
      this.workerRefd = false;
    }
    this.notifyIfIdle();
  }
}

// ---- helpers (pure) ----


/**
 * The CBOR cbor-x would write, for the two commonest value shapes, without its buffer management:
 * a Uint8Array (tag 64 + byte string) and a string (text string).
 */
function fastEncode(value: unknown): Uint8Array | null {
  if (value instanceof Uint8Array && value.constructor === Uint8Array) {
    const n = value.length;
    const head = n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    const out = new Uint8Array(2 + head + n);
    out[0] = 0xd8;
    out[1] = 0x40;
    writeHead(out, 2, 0x40, n);
    copyBytes(out, 2 + head, value, 0, n);
    return out;
  }
  if (typeof value === "string" && value.length < 0x10000) {
    const n = utf8Bytes(value);
    const head = n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    const out = new Uint8Array(head + n);
    writeHead(out, 0, 0x60, n);
    if (n === value.length) for (let i = 0; i < n; i++) out[head + i] = value.charCodeAt(i);
    else utf8.encodeInto(value, out.subarray(head));
    return out;
  }
  return null;
}

function checkKeyType(key: unknown): asserts key is string {
  if (typeof key !== "string") throw new InvalidKeyError(`key must be a string, got ${typeof key}`);
}

function checkKey(key: unknown, limits: Limits): asserts key is string {
  checkKeyType(key);
  if (key.length === 0) throw new InvalidKeyError("key must not be empty");
  // A lone surrogate has no UTF-8 form: two such keys would become one after a restart.
  if (!key.isWellFormed()) throw new InvalidKeyError("key has a lone UTF-16 surrogate (not valid Unicode)");
  // Cheap bound first: a UTF-8 byte is at most 3 per UTF-16 unit.
  if (key.length * 3 > limits.keyBytesMax) {
    const bytes = utf8Bytes(key);
    if (bytes > limits.keyBytesMax) throw new KeyTooLargeError(bytes, limits.keyBytesMax);
  }
}

/** A write without conditions (shared, never changed: batchWrite copies conditions out of it). */
const NO_CONDS: Write["conds"] = [];

function condition(key: string, ifRev: number | undefined): Write["conds"] {
  if (ifRev === undefined) return NO_CONDS;
  if (!Number.isSafeInteger(ifRev) || ifRev < 0) throw new InvalidArgumentError(`ifRev must be an integer ≥ 0, got ${ifRev}`);
  return [{ key, ifRev }];
}

interface Bounds {
  lo: string | undefined;
  hi: string | undefined;
  aboveLo: (k: string) => boolean;
  belowHi: (k: string) => boolean;
  reverse: boolean;
  limit: number;
}

function rangeBounds(o: RangeOptions): Bounds {
  const { prefix, gte, gt, lte, lt } = o;
  let lo = gte ?? gt;
  if (prefix !== undefined && (lo === undefined || prefix > lo)) lo = prefix;
  let hi = lte ?? lt;
  if (prefix !== undefined && hi === undefined && prefix.length > 0 && prefix.charCodeAt(prefix.length - 1) < 0xffff) {
    // Every key with the prefix sorts below the prefix with its last unit incremented.
    hi = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  }
  const limit = o.limit ?? Infinity;
  if (typeof limit !== "number" || Number.isNaN(limit)) throw new InvalidArgumentError("range limit must be a number");
  return {
    lo,
    hi,
    aboveLo: (k) => (gte === undefined || k >= gte) && (gt === undefined || k > gt) && (prefix === undefined || k >= prefix),
    belowHi: (k) =>
      (lte === undefined || k <= lte) && (lt === undefined || k < lt) && (prefix === undefined || k.startsWith(prefix) || k < prefix),
    reverse: o.reverse === true,
    limit,
  };
}

function histogram(stats: Float64Array, base: number, bounds: readonly number[], sum: number): Histogram {
  const counts = Array.from({ length: bounds.length }, (_, i) => stats[base + i]!);
  return { le: [...bounds], counts, sum, count: counts.reduce((a, b) => a + b, 0) };
}

function failureFromRing(ring: R.RingViews): HarmonyError {
  const kind = Atomics.load(ring.ctl, R.FAILED);
  const msg = `write failed, the database is read-only until restarted: ${R.readError(ring)}`;
  return kind === R.FAIL_NO_SPACE ? new NoSpaceError(msg) : new WalFailedError(msg);
}

// ---- open ----

export async function openDb(dir: string, options: OpenOptions = {}): Promise<Db> {
  const o = resolveOptions(options);
  const created = !fs.existsSync(path.join(dir, "wal")) || !fs.existsSync(path.join(dir, "snap"));
  fs.mkdirSync(path.join(dir, "wal"), { recursive: true });
  fs.mkdirSync(path.join(dir, "snap"), { recursive: true });
  if (created) {
    // The new directories must survive a crash as much as the segments in them.
    nodeIO.fsyncDir(dir);
    nodeIO.fsyncDir(path.dirname(path.resolve(dir)));
  }
  const lock = lockDir(dir);
  try {
    return await start(dir, o, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

type Resolved = Required<Omit<OpenOptions, "onProgress" | "limits" | "writerIO" | "snapshotEveryBytes">> & {
  limits: Limits;
  /** undefined: the default, which follows the size of the last snapshot. */
  snapshotEveryBytes: number | undefined;
  onProgress: OpenOptions["onProgress"];
  writerIO: OpenOptions["writerIO"];
};

function resolveOptions(o: OpenOptions): Resolved {
  const sync = o.sync ?? "always";
  if (sync !== "always" && sync !== "interval" && sync !== "never") throw new InvalidArgumentError(`sync must be "always", "interval" or "never"`);
  const segmentBytes = o.segmentBytes ?? L.segmentBytesDefault;
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < L.segmentBytesMin || segmentBytes % 8 !== 0) {
    throw new InvalidArgumentError(`segmentBytes must be a multiple of 8, at least ${L.segmentBytesMin}`);
  }
  const limits: Limits = {
    keyBytesMax: Math.min(o.limits?.keyBytesMax ?? L.keyBytesMax, L.keyBytesMax),
    valueBytesMax: Math.min(o.limits?.valueBytesMax ?? L.valueBytesMax, L.valueBytesMax),
    batchOpsMax: Math.min(o.limits?.batchOpsMax ?? L.batchOpsMax, L.batchOpsMax),
  };
  // The ring must hold two of the largest records, so one can be written while the next is framed.
  const ringMin = 2 * (limits.valueBytesMax + L.recordSlackBytes);
  const ringBytes = o.ringBytes ?? L.ringBytesDefault;
  if (!Number.isSafeInteger(ringBytes) || (ringBytes & (ringBytes - 1)) !== 0 || ringBytes < ringMin || ringBytes > L.ringBytesMax) {
    throw new InvalidArgumentError(`ringBytes must be a power of two from ${ringMin} to ${L.ringBytesMax}`);
  }
  const commitDelayUs = o.commitDelayUs ?? L.commitDelayUsDefault;
  if (!(commitDelayUs >= 0 && commitDelayUs <= L.commitDelayUsMax)) {
    throw new InvalidArgumentError(`commitDelayUs must be in 0..${L.commitDelayUsMax}`);
  }
  const every = o.snapshotEveryBytes;
  if (every !== undefined && !(Number.isSafeInteger(every) && every >= 0)) throw new InvalidArgumentError("snapshotEveryBytes must be an integer ≥ 0");
  const chunk = o.snapshotChunkBytes ?? L.snapshotChunkBytes;
  if (!(Number.isSafeInteger(chunk) && chunk >= 64 && chunk <= L.recordSlackBytes)) {
    throw new InvalidArgumentError(`snapshotChunkBytes must be in 64..${L.recordSlackBytes}`);
  }
  return {
    sync,
    snapshotEveryBytes: every,
    snapshotChunkBytes: chunk,
    snapshotWorkerBytes: o.snapshotWorkerBytes ?? L.snapshotWorkerBytesMin,
    snapshotPrefetchBytes: o.snapshotPrefetchBytes ?? L.snapshotPrefetchBytesMin,
    syncIntervalMs: o.syncIntervalMs ?? L.syncIntervalMsDefault,
    segmentBytes,
    commitDelayUs,
    ringBytes,
    limits,
    onProgress: o.onProgress,
    log: o.log ?? ((line) => console.warn(line)),
    writerIO: o.writerIO,
  };
}

async function start(dir: string, o: Resolved, lock: DirLock): Promise<Db> {
  const walDir = path.join(dir, "wal");
  const snapDir = path.join(dir, "snap");
  const t0 = performance.now();
  const replay = new Replay();
  const apply: Apply = (rev, segment, start, end) => replay.applyEncoded(rev, segment, start, end);
  const rec = await openLogAsync(walDir, apply, {
    onProgress: o.onProgress,
    log: o.log,
    newDbId: () => hyperid({ urlSafe: true })(),
    snapshots: replay.snapshotLoader(snapDir),
    prefetchBytes: o.snapshotPrefetchBytes,
    // The log's changes are replayed while another thread still reads a large snapshot in.
    logFirst: true,
  });
  const ring = R.createRing(o.ringBytes, o.limits.valueBytesMax + L.recordSlackBytes);
  const cfg: WriterConfig = {
    ...continueLog(rec),
    sab: ring.sab,
    walDir,
    snapDir,
    segmentBytes: o.segmentBytes,
    sync: o.sync,
    syncIntervalMs: o.syncIntervalMs,
    commitDelayUs: o.commitDelayUs,
    ...(o.writerIO ? { ioModule: o.writerIO } : {}),
  };
  // The writer starts (~50 ms, mostly loading its modules, on another core) while the index is built.
  const writer = startWorker(cfg);
  let index: KeyIndex;
  try {
    index = replay.finish();
    if (verifyEnabled) index.verify(rec.lastRev);
  } catch (err) {
    void writer.worker.terminate();
    throw err;
  }
  const worker = await writer.ready();
  const snapshot = rec.snapshot ? { rev: rec.snapshot.rev, keys: rec.snapshot.keys, bytes: rec.snapshot.bytes } : null;
  const recovery = { records: rec.records, segments: rec.segments, ms: performance.now() - t0, tornTail: rec.tornTail, snapshot };
  return new Db(dir, ring, worker, lock, o, rec.dbId, recovery, index, rec.lastRev, rec.walBytesAfterSnapshot);
}

/**
 * Starts the writer worker; `ready()` waits for it to report, at most workerStartMsMax from when it
 * is called (open() builds the index in between, however long that takes).
 */
function startWorker(cfg: WriterConfig): { worker: Worker; ready: () => Promise<Worker> } {
  const worker = new Worker(new URL("../workers/wal-writer.ts", import.meta.url), { workerData: cfg });
  const reported = new Promise<Worker>((resolve, reject) => {
    worker.once("error", reject);
    worker.once("message", (m: { type?: string }) => {
      worker.off("error", reject);
      if (m?.type === "ready") resolve(worker);
      else reject(new Error(`unexpected first message ${JSON.stringify(m)}`));
    });
  });
  reported.catch(() => {}); // (seen by the waiter; open() may throw before it waits)
  const ready = () =>
    new Promise<Worker>((resolve, reject) => {
      const timer = setTimeout(() => fail(new WalFailedError("writer worker did not start")), L.workerStartMsMax);
      const fail = (err: Error) => {
        clearTimeout(timer);
        void worker.terminate();
        reject(err instanceof HarmonyError ? err : new WalFailedError(`writer worker failed to start: ${err.message}`, { cause: err }));
      };
      reported.then((w) => (clearTimeout(timer), resolve(w)), fail);
    });
  return { worker, ready };
}
