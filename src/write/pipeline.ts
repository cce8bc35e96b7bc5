// The write pipeline on the main thread: revisions, conditions, the ring producer and its queue, and
// the one waiter that turns the writer's acknowledgements into visible, resolved writes.
//
// A write goes: submit() → publish(), or for one put submitPut() → publishPut() (condition check,
// next revision, framed into the ring) → the writer worker's write + fdatasync → ACKED moves past
// its frame → poll() → settle(): applied to the index through the host, then its promise resolves.
// A write that finds no room in the ring, or a closed admission gate, waits in the queue
// (backpressure, never a drop) and is published by drainQueue() once acknowledgements free the
// ring. Snapshot frames come in through submitFrame(), their own entry, and go before queued
// writes. No Worker here: the host keeps the process alive.

import { assert } from "../assert.ts";
import { valueDecoder } from "../codec/cbor.ts";
import { ArchiveError, ClosedError, ConflictError, HarmonyError, NoSpaceError, ValueTooLargeError, WalFailedError } from "../errors.ts";
import { entryPayloadBytes, putPayloadBytes, utf8Bytes, type Op } from "../format/encoder.ts";
import { FRAME_HEADER_BYTES, frameBytes } from "../format/constants.ts";
import * as R from "../wal/ring.ts";
import type { Condition } from "./validate.ts";

/** What the pipeline needs from the engine around it. */
export interface PipelineHost {
  /** The revision of `key` in the durable index (0: not there). */
  revOf(key: string): number;
  /** `key`'s value (decoded) and revision in the durable index, or undefined. */
  entryOf(key: string): Newest | undefined;
  /** Makes a durable write visible: the index, then watchers. Called before its promise resolves. */
  apply(rev: number, ops: Op[]): void;
  /**
   * As apply, for a write of one put (submitPut): its value is bytes [start, end) of `src`, the
   * ring's own frame, valid only during the call.
   */
  applyPut(rev: number, key: string, keyBytes: number, src: Uint8Array, start: number, end: number): void;
  /** Writes are in flight (true) or none are (false): the writer thread must keep the process alive. */
  keepAlive(on: boolean): void;
  /** After each round of acknowledgements has settled (automatic snapshots, index upkeep). */
  afterAck(): void;
}

/** A key's newest state, writes in flight included: its value (decoded, a copy) and revision. */
export interface Newest {
  value: unknown;
  rev: number;
}

/**
 * A write decided at its place in the write order (submitDecided): called with the revision it
 * is about to take and a reader of the newest state, writes in flight included. Returns the ops
 * (their values as CBOR, in buffers of their own) and conditions, or throws to refuse the write.
 * It may be called more than once (again whenever the write had to wait for room): only what
 * its last call returned is written.
 */
export type Decider = (rev: number, read: (key: string) => Newest | undefined) => { ops: Op[]; conds: Condition[] };

/** A write waiting for room in the ring (or for the admission gate). */
interface Write {
  ops: Op[];
  /** UTF-8 length of each op's key, and the payload length they add up to. */
  keyBytes: number[];
  payloadBytes: number;
  conds: Condition[];
  /** A delete; of a key that does not exist, it writes nothing. */
  isDelete: boolean;
  /** A decided write: ops, keyBytes, payloadBytes and conds are filled in by it when published. */
  decide: Decider | null;
  /** Called with the revision, or with { rev, deleted } for a delete. */
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
}

/** A snapshot frame waiting for room in the ring: published as is, resolved once written. */
interface Frame {
  type: number;
  rev: number;
  payload: Uint8Array;
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
}

/** A write or frame in the ring (or a delete of nothing), waiting for the writer's acknowledgement. */
class Pending {
  constructor(
    /** The ring counter after its frame: durable once ACKED reaches it. */
    readonly end: number,
    readonly rev: number,
    /** A batch or a delete: its ops, applied through host.apply. */
    readonly ops: Op[] | null,
    /** A write of one put (submitPut): its key, and where its value is in the ring's data. */
    readonly key: string | null,
    readonly keyBytes: number,
    readonly valueAt: number,
    readonly valueBytes: number,
    /** null: resolve with the revision; else a delete, resolved with { rev, deleted }. */
    readonly deleted: boolean | null,
    readonly resolve: (r: unknown) => void,
    readonly reject: (e: unknown) => void,
  ) {}
}

export class WritePipeline {
  /** The revision of the newest durable write. */
  durableRev: number;
  /** archive.sync: a write settles only once the archive holds it too (docs/archive-format.md, "Zero RPO"). */
  waitForArchive = false;
  /** Set once the WAL failed: every write in flight and every later one fails with it. */
  failure: HarmonyError | null = null;
  /**
   * While set, writes enter the ring only when it returns true; until then they wait in the queue
   * (a write stall). Snapshot frames pass regardless. drainQueue() retries once it may be open.
   */
  gate: (() => boolean) | null = null;
  /** Times writes had to wait at the gate. */
  writeStalls = 0;
  private stalled = false;
  private nextRev: number;
  /**
   * Newest state of keys with writes in flight, for conditions and deletes: rev if the last write
   * put the key, −rev if it deleted it; entries at or below durableRev are stale (the index knows
   * better). Built from the pending queue by the first write that needs it, kept up to date only
   * while valid, dropped when nothing is in flight: writes without conditions never pay for it
   * (a Map insert is ~0.5 µs, a fifth of a put's main-thread work).
   */
  private readonly newest = new Map<string, number>();
  private newestValid = false;
  private readonly pending: Pending[] = [];
  private pendingHead = 0;
  private readonly queued: Write[] = [];
  private queuedHead = 0;
  private readonly queuedFrames: Frame[] = [];
  private head = R.START_POS;
  private seenAcked = R.START_POS;
  private keptAlive = false;
  private stopped = false;
  /** whenIdle() waiting for the writes in flight; called once nothing is pending or queued. */
  private onIdle: (() => void) | null = null;

  constructor(
    private readonly ring: R.RingViews,
    /** The largest frame a write may make (the largest value plus room for its key and framing). */
    private readonly recordBytesMax: number,
    lastRev: number,
    private readonly host: PipelineHost,
  ) {
    this.nextRev = lastRev + 1;
    this.durableRev = lastRev;
  }

  /**
   * Takes a checked write; resolves with its revision (a delete: with { rev, deleted }) once it is
   * durable and visible. Throws (synchronously) ValueTooLargeError for a record the ring cannot take.
   */
  submit(ops: Op[], conds: Condition[], isDelete: boolean): Promise<unknown> {
    const keyBytes = ops.length === 1 ? [utf8Bytes(ops[0]![0])] : ops.map((op) => utf8Bytes(op[0]));
    const payloadBytes = entryPayloadBytes(ops, keyBytes);
    if (frameBytes(payloadBytes) > this.recordBytesMax) throw new ValueTooLargeError(payloadBytes, this.recordBytesMax);
    return new Promise((resolve, reject) => {
      const w: Write = { ops, keyBytes, payloadBytes, conds, isDelete, decide: null, resolve, reject };
      if (this.queued.length > this.queuedHead || !this.publish(w)) this.queued.push(w);
    });
  }

  /**
   * A write of one put, the commonest: as submit([[key, value]], conds, false), but the value's
   * CBOR (`value`, a shared buffer valid only during this call) is framed straight into the ring,
   * and once durable the index copies it from there. It is copied out only if the write must wait
   * in the queue. (Its frame stays intact until then: ring space is reused only after poll()
   * settled what was in it.)
   */
  submitPut(key: string, value: Uint8Array, conds: Condition[]): Promise<unknown> {
    const keyBytes = utf8Bytes(key);
    const payloadBytes = putPayloadBytes(keyBytes, value.length);
    if (frameBytes(payloadBytes) > this.recordBytesMax) throw new ValueTooLargeError(payloadBytes, this.recordBytesMax);
    return new Promise((resolve, reject) => {
      if (this.queued.length === this.queuedHead && this.admit(payloadBytes)) {
        this.publishPut(key, keyBytes, value, payloadBytes, conds, resolve, reject);
      } else {
        this.queued.push({ ops: [[key, value.slice()]], keyBytes: [keyBytes], payloadBytes, conds, isDelete: false, decide: null, resolve, reject });
      }
    });
  }

  /**
   * A write whose ops depend on its revision or on the newest values (harmonydb/kv's atomic
   * writes: sum/min/max, versionstamped keys, checks of expired entries). `decide` runs when the
   * write takes its place in the ring, so no write can come between what it read and what it
   * writes. Resolves as submit() does; with no ops, with { rev, deleted: false } once everything
   * before it is durable (rev: the newest revision then).
   */
  submitDecided(decide: Decider): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const w: Write = { ops: [], keyBytes: [], payloadBytes: 0, conds: [], isDelete: false, decide, resolve, reject };
      if (this.queued.length > this.queuedHead || !this.publish(w)) this.queued.push(w);
    });
  }

  /** Takes a snapshot frame of revision `rev`; resolves once the writer has written it. */
  submitFrame(type: number, rev: number, payload: Uint8Array): Promise<unknown> {
    // A snapshot in progress goes on while close() waits for it; writes do not.
    if (this.stopped) return Promise.reject(new ClosedError());
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const f: Frame = { type, rev, payload, resolve, reject };
      if (this.queuedFrames.length > 0 || !this.publishFrame(f)) this.queuedFrames.push(f);
    });
  }

  /** The revision the next write will get. */
  get nextRevision(): number {
    return this.nextRev;
  }

  pendingCount(): number {
    return this.pending.length - this.pendingHead;
  }

  queuedCount(): number {
    return this.queued.length - this.queuedHead;
  }

  /** Snapshot frames waiting for room in the ring. */
  queuedFrameCount(): number {
    return this.queuedFrames.length;
  }

  idle(): boolean {
    return this.pendingCount() === 0 && this.queued.length === this.queuedHead && this.queuedFrames.length === 0;
  }

  /** Resolves once every write and frame accepted so far has settled (or failed). */
  whenIdle(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise<void>((resolve) => (this.onIdle = resolve));
  }

  /** The one waiter on the writer's EVENTS: settles what became durable, until stop(). */
  async run(): Promise<void> {
    const ctl = this.ring.ctl;
    while (!this.stopped) {
      // Read EVENTS before looking: a change after this point makes the wait return at once.
      const events = Atomics.load(ctl, R.EVENTS);
      if (this.poll()) continue;
      const w = Atomics.waitAsync(ctl, R.EVENTS, events);
      if (w.async) await w.value;
    }
  }

  /**
   * Looks once at what the writer reported: settles newly acknowledged writes and refills the ring,
   * or takes in the writer's failure. Returns whether there was anything. (run() calls it in a
   * loop; the simulator calls it after each writer step.)
   */
  poll(): boolean {
    const acked = this.settleable();
    if (acked !== this.seenAcked) {
      this.seenAcked = acked;
      this.settle(acked);
      this.drainQueue();
      this.host.afterAck();
      return true;
    }
    if (Atomics.load(this.ring.ctl, R.FAILED) !== R.FAIL_NONE && !this.failure) {
      this.poison(failureFromRing(this.ring));
      return true;
    }
    if (this.waitForArchive && this.ring.stats[R.STAT_ARCHIVE_STOPPED] === 1 && !this.failure) {
      const why = R.readError(this.ring, this.ring.archiveError);
      this.poison(new ArchiveError(`archiving stopped, and writes wait for the archive (archive.sync): ${why}`));
      return true;
    }
    return false;
  }

  /**
   * How far the pending writes may settle: to ACKED, or, when they wait for the archive too, to the
   * last one whose revision the archiver has shipped. Their values stay in the ring until then (the
   * ring's room is what seenAcked frees), which holds new writes back while the bucket lags.
   */
  private settleable(): number {
    const acked = Atomics.load(this.ring.ctl, R.ACKED);
    if (!this.waitForArchive) return acked;
    const archived = this.ring.stats[R.STAT_ARCHIVE_REV]!;
    let upTo = this.seenAcked;
    for (let i = this.pendingHead; i < this.pending.length; i++) {
      const p = this.pending[i]!;
      if (R.diff(acked, p.end) < 0 || p.rev > archived) break;
      upTo = p.end;
    }
    return upTo;
  }

  /** Ends run() (after the writer has stopped); later frames are refused. */
  stop(): void {
    this.stopped = true;
    Atomics.notify(this.ring.ctl, R.EVENTS);
  }

  /**
   * Publishes what waits for the ring (frames first), then tells whenIdle() if that left nothing in
   * flight: a queued write may settle at once (a failed condition, a delete of a missing key).
   */
  drainQueue(): void {
    this.publishQueued();
    this.notifyIfIdle();
  }

  /** The WAL failed: every write in flight and every later one fails; reads go on. */
  poison(err: HarmonyError): void {
    if (this.failure) return;
    // Writes the worker acknowledged before it failed are durable: they resolve, not fail (with
    // archive.sync, those the archive holds too).
    const acked = this.settleable();
    if (acked !== this.seenAcked) {
      this.seenAcked = acked;
      this.settle(acked);
    }
    this.failure = err;
    for (let i = this.pendingHead; i < this.pending.length; i++) this.pending[i]!.reject(err);
    for (let i = this.queuedHead; i < this.queued.length; i++) this.queued[i]!.reject(err);
    for (const f of this.queuedFrames.splice(0)) f.reject(err);
    this.pending.length = this.pendingHead = 0;
    this.queued.length = this.queuedHead = 0;
    this.newest.clear();
    this.newestValid = false;
    this.setKeepAlive(false);
    this.notifyIfIdle();
  }

  /** The failure the writer reported in the ring, as the typed error writes fail with. */
  failureFromRing(): HarmonyError {
    return failureFromRing(this.ring);
  }

  // ---- producer ----

  private publishQueued(): void {
    while (this.queuedFrames.length > 0 && !this.stopped && !this.failure) {
      if (!this.publishFrame(this.queuedFrames[0]!)) return;
      this.queuedFrames.shift();
    }
    while (this.queuedHead < this.queued.length && !this.stopped && !this.failure) {
      if (!this.publish(this.queued[this.queuedHead]!)) return;
      this.queued[this.queuedHead++] = undefined as unknown as Write;
    }
    if (this.queuedHead === this.queued.length) {
      this.queued.length = 0;
      this.queuedHead = 0;
    }
  }

  private hasRoom(payloadBytes: number): boolean {
    return frameBytes(payloadBytes) <= this.ring.capacity - R.diff(this.head, this.seenAcked);
  }

  private publishFrame(f: Frame): boolean {
    if (!this.hasRoom(f.payload.length)) return false;
    this.head = R.putFrame(this.ring, this.head, f.type, f.rev, f.payload);
    this.enqueuePending(new Pending(this.head, f.rev, null, null, 0, 0, 0, null, f.resolve, f.reject));
    this.publishHead();
    return true;
  }

  /**
   * Assigns the next revision and copies the frame into the ring, or returns false when the ring
   * has no room or the gate is closed (the write then queues). Conditions are checked here,
   * against the newest state including writes not yet durable.
   */
  private publish(w: Write): boolean {
    if (w.decide !== null && !this.decideWrite(w)) return true; // refused, and rejected
    if (!this.admit(w.payloadBytes)) return false;
    if (!this.condsHold(w.conds, w.reject)) return true;
    if ((w.isDelete && this.newestRev(w.ops[0]![0]) === 0) || w.ops.length === 0) {
      // Nothing to delete: no record, but resolve only once everything before it is durable.
      this.enqueuePending(new Pending(this.head, this.nextRev - 1, null, null, 0, 0, 0, false, w.resolve, w.reject));
      return true;
    }
    const rev = this.nextRev++;
    // The frame is built in place: payload first, then the header with its CRC over both.
    this.head = R.putEntry(this.ring, this.head, rev, w.ops, w.keyBytes, w.payloadBytes);
    if (this.newestValid) for (const op of w.ops) this.newest.set(op[0], op.length === 2 ? rev : -rev);
    this.enqueuePending(new Pending(this.head, rev, w.ops, null, 0, 0, 0, w.isDelete ? true : null, w.resolve, w.reject));
    this.publishHead();
    return true;
  }

  /** publish() for submitPut, once admitted: no Write, no ops, the value straight into the ring. */
  private publishPut(
    key: string,
    keyBytes: number,
    value: Uint8Array,
    payloadBytes: number,
    conds: Condition[],
    resolve: (r: unknown) => void,
    reject: (e: unknown) => void,
  ): void {
    if (conds.length > 0 && !this.condsHold(conds, reject)) return;
    const rev = this.nextRev++;
    const at = this.head & this.ring.mask;
    this.head = R.putPut(this.ring, this.head, rev, key, keyBytes, value, value.length, payloadBytes);
    if (this.newestValid) this.newest.set(key, rev);
    // The frame was written contiguously from `at` (into the slack past the end if need be), the value last.
    const valueAt = at + FRAME_HEADER_BYTES + payloadBytes - value.length;
    this.enqueuePending(new Pending(this.head, rev, null, key, keyBytes, valueAt, value.length, null, resolve, reject));
    this.publishHead();
  }

  /** Runs a decided write's Decider and measures what it returned; false (and rejected) if refused. */
  private decideWrite(w: Write): boolean {
    try {
      const d = w.decide!(this.nextRev, this.readNewest);
      w.ops = d.ops;
      w.conds = d.conds;
      w.keyBytes = d.ops.map((op) => utf8Bytes(op[0]));
      w.payloadBytes = entryPayloadBytes(d.ops, w.keyBytes);
      if (frameBytes(w.payloadBytes) > this.recordBytesMax) throw new ValueTooLargeError(w.payloadBytes, this.recordBytesMax);
      return true;
    } catch (err) {
      w.reject(err);
      return false;
    }
  }

  /** A key's newest state for a Decider: its last write in flight, else the index. */
  private readonly readNewest = (key: string): Newest | undefined => {
    const n = this.inFlight(key);
    if (n < 0) return undefined;
    if (n > 0) return { rev: n, value: this.valueInFlight(n, key) };
    return this.host.entryOf(key);
  };

  /** The value write `rev`, in flight, gave `key` (its newest put of it), decoded. */
  private valueInFlight(rev: number, key: string): unknown {
    // Backwards from the newest: writes only are looked at (a snapshot frame has neither key nor ops).
    for (let i = this.pending.length - 1; i >= this.pendingHead; i--) {
      const p = this.pending[i]!;
      if (p.rev !== rev) continue;
      if (p.key === key) return valueDecoder.decode(this.ring.data.slice(p.valueAt, p.valueAt + p.valueBytes));
      if (p.ops === null) continue;
      for (let j = p.ops.length - 1; j >= 0; j--) {
        const op = p.ops[j]!;
        if (op[0] === key && op.length === 2) return valueDecoder.decode(op[1]);
      }
    }
    assert(false, `pipeline: write ${rev} of ${JSON.stringify(key)} is not in flight`);
  }

  /** Whether a frame of `payloadBytes` may enter the ring now: there is room, and the gate is open. */
  private admit(payloadBytes: number): boolean {
    if (!this.hasRoom(payloadBytes)) return false;
    if (this.gate !== null && !this.gate()) {
      if (!this.stalled) this.writeStalls++; // it waits in the queue until the gate opens
      this.stalled = true;
      return false;
    }
    this.stalled = false;
    return true;
  }

  /** Whether every condition holds against the newest state; else rejects with the first conflict. */
  private condsHold(conds: Condition[], reject: (e: unknown) => void): boolean {
    for (const c of conds) {
      const cur = this.newestRev(c.key);
      if (cur !== c.ifRev) {
        reject(new ConflictError(c.key, c.ifRev, cur));
        return false;
      }
    }
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
    const n = this.inFlight(key);
    if (n !== 0) return n > 0 ? n : 0;
    return this.host.revOf(key);
  }

  /** The revision of `key`'s newest write in flight (−rev: it deleted the key), or 0 if none. */
  private inFlight(key: string): number {
    if (!this.newestValid) this.buildNewest();
    const n = this.newest.get(key);
    return n !== undefined && Math.abs(n) > this.durableRev ? n : 0;
  }

  private buildNewest(): void {
    this.newest.clear();
    for (let i = this.pendingHead; i < this.pending.length; i++) {
      const p = this.pending[i]!;
      if (p.key !== null) this.newest.set(p.key, p.rev);
      else if (p.ops) for (const op of p.ops) this.newest.set(op[0], op.length === 2 ? p.rev : -p.rev);
    }
    this.newestValid = true;
  }

  private enqueuePending(p: Pending): void {
    if (this.pendingCount() === 0 && p.ops === null && p.deleted === false) {
      p.resolve({ rev: this.durableRev, deleted: false });
      return;
    }
    this.pending.push(p);
    this.setKeepAlive(true); // a pending write keeps the process alive; an idle database does not
  }

  // ---- durable side ----

  private settle(acked: number): void {
    const done: Pending[] = [];
    while (this.pendingHead < this.pending.length) {
      const p = this.pending[this.pendingHead]!;
      if (R.diff(acked, p.end) < 0) break;
      this.pendingHead++;
      if (p.key !== null) {
        this.durableRev = p.rev;
        this.host.applyPut(p.rev, p.key, p.keyBytes, this.ring.data, p.valueAt, p.valueAt + p.valueBytes);
      } else if (p.ops) {
        this.durableRev = p.rev;
        this.host.apply(p.rev, p.ops);
      }
      done.push(p);
    }
    if (this.pendingHead === this.pending.length) {
      this.pending.length = 0;
      this.pendingHead = 0;
      this.newest.clear(); // nothing in flight: every entry is stale
      this.newestValid = false;
      this.setKeepAlive(false);
    }
    if (this.newestValid && this.newest.size > 4 * this.pendingCount() + 1024) {
      this.newest.clear(); // mostly stale: rebuild from the pending queue when next needed
      this.newestValid = false;
    }
    // Visible in the index before any of these promises resolves, never before it is durable.
    for (const p of done) p.resolve(p.deleted === null ? p.rev : { rev: p.rev, deleted: p.deleted });
  }

  private setKeepAlive(on: boolean): void {
    if (this.keptAlive === on) return;
    this.keptAlive = on;
    this.host.keepAlive(on);
  }

  private notifyIfIdle(): void {
    if (this.onIdle && this.idle()) {
      const f = this.onIdle;
      this.onIdle = null;
      f();
    }
  }
}

function failureFromRing(ring: R.RingViews): HarmonyError {
  const kind = Atomics.load(ring.ctl, R.FAILED);
  const msg = `write failed, the database is read-only until restarted: ${R.readError(ring)}`;
  return kind === R.FAIL_NO_SPACE ? new NoSpaceError(msg) : new WalFailedError(msg);
}
