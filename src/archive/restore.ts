// Restore from an archive (docs/archive-format.md, "Restore"): the newest snapshot at or before the
// target and a contiguous run of log after it, every object verified, written out as a new database.

import * as fs from "node:fs";
import * as path from "node:path";
import { ArchiveError, CorruptionError } from "../errors.ts";
import { decodeOps, encoded } from "../format/decoder.ts";
import { encodeFrame } from "../format/encoder.ts";
import { FORMAT_VERSION, TYPE_SNAP_CHUNK, TYPE_SNAP_FOOTER, TYPE_SNAP_HEADER } from "../format/constants.ts";
import type { FileIO } from "../io/file-io.ts";
import * as L from "../limits.ts";
import { ChunkEncoder, footerPayload, headerPayload, verifySnapshot, visitChunk, type SnapshotEntry } from "../snapshot/file.ts";
import { SnapshotFileWriter } from "../snapshot/file-writer.ts";
import { installSegment } from "../wal/segment.ts";
import { Bucket, type S3Settings } from "./bucket.ts";
import { decodeLogObject, decodePosition, LOG_DIR, parseLogName, parseSnapName, POSITION_NAME, SNAP_DIR } from "./object.ts";

export interface RestorePlanOptions {
  url: string;
  /** The revision to restore to (default: the newest the archive holds without a gap). */
  rev?: number;
  s3?: S3Settings;
  timeoutMs?: number;
}

/** The objects a restore reads, in order, and what it will produce. */
export interface RestorePlan {
  db: string;
  /** The highest revision any object in the archive holds. */
  headRev: number;
  targetRev: number;
  snapshot: { name: string; rev: number } | null;
  logs: { name: string; firstRev: number; lastRev: number }[];
}

/** Attempts for each S3 call of a restore (the archiver's own calls retry without end). */
const attempts = 5;
/** Log objects downloaded ahead of the one being applied. */
const downloadsAhead = 4;

/** Lists the archive (the only LISTs) and picks the snapshot and the log objects to read. */
export async function planRestore(o: RestorePlanOptions): Promise<{ plan: RestorePlan; bucket: Bucket }> {
  const bucket = new Bucket(o.url, o.s3, o.timeoutMs);
  const get = (name: string) => bucket.retrying(() => bucket.get(name), attempts);
  const [snapList, logList, positionBytes] = await Promise.all([
    bucket.retrying(() => bucket.list(SNAP_DIR), attempts),
    bucket.retrying(() => bucket.list(LOG_DIR), attempts),
    get(POSITION_NAME),
  ]);
  const snaps = snapList.map((s) => ({ name: s.name, rev: parseSnapName(s.name) })).filter((s): s is { name: string; rev: number } => s.rev !== null);
  const logs = logList.map((l) => ({ name: l.name, ...parseLogName(l.name)! })).filter((l) => l.firstRev !== undefined);
  for (const x of [...snapList, ...logList]) {
    if (parseSnapName(x.name) === null && parseLogName(x.name) === null) throw new ArchiveError("unexpected object in the archive", bucket.key(x.name));
  }
  if (snaps.length === 0 && logs.length === 0) throw new ArchiveError(`${o.url} holds no archive`);
  const db = positionBytes ? decodePosition(new TextDecoder().decode(positionBytes), bucket.key(POSITION_NAME)).db : null;
  const headRev = Math.max(0, ...snaps.map((s) => s.rev), ...logs.map((l) => l.lastRev));
  const target = o.rev ?? headRev;
  if (!(Number.isSafeInteger(target) && target >= 0)) throw new ArchiveError(`--rev must be a revision, not ${o.rev}`);
  if (target > headRev) throw new ArchiveError(`revision ${target} is past the newest the archive holds (${headRev})`);
  const snapshot = snaps.filter((s) => s.rev <= target).pop() ?? null;
  if (!snapshot && !logs.some((l) => l.firstRev === 1)) {
    throw new ArchiveError(`no snapshot at or before revision ${target}, and the log does not start at revision 1`);
  }
  // A chain of log objects from the snapshot to the target: at each step the object that holds the
  // next revision and reaches furthest (objects may overlap after an archiver restart).
  const chain: RestorePlan["logs"] = [];
  let next = (snapshot?.rev ?? 0) + 1;
  logs.sort((a, b) => a.firstRev - b.firstRev || b.lastRev - a.lastRev);
  while (next <= target) {
    let best: (typeof logs)[number] | null = null;
    for (const l of logs) if (l.firstRev <= next && l.lastRev >= next && (!best || l.lastRev > best.lastRev)) best = l;
    if (!best) {
      const before = chain.length > 0 ? chain[chain.length - 1]!.name : (snapshot?.name ?? "the start");
      if (o.rev === undefined && !logs.some((l) => l.firstRev > next) && !snaps.some((s) => s.rev >= next)) break;
      throw new ArchiveError(`gap in the log: no object holds revision ${next} (the last before the gap: ${before})`, bucket.key(before));
    }
    chain.push(best);
    next = best.lastRev + 1;
  }
  const targetRev = Math.min(target, next - 1);
  return { plan: { db: db ?? "", headRev, targetRev, snapshot, logs: chain }, bucket };
}

/** A key's state as restore builds it: the value's CBOR and its revisions. */
type State = Map<string, SnapshotEntry>;

/** Downloads and verifies the planned objects and replays them into a map of every key. */
export async function buildState(plan: RestorePlan, bucket: Bucket): Promise<{ state: State; db: string }> {
  const state: State = new Map();
  let db: string | null = plan.db === "" ? null : plan.db;
  const fetch = async (name: string) => {
    const b = await bucket.retrying(() => bucket.get(name), attempts);
    if (b === null) throw new ArchiveError("object listed but missing", bucket.key(name));
    return b;
  };
  if (plan.snapshot) {
    const name = bucket.key(plan.snapshot.name);
    let s;
    try {
      s = verifySnapshot(name, await fetch(plan.snapshot.name));
    } catch (err) {
      if (err instanceof CorruptionError) throw new ArchiveError(`snapshot refused: ${err.message}`, name, { cause: err });
      throw err;
    }
    if (s.header.rev !== plan.snapshot.rev) throw new ArchiveError(`snapshot holds revision ${s.header.rev}, its name says ${plan.snapshot.rev}`, name);
    if (db !== null && s.header.db !== db) throw new ArchiveError(`snapshot belongs to database ${s.header.db}, not ${db}`, name);
    db = s.header.db;
    const e = encoded(s.bytes);
    let lastKey: string | null = null;
    for (let i = 0; i < s.chunks.length; i++) {
      lastKey = visitChunk(s, e, i, lastKey, (key, enc, start, end, rev, createRev, version) => {
        state.set(key, { value: enc.bytes.slice(start, end), rev, createRev, version });
      });
    }
  }
  // Downloads run ahead of the replay; each object is verified whole before any of its entries is used.
  const pending = plan.logs.map(() => null as Promise<Uint8Array> | null);
  const start = (i: number) => {
    if (i < plan.logs.length && pending[i] === null) (pending[i] = fetch(plan.logs[i]!.name)).catch(() => {});
  };
  let next = (plan.snapshot?.rev ?? 0) + 1;
  for (let i = 0; i < plan.logs.length; i++) {
    for (let k = i; k <= i + downloadsAhead; k++) start(k);
    const l = plan.logs[i]!;
    const log = decodeLogObject(bucket.key(l.name), await pending[i]!, db);
    pending[i] = null;
    db = log.header.db;
    for (const entry of log.entries) {
      if (entry.rev < next) continue; // an overlap with the previous object
      if (entry.rev > plan.targetRev) break;
      apply(state, entry.rev, decodeOps(log.bytes.subarray(entry.start, entry.start + entry.len)));
      next = entry.rev + 1;
    }
  }
  if (next !== plan.targetRev + 1) throw new ArchiveError(`the log ends at revision ${next - 1}, short of ${plan.targetRev}`);
  return { state, db: db! };
}

/** The engine's semantics (src/store/key-index.ts): a put of an existing key keeps its createRev, version + 1. */
function apply(state: State, rev: number, ops: ReturnType<typeof decodeOps>): void {
  for (const op of ops) {
    if (op.length === 1) {
      state.delete(op[0]);
      continue;
    }
    const prev = state.get(op[0]);
    state.set(op[0], { value: op[1], rev, createRev: prev ? prev.createRev : rev, version: prev ? prev.version + 1 : 1 });
  }
}

/**
 * Writes `state` into `dir` (which must not exist) as a new database `dbId` at revision `rev`: one
 * snapshot holding every key with its own revisions, and a first, empty WAL segment after it.
 */
export function writeDatabase(io: FileIO, dir: string, dbId: string, rev: number, state: State): void {
  const snapDir = path.join(dir, "snap");
  const walDir = path.join(dir, "wal");
  fs.mkdirSync(snapDir, { recursive: true });
  fs.mkdirSync(walDir, { recursive: true });
  io.fsyncDir(dir);
  const keys = [...state.keys()].sort();
  const file = new SnapshotFileWriter(io, snapDir, rev);
  file.write(encodeFrame(TYPE_SNAP_HEADER, rev, headerPayload({ v: FORMAT_VERSION, db: dbId, rev, keys: keys.length })));
  const enc = new ChunkEncoder(L.snapshotChunkBytes);
  let chunks = 0;
  const chunk = (payload: Uint8Array | null) => {
    if (payload === null) return;
    file.write(encodeFrame(TYPE_SNAP_CHUNK, rev, payload));
    enc.recycle(payload);
    chunks++;
  };
  for (const key of keys) chunk(enc.add(key, state.get(key)!));
  chunk(enc.flush());
  file.write(encodeFrame(TYPE_SNAP_FOOTER, rev, footerPayload({ keys: keys.length, chunks })));
  file.install();
  installSegment(io, walDir, path.join(walDir, "first.tmp"), { v: FORMAT_VERSION, db: dbId, seq: 1, firstRev: rev + 1, prevCrc: 0 });
}
