// A real S3-compatible server for tests: s3rver (npm) in a Node child process, on a loopback port.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { S3Settings } from "../../src/archive/bucket.ts";

export interface S3Server {
  port: number;
  /** The server process's pid (it changes with start()). */
  readonly pid: number;
  s3: S3Settings;
  /** s3://test/<prefix> */
  url(prefix: string): string;
  /** The server's own files (objects as s3rver keeps them). */
  dataDir: string;
  /** Stops the server; start() brings it back on the same port with the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

const main = path.join(import.meta.dir, "s3rver-main.cjs");
const running = new Set<Bun.Subprocess>();
const dataDirs: string[] = [];

async function spawn(dataDir: string, port: number): Promise<{ proc: Bun.Subprocess<"pipe", "pipe", "pipe">; port: number }> {
  const proc = Bun.spawn(["node", main, dataDir, String(port)], {
    env: { ...process.env, NODE_OPTIONS: "--openssl-legacy-provider" },
    stdin: "pipe", // (held open while this process lives: s3rver-main.cjs exits when it closes)
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  const reader = proc.stdout.getReader();
  let text = "";
  const deadline = Date.now() + 20_000;
  while (!text.includes("\n")) {
    const r = await Promise.race([reader.read(), Bun.sleep(Math.max(0, deadline - Date.now())).then(() => null)]);
    if (r === null || r.done) {
      proc.kill();
      throw new Error(`s3rver did not start: ${await new Response(proc.stderr).text()}`);
    }
    text += new TextDecoder().decode(r.value);
  }
  reader.releaseLock();
  return { proc, port: (JSON.parse(text.split("\n")[0]!) as { port: number }).port };
}

/**
 * Starts s3rver with an empty bucket "test", for a whole test file (tests use prefixes of their
 * own); the file's afterAll calls stopS3Servers(), which also removes its data.
 */
export async function startS3(): Promise<S3Server> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-s3-"));
  dataDirs.push(dataDir);
  let { proc, port } = await spawn(dataDir, 0);
  const server: S3Server = {
    port,
    get pid() {
      return proc.pid;
    },
    s3: { endpoint: `http://127.0.0.1:${port}`, accessKeyId: "S3RVER", secretAccessKey: "S3RVER", region: "us-east-1" },
    url: (prefix) => `s3://test/${prefix}`,
    dataDir,
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
      running.delete(proc);
    },
    async start() {
      ({ proc } = await spawn(dataDir, port));
    },
  };
  return server;
}

export async function stopS3Servers(): Promise<void> {
  for (const p of [...running]) {
    p.kill("SIGKILL");
    await p.exited;
    running.delete(p);
  }
  for (const d of dataDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}
