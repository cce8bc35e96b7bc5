// The one interface all WAL file I/O goes through, so tests can swap in a fault-injecting one
// (test/helpers/fault-io.ts) that loses unsynced bytes on "power loss" and fails calls on demand.

import * as fs from "node:fs";
import { startWriteBack } from "./write-back.ts";

/**
 * Synchronous file operations, as the writer (a blocking loop in its worker) and recovery use them.
 * Buffers passed in are only read during the call; the caller keeps ownership.
 */
export interface FileIO {
  /** Opens for writing (pwrite); `create` makes the file if missing, `truncate` empties it. */
  openWrite(path: string, opts?: { create?: boolean; truncate?: boolean }): number;
  /** Writes all of `bytes` at `position`. */
  pwrite(fd: number, bytes: Uint8Array, position: number): void;
  /**
   * pwrite() off this thread (the runtime's thread pool), for a caller with other work to do
   * meanwhile; `bytes` must not change until it settles. Where missing, pwrite() is used.
   */
  pwriteAsync?(fd: number, bytes: Uint8Array, position: number): Promise<void>;
  fdatasync(fd: number): void;
  /**
   * Starts writing bytes [offset, offset + bytes) back to the device, without waiting: a hint that
   * makes nothing durable (src/io/write-back.ts). Never fails.
   */
  startWriteBack(fd: number, offset: number, bytes: number): void;
  fsync(fd: number): void;
  close(fd: number): void;
  size(fd: number): number;
  /**
   * The whole file. With `into` large enough, it is read into that buffer and the result is a view
   * of it (valid until the caller reads into it again); else into a new one.
   */
  readFile(path: string, into?: Uint8Array): Uint8Array;
  fileSize(path: string): number;
  /** Reads into all of `into` from `position`, or up to the end of the file; returns the bytes read. */
  readAt(path: string, into: Uint8Array, position: number): number;
  rename(from: string, to: string): void;
  /** fsync of a directory: makes creates, renames and unlinks in it durable. */
  fsyncDir(dir: string): void;
  readdir(dir: string): string[];
  unlink(path: string): void;
}

export const nodeIO: FileIO = {
  openWrite(path, opts = {}) {
    const c = fs.constants;
    const flags = c.O_WRONLY | (opts.create ? c.O_CREAT : 0) | (opts.truncate ? c.O_TRUNC : 0);
    return fs.openSync(path, flags, 0o644);
  },
  pwrite(fd, bytes, position) {
    let done = 0;
    // pwrite may write less than asked (a signal, a near-full disk): loop until all is written.
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
  },
  async pwriteAsync(fd, bytes, position) {
    const write = (done: number) =>
      new Promise<number>((resolve, reject) => fs.write(fd, bytes, done, bytes.length - done, position + done, (err, n) => (err ? reject(err) : resolve(n))));
    for (let done = 0; done < bytes.length; ) done += await write(done);
  },
  fdatasync: (fd) => fs.fdatasyncSync(fd),
  startWriteBack,
  fsync: (fd) => fs.fsyncSync(fd),
  close: (fd) => fs.closeSync(fd),
  size: (fd) => fs.fstatSync(fd).size,
  readFile(path, into) {
    const size = fs.statSync(path).size;
    const b = into !== undefined && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
    const n = nodeIO.readAt(path, b, 0);
    if (n !== size) throw new Error(`${path}: end of file at ${n} of ${size} bytes`);
    return b;
  },
  fileSize: (path) => fs.statSync(path).size,
  readAt(path, into, position) {
    const fd = fs.openSync(path, fs.constants.O_RDONLY);
    try {
      let done = 0;
      while (done < into.length) {
        const n = fs.readSync(fd, into, done, into.length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    } finally {
      fs.closeSync(fd);
    }
  },
  rename: (from, to) => fs.renameSync(from, to),
  fsyncDir(dir) {
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  },
  readdir: (dir) => fs.readdirSync(dir),
  unlink: (path) => fs.rmSync(path, { force: true }),
};
