import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CompactedError, open, WatchOverflowError, type Db, type WatchEvent } from "../src/index.ts";
import { openForTest } from "../src/testing.ts";
import { isLoopback, parseConfig } from "../src/server/config.ts";
import { createHandler, kvBodyBytesMax, type ServerState } from "../src/server/http.ts";
import { createLogger } from "../src/server/log.ts";
import { createMonitor } from "../src/server/monitor.ts";
import { silentLogger } from "../src/server/log.ts";
import { Metrics } from "../src/server/metrics.ts";
import { endStreams, sseResponse, type WatchStream } from "../src/server/sse.ts";
import type { FailingOptions } from "./helpers/failing-io.ts";
import { ownTmpDirs, readEvents } from "./helpers/http.ts";

const JSON_TYPE = { "content-type": "application/json" };
const tmpDir = ownTmpDirs();

describe("HTTP handler (in process)", () => {
  let db: Db;
  let state: ServerState;
  let call: (method: string, p: string, init?: RequestInit) => Promise<Response>;
  // One database for the whole describe block, so it outlives tmpDir's per-test cleanup.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-http-"));
  beforeAll(async () => {
    db = await open(dir);
    state = { db, progress: null };
    const handler = createHandler(state);
    call = (method, p, init = {}) => handler(new Request(`http://x${p}`, { method, ...init }));
  });
  afterAll(async () => {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("PUT JSON, GET it back with its revision as ETag, DELETE it", async () => {
    const put = await call("PUT", "/v1/kv/users/1", { body: JSON.stringify({ name: "ada" }), headers: JSON_TYPE });
    expect(put.status).toBe(200);
    const { rev } = (await put.json()) as { rev: number };
    const got = await call("GET", "/v1/kv/users/1");
    expect(got.status).toBe(200);
    expect(got.headers.get("etag")).toBe(`"${rev}"`);
    expect(await got.json()).toEqual({ name: "ada" });
    const del = await call("DELETE", "/v1/kv/users/1");
    expect(await del.json()).toEqual({ rev: rev + 1, deleted: true });
    expect((await call("GET", "/v1/kv/users/1")).status).toBe(404);
  });

  test("bytes in, the same bytes out; keys are percent-decoded once", async () => {
    const bytes = new Uint8Array([0, 1, 254, 255]);
    const res = await call("PUT", "/v1/kv/bin%2Fa%2520b%C3%A9", { body: bytes, headers: { "content-type": "application/octet-stream" } });
    expect(res.status).toBe(200);
    expect(db.get("bin/a%20bé")).toEqual(bytes);
    const got = await call("GET", "/v1/kv/bin%2Fa%2520b%C3%A9");
    expect(got.headers.get("content-type")).toBe("application/octet-stream");
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes);
  });

  test("HEAD answers like GET, without a body", async () => {
    await db.put("head", { a: 1 });
    const res = await call("HEAD", "/v1/kv/head");
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toBe(`"${db.getEntry("head")!.rev}"`);
    expect(await res.text()).toBe("");
  });

  test("conditional writes answer 412 on a mismatch, name the key and write nothing", async () => {
    const first = await call("PUT", "/v1/kv/cond", { body: "1", headers: { ...JSON_TYPE, "if-none-match": "*" } });
    expect(first.status).toBe(200);
    const { rev } = (await first.json()) as { rev: number };
    const again = await call("PUT", "/v1/kv/cond", { body: "2", headers: { ...JSON_TYPE, "if-none-match": "*" } });
    expect(again.status).toBe(412);
    expect(await again.json()).toMatchObject({ error: { code: "CONFLICT", key: "cond" } });
    const stale = await call("DELETE", "/v1/kv/cond", { headers: { "if-match": `"${rev + 100}"` } });
    expect(stale.status).toBe(412);
    const ok = await call("PUT", "/v1/kv/cond", { body: "3", headers: { ...JSON_TYPE, "if-match": `"${rev}"` } });
    expect(ok.status).toBe(200);
    expect(db.get("cond")).toBe(3);
    // If-Match: * — the key must exist, whatever its revision.
    expect((await call("PUT", "/v1/kv/cond", { body: "4", headers: { ...JSON_TYPE, "if-match": "*" } })).status).toBe(200);
    expect((await call("PUT", "/v1/kv/cond-absent", { body: "4", headers: { ...JSON_TYPE, "if-match": "*" } })).status).toBe(412);
    const before = db.rev;
    const bad: Record<string, string>[] = [{ "if-match": "42" }, { "if-match": 'W/"1"' }, { "if-none-match": '"1"' }, { "if-match": '"1"', "if-none-match": "*" }];
    for (const h of bad) {
      const res = await call("PUT", "/v1/kv/cond", { body: "5", headers: { ...JSON_TYPE, ...h } });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "BAD_CONDITION" } });
    }
    expect(db.rev).toBe(before);
  });

  test("bad requests get JSON errors with the right status", async () => {
    const bad = await call("PUT", "/v1/kv/j", { body: "{nope", headers: JSON_TYPE });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "BAD_JSON" } });
    expect((await call("PUT", "/v1/kv/%E0%A4%A", { body: "x" })).status).toBe(400);
    expect((await call("PUT", `/v1/kv/${"k".repeat(5000)}`, { body: "x" })).status).toBe(413);
    const post = await call("POST", "/v1/kv/x");
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, PUT, DELETE, HEAD");
    expect((await call("GET", "/nope")).status).toBe(404);
    expect((await call("PUT", "/v1/kv/", { body: "x" })).status).toBe(400);
    for (const [method, p, allow] of [
      ["DELETE", "/v1/kv", "GET, HEAD"],
      ["GET", "/v1/batch", "POST"],
      ["POST", "/v1/watch", "GET"],
      ["PUT", "/metrics", "GET, HEAD"],
      ["GET", "/put", "POST"],
    ] as const) {
      const res = await call(method, p);
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe(allow);
    }
  });

  test("listing parameters are checked: 400 for a bad limit, flag or unknown parameter", async () => {
    for (const q of ["limit=0", "limit=abc", "limit=-1", "reverse=maybe", "keys_only=2", "prefx=a"]) {
      const res = await call("GET", `/v1/kv?${q}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "BAD_QUERY" } });
    }
    expect((await call("GET", "/v1/kv?limit=999999999")).status).toBe(200); // clamped to listLimitMax
  });

  test("the reserved keyspace (U+0000…, harmonydb/kv's) is neither readable, writable nor listed over REST", async () => {
    const kvKey = "\u0000kv\u0000\u0002a\u0000";
    await db.atomic(() => [{ type: "put", key: kvKey, value: new Uint8Array([1]) }]);
    await db.put("\u0001after", 1);
    for (const method of ["GET", "PUT", "DELETE"]) {
      const res = await call(method, `/v1/kv/${encodeURIComponent(kvKey)}`, method === "PUT" ? { body: "x" } : {});
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "INVALID_KEY" } });
    }
    const batch = await call("POST", "/v1/batch", { body: JSON.stringify({ ops: [{ op: "put", key: kvKey, value: 1 }] }), headers: JSON_TYPE });
    expect(batch.status).toBe(400);
    for (const q of ["", "?prefix=%00", "?start=%00&end=%02", "?cursor=%00", "?reverse=true&limit=999999"]) {
      const items = ((await (await call("GET", `/v1/kv${q}`)).json()) as { items: { key: string }[] }).items.map((i) => i.key);
      expect(items.filter((k) => k.startsWith("\u0000"))).toEqual([]);
      if (q !== "?prefix=%00") expect(items).toContain("\u0001after");
    }
    const legacy = await call("POST", "/get", { body: JSON.stringify({ key: kvKey }), headers: JSON_TYPE });
    expect(legacy.status).toBe(400);
    expect(db.get(kvKey)).toEqual(new Uint8Array([1]));
  });

  test("POST /v1/batch: 415 without JSON, 400 naming the bad op, 409 naming the key, nothing written", async () => {
    const before = db.rev;
    const batch = (body: unknown, type = "application/json") =>
      call("POST", "/v1/batch", { body: typeof body === "string" ? body : JSON.stringify(body), headers: { "content-type": type } });
    expect((await batch({ ops: [{ op: "put", key: "b", value: 1 }] }, "text/plain")).status).toBe(415);
    expect((await batch("{")).status).toBe(400);
    for (const [body, msg] of [
      [{}, "ops"],
      [{ ops: [] }, "empty"],
      [{ ops: [{ op: "put", key: "ok", value: 1 }, { op: "upsert", key: "b" }] }, "ops[1]"],
      [{ ops: [{ op: "put", key: "b" }] }, "exactly one"],
      [{ ops: [{ op: "put", key: "b", value: 1, valueBase64: "AA==" }] }, "exactly one"],
      [{ ops: [{ op: "put", key: "b", valueBase64: "not base64!" }] }, "base64"],
      [{ ops: [{ op: "delete", key: "b", value: 1 }] }, "no value"],
      [{ ops: [{ op: "put", key: 7, value: 1 }] }, "key"],
      [{ ops: [{ op: "put", key: "b", value: 1, ifRev: -1 }] }, "ifRev"],
      [{ ops: [{ op: "put", key: "b", value: 1, type: "put" }] }, "unknown field"],
    ] as const) {
      const res = await batch(body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain(msg);
    }
    await db.put("batch-taken", 1);
    const taken = db.rev;
    const conflict = await batch({ ops: [{ op: "put", key: "batch-new", value: 1 }, { op: "put", key: "batch-taken", value: 2, ifRev: 0 }] });
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ error: { code: "CONFLICT", key: "batch-taken" } });
    expect(db.rev).toBe(taken);
    expect(db.rev).toBe(before + 1);
    const ok = await batch({ ops: [{ op: "put", key: "batch-new", valueBase64: "AP8=" }, { op: "delete", key: "batch-taken", ifRev: taken }] });
    expect(await ok.json()).toEqual({ rev: taken + 1 });
    expect(db.get("batch-new")).toEqual(new Uint8Array([0, 255]));
  });

  test("a body over the limit is refused by its Content-Length before a byte is read", async () => {
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled += 1;
        c.enqueue(new Uint8Array(1024));
      },
    });
    const before = db.rev;
    const res = await call("PUT", "/v1/kv/big", { body, headers: { "content-length": String(kvBodyBytesMax + 1) } });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "BODY_TOO_LARGE" } });
    expect(pulled).toBeLessThanOrEqual(1); // at most what the stream primed itself with
    expect(db.rev).toBe(before);
  });

  test("a streamed body without Content-Length is cut off just past the limit", async () => {
    const chunk = new Uint8Array(1024 * 1024);
    let pulledBytes = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulledBytes > 4 * kvBodyBytesMax) return c.close(); // a bound, should the handler read on
        pulledBytes += chunk.length;
        c.enqueue(chunk);
      },
    });
    const res = await call("PUT", "/v1/kv/big", { body });
    expect(res.status).toBe(413);
    expect(pulledBytes).toBeLessThanOrEqual(kvBodyBytesMax + 3 * chunk.length);
    expect(db.get("big")).toBeUndefined();
  });

  test("the original routes keep their { success, value, error } shape", async () => {
    const put = await call("POST", "/put", { body: JSON.stringify({ key: "legacy", value: [1, 2] }) });
    expect(await put.json()).toEqual({ success: true });
    const get = await call("POST", "/get", { body: JSON.stringify({ key: "legacy" }) });
    expect(await get.json()).toEqual({ success: true, value: [1, 2] });
    const missing = await call("POST", "/get", { body: JSON.stringify({ key: "absent" }) });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ success: false });
    expect(((await (await call("GET", "/health")).json()) as { success: boolean }).success).toBe(true);
    const form = await call("POST", "/put", { body: "key=a", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(form.status).toBe(415);
    expect(await form.json()).toMatchObject({ success: false, code: "UNSUPPORTED_MEDIA_TYPE" });
    const badJson = await call("POST", "/put", { body: "{", headers: JSON_TYPE });
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toMatchObject({ success: false });
  });

  test("KV routes answer 503 with Retry-After until the database is open", async () => {
    const handler = createHandler({ db: null, progress: { phase: "wal", segment: 1, segments: 2, records: 10, rev: 10, keys: 0, keysTotal: 0 } });
    const res = await handler(new Request("http://x/v1/kv/a"));
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(await res.json()).toMatchObject({ error: { code: "NOT_READY" }, replay: { segment: 1, segments: 2 } });
    for (const p of ["/v1/kv", "/v1/batch", "/v1/watch", "/put"]) {
      const r = await handler(new Request(`http://x${p}`, { method: p === "/v1/batch" || p === "/put" ? "POST" : "GET" }));
      expect(r.status).toBe(503);
    }
    expect((await handler(new Request("http://x/readyz"))).status).toBe(503);
    const health = await handler(new Request("http://x/healthz"));
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ready: false, replay: { phase: "wal", records: 10 } });
  });

  test("while shutting down: new requests get 503, /readyz turns 503, /healthz still answers", async () => {
    const s: ServerState = { db, progress: null, draining: true };
    const handler = createHandler(s);
    const res = await handler(new Request("http://x/v1/kv/a", { method: "PUT", body: "1" }));
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: "SHUTTING_DOWN" } });
    expect((await handler(new Request("http://x/readyz"))).status).toBe(503);
    expect((await handler(new Request("http://x/healthz"))).status).toBe(200);
  });

  test("/metrics: requests by route and status, operations, fdatasync and batch-size histograms", async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => call("PUT", `/v1/kv/m${i}`, { body: "1", headers: JSON_TYPE })));
    await call("GET", "/v1/kv/m1");
    await call("GET", "/v1/kv/absent-for-metrics");
    const res = await call("GET", "/metrics");
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toMatch(/^harmonydb_http_requests_total\{route="\/v1\/kv\/:key",status="404"\} \d+$/m);
    expect(text).toMatch(/^harmonydb_operations_total\{op="put"\} \d+$/m);
    expect(text).toMatch(/^harmonydb_wal_bytes_total \d+$/m);
    expect(text).toMatch(/^harmonydb_wal_segment_seq 1$/m);
    expect(text).toMatch(/^harmonydb_recovery_seconds [\d.e-]+$/m);
    expect(text).toMatch(/^harmonydb_watchers 0$/m);
    expect(text).toMatch(/^harmonydb_snapshot_revision \d+$/m);
    expect(text).toMatch(/^harmonydb_wal_bytes_since_snapshot \d+$/m);
    for (const name of ["harmonydb_wal_fsync_duration_seconds", "harmonydb_wal_batch_records"]) {
      expect(text).toContain(`# TYPE ${name} histogram`);
      const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)$`, "gm"))];
      const counts = buckets.map((m) => Number(m[2]));
      expect(buckets.length).toBeGreaterThan(2);
      expect(buckets[buckets.length - 1]![1]).toBe("+Inf");
      expect(counts).toEqual([...counts].sort((a, b) => a - b)); // cumulative
      const count = Number(new RegExp(`^${name}_count (\\d+)$`, "m").exec(text)![1]);
      expect(counts[counts.length - 1]).toBe(count);
      expect(count).toBe(db.stats().wal.fsyncs);
    }
  });

  test("/v1/status holds db.stats() and the server's state", async () => {
    const res = await call("GET", "/v1/status");
    const body = (await res.json()) as { server: Record<string, unknown>; db: { rev: number; wal: object } };
    expect(body.server).toMatchObject({ ready: true, draining: false, auth: false });
    expect(body.db.rev).toBe(db.rev);
    expect(body.db.wal).toHaveProperty("fsyncLatencyUs");
  });
});

describe("watch over Server-Sent Events (in process)", () => {
  let db: Db;
  let state: ServerState;
  let handler: ReturnType<typeof createHandler>;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-sse-"));
  beforeAll(async () => {
    db = await open(dir);
    state = { db, progress: null };
    handler = createHandler(state);
  });
  afterAll(async () => {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const watch = (q: string, init: RequestInit = {}) => handler(new Request(`http://x/v1/watch${q}`, init));

  test("history from from_rev, then live changes, in revision order, filtered by prefix", async () => {
    await db.put("w/a", 1);
    await db.put("other", 2);
    const from = db.rev - 1;
    const res = await watch(`?prefix=w/&from_rev=${from}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/event-stream");
    const live = (async () => {
      await Bun.sleep(20);
      await db.batch([
        { type: "put", key: "w/b", value: new Uint8Array([1, 2]) },
        { type: "delete", key: "w/a" },
        { type: "put", key: "not-watched", value: 0 },
      ]);
    })();
    const events = await readEvents(res, 3);
    await live;
    expect(events.map((e) => [e.id, JSON.parse(e.data)])).toEqual([
      [`${from}`, { type: "put", key: "w/a", rev: from, value: 1 }],
      [`${from + 2}`, { type: "put", key: "w/b", rev: from + 2, valueBase64: "AQI=" }],
      [`${from + 2}.1`, { type: "delete", key: "w/a", rev: from + 2 }],
    ]);
  });

  test("a watch of everything does not see harmonydb/kv's reserved keys", async () => {
    const res = await watch(`?from_rev=${db.rev + 1}`);
    const live = (async () => {
      await Bun.sleep(20);
      await db.atomic(() => [{ type: "put", key: "\u0000kv\u0000\u0002hidden\u0000", value: new Uint8Array([1]) }]);
      await db.put("visible", 1);
    })();
    const events = await readEvents(res, 1);
    await live;
    expect(events.map((e) => JSON.parse(e.data).key)).toEqual(["visible"]);
  });

  test("Last-Event-ID resumes just after the last event seen, inside a batch too", async () => {
    const rev = await db.batch([1, 2, 3].map((i) => ({ type: "put" as const, key: `r/${i}`, value: i })));
    const res = await watch("?prefix=r/", { headers: { "last-event-id": `${rev}.0` } });
    const events = await readEvents(res, 2);
    expect(events.map((e) => [e.id, JSON.parse(e.data).key])).toEqual([
      [`${rev}.1`, "r/2"],
      [`${rev}.2`, "r/3"],
    ]);
  });

  test("a client that goes away cancels its watcher", async () => {
    const ac = new AbortController();
    const res = await watch("?prefix=gone/", { signal: ac.signal });
    expect(db.stats().watchers).toBe(1);
    ac.abort();
    await Bun.sleep(10);
    expect(db.stats().watchers).toBe(0);
    await res.body?.cancel().catch(() => {});
  });

  test("cancelling the response body cancels the watcher too", async () => {
    const res = await watch("?prefix=gone/");
    expect(db.stats().watchers).toBe(1);
    await res.body!.cancel();
    await Bun.sleep(10);
    expect(db.stats().watchers).toBe(0);
  });

  test("shutdown ends every stream with event: error SHUTTING_DOWN", async () => {
    const res = await watch("");
    const reading = readEvents(res, 1);
    await Bun.sleep(10);
    endStreams(state.streams!, "SHUTTING_DOWN", "bye");
    const [ev] = await reading;
    expect(ev?.event).toBe("error");
    expect(JSON.parse(ev!.data)).toEqual({ code: "SHUTTING_DOWN", message: "bye" });
    expect(db.stats().watchers).toBe(0);
  });

  test("a quiet stream sends heartbeat comments, and cancelling it stops them and returns the iterator", async () => {
    let returned = false;
    const never: AsyncIterableIterator<WatchEvent> = {
      next: () => new Promise(() => {}),
      return: async () => ((returned = true), { value: undefined, done: true }),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    const streams = new Set<WatchStream>();
    const res = sseResponse(never, { streams, signal: new AbortController().signal, metrics: new Metrics(), log: silentLogger, heartbeatMs: 10 });
    const reader = res.body!.getReader();
    let text = "";
    const t0 = Date.now();
    while (!text.includes(": ping") && Date.now() - t0 < 2000) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain(": ping\n\n");
    expect(streams.size).toBe(1);
    await reader.cancel();
    expect(streams.size).toBe(0);
    expect(returned).toBe(true);
  });

  test("bad watch parameters are a 400, before any stream", async () => {
    for (const q of ["?from_rev=0", "?from_rev=x", "?limit=3"]) {
      const res = await watch(q);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "BAD_QUERY" } });
    }
  });

  // Compaction and overflow, from an engine that reports them (the real ones are tested in watch.test.ts).
  const fakeDb = (watchImpl: () => AsyncIterableIterator<WatchEvent>) => ({ watch: watchImpl, stats: () => db.stats() }) as unknown as Db;

  test("a compacted from_rev ends the stream with event: error COMPACTED and the oldest revision", async () => {
    const h = createHandler({ db: fakeDb(() => { throw new CompactedError(3, 120); }), progress: null });
    const res = await h(new Request("http://x/v1/watch?from_rev=3"));
    expect(res.status).toBe(200);
    const events = await readEvents(res, 5, 1000);
    expect(events).toHaveLength(1);
    expect(events[0]!.event).toBe("error");
    expect(JSON.parse(events[0]!.data)).toMatchObject({ code: "COMPACTED", rev: 3, oldestRev: 120 });
  });

  test("a watcher that falls behind is cut off with event: error WATCH_OVERFLOW and where to resume", async () => {
    let returned = false;
    async function* gen(): AsyncGenerator<WatchEvent> {
      try {
        yield { type: "put", key: "a", value: 1, rev: 7 };
        throw new WatchOverflowError(10, 8);
      } finally {
        returned = true;
      }
    }
    const h = createHandler({ db: fakeDb(() => gen()), progress: null });
    const events = await readEvents(await h(new Request("http://x/v1/watch")), 5, 1000);
    expect(events.map((e) => e.event)).toEqual(["message", "error"]);
    expect(JSON.parse(events[1]!.data)).toMatchObject({ code: "WATCH_OVERFLOW", rev: 8, bufferMax: 10 });
    expect(returned).toBe(true);
  });

  test("a watch that ends (the database closed) says so", async () => {
    const own = await open(tmpDir());
    const h = createHandler({ db: own, progress: null });
    const res = await h(new Request("http://x/v1/watch"));
    const reading = readEvents(res, 1);
    await Bun.sleep(10);
    await own.close();
    const [ev] = await reading;
    expect(ev?.event).toBe("error");
    expect(JSON.parse(ev!.data)).toMatchObject({ code: "CLOSED" });
  });
});

describe("auth", () => {
  test("with a token every route but /healthz needs it: 401 otherwise, with WWW-Authenticate", async () => {
    const db = await open(tmpDir());
    try {
      const h = createHandler({ db, progress: null, token: "s3cret-token" });
      const req = (p: string, auth?: string, init: RequestInit = {}) =>
        h(new Request(`http://x${p}`, { ...init, headers: { ...(auth === undefined ? {} : { authorization: auth }), ...(init.headers ?? {}) } }));
      expect((await req("/healthz")).status).toBe(200);
      for (const p of ["/readyz", "/metrics", "/v1/status", "/v1/kv/a", "/v1/kv", "/v1/watch", "/health", "/nope"]) {
        for (const auth of [undefined, "Bearer wrong", "Bearer s3cret-toke", "Bearer s3cret-token2", "Basic s3cret-token", "s3cret-token", ""]) {
          const res = await req(p, auth);
          expect(res.status).toBe(401);
          expect(res.headers.get("www-authenticate")).toContain("Bearer");
          expect(await res.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
        }
      }
      const legacy = await req("/put", undefined, { method: "POST", body: JSON.stringify({ key: "k", value: 1 }) });
      expect(legacy.status).toBe(401);
      expect(await legacy.json()).toMatchObject({ success: false });
      expect(db.rev).toBe(0);
      const ok = await req("/v1/kv/a", "Bearer s3cret-token", { method: "PUT", body: "1", headers: JSON_TYPE });
      expect(ok.status).toBe(200);
      expect((await req("/v1/kv/a", "bearer s3cret-token")).status).toBe(200);
    } finally {
      await db.close();
    }
  });
});

test("/readyz turns 503 once the WAL fails; writes answer 503, reads go on", async () => {
  const dir = tmpDir();
  const trigger = path.join(dir, "fail-now");
  const options: FailingOptions = { op: "fdatasync", code: "EIO", trigger };
  const db = await openForTest(dir, { writerIO: { path: path.resolve(import.meta.dir, "helpers/failing-io.ts"), options } });
  try {
    const h = createHandler({ db, progress: null });
    const put = (k: string) => h(new Request(`http://x/v1/kv/${k}`, { method: "PUT", body: "1", headers: JSON_TYPE }));
    expect((await put("a")).status).toBe(200);
    expect((await h(new Request("http://x/readyz"))).status).toBe(200);
    fs.writeFileSync(trigger, "");
    const failed = await put("b");
    expect(failed.status).toBe(503);
    expect(await failed.json()).toMatchObject({ error: { code: "WAL_FAILED" } });
    const ready = await h(new Request("http://x/readyz"));
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { error: { message: string } }).error.message).toContain("WAL failed");
    expect((await h(new Request("http://x/v1/kv/a"))).status).toBe(200);
    expect(await (await h(new Request("http://x/metrics"))).text()).toMatch(/^harmonydb_wal_failed 1$/m);
  } finally {
    await db.close();
  }
});

describe("configuration", () => {
  test("defaults, HARMONYDB_* environment, and flags over environment", () => {
    expect(parseConfig([], {})).toEqual({ config: { dir: "./data", host: "127.0.0.1", port: 7070, token: null, sync: "always", logLevel: "info", idleTimeoutS: 30, archive: null, archiveRetainMs: 0, archiveSync: false, follow: null, followToken: null, kvPort: 7071 } });
    const env = { HARMONYDB_DIR: "/d", HARMONYDB_HOST: "::1", HARMONYDB_PORT: "80", HARMONYDB_TOKEN: "t", HARMONYDB_SYNC: "never", HARMONYDB_LOG_LEVEL: "debug", HARMONYDB_IDLE_TIMEOUT_S: "5", HARMONYDB_ARCHIVE: "s3://b/e", HARMONYDB_ARCHIVE_RETAIN: "7d" };
    expect(parseConfig([], env)).toEqual({ config: { dir: "/d", host: "::1", port: 80, token: "t", sync: "never", logLevel: "debug", idleTimeoutS: 5, archive: "s3://b/e", archiveRetainMs: 7 * 86_400_000, archiveSync: false, follow: null, followToken: null, kvPort: 81 } });
    const flags = ["--dir", "/f", "--port", "0", "--token", "u", "--sync", "interval", "--log-level", "warn", "--host", "0.0.0.0", "--idle-timeout", "9", "--archive", "s3://b/f", "--archive-retain", "90m", "--archive-sync"];
    expect(parseConfig(flags, env)).toEqual({ config: { dir: "/f", host: "0.0.0.0", port: 0, token: "u", sync: "interval", logLevel: "warn", idleTimeoutS: 9, archive: "s3://b/f", archiveRetainMs: 90 * 60_000, archiveSync: true, follow: null, followToken: null, kvPort: 0 } });
    expect(parseConfig(["--help"], {})).toEqual({ help: true });
  });

  test("bad values are errors that say what is wrong", () => {
    for (const [args, env, msg] of [
      [["--port", "70000"], {}, "port"],
      [["--port", "x"], {}, "port"],
      [[], { HARMONYDB_SYNC: "sometimes" }, "sync"],
      [["--log-level", "loud"], {}, "log level"],
      [["--idle-timeout", "0"], {}, "idle timeout"],
      [["--idle-timeout", "300"], {}, "idle timeout"],
      [["--archive", "http://b/p"], {}, "archive"],
      [["--archive", "s3://b/p", "--archive-retain", "7 days"], {}, "retention"],
      [["--archive-retain", "7d"], {}, "needs --archive"],
      [["--archive-sync"], {}, "needs --archive"],
      [["--follow", "ftp://b/p"], {}, "follow"],
      [["--follow", "http://p:7070", "--archive", "s3://b/p"], {}, "does not archive"],
      [["--kv-port", "x"], {}, "kv port"],
      [["--port", "7000", "--kv-port", "7000"], {}, "kv port must differ"],
      [["--nope"], {}, "nope"],
      [["stray"], {}, "stray"],
    ] as const) {
      const r = parseConfig([...args], env);
      expect("error" in r && r.error).toContain(msg);
    }
  });

  test("loopback addresses are told apart from the rest", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) expect(isLoopback(h)).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "example.com"]) expect(isLoopback(h)).toBe(false);
  });

  test("a new slowest fdatasync past 1 s is a warning each time; a failed WAL is an error, once", () => {
    const lines: string[] = [];
    const check = createMonitor(createLogger("debug", (l) => lines.push(l)));
    const stats = (fsyncMsMax: number, failed: string | null = null) => ({ failed, wal: { fsyncMsMax } }) as Parameters<typeof check>[0];
    check(stats(400));
    check(stats(1500));
    check(stats(1500));
    check(stats(2600, "EIO"));
    check(stats(2600, "EIO"));
    expect(lines.map((l) => l.replace(/^\S+ /, ""))).toEqual([
      "warn  harmonydb: slow fdatasync tookMs=1500 expectedMs=1000",
      "warn  harmonydb: slow fdatasync tookMs=2600 expectedMs=1000",
      "error harmonydb: WAL failed: the database is read-only until restarted error=EIO",
    ]);
  });

  test("log lines are one line each, levelled, with key=value fields", () => {
    const lines: string[] = [];
    const log = createLogger("info", (l) => lines.push(l));
    log.debug("hidden");
    log.info("two\nlines", { a: 1, b: "with space", c: undefined });
    log.warn("w");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\S+Z info  harmonydb: two lines a=1 b="with space"$/);
    expect(lines[1]).toMatch(/ warn  harmonydb: w$/);
  });
});

test("bun run server: a real process serves PUT/GET and exits 0 on SIGTERM", async () => {
  const dir = tmpDir("harmonydb-server-");
  const main = path.resolve(import.meta.dir, "../src/server/main.ts");
  const proc = Bun.spawn([process.execPath, main, "--dir", dir, "--port", "0"], { stdout: "pipe", stderr: "inherit" });
  try {
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("ready at rev")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`server exited early: ${out}`);
      out += new TextDecoder().decode(value);
    }
    const base = /listening on (http:\/\/[^,]+)/.exec(out)![1]!;
    const put = await fetch(`${base}/v1/kv/hello`, { method: "PUT", body: JSON.stringify("world"), headers: JSON_TYPE });
    expect(await put.json()).toEqual({ rev: 1 });
    expect(await (await fetch(`${base}/v1/kv/hello`)).json()).toBe("world");
    reader.releaseLock();
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  } finally {
    proc.kill("SIGKILL");
  }
  const db = await open(dir);
  expect(db.get("hello")).toBe("world");
  await db.close();
});
