import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { NoSpaceError, WalFailedError } from "../src/index.ts";
// The writer's file I/O is replaced through a test hook (writerIO).
import { openForTest as open } from "../src/testing.ts";
import type { FailingOptions } from "./helpers/failing-io.ts";
import { tmpDir } from "./helpers/index.ts";

const FAILING = path.join(import.meta.dir, "helpers/failing-io.ts");

/** Opens a database whose writer fails `op` with `code` once `trigger()` is called. */
async function openFailing(op: FailingOptions["op"], code: FailingOptions["code"]) {
  const dir = tmpDir();
  const triggerFile = path.join(dir, "fail-now");
  const options: FailingOptions = { op, code, trigger: triggerFile };
  const db = await open(dir, { segmentBytes: 64 * 1024, writerIO: { path: FAILING, options } });
  return { db, dir, trigger: () => fs.writeFileSync(triggerFile, "") };
}

describe("fail-stop on write errors (fsyncgate: never retry on the same file)", () => {
  for (const [op, code, Err] of [
    ["fdatasync", "EIO", WalFailedError],
    ["pwrite", "EIO", WalFailedError],
    ["pwrite", "ENOSPC", NoSpaceError],
  ] as const) {
    test(`${code} on ${op}: the batch and every later write fail, reads go on, a restart keeps every ack`, async () => {
      const { db, dir, trigger } = await openFailing(op, code);
      const acked: string[] = [];
      for (let i = 0; i < 20; i++) {
        await db.put(`ok${i}`, i);
        acked.push(`ok${i}`);
      }
      trigger();
      // Several writes in flight together: the whole group fails, none is acknowledged.
      const inFlight = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => db.put(`lost${i}`, i)));
      for (const r of inFlight) {
        expect(r.status).toBe("rejected");
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(Err);
      }
      // Poisoned: later writes fail at once with the same error, reads still work.
      await expect(db.put("later", 1)).rejects.toBeInstanceOf(Err);
      await expect(db.delete("ok0")).rejects.toBeInstanceOf(Err);
      expect(db.get("ok19")).toBe(19);
      expect(db.has("lost0")).toBe(false);
      expect(db.stats().failed).toContain(code);
      await db.close();
      fs.rmSync(path.join(dir, "fail-now"));
      const again = await open(dir, { segmentBytes: 64 * 1024 });
      for (const k of acked) expect(again.has(k)).toBe(true);
      expect(await again.put("after-restart", true)).toBeGreaterThan(20);
      await again.close();
    });
  }

  test("a full disk while preparing the next segment surfaces before any record needs that space", async () => {
    const { db, trigger } = await openFailing("openWrite", "ENOSPC");
    await db.put("a", 1);
    trigger(); // the spare segment cannot be created from now on
    let failure: unknown = null;
    // Fill the first 64 KiB segment: its spare must be made before the rotation, and cannot be.
    for (let i = 0; i < 200 && failure === null; i++) {
      await db.put(`k${i}`, "v".repeat(500)).catch((e: unknown) => (failure = e));
    }
    expect(failure).toBeInstanceOf(NoSpaceError);
    expect(db.get("a")).toBe(1);
    await db.close();
  });
});

test("a writer that cannot start fails open() with WalFailedError, and a later open finds everything", async () => {
  const dir = tmpDir();
  const db = await open(dir);
  for (let i = 0; i < 10; i++) await db.put(`k${i}`, i);
  await db.close();
  // The worker cannot load its I/O module: it fails while open() builds the index.
  const missing = path.join(import.meta.dir, "helpers/no-such-module.ts");
  const err = await open(dir, { writerIO: { path: missing, options: null } }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WalFailedError);
  expect((err as Error).message).toContain("writer worker failed to start");
  const again = await open(dir); // the lock was released
  expect(again.rev).toBe(10);
  expect(again.get("k9")).toBe(9);
  await again.close();
});
