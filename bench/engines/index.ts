// Every adapter file in bench/engines/ (each exports `engines: Engine[]`), HarmonyDB first: adding an
// engine to every scenario is adding one file here.

import * as path from "node:path";
import type { Engine } from "./engine.ts";

const NOT_ADAPTERS = new Set(["engine.ts", "index.ts"]);

export type { Engine, OpenOptions, Store, Value } from "./engine.ts";

/** All engines, or those named by `--engines id,id` (ids or families). */
export async function engines(): Promise<Engine[]> {
  const files = [...new Bun.Glob("*.ts").scanSync(import.meta.dir)].filter((f) => !NOT_ADAPTERS.has(f)).sort();
  const all: Engine[] = [];
  for (const file of files) {
    const mod = (await import(path.join(import.meta.dir, file))) as { engines?: Engine[] };
    if (!Array.isArray(mod.engines)) throw new Error(`bench/engines/${file} does not export an engines array`);
    all.push(...mod.engines);
  }
  all.sort((a, b) => Number(b.subject === true) - Number(a.subject === true));
  const i = process.argv.indexOf("--engines");
  if (i < 0) return all;
  const wanted = new Set((process.argv[i + 1] ?? "").split(","));
  const chosen = all.filter((e) => wanted.has(e.id) || wanted.has(e.family));
  if (chosen.length === 0) throw new Error(`--engines: none of ${[...wanted].join(", ")}; have ${all.map((e) => e.id).join(", ")}`);
  return chosen;
}

/** The subject (HarmonyDB) among `list`, if it is there. */
export function subjectOf(list: readonly Engine[]): Engine | undefined {
  return list.find((e) => e.subject === true);
}
