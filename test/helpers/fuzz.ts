// Fuzz fixtures for test/fuzz.test.ts: a seeded PRNG, seed databases with an oracle of every write,
// mutations of a WAL directory held in memory, and a predictor of what recovery must make of it.

import * as fs from "node:fs";
import * as path from "node:path";
import { open, type Db, type OpenOptions } from "../../src/index.ts";
import { crc32 } from "../../src/wal/crc.ts";
import { readFrame } from "../../src/wal/decoder.ts";
import { FRAME_HEADER_BYTES, FRAME_LEN_OFFSET, MAGIC_BYTES, SEGMENT_NAME_RE, TYPE_ENTRY, segmentName } from "../../src/wal/format.ts";
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
      const kind = r.int(10);
      const key = r.pick(keys);
      if (kind < 6) {
        const v = value(r, r.chance(0.5));
        group.push(db.put(key, v).then((rev) => record(rev, [{ key, value: v }])));
      } else if (kind < 8) {
        const ops: HistOp[] = Array.from({ length: r.range(1, 12) }, () => {
          const k = r.pick(keys);
          return r.chance(0.25) ? { key: k, delete: true as const } : { key: k, value: value(r, false) };
        });
        const batch = ops.map((o) => ("delete" in o ? { type: "delete" as const, key: o.key } : { type: "put" as const, key: o.key, value: o.value }));
        group.push(db.batch(batch).then((rev) => record(rev, ops)));
      } else {
        group.push(db.delete(key).then((res) => res.deleted && record(res.rev, [{ key, delete: true }])));
      }
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
export function diffState(got: Iterable<readonly [string, unknown]>, want: Map<string, unknown>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const [k, v] of got) {
    seen.add(k);
    if (!want.has(k)) out.push(`unexpected key ${JSON.stringify(k)}`);
    else if (!Bun.deepEquals(v, want.get(k), true)) out.push(`key ${JSON.stringify(k)} has a different value`);
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
