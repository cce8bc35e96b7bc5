// A deterministic simulation of the write path over FaultIO: the real WalWriter and the real
// recovery, driven step by step in this thread, with an oracle of every write and every ack.

import * as R from "../../src/wal/ring.ts";
import { ChunkEncoder, footerPayload, headerPayload } from "../../src/snapshot/file.ts";
import { visitOps } from "../../src/format/decoder.ts";
import type { Op } from "../../src/format/encoder.ts";
import { FORMAT_VERSION, TYPE_SNAP_CHUNK, TYPE_SNAP_FOOTER, TYPE_SNAP_HEADER } from "../../src/format/constants.ts";
import { openLog, type Apply } from "../../src/wal/recovery.ts";
import { WalWriter, continueLog } from "../../src/wal/writer.ts";
import { WritePipeline } from "../../src/write/pipeline.ts";
import { NO_CONDS } from "../../src/write/validate.ts";
import { FaultIO, type LossMode } from "./fault-io.ts";

export const WAL = "/sim/wal";
export const SNAP = "/sim/snap";
const SEGMENT_BYTES = 16 * 1024;
const KEYS = 40;

/**
 * One database life: open (recover) on `io`, then writes and writer steps until a crash. Writes
 * and snapshot frames go through the real WritePipeline, as db.put and db.snapshot() send them;
 * the simulator stands in for the pipeline's waiter (poll() after each writer step) and the index.
 */
export class SimLife {
  readonly state = new Map<string, string>();
  readonly writer: WalWriter;
  readonly ring = R.createRing(64 * 1024, 16 * 1024);
  readonly recoveredRev: number;
  readonly pipeline: WritePipeline;
  private readonly dbId: string;
  /** The highest revision whose fdatasync returned (acknowledged to its writer). */
  ackedRev: number;
  /** The snapshot recovery started from (0: none). */
  readonly snapshotRev: number;
  /** The values of single puts not yet applied, by key, in order (hex). */
  private readonly sentPuts = new Map<string, string[]>();

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
    this.pipeline = new WritePipeline(this.ring, 16 * 1024, rec.lastRev, {
      revOf: () => {
        throw new Error("the simulation writes without conditions or deletes of one key");
      },
      entryOf: () => {
        throw new Error("the simulation writes no decided writes");
      },
      apply: (rev) => (this.ackedRev = rev), // acknowledged: its fdatasync returned
      applyPut: (rev, key, _keyBytes, src, start, end) => {
        // A single put is applied from its frame in the ring: those must still be its bytes.
        const sent = this.sentPuts.get(key)?.shift();
        const got = hex(src.subarray(start, end));
        if (got !== sent) throw new Error(`rev ${rev} of ${key} applied ${got} from the ring, but ${sent} was put`);
        this.ackedRev = rev;
      },
      keepAlive: () => {},
      afterAck: () => {},
    });
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

  /**
   * Hands one write to the pipeline, as db.put() (one put) or db.batch() does: framed into the
   * ring now, or queued until acknowledgements free room. Its promise, or null once the store
   * failed (db.batch() refuses then).
   */
  submit(ops: Op[]): Promise<unknown> | null {
    if (this.pipeline.failure) return null;
    const op = ops[0]!;
    let p: Promise<unknown>;
    if (ops.length === 1 && op.length === 2) {
      // As db.put(): the value from a shared buffer, overwritten right after (the ring must have its own copy).
      const sent = this.sentPuts.get(op[0]) ?? [];
      sent.push(hex(op[1]));
      this.sentPuts.set(op[0], sent);
      shared.set(op[1]);
      p = this.pipeline.submitPut(op[0], shared.subarray(0, op[1].length), NO_CONDS);
      shared.fill(0xee, 0, op[1].length);
    } else {
      p = this.pipeline.submit(ops, NO_CONDS, false);
    }
    p.catch(() => {}); // a write failed by the writer's failure: the oracle only counts acknowledgements
    return p;
  }

  /**
   * Sends a snapshot of `state` (the state at `rev`, which must be durable) through the pipeline's
   * frame entry, as db.snapshot() does: header, small chunks, footer. They reach the ring as room
   * allows, ahead of queued writes.
   */
  snapshot(rev: number, state: Map<string, string>): void {
    const send = (type: number, payload: Uint8Array) => this.pipeline.submitFrame(type, rev, payload).catch(() => {});
    const keys = [...state.keys()].sort();
    send(TYPE_SNAP_HEADER, headerPayload({ v: FORMAT_VERSION, db: this.dbId, rev, keys: keys.length }));
    const enc = new ChunkEncoder(512);
    let chunks = 0;
    const chunk = (payload: Uint8Array | null) => {
      if (!payload) return;
      send(TYPE_SNAP_CHUNK, payload);
      chunks++;
    };
    for (const key of keys) chunk(enc.add(key, { value: Buffer.from(state.get(key)!, "hex"), rev, createRev: rev, version: 1 }));
    chunk(enc.flush());
    send(TYPE_SNAP_FOOTER, footerPayload({ keys: keys.length, chunks }));
  }

  /** Snapshot frames still waiting for room in the ring. */
  get snapshotting(): boolean {
    return this.pipeline.queuedFrameCount() > 0;
  }

  /** One writer step; then the pipeline settles every write whose bytes ACKED covers (and refills the ring). */
  step(): void {
    this.writer.step();
    this.pipeline.poll();
  }
}

/** The buffer single puts hand their value over in (as db.put's value encoder does). */
const shared = new Uint8Array(16 * 1024);

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
