// What the server watches in db.stats() once a second: slow fdatasyncs (as etcd warns) and a failed WAL.

import type { Stats } from "../index.ts";
import type { Logger } from "./log.ts";

/** An fdatasync slower than this is logged as a warning (etcd's "slow fdatasync" threshold is 1 s too). */
export const slowFsyncMs = 1000;

/**
 * A check to call with fresh stats: warns each time the slowest fdatasync so far grows past
 * `slowFsyncMs` (stats keep only the maximum, so each new record is one warning), and logs a WAL
 * failure once.
 */
export function createMonitor(log: Logger): (s: Pick<Stats, "failed" | "wal">) => void {
  let warnedMs = slowFsyncMs;
  let reportedFailure = false;
  return (s) => {
    if (s.wal.fsyncMsMax > warnedMs) {
      warnedMs = s.wal.fsyncMsMax;
      log.warn("slow fdatasync", { tookMs: Math.round(s.wal.fsyncMsMax), expectedMs: slowFsyncMs });
    }
    if (s.failed !== null && !reportedFailure) {
      reportedFailure = true;
      log.error("WAL failed: the database is read-only until restarted", { error: s.failed });
    }
  };
}
