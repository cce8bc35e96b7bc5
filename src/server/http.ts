// The HTTP front as a fetch handler: (Request) → Response, testable without a socket.

import { createHash, timingSafeEqual } from "node:crypto";
import {
  CompactedError,
  ConflictError,
  HarmonyError,
  recordBytesMax,
  valueBytesMax,
  type BatchOp,
  type Db,
  type ErrorCode,
  type RangeOptions,
  type ReplayProgress,
  type WatchOptions,
} from "../index.ts";
import { silentLogger, type Logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { parseEventId, sseResponse, type WatchStream } from "./sse.ts";
import { fromBase64, jsonText, valueFields } from "./values.ts";

// ---- limits (bytes unless the name says otherwise) ----

/** Largest body of PUT /v1/kv/<key> and the legacy routes: the largest value plus room for JSON syntax. */
export const kvBodyBytesMax = valueBytesMax + 64 * 1024;
/** Largest POST /v1/batch body: a whole record's worth of values as base64 (4/3 of it), plus the JSON around them. */
export const batchBodyBytesMax = Math.ceil((recordBytesMax * 4) / 3) + 1024 * 1024;
export const listLimitDefault = 1000;
export const listLimitMax = 10_000;
/** A listing stops once its items hold about this much JSON, and says `more: true`. */
export const listBytesMax = 8 * 1024 * 1024;

/** What the handler serves, and what main.ts shares with it. Only `db` and `progress` are required. */
export interface ServerState {
  /** The database once it is open; null while the WAL replays. */
  db: Db | null;
  progress: ReplayProgress | null;
  /** With a token, every route but /healthz needs `Authorization: Bearer <token>`. */
  token?: string | null;
  /** Set when shutdown begins: new requests get 503, /readyz turns 503. */
  draining?: boolean;
  metrics?: Metrics;
  log?: Logger;
  /** Shown by /v1/status. */
  info?: Record<string, string | number | boolean>;
  /** Open watch streams; shutdown ends them (sse.ts endStreams). */
  streams?: Set<WatchStream>;
}

/** The part of Bun's Server the handler uses: turning the idle timeout off for a watch stream. */
export interface ServerHooks {
  timeout(req: Request, seconds: number): void;
}

export type Handler = (req: Request, server?: ServerHooks) => Promise<Response>;

type State = ServerState & { metrics: Metrics; log: Logger; streams: Set<WatchStream> };

interface Ctx {
  state: State;
  req: Request;
  url: URL;
  server: ServerHooks | undefined;
  /** The percent-decoded key of /v1/kv/<key> ("" on other routes). */
  key: string;
}

type Fn = (c: Ctx) => Response | Promise<Response>;

interface Route {
  /** The metrics label. */
  name: string;
  methods: Record<string, Fn>;
  /** The original routes answer errors as { success: false, error }. */
  legacy?: boolean;
  /** Whether HEAD is answered like GET without a body (not for streams). */
  head?: boolean;
}

/** The HTTP status of each engine error; typed by ErrorCode, so a new code without one does not compile. */
const STATUS: Record<ErrorCode, number> = {
  CLOSED: 503,
  LOCKED: 503,
  CORRUPTION: 500,
  INVALID_KEY: 400,
  KEY_TOO_LARGE: 413,
  VALUE_TOO_LARGE: 413,
  INVALID_VALUE: 400,
  INVALID_ARGUMENT: 400,
  CONFLICT: 412,
  WAL_FAILED: 503,
  COMPACTED: 410,
  NO_SPACE: 507,
  WATCH_OVERFLOW: 503,
  // No route takes a snapshot today; 500 (what the fallback gave) because the server's own file write failed, not the request.
  SNAPSHOT_FAILED: 500,
};

export function createHandler(state: ServerState): Handler {
  state.metrics ??= new Metrics();
  state.log ??= silentLogger;
  state.streams ??= new Set();
  const s = state as State;
  return async (req, server) => {
    const t0 = s.log.enabled("debug") ? performance.now() : 0;
    let name = "unmatched";
    let res: Response;
    try {
      const url = new URL(req.url);
      const m = match(url.pathname);
      if (m) name = m.route.name;
      res = await dispatch({ state: s, req, url, server, key: m?.key ?? "" }, m?.route ?? null);
    } catch (err) {
      res = failure(s, err, ROUTES[name]?.legacy === true);
    }
    s.metrics.request(name, res.status);
    if (s.log.enabled("debug")) {
      s.log.debug("request", { method: req.method, route: name, status: res.status, ms: (performance.now() - t0).toFixed(2) });
    }
    return res;
  };
}

/** Auth, route, method, readiness — in that order, so nothing about the routes leaks before auth. */
async function dispatch(c: Ctx, route: Route | null): Promise<Response> {
  const legacy = route?.legacy === true;
  if (route !== HEALTHZ && !authorized(c.state.token, c.req)) {
    return withHeaders(error(401, "UNAUTHORIZED", "missing or wrong bearer token", legacy), { "WWW-Authenticate": 'Bearer realm="harmonydb"' });
  }
  if (!route) return error(404, "NOT_FOUND", `no route for ${c.url.pathname}`);
  const method = c.req.method;
  const head = method === "HEAD" && route.head !== false && route.methods.GET !== undefined;
  const fn = route.methods[head ? "GET" : method];
  if (!fn) {
    const allow = Object.keys(route.methods);
    if (route.methods.GET && route.head !== false) allow.push("HEAD");
    return withHeaders(error(405, "METHOD_NOT_ALLOWED", `${method} is not allowed on ${route.name}`, legacy), { Allow: allow.join(", ") });
  }
  if (c.state.draining && route !== HEALTHZ && route !== READYZ) {
    return withHeaders(error(503, "SHUTTING_DOWN", "the server is shutting down", legacy), { Connection: "close" });
  }
  if (route === KV_KEY) {
    if (c.key === INVALID) return error(400, "INVALID_KEY", "key is not valid percent-encoded UTF-8");
    if (c.key === "") return error(400, "INVALID_KEY", "key must not be empty");
  }
  const res = await fn(c);
  return head ? new Response(null, { status: res.status, headers: res.headers }) : res;
}

/** Errors thrown by the engine or by a bug, as responses; never a stack trace, the log gets the detail. */
function failure(s: State, err: unknown, legacy: boolean): Response {
  if (err instanceof ConflictError && !legacy) return json(412, conflictBody(err));
  // The ?? only guards a code that was cast past the type (STATUS covers every ErrorCode).
  if (err instanceof HarmonyError) return error(STATUS[err.code] ?? 500, err.code, err.message, legacy);
  s.log.error("unexpected error", { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return error(500, "INTERNAL", "internal error", legacy);
}

// ---- routes ----

const INVALID = "\u0000invalid";
const JSON_TYPE = "application/json;charset=utf-8";
const KV_PREFIX = "/v1/kv/";

/** Wraps a route that needs the database: 503 with Retry-After while the WAL replays. */
function withDb(fn: (c: Ctx, db: Db) => Response | Promise<Response>): Fn {
  return (c) => (c.state.db ? fn(c, c.state.db) : notReady(c.state));
}

const HEALTHZ: Route = { name: "/healthz", methods: { GET: (c) => json(200, health(c.state)) } };
const READYZ: Route = { name: "/readyz", methods: { GET: readyz } };
const KV_KEY: Route = {
  name: "/v1/kv/:key",
  methods: { GET: withDb(getKey), PUT: withDb(putKey), DELETE: withDb(deleteKey) },
};

const ROUTES: Record<string, Route> = {
  "/healthz": HEALTHZ,
  "/readyz": READYZ,
  "/health": { name: "/health", methods: { GET: (c) => json(200, health(c.state)) } },
  "/metrics": { name: "/metrics", methods: { GET: metrics } },
  "/v1/status": { name: "/v1/status", methods: { GET: status } },
  "/v1/kv": { name: "/v1/kv", methods: { GET: withDb(list) } },
  "/v1/batch": { name: "/v1/batch", methods: { POST: withDb(batch) } },
  "/v1/watch": { name: "/v1/watch", methods: { GET: withDb(watch) }, head: false },
  "/put": { name: "/put", methods: { POST: withDb(legacyPut) }, legacy: true },
  "/get": { name: "/get", methods: { POST: withDb(legacyGet) }, legacy: true },
  [KV_KEY.name]: KV_KEY,
};

function match(pathname: string): { route: Route; key?: string } | null {
  if (pathname.startsWith(KV_PREFIX)) return { route: KV_KEY, key: decodeKey(pathname.slice(KV_PREFIX.length)) };
  return Object.hasOwn(ROUTES, pathname) ? { route: ROUTES[pathname]! } : null;
}

function health(s: State) {
  return { ok: true, success: true, ready: s.db !== null, draining: s.draining === true, replay: s.progress };
}

function readyz(c: Ctx): Response {
  const s = c.state;
  const failed = s.db?.stats().failed ?? null;
  const reason = !s.db ? "replaying the WAL" : s.draining ? "shutting down" : failed !== null ? `WAL failed: ${failed}` : null;
  if (reason === null) return json(200, { ready: true });
  return json(503, { ready: false, ...errBody("NOT_READY", reason), replay: s.progress });
}

function metrics(c: Ctx): Response {
  const s = c.state;
  const text = s.metrics.render(s.db?.stats() ?? null, { ready: s.db !== null && !s.draining, streams: s.streams.size });
  return new Response(text, { headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" } });
}

function status(c: Ctx): Response {
  const s = c.state;
  const server = {
    ...s.info,
    ready: s.db !== null && !s.draining && s.db.stats().failed === null,
    draining: s.draining === true,
    auth: Boolean(s.token),
    watchStreams: s.streams.size,
    uptimeS: (Date.now() - s.metrics.startedAtMs) / 1000,
  };
  return json(200, { server, db: s.db?.stats() ?? null, replay: s.progress });
}

function getKey(c: Ctx, db: Db): Response {
  const e = db.getEntry(c.key);
  c.state.metrics.op("get");
  if (!e) return error(404, "NOT_FOUND", `key ${JSON.stringify(c.key)} not found`);
  const headers = { ETag: `"${e.rev}"` };
  if (e.value instanceof Uint8Array) return new Response(e.value, { headers: { ...headers, "Content-Type": "application/octet-stream" } });
  return new Response(jsonText(e.value), { headers: { ...headers, "Content-Type": JSON_TYPE } });
}

async function putKey(c: Ctx, db: Db): Promise<Response> {
  const ifRev = condition(c.req, db, c.key);
  if (ifRev instanceof Response) return ifRev;
  const body = await readBody(c.req, kvBodyBytesMax);
  if (body instanceof Response) return body;
  let value: unknown = body;
  if (isJson(mediaType(c.req))) {
    value = parseJson(body);
    if (value === BAD_JSON) return error(400, "BAD_JSON", "body is not valid JSON");
  }
  const rev = await db.put(c.key, value, ifRev === undefined ? {} : { ifRev });
  c.state.metrics.op("put");
  return json(200, { rev });
}

async function deleteKey(c: Ctx, db: Db): Promise<Response> {
  const ifRev = condition(c.req, db, c.key);
  if (ifRev instanceof Response) return ifRev;
  const r = await db.delete(c.key, ifRev === undefined ? {} : { ifRev });
  c.state.metrics.op("delete");
  return json(200, r);
}

/**
 * If-Match: "<rev>" → that revision; If-Match: * → whatever revision the key has now (412 if it
 * has none); If-None-Match: * → must not exist (ifRev 0). Other forms are refused, not ignored.
 */
function condition(req: Request, db: Db, key: string): number | undefined | Response {
  const none = req.headers.get("if-none-match");
  const match = req.headers.get("if-match");
  if (none !== null && match !== null) return error(400, "BAD_CONDITION", "use If-Match or If-None-Match, not both");
  if (none !== null) return none.trim() === "*" ? 0 : error(400, "BAD_CONDITION", "If-None-Match supports only *");
  if (match === null) return undefined;
  if (match.trim() === "*") {
    const rev = db.getEntry(key)?.rev;
    const message = `harmonydb: condition failed for key ${JSON.stringify(key)}: If-Match: * and no key`;
    return rev ?? json(412, { error: { code: "CONFLICT", message, key } });
  }
  const m = /^\s*"(\d{1,15})"\s*$/.exec(match);
  if (!m) return error(400, "BAD_CONDITION", 'If-Match must be * or one quoted revision, like "42"');
  return Number(m[1]);
}

// ---- listing ----

interface ListQuery {
  prefix?: string;
  start?: string;
  end?: string;
  cursor?: string;
  limit: number;
  reverse: boolean;
  keysOnly: boolean;
}

/**
 * GET /v1/kv?prefix=&start=&end=&limit=&reverse=&keys_only=&cursor= — keys in `[start, end)` with
 * the prefix, in order (or reversed). When more keys remain, the answer has `more: true` and
 * `next` (the last key it holds): pass it back as `cursor` with the same other parameters for the
 * next page, which starts just after it in the listing's direction.
 */
function list(c: Ctx, db: Db): Response {
  const q = listQuery(c.url.searchParams);
  if (q instanceof Response) return q;
  const parts: string[] = [];
  let bytes = 0;
  let last = "";
  let more = false;
  for (const item of db.range(rangeOptions(q))) {
    if (parts.length >= q.limit || bytes >= listBytesMax) {
      more = true;
      break;
    }
    const text = jsonText(q.keysOnly ? { key: item.key, rev: item.rev } : { key: item.key, rev: item.rev, ...valueFields(item.value) });
    parts.push(text);
    bytes += text.length;
    last = item.key;
  }
  c.state.metrics.op("list");
  const next = more ? `,"next":${jsonText(last)}` : "";
  return new Response(`{"items":[${parts.join(",")}],"more":${more}${next}}`, { headers: { "Content-Type": JSON_TYPE } });
}

/** The engine's range for a listing page; a cursor replaces the near bound, so every page starts where it should, in O(log n). */
function rangeOptions(q: ListQuery): RangeOptions {
  const o: RangeOptions = { reverse: q.reverse };
  if (q.prefix !== undefined) o.prefix = q.prefix;
  if (q.start !== undefined) o.gte = q.start;
  if (q.end !== undefined) o.lt = q.end;
  if (q.cursor !== undefined) {
    if (!q.reverse && (q.start === undefined || q.cursor >= q.start)) {
      delete o.gte;
      o.gt = q.cursor;
    } else if (q.reverse && (q.end === undefined || q.cursor < q.end)) {
      o.lt = q.cursor;
    }
  }
  return o;
}

const LIST_PARAMS = new Set(["prefix", "start", "end", "cursor", "limit", "reverse", "keys_only"]);

function listQuery(p: URLSearchParams): ListQuery | Response {
  const unknown = unknownParam(p, LIST_PARAMS);
  if (unknown) return unknown;
  const limit = intParam(p, "limit", 1, Number.MAX_SAFE_INTEGER);
  const reverse = boolParam(p, "reverse");
  const keysOnly = boolParam(p, "keys_only");
  for (const r of [limit, reverse, keysOnly]) if (r instanceof Response) return r;
  const q: ListQuery = {
    limit: Math.min((limit as number | undefined) ?? listLimitDefault, listLimitMax),
    reverse: reverse === true,
    keysOnly: keysOnly === true,
  };
  for (const k of ["prefix", "start", "end", "cursor"] as const) {
    const v = p.get(k);
    if (v !== null) q[k] = v;
  }
  return q;
}

// ---- batch ----

/** POST /v1/batch { ops: [{ op, key, value | valueBase64, ifRev? }] }: one atomic write; 409 names the key whose condition failed. */
async function batch(c: Ctx, db: Db): Promise<Response> {
  if (!isJson(mediaType(c.req))) return error(415, "UNSUPPORTED_MEDIA_TYPE", "POST /v1/batch takes application/json");
  const body = await readBody(c.req, batchBodyBytesMax);
  if (body instanceof Response) return body;
  const parsed = parseJson(body);
  if (parsed === BAD_JSON) return error(400, "BAD_JSON", "body is not valid JSON");
  const ops = batchOps(parsed);
  if (typeof ops === "string") return error(400, "BAD_BATCH", ops);
  let rev: number;
  try {
    rev = await db.batch(ops);
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    return json(409, conflictBody(err));
  }
  const m = c.state.metrics;
  m.op("batch");
  m.op("put", ops.filter((o) => o.type === "put").length);
  m.op("delete", ops.filter((o) => o.type === "delete").length);
  return json(200, { rev });
}

const OP_FIELDS = new Set(["op", "key", "value", "valueBase64", "ifRev"]);

/** The engine's ops, or what is wrong with the first bad one. */
function batchOps(body: unknown): BatchOp[] | string {
  if (!isObject(body) || !Array.isArray(body.ops)) return 'body must be { "ops": [...] }';
  if (body.ops.length === 0) return "ops must not be empty";
  const out: BatchOp[] = [];
  for (let i = 0; i < body.ops.length; i++) {
    const op = batchOp(body.ops[i]);
    if (typeof op === "string") return `ops[${i}]: ${op}`;
    out.push(op);
  }
  return out;
}

function batchOp(x: unknown): BatchOp | string {
  if (!isObject(x)) return "must be an object";
  for (const k of Object.keys(x)) if (!OP_FIELDS.has(k)) return `unknown field ${JSON.stringify(k)}`;
  if (typeof x.key !== "string") return "key must be a string";
  const ifRev = x.ifRev;
  if (ifRev !== undefined && !(Number.isSafeInteger(ifRev) && (ifRev as number) >= 0)) return "ifRev must be an integer ≥ 0";
  const cond = ifRev === undefined ? {} : { ifRev: ifRev as number };
  const hasValue = "value" in x;
  const hasBase64 = "valueBase64" in x;
  if (x.op === "delete") {
    return hasValue || hasBase64 ? "a delete takes no value" : { type: "delete", key: x.key, ...cond };
  }
  if (x.op !== "put") return 'op must be "put" or "delete"';
  if (hasValue === hasBase64) return "a put takes exactly one of value and valueBase64";
  if (hasValue) return { type: "put", key: x.key, value: x.value, ...cond };
  const bytes = typeof x.valueBase64 === "string" ? fromBase64(x.valueBase64) : null;
  return bytes ? { type: "put", key: x.key, value: bytes, ...cond } : "valueBase64 must be padded standard base64";
}

// ---- watch ----

const WATCH_PARAMS = new Set(["prefix", "start", "end", "from_rev"]);

/** GET /v1/watch?prefix=&start=&end=&from_rev= as Server-Sent Events (see sse.ts for the event grammar). */
function watch(c: Ctx, db: Db): Response {
  const p = c.url.searchParams;
  const unknown = unknownParam(p, WATCH_PARAMS);
  if (unknown) return unknown;
  const fromRev = intParam(p, "from_rev", 1, Number.MAX_SAFE_INTEGER);
  if (fromRev instanceof Response) return fromRev;
  const opts: WatchOptions = {};
  const prefix = p.get("prefix");
  const start = p.get("start");
  const end = p.get("end");
  if (prefix !== null) opts.prefix = prefix;
  if (start !== null) opts.gte = start;
  if (end !== null) opts.lt = end;
  // An EventSource that reconnects sends the last id it saw: resume just after that event.
  const lastId = c.req.headers.get("last-event-id");
  const resume = fromRev === undefined && lastId !== null ? parseEventId(lastId) : null;
  if (fromRev !== undefined) opts.fromRev = fromRev;
  else if (resume) opts.fromRev = resume.rev;
  let source: ReturnType<Db["watch"]> | HarmonyError;
  try {
    source = db.watch(opts);
  } catch (err) {
    // A compacted start is reported in the stream, where an EventSource can read it.
    if (!(err instanceof CompactedError)) throw err;
    source = err;
  }
  c.server?.timeout(c.req, 0); // the heartbeat keeps it alive instead
  const s = c.state;
  return sseResponse(source, { streams: s.streams, signal: c.req.signal, metrics: s.metrics, log: s.log, ...(resume ? { resume } : {}) });
}

// ---- the original routes ----

/** Content types the original routes accepted: JSON, or none/text as a bare fetch() sends. */
function legacyType(req: Request): boolean {
  const t = mediaType(req);
  return t === "" || t === "text/plain" || isJson(t);
}

async function legacyBody(c: Ctx): Promise<{ key: string; value?: unknown } | Response> {
  if (!legacyType(c.req)) return error(415, "UNSUPPORTED_MEDIA_TYPE", "send a JSON body", true);
  const bytes = await readBody(c.req, kvBodyBytesMax, true);
  if (bytes instanceof Response) return bytes;
  const body = parseJson(bytes);
  if (body === BAD_JSON) return error(400, "BAD_JSON", "body is not valid JSON", true);
  if (!isObject(body) || typeof body.key !== "string") return error(400, "INVALID_KEY", "key must be a string", true);
  return body as { key: string; value?: unknown };
}

/** POST /put { key, value } → { success: true }. */
async function legacyPut(c: Ctx, db: Db): Promise<Response> {
  const body = await legacyBody(c);
  if (body instanceof Response) return body;
  await db.put(body.key, body.value);
  c.state.metrics.op("put");
  return json(200, { success: true });
}

/** POST /get { key } → { success: true, value } or 404 { success: false, error }. */
async function legacyGet(c: Ctx, db: Db): Promise<Response> {
  const body = await legacyBody(c);
  if (body instanceof Response) return body;
  const value = db.get(body.key);
  c.state.metrics.op("get");
  if (value === undefined) return error(404, "NOT_FOUND", "key not found", true);
  return new Response(`{"success":true,"value":${jsonText(value)}}`, { headers: { "Content-Type": JSON_TYPE } });
}

// ---- request helpers ----

/** Bearer token check, constant time: both sides are hashed to equal-length digests first. */
function authorized(token: string | null | undefined, req: Request): boolean {
  if (!token) return true;
  const m = /^Bearer +(\S+) *$/i.exec(req.headers.get("authorization") ?? "");
  return timingSafeEqual(digest(m?.[1] ?? ""), tokenDigest(token));
}

let tokenMemo: { token: string; digest: Buffer } | null = null;

function tokenDigest(token: string): Buffer {
  if (tokenMemo?.token !== token) tokenMemo = { token, digest: digest(token) };
  return tokenMemo.digest;
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/**
 * The body, at most `max` bytes: a declared Content-Length over it is refused before reading,
 * and a streamed body is cut off as soon as it passes it.
 */
async function readBody(req: Request, max: number, legacy = false): Promise<Uint8Array | Response> {
  const declared = req.headers.get("content-length");
  if (declared !== null) {
    if (!/^\s*\d{1,16}\s*$/.test(declared)) return error(400, "BAD_REQUEST", "Content-Length is not a number", legacy);
    if (Number(declared) > max) return tooLarge(max, legacy);
    // The server reads exactly Content-Length bytes: the bound holds, and the one-call read is the fast path.
    if (!req.body) return new Uint8Array(0);
    const bytes = await req.bytes();
    return bytes.byteLength > max ? tooLarge(max, legacy) : bytes;
  }
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      void reader.cancel().catch(() => {});
      return tooLarge(max, legacy);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(n);
  let at = 0;
  for (const ch of chunks) {
    out.set(ch, at);
    at += ch.byteLength;
  }
  return out;
}

function tooLarge(max: number, legacy: boolean): Response {
  // The rest of the body is not read: the connection cannot be reused.
  return withHeaders(error(413, "BODY_TOO_LARGE", `body is over ${max} bytes`, legacy), { Connection: "close" });
}

const BAD_JSON = Symbol("bad json");
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8Strict.decode(bytes));
  } catch {
    return BAD_JSON; // syntax, invalid UTF-8, or nesting too deep for the parser
  }
}

function mediaType(req: Request): string {
  return (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
}

function isJson(mediaType: string): boolean {
  return mediaType === "application/json" || (mediaType.startsWith("application/") && mediaType.endsWith("+json"));
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Percent-decodes exactly once; INVALID for malformed escapes or invalid UTF-8. */
function decodeKey(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return INVALID;
  }
}

function unknownParam(p: URLSearchParams, known: Set<string>): Response | null {
  for (const k of p.keys()) if (!known.has(k)) return error(400, "BAD_QUERY", `unknown query parameter ${JSON.stringify(k)}`);
  return null;
}

function intParam(p: URLSearchParams, name: string, min: number, max: number): number | undefined | Response {
  const v = p.get(name);
  if (v === null) return undefined;
  const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) return error(400, "BAD_QUERY", `${name} must be an integer from ${min}`);
  return n;
}

function boolParam(p: URLSearchParams, name: string): boolean | Response {
  const v = p.get(name);
  if (v === null || v === "false" || v === "0") return false;
  if (v === "" || v === "true" || v === "1") return true;
  return error(400, "BAD_QUERY", `${name} must be true or false`);
}

// ---- responses ----

function notReady(s: State): Response {
  return new Response(JSON.stringify({ ...errBody("NOT_READY", "replaying the WAL"), replay: s.progress }), {
    status: 503,
    headers: { "Retry-After": "1", "Content-Type": JSON_TYPE },
  });
}

/** A failed condition names its key, as ConflictError does: { error: { code: "CONFLICT", message, key } }. */
function conflictBody(err: ConflictError) {
  return { error: { code: err.code, message: err.message, key: err.key } };
}

function errBody(code: string, message: string) {
  return { error: { code, message } };
}

/** A JSON error: { error: { code, message } }, or for the original routes { success: false, error, code }. */
function error(status: number, code: string, message: string, legacy = false): Response {
  return json(status, legacy ? { success: false, error: message, code } : errBody(code, message));
}

/** Content-Type is application/json;charset=utf-8 (Response.json: the fastest way Bun builds one). */
function json(status: number, body: unknown): Response {
  return Response.json(body, status === 200 ? undefined : { status });
}

function withHeaders(res: Response, headers: Record<string, string>): Response {
  for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
  return res;
}
