// Scenario (issue 17, docs/deno-kv.md §8): what serving HTTP/2 in cleartext (h2c, for Deno's KV
// Connect client) on the REST port would cost the REST routes. Bun.serve has no h2c; node:http2
// under Bun has. One port for both needs a node:net front that reads a connection's first bytes
// and hands an HTTP/2 preface to node:http2 and anything else to node:http. Three servers answer
// the same PUT the same way, storing nothing; wrk loads each in interleaved rounds.
//
//   bun bench/kv-transport.ts [--seconds S] [--rounds K]

import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as B from "./lib.ts";
import { wrkLoad } from "./wrk.ts";

const SECONDS = B.numberFlag("seconds", 5);
const ROUNDS = B.numberFlag("rounds", 3);
const MODES = ["Bun.serve", "node:http", "node:net front → node:http (h2c beside it)"] as const;
type Mode = (typeof MODES)[number];

if (process.argv[2] === "--serve") {
  serve(MODES[Number(process.argv[3])]!);
  await new Promise(() => {});
}

function serve(mode: Mode): void {
  let rev = 0;
  const answer = () => JSON.stringify({ rev: ++rev });
  const onListen = (port: number) => console.log(JSON.stringify({ port }));
  if (mode === "Bun.serve") {
    const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: async (req) => (await req.bytes(), Response.json({ rev: ++rev })) });
    onListen(s.port!);
    return;
  }
  const h1 = http.createServer((req, res) => {
    req.on("data", () => {});
    req.on("end", () => {
      const body = answer();
      res.writeHead(200, { "content-type": "application/json;charset=utf-8", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  if (mode === "node:http") {
    h1.listen(0, "127.0.0.1", () => onListen((h1.address() as net.AddressInfo).port));
    return;
  }
  const h2 = http2.createServer();
  h2.on("stream", (stream: http2.ServerHttp2Stream) => {
    stream.respond({ ":status": 200, "content-type": "application/json;charset=utf-8" });
    stream.end(answer());
  });
  const preface = Buffer.from("PRI * HTTP/2.0");
  const front = net.createServer((socket) => {
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      (chunk.subarray(0, preface.length).equals(preface) ? h2 : h1).emit("connection", socket);
      socket.resume();
    });
  });
  front.listen(0, "127.0.0.1", () => onListen((front.address() as net.AddressInfo).port));
}

async function start(i: number): Promise<{ proc: Bun.Subprocess; port: number }> {
  const proc = Bun.spawn([process.execPath, import.meta.path, "--serve", String(i)], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error(`server ${MODES[i]} did not start`);
    text += new TextDecoder().decode(r.value);
  }
  reader.releaseLock();
  return { proc, port: (JSON.parse(text) as { port: number }).port };
}

if (!Bun.which("wrk")) {
  console.log("kv-transport: skipped, wrk is not installed (apt-get install -y wrk)");
  process.exit(0);
}
const rates: number[][] = MODES.map(() => []);
await B.withTmpDir(async (dir) => {
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < MODES.length; k++) {
      const i = (k + r) % MODES.length; // the order rotates, so drift hits all alike
      const s = await start(i);
      try {
        rates[i]!.push(wrkLoad(`http://127.0.0.1:${s.port}`, dir, 64, SECONDS).perSecond);
      } finally {
        s.proc.kill();
        await s.proc.exited;
      }
    }
  }
});
console.log(`## The REST port with h2c beside it: PUT, 64 connections, wrk -t2 -d${SECONDS}s, ${ROUNDS} interleaved rounds\n`);
const base = B.median(rates[0]!);
B.table(
  ["server (answers without storing)", "requests/s (median)", "rounds", "÷ Bun.serve"],
  MODES.map((m, i) => [m, B.fmt(B.median(rates[i]!)), rates[i]!.map((x) => B.fmt(x)).join(", "), (B.median(rates[i]!) / base).toFixed(2)]),
);
console.log("");
B.finish();
