// Random requests at the HTTP handler: it never throws, always answers JSON (or a success), and a rejected request writes nothing.

import { afterAll, beforeAll, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { open, type Db } from "../src/index.ts";
import { createHandler, kvBodyBytesMax, type Handler } from "../src/server/http.ts";
import { seeded } from "./helpers/fault-io.ts";

const SEED = Number(process.env.HARMONYDB_SEED ?? Date.now() % 1_000_000);
const CASES = Number(process.env.HARMONYDB_HTTP_FUZZ_CASES ?? 3000);

const METHODS = ["GET", "GET", "PUT", "PUT", "POST", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE-ISH", "get"];
const PATHS = [
  "/v1/kv/a", "/v1/kv/a/b", "/v1/kv/", "/v1/kv", "/v1/kv/%", "/v1/kv/%E0%A4%A", "/v1/kv/%C3%A9", "/v1/kv/%00", "/v1/kv/%2F%2F",
  "/v1/batch", "/v1/watch", "/metrics", "/v1/status", "/healthz", "/readyz", "/health", "/put", "/get", "/", "/v1", "/v1/",
  "/V1/KV/a", "/v1/kv/..%2F", "/v1/kv/" + "k".repeat(5000), "/v1/kv/" + "é".repeat(1500), "/put/", "/metrics/x",
];
const QUERIES = ["", "?limit=2", "?limit=0", "?prefix=a", "?reverse=true&keys_only=1", "?cursor=a", "?x=1", "?from_rev=1", "?from_rev=-5", "?start=b&end=a", "?limit=1e3", "?%", "?prefix=%FF"];
const TYPES = ["application/json", "application/json; charset=utf-8", "application/octet-stream", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/merge-patch+json", "", "garbage/;;;"];
const HEADERS: [string, string][] = [
  ["if-match", '"1"'], ["if-match", "*"], ["if-match", "nope"], ["if-match", '"99999999999999999999"'], ["if-none-match", "*"], ["if-none-match", '"3"'],
  ["authorization", "Bearer x"], ["content-length", "5"], ["content-length", "abc"], ["content-length", String(kvBodyBytesMax + 1)], ["content-length", "-1"],
  ["last-event-id", "1.2"], ["last-event-id", "zz"], ["accept", "text/event-stream"],
];

const ROUTED: [string, string][] = [
  ["PUT", "/v1/kv/a"], ["PUT", "/v1/kv/b%2Fc"], ["GET", "/v1/kv/a"], ["DELETE", "/v1/kv/a"], ["DELETE", "/v1/kv/b%2Fc"], ["GET", "/v1/kv"],
  ["POST", "/v1/batch"], ["POST", "/v1/batch"], ["GET", "/v1/watch"], ["POST", "/put"], ["POST", "/get"], ["GET", "/metrics"], ["HEAD", "/v1/kv/a"],
];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function randomBody(r: () => number): string | Uint8Array | undefined {
  const k = Math.floor(r() * 12);
  switch (k) {
    case 0:
      return undefined;
    case 1:
      return new Uint8Array(Math.floor(r() * 64)).map(() => Math.floor(r() * 256));
    case 2:
      return "{";
    case 3:
      return JSON.stringify({ key: pick(r, ["a", "", 5, null, "b/c"]), value: pick(r, [1, "x", null, { a: [1] }, undefined]) });
    case 4:
      return JSON.stringify({ ops: [{ op: pick(r, ["put", "delete", "nope"]), key: pick(r, ["a", "", "b", 3]), value: 1 }] });
    case 5:
      return JSON.stringify({ ops: Array.from({ length: 3 }, () => ({ op: "put", key: pick(r, ["a", "b", ""]), valueBase64: pick(r, ["AA==", "A", "!!", ""]), ifRev: pick(r, [0, 1, -1, 1.5, "2"]) })) });
    case 6:
      return "[".repeat(100_000); // deeper than any parser should go
    case 7:
      return new Uint8Array([0xff, 0xfe, 0x22, 0x61, 0x22]); // not UTF-8
    case 8:
      return JSON.stringify(pick(r, [null, 1, "s", [], {}, { ops: null }, { ops: {} }]));
    case 9:
      return "\u0000".repeat(Math.floor(r() * 10));
    default:
      return JSON.stringify(pick(r, [{ a: 1 }, "text", 42, [1, 2, 3], true]));
  }
}

function randomRequest(r: () => number): Request {
  const headers = new Headers();
  const type = pick(r, TYPES);
  if (type) headers.set("content-type", type);
  for (let i = Math.floor(r() * 3); i > 0; i--) {
    const [k, v] = pick(r, HEADERS);
    headers.set(k, v);
  }
  if (r() < 0.5) headers.set("authorization", "Bearer t0k");
  // Half the time a method the route takes, so that requests get past routing and into the handlers.
  const [method, p] = r() < 0.5 ? pick(r, ROUTED) : [pick(r, METHODS), pick(r, PATHS)];
  const body = method === "GET" || method === "HEAD" || method === "get" ? undefined : randomBody(r);
  return new Request(`http://x${p}${pick(r, QUERIES)}`, { method, headers, ...(body === undefined ? {} : { body }) });
}

let db: Db;
let handlers: Handler[];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-http-fuzz-"));
beforeAll(async () => {
  db = await open(dir);
  await db.put("a", 1);
  handlers = [
    createHandler({ db, progress: null }),
    createHandler({ db, progress: null }),
    createHandler({ db, progress: null, token: "t0k" }),
    createHandler({ db: null, progress: null }),
    createHandler({ db, progress: null, draining: true }),
  ];
});
afterAll(async () => {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test(`random methods, paths, headers and bodies: no throw, JSON errors, nothing written when rejected (seed ${SEED})`, async () => {
  console.log(`http fuzz seed ${SEED} (replay: HARMONYDB_SEED=${SEED})`);
  const r = seeded(SEED);
  const seen = new Map<number, number>();
  for (let i = 0; i < CASES; i++) {
    const req = randomRequest(r);
    const what = `case ${i}, seed ${SEED}: ${req.method} ${req.url}`;
    const rev = db.rev;
    const res = await pick(r, handlers)(req).catch((err: unknown) => {
      throw new Error(`${what}: handler threw ${String(err)}`);
    });
    seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
    const type = res.headers.get("content-type") ?? "";
    if (type.startsWith("text/event-stream")) {
      await res.body?.cancel();
      continue;
    }
    const text = await res.text();
    if (res.status >= 400) {
      expect(db.rev, what).toBe(rev);
      if (req.method === "HEAD") continue;
      expect(type, what).toStartWith("application/json");
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } | string; success?: boolean };
      const shaped = typeof body.error === "object" ? typeof body.error.code === "string" && typeof body.error.message === "string" : body.success === false;
      expect(shaped, `${what}: ${text}`).toBe(true);
      expect(text, what).not.toMatch(/\bat .*\.ts:\d+/); // no stack traces
    } else if (req.method !== "HEAD" && type.startsWith("application/json")) {
      JSON.parse(text);
    }
  }
  expect(db.stats().watchers).toBe(0);
  console.log("statuses:", Object.fromEntries([...seen].sort((a, b) => a[0] - b[0])));
});
