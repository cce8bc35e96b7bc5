// Scenario: random point gets on 100k and 1M keys, every engine on the same data.

import { engines, type Store } from "./engines/index.ts";
import * as D from "./dataset.ts";
import * as B from "./lib.ts";
import * as R from "./report.ts";

/**
 * Gets/s of uniformly random existing keys from a pre-generated pool, `runs` timed runs of `ms` after
 * READ_WARMUP_MS untimed. Every get must hit.
 */
export function measureGets(store: Store, keys: number, runs: number, ms: number): number[] {
  const queries = D.queries(keys);
  let misses = 0;
  const get = (i: number) => {
    if (store.get(queries[i & D.QUERY_MASK]!) === undefined) misses++;
  };
  B.syncRate(get, D.READ_WARMUP_MS);
  const out = Array.from({ length: runs }, () => B.syncRate(get, ms));
  if (misses > 0) throw new Error(`get missed ${misses} keys that were loaded`);
  return out;
}

if (import.meta.main) {
  const runs = B.numberFlag("runs", D.READ_RUNS);
  const ms = B.numberFlag("ms", 500);
  const kind = B.flag("string") ? "string" : "bytes";
  const vals = D.values(kind);
  const list = D.readers(await engines());
  const measures: R.Measure[] = [];
  await B.withTmpDir(async (root) => {
    for (const e of list) {
      let workload = "get@100k";
      try {
        const store = await e.open(D.storeDir(root, e), { bulk: true, values: kind });
        await store.load(0, D.KEYS_SMALL, vals);
        measures.push(R.measured(workload, e, measureGets(store, D.KEYS_SMALL, runs, ms)));
        workload = "get@1M";
        await store.load(D.KEYS_SMALL, D.KEYS, vals);
        measures.push(R.measured(workload, e, measureGets(store, D.KEYS, runs, ms)));
        await store.close();
      } catch (err) {
        measures.push(R.failed(workload, e, err));
      }
    }
  });
  console.log(`## random get (${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B ${kind === "bytes" ? "Uint8Array" : "string"} values)\n`);
  console.log(`${runs} runs of ${ms} ms each, keys drawn uniformly from a pre-generated pool of ${B.fmt(D.QUERY_MASK + 1)}, after a ${D.READ_WARMUP_MS} ms warm-up.\n`);
  R.printWorkloads(measures);
  R.printTargets(measures);
  const small = measures.find((m) => m.workload === "get@100k" && m.engine === R.SUBJECT);
  if (small !== undefined && small.runs.length > 0) {
    console.log(`HarmonyDB, 100k keys, ${kind} values: ${B.verdict(B.median(small.runs), "≥", 1_000_000, 0)} gets/s\n`);
  }
  R.writeJson(measures);
  B.finish();
}
