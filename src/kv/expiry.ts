// expireIn (docs/deno-kv.md §5): the expiry index beside each expiring entry, and the sweeper that
// deletes due entries as new revisions, so watchers see them go. Reads filter expired entries
// themselves: whatever the sweeper has done, an expired entry is never returned.

import { ClosedError, type Db, type Newest } from "../index.ts";
import * as L from "../limits.ts";
import { decodeStored } from "./value.ts";

/** The expiry index's keyspace: `EXPIRY_PREFIX + hex16(expireAt) + the entry's engine key`, in due order. */
export const EXPIRY_PREFIX = "\u0000kvx\u0000";
const HEX_DIGITS = 16;

export function expiryKey(expireAt: number, engineKey: string): string {
  return EXPIRY_PREFIX + expireAt.toString(16).padStart(HEX_DIGITS, "0") + engineKey;
}

function parseExpiryKey(key: string): { expireAt: number; engineKey: string } {
  const at = EXPIRY_PREFIX.length;
  return { expireAt: parseInt(key.slice(at, at + HEX_DIGITS), 16), engineKey: key.slice(at + HEX_DIGITS) };
}

/** When an engine entry of harmonydb/kv expires (0: never). */
export function expireAtOf(n: Newest | undefined): number {
  return n === undefined ? 0 : decodeStored(n.value as Uint8Array).expireAt;
}

/**
 * Deletes entries once due, with their index entries: one batch per round, each delete only if
 * the entry still expires at that time (a later set may have moved it). Runs while the Kv is
 * open, every kvSweepMsMax at most, sooner when the next entry is due sooner.
 */
export class Sweeper {
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** When the scheduled round runs (ms since the epoch; Infinity while one runs). */
  private dueAt = Infinity;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Entries deleted so far, and the last failure (the next round tries again). */
  swept = 0;
  lastError: unknown = null;

  constructor(private readonly db: Db) {}

  start(): void {
    this.schedule(0);
  }

  /** A commit wrote an entry that expires at `expireAt`: the next round comes no later than that. */
  expiring(expireAt: number): void {
    if (this.timer === null || expireAt >= this.dueAt) return;
    clearTimeout(this.timer);
    this.schedule(Math.max(0, expireAt - Date.now() + 1));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running;
  }

  /** One round: every entry due at `now` (up to kvSweepBatchMax) deleted in one batch. Resolves with how many. */
  async sweep(now = Date.now()): Promise<number> {
    const due = [...this.db.range({ gte: EXPIRY_PREFIX, lt: expiryKey(now + 1, ""), keysOnly: true, limit: L.kvSweepBatchMax })].map((i) => i.key);
    if (due.length === 0) return 0;
    let deleted = 0;
    await this.db.atomic((_rev, read) => {
      deleted = 0;
      const ops: { type: "delete"; key: string }[] = [];
      for (const key of due) {
        if (read(key) === undefined) continue; // a set or a delete took it out already
        ops.push({ type: "delete", key });
        const { expireAt, engineKey } = parseExpiryKey(key);
        if (expireAtOf(read(engineKey)) === expireAt) {
          ops.push({ type: "delete", key: engineKey });
          deleted++;
        }
      }
      return ops;
    });
    this.swept += deleted;
    return deleted;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.dueAt = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.dueAt = Infinity;
      this.running = this.round().finally(() => (this.running = null));
    }, ms);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    try {
      await this.sweep();
      this.lastError = null;
    } catch (err) {
      if (err instanceof ClosedError) return;
      this.lastError = err;
    }
    this.schedule(this.nextDelayMs(Date.now()));
  }

  /** Until the first entry in the index is due, at most kvSweepMsMax. */
  private nextDelayMs(now: number): number {
    for (const item of this.db.range({ gte: EXPIRY_PREFIX, lt: expiryKey(Number.MAX_SAFE_INTEGER, ""), keysOnly: true, limit: 1 })) {
      return Math.max(0, Math.min(L.kvSweepMsMax, parseExpiryKey(item.key).expireAt - now + 1));
    }
    return L.kvSweepMsMax;
  }
}
