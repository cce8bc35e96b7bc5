// Fixture verbs for scenario tests: temp dirs, byte-level damage, WAL inspection.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readFrame } from "../../src/format/decoder.ts";
import { HEADER_FRAME_OFFSET, SEGMENT_NAME_RE } from "../../src/format/constants.ts";

const made: string[] = [];

/** A fresh temp dir, removed after the test that made it. */
export function tmpDir(prefix = "harmonydb-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes every dir tmpDir() made; test/helpers/preload.ts runs it after each test of every file. */
export function cleanupTmpDirs(): void {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** The segment files of a database dir, in seq order, as full paths. */
export function segments(dir: string): string[] {
  const wal = path.join(dir, "wal");
  return fs
    .readdirSync(wal)
    .filter((n) => SEGMENT_NAME_RE.test(n))
    .sort()
    .map((n) => path.join(wal, n));
}

export function lastSegment(dir: string): string {
  const all = segments(dir);
  const last = all[all.length - 1];
  if (!last) throw new Error(`no segments in ${dir}`);
  return last;
}

/** Offsets of every frame in a segment (the header first) and where the log ends. */
export function frameOffsets(file: string): { offsets: number[]; end: number } {
  const bytes = fs.readFileSync(file);
  const offsets: number[] = [];
  let off = HEADER_FRAME_OFFSET;
  for (;;) {
    const v = readFrame(bytes, off);
    if (v.kind !== "frame") return { offsets, end: off };
    offsets.push(off);
    off = v.next;
  }
}

/** Flips every bit of the byte at `offset`. */
export function flipByte(file: string, offset: number): void {
  corrupt(file, (bytes) => {
    bytes[offset] = bytes[offset]! ^ 0xff;
  });
}

/** The one corruption helper: read the file, let `damage` change the bytes, write them back. */
export function corrupt(file: string, damage: (bytes: Uint8Array) => Uint8Array | void): void {
  const bytes = new Uint8Array(fs.readFileSync(file));
  const out = damage(bytes) ?? bytes;
  fs.writeFileSync(file, out);
}

/** Writes `bytes` at `offset`, growing the file if it is shorter (segments are zero-filled lazily). */
export function writeAt(file: string, offset: number, bytes: Uint8Array): void {
  corrupt(file, (b) => {
    const out = new Uint8Array(Math.max(b.length, offset + bytes.length));
    out.set(b);
    out.set(bytes, offset);
    return out;
  });
}

/** Cuts the file at `length` bytes. */
export function truncateTo(file: string, length: number): void {
  fs.truncateSync(file, length);
}

/** Calls `onLine` with the words of each line a child prints (a crash child's "ready", "ack …"), until its stdout ends. */
export async function forEachLine(stdout: ReadableStream<Uint8Array>, onLine: (words: string[]) => void): Promise<void> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stdout) {
    buf += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, nl).split(" "));
      buf = buf.slice(nl + 1);
    }
  }
}
