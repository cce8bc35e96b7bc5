// classic-level (LevelDB): puts with { sync: true }, so each write's log append is fsynced before it resolves.

import * as B from "../lib.ts";
import type { Engine, OpenOptions, Store, Value } from "./engine.ts";

const LOAD_BATCH_OPS = 1000;

type ClassicLevel = import("classic-level").ClassicLevel<string, Value>;

function store(db: ClassicLevel, sync: boolean): Store {
  return {
    put: (key, value) => db.put(key, value, { sync }),
    // getSync (classic-level 3) reads on the calling thread, as the other engines' get does.
    get: (key) => db.getSync(key),
    async range(start, n) {
      let read = 0;
      for (const [, value] of await db.iterator({ gte: start, limit: n }).all()) if (value !== undefined) read++;
      return read;
    },
    async load(from, to, values) {
      for (let i = from; i < to; i += LOAD_BATCH_OPS) {
        const ops = [];
        for (let j = i; j < Math.min(to, i + LOAD_BATCH_OPS); j++) ops.push({ type: "put" as const, key: B.key(j), value: values[j % values.length]! });
        await db.batch(ops);
      }
    },
    close: () => db.close(),
  };
}

export const engines: Engine[] = [
  {
    id: "classic-level",
    name: "classic-level (LevelDB)",
    family: "classic-level",
    durable: true,
    reads: true,
    notes: "put(k, v, { sync: true }); LevelDB groups concurrent writers into one log write + fsync; reads with getSync",
    version: () => B.packageVersion("classic-level"),
    async open(dir: string, options: OpenOptions = {}) {
      const { ClassicLevel } = await import("classic-level");
      const valueEncoding = options.values === "string" ? "utf8" : "view";
      const db = new ClassicLevel<string, Value>(dir, { keyEncoding: "utf8", valueEncoding });
      await db.open();
      return store(db, options.bulk !== true);
    },
  },
];
