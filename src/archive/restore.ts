// Restore from an archive (docs/archive-format.md, "Restore"): the newest snapshot at or before the
// target and a contiguous run of log after it, every object verified, written out as a new database.

import * as fs from "node:fs";
import * as path from "node:path";
import { ArchiveError, CorruptionError } from "../errors.ts";
import { decodeHeader, decodeOps, encoded, payloadOf, readFrame } from "../format/decoder.ts";
import { encodeFrame, sealFrame } from "../format/encoder.ts";
import {
  FORMAT_VERSION,
  FRAME_HEADER_BYTES,
  frameBytes,
  HEADER_FRAME_OFFSET,
  MAGIC,
  TYPE_HEADER,
  TYPE_SNAP_CHUNK,
  TYPE_SNAP_FOOTER,
  TYPE_SNAP_HEADER,
} from "../format/constants.ts";
import type { FileIO } from "../io/file-io.ts";
import * as L from "../limits.ts";
import { ChunkEncoder, footerPayload, headerPayload, verifySnapshot, visitChunk, type SnapshotEntry, type VerifiedSnapshot } from "../snapshot/file.ts";
import { SnapshotFileWriter } from "../snapshot/file-writer.ts";
import { readSegment } from "../wal/reader.ts";
import { installSegment, listSegments } from "../wal/segment.ts";
import { Bucket, type S3Settings } from "./bucket.ts";
import { decodeLogObject, decodePosition, LOG_DIR, parseLogName, parseSnapName, POSITION_NAME, SNAP_DIR } from "./object.ts";

export interface RestorePlanOptions {
  url: string;
  /** The revision to restore to (default: the newest the archive holds without a gap). */
  rev?: number;
  /** Restore what had reached the archive by this time (ms since the epoch; "Restore to a time"). */
  time?: number;
  s3?: S3Settings;
  timeoutMs?: number;
}

/** The objects a restore read, in order, and what it found. */
export interface RestorePlan {
  db: string;
  /** The highest revision any object in the archive holds. */
  headRev: number;
  targetRev: number;
  snapshot: { name: string; rev: number } | null;
  logs: { name: string; firstRev: number; lastRev: number }[];
  /**
   * Objects refused (torn, foreign, malformed) where another object held the same revisions, or,
   * with no target given, at the end of the archive (a cut upload that real S3 would not keep).
   */
  skipped: { name: string; why: string }[];
}

interface LogName {
  name: string;
  firstRev: number;
  lastRev: number;
  /** Uploaded by the target time (true with none). */
  uploaded: boolean;
}

/**
 * What the log did to one key after the snapshot: its last value (null once deleted), and enough to
 * give its revisions as the engine would (src/store/key-index.ts: a put of an existing key keeps
 * its createRev and adds one to its version; after a delete, a put starts the key anew).
 */
interface Change {
  value: Uint8Array | null;
  rev: number;
  /** Whether a delete came first: the key's life before the log then does not count. */
  restarted: boolean;
  /** The first put of the key's current life in the log, and its puts since. */
  lifeRev: number;
  puts: number;
}

/** The base snapshot (verified) and what the log changed after it: a restore's result, not yet written. */
export interface RestoredState {
  snapshot: VerifiedSnapshot | null;
  changes: Map<string, Change>;
}

/** Attempts for each S3 call of a restore (the archiver's own calls retry without end). */
const attempts = 5;
/** Restores that start over when a listed object is gone (retention deleted it meanwhile). */
const listings = 3;

/** An object listed and then gone: retention raced the restore, which lists again. */
class VanishedError extends ArchiveError {}
/** Log objects downloaded ahead of the one being applied. */
const downloadsAhead = 4;

/**
 * Lists the archive (the only LISTs), then reads the newest snapshot at or before the target and a
 * chain of log objects after it, each verified whole before any of its entries is used: the base
 * snapshot, and what the log changed after it (mergeEntries walks them together). At each step the chain takes the object that holds the next revision and reaches
 * furthest (objects overlap after an archiver restart); one that is refused gives way to the next.
 */
export async function restoreState(o: RestorePlanOptions): Promise<{ plan: RestorePlan; state: RestoredState }> {
  for (let i = 1; ; i++) {
    try {
      return await restoreFromListing(o);
    } catch (err) {
      if (!(err instanceof VanishedError) || i >= listings) throw err;
    }
  }
}

async function restoreFromListing(o: RestorePlanOptions): Promise<{ plan: RestorePlan; state: RestoredState }> {
  const bucket = new Bucket(o.url, o.s3, o.timeoutMs);
  const [snapList, logList, positionBytes] = await Promise.all([
    bucket.retrying(() => bucket.list(SNAP_DIR), attempts),
    bucket.retrying(() => bucket.list(LOG_DIR), attempts),
    bucket.retrying(() => bucket.get(POSITION_NAME), attempts),
  ]);
  // With a time: what was uploaded by then for certain (an upload ends after its object was made;
  // S3 tells the time to the second).
  const byTime = (modified: number) => o.time === undefined || modified + 1000 <= o.time;
  const snaps = snapList.flatMap((s) => {
    const rev = parseSnapName(s.name);
    return rev === null ? [] : [{ name: s.name, rev, uploaded: byTime(s.modified) }];
  });
  const logs: LogName[] = logList.flatMap((l) => {
    const r = parseLogName(l.name);
    return r ? [{ name: l.name, ...r, uploaded: byTime(l.modified) }] : [];
  });
  for (const x of [...snapList, ...logList]) {
    if (parseSnapName(x.name) === null && parseLogName(x.name) === null) throw new ArchiveError("unexpected object in the archive", bucket.key(x.name));
  }
  if (snaps.length === 0 && logs.length === 0) throw new ArchiveError(`${o.url} holds no archive`);
  // The position only names the database here (the listing is the truth); a malformed one is skipped.
  const skipped: RestorePlan["skipped"] = [];
  let db: string | null = null;
  if (positionBytes) {
    try {
      db = decodePosition(new TextDecoder().decode(positionBytes), bucket.key(POSITION_NAME)).db;
    } catch (err) {
      skipped.push({ name: bucket.key(POSITION_NAME), why: (err as Error).message });
    }
  }
  let headRev = 0; // (a loop: spreading thousands of objects into Math.max overflows the arguments)
  for (const x of snaps) headRev = Math.max(headRev, x.rev);
  for (const x of logs) headRev = Math.max(headRev, x.lastRev);
  const target = o.rev ?? headRev;
  if (!(Number.isSafeInteger(target) && target >= 0)) throw new ArchiveError(`--rev must be a revision, not ${o.rev}`);
  if (o.time !== undefined && !Number.isFinite(o.time)) throw new ArchiveError(`--time must be a time, not ${o.time}`);
  if (target > headRev) throw new ArchiveError(`revision ${target} is past the newest the archive holds (${headRev})`);

  const fetched = new Map<string, Promise<Uint8Array>>();
  const fetch = (name: string) => {
    let p = fetched.get(name);
    if (!p) {
      p = bucket.retrying(() => bucket.get(name), attempts).then((b) => {
        if (b === null) throw new VanishedError("object listed but missing (deleted by retention meanwhile?)", bucket.key(name));
        return b;
      });
      p.catch(() => {}); // (awaited when its turn comes)
      fetched.set(name, p);
    }
    return p;
  };
  // The object holding a revision that reaches furthest, among those not refused, in O(log n): logs
  // by firstRev, and for each position the furthest-reaching one up to it (rebuilt on a refusal,
  // which is rare). A restore over many thousands of objects stays linear.
  const refused = new Set<string>();
  /** With a time: objects made after it, left out like refused ones (but not reported). */
  const late = new Set<string>();
  logs.sort((a, b) => a.firstRev - b.firstRev);
  const furthest: (LogName | null)[] = [];
  const rebuild = () => {
    let b: LogName | null = null;
    logs.forEach((l, i) => {
      if (!refused.has(l.name) && !late.has(l.name) && (!b || l.lastRev > b.lastRev)) b = l;
      furthest[i] = b;
    });
  };
  rebuild();
  const best = (rev: number): LogName | null => {
    let lo = 0;
    let hi = logs.length; // the first index whose firstRev is past rev
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (logs[mid]!.firstRev <= rev) lo = mid + 1;
      else hi = mid;
    }
    const b = lo > 0 ? furthest[lo - 1]! : null;
    return b && b.lastRev >= rev ? b : null;
  };
  const refuse = (name: string, why: string) => {
    refused.add(name);
    skipped.push({ name: bucket.key(name), why });
    rebuild();
  };

  // The newest snapshot at or before the target that checks out; a refused one gives way to the one
  // before it (the log then reaches further back), and is reported.
  const state: RestoredState = { snapshot: null, changes: new Map() };
  let snapshot: { name: string; rev: number; uploaded: boolean } | null = null;
  for (const c of snaps.filter((x) => x.rev <= target && x.uploaded).reverse()) {
    // The first log objects download while the snapshot is checked.
    for (let k = 0, r = c.rev + 1, l = best(r); k <= downloadsAhead && l && r <= target; k++, r = l.lastRev + 1, l = best(r)) void fetch(l.name);
    try {
      state.snapshot = checkSnapshot(bucket.key(c.name), c.rev, await fetch(c.name), db);
    } catch (err) {
      if (!(err instanceof ArchiveError) || err instanceof VanishedError) throw err;
      refuse(c.name, err.message);
      continue;
    }
    snapshot = c;
    db = state.snapshot.header.db;
    break;
  }
  if (!snapshot && !logs.some((l) => l.firstRev === 1)) {
    const why = skipped.length > 0 ? `; refused: ${skipped[skipped.length - 1]!.why}` : "";
    throw new ArchiveError(`no usable snapshot at or before revision ${target}, and the log does not start at revision 1${why}`);
  }
  const plan: RestorePlan = { db: db ?? "", headRev, targetRev: 0, snapshot: snapshot && { name: snapshot.name, rev: snapshot.rev }, logs: [], skipped };
  let next = (snapshot?.rev ?? 0) + 1;
  while (next <= target) {
    // Downloads run ahead along the chain the names predict.
    for (let k = 0, r = next, l = best(r); k <= downloadsAhead && l && r <= target; k++, r = l.lastRev + 1, l = best(r)) void fetch(l.name);
    const l = best(next);
    if (!l) {
      // The end of the archive, when no target was given and nothing usable lies beyond: a refused
      // last object (an upload cut short, which real S3 would not keep) is reported in `skipped`.
      const beyond =
        logs.some((x) => x.firstRev > next && x.uploaded && !refused.has(x.name)) || snaps.some((x) => x.rev >= next && x.uploaded && !refused.has(x.name));
      if (o.rev === undefined && !beyond) break;
      // Only objects made after the target time hold it: the restore ends there.
      if (o.time !== undefined && logs.some((x) => late.has(x.name) && x.firstRev <= next && x.lastRev >= next)) break;
      const holder = logs.find((x) => refused.has(x.name) && x.firstRev <= next && x.lastRev >= next);
      if (holder) throw new ArchiveError(`no usable object holds revision ${next}: ${plan.skipped.find((x) => x.name === bucket.key(holder.name))!.why}`);
      const before = plan.logs[plan.logs.length - 1]?.name ?? snapshot?.name ?? "the start";
      throw new ArchiveError(`gap in the log: no object holds revision ${next} (the last before the gap: ${before})`, bucket.key(before));
    }
    let log;
    try {
      log = decodeLogObject(bucket.key(l.name), await fetch(l.name), db);
    } catch (err) {
      if (!(err instanceof ArchiveError) || err instanceof VanishedError) throw err;
      refuse(l.name, err.message);
      continue;
    }
    fetched.delete(l.name);
    if (o.time !== undefined && log.header.time > o.time) {
      // Made after the target time. An archiver that restarted from a stale position ships an
      // object overlapping older ones and reaching further: those older ones may be in time.
      late.add(l.name);
      rebuild();
      continue;
    }
    db = log.header.db;
    plan.logs.push({ name: l.name, firstRev: l.firstRev, lastRev: l.lastRev });
    for (const entry of log.entries) {
      if (entry.rev < next) continue; // an overlap with the previous object
      if (entry.rev > target) break;
      apply(state.changes, entry.rev, decodeOps(log.bytes.subarray(entry.start, entry.start + entry.len)));
      next = entry.rev + 1;
    }
  }
  if (o.time !== undefined && !snapshot && plan.logs.length === 0) {
    throw new ArchiveError(`nothing in ${o.url} had reached the archive by ${new Date(o.time).toISOString()}`);
  }
  plan.db = db!;
  plan.targetRev = next - 1;
  return { plan, state };
}

/** Verifies a snapshot object whole (frames and checksums; its entries are checked as they are merged). */
function checkSnapshot(name: string, rev: number, bytes: Uint8Array, db: string | null): VerifiedSnapshot {
  let s;
  try {
    s = verifySnapshot(name, bytes);
  } catch (err) {
    if (err instanceof CorruptionError) throw new ArchiveError(`snapshot refused: ${err.message}`, name, { cause: err });
    throw err;
  }
  if (s.header.rev !== rev) throw new ArchiveError(`snapshot holds revision ${s.header.rev}, its name says ${rev}`, name);
  if (db !== null && s.header.db !== db) throw new ArchiveError(`snapshot belongs to database ${s.header.db}, not ${db}`, name);
  return s;
}

/** Bytes of a CBOR unsigned integer's head. */
function cborUintBytes(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x1_0000 ? 3 : n < 0x1_0000_0000 ? 5 : 9;
}

function apply(changes: Map<string, Change>, rev: number, ops: ReturnType<typeof decodeOps>): void {
  for (const op of ops) {
    const c = changes.get(op[0]);
    if (op.length === 1) {
      if (c) Object.assign(c, { value: null, rev, restarted: true, puts: 0 });
      else changes.set(op[0], { value: null, rev, restarted: true, lifeRev: 0, puts: 0 });
    } else if (!c) changes.set(op[0], { value: op[1], rev, restarted: false, lifeRev: rev, puts: 1 });
    else {
      if (c.value === null) c.lifeRev = rev; // a new life after a delete
      Object.assign(c, { value: op[1], rev, puts: c.puts + 1 });
    }
  }
}

/**
 * Every key of the restored database in key order, with its value and revisions: the snapshot's
 * keys as the log left them, merged with the keys the log created. Only the keys the log touched
 * are held in memory; the snapshot's values are handed on as views of its bytes.
 */
export function mergeEntries(
  state: RestoredState,
  emit: (key: string, e: SnapshotEntry) => void,
  /** A snapshot record the log left alone, as bytes [start, end) of `b` (else it goes to `emit`). */
  emitRecord?: (key: string, b: Uint8Array, start: number, end: number) => void,
): number {
  let count = 0;
  const out = (key: string, e: SnapshotEntry) => {
    emit(key, e);
    count++;
  };
  // A key the log touched: its entry given what the snapshot held (`base`), or nothing if deleted.
  const changed = (key: string, c: Change, base: { createRev: number; version: number } | null) => {
    if (c.value === null) return;
    const continues = base !== null && !c.restarted;
    out(key, { value: c.value, rev: c.rev, createRev: continues ? base.createRev : c.lifeRev, version: continues ? base.version + c.puts : c.puts });
  };
  // One walk: the snapshot's keys and the log's, both in key order (JavaScript string order, the
  // snapshot's own), so a log key met before the snapshot's next key is one the log created.
  const touched = [...state.changes.keys()].sort();
  let t = 0;
  const s = state.snapshot;
  if (s) {
    const e = encoded(s.bytes);
    let lastKey: string | null = null;
    for (let i = 0; i < s.chunks.length; i++) {
      lastKey = visitChunk(s, e, i, lastKey, (key, enc, start, end, rev, createRev, version, recordStart, recordEnd) => {
        for (; t < touched.length && touched[t]! < key; t++) changed(touched[t]!, state.changes.get(touched[t]!)!, null);
        if (t < touched.length && touched[t] === key) changed(key, state.changes.get(touched[t++]!)!, { createRev, version });
        else if (emitRecord) {
          emitRecord(key, enc.bytes, recordStart, recordEnd);
          count++;
        } else out(key, { value: enc.bytes.subarray(start, end), rev, createRev, version });
      });
    }
  }
  for (; t < touched.length; t++) changed(touched[t]!, state.changes.get(touched[t]!)!, null);
  return count;
}

/**
 * Writes `state` into `dir` (which must not exist) as a new database `dbId` at revision `rev`: one
 * snapshot holding every key with its own revisions, and a first, empty WAL segment after it.
 * Returns the number of keys.
 */
export function writeDatabase(io: FileIO, dir: string, dbId: string, rev: number, state: RestoredState): number {
  const snapDir = path.join(dir, "snap");
  const walDir = path.join(dir, "wal");
  fs.mkdirSync(snapDir, { recursive: true });
  fs.mkdirSync(walDir, { recursive: true });
  io.fsyncDir(dir);
  // The header comes first and holds the count of keys. Unless the count's CBOR width may vary
  // between the fewest and the most keys the merge can give, one walk: the header is written with
  // the most and rewritten with the count (same length); else a first walk counts.
  const base = state.snapshot?.header.keys ?? 0;
  const fewest = Math.max(0, base - state.changes.size);
  const most = base + state.changes.size;
  const oneWalk = cborUintBytes(fewest) === cborUintBytes(most);
  const header = (keys: number) => encodeFrame(TYPE_SNAP_HEADER, rev, headerPayload({ v: FORMAT_VERSION, db: dbId, rev, keys }));
  const file = new SnapshotFileWriter(io, snapDir, rev);
  const headerAt = file.bytes;
  const first = header(oneWalk ? most : mergeEntries(state, () => {}));
  file.write(first);
  const enc = new ChunkEncoder(L.snapshotChunkBytes);
  let chunks = 0;
  // One frame buffer for every chunk (written before the next is framed): no 256 KiB allocated and
  // zeroed per chunk, which was a tenth of a restore (measured at 1M keys).
  let frame = new Uint8Array(frameBytes(L.snapshotChunkBytes));
  let view = new DataView(frame.buffer);
  const chunk = (payload: Uint8Array | null) => {
    if (payload === null) return;
    const size = frameBytes(payload.length);
    if (frame.length < size) {
      frame = new Uint8Array(size);
      view = new DataView(frame.buffer);
    }
    frame.set(payload, FRAME_HEADER_BYTES);
    sealFrame(frame, view, 0, TYPE_SNAP_CHUNK, rev, payload.length);
    file.write(frame.subarray(0, size));
    enc.recycle(payload);
    chunks++;
  };
  let lastKey: string | null = null;
  const inOrder = (key: string) => {
    if (lastKey !== null && key <= lastKey) throw new ArchiveError(`restore: key ${JSON.stringify(key)} after ${JSON.stringify(lastKey)}: not in order`);
    lastKey = key;
  };
  // Records the log left alone are copied as they are (no entry object, no view, no re-encoding).
  const keys = mergeEntries(
    state,
    (key, e) => {
      inOrder(key);
      chunk(enc.add(key, e));
    },
    (key, b, start, end) => {
      inOrder(key);
      chunk(enc.addRaw(b, start, end));
    },
  );
  chunk(enc.flush());
  if (oneWalk) {
    const exact = header(keys);
    if (exact.length !== first.length) throw new Error("restore: the snapshot header changed length");
    file.rewrite(headerAt, exact);
  }
  file.write(encodeFrame(TYPE_SNAP_FOOTER, rev, footerPayload({ keys, chunks })));
  file.install(); // (reads the whole file back: every frame's checksum, the header's and footer's counts)
  installSegment(io, walDir, path.join(walDir, "first.tmp"), { v: FORMAT_VERSION, db: dbId, seq: 1, firstRev: rev + 1, prevCrc: 0 });
  checkFirstSegment(io, walDir, dbId, rev + 1);
  return keys;
}

/** Reads the first segment back as open() would: one segment, its magic, its header frame naming `db` and `firstRev`. */
function checkFirstSegment(io: FileIO, walDir: string, db: string, firstRev: number): void {
  const segs = listSegments(io, walDir, false);
  if (segs.length !== 1 || segs[0]!.firstRev !== firstRev) throw new Error(`restore: ${walDir} holds ${segs.map((s) => s.name).join(", ")}, not one segment from ${firstRev}`);
  const file = path.join(walDir, segs[0]!.name);
  const bytes = readSegment(io, file);
  const f = readFrame(bytes, HEADER_FRAME_OFFSET);
  const ok = MAGIC.every((x, i) => bytes[i] === x) && f.kind === "frame" && f.type === TYPE_HEADER;
  const h = ok && f.kind === "frame" ? decodeHeader(payloadOf(bytes, f)) : null;
  if (!h || h.db !== db || h.firstRev !== firstRev) throw new Error(`restore: ${file} does not read back as written`);
}
