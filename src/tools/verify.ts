// `harmonydb verify`: would open() accept this directory as it is? Reads every segment and every
// snapshot, changes nothing.

import * as fs from "node:fs";
import * as path from "node:path";
import { CorruptionError } from "../errors.ts";
import { listSnapshots, type SnapshotFile } from "../snapshot/file.ts";
import { nodeIO } from "../io/file-io.ts";
import { SEGMENT_NAME_RE } from "../format/constants.ts";
import type { TornTail } from "../wal/recovery.ts";
import { scanLog, scanSnapshot, snapDirOf, type Problem, type ScanResult } from "./scan.ts";

/** One snapshot file, checked whole: every frame, then every entry. */
export interface SnapshotCheck {
  name: string;
  file: string;
  /** The revision in its name. */
  rev: number;
  /** From its header; null when the file is too damaged to say. */
  keys: number | null;
  bytes: number;
  /** null when every check passed. */
  problem: string | null;
}

/**
 * The log's verdict, and the snapshot files checked one by one (newest first; verify only: dump
 * leaves the list empty).
 */
export type VerifyResult = (
  | { kind: "clean"; scan: ScanResult }
  | { kind: "torn-tail"; scan: ScanResult; tornTail: TornTail }
  | { kind: "corrupt"; scan: ScanResult; problem: Problem }
) & { snapshots: SnapshotCheck[] };

/** Exit codes of `verify` (and of `dump`, which runs the same checks). */
export const EXIT_CLEAN = 0;
export const EXIT_CORRUPT = 1;
export const EXIT_TORN_TAIL = 2;

export function verify(dir: string): VerifyResult {
  const scan = scanLog(dir);
  return verdictOf(scan, checkSnapshots(dir, scan.dbId));
}

export function verdictOf(scan: ScanResult, snapshots: SnapshotCheck[] = []): VerifyResult {
  if (scan.problem) return { kind: "corrupt", scan, problem: scan.problem, snapshots };
  if (scan.tornTail) return { kind: "torn-tail", scan, tornTail: scan.tornTail, snapshots };
  return { kind: "clean", scan, snapshots };
}

/**
 * A damaged newest snapshot fails verify even when open() would fall back to an older one (or to
 * the whole log): the next damage could leave nothing to fall back to.
 */
export function verifyExitCode(r: VerifyResult): number {
  if (r.kind === "corrupt" || newestSnapshotDamaged(r)) return EXIT_CORRUPT;
  return r.kind === "torn-tail" ? EXIT_TORN_TAIL : EXIT_CLEAN;
}

export function newestSnapshotDamaged(r: VerifyResult): boolean {
  return (r.snapshots[0]?.problem ?? null) !== null;
}

/** Checks every snapshot in `<dir>/snap`, newest first; `dbId` (the log's) when known. */
export function checkSnapshots(dir: string, dbId: string | null): SnapshotCheck[] {
  const snapDir = snapDirOf(dir);
  let files: SnapshotFile[];
  try {
    files = listSnapshots(nodeIO, snapDir, false);
  } catch (err) {
    if (err instanceof CorruptionError) return []; // a stray file there: the log scan reports it
    throw err;
  }
  return files.map((s) => checkSnapshot(path.join(snapDir, s.name), s, dbId));
}

function checkSnapshot(file: string, s: SnapshotFile, dbId: string | null): SnapshotCheck {
  const check: SnapshotCheck = { name: s.name, file, rev: s.rev, keys: null, bytes: fs.statSync(file).size, problem: null };
  try {
    const { header, bytes } = scanSnapshot(file);
    check.keys = header.keys;
    check.bytes = bytes;
    if (dbId !== null && header.db !== dbId) check.problem = `snapshot of database ${header.db}, the log is ${dbId}`;
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    check.problem = err.message;
  }
  return check;
}

/** The one-line summary of a clean log. */
export function summaryLine(s: ScanResult): string {
  const n = s.segments.length;
  const from = s.snapshot ? `; from snapshot ${path.basename(s.snapshot.file)} (rev ${s.snapshot.rev}, ${s.snapshot.keys} keys)` : "";
  return `ok: ${n} segment${n === 1 ? "" : "s"}, ${s.records} records, last rev ${s.lastRev}, db ${s.dbId ?? "(none yet)"}${from}`;
}

/** What verify prints: the log's summary or its first problem, then one line per snapshot. */
export function formatVerify(r: VerifyResult, dir: string): string[] {
  const log =
    r.kind === "clean" ? [summaryLine(r.scan)] : r.kind === "torn-tail" ? formatTornTail(r.tornTail, dir) : formatCorruption(r.problem, r.scan, dir);
  return [...log, ...formatSnapshots(r)];
}

function formatSnapshots(r: VerifyResult): string[] {
  const lines = r.snapshots.map((c) => {
    const head = `snapshot ${c.name}: rev ${c.rev}, ${c.keys ?? "?"} keys, ${c.bytes} bytes`;
    if (c.problem) return `${head}: damaged: ${c.problem}`;
    return c.file === r.scan.snapshot?.file ? `${head}: ok, open() starts from it` : `${head}: ok`;
  });
  // When the log is corrupt, its problem already says what the damaged snapshot costs.
  if (newestSnapshotDamaged(r) && r.kind !== "corrupt") {
    const from = r.scan.snapshot ? `snapshot ${path.basename(r.scan.snapshot.file)}` : "revision 1 of the log";
    lines.push(`  the newest snapshot is damaged: open() skips it and starts from ${from}; take a new snapshot soon`);
  }
  return lines;
}

export function formatTornTail(t: TornTail, dir: string): string[] {
  return [
    "torn tail: would be truncated on open; run repair --truncate-tail or just open it",
    `  file:          ${t.file}`,
    `  offset:        ${t.offset}`,
    `  bytes:         ${t.bytesDropped}`,
    `  last good rev: ${t.lastGoodRev}`,
    `  reason:        ${t.reason}`,
    `  to fix:        harmonydb repair ${dir} --truncate-tail`,
  ];
}

export function formatCorruption(p: Problem, s: ScanResult, dir: string): string[] {
  const head = [`corrupt: ${p.message}`, `  file:          ${p.file}`, `  offset:        ${p.offset}`];
  if (p.kind === "stray") return [...head, `  ${strayAdvice(p)} (repair does not touch it)`];
  const cannot = "  open() refuses this directory, and repair cannot fix it:";
  if (p.kind !== "segment") return [...head, `${cannot} ${pointInTimeBlocker(p, s)}`];
  const after = s.snapshot ? ` after snapshot rev ${s.snapshot.rev}` : "";
  const lines = [...head, `  rev:           ${p.rev}`, `  last good rev: ${s.lastRev} (${s.records} records${after} before the damage)`];
  const blocker = pointInTimeBlocker(p, s);
  if (blocker) return [...lines, `${cannot} ${blocker}`];
  return [
    ...lines,
    `  open() refuses this log; to keep revisions up to ${s.lastRev} and set the rest aside:`,
    `  harmonydb repair ${dir} --point-in-time`,
  ];
}

function strayAdvice(p: Problem): string {
  const where = path.basename(path.dirname(p.file));
  return `not a ${where === "snap" ? "snapshot" : "segment"}: move it out of the ${where} directory`;
}

/**
 * Why `repair --point-in-time` cannot make the directory open, or null when it can. It only cuts
 * the log, so the damage must be in a segment, and what it keeps must still reach the snapshot the
 * log starts from (or, with none, start at segment 1).
 */
export function pointInTimeBlocker(p: Problem, s: ScanResult): string | null {
  if (p.kind === "stray") return `${strayAdvice(p)} by hand`;
  const restore = "restore snap/ from a backup";
  if (p.kind === "snapshot") return `the snapshot the log starts from is damaged: ${restore}`;
  if (p.kind === "coverage") return `the log does not join a good snapshot: ${restore}`;
  if (s.snapshot && s.lastRev < s.snapshot.rev) {
    return (
      `the damage is at rev ${p.rev}, inside what snapshot ${path.basename(s.snapshot.file)} (rev ${s.snapshot.rev}) ` +
      `covers: a log cut there would end before the snapshot`
    );
  }
  const seq = parseInt(SEGMENT_NAME_RE.exec(s.segments[0] ?? "")?.[1] ?? "1", 16);
  if (!s.snapshot && seq > 1) return `the log starts at segment ${seq}, the revisions before it were in a snapshot that is missing or damaged: ${restore}`;
  return null;
}
