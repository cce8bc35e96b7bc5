// open()'s options: the public ones, the test hooks kept apart from them, and their checked, defaulted form.

import { parseArchiveUrl, type S3Settings } from "./archive/bucket.ts";
import { InvalidArgumentError } from "./errors.ts";
import * as L from "./limits.ts";
import type { Limits, ReplayProgress, SyncMode } from "./types.ts";

export interface OpenOptions {
  /** "always" (default): a write resolves after the fdatasync that covers it. See README. */
  sync?: SyncMode;
  /** With sync "interval": how often the writer fdatasyncs. */
  syncIntervalMs?: number;
  segmentBytes?: number;
  /** How long the writer may wait for more writes before a commit (default 0: natural batching). */
  commitDelayUs?: number;
  /** Ring between the main thread and the writer; a power of two ≥ 2 × the largest record. */
  ringBytes?: number;
  limits?: Partial<Limits>;
  /**
   * Take a snapshot once this many bytes were written to the WAL since the last one (0: never
   * automatically, nor at close). Default: the larger of 16 MiB and an eighth of the live data (the
   * bytes of the current records, about a snapshot's size); docs/design-notes.md says why not twice it.
   */
  snapshotEveryBytes?: number;
  onProgress?: (p: ReplayProgress) => void;
  /** Where recovery and the writer report events (torn tails). Default: console.warn. */
  log?: (line: string) => void;
  /** Continuous archiving to an S3-compatible bucket (docs/archive-format.md). */
  archive?: ArchiveOptions;
}

export interface ArchiveOptions {
  /** s3://bucket/prefix: one database per prefix. */
  url: string;
  /** Every durable revision reaches the bucket within about this long (default 1000). */
  maxLagMs?: number;
  /** Each S3 request's timeout (default 10,000). */
  timeoutMs?: number;
  /** How long close() lets the archiver ship what is durable (default 5,000). */
  closeTimeoutMs?: number;
  /**
   * Keep what restores every revision of the last this many ms, and delete what is older
   * (docs/archive-format.md, "Retention"). Default 0: keep everything.
   */
  retainMs?: number;
  /**
   * A new local snapshot is uploaded once the log archived since the last snapshot uploaded is at
   * least this many times that snapshot's size (default 1: snapshots cost the bucket at most as many
   * bytes as the log; 0: every local snapshot). docs/archive-format.md, "Which snapshots".
   */
  snapshotLogRatio?: number;
  /**
   * Zero RPO: a write resolves (and becomes visible) only once the log object holding it is in the
   * bucket too; while S3 is down, writes wait (docs/archive-format.md, "Zero RPO"). Default false.
   */
  sync?: boolean;
  /** Endpoint and credentials; by default Bun's S3_* / AWS_* environment variables. */
  s3?: S3Settings;
}

/**
 * Knobs for tests only, taken by src/testing.ts's openForTest (never by open()): small snapshot
 * chunks and thresholds reach code paths that real sizes reach only with large stores.
 */
export interface TestHooks {
  /** Size of the chunks a snapshot is written in. */
  snapshotChunkBytes?: number;
  /** A snapshot of at least this many bytes is encoded in a worker. */
  snapshotWorkerBytes?: number;
  /** open reads a snapshot of at least this many bytes on another thread. */
  snapshotPrefetchBytes?: number;
  /** Replaces the writer's file I/O with a module's (see WriterConfig.ioModule). */
  writerIO?: { path: string; options: unknown };
}

export type Resolved = Required<Omit<OpenOptions, "onProgress" | "limits" | "snapshotEveryBytes" | "archive">> &
  Required<Omit<TestHooks, "writerIO">> & {
    limits: Limits;
    /** undefined: the default, which follows the size of the live data. */
    snapshotEveryBytes: number | undefined;
    onProgress: OpenOptions["onProgress"];
    writerIO: TestHooks["writerIO"];
    archive: Required<ArchiveOptions> | null;
  };

export function resolveOptions(o: OpenOptions, hooks: TestHooks = {}): Resolved {
  const sync = o.sync ?? "always";
  if (sync !== "always" && sync !== "interval" && sync !== "never") throw new InvalidArgumentError(`sync must be "always", "interval" or "never"`);
  const segmentBytes = o.segmentBytes ?? L.segmentBytesDefault;
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < L.segmentBytesMin || segmentBytes % 8 !== 0) {
    throw new InvalidArgumentError(`segmentBytes must be a multiple of 8, at least ${L.segmentBytesMin}`);
  }
  const limits: Limits = {
    keyBytesMax: Math.min(o.limits?.keyBytesMax ?? L.keyBytesMax, L.keyBytesMax),
    valueBytesMax: Math.min(o.limits?.valueBytesMax ?? L.valueBytesMax, L.valueBytesMax),
    batchOpsMax: Math.min(o.limits?.batchOpsMax ?? L.batchOpsMax, L.batchOpsMax),
  };
  // The ring must hold two of the largest records, so one can be written while the next is framed.
  const ringMin = 2 * (limits.valueBytesMax + L.recordSlackBytes);
  const ringBytes = o.ringBytes ?? L.ringBytesDefault;
  if (!Number.isSafeInteger(ringBytes) || (ringBytes & (ringBytes - 1)) !== 0 || ringBytes < ringMin || ringBytes > L.ringBytesMax) {
    throw new InvalidArgumentError(`ringBytes must be a power of two from ${ringMin} to ${L.ringBytesMax}`);
  }
  const commitDelayUs = o.commitDelayUs ?? L.commitDelayUsDefault;
  if (!(commitDelayUs >= 0 && commitDelayUs <= L.commitDelayUsMax)) {
    throw new InvalidArgumentError(`commitDelayUs must be in 0..${L.commitDelayUsMax}`);
  }
  const every = o.snapshotEveryBytes;
  if (every !== undefined && !(Number.isSafeInteger(every) && every >= 0)) throw new InvalidArgumentError("snapshotEveryBytes must be an integer ≥ 0");
  const chunk = hooks.snapshotChunkBytes ?? L.snapshotChunkBytes;
  if (!(Number.isSafeInteger(chunk) && chunk >= 64 && chunk <= L.recordSlackBytes)) {
    throw new InvalidArgumentError(`snapshotChunkBytes must be in 64..${L.recordSlackBytes}`);
  }
  return {
    sync,
    snapshotEveryBytes: every,
    snapshotChunkBytes: chunk,
    snapshotWorkerBytes: hooks.snapshotWorkerBytes ?? L.snapshotWorkerBytesMin,
    snapshotPrefetchBytes: hooks.snapshotPrefetchBytes ?? L.snapshotPrefetchBytesMin,
    syncIntervalMs: o.syncIntervalMs ?? L.syncIntervalMsDefault,
    segmentBytes,
    commitDelayUs,
    ringBytes,
    limits,
    onProgress: o.onProgress,
    log: o.log ?? ((line) => console.warn(line)),
    writerIO: hooks.writerIO,
    archive: o.archive === undefined ? null : resolveArchive(o.archive),
  };
}

function ratio(x: number | undefined): number {
  const r = x ?? L.archiveSnapshotLogRatioDefault;
  if (!(Number.isFinite(r) && r >= 0)) throw new InvalidArgumentError("archive.snapshotLogRatio must be a number ≥ 0");
  return r;
}

function resolveArchive(a: ArchiveOptions): Required<ArchiveOptions> {
  if (typeof a?.url !== "string") throw new InvalidArgumentError("archive.url must be s3://bucket/prefix");
  parseArchiveUrl(a.url); // (throws ArchiveError on a malformed one)
  const ms = (name: string, v: number | undefined, dflt: number, min: number) => {
    const x = v ?? dflt;
    if (!(Number.isSafeInteger(x) && x >= min)) throw new InvalidArgumentError(`archive.${name} must be an integer ≥ ${min}`);
    return x;
  };
  return {
    url: a.url,
    maxLagMs: ms("maxLagMs", a.maxLagMs, L.archiveMaxLagMsDefault, 10),
    timeoutMs: ms("timeoutMs", a.timeoutMs, L.archiveCallTimeoutMsDefault, 1),
    closeTimeoutMs: ms("closeTimeoutMs", a.closeTimeoutMs, L.archiveCloseTimeoutMsDefault, 0),
    retainMs: ms("retainMs", a.retainMs, 0, 0),
    snapshotLogRatio: ratio(a.snapshotLogRatio),
    sync: a.sync ?? false,
    s3: { ...a.s3 },
  };
}
