// The server as a real process: flags, start-up, big bodies on a real socket, and SIGTERM under load.

import { expect, test } from "bun:test";
import { open } from "../src/index.ts";
import { MAIN, ownTmpDirs, readEvents, spawnServer } from "./helpers/http.ts";

const JSON_TYPE = { "content-type": "application/json" };
const tmpDir = ownTmpDirs();

test("SIGTERM under load: the server stops accepting, finishes in-flight writes, exits 0, and every acknowledged write is there after a restart", async () => {
  const dir = tmpDir();
  const s = await spawnServer(["--dir", dir]);
  const acked = new Map<string, string>();
  let stop = false;
  let ackedAfterSignal = 0;
  let signalled = false;
  try {
    await s.waitFor("ready at rev");
    // 64 clients, each writing its own keys one after another until the server goes away (bounded).
    const clients = Array.from({ length: 64 }, async (_, c) => {
      for (let i = 0; !stop && i < 20_000; i++) {
        const key = `c${c}/${i}`;
        const value = `v${c}.${i}`;
        try {
          const res = await fetch(`${s.base}/v1/kv/${encodeURIComponent(key)}`, { method: "PUT", body: JSON.stringify(value), headers: JSON_TYPE });
          const body = (await res.json()) as { rev?: number };
          if (res.status !== 200) {
            expect(res.status).toBe(503); // only "shutting down" is allowed
            return;
          }
          expect(typeof body.rev).toBe("number");
          acked.set(key, value);
          if (signalled) ackedAfterSignal++;
        } catch {
          return; // refused or reset once the server stopped: not acknowledged
        }
      }
    });
    const t0 = Date.now();
    while (acked.size < 2000 && Date.now() - t0 < 20_000) await Bun.sleep(5);
    expect(acked.size).toBeGreaterThanOrEqual(2000);
    signalled = true;
    s.proc.kill("SIGTERM");
    const code = await s.proc.exited;
    stop = true;
    await Promise.all(clients);
    expect(code).toBe(0);
    expect(s.stdout()).toMatch(/stopping signal=SIGTERM[\s\S]*stopped rev=\d+/);
  } finally {
    s.proc.kill("SIGKILL");
  }
  const db = await open(dir);
  try {
    const missing = [...acked].filter(([k, v]) => db.get(k) !== v);
    expect(missing).toEqual([]);
    console.log(`${acked.size} writes acknowledged (${ackedAfterSignal} of them after SIGTERM), all there after restart at rev ${db.rev}`);
  } finally {
    await db.close();
  }
}, 60_000);

test("watch on a real socket: events arrive as they happen, a client that leaves frees its watcher, SIGTERM ends the rest", async () => {
  const s = await spawnServer(["--dir", tmpDir()]);
  try {
    await s.waitFor("ready at rev");
    const watchers = async () => ((await (await fetch(`${s.base}/v1/status`)).json()) as { db: { watchers: number } }).db.watchers;
    const leaving = new AbortController();
    const gone = await fetch(`${s.base}/v1/watch?prefix=x/`, { signal: leaving.signal });
    const staying = await fetch(`${s.base}/v1/watch?prefix=x/`);
    expect(await watchers()).toBe(2);
    const reading = readEvents(staying, 2, 10_000);
    await fetch(`${s.base}/v1/kv/x%2F1`, { method: "PUT", body: "1", headers: JSON_TYPE });
    leaving.abort();
    await gone.body?.cancel().catch(() => {});
    for (let i = 0; i < 200 && (await watchers()) !== 1; i++) await Bun.sleep(10);
    expect(await watchers()).toBe(1);
    s.proc.kill("SIGTERM");
    const events = await reading;
    expect(events.map((e) => [e.event, JSON.parse(e.data)])).toEqual([
      ["message", { type: "put", key: "x/1", rev: 1, value: 1 }],
      ["error", { code: "SHUTTING_DOWN", message: "the server is shutting down" }],
    ]);
    expect(await s.proc.exited).toBe(0);
  } finally {
    s.proc.kill("SIGKILL");
  }
});

test("start-up: /healthz always answers, KV routes answer 503 with Retry-After until /readyz is 200", async () => {
  const dir = tmpDir();
  // A WAL that takes a moment to replay.
  const seed = await open(dir, { sync: "never" });
  for (let i = 0; i < 200_000; i += 1000) {
    await seed.batch(Array.from({ length: 1000 }, (_, j) => ({ type: "put" as const, key: `k${i + j}`, value: i + j })));
  }
  await seed.close();
  const s = await spawnServer(["--dir", dir]);
  try {
    let ready = false;
    for (let n = 0; !ready && n < 10_000; n++) {
      const health = await fetch(`${s.base}/healthz`);
      expect(health.status).toBe(200);
      const h = (await health.json()) as { ready: boolean; replay: unknown };
      const kv = await fetch(`${s.base}/v1/kv/k1`);
      if (kv.status === 503) {
        expect(kv.headers.get("retry-after")).toBe("1");
        expect(await kv.json()).toMatchObject({ error: { code: "NOT_READY" } });
      } else {
        expect(kv.status).toBe(200);
        expect(await kv.json()).toBe(1);
      }
      const readyz = await fetch(`${s.base}/readyz`);
      await readyz.text();
      if (!h.ready) expect(h).toHaveProperty("replay");
      ready = readyz.status === 200;
      if (!ready) await Bun.sleep(2);
    }
    expect(ready).toBe(true);
    await s.waitFor("ready at rev 200", 5000); // (printed before /readyz turns 200, but the pipe may lag behind)
    expect((await fetch(`${s.base}/v1/kv/k199999`)).status).toBe(200);
  } finally {
    s.proc.kill("SIGKILL");
    await s.proc.exited;
  }
}, 60_000);

test("a body over the limit on a real socket: JSON 413 without reading it all, and the server goes on", async () => {
  const s = await spawnServer(["--dir", tmpDir()]);
  try {
    await s.waitFor("ready at rev");
    for (const bytes of [20 << 20, 200 << 20]) {
      const res = await fetch(`${s.base}/v1/kv/big`, { method: "PUT", body: new Uint8Array(bytes) }).catch((e: unknown) => e);
      // The server may close before the client has sent it all; if the client saw the answer, it is JSON.
      if (res instanceof Response) {
        expect(res.status).toBe(413);
        expect(await res.json()).toMatchObject({ error: { code: "BODY_TOO_LARGE" } });
      }
    }
    const ok = await fetch(`${s.base}/v1/kv/small`, { method: "PUT", body: "fine" });
    expect(ok.status).toBe(200);
    expect((await fetch(`${s.base}/v1/kv/big`)).status).toBe(404);
  } finally {
    s.proc.kill("SIGKILL");
    await s.proc.exited;
  }
}, 60_000);

test("a client that stalls mid-request is cut off after the idle timeout, and nothing is written", async () => {
  const dir = tmpDir();
  const s = await spawnServer(["--dir", dir, "--idle-timeout", "1"]);
  try {
    await s.waitFor("ready at rev");
    const { port, hostname } = new URL(s.base);
    let closedAt = 0;
    let received = "";
    const t0 = Date.now();
    const socket = await Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        data: (_s, d) => void (received += d.toString()),
        close: () => void (closedAt = Date.now()),
      },
    });
    socket.write("PUT /v1/kv/stalled HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n\"ab");
    while (!closedAt && Date.now() - t0 < 20_000) await Bun.sleep(20);
    socket.end();
    expect(closedAt).toBeGreaterThan(0);
    // Bun checks idle sockets every few seconds, so "1 s" closes somewhere between 1 and ~8 s.
    expect(closedAt - t0).toBeLessThan(15_000);
    expect(received).not.toContain("200 OK");
    const status = (await (await fetch(`${s.base}/v1/status`)).json()) as { db: { rev: number } };
    expect(status.db.rev).toBe(0);
  } finally {
    s.proc.kill("SIGKILL");
    await s.proc.exited;
  }
});

test("--token (or HARMONYDB_TOKEN): a real request needs the bearer token; /healthz does not", async () => {
  const s = await spawnServer(["--dir", tmpDir()], { HARMONYDB_TOKEN: "from-env" });
  try {
    await s.waitFor("ready at rev");
    expect((await fetch(`${s.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${s.base}/v1/kv/a`)).status).toBe(401);
    expect((await fetch(`${s.base}/v1/kv/a`, { headers: { authorization: "Bearer from-env" } })).status).toBe(404);
    expect(s.stdout() + s.stderr()).not.toContain("from-env"); // the token is never logged
  } finally {
    s.proc.kill("SIGKILL");
    await s.proc.exited;
  }
});

test("listening beyond loopback without a token prints a warning", async () => {
  const s = await spawnServer(["--dir", tmpDir(), "--host", "0.0.0.0"]);
  try {
    await s.waitFor("ready at rev");
    expect(s.stderr()).toMatch(/warn .*without a token/);
    s.proc.kill("SIGTERM");
    expect(await s.proc.exited).toBe(0);
  } finally {
    s.proc.kill("SIGKILL");
  }
});

test("--help prints the flags and exits 0; a bad flag exits 2 and says why", async () => {
  const help = Bun.spawnSync([process.execPath, MAIN, "--help"]);
  expect(help.exitCode).toBe(0);
  const text = help.stdout.toString();
  for (const flag of ["--dir", "--host", "--port", "--token", "--sync", "--log-level", "HARMONYDB_TOKEN"]) expect(text).toContain(flag);
  const bad = Bun.spawnSync([process.execPath, MAIN, "--port", "seventy"]);
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.toString()).toContain("port must be");
});
