// The value store: every key's durable state as one CBOR record in large append-only blocks, so a
// million keys cost a million small strings and map slots, not a million objects and typed arrays.
//
// A record is exactly a snapshot entry (docs/snapshot-format.md):
//   [ key:text, value:bytes, rev:uint, createRev:uint, version:uint ]
// so a snapshot chunk loads with one copy and a snapshot is written by copying records out.
// A record is addressed by a ref: block × REF_SPAN + offset, a plain number (no allocation).
// Records are never changed in place: an overwrite appends a new one and the old one becomes
// garbage, reclaimed by compaction (copying a block's live records out and dropping the block).
// One exception, during open only: a record replayed on top of a snapshot may be appended "wide"
// (createRev and version as 8-byte CBOR integers, valid if not the shortest form) before the
// snapshot's entry for its key is known, and has those two rebased in place once it is
// (Replay.finish, src/store/replay.ts).
// Readers that must not see later changes (range iterators, the snapshot writer) keep a copy of the
// block table (`view()`): a dropped block stays alive for them, and is never reused. Blocks are
// SharedArrayBuffers, which a snapshot's encoder worker reads.

import { assert } from "../assert.ts";
import { bufferOf, copyBytes } from "../bytes.ts";
import { emptyLocated, parseRecord, recordBytes, recordKeyAt, wideCounts, writeRecord, writeWideUint, type Located } from "../format/record.ts";

/** Offsets within a block are below this: refs are block × REF_SPAN + offset. */
export const REF_SPAN = 2 ** 26;

/** The blocks a reader resolves refs against: the live table, or a copy of it kept by a view. */
export interface Blocks {
  bytes: (Uint8Array | null)[];
  text: (Buffer | null)[];
  /**
   * The record locate() parsed last, a scratch object of this table's own. It holds that record's
   * block: a scratch shared by every table (as it once was) kept the last block read alive after
   * its database was closed and collected, and a loaded snapshot's blocks are one buffer.
   */
  readonly located: Located;
}

const noRecord = emptyLocated();

/** A block table over `bytes` and `text` (the same blocks as Buffers), with a scratch of its own. */
export function blockTable(bytes: (Uint8Array | null)[], text: (Buffer | null)[]): Blocks {
  return { bytes, text, located: { ...noRecord } };
}

/**
 * The offset of `ref` within its block `bi`, typed as an int32. Computed from a ref (a double),
 * the offset stays a double, and JSC then reads every byte through it on a slow path: a record's
 * parse took ~120 ns instead of ~22 over 1M records in key order, ~330 instead of ~200 in random
 * order (a scratch loop; bench/results/put-path.md, fourth round).
 */
function offsetIn(ref: number, bi: number): number {
  return (ref - bi * REF_SPAN) | 0;
}

/**
 * Parses the record at `ref` of `blocks` into the table's scratch object (valid until the next
 * call). Records were checked when they were stored: this trusts them (and asserts the shape).
 */
export function locate(blocks: Blocks, ref: number): Located {
  const bi = (ref / REF_SPAN) | 0;
  const b = blocks.bytes[bi];
  // (The message only on failure: a template string here would be built on every read.)
  if (b === null || b === undefined) assert(false, `record ref ${ref} points into a live block`);
  const r = blocks.located;
  r.text = blocks.text[bi]!;
  return parseRecord(b, offsetIn(ref, bi), r);
}

/** Whether the record at `ref` is for the key whose UTF-8 bytes are `key[0, n)` (only its key is read). */
export function recordKeyIs(blocks: Blocks, ref: number, key: Uint8Array, n: number): boolean {
  const bi = (ref / REF_SPAN) | 0;
  return recordKeyAt(blocks.bytes[bi]!, offsetIn(ref, bi), key, n);
}

export class Arena {
  readonly blocks: Blocks = blockTable([], []);
  /** Bytes used and bytes of live records, per block. */
  private readonly used: number[] = [];
  private readonly live: number[] = [];
  private active = -1;
  liveBytes = 0;
  garbageBytes = 0;

  constructor(private readonly blockBytes: number) {
    assert(blockBytes <= REF_SPAN, "a block fits the ref span");
  }

  /** A copy of the block table: what a reader keeps to resolve refs that may be compacted later. */
  view(): Blocks {
    return blockTable(this.blocks.bytes.slice(), this.blocks.text.slice());
  }

  /** Room for `n` bytes; returns the ref where they go (the caller writes them, then calls commit). */
  private reserve(n: number): number {
    const bi = this.active;
    if (bi < 0 || this.used[bi]! + n > this.blocks.bytes[bi]!.length) {
      assert(n <= REF_SPAN, `record of ${n} bytes fits a block`);
      this.active = this.newBlock(Math.max(this.blockBytes, n));
    }
    return this.active * REF_SPAN + this.used[this.active]!;
  }

  private newBlock(size: number): number {
    // Shared memory, so that a snapshot's records are copied out by a worker (src/store/snapshot-encoder.ts).
    return this.addBlock(new Uint8Array(new SharedArrayBuffer(size)), 0);
  }

  /** Puts `b` in a free slot of the table with `used` bytes of records in it; returns the slot. */
  private addBlock(b: Uint8Array, used: number): number {
    // Reuse a slot compaction freed; its old contents live on only in views that hold them.
    let bi = this.blocks.bytes.indexOf(null);
    if (bi < 0) {
      bi = this.blocks.bytes.length;
      this.used.push(0);
      this.live.push(0);
    }
    this.blocks.bytes[bi] = b;
    this.blocks.text[bi] = bufferOf(b);
    this.used[bi] = used;
    this.live[bi] = used;
    this.liveBytes += used;
    return bi;
  }

  /**
   * Appends a record for a put; `value` is bytes [vs, ve) of `src`. Returns its ref. `wide`: with
   * createRev and version in 8-byte form, for rebaseCounts.
   */
  append(key: string, keyBytes: number, src: Uint8Array, vs: number, ve: number, rev: number, createRev: number, version: number, wide = false): number {
    const n = recordBytes(keyBytes, ve - vs, rev, createRev, version, wide);
    const ref = this.reserve(n);
    const bi = this.active;
    const b = this.blocks.bytes[bi]!;
    const p = writeRecord(b, this.used[bi]!, key, keyBytes, src, vs, ve, rev, createRev, version, wide);
    assert(p - this.used[bi]! === n, "record size as measured");
    this.commit(bi, n);
    return ref;
  }

  /**
   * Puts the record at `ref`, appended `wide` with counts of its own, on top of an earlier history
   * of the key, in place: createRev becomes `createRev`, and `version` versions come before its own.
   */
  rebaseCounts(ref: number, createRev: number, version: number): void {
    const r = locate(this.blocks, ref);
    assert(wideCounts(r), "a rebased record was appended wide");
    writeWideUint(r.b, writeWideUint(r.b, r.countsStart, createRev), version + r.version);
  }

  /**
   * Takes `records` (whole records back to back: a snapshot chunk, a view into the file just read)
   * as a block of its own, without copying; it is full, never appended to. Returns its index.
   */
  adopt(records: Uint8Array): number {
    assert(records.length <= REF_SPAN, "an adopted block fits the ref span");
    return this.addBlock(records, records.length);
  }

  /** Copies bytes [start, end) of `src` (whole records, e.g. a snapshot chunk) in; returns the ref of `start`. */
  appendRecords(src: Uint8Array, start: number, end: number): number {
    const n = end - start;
    const ref = this.reserve(n);
    const bi = this.active;
    copyBytes(this.blocks.bytes[bi]!, this.used[bi]!, src, start, end);
    this.commit(bi, n);
    return ref;
  }

  /** Moves the live record at `ref` (ending at block offset `end`) to the end of the arena; returns its new ref. */
  relocate(ref: number, end: number): number {
    const bi = (ref / REF_SPAN) | 0;
    const start = offsetIn(ref, bi);
    const moved = this.appendRecords(this.blocks.bytes[bi]!, start, end);
    this.live[bi]! -= end - start;
    this.liveBytes -= end - start;
    return moved;
  }

  private commit(bi: number, n: number): void {
    this.used[bi]! += n;
    this.live[bi]! += n;
    this.liveBytes += n;
  }

  /** The record at `ref` (`n` bytes long) is no longer anyone's current state. */
  release(ref: number, n: number): void {
    const bi = (ref / REF_SPAN) | 0;
    this.live[bi]! -= n;
    this.liveBytes -= n;
    this.garbageBytes += n;
  }

  /**
   * The block most worth compacting (the most garbage, never the one being appended to), once
   * garbage passes `minGarbageBytes`; else -1.
   */
  compactionVictim(minGarbageBytes: number): number {
    if (this.garbageBytes < minGarbageBytes) return -1;
    let best = -1;
    let bestGarbage = 0;
    for (let bi = 0; bi < this.used.length; bi++) {
      if (bi === this.active || this.blocks.bytes[bi] === null) continue;
      const garbage = this.used[bi]! - this.live[bi]!;
      if (garbage > bestGarbage) {
        best = bi;
        bestGarbage = garbage;
      }
    }
    return best;
  }

  /** Bytes used in block `bi` (records are contiguous from 0). */
  usedBytes(bi: number): number {
    return this.used[bi]!;
  }

  /** Drops a compacted block (its live records were all moved): views that hold it keep it. */
  dropBlock(bi: number): void {
    assert(this.live[bi] === 0, "a dropped block holds no live record");
    this.garbageBytes -= this.used[bi]!;
    this.blocks.bytes[bi] = null;
    this.blocks.text[bi] = null;
    this.used[bi] = 0;
  }

  /** Bytes of memory the blocks take (for stats). */
  get allocatedBytes(): number {
    let n = 0;
    for (const b of this.blocks.bytes) if (b) n += b.length;
    return n;
  }
}
