// A deterministic simulation of the write path over FaultIO: the real WalWriter and the real
// recovery, driven step by step in this thread, with an oracle of every write and every ack.

import * as R from "../../src/wal/ring.ts";
import { ChunkEncoder, footerPayload, headerPayload } from "../../src/snapshot/file.ts";
import { visitOps } from "../../src/format/decoder.ts";
import { entryPayloadBytes, utf8Bytes, type Op } from "../../src/format/encoder.ts";
import { FORMAT_VERSION, TYPE_SNAP_CHUNK, TYPE_SNAP_FOOTER, TYPE_SNAP_HEADER, frameBytes } from "../../src/format/constants.ts";
import { openLog, type Apply } from "../../src/wal/recovery.ts";
import { WalWriter, continueLog } from "../../src/wal/writer.ts";
import { FaultIO, type LossMode } from "./fault-io.ts";

export const WAL = "/sim/wal";
export const SNAP = "/sim/snap";
const SEGMENT_BYTES = 16 * 1024;
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
  /** Snapshot frames waiting for room in the ring, in order. */
  private readonly frames: { type: number; rev: number; payload: Uint8Array }[] = [];
  private readonly dbId: string;
  /** The highest revision whose fdatasync returned (acknowledged to its writer). */
  ackedRev: number;
  /** The snapshot recovery started from (0: none). */
  readonly snapshotRev: number;

  constructor(readonly io: FaultIO) {
    // As open() does, the log is replayed before the snapshot's entries load: its changes are kept
    // apart (null: deleted) and laid over the entries at the end.
    const changes = new Map<string, string | null>();
    const apply: Apply = (_rev, seg, start, end) =>
      visitOps(seg, start, end, {
        put: (key, e, s, en) => changes.set(key, hex(e.bytes.subarray(s, en))),
        delete: (key) => changes.set(key, null),
      });
    const snapshots = {
      dir: SNAP,
      entry: (key: string, e: { bytes: Uint8Array }, s: number, end: number) => this.state.set(key, hex(e.bytes.subarray(s, end))),
      done: () => {},
      // A damaged snapshot: recovery tries an older one, and replays the log again after it.
      reset: () => (this.state.clear(), changes.clear()),
    };
    const rec = openLog(WAL, apply, { io, log: () => {}, newDbId: () => "sim-db", snapshots, logFirst: true });
    for (const [key, value] of changes) value === null ? this.state.delete(key) : this.state.set(key, value);
    this.dbId = rec.dbId;
    this.snapshotRev = rec.snapshot?.rev ?? 0;
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

  /**
   * Queues a snapshot of `state` (the state at `rev`, which must be durable) as db.snapshot()
   * frames it: header, small chunks, footer. They reach the ring as room allows, between writes.
   */
  snapshot(rev: number, state: Map<string, string>): void {
    const keys = [...state.keys()].sort();
    this.frames.push({ type: TYPE_SNAP_HEADER, rev, payload: headerPayload({ v: FORMAT_VERSION, db: this.dbId, rev, keys: keys.length }) });
    const enc = new ChunkEncoder(512);
    let chunks = 0;
    const chunk = (payload: Uint8Array | null) => {
      if (payload) this.frames.push({ type: TYPE_SNAP_CHUNK, rev, payload }) && chunks++;
    };
    for (const key of keys) chunk(enc.add(key, { value: Buffer.from(state.get(key)!, "hex"), rev, createRev: rev, version: 1 }));
    chunk(enc.flush());
    this.frames.push({ type: TYPE_SNAP_FOOTER, rev, payload: footerPayload({ keys: keys.length, chunks }) });
  }

  get snapshotting(): boolean {
    return this.frames.length > 0;
  }

  private publishFrames(): void {
    while (this.frames.length > 0) {
      const f = this.frames[0]!;
      if (frameBytes(f.payload.length) > this.ring.capacity - R.diff(this.head, Atomics.load(this.ring.ctl, R.ACKED))) return;
      this.head = R.putFrame(this.ring, this.head, f.type, f.rev, f.payload);
      Atomics.store(this.ring.ctl, R.HEAD, this.head);
      this.frames.shift();
    }
  }

  /** One writer step; then every write whose bytes ACKED covers is acknowledged. */
  step(): void {
    this.publishFrames();
    this.writer.step();
    const acked = Atomics.load(this.ring.ctl, R.ACKED);
    while (this.inFlight.length > 0 && R.diff(acked, this.inFlight[0]!.end) >= 0) {
      this.ackedRev = this.inFlight.shift()!.rev;
    }
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
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
