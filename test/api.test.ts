import { describe, expect, test } from "bun:test";
import * as path from "node:path";
import {
  ClosedError,
  ConflictError,
  InvalidArgumentError,
  InvalidKeyError,
  InvalidValueError,
  KeyTooLargeError,
  ValueTooLargeError,
  open,
  type Db,
} from "../src/index.ts";
import type { KeyIndex } from "../src/store/key-index.ts";
import { tmpDir } from "./helpers/index.ts";

async function withDb(fn: (db: Db, dir: string) => Promise<void>, opts = {}): Promise<void> {
  const dir = tmpDir();
  const db = await open(dir, { segmentBytes: 256 * 1024, ...opts });
  try {
    await fn(db, dir);
  } finally {
    await db.close();
  }
}

describe("reads and writes", () => {
  test("put resolves with contiguous revisions and the value is visible when it resolves", () =>
    withDb(async (db) => {
      expect(db.rev).toBe(0);
      const p = db.put("a", 1);
      expect(db.get("a")).toBeUndefined(); // not durable yet, so not visible
      expect(await p).toBe(1);
      expect(db.get("a")).toBe(1);
      expect(await db.put("b", "x")).toBe(2);
      expect(db.rev).toBe(2);
    }));

  test("every value type cbor-x encodes round-trips", () =>
    withDb(async (db) => {
      const values: unknown[] = [
        0, -1.5, 2 ** 53 - 1, "", "héllo ✓", true, false, null, 12345678901234567890n,
        new Uint8Array([0, 255, 7]), new Date(1700000000000), { a: { b: [1, "2", null] } },
        new Map<unknown, unknown>([["k", 1], [2, "two"]]), [1, [2, [3]]], new Float64Array([1.5, -2]),
      ];
      for (const [i, v] of values.entries()) await db.put(`k${i}`, v);
      for (const [i, v] of values.entries()) expect(db.get(`k${i}`)).toEqual(v);
    }));

  test("a returned value is a fresh copy: mutating it changes nothing", () =>
    withDb(async (db) => {
      await db.put("obj", { list: [1, 2] });
      await db.put("bytes", new Uint8Array([1, 2, 3]));
      const o = db.get("obj") as { list: number[] };
      o.list.push(3);
      const b = db.get("bytes") as Uint8Array;
      b[0] = 99;
      expect(db.get("obj")).toEqual({ list: [1, 2] });
      expect(db.get("bytes")).toEqual(new Uint8Array([1, 2, 3]));
      const input = { n: 1 };
      await db.put("input", input);
      input.n = 2;
      expect(db.get("input")).toEqual({ n: 1 });
    }));

  test("getEntry tracks rev, createRev and version; delete resets them", () =>
    withDb(async (db) => {
      await db.put("k", "v1");
      await db.put("other", 0);
      await db.put("k", "v2");
      expect(db.getEntry("k")).toEqual({ value: "v2", rev: 3, createRev: 1, version: 2 });
      expect(await db.delete("k")).toEqual({ rev: 4, deleted: true });
      expect(db.has("k")).toBe(false);
      expect(db.getEntry("k")).toBeUndefined();
      await db.put("k", "v3");
      expect(db.getEntry("k")).toEqual({ value: "v3", rev: 5, createRev: 5, version: 1 });
    }));

  test("deleting a missing key writes nothing and says so", () =>
    withDb(async (db) => {
      await db.put("a", 1);
      const before = db.stats().wal.records;
      expect(await db.delete("nope")).toEqual({ rev: 1, deleted: false });
      expect(db.stats().wal.records).toBe(before);
    }));

  test("range honours prefix, bounds, reverse and limit in UTF-16 order", () =>
    withDb(async (db) => {
      const keys = ["a", "b/1", "b/2", "b/3", "b0", "c", "é", "\u{1F600}", "\uffff"];
      await db.batch(keys.map((key, i) => ({ type: "put" as const, key, value: i })));
      const ks = (o: Parameters<Db["range"]>[0]) => [...db.range(o)].map((e) => e.key);
      expect(ks({})).toEqual([...keys].sort());
      expect(ks({ prefix: "b/" })).toEqual(["b/1", "b/2", "b/3"]);
      expect(ks({ prefix: "b/", reverse: true })).toEqual(["b/3", "b/2", "b/1"]);
      expect(ks({ gt: "b/1", lt: "b0" })).toEqual(["b/2", "b/3"]);
      expect(ks({ gte: "b/1", lte: "b/3", reverse: true, limit: 2 })).toEqual(["b/3", "b/2"]);
      expect(ks({ prefix: "b", gt: "b/2" })).toEqual(["b/3", "b0"]);
      expect(ks({ limit: 0 })).toEqual([]);
      // UTF-16 code units: the emoji's surrogate (0xD83D) sorts before U+FFFF but after é.
      expect(ks({ gt: "c" })).toEqual(["é", "\u{1F600}", "\uffff"]);
      const first = [...db.range({ prefix: "b/", limit: 1 })][0];
      expect(first).toEqual({ key: "b/1", value: 1, rev: 1 });
    }));

  test("a range iterates the index as it was when it started", () =>
    withDb(async (db) => {
      await db.batch([1, 2, 3].map((i) => ({ type: "put" as const, key: `k${i}`, value: i })));
      const it = db.range({ prefix: "k" })[Symbol.iterator]();
      expect(it.next().value?.key).toBe("k1");
      await db.delete("k2");
      await db.put("k4", 4); // a new key takes the deleted key's slot (src/store/ref-table.ts)
      await db.put("k3", 33);
      expect([...{ [Symbol.iterator]: () => it }].map((e) => [e.key, e.value])).toEqual([
        ["k2", 2],
        ["k3", 3],
      ]);
      expect([...db.range({ prefix: "k" })].map((e) => [e.key, e.value])).toEqual([
        ["k1", 1],
        ["k3", 33],
        ["k4", 4],
      ]);
    }));
});

describe("batches and conditions", () => {
  test("a batch is one revision and applies all its ops", () =>
    withDb(async (db) => {
      await db.put("gone", 1);
      const rev = await db.batch([
        { type: "put", key: "x", value: 1 },
        { type: "put", key: "y", value: 2 },
        { type: "delete", key: "gone" },
      ]);
      expect(rev).toBe(2);
      expect(db.getEntry("x")?.rev).toBe(2);
      expect(db.getEntry("y")?.rev).toBe(2);
      expect(db.has("gone")).toBe(false);
      expect(db.stats().wal.records).toBe(2);
    }));

  test("ifRev 0 means the key must not exist; ifRev n means its revision must be n", () =>
    withDb(async (db) => {
      expect(await db.put("k", "a", { ifRev: 0 })).toBe(1);
      await expect(db.put("k", "b", { ifRev: 0 })).rejects.toBeInstanceOf(ConflictError);
      await expect(db.put("k", "b", { ifRev: 7 })).rejects.toMatchObject({ code: "CONFLICT", key: "k", actualRev: 1 });
      expect(await db.put("k", "b", { ifRev: 1 })).toBe(2);
      await expect(db.delete("k", { ifRev: 1 })).rejects.toBeInstanceOf(ConflictError);
      expect(await db.delete("k", { ifRev: 2 })).toEqual({ rev: 3, deleted: true });
      expect(db.stats().wal.records).toBe(3);
    }));

  test("conditions see writes that are framed but not yet durable", () =>
    withDb(async (db) => {
      const first = db.put("k", 1, { ifRev: 0 });
      // The first is pending: k exists in the newest state.
      const second = db.put("k", 2, { ifRev: 0 }).catch((e: unknown) => e);
      const third = db.put("k", 3, { ifRev: 1 });
      expect(await first).toBe(1);
      expect(await second).toBeInstanceOf(ConflictError);
      expect(await third).toBe(2);
      expect(db.get("k")).toBe(3);
    }));

  test("a batch with a failed condition writes none of its ops", () =>
    withDb(async (db) => {
      await db.put("a", 1);
      await expect(
        db.batch([
          { type: "put", key: "b", value: 2 },
          { type: "put", key: "a", value: 3, ifRev: 0 },
        ]),
      ).rejects.toMatchObject({ code: "CONFLICT", key: "a" });
      expect(db.has("b")).toBe(false);
      expect(db.get("a")).toBe(1);
      expect(db.rev).toBe(1);
    }));
});

describe("bad input gets a typed error and the database keeps working", () => {
  test("keys: non-string, empty, too long", () =>
    withDb(async (db) => {
      await expect(db.put(42 as unknown as string, 1)).rejects.toMatchObject({ code: "INVALID_KEY" });
      await expect(db.put("", 1)).rejects.toBeInstanceOf(InvalidKeyError);
      expect(() => db.get(undefined as unknown as string)).toThrow(InvalidKeyError);
      await expect(db.put("k".repeat(4097), 1)).rejects.toBeInstanceOf(KeyTooLargeError);
      await expect(db.put("é".repeat(2049), 1)).rejects.toMatchObject({ code: "KEY_TOO_LARGE", bytes: 4098 });
      expect(await db.put("k".repeat(4096), 1)).toBe(1);
      expect(db.stats().wal.records).toBe(1);
    }));

  test("lone surrogates: refused in keys (they would merge after a restart) and in string values", () =>
    withDb(async (db) => {
      await expect(db.put("\uD800", 1)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(db.put("a\uDC00b", 1)).rejects.toMatchObject({ code: "INVALID_KEY" });
      await expect(db.put("k", "x\uD800y")).rejects.toBeInstanceOf(InvalidValueError);
      expect(await db.put("\u{1F600}", "\u{1F600}")).toBe(1); // a surrogate pair is fine
      expect(db.get("\u{1F600}")).toBe("\u{1F600}");
    }));

  test("a small value stored after a huge one does not share the huge one's memory", () =>
    withDb(async (db) => {
      await db.put("huge", { blob: new Uint8Array(8 * 1024 * 1024) });
      await db.put("small", { i: 1 });
      // The huge record has a block of its own; the small one lives in an ordinary 1 MiB block.
      const index = (db as unknown as { index: KeyIndex }).index;
      expect(index.handle("huge")!.b.length).toBeGreaterThan(8 * 1024 * 1024);
      expect(index.handle("small")!.b.length).toBeLessThanOrEqual(1024 * 1024);
      expect(db.get("small")).toEqual({ i: 1 });
    }));

  test("values: unencodable, undefined, too large", () =>
    withDb(async (db) => {
      await expect(db.put("f", () => 1)).rejects.toBeInstanceOf(InvalidValueError);
      await expect(db.put("u", undefined)).rejects.toMatchObject({ code: "INVALID_VALUE" });
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await expect(db.put("c", cyclic)).rejects.toBeInstanceOf(InvalidValueError);
      await expect(db.put("big", new Uint8Array(16 * 1024 * 1024 + 1))).rejects.toBeInstanceOf(ValueTooLargeError);
      await expect(db.batch([{ type: "put", key: "ok", value: 1 }, { type: "put", key: "f", value: Symbol("x") }])).rejects.toMatchObject({
        code: "INVALID_VALUE",
      });
      expect(db.stats().wal.records).toBe(0);
      expect(await db.put("fine", "yes")).toBe(1);
    }));

  test("a value at the limit is written and read back", () =>
    withDb(async (db) => {
      const big = new Uint8Array(16 * 1024 * 1024 - 16).fill(7);
      expect(await db.put("big", big)).toBe(1);
      expect((db.get("big") as Uint8Array).length).toBe(big.length);
    }));

  test("batches: empty, not an array, unknown op type, bad ifRev", () =>
    withDb(async (db) => {
      await expect(db.batch([])).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(db.batch("x" as unknown as [])).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(db.batch([{ type: "upsert", key: "a" } as never])).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      await expect(db.put("a", 1, { ifRev: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(db.rev).toBe(0);
    }));

  test("calls after close get ClosedError; close is idempotent", async () => {
    const db = await open(tmpDir());
    await db.put("a", 1);
    await Promise.all([db.close(), db.close()]);
    await expect(db.put("a", 2)).rejects.toBeInstanceOf(ClosedError);
    await expect(db.delete("a")).rejects.toMatchObject({ code: "CLOSED" });
    await expect(db.batch([{ type: "delete", key: "a" }])).rejects.toBeInstanceOf(ClosedError);
    await db.close();
  });

  test("bad options are refused before anything is opened", async () => {
    const dir = tmpDir();
    await expect(open(dir, { sync: "sometimes" as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(open(dir, { segmentBytes: 100 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(open(dir, { ringBytes: 3000 })).rejects.toBeInstanceOf(InvalidArgumentError);
    const db = await open(dir);
    await db.close();
  });
});

describe("the value arena", () => {
  test("overwrites are compacted away, and a range started before keeps seeing its own moment", () =>
    withDb(
      async (db) => {
        const index = (db as unknown as { index: KeyIndex }).index;
        const value = (k: number, round: number) => new Uint8Array(1000).fill((k + round) & 0xff);
        const keys = 2000;
        for (let k = 0; k < keys; k += 100) await db.batch(Array.from({ length: 100 }, (_, j) => ({ type: "put" as const, key: `k${k + j}`, value: value(k + j, 0) })));
        // A range over round 0, read only after everything below (and its compaction) happened.
        const before = db.range()[Symbol.iterator]();
        const first = before.next();
        for (let round = 1; round <= 20; round++) {
          for (let k = 0; k < keys; k += 100) {
            await db.batch(Array.from({ length: 100 }, (_, j) => ({ type: "put" as const, key: `k${k + j}`, value: value(k + j, round) })));
          }
        }
        const m = index.memory();
        // ~40 MB of records written over ~2 MB of live data: compaction kept the arena near the live size.
        expect(m.liveBytes).toBeGreaterThan(keys * 1000);
        expect(m.arenaBytes).toBeLessThan(3 * m.liveBytes + 10 * 1024 * 1024);
        index.verify(db.rev);
        for (let k = 0; k < keys; k += 97) expect(db.get(`k${k}`)).toEqual(value(k, 20));
        // The old range still reads round 0, though its blocks were compacted and dropped since.
        const seen = [first.value!, ...{ [Symbol.iterator]: () => before }];
        expect(seen.length).toBe(keys);
        for (const e of seen) expect(e.value).toEqual(value(Number(e.key.slice(1)), 0));
      },
      { snapshotEveryBytes: 0 },
    ));
});

describe("closing", () => {
  test("once close() resolves, nothing of the store's is reachable but through the caller", async () => {
    // In a process of its own (the fixture says why); it reports what a full collection found.
    const script = path.join(import.meta.dir, "fixtures", "closed-store-reachable.ts");
    const p = Bun.spawn([process.execPath, script, tmpDir()], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    expect(JSON.parse(out)).toEqual({ gone: true });
  });
});
