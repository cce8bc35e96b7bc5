// Read replicas (docs/replication.md): the WAL stream of a real primary server, applied by a replica
// with its own directory, WAL and fsyncs; bootstrap from a snapshot; restart; promotion.

import { afterEach, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { open, openReplica, promote, ReadOnlyError, type Db, type Entry, type Replica, type Store } from "../src/index.ts";
import { createHandler, type ServerState } from "../src/server/http.ts";
import { spawnServer } from "./helpers/http.ts";
import { tmpDir } from "./helpers/index.ts";

/** Every key with its value and revisions. */
function state(db: Store): Map<string, Entry> {
  const m = new Map<string, Entry>();
  for (const { key } of db.range()) m.set(key, db.getEntry(key)!);
  return m;
}

const servers: ReturnType<typeof Bun.serve>[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.stop(true);
});

/** The primary's HTTP API in this process, as `bun run server` serves it (`state.db` may be swapped). */
function serve(db: Store, token: string | null = null, state: ServerState = { db, progress: null, token }): string {
  const handler = createHandler(state);
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", idleTimeout: 0, fetch: (req, srv) => handler(req, srv) });
  servers.push(s);
  return `http://127.0.0.1:${s.port}`;
}

/** Puts, overwrites, deletes and batches over a small key space, `inFlight` at a time. */
async function load(db: Db, n: number, tag: string, inFlight = 1): Promise<void> {
  const one = async (i: number) => {
    const key = `k${(i * 7) % 211}`;
    if (i % 11 === 10) await db.delete(key);
    else if (i % 5 === 4) await db.batch([{ type: "put", key: `b${i % 13}`, value: { i, tag } }, { type: "delete", key: `k${i % 211}` }]);
    else await db.put(key, `${tag}-${i}-${"x".repeat(i % 300)}`);
  };
  for (let i = 0; i < n; i += inFlight) await Promise.all(Array.from({ length: Math.min(inFlight, n - i) }, (_, k) => one(i + k)));
}

describe("read replicas", () => {
  test("a replica under load follows to the same keys, values and revisions; it refuses writes", async () => {
    const primary = await open(tmpDir(), { snapshotEveryBytes: 0 });
    const url = serve(primary);
    await load(primary, 300, "before");
    const dir = path.join(tmpDir(), "replica");
    const replica = await openReplica(dir, { follow: url });
    try {
      // Watchers of the replica see the primary's revisions.
      const watched: number[] = [];
      const watching = (async () => {
        for await (const e of replica.watch({ prefix: "b" })) {
          watched.push(e.rev);
          if (watched.length >= 20) break;
        }
      })();
      await load(primary, 3000, "during", 64);
      await replica.waitForRev(primary.rev, 20_000);
      expect(replica.rev).toBe(primary.rev);
      expect(state(replica)).toEqual(state(primary));
      await watching;
      // The same events the primary's own history holds from there.
      const history: number[] = [];
      for await (const e of primary.watch({ prefix: "b", fromRev: watched[0]! })) {
        history.push(e.rev);
        if (history.length >= watched.length) break;
      }
      expect(watched).toEqual(history);
      const s = replica.stats().replica;
      expect(s).toMatchObject({ primary: url, connected: true, appliedRev: primary.rev, bootstraps: 0, errors: 0 });

      const err = await replica.put("x", 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReadOnlyError);
      expect((err as Error).message).toContain(url);
      expect(replica.get("x")).toBeUndefined();
    } finally {
      await replica.close();
      await primary.close();
    }
    // Its directory is a replica's: open() refuses it, naming the primary.
    await expect(open(dir)).rejects.toThrow(`read replica of ${url}`);
  });

  test("bootstrap from the primary's snapshot when its log no longer reaches back; a restart resumes, or resyncs", async () => {
    const primary = await open(tmpDir(), { segmentBytes: 64 * 1024, snapshotEveryBytes: 96 * 1024 });
    const url = serve(primary);
    await load(primary, 2000, "a", 16);
    expect(primary.stats().snapshot.segmentsDeleted).toBeGreaterThan(0); // revision 1 is gone from its log
    const dir = path.join(tmpDir(), "replica");
    let replica: Replica = await openReplica(dir, { follow: url });
    await replica.waitForRev(primary.rev, 20_000);
    expect(replica.stats().replica.bootstraps).toBe(1);
    expect(state(replica)).toEqual(state(primary));
    await replica.close();

    // A restart while the primary's log still holds the next revision: it resumes from there.
    await load(primary, 50, "b");
    replica = await openReplica(dir, { follow: url });
    await replica.waitForRev(primary.rev, 20_000);
    expect(replica.stats().replica.bootstraps).toBe(0);
    expect(state(replica)).toEqual(state(primary));
    await replica.close();

    // Away while the primary's log moved on past it: a full resync, and the same state again.
    const away = replica.rev;
    await load(primary, 3000, "c", 16);
    replica = await openReplica(dir, { follow: url });
    try {
      await replica.waitForRev(primary.rev, 20_000);
      expect(replica.stats().replica.bootstraps).toBe(1);
      expect(replica.rev).toBeGreaterThan(away);
      expect(state(replica)).toEqual(state(primary));
      // Writes after the resync stream on.
      await load(primary, 100, "d", 8);
      await replica.waitForRev(primary.rev, 20_000);
      expect(state(replica)).toEqual(state(primary));
    } finally {
      await replica.close();
      await primary.close();
    }
    expect(fs.existsSync(`${dir}.part`) || fs.existsSync(`${dir}.old`)).toBe(false);
  });

  test("entries that wait for room in the replica's ring keep their order and revisions", async () => {
    const limits = { valueBytesMax: 64 * 1024 };
    const primary = await open(tmpDir(), { limits, snapshotEveryBytes: 0 });
    const url = serve(primary);
    const big = (i: number) => new Uint8Array(60 * 1024).fill(i % 251);
    for (let i = 0; i < 400; i += 16) await Promise.all(Array.from({ length: 16 }, (_, k) => primary.put(`v${(i + k) % 37}`, big(i + k))));
    // 24 MB to catch up through a 4 MiB ring: most entries queue for room while the stream runs ahead.
    const replica = await openReplica(path.join(tmpDir(), "replica"), { follow: url, limits, ringBytes: 4 * 1024 * 1024 });
    try {
      await replica.waitForRev(primary.rev, 20_000);
      expect(state(replica)).toEqual(state(primary));
      expect(replica.stats().replica).toMatchObject({ errors: 0, bootstraps: 0 });
    } finally {
      await replica.close();
      await primary.close();
    }
  });

  test("a primary that acknowledges before fdatasync (sync interval) streams only what is on its disk", async () => {
    const primary = await open(tmpDir(), { sync: "interval", syncIntervalMs: 300 });
    const url = serve(primary);
    const replica = await openReplica(path.join(tmpDir(), "replica"), { follow: url });
    try {
      let ahead = 0;
      let seen = 0;
      for (let i = 0; i < 20; i++) {
        await load(primary, 20, `i${i}`, 4);
        await Bun.sleep(15);
        if (replica.rev > primary.syncedRev) ahead++;
        if (primary.rev > primary.syncedRev) seen++;
      }
      expect(seen).toBeGreaterThan(0); // (acknowledged, not yet on disk, at least once)
      expect(ahead).toBe(0);
      await replica.waitForRev(primary.rev, 20_000);
      expect(state(replica)).toEqual(state(primary));
    } finally {
      await replica.close();
      await primary.close();
    }
  });

  test("another database at the primary's address: the replica resyncs instead of mixing histories", async () => {
    const a = await open(tmpDir());
    const b = await open(tmpDir());
    const state0: ServerState = { db: a, progress: null };
    const url = serve(a, null, state0);
    const dir = path.join(tmpDir(), "replica");
    try {
      await load(a, 300, "a", 8);
      let replica = await openReplica(dir, { follow: url });
      await replica.waitForRev(a.rev, 20_000);
      await replica.close();
      // B's revisions run past A's, so a stream from where the replica stopped would be accepted
      // revision by revision: only the database's id tells them apart.
      await load(b, 600, "b", 8);
      state0.db = b;
      replica = await openReplica(dir, { follow: url });
      try {
        await replica.waitForRev(b.rev, 20_000);
        await Bun.sleep(50);
        expect(replica.stats().replica.bootstraps).toBe(1);
        expect(state(replica)).toEqual(state(b));
      } finally {
        await replica.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("the routes' refusals: a position past the primary's end (416), ?min_rev= that is not reached (504)", async () => {
    const primary = await open(tmpDir());
    const url = serve(primary, null, { db: primary, progress: null, minRevWaitMs: 100 });
    try {
      await load(primary, 10, "x");
      const ahead = await fetch(`${url}/v1/wal?from=${primary.rev + 2}`);
      expect(ahead.status).toBe(416);
      expect(((await ahead.json()) as { error: { code: string } }).error.code).toBe("AHEAD");
      const late = await fetch(`${url}/v1/kv/k1?min_rev=${primary.rev + 5}`);
      expect(late.status).toBe(504);
      expect(((await late.json()) as { error: { code: string } }).error.code).toBe("TIMEOUT");
      const replica = await openReplica(path.join(tmpDir(), "replica"), { follow: url });
      try {
        await expect(replica.waitForRev(primary.rev + 5, 100)).rejects.toMatchObject({ code: "TIMEOUT" });
      } finally {
        await replica.close();
      }
    } finally {
      await primary.close();
    }
  });

  test("a replica of a replica: the same revisions, two hops down", async () => {
    const primary = await open(tmpDir());
    const first = await openReplica(path.join(tmpDir(), "r1"), { follow: serve(primary) });
    const second = await openReplica(path.join(tmpDir(), "r2"), { follow: serve(first) });
    try {
      await load(primary, 1000, "c", 16);
      await second.waitForRev(primary.rev, 20_000);
      expect(state(second)).toEqual(state(primary));
      expect(second.stats().replica).toMatchObject({ errors: 0, bootstraps: 0 });
    } finally {
      await second.close();
      await first.close();
      await primary.close();
    }
  });

  test("promotion: a stopped replica becomes a database of its own, above the old primary's revisions", async () => {
    const primary = await open(tmpDir());
    const url = serve(primary);
    await load(primary, 500, "p", 8);
    const dir = path.join(tmpDir(), "replica");
    const replica = await openReplica(dir, { follow: url });
    await replica.waitForRev(primary.rev, 20_000);
    const want = state(replica);
    expect(want).toEqual(state(primary));
    const applied = replica.rev;
    await replica.close();
    await primary.close();
    const r = await promote(dir, { bumpRevision: 1000 });
    expect(r).toMatchObject({ appliedRev: applied, rev: applied + 1000, keys: want.size });
    const db = await open(dir);
    try {
      expect(db.rev).toBe(applied + 1000);
      expect(state(db)).toEqual(want);
      expect(await db.put("new", 1)).toBe(applied + 1001);
    } finally {
      await db.close();
    }
    await expect(promote(dir)).rejects.toThrow("not a read replica");
  });

  test("the server: --follow with the primary's token, READ_ONLY writes, ?min_rev= and the applied revision", async () => {
    const pdir = tmpDir();
    const primary = await spawnServer(["--dir", pdir, "--token", "sekret"]);
    const rdir = path.join(tmpDir(), "replica");
    let replica: Awaited<ReturnType<typeof spawnServer>> | null = null;
    try {
      await primary.waitFor("ready at rev");
      replica = await spawnServer(["--dir", rdir, "--follow", primary.base, "--follow-token", "sekret"]);
      await replica.waitFor("ready at rev");
      const auth = { Authorization: "Bearer sekret" };
      let rev = 0;
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${primary.base}/v1/kv/k${i}`, { method: "PUT", body: JSON.stringify({ i }), headers: { ...auth, "content-type": "application/json" } });
        expect(res.status).toBe(200);
        rev = ((await res.json()) as { rev: number }).rev;
      }
      // Read your write on the replica: wait for its revision.
      const got = await fetch(`${replica.base}/v1/kv/k19?min_rev=${rev}`);
      expect(got.status).toBe(200);
      expect(Number(got.headers.get("harmony-applied-rev"))).toBeGreaterThanOrEqual(rev);
      expect(await got.json()).toEqual({ i: 19 });
      const listed = await fetch(`${replica.base}/v1/kv?prefix=k&min_rev=${rev}`);
      expect(listed.status).toBe(200);
      const put = await fetch(`${replica.base}/v1/kv/x`, { method: "PUT", body: "1", headers: { "content-type": "application/json" } });
      expect(put.status).toBe(403);
      const body = (await put.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("READ_ONLY");
      expect(body.error.message).toContain(primary.base);
      const status = (await (await fetch(`${replica.base}/v1/status`)).json()) as { db: { replica: { primary: string; appliedRev: number } } };
      expect(status.db.replica).toMatchObject({ primary: primary.base, appliedRev: rev });
      // The WAL route needs the primary's token.
      expect((await fetch(`${primary.base}/v1/wal?from=1`)).status).toBe(401);
      expect((await fetch(`${primary.base}/v1/wal`, { headers: auth })).status).toBe(400);
    } finally {
      for (const s of [replica, primary]) {
        if (!s) continue;
        s.proc.kill("SIGTERM");
        await s.proc.exited;
      }
    }
  });
});
