// Restore from an archive (docs/archive-format.md, "Restore"): the newest snapshot at or before the
// target and a contiguous run of log after it, every object verified, written out as a new database.

import * as fs from "node:fs";
import * as path from "node:path";
import { ArchiveError, CorruptionError } from "../errors.ts";
import { decodeHeader, decodeOps, encoded, payloadOf, readFrame, viewOf, type Encoded } from "../format/decoder.ts";
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
import {
  ChunkEncoder,
  compareKeyBytes,
  footerPayload,
  headerPayload,
  NotArrived,
  SnapshotReader,
  visitRecords,
  type Arriving,
  type SnapshotChunk,
  type SnapshotEntry,
  type SnapshotHeader,
  type VerifiedSnapshot,
} from "../snapshot/file.ts";
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
  /** Snapshots (names in the archive) refused by an earlier try, and why: left out, and reported. */
  refusedSnapshots?: ReadonlyMap<string, string>;
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

/** The base snapshot and what the log changed after it: a restore's result, not yet written. */
export interface RestoredState {
  snapshot: BaseSnapshot | null;
  changes: Map<string, Change>;
}

/**
 * The snapshot a restore starts from, its header checked, read once front to back: each chunk is
 * checked as it is taken. A snapshot still downloading is used as it arrives, so that the new
 * database is written while the rest comes in (before, a restore downloaded, then wrote: the sum).
 */
export interface BaseSnapshot {
  /** What errors name it by. */
  readonly name: string;
  readonly header: SnapshotHeader;
  /**
   * The next chunk's payload, [start, start + len) of `e`, its checksum checked; valid until the
   * next call. null past the last (the footer checked too).
   */
  next(): Promise<{ e: Encoded; start: number; len: number } | null>;
  /** Stops its download, if any (a restore given up half way). */
  close(): void;
}

/** A snapshot checked whole already (a file read in, a primary's snapshot). */
export function wholeSnapshot(s: VerifiedSnapshot): BaseSnapshot {
  const e = encoded(s.bytes);
  let i = 0;
  return { name: s.file, header: s.header, next: async () => (i < s.chunks.length ? { e, ...s.chunks[i++]! } : null), close() {} };
}

/** A snapshot in the archive that failed its checks: the restore is done again without it. */
export class RefusedSnapshotError extends ArchiveError {
  constructor(
    message: string,
    /** Its name in the archive (below the prefix). */
    readonly snapshot: string,
    key: string,
    options?: ErrorOptions,
  ) {
    super(message, key, options);
  }
}

/** A snapshot object read as it downloads; a failed check throws RefusedSnapshotError. */
class StreamedSnapshot implements BaseSnapshot {
  /** The end of the chunk handed out last: released when the next is asked for. */
  private taken = 0;

  private constructor(
    private readonly snapshot: string,
    readonly name: string,
    private readonly from: Arriving,
    private readonly reader: SnapshotReader,
  ) {}

  /** Waits for the snapshot's header, and checks it names revision `rev` of database `db` (if known). */
  static async start(name: string, key: string, from: Arriving, rev: number, db: string | null): Promise<StreamedSnapshot> {
    const reader = await StreamedSnapshot.whenIn(name, key, from, () => new SnapshotReader(key, from));
    const s = new StreamedSnapshot(name, key, from, reader);
    if (reader.header.rev !== rev) throw new RefusedSnapshotError(`snapshot holds revision ${reader.header.rev}, its name says ${rev}`, name, key);
    if (db !== null && reader.header.db !== db) throw new RefusedSnapshotError(`snapshot belongs to database ${reader.header.db}, not ${db}`, name, key);
    return s;
  }

  get header(): SnapshotHeader {
    return this.reader.header;
  }

  async next(): Promise<{ e: Encoded; start: number; len: number } | null> {
    this.from.release(this.taken);
    const c = await StreamedSnapshot.whenIn(this.snapshot, this.name, this.from, () => this.reader.next());
    if (c === null) return null;
    this.taken = c.start + c.len;
    const w = this.from.window(c.start, c.len);
    return { e: encoded(w.bytes), start: c.start - w.base, len: c.len };
  }

  close(): void {
    this.from.fail(new Error("restore: the snapshot's download was stopped"));
  }

  /** `read()` once the bytes it needs are in; a failed check becomes a RefusedSnapshotError. */
  private static async whenIn<T>(name: string, key: string, from: Arriving, read: () => T): Promise<T> {
    for (;;) {
      try {
        return read();
      } catch (err) {
        if (err instanceof NotArrived) {
          // A download that fails for good (after its retries; or an object whose size changed, as
          // s3rver serves one being rewritten) refuses the snapshot, as a torn one is: the one
          // before it and more log are used.
          await from.wait(err.end).catch((cause) => {
            throw new RefusedSnapshotError(`snapshot could not be read: ${(cause as Error).message}`, name, key, { cause });
          });
        } else if (err instanceof CorruptionError) throw new RefusedSnapshotError(`snapshot refused: ${err.message}`, name, key, { cause: err });
        else throw err;
      }
    }
  }
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
async function restoreState(o: RestorePlanOptions): Promise<{ plan: RestorePlan; state: RestoredState }> {
  for (let i = 1; ; i++) {
    let snapshot: BaseSnapshot | null = null;
    try {
      return await restoreFromListing(o, (s) => (snapshot = s));
    } catch (err) {
      (snapshot as BaseSnapshot | null)?.close(); // (its download stops: a gap, a refusal in the log)
      if (!(err instanceof VanishedError) || i >= listings) throw err;
    }
  }
}

/**
 * restoreState, and `use` of what it gives (writing it out, or counting it), while its snapshot
 * downloads. A snapshot that fails its checks part way (torn, corrupt) is left out, and the whole
 * is done again from the one before it, which `use` is given afresh.
 */
export async function restoreWith<T>(o: RestorePlanOptions, use: (plan: RestorePlan, state: RestoredState) => Promise<T>): Promise<{ plan: RestorePlan; result: T }> {
  const refused = new Map(o.refusedSnapshots ?? []);
  for (;;) {
    const { plan, state } = await restoreState({ ...o, refusedSnapshots: refused });
    try {
      return { plan, result: await use(plan, state) };
    } catch (err) {
      if (!(err instanceof RefusedSnapshotError) || refused.has(err.snapshot)) throw err;
      refused.set(err.snapshot, err.message);
    } finally {
      state.snapshot?.close();
    }
  }
}

/** `started` is told of the snapshot once its download runs. */
async function restoreFromListing(o: RestorePlanOptions, started: (s: BaseSnapshot) => void): Promise<{ plan: RestorePlan; state: RestoredState }> {
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
    const earlier = o.refusedSnapshots?.get(c.name);
    if (earlier !== undefined) {
      refuse(c.name, earlier);
      continue;
    }
    let from: Arriving | null = null;
    try {
      from = await bucket.download(c.name, attempts).catch((cause) => {
        throw new RefusedSnapshotError(`snapshot could not be read: ${(cause as Error).message}`, c.name, bucket.key(c.name), { cause });
      });
      if (from === null) throw new VanishedError("object listed but missing (deleted by retention meanwhile?)", bucket.key(c.name));
      state.snapshot = await StreamedSnapshot.start(c.name, bucket.key(c.name), from, c.rev, db);
      started(state.snapshot);
    } catch (err) {
      from?.fail(err); // (its download stops)
      if (!(err instanceof RefusedSnapshotError)) throw err;
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
 * Every key of the restored database in key order: the snapshot's keys as the log left them, merged
 * with the keys the log created. A key the log touched goes to `emit` with its value and revisions;
 * a snapshot record the log left alone goes to `emitRecord` as bytes [start, end) of `b`, to be
 * copied as it is. Only the keys the log touched are held in memory, and the snapshot's keys are
 * compared as bytes: no string is made of a key the log left alone (at 1M keys that was ~150 ms).
 * Returns the number of keys.
 */
export async function mergeEntries(
  state: RestoredState,
  emit: (key: string, e: SnapshotEntry) => void,
  emitRecord: (b: Uint8Array, start: number, end: number) => void,
  /** Awaited after each of the snapshot's chunks (the caller writes out what it was given). */
  between?: () => Promise<void>,
): Promise<number> {
  let count = 0;
  // A key the log touched: its entry given what the snapshot held (`base`), or nothing if deleted.
  const changed = (key: string, c: Change, base: { createRev: number; version: number } | null) => {
    if (c.value === null) return;
    const continues = base !== null && !c.restarted;
    emit(key, { value: c.value, rev: c.rev, createRev: continues ? base.createRev : c.lifeRev, version: continues ? base.version + c.puts : c.puts });
    count++;
  };
  // One walk: the snapshot's keys and the log's, both in key order (JavaScript string order, the
  // snapshot's own), so a log key met before the snapshot's next key is one the log created.
  const touched = [...state.changes.keys()].sort();
  const touchedUtf8 = touched.map((k) => Buffer.from(k, "utf8"));
  let t = 0;
  const s = state.snapshot;
  if (s) {
    let last: Uint8Array | null = null;
    for (let c = await s.next(); c !== null; c = await s.next()) {
      const b = c.e.bytes;
      last = visitRecords(s.name, s.header.rev, c, c.e, last, (ks, ke, recordStart, recordEnd, createRev, version) => {
        let cmp = -1;
        for (; t < touched.length; t++) {
          const k = touchedUtf8[t]!;
          cmp = compareKeyBytes(k, 0, k.length, b, ks, ke);
          if (cmp >= 0) break;
          changed(touched[t]!, state.changes.get(touched[t]!)!, null);
        }
        if (cmp === 0) changed(touched[t]!, state.changes.get(touched[t++]!)!, { createRev, version });
        else {
          emitRecord(b, recordStart, recordEnd);
          count++;
        }
      });
      await between?.();
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
export async function writeDatabase(io: FileIO, dir: string, dbId: string, rev: number, state: RestoredState): Promise<number> {
  const snapDir = path.join(dir, "snap");
  const walDir = path.join(dir, "wal");
  fs.mkdirSync(snapDir, { recursive: true });
  fs.mkdirSync(walDir, { recursive: true });
  io.fsyncDir(dir);
  // The header comes first and holds the count of keys, known only at the end (one walk, as the
  // snapshot downloads): it is written with the most keys the merge can give, and rewritten with
  // the count, at the same length. Where the count's CBOR width may be smaller, a `pad` field makes
  // up the difference (docs/snapshot-format.md).
  const base = state.snapshot?.header.keys ?? 0;
  const most = base + state.changes.size;
  const widthMayChange = cborUintBytes(Math.max(0, base - state.changes.size)) !== cborUintBytes(most);
  const header = (keys: number) =>
    encodeFrame(TYPE_SNAP_HEADER, rev, headerPayload({ v: FORMAT_VERSION, db: dbId, rev, keys }, widthMayChange ? cborUintBytes(most) - cborUintBytes(keys) : undefined));
  const file = new SnapshotFileWriter(io, snapDir, rev);
  const headerAt = file.bytes;
  const first = header(most);
  file.write(first);
  const enc = new ChunkEncoder(L.snapshotChunkBytes);
  let chunks = 0;
  // Full chunks wait here until the merge yields (after each of the snapshot's chunks); then they
  // are framed and written in the thread pool, one write in flight, while the next are merged and
  // the download goes on. Two frame buffers, taken in turn: the one filled is never the one being
  // written (not 256 KiB allocated and zeroed per chunk, which was a tenth of a restore).
  const full: Uint8Array[] = [];
  const frames = [new Uint8Array(frameBytes(L.snapshotChunkBytes)), new Uint8Array(frameBytes(L.snapshotChunkBytes))];
  let writing: Promise<void> = Promise.resolve();
  const add = (payload: Uint8Array | null) => {
    if (payload !== null) full.push(payload);
  };
  const drain = async () => {
    for (const payload of full.splice(0)) {
      const size = frameBytes(payload.length);
      if (frames[chunks % 2]!.length < size) frames[chunks % 2] = new Uint8Array(size);
      const frame = frames[chunks % 2]!;
      frame.set(payload, FRAME_HEADER_BYTES);
      sealFrame(frame, viewOf(frame), 0, TYPE_SNAP_CHUNK, rev, payload.length);
      enc.recycle(payload);
      chunks++;
      await writing;
      writing = file.writeAsync(frame.subarray(0, size));
    }
  };
  // Records the log left alone are copied as they are (no entry object, no view, no re-encoding),
  // back-to-back ones in one copy (ChunkEncoder.addRaw). The order is mergeEntries': the
  // snapshot's keys checked in order as they are walked, the log's sorted, the two compared as
  // they are merged. The run is copied before the download's window may move on.
  const record = (b: Uint8Array, start: number, end: number) => add(enc.addRaw(b, start, end));
  let keys: number;
  try {
    keys = await mergeEntries(
      state,
      (key, e) => add(enc.add(key, e)),
      record,
      async () => {
        enc.copyRun();
        await drain();
      },
    );
    add(enc.flush());
    await drain();
  } catch (err) {
    await writing;
    file.drop();
    throw err;
  }
  await writing;
  const exact = header(keys);
  if (exact.length !== first.length) throw new Error("restore: the snapshot header changed length");
  file.rewrite(headerAt, exact);
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
