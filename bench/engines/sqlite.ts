// bun:sqlite, WAL mode with synchronous=FULL (every commit fdatasyncs the WAL): autocommit, and puts
// batched by the application into one transaction of up to 256.

import { Database } from "bun:sqlite";
import * as fs from "node:fs";
import * as path from "node:path";
import * as B from "../lib.ts";
import type { Engine, OpenOptions, Store, Value } from "./engine.ts";

const BATCH_PUTS_MAX = 256;
const LOAD_BATCH_OPS = 10_000;

type Put = (key: string, value: Value) => Promise<unknown>;

function openDatabase(dir: string, options: OpenOptions): Database {
  fs.mkdirSync(dir, { recursive: true });
  const db = new Database(path.join(dir, "kv.sqlite"), { create: true, strict: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run(`PRAGMA synchronous = ${options.bulk === true ? "OFF" : "FULL"}`);
  db.run("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID");
  return db;
}

/**
 * Puts queue up and commit together in one transaction: when BATCH_PUTS_MAX are waiting, or at the end
 * of the current microtask turn, whichever is first; then they all resolve. One write in flight is
 * autocommit with extra steps.
 */
function batchedPut(db: Database, insert: (key: string, value: Value) => void): Put {
  let waiting: { key: string; value: Value; resolve: () => void; reject: (err: unknown) => void }[] = [];
  const commit = db.transaction((batch: typeof waiting) => {
    for (const w of batch) insert(w.key, w.value);
  });
  const flush = () => {
    const batch = waiting;
    if (batch.length === 0) return;
    waiting = [];
    try {
      commit(batch);
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    for (const w of batch) w.resolve();
  };
  return (key, value) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ key, value, resolve, reject });
      if (waiting.length === 1) queueMicrotask(flush);
      if (waiting.length >= BATCH_PUTS_MAX) flush();
    });
}

function store(db: Database, batched: boolean): Store {
  const insert = db.query<unknown, [string, Value]>("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)");
  const select = db.query<{ v: Value }, [string]>("SELECT v FROM kv WHERE k = ?");
  const scan = db.query<{ k: string; v: Value }, [string, number]>("SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?");
  const scanKeys = db.query<{ k: string }, [string, number]>("SELECT k FROM kv WHERE k >= ? ORDER BY k LIMIT ?");
  const put1 = (key: string, value: Value) => void insert.run(key, value);
  const loadTx = db.transaction((from: number, to: number, values: readonly Value[]) => {
    for (let i = from; i < to; i++) insert.run(B.key(i), values[i % values.length]!);
  });
  return {
    // bun:sqlite is synchronous: an autocommit put has fdatasynced by the time it returns.
    put: batched ? batchedPut(db, put1) : (key, value) => (put1(key, value), Promise.resolve()),
    get: (key) => select.get(key)?.v,
    range(start, n) {
      let read = 0;
      for (const row of scan.all(start, n)) if (row.v !== undefined) read++;
      return read;
    },
    rangeKeys(start, n) {
      let read = 0;
      for (const row of scanKeys.all(start, n)) if (row.k !== undefined) read++;
      return read;
    },
    async load(from, to, values) {
      for (let i = from; i < to; i += LOAD_BATCH_OPS) loadTx(i, Math.min(to, i + LOAD_BATCH_OPS), values);
    },
    async close() {
      insert.finalize();
      select.finalize();
      scan.finalize();
      scanKeys.finalize();
      db.close(false);
    },
  };
}

function variant(batched: boolean): Engine {
  return {
    id: batched ? "sqlite-batch256" : "sqlite",
    name: batched ? "bun:sqlite, 256 per tx" : "bun:sqlite autocommit",
    family: "sqlite",
    durable: true,
    reads: !batched,
    notes: batched
      ? `WAL, synchronous=FULL; the puts waiting at the end of a microtask turn (≤ ${BATCH_PUTS_MAX}) commit in one transaction, then resolve`
      : "WAL, synchronous=FULL, WITHOUT ROWID table, one autocommit INSERT OR REPLACE per put (synchronous call)",
    version: () => {
      const db = new Database(":memory:");
      const v = db.query<{ v: string }, []>("SELECT sqlite_version() AS v").get()?.v ?? "?";
      db.close();
      return `SQLite ${v} (Bun ${Bun.version})`;
    },
    async open(dir, options = {}) {
      return store(openDatabase(dir, options), batched);
    },
  };
}

export const engines: Engine[] = [variant(false), variant(true)];
