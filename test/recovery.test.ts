import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { CorruptionError, LockedError, WalFailedError, open, type OpenOptions } from "../src/index.ts";
import { payloadEncoder } from "../src/codec/cbor.ts";
import { encodeEntry, encodeFrame } from "../src/format/encoder.ts";
import { nodeIO, type FileIO } from "../src/io/file-io.ts";
import { MAGIC, TYPE_HEADER, segmentName } from "../src/format/constants.ts";
import { crc32Js } from "../src/codec/crc.ts";
import { recover } from "../src/wal/recovery.ts";
import { Prefetch } from "../src/io/prefetch.ts";
import { corrupt, flipByte, frameOffsets, lastSegment, segments, tmpDir, writeAt } from "./helpers/index.ts";

const small: OpenOptions = { segmentBytes: 64 * 1024, log: () => {} };

async function reopen(dir: string, opts: OpenOptions = small) {
  return open(dir, { ...small, ...opts });
}

/** Writes `n` puts k000…, closes, and returns the dir. */
async function seeded(n: number, opts: OpenOptions = small): Promise<string> {
  const dir = tmpDir();
  const db = await open(dir, opts);
  for (let i = 0; i < n; i++) await db.put(key(i), { i, pad: "x".repeat(40) });
  await db.close();
  return dir;
}

const key = (i: number) => `k${String(i).padStart(3, "0")}`;

describe("replay on open", () => {
  test("an empty log opens empty and takes writes", async () => {
    const dir = tmpDir();
    await (await open(dir, small)).close();
    const db = await reopen(dir);
    expect(db.rev).toBe(0);
    expect([...db.range()]).toEqual([]);
    expect(await db.put("a", 1)).toBe(1);
    await db.close();
  });

  test("a single entry survives a reopen", async () => {
    const dir = await seeded(1);
    const db = await reopen(dir);
    expect(db.get("k000")).toEqual({ i: 0, pad: "x".repeat(40) });
    expect(db.getEntry("k000")?.rev).toBe(1);
    await db.close();
  });

  test("100 ordered entries come back in order", async () => {
    const dir = await seeded(100, { ...small, segmentBytes: 64 * 1024 });
    const progress: number[] = [];
    const db = await reopen(dir, { onProgress: (p) => progress.push(p.records) });
    expect([...db.range()].map((e) => e.key)).toEqual(Array.from({ length: 100 }, (_, i) => key(i)));
    expect(db.rev).toBe(100);
    expect(progress[progress.length - 1]).toBe(100);
    expect(db.stats().recovery.records).toBe(100);
    await db.close();
  });

  test("rotation keeps revisions contiguous across many small segments", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    const value = "v".repeat(2000);
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 20 }, (_, i) => db.put(`r${round}-${i}`, value)));
    }
    expect(db.stats().wal.segmentSeq).toBeGreaterThan(3);
    await db.close();
    expect(segments(dir).length).toBeGreaterThan(3);
    const again = await reopen(dir);
    expect(again.rev).toBe(200);
    expect(again.stats().keys).toBe(200);
    await again.close();
  });

  test("overwrites: only the last version survives", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    for (let v = 0; v < 50; v++) await db.put("k", v);
    await db.close();
    const again = await reopen(dir);
    expect(again.getEntry("k")).toEqual({ value: 49, rev: 50, createRev: 1, version: 50 });
    await again.close();
  });

  test("deletes and batches survive restarts", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await db.put("a", 1);
    await db.put("b", 2);
    await db.delete("a");
    await db.batch([
      { type: "put", key: "c", value: 3 },
      { type: "delete", key: "b" },
      { type: "put", key: "d", value: new Uint8Array([4]) },
    ]);
    await db.close();
    const again = await reopen(dir);
    expect([...again.range()].map((e) => [e.key, e.value, e.rev])).toEqual([
      ["c", 3, 4],
      ["d", new Uint8Array([4]), 4],
    ]);
    expect(again.rev).toBe(4);
    await again.close();
  });

  test("three restart cycles keep everything and keep counting", async () => {
    const dir = tmpDir();
    for (let cycle = 0; cycle < 3; cycle++) {
      const db = await reopen(dir);
      expect(db.rev).toBe(cycle * 10);
      for (let i = 0; i < 10; i++) await db.put(`c${cycle}-${i}`, cycle);
      await db.close();
    }
    const db = await reopen(dir);
    expect(db.stats().keys).toBe(30);
    expect(db.get("c0-0")).toBe(0);
    expect(db.get("c2-9")).toBe(2);
    await db.close();
  });

  test("thousands of records with byte-string values decode intact (pure-JS cbor-x)", async () => {
    const { isNativeAccelerationEnabled } = await import("../src/codec/cbor.ts");
    expect(isNativeAccelerationEnabled).toBe(false);
    const dir = tmpDir();
    const db = await open(dir, { ...small, segmentBytes: 1024 * 1024 });
    const n = 5000;
    const raw = (i: number) => new Uint8Array(64 + (i % 64)).map((_, j) => (i * 31 + j) & 255);
    // Odd records hold the bytes inside an object, so cbor-x itself decodes the byte strings.
    const bytesFor = (i: number) => (i % 2 === 0 ? raw(i) : { i, bytes: raw(i), nested: [raw(i + 1)] });
    for (let i = 0; i < n; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => db.put(`b${i + j}`, bytesFor(i + j))));
    }
    await db.close();
    const again = await reopen(dir);
    for (let i = 0; i < n; i++) expect(again.get(`b${i}`)).toEqual(bytesFor(i));
    await again.close();
  });
});

describe("damage on open", () => {
  test("a torn last write is truncated, kept as .broken, reported, and the prefix survives", async () => {
    const dir = await seeded(20);
    const file = lastSegment(dir);
    const { offsets, end } = frameOffsets(file);
    const lastFrame = offsets[offsets.length - 1]!;
    // Tear the last record: keep its header and half its payload, zero the rest.
    corrupt(file, (b) => b.fill(0, lastFrame + 24, end));
    const lines: string[] = [];
    const db = await reopen(dir, { log: (l) => lines.push(l) });
    expect(db.rev).toBe(19);
    expect(db.has(key(19))).toBe(false);
    expect(db.get(key(18))).toEqual({ i: 18, pad: "x".repeat(40) });
    const torn = db.stats().recovery.tornTail;
    expect(torn).toMatchObject({ offset: lastFrame, lastGoodRev: 19 });
    expect(torn!.bytesDropped).toBeGreaterThan(0);
    expect(fs.existsSync(torn!.brokenCopy)).toBe(true);
    expect(lines.join("\n")).toContain("torn tail");
    // Writing goes on where the good prefix ended, and a second reopen is clean.
    expect(await db.put("after", 1)).toBe(20);
    await db.close();
    const again = await reopen(dir);
    expect(again.rev).toBe(20);
    expect(again.stats().recovery.tornTail).toBeNull();
    await again.close();
  });

  test("a second torn tail at the same offset keeps both .broken copies", async () => {
    const dir = await seeded(5);
    const file = lastSegment(dir);
    const { end } = frameOffsets(file);
    writeAt(file, end, new Uint8Array(9).fill(0xab));
    await (await reopen(dir)).close();
    writeAt(file, end, new Uint8Array(9).fill(0xcd));
    const db = await reopen(dir);
    const copies = fs.readdirSync(path.dirname(file)).filter((n) => n.endsWith(".broken")).sort();
    expect(copies.length).toBe(2);
    expect(db.stats().recovery.tornTail?.brokenCopy).toEndWith(".1.broken");
    await db.close();
  });

  test("garbage after the last record (a partial frame header) is a torn tail", async () => {
    const dir = await seeded(5);
    const file = lastSegment(dir);
    const { end } = frameOffsets(file);
    writeAt(file, end, new Uint8Array(11).fill(0xab));
    const db = await reopen(dir);
    expect(db.rev).toBe(5);
    expect(db.stats().recovery.tornTail?.offset).toBe(end);
    await db.close();
  });

  test("a whole record with a revision gap at the end is corruption, not a torn tail", async () => {
    const dir = await seeded(5);
    const file = lastSegment(dir);
    const { end } = frameOffsets(file);
    // A frame with a valid checksum was written whole: dropping it could drop acknowledged data.
    const stray = encodeEntry(7, [["k999", new Uint8Array([1])]]);
    writeAt(file, end, stray);
    const err = await reopen(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    expect((err as CorruptionError).offset).toBe(end);
    expect((err as CorruptionError).message).toContain("revision gap");
  });

  test("a whole frame of an unknown type, or with a value that does not decode, is corruption", async () => {
    for (const damage of ["type", "value"] as const) {
      const dir = tmpDir();
      const db = await open(dir, small);
      await db.put("a", 1);
      await db.put("k", { a: "hello" });
      await db.close();
      const file = lastSegment(dir);
      const { offsets } = frameOffsets(file);
      const last = offsets[offsets.length - 1]!;
      corrupt(file, (b) => {
        const len = new DataView(b.buffer).getUint32(last + 4, true);
        if (damage === "type") b[last + 15] = 3;
        else b[last + 16 + 5] = 0xff; // inside the nested value: [["k", h'<value>']] → value's first byte
        // Re-seal: a checksum that holds means the frame was written whole, so no torn tail.
        new DataView(b.buffer).setUint32(last, crc32Js(b, last + 4, last + 16 + len), true);
      });
      const err = await reopen(dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptionError);
      expect((err as CorruptionError).offset).toBe(last);
    }
  });

  test("a bad record in the middle refuses to open, naming file, offset and revision", async () => {
    const dir = await seeded(20);
    const file = lastSegment(dir);
    const { offsets } = frameOffsets(file);
    const victim = offsets[5]!; // offsets[0] is the header frame
    flipByte(file, victim + 20);
    const err = await reopen(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
    const c = err as CorruptionError;
    expect(c.file).toBe(file);
    expect(c.offset).toBe(victim);
    expect(c.rev).toBe(5);
    expect(c.message).toContain(path.basename(file));
    expect(c.message).toContain(`offset ${victim}`);
    // Nothing was truncated: the bytes after the damage are still there.
    expect(frameOffsets(file).offsets.length).toBe(5);
    expect(fs.readdirSync(path.dirname(file)).some((n) => n.endsWith(".broken"))).toBe(false);
  });

  test("a missing middle segment refuses to open", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    for (let i = 0; i < 120; i++) await db.put(`k${i}`, "v".repeat(1500));
    await db.close();
    const all = segments(dir);
    expect(all.length).toBeGreaterThanOrEqual(3);
    fs.rmSync(all[1]!);
    await expect(reopen(dir)).rejects.toMatchObject({ code: "CORRUPTION" });
  });

  test("a segment from another database refuses to open", async () => {
    const a = await seeded(3);
    const b = tmpDir();
    const dbB = await open(b, small);
    for (let i = 0; i < 60; i++) await dbB.put(`k${i}`, "v".repeat(1500));
    await dbB.close();
    const bSegs = segments(b);
    expect(bSegs.length).toBeGreaterThanOrEqual(2);
    // Put database B's second segment after database A's first.
    fs.copyFileSync(bSegs[1]!, path.join(a, "wal", path.basename(bSegs[1]!)));
    const err = await reopen(a).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptionError);
  });

  test("a garbage file in the wal directory is a typed error, not a crash", async () => {
    const dir = await seeded(2);
    fs.writeFileSync(path.join(dir, "wal", "notes.txt"), "hello");
    await expect(reopen(dir)).rejects.toMatchObject({ code: "CORRUPTION", file: path.join(dir, "wal", "notes.txt") });
    fs.rmSync(path.join(dir, "wal", "notes.txt"));
    fs.writeFileSync(path.join(dir, "wal", "0000000000000002-0000000000000003.wal"), "garbage");
    await expect(reopen(dir)).rejects.toBeInstanceOf(CorruptionError);
  });
});

describe("the rest of the recovery table", () => {
  test("an unknown format version refuses to open", async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, "wal"), { recursive: true });
    const header = payloadEncoder.encode({ v: 2, db: "future", seq: 1, firstRev: 1, prevCrc: 0 });
    const frame = encodeFrame(TYPE_HEADER, 0, header);
    fs.writeFileSync(path.join(dir, "wal", segmentName(1, 1)), Buffer.concat([MAGIC, frame]));
    await expect(reopen(dir)).rejects.toThrow(/unknown format version 2/);
  });

  test("segments in the wrong order refuse to open", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    for (let i = 0; i < 80; i++) await db.put(`k${i}`, "v".repeat(1500));
    await db.close();
    const [first, second] = segments(dir);
    const a = fs.readFileSync(first!);
    fs.writeFileSync(first!, fs.readFileSync(second!));
    fs.writeFileSync(second!, a);
    await expect(reopen(dir)).rejects.toBeInstanceOf(CorruptionError);
  });

  test("EIO while reading refuses to open and changes nothing", async () => {
    const dir = await seeded(10);
    const file = lastSegment(dir);
    const { end } = frameOffsets(file);
    writeAt(file, end, new Uint8Array(5).fill(0xcd)); // a torn tail that open would normally repair
    const before = fs.readFileSync(file);
    const failingRead: FileIO = {
      ...nodeIO,
      readFile: () => {
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      },
    };
    expect(() => recover(path.join(dir, "wal"), () => {}, { io: failingRead, log: () => {} })).toThrow(WalFailedError);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.readdirSync(path.join(dir, "wal")).some((n) => n.endsWith(".broken"))).toBe(false);
  });
});

describe("reading a snapshot on another thread", () => {
  test("the prefetched bytes are the file's, and a short file is a read failure naming it", () => {
    const dir = tmpDir("harmonydb-prefetch-");
    const file = path.join(dir, "data");
    const data = new Uint8Array(9 * 1024 * 1024 + 123).map((_, i) => (i * 31 + 7) & 0xff);
    fs.writeFileSync(file, data);
    const whole = new Prefetch(file, data.length);
    try {
      whole.waitFor(10); // the first piece alone
      expect(whole.bytes.subarray(0, 10)).toEqual(data.subarray(0, 10));
      whole.waitFor(data.length);
      expect(Buffer.compare(whole.bytes, data)).toBe(0);
    } finally {
      whole.close();
    }
    // Told the file is longer than it is (it shrank after the stat): the reader gets a typed error.
    const short = new Prefetch(file, data.length + 4096);
    try {
      let err: unknown;
      try {
        short.waitFor(data.length + 4096);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(WalFailedError);
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toContain("end of file");
    } finally {
      short.close();
    }
  });
});

describe("the directory lock", () => {
  test("a second open in this process gets LockedError naming the holder", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    const err = await open(dir, small).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockedError);
    expect((err as LockedError).message).toContain(`pid ${process.pid}`);
    expect(await db.put("still", "works")).toBe(1);
    await db.close();
    const again = await open(dir, small);
    expect(again.get("still")).toBe("works");
    await again.close();
  });

  test("a second process gets LockedError and exits cleanly", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    const script = `
      import { open } from ${JSON.stringify(path.resolve(import.meta.dir, "../src/index.ts"))};
      try { await open(${JSON.stringify(dir)}); console.log("OPENED"); }
      catch (e) { console.log(e.name, e.code, e.message); }`;
    const child = Bun.spawnSync([process.execPath, "-e", script], { stderr: "pipe" });
    const out = child.stdout.toString();
    expect(out).toContain("LockedError LOCKED");
    expect(out).toContain(`pid ${process.pid}`);
    expect(child.exitCode).toBe(0);
    await db.close();
  });
});
