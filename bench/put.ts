// Scenario: durable puts with 1, 16 and 256 in flight, every engine against the disk's and JS's ceilings.

import * as path from "node:path";
import * as C from "./ceilings.ts";
import { engines, type Engine, type Store } from "./engines/index.ts";
import * as B from "./lib.ts";
import * as R from "./report.ts";

const LEVELS_DEFAULT = [1, 16, 256];
const VALUES = 1024;
/** A raw overwrite log wraps around at this size, as the WAL reuses 64 MiB segments. */
const RAW_CAPACITY_BYTES = 64 * 1024 * 1024;

interface Subject {
  engine: Engine;
  store: Store | undefined;
  error?: unknown;
  /** Keys written so far: every put writes a new key. */
  next: number;
}

/** A ceiling, driven with new keys as the engines are. */
interface CeilingRun {
  meta: { id: string; name: string; durable: boolean };
  ceiling: C.Ceiling;
  next: number;
}

const RAW_NAMES = {
  append: "raw write + fdatasync (append)",
  overwrite: "raw write + fdatasync (overwrite)",
} as const;

async function openAll(dir: string, list: readonly Engine[]): Promise<Subject[]> {
  const out: Subject[] = [];
  for (const engine of list) {
    try {
      const store = await engine.open(path.join(dir, engine.id));
      await store.settle?.();
      out.push({ engine, store, next: 0 });
    } catch (error) {
      out.push({ engine, store: undefined, error, next: 0 });
    }
  }
  return out;
}

/** One timed run at `inflight`, each put to a new key (`counter.next` on): puts/s, or the error that stopped it. */
async function run(target: Pick<Store, "put">, counter: { next: number }, inflight: number, ms: number, values: readonly Uint8Array[]): Promise<number> {
  const base = counter.next;
  const r = await B.drivePuts((i) => target.put(B.key(base + i), values[i % values.length]!), inflight, { ms });
  counter.next += r.puts;
  return r.perSecond;
}

type RawLogs = Record<"append" | "overwrite", B.RawLog>;

interface Participant {
  id: string;
  /** Set for engines, which may fail and be reported; a baseline failing ends the scenario. */
  subject?: Subject;
  measure: () => Promise<number>;
}

/** The raw logs, the ceilings, then the engines, each measuring `ms` of puts at `inflight`. */
function participants(subjects: readonly Subject[], raw: RawLogs, ceilings: readonly CeilingRun[], inflight: number, ms: number, values: readonly Uint8Array[]): Participant[] {
  return [
    ...(["append", "overwrite"] as const).map((mode) => ({ id: `raw-${mode}`, measure: async () => B.rawGroupRateFor(raw[mode], inflight, ms) })),
    ...ceilings.map((c) => ({ id: c.meta.id, measure: () => run(c.ceiling, c, inflight, ms, values) })),
    ...subjects.map((s) => ({ id: s.engine.id, subject: s, measure: () => run(s.store!, s, inflight, ms, values) })),
  ];
}

/**
 * One level of puts in flight: a short warm-up per engine and ceiling, then `rounds` rounds in which
 * every engine, both raw logs and both ceilings run `ms` each, so that drift in the disk hits all of
 * them alike. The order
 * rotates from round to round, so no engine always runs right after the same other one.
 */
async function measureLevel(subjects: readonly Subject[], raw: RawLogs, ceilings: readonly CeilingRun[], inflight: number, rounds: number, ms: number): Promise<R.Measure[]> {
  const workload = `put@${inflight}`;
  const values = B.valuePool(VALUES) as Uint8Array[];
  const runs = new Map<string, number[]>();
  const failures = new Map<Subject, unknown>(subjects.filter((s) => s.store === undefined).map((s) => [s, s.error]));
  const before = new Map(subjects.map((s) => [s, s.store?.syncStats?.()]));
  const ceilingsBefore = ceilings.map((c) => c.ceiling.syncStats?.());
  // The ceilings warm up as the engines do: both are JS that the JIT has to compile first.
  for (const c of ceilings) await run(c.ceiling, c, inflight, ms / 4, values);
  for (const s of subjects) if (!failures.has(s)) await run(s.store!, s, inflight, ms / 4, values).catch((e) => failures.set(s, e));
  const all = participants(subjects, raw, ceilings, inflight, ms, values);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < all.length; k++) {
      const p = all[(round + k) % all.length]!;
      if (p.subject !== undefined && failures.has(p.subject)) continue;
      try {
        runs.set(p.id, [...(runs.get(p.id) ?? []), await p.measure()]);
      } catch (err) {
        if (p.subject === undefined) throw err;
        failures.set(p.subject, err);
      }
    }
  }
  const out: R.Measure[] = (["append", "overwrite"] as const).map((mode) => ({
    workload,
    engine: `raw-${mode}`,
    name: RAW_NAMES[mode],
    durable: true,
    runs: runs.get(`raw-${mode}`)!,
    note: `${inflight} × ${B.RAW_RECORD_BYTES} B per fdatasync`,
  }));
  ceilings.forEach((c, i) => out.push(R.measured(workload, c.meta, runs.get(c.meta.id)!, syncNote(ceilingsBefore[i], c.ceiling.syncStats?.()))));
  for (const s of subjects) {
    if (failures.has(s)) out.push(R.failed(workload, s.engine, failures.get(s)));
    else out.push(R.measured(workload, s.engine, runs.get(s.engine.id)!, syncNote(before.get(s), s.store?.syncStats?.())));
  }
  return out;
}

/** Every engine (each in its own directory under `dir`), both raw logs and both ceilings, at each level in turn. */
export async function measurePuts(dir: string, list: readonly Engine[], levels: readonly number[], rounds: number, ms: number): Promise<R.Measure[]> {
  const subjects = await openAll(dir, list);
  const raw: RawLogs = {
    append: new B.RawLog(path.join(dir, "raw-append"), "append", RAW_CAPACITY_BYTES),
    overwrite: new B.RawLog(path.join(dir, "raw-overwrite"), "overwrite", RAW_CAPACITY_BYTES),
  };
  const ceilings: CeilingRun[] = [
    { meta: C.GROUP_COMMIT, ceiling: await C.JsGroupCommit.open(path.join(dir, C.GROUP_COMMIT.id), RAW_CAPACITY_BYTES), next: 0 },
    { meta: C.FLOOR, ceiling: new C.JsFloor(), next: 0 },
  ];
  const out: R.Measure[] = [];
  for (const inflight of levels) out.push(...(await measureLevel(subjects, raw, ceilings, inflight, rounds, ms)));
  raw.append.close();
  raw.overwrite.close();
  for (const c of ceilings) await c.ceiling.close();
  for (const s of subjects) await s.store?.close();
  return out;
}

type SyncStats = { records: number; fsyncs: number } | undefined;

function syncNote(before: SyncStats, after: SyncStats): string | undefined {
  if (before === undefined || after === undefined || after.fsyncs === before.fsyncs) return undefined;
  return `${B.fmt((after.records - before.records) / (after.fsyncs - before.fsyncs), 1)} records per fdatasync`;
}

if (import.meta.main) {
  const levels = process.argv.includes("--inflight") ? [B.numberFlag("inflight", 256)] : LEVELS_DEFAULT;
  const rounds = B.numberFlag("rounds", 5);
  const ms = B.numberFlag("ms", 500);
  const list = await engines();
  const measures = await B.withTmpDir((dir) => measurePuts(dir, list, levels, rounds, ms));
  console.log(`## durable puts (${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values, a new key each)\n`);
  console.log(
    `${rounds} interleaved rounds of ${ms} ms per engine and level (order rotating by round), after a ${ms / 4} ms warm-up; ` +
      `raw: ${B.RAW_RECORD_BYTES} B records, N per write + one fdatasync. Ceilings: the same callers and keys, ` +
      `${B.RAW_RECORD_BYTES} B copied per put; the JS floor settles once per microtask, the JS group-commit limit once per ` +
      `worker write + fdatasync. Ratios are medians of per-round ratios.\n`,
  );
  R.printWorkloads(measures);
  R.printCeilings(measures);
  R.printTargets(measures);
  R.writeJson(measures);
  B.finish();
}
