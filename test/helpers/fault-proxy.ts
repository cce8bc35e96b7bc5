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
}

export interface FaultProxy {
  port: number;
  mode: ProxyMode;
  /** Connections the proxy failed on purpose so far. */
  faults: number;
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
  const proxy: FaultProxy = { port: 0, mode: "pass", faults: 0, stop: () => server.stop(true) };
  const server = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        const c: Conn = { upstream: null, toUpstream: [], toClient: [], client, sent: 0, linked: false };
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
        c.toUpstream.push(new Uint8Array(bytes));
        pump(c.upstream, c.toUpstream);
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
