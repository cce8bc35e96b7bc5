// The public types of harmonydb/kv: Deno.Kv's shapes (Deno's `lib.deno.unstable.d.ts`, denokv's npm
// kv_types.ts), so code written for Deno KV type-checks against openKv.

import type { KvKey } from "./key.ts";
import type { KvU64 } from "./value.ts";

export type { KvKey, KvKeyPart } from "./key.ts";

/** Both levels read the newest durable state here (one process, one copy). */
export type KvConsistencyLevel = "strong" | "eventual";

export interface KvEntry<T> {
  key: KvKey;
  value: T;
  /** The revision of the commit that wrote it: 16 hex digits, then "0000". */
  versionstamp: string;
}

export type KvEntryMaybe<T> = KvEntry<T> | { key: KvKey; value: null; versionstamp: null };

export interface KvCommitResult {
  ok: true;
  versionstamp: string;
}

export interface KvCommitError {
  ok: false;
}

export type KvListSelector = { prefix: KvKey } | { prefix: KvKey; start: KvKey } | { prefix: KvKey; end: KvKey } | { start: KvKey; end: KvKey };

export interface KvListOptions {
  limit?: number;
  /** Where an earlier list stopped (its iterator's `cursor`): this one starts just past it. */
  cursor?: string;
  reverse?: boolean;
  consistency?: KvConsistencyLevel;
  /** Entries read per batch (each batch is one consistent view); at most 1,000. */
  batchSize?: number;
}

export interface KvListIterator<T> extends AsyncIterableIterator<KvEntry<T>> {
  /** Where the iteration stands: pass it as `cursor` to go on from here ("" once done). */
  readonly cursor: string;
}

/** The check of an atomic write: the key's versionstamp must be this (null: the key must not exist). */
export interface AtomicCheck {
  key: KvKey;
  versionstamp: string | null;
}

/** A set's key may end with Kv.commitVersionstamp(): the commit's versionstamp goes there. */
export type KvWriteKey = KvKey | readonly [...KvKey, symbol];

export type KvMutation =
  | { type: "set"; key: KvWriteKey; value: unknown; expireIn?: number }
  | { type: "delete"; key: KvKey }
  | { type: "sum" | "min" | "max"; key: KvKey; value: KvU64 };
