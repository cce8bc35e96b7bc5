// Results as every scenario hands them over: the workloads, their tables, ratios and targets, once.

import * as fs from "node:fs";
import { FLOOR, GROUP_COMMIT } from "./ceilings.ts";
import * as B from "./lib.ts";

/** One engine's runs of one workload. Scenarios print these, and with `--json FILE` save them for run.ts. */
export interface Measure {
  workload: string;
  /** Engine id (bench/engines) or a raw baseline's id. */
  engine: string;
  name: string;
  /** A resolved put is on disk. */
  durable: boolean;
  /** One value per run, in the workload's unit; empty when the engine failed. */
  runs: number[];
  error?: string;
  /** Engine-specific detail for the notes, e.g. records per fdatasync. */
  note?: string;
}

export interface Workload {
  title: string;
  unit: string;
  /** Times, sizes: lower is better. */
  lower?: boolean;
  /** Runs are interleaved rounds: run i of every engine was measured back to back. */
  paired?: boolean;
  digits?: number;
}

export const MIX_INFLIGHT = 64;
export const RANGE_KEYS = 1000;

const put = (n: number): Workload => ({ title: `durable puts, ${n} in flight`, unit: "puts/s", paired: true });

/** Every workload any scenario reports, in the order the tables show them. */
export const WORKLOADS: Record<string, Workload> = {
  "put@1": put(1),
  "put@16": put(16),
  "put@256": put(256),
  "get@100k": { title: "random gets, 100k keys", unit: "gets/s" },
  "get@1M": { title: "random gets, 1M keys", unit: "gets/s" },
  range: { title: `range scans of ${B.fmt(RANGE_KEYS)} keys, 1M keys`, unit: "keys/s" },
  "range-keys": { title: `range scans of ${B.fmt(RANGE_KEYS)} keys, keys only, 1M keys`, unit: "keys/s" },
  mix: { title: `90% get / 10% durable put, ${MIX_INFLIGHT} in flight, 1M keys`, unit: "ops/s" },
  reopen: { title: "reopen of a 1M-key store (+ first get)", unit: "ms", lower: true, digits: 1 },
  disk: { title: "bytes on disk per key, 1M keys", unit: "B/key", lower: true },
  rss: { title: "peak RSS of the process (load 1M + all reads)", unit: "MiB", lower: true },
  load: { title: "bulk load of 1M keys (not a target; for scale)", unit: "s", lower: true, digits: 1 },
};

export function workload(id: string): Workload {
  const w = WORKLOADS[id];
  if (w === undefined) throw new Error(`unknown workload ${id}`);
  return w;
}

export const SUBJECT = "harmonydb";
/** The ceilings put.ts measures next to the engines. */
export const JS_FLOOR = FLOOR.id;
export const JS_GROUP_COMMIT = GROUP_COMMIT.id;

/** The raw logs and the ceilings: what the disk and JS allow, not engines; their names say what they are. */
export function isBaseline(id: string): boolean {
  return id.startsWith("raw-") || id === JS_FLOOR || id === JS_GROUP_COMMIT;
}

/** As a table names a measure: engines that do not fdatasync say so. */
export function displayName(m: Pick<Measure, "engine" | "name" | "durable">): string {
  return m.name + (m.durable || isBaseline(m.engine) ? "" : " (not durable)");
}

/** subject ÷ peer: the median of per-round ratios for interleaved rounds, else the ratio of medians. */
export function ratio(subject: Measure, peer: Measure): number | undefined {
  if (subject.runs.length === 0 || peer.runs.length === 0) return undefined;
  if (workload(subject.workload).paired === true && subject.runs.length === peer.runs.length) {
    return B.median(subject.runs.map((s, i) => s / peer.runs[i]!));
  }
  return B.median(subject.runs) / B.median(peer.runs);
}

/** "12,345 (11.9k–12.8k)", or "failed: …". */
export function cell(m: Measure | undefined, digits = 0): string {
  if (m === undefined) return "–";
  if (m.runs.length === 0) return "failed (see below)";
  const s = B.spread(m.runs);
  return `${B.fmt(s.median, digits)} (${B.fmtShort(s.min)}–${B.fmtShort(s.max)})`;
}

/** The table one workload prints: a row per engine with median, min–max and HarmonyDB ÷ engine. */
export function workloadTable(measures: readonly Measure[], id: string): { headers: string[]; rows: string[][] } {
  const w = workload(id);
  const here = measures.filter((m) => m.workload === id);
  const subject = here.find((m) => m.engine === SUBJECT);
  const rows = here.map((m) => {
    const s = m.runs.length > 0 ? B.spread(m.runs) : undefined;
    const r = subject !== undefined && m !== subject ? ratio(subject, m) : undefined;
    return [
      displayName(m),
      s === undefined ? `failed: ${m.error ?? "?"}` : B.fmt(s.median, w.digits ?? 0),
      s === undefined ? "–" : `${B.fmtShort(s.min)}–${B.fmtShort(s.max)}`,
      r === undefined ? "–" : B.fmt(r, 2),
      m.note ?? "",
    ];
  });
  return { headers: ["engine", `${w.unit} (median of ${here[0]?.runs.length ?? 0})`, "min–max", "HarmonyDB ÷ engine", "note"], rows };
}

/** Prints one table per workload present in `measures`, titled. */
export function printWorkloads(measures: readonly Measure[]): void {
  for (const id of Object.keys(WORKLOADS)) {
    if (!measures.some((m) => m.workload === id)) continue;
    const w = workload(id);
    console.log(`### ${w.title}${w.lower === true ? " (lower is better)" : ""}\n`);
    const t = workloadTable(measures, id);
    B.table(t.headers, t.rows);
  }
}

// ---- the ceilings: HarmonyDB against what a promise-per-put engine in Bun can reach ----

const CEILING_HEADERS = ["puts in flight", "HarmonyDB, puts/s", "JS group-commit limit", "HarmonyDB ÷ it", "JS floor (no I/O)", "HarmonyDB ÷ it"];

/** A row per level of puts in flight measured with both ceilings: medians and same-run ratios. */
function ceilingRows(measures: readonly Measure[]): string[][] {
  const rows: string[][] = [];
  for (const id of Object.keys(WORKLOADS).filter((w) => w.startsWith("put@"))) {
    const find = (engine: string) => measures.find((m) => m.workload === id && m.engine === engine);
    const subject = find(SUBJECT);
    if (subject === undefined) continue;
    const cells = [JS_GROUP_COMMIT, JS_FLOOR].flatMap((engine) => {
      const peer = find(engine);
      const r = peer === undefined ? undefined : ratio(subject, peer);
      return [cell(peer), r === undefined ? "–" : `${B.fmt(r, 3)}×`];
    });
    rows.push([id.slice(4), cell(subject), ...cells]);
  }
  return rows;
}

export function printCeilings(measures: readonly Measure[]): void {
  const rows = ceilingRows(measures);
  if (rows.length === 0) return;
  console.log("### HarmonyDB ÷ the JS ceilings (same run, median of per-round ratios)\n");
  B.table(CEILING_HEADERS, rows);
}

// ---- targets: ratios from the same run ----

interface Target {
  workload: string;
  /** The peer's engine id. */
  peer: string;
  /** The peer's figure from this workload instead (a target against another of the subject's own). */
  peerWorkload?: string;
  min: number;
  label: string;
}

const TARGETS: Target[] = [
  { workload: "put@256", peer: "lmdb-sync", min: 2, label: "puts, 256 in flight ≥ 2× lmdb-js (overlappingSync off)" },
  { workload: "put@256", peer: "sqlite-batch256", min: 1.5, label: "puts, 256 in flight ≥ 1.5× bun:sqlite, 256 per tx" },
  { workload: "put@256", peer: JS_GROUP_COMMIT, min: 0.5, label: "puts, 256 in flight ≥ 0.5× the JS group-commit limit" },
  { workload: "put@16", peer: "sqlite-batch256", min: 1.5, label: "puts, 16 in flight ≥ 1.5× bun:sqlite, 256 per tx" },
  { workload: "put@16", peer: JS_GROUP_COMMIT, min: 0.5, label: "puts, 16 in flight ≥ 0.5× the JS group-commit limit" },
  { workload: "put@1", peer: "sqlite", min: 1, label: "puts, 1 in flight ≥ 1× bun:sqlite autocommit" },
  { workload: "get@100k", peer: "lmdb-sync", min: 1.5, label: "gets, 100k keys ≥ 1.5× lmdb-js" },
  { workload: "get@1M", peer: "lmdb-sync", min: 1.5, label: "gets, 1M keys ≥ 1.5× lmdb-js" },
  { workload: "range", peer: "sqlite", min: 1.5, label: "range scans ≥ 1.5× bun:sqlite (values included)" },
  { workload: "range", peer: "lmdb-sync", min: 2, label: "range scans ≥ 2× lmdb-js (values included)" },
  { workload: "range-keys", peer: SUBJECT, peerWorkload: "range", min: 2, label: "range scans, keys only ≥ 2× HarmonyDB's own with values" },
];

export interface Verdict {
  label: string;
  ratio: number | undefined;
  min: number;
  ok: boolean;
  peer: string;
}

/** Every target whose workload was measured, with its ratio (undefined when a side failed). */
export function verdicts(measures: readonly Measure[]): Verdict[] {
  const out: Verdict[] = [];
  for (const t of TARGETS) {
    const here = measures.filter((m) => m.workload === t.workload);
    const subject = here.find((m) => m.engine === SUBJECT);
    if (subject === undefined) continue;
    const peer = measures.find((m) => m.workload === (t.peerWorkload ?? t.workload) && m.engine === t.peer);
    if (peer === undefined) continue;
    const r = ratio(subject, peer);
    out.push({ label: t.label, ratio: r, min: t.min, ok: r !== undefined && r >= t.min, peer: peer.name });
  }
  return out;
}

export function verdictRows(measures: readonly Measure[]): string[][] {
  return verdicts(measures).map((v) => [
    v.label,
    v.peer,
    v.ratio === undefined ? "not measured" : `${B.fmt(v.ratio, 2)}×`,
    v.ratio === undefined ? "MISSED (no figure)" : v.ok ? "ok" : `MISSED (${B.fmt((v.ratio / v.min) * 100, 0)}% of target)`,
  ]);
}

export function printTargets(measures: readonly Measure[]): void {
  const rows = verdictRows(measures);
  if (rows.length === 0) return;
  console.log("### targets (HarmonyDB ÷ peer, same run)\n");
  B.table(["target", "peer", "ratio", "verdict"], rows);
}

/** With `--json FILE`, saves the measures for run.ts. */
export function writeJson(measures: readonly Measure[]): void {
  const file = B.stringFlag("json");
  if (file !== undefined) fs.writeFileSync(file, JSON.stringify(measures, null, 1));
}

/** A measure for an engine that could not be opened or failed part-way. */
export function failed(workloadId: string, e: { id: string; name: string; durable: boolean }, err: unknown): Measure {
  const message = err instanceof Error ? err.message.split("\n")[0]! : String(err);
  return { workload: workloadId, engine: e.id, name: e.name, durable: e.durable, runs: [], error: message };
}

/** A measure of `e` (an engine) on a workload. */
export function measured(workloadId: string, e: { id: string; name: string; durable: boolean }, runs: number[], note?: string): Measure {
  return { workload: workloadId, engine: e.id, name: e.name, durable: e.durable, runs, ...(note === undefined ? {} : { note }) };
}

// ---- bench/results/latest.md ----

export interface EngineInfo {
  id: string;
  name: string;
  durable: boolean;
  notes: string;
  version: string;
}

export interface RunInfo {
  command: string;
  seconds: number;
  machine: string;
  harmonydb: string;
  engines: readonly EngineInfo[];
  /** Markdown of scenarios that measure HarmonyDB alone, appended as they printed it. */
  appendix: string;
}

/** Table order: HarmonyDB, the ceilings, the raw baselines, then the peers as the scenarios listed them. */
const COLUMN_ORDER = [SUBJECT, JS_GROUP_COMMIT, JS_FLOOR, "raw-overwrite", "raw-append"];

function columns(measures: readonly Measure[]): Measure[] {
  const first = new Map<string, Measure>();
  for (const m of measures) if (!first.has(m.engine)) first.set(m.engine, m);
  const rank = (m: Measure) => (COLUMN_ORDER.includes(m.engine) ? COLUMN_ORDER.indexOf(m.engine) : COLUMN_ORDER.length);
  return [...first.values()].sort((a, b) => rank(a) - rank(b));
}

function present(measures: readonly Measure[]): string[] {
  return Object.keys(WORKLOADS).filter((id) => measures.some((m) => m.workload === id));
}

const title = (id: string) => {
  const w = workload(id);
  return `${w.title}, ${w.unit}${w.lower === true ? " (lower is better)" : ""}`;
};

function line(cells: readonly string[]): string {
  return `| ${cells.join(" | ")} |`;
}

function mdTable(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line), ""];
}

/** Rows = workloads, columns = engines: "median (min–max)". */
function resultsMatrix(measures: readonly Measure[]): string[] {
  const cols = columns(measures);
  const rows = present(measures).map((id) => {
    const digits = workload(id).digits ?? 0;
    return [title(id), ...cols.map((c) => cell(measures.find((m) => m.workload === id && m.engine === c.engine), digits))];
  });
  return mdTable(["workload", ...cols.map(displayName)], rows);
}

/** Rows = workloads, columns = everything but HarmonyDB: HarmonyDB ÷ that. */
function ratioMatrix(measures: readonly Measure[]): string[] {
  const cols = columns(measures).filter((c) => c.engine !== SUBJECT);
  const rows = present(measures).map((id) => {
    const subject = measures.find((m) => m.workload === id && m.engine === SUBJECT);
    return [
      title(id),
      ...cols.map((c) => {
        const peer = measures.find((m) => m.workload === id && m.engine === c.engine);
        const r = subject !== undefined && peer !== undefined ? ratio(subject, peer) : undefined;
        return r === undefined ? "–" : `${B.fmt(r, 2)}×`;
      }),
    ];
  });
  return mdTable(["workload", ...cols.map((c) => c.name)], rows);
}

function notes(measures: readonly Measure[]): string[] {
  const out = measures.filter((m) => m.note !== undefined && !m.engine.startsWith("raw-")).map((m) => `- ${m.name}, ${workload(m.workload).title}: ${m.note}`);
  const failures = measures.filter((m) => m.runs.length === 0).map((m) => `- **${m.name} failed** (${workload(m.workload).title}): ${m.error ?? "?"}`);
  return [...failures, ...out];
}

/** The whole of bench/results/latest.md. */
export function markdownReport(measures: readonly Measure[], run: RunInfo): string {
  const runs = Math.max(...measures.map((m) => m.runs.length));
  return [
    "# HarmonyDB and the engines a Bun user would pick instead",
    "",
    `\`${run.command}\` on ${run.machine}; the whole run took ${B.fmt(run.seconds)} s. HarmonyDB ${run.harmonydb}.`,
    "",
    "![Durable puts/s against puts in flight, one line per engine, log scales](latest.svg)",
    "",
    "## Targets (HarmonyDB ÷ peer, measured in the same run)",
    "",
    ...mdTable(["target", "peer", "ratio", "verdict"], verdictRows(measures)),
    "## HarmonyDB against the JS ceilings",
    "",
    "The JS floor: the same callers, each awaiting its own promise, settled once per microtask turn, a 128 B copy and no I/O. " +
      "The JS group-commit limit: the same, with the records handed to a worker through a SharedArrayBuffer ring that does one write + " +
      "one fdatasync per batch while the next collects (bench/ceilings.ts). See bench/README.md.",
    "",
    ...mdTable(CEILING_HEADERS, ceilingRows(measures)),
    `## Results: median of ${runs} runs (min–max)`,
    "",
    `${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values (random bytes). Puts write new keys and are timed in interleaved rounds ` +
      "(every engine once, then the next round, the order rotating) so that drift in the disk hits all alike; the raw " +
      `baselines write N × ${B.RAW_RECORD_BYTES} B records per write + fdatasync on a plain file. The read-side workloads ` +
      "run on one bulk-loaded store per engine family, each family in its own process (so peak RSS is that engine's), " +
      "after 1 s of untimed reads; reopen reads files in the page cache; bytes on disk are allocated blocks after the " +
      "bulk load and close. Single figures (disk, RSS, load) are one measurement. See bench/README.md.",
    "",
    ...resultsMatrix(measures),
    "## HarmonyDB ÷ engine",
    "",
    "Above 1 HarmonyDB is faster, except where lower is better (ms, B/key, MiB): there below 1 is better. Interleaved rounds: median of per-round ratios; otherwise ratio of medians.",
    "",
    ...ratioMatrix(measures),
    "## Engines",
    "",
    ...mdTable(
      ["engine", "durable when a put resolves", "configuration", "version"],
      run.engines.map((e) => [e.name, e.durable ? "yes" : "**no**", e.notes, e.version]),
    ),
    ...notes(measures),
    "",
    run.appendix === "" ? "" : `## HarmonyDB alone\n\n${run.appendix}`,
  ].join("\n");
}
