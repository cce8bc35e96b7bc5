// Runs every scenario, one fresh Bun process each, in turn: `bun run bench` (or `bun bench/run.ts get replay`).

import * as path from "node:path";

const SCENARIOS: { name: string; args: string[] }[] = [
  { name: "put-latency", args: [] },
  { name: "put-throughput", args: ["--sweep"] },
  { name: "get", args: [] },
  { name: "replay", args: [] },
];
/** No scenario takes more than about a minute here; this bounds a hung one. */
const SCENARIO_MS_MAX = 240_000;

const root = path.join(import.meta.dir, "..");
const only = process.argv.slice(2);
const chosen = only.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => only.includes(s.name));
if (chosen.length === 0) throw new Error(`no scenario named ${only.join(", ")}; have ${SCENARIOS.map((s) => s.name).join(", ")}`);

const summary: string[][] = [];
for (const s of chosen) {
  const file = path.join("bench", `${s.name}.ts`);
  console.log(`\n$ bun ${[file, ...s.args].join(" ")}\n`);
  const t0 = performance.now();
  // A separate process per scenario: a clean heap, and one scenario's worker threads cannot outlive it.
  const proc = Bun.spawnSync([process.execPath, file, ...s.args], {
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
    timeout: SCENARIO_MS_MAX,
  });
  const seconds = (performance.now() - t0) / 1000;
  const status = proc.exitCode === 0 ? "ok" : proc.signalCode ? `killed (${proc.signalCode})` : `exit ${proc.exitCode}`;
  summary.push([s.name, status, seconds.toFixed(1)]);
}

console.log("\n## summary\n");
console.log("| scenario | status | seconds |\n| --- | --- | --- |");
for (const row of summary) console.log(`| ${row.join(" | ")} |`);
process.exit(summary.every((r) => r[1] === "ok") ? 0 : 1);
