// Reads from one view of the index: db.view() (gets and ranges at one moment), and db.range()'s
// options as bounds on the B-tree walk, with the iterator that walks a view with them.

import { InvalidArgumentError } from "./errors.ts";
import type { IndexView } from "./store/key-index.ts";
import type { Entry, RangeOptions } from "./types.ts";
import { checkKeyType } from "./write/validate.ts";

/**
 * The database as it was at revision `rev`: every get and range of it reads one O(1)
 * copy-on-write view of the index, whatever is written after (as an LMDB read transaction, or
 * Deno KV's getMany and snapshot_read; docs/deno-kv.md §4). Nothing to release: the view is
 * garbage once unreferenced, and with it the arena blocks it alone kept.
 */
export class ReadView {
  constructor(
    private readonly v: IndexView,
    /** Every write up to this revision shows, none after it. */
    readonly rev: number,
  ) {}

  get(key: string): unknown {
    const slot = this.slotOf(key);
    return slot === undefined ? undefined : this.v.value(slot);
  }

  getEntry(key: string): Entry | undefined {
    const slot = this.slotOf(key);
    return slot === undefined ? undefined : this.v.entry(slot);
  }

  has(key: string): boolean {
    return this.slotOf(key) !== undefined;
  }

  /** As db.range(), on this view. */
  range(opts: RangeOptions = {}): Iterable<RangeItem> {
    const b = rangeBounds(opts);
    return { [Symbol.iterator]: () => new RangeIterator(this.v, b) };
  }

  private slotOf(key: string): number | undefined {
    checkKeyType(key);
    return this.v.tree.get(key);
  }
}

/** One entry of a range, a fresh object each. */
export interface RangeItem {
  key: string;
  value: unknown;
  rev: number;
}

export interface Bounds {
  lo: string | undefined;
  hi: string | undefined;
  aboveLo: (k: string) => boolean;
  belowHi: (k: string) => boolean;
  reverse: boolean;
  limit: number;
  keysOnly: boolean;
}

export function rangeBounds(o: RangeOptions): Bounds {
  const { prefix, gte, gt, lte, lt } = o;
  let lo = gte ?? gt;
  if (prefix !== undefined && (lo === undefined || prefix > lo)) lo = prefix;
  let hi = lte ?? lt;
  if (prefix !== undefined && hi === undefined && prefix.length > 0 && prefix.charCodeAt(prefix.length - 1) < 0xffff) {
    // Every key with the prefix sorts below the prefix with its last unit incremented.
    hi = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  }
  const limit = o.limit ?? Infinity;
  if (typeof limit !== "number" || Number.isNaN(limit)) throw new InvalidArgumentError("range limit must be a number");
  return {
    lo,
    hi,
    aboveLo: (k) => (gte === undefined || k >= gte) && (gt === undefined || k > gt) && (prefix === undefined || k >= prefix),
    belowHi: (k) =>
      (lte === undefined || k <= lte) && (lt === undefined || k < lt) && (prefix === undefined || k.startsWith(prefix) || k < prefix),
    reverse: o.reverse === true,
    limit,
    keysOnly: o.keysOnly === true,
  };
}

const DONE: IteratorResult<RangeItem> = { done: true, value: undefined };

/**
 * Walks `view` in key order (or reversed) within `b`, up to its limit. A plain iterator rather than a
 * generator, over the tree's entries with one reused pair, and one record lookup per entry for both
 * its value and its revision: a scan makes only the items it hands out.
 */
export class RangeIterator implements IterableIterator<RangeItem> {
  private readonly entries: Iterator<[string, number]>;
  private n = 0;

  constructor(
    private readonly view: IndexView,
    private readonly b: Bounds,
  ) {
    const pair: (string | number)[] = [];
    this.entries = b.reverse ? view.tree.entriesReversed(b.hi, pair) : view.tree.entries(b.lo, pair);
  }

  next(): IteratorResult<RangeItem> {
    const b = this.b;
    if (this.n >= b.limit) return DONE;
    for (;;) {
      const step = this.entries.next();
      if (step.done) return this.end();
      const key = step.value[0];
      // Past the far bound: done. Before the near bound (an exclusive start): skip; keys only move
      // away from it, so once one is past it every later one is.
      if (b.reverse ? !b.aboveLo(key) : !b.belowHi(key)) return this.end();
      if (this.n === 0 && (b.reverse ? !b.belowHi(key) : !b.aboveLo(key))) continue;
      this.n++;
      const slot = step.value[1];
      return { done: false, value: b.keysOnly ? this.view.keyItem(key, slot) : this.view.item(key, slot) };
    }
  }

  [Symbol.iterator](): IterableIterator<RangeItem> {
    return this;
  }

  private end(): IteratorResult<RangeItem> {
    this.n = Infinity;
    return DONE;
  }
}
