// lmdb-js (the `lmdb` package): overlappingSync off, so a resolved put is on disk; and its default
// (overlappingSync on: a put resolves at commit, the fdatasync follows), for reference.

import * as B from "../lib.ts";
import type { Engine, OpenOptions, Store } from "./engine.ts";

const LOAD_BATCH_OPS = 10_000;

type Lmdb = typeof import("lmdb");
type RootDatabase = ReturnType<Lmdb["open"]>;

function store(db: RootDatabase): Store {
  return {
    // lmdb-js batches the puts of one event-loop turn into one transaction on its writer thread.
    put: (key, value) => db.put(key, value),
    get: (key) => db.get(key),
    range(start, n) {
      let read = 0;
      for (const e of db.getRange({ start, limit: n })) if (e.value !== undefined) read++;
      return read;
    },
    rangeKeys(start, n) {
      let read = 0;
      for (const k of db.getKeys({ start, limit: n })) if (k !== undefined) read++;
      return read;
    },
    async load(from, to, values) {
      for (let i = from; i < to; i += LOAD_BATCH_OPS) {
        db.transactionSync(() => {
          for (let j = i; j < Math.min(to, i + LOAD_BATCH_OPS); j++) db.putSync(B.key(j), values[j % values.length]!);
        });
      }
    },
    close: () => db.close(),
  };
}

function variant(durable: boolean): Engine {
  return {
    id: durable ? "lmdb-sync" : "lmdb",
    name: durable ? "lmdb-js, overlappingSync off" : "lmdb-js default",
    family: "lmdb",
    durable,
    reads: durable,
    notes: durable
      ? "overlappingSync: false: a put resolves after its transaction is committed and fdatasynced; binary (or string) value encoding"
      : "defaults (overlappingSync: true): a put resolves once committed and visible; the flush to disk completes later (db.flushed), so not durable at resolve",
    version: () => B.packageVersion("lmdb"),
    async open(dir: string, options: OpenOptions = {}) {
      const lmdb: Lmdb = await import("lmdb");
      const encoding = options.values === "string" ? "string" : "binary";
      const sync = options.bulk === true ? { noSync: true } : durable ? { overlappingSync: false } : {};
      return store(lmdb.open({ path: dir, encoding, ...sync }));
    },
  };
}

export const engines: Engine[] = [variant(true), variant(false)];
