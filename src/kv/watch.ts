// Watching a few Deno KV keys (docs/deno-kv.md §6): their entries now, then again whenever one of
// them changes. On the engine's watch of the KV keyspace; changes are coalesced (the keys are
// reread at the newest revision after an event), as Deno's clients coalesce them.

import { ClosedError, WatchOverflowError, type Db, type WatchEvent } from "../index.ts";
import * as L from "../limits.ts";
import { KV_PREFIX } from "./key.ts";
import { liveStored, type Stored } from "./value.ts";

/** A key's live entry, as a watch reports it. */
export interface WatchedEntry {
  rev: number;
  stored: Stored;
}

/** What a watch needs of a store: a database or a read replica. */
type Watchable = Pick<Db, "view" | "watch">;

export class KeysWatch {
  readonly #db: Watchable;
  readonly #keys: string[];
  readonly #watched: Set<string>;
  #events: AsyncIterableIterator<WatchEvent>;
  #last: (number | undefined)[] | null = null;

  /** Starts following `keys` (engine keys, at most kvWatchKeysMax) from the next revision on. */
  constructor(db: Watchable, keys: string[]) {
    this.#db = db;
    this.#keys = keys;
    this.#watched = new Set(keys);
    this.#events = db.watch({ prefix: KV_PREFIX, bufferMax: L.watchBufferEventsMax });
  }

  /**
   * The keys' entries (undefined: absent or expired): at once on the first call, then once one of
   * their revisions changed (with `raw`, once any write touched one of them). Null once the
   * database's watch has ended (the database closed).
   */
  async next(raw = false): Promise<(WatchedEntry | undefined)[] | null> {
    for (;;) {
      if (this.#last !== null && (await this.waitForWrite())) return null;
      const view = this.#db.view();
      const now = Date.now();
      const entries = this.#keys.map((k): WatchedEntry | undefined => liveStored(view.getEntry(k), now));
      const revs = entries.map((e) => e?.rev);
      const changed = this.#last === null || revs.some((r, i) => r !== this.#last![i]);
      this.#last = revs;
      if (changed || raw) return entries;
    }
  }

  async close(): Promise<void> {
    await this.#events.return?.();
  }

  /** Waits for a write to a watched key; true once the database's watch has ended. */
  private async waitForWrite(): Promise<boolean> {
    for (;;) {
      try {
        const r = await this.#events.next();
        if (r.done) return true;
        if (this.#watched.has(r.value.key)) return false;
      } catch (err) {
        if (err instanceof ClosedError) return true; // the database closed: the watch ends
        // Fell behind: a new watch from here on, and the keys are reread (nothing is missed, since a read follows).
        if (!(err instanceof WatchOverflowError)) throw err;
        this.#events = this.#db.watch({ prefix: KV_PREFIX, bufferMax: L.watchBufferEventsMax });
        return false;
      }
    }
  }
}
