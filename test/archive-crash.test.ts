// kill -9 of an archiving database at seeded moments: the archive never holds a revision the
// database did not make durable, and every revision it holds restores exactly.

import { afterAll, beforeAll, expect, test } from "bun:test";
import * as path from "node:path";
import { open, restore } from "../src/index.ts";
import { forEachLine, tmpDir } from "./helpers/index.ts";
import { startS3, stopS3Servers, type S3Server } from "./helpers/s3.ts";

const KILLS = Number(process.env.HARMONYDB_ARCHIVE_KILLS ?? 3);
const child = path.join(import.meta.dir, "helpers/crash-writer.ts");
const key = (i: number) => `w${String(i).padStart(8, "0")}`;

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(stopS3Servers);

test(`kill -9 while archiving, ${KILLS} times: the archive restores exactly the first revisions it holds, never more than were durable`, async () => {
  let seed = Number(process.env.HARMONYDB_SEED ?? Date.now() % 100000);
  console.log(`archive crash test seed ${seed} (HARMONYDB_SEED=${seed} replays the kill delays)`);
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const env = { S3_ENDPOINT: s3.s3.endpoint!, S3_ACCESS_KEY_ID: "S3RVER", S3_SECRET_ACCESS_KEY: "S3RVER", S3_REGION: "us-east-1" };
  let restoredRevs = 0;
  for (let k = 0; k < KILLS; k++) {
    const dir = tmpDir("harmonydb-archive-crash-");
    const url = s3.url(`crash-${process.pid}-${k}`);
    const proc = Bun.spawn([process.execPath, child, dir, "16"], { stdout: "pipe", stderr: "inherit", env: { ...process.env, ...env, HARMONYDB_TEST_ARCHIVE: url } });
    const acked = new Map<number, number>(); // i → rev
    const delay = 200 + Math.floor(rand() * 600);
    await forEachLine(proc.stdout, ([word, a, b]) => {
      if (word === "ready") setTimeout(() => proc.kill("SIGKILL"), delay);
      else if (word === "ack") acked.set(Number(a), Number(b));
    });
    await proc.exited;
    const local = await open(dir, { log: () => {} });
    const durable = local.rev;
    await local.close();
    for (const rev of acked.values()) expect(rev).toBeLessThanOrEqual(durable);

    const to = path.join(tmpDir(), "restored");
    let r;
    try {
      r = await restore(url, to, { s3: s3.s3, bumpRevision: 0 });
    } catch (err) {
      // Killed before anything reached the bucket: nothing to restore, and nothing was claimed.
      expect((err as Error).message).toContain("holds no archive");
      continue;
    }
    // Never ahead of the database: only durable revisions are shipped.
    expect(r.targetRev).toBeLessThanOrEqual(durable);
    restoredRevs += r.targetRev;
    const back = await open(to);
    try {
      // A fresh directory and single puts of new keys: revision n is the put of w(n-1).
      expect(back.stats().keys).toBe(r.targetRev);
      for (let i = 0; i < r.targetRev; i++) {
        const e = back.getEntry(key(i));
        expect(e?.rev).toBe(i + 1);
        expect((e?.value as { i: number }).i).toBe(i);
        if (acked.has(i)) expect(acked.get(i)).toBe(i + 1);
      }
      expect(back.get(key(r.targetRev))).toBeUndefined();
    } finally {
      await back.close();
    }
  }
  console.log(`${KILLS} kills, ${restoredRevs} revisions restored and checked`);
}, 60_000 + KILLS * 5_000);
