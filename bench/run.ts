// Runs every scenario, one fresh Bun process each, in turn, and writes bench/results/latest.md and
// latest.svg: `bun run bench` (or `bun bench/run.ts put loaded` for some of them).

import * as fs from "node:fs";
import * as path from "node:path";
import { putChart } from "./chart.ts";
import { engines } from "./engines/index.ts";
import * as B from "./lib.ts";
import * as R from "./report.ts";

interface Scenario {
  name: string;
  args: string[];
  /** "compare": engines side by side, saved as JSON for the results; "alone": HarmonyDB only, its output appended. */
  kind: "compare" | "alone";
  /** Longer than SCENARIO_MS_MAX, for a scenario that needs it. */
  timeoutMs?: number;
}

const SCENARIOS: Scenario[] = [
  { name: "put", args: [], kind: "compare" },
  { name: "loaded", args: [], kind: "compare" },
  { name: "put-latency", args: [], kind: "alone" },
  { name: "replay", args: [], kind: "alone" },
  { name: "http-put", args: [], kind: "alone" },
  // Deno KV's own engine (the npm deno) against harmonydb/kv's openKv and KV Connect: ~80 s.
  { name: "kv", args: [], kind: "alone" },
  // Four parts, a fresh process each (snapshot.ts runs them); 10M overwrites twice, and a replay of
  // them without a snapshot: ~16 min here. `bun bench/run.ts snapshot` runs it alone.
  { name: "snapshot", args: ["--overwrites", "10000000"], kind: "alone", timeoutMs: 3_600_000 },
];
/** Bounds a hung scenario; the longest (loaded: four engine processes) took 95 s here. */
const SCENARIO_MS_MAX = 360_000;

const root = path.join(import.meta.dir, "..");
const resultsDir = path.join(import.meta.dir, "results");
const only = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const chosen = only.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => only.includes(s.name));
if (chosen.length === 0) throw new Error(`no scenario named ${only.join(", ")}; have ${SCENARIOS.map((s) => s.name).join(", ")}`);

interface Outcome {
  status: string;
  seconds: number;
  measures: R.Measure[];
  output: string;
}

/** One scenario in its own process: a clean heap, and its worker threads cannot outlive it. */
function runScenario(s: Scenario, jsonFile: string): Outcome {
  const file = path.join("bench", `${s.name}.ts`);
  console.log(`\n$ bun ${[file, ...s.args].join(" ")}\n`);
  const args = s.kind === "compare" ? [...s.args, "--json", jsonFile] : s.args;
  const t0 = performance.now();
  const proc = Bun.spawnSync([process.execPath, file, ...args], {
    cwd: root,
    stdout: s.kind === "alone" ? "pipe" : "inherit",
    stderr: "inherit",
    timeout: s.timeoutMs ?? SCENARIO_MS_MAX,
  });
  const output = s.kind === "alone" ? (proc.stdout?.toString() ?? "") : "";
  process.stdout.write(output);
  const status = proc.exitCode === 0 ? "ok" : proc.signalCode ? `killed (${proc.signalCode})` : `exit ${proc.exitCode}`;
  const measures = s.kind === "compare" && fs.existsSync(jsonFile) ? (JSON.parse(fs.readFileSync(jsonFile, "utf8")) as R.Measure[]) : [];
  return { status, seconds: (performance.now() - t0) / 1000, measures, output };
}

const t0 = performance.now();
const outcomes = await B.withTmpDir(async (dir) => chosen.map((s, i) => runScenario(s, path.join(dir, `${i}-${s.name}.json`))));
const seconds = (performance.now() - t0) / 1000;
const measures = outcomes.flatMap((o) => o.measures);

console.log("\n## summary\n");
B.table(
  ["scenario", "status", "seconds"],
  chosen.map((s, i) => [s.name, outcomes[i]!.status, B.fmt(outcomes[i]!.seconds, 1)]),
);
R.printTargets(measures);

// A partial run would overwrite the full results with less: only a full run (or --write) writes them.
if (measures.length > 0 && (chosen.length === SCENARIOS.length || B.flag("write"))) {
  const list = await engines();
  const harmony = list.find((e) => e.subject === true);
  const date = new Date().toISOString().slice(0, 16).replace("T", " ");
  const md = R.markdownReport(measures, {
    command: ["bun bench/run.ts", ...process.argv.slice(2)].join(" "),
    seconds,
    machine: B.machine(),
    harmonydb: harmony?.version() ?? "?",
    engines: list.map((e) => ({ id: e.id, name: e.name, durable: e.durable, notes: e.notes, version: e.version() })),
    appendix: outcomes.map((o) => o.output.replace(/^## /gm, "### ")).join(""),
  });
  const subtitle = `${B.KEY_BYTES} B keys, ${B.VALUE_BYTES} B values; medians of interleaved runs; dashed: raw write + fdatasync (grey) and the JS ceilings (black); ${date} UTC`;
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(path.join(resultsDir, "latest.md"), md);
  if (measures.some((m) => m.workload.startsWith("put@"))) fs.writeFileSync(path.join(resultsDir, "latest.svg"), putChart(measures, subtitle));
  console.log(`wrote ${path.relative(process.cwd(), resultsDir)}/latest.md and latest.svg`);
}
console.log(`total: ${B.fmt(seconds, 1)} s`);
process.exit(outcomes.every((o) => o.status === "ok") ? 0 : 1);
