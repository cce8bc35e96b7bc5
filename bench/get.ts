// Scenario: random get throughput on 100k and 1M keys, with lmdb-js on the same data as a reference.

import * as path from "node:path";
import { open } from "../src/index.ts";
import * as B from "./lib.ts";

const SIZES = [100_000, 1_000_000];
const GETS = B.numberFlag("gets", 1_000_000);
const WARMUP = 100_000;
const BATCH_OPS = 1000;

type Kind = "bytes" | "string";
type Get = (key: string) => unknown;
interface Store {
  get: Get;
  close: () => Promise<void>;
}

const lmdb = await import("lmdb").catch((err: unknown) => err as Error);

/** WARMUP untimed gets (for the JIT), then the probe's gets timed; every key is present, so each must hit. */
function getsPerSecond(get: Get, queries: string[], probe: Uint32Array): number {
  let hits = 0;
  for (let i = 0; i < WARMUP; i++) if (get(queries[probe[i]!]!) !== undefined) hits++;
  Bun.gc(true); // loading left garbage: collect it now, not in the middle of the timed gets
  const t0 = B.nowNs();
  for (let i = WARMUP; i < probe.length; i++) if (get(queries[probe[i]!]!) !== undefined) hits++;
  const s = (B.nowNs() - t0) / 1e9;
  if (hits !== probe.length) throw new Error(`get missed ${probe.length - hits} keys`);
  return (probe.length - WARMUP) / s;
}

/** HarmonyDB loaded through batch() of 1000 puts, sync "never" (loading is not what is measured). */
async function openHarmony(dir: string, keys: string[], value: unknown): Promise<Store> {
  const db = await open(dir, { sync: "never" });
  for (let i = 0; i < keys.length; i += BATCH_OPS) {
    await db.batch(keys.slice(i, i + BATCH_OPS).map((key) => ({ type: "put" as const, key, value })));
  }
  return { get: (k) => db.get(k), close: () => db.close() };
}

async function openLmdb(dir: string, keys: string[], value: unknown): Promise<Store> {
  if (lmdb instanceof Error) throw lmdb;
  const db = lmdb.open({ path: dir, noSync: true });
  for (let i = 0; i < keys.length; i += 10_000) {
    db.transactionSync(() => {
      for (const k of keys.slice(i, i + 10_000)) void db.put(k, value);
    });
  }
  return { get: (k) => db.get(k), close: () => db.close() };
}

interface Row {
  keys: number;
  kind: Kind;
  harmony: number;
  lmdb: number | string;
}

await B.withTmpDir(async (dir) => {
  const rows: Row[] = [];
  for (const n of SIZES) {
    const keys = Array.from({ length: n }, (_, i) => B.key(i));
    // Separate string objects from the stored keys, as a request would bring; charCodeAt makes each
    // one flat now rather than inside the timed loop.
    const queries = Array.from({ length: n }, (_, i) => B.key(i));
    for (const q of queries) q.charCodeAt(0);
    const random = B.rng(n);
    const probe = Uint32Array.from({ length: WARMUP + GETS }, () => Math.floor(random() * n));
    for (const kind of ["bytes", "string"] as const) {
      const value = kind === "bytes" ? B.bytesValue() : B.stringValue();
      const h = await openHarmony(path.join(dir, `h-${n}-${kind}`), keys, value);
      const harmony = getsPerSecond(h.get, queries, probe);
      await h.close();
      let ref: number | string;
      try {
        const l = await openLmdb(path.join(dir, `l-${n}-${kind}`), keys, value);
        ref = getsPerSecond(l.get, queries, probe);
        await l.close();
      } catch (err) {
        ref = `failed: ${(err as Error).message}`;
      }
      rows.push({ keys: n, kind, harmony, lmdb: ref });
    }
  }
  console.log(`## random get (${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values)\n`);
  console.log(`${B.fmt(GETS)} timed gets of uniformly random keys from a pre-generated array, after ${B.fmt(WARMUP)} untimed ones.\n`);
  B.table(
    ["keys", "value", "HarmonyDB gets/s", "lmdb-js gets/s", "HarmonyDB / lmdb-js"],
    rows.map((r) => [
      B.fmt(r.keys),
      r.kind === "bytes" ? `Uint8Array(${B.VALUE_BYTES})` : `${B.VALUE_BYTES}-char string`,
      B.fmt(r.harmony),
      typeof r.lmdb === "number" ? B.fmt(r.lmdb) : r.lmdb,
      typeof r.lmdb === "number" ? B.fmt(r.harmony / r.lmdb, 2) : "-",
    ]),
  );
  for (const r of rows.filter((x) => x.keys === 100_000)) {
    console.log(`100k keys, ${r.kind} values: ${B.verdict(r.harmony, "≥", 1_000_000, 0)} gets/s`);
  }
  console.log();
});
B.finish();
