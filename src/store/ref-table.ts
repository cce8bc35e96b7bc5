// The slot table: each live key's current arena ref, at a slot the key keeps for as long as it exists.
// The hash map and the B-tree map a key to its slot, so an overwrite changes one number here and
// neither structure (a B-tree set is ~20 cache-missing string compares, and after a clone it copies
// the path). Views share the table's pages copy-on-write, as the B-tree shares its nodes.

import { assert } from "../assert.ts";

const PAGE_BITS = 10;
/** Slots per page: 8 KiB of refs, copied when first written after a view. */
const PAGE_SLOTS = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SLOTS - 1;

/** The table as of one view(): what a range scan or a snapshot resolves its slots through. */
export type RefPages = readonly Float64Array[];

export function refAt(pages: RefPages, slot: number): number {
  return pages[slot >> PAGE_BITS]![slot & PAGE_MASK]!;
}

export class RefTable {
  private pages: Float64Array[] = [];
  /** The view count when each page was last made private; a page from before the last view is shared. */
  private pageEpoch: number[] = [];
  private epoch = 0;
  /** Slots of deleted keys, reused before the table grows. */
  private free: number[] = [];
  private next = 0;

  /** Slots in use. */
  get size(): number {
    return this.next - this.free.length;
  }

  get(slot: number): number {
    return refAt(this.pages, slot);
  }

  set(slot: number, ref: number): void {
    const p = slot >> PAGE_BITS;
    if (this.pageEpoch[p] !== this.epoch) {
      this.pages[p] = this.pages[p]!.slice(); // a view holds the old page
      this.pageEpoch[p] = this.epoch;
    }
    this.pages[p]![slot & PAGE_MASK] = ref;
  }

  /** A slot for a new key, holding `ref`. */
  alloc(ref: number): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.next++;
      if (slot >> PAGE_BITS === this.pages.length) {
        this.pages.push(new Float64Array(PAGE_SLOTS));
        this.pageEpoch.push(this.epoch);
      }
    }
    this.set(slot, ref);
    return slot;
  }

  /** The key at `slot` was deleted; a view taken before keeps seeing its ref. */
  release(slot: number): void {
    assert(slot < this.next, "a released slot was allocated");
    this.set(slot, -1);
    this.free.push(slot);
  }

  /** Fills an empty table with `refs` at slots 0…n−1 (open builds the index in one pass). */
  load(refs: readonly number[]): void {
    assert(this.next === 0, "load into an empty table");
    for (let from = 0; from < refs.length; from += PAGE_SLOTS) {
      const page = new Float64Array(PAGE_SLOTS);
      const to = Math.min(refs.length, from + PAGE_SLOTS);
      for (let i = from; i < to; i++) page[i - from] = refs[i]!;
      this.pages.push(page);
      this.pageEpoch.push(this.epoch);
    }
    this.next = refs.length;
  }

  /** The pages as of now, shared until either side writes them. O(pages). */
  view(): RefPages {
    this.epoch++;
    return this.pages.slice();
  }

  /** HARMONYDB_VERIFY=1: `slots` (each live key's) are exactly the slots in use, none free. */
  verify(slots: Iterable<number>): void {
    const seen = new Uint8Array(this.next);
    let n = 0;
    for (const s of slots) {
      assert(s >= 0 && s < this.next && seen[s] === 0, `slot ${s} is in range and held by one key`);
      assert(this.get(s) >= 0, `slot ${s} holds a ref`);
      seen[s] = 1;
      n++;
    }
    for (const s of this.free) assert(seen[s] === 0 && this.get(s) === -1, `free slot ${s} is held by no key`);
    assert(n + this.free.length === this.next, "every slot is either held or free");
  }
}
