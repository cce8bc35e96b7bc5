// The two ceilings of a promise-per-put engine in Bun: the JS floor (no I/O) and the JS group-commit limit.

import { Worker } from "node:worker_threads";
import * as B from "./lib.ts";

/** What put.ts drives: one promise per put, as every engine adapter. */
export interface Ceiling {
  /** Copies key and value into a 128 B record (the caller may reuse them at once); resolves once settled. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Records and the fdatasyncs that carried them so far (the group-commit limit only). */
  syncStats?(): { records: number; fsyncs: number };
  close(): Promise<void>;
}

export const FLOOR = { id: "js-floor", name: "JS floor (no I/O)", durable: false } as const;
export const GROUP_COMMIT = { id: "js-group-commit", name: "JS group-commit limit (worker write + fdatasync)", durable: true } as const;

/** Records the ring (and the floor's buffer) holds: far more than the 256 puts in flight at most. */
export const RING_RECORDS = 4096;
const RING_MASK = RING_RECORDS - 1;
const RECORD_BYTES = B.RAW_RECORD_BYTES;
const encoder = new TextEncoder();

/** The put's 128 B record at `at`: key, value, then whatever the slot held (padding nobody reads). */
function copyRecord(dst: Uint8Array, at: number, key: string, value: Uint8Array): void {
  const { written } = encoder.encodeInto(key, dst.subarray(at, at + RECORD_BYTES - value.length));
  dst.set(value, at + written);
}

/**
 * The JS floor: each put copies its record and waits for one microtask that settles every put issued
 * before it. A microtask, not a timer or an I/O callback: with no I/O, nothing needs an event-loop turn,
 * so this is the least a promise-per-put engine can pay (a turn is the group-commit limit's business).
 */
export class JsFloor implements Ceiling {
  private readonly buf = new Uint8Array(RING_RECORDS * RECORD_BYTES);
  private next = 0;
  private waiting: (() => void)[] = [];

  put(key: string, value: Uint8Array): Promise<void> {
    copyRecord(this.buf, (this.next++ & RING_MASK) * RECORD_BYTES, key, value);
    return new Promise((resolve) => {
      if (this.waiting.push(resolve) === 1) queueMicrotask(this.settle);
    });
  }

  private readonly settle = (): void => {
    const done = this.waiting;
    this.waiting = [];
    for (const resolve of done) resolve();
  };

  async close(): Promise<void> {}
}

// ---- the group-commit limit: the ring the worker (bench/ceiling-worker.ts) reads ----

/** Int32 slots at the start of the SharedArrayBuffer. Positions count records and wrap as int32. */
export const HEAD = 0; // main: records published
export const ACKED = 1; // worker: records written and fdatasynced
export const EVENTS = 2; // worker: bumped after each ACKED store; main waits on it
export const SLEEPING = 3; // worker: 1 while parked in Atomics.wait on HEAD
export const STOP = 4; // main: 1 once the worker should exit
export const FSYNCS = 5; // worker: fdatasyncs of records so far
export const CTL_BYTES = 8 * 4;
export const RING_BYTES = RING_RECORDS * RECORD_BYTES;

export interface WorkerConfig {
  sab: SharedArrayBuffer;
  /** The file the worker overwrites, zero-filled to `capacityBytes` first, as the WAL's segments are. */
  file: string;
  capacityBytes: number;
}

/**
 * The JS group-commit limit: each put copies its record into the ring and publishes it; the worker
 * writes everything published in one write + one fdatasync while the next batch collects, then stores
 * ACKED; one Atomics.waitAsync waiter on the main thread resolves every put up to it. The engine's own
 * protocol (src/wal/ring.ts, src/write/pipeline.ts) with nothing else: no revisions, index or framing.
 */
export class JsGroupCommit implements Ceiling {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private head = 0;
  private acked = 0;
  private pending: (() => void)[] = [];
  private stopped = false;

  private constructor(sab: SharedArrayBuffer, private readonly worker: Worker) {
    this.ctl = new Int32Array(sab, 0, CTL_BYTES / 4);
    this.data = new Uint8Array(sab, CTL_BYTES, RING_BYTES);
    void this.waitForAcks();
  }

  /** Starts the worker and waits until it has prepared its file. A worker error ends the process. */
  static async open(file: string, capacityBytes: number): Promise<JsGroupCommit> {
    const cfg: WorkerConfig = { sab: new SharedArrayBuffer(CTL_BYTES + RING_BYTES), file, capacityBytes };
    const worker = new Worker(new URL("./ceiling-worker.ts", import.meta.url), { workerData: cfg });
    worker.on("error", (err) => {
      throw new Error(`${GROUP_COMMIT.name}: the worker failed`, { cause: err });
    });
    await new Promise((resolve) => worker.once("message", resolve));
    return new JsGroupCommit(cfg.sab, worker);
  }

  put(key: string, value: Uint8Array): Promise<void> {
    // Each caller has one put out, so fewer than RING_RECORDS callers never find the ring full.
    if (((this.head - this.acked) | 0) >= RING_RECORDS) throw new Error(`${GROUP_COMMIT.name}: more than ${RING_RECORDS} puts in flight`);
    copyRecord(this.data, (this.head & RING_MASK) * RECORD_BYTES, key, value);
    this.head = (this.head + 1) | 0;
    // As the engine does: publish every put, wake the worker only when it is parked.
    Atomics.store(this.ctl, HEAD, this.head);
    if (Atomics.load(this.ctl, SLEEPING) === 1) Atomics.notify(this.ctl, HEAD);
    return new Promise((resolve) => this.pending.push(resolve));
  }

  /** The one waiter: resolves the puts the worker acknowledged, in order, until close(). */
  private async waitForAcks(): Promise<void> {
    while (!this.stopped) {
      // Read EVENTS before ACKED: an ack after this point makes the wait return at once.
      const events = Atomics.load(this.ctl, EVENTS);
      const acked = Atomics.load(this.ctl, ACKED);
      if (acked !== this.acked) {
        const done = this.pending.splice(0, (acked - this.acked) | 0);
        this.acked = acked;
        for (const resolve of done) resolve();
        continue;
      }
      const w = Atomics.waitAsync(this.ctl, EVENTS, events);
      if (w.async) await w.value;
    }
  }

  syncStats(): { records: number; fsyncs: number } {
    return { records: this.acked >>> 0, fsyncs: Atomics.load(this.ctl, FSYNCS) };
  }

  /** After the last put has resolved: the worker exits, and so does the waiter. */
  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.worker.once("exit", resolve));
    Atomics.store(this.ctl, STOP, 1);
    Atomics.notify(this.ctl, HEAD);
    await exited;
    this.stopped = true;
    Atomics.add(this.ctl, EVENTS, 1);
    Atomics.notify(this.ctl, EVENTS);
  }
}
