// Read replicas (issue 16, docs/replication.md), in one run: a primary serving its HTTP API and a
// replica following it over GET /v1/wal, both in this process (the worst case on this 2-core
// machine: they share a main thread). The replica's lag under paced puts, and random gets on the
// replica against the same gets on the primary.
//
//   bun bench/replica.ts [--rate R] [--seconds S] [--keys N] [--rounds K]

import * as path from "node:path";
import { open, openReplica } from "../src/index.ts";
import { createHandler } from "../src/server/http.ts";
import { bytesValue, fmt, footer, key, median, numberFlag, pacedPuts, percentile, rng, settleWriter, table, verdict, withTmpDir } from "./lib.ts";

const RATE = numberFlag("rate", 20_000);
const SECONDS = numberFlag("seconds", 5);
const KEYS = numberFlag("keys", 100_000);
const ROUNDS = numberFlag("rounds", 5);

await withTmpDir(async (dir) => {
  const primary = await open(path.join(dir, "primary"));
  const handler = createHandler({ db: primary, progress: null });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", idleTimeout: 0, fetch: (req, srv) => handler(req, srv) });
  const replica = await openReplica(path.join(dir, "replica"), { follow: `http://127.0.0.1:${server.port}` });
  try {
    await settleWriter(primary);
    const value = bytesValue();
    // Paced puts; the time each revision was acknowledged; the replica's lag sampled every 5 ms as
    // the age of the oldest acknowledged revision it has not applied.
    const acked = new Map<number, number>();
    const samples: number[] = [];
    const sampler = setInterval(() => {
      const next = replica.rev + 1;
      const t = acked.get(next);
      samples.push(t === undefined || next > primary.rev ? 0 : performance.now() - t);
    }, 5);
    const { puts, secs } = await pacedPuts(RATE, SECONDS, (i) => primary.put(key(i % KEYS), value).then((rev) => void acked.set(rev, performance.now())));
    await replica.waitForRev(primary.rev, 30_000);
    clearInterval(sampler);
    samples.sort((a, b) => a - b);
    table(
      ["paced puts/s", "replica lag p50 ms", "p99 ms", "max ms", "same state"],
      [[fmt(puts / secs), fmt(percentile(samples, 0.5), 1), fmt(percentile(samples, 0.99), 1), fmt(samples[samples.length - 1] ?? 0, 1), String(replica.rev === primary.rev)]],
    );
    console.log(`replica lag p99 (ms): ${verdict(percentile(samples, 0.99), "≤", 100, 1)}\n`);

    // Random gets of the same keys, alternating rounds.
    const gets = (store: { get(k: string): unknown }) => {
      const r = rng(42);
      const n = 1_000_000;
      const start = performance.now();
      let found = 0;
      for (let k = 0; k < n; k++) if (store.get(key(Math.floor(r() * KEYS))) !== undefined) found++;
      if (found === 0) throw new Error("no key found");
      return n / ((performance.now() - start) / 1000);
    };
    const p: number[] = [];
    const rr: number[] = [];
    for (let k = 0; k < ROUNDS; k++) {
      p.push(gets(primary));
      rr.push(gets(replica));
    }
    table(
      [`random gets, ${fmt(KEYS)} keys`, "gets/s (median)", "rounds"],
      [
        ["primary", fmt(median(p)), p.map((x) => fmt(x)).join(", ")],
        ["replica", fmt(median(rr)), rr.map((x) => fmt(x)).join(", ")],
      ],
    );
    console.log(`replica ÷ primary reads: ${verdict(median(rr) / median(p), "≥", 0.9)}\n`);
  } finally {
    await replica.close();
    server.stop(true);
    await primary.close();
  }
});
footer();
process.exit(0);
