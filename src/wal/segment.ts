// Segment files: naming, listing, creating (temp + fdatasync + rename + dir fsync).

import * as path from "node:path";
import { CorruptionError } from "../errors.ts";
import { encodeSegmentStart, type SegmentHeader } from "../format/encoder.ts";
import type { FileIO } from "../io/file-io.ts";
import { SEGMENT_NAME_RE, SPARE_NAME, segmentName } from "../format/constants.ts";

export interface SegmentFile {
  name: string;
  seq: number;
  firstRev: number;
}

/**
 * The segments in `walDir`, ordered by seq. With `tidy`, leftover spares and temp files are
 * removed (they never hold records). `.broken` copies are kept for the operator; anything else is
 * refused.
 */
export function listSegments(io: FileIO, walDir: string, tidy: boolean): SegmentFile[] {
  const segments: SegmentFile[] = [];
  for (const name of io.readdir(walDir)) {
    const m = SEGMENT_NAME_RE.exec(name);
    if (m) {
      segments.push({ name, seq: parseInt(m[1]!, 16), firstRev: parseInt(m[2]!, 16) });
    } else if (name === SPARE_NAME || name.endsWith(".tmp")) {
      if (tidy) io.unlink(path.join(walDir, name));
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
  io: FileIO,
  walDir: string,
  tmpPath: string,
  header: SegmentHeader,
): { path: string; start: number } {
  const finalPath = path.join(walDir, segmentName(header.seq, header.firstRev));
  const start = encodeSegmentStart(header);
  const fd = io.openWrite(tmpPath, { create: true });
  try {
    io.pwrite(fd, start, 0);
    io.fdatasync(fd);
  } finally {
    io.close(fd);
  }
  io.rename(tmpPath, finalPath);
  io.fsyncDir(walDir);
  return { path: finalPath, start: start.length };
}
