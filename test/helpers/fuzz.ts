// Fuzz fixtures for test/fuzz.test.ts: a seeded PRNG, seed databases with an oracle of every write,
// mutations of a WAL directory held in memory, and a predictor of what recovery must make of it;
// and the same for snapshot files (a store with a snapshot, mutations of the file, an oracle).

import * as fs from "node:fs";
import * as path from "node:path";
import { open, type Db, type OpenOptions } from "../../src/index.ts";
import { openForTest, type TestOptions } from "../../src/testing.ts";
import { payloadDecoder, payloadEncoder, valueDecoder, valueEncoder } from "../../src/codec/cbor.ts";
import { crc32 } from "../../src/codec/crc.ts";
import { decodeHeader, payloadOf, readFrame } from "../../src/format/decoder.ts";
import { writeHead } from "../../src/codec/cbor-head.ts";
import { sealFrame } from "../../src/format/encoder.ts";
import {
  FRAME_HEADER_BYTES,
  FRAME_LEN_OFFSET,
  MAGIC_BYTES,
  SEGMENT_NAME_RE,
  SNAP_MAGIC,
  SNAP_NAME_RE,
  TYPE_ENTRY,
  TYPE_SNAP_CHUNK,
  TYPE_SNAP_FOOTER,
  TYPE_SNAP_HEADER,
  frameBytes,
  segmentName,
  snapshotName,
} from "../../src/format/constants.ts";
import { frameOffsets, segments, tmpDir } from "./index.ts";

export const FUZZ_OPTS: OpenOptions = { segmentBytes: 64 * 1024, log: () => {} };

// ---- PRNG ----

export interface Rng {
  /** A uint32. */
  u32(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
  bytes(n: number): Uint8Array;
}

/** sfc32, seeded through splitmix32 so that nearby seeds give unrelated streams. */
export function rng(seed: number): Rng {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  const u32 = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) u32();
  const int = (n: number) => Math.floor((u32() / 0x1_0000_0000) * n);
  return {
    u32,
    int,
    range: (lo, hi) => lo + int(hi - lo + 1),
    chance: (p) => u32() / 0x1_0000_0000 < p,
    pick: (xs) => xs[int(xs.length)]!,
    bytes: (n) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = u32() & 0xff;
      return out;
    },
  };
}

/** A per-case seed: the run's seed, the family and the case number, mixed. */
export function caseSeed(seed: number, family: number, i: number): number {
  let h = Math.imul(seed ^ 0x5bd1e995, 0x01000193) ^ Math.imul(family + 1, 0x27d4eb2f) ^ Math.imul(i + 1, 0x165667b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}

// ---- seed databases ----

export type HistOp = { key: string; value: unknown } | { key: string; delete: true };

export interface FrameInfo {
  off: number;
  len: number;
  rev: number;
  type: number;
  /** End of the checksummed bytes (off + 16 + len); padding runs from here to `next`. */
  covEnd: number;
  next: number;
}

export interface SegInfo {
  name: string;
  seq: number;
  firstRev: number;
  /** The header frame first, then every entry. */
  frames: FrameInfo[];
  /** Where the log ends in this segment (the end mark). */
  end: number;
  lastRev: number;
}

export interface SeedDb {
  label: string;
  /** Every file of wal/, by name (segments and the spare). */
  files: Map<string, Uint8Array>;
  segs: SegInfo[];
  /** history[rev - 1] = the ops of the entry with that revision. */
  history: HistOp[][];
  lastRev: number;
}

const ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:/";
const WIDE = ["é", "ß", "ж", "键", "値", "🙂", "𝄞", "ñ", "ø", "ﬀ"];

function text(r: Rng, n: number, wide: boolean): string {
  let s = "";
  for (let i = 0; i < n; i++) s += wide && r.chance(0.3) ? r.pick(WIDE) : ASCII[r.int(ASCII.length)];
  return s;
}

function keyPool(r: Rng): string[] {
  const keys: string[] = [];
  for (let i = 0; i < 60; i++) keys.push(`k${String(i).padStart(4, "0")}`);
  for (let i = 0; i < 15; i++) keys.push(`ключ-${i}`, `键/${i}`, `🙂${i}`, `café:${i}`);
  for (let i = 0; i < 4; i++) keys.push(`long-${i}-` + text(r, r.range(200, 1500), true));
  keys.push(" ", "a", "\u00ff", "\u0100");
  return keys;
}

function value(r: Rng, big: boolean): unknown {
  switch (r.int(9)) {
    case 0:
      return text(r, r.int(big ? 3000 : 60), false);
    case 1:
      return text(r, r.int(big ? 1500 : 40), true);
    case 2:
      return r.bytes(r.int(big ? 6000 : 50));
    case 3:
      return {
        i: r.int(1e6),
        s: text(r, r.int(big ? 800 : 20), true),
        tags: Array.from({ length: r.int(5) }, () => text(r, r.range(1, 8), false)),
        nested: { ok: r.chance(0.5), none: null, f: r.int(1e6) / 8, neg: -r.int(1e9) },
        raw: r.bytes(r.int(big ? 400 : 10)),
      };
    case 4:
      return r.pick([0, 1, -1, 23, 24, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32 + 5, 2 ** 40, -(2 ** 33), Number.MAX_SAFE_INTEGER]);
    case 5:
      return r.int(1e9) / 1024 - 1e5;
    case 6:
      return r.pick([true, false, null]);
    case 7:
      return [r.int(100), text(r, r.int(10), true), [r.chance(0.5), null], { x: r.int(10) }];
    default:
      return new Uint8Array(0);
  }
}

/**
 * Writes to a fresh database until it spans `targetSegs` segments (groups of concurrent puts,
 * deletes and batches; each write's resolved revision says where it goes in the history), closes it
 * and keeps the bytes of its wal/ directory.
 */
export async function buildSeed(label: string, r: Rng, targetSegs: number, bigValue: boolean): Promise<SeedDb> {
  // Made in beforeAll, where tmpDir's afterEach cleanup may never run: removed here, whatever happens.
  const dir = tmpDir("harmonydb-fuzz-seed-");
  try {
    const db = await open(dir, FUZZ_OPTS);
    let written;
    try {
      written = await writeHistory(db, dir, r, targetSegs, bigValue);
    } finally {
      await db.close();
    }
    const { history, lastRev, live } = written;
    const want = stateAt({ history } as SeedDb, lastRev);
    if (live.length !== want.size || live.some(([k, v]) => !Bun.deepEquals(v, want.get(k), true))) {
      throw new Error("fuzz oracle: the oracle disagrees with the database it was built from");
    }
    return { label, ...readWal(dir, lastRev), history, lastRev };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One random write, recorded into the history once it resolves: a put (6 in 10; a value bigger than
 * a chunk with `bigChance`), a batch of puts and deletes (2 in 10), or a delete (2 in 10).
 */
function randomWrite(
  db: Db,
  r: Rng,
  keys: string[],
  record: (rev: number, ops: HistOp[]) => void,
  o: { bigChance: number; batchOpsMax: number },
): Promise<unknown> {
  const kind = r.int(10);
  const key = r.pick(keys);
  if (kind < 6) {
    const v = value(r, r.chance(o.bigChance));
    return db.put(key, v).then((rev) => record(rev, [{ key, value: v }]));
  }
  if (kind < 8) {
    const ops: HistOp[] = Array.from({ length: r.range(1, o.batchOpsMax) }, () => {
      const k = r.pick(keys);
      return r.chance(0.25) ? { key: k, delete: true as const } : { key: k, value: value(r, false) };
    });
    const batch = ops.map((op) => ("delete" in op ? { type: "delete" as const, key: op.key } : { type: "put" as const, key: op.key, value: op.value }));
    return db.batch(batch).then((rev) => record(rev, ops));
  }
  return db.delete(key).then((res) => res.deleted && record(res.rev, [{ key, delete: true }]));
}

async function writeHistory(db: Db, dir: string, r: Rng, targetSegs: number, bigValue: boolean) {
  const keys = keyPool(r);
  const history: HistOp[][] = [];
  const record = (rev: number, ops: HistOp[]) => {
    if (history[rev - 1] !== undefined) throw new Error(`fuzz oracle: two writes at rev ${rev}`);
    history[rev - 1] = ops;
  };
  let wroteBig = !bigValue;
  while (segments(dir).length < targetSegs) {
    const group: Promise<unknown>[] = [];
    const n = r.range(1, 8);
    for (let i = 0; i < n; i++) {
      group.push(randomWrite(db, r, keys, record, { bigChance: 0.5, batchOpsMax: 12 }));
    }
    if (!wroteBig && segments(dir).length === targetSegs - 1) {
      // A frame larger than a whole segment goes into a fresh segment that grows past segmentBytes.
      const big = r.bytes(70 * 1024);
      group.push(db.put("big", big).then((rev) => record(rev, [{ key: "big", value: big }])));
      wroteBig = true;
    }
    await Promise.all(group);
  }
  // A few small writes after the last rotation, so the last segment has more than its header.
  for (let i = 0; i < 3; i++) {
    const key = r.pick(keys);
    const v = value(r, false);
    record(await db.put(key, v), [{ key, value: v }]);
  }
  const lastRev = db.rev;
  // (a for loop: some() would skip the holes this looks for)
  for (let i = 0; i < Math.max(lastRev, history.length); i++) {
    if (history[i] === undefined) throw new Error(`fuzz oracle: no write recorded at rev ${i + 1} of ${lastRev}`);
  }
  const live = [...db.range()].map((e) => [e.key, e.value] as const);
  return { history, lastRev, live };
}

/** The bytes of wal/ and the layout of each segment (frame offsets, lengths, revisions). */
function readWal(dir: string, lastRev: number): { files: WalFiles; segs: SegInfo[] } {
  const walDir = path.join(dir, "wal");
  const files: WalFiles = new Map();
  for (const name of fs.readdirSync(walDir)) files.set(name, new Uint8Array(fs.readFileSync(path.join(walDir, name))));
  const segs = segments(dir).map((file): SegInfo => {
    const name = path.basename(file);
    const bytes = files.get(name)!;
    const { offsets, end } = frameOffsets(file);
    const frames = offsets.map((off): FrameInfo => {
      const v = readFrame(bytes, off);
      if (v.kind !== "frame") throw new Error("fuzz: frameOffsets returned a non-frame");
      return { off, len: v.len, rev: v.rev, type: v.type, covEnd: v.start + v.len, next: v.next };
    });
    const m = SEGMENT_NAME_RE.exec(name)!;
    const firstRev = parseInt(m[2]!, 16);
    const lastFrame = frames[frames.length - 1]!;
    return { name, seq: parseInt(m[1]!, 16), firstRev, frames, end, lastRev: lastFrame.type === TYPE_ENTRY ? lastFrame.rev : firstRev - 1 };
  });
  if (segs[segs.length - 1]!.lastRev !== lastRev) throw new Error("fuzz: the last segment does not end at the last revision");
  return { files, segs };
}

/** The oracle: the database's contents after the writes up to and including `rev`. */
export function stateAt(seed: SeedDb, rev: number): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i < rev; i++) {
    for (const op of seed.history[i]!) {
      if ("delete" in op) m.delete(op.key);
      else m.set(op.key, op.value);
    }
  }
  return m;
}

/** Differences between a recovered state and the oracle (empty when equal), at most a few. */
/**
 * Whether two decoded values are the same: deeply equal, or encoding to the same bytes. (A forged
 * value can decode to an invalid Date, and Bun.deepEquals never finds two of those equal: seed
 * 2050168793, case 20, decoded bytes d0 c0 44 … as Tag(16, Invalid Date) on both sides.)
 */
function sameValue(a: unknown, b: unknown): boolean {
  if (Bun.deepEquals(a, b, true)) return true;
  try {
    return Buffer.from(valueEncoder.encode(a)).equals(Buffer.from(valueEncoder.encode(b)));
  } catch {
    return false;
  }
}

export function diffState(got: Iterable<readonly [string, unknown]>, want: Map<string, unknown>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const [k, v] of got) {
    seen.add(k);
    if (!want.has(k)) out.push(`unexpected key ${JSON.stringify(k)}`);
    else if (!sameValue(v, want.get(k))) out.push(`key ${JSON.stringify(k)} has a different value`);
  }
  for (const k of want.keys()) if (!seen.has(k)) out.push(`missing key ${JSON.stringify(k)}`);
  return out.slice(0, 5);
}

// ---- mutations ----

/** A WAL directory in memory: file name → bytes. Mutations edit it; runCase writes it out. */
export type WalFiles = Map<string, Uint8Array>;

export function cloneFiles(f: WalFiles): WalFiles {
  return new Map([...f].map(([n, b]) => [n, b.slice()]));
}

export interface Ctx {
  r: Rng;
  seed: SeedDb;
  /** The other seed databases, for foreign segments. */
  others: SeedDb[];
  files: WalFiles;
}

/** A mutation edits ctx.files and returns what it did, for the failure report. */
export type Mutation = (c: Ctx) => string;

function segNames(files: WalFiles): string[] {
  return [...files.keys()].filter((n) => SEGMENT_NAME_RE.test(n)).sort();
}

/** A random segment of the directory and, if it is one of the seed's own, its layout. */
function pickSegment(c: Ctx): { name: string; bytes: Uint8Array; info: SegInfo | undefined } | null {
  const names = segNames(c.files);
  if (names.length === 0) return null;
  // The last segment is where torn tails live: pick it more often than its share.
  const name = c.r.chance(0.35) ? names[names.length - 1]! : c.r.pick(names);
  return { name, bytes: c.files.get(name)!, info: c.seed.segs.find((s) => s.name === name) };
}

/** An offset inside the log part of the segment (frames), or anywhere in the file. */
function pickOffset(c: Ctx, s: { bytes: Uint8Array; info: SegInfo | undefined }): number {
  const len = Math.max(1, s.bytes.length);
  if (!s.info || c.r.chance(0.25)) return c.r.int(len);
  if (c.r.chance(0.1)) return c.r.int(Math.min(len, s.info.frames[0]!.next)); // magic or header
  const f = c.r.pick(s.info.frames);
  if (c.r.chance(0.4)) return Math.min(len - 1, f.off + c.r.int(FRAME_HEADER_BYTES)); // a frame's header fields
  return Math.min(len - 1, f.off + c.r.int(f.next - f.off));
}

export const bitFlip: Mutation = (c) => {
  const s = pickSegment(c);
  if (!s || s.bytes.length === 0) return "bitflip: nothing to flip";
  const off = pickOffset(c, s);
  const bit = c.r.int(8);
  s.bytes[off]! ^= 1 << bit;
  return `bitflip ${s.name} @${off} bit ${bit}`;
};

/** Flips one checksummed bit of an entry frame that has intact frames after it in the log. */
export function middleFrameFlip(c: Ctx): { desc: string; name: string; frame: FrameInfo } | null {
  const candidates: { seg: SegInfo; frame: FrameInfo }[] = [];
  c.seed.segs.forEach((seg, i) => {
    const last = i === c.seed.segs.length - 1;
    seg.frames.forEach((frame, k) => {
      if (frame.type === TYPE_ENTRY && (!last || k < seg.frames.length - 1)) candidates.push({ seg, frame });
    });
  });
  if (candidates.length === 0) return null;
  const { seg, frame } = c.r.pick(candidates);
  const off = frame.off + c.r.int(frame.covEnd - frame.off);
  const bit = c.r.int(8);
  c.files.get(seg.name)![off]! ^= 1 << bit;
  return { desc: `middle-frame bitflip ${seg.name} @${off} bit ${bit} (frame @${frame.off} rev ${frame.rev})`, name: seg.name, frame };
}

export const overwrite: Mutation = (c) => {
  const s = pickSegment(c);
  if (!s || s.bytes.length === 0) return "overwrite: nothing to overwrite";
  const off = pickOffset(c, s);
  const n = Math.min(s.bytes.length - off, c.r.pick([1, 2, 4, 8, 16, c.r.range(1, 64)]));
  s.bytes.set(c.r.bytes(n), off);
  return `overwrite ${s.name} @${off} +${n} random bytes`;
};

export const zeroRun: Mutation = (c) => {
  const s = pickSegment(c);
  if (!s || s.bytes.length === 0) return "zeros: nothing to zero";
  let off = pickOffset(c, s);
  let n = c.r.pick([4, 8, 16, 64, c.r.range(1, 512), c.r.range(1, 8192)]);
  if (s.info && c.r.chance(0.4)) {
    // Whole frames from one frame on: looks like a log that was never written there.
    const k = c.r.int(s.info.frames.length);
    off = s.info.frames[k]!.off;
    n = (c.r.chance(0.5) ? s.info.end : s.info.frames[c.r.range(k, s.info.frames.length - 1)]!.next) - off;
  }
  n = Math.min(n, s.bytes.length - off);
  s.bytes.fill(0, off, off + n);
  return `zeros ${s.name} @${off} +${n}`;
};

export const truncate: Mutation = (c) => {
  const s = pickSegment(c);
  if (!s) return "truncate: no segment";
  let at: number;
  const f = s.info ? c.r.pick(s.info.frames) : undefined;
  switch (s.info && f ? c.r.int(6) : 5) {
    case 0:
      at = c.r.int(Math.min(s.bytes.length, s.info!.frames[0]!.covEnd)); // inside magic or header
      break;
    case 1:
      at = f!.off; // at a frame boundary
      break;
    case 2:
      at = f!.off + c.r.int(f!.next - f!.off); // inside a frame
      break;
    case 3:
      at = f!.covEnd + c.r.int(f!.next - f!.covEnd + 1); // inside a frame's padding
      break;
    case 4:
      at = s.info!.end + c.r.int(Math.max(1, s.bytes.length - s.info!.end)); // in the zeros after the log
      break;
    default:
      at = c.r.int(s.bytes.length + 1);
  }
  at = Math.min(at, s.bytes.length);
  c.files.set(s.name, s.bytes.slice(0, at));
  return `truncate ${s.name} to ${at}`;
};

export const lengthField: Mutation = (c) => {
  const s = pickSegment(c);
  if (!s || !s.info) return "length: no seed segment";
  const f = c.r.pick(s.info.frames);
  if (s.bytes.length < f.off + 8) return "length: frame cut off";
  const left = s.bytes.length - f.off - FRAME_HEADER_BYTES;
  const candidates = [0, 1, 0xffffffff, 0x80000000, 0x7fffffff, left + 1, left + 8, left, left - 1, f.len + 1, f.len - 1, f.len + 8, f.len * 2, c.r.u32()];
  let len = c.r.pick(candidates.filter((x) => x >= 0 && x <= 0xffffffff && x !== f.len));
  const view = new DataView(s.bytes.buffer, s.bytes.byteOffset, s.bytes.byteLength);
  view.setUint32(f.off + FRAME_LEN_OFFSET, len, true);
  return `length ${s.name} frame @${f.off} (rev ${f.rev}) len ${f.len} -> ${len >>> 0}`;
};

/**
 * Garbage shaped like frame headers (type 1 or 2, plausible lengths and revisions, a wrong CRC)
 * at 8-aligned offsets: what findValidFrameAfter has to look through after a bad frame.
 */
export const frameLikeGarbage: Mutation = (c) => {
  const s = pickSegment(c);
  if (!s || s.bytes.length < 24) return "frame-like garbage: segment too short";
  let off = pickOffset(c, s) & ~7;
  const n = c.r.range(1, 64);
  const view = new DataView(s.bytes.buffer, s.bytes.byteOffset, s.bytes.byteLength);
  const start = off;
  for (let i = 0; i < n && off + FRAME_HEADER_BYTES <= s.bytes.length; i++, off += c.r.pick([8, 16, 16, 24])) {
    const left = s.bytes.length - off - FRAME_HEADER_BYTES;
    const rev = c.r.pick([c.seed.lastRev + 1, c.seed.lastRev + 2, c.r.range(1, c.seed.lastRev), c.r.u32()]);
    view.setUint32(off, c.r.u32() | 1, true);
    view.setUint32(off + FRAME_LEN_OFFSET, c.r.pick([1, 8, c.r.range(1, 256), Math.max(1, left), c.r.range(1, Math.max(1, left))]), true);
    view.setUint32(off + 8, rev, true);
    view.setUint16(off + 12, 0, true);
    s.bytes[off + 14] = 0;
    s.bytes[off + 15] = c.r.pick([1, 2]);
  }
  return `frame-like garbage ${s.name} @${start}..${off}`;
};

export const appendGarbage: Mutation = (c) => {
  const s = pickSegment(c);
  if (!s) return "append: no segment";
  const extra = c.r.chance(0.3) ? new Uint8Array(c.r.range(1, 64)).fill(c.r.range(1, 255)) : c.r.bytes(c.r.range(1, 5000));
  const out = new Uint8Array(s.bytes.length + extra.length);
  out.set(s.bytes);
  out.set(extra, s.bytes.length);
  c.files.set(s.name, out);
  return `append ${s.name} +${extra.length} garbage bytes`;
};

export const removeSegment: Mutation = (c) => {
  const names = segNames(c.files);
  if (names.length === 0) return "remove: no segment";
  const name = c.r.chance(0.4) ? names[names.length - 1]! : c.r.pick(names);
  c.files.delete(name);
  return `remove ${name}`;
};

function nameParts(name: string): { seq: number; firstRev: number } {
  const m = SEGMENT_NAME_RE.exec(name)!;
  return { seq: parseInt(m[1]!, 16), firstRev: parseInt(m[2]!, 16) };
}

export const duplicateSegment: Mutation = (c) => {
  const names = segNames(c.files);
  if (names.length === 0) return "duplicate: no segment";
  const name = c.r.pick(names);
  const { seq, firstRev } = nameParts(name);
  const last = nameParts(names[names.length - 1]!);
  const to = c.r.pick([
    segmentName(seq, firstRev + 1),
    segmentName(last.seq + 1, c.seed.lastRev + 1),
    segmentName(seq + 1, firstRev),
    segmentName(c.r.range(1, 9), c.r.range(1, c.seed.lastRev + 5)),
  ]);
  if (c.files.has(to)) return `duplicate ${name}: ${to} exists`;
  c.files.set(to, c.files.get(name)!.slice());
  return `duplicate ${name} as ${to}`;
};

export const renameSegment: Mutation = (c) => {
  const names = segNames(c.files);
  if (names.length === 0) return "rename: no segment";
  const name = c.r.pick(names);
  const { seq, firstRev } = nameParts(name);
  const to = c.r.pick([
    segmentName(seq + 1, firstRev),
    segmentName(seq, firstRev + 1),
    segmentName(seq + 10, firstRev + 100),
    name.toUpperCase().replace(".WAL", ".wal"),
    `${name}.broken`,
    `${name}.bak`,
    "junk",
  ]);
  if (to === name || c.files.has(to)) return `rename ${name}: ${to} exists`;
  c.files.set(to, c.files.get(name)!);
  c.files.delete(name);
  return `rename ${name} -> ${to}`;
};

export const foreignSegment: Mutation = (c) => {
  const other = c.r.pick(c.others);
  const seg = c.r.pick(other.segs);
  const bytes = other.files.get(seg.name)!.slice();
  const names = segNames(c.files);
  const mode = c.r.int(3);
  if (mode === 0 && names.length > 0) {
    const name = c.r.pick(names); // same name, other database's bytes
    c.files.set(name, bytes);
    return `foreign: ${name} replaced by ${other.label}/${seg.name}`;
  }
  const last = names.length ? nameParts(names[names.length - 1]!) : { seq: 0, firstRev: 0 };
  const name = mode === 1 ? seg.name : segmentName(last.seq + 1, c.seed.lastRev + 1);
  c.files.set(name, bytes);
  return `foreign: ${other.label}/${seg.name} added as ${name}`;
};

export const swapSegments: Mutation = (c) => {
  const names = segNames(c.files);
  if (names.length < 2) return "swap: fewer than two segments";
  const a = c.r.int(names.length);
  const b = (a + 1 + c.r.int(names.length - 1)) % names.length;
  const x = c.files.get(names[a]!)!;
  c.files.set(names[a]!, c.files.get(names[b]!)!);
  c.files.set(names[b]!, x);
  return `swap contents of ${names[a]} and ${names[b]}`;
};

/**
 * Changes bytes of a frame and recomputes its checksum: garbage that passes the CRC gate, so the
 * payload decoders (visitOps, decodeHeader) and the type/revision checks see it.
 */
export function reseal(c: Ctx): { desc: string; frame: FrameInfo; seg: SegInfo; what: string } | null {
  const seg = c.r.pick(c.seed.segs);
  const bytes = c.files.get(seg.name)!;
  const frame = c.r.chance(0.15) ? seg.frames[0]! : c.r.pick(seg.frames);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let len = frame.len;
  let what: string;
  switch (c.r.int(6)) {
    case 0: {
      what = "type";
      bytes[frame.off + 15] = c.r.pick([0, 1, 2, 3, 0x80, 0xff].filter((t) => t !== frame.type));
      break;
    }
    case 1: {
      what = "rev";
      const rev = c.r.pick([0, frame.rev - 1, frame.rev + 1, frame.rev + 1000, 2 ** 53 - 1]);
      view.setUint32(frame.off + 8, rev % 0x1_0000_0000, true);
      view.setUint16(frame.off + 12, Math.floor(rev / 0x1_0000_0000) % 0x10000, true);
      bytes[frame.off + 14] = Math.floor(rev / 0x1_0000_0000_0000);
      break;
    }
    case 2: {
      what = "shorter length";
      len = c.r.range(1, frame.len);
      view.setUint32(frame.off + FRAME_LEN_OFFSET, len, true);
      break;
    }
    default: {
      what = "payload bytes";
      const n = c.r.range(1, 4);
      for (let i = 0; i < n; i++) {
        const at = frame.off + FRAME_HEADER_BYTES + c.r.int(len);
        bytes[at] = c.r.chance(0.5) ? c.r.u32() & 0xff : bytes[at]! ^ (1 << c.r.int(8));
      }
    }
  }
  view.setUint32(frame.off, crc32(bytes, frame.off + FRAME_LEN_OFFSET, frame.off + FRAME_HEADER_BYTES + len), true);
  return { desc: `reseal ${what} of ${seg.name} frame @${frame.off} (rev ${frame.rev}, type ${frame.type})`, frame, seg, what };
}

// ---- the predictor ----

/** What recovery must do with a directory: refuse, open at exactly `rev`, or either (with a valid prefix). */
export type Expect = (
  | { kind: "error"; why: string; at?: { name: string; offset: number; rev: number } }
  | { kind: "open"; rev: number; why: string }
  | { kind: "any"; why: string }
) & {
  /** Whose history an open database must be a prefix of, when not the damaged seed's own. */
  oracle?: SeedDb;
};

function differs(orig: Uint8Array, got: Uint8Array, from: number, to: number): boolean {
  if (got.length < to) return true;
  for (let i = from; i < to; i++) if (orig[i] !== got[i]) return true;
  return false;
}

function nonZero(b: Uint8Array, from: number): boolean {
  for (let i = from; i < b.length; i++) if (b[i] !== 0) return true;
  return false;
}

/**
 * The recovery table of docs/wal-format.md applied to a damaged copy of a seed, from the bytes alone
 * (no code under test): the first damaged thing in log order decides. Damage to a magic or header,
 * or anything in an earlier segment, or a damaged frame with an intact frame after it, is
 * corruption; damage only at the end of the last segment is a torn tail, and recovery opens at the
 * revision before it. Padding is not checksummed, so damage there is invisible.
 */
export function predict(seed: SeedDb, files: WalFiles, others: SeedDb[] = []): Expect {
  for (const name of files.keys()) {
    if (SEGMENT_NAME_RE.test(name) || name.endsWith(".tmp") || name.endsWith(".broken")) continue;
    return { kind: "error", why: `unexpected file ${name}` };
  }
  const names = segNames(files);
  const orig = seed.segs.map((s) => s.name);
  if (names.length > orig.length || names.some((n, i) => n !== orig[i])) {
    return { kind: "error", why: "segment files added, renamed, or missing in the middle" };
  }
  if (names.length === 0) return { kind: "open", rev: 0, why: "no segments left" };
  // The first segment replaced by another database's first segment: the log is that database's now.
  const first = files.get(names[0]!)!;
  const foreign = others.find((o) => !differs(o.files.get(o.segs[0]!.name)!, first, 0, o.segs[0]!.frames[0]!.covEnd));
  if (foreign && differs(seed.files.get(names[0]!)!, first, 0, seed.segs[0]!.frames[0]!.covEnd)) {
    return { ...predict(foreign, files), oracle: foreign };
  }
  for (let i = 0; i < names.length; i++) {
    const seg = seed.segs[i]!;
    const o = seed.files.get(seg.name)!;
    const f = files.get(seg.name)!;
    const last = i === names.length - 1;
    const at = (offset: number, rev: number) => ({ name: seg.name, offset, rev });
    if (differs(o, f, 0, MAGIC_BYTES)) return { kind: "error", why: `magic of ${seg.name}`, at: at(0, seg.firstRev) };
    if (differs(o, f, MAGIC_BYTES, seg.frames[0]!.covEnd)) return { kind: "error", why: `header of ${seg.name}`, at: at(MAGIC_BYTES, seg.firstRev) };
    const entries = seg.frames.slice(1);
    const k = entries.findIndex((fr) => differs(o, f, fr.off, fr.covEnd));
    if (k >= 0) {
      const fr = entries[k]!;
      if (!last) return { kind: "error", why: `frame rev ${fr.rev} of ${seg.name}, later segments follow`, at: at(fr.off, fr.rev) };
      const intactAfter = entries.slice(k + 1).find((g) => !differs(o, f, g.off, g.covEnd));
      if (intactAfter) return { kind: "error", why: `frame rev ${fr.rev}, intact rev ${intactAfter.rev} follows`, at: at(fr.off, fr.rev) };
      return { kind: "open", rev: fr.rev - 1, why: `torn tail from rev ${fr.rev}` };
    }
    if (nonZero(f, seg.end)) {
      if (!last) return { kind: "error", why: `non-zero bytes after the log of ${seg.name}`, at: at(seg.end, seg.lastRev + 1) };
      return { kind: "open", rev: seg.lastRev, why: "garbage after the end of the log" };
    }
  }
  return { kind: "open", rev: seed.segs[names.length - 1]!.lastRev, why: "no damage to checksummed bytes" };
}

// ---- snapshot files (docs/snapshot-format.md) ----
//
// One real store with a snapshot (the segments it covers deleted) and a little log after it; copies
// of its directory with the snapshot file damaged; and an oracle that reads a damaged snapshot by
// the spec alone (its own CBOR heads, checks and replay of the history) and says what open() must
// make of the directory: refuse, or open with exactly the state the file and the log describe.

export const SNAP_OPTS: TestOptions = { segmentBytes: 64 * 1024, snapshotEveryBytes: 0, snapshotChunkBytes: 512, snapshotWorkerBytes: 0, log: () => {} };

/** A key as recovery must leave it: value and all three revisions. */
export interface SnapEntry {
  value: unknown;
  rev: number;
  createRev: number;
  version: number;
}
export type SnapState = Map<string, SnapEntry>;

export interface SnapSeed {
  /** The files recovery reads, by path relative to the database directory ("wal/…", "snap/…"). */
  files: Map<string, Uint8Array>;
  /** The snapshot file's name in snap/, and its revision. */
  snapName: string;
  snapRev: number;
  /** Its layout: header frame, chunk frames, footer frame. */
  layout: FrameInfo[];
  /** The WAL left after the snapshot (never damaged), oldest first. */
  segs: { name: string; seq: number; firstRev: number }[];
  dbId: string;
  history: HistOp[][];
  lastRev: number;
  /** The store's state at lastRev, read from the store itself before it was closed. */
  state: SnapState;
}

/** Writes `n` random puts, deletes and batches over `keys` in concurrent groups; records each in `history`. */
async function writeMixed(db: Db, r: Rng, keys: string[], history: HistOp[][], n: number): Promise<void> {
  const record = (rev: number, ops: HistOp[]) => {
    if (history[rev - 1] !== undefined) throw new Error(`fuzz oracle: two writes at rev ${rev}`);
    history[rev - 1] = ops;
  };
  for (let done = 0; done < n; ) {
    const group: Promise<unknown>[] = [];
    const g = Math.min(n - done, r.range(1, 8));
    for (let i = 0; i < g; i++, done++) {
      group.push(randomWrite(db, r, keys, record, { bigChance: 0.3, batchOpsMax: 6 }));
    }
    await Promise.all(group);
  }
}

/**
 * A store of a few hundred keys (strings, objects, byte arrays, numbers; some larger than a chunk),
 * written until the log spans a few segments, then a snapshot (which deletes the segments it
 * covers), then a few more writes. Built once, in a temp dir removed here whatever happens.
 */
export async function buildSnapSeed(r: Rng): Promise<SnapSeed> {
  const dir = tmpDir("harmonydb-fuzz-snapseed-");
  try {
    const db = await openForTest(dir, SNAP_OPTS);
    const history: HistOp[][] = [];
    let snapRev: number;
    let state: SnapState;
    try {
      const keys = [...keyPool(r), ...Array.from({ length: 200 }, (_, i) => `s${String(i).padStart(3, "0")}-${text(r, r.int(12), true)}`)];
      // Every key once, so the snapshot holds a few hundred; then overwrites, deletes and batches.
      for (let i = 0; i < keys.length; i += 25) {
        await Promise.all(
          keys.slice(i, i + 25).map((key) => {
            const v = value(r, r.chance(0.2));
            return db.put(key, v).then((rev) => void (history[rev - 1] = [{ key, value: v }]));
          }),
        );
      }
      while (segments(dir).length < 3) await writeMixed(db, r, keys, history, 40);
      snapRev = (await db.snapshot()).rev;
      await writeMixed(db, r, keys, history, 12);
      state = new Map([...db.range()].map((e) => [e.key, { ...db.getEntry(e.key)! }]));
    } finally {
      await db.close();
    }
    const lastRev = history.length;
    for (let i = 0; i < lastRev; i++) if (history[i] === undefined) throw new Error(`fuzz oracle: no write recorded at rev ${i + 1}`);
    const files = new Map<string, Uint8Array>();
    for (const sub of ["wal", "snap"]) {
      for (const name of fs.readdirSync(path.join(dir, sub))) files.set(`${sub}/${name}`, new Uint8Array(fs.readFileSync(path.join(dir, sub, name))));
    }
    const snaps = [...files.keys()].filter((f) => f.startsWith("snap/"));
    if (snaps.length !== 1 || snaps[0] !== `snap/${snapshotName(snapRev)}`) throw new Error(`fuzz: expected one snapshot at rev ${snapRev}, found ${snaps.join(", ")}`);
    const segs = segments(dir).map((f) => {
      const name = path.basename(f);
      const m = SEGMENT_NAME_RE.exec(name)!;
      return { name, seq: parseInt(m[1]!, 16), firstRev: parseInt(m[2]!, 16) };
    });
    // The point of the exercise: what the snapshot covers is gone, so nothing can fall back to the log.
    if (segs.length === 0 || segs[0]!.seq === 1) throw new Error("fuzz: the snapshot did not delete the first segment");
    const first = files.get(`wal/${segs[0]!.name}`)!;
    const hf = readFrame(first, MAGIC_BYTES);
    if (hf.kind !== "frame") throw new Error("fuzz: unreadable segment header");
    const dbId = decodeHeader(payloadOf(first, hf)).db;
    const snapName = snapshotName(snapRev);
    const split = splitSnap(files.get(`snap/${snapName}`)!);
    if (split.rest.length !== 0) throw new Error("fuzz: the seed snapshot does not split into whole frames");
    const seed: SnapSeed = { files, snapName, snapRev, layout: split.layout, segs, dbId, history, lastRev, state };
    // The oracle must agree with the store it was built from.
    const want = predictSnap(seed, files);
    if (want.kind !== "open" || !want.strict || diffSnapState(state, want.state).length > 0) {
      throw new Error(`fuzz oracle: disagrees with the store: ${want.why} ${want.kind === "open" ? diffSnapState(state, want.state).join("; ") : ""}`);
    }
    return seed;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Differences between two states (empty when equal), at most a few. */
export function diffSnapState(got: SnapState, want: SnapState): string[] {
  const out: string[] = [];
  for (const [k, g] of got) {
    const w = want.get(k);
    if (!w) out.push(`unexpected key ${JSON.stringify(k)}`);
    else if (!sameValue(g.value, w.value)) out.push(`key ${JSON.stringify(k)} has a different value`);
    else if (g.rev !== w.rev || g.createRev !== w.createRev || g.version !== w.version) {
      out.push(`key ${JSON.stringify(k)} has revisions ${g.rev}/${g.createRev}/${g.version}, expected ${w.rev}/${w.createRev}/${w.version}`);
    }
  }
  for (const k of want.keys()) if (!got.has(k)) out.push(`missing key ${JSON.stringify(k)}`);
  return out.slice(0, 5);
}

// -- frames of a snapshot file, taken apart and put back together --

export interface SnapFrame {
  type: number;
  rev: number;
  payload: Uint8Array;
}

/** The whole checksum-valid frames after the magic, their layout, and whatever follows them. */
export function splitSnap(bytes: Uint8Array): { frames: SnapFrame[]; layout: FrameInfo[]; rest: Uint8Array } {
  const frames: SnapFrame[] = [];
  const layout: FrameInfo[] = [];
  let off = MAGIC_BYTES;
  while (off < bytes.length) {
    const v = readFrame(bytes, off);
    if (v.kind !== "frame" || v.next > bytes.length) break;
    frames.push({ type: v.type, rev: v.rev, payload: bytes.slice(v.start, v.start + v.len) });
    layout.push({ off, len: v.len, rev: v.rev, type: v.type, covEnd: v.start + v.len, next: v.next });
    off = v.next;
  }
  return { frames, layout, rest: bytes.slice(Math.min(off, bytes.length)) };
}

/** Magic, then each frame sealed with a valid CRC (src/format/encoder.ts sealFrame), then `rest`. */
export function joinSnap(frames: SnapFrame[], rest: Uint8Array = new Uint8Array(0)): Uint8Array {
  const size = MAGIC_BYTES + frames.reduce((n, f) => n + frameBytes(f.payload.length), 0);
  const out = new Uint8Array(size + rest.length);
  const view = new DataView(out.buffer);
  out.set(SNAP_MAGIC, 0);
  let at = MAGIC_BYTES;
  for (const f of frames) {
    out.set(f.payload, at + FRAME_HEADER_BYTES);
    at += sealFrame(out, view, at, f.type, f.rev, f.payload.length);
  }
  out.set(rest, size);
  return out;
}

// -- a CBOR head reader and writer of the test's own (the oracle does not use src/ decoders) --

interface Cur {
  b: Uint8Array;
  pos: number;
  end: number;
}

/** A definite head of `major`; `canonical` false when a shorter form would have held the argument. */
function cborHead(c: Cur, major: number): { n: number; canonical: boolean; info: number } {
  if (c.pos >= c.end) throw new Error("CBOR runs past the end");
  const first = c.b[c.pos++]!;
  if (first >> 5 !== major) throw new Error(`CBOR major type ${first >> 5}, expected ${major}`);
  const info = first & 31;
  if (info < 24) return { n: info, canonical: true, info };
  if (info > 27) throw new Error(`CBOR additional info ${info}`);
  const len = 1 << (info - 24);
  if (c.pos + len > c.end) throw new Error("CBOR head runs past the end");
  let n = 0;
  for (let i = 0; i < len; i++) n = n * 256 + c.b[c.pos++]!;
  if (n > Number.MAX_SAFE_INTEGER) throw new Error("CBOR integer above 2^53 - 1");
  const min = [24, 0x100, 0x10000, 0x1_0000_0000][info - 24]!;
  return { n, canonical: n >= min, info };
}

function cborBytes(major: number, n: number, body?: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + (body?.length ?? 0));
  let p = writeHead(out, 0, major << 5, n);
  if (body) {
    out.set(body, p);
    p += body.length;
  }
  return out.slice(0, p);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let p = 0;
  for (const x of parts) {
    out.set(x, p);
    p += x.length;
  }
  return out;
}

/** One entry of a chunk, as bytes: key (UTF-8), value (CBOR), revisions. */
export interface RawEntry {
  key: Uint8Array;
  value: Uint8Array;
  rev: number;
  createRev: number;
  version: number;
}

function encodeRawEntry(e: RawEntry): Uint8Array {
  return concat([new Uint8Array([0x85]), cborBytes(3, e.key.length, e.key), cborBytes(2, e.value.length, e.value), cborBytes(0, e.rev), cborBytes(0, e.createRev), cborBytes(0, e.version)]);
}

/** A chunk payload: the count as a 4-byte head (as the writer makes it), then the entries. */
function chunkPayload(count: number, entries: Uint8Array[]): Uint8Array {
  const head = new Uint8Array(5);
  head[0] = 0x9a;
  new DataView(head.buffer).setUint32(1, count >>> 0, false);
  return concat([head, ...entries]);
}

/** The entries of a well-formed chunk payload, or null. */
function parseChunk(p: Uint8Array): RawEntry[] | null {
  try {
    const c: Cur = { b: p, pos: 0, end: p.length };
    const n = cborHead(c, 4).n;
    const out: RawEntry[] = [];
    for (let i = 0; i < n; i++) {
      if (cborHead(c, 4).n !== 5) return null;
      const kl = cborHead(c, 3).n;
      const key = p.slice(c.pos, (c.pos += kl));
      const vl = cborHead(c, 2).n;
      const value = p.slice(c.pos, (c.pos += vl));
      out.push({ key, value, rev: cborHead(c, 0).n, createRev: cborHead(c, 0).n, version: cborHead(c, 0).n });
    }
    return c.pos === p.length ? out : null;
  } catch {
    return null;
  }
}

// -- the oracle --

/** What recovery must make of a directory whose snapshot was damaged. */
export type SnapExpect =
  | { kind: "error"; why: string; /** A path the CorruptionError's message must name. */ names?: string }
  | {
      kind: "open";
      why: string;
      state: SnapState;
      /** false: the file bends the spec harmlessly (non-canonical CBOR, …); refusing is right too. */
      strict: boolean;
    };

type SnapVerdict = { ok: false; why: string } | { ok: true; rev: number; db: string; entries: SnapState; lenient: string[] };

const utf8Fatal = new TextDecoder("utf-8", { fatal: true });

/** docs/snapshot-format.md "Checks on open", and the entry grammar, from the bytes alone. */
export function checkSnapFile(bytes: Uint8Array, name: string): SnapVerdict {
  const bad = (why: string): SnapVerdict => ({ ok: false, why });
  const lenient: string[] = [];
  if (bytes.length < MAGIC_BYTES || SNAP_MAGIC.some((b, i) => bytes[i] !== b)) return bad("magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frameAt = (off: number) => {
    if (off + FRAME_HEADER_BYTES > bytes.length) return null;
    const len = view.getUint32(off + FRAME_LEN_OFFSET, true);
    if (len === 0 || off + FRAME_HEADER_BYTES + len > bytes.length) return null;
    if (crc32(bytes, off + FRAME_LEN_OFFSET, off + FRAME_HEADER_BYTES + len) !== view.getUint32(off, true)) return null;
    const rev = view.getUint32(off + 8, true) + view.getUint16(off + 12, true) * 2 ** 32 + bytes[off + 14]! * 2 ** 48;
    const start = off + FRAME_HEADER_BYTES;
    return { type: bytes[off + 15]!, rev, payload: bytes.subarray(start, start + len), covEnd: start + len, next: off + frameBytes(len) };
  };
  const map = (payload: Uint8Array, uints: string[], strings: string[]): Record<string, unknown> | null => {
    let m: unknown;
    try {
      m = payloadDecoder.decode(payload.slice());
    } catch {
      return null;
    }
    if (typeof m !== "object" || m === null || Array.isArray(m)) return null;
    const r = m as Record<string, unknown>;
    for (const k of uints) if (!(typeof r[k] === "number" && Number.isSafeInteger(r[k]) && (r[k] as number) >= 0)) return null;
    for (const k of strings) if (typeof r[k] !== "string") return null;
    const extra = Object.keys(r).filter((k) => !uints.includes(k) && !strings.includes(k));
    if (extra.length) lenient.push(`extra fields ${extra.join(",")}`);
    return r;
  };
  const h = frameAt(MAGIC_BYTES);
  if (!h || h.type !== TYPE_SNAP_HEADER) return bad("header frame");
  const header = map(h.payload, ["v", "rev", "keys"], ["db"]);
  if (!header) return bad("header payload");
  const R = header.rev as number;
  if (header.v !== 1) return bad("format version");
  if (h.rev !== R) return bad("header frame revision");
  const m = SNAP_NAME_RE.exec(name);
  if (!m || parseInt(m[1]!, 16) !== R) return bad("revision in the file name");
  const entries: SnapState = new Map();
  let lastKey: string | null = null;
  let chunks = 0;
  for (let off = h.next; ; ) {
    const f = frameAt(off);
    if (!f) return bad(`no whole frame at ${off}`);
    if (f.rev !== R) return bad(`frame revision at ${off}`);
    if (f.type === TYPE_SNAP_FOOTER) {
      const footer = map(f.payload, ["keys", "chunks"], []);
      if (!footer) return bad("footer payload");
      if (footer.chunks !== chunks || footer.keys !== entries.size || header.keys !== entries.size) return bad("counts");
      if (f.next < bytes.length) return bad("bytes after the footer");
      if (f.next > bytes.length) lenient.push("the footer's padding is cut off");
      return { ok: true, rev: R, db: header.db as string, entries, lenient };
    }
    if (f.type !== TYPE_SNAP_CHUNK) return bad(`frame type ${f.type} at ${off}`);
    chunks++;
    const c: Cur = { b: f.payload, pos: 0, end: f.payload.length };
    try {
      const count = cborHead(c, 4);
      if (count.info !== 26) lenient.push("entry count not in a 4-byte head");
      for (let i = 0; i < count.n; i++) {
        const arity = cborHead(c, 4);
        if (arity.n !== 5) return bad("entry arity");
        const kl = cborHead(c, 3);
        if (c.pos + kl.n > c.end) return bad("key past the end");
        const kb = f.payload.subarray(c.pos, (c.pos += kl.n));
        let key: string;
        try {
          key = utf8Fatal.decode(kb);
        } catch {
          key = Buffer.from(kb).toString("utf8");
          lenient.push("a key is not UTF-8");
        }
        if (lastKey !== null && !(key > lastKey)) return bad("keys out of order");
        const vl = cborHead(c, 2);
        if (c.pos + vl.n > c.end) return bad("value past the end");
        const vb = f.payload.slice(c.pos, (c.pos += vl.n));
        const rev = cborHead(c, 0);
        const createRev = cborHead(c, 0);
        const version = cborHead(c, 0);
        if (![arity, kl, vl, rev, createRev, version].every((x) => x.canonical)) lenient.push("a non-canonical CBOR head in an entry");
        if (rev.n > R || createRev.n > rev.n || createRev.n < 1 || version.n < 1 || version.n > (rev.n - createRev.n + 1) * 100_000) return bad("impossible revisions");
        let value: unknown;
        try {
          value = valueDecoder.decode(vb);
        } catch {
          return bad("an undecodable value");
        }
        entries.set(key, { value, rev: rev.n, createRev: createRev.n, version: version.n });
        lastKey = key;
      }
      if (c.pos !== c.end) return bad("trailing bytes in a chunk");
    } catch (err) {
      return bad(`chunk: ${(err as Error).message}`);
    }
    off = f.next;
  }
}

/** The snapshot the oracle loads (as open() would), then the history after it: what open() must give. */
export function predictSnap(seed: SnapSeed, files: Map<string, Uint8Array>): SnapExpect {
  const snaps: { name: string; rev: number }[] = [];
  for (const f of files.keys()) {
    if (!f.startsWith("snap/")) continue;
    const name = f.slice(5);
    const m = SNAP_NAME_RE.exec(name);
    if (m) snaps.push({ name, rev: parseInt(m[1]!, 16) });
    else if (!name.endsWith(".tmp")) return { kind: "error", why: `unexpected file snap/${name}`, names: f };
  }
  snaps.sort((a, b) => b.rev - a.rev);
  const rejected: string[] = [];
  for (const s of snaps) {
    const v = checkSnapFile(files.get(`snap/${s.name}`)!, s.name);
    if (!v.ok) {
      rejected.push(`snap/${s.name}: ${v.why}`);
      continue;
    }
    const names = `snap/${s.name}`;
    const R = v.rev;
    if (v.db !== seed.dbId) return { kind: "error", why: `${names} belongs to another database` };
    if (!seed.segs.some((g) => g.firstRev <= R + 1)) return { kind: "error", why: `the WAL does not reach back to rev ${R + 1}`, names };
    if (seed.lastRev < R) return { kind: "error", why: `the WAL ends before rev ${R}`, names };
    const state: SnapState = new Map(v.entries);
    for (let rev = R + 1; rev <= seed.lastRev; rev++) {
      for (const op of seed.history[rev - 1]!) {
        if ("delete" in op) state.delete(op.key);
        else {
          const prev = state.get(op.key);
          state.set(op.key, { value: op.value, rev, createRev: prev ? prev.createRev : rev, version: prev ? prev.version + 1 : 1 });
        }
      }
    }
    const strict = v.lenient.length === 0;
    return { kind: "open", state, strict, why: strict ? `${names} is a valid snapshot at rev ${R}` : `${names} bends the spec: ${v.lenient.join(", ")}` };
  }
  // Nothing to load: the WAL alone would have to start at revision 1, and it does not.
  return { kind: "error", why: rejected.length ? `damaged: ${rejected.join("; ")}` : "no snapshot", names: rejected.length === 1 ? rejected[0]!.split(":")[0] : undefined };
}

// -- mutations of the snapshot file (never of anything else in the directory) --

export interface SnapCtx {
  r: Rng;
  seed: SnapSeed;
  /** A copy of seed.files; mutations edit only the snapshot in it. */
  files: Map<string, Uint8Array>;
  /** The snapshot's current name in snap/ (a mutation may rename it). */
  name: string;
}

export type SnapMutation = (c: SnapCtx) => string;

export function snapCtx(r: Rng, seed: SnapSeed): SnapCtx {
  return { r, seed, files: new Map([...seed.files].map(([n, b]) => [n, b.slice()])), name: seed.snapName };
}

function snapOf(c: SnapCtx): Uint8Array {
  return c.files.get(`snap/${c.name}`)!;
}

function setSnap(c: SnapCtx, bytes: Uint8Array): void {
  c.files.set(`snap/${c.name}`, bytes);
}

/** An offset anywhere, in the magic or header, in a frame's header fields, or in a frame. */
function pickSnapOffset(c: SnapCtx, len: number): number {
  const layout = c.seed.layout;
  let off: number;
  if (c.r.chance(0.2)) off = c.r.int(len);
  else if (c.r.chance(0.1)) off = c.r.int(layout[0]!.covEnd);
  else {
    const f = c.r.chance(0.1) ? layout[layout.length - 1]! : c.r.pick(layout);
    off = c.r.chance(0.4) ? f.off + c.r.int(FRAME_HEADER_BYTES) : f.off + c.r.int(f.next - f.off);
  }
  return Math.min(off, len - 1);
}

export const snapBitFlip: SnapMutation = (c) => {
  const b = snapOf(c);
  if (b.length === 0) return "bitflip: empty file";
  const off = pickSnapOffset(c, b.length);
  const bit = c.r.int(8);
  b[off]! ^= 1 << bit;
  return `bitflip @${off} bit ${bit}`;
};

export const snapOverwrite: SnapMutation = (c) => {
  const b = snapOf(c);
  if (b.length === 0) return "overwrite: empty file";
  const off = pickSnapOffset(c, b.length);
  const n = Math.min(b.length - off, c.r.pick([1, 2, 4, 8, 16, c.r.range(1, 64)]));
  b.set(c.r.bytes(n), off);
  return `overwrite @${off} +${n} random bytes`;
};

export const snapZeroRun: SnapMutation = (c) => {
  const b = snapOf(c);
  if (b.length === 0) return "zeros: empty file";
  const off = pickSnapOffset(c, b.length);
  const n = Math.min(b.length - off, c.r.pick([4, 8, 16, c.r.range(1, 512), c.r.range(1, 8192)]));
  b.fill(0, off, off + n);
  return `zeros @${off} +${n}`;
};

/** A non-zero byte in a frame's padding: not checksummed, so it must change nothing. */
export const snapPadding: SnapMutation = (c) => {
  const b = snapOf(c);
  const padded = c.seed.layout.filter((f) => f.covEnd < f.next && f.next <= b.length);
  if (padded.length === 0) return "padding: no padded frame";
  const f = c.r.pick(padded);
  const off = f.covEnd + c.r.int(f.next - f.covEnd);
  b[off] = c.r.range(1, 255);
  return `padding byte @${off} = ${b[off]}`;
};

export const snapTruncate: SnapMutation = (c) => {
  const b = snapOf(c);
  const layout = c.seed.layout;
  const f = c.r.pick(layout);
  const last = layout[layout.length - 1]!;
  let at: number;
  switch (c.r.int(7)) {
    case 0:
      at = c.r.int(MAGIC_BYTES + 1);
      break;
    case 1:
      at = f.off;
      break;
    case 2:
      at = f.off + c.r.int(f.covEnd - f.off);
      break;
    case 3:
      at = f.covEnd + c.r.int(f.next - f.covEnd + 1);
      break;
    case 4:
      at = last.covEnd + c.r.int(last.next - last.covEnd); // only the footer's padding
      break;
    case 5:
      at = last.off + c.r.int(last.next - last.off);
      break;
    default:
      at = c.r.int(b.length);
  }
  at = Math.min(at, b.length);
  setSnap(c, b.slice(0, at));
  return `truncate to ${at} of ${b.length}`;
};

export const snapExtend: SnapMutation = (c) => {
  const b = snapOf(c);
  const { frames } = splitSnap(b);
  let extra: Uint8Array;
  let what: string;
  switch (c.r.int(6)) {
    case 0:
      extra = new Uint8Array(c.r.pick([1, 7, 8, 24, 4096]));
      what = "zeros";
      break;
    case 1:
      extra = c.r.bytes(c.r.range(1, 5000));
      what = "random bytes";
      break;
    case 2:
    case 3: {
      const f = frames.length ? (c.r.chance(0.5) ? frames[frames.length - 1]! : c.r.pick(frames)) : null;
      extra = f ? joinSnap([f]).subarray(MAGIC_BYTES) : c.r.bytes(24);
      what = f ? `a copy of a type ${f.type} frame` : "random bytes";
      break;
    }
    case 4: {
      const rev = frames[0]?.rev ?? 1;
      extra = joinSnap([{ type: TYPE_SNAP_CHUNK, rev, payload: chunkPayload(0, []) }]).subarray(MAGIC_BYTES);
      what = "an empty chunk frame";
      break;
    }
    default:
      extra = new Uint8Array(c.r.range(1, 64)).fill(c.r.range(1, 255));
      what = "a run of one byte";
  }
  const out = new Uint8Array(b.length + extra.length);
  out.set(b);
  out.set(extra, b.length);
  setSnap(c, out);
  return `append ${what} (+${extra.length})`;
};

/** Count heads of chunk frames; -1 where unreadable. */
function chunkCounts(frames: SnapFrame[]): number[] {
  return frames.filter((f) => f.type === TYPE_SNAP_CHUNK).map((f) => {
    try {
      return cborHead({ b: f.payload, pos: 0, end: f.payload.length }, 4).n;
    } catch {
      return -1;
    }
  });
}

function reencodeMap(payload: Uint8Array, change: (m: Record<string, unknown>) => void): Uint8Array {
  let m: unknown;
  try {
    m = payloadDecoder.decode(payload.slice());
  } catch {
    return payload;
  }
  if (typeof m !== "object" || m === null) return payload;
  change(m as Record<string, unknown>);
  return payloadEncoder.encode(m);
}

/** Makes the footer and the header's key count agree with the chunks (a consistent forgery). */
function fixCounts(frames: SnapFrame[]): void {
  const counts = chunkCounts(frames);
  const keys = counts.reduce((a, b) => a + Math.max(0, b), 0);
  for (const f of frames) {
    if (f.type === TYPE_SNAP_FOOTER) f.payload = payloadEncoder.encode({ keys, chunks: counts.length });
    if (f.type === TYPE_SNAP_HEADER) f.payload = reencodeMap(f.payload, (m) => (m.keys = keys));
  }
}

/** Whole, checksum-valid frames duplicated, reordered, moved or removed; sometimes with the counts made to agree. */
export const snapFrames: SnapMutation = (c) => {
  const { frames, rest } = splitSnap(snapOf(c));
  const chunkIdx = frames.flatMap((f, i) => (f.type === TYPE_SNAP_CHUNK ? [i] : []));
  if (chunkIdx.length < 2) return "frames: fewer than two chunks";
  const r = c.r;
  const i = r.pick(chunkIdx);
  let j = r.pick(chunkIdx);
  if (j === i) j = chunkIdx[(chunkIdx.indexOf(i) + 1) % chunkIdx.length]!;
  const footer = frames.findIndex((f) => f.type === TYPE_SNAP_FOOTER);
  let what: string;
  switch (r.int(11)) {
    case 0:
      frames.splice(i + 1, 0, frames[i]!);
      what = `chunk #${i} duplicated in place`;
      break;
    case 1:
      frames.splice(j, 0, frames[i]!);
      what = `chunk #${i} duplicated before #${j}`;
      break;
    case 2:
      [frames[i], frames[j]] = [frames[j]!, frames[i]!];
      what = `chunks #${i} and #${j} swapped`;
      break;
    case 3:
      frames.splice(i, 1);
      what = `chunk #${i} removed`;
      break;
    case 4:
      frames.splice(i, 1, frames[j]!);
      what = `chunk #${i} replaced by #${j}`;
      break;
    case 5: {
      const [f] = frames.splice(i, 1);
      frames.push(f!);
      what = `chunk #${i} moved after the footer`;
      break;
    }
    case 6:
      if (footer < 0) return "frames: no footer";
      frames.splice(footer, 1);
      what = "footer removed";
      break;
    case 7:
      if (footer < 0) return "frames: no footer";
      frames.splice(r.chance(0.5) ? footer : r.pick(chunkIdx), 0, frames[footer]!);
      what = "footer duplicated";
      break;
    case 8:
      frames.splice(r.chance(0.5) ? 0 : r.pick(chunkIdx), 0, frames[0]!);
      what = "header duplicated";
      break;
    case 9:
      frames.splice(0, 1);
      what = "header removed";
      break;
    default: {
      const a = chunkIdx[0]!;
      const b = chunkIdx[chunkIdx.length - 1]!;
      frames.splice(a, b - a + 1, ...frames.slice(a, b + 1).reverse());
      what = "chunks in reverse order";
    }
  }
  const fix = r.chance(0.5);
  if (fix) fixCounts(frames);
  setSnap(c, joinSnap(frames, rest));
  return `frames: ${what}${fix ? ", counts re-sealed to agree" : ""}`;
};

/** The entry bytes of one chunk, for byte-level damage (one entry changed, the rest intact). */
function chunkForEdit(c: SnapCtx): { frames: SnapFrame[]; rest: Uint8Array; fi: number; entries: RawEntry[] } | null {
  const { frames, rest } = splitSnap(snapOf(c));
  const candidates = frames.flatMap((f, i) => (f.type === TYPE_SNAP_CHUNK && parseChunk(f.payload)?.length ? [i] : []));
  if (candidates.length === 0) return null;
  const fi = c.r.pick(candidates);
  return { frames, rest, fi, entries: parseChunk(frames[fi]!.payload)! };
}

const te = new TextEncoder();

/** Chunk contents changed and re-sealed with a valid CRC: counts, order, revisions, malformed CBOR, values. */
export const snapEntries: SnapMutation = (c) => {
  const ed = chunkForEdit(c);
  if (!ed) return "entries: no parseable chunk";
  const { frames, rest, fi, entries } = ed;
  const r = c.r;
  const R = frames[fi]!.rev;
  const k = r.int(entries.length);
  const e = entries[k]!;
  const bytes = entries.map(encodeRawEntry);
  let count = entries.length;
  let what: string;
  const raw = (b: number[] | Uint8Array) => (b instanceof Uint8Array ? b : new Uint8Array(b));
  const u8 = (n: number) => cborBytes(0, n);
  const keyB = cborBytes(3, e.key.length, e.key);
  const valB = cborBytes(2, e.value.length, e.value);
  switch (r.int(7)) {
    case 0: {
      count = r.pick([count + 1, count - 1, 0, 0xffffffff, count * 2, count + 1000].filter((n) => n !== count && n >= 0));
      what = `count ${entries.length} -> ${count}`;
      break;
    }
    case 1: {
      // Order: swap two entries, a key equal to or below the one before it, the empty key.
      const prevKey = k > 0 ? entries[k - 1]!.key : null;
      const choice = r.int(4);
      if (choice === 0 && entries.length >= 2) {
        const j = k === entries.length - 1 ? k - 1 : k + 1;
        [bytes[k], bytes[j]] = [bytes[j]!, bytes[k]!];
        what = `entries ${k} and ${j} swapped`;
      } else if (choice === 1 && prevKey) {
        bytes[k] = encodeRawEntry({ ...e, key: prevKey });
        what = `key of entry ${k} = the key before it`;
      } else if (choice === 2) {
        bytes[k] = encodeRawEntry({ ...e, key: new Uint8Array(0) });
        what = `key of entry ${k} = ""`;
      } else {
        const key = e.key.slice();
        key[key.length - 1] = c.r.chance(0.5) ? 0 : 0x7f; // below or (likely) above its neighbours
        if (key.length === 0) return "entries: empty key";
        bytes[k] = encodeRawEntry({ ...e, key });
        what = `last byte of key ${k} -> ${key[key.length - 1]}`;
      }
      break;
    }
    case 2: {
      const field = r.pick(["rev", "createRev", "version"] as const);
      const v = r.pick([0, 1, R, R + 1, R + 1000, e.rev, e.rev + 1, e.createRev - 1, Number.MAX_SAFE_INTEGER].filter((n) => n >= 0 && n !== e[field]));
      bytes[k] = encodeRawEntry({ ...e, [field]: v });
      what = `${field} of entry ${k}: ${e[field]} -> ${v} (snapshot rev ${R})`;
      break;
    }
    case 3: {
      // Malformed CBOR in one entry.
      const rest3 = concat([u8(e.rev), u8(e.createRev), u8(e.version)]);
      const forms: [string, Uint8Array][] = [
        ["a 4-element entry", concat([raw([0x84]), keyB, valB, u8(e.rev), u8(e.createRev)])],
        ["a 6-element entry", concat([raw([0x86]), keyB, valB, rest3, u8(1)])],
        ["an entry that is a map", concat([raw([0xa5]), keyB, valB, rest3])],
        ["the key as a byte string", concat([raw([0x85]), cborBytes(2, e.key.length, e.key), valB, rest3])],
        ["the value as a text string", concat([raw([0x85]), keyB, cborBytes(3, e.value.length, e.value), rest3])],
        ["a negative revision", concat([raw([0x85]), keyB, valB, cborBytes(1, e.rev), u8(e.createRev), u8(e.version)])],
        ["a revision above 2^53", concat([raw([0x85]), keyB, valB, raw([0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), u8(e.createRev), u8(e.version)])],
        ["reserved additional info 28", concat([raw([0x85]), keyB, valB, raw([0x1c]), u8(e.createRev), u8(e.version)])],
        ["an indefinite-length entry", concat([raw([0x9f]), keyB, valB, rest3, raw([0xff])])],
        ["an indefinite-length key", concat([raw([0x85, 0x7f]), keyB, raw([0xff]), valB, rest3])],
        ["a key length past the chunk", concat([raw([0x85, 0x7a, 0x00, 0x10, 0x00, 0x00]), e.key])],
        ["a value length past the chunk", concat([raw([0x85]), keyB, raw([0x5a, 0x7f, 0xff, 0xff, 0xff]), e.value])],
        ["the entry cut short", encodeRawEntry(e).slice(0, r.range(1, encodeRawEntry(e).length - 1))],
        ["a byte after the entry", concat([encodeRawEntry(e), raw([r.int(256)])])],
        ["a boolean version", concat([raw([0x85]), keyB, valB, u8(e.rev), u8(e.createRev), raw([0xf5])])],
      ];
      const [desc, b] = r.pick(forms);
      bytes[k] = b;
      what = `entry ${k}: ${desc}`;
      break;
    }
    case 4: {
      // Valid CBOR, but not in the shortest form: the spec's grammar allows it; the writer never does it.
      const forms: [string, Uint8Array][] = [
        ["entry array head 0x98 0x05", concat([raw([0x98, 0x05]), keyB, valB, u8(e.rev), u8(e.createRev), u8(e.version)])],
        ["key length in a 2-byte head", concat([raw([0x85, 0x79, e.key.length >> 8, e.key.length & 0xff]), e.key, valB, u8(e.rev), u8(e.createRev), u8(e.version)])],
        ["value length in a 4-byte head", concat([raw([0x85]), keyB, raw([0x5a, 0, 0, e.value.length >> 8, e.value.length & 0xff]), e.value, u8(e.rev), u8(e.createRev), u8(e.version)])],
        ["rev in an 8-byte head", concat([raw([0x85]), keyB, valB, raw([0x1b, 0, 0, 0, 0, (e.rev >>> 24) & 0xff, (e.rev >>> 16) & 0xff, (e.rev >>> 8) & 0xff, e.rev & 0xff]), u8(e.createRev), u8(e.version)])],
        ["version in a 1-byte head", concat([raw([0x85]), keyB, valB, u8(e.rev), u8(e.createRev), raw([0x18, e.version & 0xff])])],
      ];
      if (e.version > 0xff) forms.pop();
      const [desc, b] = r.pick(forms);
      bytes[k] = b;
      what = `entry ${k}: ${desc}`;
      break;
    }
    case 5: {
      // The value: undecodable, a head that disagrees with its length, another valid value, flipped bytes.
      const v = e.value;
      const forms: [string, Uint8Array][] = [
        ["value 0xff", raw([0xff])],
        ["value 0x1c", raw([0x1c])],
        ["value: a map cut short", raw([0xa2, 0x61, 0x61])],
        ["value: text head one byte short", concat([raw([0x60 | Math.min(23, Math.max(0, v.length - 2))]), v.subarray(1)])],
        ["value: text head one byte long", concat([raw([0x63]), te.encode("ab")])],
        ["value: Uint8Array head one byte long", raw([0xd8, 0x40, 0x44, 1, 2, 3])],
        ["value: empty", new Uint8Array(0)],
        ["value: two items", raw([0x01, 0x02])],
        ["value: another valid value", valueEncoder.encode(r.pick<unknown>(["changed", 12345, { x: [1, 2] }, new Uint8Array([9, 9]), null, -1.5]))],
      ];
      let [desc, nv] = r.pick(forms);
      if (r.chance(0.25) && v.length > 0) {
        nv = v.slice();
        const n = r.range(1, 3);
        for (let i = 0; i < n; i++) nv[r.int(nv.length)]! ^= 1 << r.int(8);
        desc = `value: ${n} bit flips`;
      }
      bytes[k] = encodeRawEntry({ ...e, value: nv });
      what = `entry ${k} ${desc}`;
      break;
    }
    default: {
      // Keys that are not valid UTF-8 (or change the order in subtle ways).
      const forms: [string, Uint8Array][] = [
        ["a lone continuation byte appended", concat([e.key, raw([0x80])])],
        ["0xff appended", concat([e.key, raw([0xff])])],
        ["a cut multi-byte character appended", concat([e.key, raw([0xe9, 0x94])])],
        ["an overlong NUL appended", concat([e.key, raw([0xc0, 0x80])])],
        ["a surrogate half appended", concat([e.key, raw([0xed, 0xa0, 0x80])])],
      ];
      const [desc, key] = r.pick(forms);
      bytes[k] = encodeRawEntry({ ...e, key });
      what = `key of entry ${k}: ${desc}`;
    }
  }
  frames[fi] = { ...frames[fi]!, payload: chunkPayload(count, bytes) };
  setSnap(c, joinSnap(frames, rest));
  return `entries of chunk frame #${fi} (re-sealed): ${what}`;
};

/** Header and footer payloads, frame types, frame revisions and lengths, re-sealed with valid CRCs. */
export const snapHeaderFooter: SnapMutation = (c) => {
  const b = snapOf(c);
  const { frames, rest, layout } = splitSnap(b);
  if (frames.length === 0) return "header/footer: no frame";
  const r = c.r;
  const R = frames[0]!.rev;
  const footerAt = frames.findIndex((f) => f.type === TYPE_SNAP_FOOTER);
  let what: string;
  switch (r.int(5)) {
    case 0: {
      const forms: [string, (m: Record<string, unknown>) => unknown][] = [
        ["v: 2", (m) => (m.v = 2)],
        ["v missing", (m) => delete m.v],
        ["rev + 1 in the payload", (m) => (m.rev = R + 1)],
        ["rev - 1 in the payload", (m) => (m.rev = R - 1)],
        ["keys + 1", (m) => (m.keys = (m.keys as number) + 1)],
        ["keys - 1", (m) => (m.keys = (m.keys as number) - 1)],
        ["keys: -1", (m) => (m.keys = -1)],
        ["keys: 2^53", (m) => (m.keys = 2 ** 53)],
        ["keys: 1.5", (m) => (m.keys = 1.5)],
        ["keys: \"7\"", (m) => (m.keys = "7")],
        ["db: another database", (m) => (m.db = "another-database-id")],
        ["db: 5", (m) => (m.db = 5)],
        ["db missing", (m) => delete m.db],
        ["an extra field", (m) => (m.extra = "x")],
      ];
      const [desc, change] = r.pick(forms);
      frames[0] = { ...frames[0]!, payload: reencodeMap(frames[0]!.payload, (m) => void change(m)) };
      what = `header ${desc}`;
      break;
    }
    case 1: {
      if (footerAt < 0) return "header/footer: no footer";
      const chunks = chunkCounts(frames).length;
      const keys = chunkCounts(frames).reduce((a, n) => a + n, 0);
      const forms: [string, unknown][] = [
        ["keys + 1", { keys: keys + 1, chunks }],
        ["keys - 1", { keys: keys - 1, chunks }],
        ["chunks + 1", { keys, chunks: chunks + 1 }],
        ["chunks - 1", { keys, chunks: chunks - 1 }],
        ["chunks missing", { keys }],
        ["keys as text", { keys: String(keys), chunks }],
        ["an extra field", { keys, chunks, extra: [1, 2] }],
        ["an array", [keys, chunks]],
        ["a number", keys],
        ["keys: 2^64 - 1", { keys: 2n ** 64n - 1n, chunks }],
      ];
      const [desc, payload] = r.pick(forms);
      frames[footerAt] = { ...frames[footerAt]!, payload: payloadEncoder.encode(payload) };
      what = `footer ${desc}`;
      break;
    }
    case 2: {
      const i = r.int(frames.length);
      const type = r.pick([0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0xff].filter((t) => t !== frames[i]!.type));
      what = `frame #${i} type ${frames[i]!.type} -> ${type}`;
      frames[i] = { ...frames[i]!, type };
      break;
    }
    case 3: {
      const i = r.int(frames.length);
      const rev = r.pick([0, R - 1, R + 1, R + 1000, 2 ** 53 - 1].filter((x) => x >= 0 && x !== R));
      what = `frame #${i} revision ${R} -> ${rev}`;
      frames[i] = { ...frames[i]!, rev };
      break;
    }
    default: {
      // A shorter length field, the CRC recomputed over it: the rest of the old payload is left behind.
      const i = r.int(frames.length);
      const f = layout[i]!;
      const len = r.range(1, Math.max(1, f.len - 1));
      const out = b.slice();
      const view = new DataView(out.buffer);
      view.setUint32(f.off + FRAME_LEN_OFFSET, len, true);
      view.setUint32(f.off, crc32(out, f.off + FRAME_LEN_OFFSET, f.off + FRAME_HEADER_BYTES + len), true);
      setSnap(c, out);
      return `frame #${i} length ${f.len} -> ${len} (re-sealed in place)`;
    }
  }
  setSnap(c, joinSnap(frames, rest));
  return `${what} (re-sealed)`;
};

/**
 * Consistent forgeries, which no check can see: the whole snapshot moved to another revision (every
 * frame, the header and the file name), chunks or entries dropped with the counts made to agree,
 * random payload bytes re-sealed; and renames. The oracle still says what must come of each.
 */
export const snapForge: SnapMutation = (c) => {
  const { frames, rest } = splitSnap(snapOf(c));
  if (frames.length === 0) return "forge: no frame";
  const r = c.r;
  const R = frames[0]!.rev;
  switch (r.int(5)) {
    case 0: {
      const first = c.seed.segs[0]!.firstRev;
      const to = r.pick([R - 1, R + 1, R + 2, first - 1, first - 2, c.seed.lastRev, c.seed.lastRev + 1, R - r.range(1, 20)].filter((x) => x >= 1 && x !== R));
      for (const f of frames) f.rev = to;
      frames[0]!.payload = reencodeMap(frames[0]!.payload, (m) => (m.rev = to));
      const bytes = joinSnap(frames, rest);
      c.files.delete(`snap/${c.name}`);
      c.name = snapshotName(to);
      setSnap(c, bytes);
      return `forge: the whole snapshot moved from rev ${R} to ${to} (frames, header, file name)`;
    }
    case 1: {
      const chunkIdx = frames.flatMap((f, i) => (f.type === TYPE_SNAP_CHUNK ? [i] : []));
      if (chunkIdx.length === 0) return "forge: no chunk";
      const n = r.range(1, Math.min(3, chunkIdx.length));
      const from = r.int(chunkIdx.length - n + 1);
      frames.splice(chunkIdx[from]!, n);
      fixCounts(frames);
      setSnap(c, joinSnap(frames, rest));
      return `forge: ${n} chunks from #${chunkIdx[from]} removed, counts made to agree`;
    }
    case 2: {
      const ed = chunkForEdit(c);
      if (!ed) return "forge: no parseable chunk";
      const keep = ed.entries.filter(() => r.chance(0.5));
      const fr = ed.frames;
      if (keep.length === 0) fr.splice(ed.fi, 1);
      else fr[ed.fi] = { ...fr[ed.fi]!, payload: chunkPayload(keep.length, keep.map(encodeRawEntry)) };
      fixCounts(fr);
      setSnap(c, joinSnap(fr, ed.rest));
      return `forge: chunk frame #${ed.fi} keeps ${keep.length} of ${ed.entries.length} entries, counts made to agree`;
    }
    case 3: {
      const i = r.int(frames.length);
      const p = frames[i]!.payload.slice();
      const n = r.range(1, 4);
      for (let k = 0; k < n; k++) {
        const at = r.int(p.length);
        p[at] = r.chance(0.5) ? r.u32() & 0xff : p[at]! ^ (1 << r.int(8));
      }
      frames[i] = { ...frames[i]!, payload: p };
      setSnap(c, joinSnap(frames, rest));
      return `forge: ${n} random payload bytes of frame #${i} (type ${frames[i]!.type}) changed, re-sealed`;
    }
    default: {
      const to = r.pick([snapshotName(R + 1), snapshotName(R - 1), c.name.toUpperCase().replace(".SNAP", ".snap"), `${c.name}.bak`, "junk", `${R}.snap`]);
      if (to === c.name) return "rename: same name";
      const bytes = snapOf(c);
      c.files.delete(`snap/${c.name}`);
      c.name = to;
      setSnap(c, bytes);
      return `rename the snapshot to ${to}`;
    }
  }
};
