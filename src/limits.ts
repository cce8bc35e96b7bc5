// Every limit and default, defined once, with the unit last in the name.

import { assert } from "./assert.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Longest key, as UTF-8 bytes. */
export const keyBytesMax = 4 * KiB;
/** Largest value, as its CBOR encoding. */
export const valueBytesMax = 16 * MiB;
/** Most operations in one db.batch. */
export const batchOpsMax = 100_000;
/** Room in a record beyond its largest value: keys, other ops of a batch, framing. */
export const recordSlackBytes = 1 * MiB;
/** Largest framed record (one put, delete or batch) the format allows. */
export const recordBytesMax = valueBytesMax + recordSlackBytes;

/**
 * WAL segment size; segments are preallocated to this with real zeros. 8 MiB rather than etcd's
 * 64: the log after a snapshot is freed a whole segment at a time, and the segment being written
 * plus the zero-filled spare are allocated in full, so on disk the log is up to ~3 segments more
 * than its records (docs/design-notes.md: disk budget).
 */
export const segmentBytesDefault = 8 * MiB;
export const segmentBytesMin = 64 * KiB;
/** Spare segments are zero-filled in chunks of this size, one fdatasync each, between commits. */
export const spareChunkBytes = 1 * MiB;

/** The SharedArrayBuffer ring between the main thread and the writer: twice the largest record. */
export const ringBytesDefault = 64 * MiB;
/** Ring positions are int32 counters: the ring must stay far below 2^31. */
export const ringBytesMax = 1024 * MiB;

/** Group commit caps, as LevelDB/RocksDB: ~1 MiB, or the first record + 128 KiB when it is small. */
export const groupBytesMax = 1 * MiB;
export const groupSmallRecordBytes = 128 * KiB;

/** commitDelayUs: how long the writer may wait for more records before a commit (default none). */
export const commitDelayUsDefault = 0;
export const commitDelayUsMax = 10_000;

/** sync: "interval" fdatasyncs this often (Redis everysec is 1000). */
export const syncIntervalMsDefault = 1000;

/**
 * With nothing to do, the writer polls HEAD this long before it parks in Atomics.wait, as RocksDB's
 * WriteThread::AwaitState spins before it blocks: while writes keep coming, the main thread then
 * never pays for an Atomics.notify (a futex wake, ~9% of a put's time when it did).
 */
export const writerSpinUs = 50;

/** While busy, the writer zero-fills one chunk ahead after this many group commits. */
export const prepareEveryGroups = 8;

/** Automatic snapshots: at least this much WAL between two... */
export const snapshotEveryBytesMin = 16 * MiB;
/** ...or this fraction of the live data, whichever is larger (docs/design-notes.md: disk and restart budgets). */
export const snapshotEveryLiveFraction = 0.125;
/** close() takes a snapshot when the log since the last one is at least this fraction of the threshold. */
export const snapshotOnCloseFraction = 0.25;
/** A snapshot is encoded and written in chunks of about this size (one frame each). */
export const snapshotChunkBytes = 256 * KiB;
/**
 * Snapshot chunks handed to the writer and not yet written, at most (8 MiB of the ring). A frame
 * waits behind the writes queued before it, so under a steady write load the snapshot moves about
 * this many chunks per round of the queue: under 16 batches of 1,000 in flight, 3M overwrites saw 6
 * snapshots complete with 8 slots and 13 with 32 (the log behind the last snapshot peaked at 106 and
 * 52 MiB; overwrites 60k and 57k/s). With 256 single puts in flight the rate limit below binds
 * instead (puts during a snapshot 0.60 and 0.61 of the rate without; get p99 16 and 21 ms).
 * docs/design-notes.md has the 10M-overwrite figures.
 */
export const snapshotFramesInFlight = 32;

/**
 * The snapshot encoder thread's nice value. Under 256 puts in flight, get p99 during a snapshot was
 * 4.2-5.5 ms with 19 and 5.0-9.0 ms with 0 (4 runs each); a stall (SnapshotPace) frees the CPU it
 * needs when it falls behind.
 */
export const snapshotEncoderNice = 19;
/** Open reads a snapshot this large or larger on another thread; a smaller one costs less than starting it (~20 ms). */
export const snapshotPrefetchBytesMin = 16 * MiB;
/** A snapshot this large or larger is encoded in a worker; a smaller one costs less than starting it (60-80 ms). */
export const snapshotWorkerBytesMin = 16 * MiB;
/** A snapshot's records go to its encoder in batches of this many refs (32 KiB). */
export const snapshotRefsPerBatch = 4096;

/** A snapshot's pace lets the log grow as if it were this much further along (no stall at its start). */
export const snapshotPaceSlackBytes = 8 * MiB;

/**
 * While writes are in flight, snapshot files are written at most this fast: the WAL shares the disk,
 * and the main thread the cores. At 32 MiB/s a snapshot added more to get p99 under 256 puts in
 * flight (docs/design-notes.md). A snapshot behind the log goes faster.
 */
export const snapshotBytesPerSecond = 16 * MiB;

/**
 * A snapshot file's writeback is started every this many bytes written (FileIO.startWriteBack), so
 * that its final fdatasync, which holds the writer and the group commits behind it, has little left.
 */
export const snapshotWriteBackBytes = 1 * MiB;

/** The value arena grows in blocks of this size (a larger record gets a block of its own). */
export const arenaBlockBytes = 1 * MiB;
/**
 * Compaction starts once garbage in the arena passes this and the live data (so the arena stays
 * under about twice the live data, as an LSM tree's space amplification).
 */
export const arenaCompactGarbageBytesMin = 8 * MiB;
/**
 * Records compaction looks at per operation applied. The block with the most garbage goes first
 * (past the threshold, well over half of it is garbage), so 2 keeps up with overwrites; each look
 * costs a key decode and a map lookup, so more would slow every overwrite.
 */
export const arenaCompactRecordsPerOp = 2;

/** After open, keys added to the hash map (or records compacted) per event-loop turn (~2–5 ms)... */
export const indexWorkPerTurn = 10_000;
/** ...and per dispatch round while writes keep coming (timers then run late). */
export const indexWorkPerDispatch = 1_000;

/** Live events held for one slow watcher before it is cut off (etcd cancels slow watchers too). */
export const watchBufferEventsMax = 10_000;

/** How long open() waits for the writer worker to start and report. */
export const workerStartMsMax = 30_000;

assert(ringBytesDefault >= 2 * recordBytesMax, "ring holds two largest records");
assert((ringBytesDefault & (ringBytesDefault - 1)) === 0, "ring size is a power of two");
assert(segmentBytesDefault % 8 === 0 && spareChunkBytes % 8 === 0, "8-byte alignment");

/** The limits a database enforces on writes (open()'s `limits`, each at most the default above). */
export interface Limits {
  keyBytesMax: number;
  valueBytesMax: number;
  batchOpsMax: number;
}

/** Archiving (docs/archive-format.md): every durable revision reaches the bucket within about this long. */
export const archiveMaxLagMsDefault = 1000;
/** Each S3 request of the archive's: Bun's client has no timeout of its own for every call. */
export const archiveCallTimeoutMsDefault = 10_000;
/** A local snapshot is uploaded once the log archived since the last one is this many times its size. */
export const archiveSnapshotLogRatioDefault = 1;
/** close() lets the archiver ship what is durable for at most this long. */
export const archiveCloseTimeoutMsDefault = 5000;

// harmonydb/kv (docs/deno-kv.md §4): Deno KV's own limits, so that what Deno refuses is refused here too.
/** Longest Deno KV key a write takes, as its tuple encoding's bytes... */
export const kvKeyBytesMax = 2048;
/** ...and a read (a range's bounds: a get reads [key, key + 0x00)). */
export const kvReadKeyBytesMax = 2049;
/** Largest value, as its V8, LE64 or raw bytes. */
export const kvValueBytesMax = 64 * KiB;
/** Most keys in one getMany, and most entries one list batch reads. */
export const kvRangesMax = 10;
export const kvEntriesMax = 1000;
/** A list's batch when it names none: its limit, or 100, at most 500 (as Deno's client). */
export const kvListBatchDefault = 100;
export const kvListBatchDefaultMax = 500;
/** One atomic commit: checks, mutations, and the bytes of their keys and values. */
export const kvChecksMax = 100;
export const kvMutationsMax = 1000;
export const kvCommitBytesMax = 800 * KiB;
/** Most keys one watch follows. */
export const kvWatchKeysMax = 10;
/** The expiry sweeper looks for due entries at least this often, and deletes at most this many per batch. */
export const kvSweepMsMax = 1000;
export const kvSweepBatchMax = 1000;
