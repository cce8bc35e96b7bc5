// KV Connect's transport (docs/deno-kv.md §8): one port, h2c for Deno's own client (HTTP/2 by prior
// knowledge) and HTTP/1.1 for @deno/kv. A node:net front reads a connection's first bytes and
// hands an HTTP/2 preface to node:http2, anything else to node:http. Bun.serve has no h2c, and the
// REST routes stay on it (a front on their port would halve them: bench/kv-transport.ts).

import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { isLoopback } from "../config.ts";
import type { KvConnect, KvRequest, KvResponse } from "./handler.ts";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** How long a new connection may take to send the bytes that tell HTTP/2 from HTTP/1.1. */
const SNIFF_MS_MAX = 30_000;
/** The largest request body: a commit of 800 KiB of keys and values, with room for its framing. */
export const kvBodyBytesMax = 2 * 1024 * 1024;

export interface KvConnectServer {
  port: number;
  /**
   * Stops listening, ends watch streams, lets requests in progress answer (for at most
   * `drainMs`: a commit that became durable should say so, or a client's retry could apply a sum
   * twice), then closes every connection.
   */
  close(drainMs?: number): Promise<void>;
}

export function listenKvConnect(handler: KvConnect, host: string, port: number): Promise<KvConnectServer> {
  const sockets = new Set<net.Socket>();
  const streams = new Set<() => Promise<void>>();
  const active = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    active.add(p);
    void p.finally(() => active.delete(p));
  };
  // A request that fails in transport (a reset mid-body, a write after the client went) ends its
  // connection or stream; it must not become an unhandled rejection that takes the server down.
  const h1 = http.createServer((req, res) => track(serveH1(handler, req, res, streams).catch(() => void res.destroy())));
  const h2 = http2.createServer();
  h2.on("stream", (stream, headers) => track(serveH2(handler, stream as http2.ServerHttp2Stream, headers, streams).catch(() => void stream.destroy())));
  h2.on("sessionError", () => {});
  const front = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    // A connection that never says what it speaks is closed (node:http and node:http2 time out the rest).
    socket.setTimeout(SNIFF_MS_MAX, () => socket.destroy());
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const h2ish = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (h2ish && n < PREFACE.length) return; // not enough to tell yet
      socket.off("data", onData);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(seen);
      (h2ish ? h2 : h1).emit("connection", socket);
      socket.resume();
    };
    socket.on("data", onData);
  });
  return new Promise((resolve, reject) => {
    front.once("error", reject);
    front.listen(port, host, () => {
      front.off("error", reject);
      resolve({
        port: (front.address() as net.AddressInfo).port,
        close: async (drainMs = 10_000) => {
          // (front.close() waits for every connection to end, and clients keep theirs alive: end them after the drain)
          const closed = new Promise<void>((r) => front.close(() => r()));
          await Promise.all([...streams].map((close) => close()));
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([Promise.allSettled([...active]), new Promise((r) => (timer = setTimeout(r, drainMs)))]);
          clearTimeout(timer);
          for (const s of sockets) s.destroy();
          await closed;
        },
      });
    });
  });
}

async function serveH1(handler: KvConnect, req: http.IncomingMessage, res: http.ServerResponse, streams: Set<() => Promise<void>>): Promise<void> {
  const body = await readBody(req);
  if (body === null) return void res.writeHead(413, { "content-type": "text/plain" }).end("Request body too large.");
  const headers: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : v;
  const out = await handler.handle({ method: req.method ?? "", path: pathOf(req.url), headers, body, loopback: isLoopback(req.socket.remoteAddress ?? "") });
  if (!("frames" in out)) return void res.writeHead(out.status, { "content-type": out.type }).end(out.body);
  res.writeHead(200, { "content-type": out.type });
  await pipeFrames(out, (b) => res.write(b), () => void res.end(), res, streams);
}

async function serveH2(handler: KvConnect, stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, streams: Set<() => Promise<void>>): Promise<void> {
  stream.on("error", () => {});
  const body = await readBody(stream);
  if (stream.destroyed) return;
  if (body === null) return void (stream.respond({ ":status": 413, "content-type": "text/plain" }), stream.end("Request body too large."));
  const headers: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(":")) headers[k] = Array.isArray(v) ? v.join(", ") : v;
  const req: KvRequest = { method: String(h[":method"]), path: pathOf(String(h[":path"])), headers, body, loopback: isLoopback(stream.session?.socket?.remoteAddress ?? "") };
  const out = await handler.handle(req);
  if (stream.destroyed) return void ("frames" in out && out.close());
  stream.respond({ ":status": out.status, "content-type": out.type });
  if (!("frames" in out)) return void stream.end(out.body);
  await pipeFrames(out, (b) => stream.write(b), () => void stream.end(), stream, streams);
}

/**
 * Writes a watch's frames until it ends or the client goes away. A client that stops reading
 * holds the next frame back (the watch coalesces what changes meanwhile), not an unbounded buffer.
 */
async function pipeFrames(
  out: Extract<KvResponse, { frames: unknown }>,
  write: (b: Uint8Array) => boolean,
  end: () => void,
  conn: NodeJS.EventEmitter,
  streams: Set<() => Promise<void>>,
): Promise<void> {
  streams.add(out.close);
  let gone = false;
  conn.once("close", () => ((gone = true), void out.close()));
  try {
    for await (const f of out.frames) {
      if (write(f) || gone) continue;
      await new Promise<void>((resolve) => {
        conn.once("drain", resolve);
        conn.once("close", resolve);
      });
    }
    end();
  } catch {
    end();
  } finally {
    streams.delete(out.close);
    await out.close();
  }
}

/** The whole body, or null past kvBodyBytesMax. */
async function readBody(s: NodeJS.ReadableStream): Promise<Uint8Array | null> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of s as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > kvBodyBytesMax) return null;
    parts.push(chunk);
  }
  return new Uint8Array(Buffer.concat(parts));
}

function pathOf(url: string | undefined): string {
  const p = (url ?? "").split("?")[0]!;
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}
