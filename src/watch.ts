// Watchers: ordered change events for a key range, first from the WAL (history), then live.

import * as path from "node:path";
import { CompactedError, HarmonyError, InvalidArgumentError, WatchOverflowError } from "./errors.ts";
import { materializeHandle, type ValueHandle } from "./store/key-index.ts";
import { valueDecoder } from "./codec/cbor.ts";
import { visitOps, type Encoded } from "./format/decoder.ts";
import { nodeIO } from "./io/file-io.ts";
import { TYPE_ENTRY } from "./format/constants.ts";
import { lastSegmentStartingBy, listSegments, readSegment, SegmentReader } from "./wal/reader.ts";
import * as L from "./limits.ts";

export interface WatchOptions {
  prefix?: string;
  gte?: string;
  lt?: string;
  /** Start with this revision (older ones are read from the WAL); default: the next one. */
  fromRev?: number;
  /** Most live events held for a slow consumer before it is cut off with WatchOverflowError. */
  bufferMax?: number;
}

export interface WatchEvent {
  type: "put" | "delete";
  key: string;
  value?: unknown;
  rev: number;
}

/** A live event as queued: the value is materialised only when the consumer takes it. */
interface Queued {
  rev: number;
  key: string;
  stored: ValueHandle | null;
}

export class Watcher implements AsyncIterableIterator<WatchEvent> {
  private readonly queue: Queued[] = [];
  private queueHead = 0;
  private wake: (() => void) | null = null;
  private failure: HarmonyError | null = null;
  private done = false;
  private readonly bufferMax: number;
  private history: Iterator<WatchEvent> | null;

  constructor(
    opts: WatchOptions,
    history: Iterable<WatchEvent> | null,
    private readonly onClose: (w: Watcher) => void,
  ) {
    this.matches = keyFilter(opts);
    this.bufferMax = opts.bufferMax ?? L.watchBufferEventsMax;
    this.history = history ? history[Symbol.iterator]() : null;
  }

  readonly matches: (key: string) => boolean;

  /** A durable change (called in revision order, after the index has it). */
  push(rev: number, key: string, stored: ValueHandle | null): void {
    if (this.done) return;
    if (this.queue.length - this.queueHead >= this.bufferMax) {
      this.fail(new WatchOverflowError(this.bufferMax, this.queue[this.queueHead]!.rev));
      return;
    }
    this.queue.push({ rev, key, stored });
    this.wakeUp();
  }

  fail(err: HarmonyError): void {
    if (this.done) return;
    this.failure = err;
    this.finish();
  }

  async next(): Promise<IteratorResult<WatchEvent>> {
    for (;;) {
      if (this.history) {
        const h = this.history.next();
        if (!h.done) return { value: h.value, done: false };
        this.history = null;
      }
      if (this.queueHead < this.queue.length) {
        const q = this.queue[this.queueHead++]!;
        if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
          this.queue.splice(0, this.queueHead);
          this.queueHead = 0;
        }
        const ev: WatchEvent = q.stored
          ? { type: "put", key: q.key, value: materializeHandle(q.stored), rev: q.rev }
          : { type: "delete", key: q.key, rev: q.rev };
        return { value: ev, done: false };
      }
      if (this.failure) {
        const err = this.failure;
        this.failure = null;
        throw err;
      }
      if (this.done) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<WatchEvent>> {
    this.finish();
    this.queue.length = this.queueHead = 0;
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.history = null;
    this.onClose(this);
    this.wakeUp();
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

/** The keys a watcher wants. */
export function keyFilter(o: WatchOptions): (key: string) => boolean {
  return (key) =>
    (o.prefix === undefined || key.startsWith(o.prefix)) && (o.gte === undefined || key >= o.gte) && (o.lt === undefined || key < o.lt);
}

export function checkWatchOptions(o: WatchOptions): void {
  if (o.fromRev !== undefined && (!Number.isSafeInteger(o.fromRev) || o.fromRev < 1)) {
    throw new InvalidArgumentError(`fromRev must be an integer ≥ 1, got ${o.fromRev}`);
  }
  if (o.bufferMax !== undefined && (!Number.isSafeInteger(o.bufferMax) || o.bufferMax < 1)) {
    throw new InvalidArgumentError(`bufferMax must be an integer ≥ 1`);
  }
}

/**
 * Events for revisions [fromRev, toRev] read from the WAL segments, lazily: one segment in memory
 * at a time. Throws CompactedError if the log no longer reaches back to fromRev.
 */
export function historyEvents(walDir: string, fromRev: number, toRev: number, matches: (key: string) => boolean): Iterable<WatchEvent> {
  const segments = listSegments(nodeIO, walDir, false);
  const oldest = segments[0]?.firstRev ?? toRev + 1;
  if (fromRev < oldest) throw new CompactedError(fromRev, oldest);
  const first = Math.max(0, lastSegmentStartingBy(segments, fromRev));
  const files = segments.slice(first).map((s) => path.join(walDir, s.name));
  return {
    *[Symbol.iterator]() {
      for (const file of files) {
        // Only the frames are read: recovery checked these segments, and the history stops at the first non-frame.
        const reader = new SegmentReader(file, readHistorySegment(walDir, file, fromRev));
        for (let v = reader.next(); v.kind === "frame"; v = reader.next()) {
          if (v.type !== TYPE_ENTRY || v.rev < fromRev) continue;
          if (v.rev > toRev) return;
          yield* entryEvents(reader.segment, v.rev, v.start, v.start + v.len, matches);
        }
      }
    },
  };
}

/** The events of one entry, payload bytes [start, end) of `seg`, for the keys that match. */
function entryEvents(seg: Encoded, rev: number, start: number, end: number, matches: (key: string) => boolean): WatchEvent[] {
  const events: WatchEvent[] = [];
  visitOps(seg, start, end, {
    put: (key, e, s, vEnd) => {
      if (matches(key)) events.push({ type: "put", key, value: valueDecoder.decode(e.bytes.slice(s, vEnd)), rev });
    },
    delete: (key) => {
      if (matches(key)) events.push({ type: "delete", key, rev });
    },
  });
  return events;
}

/**
 * A segment for history; one a snapshot deleted since watch() began means those revisions are
 * compacted. Other read errors reach the watcher as the file system threw them.
 */
function readHistorySegment(walDir: string, file: string, fromRev: number): Uint8Array {
  try {
    return readSegment(nodeIO, file);
  } catch (err) {
    const cause = (err as Error).cause;
    if ((cause as NodeJS.ErrnoException).code !== "ENOENT") throw cause;
    const oldest = listSegments(nodeIO, walDir, false)[0]?.firstRev ?? fromRev + 1;
    throw new CompactedError(fromRev, oldest);
  }
}
