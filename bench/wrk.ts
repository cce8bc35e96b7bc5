// wrk (apt-get install -y wrk) PUTting fresh keys over HTTP, its summary parsed: what
// bench/http-put.ts and bench/kv-transport.ts load their servers with.

import * as fs from "node:fs";
import * as path from "node:path";
import * as B from "./lib.ts";

export interface Load {
  requests: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

const WRK_SCRIPT = `
-- Every request PUTs a fresh key with a ${B.VALUE_BYTES}-byte binary value.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  n = 0
  body = string.rep("v", ${B.VALUE_BYTES})
end
function request()
  n = n + 1
  return wrk.format("PUT", "/v1/kv/w" .. tid .. "-" .. n, { ["Content-Type"] = "application/octet-stream" }, body)
end
`;

/** wrk with 2 threads and `connections` connections for `seconds`; its summary parsed. */
export function wrkLoad(url: string, dir: string, connections: number, seconds: number): Load {
  const script = path.join(dir, "put.lua");
  fs.writeFileSync(script, WRK_SCRIPT);
  const p = Bun.spawnSync(["wrk", "-t2", `-c${connections}`, `-d${seconds}s`, "--latency", "-s", script, url], { timeout: (seconds + 30) * 1000 });
  const out = p.stdout.toString();
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (p.exitCode !== 0 || !rate) throw new Error(`wrk failed (exit ${p.exitCode}):\n${out}\n${p.stderr}`);
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0) + socketErrors(out);
  const ms = (label: string) => {
    const m = new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)\\s*$`, "m").exec(out);
    return m ? Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3 }[m[2] as "us" | "ms" | "s"] : null;
  };
  // wrk's rate counts every response; a failed PUT must not count as a durable write.
  const perSecond = Number(rate[1]) * (total === 0 ? 0 : (total - errors) / total);
  return { requests: total - errors, errors, seconds, perSecond, p50Ms: ms("50"), p99Ms: ms("99") };
}

function socketErrors(out: string): number {
  const m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return m ? Number(m[1]) + Number(m[2]) + Number(m[3]) + Number(m[4]) : 0;
}

