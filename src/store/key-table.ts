// Key → slot for point reads: open addressing with linear probing over two Int32Arrays, each key's
// hash and its slot (src/store/ref-table.ts). Keys themselves are not kept here: a bucket whose hash
// matches is confirmed by the caller against the key in the record its slot points at, a record the
// caller reads next anyway. Deletes shift the rest of the cluster back, so there are no tombstones.
//
// It replaced a Map<string, number>. With 1M keys, 256 overwrites in flight, the Map's get took
// ~1.8 µs of a put's ~3.6 µs of index work (two or three cache misses: its bucket, its entry, the
// stored key's characters), and its storage took ~52 MB; this table takes 16 MB (docs/design-notes.md).

import { assert } from "../assert.ts";

/** At most this fraction of buckets in use; then the table doubles. */
const LOAD_MAX = 0.6;
const BUCKETS_MIN = 1024;
/**
 * An empty bucket: slot s is stored as s + 1, so new arrays are empty as allocated, with no fill
 * pass (reserving the table for a million keys then took ~90 ms at once here, mostly page faults).
 */
const EMPTY = 0;

export class KeyTable {
  private hashes: Int32Array;
  private slots: Int32Array;
  private mask: number;
  private count = 0;

  constructor(keys = 0) {
    const n = bucketsFor(keys);
    this.hashes = new Int32Array(n);
    this.slots = new Int32Array(n);
    this.mask = n - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes the table takes. */
  get bytes(): number {
    return this.hashes.byteLength + this.slots.byteLength;
  }

  /** Makes room for `keys` keys without growing on the way. */
  reserve(keys: number): void {
    if (bucketsFor(keys) > this.slots.length) this.rehash(bucketsFor(keys));
  }

  /** The slot of a bucket with hash `h` for which `same(slot, arg)` holds, else −1. */
  find<T>(h: number, arg: T, same: (slot: number, arg: T) => boolean): number {
    const { hashes, slots, mask } = this;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = slots[i]!;
      if (s === EMPTY) return -1;
      if (hashes[i] === h && same(s - 1, arg)) return s - 1;
    }
  }

  /** Whether `slot` is in the table under hash `h`. */
  has(h: number, slot: number): boolean {
    return this.indexOf(h, slot) >= 0;
  }

  /** Adds `slot` under hash `h`; the caller knows its key is not in the table. */
  insert(h: number, slot: number): void {
    if (this.count + 1 > this.slots.length * LOAD_MAX) this.rehash(this.slots.length * 2);
    this.place(h, slot);
    this.count++;
  }

  /** Removes `slot`, which is in the table under hash `h`. */
  remove(h: number, slot: number): void {
    let hole = this.indexOf(h, slot);
    if (hole < 0) assert(false, `slot ${slot} is in the key table`);
    const { hashes, slots, mask } = this;
    // Backward-shift: each later entry of the cluster whose probe path passes the hole moves into it.
    for (let j = (hole + 1) & mask; slots[j] !== EMPTY; j = (j + 1) & mask) {
      const home = hashes[j]! & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        hashes[hole] = hashes[j]!;
        slots[hole] = slots[j]!;
        hole = j;
      }
    }
    slots[hole] = EMPTY;
    this.count--;
  }

  /** Every (hash, slot) in the table, in bucket order (HARMONYDB_VERIFY checks). */
  *entries(): IterableIterator<[number, number]> {
    for (let i = 0; i < this.slots.length; i++) if (this.slots[i] !== EMPTY) yield [this.hashes[i]!, this.slots[i]! - 1];
  }

  private indexOf(h: number, slot: number): number {
    const { slots, mask } = this;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = slots[i]!;
      if (s === EMPTY) return -1;
      if (s === slot + 1) return i;
    }
  }

  private place(h: number, slot: number): void {
    const { hashes, slots, mask } = this;
    let i = h & mask;
    while (slots[i] !== EMPTY) i = (i + 1) & mask;
    hashes[i] = h;
    slots[i] = slot + 1;
  }

  private rehash(buckets: number): void {
    const { hashes, slots } = this;
    this.hashes = new Int32Array(buckets);
    this.slots = new Int32Array(buckets);
    this.mask = buckets - 1;
    for (let i = 0; i < slots.length; i++) if (slots[i] !== EMPTY) this.place(hashes[i]!, slots[i]! - 1);
  }
}

function bucketsFor(keys: number): number {
  let n = BUCKETS_MIN;
  while (keys > n * LOAD_MAX) n *= 2;
  return n;
}

/**
 * A 32-bit hash of bytes [start, end) of `b` (FNV-1a, then murmur3's finalizer so that the low bits,
 * which pick the bucket, depend on every byte).
 */
export function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
