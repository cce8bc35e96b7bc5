// db.stats(): the writer's counters in the ring, read into the public Stats shape.

import * as R from "./wal/ring.ts";
import type { ArchiveStats, Histogram, Stats } from "./types.ts";

/** The `wal` part of Stats, from the counters the writer keeps in the ring. */
export function walStats(s: Float64Array): Stats["wal"] {
  const fsyncs = s[R.STAT_FSYNCS]!;
  return {
    segmentSeq: s[R.STAT_SEGMENT_SEQ]!,
    records: s[R.STAT_RECORDS]!,
    fsyncs,
    prepareFsyncs: s[R.STAT_PREPARE_FSYNCS]!,
    writes: s[R.STAT_WRITES]!,
    bytes: s[R.STAT_BYTES]!,
    recordsPerFsync: fsyncs === 0 ? 0 : s[R.STAT_RECORDS]! / fsyncs,
    fsyncMsAvg: fsyncs === 0 ? 0 : s[R.STAT_FSYNC_NS_TOTAL]! / fsyncs / 1e6,
    fsyncMsMax: s[R.STAT_FSYNC_NS_MAX]! / 1e6,
    syncedRev: s[R.STAT_SYNCED_REV]!,
    fsyncLatencyUs: histogram(s, R.STAT_FSYNC_HIST, R.FSYNC_US_BOUNDS, s[R.STAT_FSYNC_NS_TOTAL]! / 1000),
    batchRecords: histogram(s, R.STAT_BATCH_HIST, R.BATCH_RECORDS_BOUNDS, s[R.STAT_RECORDS]!),
  };
}

function histogram(stats: Float64Array, base: number, bounds: readonly number[], sum: number): Histogram {
  const counts = Array.from({ length: bounds.length }, (_, i) => stats[base + i]!);
  return { le: [...bounds], counts, sum, count: counts.reduce((a, b) => a + b, 0) };
}

/** The archiver's figures, from the ring (written by the archiver worker). */
export function archiveStats(ring: R.RingViews, url: string, now = Date.now()): ArchiveStats {
  const s = ring.stats;
  const rev = s[R.STAT_ARCHIVE_REV]!;
  const waitingSince = s[R.STAT_ARCHIVE_WAITING_SINCE]!;
  const errors = s[R.STAT_ARCHIVE_ERRORS]!;
  return {
    url,
    rev,
    behindRevs: Math.max(0, s[R.STAT_SYNCED_REV]! - Math.max(rev, 0)),
    behindMs: waitingSince === 0 ? 0 : Math.max(0, now - waitingSince),
    snapshotRev: s[R.STAT_ARCHIVE_SNAP_REV]!,
    objects: s[R.STAT_ARCHIVE_OBJECTS]!,
    bytes: s[R.STAT_ARCHIVE_BYTES]!,
    requests: s[R.STAT_ARCHIVE_CALLS]!,
    errors,
    lastError: errors === 0 ? null : R.readError(ring, ring.archiveError) || null,
    cpuMs: s[R.STAT_ARCHIVE_CPU_US]! / 1000,
    deleted: s[R.STAT_ARCHIVE_DELETED]!,
    lists: s[R.STAT_ARCHIVE_LISTS]!,
  };
}
