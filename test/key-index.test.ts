import { expect, test } from "bun:test";
import { utf8Bytes } from "../src/format/encoder.ts";
import type { IndexView, KeyIndex } from "../src/store/key-index.ts";
import { Replay } from "../src/store/replay.ts";
import { checkedValue } from "../src/write/validate.ts";
import * as L from "../src/limits.ts";
import { seeded } from "./helpers/fault-io.ts";

const SEED = Number(process.env.HARMONYDB_SEED ?? Date.now() % 1_000_000);
const limits = { keyBytesMax: L.keyBytesMax, valueBytesMax: L.valueBytesMax, batchOpsMax: L.batchOpsMax };

function put(index: KeyIndex, rev: number, key: string, value: unknown): void {
  // As the pipeline does: the value's CBOR in a larger buffer (the ring), applied from its span.
  const cbor = checkedValue(value, limits);
  const src = new Uint8Array(cbor.length + 7);
  src.set(cbor, 3);
  index.applyPut(rev, key, utf8Bytes(key), src, 3, 3 + cbor.length);
}

function entries(view: IndexView): [string, unknown][] {
  return [...view.tree.entries()].map(([key, slot]) => [key, view.value(slot)]);
}

function sorted(model: Map<string, unknown>): [string, unknown][] {
  return [...model].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

test("the index agrees with a model: increasing runs, inserts below, overwrites, deletes, views taken in between", () => {
  console.log(`key-index model seed ${SEED} (HARMONYDB_SEED=${SEED} replays it)`);
  const random = seeded(SEED);
  const index = new Replay().finish();
  index.fillMap(Infinity); // the map is in use from here on, as after open's background fill
  const model = new Map<string, unknown>();
  const views: { view: IndexView; expected: [string, unknown][] }[] = [];
  let rev = 0;
  let counter = 0;
  // Increasing keys, above every random key or among them: runs that join the tree whole.
  const counterKey = () => `${counter % 3 === 0 ? "~" : "m"}${String(counter++).padStart(6, "0")}`;
  const randomKey = () => `${"abtz"[Math.floor(random() * 4)]}${Math.floor(random() * 1e6)}`;
  const existing = () => [...model.keys()][Math.floor(random() * model.size)];
  const putKey = (key: string) => {
    const value = random() < 0.5 ? `${key}@${rev + 1}` : { rev: rev + 1 };
    put(index, ++rev, key, value);
    model.set(key, value);
  };
  let bursts = 0;
  for (let step = 0; step < 20_000; step++) {
    if (random() < 0.004) {
      // A long run at once: of counter keys above all others (in one gap of the tree, joined by a union), or of
      // random keys in order (spread among the tree's keys, put in one by one).
      const n = 32 + Math.floor(random() * 64);
      const top = () => `~${String(counter++).padStart(6, "0")}`;
      const burst = random() < 0.5 ? Array.from({ length: n }, top) : [...new Set(Array.from({ length: n }, randomKey))].sort();
      for (const k of burst) putKey(k);
      bursts++;
      continue;
    }
    const r = random();
    let key: string | undefined;
    if (r < 0.6) key = counterKey(); // above the last one of its kind
    else if (r < 0.8) key = randomKey(); // mostly below the newest keys
    else if (r < 0.9) key = existing(); // an overwrite
    if (key !== undefined) putKey(key);
    else {
      key = existing() ?? randomKey();
      index.apply(++rev, [[key]]);
      model.delete(key);
    }
    expect(index.get(key)).toEqual(model.get(key));
    expect(index.size).toBe(model.size);
    if (random() < 0.01) views.push({ view: index.view(), expected: sorted(model) });
    if (random() < 0.002) index.verify(rev);
  }
  for (const [key, value] of model) expect(index.get(key)).toEqual(value);
  // Each view still shows the index as it was when taken, in order, whatever came after.
  expect(views.length).toBeGreaterThan(50);
  expect(bursts).toBeGreaterThan(20);
  for (const { view, expected } of views) expect(entries(view)).toEqual(expected);
  expect(entries(index.view())).toEqual(sorted(model));
  index.verify(rev);
});
