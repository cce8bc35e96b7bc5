// Archiving to S3-compatible storage (issue 16), against a local s3rver started here, in one run:
// put throughput with archiving ÷ without (and what the archiver and the S3 server cost in CPU),
// archive lag under a paced load with the S3 requests it makes, and a restore of N keys ÷ a local
// open of the same database; and zero-RPO writes (archive.sync) against archived writes that do not
// wait for the bucket, at 1, 16 and 256 in flight.
//
//   bun bench/archive.ts [--keys N] [--seconds S] [--rate R] [--rounds K] [--part throughput|lag|restore|sync]
//                        [--snapshot-log-ratio X]

import * as fs from "node:fs";
import * as path from "node:path";
import { open, restore, type Db, type OpenOptions } from "../src/index.ts";
import { startS3, stopS3Servers, type S3Server } from "../test/helpers/s3.ts";
import { bytesValue, fmt, footer, key, median, numberFlag, pacedPuts, percentile, settleWriter, stringFlag, table, verdict, withTmpDir } from "./lib.ts";

const KEYS = numberFlag("keys", 1_000_000);
const SECONDS = numberFlag("seconds", 5);
const RATE = numberFlag("rate", 50_000);
const ROUNDS = numberFlag("rounds", 3);
const PART = stringFlag("part");
const IN_FLIGHT = 256;
/** archive.snapshotLogRatio for every archived run (default: the option's own). */
const SNAPSHOT_LOG_RATIO = numberFlag("snapshot-log-ratio", NaN);

let prefixes = 0;
function archiveOpts(s3: S3Server, maxLagMs = 1000): NonNullable<OpenOptions["archive"]> {
  const ratio = Number.isNaN(SNAPSHOT_LOG_RATIO) ? {} : { snapshotLogRatio: SNAPSHOT_LOG_RATIO };
  return { url: s3.url(`bench-${++prefixes}`), maxLagMs, s3: s3.s3, ...ratio };
}

/** CPU ms a process has used (utime + stime, in 10 ms ticks). */
function processCpuMs(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** Puts of new keys with `inFlight` in flight for `ms`; how many, in how long, and each one's latency (µs) if asked. */
async function saturate(db: Db, ms: number, inFlight = IN_FLIGHT, latencies?: number[]): Promise<{ puts: number; secs: number }> {
  const value = bytesValue();
  let puts = 0;
  const end = performance.now() + ms;
  const lane = async (l: number) => {
    for (let i = l; performance.now() < end; i += inFlight) {
      const t = performance.now();
      await db.put(key(i), value);
      latencies?.push((performance.now() - t) * 1000);
      puts++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, (_, l) => lane(l)));
  return { puts, secs: (performance.now() - t0) / 1000 };
}

/** Zero RPO (archive.sync): a put waits for its object's PUT too. Rounds alternate with archived puts that do not wait. */
async function zeroRpo(s3: S3Server): Promise<void> {
  const run = (sync: boolean, inFlight: number) =>
    withTmpDir(async (dir) => {
      const db = await open(dir, { archive: { ...archiveOpts(s3), sync } });
      await settleWriter(db);
      const a0 = db.stats().archive!;
      const lat: number[] = [];
      const r = await saturate(db, (SECONDS * 1000) / 2, inFlight, lat);
      const a1 = db.stats().archive!;
      await db.close();
      lat.sort((x, y) => x - y);
      return { rate: r.puts / r.secs, p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), putsPerObject: r.puts / Math.max(1, a1.objects - a0.objects) };
    });
  const rows: string[][] = [];
  for (const inFlight of [1, 16, 256]) {
    const off: Awaited<ReturnType<typeof run>>[] = [];
    const on: Awaited<ReturnType<typeof run>>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      off.push(await run(false, inFlight));
      on.push(await run(true, inFlight));
    }
    const m = (xs: { rate: number }[]) => median(xs.map((x) => x.rate));
    rows.push([
      String(inFlight),
      fmt(m(off)),
      fmt(m(on)),
      fmt(m(on) / m(off), 2),
      `${fmt(median(off.map((x) => x.p50)))} / ${fmt(median(on.map((x) => x.p50)))}`,
      `${fmt(median(off.map((x) => x.p99)))} / ${fmt(median(on.map((x) => x.p99)))}`,
      fmt(median(on.map((x) => x.putsPerObject)), 1),
    ]);
  }
  table(["in flight", "archived puts/s", "archive.sync puts/s", "sync ÷ not", "p50 µs (not / sync)", "p99 µs (not / sync)", "puts per object (sync)"], rows);
  console.log(`(medians of ${ROUNDS}; a sync put waits for an fdatasync and then a PUT to s3rver on loopback: a real bucket's round trip is longer)\n`);
}

/**
 * An S3 endpoint that takes every PUT and keeps nothing (GET: NoSuchKey), in its own process: what
 * archiving costs the database itself, without an S3 server's CPU on the same 2 cores.
 */
async function nullS3(): Promise<{ endpoint: string; pid: number; stop(): void }> {
  const code = `
    const s = Bun.serve({ port: 0, hostname: "127.0.0.1", async fetch(req) {
      if (req.method === "PUT") { await req.arrayBuffer(); return new Response(null, { headers: { ETag: '"0"' } }); }
      const xml = (body, status = 200) => new Response("<?xml version=\\"1.0\\"?>" + body, { status, headers: { "Content-Type": "application/xml" } });
      if (req.method === "GET") return xml("<Error><Code>NoSuchKey</Code><Message>none</Message></Error>", 404);
      const q = new URL(req.url).searchParams;
      // Multipart uploads (large snapshots): initiate, then complete; the parts are PUTs above.
      if (req.method === "POST" && q.has("uploads")) return xml("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>1</UploadId></InitiateMultipartUploadResult>");
      if (req.method === "POST" && q.has("uploadId")) {
        await req.arrayBuffer();
        return xml("<CompleteMultipartUploadResult><Location>l</Location><Bucket>b</Bucket><Key>k</Key><ETag>&quot;0&quot;</ETag></CompleteMultipartUploadResult>");
      }
      return new Response(null);
    } });
    console.log(s.port);`;
  const proc = Bun.spawn([process.execPath, "-e", code], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) text += new TextDecoder().decode((await reader.read()).value);
  reader.releaseLock();
  return { endpoint: `http://127.0.0.1:${text.trim()}`, pid: proc.pid, stop: () => proc.kill() };
}

async function throughput(s3: S3Server): Promise<void> {
  const sink = await nullS3();
  const run = (mode: "off" | "s3rver" | "null") =>
    withTmpDir(async (dir) => {
      const archive = mode === "s3rver" ? archiveOpts(s3) : mode === "null" ? { ...archiveOpts(s3), s3: { ...s3.s3, endpoint: sink.endpoint } } : null;
      const db = await open(dir, archive ? { archive } : {});
      await settleWriter(db);
      const pid = mode === "null" ? sink.pid : s3.pid;
      const s3Cpu0 = processCpuMs(pid);
      const cpu0 = db.stats().archive?.cpuMs ?? 0;
      const r = await saturate(db, SECONDS * 1000);
      const cpuMs = (db.stats().archive?.cpuMs ?? 0) - cpu0;
      const s3CpuMs = processCpuMs(pid) - s3Cpu0;
      const errors = db.stats().archive?.errors ?? 0;
      await db.close();
      if (errors > 0) throw new Error(`${errors} S3 errors archiving to ${mode}`);
      return { rate: r.puts / r.secs, archiverUsPerPut: (cpuMs * 1000) / r.puts, s3CpuShare: s3CpuMs / (r.secs * 1000) };
    });
  const plain: number[] = [];
  const archived: Awaited<ReturnType<typeof run>>[] = [];
  const sunk: Awaited<ReturnType<typeof run>>[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      plain.push((await run("off")).rate);
      archived.push(await run("s3rver"));
      sunk.push(await run("null"));
    }
  } finally {
    sink.stop();
  }
  const row = (name: string, xs: Awaited<ReturnType<typeof run>>[]) => [
    name,
    fmt(median(xs.map((a) => a.rate))),
    xs.map((x) => fmt(x.rate)).join(", "),
    fmt(median(xs.map((a) => a.archiverUsPerPut)), 2),
    fmt(median(xs.map((a) => a.s3CpuShare)), 2),
  ];
  table(
    ["puts, 256 in flight, new keys", "puts/s (median)", "rounds", "archiver CPU µs/put", "S3 server CPU (cores)"],
    [["without archiving", fmt(median(plain)), plain.map((x) => fmt(x)).join(", "), "", ""], row("archiving to s3rver, maxLagMs 1000", archived), row("archiving to an endpoint that keeps nothing", sunk)],
  );
  const m = (xs: { rate: number }[]) => median(xs.map((x) => x.rate));
  console.log(`with ÷ without (s3rver): ${verdict(m(archived) / median(plain), "≥", 0.9)}`);
  console.log(`with ÷ without (an endpoint that keeps nothing: the archiver's own cost): ${verdict(m(sunk) / median(plain), "≥", 0.9)}`);
  console.log(`(an S3 server on this 2-core machine takes its CPU from the database's; a real bucket's is elsewhere)\n`);
}

async function lag(s3: S3Server): Promise<void> {
  const r = await withTmpDir(async (dir) => {
    const db = await open(dir, { archive: archiveOpts(s3) });
    await settleWriter(db);
    const value = bytesValue();
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(db.stats().archive!.behindMs), 10);
    const a0 = db.stats().archive!;
    const { puts, secs } = await pacedPuts(RATE, SECONDS, (i) => db.put(key(i), value));
    clearInterval(sampler);
    const a1 = db.stats().archive!;
    await db.close();
    samples.sort((x, y) => x - y);
    return {
      rate: puts / secs,
      p50: percentile(samples, 0.5),
      p99: percentile(samples, 0.99),
      max: samples[samples.length - 1] ?? 0,
      perMinute: ((a1.requests - a0.requests) / secs) * 60,
      objects: a1.objects - a0.objects,
      errors: a1.errors,
    };
  });
  table(
    ["paced puts/s", "archive lag p50 ms", "p99 ms", "max ms", "S3 requests/min", "objects", "errors"],
    [[fmt(r.rate), fmt(r.p50), fmt(r.p99), fmt(r.max), fmt(r.perMinute), fmt(r.objects), fmt(r.errors)]],
  );
  console.log(`lag p99 (ms): ${verdict(r.p99, "≤", 1000, 0)}; the archiver's requests are PUTs (an object and the position), one GET at start, no LIST\n`);
}

/** Restore of KEYS keys (a snapshot and ~16 MiB of log after it) against a local open of the same database. */
async function restoreVsOpen(s3: S3Server): Promise<void> {
  await withTmpDir(async (dir) => {
    const src = path.join(dir, "src");
    const a = archiveOpts(s3, 200);
    const db = await open(src, { archive: a, snapshotEveryBytes: 0 });
    const batch = 1000;
    const load = async (from: number, n: number, seed: number) => {
      for (let i = from; i < from + n; i += batch) {
        await db.batch(Array.from({ length: Math.min(batch, from + n - i) }, (_, k) => ({ type: "put" as const, key: key(i + k), value: bytesValue(seed) })));
      }
    };
    await load(0, KEYS, 1);
    await db.snapshot();
    await load(0, Math.min(KEYS, 120_000), 2); // overwrites: ~16 MiB of log after the snapshot
    const rev = db.rev;
    const walBytes = db.stats().snapshot.walBytesSince;
    while (db.stats().archive!.rev < rev || db.stats().archive!.snapshotRev === 0) await Bun.sleep(50);
    await db.close(); // (automatic snapshots off: no snapshot at close, so open replays the same log restore does)
    const opens: number[] = [];
    const restores: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now();
      const local = await open(src, { snapshotEveryBytes: 0 });
      opens.push(performance.now() - t0);
      await local.close();
      const to = path.join(dir, `restored-${r}`);
      t0 = performance.now();
      await restore(a.url, to, { s3: s3.s3 });
      restores.push(performance.now() - t0);
      fs.rmSync(to, { recursive: true, force: true });
    }
    table(
      [`${fmt(KEYS)} keys, a snapshot + ${fmt(walBytes / 2 ** 20, 1)} MiB of log`, "ms (median)", "rounds"],
      [
        ["local open", fmt(median(opens)), opens.map((x) => fmt(x)).join(", ")],
        ["restore (download, verify, rebuild, write)", fmt(median(restores)), restores.map((x) => fmt(x)).join(", ")],
      ],
    );
    console.log(`restore ÷ open: ${verdict(median(restores) / median(opens), "≤", 2)}\n`);
  });
}

const s3 = await startS3();
try {
  console.log(`## Archiving to S3-compatible storage (s3rver on loopback)\n`);
  if (PART === undefined || PART === "throughput") await throughput(s3);
  if (PART === undefined || PART === "lag") await lag(s3);
  if (PART === undefined || PART === "restore") await restoreVsOpen(s3);
  if (PART === undefined || PART === "sync") await zeroRpo(s3);
} finally {
  await stopS3Servers();
}
footer();
process.exit(0);
