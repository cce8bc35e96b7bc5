// Scenario: reopening a 1M-key store (until the first get answers), and what the store takes on disk.

import { engines, type Engine, type Store } from "./engines/index.ts";
import * as D from "./dataset.ts";
import * as B from "./lib.ts";
import * as R from "./report.ts";

/**
 * `runs` reopens of the store in `dir`, each timed from open() until a get of the first key has
 * answered; every open but the last is closed again. The files were just written, so they are read
 * from the page cache. Returns the times in ms and the store left open.
 */
export async function measureReopens(e: Engine, dir: string, runs: number): Promise<{ runs: number[]; store: Store }> {
  const out: number[] = [];
  for (let r = 0; ; r++) {
    Bun.gc(true); // the previous store's garbage: collected outside the measurement
    const t0 = performance.now();
    const store = await e.open(dir);
    if (store.get(B.key(0)) === undefined) throw new Error("reopened without the first key");
    out.push(performance.now() - t0);
    if (r === runs - 1) return { runs: out, store };
    await store.close();
  }
}

if (import.meta.main) {
  const runs = B.numberFlag("runs", 3);
  const measures: R.Measure[] = [];
  await B.withTmpDir(async (root) => {
    for (const e of D.readers(await engines())) {
      let workload = "load";
      try {
        measures.push(R.measured(workload, e, [await D.loadFamily(root, e, D.KEYS)]));
        workload = "disk";
        measures.push(R.measured(workload, e, [B.diskBytes(D.storeDir(root, e)) / D.KEYS]));
        workload = "reopen";
        const reopened = await measureReopens(e, D.storeDir(root, e), runs);
        measures.push(R.measured(workload, e, reopened.runs));
        await reopened.store.close();
      } catch (err) {
        measures.push(R.failed(workload, e, err));
      }
    }
  });
  console.log(`## reopen and size on disk (${B.fmt(D.KEYS)} keys of ${B.KEY_BYTES} B, ${B.VALUE_BYTES} B values, bulk-loaded)\n`);
  console.log(`Reopen: median of ${runs}, open() until the first get answers, files in the page cache. Disk: allocated blocks after the load and close.\n`);
  R.printWorkloads(measures);
  R.writeJson(measures);
  B.finish();
}
