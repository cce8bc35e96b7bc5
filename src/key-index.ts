// The in-memory index of durable data: a hash map for point reads, a B-tree (sorted-btree) for order.

import BTree from "sorted-btree";
import { bulkLoad } from "sorted-btree/extended/bulkLoad";
import { assert } from "./assert.ts";
import type { SnapshotEntry } from "./snapshot.ts";
import type { SnapshotLoader } from "./wal/recovery.ts";
import { valueDecoder, valueEncoder } from "./wal/cbor.ts";
import { visitOps, type Encoded, type OpVisitor } from "./wal/decoder.ts";
import type { Op } from "./wal/encoder.ts";

/** How a value is kept: decoded (immutable primitives), raw bytes (Uint8Array), or CBOR (the rest). */
export const KIND_PRIMITIVE = 0;
export const KIND_BYTES = 1;
export const KIND_CBOR = 2;

/** One key's durable state. Never mutated once stored: range snapshots share these objects. */
export interface Stored {
  kind: number;
  v: unknown;
  /** KIND_BYTES: the value's bytes, exactly; KIND_CBOR: its CBOR encoding. */
  b: Uint8Array | null;
  rev: number;
  createRev: number;
  version: number;
}

/** sorted-btree's default node size. */
const BTREE_NODE_SIZE = 32;

/** Plain UTF-16 code-unit order; faster than sorted-btree's type-checking default comparator. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Both structures hold the same Stored objects. The map answers get/has in O(1) (a B-tree lookup
 * of a random key costs ~17 string compares and as many cache misses at 100k keys); the tree
 * serves ordered ranges and O(1) copy-on-write snapshots for them.
 */
export class KeyIndex {
  private readonly map = new Map<string, Stored>();
  private tree = new BTree<string, Stored>(undefined, compareKeys);

  get size(): number {
    return this.map.size;
  }

  get(key: string): Stored | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** A frozen view for a range scan: O(1) now, writes after it copy the nodes they touch. */
  snapshot(): BTree<string, Stored> {
    return this.tree.clone();
  }

  /**
   * Applies one entry from the live path: the value buffers in `ops` are ours to keep. `hints[i]`,
   * when given, is the original value of a primitive put, which saves decoding it again.
   */
  apply(rev: number, ops: Op[], hints?: unknown[]): void {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.length === 1) this.remove(op[0]);
      else this.store(op[0], rev, storedValue(op[1], 0, op[1].length, true, undefined, hints?.[i]));
    }
  }

  /**
   * Loads a snapshot into this (empty) index: entries arrive in key order, so the tree is built
   * bottom-up in one pass (sorted-btree's bulkLoad) instead of by a million inserts.
   */
  snapshotLoader(dir: string): SnapshotLoader {
    assert(this.map.size === 0, "a snapshot loads into an empty index");
    const keys: string[] = [];
    const values: Stored[] = [];
    return {
      dir,
      entry: (key, e, start, end, rev, createRev, version) => {
        const s = storedValue(e.bytes, start, end, false, e.text);
        s.rev = rev;
        s.createRev = createRev;
        s.version = version;
        keys.push(key);
        values.push(s);
        this.map.set(key, s);
      },
      done: () => {
        if (keys.length > 0) this.tree = bulkLoad(keys, values, BTREE_NODE_SIZE, compareKeys, 1);
      },
    };
  }

  /** Applies one entry from replay: its payload is bytes [start, end) of a segment buffer. */
  applyEncoded(rev: number, segment: Encoded, start: number, end: number): void {
    this.replayRev = rev;
    visitOps(segment, start, end, this.replayVisitor);
  }

  private replayRev = 0;
  private readonly replayVisitor: OpVisitor = {
    put: (key, e, s, end) => this.store(key, this.replayRev, storedValue(e.bytes, s, end, false, e.text)),
    delete: (key) => this.remove(key),
  };

  private store(key: string, rev: number, s: Stored): void {
    const prev = this.map.get(key);
    s.rev = rev;
    s.createRev = prev ? prev.createRev : rev;
    s.version = prev ? prev.version + 1 : 1;
    this.map.set(key, s);
    this.tree.set(key, s);
  }

  private remove(key: string): void {
    if (this.map.delete(key)) this.tree.delete(key);
  }

  /** HARMONYDB_VERIFY=1: both structures agree and every entry is consistent. */
  verify(lastRev: number): void {
    this.tree.checkValid();
    assert(this.tree.size === this.map.size, "tree and map hold the same keys");
    for (const [key, s] of this.tree.entries()) {
      assert(this.map.get(key) === s, `map and tree agree on ${key}`);
      assert(s.rev >= s.createRev && s.rev <= lastRev && s.version >= 1, `index entry for ${key} is consistent`);
    }
  }
}

const TAG_UINT8ARRAY_0 = 0xd8;
const TAG_UINT8ARRAY_1 = 0x40;

/**
 * Classifies a value's CBOR encoding, bytes [start, end) of `b` (a plain Uint8Array); see Stored.
 * `owned`: `b` is a buffer of the value's own that may be kept; otherwise (a segment) what is kept is
 * copied. `text` is a Buffer over the same memory, for decoding strings; the live path has none and
 * passes the original string as `hint` instead.
 */
function storedValue(b: Uint8Array, start: number, end: number, owned: boolean, text: Buffer | undefined, hint?: unknown): Stored {
  const s: Stored = { kind: KIND_CBOR, v: undefined, b: null, rev: 0, createRev: 0, version: 0 };
  const first = b[start]!;
  const major = first >> 5;
  if (first === TAG_UINT8ARRAY_0 && b[start + 1] === TAG_UINT8ARRAY_1 && b[start + 2]! >> 5 === 2) {
    s.kind = KIND_BYTES;
    // An exact copy, not a view: a view reads `.buffer`, which makes JSC materialise an
    // ArrayBuffer per small array (a quarter of a put's time, measured), and an exact array
    // copies fastest on every get (`new Uint8Array(b)`).
    s.b = b.slice(start + 2 + bytesHeadLength(b[start + 2]!), end);
  } else if (major === 3 && first < 0x7b) {
    s.kind = KIND_PRIMITIVE;
    const from = start + 1 + textHeadExtra(first);
    s.v = typeof hint === "string" ? hint : text ? text.toString("utf8", from, end) : valueDecoder.decode(b.slice(start, end));
  } else if (major === 0 || major === 1 || (major === 7 && first !== 0xf7 && first !== 0xff)) {
    s.kind = KIND_PRIMITIVE;
    s.v = hint !== undefined ? hint : valueDecoder.decode(b.slice(start, end));
  } else {
    s.b = owned && start === 0 && end === b.length ? b : b.slice(start, end);
    // From the log (not owned), a value must decode now: a checksum-valid frame with an
    // undecodable value is corruption at open, never an error on some later get.
    if (!owned) valueDecoder.decode(s.b);
  }
  return s;
}

/** Extra head bytes after the initial byte for lengths 24 (1), 25 (2), 26 (4), 27 (8). */
function textHeadExtra(first: number): number {
  const info = first & 31;
  return info < 24 ? 0 : 1 << (info - 24);
}

function bytesHeadLength(first: number): number {
  return 1 + textHeadExtra(first);
}

/** A key's state as a snapshot keeps it (the value as its CBOR encoding). */
export function snapshotEntry(s: Stored): SnapshotEntry {
  let value: Uint8Array;
  if (s.kind === KIND_CBOR) value = s.b!;
  else if (s.kind === KIND_BYTES) {
    const n = s.b!.length;
    const head = bytesHead(n);
    value = new Uint8Array(2 + head.length + n);
    value[0] = TAG_UINT8ARRAY_0;
    value[1] = TAG_UINT8ARRAY_1;
    value.set(head, 2);
    value.set(s.b!, 2 + head.length);
  } else value = valueEncoder.encode(s.v);
  return { value, rev: s.rev, createRev: s.createRev, version: s.version };
}

function bytesHead(n: number): number[] {
  if (n < 24) return [0x40 | n];
  if (n < 0x100) return [0x58, n];
  if (n < 0x10000) return [0x59, n >>> 8, n & 0xff];
  return [0x5a, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** The value of a Stored as the caller gets it: primitives as they are, anything else a fresh copy. */
export function materialize(s: Stored): unknown {
  if (s.kind === KIND_PRIMITIVE) return s.v;
  if (s.kind === KIND_BYTES) return new Uint8Array(s.b!);
  return valueDecoder.decode(s.b!);
}
