import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { ClosedError, CompactedError, CorruptionError, NoSpaceError, SnapshotFailedError, type Db } from "../src/index.ts";
// Snapshot tests use the test hooks (small chunks, no encoder or prefetch thresholds).
import { openForTest as open, type TestOptions as OpenOptions } from "../src/testing.ts";
import type { FailingOptions } from "./helpers/failing-io.ts";
import { checkSnapshotFile, verifySnapshot } from "../src/snapshot/file.ts";
import { nodeIO, type FileIO } from "../src/io/file-io.ts";
import { writeBackActive } from "../src/io/write-back.ts";
import { snapshotWriteBackBytes } from "../src/limits.ts";
import { SnapshotFileWriter } from "../src/snapshot/file-writer.ts";
import { FRAME_HEADER_BYTES } from "../src/format/constants.ts";
import { flipByte, frameOffsets, lastSegment, segments, tmpDir, writeAt } from "./helpers/index.ts";

/** Small segments and chunks, so a few thousand writes span many of both; no automatic snapshots. */
const small: OpenOptions = {
  segmentBytes: 64 * 1024,
  snapshotChunkBytes: 1024,
  snapshotEveryBytes: 0,
  // The worker paths, which only a large snapshot takes by default.
  snapshotWorkerBytes: 0,
  snapshotPrefetchBytes: 0,
  log: () => {},
};
const FAILING = path.join(import.meta.dir, "helpers/failing-io.ts");

const key = (i: number) => `k${String(i).padStart(4, "0")}`;

/** `n` writes over 500 keys: puts of objects and bytes, some deletes. */
async function load(db: Db, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, j) => {
        const k = i + j;
        if (k % 17 === 0) return db.delete(key(k % 500));
        return db.put(key(k % 500), k % 3 === 0 ? new Uint8Array(40).fill(k & 0xff) : { k, pad: "x".repeat(k % 60) });
      }),
    );
  }
}

/** Everything a reader can see: every key with its value and all three revisions, in order. */
function contents(db: Db): unknown[] {
  return [...db.range()].map((e) => ({ ...db.getEntry(e.key), key: e.key }));
}

/** Reopens `dir` with `opts`: `check` looks at it first, then it must hold exactly `expected`. */
async function reopensWith(dir: string, opts: OpenOptions, expected: unknown[], check: (db: Db) => void = () => {}): Promise<void> {
  const again = await open(dir, opts);
  try {
    check(again);
    expect(contents(again)).toEqual(expected);
  } finally {
    await again.close();
  }
}

function snapFiles(dir: string): string[] {
  return fs.readdirSync(path.join(dir, "snap")).sort();
}

describe("snapshots", () => {
  test("a snapshot deletes the segments it covers, and a reopen starts from it with the same contents", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 4000);
    const before = segments(dir).length;
    const info = await db.snapshot();
    expect(info.rev).toBe(db.rev);
    expect(info.keys).toBe(db.stats().keys);
    expect(snapFiles(dir)).toEqual([path.basename(info.file)]);
    expect(segments(dir).length).toBeLessThan(before);
    expect(db.stats().snapshot).toMatchObject({ rev: info.rev, bytes: info.bytes, taken: 1, lastError: null });
    await load(db, 300, 4000); // some log after the snapshot
    const expected = contents(db);
    const rev = db.rev;
    await db.close();

    const again = await open(dir, small);
    try {
      expect(again.rev).toBe(rev);
      expect(contents(again)).toEqual(expected);
      const r = again.stats().recovery;
      expect(r.snapshot).toEqual({ rev: info.rev, keys: info.keys, bytes: info.bytes });
      expect(r.records).toBe(rev - info.rev); // only the log after the snapshot is replayed
      expect(await again.put("after", 1)).toBe(rev + 1);
    } finally {
      await again.close();
    }
  });

  test("the log replayed on top of a snapshot keeps each key's createRev and version", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await db.put("a", 1); // rev 1
    await db.put("a", 2); // 2: a is at version 2 in the snapshot
    await db.put("b", 1); // 3
    await db.put("c", 1); // 4
    await db.snapshot();
    await db.put("a", 3); // 5: on top of the snapshot's a
    await db.batch([{ type: "put", key: "a", value: 4 }, { type: "put", key: "a", value: 5 }]); // 6: two versions
    await db.delete("b"); // 7
    await db.put("b", 2); // 8: b begins again
    await db.delete("c"); // 9: c is gone
    await db.put("d", 1); // 10: a key the snapshot does not have
    await db.batch([{ type: "delete", key: "e" }, { type: "put", key: "d", value: 2 }]); // 11: e never was
    const expected = contents(db);
    expect(expected).toEqual([
      { key: "a", value: 5, rev: 6, createRev: 1, version: 5 },
      { key: "b", value: 2, rev: 8, createRev: 8, version: 1 },
      { key: "d", value: 2, rev: 11, createRev: 10, version: 2 },
    ]);
    await db.close(); // snapshotEveryBytes 0: no snapshot at close, so the reopen replays rev 5…11
    await reopensWith(dir, small, expected, (again) => expect(again.stats().recovery.records).toBe(7));
    // And once more, now through a snapshot of the replayed index (its records as replay left them).
    const again = await open(dir, small);
    await again.snapshot();
    await again.close();
    await reopensWith(dir, small, expected, (third) => expect(third.stats().recovery.records).toBe(0));
  });

  test("every kind of value keeps its type and revisions through a snapshot", async () => {
    const dir = tmpDir();
    const values: Record<string, unknown> = {
      str: "héllo",
      num: 3.5,
      int: -7,
      big: 2n ** 70n,
      yes: true,
      nil: null,
      bytes: new Uint8Array([0, 1, 2, 255]),
      empty: new Uint8Array(0),
      obj: { a: [1, "two", { three: 3 }] },
      date: new Date(1_700_000_000_000),
      map: new Map([["x", 1]]),
      long: "z".repeat(70_000),
    };
    const db = await open(dir, small);
    for (const [k, v] of Object.entries(values)) await db.put(k, v);
    await db.put("str", "héllo again");
    values.str = "héllo again";
    const expected = contents(db);
    await db.snapshot();
    await db.close();
    await reopensWith(dir, small, expected, (again) => {
      expect(again.stats().recovery.records).toBe(0);
      for (const [k, v] of Object.entries(values)) expect(again.get(k)).toEqual(v);
      expect(again.getEntry("str")).toMatchObject({ version: 2, createRev: 1 });
    });
  });

  test("writes and reads go on while a snapshot is written, and all of them survive", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 2000);
    const snap = db.snapshot();
    const during = Array.from({ length: 500 }, (_, i) => db.put(`during${i}`, i));
    let reads = 0;
    while (db.stats().snapshot.running) {
      expect(db.get(`during0`) === undefined || db.get(`during0`) === 0).toBe(true);
      reads++;
      await new Promise((r) => setTimeout(r, 0));
    }
    const info = await snap;
    await Promise.all(during);
    expect(reads).toBeGreaterThan(0);
    const expected = contents(db);
    await db.close();
    await reopensWith(dir, small, expected, (again) => {
      expect(again.stats().recovery.snapshot?.rev).toBe(info.rev);
      for (let i = 0; i < 500; i++) expect(again.get(`during${i}`)).toBe(i);
    });
  });

  test("automatic snapshots keep the log bounded and only the newest snapshot stays", async () => {
    const dir = tmpDir();
    const db = await open(dir, { ...small, snapshotEveryBytes: 128 * 1024 });
    await load(db, 20_000);
    while (db.stats().snapshot.running) await new Promise((r) => setTimeout(r, 5));
    const s = db.stats().snapshot;
    expect(s.taken).toBeGreaterThan(3);
    expect(s.segmentsDeleted).toBeGreaterThan(3);
    expect(s.walBytesSince).toBeLessThan(3 * 128 * 1024);
    expect(snapFiles(dir).length).toBe(1);
    // The log holds what came after the snapshot (plus the segment it starts in), not everything.
    expect(segments(dir).length).toBeLessThanOrEqual(6);
    const expected = contents(db);
    await db.close();
    await reopensWith(dir, small, expected);
  });

  test("a batch that puts one key twice (two versions in one revision) snapshots and reopens", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await db.put("k", 1);
    await db.batch([
      { type: "put", key: "k", value: 2 },
      { type: "put", key: "k", value: 3 },
    ]);
    expect(db.getEntry("k")).toMatchObject({ value: 3, rev: 2, createRev: 1, version: 3 });
    await db.snapshot();
    const expected = contents(db);
    await db.close();
    await reopensWith(dir, small, expected);
  });

  test("a snapshot of an unchanged store is the one already there", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 200);
    const a = await db.snapshot();
    const b = await db.snapshot();
    expect(b.rev).toBe(a.rev);
    expect(snapFiles(dir)).toEqual([path.basename(a.file)]);
    expect(db.stats().snapshot.taken).toBe(1);
    await db.close();
  });

  test("watching from a revision the snapshot compacted away is CompactedError", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 4000);
    await db.snapshot();
    expect(() => db.watch({ fromRev: 1 })).toThrow(CompactedError);
    // A revision still in the log replays from there.
    const w = db.watch({ fromRev: db.rev });
    const first = await w.next();
    expect(first.value).toMatchObject({ rev: db.rev });
    await w.return?.();
    await db.close();
  });

  test("close() during a snapshot lets it finish, and the next open starts from it", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 3000);
    const expected = contents(db);
    const snap = db.snapshot();
    await db.close();
    const info = await snap;
    expect(snapFiles(dir)).toEqual([path.basename(info.file)]);
    await expect(db.snapshot()).rejects.toBeInstanceOf(ClosedError);
    await reopensWith(dir, small, expected, (again) => {
      expect(again.stats().recovery.snapshot?.rev).toBe(info.rev);
    });
  });

  test("close() takes a snapshot when much log has piled up since the last one, not otherwise", async () => {
    const dir = tmpDir();
    const opts = { ...small, snapshotEveryBytes: 4 * 1024 * 1024 };
    let db = await open(dir, opts);
    await load(db, 200); // far below a quarter of the threshold
    await db.close();
    expect(snapFiles(dir)).toEqual([]);
    db = await open(dir, opts);
    await load(db, 25_000, 200); // over a quarter (1 MiB), under the threshold
    expect(db.stats().snapshot.walBytesSince).toBeGreaterThan(1024 * 1024);
    expect(db.stats().snapshot.taken).toBe(0);
    const expected = contents(db);
    await db.close();
    expect(snapFiles(dir).length).toBe(1);
    await reopensWith(dir, opts, expected, (again) => {
      expect(again.stats().recovery.records).toBe(0); // nothing left to replay
    });
  });
});

describe("snapshots under a write load that outruns them", () => {
  test("writes stall while an automatic snapshot is behind, so the log behind it stays near the threshold", async () => {
    const dir = tmpDir();
    const every = 64 * 1024;
    // ~4 MiB of live data: each snapshot is many times the threshold's worth of log.
    const db = await open(dir, { segmentBytes: 256 * 1024, snapshotChunkBytes: 4096, snapshotEveryBytes: every, snapshotWorkerBytes: 0, log: () => {} });
    try {
      const value = new Uint8Array(1000).fill(7);
      for (let i = 0; i < 4000; i += 500) await db.batch(Array.from({ length: 500 }, (_, j) => ({ type: "put" as const, key: key(i + j), value })));
      const taken0 = db.stats().snapshot.taken;
      let maxBehind = 0;
      let next = 0;
      const lane = async () => {
        while (db.stats().snapshot.taken < taken0 + 3) {
          await db.put(key(next++ % 4000), value);
          const s = db.stats().snapshot;
          if (s.running) maxBehind = Math.max(maxBehind, s.walBytesSince);
        }
      };
      await Promise.all(Array.from({ length: 64 }, lane));
      const s = db.stats().snapshot;
      expect(s.writeStalls).toBeGreaterThan(0);
      // The threshold before the snapshot started, its allowance while it ran, and the writes
      // already in the ring when the stall began (64 of ~1 KiB).
      expect(maxBehind).toBeLessThanOrEqual(2 * every + 64 * 1100);
      expect(next).toBeGreaterThan(0);
    } finally {
      await db.close();
    }
    const again = await open(dir, { snapshotEveryBytes: 0, log: () => {} });
    try {
      expect(again.stats().keys).toBe(4000);
    } finally {
      await again.close();
    }
  });
});

describe("the snapshot encoder worker", () => {
  test("a worker that dies mid-snapshot fails that snapshot only: writes go on, the next one starts a new worker", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    try {
      await load(db, 2000);
      const running = db.snapshot();
      (db as unknown as { snapshots: { encoderThread: { terminate(): void } } }).snapshots.encoderThread.terminate();
      await expect(running).rejects.toBeInstanceOf(SnapshotFailedError);
      expect(db.stats().snapshot.lastError).toContain("snapshot encoder");
      await load(db, 200, 2000);
      const info = await db.snapshot();
      expect(info.keys).toBe(db.stats().keys);
      const expected = contents(db);
      await db.close();
      await reopensWith(dir, small, expected, (again) => expect(again.stats().recovery.snapshot?.rev).toBe(info.rev));
    } finally {
      await db.close();
    }
  });
});

describe("snapshots on a damaged or failing disk", () => {
  test("a damaged newest snapshot falls back to the previous one plus the log", async () => {
    const dir = tmpDir();
    // Big segments: the log between the two snapshots stays (nothing is wholly covered).
    const opts = { ...small, segmentBytes: 8 * 1024 * 1024 };
    const db = await open(dir, opts);
    await load(db, 1000);
    const first = await db.snapshot();
    const firstCopy = fs.readFileSync(first.file);
    await load(db, 1000, 1000);
    const second = await db.snapshot();
    await load(db, 100, 2000);
    const expected = contents(db);
    await db.close();
    expect(fs.existsSync(first.file)).toBe(false); // only the newest is kept...
    fs.writeFileSync(first.file, firstCopy); // ...put the older one back, as if a crash had kept it
    flipByte(second.file, Math.floor(fs.statSync(second.file).size / 2));
    // And a torn last write: open replays the log after the newest snapshot before its body turns
    // out damaged, then again after the older one; the tail is repaired once, and reported.
    const tail = lastSegment(dir);
    const { end } = frameOffsets(tail);
    writeAt(tail, end, new Uint8Array(11).fill(0xab));
    const lines: string[] = [];
    await reopensWith(dir, { ...opts, log: (l) => lines.push(l) }, expected, (again) => {
      expect(again.stats().recovery.snapshot?.rev).toBe(first.rev);
      expect(again.stats().recovery.tornTail).toMatchObject({ file: tail, offset: end, bytesDropped: 11 });
      expect(lines.join("\n")).toContain(path.basename(second.file));
      expect(lines.filter((l) => l.includes("torn tail")).length).toBe(1);
      expect(fs.readdirSync(path.dirname(tail)).filter((n) => n.endsWith(".broken")).length).toBe(1);
    });
  });

  test("a damaged snapshot whose log is gone refuses to open, naming the snapshot", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 4000);
    const info = await db.snapshot();
    await db.close();
    flipByte(info.file, 100);
    const err = await open(dir, small).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as Error).message).toContain(path.basename(info.file));
    expect((err as Error).message).toContain("no longer reaches back");
  });

  test("a log whose segments were deleted by hand refuses to open: the snapshot shows it reached further", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 4000);
    const info = await db.snapshot();
    await load(db, 2000, 4000);
    await db.close();
    for (const s of segments(dir)) fs.rmSync(s);
    const err = await open(dir, small).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as Error).message).toContain(`does not reach back to rev ${info.rev + 1}`);
  });

  test("the writer's read-back check, a window at a time, sees what a whole read sees, and damage", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 3000);
    const { file } = await db.snapshot();
    await db.close();
    const whole = verifySnapshot(file, fs.readFileSync(file)).chunks;
    expect(whole.length).toBeGreaterThan(10);
    // Windows smaller than a chunk, around one, and the default (the whole file at once).
    for (const windowBytes of [64, 1000, 4096, undefined]) expect(checkSnapshotFile(nodeIO, file, windowBytes)).toEqual(whole);
    const at = whole[Math.floor(whole.length / 2)]!.start + 3;
    flipByte(file, at);
    for (const windowBytes of [64, 4096, undefined]) {
      const err = (() => {
        try {
          checkSnapshotFile(nodeIO, file, windowBytes);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).offset).toBe(whole[Math.floor(whole.length / 2)]!.start - FRAME_HEADER_BYTES);
    }
    flipByte(file, at);
    fs.truncateSync(file, fs.statSync(file).size - 5);
    expect(() => checkSnapshotFile(nodeIO, file, 1000)).toThrow(CorruptionError);
  });

  test("a leftover temp snapshot is removed at open; any other stray file in snap/ is refused", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await load(db, 500);
    await db.close();
    fs.writeFileSync(path.join(dir, "snap", "00000000000000ff.snap.tmp"), "half a snapshot");
    const again = await open(dir, small);
    await again.close();
    expect(snapFiles(dir)).toEqual([]);
    fs.writeFileSync(path.join(dir, "snap", "notes.txt"), "hello");
    const err = await open(dir, small).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).file).toContain("notes.txt");
  });

  for (const [op, code, Err] of [
    ["pwrite", "ENOSPC", NoSpaceError],
    ["fdatasync", "EIO", SnapshotFailedError],
  ] as const) {
    test(`${code} on the snapshot file's ${op} fails that snapshot only: writes go on, nothing is lost`, async () => {
      const dir = tmpDir();
      const trigger = path.join(dir, "fail-now");
      const options: FailingOptions = { op, code, trigger, pathIncludes: `${path.sep}snap${path.sep}` };
      const db = await open(dir, { ...small, writerIO: { path: FAILING, options } });
      await load(db, 3000);
      const segmentsBefore = segments(dir);
      fs.writeFileSync(trigger, "");
      await expect(db.snapshot()).rejects.toBeInstanceOf(Err);
      expect(db.stats().snapshot.lastError).toContain(code);
      expect(db.stats().failed).toBeNull();
      expect(snapFiles(dir)).toEqual([]); // the temp file is gone
      expect(segments(dir)).toEqual(expect.arrayContaining(segmentsBefore)); // nothing was deleted
      await db.put("still", "writable");
      fs.rmSync(trigger);
      const ok = await db.snapshot();
      expect(ok.rev).toBe(db.rev);
      const expected = contents(db);
      await db.close();
      const again = await open(dir, small);
      try {
        expect(contents(again)).toEqual(expected);
      } finally {
        await again.close();
      }
    });
  }
});

describe("a snapshot file's writeback", () => {
  test("is started a MiB at a time as the file grows, over contiguous ranges from its start", () => {
    const dir = tmpDir("harmonydb-writeback-");
    const started: [number, number][] = [];
    const io: FileIO = { ...nodeIO, startWriteBack: (fd, offset, bytes) => (started.push([offset, bytes]), nodeIO.startWriteBack(fd, offset, bytes)) };
    const file = new SnapshotFileWriter(io, dir, 7);
    const piece = new Uint8Array(300 * 1024).fill(0xab);
    for (let i = 0; i < 12; i++) file.write(piece);
    // (Not a snapshot, so not installed: only what write() does is under test here.)
    expect(started.length).toBe(3); // at 1.17, 2.34 and 3.52 MiB of 3.52 (the magic first)
    let end = 0;
    for (const [offset, bytes] of started) {
      expect(offset).toBe(end);
      expect(bytes).toBeGreaterThanOrEqual(snapshotWriteBackBytes);
      end = offset + bytes;
    }
    expect(end).toBe(file.bytes);
    const written = fs.readFileSync(path.join(dir, fs.readdirSync(dir)[0]!));
    expect(written.length).toBe(file.bytes);
    expect(written.subarray(written.length - piece.length).every((b) => b === 0xab)).toBe(true);
    file.drop();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test.skipIf(process.platform !== "linux")("uses sync_file_range on Linux, and a refused call only turns the hint off", () => {
    const dir = tmpDir("harmonydb-writeback-");
    const fd = nodeIO.openWrite(path.join(dir, "f"), { create: true });
    nodeIO.pwrite(fd, new Uint8Array(64 * 1024).fill(1), 0);
    nodeIO.startWriteBack(fd, 0, 64 * 1024);
    expect(writeBackActive()).toBe(true); // the call was made, and the kernel took it
    nodeIO.close(fd);
    expect(() => nodeIO.startWriteBack(fd, 0, 64 * 1024)).not.toThrow(); // EBADF: refused
    expect(writeBackActive()).toBe(false);
  });
});
