// The JS group-commit limit's worker: everything published in the ring, one write + one fdatasync, ack.

import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import * as C from "./ceilings.ts";
import * as B from "./lib.ts";

/** Spin this long for new records before parking, as the engine's writer does (src/limits.ts writerSpinUs). */
const SPIN_US = 50;

const cfg = workerData as C.WorkerConfig;
const ctl = new Int32Array(cfg.sab, 0, C.CTL_BYTES / 4);
const data = new Uint8Array(cfg.sab, C.CTL_BYTES, C.RING_BYTES);
const fd = B.zeroFilledFile(cfg.file, cfg.capacityBytes);
let offset = 0;

/** Records [tail, head) of the ring as one or two slices: one pwritev writes both. */
function slices(tail: number, head: number): Uint8Array[] {
  const from = (tail & (C.RING_RECORDS - 1)) * B.RAW_RECORD_BYTES;
  const bytes = ((head - tail) | 0) * B.RAW_RECORD_BYTES;
  if (from + bytes <= C.RING_BYTES) return [data.subarray(from, from + bytes)];
  return [data.subarray(from), data.subarray(0, from + bytes - C.RING_BYTES)];
}

/** One group commit. The file wraps around at its end, still overwriting zeros, as reused segments do. */
function commit(tail: number, head: number): void {
  const bytes = ((head - tail) | 0) * B.RAW_RECORD_BYTES;
  if (offset + bytes > cfg.capacityBytes) offset = 0;
  fs.writevSync(fd, slices(tail, head), offset);
  offset += bytes;
  fs.fdatasyncSync(fd);
  Atomics.add(ctl, C.FSYNCS, 1);
  Atomics.store(ctl, C.ACKED, head);
  Atomics.add(ctl, C.EVENTS, 1);
  Atomics.notify(ctl, C.EVENTS);
}

/**
 * Waits for HEAD to move from `head`: a short spin, then parked; the main thread wakes it when it sees
 * SLEEPING. The timeout only bounds how long a STOP stored between the check and the wait goes unseen.
 */
function sleep(head: number): void {
  const spinUntil = performance.now() + SPIN_US / 1000;
  while (performance.now() < spinUntil) if (Atomics.load(ctl, C.HEAD) !== head) return;
  Atomics.store(ctl, C.SLEEPING, 1);
  if (Atomics.load(ctl, C.HEAD) === head && Atomics.load(ctl, C.STOP) === 0) Atomics.wait(ctl, C.HEAD, head, 100);
  Atomics.store(ctl, C.SLEEPING, 0);
}

parentPort?.postMessage("ready");
let tail = 0;
for (;;) {
  const head = Atomics.load(ctl, C.HEAD);
  if (head !== tail) {
    commit(tail, head);
    tail = head;
  } else if (Atomics.load(ctl, C.STOP) === 1) break;
  else sleep(head);
}
fs.closeSync(fd);
