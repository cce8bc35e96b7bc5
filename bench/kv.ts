// Scenario (issue 17, item 5): Deno KV's own engine (`Deno.openKv(path)`, SQLite, in the npm `deno`)
// against HarmonyDB's openKv in this process, and against KV Connect (Deno's own client → HarmonyDB's
// server in this process): atomic commits with 1, 16 and 256 in flight, random gets, list pages.
//
//   bun bench/kv.ts [--ms 500] [--rounds 5] [--keys 100000]
//
// The workloads are one JS module (WORKLOAD_JS below), written to the temp directory and imported by
// both runtimes, so Bun and Deno run exactly the same loops; Deno measures inside its own process and
// answers over stdin/stdout, one request at a time, while this process only waits (its event loop
// stays free to serve KV Connect).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { open, type Db } from "../src/index.ts";
import { Kv } from "../src/kv/index.ts";
import { KvConnect } from "../src/server/kv-connect/handler.ts";
import { listenKvConnect } from "../src/server/kv-connect/front.ts";
import * as B from "./lib.ts";

const MS = B.numberFlag("ms", 500);
const ROUNDS = B.numberFlag("rounds", 5);
/** Keys loaded before anything is timed; gets and list pages read among these. */
const KEYS = B.numberFlag("keys", 100_000);
const DENO = path.join(import.meta.dir, "..", "node_modules", ".bin", "deno");
const LIST_LIMIT = 100;

const WORKLOAD_JS = `// Written by bench/kv.ts: the workloads, run alike by Bun (HarmonyDB's openKv) and Deno (its own KV, KV Connect).
const VALUE_CHARS = ${B.VALUE_BYTES};
const LOAD_BATCH = 500;
const LIST_LIMIT = ${LIST_LIMIT};

${B.rng.toString()}

/** n different strings of VALUE_CHARS random letters. */
function valuePool(n) {
  const random = rng(7);
  return Array.from({ length: n }, () => {
    let s = "";
    for (let i = 0; i < VALUE_CHARS; i++) s += String.fromCharCode(97 + Math.floor(random() * 26));
    return s;
  });
}

/** Calls op() keeping exactly \`inflight\` calls outstanding until \`ms\` have passed; calls completed per second. */
async function drive(op, inflight, ms) {
  const deadline = performance.now() + ms;
  let done = 0;
  const lane = async () => {
    while (performance.now() < deadline) {
      await op();
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inflight }, lane));
  return { ops: done, perSecond: done / ((performance.now() - t0) / 1000) };
}

/** The workloads over a Deno.Kv-shaped store holding (after load()) ["bench", 0 … keys - 1]. */
export function workloads(kv, keys) {
  const values = valuePool(1024);
  const random = rng(11);
  let next = keys; // commits write new keys from here on
  const ops = {
    async commit() {
      const k = next++;
      const r = await kv.atomic().set(["bench", k], values[k % values.length]).commit();
      if (r.ok !== true) throw new Error("commit not ok");
    },
    async get() {
      const i = Math.floor(random() * keys);
      const e = await kv.get(["bench", i]);
      if (typeof e.value !== "string") throw new Error("get: [bench, " + i + "] missing");
    },
    async list() {
      const from = Math.floor(random() * (keys - LIST_LIMIT));
      let n = 0;
      for await (const e of kv.list({ prefix: ["bench"], start: ["bench", from] }, { limit: LIST_LIMIT })) if (typeof e.value === "string") n++;
      if (n !== LIST_LIMIT) throw new Error("list from " + from + ": " + n + " entries");
    },
  };
  return {
    async load() {
      for (let i = 0; i < keys; i += LOAD_BATCH) {
        const a = kv.atomic();
        for (let j = i; j < Math.min(keys, i + LOAD_BATCH); j++) a.set(["bench", j], values[j % values.length]);
        if ((await a.commit()).ok !== true) throw new Error("load commit not ok");
      }
    },
    run: (kind, inflight, ms) => drive(ops[kind], inflight, ms),
  };
}
`;

const DENO_JS = `// Written by bench/kv.ts: Deno.openKv(Deno.args[0]), then the requests on stdin, one JSON line each.
import { workloads } from "./workload.mjs";

const target = Deno.args[0];
const kv = await Deno.openKv(target);
const w = workloads(kv, Number(Deno.args[1]));
const say = (o) => console.log(JSON.stringify(o));

/** Deno's SQLite (node:sqlite links the same one as Deno.openKv): version and durability defaults; the KV file's journal mode. */
async function sqliteInfo() {
  if (/^https?:/.test(target)) return null;
  const { DatabaseSync } = await import("node:sqlite");
  const mem = new DatabaseSync(":memory:");
  const version = mem.prepare("select sqlite_version() as v").get().v;
  const options = mem.prepare("pragma compile_options").all().map((r) => r.compile_options).filter((o) => /SYNCHRONOUS|FDATASYNC|WAL_AUTOCHECKPOINT/.test(o));
  mem.close();
  const file = new DatabaseSync(target, { readOnly: true });
  const journal = file.prepare("pragma journal_mode").get().journal_mode;
  file.close();
  return { version, options, journal };
}

say({ ready: true, deno: Deno.version.deno, sqlite: await sqliteInfo() });
let buffered = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf("\\n")) >= 0) {
    const req = JSON.parse(buffered.slice(0, nl));
    buffered = buffered.slice(nl + 1);
    if (req.op === "close") {
      kv.close();
      say({ closed: true });
      Deno.exit(0);
    }
    try {
      say(req.op === "load" ? (await w.load(), { loaded: true }) : await w.run(req.kind, req.inflight, req.ms));
    } catch (e) {
      say({ error: String(e) });
    }
  }
}
kv.close(); // stdin closed: the bench has gone
`;

type Kind = "commit" | "get" | "list";
interface Workload {
  id: string;
  kind: Kind;
  inflight: number;
  title: string;
  unit: string;
}

const WORKLOADS: Workload[] = [
  ...[1, 16, 256].map((n) => ({ id: `commit@${n}`, kind: "commit" as const, inflight: n, title: `atomic commits (one set, a new key), ${n} in flight`, unit: "commits/s" })),
  ...[1, 16].map((n) => ({ id: `get@${n}`, kind: "get" as const, inflight: n, title: `random gets, ${n} in flight`, unit: "gets/s" })),
  ...[1, 16].map((n) => ({ id: `list@${n}`, kind: "list" as const, inflight: n, title: `list pages of ${LIST_LIMIT} (prefix, random start), ${n} in flight`, unit: "pages/s" })),
];

type Rate = { ops: number; perSecond: number };

interface Subject {
  id: "deno" | "openkv" | "connect";
  name: string;
  run(kind: Kind, inflight: number, ms: number): Promise<Rate>;
  /** CPU seconds used so far by the processes doing this subject's work: Deno (the client, or its own KV), this process (HarmonyDB). */
  cpu(): { deno?: number; bun?: number };
  /** HarmonyDB's WAL counters (records, fdatasyncs), for records per fdatasync. */
  wal?: () => { records: number; fsyncs: number; fsyncMsAvg: number };
  close(): Promise<void>;
}

/** A Deno process running DENO_JS against `target`, answering one request at a time. */
class DenoChild {
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  stderr = "";
  info: { deno: string; sqlite: { version: string; options: string[]; journal: string } | null } | undefined;

  private constructor(private readonly proc: Bun.Subprocess<"pipe", "pipe", "pipe">) {
    void this.readLines();
    void (async () => {
      for await (const chunk of proc.stderr) this.stderr += new TextDecoder().decode(chunk);
    })();
  }

  static async start(dir: string, target: string, env: Record<string, string>): Promise<DenoChild> {
    const script = path.join(dir, "deno-kv.ts");
    const proc = Bun.spawn([DENO, "run", "--quiet", "-A", "--unstable-kv", script, target, String(KEYS)], {
      cwd: dir,
      env: { ...process.env, DENO_DIR: path.join(dir, "deno-dir"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...env },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    const child = new DenoChild(proc);
    child.info = (await child.next(60_000)) as DenoChild["info"];
    return child;
  }

  private async readLines(): Promise<void> {
    let buffered = "";
    for await (const chunk of this.proc.stdout) {
      buffered += new TextDecoder().decode(chunk);
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        this.lines.push(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
      this.wake?.();
    }
    this.ended = true;
    this.wake?.();
  }

  /** The next JSON line from the child; fails if it exits or takes longer than `timeoutMs` (then it is killed). */
  private async next(timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.ended) throw new Error(`deno exited (${await this.proc.exited}): ${this.stderr.trim().split("\n").slice(-3).join(" / ")}`);
      if (performance.now() > deadline) {
        this.proc.kill("SIGKILL");
        throw new Error(`deno did not answer in ${timeoutMs} ms`);
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 250);
      });
      this.wake = null;
    }
    const out = JSON.parse(this.lines.shift()!) as Record<string, unknown>;
    if (typeof out.error === "string") throw new Error(out.error);
    return out;
  }

  async request(req: object, timeoutMs: number): Promise<Record<string, unknown>> {
    this.proc.stdin.write(JSON.stringify(req) + "\n");
    await this.proc.stdin.flush();
    return this.next(timeoutMs);
  }

  async close(): Promise<void> {
    if (!this.ended) {
      try {
        await this.request({ op: "close" }, 10_000);
      } catch {
        this.proc.kill("SIGKILL");
      }
    }
    await this.proc.exited;
  }

  /** Deno's own timing of one workload run. */
  async run(kind: Kind, inflight: number, ms: number): Promise<Rate> {
    return (await this.request({ op: "run", kind, inflight, ms }, ms + 60_000)) as unknown as Rate;
  }

  cpuSeconds(): number {
    return procCpuSeconds(this.proc.pid);
  }
}

type Workloads = { load(): Promise<void>; run(kind: Kind, inflight: number, ms: number): Promise<Rate> };

/** CPU seconds (user + system, all threads) a process has used so far, from /proc; NaN without /proc. */
function procCpuSeconds(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** This process's CPU seconds so far (every thread: the main one and HarmonyDB's writer). */
function bunCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function denoOwn(dir: string): Promise<Subject & { child: DenoChild }> {
  fs.mkdirSync(path.join(dir, "deno"));
  const child = await DenoChild.start(dir, path.join(dir, "deno", "kv.sqlite3"), {});
  await child.request({ op: "load" }, 300_000);
  return {
    id: "deno",
    name: "Deno KV, its own (SQLite)",
    child,
    run: (k, n, ms) => child.run(k, n, ms),
    cpu: () => ({ deno: child.cpuSeconds() }),
    close: () => child.close(),
  };
}

/** openKv(dir), as src/kv/kv.ts builds it (open + Kv owning the Db), with the Db at hand to settle its writer and read its WAL counters. */
async function harmonyOpenKv(dir: string, workloads: (kv: Kv, keys: number) => Workloads): Promise<Subject> {
  const db = await open(path.join(dir, "openkv"));
  const kv = new Kv(db, { ownsDb: true });
  const w = workloads(kv, KEYS);
  await w.load();
  await B.settleWriter(db);
  return {
    id: "openkv",
    name: "HarmonyDB openKv (in this process)",
    run: (k, n, ms) => w.run(k, n, ms),
    cpu: () => ({ bun: bunCpuSeconds() }),
    wal: () => db.stats().wal,
    close: () => kv.close(),
  };
}

/** HarmonyDB's KV Connect server in this process, Deno's own client in a child. */
async function kvConnect(dir: string): Promise<Subject & { child: DenoChild }> {
  const db: Db = await open(path.join(dir, "connect"));
  const kv = new Kv(db);
  const server = await listenKvConnect(new KvConnect({ store: () => db, kv: () => kv, token: null }), "127.0.0.1", 0);
  const shut = async () => {
    await server.close();
    await kv.close();
    await db.close();
  };
  try {
    const child = await DenoChild.start(dir, `http://127.0.0.1:${server.port}/kv`, { DENO_KV_ACCESS_TOKEN: "any" });
    await child.request({ op: "load" }, 300_000);
    await B.settleWriter(db);
    return {
      id: "connect",
      name: "KV Connect: Deno's client → HarmonyDB",
      child,
      run: (k, n, ms) => child.run(k, n, ms),
      cpu: () => ({ deno: child.cpuSeconds(), bun: bunCpuSeconds() }),
      wal: () => db.stats().wal,
      close: async () => {
        await child.close();
        await shut();
      },
    };
  } catch (err) {
    await shut();
    throw err;
  }
}

interface Row {
  runs: Map<string, number[]>;
  failed: Map<string, string>;
  notes: string[];
  /** Over the timed rounds: operations, and CPU seconds of Deno's process and of this one. */
  cpu: Map<string, { ops: number; deno: number; bun: number }>;
}

/** One workload: every subject warms up for ms/4, then `ROUNDS` rounds of `MS` each, the order rotating by round. */
async function measure(w: Workload, subjects: readonly Subject[]): Promise<Row> {
  const row: Row = {
    runs: new Map(subjects.map((s) => [s.id, []])),
    failed: new Map(),
    notes: [],
    cpu: new Map(subjects.map((s) => [s.id, { ops: 0, deno: 0, bun: 0 }])),
  };
  const before = new Map(subjects.map((s) => [s.id, s.wal?.()]));
  const attempt = async (s: Subject, ms: number, keep: boolean) => {
    if (row.failed.has(s.id)) return;
    try {
      const cpu0 = s.cpu();
      const rate = await s.run(w.kind, w.inflight, ms);
      const cpu1 = s.cpu();
      if (!keep) return;
      row.runs.get(s.id)!.push(rate.perSecond);
      const c = row.cpu.get(s.id)!;
      c.ops += rate.ops;
      c.deno += (cpu1.deno ?? 0) - (cpu0.deno ?? 0);
      c.bun += (cpu1.bun ?? 0) - (cpu0.bun ?? 0);
    } catch (err) {
      row.failed.set(s.id, err instanceof Error ? err.message.split("\n")[0]! : String(err));
    }
  };
  for (const s of subjects) await attempt(s, MS / 4, false);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < subjects.length; k++) await attempt(subjects[(round + k) % subjects.length]!, MS, true);
  }
  if (w.kind === "commit") {
    for (const s of subjects) {
      const a = before.get(s.id);
      const b = s.wal?.();
      if (a === undefined || b === undefined || b.fsyncs === a.fsyncs) continue;
      const fsyncs = b.fsyncs - a.fsyncs;
      const ms = (b.fsyncMsAvg * b.fsyncs - a.fsyncMsAvg * a.fsyncs) / fsyncs;
      row.notes.push(`${s.id === "openkv" ? "openKv" : "KV Connect"}: ${B.fmt((b.records - a.records) / fsyncs, 1)} commits per fdatasync of ${B.fmt(ms, 2)} ms`);
    }
  }
  return row;
}

function cell(runs: readonly number[] | undefined, failed: string | undefined): string {
  if (failed !== undefined) return `failed: ${failed}`;
  if (runs === undefined || runs.length === 0) return "–";
  const s = B.spread(runs);
  return `${B.fmt(s.median)} (${B.fmtShort(s.min)}–${B.fmtShort(s.max)})`;
}

/** subject ÷ baseline: the median of per-round ratios (the rounds are interleaved). */
function ratio(subject: readonly number[] | undefined, base: readonly number[] | undefined): string {
  if (subject === undefined || base === undefined || subject.length === 0 || subject.length !== base.length) return "–";
  return `${B.fmt(B.median(subject.map((x, i) => x / base[i]!)), 2)}×`;
}

if (!fs.existsSync(DENO)) {
  console.log("kv: skipped, node_modules/.bin/deno is missing (bun install: the npm `deno` package)");
  process.exit(0);
}
await B.withTmpDir(async (dir) => {
  fs.writeFileSync(path.join(dir, "workload.mjs"), WORKLOAD_JS);
  fs.writeFileSync(path.join(dir, "deno-kv.ts"), DENO_JS);
  const { workloads } = (await import(path.join(dir, "workload.mjs"))) as { workloads: (kv: Kv, keys: number) => Workloads };
  const subjects: Subject[] = [];
  const rows = new Map<string, Row>();
  let deno: (Subject & { child: DenoChild }) | undefined;
  try {
    // Each in its own directory under `dir`; the order is the baseline's first.
    deno = await denoOwn(dir);
    subjects.push(deno);
    subjects.push(await harmonyOpenKv(dir, workloads));
    subjects.push(await kvConnect(dir));
    for (const w of WORKLOADS) rows.set(w.id, await measure(w, subjects));
  } finally {
    for (const s of subjects) await s.close().catch((err) => console.error(`closing ${s.name}: ${err}`));
  }
  print(rows, deno!.child);
});
B.finish();

function print(rows: Map<string, Row>, deno: DenoChild): void {
  const sqlite = deno.info?.sqlite;
  console.log(`## Deno KV: its own engine, HarmonyDB's openKv, and KV Connect (Deno's client → HarmonyDB)\n`);
  console.log(
    `${B.fmt(KEYS)} keys ["bench", i] loaded first (atomic commits of 500 sets), values ${B.VALUE_BYTES}-char strings; ` +
      `commits write new keys; gets and list pages read among the loaded keys. Per workload: ${MS / 4} ms untimed per subject, ` +
      `then ${ROUNDS} interleaved rounds of ${MS} ms (order rotating); medians (min–max); ratios are medians of per-round ratios. ` +
      `Deno measures inside its own process (Deno ${deno.info?.deno ?? "?"}); KV Connect's server runs in this (Bun) process, ` +
      `sharing the ${os.cpus().length} cpus with the Deno client.\n`,
  );
  const ids = ["deno", "openkv", "connect"];
  B.table(
    ["workload", "Deno KV, own (SQLite)", "HarmonyDB openKv", "KV Connect → HarmonyDB", "openKv ÷ Deno KV", "KV Connect ÷ Deno KV", "note"],
    WORKLOADS.map((w) => {
      const r = rows.get(w.id)!;
      const [d, o, c] = ids.map((id) => r.runs.get(id));
      return [`${w.title}, ${w.unit}`, ...ids.map((id) => cell(r.runs.get(id), r.failed.get(id))), ratio(o, d), ratio(c, d), r.notes.join("; ")];
    }),
  );
  const us = (r: Row, id: string, side: "deno" | "bun") => {
    const c = r.cpu.get(id)!;
    return r.failed.has(id) || c.ops === 0 ? "–" : B.fmt((c[side] / c.ops) * 1e6, 1);
  };
  console.log("CPU per operation over the timed rounds, µs (user + system, every thread; /proc, 10 ms ticks):\n");
  B.table(
    ["workload", "Deno KV, own: Deno", "openKv: Bun", "KV Connect: Deno client", "KV Connect: HarmonyDB server (Bun)"],
    WORKLOADS.map((w) => {
      const r = rows.get(w.id)!;
      return [w.id, us(r, "deno", "deno"), us(r, "openkv", "bun"), us(r, "connect", "deno"), us(r, "connect", "bun")];
    }),
  );
  console.log(
    `Durability: every row resolves a commit only once it is on disk. Deno KV's own: SQLite ${sqlite?.version ?? "?"}, ` +
      `journal_mode=${sqlite?.journal ?? "?"} (the KV file), synchronous left at the build's default (${sqlite?.options.join(", ") || "?"}; 2 = FULL: ` +
      `the WAL is fsynced at every commit); one writer thread, one transaction per commit (no batching: denokv's batch_timeout is None in Deno's ext/kv). ` +
      `HarmonyDB: sync "always", commits grouped per fdatasync.\n`,
  );
}
