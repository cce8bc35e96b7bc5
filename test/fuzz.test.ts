// Seeded fuzzing of the WAL decoder and recovery: real databases are written once, then copies of
// their wal/ directories are damaged (bit flips, overwrites, zero runs, truncation, length fields,
// garbage, removed / duplicated / renamed / foreign / swapped segments, frames re-sealed with a
// valid CRC) and recovered. Every outcome must be either a typed HarmonyError, or an open database
// whose contents are exactly the original history replayed up to the recovered revision; and
// test/helpers/fuzz.ts predicts from the bytes alone (per docs/wal-format.md) which one it must be.
//
//   HARMONYDB_FUZZ_SEED=<n>   replay a run (the seed is printed first)
//   HARMONYDB_FUZZ_CASES=<n>  total cases over all the tests (default 1400)
//   HARMONYDB_FUZZ_CASE=<i>   only case i of each test (with the seed of a failing run)
//   HARMONYDB_FUZZ_SNAPSHOT_CASES=<n>  total snapshot-file cases (default 300)
//
// Most cases call recover() directly with the real index as `apply` (fast); every 10th goes through
// open(), writes one record to the repaired log, closes, and replays again.
//
// Snapshot files (docs/snapshot-format.md) get the same treatment at the end: one store with a
// snapshot (the segments it covers deleted) is damaged only in its snapshot file, and
// checkSnapFile/predictSnap in test/helpers/fuzz.ts read the damaged file by the spec to say whether
// open() must refuse (CorruptionError naming the file) or open with exactly the state it describes.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { CorruptionError, HarmonyError, open } from "../src/index.ts";
import { openForTest } from "../src/testing.ts";
import { Replay } from "../src/store/replay.ts";
import { recover, type TornTail } from "../src/wal/recovery.ts";
import {
  FUZZ_OPTS,
  appendGarbage,
  bitFlip,
  buildSeed,
  caseSeed,
  cloneFiles,
  diffState,
  duplicateSegment,
  foreignSegment,
  frameLikeGarbage,
  lengthField,
  middleFrameFlip,
  overwrite,
  predict,
  removeSegment,
  renameSegment,
  reseal,
  rng,
  stateAt,
  swapSegments,
  truncate,
  zeroRun,
  SNAP_OPTS,
  buildSnapSeed,
  diffSnapState,
  predictSnap,
  snapBitFlip,
  snapCtx,
  snapEntries,
  snapExtend,
  snapForge,
  snapFrames,
  snapHeaderFooter,
  snapOverwrite,
  snapPadding,
  snapTruncate,
  snapZeroRun,
  type Ctx,
  type Expect,
  type Mutation,
  type SeedDb,
  type SnapCtx,
  type SnapExpect,
  type SnapMutation,
  type SnapSeed,
  type SnapState,
  type WalFiles,
} from "./helpers/fuzz.ts";
import { tmpDir } from "./helpers/index.ts";

const SEED = process.env.HARMONYDB_FUZZ_SEED ? Number(process.env.HARMONYDB_FUZZ_SEED) >>> 0 : crypto.getRandomValues(new Uint32Array(1))[0]!;
const CASES = Number(process.env.HARMONYDB_FUZZ_CASES ?? 1400);
const ONLY = process.env.HARMONYDB_FUZZ_CASE === undefined ? undefined : Number(process.env.HARMONYDB_FUZZ_CASE);
const OPEN_EVERY = 10;
const CASE_MS_MAX = 2000;
const RSS_MAX = 1.5 * 1024 ** 3;
const PROBE_KEY = "\u0001fuzz-probe"; // (U+0000 begins the reserved keyspace)
/** bun test's own bound on one test (a hang shows up here; each case is also timed). */
const TEST_MS = 60_000 + CASES * 20;

console.log("fuzz seed", SEED);

type Outcome =
  | { kind: "open"; rev: number; records: number; tornTail: TornTail | null; state: [string, unknown][]; readErrors: string[] }
  | { kind: "error"; err: unknown };

const summary = { cases: 0, viaOpen: 0, openedFull: 0, openedPrefix: 0, typedErrors: 0, failures: 0, ms: 0 };

/** recover() with the database's own index as `apply`, as open() does, minus the writer. */
function replay(walDir: string): Outcome {
  const builder = new Replay();
  let rec, index;
  try {
    rec = recover(walDir, (rev, seg, start, end) => builder.applyEncoded(rev, seg, start, end), { log: () => {} });
    index = builder.finish();
  } catch (err) {
    return { kind: "error", err };
  }
  index.verify(rec.lastRev);
  const state: [string, unknown][] = [];
  const readErrors: string[] = [];
  const view = index.view();
  for (const [k, ref] of view.tree.entries()) {
    try {
      state.push([k, view.value(ref)]);
    } catch (err) {
      readErrors.push(`reading ${JSON.stringify(k)} after recovery: ${describeErr(err)}`);
    }
  }
  return { kind: "open", rev: rec.lastRev, records: rec.records, tornTail: rec.tornTail, state, readErrors };
}

/** open() → read everything → one more write → close → replay: the repaired log must take writes. */
async function viaOpen(dir: string, problems: string[]): Promise<Outcome> {
  let db;
  try {
    db = await open(dir, FUZZ_OPTS);
  } catch (err) {
    return { kind: "error", err };
  }
  const rev = db.rev;
  const state: [string, unknown][] = [];
  const readErrors: string[] = [];
  try {
    for (const e of db.range()) state.push([e.key, e.value]);
  } catch (err) {
    readErrors.push(`db.range() after open, past ${JSON.stringify(state[state.length - 1]?.[0] ?? null)}: ${describeErr(err)}`);
  }
  const tornTail = db.stats().recovery.tornTail;
  const records = db.stats().recovery.records;
  try {
    const probe = await db.put(PROBE_KEY, rev);
    if (probe !== rev + 1) problems.push(`after open at rev ${rev}, a put got rev ${probe}`);
  } finally {
    await db.close();
  }
  const again = replay(path.join(dir, "wal"));
  if (again.kind === "error") problems.push(`replay after open + one put failed: ${describeErr(again.err)}`);
  else {
    if (again.rev !== rev + 1) problems.push(`replay after open + one put: rev ${again.rev}, expected ${rev + 1}`);
    if (again.tornTail) problems.push(`replay after open + one put found a torn tail: ${again.tornTail.reason}`);
    const want = new Map(state);
    want.set(PROBE_KEY, rev);
    if (readErrors.length === 0) problems.push(...diffState(again.state, want).map((d) => `replay after open + one put: ${d}`));
  }
  return { kind: "open", rev, records, tornTail, state, readErrors };
}

function describeErr(err: unknown): string {
  if (!(err instanceof Error)) return `non-Error thrown: ${String(err)}`;
  const where = err.stack?.split("\n").find((l) => l.includes("/src/")) ?? "";
  return `${err.constructor.name}: ${err.message}${where ? ` ${where.trim()}` : ""}`;
}

/** Checks an outcome against the contract and the prediction; returns what is wrong. */
function check(damaged: SeedDb, walDir: string, o: Outcome, want: Expect, opts: { exactState: boolean; at: boolean }): string[] {
  const problems: string[] = [];
  const seed = want.oracle ?? damaged;
  if (o.kind === "error") {
    if (!(o.err instanceof HarmonyError)) return [`untyped error: ${describeErr(o.err)}`];
    if (o.err instanceof CorruptionError) {
      const { file, offset, rev } = o.err;
      if (typeof file !== "string" || !file.startsWith(walDir)) problems.push(`CorruptionError names file ${file}`);
      if (!Number.isSafeInteger(offset) || offset < 0) problems.push(`CorruptionError offset ${offset}`);
      if (!Number.isSafeInteger(rev) || rev < 0) problems.push(`CorruptionError rev ${rev}`);
      if (opts.at && want.kind === "error" && want.at) {
        const a = want.at;
        if (file !== path.join(walDir, a.name) || offset !== a.offset || rev !== a.rev) {
          problems.push(`CorruptionError at ${path.basename(file)}@${offset} rev ${rev}, expected ${a.name}@${a.offset} rev ${a.rev}`);
        }
      }
    }
    if (want.kind === "open") problems.push(`refused to open (${describeErr(o.err)}), expected open at rev ${want.rev}: ${want.why}`);
    return problems;
  }
  if (!Number.isSafeInteger(o.rev) || o.rev < 0 || o.rev > seed.lastRev) return [`opened at rev ${o.rev}, original last rev ${seed.lastRev}`];
  if (o.records !== o.rev) problems.push(`replayed ${o.records} records up to rev ${o.rev}`);
  // Recovery must never accept a value that cannot be read back (it decodes every value at open).
  problems.push(...o.readErrors.slice(0, 3));
  if (opts.exactState) problems.push(...diffState(o.state, stateAt(seed, o.rev)).map((d) => `at rev ${o.rev}: ${d}`));
  if (want.kind === "error") {
    const lost = seed.lastRev - o.rev;
    problems.push(`opened at rev ${o.rev}${lost > 0 ? ` (silently dropping ${lost} revisions)` : ""}, expected a CorruptionError: ${want.why}`);
  }
  if (want.kind === "open" && o.rev !== want.rev) problems.push(`opened at rev ${o.rev}, expected rev ${want.rev}: ${want.why}`);
  return problems;
}

interface Plan {
  desc: string[];
  /** Overrides the predictor (resealed frames: a valid CRC over changed content is undetectable). */
  expect?: Expect;
  /** Compare contents with the oracle (false when changed bytes may still decode, i.e. resealed). */
  exactState?: boolean;
  /** Assert the CorruptionError's file/offset/rev (single bit flips, where they are exact). */
  at?: boolean;
  /** Count, not fail, values that recovery accepted but that throw when read (resealed frames). */
}

let seeds: SeedDb[] = [];

beforeAll(async () => {
  const r = rng(SEED);
  seeds = [await buildSeed("A", r, 3, true), await buildSeed("B", r, 2, false), await buildSeed("C", r, 4, false)];
  for (const s of seeds) console.log(`fuzz seed db ${s.label}: ${s.segs.length} segments, ${s.lastRev} revisions`);
}, 120_000);

afterAll(() => {
  const s = summary;
  console.log(
    `fuzz summary (seed ${SEED}): ${s.cases} cases in ${(s.ms / 1000).toFixed(1)} s (${s.viaOpen} via open()): ` +
      `${s.openedFull + s.openedPrefix} opened with a valid prefix (${s.openedFull} complete, ${s.openedPrefix} shorter), ` +
      `${s.typedErrors} typed errors, ${s.failures} failures`,
  );
});

/** Runs `n` cases of one family; returns every failure, each with what is needed to replay it. */
async function fuzz(family: number, n: number, plan: (c: Ctx) => Plan): Promise<string[]> {
  const failures: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (ONLY !== undefined && i !== ONLY) continue;
    const r = rng(caseSeed(SEED, family, i));
    const seed = seeds[r.int(seeds.length)]!;
    const c: Ctx = { r, seed, others: seeds.filter((s) => s !== seed), files: cloneFiles(seed.files) };
    const p = plan(c);
    const want = p.expect ?? predict(seed, c.files, c.others);
    const useOpen = i % OPEN_EVERY === 0;
    const { outcome, problems, ms } = await runCase(seed, c.files, useOpen, want, p);
    summary.cases++;
    if (useOpen) summary.viaOpen++;
    if (outcome.kind === "error" && outcome.err instanceof HarmonyError) summary.typedErrors++;
    const oracle = want.oracle ?? seed;
    if (outcome.kind === "open") summary[outcome.rev === oracle.lastRev ? "openedFull" : "openedPrefix"]++;
    if (ms > CASE_MS_MAX) problems.push(`took ${ms.toFixed(0)} ms`);
    if (process.memoryUsage().rss > RSS_MAX) problems.push(`rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
    if (problems.length) {
      summary.failures++;
      const got = outcome.kind === "open" ? `opened at rev ${outcome.rev}/${oracle.lastRev}` : describeErr(outcome.err);
      failures.push(
        `HARMONYDB_FUZZ_SEED=${SEED} HARMONYDB_FUZZ_CASE=${i} (${useOpen ? "open()" : "recover()"}, db ${seed.label}): ` +
          `${p.desc.join("; ")} => ${got} => ${problems.join("; ")}`,
      );
    }
  }
  summary.ms += performance.now() - t0;
  return failures;
}

async function runCase(seed: SeedDb, files: WalFiles, useOpen: boolean, want: Expect, p: Plan) {
  const dir = tmpDir("harmonydb-fuzz-");
  const walDir = path.join(dir, "wal");
  try {
    fs.mkdirSync(walDir);
    for (const [name, bytes] of files) fs.writeFileSync(path.join(walDir, name), bytes);
    const problems: string[] = [];
    const t0 = performance.now();
    let outcome: Outcome;
    try {
      outcome = useOpen ? await viaOpen(dir, problems) : replay(walDir);
    } catch (err) {
      // Reading back what recovery accepted, or the probe write, failed.
      outcome = { kind: "error", err };
      problems.push(`after recovery: ${describeErr(err)}`);
    }
    const ms = performance.now() - t0;
    problems.push(...check(seed, walDir, outcome, want, { exactState: p.exactState ?? true, at: p.at ?? false }));
    if (!useOpen && outcome.kind === "open") {
      // The repair must be done once and for all: a second recovery finds the same log, untouched.
      const again = replay(walDir);
      if (again.kind === "error") problems.push(`second recovery failed: ${describeErr(again.err)}`);
      else if (again.rev !== outcome.rev || again.tornTail) problems.push(`second recovery: rev ${again.rev}, torn tail ${again.tornTail?.reason}`);
    }
    return { outcome, problems, ms };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One to three mutations picked from `pool`. */
function some(pool: Mutation[], max = 3): (c: Ctx) => Plan {
  return (c) => ({ desc: Array.from({ length: c.r.range(1, max) }, () => c.r.pick(pool)(c)) });
}

const share = (w: number) => Math.max(1, Math.round((CASES * w) / 100));

function report(failures: string[]): void {
  if (failures.length) console.log(`${failures.length} fuzz failures:\n${failures.slice(0, 25).join("\n")}`);
  expect(failures.slice(0, 10)).toEqual([]);
}

describe("WAL fuzz: damaged logs recover to a valid prefix or refuse with a typed error", () => {
  test("bit flips (a flipped bit in a frame followed by intact frames always refuses)", async () => {
    const failures = await fuzz(1, share(20), (c) => {
      if (c.r.chance(0.5)) {
        const m = middleFrameFlip(c)!;
        // The brief of this test: data after the damage is acknowledged, so never drop it silently.
        return { desc: [m.desc], at: true, expect: { kind: "error", why: "a middle frame was damaged", at: { name: m.name, offset: m.frame.off, rev: m.frame.rev } } };
      }
      return { desc: [bitFlip(c)], at: true };
    });
    report(failures);
  }, TEST_MS);

  test("byte overwrites, runs of zeros, garbage shaped like frame headers", async () => {
    report(await fuzz(2, share(14), some([overwrite, zeroRun, frameLikeGarbage], 1)));
  }, TEST_MS);

  test("truncation, inside the header, frames, padding and the zeros after the log", async () => {
    report(await fuzz(3, share(12), some([truncate], 1)));
  }, TEST_MS);

  test("length fields: 0, 0xFFFFFFFF, just past the end of the file, off by one, random", async () => {
    report(await fuzz(4, share(12), some([lengthField], 1)));
  }, TEST_MS);

  test("segment files: removed, duplicated, renamed, swapped, from another database, garbage appended", async () => {
    report(await fuzz(5, share(14), some([removeSegment, duplicateSegment, renameSegment, swapSegments, foreignSegment, appendGarbage], 1)));
  }, TEST_MS);

  test("frames re-sealed with a valid CRC over changed bytes: typed errors, never crashes", async () => {
    const failures = await fuzz(6, share(8), (c) => {
      const m = reseal(c)!;
      // A valid CRC over changed content cannot be told from what was written: whatever opens is
      // not compared with the oracle, but it must still be a typed error or an open database.
      return { desc: [m.desc], exactState: false, expect: { kind: "any", why: "valid CRC over changed bytes" } };
    });
    report(failures);
  }, TEST_MS);

  test("mixed: one to three mutations of any kind", async () => {
    const all = [bitFlip, overwrite, zeroRun, frameLikeGarbage, truncate, lengthField, appendGarbage, removeSegment, duplicateSegment, renameSegment, swapSegments, foreignSegment];
    report(await fuzz(7, share(20), some(all, 3)));
  }, TEST_MS);
});

// ---- snapshot files ----

const SNAP_CASES = Number(process.env.HARMONYDB_FUZZ_SNAPSHOT_CASES ?? 300);
const SNAP_TEST_MS = 60_000 + SNAP_CASES * 40;

type SnapOutcome = { kind: "open"; rev: number; state: SnapState; readErrors: string[] } | { kind: "error"; err: unknown };

const snapSummary = { cases: 0, viaOpen: 0, openedOriginal: 0, openedOther: 0, typedErrors: 0, failures: 0, ms: 0 };

/** What open() does before it starts the writer: a Replay, its snapshot loader, recover(), the KeyIndex. */
function replaySnap(dir: string): SnapOutcome {
  const builder = new Replay();
  let rec, index;
  try {
    rec = recover(path.join(dir, "wal"), (rev, seg, start, end) => builder.applyEncoded(rev, seg, start, end), {
      snapshots: builder.snapshotLoader(path.join(dir, "snap")),
      log: () => {},
      logFirst: true,
    });
    index = builder.finish();
  } catch (err) {
    return { kind: "error", err };
  }
  const readErrors: string[] = [];
  try {
    index.verify(rec.lastRev);
  } catch (err) {
    readErrors.push(`index.verify(${rec.lastRev}) after recovery: ${describeErr(err)}`);
  }
  const state: SnapState = new Map();
  for (const [key] of index.view().tree.entries()) {
    try {
      state.set(key, { ...index.getEntry(key)! });
    } catch (err) {
      readErrors.push(`reading ${JSON.stringify(key)} after recovery: ${describeErr(err)}`);
    }
  }
  return { kind: "open", rev: rec.lastRev, state, readErrors };
}

/** open() → read every key → one more write → close → replay: the state must be that plus the write. */
async function viaOpenSnap(dir: string, problems: string[]): Promise<SnapOutcome> {
  let db;
  try {
    db = await openForTest(dir, SNAP_OPTS);
  } catch (err) {
    return { kind: "error", err };
  }
  const rev = db.rev;
  const state: SnapState = new Map();
  const readErrors: string[] = [];
  try {
    try {
      for (const e of db.range()) state.set(e.key, { ...db.getEntry(e.key)! });
    } catch (err) {
      readErrors.push(`reading after open(): ${describeErr(err)}`);
    }
    const probe = await db.put(PROBE_KEY, rev);
    if (probe !== rev + 1) problems.push(`after open at rev ${rev}, a put got rev ${probe}`);
  } finally {
    await db.close();
  }
  const again = replaySnap(dir);
  if (again.kind === "error") problems.push(`replay after open + one put failed: ${describeErr(again.err)}`);
  else if (readErrors.length === 0) {
    const want: SnapState = new Map(state);
    want.set(PROBE_KEY, { value: rev, rev: rev + 1, createRev: rev + 1, version: 1 });
    if (again.rev !== rev + 1) problems.push(`replay after open + one put: rev ${again.rev}, expected ${rev + 1}`);
    problems.push(...again.readErrors.slice(0, 3), ...diffSnapState(again.state, want).map((d) => `replay after open + one put: ${d}`));
  }
  return { kind: "open", rev, state, readErrors };
}

/** The files of wal/ and snap/ but temp files (recovery removes the writer's spare.tmp). */
function readDbFiles(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const sub of ["wal", "snap"]) {
    for (const name of fs.readdirSync(path.join(dir, sub))) {
      if (!name.endsWith(".tmp")) out.set(`${sub}/${name}`, new Uint8Array(fs.readFileSync(path.join(dir, sub, name))));
    }
  }
  return out;
}

/** What changed from the files runSnapCase wrote (temp files aside) to those found after recovery. */
function sameFiles(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>): string[] {
  const out: string[] = [];
  for (const [n, x] of a) if (n.endsWith(".tmp")) continue;
  else if (!b.has(n)) out.push(`${n} was removed`);
  else if (!Buffer.from(x).equals(b.get(n)!)) out.push(`${n} was changed`);
  for (const n of b.keys()) if (!a.has(n)) out.push(`${n} was created`);
  return out;
}

function checkSnap(seed: SnapSeed, dir: string, o: SnapOutcome, want: SnapExpect): string[] {
  const problems: string[] = [];
  if (o.kind === "error") {
    if (!(o.err instanceof CorruptionError)) return [`not a CorruptionError: ${describeErr(o.err)}`];
    if (want.kind === "error" && want.names && !o.err.message.includes(path.join(dir, want.names))) {
      problems.push(`the CorruptionError does not name ${want.names}: ${o.err.message}`);
    }
    if (want.kind === "open" && want.strict) problems.push(`refused to open (${describeErr(o.err)}), expected open: ${want.why}`);
    return problems;
  }
  if (o.rev !== seed.lastRev) problems.push(`opened at rev ${o.rev}, the log ends at rev ${seed.lastRev}`);
  problems.push(...o.readErrors.slice(0, 3));
  if (want.kind === "error") problems.push(`opened with ${o.state.size} keys, expected a CorruptionError: ${want.why}`);
  else problems.push(...diffSnapState(o.state, want.state).map((d) => `opened with a different state (${want.why}): ${d}`));
  return problems;
}

async function runSnapCase(seed: SnapSeed, c: SnapCtx, useOpen: boolean, want: SnapExpect) {
  const dir = tmpDir("harmonydb-fuzz-snap-");
  try {
    fs.mkdirSync(path.join(dir, "wal"));
    fs.mkdirSync(path.join(dir, "snap"));
    for (const [name, bytes] of c.files) fs.writeFileSync(path.join(dir, name), bytes);
    const problems: string[] = [];
    const t0 = performance.now();
    let outcome: SnapOutcome;
    try {
      outcome = useOpen ? await viaOpenSnap(dir, problems) : replaySnap(dir);
    } catch (err) {
      outcome = { kind: "error", err };
      problems.push(`after recovery: ${describeErr(err)}`);
    }
    const ms = performance.now() - t0;
    problems.push(...checkSnap(seed, dir, outcome, want));
    // Refusing, or recovering without a writer, must not touch a byte (the snapshot is evidence).
    if (outcome.kind === "error" || !useOpen) problems.push(...sameFiles(c.files, readDbFiles(dir)).map((d) => `after recovery, ${d}`));
    return { outcome, problems, ms };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("snapshot fuzz: a damaged snapshot file opens with exactly what it says, or refuses with a CorruptionError", () => {
  let seed: SnapSeed;

  beforeAll(async () => {
    seed = await buildSnapSeed(rng(caseSeed(SEED, 100, 0)));
    const snap = seed.files.get(`snap/${seed.snapName}`)!;
    console.log(
      `fuzz snapshot db: ${seed.state.size} keys at rev ${seed.lastRev}, snapshot at rev ${seed.snapRev} ` +
        `(${seed.layout.length - 2} chunks, ${snap.length} bytes), WAL from segment ${seed.segs[0]!.seq} (rev ${seed.segs[0]!.firstRev})`,
    );
  }, 120_000);

  afterAll(() => {
    const s = snapSummary;
    console.log(
      `fuzz snapshot summary (seed ${SEED}): ${s.cases} cases in ${(s.ms / 1000).toFixed(1)} s (${s.viaOpen} via open()): ` +
        `${s.openedOriginal + s.openedOther} opened (${s.openedOriginal} with the original state, ${s.openedOther} with the state a consistent forgery describes), ` +
        `${s.typedErrors} CorruptionErrors, ${s.failures} failures`,
    );
  });

  async function fuzzSnap(family: number, share: number, plan: (c: SnapCtx) => string[]): Promise<string[]> {
    const n = Math.max(1, Math.round((SNAP_CASES * share) / 100));
    const failures: string[] = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      if (ONLY !== undefined && i !== ONLY) continue;
      const c = snapCtx(rng(caseSeed(SEED, family, i)), seed);
      const desc = plan(c);
      const want = predictSnap(seed, c.files);
      const useOpen = i % OPEN_EVERY === 0;
      const { outcome, problems, ms } = await runSnapCase(seed, c, useOpen, want);
      snapSummary.cases++;
      if (useOpen) snapSummary.viaOpen++;
      if (outcome.kind === "error" && outcome.err instanceof CorruptionError) snapSummary.typedErrors++;
      if (outcome.kind === "open") snapSummary[diffSnapState(outcome.state, seed.state).length === 0 ? "openedOriginal" : "openedOther"]++;
      if (ms > CASE_MS_MAX) problems.push(`took ${ms.toFixed(0)} ms`);
      if (process.memoryUsage().rss > RSS_MAX) problems.push(`rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
      if (problems.length) {
        snapSummary.failures++;
        const got = outcome.kind === "open" ? `opened at rev ${outcome.rev} with ${outcome.state.size} keys` : describeErr(outcome.err);
        failures.push(
          `HARMONYDB_FUZZ_SEED=${SEED} HARMONYDB_FUZZ_CASE=${i} (${useOpen ? "open()" : "recover()"}, snapshot family ${family}): ` +
            `${desc.join("; ")} => ${got} => ${problems.join("; ")}`,
        );
      }
    }
    snapSummary.ms += performance.now() - t0;
    return failures;
  }

  const someOf = (pool: SnapMutation[], max = 1) => (c: SnapCtx) => Array.from({ length: c.r.range(1, max) }, () => c.r.pick(pool)(c));

  test("bit flips, byte overwrites, zero runs; padding bytes (unchecked, so they must change nothing)", async () => {
    report(await fuzzSnap(101, 20, someOf([snapBitFlip, snapBitFlip, snapOverwrite, snapZeroRun, snapPadding])));
  }, SNAP_TEST_MS);

  test("truncated anywhere (also inside the footer's padding), extended with zeros, garbage or whole frames", async () => {
    report(await fuzzSnap(102, 12, someOf([snapTruncate, snapExtend])));
  }, SNAP_TEST_MS);

  test("whole checksum-valid frames duplicated, reordered, moved, removed; counts re-sealed to agree", async () => {
    report(await fuzzSnap(103, 16, someOf([snapFrames])));
  }, SNAP_TEST_MS);

  test("chunk entries re-sealed: counts, key order, revisions, malformed and non-canonical CBOR, values, keys", async () => {
    report(await fuzzSnap(104, 24, someOf([snapEntries])));
  }, SNAP_TEST_MS);

  test("header and footer payloads, frame types, revisions and lengths re-sealed", async () => {
    report(await fuzzSnap(105, 12, someOf([snapHeaderFooter])));
  }, SNAP_TEST_MS);

  test("consistent forgeries and renames: open with exactly what the file describes, or refuse", async () => {
    report(await fuzzSnap(106, 6, someOf([snapForge])));
  }, SNAP_TEST_MS);

  test("mixed: one to three mutations of any kind", async () => {
    const all = [snapBitFlip, snapOverwrite, snapZeroRun, snapPadding, snapTruncate, snapExtend, snapFrames, snapEntries, snapHeaderFooter, snapForge];
    report(await fuzzSnap(107, 10, someOf(all, 3)));
  }, SNAP_TEST_MS);
});
