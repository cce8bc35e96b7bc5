// Error classes for the world (bad input, full disk, corrupt files), each with a stable `code`.

export type ErrorCode =
  | "CLOSED"
  | "LOCKED"
  | "CORRUPTION"
  | "INVALID_KEY"
  | "KEY_TOO_LARGE"
  | "VALUE_TOO_LARGE"
  | "INVALID_VALUE"
  | "INVALID_ARGUMENT"
  | "CONFLICT"
  | "WAL_FAILED"
  | "COMPACTED"
  | "NO_SPACE"
  | "WATCH_OVERFLOW"
  | "SNAPSHOT_FAILED"
  | "ARCHIVE"
  | "READ_ONLY"
  | "TIMEOUT";

export class HarmonyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The database was closed (or is closing); nothing was written. */
export class ClosedError extends HarmonyError {
  override name = "ClosedError";
  constructor(message = "harmonydb: database is closed") {
    super("CLOSED", message);
  }
}

/** Another process (or another open() in this one) holds the directory's LOCK. */
export class LockedError extends HarmonyError {
  override name = "LockedError";
  constructor(readonly dir: string, readonly holder: string) {
    super("LOCKED", `harmonydb: ${dir} is locked by ${holder || "another process"}`);
  }
}

/** A file in the data directory is not what the format says; nothing was truncated. */
export class CorruptionError extends HarmonyError {
  override name = "CorruptionError";
  constructor(
    message: string,
    readonly file: string,
    readonly offset: number,
    readonly rev: number,
    options?: { cause?: unknown },
  ) {
    super("CORRUPTION", `wal: ${message} in ${file} at offset ${offset} (rev ${rev})`, options);
  }
}

export class InvalidKeyError extends HarmonyError {
  override name = "InvalidKeyError";
  constructor(message: string) {
    super("INVALID_KEY", `harmonydb: ${message}`);
  }
}

export class KeyTooLargeError extends HarmonyError {
  override name = "KeyTooLargeError";
  constructor(readonly bytes: number, readonly limitBytes: number) {
    super("KEY_TOO_LARGE", `harmonydb: key is ${bytes} bytes as UTF-8, the limit is ${limitBytes}`);
  }
}

export class ValueTooLargeError extends HarmonyError {
  override name = "ValueTooLargeError";
  constructor(readonly bytes: number, readonly limitBytes: number) {
    super("VALUE_TOO_LARGE", `harmonydb: value is ${bytes} bytes encoded, the limit is ${limitBytes}`);
  }
}

/** The value cannot be encoded as CBOR (a function, a symbol, a cycle, ...). */
export class InvalidValueError extends HarmonyError {
  override name = "InvalidValueError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("INVALID_VALUE", `harmonydb: ${message}`, options);
  }
}

/** A bad option or argument shape. */
export class InvalidArgumentError extends HarmonyError {
  override name = "InvalidArgumentError";
  constructor(message: string) {
    super("INVALID_ARGUMENT", `harmonydb: ${message}`);
  }
}

/** An `ifRev` condition did not hold; nothing was written. */
export class ConflictError extends HarmonyError {
  override name = "ConflictError";
  constructor(readonly key: string, readonly expectedRev: number, readonly actualRev: number) {
    super(
      "CONFLICT",
      `harmonydb: condition failed for key ${JSON.stringify(key)}: ` +
        `expected rev ${expectedRev}, found ${actualRev === 0 ? "no key" : `rev ${actualRev}`}`,
    );
  }
}

/**
 * A write or fdatasync on the WAL failed. The writer is poisoned (no retry on the same file, see
 * fsyncgate): this and every later write fail, reads go on, a restart recovers what was fsynced.
 */
export class WalFailedError extends HarmonyError {
  override name = "WalFailedError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("WAL_FAILED", `wal: ${message}`, options);
  }
}

/** The disk is full (ENOSPC): like WalFailedError, the database is read-only until restarted. */
export class NoSpaceError extends HarmonyError {
  override name = "NoSpaceError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("NO_SPACE", `wal: ${message}`, options);
  }
}

/** A revision that compaction has removed was asked for. */
export class CompactedError extends HarmonyError {
  override name = "CompactedError";
  constructor(readonly rev: number, readonly oldestRev: number) {
    super("COMPACTED", `harmonydb: revision ${rev} is compacted; the oldest available is ${oldestRev}`);
  }
}

/** A watcher fell further behind than its buffer allows and was cut off (as etcd cancels slow watchers). */
export class WatchOverflowError extends HarmonyError {
  override name = "WatchOverflowError";
  constructor(readonly bufferMax: number, readonly rev: number) {
    super("WATCH_OVERFLOW", `harmonydb: watcher fell more than ${bufferMax} events behind at rev ${rev}; watch again from rev ${rev}`);
  }
}

/**
 * A snapshot could not be written (an I/O error on its file). Nothing is lost and writes go on: the
 * WAL still holds everything; the next snapshot tries again. A full disk is NoSpaceError instead.
 */
export class SnapshotFailedError extends HarmonyError {
  override name = "SnapshotFailedError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("SNAPSHOT_FAILED", message, options);
  }
}

/**
 * The archive (docs/archive-format.md) cannot be used: an object that is torn, foreign or missing
 * (named in the message, with `object`), a prefix that holds another database, or a bucket that
 * keeps refusing. Local writes are never failed by it.
 */
export class ArchiveError extends HarmonyError {
  override name = "ArchiveError";
  constructor(message: string, readonly object = "", options?: { cause?: unknown }) {
    super("ARCHIVE", `harmonydb archive: ${message}${object ? ` (${object})` : ""}`, options);
  }
}

/**
 * A write to a read replica (docs/replication.md), or open() of a replica's directory: the message
 * names the primary, where writes go.
 */
export class ReadOnlyError extends HarmonyError {
  override name = "ReadOnlyError";
  constructor(
    message: string,
    readonly primary: string,
  ) {
    super("READ_ONLY", message);
  }
}

/** A replica's waitForRev (the server's ?min_rev=) gave up: it had not applied `rev` in time. */
export class TimeoutError extends HarmonyError {
  override name = "TimeoutError";
  constructor(
    message: string,
    readonly rev: number,
    readonly appliedRev: number,
  ) {
    super("TIMEOUT", message);
  }
}
