// The data the read-side scenarios share: 1M keys loaded into one store per engine family, the random
// keys to ask for, and the values.

import * as path from "node:path";
import type { Engine, Store, Value } from "./engines/index.ts";
import * as B from "./lib.ts";

export const KEYS_SMALL = 100_000;
/**
 * Untimed reads before the timed ones. Long enough for the JIT and for the heap to reach its steady
 * size: read throughput right after a full collection (Bun.gc(true)) or a bulk load was found to be
 * up to 3× lower for seconds, so no scenario forces one before timing reads.
 */
export const READ_WARMUP_MS = 1000;
/** Timed runs per read workload; the median is reported. */
export const READ_RUNS = 5;
export const KEYS = 1_000_000;
/** Random queries per pool: a power of two, so `i & QUERY_MASK` cycles through them. */
const QUERIES = 1 << 19;
export const QUERY_MASK = QUERIES - 1;
/** Distinct values the keys cycle through (random bytes: LevelDB's snappy finds nothing to squeeze). */
const VALUES = 4096;

const pools = new Map<string, string[]>();

/**
 * QUERIES uniformly random existing keys among the first `keys`, seeded by `keys` and `salt`. They
 * are separate string objects from the stored keys, as a request would bring, and made flat now
 * (charCodeAt) rather than inside a timed loop.
 */
export function queries(keys: number, salt = 0): string[] {
  const id = `${keys}/${salt}`;
  let pool = pools.get(id);
  if (pool === undefined) {
    const random = B.rng(keys + salt * 7919);
    pool = Array.from({ length: QUERIES }, () => B.key(Math.floor(random() * keys)));
    for (const q of pool) q.charCodeAt(0);
    pools.set(id, pool);
  }
  return pool;
}

export function values(kind: "bytes" | "string" = "bytes"): Value[] {
  return B.valuePool(VALUES, kind);
}

/** The directory a family's loaded store lives in. */
export function storeDir(root: string, e: Engine): string {
  return path.join(root, e.family);
}

/** Opens `e` for bulk loading in its family's directory, loads keys [0, keys), closes; returns seconds. */
export async function loadFamily(root: string, e: Engine, keys: number, vals: readonly Value[] = values()): Promise<number> {
  const t0 = performance.now();
  const store: Store = await e.open(storeDir(root, e), { bulk: true });
  await store.load(0, keys, vals);
  await store.close();
  return (performance.now() - t0) / 1000;
}

/** The engines the read scenarios measure: one per family. */
export function readers(list: readonly Engine[]): Engine[] {
  return list.filter((e) => e.reads);
}

/** The variants of `e`'s family among `list` (the write paths the mix measures). */
export function family(list: readonly Engine[], e: Engine): Engine[] {
  return list.filter((x) => x.family === e.family);
}
