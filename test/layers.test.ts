// The layers of docs/architecture.md, checked: imports only go down, and no two modules import each other.

import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";

const root = path.join(import.meta.dir, "..");

/** Lower layers first. A module may import its own folder or a folder of a lower rank, nothing else. */
const RANKS: [folder: string, rank: number][] = [
  ["src/base", 0], // src/assert.ts bytes.ts errors.ts limits.ts (see layerOf)
  ["src/io", 1],
  ["src/codec", 2],
  ["src/format", 3],
  ["src/snapshot", 4],
  ["src/wal", 5],
  ["src/store", 6],
  ["src/write", 7],
  ["src/archive", 7], // beside write/: neither imports the other
  ["src/api", 8], // every other file directly in src/: the public surface and the Db facade
  ["src/kv", 9], // Deno KV over the public surface (docs/deno-kv.md); the server's KV Connect above it
  ["src/tools", 10],
  ["src/server", 10],
  ["workers", 10],
];
const BASE = new Set(["assert.ts", "bytes.ts", "errors.ts", "limits.ts"]);

function layerOf(file: string): string {
  const rel = path.relative(root, file).split(path.sep).join("/");
  const parts = rel.split("/");
  if (parts[0] === "workers") return "workers";
  if (parts.length === 2) return BASE.has(parts[1]!) ? "src/base" : "src/api";
  // The fronts are one layer each, whatever folders they keep inside (src/server/routes/).
  if (parts[1] === "server" || parts[1] === "tools") return `src/${parts[1]}`;
  return `${parts[0]}/${parts[1]}`;
}

function rankOf(layer: string): number {
  const r = RANKS.find(([f]) => f === layer);
  if (!r) throw new Error(`no rank for layer ${layer}: add it to RANKS and docs/architecture.md`);
  return r[1];
}

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => path.join(root, dir, f));
}

/** Relative imports of a module (static, type-only, side-effect, dynamic), resolved to files. */
export function importsOf(file: string, text = fs.readFileSync(file, "utf8")): string[] {
  const re = /(?:^|[\s;])(?:import|export)\b[^"'`;]*?\bfrom\s*["'](\.[^"']+)["']|\bimport\s*\(\s*["'](\.[^"']+)["']|^import\s+["'](\.[^"']+)["']/gm;
  return [...text.matchAll(re)].map((m) => path.resolve(path.dirname(file), m[1] ?? m[2] ?? m[3]!));
}

/**
 * Worker entries a module starts (`new Worker(new URL("…/workers/x.ts", import.meta.url))`): not
 * imports. The entry is a thin shell over the module that starts it (STYLE.md), so it points back up.
 */
export function spawnsOf(file: string, text = fs.readFileSync(file, "utf8")): string[] {
  return [...text.matchAll(/new URL\(\s*["'](\.[^"']+)["']/g)].map((m) => path.resolve(path.dirname(file), m[1]!));
}

const files = [...sources("src"), ...sources("workers")];
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe("layers", () => {
  test("the import parser sees static, type-only, side-effect and dynamic imports; worker URLs apart", () => {
    const text = [
      'import { a } from "./a.ts";',
      'import type { B } from "../b.ts";',
      'export { c } from "./c.ts";',
      'import "./d.ts";',
      'const m = await import("./e.ts");',
      'new Worker(new URL("../f.ts", import.meta.url));',
      'import {\n  g,\n  h,\n} from "./g.ts";',
      'import x from "node:fs";',
    ].join("\n");
    const got = importsOf("/x/y/z.ts", text).map((f) => path.relative("/x", f));
    expect(got.sort()).toEqual(["b.ts", "y/a.ts", "y/c.ts", "y/d.ts", "y/e.ts", "y/g.ts"].sort());
    expect(spawnsOf("/x/y/z.ts", text).map((f) => path.relative("/x", f))).toEqual(["f.ts"]);
  });

  test("every import goes to the same folder or a lower layer", () => {
    const upward: string[] = [];
    for (const [file, deps] of graph) {
      const from = layerOf(file);
      for (const dep of deps) {
        const to = layerOf(dep);
        if (to !== from && rankOf(to) >= rankOf(from)) upward.push(`${path.relative(root, file)} → ${path.relative(root, dep)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  test("the server uses only the public surfaces (src/index.ts, harmonydb/kv's src/kv/index.ts) and its own files", () => {
    const outside: string[] = [];
    const surfaces = new Set([path.join(root, "src/index.ts"), path.join(root, "src/kv/index.ts")]);
    for (const [file, deps] of graph) {
      if (layerOf(file) !== "src/server") continue;
      for (const dep of deps) {
        if (layerOf(dep) !== "src/server" && !surfaces.has(dep)) outside.push(`${path.relative(root, file)} → ${path.relative(root, dep)}`);
      }
    }
    expect(outside).toEqual([]);
  });

  test("no import cycle between modules", () => {
    // Tarjan's strongly connected components: any with more than one module is a cycle.
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const cycles: string[][] = [];
    let next = 0;
    const visit = (v: string) => {
      index.set(v, next);
      low.set(v, next++);
      stack.push(v);
      onStack.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!graph.has(w)) continue;
        if (!index.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
      if (low.get(v) === index.get(v)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(path.relative(root, w));
        } while (w !== v);
        if (scc.length > 1) cycles.push(scc.sort());
      }
    };
    for (const f of graph.keys()) if (!index.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  test("every import and worker entry names a file that exists", () => {
    const missing: string[] = [];
    for (const [file, deps] of graph) {
      for (const dep of [...deps, ...spawnsOf(file)]) if (!fs.existsSync(dep)) missing.push(`${path.relative(root, file)} → ${dep}`);
    }
    expect(missing).toEqual([]);
  });
});
