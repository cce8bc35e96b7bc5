// Archiving to a real S3-compatible server (s3rver) and restoring from it (docs/archive-format.md).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { decodeLogObject, decodePosition, encodeLogObject, logObjectName, POSITION_NAME } from "../src/archive/object.ts";
import { Bucket, type S3Settings } from "../src/archive/bucket.ts";
import { encodeEntry } from "../src/format/encoder.ts";
import { ArchiveError, bumpRevisionDefault, open, openReplica, restore, type Db, type Entry, type Store } from "../src/index.ts";
import { startFaultProxy } from "./helpers/fault-proxy.ts";
import { spawnServer } from "./helpers/http.ts";
import { tmpDir } from "./helpers/index.ts";
import { startS3, stopS3Servers, type S3Server } from "./helpers/s3.ts";

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(stopS3Servers);

let prefixes = 0;
const newPrefix = () => `t${++prefixes}-${process.pid}`;

/** Every key with its value and revisions. */
function state(db: Store): Map<string, Entry> {
  const m = new Map<string, Entry>();
  for (const { key } of db.range()) m.set(key, db.getEntry(key)!);
  return m;
}

/** Polls `cond` every 20 ms (after `poll`, which may read what it looks at) until it holds. */
async function waitFor(what: string, cond: () => boolean, ms = 20_000, db?: Db, poll?: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + ms;
  for (await poll?.(); !cond(); await poll?.()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${db ? `: rev ${db.rev}, ${JSON.stringify(db.stats().archive)}` : ""}`);
    await Bun.sleep(20);
  }
}

/** Restores `url` into a fresh directory and returns what the restored database holds. */
async function restoredState(url: string, settings: S3Settings): Promise<Map<string, Entry>> {
  const to = path.join(tmpDir(), "restored");
  await restore(url, to, { s3: settings });
  const back = await open(to);
  try {
    return state(back);
  } finally {
    await back.close();
  }
}

/** Puts, overwrites, deletes and batches, with a value big enough to fill small segments. */
async function writeSome(db: Db, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const key = `k${(i * 7) % 97}`;
    if (i % 11 === 10) await db.delete(key);
    else if (i % 5 === 4) await db.batch([{ type: "put", key: `b${i % 13}`, value: { i, tag } }, { type: "put", key, value: `${tag}-${i}` }]);
    else await db.put(key, `${tag}-${i}-${"x".repeat(200)}`);
  }
}

describe("archive", () => {
  test("every durable revision reaches the bucket; restore rebuilds the same keys, values and revisions", async () => {
    const url = s3.url(newPrefix());
    const dir = tmpDir();
    // Small segments and snapshots: several of each, and segments deleted once archived.
    const db = await open(dir, { segmentBytes: 64 * 1024, snapshotEveryBytes: 128 * 1024, archive: { url, maxLagMs: 100, s3: s3.s3 } });
    await writeSome(db, 1500, "a");
    const rev = db.rev;
    await waitFor("the archive to catch up", () => db.stats().archive!.rev === rev, 20_000, db);
    const a = db.stats().archive!;
    expect(a.behindRevs).toBe(0);
    expect(a.errors).toBe(0);
    expect(a.snapshotRev).toBeGreaterThan(0);
    expect(db.stats().snapshot.segmentsDeleted).toBeGreaterThan(0);
    const before = state(db);
    await db.close();

    const to = path.join(tmpDir(), "restored");
    const r = await restore(url, to, { s3: s3.s3 });
    expect(r.targetRev).toBe(rev);
    expect(r.rev).toBe(r.headRev + bumpRevisionDefault);
    expect(r.keys).toBe(before.size);
    expect(fs.existsSync(`${to}.part`)).toBe(false);
    const back = await open(to);
    try {
      expect(back.rev).toBe(r.rev);
      expect(state(back)).toEqual(before);
      // A new timeline: the next write is above every revision the old database had.
      const next = await back.put("after", 1);
      expect(next).toBe(r.rev + 1);
    } finally {
      await back.close();
    }
  });

  test("a local snapshot is uploaded once the log archived since the last upload is as large as that snapshot", async () => {
    const url = s3.url(newPrefix());
    const db = await open(tmpDir(), { snapshotEveryBytes: 0, archive: { url, maxLagMs: 20, s3: s3.s3 } });
    try {
      await writeSome(db, 200, "a");
      const first = (await db.snapshot()).rev;
      await waitFor("the first snapshot", () => db.stats().archive!.snapshotRev === first, 20_000, db); // (the archive had none)
      const firstBytes = db.stats().snapshot.bytes;
      // Little log since: a new local snapshot is not worth its upload yet.
      await db.put("one", 1);
      const second = (await db.snapshot()).rev;
      await waitFor("the archive", () => db.stats().archive!.rev === db.rev, 20_000, db);
      await Bun.sleep(100);
      expect(db.stats().archive!.snapshotRev).toBe(first);
      // Once the log shipped since the upload outweighs that snapshot, the newest one goes up.
      const bytesAfterFirst = db.stats().archive!.bytes;
      while (db.stats().archive!.snapshotRev === first && db.stats().archive!.bytes < bytesAfterFirst + 4 * firstBytes) {
        await writeSome(db, 20, "b");
        await Bun.sleep(30);
      }
      expect(db.stats().archive!.snapshotRev).toBe(second);
    } finally {
      await db.close();
    }
  });

  test("restore --rev: the state at that revision exactly", async () => {
    const url = s3.url(newPrefix());
    const db = await open(tmpDir(), { segmentBytes: 64 * 1024, snapshotEveryBytes: 96 * 1024, archive: { url, snapshotLogRatio: 0, maxLagMs: 50, s3: s3.s3 } });
    const at = new Map<number, Map<string, Entry>>();
    for (let round = 0; round < 6; round++) {
      await writeSome(db, 150, `r${round}`);
      at.set(db.rev, state(db));
    }
    await db.close();
    for (const [rev, want] of at) {
      const to = path.join(tmpDir(), "restored");
      const r = await restore(url, to, { rev, s3: s3.s3, bumpRevision: 10 });
      expect(r.targetRev).toBe(rev);
      const back = await open(to);
      expect(state(back)).toEqual(want);
      await back.close();
    }
  });

  test("restore rewrites the snapshot header with the count in place, padded where the count's width may change", async () => {
    for (const [keys, changes] of [
      [300, 8], // 292…308 keys: one width
      [250, 10], // 240…260: 255 | 256 changes the width (the header carries `pad`)
    ] as const) {
      const url = s3.url(newPrefix());
      const db = await open(tmpDir(), { snapshotEveryBytes: 0, archive: { url, maxLagMs: 20, snapshotLogRatio: 0, s3: s3.s3 } });
      await db.batch(Array.from({ length: keys }, (_, i) => ({ type: "put" as const, key: `k${String(i).padStart(4, "0")}`, value: i })));
      const snap = (await db.snapshot()).rev;
      for (let i = 0; i < changes; i++) {
        if (i % 2 === 0) await db.put(`new${i}`, i);
        else await db.delete(`k${String(i).padStart(4, "0")}`);
      }
      await waitFor("the archive", () => db.stats().archive!.rev === db.rev && db.stats().archive!.snapshotRev === snap, 20_000, db);
      const want = state(db);
      await db.close();
      const got = await restoredState(url, s3.s3);
      expect(got).toEqual(want);
    }
  });

  test("a dry run verifies and plans, and writes nothing; a non-empty target is refused", async () => {
    const url = s3.url(newPrefix());
    const db = await open(tmpDir(), { archive: { url, snapshotLogRatio: 0, maxLagMs: 50, s3: s3.s3 } });
    await writeSome(db, 100, "d");
    const rev = db.rev;
    await db.close();
    const to = path.join(tmpDir(), "dry");
    const r = await restore(url, to, { dryRun: true, s3: s3.s3 });
    expect(r.targetRev).toBe(rev);
    expect(r.logs.length).toBeGreaterThan(0);
    expect(fs.existsSync(to)).toBe(false);
    const full = tmpDir();
    fs.writeFileSync(path.join(full, "x"), "");
    await expect(restore(url, full, { s3: s3.s3 })).rejects.toThrow("not empty");
  });

  test("torn, foreign and missing objects are refused by name; nothing after a gap is applied", async () => {
    const prefix = newPrefix();
    const url = s3.url(prefix);
    const db = await open(tmpDir(), { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 20, s3: s3.s3 } });
    for (let i = 0; i < 5; i++) {
      await db.put(`k${i}`, i);
      await waitFor("the object", () => db.stats().archive!.rev === db.rev);
    }
    await db.close();
    const bucket = new Bucket(url, s3.s3);
    const logs = (await bucket.list("log/")).map((o) => o.name);
    expect(logs.length).toBeGreaterThanOrEqual(3);
    const restoreTo = () => restore(url, path.join(tmpDir(), "r"), { s3: s3.s3 });

    // Torn: the object cut short (s3rver keeps a cut PUT; real S3 would not).
    const victim = logs[1]!;
    const whole = (await bucket.get(victim))!;
    await bucket.put(victim, whole.subarray(0, whole.length - 5));
    await expect(restoreTo()).rejects.toThrow(victim);
    await expect(restoreTo()).rejects.toBeInstanceOf(ArchiveError);

    // Foreign: another database's entries under this database's name.
    const rev = parseInt(victim.slice(4, 20), 16);
    await bucket.put(victim, encodeLogObject("another-db", rev, rev, encodeEntry(rev, [["k", new Uint8Array([0x01])]])));
    await expect(restoreTo()).rejects.toThrow("belongs to database another-db");

    // A gap: the object gone; the error names the revision missing, and a restore to before it works.
    await bucket.delete(victim);
    await expect(restoreTo()).rejects.toThrow(`no object holds revision ${rev}`);
    const before = await restore(url, path.join(tmpDir(), "r"), { rev: rev - 1, s3: s3.s3 });
    expect(before.targetRev).toBe(rev - 1);
  });

  test("a refused object gives way to another holding the same revisions; a refused last one ends the archive", async () => {
    const url = s3.url(newPrefix());
    const db = await open(tmpDir(), { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 20, s3: s3.s3 } });
    for (let i = 0; i < 6; i++) {
      await db.put(`k${i}`, i);
      await waitFor("the object", () => db.stats().archive!.rev === db.rev);
    }
    const want = state(db);
    await db.close();
    // (After close: s3rver answers InternalError to a GET of an object being rewritten.)
    const bucket = new Bucket(url, s3.s3);
    const dbId = (JSON.parse(new TextDecoder().decode((await bucket.get("position"))!)) as { db: string }).db;
    const logs = (await bucket.list("log/")).map((o) => o.name);
    const revOf = (name: string) => parseInt(name.slice(4, 20), 16);
    // Revisions 2..4 again in one object (as an archiver restarted from a stale position would),
    // and the best-reaching object over them torn: the chain takes the one-revision objects instead.
    const frames = Buffer.concat([2, 3, 4].map((r) => encodeEntry(r, [[`k${r - 1}`, new Uint8Array([0x01])]])));
    const overlap = encodeLogObject(dbId, 2, 4, frames);
    await bucket.put("log/0000000000000002-0000000000000004.hlog", overlap.subarray(0, overlap.length - 3));
    const to = path.join(tmpDir(), "r");
    const r = await restore(url, to, { s3: s3.s3 });
    expect(r.targetRev).toBe(6);
    expect(r.skipped.map((x) => x.name)).toEqual([bucket.key("log/0000000000000002-0000000000000004.hlog")]);
    const back = await open(to);
    expect(state(back)).toEqual(want);
    await back.close();
    // The last object torn: a restore with no target ends before it (and says so); one to past it is refused.
    const last = logs[logs.length - 1]!;
    const whole = (await bucket.get(last))!;
    await bucket.put(last, whole.subarray(0, whole.length - 4));
    const end = await restore(url, path.join(tmpDir(), "r"), { s3: s3.s3 });
    expect(end.targetRev).toBe(revOf(last) - 1);
    expect(end.skipped.map((x) => x.name)).toContain(bucket.key(last));
    await expect(restore(url, path.join(tmpDir(), "r"), { rev: revOf(last), s3: s3.s3 })).rejects.toThrow(last);
  });

  test("a torn newest snapshot gives way to the one before it, and the log after that", async () => {
    const url = s3.url(newPrefix());
    const db = await open(tmpDir(), { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 20, s3: s3.s3 } });
    await writeSome(db, 100, "s1");
    await db.snapshot();
    await writeSome(db, 100, "s2");
    await db.snapshot();
    await writeSome(db, 50, "s3");
    const rev = db.rev;
    const snapRev = db.stats().snapshot.rev;
    await waitFor("the archive", () => db.stats().archive!.rev === rev && db.stats().archive!.snapshotRev === snapRev, 20_000, db);
    const want = state(db);
    await db.close();
    const bucket = new Bucket(url, s3.s3);
    const snaps = (await bucket.list("snap/")).map((o) => o.name);
    expect(snaps.length).toBe(2);
    const newest = snaps[1]!;
    const whole = (await bucket.get(newest))!;
    await bucket.put(newest, whole.subarray(0, whole.length - 100));
    const to = path.join(tmpDir(), "r");
    const r = await restore(url, to, { s3: s3.s3 });
    expect(r.snapshot!.name).toBe(snaps[0]!);
    expect(r.skipped.map((x) => x.name)).toEqual([bucket.key(newest)]);
    expect(r.targetRev).toBe(rev);
    const back = await open(to);
    expect(state(back)).toEqual(want);
    await back.close();
  });

  test("with S3 down, writes go on, the lag shows, segments are kept; it catches up when S3 is back", async () => {
    // A server of its own: this test stops it.
    const own = await startS3();
    const url = own.url(newPrefix());
    const dir = tmpDir();
    const db = await open(dir, { segmentBytes: 64 * 1024, snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 50, timeoutMs: 1000, s3: own.s3 } });
    try {
      await db.put("first", 1);
      await waitFor("the first object", () => db.stats().archive!.rev === db.rev);
      await own.stop();
      await writeSome(db, 800, "down");
      await db.snapshot();
      await waitFor("a failed upload", () => db.stats().archive!.errors > 0);
      const a = db.stats().archive!;
      expect(a.behindRevs).toBeGreaterThan(0);
      expect(a.lastError).not.toBeNull();
      // The snapshot covers them all, but nothing unarchived was deleted: the log still starts at 1.
      const segs = fs.readdirSync(path.join(dir, "wal")).filter((n) => n.endsWith(".wal")).sort();
      expect(segs.length).toBeGreaterThanOrEqual(3);
      expect(segs[0]).toEndWith("-0000000000000001.wal");
      expect(db.stats().snapshot.segmentsDeleted).toBe(0);
      await own.start();
      await waitFor("the archive to catch up", () => db.stats().archive!.rev === db.rev);
      // Once archived, the held-back segments go at the next rotation.
      await writeSome(db, 400, "back");
      expect(db.stats().snapshot.segmentsDeleted).toBeGreaterThan(0);
      await waitFor("the archive to catch up again", () => db.stats().archive!.rev === db.rev);
      const want = state(db);
      await db.close();
      expect(await restoredState(url, own.s3)).toEqual(want);
    } finally {
      await db.close();
    }
  });

  test("a silent endpoint, 503s and connections reset mid-upload: the archiver times out, retries, and catches up", async () => {
    const proxy = startFaultProxy(s3.port);
    const url = s3.url(newPrefix());
    const viaProxy = { ...s3.s3, endpoint: `http://127.0.0.1:${proxy.port}` };
    const db = await open(tmpDir(), { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 50, timeoutMs: 300, s3: viaProxy } });
    try {
      await db.put("first", 1);
      await waitFor("the first object", () => db.stats().archive!.rev === db.rev);
      for (const mode of ["silent", "503", "reset"] as const) {
        proxy.mode = mode;
        const errors = db.stats().archive!.errors;
        const faults = proxy.faults;
        // Values large enough that an upload is cut after its first few KiB.
        await writeSome(db, 60, mode);
        await waitFor(`a failure in mode ${mode}`, () => db.stats().archive!.errors > errors && proxy.faults > faults);
        expect(db.stats().archive!.rev).toBeLessThan(db.rev);
      }
      proxy.mode = "pass";
      await waitFor("the archive to catch up", () => db.stats().archive!.rev === db.rev);
      expect(db.stats().archive!.lastError).not.toBeNull();
      const want = state(db);
      await db.close();
      expect(await restoredState(url, s3.s3)).toEqual(want);
    } finally {
      await db.close();
      proxy.stop();
    }
  });

  test("restore through faults: 503s are retried; a silent endpoint fails, saying so, and leaves nothing", async () => {
    const url = s3.url(newPrefix());
    const db = await open(tmpDir(), { segmentBytes: 64 * 1024, snapshotEveryBytes: 96 * 1024, archive: { url, snapshotLogRatio: 0, maxLagMs: 50, s3: s3.s3 } });
    await writeSome(db, 600, "f");
    await waitFor("the archive", () => db.stats().archive!.rev === db.rev, 20_000, db);
    const want = state(db);
    await db.close();
    const proxy = startFaultProxy(s3.port);
    const viaProxy = { ...s3.s3, endpoint: `http://127.0.0.1:${proxy.port}` };
    try {
      proxy.mode = "503";
      const to = path.join(tmpDir(), "r");
      const restoring = restore(url, to, { s3: viaProxy, timeoutMs: 1000 });
      await waitFor("a refused request", () => proxy.faults > 0);
      proxy.mode = "pass";
      await restoring;
      const back = await open(to);
      expect(state(back)).toEqual(want);
      await back.close();

      proxy.mode = "silent";
      const silent = path.join(tmpDir(), "s");
      await expect(restore(url, silent, { s3: viaProxy, timeoutMs: 150 })).rejects.toThrow("no answer in 150 ms");
      expect(fs.existsSync(silent) || fs.existsSync(`${silent}.part`)).toBe(false);
    } finally {
      proxy.stop();
    }
  });

  test("a restore that meets retention deleting what it listed lists again, and says what is gone", async () => {
    const url = s3.url(newPrefix());
    const db = await open(tmpDir(), { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 20, s3: s3.s3 } });
    await writeSome(db, 100, "a");
    const a = (await db.snapshot()).rev;
    await writeSome(db, 100, "b");
    const b = (await db.snapshot()).rev;
    await writeSome(db, 100, "c");
    await waitFor("the archive", () => db.stats().archive!.rev === db.rev && db.stats().archive!.snapshotRev === b, 20_000, db);
    await db.close();
    const bucket = new Bucket(url, s3.s3);
    const proxy = startFaultProxy(s3.port);
    const lists: string[] = [];
    let deleted = false;
    // As retention would, the moment the restore asks for snapshot A: A and the log B covers go.
    proxy.onRequest = async (method, p) => {
      if (method === "GET" && p.includes("list-type=2")) lists.push(p);
      if (method !== "GET" || deleted || !p.includes(`snap/${a.toString(16).padStart(16, "0")}.snap`)) return;
      deleted = true;
      for (const o of [...(await bucket.list("snap/")), ...(await bucket.list("log/"))]) {
        if (o.name.startsWith("snap/") ? parseInt(o.name.slice(5, 21), 16) < b : parseInt(o.name.slice(21, 37), 16) <= b) await bucket.delete(o.name);
      }
    };
    try {
      const viaProxy = { ...s3.s3, endpoint: `http://127.0.0.1:${proxy.port}` };
      const err = await restore(url, path.join(tmpDir(), "r"), { rev: a + 10, s3: viaProxy }).catch((e: unknown) => e);
      expect(deleted).toBe(true);
      expect(err).toBeInstanceOf(ArchiveError);
      expect((err as Error).message).toContain(`no usable snapshot at or before revision ${a + 10}`);
      expect(lists.length).toBe(4); // snap/ and log/, twice: listed again after the snapshot was gone
      // The newest state is still whole.
      expect((await restore(url, path.join(tmpDir(), "r"), { s3: viaProxy })).snapshot?.rev).toBe(b);
    } finally {
      proxy.stop();
    }
  });

  test("a prefix that holds another database's archive is refused, and local writes go on", async () => {
    const url = s3.url(newPrefix());
    const first = await open(tmpDir(), { archive: { url, snapshotLogRatio: 0, maxLagMs: 20, s3: s3.s3 } });
    await first.put("a", 1);
    await waitFor("the first archive", () => first.stats().archive!.rev === first.rev);
    await first.close();
    const other = await open(tmpDir(), { archive: { url, snapshotLogRatio: 0, maxLagMs: 20, s3: s3.s3 } });
    try {
      await waitFor("the refusal", () => other.stats().archive!.errors > 0);
      expect(other.stats().archive!.lastError).toContain("holds the archive of database");
      expect(await other.put("b", 2)).toBe(1);
    } finally {
      await other.close();
    }
    // With archive.sync, a write that can never be archived fails, naming why; reads go on.
    const strict = await open(tmpDir(), { archive: { url, snapshotLogRatio: 0, sync: true, s3: s3.s3 } });
    try {
      const err = await strict.put("c", 3).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ArchiveError);
      expect((err as Error).message).toContain("holds the archive of database");
      expect(strict.get("c")).toBeUndefined();
    } finally {
      await strict.close();
    }
  });

  test("archive.sync: a write resolves once the bucket holds it; while S3 fails it waits, unseen, and lands after", async () => {
    const proxy = startFaultProxy(s3.port);
    const url = s3.url(newPrefix());
    const viaProxy = { ...s3.s3, endpoint: `http://127.0.0.1:${proxy.port}` };
    const dir = tmpDir();
    const db = await open(dir, { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, sync: true, timeoutMs: 300, closeTimeoutMs: 300, s3: viaProxy } });
    try {
      for (let i = 0; i < 10; i++) {
        const rev = await db.put(`k${i}`, i);
        expect(db.stats().archive!.rev).toBeGreaterThanOrEqual(rev);
      }
      // Many in flight: one object holds a group of them.
      const revs = await Promise.all(Array.from({ length: 200 }, (_, i) => db.put(`c${i}`, i)));
      expect(db.stats().archive!.rev).toBeGreaterThanOrEqual(Math.max(...revs));
      expect(db.stats().archive!.objects).toBeLessThan(10 + 200);

      proxy.mode = "503";
      let settled = false;
      const during = db.put("during", 1).then((rev) => ((settled = true), rev));
      await waitFor("a failed upload", () => db.stats().archive!.errors > 0 && db.stats().archive!.behindRevs > 0);
      await Bun.sleep(200);
      expect(settled).toBe(false); // durable here, not yet in the bucket: not acknowledged,
      expect(db.get("during")).toBeUndefined(); // and not visible
      proxy.mode = "pass";
      const rev = await during;
      expect(db.get("during")).toBe(1);
      expect(db.stats().archive!.rev).toBeGreaterThanOrEqual(rev);

      // Closed while S3 fails: the write fails after closeTimeoutMs; it is durable here, and the
      // next open ships it.
      proxy.mode = "503";
      const late = db.put("late", 2).catch((e: unknown) => e);
      await waitFor("a failed upload", () => db.stats().archive!.behindRevs > 0);
      await db.close();
      expect(await late).toBeInstanceOf(ArchiveError);
      proxy.mode = "pass";
      const again = await open(dir, { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, sync: true, s3: viaProxy } });
      expect(again.get("late")).toBe(2);
      await waitFor("the archive to catch up", () => again.stats().archive!.rev === again.rev, 20_000, again);
      const want = state(again);
      await again.close();
      expect(await restoredState(url, s3.s3)).toEqual(want);
    } finally {
      await db.close();
      proxy.stop();
    }
  });

  test("restore --time: what had reached the archive by then, and nothing written after", async () => {
    const url = s3.url(newPrefix());
    const db = await open(tmpDir(), { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 20, s3: s3.s3 } });
    const marks: { time: number; rev: number; want: Map<string, Entry> }[] = [];
    let snapRev = 0;
    for (let round = 0; round < 3; round++) {
      await writeSome(db, 60, `t${round}`);
      if (round === 1) {
        // A snapshot counts from a second after its upload (S3 tells upload times to the second).
        snapRev = (await db.snapshot()).rev;
        await waitFor("the snapshot", () => db.stats().archive!.snapshotRev === snapRev, 20_000, db);
        await Bun.sleep(1100);
      }
      await waitFor("the archive", () => db.stats().archive!.rev === db.rev, 20_000, db);
      marks.push({ time: Date.now(), rev: db.rev, want: state(db) });
      await Bun.sleep(5); // (what comes next is made after the mark)
    }
    await db.close();
    for (const [i, m] of marks.entries()) {
      const to = path.join(tmpDir(), "r");
      const r = await restore(url, to, { time: new Date(m.time), s3: s3.s3, bumpRevision: 0 });
      expect(r.targetRev).toBe(m.rev);
      expect(r.snapshot?.rev ?? 0).toBe(i === 0 ? 0 : snapRev);
      const back = await open(to);
      expect(state(back)).toEqual(m.want);
      await back.close();
    }
    // An object made later that overlaps and reaches further (an archiver restarted from a stale
    // position ships one): a restore to a time before it still takes the older objects it covers.
    const bucket = new Bucket(url, s3.s3);
    const later = (await bucket.list("log/")).filter((x) => parseInt(x.name.slice(4, 20), 16) > marks[0]!.rev);
    const decoded = await Promise.all(later.map(async (x) => decodeLogObject(x.name, (await bucket.get(x.name))!, null)));
    const bodies = decoded.map((d) => d.bytes.subarray(d.bytes.length - d.header.bytes));
    const first = decoded[0]!.header.firstRev;
    const last = decoded[decoded.length - 1]!.header.lastRev;
    await bucket.put(logObjectName(first, last), encodeLogObject(decoded[0]!.header.db, first, last, bodies, marks[2]!.time + 60_000));
    const overlapped = await restore(url, path.join(tmpDir(), "r"), { time: marks[2]!.time, s3: s3.s3, bumpRevision: 0 });
    expect(overlapped.targetRev).toBe(marks[2]!.rev);
    expect(overlapped.logs.map((l) => l.name)).not.toContain(logObjectName(first, last));
    // With --rev too, whichever comes first; a time before anything was archived is an error.
    expect((await restore(url, path.join(tmpDir(), "r"), { time: marks[2]!.time, rev: marks[0]!.rev, s3: s3.s3 })).targetRev).toBe(marks[0]!.rev);
    await expect(restore(url, path.join(tmpDir(), "r"), { time: marks[0]!.time - 60_000, s3: s3.s3 })).rejects.toThrow("had reached the archive by");
  });

  test("retention deletes what the oldest kept snapshot does not need, earlier runs' objects too, with one LIST per run", async () => {
    const url = s3.url(newPrefix());
    const dir = tmpDir();
    const bucket = new Bucket(url, s3.s3);
    const retainMs = 6000; // (round C must finish inside it: 4 s failed now and then with the whole suite running)
    const snaps: number[] = [];
    let positionRev = -1;
    const round = async (db: Db, tag: string) => {
      await writeSome(db, 60, tag);
      const rev = (await db.snapshot()).rev;
      snaps.push(rev);
      await waitFor("the archive", () => db.stats().archive!.rev === db.rev && db.stats().archive!.snapshotRev === rev, 20_000, db);
    };
    // A first run without retention: snapshots A and B, and the log before and between them.
    const first = await open(dir, { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 20, s3: s3.s3 } });
    await round(first, "a");
    await round(first, "b");
    // The position object says where the archive ends before the close. Else a close under load
    // may cut its last PUT short; s3rver keeps the cut object, and the next run, with no position
    // it can read, ships its log again from revision 1 (src/archive/archiver.ts start()): the
    // archive then reaches back past A again (CI saw a restore to A succeed so, once).
    const end = first.rev;
    await waitFor("the position object", () => positionRev === end, 20_000, first, async () => {
      try {
        const text = await bucket.get(POSITION_NAME);
        positionRev = text === null ? -1 : decodePosition(new TextDecoder().decode(text), POSITION_NAME).rev;
      } catch {
        positionRev = -1; // read while the archiver rewrote it: s3rver answers InternalError then, or a part
      }
    });
    await first.close();
    const [a, b] = snaps as [number, number];
    const logsBefore = (await bucket.list("log/")).map((o) => o.name);
    const coveredByB = logsBefore.filter((n) => parseInt(n.slice(21, 37), 16) <= b);
    expect(coveredByB.length).toBeGreaterThanOrEqual(2);
    await Bun.sleep(retainMs + 1100); // A and B are older than the window now (their times, to the second, rounded up)

    // A second run with retention: B is the base (the newest snapshot older than the window).
    const db = await open(dir, { snapshotEveryBytes: 0, archive: { url, snapshotLogRatio: 0, maxLagMs: 20, retainMs, s3: s3.s3 } });
    try {
      await round(db, "c");
      // (At least these: an object this run shipped again from a position left stale, which it
      // rewrites at most every maxLagMs / 2, may lie under B too.)
      await waitFor("retention", () => db.stats().archive!.deleted >= 1 + coveredByB.length, 20_000, db);
      expect((await bucket.list("snap/")).map((o) => o.name)).toEqual([snaps[1]!, snaps[2]!].map((r) => `snap/${r.toString(16).padStart(16, "0")}.snap`));
      const logsAfter = (await bucket.list("log/")).map((o) => o.name);
      expect(logsAfter.filter((n) => parseInt(n.slice(21, 37), 16) <= b)).toEqual([]);
      expect(logsAfter.length).toBeGreaterThan(0);
      // Restores inside the window work, from B; a point before it does not, and says why. (Now,
      // while C is younger than the window: once it is older, C becomes the base and B goes.)
      expect((await restore(url, path.join(tmpDir(), "r"), { rev: b + 1, s3: s3.s3 })).snapshot?.rev).toBe(b);
      await expect(restore(url, path.join(tmpDir(), "r"), { rev: a, s3: s3.s3 })).rejects.toThrow(`no usable snapshot at or before revision ${a}`);
      // The steady state: more objects and retention passes (every retainMs / 10), no more LISTs.
      // (s3rver now and then answers a request with InternalError while it rewrites an object: a
      // LIST that failed so is made again, and counted.)
      const a0 = db.stats().archive!;
      expect(a0.lists === 2 || /internal error/i.test(a0.lastError ?? "")).toBe(true); // snap/ and log/, once
      await writeSome(db, 30, "d");
      await waitFor("the archive", () => db.stats().archive!.rev === db.rev, 20_000, db);
      await Bun.sleep(retainMs / 5);
      expect(db.stats().archive!.lists).toBe(a0.lists);
      const want = state(db);
      await db.close();
      // The newest state restores.
      expect(await restoredState(url, s3.s3)).toEqual(want);
    } finally {
      await db.close();
    }
  });

  test("a replica of the archive (follow s3://) reaches the primary's keys, values and revisions, and resyncs past a gap", async () => {
    const url = s3.url(newPrefix());
    const primary = await open(tmpDir(), { segmentBytes: 64 * 1024, snapshotEveryBytes: 128 * 1024, archive: { url, snapshotLogRatio: 0, maxLagMs: 40, s3: s3.s3 } });
    const caughtUp = () => primary.stats().archive!.rev === primary.rev;
    await writeSome(primary, 600, "a");
    await waitFor("the archive", caughtUp, 20_000, primary);
    const dir = path.join(tmpDir(), "replica");
    const replica = await openReplica(dir, { follow: url, s3: s3.s3, pollMs: 20 });
    try {
      await replica.waitForRev(primary.rev, 20_000);
      expect(state(replica)).toEqual(state(primary));
      expect(replica.stats().replica).toMatchObject({ primary: url, bootstraps: 1 }); // (an empty replica starts from the archive's newest state)
      // Writes under load: it follows the objects as they land.
      await Promise.all(Array.from({ length: 8 }, (_, k) => writeSome(primary, 150, `b${k}`)));
      await waitFor("the archive", caughtUp, 20_000, primary);
      await replica.waitForRev(primary.rev, 20_000);
      expect(state(replica)).toEqual(state(primary));
      const rs = replica.stats().replica;
      expect(rs.bootstraps).toBe(1);
      // (s3rver answers a GET of an object being rewritten with what it has, or with InternalError:
      // the position, now and then)
      if (rs.errors > 0) expect(rs.lastError).toMatch(/position object is not JSON|GET position: 500 [\s\S]*InternalError/); // (the body has line breaks)
      await expect(replica.put("x", 1)).rejects.toThrow(`follows the archive ${url}`);
      // Log objects deleted past what the replica applied (as retention would): it resyncs from the newest state.
      await replica.close();
      await writeSome(primary, 300, "c");
      await primary.snapshot();
      await waitFor("the archive", () => caughtUp() && primary.stats().archive!.snapshotRev === primary.stats().snapshot.rev, 20_000, primary);
      const bucket = new Bucket(url, s3.s3);
      const at = replica.rev;
      for (const o of await bucket.list("log/")) if (parseInt(o.name.slice(4, 20), 16) <= at + 1) await bucket.delete(o.name);
    } finally {
      await replica.close();
    }
    const again = await openReplica(dir, { follow: url, s3: s3.s3, pollMs: 20 });
    try {
      await again.waitForRev(primary.rev, 20_000);
      expect(again.stats().replica.bootstraps).toBe(1);
      expect(state(again)).toEqual(state(primary));
    } finally {
      await again.close();
      await primary.close();
    }
  });

  test("the server archives with --archive and reports it; `harmonydb restore` brings it back", async () => {
    const url = s3.url(newPrefix());
    // Endpoint and credentials through Bun's S3_* environment, as an operator would give them.
    const env = { S3_ENDPOINT: s3.s3.endpoint!, S3_ACCESS_KEY_ID: "S3RVER", S3_SECRET_ACCESS_KEY: "S3RVER", S3_REGION: "us-east-1" };
    const dir = tmpDir();
    const srv = await spawnServer(["--dir", dir, "--archive", url, "--archive-retain", "7d"], env);
    try {
      await srv.waitFor("ready at rev");
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${srv.base}/v1/kv/k${i}`, { method: "PUT", body: JSON.stringify({ i }), headers: { "content-type": "application/json" } });
        expect(res.status).toBe(200);
      }
      let status: { db: { rev: number; archive: { rev: number; url: string } } } | null = null;
      const deadline = Date.now() + 20_000;
      do {
        await Bun.sleep(50);
        status = (await (await fetch(`${srv.base}/v1/status`)).json()) as typeof status;
      } while (status!.db.archive.rev !== status!.db.rev && Date.now() < deadline);
      expect(status!.db.archive).toMatchObject({ rev: 20, url });
      const metrics = await (await fetch(`${srv.base}/metrics`)).text();
      expect(metrics).toMatch(/^harmonydb_archive_revision 20$/m);
      expect(metrics).toMatch(/^harmonydb_archive_behind_revisions 0$/m);
      expect(metrics).toMatch(/^harmonydb_archive_deleted_total 0$/m); // (a week's retention: nothing old enough)
    } finally {
      srv.proc.kill("SIGTERM");
      await srv.proc.exited;
    }
    const cli = path.join(import.meta.dir, "..", "src", "tools", "cli.ts");
    const run = (...args: string[]) => Bun.spawnSync([process.execPath, cli, "restore", ...args], { env: { ...process.env, ...env } });
    const to = path.join(tmpDir(), "restored");
    const dry = run(url, to, "--dry-run");
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout.toString()).toContain("applied up to revision 20");
    expect(fs.existsSync(to)).toBe(false);
    const r = run(url, to, "--rev", "12", "--bump-revision", "100");
    expect({ code: r.exitCode, err: r.stderr.toString() }).toEqual({ code: 0, err: "" });
    expect(r.stdout.toString()).toContain("revision 120 (the next write is 121)");
    const back = await open(to);
    try {
      expect(back.rev).toBe(120);
      expect(back.get("k11")).toEqual({ i: 11 });
      expect(back.get("k12")).toBeUndefined();
    } finally {
      await back.close();
    }
    expect(run(url, to).exitCode).toBe(1); // not empty now
    expect(run(url).exitCode).toBe(64);
    expect(run(url, path.join(tmpDir(), "x"), "--rev", "many").exitCode).toBe(64);
    expect(run(url, path.join(tmpDir(), "x"), "--time", "yesterday").exitCode).toBe(64);
    const now = run(url, path.join(tmpDir(), "x"), "--time", new Date().toISOString(), "--dry-run");
    expect(now.stdout.toString()).toContain("applied up to revision 20");
  });
});
