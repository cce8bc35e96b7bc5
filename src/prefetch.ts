// Reading a file into shared memory on another thread (workers/prefetch.ts), so that the caller
// parses what is already in while the rest is read. Opening a store spent ~0.5 s reading a 125 MiB
// snapshot and ~0.25 s more touching the fresh memory it went into (this VM's first touch of a page
// is slow), before parsing could start; now the two overlap.

import * as fs from "node:fs";
import { parentPort, Worker, workerData } from "node:worker_threads";
import { WalFailedError } from "./errors.ts";

/** The file is read in pieces of this size; the reader sees each as soon as it is in. */
const PIECE_BYTES = 4 * 1024 * 1024;
/** Progress is counted in pages, so that an int32 covers files far beyond 2 GiB. */
const PAGE_BYTES = 4096;
const FILLED = 0;
const STATE = 1;
const RUNNING = 0;
const DONE = 1;
const FAILED = 2;
const ERROR_BYTES = 1024;

interface PrefetchJob {
  file: string;
  bytes: Uint8Array;
  ctl: Int32Array;
  error: Uint8Array;
}

/** The main thread's side: `bytes` fills in front to back; waitFor() blocks until a part is in. */
export class Prefetch {
  readonly bytes: Uint8Array;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(8));
  private readonly error = new Uint8Array(new SharedArrayBuffer(ERROR_BYTES));
  private readonly worker: Worker;

  constructor(
    readonly file: string,
    readonly size: number,
  ) {
    this.bytes = new Uint8Array(new SharedArrayBuffer(size));
    const job: PrefetchJob = { file, bytes: this.bytes, ctl: this.ctl, error: this.error };
    this.worker = new Worker(new URL("../workers/prefetch.ts", import.meta.url), { workerData: job });
  }

  /** Waits until bytes [0, end) are in. Throws WalFailedError if the read failed. */
  waitFor(end: number): void {
    for (;;) {
      const filled = Atomics.load(this.ctl, FILLED);
      const state = Atomics.load(this.ctl, STATE);
      if (state === FAILED) {
        const msg = new TextDecoder().decode(this.error).replace(/\0+$/, "");
        throw new WalFailedError(`cannot read ${this.file}: ${msg}`); // EIO and friends: refuse to open
      }
      if (state === DONE || filled * PAGE_BYTES >= end) return;
      Atomics.wait(this.ctl, FILLED, filled, 1000);
    }
  }

  close(): void {
    void this.worker.terminate();
  }
}

/** The worker's side: reads the whole file, publishing progress, or the error that stopped it. */
export function servePrefetch(): void {
  const job = workerData as PrefetchJob;
  const { bytes, ctl } = job;
  let fd = -1;
  try {
    fd = fs.openSync(job.file, fs.constants.O_RDONLY);
    let done = 0;
    while (done < bytes.length) {
      const n = fs.readSync(fd, bytes, done, Math.min(PIECE_BYTES, bytes.length - done), done);
      if (n === 0) throw new Error(`${job.file}: end of file at ${done} of ${bytes.length} bytes`);
      done += n;
      // Touched here, off the reader's path: a first touch of fresh memory is slow on some VMs.
      let sum = 0;
      for (let i = done - n; i < done; i += PAGE_BYTES) sum += bytes[i]!;
      if (sum < 0) throw new Error("unreachable");
      Atomics.store(ctl, FILLED, Math.floor(done / PAGE_BYTES));
      Atomics.notify(ctl, FILLED);
    }
    Atomics.store(ctl, STATE, DONE);
  } catch (err) {
    new TextEncoder().encodeInto((err as Error).message, job.error);
    Atomics.store(ctl, STATE, FAILED);
  } finally {
    if (fd >= 0) fs.closeSync(fd);
    Atomics.notify(ctl, FILLED);
    parentPort?.close();
  }
}
