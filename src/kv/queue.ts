// Deno KV's queues for openKv (docs/deno-kv.md §7): a message is an engine entry under
// QUEUE_PREFIX, ordered by when it is due, written in the same batch as the commit that enqueues it.
// listenQueue delivers each due message to the handler at least once: the entry stays until the
// handler resolves (then it is deleted), so a crash or restart delivers it again. A handler that
// throws puts it back at the next step of its backoff schedule; once the schedule is used up, its
// value goes to `keysIfUndelivered` (as denokv's requeue_message does).

import { ClosedError, InvalidArgumentError, InvalidValueError, type BatchOp, type Db, type Newest } from "../index.ts";
import * as L from "../limits.ts";
import { deserializeV8, serializeV8 } from "./v8.ts";
import { ENCODING, type Stored } from "./value.ts";

export const QUEUE_PREFIX = "\u0000kvq\u0000";
const HEX_DIGITS = 16;

/** denokv's default backoff schedule, ms (sqlite/backend.rs). */
export const DEFAULT_BACKOFF_MS = [100, 1000, 5000, 30_000, 60_000];
const DELAY_MS_MAX = 30 * 24 * 3600 * 1000;
const BACKOFF_STEPS_MAX = 5;
const BACKOFF_STEP_MS_MAX = 3600 * 1000;
const UNDELIVERED_KEYS_MAX = 10;
/** Handlers running at once. */
const RUNNING_MAX = 100;

/** A queue message as the engine stores it (CBOR): the value in V8's format, where it goes if undelivered, the backoff left. */
export interface QueueMessage {
  payload: Uint8Array;
  deliverAt: number;
  /** Engine keys that get the value once no retry is left. */
  keysIfUndelivered: string[];
  /** The backoff steps left, ms. */
  backoffMs: number[];
}

export interface EnqueueOptions {
  delay?: number;
  keysIfUndelivered?: readonly (readonly unknown[])[];
  backoffSchedule?: number[];
}

/** A checked message to enqueue (Deno 2.9.6's texts); `engineKeyOf` turns a Deno key into an engine key. */
export function compileEnqueue(value: unknown, o: EnqueueOptions | undefined, now: number, engineKeyOf: (key: readonly unknown[]) => string): QueueMessage {
  const delay = o?.delay ?? 0;
  if (Number.isNaN(delay)) throw new InvalidArgumentError("Delay cannot be NaN");
  if (delay < 0) throw new InvalidArgumentError(`Delay must be >= 0: received ${delay}`);
  if (delay > DELAY_MS_MAX) throw new InvalidArgumentError(`Delay cannot be greater than 30 days: received ${delay}`);
  const backoffMs = o?.backoffSchedule ?? DEFAULT_BACKOFF_MS;
  if (!Array.isArray(backoffMs) || backoffMs.length > BACKOFF_STEPS_MAX) throw new InvalidArgumentError(`Invalid backoffSchedule, max ${BACKOFF_STEPS_MAX} intervals allowed`);
  backoffMs.forEach((ms, i) => {
    if (!(ms >= 0 && ms <= BACKOFF_STEP_MS_MAX)) throw new InvalidArgumentError(`Invalid backoffSchedule, interval at index ${i} is invalid`);
  });
  const keys = o?.keysIfUndelivered ?? [];
  if (keys.length > UNDELIVERED_KEYS_MAX) throw new InvalidArgumentError(`Too many keysIfUndelivered (max ${UNDELIVERED_KEYS_MAX})`);
  const payload = serializeV8(value);
  if (payload.length > L.kvValueBytesMax) throw new InvalidValueError(`Value too large (max ${L.kvValueBytesMax} bytes)`);
  return { payload, deliverAt: now + Math.floor(delay), keysIfUndelivered: keys.map(engineKeyOf), backoffMs: [...backoffMs] };
}

/** The entry of the `i`-th message of the commit at revision `rev`: due order, then commit order. */
export function queueKey(deliverAt: number, rev: number, i: number): string {
  return QUEUE_PREFIX + hex(deliverAt) + hex(rev) + hex(i);
}

function hex(n: number): string {
  return n.toString(16).padStart(HEX_DIGITS, "0");
}

function deliverAtOf(key: string): number {
  return parseInt(key.slice(QUEUE_PREFIX.length, QUEUE_PREFIX.length + HEX_DIGITS), 16);
}

/** The engine ops that put a commit's messages. */
export function enqueueOps(messages: QueueMessage[], rev: number): BatchOp[] {
  return messages.map((m, i) => ({ type: "put", key: queueKey(m.deliverAt, rev, i), value: m }));
}

/**
 * Delivers due messages to one handler at a time per Kv (listen), until stop(). `undelivered`
 * turns a message whose schedule ran out into the ops that set its keys (atomic.ts's, so the
 * expiry index stays right).
 */
export class QueueListener {
  private listening = false;
  private stopped = false;
  private readonly running = new Set<string>();
  /** Messages whose settling (delete or requeue) failed: not delivered again before this time. */
  private readonly retryAt = new Map<string, number>();
  private wakeUp: (() => void) | null = null;

  constructor(
    private readonly db: Db,
    private readonly undelivered: (keys: string[], stored: Stored, rev: number, read: (key: string) => Newest | undefined) => BatchOp[],
  ) {}

  /** A commit enqueued a message due at `deliverAt`: look again. */
  notify(): void {
    this.wake();
  }

  /** Resolves once stop() was called and every handler running then has finished. */
  async listen(handler: (value: unknown) => unknown): Promise<void> {
    if (this.stopped) throw new InvalidArgumentError("Queue already closed");
    if (this.listening) throw new InvalidArgumentError("listenQueue is already listening on this Kv");
    this.listening = true;
    const inFlight = new Set<Promise<void>>();
    while (!this.stopped) {
      const now = Date.now();
      const due = this.running.size < RUNNING_MAX ? this.nextDue(now) : null;
      if (due === null) {
        await this.sleep(this.running.size < RUNNING_MAX ? this.untilNext(now) : L.kvSweepMsMax);
        continue;
      }
      this.running.add(due.key);
      const d: Promise<void> = this.deliver(due.key, due.message, handler)
        .then(
          () => void this.retryAt.delete(due.key),
          (err: unknown) => {
            // The entry stays, and is delivered again: after a pause, so that a write path that
            // fails (full disk, failed WAL) is not hammered in a loop that starves the process.
            this.retryAt.set(due.key, Date.now() + L.kvSweepMsMax);
            if (err instanceof ClosedError) this.stop();
          },
        )
        .finally(() => {
          this.running.delete(due.key);
          inFlight.delete(d);
          this.wake();
        });
      inFlight.add(d);
    }
    await Promise.allSettled(inFlight);
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  /** The first due message that is not running now, nor waiting to retry its settling. */
  private nextDue(now: number): { key: string; message: QueueMessage } | null {
    for (const item of this.db.range({ gte: QUEUE_PREFIX, lt: QUEUE_PREFIX + hex(now + 1) })) {
      if (this.running.has(item.key) || (this.retryAt.get(item.key) ?? 0) > now) continue;
      return { key: item.key, message: item.value as QueueMessage };
    }
    return null;
  }

  /** Until the earliest message not running is due, at most kvSweepMsMax. */
  private untilNext(now: number): number {
    let next = now + L.kvSweepMsMax;
    for (const item of this.db.range({ gte: QUEUE_PREFIX, lt: QUEUE_PREFIX + hex(next), keysOnly: true })) {
      if (this.running.has(item.key)) continue;
      next = Math.min(next, Math.max(deliverAtOf(item.key), this.retryAt.get(item.key) ?? 0));
    }
    return Math.max(1, next - now + 1);
  }

  private async deliver(key: string, m: QueueMessage, handler: (value: unknown) => unknown): Promise<void> {
    let ok = false;
    try {
      await handler(deserializeV8(m.payload));
      ok = true;
    } catch (err) {
      console.error("harmonydb/kv: exception in queue handler", err); // as Deno logs it; the message is retried
    }
    await this.db.atomic((rev, read) => {
      if (read(key) === undefined) return [];
      const ops: BatchOp[] = [{ type: "delete", key }];
      if (ok) return ops;
      const [step, ...rest] = m.backoffMs;
      if (step !== undefined) {
        const deliverAt = Date.now() + step;
        ops.push({ type: "put", key: queueKey(deliverAt, rev, 0), value: { ...m, deliverAt, backoffMs: rest } });
      } else if (m.keysIfUndelivered.length > 0) {
        ops.push(...this.undelivered(m.keysIfUndelivered, { encoding: ENCODING.v8, expireAt: 0, data: m.payload }, rev, read));
      }
      return ops;
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wake(), ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }
}
