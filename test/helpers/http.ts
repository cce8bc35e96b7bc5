// Fixture verbs for the HTTP front: a real server process, and Server-Sent Events read as a list.

import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach } from "bun:test";
import type { Subprocess } from "bun";
import { tmpDir } from "./index.ts";

export const MAIN = path.resolve(import.meta.dir, "../../src/server/main.ts");

/**
 * tmpDir() whose directories this test file removes itself after each test. Call it at the top
 * level of a test file. (helpers/index.ts registers its afterEach when the module is first
 * evaluated, which is once per `bun test` run: only the first test file importing it gets the
 * hook, and the directories of later files were left behind.)
 */
export function ownTmpDirs(): (prefix?: string) => string {
  const mine: string[] = [];
  afterEach(() => {
    for (const dir of mine.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  return (prefix) => {
    const dir = tmpDir(prefix);
    mine.push(dir);
    return dir;
  };
}

export interface ServerProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** http://host:port */
  base: string;
  /** Everything the process printed on stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout contains `text` (rejects if the process exits first). */
  waitFor(text: string, ms?: number): Promise<void>;
}

/**
 * Starts `bun src/server/main.ts` with `args` and resolves once it listens (not necessarily ready).
 * The caller kills it in a finally block.
 */
export async function spawnServer(args: string[], env: Record<string, string> = {}): Promise<ServerProcess> {
  const proc = Bun.spawn([process.execPath, MAIN, "--port", "0", ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  let out = "";
  let err = "";
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const pump = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
    const dec = new TextDecoder();
    for await (const chunk of s) add(dec.decode(chunk, { stream: true }));
  };
  void pump(proc.stdout, (t) => (out += t));
  void pump(proc.stderr, (t) => (err += t));
  const waitFor = async (text: string, ms = 30_000) => {
    const t0 = Date.now();
    while (!out.includes(text)) {
      if (exited) throw new Error(`server exited before printing ${JSON.stringify(text)}:\n${out}\n${err}`);
      if (Date.now() - t0 > ms) throw new Error(`server did not print ${JSON.stringify(text)} in ${ms} ms:\n${out}\n${err}`);
      await Bun.sleep(5);
    }
  };
  await waitFor("listening on");
  const base = /listening on (http:\/\/[^,\s]+)/.exec(out)![1]!;
  return { proc, base, stdout: () => out, stderr: () => err, waitFor };
}

export interface SseEvent {
  event: string;
  id: string | null;
  data: string;
}

/**
 * Reads Server-Sent Events from `res` until `n` events arrived, the stream ended, or `ms` passed;
 * then cancels the stream. Comments (heartbeats) are skipped.
 */
export async function readEvents(res: Response, n: number, ms = 5000): Promise<SseEvent[]> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  const events: SseEvent[] = [];
  let buf = "";
  const deadline = Date.now() + ms;
  try {
    while (events.length < n && Date.now() < deadline) {
      const r = await Promise.race([reader.read(), Bun.sleep(Math.max(1, deadline - Date.now())).then(() => null)]);
      if (r === null || r.done) break;
      buf += dec.decode(r.value, { stream: true });
      for (let i = buf.indexOf("\n\n"); i >= 0 && events.length < n; i = buf.indexOf("\n\n")) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = parseBlock(block);
        if (ev) events.push(ev);
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return events;
}

function parseBlock(block: string): SseEvent | null {
  let event = "message";
  let id: string | null = null;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  return data.length === 0 && id === null ? null : { event, id, data: data.join("\n") };
}
