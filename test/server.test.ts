import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { open, type Db } from "../src/index.ts";
import { createHandler, type ServerState } from "../src/server/http.ts";
import { tmpDir } from "./helpers/index.ts";

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
    const put = await call("PUT", "/v1/kv/users/1", { body: JSON.stringify({ name: "ada" }), headers: { "content-type": "application/json" } });
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

  test("conditional writes answer 412 on a mismatch and write nothing", async () => {
    const first = await call("PUT", "/v1/kv/cond", { body: "1", headers: { "content-type": "application/json", "if-none-match": "*" } });
    expect(first.status).toBe(200);
    const { rev } = (await first.json()) as { rev: number };
    const again = await call("PUT", "/v1/kv/cond", { body: "2", headers: { "content-type": "application/json", "if-none-match": "*" } });
    expect(again.status).toBe(412);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("CONFLICT");
    const stale = await call("DELETE", "/v1/kv/cond", { headers: { "if-match": `"${rev + 100}"` } });
    expect(stale.status).toBe(412);
    const ok = await call("PUT", "/v1/kv/cond", { body: "3", headers: { "content-type": "application/json", "if-match": `"${rev}"` } });
    expect(ok.status).toBe(200);
    expect(db.get("cond")).toBe(3);
  });

  test("bad requests get JSON errors with the right status", async () => {
    const bad = await call("PUT", "/v1/kv/j", { body: "{nope", headers: { "content-type": "application/json" } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "BAD_JSON" } });
    expect((await call("PUT", "/v1/kv/%E0%A4%A", { body: "x" })).status).toBe(400);
    expect((await call("PUT", `/v1/kv/${"k".repeat(5000)}`, { body: "x" })).status).toBe(413);
    const post = await call("POST", "/v1/kv/x");
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toContain("PUT");
    expect((await call("GET", "/nope")).status).toBe(404);
    expect((await call("PUT", "/v1/kv/", { body: "x" })).status).toBe(400);
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
  });

  test("KV routes answer 503 with Retry-After until the database is open", async () => {
    const handler = createHandler({ db: null, progress: { phase: "wal", segment: 1, segments: 2, records: 10, rev: 10 } });
    const res = await handler(new Request("http://x/v1/kv/a"));
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect((await handler(new Request("http://x/readyz"))).status).toBe(503);
    expect((await handler(new Request("http://x/healthz"))).status).toBe(200);
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
    const put = await fetch(`${base}/v1/kv/hello`, { method: "PUT", body: JSON.stringify("world"), headers: { "content-type": "application/json" } });
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
