// `bun run server`: flags, Bun.serve, signals. Listens at once; KV routes answer 503 until replay is done.

import * as path from "node:path";
import { open, openReplica, type Db, type ReplayProgress, type Store } from "../index.ts";
import { Kv } from "../kv/index.ts";
import { HELP, isLoopback, parseConfig, type ServerConfig } from "./config.ts";
import { createHandler, type ServerState } from "./http.ts";
import { createLogger, type Logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { createMonitor } from "./monitor.ts";
import { endStreams } from "./sse.ts";
import { listenKvConnect, type KvConnectServer } from "./kv-connect/front.ts";
import { KvConnect, KV_PATH } from "./kv-connect/handler.ts";

/** Shutdown waits this long for in-flight requests before it closes their connections. */
const drainMsMax = 10_000;
const monitorEveryMs = 1000;

const parsed = parseConfig(process.argv.slice(2), process.env);
if ("help" in parsed) {
  process.stdout.write(HELP);
  process.exit(0);
}
if ("error" in parsed) {
  process.stderr.write(`harmonydb: ${parsed.error}\n\n${HELP}`);
  process.exit(2);
}
const cfg = parsed.config;
// A closed stdout or stderr (EPIPE) must not bring the server down; log.ts drops the lines instead.
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});
const log = createLogger(cfg.logLevel);
if (!isLoopback(cfg.host) && !cfg.token) {
  log.warn("listening beyond loopback without a token: anyone who can reach this address can read and write every key", { host: cfg.host });
}

const state: ServerState = { db: null, progress: null, token: cfg.token, metrics: new Metrics(), log };
const handler = createHandler(state);
const server = listen(cfg, log);
const url = `http://${server.hostname?.includes(":") ? `[${server.hostname}]` : server.hostname}:${server.port}`;
state.info = { url, dir: path.resolve(cfg.dir), sync: cfg.sync, pid: process.pid, bun: Bun.version, startedAt: new Date().toISOString() };
log.info(`listening on ${url}, data in ${cfg.dir}`);

// KV Connect on its own port (docs/deno-kv.md §8); it answers 503 until the database is open, as the REST routes do.
let kv: Kv | null = null;
const kvConnect = cfg.kvPort === null ? null : await listenKv(cfg, cfg.kvPort, log);

let stopping = false;
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));

const opening = openDb(cfg, log);
const db = await opening;
if (db && !stopping) {
  state.db = db;
  if (!cfg.follow) kv = new Kv(db as Db); // its sweeper deletes expired Deno KV entries
  const check = createMonitor(log);
  setInterval(() => check(db.stats()), monitorEveryMs).unref();
}

function listen(c: ServerConfig, log: Logger) {
  try {
    return Bun.serve({
      hostname: c.host,
      port: c.port,
      idleTimeout: c.idleTimeoutS,
      // Bun streams bodies to the handler without buffering them; the handler enforces each route's
      // limit (Content-Length first, then while reading) and answers a JSON 413. Bun's own check
      // would answer an empty 413 first, so it is set beyond any Content-Length a client could send.
      maxRequestBodySize: 2 ** 40,
      development: false,
      fetch: (req, srv) => handler(req, srv),
      error: () => new Response('{"error":{"code":"INTERNAL","message":"internal error"}}', { status: 500, headers: { "Content-Type": "application/json" } }),
    });
  } catch (err) {
    log.error("cannot listen", { host: c.host, port: c.port, error: (err as Error).message });
    process.exit(1);
  }
}

async function listenKv(c: ServerConfig, port: number, log: Logger): Promise<KvConnectServer> {
  const onError = (err: unknown) => log.error("KV Connect request failed", { error: (err as Error)?.message ?? String(err) });
  const handler = new KvConnect({ store: () => state.db ?? null, kv: () => kv, token: c.token, onError });
  try {
    const s = await listenKvConnect(handler, c.host, port);
    log.info(`Deno KV (KV Connect) at http://${c.host.includes(":") ? `[${c.host}]` : c.host}:${s.port}${KV_PATH}`);
    return s;
  } catch (err) {
    log.error("cannot listen for KV Connect", { host: c.host, port, error: (err as Error).message });
    process.exit(1);
  }
}

/** Replays the WAL (the server answers meanwhile: /healthz shows progress) and returns the open database. */
async function openDb(c: ServerConfig, log: Logger): Promise<Store | null> {
  const t0 = performance.now();
  let lastLogMs = 0;
  try {
    const common = {
      sync: c.sync,
      log: (line: string) => log.warn(line),
      onProgress: (p: ReplayProgress) => {
        state.progress = p;
        if (performance.now() - lastLogMs < 1000) return;
        lastLogMs = performance.now();
        if (p.phase === "snapshot") log.info("loading the snapshot", { keys: p.keys, keysTotal: p.keysTotal, rev: p.rev });
        else log.info("replaying the WAL", { segment: p.segment, segments: p.segments, records: p.records, rev: p.rev });
      },
    } as const;
    const db = c.follow
      ? await openReplica(c.dir, { ...common, follow: c.follow, ...(c.followToken ? { token: c.followToken } : {}) })
      : await open(c.dir, { ...common, ...(c.archive ? { archive: { url: c.archive, retainMs: c.archiveRetainMs, sync: c.archiveSync } } : {}) });
    if (c.follow) log.info(`a read replica of ${c.follow}: writes answer 403 READ_ONLY`);
    const s = db.stats();
    log.info(`ready at rev ${db.rev} after ${(performance.now() - t0).toFixed(0)} ms`, {
      keys: s.keys,
      records: s.recovery.records,
      segments: s.recovery.segments,
      snapshotRev: s.recovery.snapshot?.rev,
      sync: s.sync,
      tornTail: s.recovery.tornTail ? `${s.recovery.tornTail.bytesDropped} bytes dropped` : undefined,
    });
    return db;
  } catch (err) {
    log.error(`cannot open ${c.dir}: ${(err as Error).message}`);
    server.stop(true);
    process.exit(1);
  }
}

/** Stop accepting, end watch streams, let in-flight requests (writes) finish, close the database, exit 0. */
async function shutdown(signal: string): Promise<void> {
  if (stopping) {
    log.warn("already stopping", { signal });
    return;
  }
  stopping = true;
  state.draining = true;
  log.info("stopping", { signal });
  if (state.streams) endStreams(state.streams, "SHUTTING_DOWN", "the server is shutting down");
  const kvClosed = kvConnect?.close(drainMsMax); // beside the REST drain: its commits in progress answer too
  let timer: ReturnType<typeof setTimeout> | undefined;
  const drained = await Promise.race([
    server.stop().then(() => true),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), drainMsMax))),
  ]);
  clearTimeout(timer);
  if (!drained) {
    log.warn(`requests still in flight after ${drainMsMax} ms: closing their connections`);
    await server.stop(true);
  }
  await kvClosed;
  const db = await opening; // a signal during replay waits for it, then closes cleanly
  try {
    await kv?.close();
    await db?.close();
  } catch (err) {
    log.error("close failed", { error: (err as Error).message });
    process.exit(1);
  }
  log.info("stopped", { rev: db?.rev });
  process.exit(0);
}
