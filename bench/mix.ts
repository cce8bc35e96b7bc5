// Scenario: 90% random gets, 10% durable puts (overwriting random keys), 64 in flight, on a 1M-key store.

import { engines, type Store } from "./engines/index.ts";
import * as D from "./dataset.ts";
import * as B from "./lib.ts";
import * as R from "./report.ts";

const WRITE_SHARE = 0.1;

/**
 * Ops/s with MIX_INFLIGHT lanes, each drawing get or put at random: a get answers at once, a put is
 * awaited until the engine resolves it. `runs` timed runs of `ms` after READ_WARMUP_MS / 2 untimed.
 */
export async function measureMix(store: Store, keys: number, runs: number, ms: number): Promise<number[]> {
  const queries = D.queries(keys, 2);
  const vals = D.values();
  const random = B.rng(keys);
  let i = 0;
  let misses = 0;
  const once = async (ms: number) => {
    const deadline = B.nowNs() + ms * 1e6;
    let ops = 0;
    const lane = async () => {
      while (B.nowNs() < deadline) {
        const k = queries[i++ & D.QUERY_MASK]!;
        if (random() < WRITE_SHARE) await store.put(k, vals[i % vals.length]!);
        else if (store.get(k) === undefined) misses++;
        ops++;
      }
    };
    const t0 = B.nowNs();
    await Promise.all(Array.from({ length: R.MIX_INFLIGHT }, lane));
    return ops / ((B.nowNs() - t0) / 1e9);
  };
  await once(D.READ_WARMUP_MS / 2);
  const out: number[] = [];
  for (let r = 0; r < runs; r++) out.push(await once(ms));
  if (misses > 0) throw new Error(`get missed ${misses} keys that were loaded`);
  return out;
}

if (import.meta.main) {
  const runs = B.numberFlag("runs", D.READ_RUNS);
  const ms = B.numberFlag("ms", 500);
  const list = await engines();
  const measures: R.Measure[] = [];
  await B.withTmpDir(async (root) => {
    for (const reader of D.readers(list)) {
      const loaded = await D.loadFamily(root, reader, D.KEYS).catch((err: unknown) => err as Error);
      for (const e of D.family(list, reader)) {
        if (loaded instanceof Error) {
          measures.push(R.failed("mix", e, loaded));
          continue;
        }
        try {
          const store = await e.open(D.storeDir(root, e));
          await store.settle?.();
          measures.push(R.measured("mix", e, await measureMix(store, D.KEYS, runs, ms)));
          await store.close();
        } catch (err) {
          measures.push(R.failed("mix", e, err));
        }
      }
    }
  });
  console.log(`## 90/10 mix (${B.fmt(D.KEYS)} keys of ${B.KEY_BYTES} B, ${B.VALUE_BYTES} B values, ${R.MIX_INFLIGHT} in flight)\n`);
  console.log(`${runs} runs of ${ms} ms each after a ${D.READ_WARMUP_MS / 2} ms warm-up; a put overwrites a random existing key and is awaited until the engine resolves it.\n`);
  R.printWorkloads(measures);
  R.writeJson(measures);
  B.finish();
}
