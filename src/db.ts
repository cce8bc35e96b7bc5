// The database facade: synchronous reads from the index, writes through the pipeline, watchers,
// snapshots, stats and close. Each job lives in its own module; this file wires them together.

import * as path from "node:path";
import type { Worker } from "node:worker_threads";
import { ArchiveLink } from "./archiving.ts";
import { ArchiveError, ClosedError, CorruptionError, WalFailedError, type HarmonyError } from "./errors.ts";
import type { Op } from "./format/encoder.ts";
import type { DirLock } from "./io/lock.ts";
import * as L from "./limits.ts";
import type { Resolved } from "./options.ts";
import { ReadView, type RangeItem } from "./range.ts";
import { walStats } from "./stats.ts";
import type { KeyIndex } from "./store/key-index.ts";
import type { Entry, RangeOptions, Stats, WriteOptions } from "./types.ts";
import * as R from "./wal/ring.ts";
import { checkWatchOptions, historyEvents, keyFilter, Watcher, type WatchEvent, type WatchOptions } from "./watch.ts";
import { WritePipeline, type Newest, type PipelineHost } from "./write/pipeline.ts";
import { SnapshotScheduler, type SnapshotConfig, type SnapshotInfo } from "./write/snapshot-scheduler.ts";
import { batchOps, checkedValueView, checkKey, checkKeyType, condition, type BatchOp } from "./write/validate.ts";

/** What open() hands the database once the log is replayed and the writer is running. */
export interface DbParts {
  dir: string;
  ring: R.RingViews;
  worker: Worker;
  lock: DirLock;
  options: Resolved;
  dbId: string;
  recovery: Stats["recovery"];
  index: KeyIndex;
  lastRev: number;
  walBytesAfterSnapshot: number;
}

export class Db {
  readonly dir: string;
  private readonly index: KeyIndex;
  private readonly o: Resolved;
  private readonly ring: R.RingViews;
  private readonly worker: Worker;
  private readonly pipeline: WritePipeline;
  private readonly snapshots: SnapshotScheduler;
  private readonly watchers = new Set<Watcher>();
  private state: "open" | "closing" | "closed" = "open";
  private workerExited = false;
  private closePromise: Promise<void> | null = null;
  /** The pipeline's waiter on the writer (run()): close() waits for it to end. */
  private readonly waiter: Promise<void>;
  /** The next slice of the index's background work (indexWork), if one is due. */
  private indexTimer: ReturnType<typeof setTimeout> | null = null;
  /** The archiver (open's `archive` option), or null. */
  private readonly archive: ArchiveLink | null;

  /** @internal use open() */
  constructor(private readonly parts: DbParts) {
    this.dir = parts.dir;
    this.index = parts.index;
    this.o = parts.options;
    this.ring = parts.ring;
    this.worker = parts.worker;
    this.pipeline = new WritePipeline(parts.ring, this.o.limits.valueBytesMax + L.recordSlackBytes, parts.lastRev, this.host());
    this.pipeline.waitForArchive = this.o.archive?.sync === true;
    const snapshotConfig: SnapshotConfig = {
      dir: parts.dir,
      dbId: parts.dbId,
      everyBytes: this.o.snapshotEveryBytes,
      chunkBytes: this.o.snapshotChunkBytes,
      workerBytes: this.o.snapshotWorkerBytes,
      log: this.o.log,
      walBytesAtOpen: parts.walBytesAfterSnapshot,
    };
    this.snapshots = new SnapshotScheduler(snapshotConfig, parts.ring, parts.index, this.pipeline);
    this.watchWorker();
    this.archive = this.o.archive ? new ArchiveLink(parts.ring, this.o.archive, parts.dir, parts.dbId) : null;
    this.waiter = this.pipeline.run();
    // From the next turn on: the tree serves reads meanwhile. Its first slice reserves the map's
    // table (16 MB for 1M keys, ~50-80 ms of fresh memory here), which open() need not wait for.
    this.indexTimer = setTimeout(() => this.indexWork(), 0).unref();
  }

  /** The revision of the newest durable write. */
  get rev(): number {
    return this.pipeline.durableRev;
  }

  /** The database's id (in its segments and snapshots; a replica's WAL stream names it). */
  get id(): string {
    return this.parts.dbId;
  }

  /**
   * The newest revision fdatasynced: `rev` with sync "always"; with "interval" or "never", writes are
   * acknowledged before, and this trails them (what a replica may be sent: docs/replication.md).
   */
  get syncedRev(): number {
    return Math.min(this.rev, this.ring.stats[R.STAT_SYNCED_REV]!);
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
  range(opts: RangeOptions = {}): Iterable<RangeItem> {
    return this.view().range(opts);
  }

  /**
   * The database as it is now, for several reads that must agree: gets and ranges of the view see
   * revision `view.rev` and nothing written after it (an O(1) copy-on-write clone of the index).
   */
  view(): ReadView {
    return new ReadView(this.index.view(), this.rev);
  }

  /**
   * Changes to keys matching `opts`, in revision order, durable ones only: from `fromRev` (read from
   * the WAL while it reaches back that far, else CompactedError), then live. A consumer that falls
   * `bufferMax` events behind is cut off with WatchOverflowError; `return()` cancels.
   */
  watch(opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    checkWatchOptions(opts);
    if (this.state !== "open") throw new ClosedError();
    const upTo = this.pipeline.durableRev;
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
      checkKey(key, this.o.limits);
      const conds = condition(key, opts?.ifRev);
      return this.pipeline.submitPut(key, checkedValueView(value, this.o.limits), conds) as Promise<number>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  delete(key: string, opts?: WriteOptions): Promise<{ rev: number; deleted: boolean }> {
    try {
      this.checkWritable();
      checkKey(key, this.o.limits);
      return this.pipeline.submit([[key]], condition(key, opts?.ifRev), true) as Promise<{ rev: number; deleted: boolean }>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** All operations in one WAL record: after a crash they are all there or all gone. */
  batch(ops: BatchOp[]): Promise<number> {
    try {
      this.checkWritable();
      const b = batchOps(ops, this.o.limits);
      return this.pipeline.submit(b.ops, b.conds, false) as Promise<number>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A batch decided at its place in the write order, for writes that depend on their own revision
   * or on the newest values (harmonydb/kv's atomic writes: docs/deno-kv.md §4). `decide` gets the
   * revision the batch is about to take and `read`, a key's newest state with writes in flight
   * included (those the batch will follow); it returns the batch's ops (ifRev conditions allowed)
   * or throws to refuse it, and its error is the rejection. It may run more than once (again when
   * the batch had to wait for room): only its last run's ops are written. Here keys may begin with
   * U+0000, the keyspace reserved for harmonydb/kv, and be up to twice `keyBytesMax`. Resolves
   * with the revision once durable; with no ops, with the newest revision once everything before
   * it is durable.
   */
  atomic(decide: (rev: number, read: (key: string) => Newest | undefined) => BatchOp[]): Promise<number> {
    try {
      this.checkWritable();
      const limits = { ...this.o.limits, keyBytesMax: 2 * this.o.limits.keyBytesMax };
      const decided = this.pipeline.submitDecided((rev, read) => {
        const ops = decide(rev, read);
        return ops.length === 0 ? { ops: [], conds: [] } : batchOps(ops, limits, true);
      });
      return decided.then((r) => (typeof r === "number" ? r : (r as { rev: number }).rev));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * @internal A read replica's write (src/replica.ts): the primary's entry `rev`, its operations
   * with their values as the same bytes, as one batch with no conditions. It gets revision `rev`
   * only if every entry before it was applied: anything else is refused, and nothing is written.
   */
  replicate(rev: number, ops: Op[]): Promise<number> {
    try {
      this.checkWritable();
      // (a replica's only writes are these, and each takes a revision: those queued for room in
      // the ring take the next ones in order)
      const next = this.pipeline.nextRevision + this.pipeline.queuedCount();
      if (rev !== next) throw new CorruptionError(`replica: the primary's entry ${rev} arrived where entry ${next} was expected`, "replication stream", 0, rev);
      return this.pipeline.submit(ops, [], false) as Promise<number>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** See SnapshotScheduler.snapshot: the index at the newest durable revision, written while writes go on. */
  snapshot(): Promise<SnapshotInfo> {
    if (this.state !== "open") return Promise.reject(new ClosedError());
    if (this.pipeline.failure) return Promise.reject(this.pipeline.failure);
    return this.snapshots.snapshot();
  }

  stats(): Stats {
    return {
      rev: this.pipeline.durableRev,
      keys: this.index.size,
      sync: this.o.sync,
      pendingWrites: this.pipeline.pendingCount(),
      queuedWrites: this.pipeline.queuedCount(),
      failed: this.pipeline.failure?.message ?? null,
      wal: walStats(this.ring.stats),
      watchers: this.watchers.size,
      memory: { ...this.index.memory(), mapFilled: this.index.mapFilled },
      recovery: this.parts.recovery,
      snapshot: this.snapshots.stats(),
      archive: this.archive?.stats() ?? null,
    };
  }

  /** Waits for every accepted write, stops the writer, releases the lock. Idempotent. */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.state = "closing";
    // Every write accepted before close() lands (or fails) first.
    await this.writesSettled();
    await this.snapshots.beforeClose();
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
    await this.archive?.stop(); // the log is complete now: what is durable may still be shipped
    this.state = "closed";
    this.pipeline.stop(); // ends its waiter
    // Nothing of the store's may stay reachable once close() resolves: a waitAsync still parked on
    // the ring (until the wake-up stop() sent arrives, a turn or more later), a timer, or the
    // worker's listeners (Bun keeps a terminated worker until its exit event is dispatched, which
    // may come after) kept it, and all its memory, alive through a full collection made just after
    // (docs/design-notes.md, memory). Its exit means nothing now: every write has settled.
    this.worker.removeAllListeners();
    this.worker.on("error", () => {}); // (an 'error' with no listener would throw)
    if (this.indexTimer !== null) clearTimeout(this.indexTimer);
    this.indexTimer = null;
    await this.waiter;
    // Last, with no await after it: a caller awaiting close() handles its watchers' rejections next.
    for (const w of [...this.watchers]) w.fail(new ClosedError());
    this.parts.lock.release();
  }

  /**
   * Waits for every accepted write. Those waiting for the archive (archive.sync) wait at most
   * closeTimeoutMs; then they fail: durable here, in the archive once the next open ships them.
   */
  private async writesSettled(): Promise<void> {
    const a = this.o.archive;
    if (!a?.sync) return this.pipeline.whenIdle();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), a.closeTimeoutMs)));
    if (await Promise.race([this.pipeline.whenIdle().then(() => false), late])) {
      this.pipeline.poison(new ArchiveError(`closed before the archive held the write (${a.closeTimeoutMs} ms): it is durable here, and the next open ships it`));
      await this.pipeline.whenIdle();
    }
    clearTimeout(timer);
  }

  private checkWritable(): void {
    if (this.state !== "open") throw new ClosedError();
    if (this.pipeline.failure) throw this.pipeline.failure;
  }

  /** The pipeline's view of the rest of the engine: the index, watchers, the worker, snapshots. */
  private host(): PipelineHost {
    return {
      revOf: (key) => this.index.revOf(key),
      entryOf: (key) => {
        const e = this.index.getEntry(key);
        return e === undefined ? undefined : { value: e.value, rev: e.rev };
      },
      apply: (rev, ops) => {
        this.index.apply(rev, ops);
        if (this.watchers.size > 0) for (const op of ops) this.fanOut(rev, op[0], op.length === 2);
      },
      applyPut: (rev, key, keyBytes, src, start, end) => {
        this.index.applyPut(rev, key, keyBytes, src, start, end);
        if (this.watchers.size > 0) this.fanOut(rev, key, true);
      },
      keepAlive: (on) => (on ? this.worker.ref() : this.worker.unref()),
      afterAck: () => {
        if (this.state === "open") this.snapshots.maybeStart();
        if (!this.index.mapFilled) this.index.backgroundWork(L.indexWorkPerDispatch);
      },
    };
  }

  /** Tells watchers of `key` it was put (its value as stored) or deleted at `rev`. */
  private fanOut(rev: number, key: string, put: boolean): void {
    const stored = put ? this.index.handle(key) : null;
    for (const w of this.watchers) if (w.matches(key)) w.push(rev, key, stored);
  }

  /** A worker that crashes or exits fails every write in flight and every later one; reads go on. */
  private watchWorker(): void {
    this.worker.unref();
    const fail = (err: HarmonyError) => this.pipeline.poison(err);
    this.worker.on("error", (err: Error) => fail(new WalFailedError(`writer worker crashed: ${err.message}`, { cause: err })));
    this.worker.on("exit", (code) => {
      this.workerExited = true;
      // Whatever the worker made durable before it went is settled first; the rest fails, with
      // the worker's own error when it reported one (a full disk must say NO_SPACE).
      if (Atomics.load(this.ring.ctl, R.FAILED) !== R.FAIL_NONE) fail(this.pipeline.failureFromRing());
      else if (this.state === "open" || !this.pipeline.idle()) {
        fail(new WalFailedError(`writer worker exited unexpectedly (code ${code})`));
      }
    });
  }

  /**
   * The index's background work after open (filling its hash map, then compacting what replay
   * left), a slice per event-loop turn: open() does not wait for a million map inserts. Under a
   * steady write load timers run late, so the pipeline's waiter also does a slice per round.
   */
  private indexWork(): void {
    this.indexTimer = null; // (close() clears a timer still due: none fires once closed)
    if (this.index.backgroundWork(L.indexWorkPerTurn)) return;
    this.indexTimer = setTimeout(() => this.indexWork(), 0).unref();
  }
}
