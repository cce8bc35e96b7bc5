// Kv.list: a selector → a byte range of tuple keys → an engine range, read in batches (each batch
// one consistent view), with Deno's cursors: the last key's bytes past the selector's common prefix,
// base64url with padding, as Deno 2.9.6 writes them.

import { InvalidArgumentError, InvalidKeyError, type Db } from "../index.ts";
import * as L from "../limits.ts";
import { decodeKey, encodeKey, engineKey, keyBytes, type KvKey } from "./key.ts";
import { versionstamp } from "./atomic.ts";
import type { KvEntry, KvListIterator, KvListOptions, KvListSelector } from "./types.ts";
import { liveStored, valueFrom } from "./value.ts";

/** A tuple key's bytes as a read's bound: 2,049 bytes at most, with the `extra` the read adds to it. */
export function readKeyBytes(key: KvKey, extra = 0): Uint8Array {
  if (!Array.isArray(key)) throw new InvalidKeyError("a key must be an array of key parts");
  const bytes = encodeKey(key);
  if (bytes.length + extra > L.kvReadKeyBytesMax) throw new InvalidKeyError(`Key too large for read (max ${L.kvReadKeyBytesMax} bytes)`);
  return bytes;
}

/** An engine entry of harmonydb/kv as a KvEntry, or undefined if it has expired at `now`. */
export function kvEntry<T>(key: string, value: unknown, rev: number, now: number): KvEntry<T> | undefined {
  const live = liveStored({ value, rev }, now);
  return live && { key: decodeKey(keyBytes(key)), value: valueFrom(live.stored) as T, versionstamp: versionstamp(rev) };
}

interface Bounds {
  /** [start, end) as tuple bytes, and the prefix every key between them shares (what cursors leave out). */
  start: Uint8Array;
  end: Uint8Array;
  common: Uint8Array;
}

export class ListIterator<T> implements KvListIterator<T> {
  readonly #db: Db;
  readonly #reverse: boolean;
  readonly #limit: number | undefined;
  readonly #batchSize: number;
  readonly #common: Uint8Array;
  /** The engine range still to read: [#gte, #lt). */
  #gte: string;
  #lt: string;
  /** The batch read and not yet handed out, with each entry's engine key (its exact bytes, for the cursor). */
  #batch: { entry: KvEntry<T>; key: string }[] = [];
  #lastBatch = false;
  #count = 0;
  #cursor: string | null;

  /** @internal use Kv.list() */
  constructor(db: Db, selector: KvListSelector, options: KvListOptions = {}) {
    const { limit, batchSize } = checkOptions(options);
    this.#db = db;
    this.#reverse = options.reverse === true;
    this.#limit = limit;
    this.#batchSize = batchSize;
    const b = bounds(selector);
    this.#common = b.common;
    // An empty cursor is none, as in Deno: a finished listing's "" starts over.
    this.#cursor = options.cursor || null;
    if (options.cursor) continueAfter(b, options.cursor, this.#reverse);
    this.#gte = engineKey(b.start);
    this.#lt = engineKey(b.end);
  }

  get cursor(): string {
    if (this.#cursor === null) throw new InvalidArgumentError("Cannot get cursor before first iteration");
    return this.#cursor;
  }

  async next(): Promise<IteratorResult<KvEntry<T>, undefined>> {
    // At the limit the cursor stays on the last entry: the next page starts there.
    if (this.#limit !== undefined && this.#count >= this.#limit) return { done: true, value: undefined };
    if (this.#batch.length === 0 && !this.#lastBatch) this.pull();
    const next = this.#batch.shift();
    if (next === undefined) return this.finish();
    this.#count++;
    this.#cursor = encodeCursor(keyBytes(next.key).subarray(this.#common.length));
    return { done: false, value: next.entry };
  }

  async return(): Promise<IteratorResult<KvEntry<T>, undefined>> {
    this.#batch = [];
    this.#lastBatch = true;
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Nothing is left: the cursor is "" from now on. */
  private finish(): IteratorResult<KvEntry<T>, undefined> {
    this.#cursor = "";
    return { done: true, value: undefined };
  }

  /** Reads the next batch from one view: up to batchSize entries that have not expired. */
  private pull(): void {
    const now = Date.now();
    const batch: { entry: KvEntry<T>; key: string }[] = [];
    let last: string | null = null;
    for (const item of this.#db.view().range({ gte: this.#gte, lt: this.#lt, reverse: this.#reverse })) {
      last = item.key;
      const entry = kvEntry<T>(item.key, item.value, item.rev, now);
      if (entry !== undefined) batch.push({ entry, key: item.key });
      if (batch.length === this.#batchSize) break;
    }
    this.#batch = batch;
    this.#lastBatch = batch.length < this.#batchSize;
    if (last === null) return;
    if (this.#reverse) this.#lt = last;
    else this.#gte = last + "\u0000"; // the first key after it
  }
}

function checkOptions(o: KvListOptions): { limit: number | undefined; batchSize: number } {
  if (o.limit !== undefined && !(Number.isSafeInteger(o.limit) && o.limit > 0)) throw new InvalidArgumentError(`Limit must be a positive integer: received ${o.limit}`);
  let batchSize = o.batchSize ?? o.limit ?? L.kvListBatchDefault;
  if (!(Number.isSafeInteger(batchSize) && batchSize > 0)) throw new InvalidArgumentError("batchSize must be positive");
  if (o.batchSize === undefined) batchSize = Math.min(batchSize, L.kvListBatchDefaultMax);
  if (batchSize > L.kvEntriesMax) throw new InvalidArgumentError(`Too many entries (max ${L.kvEntriesMax})`);
  return { limit: o.limit, batchSize };
}

/** The byte range a selector names (Deno's: a prefix alone covers prefix + 0x00 up to prefix + 0xff). */
function bounds(s: KvListSelector): Bounds {
  const has = (k: string) => Object.hasOwn(s, k) && (s as Record<string, unknown>)[k] !== undefined;
  const part = (k: string) => readKeyBytes((s as Record<string, KvKey>)[k]!);
  if (has("prefix")) {
    if (has("start") && has("end")) throw new InvalidArgumentError("Selector can not specify both 'start' and 'end' key when specifying 'prefix'");
    const p = part("prefix");
    const start = has("start") ? part("start") : concat(p, 0x00);
    const end = has("end") ? part("end") : concat(p, 0xff);
    // (strictly inside: the prefix's own key is not in its keyspace, as in Deno)
    if (has("start") && !(startsWith(start, p) && start.length > p.length)) throw new InvalidArgumentError("Start key is not in the keyspace defined by prefix");
    if (has("end") && !(startsWith(end, p) && end.length > p.length)) throw new InvalidArgumentError("End key is not in the keyspace defined by prefix");
    return { start, end, common: p };
  }
  if (!has("start") || !has("end")) throw new InvalidArgumentError("Selector must specify either 'prefix' or both 'start' and 'end' key");
  const start = part("start");
  const end = part("end");
  if (compare(start, end) > 0) throw new InvalidArgumentError("Start key is greater than end key");
  return { start, end, common: start.subarray(0, commonLength(start, end)) };
}

/** Narrows `b` to what comes after the cursor's key, in the listing's direction. */
function continueAfter(b: Bounds, cursor: string, reverse: boolean): void {
  if (typeof cursor !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(cursor) || cursor.length % 4 === 1) throw new InvalidArgumentError("invalid cursor");
  const boundary = new Uint8Array([...b.common, ...Buffer.from(cursor, "base64url")]);
  if (reverse) {
    if (compare(boundary, b.end) < 0) b.end = boundary;
  } else {
    const after = concat(boundary, 0x00);
    if (compare(after, b.start) > 0) b.start = after;
  }
}

function encodeCursor(suffix: Uint8Array): string {
  const s = Buffer.from(suffix).toString("base64url");
  return s + "=".repeat((4 - (s.length % 4)) % 4);
}

function concat(a: Uint8Array, byte: number): Uint8Array {
  const out = new Uint8Array(a.length + 1);
  out.set(a);
  out[a.length] = byte;
  return out;
}

function startsWith(a: Uint8Array, p: Uint8Array): boolean {
  return a.length >= p.length && commonLength(a, p) === p.length;
}

function commonLength(a: Uint8Array, b: Uint8Array): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function compare(a: Uint8Array, b: Uint8Array): number {
  const n = commonLength(a, b);
  if (n < a.length && n < b.length) return a[n]! - b[n]!;
  return a.length - b.length;
}
