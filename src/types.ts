// The public types of the embedded API: what open() returns and takes, besides options and errors.

import type { TornTail } from "./wal/recovery.ts";
import type { SyncMode } from "./wal/writer.ts";

export type { ReplayProgress, TornTail } from "./wal/recovery.ts";
export type { SyncMode } from "./wal/writer.ts";
export type { Limits } from "./limits.ts";
export type { BatchOp } from "./write/validate.ts";
export type { SnapshotInfo } from "./write/snapshot-scheduler.ts";

export interface Entry<V = unknown> {
  value: V;
  /** Revision of the last change to this key. */
  rev: number;
  /** Revision that created this key (since it last did not exist). */
  createRev: number;
  /** Number of changes since creation (1 after the first put). */
  version: number;
}

export interface RangeOptions {
  prefix?: string;
  gte?: string;
  gt?: string;
  lte?: string;
  lt?: string;
  reverse?: boolean;
  limit?: number;
  /** Keys and revisions only: values are not read (each item's `value` is undefined). */
  keysOnly?: boolean;
}

export interface WriteOptions {
  /** The key's current revision must be this; 0 means the key must not exist. */
  ifRev?: number;
}

/** Per-bucket counts (not cumulative): counts[i] values were ≤ le[i] and above le[i − 1]. */
export interface Histogram {
  le: number[];
  counts: number[];
  sum: number;
  count: number;
}

export interface Stats {
  rev: number;
  keys: number;
  sync: SyncMode;
  pendingWrites: number;
  queuedWrites: number;
  failed: string | null;
  wal: {
    segmentSeq: number;
    records: number;
    /** fdatasyncs that made records durable (group commits). */
    fsyncs: number;
    /** fdatasyncs of zero-filled space ahead of the log. */
    prepareFsyncs: number;
    writes: number;
    bytes: number;
    recordsPerFsync: number;
    fsyncMsAvg: number;
    fsyncMsMax: number;
    syncedRev: number;
    /** fdatasyncs of group commits by latency in µs. */
    fsyncLatencyUs: Histogram;
    /** Group commits by the number of records they carried. */
    batchRecords: Histogram;
  };
  /** Open watch() iterators. */
  watchers: number;
  /**
   * The value arena: bytes allocated, bytes of current records, bytes of overwritten ones awaiting
   * compaction; and whether the hash map is complete (false for a moment after a snapshot load).
   */
  memory: { arenaBytes: number; liveBytes: number; garbageBytes: number; mapFilled: boolean };
  recovery: {
    records: number;
    segments: number;
    ms: number;
    tornTail: TornTail | null;
    /** The snapshot open() started from, if any. */
    snapshot: { rev: number; keys: number; bytes: number } | null;
  };
  snapshot: {
    /** Revision and size of the newest durable snapshot (0 when there is none). */
    rev: number;
    bytes: number;
    running: boolean;
    /** WAL bytes written after the newest snapshot's revision (what a restart replays). */
    walBytesSince: number;
    /** The threshold for the next automatic snapshot (0: automatic snapshots are off). */
    everyBytes: number;
    taken: number;
    segmentsDeleted: number;
    /** Times writes had to wait for a running automatic snapshot that fell behind the log (write stalls). */
    writeStalls: number;
    lastError: string | null;
  };
  /** Continuous archiving (open's `archive` option; docs/archive-format.md); null when it is off. */
  archive: ArchiveStats | null;
}

export interface ArchiveStats {
  url: string;
  /** Every revision up to this one is in the archive (−1 until the archiver has read its position). */
  rev: number;
  /** Durable revisions not yet in the archive, and how long the oldest of them has waited. */
  behindRevs: number;
  behindMs: number;
  /** The newest snapshot in the archive (0: none). */
  snapshotRev: number;
  objects: number;
  bytes: number;
  /** S3 requests made, and how many of them failed. */
  requests: number;
  errors: number;
  /** The last failure, with its time; null if none. */
  lastError: string | null;
  /** CPU time the archiver's thread has used. */
  cpuMs: number;
  /** Objects deleted by retention, and LIST requests made (one per run with retention; else none). */
  deleted: number;
  lists: number;
}
