// Snapshots: the index at one revision, as a file of checksummed frames (docs/snapshot-format.md).
// Encoding runs on the main thread in chunks; the writer worker writes them (src/wal/writer.ts);
// open() verifies and loads the newest good one (src/wal/recovery.ts).

import * as path from "node:path";
import { wideCounts, type Located } from "../format/record.ts";
import { bufferOf, copyBytes } from "../bytes.ts";
import { batchOpsMax } from "../limits.ts";
import { CorruptionError, WalFailedError } from "../errors.ts";
import { payloadDecoder, payloadEncoder } from "../codec/cbor.ts";
import { HEAD_U64_BYTES, MAJOR_ARRAY, MAJOR_BYTES, MAJOR_TEXT, MAJOR_UINT, headBytes, readHead, skip, writeHead, writeHeadU32 } from "../codec/cbor-head.ts";
import { isAscii, readExactKey, readFrame, viewOf, type Encoded, type FrameVerdict } from "../format/decoder.ts";
import { utf8Bytes, writeText } from "../format/encoder.ts";
import type { FileIO } from "../io/file-io.ts";
import { Prefetch } from "../io/prefetch.ts";
import {
  CHUNK_COUNT_HEAD_BYTES,
  FORMAT_VERSION,
  FRAME_HEADER_BYTES,
  FRAME_LEN_OFFSET,
  MAGIC_BYTES,
  RECORD_HEAD,
  SNAP_MAGIC,
  SNAP_NAME_RE,
  SNAP_TMP_SUFFIX,
  TYPE_SNAP_CHUNK,
  TYPE_SNAP_FOOTER,
  TYPE_SNAP_HEADER,
} from "../format/constants.ts";

export interface SnapshotHeader {
  v: number;
  /** Database id, the same as in the WAL segments. */
  db: string;
  /** Every entry with a revision up to this one is in the snapshot; none after it. */
  rev: number;
  keys: number;
}

export interface SnapshotFooter {
  keys: number;
  chunks: number;
}

/** One key as a snapshot keeps it: the CBOR encoding of its value, and its revisions. */
export interface SnapshotEntry {
  value: Uint8Array;
  rev: number;
  createRev: number;
  version: number;
}

/** With `pad`, a field of that many bytes that readers ignore (docs/snapshot-format.md: a header rewritten in place). */
export function headerPayload(h: SnapshotHeader, pad?: number): Uint8Array {
  const fields = { v: h.v, db: h.db, rev: h.rev, keys: h.keys };
  return payloadEncoder.encode(pad === undefined ? fields : { ...fields, pad: new Uint8Array(pad) });
}

export function footerPayload(f: SnapshotFooter): Uint8Array {
  return payloadEncoder.encode({ keys: f.keys, chunks: f.chunks });
}

/**
 * Turns entries (in key order) into chunk payloads of about `chunkBytes` each: a CBOR array of
 * [key, value, rev, createRev, version]. A chunk is handed to the caller, who may give its buffer
 * back with recycle() once done with it: a snapshot then reuses a few buffers instead of touching
 * fresh memory for every chunk (page faults cost ~3 ms per MiB on the VMs we measure on).
 */
export class ChunkEncoder {
  private buf: Uint8Array;
  /** `buf` as a Buffer, to copy into with Buffer.copy. */
  private out: Buffer;
  private pos = CHUNK_COUNT_HEAD_BYTES;
  private count = 0;
  private readonly spare: Uint8Array[] = [];
  /**
   * Records added by addRaw() and not yet copied: bytes [runStart, runEnd) of `run`, `runCount` of
   * them back to back, all fitting in the chunk. They are copied at once when a record does not
   * follow them.
   */
  private run: Uint8Array | null = null;
  private runStart = 0;
  private runEnd = 0;
  private runCount = 0;

  constructor(private readonly chunkBytes: number) {
    this.buf = new Uint8Array(chunkBytes);
    this.out = bufferOf(this.buf);
  }

  /** A chunk this returned is no longer used by the caller: its buffer holds the next ones. */
  recycle(chunk: Uint8Array): void {
    if (chunk.buffer.byteLength === this.chunkBytes) this.spare.push(new Uint8Array(chunk.buffer));
  }

  /**
   * Adds one whole arena record (as located: bytes [start, end) of `r.b`); as add(). A record
   * replay left with 8-byte counts (src/store/arena.ts) is written with the shortest ones.
   */
  addRecord(r: Located): Uint8Array | null {
    // The block as a Buffer, when `r` came with one (locate() gives it), to copy from natively.
    if (!wideCounts(r)) return this.addRaw(r.text.buffer === r.b.buffer && r.text.byteOffset === r.b.byteOffset ? r.text : r.b, r.start, r.end);
    this.copyRun();
    const { b, start } = r;
    const copyEnd = r.countsStart;
    const size = copyEnd - start + headBytes(r.createRev) + headBytes(r.version);
    const full = this.makeRoom(size);
    this.pos = copyBytes(this.buf, this.pos, b, start, copyEnd);
    this.pos = writeHead(this.buf, writeHead(this.buf, this.pos, MAJOR_UINT, r.createRev), MAJOR_UINT, r.version);
    this.count++;
    return full;
  }

  /**
   * Adds one record as written in another snapshot or the arena (bytes [start, end) of `b`: its
   * counts are the shortest already, as add() writes them); as add(). A record that starts where
   * the last one added this way ended, in the same `b`, joins it in one copy: in a store whose keys
   * were written in order, most are (one copy a record was most of a snapshot's encoding, and
   * ~0.1 s of a restore at 1M keys). `b` must stay as it is until copyRun(), or any other call.
   */
  addRaw(b: Uint8Array, start: number, end: number): Uint8Array | null {
    if (this.runCount > 0 && b === this.run && start === this.runEnd && this.pos + (end - this.runStart) <= this.buf.length) {
      this.runEnd = end;
      this.runCount++;
      return null;
    }
    this.copyRun();
    const full = this.makeRoom(end - start);
    this.run = b;
    this.runStart = start;
    this.runEnd = end;
    this.runCount = 1;
    return full;
  }

  /** Copies the records addRaw() has put off: their source may change after this. */
  copyRun(): void {
    if (this.runCount === 0) return;
    const run = this.run!;
    if (Buffer.isBuffer(run)) this.pos += run.copy(this.out, this.pos, this.runStart, this.runEnd);
    else this.pos = copyBytes(this.buf, this.pos, run, this.runStart, this.runEnd);
    this.count += this.runCount;
    this.run = null;
    this.runCount = 0;
  }

  /** Room for `size` more bytes: the current chunk when it fits, else a new one (the full one is returned). */
  private makeRoom(size: number): Uint8Array | null {
    if (this.pos + size <= this.buf.length) return null;
    const full = this.count > 0 ? this.take() : null;
    if (CHUNK_COUNT_HEAD_BYTES + size > this.buf.length) this.setBuf(new Uint8Array(CHUNK_COUNT_HEAD_BYTES + size));
    return full;
  }

  private setBuf(b: Uint8Array): void {
    this.buf = b;
    this.out = bufferOf(b);
  }

  /** Adds one entry; returns a full chunk when this entry did not fit in the current one. */
  add(key: string, e: SnapshotEntry): Uint8Array | null {
    const keyBytes = utf8Bytes(key);
    const size = 1 + headBytes(keyBytes) + keyBytes + headBytes(e.value.length) + e.value.length + 3 * HEAD_U64_BYTES;
    this.copyRun();
    const full = this.makeRoom(size);
    const b = this.buf;
    let p = this.pos;
    b[p++] = RECORD_HEAD;
    p = writeText(b, p, key, keyBytes);
    p = writeHead(b, p, MAJOR_BYTES, e.value.length);
    p = copyBytes(b, p, e.value, 0, e.value.length);
    p = writeHead(b, p, MAJOR_UINT, e.rev);
    p = writeHead(b, p, MAJOR_UINT, e.createRev);
    p = writeHead(b, p, MAJOR_UINT, e.version);
    this.pos = p;
    this.count++;
    return full;
  }

  /** The last, partly filled chunk, or null when it is empty. */
  flush(): Uint8Array | null {
    this.copyRun();
    return this.count > 0 ? this.take() : null;
  }

  private take(): Uint8Array {
    this.copyRun();
    const b = this.buf;
    const n = this.count;
    writeHeadU32(b, 0, MAJOR_ARRAY, n);
    const out = b.subarray(0, this.pos); // handed over until recycled
    this.setBuf(this.spare.pop() ?? new Uint8Array(this.chunkBytes));
    this.pos = CHUNK_COUNT_HEAD_BYTES;
    this.count = 0;
    return out;
  }
}

/** A verified snapshot file: where its chunks are; the entries are read with visitChunk. */
export interface VerifiedSnapshot {
  file: string;
  header: SnapshotHeader;
  bytes: Uint8Array;
  /** Payload [start, start + len) of each chunk frame. */
  chunks: SnapshotChunk[];
}

export interface SnapshotChunk {
  start: number;
  len: number;
}

/** Bytes [base, base + bytes.length) of a snapshot file. */
export interface Window {
  bytes: Uint8Array;
  view: DataView;
  base: number;
}

/** Where a SnapshotReader gets the file's bytes: all of them, or a window read in as it goes. */
interface SnapshotSource {
  readonly size: number;
  /** A window holding bytes [off, off + n) of the file, or up to its end. */
  window(off: number, n: number): Window;
}

function wholeFile(bytes: Uint8Array): SnapshotSource {
  const w: Window = { bytes, view: viewOf(bytes), base: 0 };
  return { size: bytes.length, window: () => w };
}

/** The whole file, being read in by another thread: a window waits for its part. */
function prefetchedFile(p: Prefetch): SnapshotSource {
  const w: Window = { bytes: p.bytes, view: viewOf(p.bytes), base: 0 };
  return {
    size: p.size,
    window(off, n) {
      p.waitFor(Math.min(p.size, off + n));
      return w;
    },
  };
}

/**
 * An object's bytes arriving front to back (a download), held in a window of bounded size: the
 * reader release()s what it is done with and the window moves on, so that a restore holds a few MiB
 * of its snapshot, not all of it (a fresh 124 MiB buffer cost ~0.3 s of page faults here, and a
 * snapshot larger than memory could not be restored). A SnapshotReader over it throws NotArrived
 * for a part not in yet; it is called again once wait() says it is.
 */
export class Arriving {
  private buf: Uint8Array;
  private view: DataView;
  /** The object's offset of buf[0]; buf holds bytes [base, base + filled). */
  private base = 0;
  private filled = 0;
  /** The reader is done with bytes [0, released). */
  private released = 0;
  private complete = false;
  private error: unknown = null;
  private waiters: { end: number; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private roomWaiter: (() => void) | null = null;

  constructor(
    /** The object's size. */
    readonly size: number,
    windowBytes = ARRIVING_WINDOW_BYTES,
  ) {
    this.buf = new Uint8Array(Math.max(1, Math.min(size, windowBytes)));
    this.view = viewOf(this.buf);
  }

  /** Bytes [0, received) have arrived. */
  get received(): number {
    return this.base + this.filled;
  }

  get done(): boolean {
    return this.complete;
  }

  /** Appends bytes (the producer's side); waits while the window is full of bytes the reader still needs. */
  async add(part: Uint8Array): Promise<void> {
    for (let p = 0; p < part.length; ) {
      if (this.error !== null) throw this.error;
      if (this.filled === this.buf.length) await this.makeRoom();
      const n = Math.min(part.length - p, this.buf.length - this.filled);
      this.buf.set(part.subarray(p, p + n), this.filled);
      this.filled += n;
      p += n;
      this.wake();
    }
  }

  finish(): void {
    this.complete = true;
    this.wake();
  }

  fail(err: unknown): void {
    if (this.error !== null) return;
    this.error = err;
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
    this.release(Infinity); // (a producer waiting for room sees the failure)
  }

  /** Whether the bytes stopped coming (fail()): the producer stops too. */
  get failed(): boolean {
    return this.error !== null;
  }

  /** The reader is done with bytes [0, end): the window may move past them. */
  release(end: number): void {
    this.released = Math.max(this.released, end);
    const r = this.roomWaiter;
    this.roomWaiter = null;
    r?.();
  }

  /** Resolves once bytes [0, end) are in, or all are; rejects with what stopped them. */
  wait(end: number): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.complete || this.received >= end) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ end, resolve, reject }));
  }

  /** Bytes [off, off + n) (or to the end), in a window whose `base` is its offset; NotArrived if not in yet. */
  window(off: number, n: number): Window {
    const end = Math.min(this.size, off + n);
    if (off < this.base) throw new Error(`arriving bytes: ${off} was released`);
    if (end > this.received && !this.complete) throw new NotArrived(end);
    return { bytes: this.buf.subarray(0, this.filled), view: this.view, base: this.base };
  }

  /** Drops the released bytes from the window's front; grows it when the reader needs more than it holds. */
  private async makeRoom(): Promise<void> {
    for (;;) {
      if (this.error !== null) throw this.error;
      // Half a window released at least (a compaction moves what is kept: not most of the window
      // for a frame released), or any, when the reader waits.
      const drop = Math.min(this.released - this.base, this.filled);
      if (drop >= this.buf.length / 2 || (drop > 0 && this.waiters.length > 0)) {
        this.buf.copyWithin(0, drop, this.filled);
        this.base += drop;
        this.filled -= drop;
        return;
      }
      if (this.waiters.length > 0) {
        // The reader waits for bytes past a full window (a frame larger than it): a larger one.
        const grown = new Uint8Array(Math.min(this.size - this.base, this.buf.length * 2));
        grown.set(this.buf.subarray(0, this.filled));
        this.buf = grown;
        this.view = viewOf(grown);
        return;
      }
      await new Promise<void>((resolve) => (this.roomWaiter = resolve));
    }
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const still = [];
    for (const w of this.waiters) {
      if (this.complete || this.received >= w.end) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}

/** What an Arriving holds at most, unless a frame needs more. */
const ARRIVING_WINDOW_BYTES = 4 * 1024 * 1024;

/** Thrown by a SnapshotReader over Arriving bytes: bytes [0, end) are needed, and not in yet. */
export class NotArrived extends Error {
  constructor(readonly end: number) {
    super(`bytes up to ${end} have not arrived`);
  }
}

/** Arriving bytes, a window at a time. */
function arrivingFile(a: Arriving): SnapshotSource {
  return { size: a.size, window: (off, n) => a.window(off, n) };
}

/** A window read into this much at a time (more for a larger frame). */
const READ_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * A snapshot file read a window at a time into one buffer: what the writer checks a snapshot it
 * just wrote with, without reading the whole file into fresh memory (~600 ms for 125 MiB here, the
 * writer's commits held meanwhile).
 */
function windowedFile(io: FileIO, file: string, windowBytes: number): SnapshotSource {
  const size = io.fileSize(file);
  let buf = new Uint8Array(Math.min(size, windowBytes));
  let w: Window = { bytes: buf.subarray(0, 0), view: viewOf(buf), base: 0 };
  return {
    size,
    window(off, n) {
      const end = Math.min(size, off + n);
      if (off >= w.base && end <= w.base + w.bytes.length) return w;
      const want = Math.max(0, Math.min(size - off, Math.max(n, windowBytes)));
      if (want > buf.length) buf = new Uint8Array(want);
      const bytes = buf.subarray(0, io.readAt(file, buf.subarray(0, want), off));
      w = { bytes, view: viewOf(bytes), base: off };
      return w;
    },
  };
}

/**
 * Reads a snapshot file front to back: the constructor checks magic and header, each next() one
 * chunk frame's checksum (so a loader can use the chunk while it is in cache), and the last next()
 * the footer: counts that agree, nothing after it. Every failure is a CorruptionError naming the
 * file and offset. Offsets (the chunks' too) are the file's.
 */
export class SnapshotReader {
  readonly header!: SnapshotHeader;
  private readonly src: SnapshotSource;
  private off = 0;
  private chunks = 0;
  private keys = 0;
  private done = false;

  /**
   * `from`: the whole file, the file as another thread reads it in (whose read errors waitFor
   * throws), bytes arriving (NotArrived is thrown for a part not in yet; call again once it is:
   * nothing has moved), or the FileIO to read it through, `windowBytes` at a time.
   */
  constructor(
    readonly file: string,
    from: Uint8Array | Prefetch | Arriving | FileIO,
    windowBytes = READ_WINDOW_BYTES,
  ) {
    this.src =
      from instanceof Uint8Array
        ? wholeFile(from)
        : from instanceof Prefetch
          ? prefetchedFile(from)
          : from instanceof Arriving
            ? arrivingFile(from)
            : windowedFile(from, file, windowBytes);
    const m = this.src.window(0, MAGIC_BYTES);
    if (m.bytes.length < MAGIC_BYTES || !SNAP_MAGIC.every((b, i) => m.bytes[i] === b)) this.fail("bad magic", 0);
    const { v: first, w } = this.frameAt(MAGIC_BYTES);
    if (first.kind !== "frame" || first.type !== TYPE_SNAP_HEADER) return this.fail("bad header frame", MAGIC_BYTES);
    let header: SnapshotHeader;
    try {
      header = decodeMap(w.bytes.subarray(first.start, first.start + first.len), ["v", "rev", "keys"], ["db"]) as unknown as SnapshotHeader;
    } catch (cause) {
      return this.fail(`undecodable header: ${(cause as Error).message}`, MAGIC_BYTES);
    }
    if (header.v !== FORMAT_VERSION) this.fail(`unknown format version ${header.v}`, MAGIC_BYTES);
    if (first.rev !== header.rev) this.fail("header frame revision does not match its payload", MAGIC_BYTES, header.rev);
    this.header = header;
    this.off = w.base + first.next;
  }

  /** The frame at file offset `off`, read in whole; its offsets are the window's. */
  private frameAt(off: number): { v: FrameVerdict; w: Window } {
    let w = this.src.window(off, FRAME_HEADER_BYTES);
    const at = off - w.base;
    if (at + FRAME_HEADER_BYTES <= w.bytes.length) w = this.src.window(off, FRAME_HEADER_BYTES + w.view.getUint32(at + FRAME_LEN_OFFSET, true));
    return { v: readFrame(w.bytes, off - w.base, w.view), w };
  }

  /** The next chunk, its checksum checked; null once the footer was read and checked. */
  next(): SnapshotChunk | null {
    if (this.done) return null;
    const rev = this.header.rev;
    const off = this.off;
    const { v, w } = this.frameAt(off);
    if (v.kind !== "frame") return this.fail(`${v.kind} frame${"reason" in v ? `: ${v.reason}` : ""} before the footer`, off, rev);
    if (v.rev !== rev) this.fail(`frame revision ${v.rev} in a snapshot at rev ${rev}`, off, rev);
    this.off = w.base + v.next;
    if (v.type === TYPE_SNAP_CHUNK) {
      this.chunks++;
      this.keys += chunkCount(w.bytes, v.start, v.len);
      return { start: w.base + v.start, len: v.len };
    }
    if (v.type !== TYPE_SNAP_FOOTER) this.fail(`unexpected frame type ${v.type}`, off, rev);
    let footer: SnapshotFooter;
    try {
      footer = decodeMap(w.bytes.subarray(v.start, v.start + v.len), ["keys", "chunks"], []) as unknown as SnapshotFooter;
    } catch (cause) {
      return this.fail(`undecodable footer: ${(cause as Error).message}`, off, rev);
    }
    if (footer.chunks !== this.chunks || footer.keys !== this.keys || this.header.keys !== this.keys) {
      this.fail(`footer says ${footer.keys} keys in ${footer.chunks} chunks, found ${this.keys} in ${this.chunks}`, off, rev);
    }
    if (this.off < this.src.size) this.fail("bytes after the footer", this.off, rev);
    this.done = true;
    return null;
  }

  private fail(msg: string, offset: number, rev = 0): never {
    throw new CorruptionError(`snapshot: ${msg}`, this.file, offset, rev);
  }
}

/**
 * Checks a snapshot file through `io` a window at a time, as SnapshotReader does: every frame.
 * Returns where its chunks are (file offsets).
 */
export function checkSnapshotFile(io: FileIO, file: string, windowBytes = READ_WINDOW_BYTES): SnapshotChunk[] {
  return readToEnd(new SnapshotReader(file, io, windowBytes));
}

function readToEnd(r: SnapshotReader): SnapshotChunk[] {
  const chunks: SnapshotChunk[] = [];
  for (let c = r.next(); c !== null; c = r.next()) chunks.push(c);
  return chunks;
}

/** Checks a whole snapshot file (every frame; entries are parsed when visited). See SnapshotReader. */
export function verifySnapshot(file: string, bytes: Uint8Array): VerifiedSnapshot {
  const r = new SnapshotReader(file, bytes);
  const chunks = readToEnd(r);
  return { file, header: r.header, bytes, chunks };
}

/** The entry count at the start of a chunk payload. */
function chunkCount(bytes: Uint8Array, start: number, len: number): number {
  try {
    return readHead(bytes, { pos: start, end: start + len }, MAJOR_ARRAY);
  } catch {
    return -1;
  }
}

export interface EntryVisitor {
  /**
   * One key; its value's CBOR encoding is bytes [start, end) of `e` (copy what you keep), and its
   * whole record is bytes [recordStart, recordEnd).
   */
  (key: string, e: Encoded, start: number, end: number, rev: number, createRev: number, version: number, recordStart: number, recordEnd: number): void;
}

/**
 * Visits every entry of chunk `i` of a verified snapshot. Throws CorruptionError (the checksum held,
 * so this is a bad writer or a bad format, never a torn write) on a malformed entry, keys out of
 * order, or revisions that do not fit the snapshot.
 */
export function visitChunk(
  s: VerifiedSnapshot,
  e: Encoded,
  i: number,
  lastKey: string | null,
  visit: EntryVisitor,
  onRecords?: (e: Encoded, start: number, end: number) => void,
): string | null {
  return visitEntries(s.file, s.header.rev, s.chunks[i]!, e, lastKey, visit, onRecords);
}

/** visitChunk for one chunk of a snapshot at `rev` (as SnapshotReader hands them out). */
export function visitEntries(
  file: string,
  rev: number,
  c: SnapshotChunk,
  e: Encoded,
  lastKey: string | null,
  visit: EntryVisitor,
  onRecords?: (e: Encoded, start: number, end: number) => void,
): string | null {
  const b = e.bytes;
  const cur = { pos: c.start, end: c.start + c.len };
  try {
    const n = readHead(b, cur, MAJOR_ARRAY);
    onRecords?.(e, cur.pos, cur.end); // the records, back to back, before any is visited
    for (let k = 0; k < n; k++) {
      const recordStart = cur.pos;
      // Exactly 0x85 (the arena reads records by that byte), not any CBOR head that says 5.
      if (b[cur.pos++] !== RECORD_HEAD) throw new Error("entry is not a 5-element array (0x85)");
      const keyLen = readHead(b, cur, MAJOR_TEXT);
      const key = readExactKey(e, skip(cur, keyLen), cur.pos);
      if (lastKey !== null && !(key > lastKey)) throw new Error(`key ${JSON.stringify(key)} out of order`);
      const valueLen = readHead(b, cur, MAJOR_BYTES);
      const vs = skip(cur, valueLen);
      const entryRev = readHead(b, cur, MAJOR_UINT);
      const createRev = readHead(b, cur, MAJOR_UINT);
      const version = readHead(b, cur, MAJOR_UINT);
      if (impossibleRevisions(rev, entryRev, createRev, version)) throw new Error(`key ${JSON.stringify(key)} has impossible revisions`);
      visit(key, e, vs, vs + valueLen, entryRev, createRev, version, recordStart, cur.pos);
      lastKey = key;
    }
    if (cur.pos !== cur.end) throw new Error("trailing bytes after the entries");
  } catch (cause) {
    if (cause instanceof CorruptionError) throw cause;
    throw new CorruptionError(`snapshot: ${(cause as Error).message}`, file, c.start - FRAME_HEADER_BYTES, rev);
  }
  return lastKey;
}

/**
 * Each revision since createRev changed the key at most batchOpsMax times (a batch may put one key
 * more than once): a larger version is forged, and would overflow on the next put.
 */
function impossibleRevisions(rev: number, entryRev: number, createRev: number, version: number): boolean {
  return entryRev > rev || createRev > entryRev || createRev < 1 || version < 1 || version > (entryRev - createRev + 1) * batchOpsMax;
}

/** One record of a chunk: its key is bytes [keyStart, keyEnd) of the chunk's bytes, the whole record [recordStart, recordEnd). */
export interface RecordVisitor {
  (keyStart: number, keyEnd: number, recordStart: number, recordEnd: number, createRev: number, version: number): void;
}

/**
 * visitEntries without making a string of each key (restore copies most records as they are): the
 * same checks, with the key order checked on the UTF-8 bytes (compareKeyBytes) and a key that is
 * not ASCII checked to be exact UTF-8. `last` is the previous chunk's last key (UTF-8); returns
 * this chunk's (a copy: the bytes may be gone by the next chunk).
 */
export function visitRecords(file: string, rev: number, c: SnapshotChunk, e: Encoded, last: Uint8Array | null, visit: RecordVisitor): Uint8Array | null {
  const b = e.bytes;
  const cur = { pos: c.start, end: c.start + c.len };
  let lastStart = -1;
  let lastEnd = -1;
  try {
    const n = readHead(b, cur, MAJOR_ARRAY);
    for (let k = 0; k < n; k++) {
      const recordStart = cur.pos;
      if (b[cur.pos++] !== RECORD_HEAD) throw new Error("entry is not a 5-element array (0x85)");
      const ks = skip(cur, readHead(b, cur, MAJOR_TEXT));
      const ke = cur.pos;
      if (!isAscii(b, ks, ke)) readExactKey(e, ks, ke); // throws unless exact UTF-8
      const inOrder = lastStart >= 0 ? compareKeyBytes(b, ks, ke, b, lastStart, lastEnd) > 0 : last === null || compareKeyBytes(b, ks, ke, last, 0, last.length) > 0;
      if (!inOrder) throw new Error(`key ${JSON.stringify(e.text.toString("utf8", ks, ke))} out of order`);
      skip(cur, readHead(b, cur, MAJOR_BYTES));
      const entryRev = readHead(b, cur, MAJOR_UINT);
      const createRev = readHead(b, cur, MAJOR_UINT);
      const version = readHead(b, cur, MAJOR_UINT);
      if (impossibleRevisions(rev, entryRev, createRev, version)) throw new Error(`key ${JSON.stringify(e.text.toString("utf8", ks, ke))} has impossible revisions`);
      visit(ks, ke, recordStart, cur.pos, createRev, version);
      lastStart = ks;
      lastEnd = ke;
    }
    if (cur.pos !== cur.end) throw new Error("trailing bytes after the entries");
  } catch (cause) {
    if (cause instanceof CorruptionError) throw cause;
    throw new CorruptionError(`snapshot: ${(cause as Error).message}`, file, c.start - FRAME_HEADER_BYTES, rev);
  }
  return lastStart >= 0 ? b.slice(lastStart, lastEnd) : last;
}

/**
 * Compares two keys given as UTF-8 bytes in JavaScript's string order (UTF-16 code units), the
 * order snapshots are written in. Byte order is code point order, which differs from it in one
 * case only: a character from U+E000 to U+FFFF (lead byte 0xEE or 0xEF) sorts after one above
 * U+FFFF (lead byte 0xF0 to 0xF4, a surrogate pair from 0xD800 in UTF-16).
 */
export function compareKeyBytes(a: Uint8Array, as: number, ae: number, b: Uint8Array, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  for (let i = 0; i < n; i++) {
    const x = a[as + i]!;
    const y = b[bs + i]!;
    if (x === y) continue;
    if (x >= 0xee && y >= 0xee && x >= 0xf0 !== y >= 0xf0) return x >= 0xf0 ? -1 : 1;
    return x - y;
  }
  return ae - as - (be - bs);
}

function decodeMap(payload: Uint8Array, uints: string[], strings: string[]): Record<string, unknown> {
  // A copy: cbor-x given a view into a whole file (~100 MB) was measured taking ~0.5 s per call.
  const m: unknown = payloadDecoder.decode(payload.slice());
  if (typeof m !== "object" || m === null) throw new Error("payload is not a map");
  const r = m as Record<string, unknown>;
  for (const k of uints) if (!(typeof r[k] === "number" && Number.isSafeInteger(r[k]) && (r[k] as number) >= 0)) throw new Error(`field ${k} missing`);
  for (const k of strings) if (typeof r[k] !== "string") throw new Error(`field ${k} missing`);
  return r;
}

export interface SnapshotFile {
  name: string;
  rev: number;
}

/**
 * The snapshots in `snapDir`, newest first. With `tidy`, leftover temp files (a snapshot that was
 * being written when the process stopped) are removed. Anything else there is refused.
 */
export function listSnapshots(io: FileIO, snapDir: string, tidy: boolean): SnapshotFile[] {
  let names: string[];
  try {
    names = io.readdir(snapDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new WalFailedError(`cannot list ${snapDir}: ${(err as Error).message}`, { cause: err });
  }
  const out: SnapshotFile[] = [];
  for (const name of names) {
    const m = SNAP_NAME_RE.exec(name);
    if (m) out.push({ name, rev: parseInt(m[1]!, 16) });
    else if (name.endsWith(SNAP_TMP_SUFFIX)) {
      if (tidy) io.unlink(path.join(snapDir, name));
    } else throw new CorruptionError("unexpected file in the snapshot directory", path.join(snapDir, name), 0, 0);
  }
  return out.sort((a, b) => b.rev - a.rev);
}
