import { expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { open } from "../src/index.ts";
import { valueDecoder, valueEncoder } from "../src/codec/cbor.ts";
import { encoded } from "../src/format/decoder.ts";
import { encodeSegmentStart, utf8Bytes } from "../src/format/encoder.ts";
import { FORMAT_VERSION, FRAME_HEADER_BYTES, MAGIC_BYTES, SNAP_MAGIC, segmentName, snapshotName } from "../src/format/constants.ts";
import { emptyLocated, parseRecord, recordBytes, writeRecord } from "../src/format/record.ts";
import { Arriving, ChunkEncoder, checkSnapshotFile, NotArrived, SnapshotReader, verifySnapshot, visitChunk } from "../src/snapshot/file.ts";
import { nodeIO } from "../src/io/file-io.ts";
import {
  GOLDEN_SNAP_CHUNK_BYTES,
  GOLDEN_SNAP_DB_ID,
  GOLDEN_SNAP_ENTRIES,
  GOLDEN_SNAP_REV,
  goldenChunks,
  goldenSnapshot,
  type GoldenEntry,
} from "./fixtures/golden-snap.ts";
import { tmpDir } from "./helpers/index.ts";

const golden = new Uint8Array(fs.readFileSync(path.join(import.meta.dir, "fixtures/golden-v1.snap")));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Every entry of a verified snapshot, its value decoded, in file order. */
function readEntries(bytes: Uint8Array): GoldenEntry[] {
  const s = verifySnapshot("golden-v1.snap", bytes);
  const e = encoded(bytes);
  const out: GoldenEntry[] = [];
  let last: string | null = null;
  for (let i = 0; i < s.chunks.length; i++) {
    last = visitChunk(s, e, i, last, (key, e, start, end, rev, createRev, version) => {
      out.push({ key, value: valueDecoder.decode(e.bytes.slice(start, end)), rev, createRev, version });
    });
  }
  return out;
}

test("the snapshot encoder still produces the golden snapshot byte for byte", () => {
  expect(hex(goldenSnapshot())).toBe(hex(golden));
});

test("arena records, narrow or with wide counts, encode to the golden snapshot's entries", () => {
  for (const wide of [false, true]) {
    const enc = new ChunkEncoder(GOLDEN_SNAP_CHUNK_BYTES);
    const chunks: Uint8Array[] = [];
    const keep = (c: Uint8Array | null) => c !== null && chunks.push(c.slice());
    for (const g of GOLDEN_SNAP_ENTRIES) {
      const value = valueEncoder.encode(g.value);
      const keyBytes = utf8Bytes(g.key);
      const b = new Uint8Array(recordBytes(keyBytes, value.length, g.rev, g.createRev, g.version, wide));
      const end = writeRecord(b, 0, g.key, keyBytes, value, 0, value.length, g.rev, g.createRev, g.version, wide);
      expect(end).toBe(b.length);
      keep(enc.addRecord(parseRecord(b, 0, emptyLocated())));
    }
    keep(enc.flush());
    // Chunk boundaries may differ (add() sizes an entry before it knows its counts); entries may not.
    const entriesOf = (cs: Uint8Array[]) => cs.map((c) => hex(c.subarray(5))).join("");
    expect(entriesOf(chunks)).toBe(entriesOf(goldenChunks()));
  }
});

test("records back to back in one block are copied as runs: the same entries, every chunk's count right", () => {
  // As the arena holds them: mostly back to back, a dead record between some (an overwrite's), some
  // with wide counts (replay's, which break a run); and as restore sees a snapshot's window (a plain
  // Uint8Array, addRaw). Chunks from smaller than a record to larger than all of them.
  const entries = Array.from({ length: 300 }, (_, i) => ({
    key: `k${String(i).padStart(3, "0")}`,
    value: valueEncoder.encode(i % 5 === 0 ? new Uint8Array(i % 97) : "v".repeat(i % 61)),
    rev: 1000 + i,
    createRev: 1 + i,
    version: 1 + (i % 4),
  }));
  const block = new Uint8Array(new SharedArrayBuffer(256 * 1024));
  const text = Buffer.from(block.buffer);
  const at: [number, number][] = [];
  let end = 0;
  entries.forEach((e, i) => {
    if (i % 7 === 3) end = writeRecord(block, end, "dead", 4, e.value, 0, e.value.length, 1, 1, 1, false);
    const start = end;
    end = writeRecord(block, end, e.key, utf8Bytes(e.key), e.value, 0, e.value.length, e.rev, e.createRev, e.version, i % 11 === 5);
    at.push([start, end]);
  });
  const reference = new ChunkEncoder(1 << 20);
  for (const e of entries) reference.add(e.key, e);
  const entriesOf = (cs: Uint8Array[]) => cs.map((c) => hex(c.subarray(5))).join("");
  const counted = (cs: Uint8Array[]) =>
    cs.map((c) => {
      let n = 0;
      for (let p = 5; p < c.length; n++) p = parseRecord(c, p, emptyLocated()).end;
      return c[0] === 0x9a && new DataView(c.buffer, c.byteOffset).getUint32(1) === n ? n : -1;
    });
  const want = entriesOf([reference.flush()!]);
  for (const via of ["addRecord", "addRaw"] as const) {
    for (const chunkBytes of [48, 200, 1000, 65536]) {
      const enc = new ChunkEncoder(chunkBytes);
      const chunks: Uint8Array[] = [];
      const keep = (c: Uint8Array | null) => c !== null && chunks.push(c.slice());
      entries.forEach((_, i) => {
        const r = parseRecord(block, at[i]![0], emptyLocated());
        r.text = text;
        // (raw bytes must have the shortest counts: a wide record goes through addRecord)
        keep(via === "addRaw" && i % 11 !== 5 ? enc.addRaw(new Uint8Array(block.buffer), at[i]![0], at[i]![1]) : enc.addRecord(r));
      });
      keep(enc.flush());
      expect(entriesOf(chunks)).toBe(want);
      const counts = counted(chunks);
      expect(counts.every((n) => n > 0)).toBe(true);
      expect(counts.reduce((x, y) => x + y, 0)).toBe(entries.length);
      if (chunkBytes > 48) expect(chunks.every((c) => c.length <= chunkBytes)).toBe(true);
    }
  }
});

test("the golden snapshot reads back as the entries it was made of", () => {
  expect([...golden.subarray(0, MAGIC_BYTES)]).toEqual([...SNAP_MAGIC]);
  const s = verifySnapshot("golden-v1.snap", golden);
  expect(s.header).toEqual({ v: FORMAT_VERSION, db: GOLDEN_SNAP_DB_ID, rev: GOLDEN_SNAP_REV, keys: GOLDEN_SNAP_ENTRIES.length });
  expect(s.chunks.length).toBeGreaterThanOrEqual(2);
  for (const c of s.chunks) expect((c.start - FRAME_HEADER_BYTES) % 8).toBe(0);
  expect(readEntries(golden)).toEqual(GOLDEN_SNAP_ENTRIES);
});

test("the golden snapshot checks out when read through a file a small window at a time", () => {
  const file = path.join(tmpDir(), snapshotName(GOLDEN_SNAP_REV));
  fs.writeFileSync(file, golden);
  expect(checkSnapshotFile(nodeIO, file, 32)).toEqual(verifySnapshot(file, golden).chunks);
});

test("a database opens from the golden snapshot with the entries it holds", async () => {
  const dir = tmpDir();
  fs.mkdirSync(path.join(dir, "snap"), { recursive: true });
  fs.mkdirSync(path.join(dir, "wal"), { recursive: true });
  fs.writeFileSync(path.join(dir, "snap", snapshotName(GOLDEN_SNAP_REV)), golden);
  const firstRev = GOLDEN_SNAP_REV + 1;
  const start = encodeSegmentStart({ v: FORMAT_VERSION, db: GOLDEN_SNAP_DB_ID, seq: 1, firstRev, prevCrc: 0 });
  fs.writeFileSync(path.join(dir, "wal", segmentName(1, firstRev)), start);
  const db = await open(dir);
  try {
    expect(db.rev).toBe(GOLDEN_SNAP_REV);
    expect(db.get("gone")).toBeUndefined();
    for (const g of GOLDEN_SNAP_ENTRIES) {
      expect(db.getEntry(g.key)).toEqual({ value: g.value, rev: g.rev, createRev: g.createRev, version: g.version });
    }
  } finally {
    await db.close();
  }
});

test("a snapshot read as it arrives, through a small window: the same chunks, a frame larger than the window, a failure that stops the producer", async () => {
  const dir = tmpDir();
  const db = await open(dir, { snapshotEveryBytes: 0 });
  await db.batch(Array.from({ length: 3000 }, (_, i) => ({ type: "put" as const, key: `k${String(i).padStart(5, "0")}`, value: `v${i}`.repeat(20) })));
  await db.put("k01500x", new Uint8Array(300_000)); // one record larger than the window
  const rev = (await db.snapshot()).rev;
  await db.close();
  const bytes = new Uint8Array(fs.readFileSync(path.join(dir, "snap", snapshotName(rev))));
  const whole = verifySnapshot("whole", bytes);
  const payloads = whole.chunks.map((c) => hex(bytes.subarray(c.start, c.start + c.len)));

  const from = new Arriving(bytes.length, 64 * 1024);
  const producer = (async () => {
    for (let p = 0; p < bytes.length; p += 7_000) await from.add(bytes.subarray(p, Math.min(bytes.length, p + 7_000)));
    from.finish();
  })();
  const whenIn = async <T>(read: () => T): Promise<T> => {
    for (;;) {
      try {
        return read();
      } catch (err) {
        if (!(err instanceof NotArrived)) throw err;
        await from.wait(err.end);
      }
    }
  };
  const reader = await whenIn(() => new SnapshotReader("arriving", from));
  const got: string[] = [];
  for (let c = await whenIn(() => reader.next()); c !== null; c = await whenIn(() => reader.next())) {
    const w = from.window(c.start, c.len);
    got.push(hex(w.bytes.subarray(c.start - w.base, c.start - w.base + c.len)));
    from.release(c.start + c.len);
  }
  await producer;
  expect(got).toEqual(payloads);
  expect(got.length).toBeGreaterThan(2);

  // A reader that stops: fail() ends a producer waiting for room.
  const stalled = new Arriving(bytes.length, 64 * 1024);
  const adding = stalled.add(bytes);
  stalled.fail(new Error("stopped"));
  await expect(adding).rejects.toThrow("stopped");
  await expect(stalled.wait(bytes.length)).rejects.toThrow("stopped");
});
