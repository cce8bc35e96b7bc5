// db.atomic: batches decided at their place in the write order (harmonydb/kv's atomic writes).

import { expect, test } from "bun:test";
import { InvalidKeyError, open, type Newest } from "../src/index.ts";
import { tmpDir } from "./helpers/index.ts";

const quiet = { log: () => {} };

/** An increment of `key` (a number, absent as 0), decided against the newest state. */
function increment(key: string) {
  return (_rev: number, read: (k: string) => Newest | undefined) => [{ type: "put" as const, key, value: ((read(key)?.value as number) ?? 0) + 1 }];
}

test("concurrent increments decided in the write order lose none, and share group commits", async () => {
  const dir = tmpDir();
  const db = await open(dir, quiet);
  try {
    const fsyncs = db.stats().wal.fsyncs;
    const revs = await Promise.all(Array.from({ length: 300 }, () => db.atomic(increment("n"))));
    expect(db.get("n")).toBe(300);
    expect(new Set(revs).size).toBe(300);
    // Each one read the one before it while that was still in flight: they did not wait for each other's fdatasync.
    expect(db.stats().wal.fsyncs - fsyncs).toBeLessThan(150);
  } finally {
    await db.close();
  }
  const again = await open(dir, quiet);
  try {
    expect(again.get("n")).toBe(300);
  } finally {
    await again.close();
  }
});

test("a decider reads writes in flight of every kind: a put, a batch, a delete", async () => {
  const db = await open(tmpDir(), quiet);
  try {
    const seen: (Newest | undefined)[] = [];
    const p1 = db.put("a", { x: 1 });
    const p2 = db.batch([
      { type: "put", key: "b", value: new Uint8Array([1, 2]) },
      { type: "put", key: "b", value: "second" },
      { type: "put", key: "c", value: 7 },
    ]);
    const p3 = db.delete("c");
    const p4 = db.atomic((rev, read) => {
      seen.push(read("a"), read("b"), read("c"), read("none"), { value: null, rev });
      return [];
    });
    const [r1, r2, r3, r4] = await Promise.all([p1, p2, p3, p4]);
    expect(seen).toEqual([{ value: { x: 1 }, rev: r1 }, { value: "second", rev: r2 }, undefined, undefined, { value: null, rev: r3.rev + 1 }]);
    // No ops: nothing written, and it resolves with the newest revision, once the writes before it are durable.
    expect(r4).toBe(r3.rev);
    expect(db.rev).toBe(r3.rev);
    // After they are durable, from the index.
    await db.atomic((_rev, read) => (seen.push(read("a")!), []));
    expect(seen.at(-1)).toEqual({ value: { x: 1 }, rev: r1 });
  } finally {
    await db.close();
  }
});

test("a decider that throws refuses its write alone, and takes no revision", async () => {
  const db = await open(tmpDir(), quiet);
  try {
    const before = await db.put("k", 1);
    const refused = db.atomic(() => {
      throw new RangeError("no, thanks");
    });
    const next = db.put("k", 2);
    await expect(refused).rejects.toThrow("no, thanks");
    expect(await next).toBe(before + 1);
    // A condition that fails refuses it too, with ConflictError.
    await expect(db.atomic(() => [{ type: "put", key: "k", value: 3, ifRev: before }])).rejects.toMatchObject({ code: "CONFLICT" });
    expect(db.get("k")).toBe(2);
  } finally {
    await db.close();
  }
});

test("a decided write knows its revision before it is framed: a key that names it", async () => {
  const db = await open(tmpDir(), quiet);
  try {
    const writes = Array.from({ length: 20 }, (_, i) => db.atomic((rev) => [{ type: "put", key: `log/${String(rev).padStart(8, "0")}`, value: i }]));
    const revs = await Promise.all(writes);
    for (const [i, rev] of revs.entries()) expect(db.get(`log/${String(rev).padStart(8, "0")}`)).toBe(i);
  } finally {
    await db.close();
  }
});

test("a decided write that waits for room in the ring decides again, against what came before it", async () => {
  // A small ring (4 MiB): 60 writes of 90 KiB, made in one turn, fill it, and the rest queue.
  const db = await open(tmpDir(), { ...quiet, ringBytes: 4 * 1024 * 1024, limits: { valueBytesMax: 100 * 1024 } });
  try {
    let calls = 0;
    const big = new Uint8Array(90 * 1024);
    const writes = Array.from({ length: 60 }, (_, i) =>
      db.atomic((_rev, read) => {
        calls++;
        const n = ((read("n")?.value as number) ?? 0) + 1;
        return [
          { type: "put", key: "n", value: n },
          { type: "put", key: `big${i}`, value: big },
        ];
      }),
    );
    await Promise.all(writes);
    expect(db.get("n")).toBe(60);
    expect(calls).toBeGreaterThan(60); // the one that found the ring full decided again
    expect(db.stats().queuedWrites).toBe(0);
  } finally {
    await db.close();
  }
});

test("keys beginning with U+0000 are reserved: put, delete and batch refuse them, atomic writes them", async () => {
  const dir = tmpDir();
  const db = await open(dir, quiet);
  const kvKey = "\u0000kv\u0000" + "\u00ff".repeat(2048); // a 2,048-byte Deno key: 4,099 bytes of UTF-8
  try {
    await expect(db.put("\u0000x", 1)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(db.delete("\u0000x")).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(db.batch([{ type: "put", key: "\u0000x", value: 1 }])).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(db.put("k" + kvKey.slice(4), 1)).rejects.toMatchObject({ code: "KEY_TOO_LARGE" });
    const rev = await db.atomic(() => [{ type: "put", key: kvKey, value: new Uint8Array([9]) }]);
    expect(db.getEntry(kvKey)).toMatchObject({ value: new Uint8Array([9]), rev });
    await db.snapshot();
    await db.atomic(() => [{ type: "put", key: "\u0000kv\u0000after", value: 1 }]);
  } finally {
    await db.close();
  }
  const again = await open(dir, quiet);
  try {
    expect(again.get(kvKey)).toEqual(new Uint8Array([9]));
    expect(again.get("\u0000kv\u0000after")).toBe(1);
  } finally {
    await again.close();
  }
});
