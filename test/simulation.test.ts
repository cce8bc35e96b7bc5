import { expect, test } from "bun:test";
import { FaultIO, PowerLoss, seeded, type Op as FaultOp } from "./helpers/fault-io.ts";
import { LOSS_MODES, SNAP, SimLife, WAL, randomOps, stateAt } from "./helpers/sim.ts";
import type { Op } from "../src/format/encoder.ts";

const SCENARIOS = Number(process.env.HARMONYDB_SIM_SCENARIOS ?? 300);
const SEED = Number(process.env.HARMONYDB_SIM_SEED ?? Date.now() % 1_000_000);
const FAULT_OPS: FaultOp[] = ["pwrite", "fdatasync", "openWrite", "rename", "fsyncDir", "unlink", "readFile"];

interface Tally {
  crashes: number;
  midOperation: number;
  faults: number;
  tornTails: number;
  acked: number;
  snapshots: number;
  fromSnapshot: number;
  compacted: number;
}

/**
 * One scenario: a few lives of the database on one simulated disk. In each, random writes and
 * writer steps (and now and then an injected EIO/ENOSPC), then power loss in a random mode, then
 * recovery. The invariant after every crash: every acknowledged write is there, and what is there
 * is exactly the state after some prefix of the writes (no holes, nothing invented).
 */
function scenario(seed: number, t: Tally): void {
  const random = seeded(seed);
  let io = new FaultIO(random);
  io.mkdir("/sim");
  io.mkdir(WAL);
  io.mkdir(SNAP);
  let history: Op[][] = [];
  let acked = 0;
  for (let life = 0; life < 4; life++) {
    // Power fails at a random I/O call: mid-commit, mid-rotation, mid-recovery, or not this life.
    io.losePowerAfter(1 + Math.floor(random() * 150));
    try {
      acked = live(io, history, random, t, (rev) => (acked = rev));
    } catch (err) {
      if (!(err instanceof PowerLoss)) throw err;
    }
    if (io.powerLost) t.midOperation++;
    const mode = LOSS_MODES[Math.floor(random() * LOSS_MODES.length)]!;
    io = io.crash(mode);
    t.crashes++;
    // The next life's recovery checks every acknowledged write and the prefix property.
    history = verifyRecovery(io, history, acked, t);
  }
}

/** Recovers on a fresh copy of the disk and checks it; returns the history that survived. */
function verifyRecovery(io: FaultIO, history: Op[][], acked: number, t: Tally): Op[][] {
  const probe = io.crash("keep-all", false); // recovery repairs; check on a copy, the real life reopens
  const db = new SimLife(probe);
  expect(db.recoveredRev).toBeGreaterThanOrEqual(acked);
  expect(db.recoveredRev).toBeLessThanOrEqual(history.length);
  expect(db.state).toEqual(stateAt(history, db.recoveredRev));
  if (probe.readdir(WAL).some((n) => n.endsWith(".broken"))) t.tornTails++;
  if (db.snapshotRev > 0) t.fromSnapshot++;
  if (!probe.readdir(WAL).some((n) => n.startsWith("0000000000000001-"))) t.compacted++;
  return history.slice(0, db.recoveredRev);
}

/** One life: recover, then random writes and writer steps (and injected faults) until power fails. */
function live(io: FaultIO, history: Op[][], random: () => number, t: Tally, onAck: (rev: number) => void): number {
  const db = new SimLife(io);
  onAck(db.recoveredRev);
  const steps = 20 + Math.floor(random() * 300);
  for (let s = 0; s < steps && !io.powerLost; s++) {
    const r = random();
    if (r < 0.6) {
      const ops = randomOps(random);
      if (db.submit(ops) !== null) history.push(ops);
    } else if (r < 0.62) {
      // A snapshot of the durable state, written between commits like db.snapshot() does.
      if (!db.snapshotting) {
        db.snapshot(db.ackedRev, stateAt(history, db.ackedRev));
        t.snapshots++;
      }
    } else if (r < 0.995) {
      const before = db.ackedRev;
      const failedBefore = db.writer.failed;
      db.step();
      if (failedBefore) expect(db.ackedRev).toBe(before); // poisoned: nothing more is acknowledged
      onAck(db.ackedRev);
    } else {
      const op = FAULT_OPS[Math.floor(random() * FAULT_OPS.length)]!;
      io.inject({ op, code: random() < 0.5 ? "EIO" : "ENOSPC", nth: 1 + Math.floor(random() * 3) });
      t.faults++;
    }
  }
  t.acked += db.ackedRev - db.recoveredRev;
  return db.ackedRev;
}

test(`simulated power loss and I/O faults: ${SCENARIOS} scenarios keep every ack and a prefix of the history`, () => {
  console.log(`simulation seed ${SEED} (HARMONYDB_SIM_SEED=${SEED} replays it; HARMONYDB_SIM_SCENARIOS sets the count)`);
  const t: Tally = { crashes: 0, midOperation: 0, faults: 0, tornTails: 0, acked: 0, snapshots: 0, fromSnapshot: 0, compacted: 0 };
  for (let i = 0; i < SCENARIOS; i++) {
    try {
      scenario(SEED + i, t);
    } catch (err) {
      console.log(`scenario failed: HARMONYDB_SIM_SEED=${SEED + i} HARMONYDB_SIM_SCENARIOS=1`);
      throw err;
    }
  }
  console.log(
    `simulation: ${SCENARIOS} scenarios, ${t.crashes} crashes (${t.midOperation} in the middle of an I/O sequence), ` +
      `${t.faults} injected faults, ${t.tornTails} torn tails repaired, ${t.acked} acknowledged writes checked, ` +
      `${t.snapshots} snapshots started, ${t.fromSnapshot} recoveries from a snapshot ` +
      `(${t.compacted} with the first segments deleted)`,
  );
  expect(t.fromSnapshot).toBeGreaterThan(0);
  expect(t.compacted).toBeGreaterThan(0);
  expect(t.crashes).toBe(SCENARIOS * 4);
}, 600_000);
