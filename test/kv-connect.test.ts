// KV Connect against the real clients: Deno's built-in one (the npm `deno`, HTTP/2 in cleartext)
// and @deno/kv under Node (HTTP/1.1), on the server's transport and handler in this process, over
// a real database. Plus the protocol's refusals, spoken by hand (docs/deno-kv.md §1, §9).

import { afterEach, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { open, type Db } from "../src/index.ts";
import { Kv, KvU64, type KvKey } from "../src/kv/index.ts";
import { listenKvConnect, type KvConnectServer } from "../src/server/kv-connect/front.ts";
import { KvConnect } from "../src/server/kv-connect/handler.ts";
import { KV_VALUES } from "./fixtures/kv-values.ts";
import { spawnServer } from "./helpers/http.ts";
import { tmpDir } from "./helpers/index.ts";

const root = path.join(import.meta.dir, "..");
const DENO = path.join(root, "node_modules", ".bin", "deno");
const DENO_KV = `file://${path.join(root, "node_modules", "@deno", "kv", "esm", "npm.js")}`;
const FIXTURES = `file://${path.join(import.meta.dir, "fixtures", "kv-values.ts")}`;

interface Served {
  db: Db;
  kv: Kv;
  server: KvConnectServer;
  url: string;
  close(): Promise<void>;
}

const running: Served[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.close();
});

/** The database in `dir`, openKv over it, and KV Connect on a free loopback port. */
async function serve(dir: string, token: string | null = null): Promise<Served> {
  const db = await open(dir, { log: () => {} });
  const kv = new Kv(db);
  const server = await listenKvConnect(new KvConnect({ store: () => db, kv: () => kv, token, pingMs: 200 }), "127.0.0.1", 0);
  let closed = false;
  const s: Served = {
    db,
    kv,
    server,
    url: `http://127.0.0.1:${server.port}/kv`,
    close: async () => {
      if (closed) return;
      closed = true;
      await server.close();
      await kv.close();
      await db.close();
    },
  };
  running.push(s);
  return s;
}

/** Every fixture value, under `prefix` + its key, reads back as the fixture holds it (errors: kind and message). */
async function expectFixtures(kv: Kv, prefix: string): Promise<void> {
  for (const [key, value] of KV_VALUES) {
    const got = (await kv.get([prefix, ...(key as KvKey)])).value;
    if (value instanceof Error) expect([(got as Error).constructor.name, (got as Error).message]).toEqual([value.constructor.name, value.message]);
    else if (key[0] === "obj" && key[1] === "cyclic") expect((got as { self: unknown }).self).toBe(got);
    else if (key[0] === "views") expect((got as unknown[])[0]).toBe((got as unknown[])[1]);
    else expect([key, got]).toEqual([key, value]);
  }
}

/** Runs a script in a child (Deno or Node) while this process serves; its stdout, or the test fails with its stderr. */
async function run(cmd: string[], dir: string, env: Record<string, string>): Promise<string> {
  const p = Bun.spawn(cmd, { cwd: dir, env: { ...process.env, DENO_DIR: path.join(dir, "deno-dir"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...env }, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill(), 60_000);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${path.basename(cmd[0]!)} exited with ${code}: ${err}\n${out}`);
  return out;
}

function deno(dir: string, script: string, url: string, token = "any"): Promise<string> {
  const file = path.join(dir, `script-${Math.random().toString(36).slice(2)}.ts`);
  fs.writeFileSync(file, script);
  return run([DENO, "run", "--quiet", "--allow-all", "--unstable-kv", file, url], dir, { DENO_KV_ACCESS_TOKEN: token });
}

function node(dir: string, script: string, url: string): Promise<string> {
  const file = path.join(dir, `script-${Math.random().toString(36).slice(2)}.mjs`);
  fs.writeFileSync(file, `import { openKv } from ${JSON.stringify(DENO_KV)};\n${script}`);
  return run(["node", file, url], dir, {});
}

describe("Deno's own client (h2c)", () => {
  test("keys in Deno's order, every value type, cursors, checks, sum/min/max, versionstamped keys, expireIn, watch", async () => {
    const dir = tmpDir();
    const s = await serve(dir);
    const out = await deno(
      dir,
      `import { deepStrictEqual as eq } from "node:assert";
const kv = await Deno.openKv(Deno.args[0]);
const keys = [["k", new Uint8Array([1])], ["k", ""], ["k", "a"], ["k", -5n], ["k", 3n], ["k", -1.5], ["k", 0], ["k", false], ["k", true]];
for (const k of [...keys].reverse()) await kv.set(k, k.length);
eq((await Array.fromAsync(kv.list({ prefix: ["k"] }))).map((e) => e.key), keys);
// Pages of 2 through a cursor, backwards.
const seen = [];
let cursor;
for (;;) {
  const it = kv.list({ prefix: ["k"] }, { limit: 2, cursor, reverse: true });
  for await (const e of it) seen.push(e.key);
  if (it.cursor === "" || seen.length >= keys.length) break;
  cursor = it.cursor;
}
eq(seen, [...keys].reverse());
// Checks: one stale versionstamp fails the whole commit.
const a = await kv.set(["a"], 1);
const b = await kv.set(["a"], 2);
eq(await kv.atomic().check({ key: ["a"], versionstamp: a.versionstamp }).set(["c"], 1).commit(), { ok: false });
eq((await kv.get(["c"])).value, null);
const ok = await kv.atomic().check({ key: ["a"], versionstamp: b.versionstamp }, { key: ["c"], versionstamp: null }).set(["c"], 1).commit();
eq(ok.ok, true);
eq(ok.versionstamp > b.versionstamp, true);
// sum wraps, min/max, a missing key takes the operand.
await kv.atomic().sum(["n"], 18446744073709551615n).commit();
await kv.atomic().sum(["n"], 2n).min(["lo"], 7n).max(["hi"], 7n).commit();
await kv.atomic().min(["lo"], 3n).max(["hi"], 3n).commit();
eq([(await kv.get(["n"])).value.value, (await kv.get(["lo"])).value.value, (await kv.get(["hi"])).value.value], [1n, 3n, 7n]);
await kv.set(["str"], "x");
let sumError = "";
try { await kv.atomic().sum(["str"], 1n).commit(); } catch (e) { sumError = String(e); }
// A versionstamped key.
const v = await kv.atomic().set(["log", kv.commitVersionstamp()], "entry").commit();
eq((await Array.fromAsync(kv.list({ prefix: ["log"] }))).map((e) => [e.key, e.value]), [[["log", v.versionstamp], "entry"]]);
// expireIn: gone once due.
await kv.set(["tmp"], "soon", { expireIn: 100 });
eq((await kv.get(["tmp"])).value, "soon");
await new Promise((r) => setTimeout(r, 200));
eq((await kv.get(["tmp"])).value, null);
// Watch: the entry now, then its change.
const reader = kv.watch([["w"]]).getReader();
eq((await reader.read()).value[0].value, null);
const w = await kv.set(["w"], "changed");
eq((await reader.read()).value[0], { key: ["w"], value: "changed", versionstamp: w.versionstamp });
await reader.cancel();
// Limits Deno's client checks before sending.
let tooBig = "";
try { await kv.set(["big"], new Uint8Array(65537)); } catch (e) { tooBig = String(e); }
kv.close();
console.log(JSON.stringify({ sumError, tooBig }));`,
      s.url,
    );
    const r = JSON.parse(out) as { sumError: string; tooBig: string };
    expect(r.sumError).toContain("Failed to perform 'sum' mutation on a non-U64 value in the database");
    expect(r.tooBig).toContain("Value too large (max 65536 bytes)");
    // What Deno wrote is this database's: openKv reads it.
    expect((await s.kv.get(["n"])).value).toEqual(new KvU64(1n));
    expect((await s.kv.get(["tmp"])).value).toBeNull();
  });

  test("every value type both ways: openKv writes and Deno reads; Deno writes and openKv reads", async () => {
    const dir = tmpDir();
    const s = await serve(dir);
    for (const [key, value] of KV_VALUES) await s.kv.set(["ours", ...(key as KvKey)], value);
    const out = await deno(
      dir,
      `import { KV_VALUES } from ${JSON.stringify(FIXTURES)};
import { deepStrictEqual } from "node:assert";
const kv = await Deno.openKv(Deno.args[0]);
const wrong = [];
for (const [k, v] of KV_VALUES) {
  const e = await kv.get(["ours", ...k]);
  try {
    if (v instanceof Error) deepStrictEqual([e.value?.constructor.name, e.value?.message], [v.constructor.name, v.message]);
    else deepStrictEqual(e.value, v);
  } catch (err) { wrong.push(JSON.stringify(k.map(String)) + ": " + String(err).slice(0, 200)); }
  await kv.set(["theirs", ...k], v);
}
kv.close();
console.log(JSON.stringify(wrong));`,
      s.url,
    );
    expect(JSON.parse(out)).toEqual([]);
    await expectFixtures(s.kv, "theirs");
  });

  test("a restart in between: nothing acknowledged is lost, and versionstamps go on growing", async () => {
    const dir = tmpDir();
    let s = await serve(dir);
    const script = `const kv = await Deno.openKv(Deno.args[0]);
const before = await kv.get(["count"]);
const r = await kv.atomic().sum(["count"], 1n).commit();
kv.close();
console.log(JSON.stringify({ before: before.value ? String(before.value.value) : null, versionstamp: r.versionstamp }));`;
    const first = JSON.parse(await deno(dir, script, s.url));
    await s.close();
    s = await serve(dir);
    const second = JSON.parse(await deno(dir, script, s.url));
    expect(first.before).toBeNull();
    expect(second.before).toBe("1");
    expect(second.versionstamp > first.versionstamp).toBe(true);
  });

  test("a wrong token is refused with 401 and the client gives up; the right one is served", async () => {
    const dir = tmpDir();
    const s = await serve(dir, "s3cret");
    const script = `try { const kv = await Deno.openKv(Deno.args[0]); await kv.get(["a"]); kv.close(); console.log("served"); } catch (e) { console.log(String(e)); }`;
    expect(await deno(dir, script, s.url, "wrong")).toContain("Invalid access token");
    expect((await deno(dir, script, s.url, "s3cret")).trim()).toBe("served");
  });
});

describe("@deno/kv under Node (HTTP/1.1)", () => {
  test("set, get, list with cursors, atomic checks and sum, watch, and openKv reads what it wrote", async () => {
    const dir = tmpDir();
    const s = await serve(dir);
    await s.kv.set(["from", "bun"], { when: new Date(5), n: 10n ** 20n });
    const out = await node(
      dir,
      `import { deepStrictEqual as eq } from "node:assert";
const kv = await openKv(process.argv[2], { accessToken: "any" });
eq((await kv.get(["from", "bun"])).value, { when: new Date(5), n: 10n ** 20n });
for (let i = 0; i < 5; i++) await kv.set(["p", i], { i });
const it = kv.list({ prefix: ["p"] }, { limit: 2 });
const page = [];
for await (const e of it) page.push(e.key[1]);
const rest = [];
for await (const e of kv.list({ prefix: ["p"] }, { cursor: it.cursor })) rest.push(e.key[1]);
eq([page, rest], [[0, 1], [2, 3, 4]]);
const a = await kv.set(["a"], "x");
eq(await kv.atomic().check({ key: ["a"], versionstamp: null }).set(["a"], "y").commit(), { ok: false });
eq((await kv.atomic().check({ key: ["a"], versionstamp: a.versionstamp }).sum(["hits"], 5n).commit()).ok, true);
eq((await kv.get(["hits"])).value.value, 5n);
const reader = kv.watch([["a"]]).getReader();
eq((await reader.read()).value[0].value, "x");
const b = await kv.set(["a"], "z");
eq((await reader.read()).value[0].versionstamp, b.versionstamp);
await reader.cancel();
await kv.set(["from", "node"], new Uint8Array([1, 2, 3]));
kv.close();
console.log("done");`,
      s.url,
    );
    expect(out.trim()).toBe("done");
    expect((await s.kv.get(["from", "node"])).value).toEqual(new Uint8Array([1, 2, 3]));
    expect((await s.kv.get(["hits"])).value).toEqual(new KvU64(5n));
  });
});

test("@deno/kv under Node: every value type, read from openKv's writes and written back through Node's V8", async () => {
  const dir = tmpDir();
  const s = await serve(dir);
  for (const [key, value] of KV_VALUES) await s.kv.set(["ours", ...(key as KvKey)], value);
  // Node has no TypeScript for the fixtures: it reads each value we wrote and writes it back as it
  // decoded it (node:v8, format 15), under "theirs"; then openKv must find the fixture's value there.
  const out = await node(
    dir,
    `const kv = await openKv(process.argv[2], { accessToken: "any" });
let n = 0;
for await (const e of kv.list({ prefix: ["ours"] })) {
  await kv.set(["theirs", ...e.key.slice(1)], e.value);
  n++;
}
kv.close();
console.log(n);`,
    s.url,
  );
  expect(Number(out)).toBe(KV_VALUES.length);
  await expectFixtures(s.kv, "theirs");
});

describe("the protocol's refusals (by hand, HTTP/1.1)", () => {
  const post = (url: string, body: string | Uint8Array | null, headers: Record<string, string> = {}) => fetch(url, { method: "POST", body, headers });

  test("metadata: no body, no common version, a malformed or wrong token, each a 4xx with denokv's text", async () => {
    const s = await serve(tmpDir(), "t");
    const auth = { authorization: "Bearer t" };
    const cases: [Response, number, string][] = [
      [await post(s.url, null, auth), 400, "The server requires at least protocol version 2. Use Deno 1.38.0 or newer."],
      [await post(s.url, JSON.stringify({ supportedVersions: [1] }), auth), 400, "The server could not negotiate a protocol version. The server requires protocol version 2 or 3."],
      [await post(s.url, JSON.stringify({ supportedVersions: [2] }), { authorization: "t" }), 401, "Malformed authorization header."],
      [await post(s.url, JSON.stringify({ supportedVersions: [2] }), { authorization: "Bearer x" }), 401, "Invalid access token."],
      [await post(s.url + "/nope", null, auth), 404, "Resource not found."],
    ];
    for (const [res, status, text] of cases) expect([res.status, await res.text()]).toEqual([status, text]);
    const ok = await post(s.url, JSON.stringify({ supportedVersions: [2, 3] }), auth);
    const meta = (await ok.json()) as { version: number; databaseId: string; endpoints: { url: string; consistency: string }[]; token: string; expiresAt: string };
    expect(meta).toMatchObject({ version: 3, endpoints: [{ url: "/kv/v2", consistency: "strong" }], token: "t" });
    expect(meta.databaseId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Date.parse(meta.expiresAt)).toBeGreaterThan(Date.now());
  });

  test("a connection reset mid-body, garbage bytes, and a body over the limit leave the server answering", async () => {
    const s = await serve(tmpDir());
    const net = await import("node:net");
    const send = (bytes: string) =>
      new Promise<void>((resolve) => {
        const c = net.connect(s.server.port, "127.0.0.1", () => {
          c.write(bytes);
          setTimeout(() => (c.destroy(), resolve()), 20);
        });
        c.on("error", () => resolve());
      });
    await send("POST /kv/v2/atomic_write HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789");
    await send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04garbage-frames");
    await send("\x16\x03\x01 not http at all\r\n\r\n");
    const big = await post(s.url, new Uint8Array(3 * 1024 * 1024), { authorization: "Bearer a" });
    expect(big.status).toBe(413);
    const ok = await post(s.url, JSON.stringify({ supportedVersions: [3] }), { authorization: "Bearer a" });
    expect(ok.status).toBe(200);
  });

  test("data path: version, database id, bad protobuf, too many ranges, a bad limit, queues: 4xx, never 5xx", async () => {
    const { create, toBinary } = await import("@bufbuild/protobuf");
    const pb = await import("../src/server/kv-connect/datapath_pb.ts");
    const s = await serve(tmpDir());
    const meta = (await (await post(s.url, JSON.stringify({ supportedVersions: [3] }), { authorization: "Bearer a" })).json()) as { databaseId: string };
    const headers = { authorization: "Bearer a", "x-denokv-version": "3", "x-denokv-database-id": meta.databaseId };
    const data = `http://127.0.0.1:${s.server.port}/kv/v2`;
    const range = (limit: number) => create(pb.ReadRangeSchema, { start: new Uint8Array([2]), end: new Uint8Array([3]), limit });
    const read = (n: number, limit = 1) => toBinary(pb.SnapshotReadSchema, create(pb.SnapshotReadSchema, { ranges: Array.from({ length: n }, () => range(limit)) }));
    const cases: [Response, number, string][] = [
      [await post(`${data}/snapshot_read`, read(1), { ...headers, "x-denokv-version": "1" }), 400, "Expected protocol version 2."],
      [await post(`${data}/snapshot_read`, read(1), { ...headers, "x-denokv-database-id": "00000000-0000-0000-0000-000000000000" }), 400, "Invalid database id."],
      [await post(`${data}/snapshot_read`, read(11), headers), 400, "Too many read ranges requested in one read request."],
      [await post(`${data}/snapshot_read`, read(1, 0), headers), 400, "The read range limit of the snapshot read request is invalid."],
      [await post(`${data}/snapshot_read`, read(2, 600), headers), 400, "The total number of entries requested across read ranges in the read request is too large."],
      [await post(`${data}/snapshot_read`, new Uint8Array([0xff, 0xff, 0xff]), headers), 400, ""],
      [await post(`${data}/atomic_write`, toBinary(pb.AtomicWriteSchema, create(pb.AtomicWriteSchema, { enqueues: [{ payload: new Uint8Array([1]) }] })), headers), 400, "Queues are not supported"],
      [await post(`${data}/atomic_write`, toBinary(pb.AtomicWriteSchema, create(pb.AtomicWriteSchema, { mutations: [{ key: new Uint8Array([2, 0x61, 0]), mutationType: pb.MutationType.M_SUM, value: { data: new Uint8Array(3), encoding: pb.ValueEncoding.VE_LE64 } }] })), headers), 400, "Invalid mutation kind or arguments."],
      [await post(`${data}/atomic_write`, toBinary(pb.AtomicWriteSchema, create(pb.AtomicWriteSchema, { checks: [{ key: new Uint8Array([2, 0x61, 0]), versionstamp: new Uint8Array(3) }] })), headers), 400, "Invalid versionstamp."],
      [await post(`${data}/atomic_write`, toBinary(pb.AtomicWriteSchema, create(pb.AtomicWriteSchema, { mutations: [{ key: new Uint8Array([2, 0x61, 0]), mutationType: pb.MutationType.M_SET, value: { data: new Uint8Array(3), encoding: pb.ValueEncoding.VE_LE64 } }] })), headers), 400, "Invalid mutation kind or arguments."],
      [await post(`${data}/atomic_write`, toBinary(pb.AtomicWriteSchema, create(pb.AtomicWriteSchema, { mutations: [{ key: new Uint8Array([0x99]), mutationType: pb.MutationType.M_DELETE }] })), headers), 400, "Invalid mutation kind or arguments."],
    ];
    for (const [res, status, text] of cases) {
      const body = await res.text();
      expect([res.status, body.startsWith(text) || (text === "" && body.startsWith("Request protobuf is invalid"))]).toEqual([status, true]);
    }
    // And a good read, over HTTP/1.1: the ranges in request order.
    await s.kv.set(["a"], "x");
    const ok = await post(`${data}/snapshot_read`, read(1, 10), headers);
    const { fromBinary } = await import("@bufbuild/protobuf");
    const got = fromBinary(pb.SnapshotReadOutputSchema, new Uint8Array(await ok.arrayBuffer()));
    expect(got.ranges[0]!.values.map((e) => [Buffer.from(e.key).toString("hex"), e.encoding])).toEqual([["026100", pb.ValueEncoding.VE_V8]]);
  });
});

test("`bun run server` prints its KV Connect URL; Deno's client reaches the data there, REST does not; SIGTERM stops both", async () => {
  const dir = tmpDir();
  const server = await spawnServer(["--dir", path.join(dir, "data"), "--token", "tok"]);
  try {
    await server.waitFor("ready at rev");
    const url = /Deno KV \(KV Connect\) at (http:\/\/\S+)/.exec(server.stdout())![1]!;
    const out = await deno(dir, `const kv = await Deno.openKv(Deno.args[0]);
const r = await kv.set(["greet"], "hello from deno");
console.log(JSON.stringify({ r, got: (await kv.get(["greet"])).value }));
kv.close();`, url, "tok");
    expect(JSON.parse(out).got).toBe("hello from deno");
    const list = await fetch(`${server.base}/v1/kv`, { headers: { authorization: "Bearer tok" } });
    expect(((await list.json()) as { items: unknown[] }).items).toEqual([]);
    server.proc.kill("SIGTERM");
    expect(await server.proc.exited).toBe(0);
    expect(server.stdout()).toContain("stopped rev=1");
  } finally {
    server.proc.kill("SIGKILL");
  }
});
