// A byte-forwarding TCP proxy in front of a test server, whose mode a test switches: pass bytes
// through, answer 503 to everything, swallow requests without a word (a silent endpoint), or reset
// a connection once it has carried some bytes of a request (an upload cut mid-way).

import type { Socket } from "bun";

export type ProxyMode = "pass" | "503" | "silent" | "reset";

interface Conn {
  upstream: Socket<Conn> | null;
  /** Bytes for the upstream not yet written (it is connecting, or it pushed back). */
  toUpstream: Uint8Array[];
  /** Bytes for the client not yet written. */
  toClient: Uint8Array[];
  client: Socket<Conn>;
  sent: number;
  /** Whether an upstream connection was made or is being made (not for a 503 or silent one). */
  linked: boolean;
  /** With onRequest: the connection's bytes go on in order once the hooks before them are done. */
  chain: Promise<void>;
}

export interface FaultProxy {
  port: number;
  mode: ProxyMode;
  /** Connections the proxy failed on purpose so far. */
  faults: number;
  /**
   * In "pass" mode, called with the method and path of each request seen (its first line) before
   * the request goes on: a test acts between a client's calls (deletes an object it listed).
   */
  onRequest: ((method: string, path: string) => void | Promise<void>) | null;
  stop(): void;
}

const RESPONSE_503 = new TextEncoder().encode("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
/** A "reset" connection is cut once this many request bytes have passed. */
const RESET_AFTER_BYTES = 4096;

/** Writes what it can of `queue` to `s`, keeping the rest (the drain handler calls it again). */
function pump(s: Socket<Conn> | null, queue: Uint8Array[]): void {
  while (s && queue.length > 0) {
    const chunk = queue[0]!;
    const n = s.write(chunk);
    if (n < chunk.length) {
      queue[0] = chunk.subarray(Math.max(0, n));
      return;
    }
    queue.shift();
  }
}

export function startFaultProxy(targetPort: number): FaultProxy {
  const proxy: FaultProxy = { port: 0, mode: "pass", faults: 0, onRequest: null, stop: () => server.stop(true) };
  const server = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        const c: Conn = { upstream: null, toUpstream: [], toClient: [], client, sent: 0, linked: false, chain: Promise.resolve() };
        client.data = c;
        if (proxy.mode !== "pass" && proxy.mode !== "reset") return;
        c.linked = true;
        void Bun.connect<Conn>({
          hostname: "127.0.0.1",
          port: targetPort,
          data: c,
          socket: {
            open(up) {
              c.upstream = up;
              pump(up, c.toUpstream);
            },
            data(_, bytes) {
              c.toClient.push(new Uint8Array(bytes));
              pump(c.client, c.toClient);
            },
            drain(up) {
              pump(up, c.toUpstream);
            },
            close() {
              c.client.end();
            },
            error() {
              c.client.end();
            },
          },
        }).catch(() => client.end());
      },
      data(client, bytes) {
        const c = client.data;
        switch (proxy.mode) {
          case "503":
            proxy.faults++;
            client.write(RESPONSE_503);
            client.end();
            return;
          case "silent":
            proxy.faults++;
            return; // read and never answer
          case "reset":
            if (c.sent + bytes.length > RESET_AFTER_BYTES) {
              proxy.faults++;
              client.terminate();
              c.upstream?.terminate();
              return;
            }
        }
        if (!c.linked) {
          client.end(); // opened while failing: the client retries on a fresh connection
          return;
        }
        c.sent += bytes.length;
        const chunk = new Uint8Array(bytes);
        const forward = () => {
          c.toUpstream.push(chunk);
          pump(c.upstream, c.toUpstream);
        };
        const hook = proxy.onRequest;
        if (!hook) return forward();
        const line = /^(GET|PUT|DELETE|HEAD|POST) (\S+) HTTP\/1\.1\r\n/.exec(new TextDecoder().decode(chunk.subarray(0, 2048)));
        c.chain = c.chain.then(() => (line ? hook(line[1]!, line[2]!) : undefined)).then(forward, forward);
      },
      drain(client) {
        pump(client, client.data.toClient);
      },
      close(client) {
        client.data.upstream?.end();
      },
      error(client) {
        client.data.upstream?.end();
      },
    },
  });
  proxy.port = server.port;
  return proxy;
}
