// A deterministic simulation of the write path over FaultIO: the real WalWriter and the real
// recovery, driven step by step in this thread, with an oracle of every write and every ack.

import * as R from "../../src/ring.ts";
import { visitOps } from "../../src/wal/decoder.ts";
import { entryPayloadBytes, utf8Bytes, type Op } from "../../src/wal/encoder.ts";
import { frameBytes } from "../../src/wal/format.ts";
import { openLog, type Apply } from "../../src/wal/recovery.ts";
import { WalWriter, continueLog } from "../../src/wal/writer.ts";
import { FaultIO, type LossMode } from "./fault-io.ts";

export const WAL = "/sim/wal";
export const SNAP = "/sim/snap";
const SEGMENT_BYTES = 64 * 1024;
const KEYS = 40;

/** One database life: open (recover) on `io`, then writes and writer steps until a crash. */
export class SimLife {
  readonly state = new Map<string, string>();
  readonly writer: WalWriter;
  readonly ring = R.createRing(64 * 1024, 16 * 1024);
  readonly recoveredRev: number;
  private head = R.START_POS;
  private nextRev: number;
  private readonly inFlight: { end: number; rev: number }[] = [];
  /** The highest revision whose fdatasync returned (acknowledged to its writer). */
  ackedRev: number;

  constructor(readonly io: FaultIO) {
    const apply: Apply = (_rev, seg, start, end) => applyTo(this.state, seg, start, end);
    const rec = openLog(WAL, apply, { io, log: () => {}, newDbId: () => "sim-db" });
    this.recoveredRev = this.ackedRev = rec.lastRev;
    this.nextRev = rec.lastRev + 1;
    this.writer = new WalWriter(
      {
        ...continueLog(rec),
        sab: this.ring.sab,
        walDir: WAL,
        snapDir: SNAP,
        segmentBytes: SEGMENT_BYTES,
        sync: "always",
        syncIntervalMs: 1000,
        commitDelayUs: 0,
      },
      io,
    );
  }

  /** Frames one write into the ring, as the main thread does; null when the ring is full. */
  submit(ops: Op[]): number | null {
    const keyBytes = ops.map((op) => utf8Bytes(op[0]));
    const len = entryPayloadBytes(ops, keyBytes);
    if (frameBytes(len) > this.ring.capacity - R.diff(this.head, Atomics.load(this.ring.ctl, R.ACKED))) return null;
    const rev = this.nextRev++;
    this.head = R.putEntry(this.ring, this.head, rev, ops, keyBytes, len);
    Atomics.store(this.ring.ctl, R.HEAD, this.head);
    this.inFlight.push({ end: this.head, rev });
    return rev;
  }

  /** One writer step; then every write whose bytes ACKED covers is acknowledged. */
  step(): void {
    this.writer.step();
    const acked = Atomics.load(this.ring.ctl, R.ACKED);
    while (this.inFlight.length > 0 && R.diff(acked, this.inFlight[0]!.end) >= 0) {
      this.ackedRev = this.inFlight.shift()!.rev;
    }
  }
}

export function applyTo(state: Map<string, string>, seg: Parameters<typeof visitOps>[0], start: number, end: number): void {
  visitOps(seg, start, end, {
    put: (key, e, s, en) => state.set(key, Buffer.from(e.bytes.subarray(s, en)).toString("hex")),
    delete: (key) => state.delete(key),
  });
}

/** A random write: a put, a delete or a batch, over a small key space so keys are overwritten. */
export function randomOps(random: () => number): Op[] {
  const n = random() < 0.2 ? 2 + Math.floor(random() * 5) : 1;
  return Array.from({ length: n }, (): Op => {
    const key = `k${Math.floor(random() * KEYS)}${random() < 0.1 ? "é" : ""}`;
    if (random() < 0.2) return [key];
    const len = random() < 0.1 ? 500 + Math.floor(random() * 1500) : Math.floor(random() * 120);
    return [key, Uint8Array.from({ length: len }, () => Math.floor(random() * 256))];
  });
}

/** The oracle: the state after applying writes 1..rev of `history` (index i holds rev i + 1). */
export function stateAt(history: Op[][], rev: number): Map<string, string> {
  const state = new Map<string, string>();
  for (let i = 0; i < rev; i++) {
    for (const op of history[i]!) {
      if (op.length === 1) state.delete(op[0]);
      else state.set(op[0], Buffer.from(op[1]).toString("hex"));
    }
  }
  return state;
}

export const LOSS_MODES: LossMode[] = ["drop-unsynced", "keep-all", "prefix", "torn"];
