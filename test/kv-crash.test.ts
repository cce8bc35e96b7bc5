// kill -9 of a process writing through harmonydb/kv: every acknowledged commit survives whole
// (its sum, its set and its queue message together), and versionstamps go on growing after.

import { expect, test } from "bun:test";
import * as path from "node:path";
import { open } from "../src/index.ts";
import { Kv, KvU64 } from "../src/kv/index.ts";
import { forEachLine, tmpDir } from "./helpers/index.ts";

const KILLS = Number(process.env.HARMONYDB_KV_KILLS ?? 4);
const child = path.join(import.meta.dir, "helpers/kv-crash-writer.ts");

async function runAndKill(dir: string, ms: number): Promise<{ acked: Map<number, string>; start: number }> {
  const proc = Bun.spawn([process.execPath, child, dir], { stdout: "pipe", stderr: "inherit" });
  const acked = new Map<number, string>();
  let start = -1;
  await forEachLine(proc.stdout, ([word, a, b]) => {
    if (word === "ready") {
      start = Number(a);
      setTimeout(() => proc.kill("SIGKILL"), ms);
    } else if (word === "ack") acked.set(Number(a), b!);
  });
  await proc.exited;
  return { acked, start };
}

test(`kill -9 mid-load through openKv, ${KILLS} times: acknowledged commits survive whole, versionstamps keep growing`, async () => {
  const dir = tmpDir("harmonydb-kv-crash-");
  let seed = Number(process.env.HARMONYDB_SEED ?? Date.now() % 100000);
  console.log(`kv crash test seed ${seed} (HARMONYDB_SEED=${seed} replays the kill delays)`);
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let checked = 0;
  for (let k = 0; k < KILLS; k++) {
    const { acked, start } = await runAndKill(dir, 50 + Math.floor(rand() * 250));
    expect(start).toBeGreaterThanOrEqual(0);
    const db = await open(dir, { log: () => {} });
    const kv = new Kv(db);
    try {
      const count = Number(((await kv.get<KvU64>(["count"])).value ?? new KvU64(0n)).value);
      // Every acknowledged commit is there, at its versionstamp.
      for (const [i, vs] of acked) expect(await kv.get(["item", i])).toMatchObject({ value: { i }, versionstamp: vs });
      // Commits are whole: as many items as the count says, and as many queue messages (none was delivered).
      const items = await Array.fromAsync(kv.list({ prefix: ["item"] }));
      expect(items.length).toBe(count);
      expect([...db.range({ prefix: "\u0000kvq\u0000", keysOnly: true })].length).toBe(count);
      expect(count).toBeGreaterThanOrEqual(Math.max(start, ...[...acked.keys()].map((i) => i + 1)));
      const newest = items.reduce((m, e) => (e.versionstamp > m ? e.versionstamp : m), "");
      const after = await kv.set(["after"], k);
      expect(after.versionstamp > newest).toBe(true);
      checked += acked.size;
    } finally {
      await kv.close();
      await db.close();
    }
  }
  expect(checked).toBeGreaterThan(0);
  console.log(`kv crash test: ${KILLS} kills, ${checked} acknowledged commits checked`);
}, 60_000 + KILLS * 10_000);
