// The HTTP front as a fetch handler: (Request) → Response, testable without a socket.

import type { Db } from "../db.ts";
import { HarmonyError } from "../errors.ts";
import type { ReplayProgress } from "../wal/recovery.ts";

/** What the handler serves: the database once it is open, and replay progress until then. */
export interface ServerState {
  db: Db | null;
  progress: ReplayProgress | null;
}

const KV = "/v1/kv/";
const bodyBytesMax = 16 * 1024 * 1024 + 64 * 1024;

const STATUS: Record<string, number> = {
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
};

export function createHandler(state: ServerState): (req: Request) => Promise<Response> {
  return async (req) => {
    try {
      return await route(state, req);
    } catch (err) {
      if (err instanceof HarmonyError) return error(STATUS[err.code] ?? 500, err.code, err.message);
      // Never a stack trace in a response; the log gets the detail.
      console.error("harmonydb: server: unexpected error:", err);
      return error(500, "INTERNAL", "internal error");
    }
  };
}

async function route(state: ServerState, req: Request): Promise<Response> {
  const url = new URL(req.url);
  const p = url.pathname;
  if (p === "/healthz" || p === "/health") {
    return json(200, { ok: true, success: true, ready: state.db !== null, replay: state.progress });
  }
  const db = state.db;
  if (p === "/readyz") return db ? json(200, { ready: true }) : json(503, { ready: false, replay: state.progress });
  if (p.startsWith(KV) || p === "/put" || p === "/get") {
    if (!db) return unavailable(state);
    if (p === "/put" || p === "/get") return legacy(db, req, p);
    const key = decodeKey(p.slice(KV.length));
    if (key === null) return error(400, "INVALID_KEY", "key is not valid percent-encoded UTF-8");
    switch (req.method) {
      case "GET":
      case "HEAD":
        return getKey(db, key, req.method === "HEAD");
      case "PUT":
        return putKey(db, key, req);
      case "DELETE":
        return deleteKey(db, key, req);
      default:
        return new Response(JSON.stringify(errBody("METHOD_NOT_ALLOWED", `${req.method} is not allowed here`)), {
          status: 405,
          headers: { Allow: "GET, HEAD, PUT, DELETE", "Content-Type": "application/json" },
        });
    }
  }
  return error(404, "NOT_FOUND", `no route for ${p}`);
}

function getKey(db: Db, key: string, head: boolean): Response {
  const e = db.getEntry(key);
  if (!e) return error(404, "NOT_FOUND", `key ${JSON.stringify(key)} not found`);
  const etag = `"${e.rev}"`;
  if (e.value instanceof Uint8Array) {
    return new Response(head ? null : e.value, { headers: { "Content-Type": "application/octet-stream", ETag: etag } });
  }
  return new Response(head ? null : JSON.stringify(e.value), { headers: { "Content-Type": "application/json", ETag: etag } });
}

async function putKey(db: Db, key: string, req: Request): Promise<Response> {
  const ifRev = condition(req);
  if (ifRev instanceof Response) return ifRev;
  const body = await readBody(req);
  if (body instanceof Response) return body;
  let value: unknown = body;
  if ((req.headers.get("content-type") ?? "").split(";")[0]!.trim() === "application/json") {
    try {
      value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    } catch {
      return error(400, "BAD_JSON", "body is not valid JSON");
    }
  }
  const rev = await db.put(key, value, ifRev === undefined ? {} : { ifRev });
  return json(200, { rev });
}

async function deleteKey(db: Db, key: string, req: Request): Promise<Response> {
  const ifRev = condition(req);
  if (ifRev instanceof Response) return ifRev;
  return json(200, await db.delete(key, ifRev === undefined ? {} : { ifRev }));
}

/** If-Match: "<rev>" → that revision; If-None-Match: * → must not exist (ifRev 0). */
function condition(req: Request): number | undefined | Response {
  const none = req.headers.get("if-none-match");
  if (none !== null) return none.trim() === "*" ? 0 : error(400, "BAD_CONDITION", "If-None-Match supports only *");
  const match = req.headers.get("if-match");
  if (match === null) return undefined;
  const m = /^\s*"(\d+)"\s*$/.exec(match);
  if (!m) return error(400, "BAD_CONDITION", 'If-Match must be a quoted revision, like "42"');
  return Number(m[1]);
}

async function readBody(req: Request): Promise<Uint8Array | Response> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > bodyBytesMax) return error(413, "BODY_TOO_LARGE", `body is over ${bodyBytesMax} bytes`);
  const body = new Uint8Array(await req.arrayBuffer());
  if (body.length > bodyBytesMax) return error(413, "BODY_TOO_LARGE", `body is over ${bodyBytesMax} bytes`);
  return body;
}

/** The original HarmonyDB routes: POST /put { key, value }, POST /get { key } → { success, value, error }. */
async function legacy(db: Db, req: Request, p: string): Promise<Response> {
  if (req.method !== "POST") {
    return new Response(JSON.stringify({ success: false, error: "use POST" }), {
      status: 405,
      headers: { Allow: "POST", "Content-Type": "application/json" },
    });
  }
  let body: { key?: unknown; value?: unknown };
  try {
    body = (await req.json()) as typeof body;
  } catch {
    return json(400, { success: false, error: "body is not valid JSON" });
  }
  if (typeof body?.key !== "string") return json(400, { success: false, error: "key must be a string" });
  if (p === "/get") {
    const value = db.get(body.key);
    return value === undefined ? json(404, { success: false, error: "key not found" }) : json(200, { success: true, value });
  }
  try {
    await db.put(body.key, body.value);
    return json(200, { success: true });
  } catch (err) {
    const code = err instanceof HarmonyError ? err.code : "";
    return json(STATUS[code] ?? 500, { success: false, error: err instanceof HarmonyError ? err.message : "internal error" });
  }
}

/** Percent-decodes exactly once; null for malformed escapes or invalid UTF-8. */
function decodeKey(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

function unavailable(state: ServerState): Response {
  return new Response(JSON.stringify({ ...errBody("NOT_READY", "replaying the WAL"), replay: state.progress }), {
    status: 503,
    headers: { "Retry-After": "1", "Content-Type": "application/json" },
  });
}

function errBody(code: string, message: string) {
  return { error: { code, message } };
}

function error(status: number, code: string, message: string): Response {
  return json(status, errBody(code, message));
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}
