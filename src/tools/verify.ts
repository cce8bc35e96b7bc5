// `harmonydb verify`: would open() accept this log as it is? Reads every segment, changes nothing.

import * as path from "node:path";
import type { TornTail } from "../wal/recovery.ts";
import { scanLog, type Problem, type ScanResult } from "./scan.ts";

export type VerifyResult =
  | { kind: "clean"; scan: ScanResult }
  | { kind: "torn-tail"; scan: ScanResult; tornTail: TornTail }
  | { kind: "corrupt"; scan: ScanResult; problem: Problem };

/** Exit codes of `verify` (and of `dump`, which runs the same checks). */
export const EXIT_CLEAN = 0;
export const EXIT_CORRUPT = 1;
export const EXIT_TORN_TAIL = 2;

export function verify(dir: string): VerifyResult {
  return verdictOf(scanLog(dir));
}

export function verdictOf(scan: ScanResult): VerifyResult {
  if (scan.problem) return { kind: "corrupt", scan, problem: scan.problem };
  if (scan.tornTail) return { kind: "torn-tail", scan, tornTail: scan.tornTail };
  return { kind: "clean", scan };
}

export function verifyExitCode(r: VerifyResult): number {
  return r.kind === "clean" ? EXIT_CLEAN : r.kind === "corrupt" ? EXIT_CORRUPT : EXIT_TORN_TAIL;
}

/** The one-line summary of a clean log. */
export function summaryLine(s: ScanResult): string {
  const n = s.segments.length;
  return `ok: ${n} segment${n === 1 ? "" : "s"}, ${s.records} records, last rev ${s.lastRev}, db ${s.dbId ?? "(none yet)"}`;
}

/** What verify prints: the summary when clean, else the first problem and what to do about it. */
export function formatVerify(r: VerifyResult, dir: string): string[] {
  if (r.kind === "clean") return [summaryLine(r.scan)];
  if (r.kind === "torn-tail") return formatTornTail(r.tornTail, dir);
  return formatCorruption(r.problem, r.scan, dir);
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
  if (!isInSegment(p, s)) {
    return [...head, "  not a segment: move it out of the wal directory (repair does not touch it)"];
  }
  return [
    ...head,
    `  rev:           ${p.rev}`,
    `  last good rev: ${s.lastRev} (${s.records} records before the damage)`,
    `  open() refuses this log; to keep revisions up to ${s.lastRev} and set the rest aside:`,
    `  harmonydb repair ${dir} --point-in-time`,
  ];
}

/** Is the problem inside a segment (repairable), or a stray file that listing the segments refused? */
export function isInSegment(p: Problem, s: ScanResult): boolean {
  return s.segments.includes(path.basename(p.file));
}
