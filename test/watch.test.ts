import { expect, test } from "bun:test";
import { ClosedError, WatchOverflowError, open, type WatchEvent } from "../src/index.ts";
import { tmpDir } from "./helpers/index.ts";

async function take(it: AsyncIterator<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

test("watch: live durable changes in revision order, filtered by prefix", async () => {
  const db = await open(tmpDir());
  const w = db.watch({ prefix: "a/" });
  await db.put("a/1", 1);
  await db.put("b/1", "other");
  await db.batch([
    { type: "put", key: "a/2", value: { x: 2 } },
    { type: "delete", key: "a/1" },
  ]);
  expect(await take(w, 3)).toEqual([
    { type: "put", key: "a/1", value: 1, rev: 1 },
    { type: "put", key: "a/2", value: { x: 2 }, rev: 3 },
    { type: "delete", key: "a/1", rev: 3 },
  ]);
  expect(db.stats().watchers).toBe(1);
  await w.return!();
  expect(db.stats().watchers).toBe(0);
  await db.close();
});

test("watch from an old revision replays history from the WAL, after a reopen too, then goes live", async () => {
  const dir = tmpDir();
  let db = await open(dir, { segmentBytes: 64 * 1024 });
  for (let i = 1; i <= 300; i++) await db.put(`k${i % 7}`, "v".repeat(300) + i); // spans several segments
  await db.close();
  db = await open(dir, { segmentBytes: 64 * 1024 });
  const w = db.watch({ fromRev: 250 });
  const live = db.put("k-live", "now");
  const events = await take(w, 52);
  expect(events.map((e) => e.rev)).toEqual(Array.from({ length: 52 }, (_, i) => 250 + i));
  expect(events[0]).toEqual({ type: "put", key: `k${250 % 7}`, value: "v".repeat(300) + 250, rev: 250 });
  expect(events[51]).toEqual({ type: "put", key: "k-live", value: "now", rev: 301 });
  expect(await live).toBe(301);
  await db.close();
});

test("a watcher that falls too far behind is cut off with a reason; others go on", async () => {
  const db = await open(tmpDir());
  const slow = db.watch({ bufferMax: 10 });
  const fine = db.watch({ prefix: "k" });
  await Promise.all(Array.from({ length: 30 }, (_, i) => db.put(`k${i}`, i)));
  const err = await take(slow, 100).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WatchOverflowError);
  expect((await take(fine, 30)).length).toBe(30);
  await db.close();
});

test("closing the database ends its watchers with ClosedError", async () => {
  const db = await open(tmpDir());
  await db.put("a", 1);
  const w = db.watch();
  const pending = w.next();
  await db.close();
  await expect(pending).rejects.toBeInstanceOf(ClosedError);
  expect(() => db.watch()).toThrow(ClosedError);
});
