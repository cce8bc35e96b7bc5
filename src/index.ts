// The embedded API: open() and the types and errors a caller needs. Everything else is internal.

import type { Db } from "./db.ts";
import { openDb } from "./open.ts";
import type { OpenOptions } from "./options.ts";

export type { Db } from "./db.ts";
/** What a database and a read replica both are (openReplica's Replica refuses writes with READ_ONLY). */
export type Store = Pick<Db, "dir" | "id" | "rev" | "syncedRev" | "get" | "getEntry" | "has" | "range" | "view" | "watch" | "put" | "delete" | "batch" | "snapshot" | "stats" | "close">;
export type { ArchiveOptions, OpenOptions } from "./options.ts";
export type { S3Settings } from "./archive/bucket.ts";
export { restore, bumpRevisionDefault, type RestoreOptions, type RestoreResult } from "./restore.ts";
export { openReplica, promote, Replica, type ReplicaOptions, type ReplicaStats } from "./replica.ts";
// The primary's side, for an app that serves replicas from its own HTTP server (as src/server does).
export { newestSnapshot, walFrom, WalSource, type WalStart } from "./replication.ts";
export type { ArchiveStats, BatchOp, Entry, Histogram, Limits, RangeOptions, ReplayProgress, SnapshotInfo, Stats, SyncMode, TornTail, WriteOptions } from "./types.ts";
export type { ErrorCode } from "./errors.ts";
export type { WatchEvent, WatchOptions } from "./watch.ts";
export type { RangeItem, ReadView } from "./range.ts";
export type { Newest } from "./write/pipeline.ts";
export {
  ArchiveError,
  ClosedError,
  CompactedError,
  ConflictError,
  CorruptionError,
  HarmonyError,
  InvalidArgumentError,
  InvalidKeyError,
  InvalidValueError,
  KeyTooLargeError,
  LockedError,
  NoSpaceError,
  ReadOnlyError,
  SnapshotFailedError,
  TimeoutError,
  ValueTooLargeError,
  WalFailedError,
  WatchOverflowError,
} from "./errors.ts";
// The default caps on a value and on a whole record, in bytes (the server derives its body limits from them).
export { recordBytesMax, valueBytesMax } from "./limits.ts";

/**
 * Opens (creating if needed) the database in `dir`: takes the LOCK, replays the WAL, starts the
 * writer. Resolves only when the database is ready for reads and writes.
 */
export function open(dir: string, options?: OpenOptions): Promise<Db> {
  return openDb(dir, options);
}
