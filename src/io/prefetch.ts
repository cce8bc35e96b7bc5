// Reading a file into shared memory on another thread (workers/prefetch.ts), so that the caller
// parses what is already in while the rest is read. Opening a store spent ~0.5 s reading a 125 MiB
// snapshot and ~0.25 s more touching the fresh memory it went into (this VM's first touch of a page
// is slow), before parsing could start; now the two overlap.

import { parentPort, Worker, workerData } from "node:worker_threads";
import { WalFailedError } from "../errors.ts";
import { nodeIO } from "./file-io.ts";
import { readSharedText, writeSharedText } from "./shared-text.ts";

/** The file is read in pieces of this size; the reader sees each as soon as it is in. */
const PIECE_BYTES = 4 * 1024 * 1024;
/** Progress is counted in pages, so that an int32 covers files far beyond 2 GiB. */
const PAGE_BYTES = 4096;
const FILLED = 0;
const STATE = 1;
/** Bumped (and notified) on every change of the two above: what the reader waits on. */
const CHANGES = 2;
const NOT_STARTED = 0;
const RUNNING = 1;
const DONE = 2;
const FAILED = 3;
const ERROR_BYTES = 1024;
/** A worker that has not started reading by then is given up on: the file is read here instead. */
const START_MS_MAX = 5000;

interface PrefetchJob {
  file: string;
  bytes: Uint8Array;
  ctl: Int32Array;
  error: Uint8Array;
}

/** The main thread's side: `bytes` fills in front to back; waitFor() blocks until a part is in. */
export class Prefetch {
  readonly bytes: Uint8Array;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(12));
  private readonly error = new Uint8Array(new SharedArrayBuffer(ERROR_BYTES));
  private readonly worker: Worker;
  private readonly startedAt = performance.now();
  /** Read here after all (the worker never started): `bytes` is whole. */
  private readHere = false;

  constructor(
    readonly file: string,
    readonly size: number,
  ) {
    this.bytes = new Uint8Array(new SharedArrayBuffer(size));
    const job: PrefetchJob = { file, bytes: this.bytes, ctl: this.ctl, error: this.error };
    this.worker = new Worker(new URL("../../workers/prefetch.ts", import.meta.url), { workerData: job });
  }

  /** Waits until bytes [0, end) are in. Throws WalFailedError if the read failed. */
  waitFor(end: number): void {
    for (;;) {
      if (this.readHere) return;
      const changes = Atomics.load(this.ctl, CHANGES);
      const state = Atomics.load(this.ctl, STATE);
      if (state === FAILED) {
        throw new WalFailedError(`cannot read ${this.file}: ${readSharedText(this.error)}`); // EIO and friends: refuse to open
      }
      if (state === DONE || Atomics.load(this.ctl, FILLED) * PAGE_BYTES >= end) return;
      if (state === NOT_STARTED && performance.now() - this.startedAt > START_MS_MAX) return this.readAll();
      Atomics.wait(this.ctl, CHANGES, changes, 100);
    }
  }

  /** The worker never started (its events cannot reach a thread blocked here): read it all now. */
  private readAll(): void {
    void this.worker.terminate();
    try {
      read(this.file, this.bytes);
    } catch (err) {
      throw new WalFailedError(`cannot read ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    this.readHere = true;
  }

  close(): void {
    void this.worker.terminate();
  }
}

/** The worker's side: reads the whole file, publishing progress, or the error that stopped it. */
export function servePrefetch(): void {
  const job = workerData as PrefetchJob;
  const { ctl } = job;
  const publish = (slot: number, value: number) => {
    Atomics.store(ctl, slot, value);
    Atomics.add(ctl, CHANGES, 1);
    Atomics.notify(ctl, CHANGES);
  };
  publish(STATE, RUNNING);
  try {
    read(job.file, job.bytes, (done) => publish(FILLED, Math.floor(done / PAGE_BYTES)));
    publish(STATE, DONE);
  } catch (err) {
    writeSharedText(job.error, (err as Error).message);
    publish(STATE, FAILED);
  } finally {
    parentPort?.close();
  }
}

/** Reads the whole file into `bytes` (its size), a piece at a time, touching each page as it goes. */
function read(file: string, bytes: Uint8Array, progress: (done: number) => void = () => {}): void {
  for (let done = 0; done < bytes.length; ) {
    const piece = bytes.subarray(done, Math.min(bytes.length, done + PIECE_BYTES));
    const n = nodeIO.readAt(file, piece, done);
    if (n < piece.length) throw new Error(`${file}: end of file at ${done + n} of ${bytes.length} bytes`);
    // Touched here, off the reader's path: a first touch of fresh memory is slow on some VMs.
    let sum = 0;
    for (let i = 0; i < n; i += PAGE_BYTES) sum += piece[i]!;
    if (sum < 0) throw new Error("unreachable");
    done += n;
    progress(done);
  }
}
