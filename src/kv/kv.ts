// openKv: a Deno.Kv-shaped store for Bun apps over the engine (docs/deno-kv.md). Keys are Deno's
// tuples, values V8-serialized as Deno writes them, versionstamps the engine's revisions.

import { InvalidArgumentError, open, type Db, type OpenOptions } from "../index.ts";
import * as L from "../limits.ts";
import { AtomicOperation, batchOf, commitMutations, COMMIT_VERSIONSTAMP, versionstamp, type Check, type CommitHooks, type Mutation } from "./atomic.ts";
import { QueueListener, type EnqueueOptions } from "./queue.ts";
import { Sweeper } from "./expiry.ts";
import { engineKey, type KvKey } from "./key.ts";
import { kvEntry, ListIterator, readKeyBytes } from "./list.ts";
import { valueFrom } from "./value.ts";
import { KeysWatch } from "./watch.ts";
import type { KvCommitResult, KvConsistencyLevel, KvEntryMaybe, KvListIterator, KvListOptions, KvListSelector, KvWriteKey } from "./types.ts";

/** Opens (creating if needed) the database in `dir` and serves Deno KV's API over it. close() closes it. */
export async function openKv(dir: string, options?: OpenOptions): Promise<Kv> {
  return new Kv(await open(dir, options), { ownsDb: true });
}

export class Kv {
  readonly #db: Db;
  readonly #ownsDb: boolean;
  readonly #sweeper: Sweeper;
  readonly #queue: QueueListener;
  readonly #hooks: CommitHooks;
  #closed: Promise<void> | null = null;

  /**
   * Deno KV over an open database (its keys live in the keyspace reserved for them, beside the
   * database's own). Starts the expiry sweeper; close() stops it, and closes the database only if
   * `ownsDb`.
   */
  constructor(db: Db, options: { ownsDb?: boolean } = {}) {
    this.#db = db;
    this.#ownsDb = options.ownsDb === true;
    this.#sweeper = new Sweeper(db);
    this.#sweeper.start();
    this.#queue = new QueueListener(db, (keys, stored, rev, read) =>
      batchOf(keys.map((key) => ({ kind: "set", key, stored, suffixed: false })), rev, read, Date.now()),
    );
    this.#hooks = { expiring: (at) => this.#sweeper.expiring(at), enqueued: () => this.#queue.notify() };
  }

  async get<T = unknown>(key: KvKey, options?: { consistency?: KvConsistencyLevel }): Promise<KvEntryMaybe<T>> {
    checkConsistency(options?.consistency);
    return this.entry<T>(this.#db, key, Date.now()); // (one read: no view, whose clone would make the next writes copy tree nodes)
  }

  /** Up to 10 keys, read at one revision. */
  async getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: KvKey }],
    options?: { consistency?: KvConsistencyLevel },
  ): Promise<{ [K in keyof T]: KvEntryMaybe<T[K]> }> {
    checkConsistency(options?.consistency);
    if (!Array.isArray(keys)) throw new InvalidArgumentError("getMany takes an array of keys");
    if (keys.length > L.kvRangesMax) throw new InvalidArgumentError(`Too many ranges (max ${L.kvRangesMax})`);
    const view = this.#db.view();
    const now = Date.now();
    return keys.map((key) => this.entry(view, key, now)) as { [K in keyof T]: KvEntryMaybe<T[K]> };
  }

  async set(key: KvWriteKey, value: unknown, options?: { expireIn?: number }): Promise<KvCommitResult> {
    return (await this.atomic().set(key, value, options).commit()) as KvCommitResult;
  }

  async delete(key: KvKey): Promise<void> {
    await this.atomic().delete(key).commit();
  }

  list<T = unknown>(selector: KvListSelector, options?: KvListOptions): KvListIterator<T> {
    checkConsistency(options?.consistency);
    return new ListIterator<T>(this.#db, selector, options);
  }

  atomic(): AtomicOperation {
    return new AtomicOperation(this.#db, this.#hooks);
  }

  /** As a set's last key part: the commit's versionstamp goes there (SET_SUFFIX_VERSIONSTAMPED_KEY). */
  commitVersionstamp(): symbol {
    return COMMIT_VERSIONSTAMP;
  }

  /**
   * A message for listenQueue: delivered at least once, after `delay` ms, retried by
   * `backoffSchedule` (default 100 ms, 1 s, 5 s, 30 s, 60 s) while the handler throws, then written
   * to `keysIfUndelivered`. Durable once this resolves; a restart delivers it again if it was due.
   */
  async enqueue(value: unknown, options?: EnqueueOptions): Promise<KvCommitResult> {
    return (await this.atomic().enqueue(value, options).commit()) as KvCommitResult;
  }

  /** Calls `handler` with each due message until close(); resolves then, once running handlers finish. */
  listenQueue(handler: (value: unknown) => Promise<void> | void): Promise<void> {
    return this.#queue.listen(handler);
  }

  /**
   * The keys' entries now, then again each time one of them changes (up to 10 keys; writes that
   * come close together may show as one change). With `raw`, after every write to one of them,
   * even when the entries read then are those already yielded. An expiry shows when the sweeper
   * deletes the entry, within about a second.
   */
  watch<T extends readonly unknown[]>(keys: readonly [...{ [K in keyof T]: KvKey }], options?: { raw?: boolean }): ReadableStream<{ [K in keyof T]: KvEntryMaybe<T[K]> }> {
    if (!Array.isArray(keys)) throw new InvalidArgumentError("watch takes an array of keys");
    if (keys.length > L.kvWatchKeysMax) throw new InvalidArgumentError(`Too many keys (max ${L.kvWatchKeysMax})`);
    const engineKeys = keys.map((k) => engineKey(readKeyBytes(k)));
    const raw = options?.raw === true;
    type Entries = { [K in keyof T]: KvEntryMaybe<T[K]> };
    let w: KeysWatch | null = null;
    return new ReadableStream<Entries>({
      start: () => {
        w = new KeysWatch(this.#db, engineKeys);
      },
      pull: async (controller) => {
        const entries = await w!.next(raw);
        if (entries === null) return controller.close();
        const out = entries.map((e, i): KvEntryMaybe<unknown> =>
          e === undefined ? { key: keys[i]!, value: null, versionstamp: null } : { key: keys[i]!, value: valueFrom(e.stored), versionstamp: versionstamp(e.rev) },
        );
        controller.enqueue(out as unknown as Entries);
      },
      cancel: async () => {
        await w?.close();
      },
    });
  }

  /**
   * @internal KV Connect's atomic_write (src/server/kv-connect): checks and mutations already
   * compiled from the request, committed as Kv's own are, with the sweeper told of expiries.
   */
  commitCompiled(checks: Check[], mutations: Mutation[]): ReturnType<typeof commitMutations> {
    return commitMutations(this.#db, checks, mutations, this.#hooks);
  }

  /** Stops the sweeper; closes the database if openKv opened it. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#queue.stop();
      await this.#sweeper.stop();
      if (this.#ownsDb) await this.#db.close();
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private entry<T>(view: Pick<Db, "getEntry">, key: KvKey, now: number): KvEntryMaybe<T> {
    const ek = engineKey(readKeyBytes(key, 1)); // a get reads [key, key + 0x00)
    const e = view.getEntry(ek);
    return (e && kvEntry<T>(ek, e.value, e.rev, now)) || { key, value: null, versionstamp: null };
  }
}

function checkConsistency(c: unknown): void {
  if (c !== undefined && c !== "strong" && c !== "eventual") throw new InvalidArgumentError(`consistency must be "strong" or "eventual", got ${String(c)}`);
}
