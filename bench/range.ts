// Scenario: range scans of 1,000 keys from random starting points in a 1M-key store, every engine.

import { engines, type Store } from "./engines/index.ts";
import * as D from "./dataset.ts";
import * as B from "./lib.ts";
import * as R from "./report.ts";

/**
 * Keys/s over scans of RANGE_KEYS entries (values read, or keys only) from random starts; `runs`
 * timed runs of `ms` after READ_WARMUP_MS.
 */
export async function measureRanges(store: Store, keys: number, runs: number, ms: number, keysOnly = false): Promise<number[]> {
  const scan = keysOnly ? store.rangeKeys!.bind(store) : store.range.bind(store);
  // Starts at least RANGE_KEYS from the end, so every scan reads exactly RANGE_KEYS entries.
  const starts = D.queries(keys - R.RANGE_KEYS, 1);
  const once = async (ms: number) => {
    const t0 = B.nowNs();
    let read = 0;
    let i = 0;
    do {
      const r = scan(starts[i++ & D.QUERY_MASK]!, R.RANGE_KEYS);
      const n = typeof r === "number" ? r : await r;
      if (n !== R.RANGE_KEYS) throw new Error(`a range scan read ${n} entries, expected ${R.RANGE_KEYS}`);
      read += n;
    } while (B.nowNs() - t0 < ms * 1e6);
    return read / ((B.nowNs() - t0) / 1e9);
  };
  await once(D.READ_WARMUP_MS);
  const out: number[] = [];
  for (let r = 0; r < runs; r++) out.push(await once(ms));
  return out;
}

if (import.meta.main) {
  const runs = B.numberFlag("runs", D.READ_RUNS);
  const ms = B.numberFlag("ms", 500);
  const measures: R.Measure[] = [];
  await B.withTmpDir(async (root) => {
    for (const e of D.readers(await engines())) {
      try {
        const store = await e.open(D.storeDir(root, e), { bulk: true });
        await store.load(0, D.KEYS, D.values());
        measures.push(R.measured("range", e, await measureRanges(store, D.KEYS, runs, ms)));
        if (store.rangeKeys) measures.push(R.measured("range-keys", e, await measureRanges(store, D.KEYS, runs, ms, true)));
        await store.close();
      } catch (err) {
        measures.push(R.failed("range", e, err));
      }
    }
  });
  console.log(`## range scans (${B.fmt(R.RANGE_KEYS)} keys each from a random start; ${B.fmt(D.KEYS)} keys of ${B.KEY_BYTES} B, ${B.VALUE_BYTES} B values)\n`);
  console.log(`${runs} runs of ${ms} ms each after a ${D.READ_WARMUP_MS} ms warm-up; each scan reads every value.\n`);
  R.printWorkloads(measures);
  R.printTargets(measures);
  R.writeJson(measures);
  B.finish();
}
