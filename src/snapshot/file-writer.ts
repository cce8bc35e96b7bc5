// A snapshot file being written from the frames the main thread sends: temp file, then install.

import * as path from "node:path";
import { SNAP_MAGIC, SNAP_TMP_SUFFIX, snapshotName } from "../format/constants.ts";
import type { FileIO } from "../io/file-io.ts";
import * as L from "../limits.ts";
import { checkSnapshotFile } from "./file.ts";

/**
 * One snapshot's file, written by the writer worker frame by frame into `<rev>.snap.tmp`. A failed
 * write is kept and reported by install(): the remaining frames are skipped, and nothing is left
 * behind but the temp file, which drop() removes (or open() tidies).
 */
export class SnapshotFileWriter {
  /** Bytes written so far: the file's size once installed. */
  bytes = 0;
  /** Bytes whose writeback was started (startWriteBack), from the file's start. */
  private writingBack = 0;
  private fd = -1;
  private error: unknown = null;
  private readonly tmpPath: string;

  constructor(
    private readonly io: FileIO,
    private readonly snapDir: string,
    readonly rev: number,
  ) {
    this.tmpPath = path.join(snapDir, snapshotName(rev) + SNAP_TMP_SUFFIX);
    try {
      this.fd = io.openWrite(this.tmpPath, { create: true, truncate: true });
    } catch (err) {
      this.error = err;
      return;
    }
    this.write(SNAP_MAGIC);
  }

  /**
   * Appends to the file. No fdatasync until install(): one in the middle would hold every write
   * queued behind this frame for the whole writeback (measured: puts/s during a snapshot fell to a
   * few percent with one every 4 MiB). Instead the writeback is started, without waiting, every
   * L.snapshotWriteBackBytes, so install()'s fdatasync finds little left to write.
   */
  write(bytes: Uint8Array): void {
    if (this.error) return;
    try {
      this.io.pwrite(this.fd, bytes, this.bytes);
      this.bytes += bytes.length;
    } catch (err) {
      this.error = err;
      return;
    }
    this.writtenBack();
  }

  /**
   * write() off this thread: the file is written in the runtime's thread pool while this thread
   * goes on (restore writes as its snapshot downloads). One at a time; `bytes` must not change
   * until it settles.
   */
  async writeAsync(bytes: Uint8Array): Promise<void> {
    if (this.error) return;
    if (!this.io.pwriteAsync) return this.write(bytes);
    const at = this.bytes;
    this.bytes += bytes.length;
    try {
      await this.io.pwriteAsync(this.fd, bytes, at);
    } catch (err) {
      this.error = err;
      return;
    }
    this.writtenBack();
  }

  /** Starts the writeback of what was written since the last start, once there is enough of it. */
  private writtenBack(): void {
    if (this.bytes - this.writingBack >= L.snapshotWriteBackBytes) {
      this.io.startWriteBack(this.fd, this.writingBack, this.bytes - this.writingBack);
      this.writingBack = this.bytes;
    }
  }

  /**
   * Writes `bytes` again at `at`, over what write() put there (restore's header, once the count of
   * keys is known). Before install(), which checks the whole file as the disk gives it back.
   */
  rewrite(at: number, bytes: Uint8Array): void {
    if (this.error) return;
    if (at + bytes.length > this.bytes) throw new Error(`rewrite of [${at}, ${at + bytes.length}) past the ${this.bytes} bytes written`);
    try {
      this.io.pwrite(this.fd, bytes, at);
    } catch (err) {
      this.error = err;
    }
  }

  /**
   * Makes the file the snapshot `<rev>.snap`: fdatasync, read back and checked, renamed, directory
   * fsynced. Throws the first failure, with the temp file dropped.
   */
  install(): void {
    try {
      if (this.error) throw this.error;
      this.io.fdatasync(this.fd);
      this.io.close(this.fd);
      this.fd = -1;
      checkSnapshotFile(this.io, this.tmpPath); // the disk gave back what we wrote (a window at a time)
      this.io.rename(this.tmpPath, path.join(this.snapDir, snapshotName(this.rev)));
      this.io.fsyncDir(this.snapDir);
    } catch (err) {
      this.drop();
      throw err;
    }
  }

  /** Abandons the file: closed and removed (best effort; a leftover .tmp is tidied at open). */
  drop(): void {
    try {
      if (this.fd >= 0) this.io.close(this.fd);
    } catch {
      // already failing; the file is removed next
    }
    this.fd = -1;
    try {
      this.io.unlink(this.tmpPath);
    } catch {
      // left for open() to tidy
    }
  }
}
