// A read-only pass over a data directory for the operator tools: recovery's own checks, no repair.

import * as fs from "node:fs";
import * as path from "node:path";
import { assert } from "../assert.ts";
import { CorruptionError, InvalidArgumentError } from "../errors.ts";
import { listSnapshots, verifySnapshot, visitChunk, type EntryVisitor, type SnapshotEntry, type SnapshotHeader } from "../snapshot/file.ts";
import { payloadDecoder } from "../codec/cbor.ts";
import { decodeOps, encoded, payloadOf, visitOps, type OpVisitor } from "../format/decoder.ts";
import type { Op } from "../format/encoder.ts";
import { nodeIO } from "../io/file-io.ts";
import { FRAME_HEADER_BYTES, SNAP_NAME_RE } from "../format/constants.ts";
import { recover, type Apply, type RecoveryResult, type SnapshotLoader, type TornTail } from "../wal/recovery.ts";
import { listSegments, readSegment } from "../wal/reader.ts";

/** One entry as the log holds it: where it starts and its operations (values still CBOR-encoded). */
export interface LogRecord {
  rev: number;
  /** File name of the segment, without the directory. */
  segment: string;
  /** Offset of the frame (not the payload) in the segment. */
  offset: number;
  ops: Op[];
}

/** A snapshot marker frame: snapshot `snapshotRev` became durable here (docs/snapshot-format.md). */
export interface MarkerRecord {
  /** The revision of the entry before it (a marker takes none of its own). */
  rev: number;
  segment: string;
  offset: number;
  /** From its payload; null when that does not decode (recovery checks only the checksum and rev). */
  snapshotRev: number | null;
  snapshotBytes: number | null;
}

/**
 * What a problem is in, which decides what can be done about it:
 * - "segment": damage in a segment after the snapshot (repair --point-in-time may cut it off);
 * - "snapshot": the snapshot the log starts from is damaged;
 * - "coverage": the log does not join a good snapshot (it does not reach back to it, or ends before it);
 * - "stray": a file that is neither a segment nor a snapshot, in wal/ or snap/.
 */
export type ProblemKind = "segment" | "snapshot" | "coverage" | "stray";

/** The first thing that would make open() refuse, as CorruptionError names it. */
export interface Problem {
  /** CorruptionError's message: what, file, offset and revision in one line. */
  message: string;
  file: string;
  offset: number;
  /** The revision the log would have continued with (the first one lost). */
  rev: number;
  kind: ProblemKind;
}

/** The snapshot recovery starts from. */
export interface UsedSnapshot {
  file: string;
  rev: number;
  keys: number;
}

export interface ScanResult {
  /** null when there is no segment yet, or when the scan stopped at a problem. */
  dbId: string | null;
  /** Segment file names in seq order (.broken and spare files excluded). */
  segments: string[];
  /** Entries after the snapshot (if any) that passed every check. */
  records: number;
  /** The last revision the log holds intact (entries up to the snapshot's are checked, not counted). */
  lastRev: number;
  /** A torn tail open() would truncate; the scan leaves it in place. */
  tornTail: TornTail | null;
  /** Corruption open() refuses; null when it would open. */
  problem: Problem | null;
  /** Entries up to its revision come from it; null: the log is replayed from revision 1. */
  snapshot: UsedSnapshot | null;
  /** Damaged snapshots recovery passed over for an older one, newest first, as it logged them. */
  skippedSnapshots: string[];
}

/** What a scan hands out as it goes; an error thrown here is rethrown as is, never taken for corruption. */
export interface ScanSink {
  /** Every good entry after the snapshot, in order, as it is checked. */
  record?: (r: LogRecord) => void;
  /** Every snapshot marker from the snapshot's revision on, in log order with the records. */
  marker?: (m: MarkerRecord) => void;
}

export function walDirOf(dir: string): string {
  const walDir = path.join(dir, "wal");
  if (!fs.existsSync(walDir) || !fs.statSync(walDir).isDirectory()) {
    throw new InvalidArgumentError(`${dir} is not a harmonydb data directory (no wal/ in it)`);
  }
  return walDir;
}

export function snapDirOf(dir: string): string {
  return path.join(dir, "snap");
}

/**
 * A loader that keeps nothing: recovery still checks every entry of the snapshot as it hands them
 * over. `done` gets the number of keys once the last one was checked.
 */
export function checkingLoader(snapDir: string, done: (keys: number) => void = () => {}): SnapshotLoader {
  let keys = 0;
  return {
    dir: snapDir,
    entry: () => void keys++,
    done: () => done(keys),
    reset: () => void (keys = 0),
  };
}

const CHECK_ONLY: OpVisitor = { put() {}, delete() {} };

/** Where recovery is, to tell what a CorruptionError is about (see ProblemKind). */
type Phase = "before-segments" | "in-segment" | "after-segments";

/**
 * Runs recovery over `dir` read-only (`repair: false`: no truncation, no tidying), from the newest
 * good snapshot as open() does. Reading errors (EIO) propagate as WalFailedError.
 */
export function scanLog(dir: string, sink: ScanSink = {}): ScanResult {
  const walDir = walDirOf(dir);
  const snapDir = snapDirOf(dir);
  const result: ScanResult = { dbId: null, segments: [], records: 0, lastRev: 0, tornTail: null, problem: null, snapshot: null, skippedSnapshots: [] };
  const guard = new SinkGuard();
  /** Markers below this revision (an older snapshot's, before the one loaded) are not reported. */
  let minRev = 0;
  let phase: Phase = "before-segments";
  let segment = "?";
  const apply: Apply = (rev, seg, start, end) => {
    const offset = start - FRAME_HEADER_BYTES;
    if (sink.record) {
      // Decoding is recovery's check (it throws on a malformed entry); the sink's own errors are not.
      const ops = decodeOps(payloadOf(seg.bytes, { start, len: end - start }));
      guard.call(() => sink.record!({ rev, segment, offset, ops }));
    } else {
      visitOps(seg, start, end, CHECK_ONLY);
    }
    result.records++;
    result.lastRev = rev;
  };
  const loader = checkingLoader(snapDir, (keys) => {
    result.snapshot = usedSnapshot(snapDir, result.skippedSnapshots.length, keys);
    minRev = result.snapshot.rev;
  });
  try {
    result.segments = listSegments(nodeIO, walDir, false).map((s) => s.name);
    const rec = recover(walDir, apply, {
      repair: false,
      snapshots: loader,
      log: (line) => result.skippedSnapshots.push(skippedSnapshot(line)),
      onSegment: (_i, name) => {
        segment = name;
        phase = "in-segment";
      },
      onProgress: (p) => void (p.phase === "wal" && (phase = "after-segments")),
      onMarker: (m) => {
        if (sink.marker && m.rev >= minRev) guard.call(() => sink.marker!(markerOf(m)));
      },
    });
    finishScan(result, rec);
  } catch (err) {
    guard.rethrowOwn();
    if (!(err instanceof CorruptionError)) throw err;
    const problem = problemOf(err, walDir, snapDir, result.segments, phase);
    // Entries up to the snapshot are checked but not handed to apply: the error says how far the log was good.
    if (problem.kind === "segment") result.lastRev = Math.max(result.lastRev, problem.rev - 1);
    result.problem = problem;
  }
  return result;
}

function finishScan(result: ScanResult, rec: RecoveryResult): void {
  assert(result.snapshot?.file === rec.snapshot?.file, "the tools name the snapshot recovery started from");
  assert(result.records === rec.records, "every entry after the snapshot went through apply");
  result.dbId = rec.dbId;
  result.tornTail = rec.tornTail;
  result.lastRev = rec.lastRev;
}

/**
 * Recovery takes the snapshots newest first and logs each one it skips, so the one it loaded is
 * the next in that order.
 */
function usedSnapshot(snapDir: string, skipped: number, keys: number): UsedSnapshot {
  const s = listSnapshots(nodeIO, snapDir, false)[skipped];
  assert(s !== undefined, "recovery loaded a snapshot that is listed");
  return { file: path.join(snapDir, s.name), rev: s.rev, keys };
}

/** "harmonydb: <why>; trying an older snapshot" (recovery's only log line when it does not repair) → "<why>". */
function skippedSnapshot(line: string): string {
  return line.replace(/^harmonydb: /, "").replace(/; trying an older snapshot$/, "");
}

function problemOf(err: CorruptionError, walDir: string, snapDir: string, segments: string[], phase: Phase): Problem {
  const name = path.basename(err.file);
  let kind: ProblemKind;
  if (path.dirname(err.file) === snapDir) kind = SNAP_NAME_RE.test(name) ? "snapshot" : "stray";
  else if (err.file === walDir || segments.includes(name)) kind = phase === "in-segment" ? "segment" : "coverage";
  else kind = "stray";
  return { message: err.message, file: err.file, offset: err.offset, rev: err.rev, kind };
}

/**
 * Runs the sink's calls, remembering an error one throws: recovery would take an error from inside
 * apply for an undecodable entry (and visitChunk for a bad snapshot), so the scan rethrows the
 * sink's own error instead.
 */
class SinkGuard {
  private error: { error: unknown } | null = null;

  call(f: () => void): void {
    try {
      f();
    } catch (error) {
      this.error = { error };
      throw error;
    }
  }

  rethrowOwn(): void {
    if (this.error) throw this.error.error;
  }
}

/** A marker as recovery hands it over (its payload a copy: cbor-x is slower on a view into a whole segment). */
function markerOf(m: { rev: number; segment: string; offset: number; payload: Uint8Array }): MarkerRecord {
  type Payload = { rev?: unknown; bytes?: unknown } | null;
  let payload: Payload = null;
  try {
    payload = payloadDecoder.decode(m.payload) as Payload;
  } catch {
    // Left null: nothing depends on a marker's payload, and recovery does not decode it either.
  }
  return { rev: m.rev, segment: m.segment, offset: m.offset, snapshotRev: uintOrNull(payload?.rev), snapshotBytes: uintOrNull(payload?.bytes) };
}

function uintOrNull(v: unknown): number | null {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

// ---- snapshot files ----

/** One key of a snapshot, its value still CBOR-encoded (a copy: it outlives the file's buffer). */
export type SnapshotEntryRecord = SnapshotEntry & { key: string };

export interface SnapshotSink {
  /** The header, once every frame of the file passed its checks, before any entry. */
  header?: (h: SnapshotHeader) => void;
  entry?: (e: SnapshotEntryRecord) => void;
}

/**
 * Checks one snapshot file as open() does (magic, every frame, header and footer, the revision in
 * its name, then every entry in key order) and hands out what it holds. Throws CorruptionError
 * naming the file and offset; an error the sink throws passes through as it is.
 */
export function scanSnapshot(file: string, sink: SnapshotSink = {}): { header: SnapshotHeader; bytes: number } {
  const bytes = readSegment(nodeIO, file); // EIO: WalFailedError, as recovery reads it
  const s = verifySnapshot(file, bytes);
  const named = SNAP_NAME_RE.exec(path.basename(file));
  if (named && parseInt(named[1]!, 16) !== s.header.rev) {
    throw new CorruptionError("snapshot: revision does not match the file name", file, 0, s.header.rev);
  }
  sink.header?.(s.header);
  const guard = new SinkGuard();
  const e = encoded(bytes);
  const visit: EntryVisitor = (key, enc, vs, ve, rev, createRev, version) => {
    if (sink.entry) guard.call(() => sink.entry!({ key, value: enc.bytes.slice(vs, ve), rev, createRev, version }));
  };
  try {
    let lastKey: string | null = null;
    for (let i = 0; i < s.chunks.length; i++) lastKey = visitChunk(s, e, i, lastKey, visit);
  } catch (err) {
    guard.rethrowOwn(); // visitChunk turns any error from the visitor into CorruptionError
    throw err;
  }
  return { header: s.header, bytes: bytes.length };
}
