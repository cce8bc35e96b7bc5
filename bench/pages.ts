// Scenario: what fresh memory costs at open. A file (a snapshot, a segment) read into a new buffer,
// then one pass over it (a checksum): into a plain Uint8Array (4 KiB pages), and into allocLarge's
// buffer (advised for 2 MiB transparent huge pages). Also filling fresh memory, as the arena does.
//
//   bun bench/pages.ts [--mib 128] [--rounds 3]

import * as fs from "node:fs";
import * as path from "node:path";
import { allocLarge } from "../src/bytes.ts";
import * as B from "./lib.ts";

const MIB = B.numberFlag("mib", 128);
const ROUNDS = B.numberFlag("rounds", 3);
const size = MIB * 1024 * 1024;

function readInto(file: string, b: Uint8Array): void {
  const fd = fs.openSync(file, "r");
  try {
    for (let done = 0; done < size; ) done += fs.readSync(fd, b, done, size - done, done);
  } finally {
    fs.closeSync(fd);
  }
}

const kinds: [string, (n: number) => Uint8Array][] = [
  ["plain Uint8Array", (n) => new Uint8Array(n)],
  ["allocLarge (huge pages advised)", allocLarge],
];

/** One measurement in this (fresh) process: memory a process freed earlier would come back faulted in. */
function measure(kind: number, file: string): { read: number; fill: number } {
  const alloc = kinds[kind]![1];
  let t0 = performance.now();
  const b = alloc(size);
  readInto(file, b);
  if (Bun.hash.crc32(b) === 0.5) console.log("unreachable");
  const read = performance.now() - t0;
  t0 = performance.now();
  const f = alloc(size);
  for (let i = 0; i < size; i += 4096) f[i] = 1;
  return { read, fill: performance.now() - t0 };
}

const one = B.stringFlag("one");
if (one !== undefined) {
  console.log(JSON.stringify(measure(Number(one), B.stringFlag("file")!)));
  process.exit(0);
}

await B.withTmpDir(async (dir) => {
  const file = path.join(dir, "data");
  fs.writeFileSync(file, new Uint8Array(size).map((_, i) => (i * 2654435761) >>> 24));
  const ms = kinds.map(() => ({ read: [] as number[], fill: [] as number[] }));
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < kinds.length; k++) {
      const p = Bun.spawnSync([process.execPath, import.meta.path, "--one", String(k), "--file", file, "--mib", String(MIB)]);
      if (p.exitCode !== 0) throw new Error(`measurement failed: ${p.stderr.toString()}`);
      const m = JSON.parse(p.stdout.toString().trim()) as { read: number; fill: number };
      ms[k]!.read.push(m.read);
      ms[k]!.fill.push(m.fill);
    }
  }
  const base = ms[0]!;
  console.log(`## Fresh memory: ${MIB} MiB, a fresh process per measurement, median of ${ROUNDS} rounds, interleaved\n`);
  B.table(
    ["buffer", "read file + checksum ms", "÷ plain", "touch every page ms", "÷ plain"],
    kinds.map(([name], k) => {
      const m = ms[k]!;
      return [name, B.fmt(B.median(m.read)), B.fmt(B.median(m.read) / B.median(base.read), 2), B.fmt(B.median(m.fill)), B.fmt(B.median(m.fill) / B.median(base.fill), 2)];
    }),
  );
  const thp = "/sys/kernel/mm/transparent_hugepage/enabled";
  console.log(`\n${thp}: ${fs.existsSync(thp) ? fs.readFileSync(thp, "utf8").trim() : "(none)"}`);
});
B.finish();
