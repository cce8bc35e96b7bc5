// `harmonydb repair`: set aside what open() cannot keep, keeping a copy of every byte taken out.

import * as path from "node:path";
import { assert } from "../assert.ts";
import { lockDir } from "../io/lock.ts";
import { visitOps } from "../format/decoder.ts";
import { nodeIO } from "../io/file-io.ts";
import { HEADER_FRAME_OFFSET, SEGMENT_NAME_RE, TYPE_ENTRY, hex16 } from "../format/constants.ts";
import { SegmentReader } from "../wal/reader.ts";
import { dataEnd, recover, unusedBrokenPath, type TornTail } from "../wal/recovery.ts";
import { checkingLoader, scanLog, snapDirOf, walDirOf, type Problem, type ScanResult } from "./scan.ts";
import { pointInTimeBlocker, summaryLine, verify, verifyExitCode, type VerifyResult } from "./verify.ts";

export type TruncateTailResult =
  | { kind: "clean"; scan: ScanResult }
  | { kind: "repaired"; tornTail: TornTail }
  | { kind: "refused"; problem: Problem; scan: ScanResult };

/**
 * Repairs a torn tail exactly as open() would (recovery with `repair: true`), under the directory
 * LOCK. Corruption anywhere else is refused before a byte changes.
 */
export function truncateTail(dir: string): TruncateTailResult {
  const walDir = walDirOf(dir);
  const lock = lockDir(dir);
  try {
    const scan = scanLog(dir);
    if (scan.problem) return { kind: "refused", problem: scan.problem, scan };
    if (!scan.tornTail) return { kind: "clean", scan };
    const rec = recover(walDir, (_rev, seg, start, end) => visitOps(seg, start, end, { put() {}, delete() {} }), {
      repair: true,
      log: () => {},
      snapshots: checkingLoader(snapDirOf(dir)), // the WAL may start after segment 1
    });
    assert(rec.tornTail !== null && rec.tornTail.offset === scan.tornTail.offset, "recovery repaired the torn tail verify saw");
    return { kind: "repaired", tornTail: rec.tornTail };
  } finally {
    lock.release();
  }
}

/** Bytes cut out of the damaged segment (and zeroed in it). */
export interface Cut {
  file: string;
  offset: number;
  bytes: number;
  /** null when there was nothing but zeros to cut. */
  brokenCopy: string | null;
}

export interface LostRange {
  /** The first revision not kept: the last kept one + 1. */
  fromRev: number;
  /** The highest revision of a readable record in what was set aside; null when none was readable. */
  toRev: number | null;
  /** Records with a valid checksum in what was set aside (the damaged one is not among them). */
  readable: number;
}

export type PointInTimeResult =
  | { kind: "clean"; scan: ScanResult }
  | { kind: "refused"; reason: string; problem: Problem | null }
  | {
      kind: "repaired";
      keptRev: number;
      cut: Cut | null;
      /** Whole segment files renamed to `*.broken`, in the order it was done (highest seq first). */
      moved: { from: string; to: string }[];
      lost: LostRange;
      after: VerifyResult;
    };

/** Where the damage starts: a segment (index into the scan's list) and an offset in it. */
interface Damage {
  index: number;
  offset: number;
  /** Damage in the magic or header: the whole segment goes. */
  whole: boolean;
}

/**
 * Keeps the log up to the first damaged record and sets everything after it aside: the rest of that
 * segment is copied to `<segment>.<offset>.broken` and zeroed, every later segment is renamed to
 * `<segment>.broken`. Takes the LOCK first (a running database refuses it), verifies after.
 */
export function pointInTime(dir: string): PointInTimeResult {
  const walDir = walDirOf(dir);
  const lock = lockDir(dir);
  try {
    const scan = scanLog(dir);
    const damage = damageOf(scan);
    if (damage === null) return { kind: "clean", scan };
    if (typeof damage === "string") return { kind: "refused", reason: damage, problem: scan.problem };
    const lost = lostRange(walDir, scan, damage);
    const file = path.join(walDir, scan.segments[damage.index]!);
    // Order: the copy of the cut bytes is durable first, later segments go highest seq first (a
    // crash leaves a contiguous prefix), and the zeroing comes last; running repair again finishes.
    const cutBytes = damage.whole ? null : readCut(file, damage.offset);
    const brokenCopy = cutBytes && cutBytes.bytes.length > 0 ? writeCopy(walDir, `${file}.${hex16(damage.offset)}`, cutBytes.bytes) : null;
    const moved: { from: string; to: string }[] = [];
    for (let i = scan.segments.length - 1; i >= damage.index + (damage.whole ? 0 : 1); i--) {
      const from = path.join(walDir, scan.segments[i]!);
      const to = unusedBrokenPath(nodeIO, from);
      nodeIO.rename(from, to);
      moved.push({ from, to });
    }
    nodeIO.fsyncDir(walDir);
    if (cutBytes && brokenCopy) zeroRange(file, damage.offset, cutBytes.bytes.length);
    const cut = cutBytes ? { file, offset: damage.offset, bytes: cutBytes.bytes.length, brokenCopy } : null;
    return { kind: "repaired", keptRev: scan.lastRev, cut, moved, lost, after: verify(dir) };
  } finally {
    lock.release();
  }
}

/** Where to cut, null when there is nothing to cut, or why a cut cannot help. */
function damageOf(scan: ScanResult): Damage | string | null {
  const p = scan.problem;
  if (p) {
    const blocker = pointInTimeBlocker(p, scan);
    if (blocker) return blocker;
    // Header checks report offset 0 (magic, missing segment) or the header frame's offset.
    return { index: scan.segments.indexOf(path.basename(p.file)), offset: p.offset, whole: p.offset <= HEADER_FRAME_OFFSET };
  }
  const t = scan.tornTail;
  if (t) return { index: scan.segments.indexOf(path.basename(t.file)), offset: t.offset, whole: false };
  return null;
}

/** Bytes [offset, last non-zero byte] of the segment: what a cut takes out (trailing zeros stay). */
function readCut(file: string, offset: number): { bytes: Uint8Array } {
  const all = nodeIO.readFile(file);
  return { bytes: all.subarray(offset, dataEnd(all, offset)) };
}

/** Writes `bytes` to a fresh `<base>.broken` (never over an older copy), durably. Returns its path. */
function writeCopy(walDir: string, base: string, bytes: Uint8Array): string {
  const copy = unusedBrokenPath(nodeIO, base);
  const fd = nodeIO.openWrite(copy, { create: true, truncate: true });
  try {
    nodeIO.pwrite(fd, bytes, 0);
    nodeIO.fsync(fd);
  } finally {
    nodeIO.close(fd);
  }
  nodeIO.fsyncDir(walDir);
  return copy;
}

function zeroRange(file: string, offset: number, bytes: number): void {
  const fd = nodeIO.openWrite(file);
  try {
    nodeIO.pwrite(fd, new Uint8Array(bytes), offset);
    nodeIO.fdatasync(fd);
  } finally {
    nodeIO.close(fd);
  }
}

/** Which revisions the bytes being set aside hold, as far as their checksums can be trusted. */
function lostRange(walDir: string, scan: ScanResult, d: Damage): LostRange {
  let readable = 0;
  let maxRev = scan.lastRev;
  for (let i = d.index; i < scan.segments.length; i++) {
    const name = scan.segments[i]!;
    const file = path.join(walDir, name);
    const from = i === d.index && !d.whole ? d.offset : HEADER_FRAME_OFFSET;
    const firstRev = parseInt(SEGMENT_NAME_RE.exec(name)?.[2] ?? "1", 16);
    const found = readableEntries(new SegmentReader(file, nodeIO.readFile(file), from), Math.max(maxRev, firstRev - 1));
    readable += found.count;
    maxRev = Math.max(maxRev, found.maxRev);
  }
  return { fromRev: scan.lastRev + 1, toRev: maxRev > scan.lastRev ? maxRev : null, readable };
}

/**
 * Counts entries with a valid checksum and a rising revision from the reader's offset on, skipping
 * damage by searching the later 8-byte boundaries (each step moves forward, so the walk ends).
 */
function readableEntries(r: SegmentReader, afterRev: number): { count: number; maxRev: number } {
  let count = 0;
  let maxRev = afterRev;
  while (r.offset >= 0 && r.offset < r.bytes.length) {
    const v = r.next();
    if (v.kind === "frame") {
      if (v.type === TYPE_ENTRY && v.rev > maxRev) {
        count++;
        maxRev = v.rev;
      }
    } else if (r.stop(v).damage === null) {
      break; // the clean end: only zeros follow
    } else {
      r.offset = r.validFrameAfter(r.at, maxRev);
    }
  }
  return { count, maxRev };
}

// ---- what the CLI prints ----

export function formatTruncateTail(r: TruncateTailResult, dir: string): string[] {
  if (r.kind === "clean") return [`nothing to repair: no torn tail (${summaryLine(r.scan)})`];
  if (r.kind === "refused") {
    const blocker = pointInTimeBlocker(r.problem, r.scan);
    return [
      `refused: the damage is not a torn tail: ${r.problem.message}`,
      `  --truncate-tail only drops a tail no valid record follows; nothing was changed.`,
      blocker
        ? `  --point-in-time cannot fix it either: ${blocker}`
        : `  to keep revisions up to ${r.scan.lastRev} and set the rest aside: harmonydb repair ${dir} --point-in-time`,
    ];
  }
  const t = r.tornTail;
  return [
    `truncated a torn tail (${t.reason}):`,
    `  file:          ${t.file}`,
    `  offset:        ${t.offset}`,
    `  bytes:         ${t.bytesDropped} dropped (zeroed)`,
    `  last good rev: ${t.lastGoodRev}`,
    `  copy:          ${t.brokenCopy}`,
  ];
}

export function formatPointInTime(r: PointInTimeResult): string[] {
  if (r.kind === "clean") return [`nothing to repair: ${summaryLine(r.scan)}`];
  if (r.kind === "refused") return [`refused: ${r.problem?.message ?? ""}`, `  ${r.reason}; nothing was changed.`];
  const lines = [`repaired: kept revisions 1..${r.keptRev}${r.keptRev === 0 ? " (none: the database will start empty, with a new id)" : ""}`];
  if (r.cut) {
    const copy = r.cut.brokenCopy ? `, copy in ${r.cut.brokenCopy}` : " (only zeros)";
    lines.push(`  cut:   ${r.cut.file} from offset ${r.cut.offset}: ${r.cut.bytes} bytes zeroed${copy}`);
  }
  for (const m of r.moved) lines.push(`  moved: ${m.from} -> ${m.to}`);
  const l = r.lost;
  lines.push(
    l.toRev === null
      ? `  lost:  rev ${l.fromRev} onwards, if it was ever written (no readable record in the bytes set aside)`
      : `  lost:  revs ${l.fromRev}..${l.toRev} (${l.readable} readable records in the bytes set aside)`,
  );
  lines.push(`  after: ${r.after.kind === "clean" ? summaryLine(r.after.scan) : `verify still fails (exit ${verifyExitCode(r.after)})`}`);
  return lines;
}
