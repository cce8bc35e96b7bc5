// The in-memory index of durable data: a hash map for point reads and a B-tree (sorted-btree) for
// order, both from key to a slot (src/store/ref-table.ts) holding the ref into the arena (src/store/arena.ts)
// where the key's record lives.

import type BTree from "sorted-btree";
import { bulkLoad } from "sorted-btree/extended/bulkLoad";
import union from "sorted-btree/extended/union";
import { type Arena, locate, recordKeyIs, REF_SPAN, type Blocks } from "./arena.ts";
import type { Located } from "../format/record.ts";
import { assert } from "../assert.ts";
import { hashBytes, KeyTable } from "./key-table.ts";
import * as L from "../limits.ts";
import { refAt, type RefPages, type RefTable } from "./ref-table.ts";
import { valueDecoder } from "../codec/cbor.ts";
import { INFO_U8, INFO_U64, MAJOR_BYTES, MAJOR_TEXT, SIMPLE_FALSE, SIMPLE_NULL, SIMPLE_TRUE, TAG_UINT8ARRAY, TAG_UINT8ARRAY_HEAD, headArgBytes, headArgument, majorOf } from "../codec/cbor-head.ts";
import { decodeKey } from "../format/decoder.ts";
import { utf8Bytes, utf8Scratch, utf8ToScratch, type Op } from "../format/encoder.ts";

/** The tree's branching factor; every tree of the index has it (union() requires the same). */
export const BTREE_NODE_SIZE = 32;

/**
 * New keys in increasing order wait in the run, at most this many, and then join the tree as one
 * bulk-loaded run (see KeyIndex.runKeys).
 */
const RUN_KEYS_MAX = 1024;

/**
 * A shorter run goes into the tree key by key: union()'s own overhead would cost more (a tree of 1M,
 * a run in one gap: 698 ns a key as a union of 16 against 451 one by one; 289 against 381 at 32).
 */
const RUN_UNION_MIN = 32;

/** Plain UTF-16 code-unit order; faster than sorted-btree's type-checking default comparator. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A value captured for later (a watcher's queue): the block it is in stays alive with it. */
export interface ValueHandle {
  b: Uint8Array;
  text: Buffer;
  start: number;
  end: number;
}

export interface EntryInfo {
  value: unknown;
  rev: number;
  createRev: number;
  version: number;
}

/**
 * The index as of one moment, for a range scan or a snapshot: O(1) copy-on-write clones of the tree
 * (key → slot) and of the slot table's pages, and a copy of the arena's block table, so later
 * writes and compaction do not show through.
 */
export class IndexView {
  constructor(
    readonly tree: BTree<string, number>,
    private readonly refs: RefPages,
    private readonly blockTable: Blocks,
  ) {}

  /** The value of the key at `slot` (a value of `tree`). */
  value(slot: number): unknown {
    const r = locate(this.blockTable, refAt(this.refs, slot));
    return materialize(r.b, r.text, r.valueStart, r.valueEnd);
  }

  /** The key at `slot` with its value freshly decoded and its revisions, as getEntry gives it. */
  entry(slot: number): EntryInfo {
    const r = locate(this.blockTable, refAt(this.refs, slot));
    const { rev, createRev, version } = r;
    return { value: materialize(r.b, r.text, r.valueStart, r.valueEnd), rev, createRev, version };
  }

  /** The entry of `key` at `slot`, as a range hands it out: its value freshly decoded, and its revision. */
  item(key: string, slot: number): { key: string; value: unknown; rev: number } {
    const r = locate(this.blockTable, refAt(this.refs, slot));
    const rev = r.rev;
    return { key, value: materialize(r.b, r.text, r.valueStart, r.valueEnd), rev };
  }

  /** The entry of `key` at `slot` without its value (a keys-only range): only the record's head is read. */
  keyItem(key: string, slot: number): { key: string; value: undefined; rev: number } {
    return { key, value: undefined, rev: locate(this.blockTable, refAt(this.refs, slot)).rev };
  }

  /** The record of the key at `slot` (a shared scratch object, valid until the next locate). */
  record(slot: number): Located {
    return locate(this.blockTable, refAt(this.refs, slot));
  }

  /** Where the record of the key at `slot` is, in blocks(). */
  ref(slot: number): number {
    return refAt(this.refs, slot);
  }

  /** The arena's blocks as of this view. */
  blocks(): (Uint8Array | null)[] {
    return this.blockTable.bytes;
  }
}

/**
 * The map answers point reads in O(1) (a B-tree lookup of a random key costs ~20 string compares and
 * as many cache misses); the tree serves ordered ranges and O(1) copy-on-write views. Both give a
 * key's slot, which it keeps until deleted: an overwrite touches the slot table only.
 * Open (src/store/replay.ts) builds only the tree: the map stays empty ("deferred") until the
 * first fillMap call, and is then filled in the background; until it is complete, a key missing
 * from it is looked up in the tree. Once filling began every change updates both, so a key the map
 * has is current.
 */
export class KeyIndex {
  private readonly map = new KeyTable();
  /** The longest key put in the map, in UTF-8 bytes. */
  private mapKeyBytesMax = 0;
  private mapComplete = false;
  private mapDeferred = true;
  /** Where fillMap goes on from (the last key it filled). */
  private fillFrom: string | undefined = undefined;
  /** The block being compacted (−1: none) and how far. */
  private compacting = -1;
  private compactPos = 0;
  /**
   * The run: new keys not yet in the tree, each above the one before it, with their slots; the map
   * has them already. Keys written in increasing order (time-ordered ids, counters: the commonest
   * pattern) cost ~0.5 µs each to insert one by one into a tree of 1M, ~0.22 µs as a run that
   * sorted-btree's union() puts in as whole subtrees, when the run lies in one gap of the tree
   * (see ordered(): a run spread among the tree's keys goes in key by key). Whatever needs the
   * tree's order or its keys (views, deletes, verify) first moves the run in (ordered()); so does
   * a new key below the run's last one, which starts the next run.
   */
  private runKeys: string[] = [];
  private runSlots: number[] = [];

  /**
   * Takes over what open's replay (src/store/replay.ts) built: the arena, the slot table holding
   * refs into it, and the tree (ordered by compareKeys, BTREE_NODE_SIZE) from each key to its slot.
   */
  constructor(
    private readonly arena: Arena,
    private readonly refs: RefTable,
    private tree: BTree<string, number>,
  ) {}

  get size(): number {
    return this.tree.size + this.runKeys.length;
  }

  /**
   * The tree with the run moved in: every key, in order. As one bulk-loaded union only when the run
   * falls in one gap between the tree's keys (no tree key lies between its first and last), where
   * union() links in whole subtrees; a run spread among the tree's keys costs it a copy of much of
   * the tree (measured, tree of 1M: 17-38 µs a key against 2.5-3.3 one by one; two gaps, runs of
   * 16: 2.1 µs against 0.46, as HTTP PUTs from two wrk threads made them).
   */
  private ordered(): BTree<string, number> {
    const keys = this.runKeys;
    if (keys.length >= RUN_UNION_MIN && this.inOneGap(keys[0]!, keys[keys.length - 1]!)) {
      this.tree = union(this.tree, bulkLoad(keys, this.runSlots, BTREE_NODE_SIZE, compareKeys, 1), keepRight);
    } else {
      for (let i = 0; i < keys.length; i++) this.tree.set(keys[i]!, this.runSlots[i]!);
    }
    if (keys.length > 0) {
      this.runKeys = [];
      this.runSlots = [];
    }
    return this.tree;
  }

  /** Whether no key of the tree lies between `first` and `last` (neither is in it). */
  private inOneGap(first: string, last: string): boolean {
    const next = this.tree.nextHigherKey(first);
    return next === undefined || next > last;
  }

  /** Puts a new key (the map has it, unless deferred) in order, by way of the run. */
  private insertOrdered(key: string, slot: number): void {
    // (While the map is deferred, reads find keys in the tree only.)
    if (this.mapDeferred) return void this.tree.set(key, slot);
    const n = this.runKeys.length;
    if (n === RUN_KEYS_MAX || (n > 0 && key < this.runKeys[n - 1]!)) this.ordered();
    this.runKeys.push(key);
    this.runSlots.push(slot);
  }

  private slotOf(key: string): number | undefined {
    if (this.mapDeferred) return this.tree.get(key);
    // (UTF-16 units ≤ UTF-8 bytes: a longer string than any key in the map is not in it.)
    const n = key.length > this.mapKeyBytesMax ? -1 : scratchKey(key);
    if (n < 0) return this.mapComplete ? undefined : this.tree.get(key);
    return this.lookup(key, hashBytes(utf8Scratch, 0, n), n);
  }

  /**
   * The slot of `key`, whose UTF-8 (`n` bytes, hash `h`) is in utf8Scratch: from the map, or from the
   * tree while the map fills.
   */
  private lookup(key: string, h: number, n: number): number | undefined {
    const slot = this.map.find(h, n, this.isScratchKey);
    if (slot >= 0) return slot;
    return this.mapComplete ? undefined : this.tree.get(key);
  }

  /** Whether `slot` holds the key in utf8Scratch[0, n) (for the map). */
  private readonly isScratchKey = (slot: number, n: number): boolean => recordKeyIs(this.arena.blocks, this.refs.get(slot), utf8Scratch, n);

  /** Whether `slot` holds the record at `ref` (for the map: is that record its key's current one). */
  private readonly holdsRef = (slot: number, ref: number): boolean => this.refs.get(slot) === ref;

  /**
   * The map's hash of a stored `key` (well-formed: it came from UTF-8 or passed checkKey), its
   * UTF-8 left in utf8Scratch.
   */
  private hashOf(key: string): number {
    const n = scratchKey(key);
    assert(n >= 0, "a stored key has a UTF-8 form");
    if (n > this.mapKeyBytesMax) this.mapKeyBytesMax = n;
    return hashBytes(utf8Scratch, 0, n);
  }

  private refOf(key: string): number | undefined {
    const slot = this.slotOf(key);
    return slot === undefined ? undefined : this.refs.get(slot);
  }

  has(key: string): boolean {
    return this.slotOf(key) !== undefined;
  }

  /** The value, freshly decoded (bytes copied), or undefined. */
  get(key: string): unknown {
    const ref = this.refOf(key);
    if (ref === undefined) return undefined;
    const r = locate(this.arena.blocks, ref);
    return materialize(r.b, r.text, r.valueStart, r.valueEnd);
  }

  getEntry(key: string): EntryInfo | undefined {
    const ref = this.refOf(key);
    if (ref === undefined) return undefined;
    const r = locate(this.arena.blocks, ref);
    const { rev, createRev, version } = r;
    return { value: materialize(r.b, r.text, r.valueStart, r.valueEnd), rev, createRev, version };
  }

  /** The key's revision, 0 when it does not exist. */
  revOf(key: string): number {
    const ref = this.refOf(key);
    return ref === undefined ? 0 : locate(this.arena.blocks, ref).rev;
  }

  handle(key: string): ValueHandle | null {
    const ref = this.refOf(key);
    if (ref === undefined) return null;
    const r = locate(this.arena.blocks, ref);
    return { b: r.b, text: r.text, start: r.valueStart, end: r.valueEnd };
  }

  view(): IndexView {
    return new IndexView(this.ordered().clone(), this.refs.view(), this.arena.view());
  }

  /** Bytes of the current records: about the size of a snapshot of this index. */
  get liveBytes(): number {
    return this.arena.liveBytes;
  }

  /** Memory the values take: allocated blocks, live records, garbage awaiting compaction. */
  memory(): { arenaBytes: number; liveBytes: number; garbageBytes: number } {
    return { arenaBytes: this.arena.allocatedBytes, liveBytes: this.arena.liveBytes, garbageBytes: this.arena.garbageBytes };
  }

  /** Applies one entry from the live path; each put's value bytes are copied into the arena. */
  apply(rev: number, ops: Op[]): void {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.length === 1) this.remove(op[0]);
      else this.store(op[0], utf8Bytes(op[0]), op[1], 0, op[1].length, rev);
    }
    this.compactSome(L.arenaCompactRecordsPerOp * (ops.length + 1));
  }

  /** Applies an entry of one put, `key` (of `keyBytes` UTF-8 bytes) to bytes [vs, ve) of `src`, copied in. */
  applyPut(rev: number, key: string, keyBytes: number, src: Uint8Array, vs: number, ve: number): void {
    this.store(key, keyBytes, src, vs, ve, rev);
    this.compactSome(L.arenaCompactRecordsPerOp * 2);
  }

  private store(key: string, keyBytes: number, src: Uint8Array, vs: number, ve: number, rev: number): void {
    // One UTF-8 pass and one hash serve both the lookup and, for a new key, the map insert.
    let h = 0;
    let slot: number | undefined;
    if (this.mapDeferred) slot = this.tree.get(key);
    else {
      h = this.hashOf(key);
      slot = this.lookup(key, h, keyBytes);
    }
    if (slot === undefined) {
      const ref = this.arena.append(key, keyBytes, src, vs, ve, rev, rev, 1);
      const s = this.refs.alloc(ref);
      if (!this.mapDeferred) this.map.insert(h, s);
      this.insertOrdered(key, s);
      return;
    }
    const prev = this.refs.get(slot);
    const p = locate(this.arena.blocks, prev);
    const { createRev, version } = p;
    this.arena.release(prev, p.end - p.start);
    this.refs.set(slot, this.arena.append(key, keyBytes, src, vs, ve, rev, createRev, version + 1));
  }

  private remove(key: string): void {
    const slot = this.slotOf(key);
    if (slot === undefined) return;
    const prev = this.refs.get(slot);
    const p = locate(this.arena.blocks, prev);
    this.arena.release(prev, p.end - p.start);
    if (!this.mapDeferred) {
      const h = this.hashOf(key);
      if (this.mapComplete || this.map.has(h, slot)) this.map.remove(h, slot); // (while filling, it may not be there yet)
    }
    this.refs.release(slot);
    this.ordered().delete(key);
  }

  /** Whether the hash map holds every key yet (see fillMap). */
  get mapFilled(): boolean {
    return this.mapComplete;
  }

  /**
   * Adds up to `max` keys the map is missing, in key order from where the last call stopped.
   * Returns true once the map is complete.
   */
  fillMap(max: number): boolean {
    if (this.mapComplete) return true;
    if (this.mapDeferred) this.map.reserve(this.tree.size);
    this.mapDeferred = false;
    let n = 0;
    for (const [key, slot] of this.tree.entries(this.fillFrom)) {
      if (n++ >= max) {
        this.fillFrom = key;
        return false;
      }
      // A key keeps its slot: the map may have it already (a write since filling began), with this one.
      const h = this.hashOf(key);
      if (!this.map.has(h, slot)) this.map.insert(h, slot);
    }
    this.mapComplete = true;
    return true;
  }

  /**
   * Work for a quiet moment, up to `budget` keys or records: fill the map, then compact. Returns
   * true when there is none left.
   */
  backgroundWork(budget: number): boolean {
    if (!this.mapComplete) {
      this.fillMap(budget);
      return false;
    }
    return !this.compactSome(budget);
  }

  /**
   * Reclaims garbage a little at a time: moves the live records of the block with the most garbage
   * to the end of the arena, then drops the block; looks at up to `budget` records. Each write
   * applied brings a few records' worth, so garbage is reclaimed as fast as overwrites make it.
   * Not while the map is incomplete (replay, filling): telling a live record from garbage would
   * then cost a B-tree lookup each. Returns whether it did anything.
   */
  private compactSome(budget: number): boolean {
    if (!this.mapComplete) return false;
    if (this.compacting < 0) {
      this.compacting = this.arena.compactionVictim(Math.max(L.arenaCompactGarbageBytesMin, this.arena.liveBytes));
      this.compactPos = 0;
      if (this.compacting < 0) return false;
    }
    const bi = this.compacting;
    const used = this.arena.usedBytes(bi);
    const blocks = this.arena.blocks;
    for (let n = 0; n < budget && this.compactPos < used; n++) {
      const ref = bi * REF_SPAN + this.compactPos;
      const r = locate(blocks, ref);
      const next = r.end;
      // Live if its key's slot holds this very record: no string made, no key compared.
      const slot = this.map.find(hashBytes(r.b, r.keyStart, r.keyEnd), ref, this.holdsRef);
      if (slot >= 0) this.refs.set(slot, this.arena.relocate(ref, next));
      this.compactPos = next;
    }
    if (this.compactPos >= used) {
      this.arena.dropBlock(bi);
      this.compacting = -1;
    }
    return true;
  }

  /** HARMONYDB_VERIFY=1: both structures agree and every record is consistent. */
  verify(lastRev: number): void {
    this.ordered().checkValid();
    if (this.mapComplete) assert(this.tree.size === this.map.size, "tree and map hold the same keys");
    if (this.mapDeferred) assert(this.map.size === 0, "a deferred map is empty");
    for (const [h, slot] of this.map.entries()) {
      const r = locate(this.arena.blocks, this.refs.get(slot));
      assert(hashBytes(r.b, r.keyStart, r.keyEnd) === h, "each map entry sits under its key's hash");
    }
    this.refs.verify(this.tree.values());
    let live = 0;
    for (const [key, slot] of this.tree.entries()) {
      assert(this.slotOf(key) === slot, `map and tree agree on ${key}`);
      const r = locate(this.arena.blocks, this.refs.get(slot));
      assert(keyOf(r) === key, `the record for ${key} holds that key`);
      assert(r.rev >= r.createRev && r.rev <= lastRev && r.version >= 1, `index entry for ${key} is consistent`);
      live += r.end - r.start;
    }
    assert(live === this.arena.liveBytes, `live bytes ${live} match the arena's count ${this.arena.liveBytes}`);
  }
}

// (Open's replay checks each value as it loads it: src/store/replay.ts.)
export { checkValue };

/** union()'s choice for a key in both trees (never happens: the run holds only new keys). */
function keepRight(_key: string, _left: number, right: number): number {
  return right;
}

/**
 * Writes `key` as UTF-8 to utf8Scratch; returns its length, or −1 for a key that is not well-formed
 * (no record holds one: it has no UTF-8 form of its own).
 */
function scratchKey(key: string): number {
  const n = utf8ToScratch(key);
  return n === key.length || key.isWellFormed() ? n : -1;
}

function keyOf(r: Located): string {
  return decodeKey(r.b, r.text, r.keyStart, r.keyEnd);
}

/** A value cbor-x wrote for a Uint8Array: tag 64, then a byte string. */
function isTaggedBytes(b: Uint8Array, start: number): boolean {
  return b[start] === TAG_UINT8ARRAY_HEAD && b[start + 1] === TAG_UINT8ARRAY && majorOf(b[start + 2]!) === MAJOR_BYTES;
}

/** A text string head with its length in at most 4 bytes (longer and indefinite ones go to cbor-x). */
function isShortText(first: number): boolean {
  return majorOf(first) === MAJOR_TEXT && first < (MAJOR_TEXT | INFO_U64);
}

/**
 * Throws unless the CBOR at [start, end) is one whole value that materialize() reads back: a tagged
 * Uint8Array or a text string whose declared length is exactly its span (checked, not decoded), or
 * anything else cbor-x decodes.
 */
function checkValue(b: Uint8Array, start: number, end: number): void {
  const first = b[start]!;
  if (isTaggedBytes(b, start)) {
    const head = b[start + 2]!;
    if (headArgument(b, start + 2) !== end - (start + 3 + headArgBytes(head))) throw new Error("byte string length does not match its value");
    return;
  }
  if (isShortText(first)) {
    if (headArgument(b, start) !== end - (start + 1 + headArgBytes(first))) throw new Error("text string length does not match its value");
    return;
  }
  valueDecoder.decode(b.slice(start, end)); // throws on what does not decode, or on bytes after it
}

/** The value at [start, end) of a block, as the caller gets it: a fresh copy of anything mutable. */
export function materialize(b: Uint8Array, text: Buffer, start: number, end: number): unknown {
  const first = b[start]!;
  if (isTaggedBytes(b, start)) {
    // An exact copy: `slice` of a plain Uint8Array is the cheapest fresh array.
    return b.slice(start + 3 + headArgBytes(b[start + 2]!), end);
  }
  if (isShortText(first)) return text.toString("utf8", start + 1 + headArgBytes(first), end);
  if (first < INFO_U8) return first; // small unsigned integers: the head is the value
  if (first === SIMPLE_TRUE) return true;
  if (first === SIMPLE_FALSE) return false;
  if (first === SIMPLE_NULL) return null;
  return valueDecoder.decode(b.slice(start, end));
}

export function materializeHandle(h: ValueHandle): unknown {
  return materialize(h.b, h.text, h.start, h.end);
}
