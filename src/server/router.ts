// The fetch handler: (Request) → Response, testable without a socket. Auth, route, method, readiness, then the route.

import { createHash, timingSafeEqual } from "node:crypto";
import { Replica, type Store } from "../index.ts";
import type { Ctx, Handler, ServerState, State } from "./context.ts";
import { silentLogger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { decodeKey, intParam, INVALID, isReserved } from "./request.ts";
import { error, failure, notReady, withHeaders } from "./response.ts";
import { batch } from "./routes/batch.ts";
import { healthz, readyz } from "./routes/health.ts";
import { deleteKey, getKey, putKey } from "./routes/kv.ts";
import { legacyGet, legacyPut } from "./routes/legacy.ts";
import { list } from "./routes/list.ts";
import { snapshot, wal } from "./routes/replication.ts";
import { metrics, status } from "./routes/status.ts";
import { watch } from "./routes/watch.ts";

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

const KV_PREFIX = "/v1/kv/";

/** Wraps a route that needs the database: 503 with Retry-After while the WAL replays. */
function withDb(fn: (c: Ctx, db: Store) => Response | Promise<Response>): Fn {
  return (c) => (c.state.db ? fn(c, c.state.db) : notReady(c.state.progress));
}

const HEALTHZ: Route = { name: "/healthz", methods: { GET: healthz } };
const READYZ: Route = { name: "/readyz", methods: { GET: readyz } };
const KV_KEY: Route = {
  name: "/v1/kv/:key",
  methods: { GET: withDb(getKey), PUT: withDb(putKey), DELETE: withDb(deleteKey) },
};

const ROUTES: Record<string, Route> = {
  "/healthz": HEALTHZ,
  "/readyz": READYZ,
  "/health": { name: "/health", methods: { GET: healthz } },
  "/metrics": { name: "/metrics", methods: { GET: metrics } },
  "/v1/status": { name: "/v1/status", methods: { GET: status } },
  "/v1/kv": { name: "/v1/kv", methods: { GET: withDb(list) } },
  "/v1/batch": { name: "/v1/batch", methods: { POST: withDb(batch) } },
  "/v1/watch": { name: "/v1/watch", methods: { GET: withDb(watch) }, head: false },
  "/v1/wal": { name: "/v1/wal", methods: { GET: withDb(wal) }, head: false },
  "/v1/snapshot": { name: "/v1/snapshot", methods: { GET: withDb(snapshot) }, head: false },
  "/put": { name: "/put", methods: { POST: withDb(legacyPut) }, legacy: true },
  "/get": { name: "/get", methods: { POST: withDb(legacyGet) }, legacy: true },
  [KV_KEY.name]: KV_KEY,
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
      res = failure(err, ROUTES[name]?.legacy === true, s.log);
    }
    s.metrics.request(name, res.status);
    if (s.log.enabled("debug")) {
      s.log.debug("request", { method: req.method, route: name, status: res.status, ms: (performance.now() - t0).toFixed(2) });
    }
    return res;
  };
}

function match(pathname: string): { route: Route; key?: string } | null {
  if (pathname.startsWith(KV_PREFIX)) return { route: KV_KEY, key: decodeKey(pathname.slice(KV_PREFIX.length)) };
  return Object.hasOwn(ROUTES, pathname) ? { route: ROUTES[pathname]! } : null;
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
    // The KV Connect keyspace (docs/deno-kv.md §2): not readable, writable or forgeable over REST.
    if (isReserved(c.key)) return error(400, "INVALID_KEY", "keys beginning with U+0000 are reserved (harmonydb/kv's keyspace)");
  }
  if (c.req.method === "GET" || c.req.method === "HEAD") {
    const waited = await minRev(c, route);
    if (waited) return waited;
  }
  let res = await fn(c);
  const db = c.state.db;
  if (db instanceof Replica) res = withHeaders(res, { "Harmony-Applied-Rev": String(db.rev) });
  return head ? new Response(null, { status: res.status, headers: res.headers }) : res;
}

/** How long ?min_rev= waits for the revision before answering 504 TIMEOUT, unless the state says. */
const minRevWaitMsDefault = 10_000;

/**
 * ?min_rev=R on a get or a list: answer once the store has revision R (a replica: once it applied
 * it). The parameter is taken off the URL: the route does not see it. Returns an error response, or
 * null to go on.
 */
async function minRev(c: Ctx, route: Route): Promise<Response | null> {
  const p = c.url.searchParams;
  if (!p.has("min_rev") || (route !== KV_KEY && route !== ROUTES["/v1/kv"])) return null;
  const rev = intParam(p, "min_rev", 0, Number.MAX_SAFE_INTEGER);
  if (rev instanceof Response) return rev;
  p.delete("min_rev");
  const db = c.state.db;
  if (!db || rev === undefined || db.rev >= rev) return null;
  const waitMs = c.state.minRevWaitMs ?? minRevWaitMsDefault;
  if (db instanceof Replica) {
    await db.waitForRev(rev, waitMs);
    return null;
  }
  // A primary's revision moves with its own writes only.
  const deadline = Date.now() + waitMs;
  while (db.rev < rev && !c.req.signal.aborted) {
    if (Date.now() > deadline) return error(504, "TIMEOUT", `revision ${rev} not reached in ${waitMs} ms (now ${db.rev})`);
    await Bun.sleep(2);
  }
  return null;
}

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
