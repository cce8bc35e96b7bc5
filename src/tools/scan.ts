// A read-only pass over a data directory's log for the operator tools: recovery's own checks, no repair.

import * as fs from "node:fs";
import * as path from "node:path";
import { CorruptionError, InvalidArgumentError } from "../errors.ts";
import { decodeOps, payloadOf, visitOps, type OpVisitor } from "../wal/decoder.ts";
import type { Op } from "../wal/encoder.ts";
import { nodeIO } from "../wal/file-io.ts";
import { FRAME_HEADER_BYTES } from "../wal/format.ts";
import { recover, type Apply, type TornTail } from "../wal/recovery.ts";
import { listSegments } from "../wal/segment.ts";

/** One entry as the log holds it: where it starts and its operations (values still CBOR-encoded). */
export interface LogRecord {
  rev: number;
  /** File name of the segment, without the directory. */
  segment: string;
  /** Offset of the frame (not the payload) in the segment. */
  offset: number;
  ops: Op[];
}

/** The first thing that would make open() refuse, as CorruptionError names it. */
export interface Problem {
  /** CorruptionError's message: what, file, offset and revision in one line. */
  message: string;
  file: string;
  offset: number;
  /** The revision the log would have continued with (the first one lost). */
  rev: number;
}

export interface ScanResult {
  /** null when there is no segment yet, or when the scan stopped at a problem. */
  dbId: string | null;
  /** Segment file names in seq order (.broken and spare files excluded). */
  segments: string[];
  /** Entries that passed every check, and the last of their revisions. */
  records: number;
  lastRev: number;
  /** A torn tail open() would truncate; the scan leaves it in place. */
  tornTail: TornTail | null;
  /** Corruption open() refuses; null when it would open. */
  problem: Problem | null;
}

export function walDirOf(dir: string): string {
  const walDir = path.join(dir, "wal");
  if (!fs.existsSync(walDir) || !fs.statSync(walDir).isDirectory()) {
    throw new InvalidArgumentError(`${dir} is not a harmonydb data directory (no wal/ in it)`);
  }
  return walDir;
}

const CHECK_ONLY: OpVisitor = { put() {}, delete() {} };

/**
 * Runs recovery over `dir` read-only (`repair: false`: no truncation, no tidying). `onRecord`, when
 * given, sees every good entry in order as it is checked; an error it throws is rethrown as is,
 * never taken for corruption. Reading errors (EIO) propagate as WalFailedError.
 */
export function scanLog(dir: string, onRecord?: (r: LogRecord) => void): ScanResult {
  const walDir = walDirOf(dir);
  const result: ScanResult = { dbId: null, segments: [], records: 0, lastRev: 0, tornTail: null, problem: null };
  let segmentIndex = 0; // onProgress fires after each segment: entries before the k-th call are in segment k
  let sinkError: { error: unknown } | null = null;
  const apply: Apply = (rev, seg, start, end) => {
    if (onRecord) {
      // Decoding is recovery's check (it throws on a malformed entry); the sink's own errors are not.
      const ops = decodeOps(payloadOf(seg.bytes, { start, len: end - start }));
      const segment = result.segments[segmentIndex] ?? "?";
      try {
        onRecord({ rev, segment, offset: start - FRAME_HEADER_BYTES, ops });
      } catch (error) {
        sinkError = { error };
        throw error;
      }
    } else {
      visitOps(seg, start, end, CHECK_ONLY);
    }
    result.records++;
    result.lastRev = rev;
  };
  try {
    result.segments = listSegments(nodeIO, walDir, false).map((s) => s.name);
    const rec = recover(walDir, apply, {
      repair: false,
      log: () => {},
      onProgress: () => void segmentIndex++,
    });
    result.dbId = rec.dbId;
    result.tornTail = rec.tornTail;
  } catch (err) {
    if (sinkError) throw (sinkError as { error: unknown }).error;
    if (!(err instanceof CorruptionError)) throw err;
    result.problem = { message: err.message, file: err.file, offset: err.offset, rev: err.rev };
  }
  return result;
}
