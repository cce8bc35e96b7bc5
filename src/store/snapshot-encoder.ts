// Encoding a snapshot's chunks off the main thread: the main thread walks its view of the index in
// key order and hands the records' refs to a worker (workers/snapshot-encoder.ts), which copies the
// records out of the arena's blocks (SharedArrayBuffers, src/store/arena.ts) into chunks and hands them
// back; the main thread passes them on to the writer. Copying 1M records scattered by overwrites
// cost the main thread 1.5-3 ms per 256 KiB chunk, ~1 s per snapshot, which it now spends on
// writes. A small snapshot is encoded on the main thread instead: starting the worker takes
// 60-80 ms here, more than encoding a few MiB.

import { bufferOf } from "../bytes.ts";
import * as fs from "node:fs";
import * as os from "node:os";
import { parentPort, type MessagePort } from "node:worker_threads";
import { blockTable, locate, type Blocks } from "./arena.ts";
import * as L from "../limits.ts";
import { ChunkEncoder } from "../snapshot/file.ts";

/** Main thread → encoder. */
export type EncoderRequest =
  | { type: "start"; blocks: (Uint8Array | null)[]; chunkBytes: number }
  /** Encode the records at these refs, in this order; `n` of them are set. */
  | { type: "refs"; refs: Float64Array; n: number }
  /** No more refs: send what is left. */
  | { type: "end" }
  /** The snapshot was abandoned: let go of its blocks, no reply. */
  | { type: "drop" }
  /** A chunk buffer the main thread is done with. */
  | { type: "recycle"; chunk: Uint8Array };

/** Encoder → main thread: the chunks the last request completed (their buffers handed over). */
export interface EncoderReply {
  chunks: Uint8Array[];
  refs: Float64Array | null;
}

/** What SnapshotScheduler asks of an encoder, in a worker or not. */
export interface SnapshotChunks {
  /** A refs array of `n` slots to fill for refs(), reused once the encoder is done with it. */
  refsArray(n: number): Float64Array;
  /** Asks for the records at refs[0…n−1] (handed over); resolves with the chunks they filled. */
  refs(refs: Float64Array, n: number): Promise<EncoderReply>;
  /** No more refs: resolves with the last chunk, if any. */
  end(): Promise<EncoderReply>;
  /** Gives a chunk's buffer back once its frame is in the ring. */
  recycle(chunk: Uint8Array): void;
  /** The snapshot is done with it (finished or not). */
  close(): void;
}

/** An encoder for the records of `blocks` (a view's block table): on `thread`, or inline when null. */
export function snapshotChunks(blocks: (Uint8Array | null)[], chunkBytes: number, thread: EncoderThread | null): SnapshotChunks {
  return thread !== null ? thread.session(blocks, chunkBytes) : new InlineEncoder(blocks, chunkBytes);
}

/** The encoding itself, wherever it runs: records at refs, in that order, into chunks. */
class RefsEncoder {
  private readonly blocks: Blocks;
  private readonly enc: ChunkEncoder;

  constructor(blocks: (Uint8Array | null)[], chunkBytes: number) {
    this.blocks = blockTable(blocks, blocks.map((b) => (b === null ? null : bufferOf(b))));
    this.enc = new ChunkEncoder(chunkBytes);
  }

  refs(refs: Float64Array, n: number): Uint8Array[] {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const full = this.enc.addRecord(locate(this.blocks, refs[i]!));
      if (full !== null) chunks.push(full);
    }
    return chunks;
  }

  end(): Uint8Array[] {
    const last = this.enc.flush();
    return last === null ? [] : [last];
  }

  recycle(chunk: Uint8Array): void {
    this.enc.recycle(chunk);
  }
}

/** The worker's side: answers each "refs" and the "end" request with one reply, in order. */
export function serveEncoder(port: MessagePort): void {
  let enc: RefsEncoder | null = null;
  port.on("message", (m: EncoderRequest) => {
    if (m.type === "start") {
      enc = new RefsEncoder(m.blocks, m.chunkBytes);
      return;
    }
    if (m.type === "recycle") {
      enc?.recycle(m.chunk); // a frame written after the snapshot's end: dropped
      return;
    }
    if (m.type === "drop") {
      enc = null;
      return;
    }
    if (enc === null) throw new Error(`snapshot encoder: "${m.type}" outside a snapshot`);
    const chunks = m.type === "refs" ? enc.refs(m.refs, m.n) : enc.end();
    // After the last chunk the blocks go: between snapshots they would keep the ones compaction
    // has dropped since alive.
    if (m.type === "end") enc = null;
    // The refs array goes back too, for the next batch.
    const refs = m.type === "refs" ? m.refs : null;
    const reply: EncoderReply = { chunks, refs };
    port.postMessage(reply, [...chunks.map((c) => c.buffer as ArrayBuffer), ...(refs ? [refs.buffer as ArrayBuffer] : [])]);
  });
}

/** A refs array of length `n`: one a finished batch gave back (`pool`), or a new one. */
function refsFrom(pool: Float64Array[], n: number): Float64Array {
  const spare = pool.pop();
  return spare !== undefined && spare.length === n ? spare : new Float64Array(n);
}

/** On the main thread, a batch at a time (the caller gives the event loop a turn between batches). */
class InlineEncoder implements SnapshotChunks {
  private readonly enc: RefsEncoder;
  private readonly spareRefs: Float64Array[] = [];

  constructor(blocks: (Uint8Array | null)[], chunkBytes: number) {
    this.enc = new RefsEncoder(blocks, chunkBytes);
  }

  refsArray(n: number): Float64Array {
    return refsFrom(this.spareRefs, n);
  }

  async refs(refs: Float64Array, n: number): Promise<EncoderReply> {
    const chunks = this.enc.refs(refs, n);
    this.spareRefs.push(refs);
    return { chunks, refs: null };
  }

  async end(): Promise<EncoderReply> {
    return { chunks: this.enc.end(), refs: null };
  }

  recycle(chunk: Uint8Array): void {
    this.enc.recycle(chunk);
  }

  close(): void {}
}

export function serveEncoderInWorker(): void {
  if (parentPort === null) throw new Error("the snapshot encoder runs in a worker");
  niceThisThread(L.snapshotEncoderNice);
  serveEncoder(parentPort);
}

/**
 * Lowers this thread's priority (Linux: a thread has its own nice value, set through its thread id):
 * the encoder then runs on what the main thread and the writer leave idle. Elsewhere, or when it
 * cannot be set, it runs at the process's priority.
 */
function niceThisThread(nice: number): void {
  try {
    const tid = Number(fs.readlinkSync("/proc/thread-self").split("/").at(-1));
    if (Number.isSafeInteger(tid) && tid > 0) os.setPriority(tid, nice);
  } catch {}
}

/**
 * The encoder worker, started for the first snapshot that needs it and kept until close(): starting
 * one took 60-80 ms, ~16 ms of it on the main thread, for every snapshot. One snapshot uses it at a
 * time; requests are answered in order, and up to two are outstanding, so the worker encodes the
 * next batch while the main thread passes on the chunks of the last.
 */
export class EncoderThread {
  private worker: Worker | null = null;
  private readonly replies: { resolve: (r: EncoderReply) => void; reject: (e: Error) => void }[] = [];
  private failed: Error | null = null;
  private readonly spareRefs: Float64Array[] = [];

  /** A session for one snapshot of the records in `blocks`; the worker keeps the process alive until it ends. */
  session(blocks: (Uint8Array | null)[], chunkBytes: number): SnapshotChunks {
    const w = this.started();
    w.ref();
    const msg: EncoderRequest = { type: "start", blocks: blocks.map(shared), chunkBytes };
    w.postMessage(msg);
    let ended = false;
    return {
      refsArray: (n) => refsFrom(this.spareRefs, n),
      refs: (refs, n) => this.request({ type: "refs", refs, n }, [refs.buffer as ArrayBuffer]),
      end: () => {
        ended = true;
        return this.request({ type: "end" }, []);
      },
      recycle: (chunk) => {
        if (this.failed === null) this.worker?.postMessage({ type: "recycle", chunk } satisfies EncoderRequest, [chunk.buffer as ArrayBuffer]);
      },
      close: () => {
        // A failed snapshot never sent "end": the worker would keep its blocks until the next one.
        if (!ended && this.failed === null) this.worker?.postMessage({ type: "drop" } satisfies EncoderRequest);
        this.worker?.unref();
      },
    };
  }

  terminate(): void {
    const w = this.worker;
    this.worker = null;
    if (w !== null) void w.terminate();
    this.fail(new Error("snapshot encoder closed"));
  }

  /** The worker, started anew after a failure. */
  private started(): Worker {
    if (this.worker !== null && this.failed === null) return this.worker;
    this.terminate();
    this.failed = null;
    const w = new Worker(new URL("../../workers/snapshot-encoder.ts", import.meta.url));
    // Events of a worker replaced since (after a failure) are its own business.
    w.onmessage = (e: MessageEvent<EncoderReply>) => {
      if (this.worker !== w) return;
      if (e.data.refs) this.spareRefs.push(e.data.refs);
      this.replies.shift()?.resolve(e.data);
    };
    w.onerror = (e: ErrorEvent) => this.worker === w && this.fail(new Error(`snapshot encoder: ${e.message}`));
    // An exit with no error event (killed, out of memory) must not leave requests waiting forever.
    w.addEventListener("close", () => this.worker === w && this.fail(new Error("snapshot encoder: the worker exited")));
    this.worker = w;
    return w;
  }

  private request(msg: EncoderRequest, transfer: ArrayBuffer[]): Promise<EncoderReply> {
    const w = this.worker;
    if (this.failed || w === null) return Promise.reject(this.failed ?? new Error("snapshot encoder closed"));
    return new Promise((resolve, reject) => {
      this.replies.push({ resolve, reject });
      w.postMessage(msg, transfer);
    });
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const r of this.replies.splice(0)) r.reject(this.failed);
  }
}

/**
 * `b` in shared memory, as the worker must see it: arena blocks are SharedArrayBuffers already; a
 * block that is not (a file read by a FileIO that ignores the buffer it is offered) is copied.
 */
function shared(b: Uint8Array | null): Uint8Array | null {
  if (b === null || b.buffer instanceof SharedArrayBuffer) return b;
  const copy = new Uint8Array(new SharedArrayBuffer(b.byteLength));
  copy.set(b);
  return copy;
}
