// The WAL tail (src/wal/tail.ts), the archiver's and the replication stream's reader, against real
// segment files: what it does when the writer deletes a segment under it.

import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { readFrame } from "../src/format/decoder.ts";
import { open } from "../src/index.ts";
import { nodeIO } from "../src/io/file-io.ts";
import { WalTail } from "../src/wal/tail.ts";
import { tmpDir } from "./helpers/index.ts";

/** A closed database of `n` puts over several small segments; its segment files, oldest first. */
async function segmentsOf(n: number): Promise<{ walDir: string; files: string[]; lastRev: number }> {
  const dir = tmpDir();
  const db = await open(dir, { segmentBytes: 64 * 1024, snapshotEveryBytes: 0 });
  for (let i = 0; i < n; i++) await db.put(`k${i}`, "v".repeat(300));
  const lastRev = db.rev;
  await db.close();
  const walDir = path.join(dir, "wal");
  const files = fs.readdirSync(walDir).filter((f) => f.endsWith(".wal")).sort();
  return { walDir, files, lastRev };
}

const firstRevOf = (file: string) => parseInt(file.slice(-20, -4), 16);

describe("WAL tail", () => {
  test("reads every entry in order across segments, as views of what it read", async () => {
    const { walDir, files, lastRev } = await segmentsOf(600);
    expect(files.length).toBeGreaterThanOrEqual(3);
    const tail = new WalTail(nodeIO, walDir);
    expect(tail.seek(1)).toBe(true);
    let rev = 1;
    while (tail.next <= lastRev) {
      for (const run of tail.read(lastRev, 16 * 1024).frames) {
        for (let at = 0; at < run.length; ) {
          const f = readFrame(run, at);
          if (f.kind !== "frame") throw new Error(`not a frame at ${at}`);
          expect(f.rev).toBe(rev++); // (and its checksum holds: readFrame checks it)
          at = f.next;
        }
      }
    }
    expect(rev).toBe(lastRev + 1);
  });

  test("a segment deleted once read to its end: the next one goes on; deleted before: an error that says so", async () => {
    const { walDir, files, lastRev } = await segmentsOf(600);
    const second = firstRevOf(files[1]!);
    // Read exactly to the end of the first segment, then the writer deletes it (archived and covered).
    const tail = new WalTail(nodeIO, walDir);
    tail.seek(1);
    tail.read(second - 1, Infinity);
    expect(tail.next).toBe(second);
    fs.rmSync(path.join(walDir, files[0]!));
    expect(tail.read(lastRev, Infinity).next).toBe(lastRev + 1);

    // Deleted before it was read to its end: the revisions in between are gone, and it says which.
    const early = new WalTail(nodeIO, walDir);
    early.seek(second);
    const third = firstRevOf(files[2]!);
    early.read(second + 2, Infinity);
    fs.rmSync(path.join(walDir, files[1]!));
    expect(() => early.read(lastRev, Infinity)).toThrow(`starts at revision ${third}, expected ${second + 3}`);
    // A revision no segment holds any more: seek says so.
    expect(new WalTail(nodeIO, walDir).seek(second)).toBe(false);
  });
});
