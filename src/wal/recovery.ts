// The recovery table of DESIGN.md §3, in code: replay every segment, repair a torn tail, refuse the rest.

import * as path from "node:path";
import { CorruptionError, WalFailedError } from "../errors.ts";
import { listSnapshots, SnapshotReader, visitEntries, type EntryVisitor, type SnapshotHeader } from "../snapshot/file.ts";
import { allZero, encoded, payloadOf, type Encoded } from "../format/decoder.ts";
import { FORMAT_VERSION, HEADER_FRAME_OFFSET, RECORD_BYTES_MIN, TYPE_ENTRY, TYPE_HEADER, TYPE_SNAPSHOT_MARKER, hex16 } from "../format/constants.ts";
import { nodeIO, type FileIO } from "../io/file-io.ts";
import { Prefetch } from "../io/prefetch.ts";
import * as L from "../limits.ts";
import { lastSegmentStartingBy, listSegments, readFailure, readSegment, SegmentReader, type FramesStop, type SegmentFile } from "./reader.ts";
import { installSegment } from "./segment.ts";

/**
 * Open progress: the snapshot ("snapshot": keys of keysTotal loaded) and the WAL after it ("wal":
 * segment of segments replayed, records applied); the WAL first with `logFirst`.
 */
export interface ReplayProgress {
  phase: "snapshot" | "wal";
  segment: number;
  segments: number;
  records: number;
  rev: number;
  keys: number;
  keysTotal: number;
}

/** Where open() loads a snapshot into: each chunk's records, every entry in key order, then done(). */
export interface SnapshotLoader {
  dir: string;
  /**
   * A snapshot's header says it holds about `keys` entries (a hint: the entries are what count).
   * Called before the log is replayed on top of it, in either order.
   */
  begin?: (keys: number) => void;
  /** Bytes [start, end) of `e` are the next chunk's records, back to back (before its entries are visited). */
  chunk?: (e: Encoded, start: number, end: number) => void;
  entry: EntryVisitor;
  done(): void;
  /**
   * Forget everything loaded so far (with `logFirst`, also what the log applied): the snapshot
   * turned out damaged, an older one comes next, and the log is replayed again from there.
   */
  reset(): void;
}

export interface TornTail {
  file: string;
  offset: number;
  bytesDropped: number;
  lastGoodRev: number;
  reason: string;
  brokenCopy: string;
}

export interface RecoveryResult {
  /** null when the directory holds no segment yet. */
  dbId: string | null;
  lastRev: number;
  lastCrc: number;
  /** The segment the writer appends to, and where. null when there is none. */
  tail: { path: string; seq: number; offset: number; start: number } | null;
  records: number;
  segments: number;
  tornTail: TornTail | null;
  /** The snapshot the state starts from (null: from revision 0), and how much log follows it. */
  snapshot: { file: string; rev: number; keys: number; bytes: number } | null;
  walBytesAfterSnapshot: number;
}

/** Applies one entry: its payload is bytes [start, end) of the segment (see visitOps). */
export type Apply = (rev: number, segment: Encoded, start: number, end: number) => void;

interface Cursor {
  /** Entries at or below this revision are in the snapshot: checked, not applied. */
  baseRev: number;
  /** The first segment read after a snapshot is not chained to the (deleted) one before it. */
  chained: boolean;
  bytesAfterBase: number;
  /** The snapshot loaded, for messages. */
  snapshotFile: string | null;
  dbId: string | null;
  lastRev: number;
  lastCrc: number;
  lastSeq: number;
  records: number;
}

export interface RecoverOptions {
  onProgress?: (p: ReplayProgress) => void;
  log?: (line: string) => void;
  /** false: only read (tools' verify/dump). A torn tail is then reported, not repaired. */
  repair?: boolean;
  io?: FileIO;
  /** Load the newest good snapshot from here first; without it, the WAL must start at revision 1. */
  snapshots?: SnapshotLoader;
  /** A snapshot of at least this many bytes is read by another thread (src/io/prefetch.ts). */
  prefetchBytes?: number;
  /**
   * Replay the log after the newest snapshot's header checks out, before its entries: the log's
   * changes then go to `apply` while the snapshot is still being read in (open()). A damaged body
   * found after that resets the loader and replays the log again after an older snapshot, so
   * `onMarker` may see a marker twice. Without it, the entries load first (the tools: what they
   * report follows the snapshot they settled on).
   */
  logFirst?: boolean;
  /** Called before each segment is replayed, with its index in the directory's segment list. */
  onSegment?: (index: number, name: string) => void;
  /**
   * Called for each snapshot marker recovery accepts, in log order with the entries (also those in
   * the part the snapshot covers). `segment` is the file name, `offset` the frame's; `payload` is a copy.
   */
  onMarker?: (m: { rev: number; segment: string; offset: number; payload: Uint8Array }) => void;
}

/** Replays the whole log at once. */
export function recover(walDir: string, apply: Apply, opts: RecoverOptions = {}): RecoveryResult {
  const steps = recoverSteps(walDir, apply, opts);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * Replays the log one segment per step, letting the event loop run between segments: a server
 * answers /healthz with the progress while it replays.
 */
export async function recoverAsync(walDir: string, apply: Apply, opts: RecoverOptions = {}): Promise<RecoveryResult> {
  const steps = recoverSteps(walDir, apply, opts);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The recovery table, one segment per step; yields progress after each segment. */
function* recoverSteps(walDir: string, apply: Apply, opts: RecoverOptions): Generator<ReplayProgress, RecoveryResult> {
  const io = opts.io ?? nodeIO;
  const repair = opts.repair ?? true;
  const log = opts.log ?? ((l: string) => console.warn(l));
  const segments = listSegments(io, walDir, repair);
  const rejected: string[] = [];
  const loader = opts.snapshots;
  for (const s of loader ? listSnapshots(io, loader.dir, repair) : []) {
    const file = path.join(loader!.dir, s.name);
    // A large snapshot is read by another thread while this one replays the log (logFirst) and
    // checks and loads what is in (src/io/prefetch.ts), unless reads go through a FileIO of the
    // caller's (the fault-injection tests'): starting that thread takes ~20 ms.
    const size = io === nodeIO ? readSize(io, file) : 0;
    const prefetch = io === nodeIO && size >= (opts.prefetchBytes ?? L.snapshotPrefetchBytesMin) ? startPrefetch(file, size) : null;
    try {
      let snap: OpenedSnapshot | undefined;
      let logged: LogReplayed | undefined;
      try {
        snap = openSnapshot(io, file, s.rev, prefetch);
        loader!.begin?.(Math.min(snap.header.keys, Math.floor(snap.bytes.length / RECORD_BYTES_MIN)));
        if (opts.logFirst) logged = yield* replayLog(io, walDir, segments, snap, rejected, apply, opts);
        yield* loadEntries(snap, loader!, segments.length, opts.onProgress);
      } catch (err) {
        // Only the snapshot's own damage falls back to an older one; the log's, or EIO, refuse to open.
        if (!(err instanceof CorruptionError) || (snap !== undefined && err.file !== file)) throw err;
        loader!.reset();
        rejected.push(err.message);
        log(`harmonydb: ${err.message}; trying an older snapshot`);
        continue;
      }
      logged ??= yield* replayLog(io, walDir, segments, snap, rejected, apply, opts);
      return finish(io, walDir, repair, log, logged, snap);
    } finally {
      prefetch?.close();
    }
  }
  return finish(io, walDir, repair, log, yield* replayLog(io, walDir, segments, null, rejected, apply, opts), null);
}

/** A snapshot whose header checked out: its entries are still to be checked and loaded. */
interface OpenedSnapshot {
  file: string;
  header: SnapshotHeader;
  /** The whole file, in shared memory (a prefetch's fills in meanwhile). */
  bytes: Uint8Array;
  /** A reader of the whole file, or the prefetch to read the entries through once they are wanted. */
  reader: SnapshotReader | Prefetch;
}

/** What replaying the log found; a torn tail is repaired only once the snapshot under it has loaded. */
interface LogReplayed {
  cur: Cursor;
  segmentsRead: number;
  tail: RecoveryResult["tail"];
  tornTail: TornTail | null;
  /** The bytes of the segment with the torn tail. */
  tailBytes: Uint8Array | null;
}

/**
 * Replays the segments after `snap` (all of them without one), or throws CorruptionError where the
 * log is damaged other than in a torn tail.
 */
function* replayLog(
  io: FileIO,
  walDir: string,
  segments: SegmentFile[],
  snap: OpenedSnapshot | null,
  rejected: string[],
  apply: Apply,
  opts: RecoverOptions,
): Generator<ReplayProgress, LogReplayed> {
  const first = firstSegmentAfter(walDir, segments, snap, rejected);
  const snapKeys = snap?.header.keys ?? 0;
  const cur: Cursor = {
    baseRev: snap?.header.rev ?? 0,
    chained: snap === null,
    bytesAfterBase: 0,
    snapshotFile: snap?.file ?? null,
    dbId: snap?.header.db ?? null,
    lastRev: 0,
    lastCrc: 0,
    lastSeq: 0,
    records: 0,
  };
  let tail: RecoveryResult["tail"] = null;
  let tornTail: TornTail | null = null;
  let tailBytes: Uint8Array | null = null;
  // One buffer for every segment: replay copies out what it keeps. Fresh memory costs a page fault
  // per 4 KiB, ~3 ms/MiB on the VMs measured here: ~50 ms per 16 MiB segment read into a new buffer.
  let buffer: Uint8Array | undefined;
  for (let i = first; i < segments.length; i++) {
    const seg = segments[i]!;
    const file = path.join(walDir, seg.name);
    opts.onSegment?.(i, seg.name);
    const bytes = readSegment(io, file, buffer);
    if (bytes.buffer !== buffer?.buffer) buffer = bytes;
    const reader = new SegmentReader(file, bytes);
    checkHeader(reader, seg, cur);
    const start = reader.offset;
    const stop = replayFrames(reader, cur, apply, seg.name, opts.onMarker);
    const end = reader.verdict(stop, i === segments.length - 1, cur.lastRev);
    if (end.kind === "corrupt") throw reader.corruption(end.reason, end.offset, cur.lastRev + 1);
    if (end.kind === "torn") {
      tornTail = tornTailAt(io, file, bytes, end.offset, end.reason, cur.lastRev);
      tailBytes = bytes;
    }
    tail = { path: file, seq: seg.seq, offset: end.offset, start };
    const progress: ReplayProgress = {
      phase: "wal",
      segment: i + 1,
      segments: segments.length,
      records: cur.records,
      rev: cur.lastRev,
      keys: opts.logFirst ? 0 : snapKeys,
      keysTotal: snapKeys,
    };
    opts.onProgress?.(progress);
    yield progress;
  }
  return { cur, segmentsRead: segments.length - first, tail, tornTail, tailBytes };
}

/** Ends recovery: checks the log reaches the snapshot, repairs a torn tail, and sums up. */
function finish(io: FileIO, walDir: string, repair: boolean, log: (line: string) => void, r: LogReplayed, snap: OpenedSnapshot | null): RecoveryResult {
  const { cur, tail, tornTail } = r;
  const baseRev = snap?.header.rev ?? 0;
  if (snap && cur.lastRev < baseRev) {
    // The snapshot was written only after the log was durable past its revision: log is missing.
    throw new CorruptionError(
      `the WAL ends at rev ${cur.lastRev}, before the snapshot at rev ${baseRev} (${snap.file}): segments are missing`,
      tail?.path ?? walDir,
      tail?.offset ?? 0,
      cur.lastRev + 1,
    );
  }
  if (tornTail && repair) {
    repairTornTail(io, r.tailBytes!, tornTail);
    log(
      `harmonydb: wal: torn tail in ${tornTail.file} at offset ${tornTail.offset} (${tornTail.reason}): dropped ` +
        `${tornTail.bytesDropped} bytes after rev ${tornTail.lastGoodRev}; copy kept in ${tornTail.brokenCopy}`,
    );
  }
  return {
    dbId: cur.dbId,
    lastRev: cur.lastRev,
    lastCrc: cur.lastCrc,
    tail,
    records: cur.records,
    segments: r.segmentsRead,
    tornTail,
    snapshot: snap ? { file: snap.file, rev: baseRev, keys: snap.header.keys, bytes: snap.bytes.length } : null,
    walBytesAfterSnapshot: cur.bytesAfterBase,
  };
}


/** Snapshot chunks to load between two yields to the event loop. */
const chunksPerStep = 16;

/** Read for a snapshot's header alone (it is a few hundred bytes). */
const HEADER_READ_BYTES = 64 * 1024;

/** Checks a snapshot's header; throws CorruptionError naming `file` if it is damaged. */
function openSnapshot(io: FileIO, file: string, rev: number, prefetch: Prefetch | null): OpenedSnapshot {
  // In shared memory: its chunks become arena blocks, which a snapshot's encoder worker reads.
  const bytes = prefetch?.bytes ?? readSegment(io, file, "shared");
  // With a prefetch, the header gets a small read of its own: the thread takes ~20 ms to start and
  // more to read its first piece, and the log can be replayed meanwhile.
  const reader = prefetch ?? new SnapshotReader(file, bytes);
  const header = reader instanceof SnapshotReader ? reader.header : readHeader(io, file);
  if (header.rev !== rev) throw new CorruptionError("snapshot: revision does not match the file name", file, 0, header.rev);
  return { file, header, bytes, reader };
}

function readHeader(io: FileIO, file: string): SnapshotHeader {
  try {
    return new SnapshotReader(file, io, HEADER_READ_BYTES).header;
  } catch (err) {
    if (err instanceof CorruptionError) throw err;
    throw readFailure(file, err); // EIO: refuse to open, as for a segment
  }
}

/**
 * Loads a snapshot's entries, each chunk checked just before it is loaded (in cache); throws
 * CorruptionError naming its file at the first damage. Yields progress now and then.
 */
function* loadEntries(
  snap: OpenedSnapshot,
  loader: SnapshotLoader,
  segments: number,
  onProgress: RecoverOptions["onProgress"],
): Generator<ReplayProgress, void> {
  const { file, bytes } = snap;
  const r = snap.reader instanceof SnapshotReader ? snap.reader : new SnapshotReader(file, snap.reader);
  const h = snap.header;
  if (r.header.rev !== h.rev || r.header.keys !== h.keys || r.header.db !== h.db) {
    throw new CorruptionError("snapshot: the header changed while the file was read", file, 0, h.rev);
  }
  const e = encoded(bytes);
  let lastKey: string | null = null;
  let keys = 0;
  const visit: EntryVisitor = (key, enc, vs, ve, rev, createRev, version, recordStart, recordEnd) => {
    loader.entry(key, enc, vs, ve, rev, createRev, version, recordStart, recordEnd);
    keys++;
  };
  for (let c = r.next(), n = 1; c !== null; c = r.next(), n++) {
    lastKey = visitEntries(file, r.header.rev, c, e, lastKey, visit, loader.chunk);
    if (n % chunksPerStep === 0) {
      const p: ReplayProgress = { phase: "snapshot", segment: 0, segments, records: 0, rev: r.header.rev, keys, keysTotal: r.header.keys };
      onProgress?.(p);
      yield p;
    }
  }
  loader.done();
}

/**
 * Where replay starts: segment 0 without a snapshot; with one at rev R, the last segment that starts
 * at or before R + 1 (those before it are covered; a crash may have left some of them).
 */
function firstSegmentAfter(walDir: string, segments: SegmentFile[], snap: OpenedSnapshot | null, rejected: string[]): number {
  if (snap === null) {
    const firstSeg = segments[0];
    if (rejected.length > 0 && firstSeg !== undefined && firstSeg.seq !== 1) {
      throw new CorruptionError(
        `no usable snapshot (${rejected.join("; ")}) and the WAL no longer reaches back to revision 1`,
        path.join(walDir, firstSeg.name),
        0,
        firstSeg.firstRev,
      );
    }
    return 0;
  }
  const R = snap.header.rev;
  const first = lastSegmentStartingBy(segments, R + 1);
  if (first < 0) {
    const seg = segments[0];
    const where = rejected.length > 0 ? ` (newer snapshots are damaged: ${rejected.join("; ")})` : "";
    throw new CorruptionError(
      `the WAL does not reach back to rev ${R + 1}, right after the snapshot ${snap.file}${where}`,
      seg ? path.join(walDir, seg.name) : walDir,
      0,
      R + 1,
    );
  }
  return first;
}

/** A recovered log that has a segment to append to. */
export type OpenLog = RecoveryResult & { dbId: string; tail: NonNullable<RecoveryResult["tail"]> };

/**
 * Recovers the log and, for a new database, creates its first segment (id from `newDbId`): where
 * open() and the simulator start the writer from.
 */
export function openLog(walDir: string, apply: Apply, opts: OpenLogOptions): OpenLog {
  return withFirstSegment(walDir, recover(walDir, apply, opts), opts);
}

/** openLog, yielding to the event loop between segments (see recoverAsync). */
export async function openLogAsync(walDir: string, apply: Apply, opts: OpenLogOptions): Promise<OpenLog> {
  return withFirstSegment(walDir, await recoverAsync(walDir, apply, opts), opts);
}

type OpenLogOptions = RecoverOptions & { newDbId: () => string };

function withFirstSegment(walDir: string, rec: RecoveryResult, opts: OpenLogOptions): OpenLog {
  if (rec.dbId !== null && rec.tail !== null) return { ...rec, dbId: rec.dbId, tail: rec.tail };
  if (rec.snapshot) throw new CorruptionError(`a snapshot exists but the WAL is empty`, walDir, 0, rec.snapshot.rev + 1);
  const dbId = opts.newDbId();
  const header = { v: FORMAT_VERSION, db: dbId, seq: 1, firstRev: 1, prevCrc: 0 };
  const seg = installSegment(opts.io ?? nodeIO, walDir, path.join(walDir, "first.tmp"), header);
  return { ...rec, dbId, tail: { path: seg.path, seq: 1, offset: seg.start, start: seg.start } };
}

/** A thread reading `file` in, or null (read here then) if one cannot be started. */
function startPrefetch(file: string, size: number): Prefetch | null {
  try {
    return new Prefetch(file, size);
  } catch {
    return null;
  }
}

function readSize(io: FileIO, file: string): number {
  try {
    return io.fileSize(file);
  } catch (cause) {
    throw readFailure(file, cause);
  }
}

/** Checks the segment's header on its own (see SegmentReader.header), then its place in the chain. */
function checkHeader(reader: SegmentReader, seg: SegmentFile, cur: Cursor): void {
  const nextRev = cur.lastRev + 1;
  const s = reader.header(nextRev);
  const h = s.header;
  const fail = (msg: string, offset = HEADER_FRAME_OFFSET): never => {
    throw reader.corruption(msg, offset, nextRev);
  };
  if (cur.dbId !== null && h.db !== cur.dbId) {
    fail(
      cur.chained
        ? `segment belongs to database ${h.db}, not ${cur.dbId}`
        : `the snapshot ${cur.snapshotFile} belongs to database ${cur.dbId}, the WAL to ${h.db}`,
    );
  }
  reader.checkName(seg, s, nextRev);
  if (!cur.chained) {
    // The first segment after a snapshot: what came before it is covered (and may be gone).
    cur.chained = true;
    cur.lastSeq = h.seq - 1;
    cur.lastRev = h.firstRev - 1;
    cur.lastCrc = h.prevCrc;
  }
  // Without a snapshot, the log must start at segment 1, revision 1.
  if (h.seq !== cur.lastSeq + 1) fail(`segment ${hex16(cur.lastSeq + 1)} is missing`, 0);
  if (h.firstRev !== cur.lastRev + 1) {
    fail(`revision gap: segment starts at rev ${h.firstRev}, the log before it ends at rev ${cur.lastRev}`);
  }
  if (h.prevCrc !== cur.lastCrc) fail("previous-segment checksum does not match the chain");
  cur.dbId = h.db;
  cur.lastSeq = h.seq;
}

/**
 * Applies every entry after the header (and hands each marker of segment `name` to onMarker);
 * stops at the clean end or at the first damaged frame, and says which.
 */
function replayFrames(reader: SegmentReader, cur: Cursor, apply: Apply, name: string, onMarker: RecoverOptions["onMarker"]): FramesStop {
  const { bytes, segment } = reader;
  for (;;) {
    const v = reader.next();
    if (v.kind !== "frame") return reader.stop(v);
    if (v.type === TYPE_SNAPSHOT_MARKER) {
      // Says a snapshot was made durable here; it carries the revision of the entry before it.
      if (v.rev !== cur.lastRev) return reader.wrong(`snapshot marker with rev ${v.rev} after rev ${cur.lastRev}`);
      onMarker?.({ rev: v.rev, segment: name, offset: reader.at, payload: payloadOf(bytes, v).slice() });
      cur.lastCrc = v.crc;
      continue;
    }
    if (v.type !== TYPE_ENTRY) return reader.wrong(v.type === TYPE_HEADER ? "segment header in the middle of a segment" : `unexpected frame type ${v.type}`);
    if (v.rev !== cur.lastRev + 1) return reader.wrong(`revision gap: rev ${v.rev} after rev ${cur.lastRev}`);
    if (v.rev > cur.baseRev) {
      try {
        apply(v.rev, segment, v.start, v.start + v.len);
      } catch (cause) {
        return reader.wrong(`undecodable entry: ${(cause as Error).message}`);
      }
      cur.bytesAfterBase += v.next - reader.at;
      cur.records++;
    }
    cur.lastRev = v.rev;
    cur.lastCrc = v.crc;
  }
}

/** What a torn tail at `offset` would drop: up to the last non-zero byte of the segment. */
function tornTailAt(io: FileIO, file: string, bytes: Uint8Array, offset: number, reason: string, lastGoodRev: number): TornTail {
  const brokenCopy = unusedBrokenPath(io, `${file}.${hex16(offset)}`);
  return { file, offset, bytesDropped: dataEnd(bytes, offset) - offset, lastGoodRev, reason, brokenCopy };
}

/** The end of the non-zero bytes at or after `from` (a segment is mostly preallocated zeros). */
export function dataEnd(bytes: Uint8Array, from: number): number {
  const step = 64 * 1024;
  let last = bytes.length;
  while (last > from && allZero(bytes, Math.max(from, last - step), last)) last = Math.max(from, last - step);
  while (last > from && bytes[last - 1] === 0) last--;
  return last;
}

/** Most `.broken` copies of one name kept side by side. */
export const brokenCopiesMax = 1000;

/** `<base>.broken`, or `<base>.<n>.broken` if that exists: a copy never replaces an older one. */
export function unusedBrokenPath(io: FileIO, base: string): string {
  const taken = new Set(io.readdir(path.dirname(base)));
  for (let i = 0; i < brokenCopiesMax; i++) {
    const candidate = i === 0 ? `${base}.broken` : `${base}.${i}.broken`;
    if (!taken.has(path.basename(candidate))) return candidate;
  }
  throw new WalFailedError(`${brokenCopiesMax} copies of ${base}.broken exist already; clear some out`);
}

/**
 * Keeps a `.broken` copy of the dropped bytes, zeroes them in the segment and fdatasyncs: nothing
 * there was acknowledged (no valid record follows). The copy is durable before the segment changes.
 */
function repairTornTail(io: FileIO, bytes: Uint8Array, t: TornTail): void {
  const dropped = bytes.subarray(t.offset, t.offset + t.bytesDropped);
  const copyFd = io.openWrite(t.brokenCopy, { create: true, truncate: true });
  try {
    io.pwrite(copyFd, dropped, 0);
    io.fsync(copyFd);
  } finally {
    io.close(copyFd);
  }
  io.fsyncDir(path.dirname(t.file));
  const fd = io.openWrite(t.file);
  try {
    io.pwrite(fd, new Uint8Array(t.bytesDropped), t.offset);
    io.fdatasync(fd);
  } finally {
    io.close(fd);
  }
}
