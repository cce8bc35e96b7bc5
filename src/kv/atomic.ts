// An atomic write of harmonydb/kv: checks and mutations, decided as one engine batch at its place in
// the write order (docs/deno-kv.md §4). Validation happens at commit(), as Deno's does.

import { InvalidArgumentError, InvalidKeyError, InvalidValueError, type BatchOp, type Db, type Newest } from "../index.ts";
import * as L from "../limits.ts";
import { expireAtOf, expiryKey } from "./expiry.ts";
import { compileEnqueue, enqueueOps, type EnqueueOptions, type QueueMessage } from "./queue.ts";
import { encodeKey, engineKey, KV_PREFIX, type KvKey } from "./key.ts";
import type { AtomicCheck, KvCommitError, KvCommitResult, KvMutation, KvWriteKey } from "./types.ts";
import { encodeStored, ENCODING, KvU64, le64, liveStored, storedOf, type Stored } from "./value.ts";

/** What a commit tells the Kv around it: expiries written (the sweeper), messages enqueued (the listener). */
export interface CommitHooks {
  expiring(expireAt: number): void;
  enqueued(): void;
}

const NO_HOOKS: CommitHooks = { expiring: () => {}, enqueued: () => {} };

/** The last part of a set's key that asks for the commit's versionstamp there (Kv.commitVersionstamp()). */
export const COMMIT_VERSIONSTAMP: unique symbol = Symbol("KvCommitVersionstamp");

const U64_MASK = (1n << 64n) - 1n;
const EMPTY = new Uint8Array(0);

/** The versionstamp of revision `rev`: 8 bytes big-endian, then 2 zero bytes, as hex. */
export function versionstamp(rev: number): string {
  return rev.toString(16).padStart(16, "0") + "0000";
}

/** A checked key's tuple bytes as written (2,048 at most, non-empty unless `emptyOk`). */
export function writeKeyBytes(key: KvKey, emptyOk = false): Uint8Array {
  if (!Array.isArray(key)) throw new InvalidKeyError("a key must be an array of key parts");
  if (key.length === 0 && !emptyOk) throw new InvalidKeyError("key cannot be empty");
  const bytes = encodeKey(key);
  if (bytes.length > L.kvKeyBytesMax) throw new InvalidKeyError(`Key too large for write (max ${L.kvKeyBytesMax} bytes)`);
  return bytes;
}

/** A check, compiled: its engine key and the revision it must have. */
export interface Check {
  key: string;
  /** The revision the key must have; 0: must not exist; −1: a versionstamp no revision has. */
  rev: number;
}

/** A mutation, compiled: its engine key and what it writes (a set's expireAt is in its Stored). */
export type Mutation =
  | { kind: "set"; key: string; stored: Stored; suffixed: boolean }
  | { kind: "delete"; key: string }
  | { kind: "sum" | "min" | "max"; key: string; operand: bigint };

export class AtomicOperation {
  readonly #db: Db;
  readonly #hooks: CommitHooks;
  readonly #checks: AtomicCheck[] = [];
  readonly #mutations: KvMutation[] = [];
  readonly #enqueues: [unknown, EnqueueOptions | undefined][] = [];

  /** @internal use Kv.atomic() */
  constructor(db: Db, hooks: CommitHooks = NO_HOOKS) {
    this.#db = db;
    this.#hooks = hooks;
  }

  check(...checks: AtomicCheck[]): this {
    this.#checks.push(...checks);
    return this;
  }

  mutate(...mutations: KvMutation[]): this {
    this.#mutations.push(...mutations);
    return this;
  }

  sum(key: KvKey, n: bigint): this {
    return this.mutate({ type: "sum", key, value: new KvU64(n) });
  }

  min(key: KvKey, n: bigint): this {
    return this.mutate({ type: "min", key, value: new KvU64(n) });
  }

  max(key: KvKey, n: bigint): this {
    return this.mutate({ type: "max", key, value: new KvU64(n) });
  }

  /** A key whose last part is Kv.commitVersionstamp() gets the commit's versionstamp there. */
  set(key: KvWriteKey, value: unknown, options?: { expireIn?: number }): this {
    return this.mutate({ type: "set", key, value, expireIn: options?.expireIn });
  }

  delete(key: KvKey): this {
    return this.mutate({ type: "delete", key });
  }

  /** A message for listenQueue, delivered once the commit is durable and `delay` ms have passed. */
  enqueue(value: unknown, options?: EnqueueOptions): this {
    this.#enqueues.push([value, options]);
    return this;
  }

  /**
   * Writes every mutation in one batch if every check holds against the newest state (an expired
   * entry counts as absent); else writes nothing and answers { ok: false }. Resolves once durable.
   */
  async commit(): Promise<KvCommitResult | KvCommitError> {
    const now = Date.now();
    const checks = this.#checks.map(compileCheck);
    if (checks.length > L.kvChecksMax) throw new InvalidArgumentError(`Too many checks (max ${L.kvChecksMax})`);
    if (this.#mutations.length + this.#enqueues.length > L.kvMutationsMax) throw new InvalidArgumentError(`Too many mutations (max ${L.kvMutationsMax})`);
    const mutations = this.#mutations.map((m) => compileMutation(m, now));
    const enqueues = this.#enqueues.map(([v, o]) => compileEnqueue(v, o, now, (k) => engineKey(writeKeyBytes(k as KvKey))));
    // Keys of checks and mutations, values and queue payloads count against the limit (as KV Connect counts them).
    const keyBytes = (k: string) => k.length - KV_PREFIX.length;
    const bytes =
      checks.reduce((n, c) => n + keyBytes(c.key), 0) +
      mutations.reduce((n, m) => n + keyBytes(m.key) + (m.kind === "set" ? m.stored.data.length : 8), 0) +
      enqueues.reduce((n, q) => n + q.payload.length, 0);
    if (bytes > L.kvCommitBytesMax) throw new InvalidArgumentError(`Total mutation size too large (max ${L.kvCommitBytesMax} bytes)`);
    const r = await commitMutations(this.#db, checks, mutations, this.#hooks, enqueues);
    return r.ok ? { ok: true, versionstamp: versionstamp(r.rev) } : { ok: false };
  }

  then(): never {
    throw new TypeError("'AtomicOperation' is not a promise: did you forget to call 'commit()'");
  }
}

/**
 * One commit as one engine batch (harmonydb/kv's and KV Connect's): every check against the
 * newest state, an expired entry counted as absent; if all hold, the mutations. Answers the
 * revision, or the indexes of the checks that failed (nothing written then). `expiring` hears of
 * each expiry written.
 */
export async function commitMutations(
  db: Db,
  checks: Check[],
  mutations: Mutation[],
  hooks: CommitHooks,
  enqueues: QueueMessage[] = [],
): Promise<{ ok: true; rev: number } | { ok: false; failed: number[] }> {
  let failed: number[] = [];
  const rev = await db.atomic((rev, read) => {
    const at = Date.now();
    failed = [];
    checks.forEach((c, i) => (liveStored(read(c.key), at)?.rev ?? 0) !== c.rev && failed.push(i));
    return failed.length === 0 ? [...batchOf(mutations, rev, read, at), ...enqueueOps(enqueues, rev)] : [];
  });
  if (failed.length > 0) return { ok: false, failed };
  for (const m of mutations) if (m.kind === "set" && m.stored.expireAt !== 0) hooks.expiring(m.stored.expireAt);
  if (enqueues.length > 0) hooks.enqueued();
  return { ok: true, rev };
}

function compileCheck(c: AtomicCheck): Check {
  const key = engineKey(writeKeyBytes(c.key));
  if (c.versionstamp === null) return { key, rev: 0 };
  if (typeof c.versionstamp !== "string" || !/^[0-9a-fA-F]{20}$/.test(c.versionstamp)) throw new InvalidArgumentError("Invalid check");
  const rev = Number.parseInt(c.versionstamp.slice(0, 16), 16);
  // Our versionstamps end in 0000 and hold a revision ≥ 1: any other can match nothing.
  return { key, rev: c.versionstamp.endsWith("0000") && Number.isSafeInteger(rev) && rev > 0 ? rev : -1 };
}

function compileMutation(m: KvMutation, now: number): Mutation {
  if (m === null || typeof m !== "object") throw new InvalidArgumentError("Invalid mutation");
  const suffixed = m.type === "set" && Array.isArray(m.key) && m.key.at(-1) === COMMIT_VERSIONSTAMP;
  const key = engineKey(writeKeyBytes((suffixed ? m.key.slice(0, -1) : m.key) as KvKey, suffixed));
  switch (m.type) {
    case "set":
      return { kind: "set", key, stored: checkedStored(m.value, expireAtFor(m.expireIn, now)), suffixed };
    case "delete":
      return { kind: "delete", key };
    case "sum":
    case "min":
    case "max":
      if (!(m.value instanceof KvU64)) throw new InvalidArgumentError(`Invalid mutation '${m.type}': its value must be a Deno.KvU64`);
      return { kind: m.type, key, operand: m.value.value };
    default:
      throw new InvalidArgumentError("Invalid mutation type");
  }
}

function expireAtFor(expireIn: number | undefined, now: number): number {
  if (expireIn === undefined) return 0;
  if (!Number.isSafeInteger(expireIn) || expireIn < 0) throw new InvalidArgumentError(`expireIn must be a non-negative integer: received ${expireIn}`);
  return now + expireIn;
}

function checkedStored(value: unknown, expireAt: number): Stored {
  const stored = storedOf(value, expireAt);
  if (stored.data.length > L.kvValueBytesMax) throw new InvalidValueError(`Value too large (max ${L.kvValueBytesMax} bytes)`);
  return stored;
}

/**
 * The engine ops of one commit at revision `rev`: each key's final state within the commit (sum,
 * min and max see what earlier mutations of the commit left), and its expiry index entry moved.
 */
export function batchOf(mutations: Mutation[], rev: number, read: (key: string) => Newest | undefined, now: number): BatchOp[] {
  const final = new Map<string, Stored | null>();
  const current = (key: string) => (final.has(key) ? final.get(key)! : (liveStored(read(key), now)?.stored ?? null));
  for (const m of mutations) {
    if (m.kind === "set") final.set(m.suffixed ? m.key + versionstampSuffix(rev) : m.key, m.stored);
    else if (m.kind === "delete") final.set(m.key, null);
    else final.set(m.key, combine(m.kind, current(m.key), m.operand));
  }
  const ops: BatchOp[] = [];
  for (const [key, stored] of final) {
    const old = read(key);
    const oldAt = expireAtOf(old); // an expired entry's too: its index entry goes with it
    const newAt = stored?.expireAt ?? 0;
    if (oldAt !== 0 && oldAt !== newAt) ops.push({ type: "delete", key: expiryKey(oldAt, key) });
    if (stored === null) {
      if (old !== undefined) ops.push({ type: "delete", key });
      continue;
    }
    ops.push({ type: "put", key, value: encodeStored(stored) });
    if (newAt !== 0 && newAt !== oldAt) ops.push({ type: "put", key: expiryKey(newAt, key), value: EMPTY });
  }
  return ops;
}

/** What SET_SUFFIX_VERSIONSTAMPED_KEY appends: a string part holding the versionstamp's hex (as denokv). */
function versionstampSuffix(rev: number): string {
  return "\u0002" + versionstamp(rev) + "\u0000";
}

function combine(kind: "sum" | "min" | "max", cur: Stored | null, operand: bigint): Stored {
  let result = operand;
  if (cur !== null) {
    if (cur.encoding !== ENCODING.le64) throw new InvalidArgumentError(`Failed to perform '${kind}' mutation on a non-U64 value in the database`);
    const a = le64(cur.data);
    if (kind === "sum") result = (a + operand) & U64_MASK;
    else if (kind === "min") result = a < operand ? a : operand;
    else result = a > operand ? a : operand;
  }
  return storedOf(new KvU64(result));
}
