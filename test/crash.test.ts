import { expect, test } from "bun:test";
import * as path from "node:path";
import { open } from "../src/index.ts";
import { forEachLine, tmpDir } from "./helpers/index.ts";

const KILLS = Number(process.env.HARMONYDB_KILLS ?? 20);
const child = path.join(import.meta.dir, "helpers/crash-writer.ts");

/** Runs the writer child, SIGKILLs it after `ms`, returns every index it reported as acknowledged. */
async function runAndKill(dir: string, ms: number): Promise<{ acked: number[]; start: number }> {
  const proc = Bun.spawn([process.execPath, child, dir, "64"], { stdout: "pipe", stderr: "inherit" });
  const acked: number[] = [];
  let start = -1;
  const reader = forEachLine(proc.stdout, ([word, a]) => {
    if (word === "ready") {
      start = Number(a);
      setTimeout(() => proc.kill("SIGKILL"), ms);
    } else if (word === "ack") acked.push(Number(a));
  });
  await proc.exited;
  await reader;
  return { acked, start };
}

test(`kill -9 mid-load, ${KILLS} times: every acknowledged write survives and what survives has no holes`, async () => {
  // A fresh directory every KILLS_PER_DIR kills: reopening replays the whole log, which would
  // otherwise grow with every kill and make the long mode quadratic.
  const KILLS_PER_DIR = 25;
  let dir = tmpDir("harmonydb-crash-");
  let seed = Number(process.env.HARMONYDB_SEED ?? Date.now() % 100000);
  console.log(`crash test seed ${seed} (HARMONYDB_SEED=${seed} replays the kill delays)`);
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let everAcked = 0;
  let fromSnapshot = 0;
  for (let k = 0; k < KILLS; k++) {
    if (k > 0 && k % KILLS_PER_DIR === 0) dir = tmpDir("harmonydb-crash-");
    const { acked, start } = await runAndKill(dir, 20 + Math.floor(rand() * 200));
    expect(start).toBeGreaterThanOrEqual(0);
    const db = await open(dir, { segmentBytes: 256 * 1024, snapshotEveryBytes: 0, log: () => {} });
    try {
      if (db.stats().recovery.snapshot) fromSnapshot++;
      // Every write the child saw acknowledged is there, with its value.
      for (const i of acked) expect(db.get(`w${String(i).padStart(8, "0")}`)).toMatchObject({ i });
      // What survives is a prefix of the write order: keys w0..w(n-1), nothing after a hole.
      const n = db.stats().keys;
      const keys = [...db.range({ prefix: "w" })].map((e) => e.key);
      expect(keys.length).toBe(n);
      expect(keys[keys.length - 1] ?? "").toBe(n === 0 ? "" : `w${String(n - 1).padStart(8, "0")}`);
      expect(n).toBeGreaterThanOrEqual(Math.max(start, ...acked.map((i) => i + 1)));
      expect(db.rev).toBe(n);
      everAcked += acked.length;
    } finally {
      await db.close();
    }
  }
  expect(everAcked).toBeGreaterThan(0);
  console.log(`crash test: ${KILLS} kills, ${everAcked} acknowledged writes checked, ${fromSnapshot} reopens from a snapshot`);
  expect(fromSnapshot).toBeGreaterThan(0);
}, 60_000 + KILLS * 5_000);
