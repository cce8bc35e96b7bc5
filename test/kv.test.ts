// harmonydb/kv's openKv: Deno KV's API and semantics over the engine (docs/deno-kv.md). Texts and
// cursors marked "Deno 2.9.6" were read from the real Deno's own KV (the npm `deno`, :memory:).

import { afterEach, describe, expect, test } from "bun:test";
import { open } from "../src/index.ts";
import { Kv, KvU64, openKv, type KvEntryMaybe, type KvKey } from "../src/kv/index.ts";
import { engineKey, encodeKey } from "../src/kv/key.ts";
import { tmpDir } from "./helpers/index.ts";

const quiet = { log: () => {} };
const opened: Kv[] = [];
async function kvAt(dir = tmpDir()): Promise<Kv> {
  const kv = await openKv(dir, quiet);
  opened.push(kv);
  return kv;
}
afterEach(async () => {
  for (const kv of opened.splice(0)) await kv.close();
});

async function keysOf(it: AsyncIterable<{ key: KvKey }>): Promise<KvKey[]> {
  const out: KvKey[] = [];
  for await (const e of it) out.push(e.key);
  return out;
}

test("set, get, getMany and delete round-trip every kind of value with versionstamps that grow", async () => {
  const kv = await kvAt();
  const values: unknown[] = [1, -0.5, "text", { a: [1, "b", null] }, new Map([[1, 2]]), new Set(["x"]), new Date(5), 10n ** 30n, new Uint8Array([0, 255]), new KvU64(42n), [undefined, true], /re/g, null];
  let prev = "";
  for (const [i, value] of values.entries()) {
    const r = await kv.set(["v", i], value);
    expect(r.ok).toBe(true);
    expect(r.versionstamp).toMatch(/^[0-9a-f]{16}0000$/);
    expect(r.versionstamp > prev).toBe(true);
    prev = r.versionstamp;
    const got = await kv.get(["v", i]);
    expect(got).toEqual({ key: ["v", i], value, versionstamp: r.versionstamp });
  }
  const many = await kv.getMany([["v", 0], ["nope"], ["v", 9]]);
  expect(many.map((e) => e.value)).toEqual([1, null, new KvU64(42n)]);
  expect(many[1]).toEqual({ key: ["nope"], value: null, versionstamp: null });
  await kv.delete(["v", 0]);
  expect((await kv.get(["v", 0])).versionstamp).toBeNull();
  await kv.delete(["never", "there"]); // resolves, as Deno's does
});

test("list orders keys as Deno does across part types, and a prefix does not list itself", async () => {
  const kv = await kvAt();
  const keys: KvKey[] = [["k", new Uint8Array([1])], ["k", ""], ["k", "a"], ["k", "a", 1], ["k", -5n], ["k", 3n], ["k", -Infinity], ["k", -1.5], ["k", 0], ["k", 2], ["k", false], ["k", true]];
  for (const k of [...keys].reverse()) await kv.set(k, 1);
  await kv.set(["k"], "the prefix itself");
  await kv.set(["l"], "after");
  expect(await keysOf(kv.list({ prefix: ["k"] }))).toEqual(keys);
  expect(await keysOf(kv.list({ prefix: ["k"] }, { reverse: true, limit: 3 }))).toEqual(keys.slice(-3).reverse());
  expect(await keysOf(kv.list({ start: ["k", "a"], end: ["k", 0] }))).toEqual(keys.slice(2, 8));
  expect(await keysOf(kv.list({ prefix: ["k"], start: ["k", 3n] }))).toEqual(keys.slice(5));
  expect(await keysOf(kv.list({ prefix: ["k"], end: ["k", 3n] }))).toEqual(keys.slice(0, 5));
  expect(await keysOf(kv.list({ prefix: [] }))).toEqual([["k"], ...keys, ["l"]]);
});

test("cursors page through a listing in either direction, and are the strings Deno 2.9.6 writes", async () => {
  const kv = await kvAt();
  await kv.set(["a", "x"], 1);
  await kv.set(["a", "y"], 2);
  await kv.set(["b"], 3);
  await kv.set([new Uint8Array([0xfb, 0xef, 0xfe])], 4);
  const cursorAfterOne = async (sel: Parameters<Kv["list"]>[0], reverse = false) => {
    const it = kv.list(sel, { limit: 1, reverse });
    for await (const _ of it);
    return it.cursor;
  };
  expect(await cursorAfterOne({ prefix: ["a"] })).toBe("AngA");
  expect(await cursorAfterOne({ prefix: ["a"] }, true)).toBe("AnkA");
  expect(await cursorAfterOne({ start: ["a"], end: ["b"] })).toBe("YQACeAA=");
  expect(await cursorAfterOne({ prefix: [] })).toBe("Afvv_gA=");
  expect(await keysOf(kv.list({ prefix: ["a"] }, { cursor: "AngA" }))).toEqual([["a", "y"]]);
  // Pages of 7 over 100 keys, forward and backward, give every key once, in order.
  for (let i = 0; i < 100; i++) await kv.set(["p", i], i);
  for (const reverse of [false, true]) {
    const seen: KvKey[] = [];
    let cursor: string | undefined;
    for (;;) {
      const it = kv.list({ prefix: ["p"] }, { limit: 7, cursor, reverse, batchSize: 3 });
      seen.push(...(await keysOf(it)));
      if (it.cursor === "") break; // the listing ended inside this page ("" as a cursor would start over, as in Deno)
      cursor = it.cursor;
    }
    const want = Array.from({ length: 100 }, (_, i) => ["p", i]);
    expect(seen).toEqual(reverse ? want.reverse() : want);
  }
  const done = kv.list({ prefix: ["a"] });
  expect(() => done.cursor).toThrow("Cannot get cursor before first iteration");
  await keysOf(done);
  expect(done.cursor).toBe("");
});

test("atomic checks: all or nothing, an expired entry counts as absent, malformed versionstamps are refused", async () => {
  const kv = await kvAt();
  const a = await kv.set(["a"], 1);
  expect(await kv.atomic().check({ key: ["a"], versionstamp: a.versionstamp }).check({ key: ["b"], versionstamp: null }).set(["a"], 2).set(["b"], 2).commit()).toMatchObject({ ok: true });
  const failed = await kv.atomic().check({ key: ["a"], versionstamp: a.versionstamp }).set(["c"], 3).commit();
  expect(failed).toEqual({ ok: false });
  expect((await kv.get(["c"])).value).toBeNull();
  expect(await kv.atomic().check({ key: ["a"], versionstamp: "0000000000000001000A" }).commit()).toEqual({ ok: false });
  await expect(kv.atomic().check({ key: ["a"], versionstamp: "0000000000000001000" }).commit()).rejects.toThrow("Invalid check");
  await kv.set(["e"], "soon gone", { expireIn: 1 });
  await Bun.sleep(5);
  expect(await kv.atomic().check({ key: ["e"], versionstamp: null }).set(["e"], "new").commit()).toMatchObject({ ok: true });
  expect((await kv.get(["e"])).value).toBe("new");
  // A commit of checks alone writes nothing and answers the newest versionstamp.
  const only = await kv.atomic().check({ key: ["zz"], versionstamp: null }).commit();
  expect(only.ok && only.versionstamp).toBe((await kv.get(["e"])).versionstamp!);
});

test("sum, min and max on KvU64: wrapping, a missing key takes the operand, several in one commit, a non-U64 value refused", async () => {
  const kv = await kvAt();
  await kv.atomic().sum(["n"], 2n ** 64n - 1n).sum(["n"], 2n).commit();
  expect((await kv.get(["n"])).value).toEqual(new KvU64(1n));
  await kv.atomic().min(["lo"], 5n).max(["hi"], 5n).commit();
  await kv.atomic().min(["lo"], 3n).max(["hi"], 3n).min(["lo"], 4n).commit();
  expect([(await kv.get(["lo"])).value, (await kv.get(["hi"])).value]).toEqual([new KvU64(3n), new KvU64(5n)]);
  await kv.set(["s"], "x");
  await expect(kv.atomic().sum(["s"], 1n).commit()).rejects.toThrow("Failed to perform 'sum' mutation on a non-U64 value in the database");
  expect((await kv.get(["s"])).value).toBe("x");
  expect(() => kv.atomic().sum(["n"], -1n)).toThrow("Value must be a positive bigint: received -1");
});

test("300 concurrent sums on one key lose none", async () => {
  const kv = await kvAt();
  await Promise.all(Array.from({ length: 300 }, () => kv.atomic().sum(["hits"], 1n).commit()));
  expect((await kv.get(["hits"])).value).toEqual(new KvU64(300n));
});

test("a versionstamped key holds its commit's versionstamp, as Deno's does", async () => {
  const kv = await kvAt();
  const r = await kv.atomic().set(["v", kv.commitVersionstamp()], "first").commit();
  expect(r.ok).toBe(true);
  const [entry] = await Array.fromAsync(kv.list({ prefix: ["v"] }));
  expect(entry).toEqual({ key: ["v", r.ok ? r.versionstamp : ""], value: "first", versionstamp: r.ok ? r.versionstamp : "" });
});

test("expireIn: an expired entry is never returned; the sweeper deletes it as a new revision, which a watch sees", async () => {
  const dir = tmpDir();
  const kv = await kvAt(dir);
  await kv.set(["keep"], 1, { expireIn: 60_000 });
  await kv.set(["moved"], 1, { expireIn: 50 });
  await kv.set(["moved"], 2); // no expiry any more: its index entry went with the old one
  const gone = await kv.set(["gone"], "bye", { expireIn: 150 });
  const reader = kv.watch([["gone"], ["keep"]]).getReader();
  expect((await reader.read()).value!.map((e: KvEntryMaybe<unknown>) => e.value)).toEqual(["bye", 1]);
  const next = reader.read();
  await Bun.sleep(160);
  expect((await kv.get(["gone"])).value).toBeNull(); // expired: not returned, swept or not
  expect(await keysOf(kv.list({ prefix: [] }))).toEqual([["keep"], ["moved"]]);
  const change = (await next).value!;
  expect(change.map((e: KvEntryMaybe<unknown>) => e.value)).toEqual([null, 1]);
  await reader.cancel();
  await kv.close();
  // The sweeper's delete is a revision after the set, and the engine keeps nothing of the entry or its index entry.
  const db = await open(dir, quiet);
  try {
    expect(db.get(engineKey(encodeKey(["gone"])))).toBeUndefined();
    expect(db.rev).toBeGreaterThan(Number.parseInt(gone.versionstamp.slice(0, 16), 16));
    expect([...db.range({ prefix: "\u0000kvx\u0000" })].length).toBe(1); // ["keep"]'s
    expect(db.get(engineKey(encodeKey(["moved"])))).toBeDefined();
  } finally {
    await db.close();
  }
});

test("watch yields the current entries, then each change to them, and nothing for other keys", async () => {
  const kv = await kvAt();
  await kv.set(["w"], 0);
  const reader = kv.watch([["w"], ["x"]]).getReader();
  expect((await reader.read()).value!.map((e: KvEntryMaybe<unknown>) => e.value)).toEqual([0, null]);
  await kv.set(["other"], 1);
  const r = await kv.set(["x"], "x!");
  const got = (await reader.read()).value!;
  expect(got[1]).toEqual({ key: ["x"], value: "x!", versionstamp: r.versionstamp });
  await kv.delete(["w"]);
  expect((await reader.read()).value![0]).toEqual({ key: ["w"], value: null, versionstamp: null });
  expect(() => kv.watch(Array.from({ length: 11 }, (_, i) => [i]))).toThrow("Too many keys (max 10)");
  // Closing the store ends the stream (it does not error).
  const pending = reader.read();
  await kv.close();
  expect((await pending).done).toBe(true);
});

test("Deno KV's limits, with Deno 2.9.6's texts", async () => {
  const kv = await kvAt();
  const big = "x".repeat(2047); // 2,049 bytes as a key: 0x02, the string, 0x00
  await expect(kv.set([big], 1)).rejects.toThrow("Key too large for write (max 2048 bytes)");
  await expect(kv.get([big])).rejects.toThrow("Key too large for read (max 2049 bytes)");
  await expect(kv.set([], 1)).rejects.toThrow("key cannot be empty");
  await expect(kv.set(["v"], new Uint8Array(65537))).rejects.toThrow("Value too large (max 65536 bytes)");
  await kv.set(["v"], new Uint8Array(65536));
  await expect(kv.getMany(Array.from({ length: 11 }, (_, i) => [i]))).rejects.toThrow("Too many ranges (max 10)");
  const checks = kv.atomic();
  for (let i = 0; i < 101; i++) checks.check({ key: [i], versionstamp: null });
  await expect(checks.commit()).rejects.toThrow("Too many checks (max 100)");
  const muts = kv.atomic();
  for (let i = 0; i < 1001; i++) muts.set([i], 1);
  await expect(muts.commit()).rejects.toThrow("Too many mutations (max 1000)");
  const size = kv.atomic();
  for (let i = 0; i < 15; i++) size.set([i], new Uint8Array(60000));
  await expect(size.commit()).rejects.toThrow("Total mutation size too large (max 819200 bytes)");
  await expect(kv.set(["e"], 1, { expireIn: -1 })).rejects.toThrow("expireIn must be a non-negative integer: received -1");
  expect(() => kv.list({ prefix: [] }, { limit: 0 })).toThrow("Limit must be a positive integer: received 0");
  expect(() => kv.list({ prefix: [] }, { batchSize: 1001 })).toThrow("Too many entries (max 1000)");
  expect(() => kv.list({ prefix: ["a"], start: ["b"] })).toThrow("Start key is not in the keyspace defined by prefix");
  expect(() => kv.list({ prefix: ["a"], start: ["a"] })).toThrow("Start key is not in the keyspace defined by prefix");
  expect(() => kv.list({ prefix: ["a"], end: ["a"] })).toThrow("End key is not in the keyspace defined by prefix");
  expect(() => kv.list({ start: ["b"], end: ["a"] })).toThrow("Start key is greater than end key");
  expect(() => kv.list({ start: ["b"] } as never)).toThrow("Selector must specify either 'prefix' or both 'start' and 'end' key");
  expect(() => kv.list({ prefix: ["a"] }, { cursor: "!!!" })).toThrow("invalid cursor");
  expect(() => kv.atomic().then()).toThrow("did you forget to call 'commit()'");
  // Nothing refused was written.
  expect(await keysOf(kv.list({ prefix: [] }))).toEqual([["v"]]);
});

test("after a restart every acknowledged entry is there and versionstamps go on growing", async () => {
  const dir = tmpDir();
  const kv = await kvAt(dir);
  const last = await kv.set(["a"], { n: 1 });
  await kv.atomic().sum(["c"], 7n).commit();
  await kv.close();
  const again = await kvAt(dir);
  expect((await again.get(["a"])).value).toEqual({ n: 1 });
  expect((await again.get(["c"])).value).toEqual(new KvU64(7n));
  const next = await again.set(["a"], 2);
  expect(next.versionstamp > last.versionstamp).toBe(true);
});

test("a Kv over a database the app opened leaves it open, beside the database's own keys", async () => {
  const db = await open(tmpDir(), quiet);
  try {
    await db.put("plain", "rest");
    const kv = new Kv(db);
    await kv.set(["plain"], "kv");
    expect(db.get("plain")).toBe("rest");
    expect(await keysOf(kv.list({ prefix: [] }))).toEqual([["plain"]]);
    await kv.close();
    expect(db.get("plain")).toBe("rest");
  } finally {
    await db.close();
  }
});

describe("queues: enqueue and listenQueue", () => {
  test("messages arrive once due, in due order, values intact; a failed check enqueues nothing", async () => {
    const kv = await kvAt();
    const got: unknown[] = [];
    const t0 = Date.now();
    const at: number[] = [];
    const listening = kv.listenQueue((v) => {
      got.push(v);
      at.push(Date.now() - t0);
    });
    await kv.enqueue({ n: "late" }, { delay: 200 });
    await kv.enqueue({ n: 1, when: new Date(7) });
    await kv.atomic().set(["k"], 1).enqueue(new Map([[1, 2n]])).commit();
    const stale = await kv.atomic().check({ key: ["k"], versionstamp: null }).enqueue("never").commit();
    expect(stale.ok).toBe(false);
    while (got.length < 3) await Bun.sleep(10);
    expect(got).toEqual([{ n: 1, when: new Date(7) }, new Map([[1, 2n]]), { n: "late" }]);
    expect(at[2]!).toBeGreaterThanOrEqual(200);
    await Bun.sleep(50);
    expect(got.length).toBe(3);
    await kv.close();
    await listening;
  });

  test("a handler that throws gets the message again by its backoff schedule, then keysIfUndelivered get it", async () => {
    const kv = await kvAt();
    let calls = 0;
    const errors = console.error;
    console.error = () => {}; // (each failure is logged, as Deno logs it)
    try {
      void kv.listenQueue(() => {
        calls++;
        throw new Error("not today");
      });
      await kv.enqueue("payload", { backoffSchedule: [10, 20], keysIfUndelivered: [["dead", 1], ["dead", 2]] });
      for (let i = 0; i < 200 && (await kv.get(["dead", 2])).value === null; i++) await Bun.sleep(10);
    } finally {
      console.error = errors;
    }
    expect(calls).toBe(3); // the first delivery and two retries
    expect((await kv.get(["dead", 1])).value).toBe("payload");
    expect((await kv.get(["dead", 2])).value).toBe("payload");
  });

  test("durable across restarts, at least once: a message enqueued or being handled when the store closed is delivered after it opens", async () => {
    const dir = tmpDir();
    const kv = await kvAt(dir);
    await kv.enqueue("waiting");
    let started!: () => void;
    const handling = new Promise<void>((r) => (started = r));
    void kv.listenQueue(() => {
      started();
      return new Promise(() => {}); // never finishes
    });
    await handling;
    await kv.close();
    const again = await kvAt(dir);
    await again.enqueue("after");
    const got: unknown[] = [];
    void again.listenQueue((v) => void got.push(v));
    for (let i = 0; i < 200 && got.length < 2; i++) await Bun.sleep(10);
    expect(got).toEqual(["waiting", "after"]);
  });

  test("a message whose settling fails (the database closed under the Kv) is not redelivered in a loop; listening ends", async () => {
    const db = await open(tmpDir(), quiet);
    const kv = new Kv(db);
    await kv.enqueue("x");
    let calls = 0;
    const listening = kv.listenQueue(async () => {
      calls++;
      await db.close(); // the delivery's delete then fails with ClosedError
    });
    let timerRan = false;
    setTimeout(() => (timerRan = true), 0);
    await Promise.race([listening, Bun.sleep(2000)]);
    expect([calls, timerRan]).toEqual([1, true]);
    await kv.close();
  });

  test("Deno's checks on delay and backoffSchedule, with its texts", async () => {
    const kv = await kvAt();
    await expect(kv.enqueue(1, { delay: -1 })).rejects.toThrow("Delay must be >= 0: received -1");
    await expect(kv.enqueue(1, { delay: 31 * 24 * 3600 * 1000 })).rejects.toThrow("Delay cannot be greater than 30 days");
    await expect(kv.enqueue(1, { backoffSchedule: [1, 2, 3, 4, 5, 6] })).rejects.toThrow("Invalid backoffSchedule, max 5 intervals allowed");
    await expect(kv.enqueue(1, { backoffSchedule: [1, -1] })).rejects.toThrow("Invalid backoffSchedule, interval at index 1 is invalid");
    void kv.listenQueue(() => {});
    expect(() => kv.listenQueue(() => {})).toThrow("already listening");
  });
});
