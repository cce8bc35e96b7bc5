// Scenario: durable PUT throughput over HTTP, 64 connections from a separate load generator, next to Redis with appendfsync always.

import * as fs from "node:fs";
import * as path from "node:path";
import * as B from "./lib.ts";
import { wrkLoad, type Load } from "./wrk.ts";

const CONNECTIONS = B.numberFlag("connections", 64);
const SECONDS = B.numberFlag("seconds", 10);
const ROUNDS = B.numberFlag("rounds", 3);
/** Requests per redis-benchmark run: about as long as one HarmonyDB round on a disk like this one. */
const REDIS_REQUESTS = B.numberFlag("redis-requests", 200_000);
const LOADGEN = B.flag("bun-loadgen") || !Bun.which("wrk") ? "bun" : "wrk";
const TARGET = 2;

// ---- helper modes, each run as its own process by the scenario below ----

if (process.argv[2] === "--run-loadgen") {
  const [url, conns, secs] = process.argv.slice(3);
  console.log(JSON.stringify(await bunLoad(url!, Number(conns), Number(secs))));
  process.exit(0);
}
if (process.argv[2] === "--run-noop-server") {
  // The ceiling: Bun.serve reading the body and answering like HarmonyDB, storing nothing.
  let rev = 0;
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: async (req) => (await req.bytes(), Response.json({ rev: ++rev })) });
  console.log(`listening on http://127.0.0.1:${server.port}, data in nowhere`);
  process.on("SIGTERM", () => process.exit(0));
  await new Promise(() => {});
}

/** `connections` fetch loops, each PUTting its own keys one after another for `seconds`. */
async function bunLoad(url: string, connections: number, seconds: number): Promise<Load> {
  const body = B.bytesValue();
  const headers = { "content-type": "application/octet-stream" };
  const end = performance.now() + seconds * 1000;
  const lat: number[] = [];
  let requests = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const s = performance.now();
        const res = await fetch(`${url}/v1/kv/b${c}-${i}`, { method: "PUT", body, headers });
        await res.arrayBuffer();
        if (res.status === 200) requests++;
        else errors++;
        lat.push(performance.now() - s);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { requests, errors, seconds: elapsed, perSecond: requests / elapsed, p50Ms: B.percentile(lat, 0.5), p99Ms: B.percentile(lat, 0.99) };
}

function httpLoad(url: string, dir: string): Load {
  if (LOADGEN === "wrk") return wrkLoad(url, dir, CONNECTIONS, SECONDS);
  const p = Bun.spawnSync([process.execPath, import.meta.path, "--run-loadgen", url, String(CONNECTIONS), String(SECONDS)], {
    timeout: (SECONDS + 30) * 1000,
  });
  if (p.exitCode !== 0) throw new Error(`load generator failed: ${p.stderr}`);
  return JSON.parse(p.stdout.toString()) as Load;
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN where there is no /proc. */
function cpuSeconds(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

// ---- the servers ----

interface Server {
  pid: number;
  stop: () => Promise<void>;
}

/** Starts `args` (a server that prints "listening on http://…"), waits until /readyz (or / for the no-op) answers 200. */
async function startHttp(args: string[], ready: string): Promise<Server & { url: string }> {
  const proc = Bun.spawn(args, { stdout: "pipe", stderr: "inherit" });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    void (async () => {
      // Read on to the end: a server whose stdout is closed loses its log.
      for await (const chunk of proc.stdout) {
        out += new TextDecoder().decode(chunk);
        const m = /listening on (http:\/\/[^,\s]+)/.exec(out);
        if (m) resolve(m[1]!);
      }
      reject(new Error(`server exited: ${out}`));
    })();
    setTimeout(() => reject(new Error(`server did not listen in 30 s: ${out}`)), 30_000).unref();
  });
  for (let i = 0; (await fetch(`${url}${ready}`, { method: ready === "/readyz" ? "GET" : "PUT" })).status !== 200; i++) {
    if (i > 3000) throw new Error("server not ready after 30 s");
    await Bun.sleep(10);
  }
  return {
    url,
    pid: proc.pid,
    stop: async () => {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/** As B.settleWriter, over HTTP: waits until the writer's preparation fdatasyncs have been quiet for 250 ms. */
async function settle(url: string): Promise<void> {
  const count = async () => (await walStats(url)).prepareFsyncs;
  let last = await count();
  let quietSince = performance.now();
  const t0 = performance.now();
  while (performance.now() - quietSince < 250 && performance.now() - t0 < 30_000) {
    await Bun.sleep(25);
    const c = await count();
    if (c !== last) [last, quietSince] = [c, performance.now()];
  }
}

async function walStats(url: string): Promise<{ prepareFsyncs: number; recordsPerFsync: number; fsyncMsAvg: number }> {
  return ((await (await fetch(`${url}/v1/status`)).json()) as { db: { wal: { prepareFsyncs: number; recordsPerFsync: number; fsyncMsAvg: number } } }).db.wal;
}

/** redis-server with appendonly yes, appendfsync always, in `dir`; a string saying why not when it is not installed. */
async function startRedis(dir: string): Promise<(Server & { port: number }) | string> {
  if (!Bun.which("redis-server") || !Bun.which("redis-benchmark")) return "redis-server or redis-benchmark not installed (apt-get install -y redis-server)";
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"];
  const proc = Bun.spawn(["redis-server", ...args], { stdout: "ignore", stderr: "inherit" });
  for (let i = 0; ; i++) {
    const ping = Bun.spawnSync(["redis-cli", "-p", String(port), "ping"]);
    if (ping.stdout.toString().trim() === "PONG") break;
    if (i > 200 || proc.exitCode !== null) {
      proc.kill("SIGKILL");
      return `redis-server did not start on port ${port}`;
    }
    await Bun.sleep(25);
  }
  return {
    port,
    pid: proc.pid,
    stop: async () => {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

const REDIS_ARGS = ["-t", "set", "-d", "100", "-c", String(CONNECTIONS), "-n", String(REDIS_REQUESTS), "-r", "1000000", "-q"];

function redisLoad(port: number): number {
  const p = Bun.spawnSync(["redis-benchmark", "-p", String(port), ...REDIS_ARGS], { timeout: 300_000 });
  const m = /SET: ([\d.]+) requests per second/.exec(p.stdout.toString());
  if (!m) throw new Error(`redis-benchmark failed: ${p.stdout}${p.stderr}`);
  return Number(m[1]);
}

// ---- the scenario ----

interface Row {
  rates: number[];
  /** Server CPU time per acknowledged write, µs. */
  cpuUs: number[];
  last: Load | null;
}

/** One round: the load, its rate, and the server's CPU µs per write over it. */
async function round(row: Row, pid: number, load: () => Load | number): Promise<void> {
  const cpu0 = cpuSeconds(pid);
  const r = load();
  const cpu = cpuSeconds(pid) - cpu0;
  const perSecond = typeof r === "number" ? r : r.perSecond;
  const writes = typeof r === "number" ? REDIS_REQUESTS : r.requests;
  row.rates.push(perSecond);
  row.cpuUs.push((cpu / writes) * 1e6);
  if (typeof r !== "number") row.last = r;
}

await B.withTmpDir(async (dir) => {
  const hdir = path.join(dir, "harmony");
  const rdir = path.join(dir, "redis");
  fs.mkdirSync(rdir);
  const main = path.join(import.meta.dir, "../src/server/main.ts");
  const harmony = await startHttp([process.execPath, main, "--dir", hdir, "--port", "0"], "/readyz");
  await settle(harmony.url);
  const noop = await startHttp([process.execPath, import.meta.path, "--run-noop-server"], "/");
  const redis = await startRedis(rdir);
  const rows = { h: newRow(), r: newRow(), n: newRow() };
  let wal = { recordsPerFsync: NaN, fsyncMsAvg: NaN };
  try {
    // Interleaved rounds, so that drift in the disk and the machine's load hits all alike.
    for (let i = 0; i < ROUNDS; i++) {
      await round(rows.h, harmony.pid, () => httpLoad(harmony.url, dir));
      if (typeof redis !== "string") await round(rows.r, redis.pid, () => redisLoad(redis.port));
      await round(rows.n, noop.pid, () => httpLoad(noop.url, dir));
    }
    wal = await walStats(harmony.url);
  } finally {
    await harmony.stop();
    await noop.stop();
    if (typeof redis !== "string") await redis.stop();
  }
  printResults(rows, redis, wal);
});
B.finish();

function newRow(): Row {
  return { rates: [], cpuUs: [], last: null };
}

function printResults(rows: { h: Row; r: Row; n: Row }, redis: unknown, wal: { recordsPerFsync: number; fsyncMsAvg: number }): void {
  const how = LOADGEN === "wrk" ? `wrk -t2 -c${CONNECTIONS} -d${SECONDS}s, PUT /v1/kv/<fresh key>` : `bun, ${CONNECTIONS} fetch loops, ${SECONDS}s`;
  const line = (name: string, row: Row, note: string) => {
    const last = row.last;
    return [
      name,
      B.fmt(B.median(row.rates)),
      row.rates.map((x) => B.fmt(x)).join(" · "),
      B.fmt(B.median(row.cpuUs), 1),
      last?.p50Ms != null ? `${B.fmt(last.p50Ms, 2)} / ${B.fmt(last.p99Ms ?? NaN, 2)}` : "",
      note,
    ];
  };
  const errors = rows.h.last?.errors ?? 0;
  console.log(`\n## durable PUT over HTTP, ${CONNECTIONS} connections, ${B.VALUE_BYTES}-byte values (${ROUNDS} interleaved rounds, medians)\n`);
  B.table(
    ["server", "writes/s", "rounds", "server CPU µs / write", "p50 / p99 ms (last round)", "load"],
    [
      line("HarmonyDB, sync always", rows.h, how),
      rows.r.rates.length > 0
        ? line("Redis 7, appendonly yes, appendfsync always", rows.r, `redis-benchmark ${REDIS_ARGS.join(" ")}`)
        : ["Redis 7, appendfsync always", "—", "", "", "", `skipped: ${String(redis)}`],
      line("ceiling: Bun.serve answering without storing", rows.n, how),
    ],
  );
  console.log(`HarmonyDB: ${B.fmt(wal.recordsPerFsync, 1)} records per fdatasync, ${B.fmt(wal.fsyncMsAvg, 2)} ms per fdatasync; failed requests in the last round: ${errors}`);
  const h = B.median(rows.h.rates);
  if (rows.r.rates.length > 0) console.log(`ratio HarmonyDB / Redis: ${B.verdict(h / B.median(rows.r.rates), "≥", TARGET)}`);
  else console.log("ratio HarmonyDB / Redis: not measured (no Redis here)");
  console.log(`ratio HarmonyDB / ceiling: ${B.fmt(h / B.median(rows.n.rates), 2)} (the load generator shares the machine's CPUs with the server)`);
}
