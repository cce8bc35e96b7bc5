// HarmonyDB, embedded: open(dir) as a Bun user would, puts awaited until their group commit is fdatasynced.

import * as fs from "node:fs";
import * as path from "node:path";
import { open, type Db } from "../../src/index.ts";
import * as B from "../lib.ts";
import type { Engine, OpenOptions, Store } from "./engine.ts";

const LOAD_BATCH_OPS = 1000;

function store(db: Db): Store {
  return {
    put: (key, value) => db.put(key, value),
    get: (key) => db.get(key),
    range(start, n) {
      let read = 0;
      for (const e of db.range({ gte: start, limit: n })) if (e.value !== undefined) read++;
      return read;
    },
    rangeKeys(start, n) {
      let read = 0;
      for (const e of db.range({ gte: start, limit: n, keysOnly: true })) if (e.key !== undefined) read++;
      return read;
    },
    async load(from, to, values) {
      for (let i = from; i < to; i += LOAD_BATCH_OPS) {
        const ops = [];
        for (let j = i; j < Math.min(to, i + LOAD_BATCH_OPS); j++) ops.push({ type: "put" as const, key: B.key(j), value: values[j % values.length]! });
        await db.batch(ops);
      }
    },
    async settle() {
      await B.settleWriter(db);
    },
    syncStats() {
      const { records, fsyncs } = db.stats().wal;
      return { records, fsyncs };
    },
    close: () => db.close(),
  };
}

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(import.meta.dir, "../../package.json"), "utf8")) as { version: string };
  return `${pkg.version} (${B.gitDescribe()})`;
}

/** Automatic snapshots off: what the put path costs without the snapshots a sustained load triggers. */
const NO_SNAPSHOTS = { snapshotEveryBytes: 0 } as const;

export const engines: Engine[] = [
  {
    id: "harmonydb",
    name: "HarmonyDB",
    family: "harmonydb",
    durable: true,
    subject: true,
    reads: true,
    notes: 'embedded, sync "always" (default): a put resolves after the group commit that holds it is fdatasynced',
    version,
    async open(dir: string, options: OpenOptions = {}) {
      return store(await open(dir, options.bulk === true ? { sync: "never" } : {}));
    },
  },
  {
    id: "harmonydb-nosnap",
    name: "HarmonyDB, automatic snapshots off",
    family: "harmonydb",
    durable: true,
    reads: false,
    notes:
      "as HarmonyDB, with snapshotEveryBytes 0: no full-state snapshot every max(16 MiB, live/8) of log, which a sustained load of new keys pays for (the log then grows without bound)",
    version,
    async open(dir: string, options: OpenOptions = {}) {
      return store(await open(dir, options.bulk === true ? { sync: "never", ...NO_SNAPSHOTS } : NO_SNAPSHOTS));
    },
  },
];
