import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NoSpaceError, open } from "../src/index.ts";
import { tmpDir } from "./helpers/index.ts";

describe("group commit and backpressure", () => {
  test("many writes in flight share fdatasyncs, and each resolves with its own revision", async () => {
    const dir = tmpDir();
    const db = await open(dir, { segmentBytes: 1024 * 1024 });
    const n = 512;
    const revs = await Promise.all(Array.from({ length: n }, (_, i) => db.put(`k${i}`, i)));
    expect(new Set(revs).size).toBe(n);
    expect(Math.min(...revs)).toBe(1);
    expect(Math.max(...revs)).toBe(n);
    const s = db.stats().wal;
    expect(s.records).toBe(n);
    expect(s.fsyncs).toBeLessThan(n / 4); // one fdatasync per batch, not per write
    expect(s.recordsPerFsync).toBeGreaterThan(4);
    for (let i = 0; i < n; i++) expect(db.getEntry(`k${i}`)?.rev).toBe(revs[i]);
    await db.close();
  });

  test("a full ring makes writers wait, then every write lands in order", async () => {
    const dir = tmpDir();
    const valueBytesMax = 64 * 1024;
    // The smallest ring these limits allow: 2 × (64 KiB + 1 MiB) rounds up to 4 MiB.
    const db = await open(dir, { segmentBytes: 8 * 1024 * 1024, ringBytes: 4 * 1024 * 1024, limits: { valueBytesMax } });
    const value = (i: number) => new Uint8Array(60 * 1024).fill(i & 255);
    const writes = Array.from({ length: 200 }, (_, i) => db.put(`big${i}`, value(i)));
    expect(db.stats().queuedWrites).toBeGreaterThan(0); // 12 MB does not fit in 4 MiB
    const revs = await Promise.all(writes);
    expect(revs).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(db.stats().queuedWrites).toBe(0);
    await db.close();
    const again = await open(dir, { segmentBytes: 8 * 1024 * 1024 });
    for (let i = 0; i < 200; i++) expect(again.get(`big${i}`)).toEqual(value(i));
    await again.close();
  });

  test("sync modes: interval and never acknowledge after the write and keep data across a clean close", async () => {
    for (const sync of ["interval", "never"] as const) {
      const dir = tmpDir();
      const db = await open(dir, { sync, syncIntervalMs: 50 });
      await Promise.all(Array.from({ length: 100 }, (_, i) => db.put(`k${i}`, i)));
      expect(db.stats().sync).toBe(sync);
      await db.close();
      const again = await open(dir);
      expect(again.rev).toBe(100);
      await again.close();
    }
  });

  test("commitDelayUs still acknowledges every write", async () => {
    const db = await open(tmpDir(), { commitDelayUs: 500 });
    const revs = await Promise.all(Array.from({ length: 64 }, (_, i) => db.put(`k${i}`, i)));
    expect(revs.length).toBe(64);
    expect(db.stats().wal.records).toBe(64);
    await db.close();
  });
});

describe("process lifetime", () => {
  const src = JSON.stringify(path.resolve(import.meta.dir, "../src/index.ts"));

  test("an open database with nothing pending does not keep the process alive", () => {
    const dir = tmpDir();
    const script = `import { open } from ${src}; const db = await open(${JSON.stringify(dir)}); await db.put("a", 1); console.log("done");`;
    const child = Bun.spawnSync([process.execPath, "-e", script], { timeout: 20_000 });
    expect(child.stdout.toString()).toContain("done");
    expect(child.exitCode).toBe(0);
  });

  test("a pending write keeps the process alive until it is durable", async () => {
    const dir = tmpDir();
    // Nothing awaits the put: only the in-flight write can keep this process running.
    const script = `import { open } from ${src}; const db = await open(${JSON.stringify(dir)});
      db.put("a", "x".repeat(1000)).then((rev) => console.log("acked", rev));`;
    const child = Bun.spawnSync([process.execPath, "-e", script], { timeout: 20_000 });
    expect(child.stdout.toString()).toContain("acked 1");
    const db = await open(dir);
    expect(db.get("a")).toBe("x".repeat(1000));
    await db.close();
  });
});

describe("a full disk", () => {
  // A real ENOSPC needs a small filesystem: a 3 MiB tmpfs (root only; skipped elsewhere).
  const mountPoint = tmpDirOutsideCleanup();
  const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mountPoint]).exitCode === 0;
  afterAll(() => {
    if (mounted) Bun.spawnSync(["umount", mountPoint]);
    fs.rmSync(mountPoint, { recursive: true, force: true });
  });

  test.skipIf(!mounted)("fails writes with NoSpaceError, keeps serving reads, and loses nothing acknowledged", async () => {
    const dir = path.join(mountPoint, "db");
    const db = await open(dir, { segmentBytes: 1024 * 1024 });
    const acked: string[] = [];
    let failure: unknown = null;
    for (let i = 0; i < 10_000 && failure === null; i++) {
      await db.put(`k${i}`, "x".repeat(1000)).then(
        () => acked.push(`k${i}`),
        (e: unknown) => (failure = e),
      );
    }
    expect(failure).toBeInstanceOf(NoSpaceError);
    expect(acked.length).toBeGreaterThan(0);
    expect(db.get(acked[0]!)).toBe("x".repeat(1000)); // reads go on
    expect(db.stats().failed).toContain("ENOSPC");
    await expect(db.put("later", 1)).rejects.toBeInstanceOf(NoSpaceError); // poisoned: no retry
    await db.close();
    const again = await open(dir, { segmentBytes: 1024 * 1024 });
    for (const k of acked) expect(again.has(k)).toBe(true);
    await again.close();
  });
});

function tmpDirOutsideCleanup(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-tmpfs-"));
}
