import { expect, test } from "bun:test";
import { open, type RangeOptions } from "../src/index.ts";
import { seeded } from "./helpers/fault-io.ts";
import { tmpDir } from "./helpers/index.ts";

const SEED = Number(process.env.HARMONYDB_SEED ?? Date.now() % 1_000_000);

/** What range(o) must return, by the definition: every key within every bound, in order, up to limit. */
function model(keys: string[], o: RangeOptions): string[] {
  const within = keys
    .filter((k) => o.prefix === undefined || k.startsWith(o.prefix))
    .filter((k) => (o.gte === undefined || k >= o.gte) && (o.gt === undefined || k > o.gt))
    .filter((k) => (o.lte === undefined || k <= o.lte) && (o.lt === undefined || k < o.lt))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (o.reverse) within.reverse();
  return within.slice(0, o.limit ?? Infinity);
}

test("range agrees with its definition over random keys and random combinations of bounds, with values or keys only", async () => {
  console.log(`range model seed ${SEED} (HARMONYDB_SEED=${SEED} replays it)`);
  const random = seeded(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const alphabet = ["a", "b", "c", "é", "\u{1F600}", "\uffff", "/"];
  const word = (n: number) => Array.from({ length: 1 + Math.floor(random() * n) }, () => pick(alphabet)).join("");
  const keys = [...new Set(Array.from({ length: 300 }, () => word(4)))];
  const db = await open(tmpDir(), { log: () => {} });
  try {
    await db.batch(keys.map((key) => ({ type: "put" as const, key, value: key.length })));
    for (let i = 0; i < 2000; i++) {
      const o: RangeOptions = {};
      if (random() < 0.3) o.prefix = word(2);
      if (random() < 0.4) o[random() < 0.5 ? "gte" : "gt"] = random() < 0.5 ? pick(keys) : word(3);
      if (random() < 0.4) o[random() < 0.5 ? "lte" : "lt"] = random() < 0.5 ? pick(keys) : word(3);
      if (random() < 0.2) o.gt = random() < 0.5 ? pick(keys) : word(3); // both gte and gt, now and then
      if (random() < 0.5) o.reverse = true;
      if (random() < 0.5) o.limit = Math.floor(random() * 20);
      if (random() < 0.3) o.keysOnly = true;
      const got = [...db.range(o)];
      expect({ o, keys: got.map((e) => e.key) }).toEqual({ o, keys: model(keys, o) });
      // One batch wrote every key: revision 1. Keys only: no value read.
      for (const e of got) expect([e.value, e.rev]).toEqual([o.keysOnly ? undefined : e.key.length, 1]);
    }
  } finally {
    await db.close();
  }
});

test("db.view(): every get and range of it sees one revision, whatever is written after", async () => {
  const db = await open(tmpDir(), { log: () => {} });
  try {
    await db.batch(["a", "b", "c"].map((key, i) => ({ type: "put" as const, key, value: i + 1 })));
    await db.put("a", 11); // a: version 2
    const before = { a: db.getEntry("a")!, rev: db.rev };
    const v = db.view();
    expect(v.rev).toBe(before.rev);
    // Writes after the view: an overwrite, a delete, a new key, and a new key between the others.
    await db.batch([
      { type: "put", key: "a", value: 100 },
      { type: "delete", key: "b" },
      { type: "put", key: "d", value: 4 },
      { type: "put", key: "bb", value: 5 },
    ]);
    expect([db.get("a"), db.has("b"), db.get("d")]).toEqual([100, false, 4]);
    expect([v.get("a"), v.get("b"), v.has("b"), v.get("d"), v.has("bb"), v.get("zz")]).toEqual([11, 2, true, undefined, false, undefined]);
    expect(v.getEntry("a")).toEqual(before.a);
    expect(v.getEntry("d")).toBeUndefined();
    expect([...v.range()].map((e) => [e.key, e.value, e.rev])).toEqual([
      ["a", 11, before.a.rev],
      ["b", 2, 1],
      ["c", 3, 1],
    ]);
    expect([...db.range()].map((e) => e.key)).toEqual(["a", "bb", "c", "d"]);
    expect([...v.range({ gt: "a", keysOnly: true })].map((e) => e.key)).toEqual(["b", "c"]);
    // Two ranges of one view agree, however the store moves between them.
    const first = [...v.range({ reverse: true })].map((e) => e.key);
    await db.put("c", 33);
    expect([...v.range({ reverse: true })].map((e) => e.key)).toEqual(first);
    expect(v.get("c")).toBe(3);
    // Bad arguments are refused when asked, as db.get and db.range refuse them.
    expect(() => v.get(1 as unknown as string)).toThrow("key must be a string");
    expect(() => v.range({ limit: Number.NaN })).toThrow("range limit must be a number");
  } finally {
    await db.close();
  }
});
