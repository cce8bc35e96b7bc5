import { expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { open } from "../src/index.ts";
import { decodeHeader, decodeOps, payloadOf, readFrame } from "../src/format/decoder.ts";
import { FRAME_HEADER_BYTES, HEADER_FRAME_OFFSET, MAGIC, TYPE_ENTRY, TYPE_HEADER, segmentName } from "../src/format/constants.ts";
import { GOLDEN_DB_ID, goldenSegment } from "./fixtures/golden.ts";
import { tmpDir } from "./helpers/index.ts";

const golden = new Uint8Array(fs.readFileSync(path.join(import.meta.dir, "fixtures/golden-v1.wal")));

test("the encoder still produces the golden segment byte for byte", () => {
  expect(Buffer.from(goldenSegment()).toString("hex")).toBe(Buffer.from(golden).toString("hex"));
});

test("the golden segment reads as the spec describes it", () => {
  expect([...golden.subarray(0, 8)]).toEqual([...MAGIC]);
  const h = readFrame(golden, HEADER_FRAME_OFFSET);
  if (h.kind !== "frame") throw new Error(`header verdict ${h.kind}`);
  expect(h.type).toBe(TYPE_HEADER);
  expect(h.rev).toBe(0);
  expect(decodeHeader(payloadOf(golden, h))).toEqual({ v: 1, db: GOLDEN_DB_ID, seq: 1, firstRev: 1, prevCrc: 0 });
  const revs: number[] = [];
  let off = h.next;
  for (;;) {
    const v = readFrame(golden, off);
    if (v.kind !== "frame") break;
    expect(v.type).toBe(TYPE_ENTRY);
    expect(off % 8).toBe(0);
    expect(decodeOps(payloadOf(golden, v)).length).toBeGreaterThan(0);
    revs.push(v.rev);
    off = v.next;
  }
  expect(revs).toEqual([1, 2, 3, 4]);
  expect(off).toBe(golden.length);
  // Field positions from docs/wal-format.md: len at +4, rev at +8 (56 bits), type at +15.
  const view = new DataView(golden.buffer);
  expect(view.getUint32(HEADER_FRAME_OFFSET + 4, true)).toBe(h.len);
  expect(golden[HEADER_FRAME_OFFSET + 15]).toBe(TYPE_HEADER);
  expect(FRAME_HEADER_BYTES).toBe(16);
});

test("a database opens from the golden segment with the state it describes", async () => {
  const dir = tmpDir();
  fs.mkdirSync(path.join(dir, "wal"), { recursive: true });
  fs.writeFileSync(path.join(dir, "wal", segmentName(1, 1)), golden);
  const db = await open(dir);
  try {
    expect(db.rev).toBe(4);
    expect(db.get("a")).toBeUndefined();
    expect(db.get("b")).toBe("two");
    expect(db.get("c")).toEqual(new Uint8Array([1, 2, 3]));
    expect(db.get("d")).toEqual({ n: [1, 2], when: new Date(0) });
    expect(await db.put("e", true)).toBe(5);
  } finally {
    await db.close();
  }
  const reopened = await open(dir);
  expect(reopened.get("e")).toBe(true);
  await reopened.close();
});

test("a flipped bit anywhere in a frame fails its checksum", () => {
  const off = readFrame(golden, HEADER_FRAME_OFFSET);
  if (off.kind !== "frame") throw new Error("no header");
  const first = off.next;
  const end = first + FRAME_HEADER_BYTES + 6;
  for (let i = first; i < end; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = golden.slice();
      copy[i] = copy[i]! ^ (1 << bit);
      expect(readFrame(copy, first).kind).not.toBe("frame");
    }
  }
});
