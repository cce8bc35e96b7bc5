// Segment files: naming, listing, creating (temp + fdatasync + rename + dir fsync), zero-filling.

import * as fs from "node:fs";
import * as path from "node:path";
import { CorruptionError } from "../errors.ts";
import { encodeSegmentStart, type SegmentHeader } from "./encoder.ts";
import { SEGMENT_NAME_RE, SPARE_NAME, segmentName } from "./format.ts";

export interface SegmentFile {
  name: string;
  seq: number;
  firstRev: number;
}

/**
 * The segments in `walDir`, ordered by seq. Leftover spares and temp files are removed (they never
 * hold records); `.broken` copies are kept for the operator; anything else is refused.
 */
export function listSegments(walDir: string): SegmentFile[] {
  const segments: SegmentFile[] = [];
  for (const name of fs.readdirSync(walDir)) {
    const m = SEGMENT_NAME_RE.exec(name);
    if (m) {
      segments.push({ name, seq: parseInt(m[1]!, 16), firstRev: parseInt(m[2]!, 16) });
    } else if (name === SPARE_NAME || name.endsWith(".tmp")) {
      fs.rmSync(path.join(walDir, name), { force: true });
    } else if (!name.endsWith(".broken")) {
      throw new CorruptionError(`unexpected file in the wal directory`, path.join(walDir, name), 0, 0);
    }
  }
  return segments.sort((a, b) => a.seq - b.seq);
}

/**
 * Turns `tmpPath` (zero-filled, or empty) into the segment for `header`: magic + header at offset 0,
 * fdatasync, rename, fsync of the directory. When it returns, the segment survives a crash.
 */
export function installSegment(
  walDir: string,
  tmpPath: string,
  header: SegmentHeader,
): { path: string; start: number } {
  const finalPath = path.join(walDir, segmentName(header.seq, header.firstRev));
  const start = encodeSegmentStart(header);
  const fd = fs.openSync(tmpPath, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
  try {
    writeFully(fd, start, 0);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmpPath, finalPath);
  fsyncDir(walDir);
  return { path: finalPath, start: start.length };
}

/** Writes all of `bytes` at `position` (pwrite may write less than asked). */
export function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
  }
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
