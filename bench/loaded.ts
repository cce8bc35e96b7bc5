// Every read-side workload on one loaded store per engine family, each family in a fresh process: 1M
// keys are loaded once and shared by gets, range scans, reopen and the 90/10 mix, and the process's
// peak RSS is that one engine's.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { heapStats } from "bun:jsc";
import { engines, type Engine, type Store } from "./engines/index.ts";
import * as D from "./dataset.ts";
import { measureGets } from "./get.ts";
import * as B from "./lib.ts";
import { measureMix } from "./mix.ts";
import * as R from "./report.ts";
import { measureRanges } from "./range.ts";
import { measureReopens } from "./reopen.ts";

const RUNS = B.numberFlag("runs", D.READ_RUNS);
const READ_MS = B.numberFlag("ms", 500);
const MIX_MS = READ_MS;
const PHASES = B.flag("phases");
/** Bounds one family's process; the slowest (HarmonyDB: load, three reopens of ~3 s) took 38 s here. */
const FAMILY_MS_MAX = 180_000;

/** The reader's workloads, in the order measureFamily runs them; the mix then runs once per variant. */
const STEPS = ["load", "get@100k", "disk", "reopen", "get@1M", "range", "range-keys"] as const;

/** When `step` fails, it and everything after it fail with the same error, so each table says so. */
function failedFrom(step: string, reader: Engine, variants: readonly Engine[], err: unknown): R.Measure[] {
  const later = STEPS.slice(Math.max(0, STEPS.indexOf(step as (typeof STEPS)[number])));
  return [...later.map((w) => R.failed(w, reader, err)), ...variants.map((e) => R.failed("mix", e, err)), R.failed("rss", reader, err)];
}

/**
 * With --phases: the process's RSS and the JS heap (its size, and the part of it that is buffers:
 * ArrayBuffers and SharedArrayBuffers) after a step, on stderr, so that a peak can be traced to one.
 */
function phase(name: string): void {
  if (!PHASES) return;
  const h = heapStats();
  const MiB = (n: number) => B.fmt(n / 2 ** 20).padStart(6);
  console.error(`rss ${MiB(process.memoryUsage().rss)} MiB, peak ${MiB(B.peakRssBytes())}, heap ${MiB(h.heapSize)} (buffers ${MiB(h.extraMemorySize)})  after ${name}`);
}

/**
 * `e`, whose stores let go of the engine's objects once closed: a copy of the adapter's methods,
 * emptied by close(). A closed store that a variable still holds (measureReopens' loop keeps the
 * previous one while it collects garbage before the next open) then keeps nothing of the engine
 * alive: with a JS engine, its buffers would count as live heap, and the heap is let grow to about
 * twice its live size before a full collection, which is the peak RSS measured here. Gets and
 * ranges call the adapter's own functions, as before.
 */
function lettingGo(e: Engine): Engine {
  return {
    ...e,
    async open(dir, options) {
      const store: Partial<Store> = { ...(await e.open(dir, options)) };
      const close = store.close!;
      store.close = async () => {
        for (const k of Object.keys(store)) delete store[k as keyof Store];
        await close();
      };
      return store as Store;
    },
  };
}

/** Load, gets, reopen, gets, ranges, then the mix for each write path of the family. */
async function measureFamily(root: string, reader: Engine, variants: readonly Engine[]): Promise<R.Measure[]> {
  const out: R.Measure[] = [];
  const dir = D.storeDir(root, reader);
  const vals = D.values();
  D.queries(D.KEYS_SMALL); // the query pools, before the engine: not part of its RSS growth
  D.queries(D.KEYS);
  const harnessMiB = process.memoryUsage().rss / 2 ** 20;
  let step: string = "load";
  try {
    // A closed store is let go of at once (`store = undefined`): one still referenced here keeps
    // its buffers alive, and a JS engine's heap then grows in proportion to them (about 2× the
    // live heap before a full collection), which counts in the peak RSS.
    phase("the query pools");
    const t0 = performance.now();
    let store: Store | undefined = await lettingGo(reader).open(dir, { bulk: true });
    await store.load(0, D.KEYS_SMALL, vals);
    const smallS = (performance.now() - t0) / 1000;
    phase("load 100k");
    step = "get@100k";
    const gets = measureGets(store, D.KEYS_SMALL, RUNS, READ_MS);
    phase("get@100k");
    step = "load";
    const t1 = performance.now();
    await store.load(D.KEYS_SMALL, D.KEYS, vals);
    phase("load 1M");
    await store.close();
    store = undefined;
    phase("close");
    out.push(R.measured("load", reader, [smallS + (performance.now() - t1) / 1000]));
    out.push(R.measured("get@100k", reader, gets));
    step = "disk";
    out.push(R.measured(step, reader, [B.diskBytes(dir) / D.KEYS]));
    step = "reopen";
    const reopened = await measureReopens(lettingGo(reader), dir, RUNS);
    out.push(R.measured(step, reader, reopened.runs));
    store = reopened.store;
    phase(`${RUNS} reopens`);
    await store.settle?.(); // HarmonyDB zero-fills its next segment after open: not while reads are timed
    step = "get@1M";
    out.push(R.measured(step, reader, measureGets(store, D.KEYS, RUNS, READ_MS)));
    phase("get@1M");
    step = "range";
    out.push(R.measured(step, reader, await measureRanges(store, D.KEYS, RUNS, READ_MS)));
    phase("range");
    step = "range-keys";
    if (store.rangeKeys) {
      out.push(R.measured(step, reader, await measureRanges(store, D.KEYS, RUNS, READ_MS, true)));
      phase("range, keys only");
    }
    await store.close();
    store = undefined;
    phase("close");
  } catch (err) {
    return [...out, ...failedFrom(step, reader, variants, err)];
  }
  for (const e of variants) {
    try {
      const store = await lettingGo(e).open(dir);
      await store.settle?.();
      out.push(R.measured("mix", e, await measureMix(store, D.KEYS, RUNS, MIX_MS)));
      phase(`mix (${e.id})`);
      await store.close();
    } catch (err) {
      out.push(R.failed("mix", e, err));
    }
  }
  const peakMiB = B.peakRssBytes() / 2 ** 20;
  // Steady: what stays once every store is closed and collected (the peak is read before this).
  Bun.gc(true);
  const steadyMiB = process.memoryUsage().rss / 2 ** 20;
  phase("the end, Bun.gc(true)");
  out.push(R.measured("rss", reader, [peakMiB], `harness alone ${B.fmt(harnessMiB)} MiB; after all closed and Bun.gc(true) ${B.fmt(steadyMiB)} MiB`));
  return out;
}

/** One child process per family (`--family F`), each writing its measures to a file; merged in order. */
async function measureAll(list: readonly Engine[]): Promise<R.Measure[]> {
  const out: R.Measure[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-bench-json-"));
  try {
    for (const reader of D.readers(list)) {
      const file = path.join(tmp, `${reader.family}.json`);
      const args = ["--family", reader.family, "--runs", String(RUNS), "--ms", String(READ_MS)];
      const engineFlag = process.argv.indexOf("--engines");
      if (engineFlag >= 0) args.push("--engines", process.argv[engineFlag + 1] ?? "");
      console.log(`$ bun ${path.relative(process.cwd(), import.meta.path)} ${args.join(" ")}`);
      const t0 = performance.now();
      const proc = Bun.spawnSync([process.execPath, import.meta.path, ...args, "--json", file, "--quiet"], {
        stdout: "inherit",
        stderr: "inherit",
        timeout: FAMILY_MS_MAX,
      });
      console.log(`  ${proc.exitCode === 0 ? "done" : `failed (${proc.signalCode ?? `exit ${proc.exitCode}`})`} in ${B.fmt((performance.now() - t0) / 1000, 1)} s`);
      if (proc.exitCode === 0 && fs.existsSync(file)) out.push(...(JSON.parse(fs.readFileSync(file, "utf8")) as R.Measure[]));
      else out.push(...failedFrom("load", reader, D.family(list, reader), new Error(`its process ${proc.signalCode ?? `exited with ${proc.exitCode}`}`)));
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.main) {
  const list = await engines();
  const familyName = B.stringFlag("family");
  let measures: R.Measure[];
  if (familyName === undefined) {
    measures = await measureAll(list);
  } else {
    const reader = D.readers(list).find((e) => e.family === familyName);
    if (reader === undefined) throw new Error(`--family ${familyName}: no such engine family`);
    measures = await B.withTmpDir((root) => measureFamily(root, reader, D.family(list, reader)));
  }
  if (!B.flag("quiet")) {
    console.log(`\n## read-side workloads on a loaded store (${B.fmt(D.KEYS)} keys of ${B.KEY_BYTES} B, ${B.VALUE_BYTES} B values)\n`);
    console.log(
      `One process per engine family: bulk-load ${B.fmt(D.KEYS_SMALL)} keys, gets; load to ${B.fmt(D.KEYS)}, close, size on disk; ` +
        `${RUNS} reopens; gets, range scans; then the mix once per write path. Medians of ${RUNS} runs of ${READ_MS} ms after ${D.READ_WARMUP_MS} ms untimed (the mix after ${D.READ_WARMUP_MS / 2} ms).\n`,
    );
    R.printWorkloads(measures);
    R.printTargets(measures);
  }
  R.writeJson(measures);
  if (familyName === undefined || !B.flag("quiet")) B.finish();
  process.exit(0);
}
