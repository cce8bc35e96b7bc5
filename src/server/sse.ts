// A db.watch() iterator as a Server-Sent Events stream: one JSON event per change, then an error event that says why it ended.

import { HarmonyError, type WatchEvent } from "../index.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { jsonText, valueFields } from "./values.ts";

/** A comment line this often keeps proxies and the idle timeout from closing a quiet stream. */
export const sseHeartbeatMs = 15_000;

/** An open watch stream, as the server tracks it: shutdown ends every one of them. */
export interface WatchStream {
  /** Sends a final `event: error` with this code and ends the stream. */
  end(code: string, message: string): void;
}

export interface SseOptions {
  /** Where the stream registers itself while it is open. */
  streams: Set<WatchStream>;
  signal: AbortSignal;
  metrics: Metrics;
  log: Logger;
  /** Resuming from `Last-Event-ID: <rev>.<i>`: events of revision `rev` with an index below `skip` were sent already. */
  resume?: { rev: number; skip: number };
  heartbeatMs?: number;
}

const utf8 = new TextEncoder();

/**
 * The events of `source` as `text/event-stream`. Each change is a default (`message`) event whose
 * data is `{ type, key, rev, value | valueBase64 }`, with `id: <rev>` (or `<rev>.<i>` for the i-th
 * event of a revision that changed several watched keys, so Last-Event-ID resumes exactly). The
 * stream ends with `event: error` and `{ code, message, … }`: COMPACTED (with `oldestRev`),
 * WATCH_OVERFLOW (with `rev` to watch again from), CLOSED, or SHUTTING_DOWN.
 *
 * Pulled, not pushed: a client that reads slowly leaves events in the watcher's bounded buffer,
 * which cuts it off with WATCH_OVERFLOW instead of growing without limit.
 */
export function sseResponse(source: AsyncIterableIterator<WatchEvent> | HarmonyError, o: SseOptions): Response {
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  let closed = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  let lastRev = -1;
  let indexInRev = 0;
  const iter = source instanceof HarmonyError ? null : source;

  const finish = (last?: string) => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    o.streams.delete(handle);
    o.signal.removeEventListener("abort", onAbort);
    void iter?.return?.()?.catch(() => {});
    try {
      if (last !== undefined) controller?.enqueue(utf8.encode(last));
      controller?.close();
    } catch {
      // The client is gone: nothing to tell it.
    }
  };
  const handle: WatchStream = { end: (code, message) => finish(errorEvent({ code, message })) };
  const onAbort = () => finish();

  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      c.enqueue(utf8.encode(": harmonydb watch\n\n")); // sends the headers now, so the client knows it is watching
      if (!iter) return finish(errorEvent(errorFields(source as HarmonyError, o.log)));
      o.streams.add(handle);
      o.signal.addEventListener("abort", onAbort);
      timer = setInterval(() => {
        try {
          if (!closed) c.enqueue(utf8.encode(": ping\n\n"));
        } catch {
          finish(); // the stream broke under us: the client is gone
        }
      }, o.heartbeatMs ?? sseHeartbeatMs);
    },
    async pull(c) {
      if (closed || !iter) return;
      try {
        for (;;) {
          const r = await iter.next();
          if (closed) return;
          if (r.done) return finish(errorEvent({ code: "CLOSED", message: "the watch ended" }));
          const ev = r.value;
          indexInRev = ev.rev === lastRev ? indexInRev + 1 : 0;
          lastRev = ev.rev;
          if (o.resume && ev.rev === o.resume.rev && indexInRev < o.resume.skip) continue;
          o.metrics.op("watch_event");
          c.enqueue(utf8.encode(eventText(ev, indexInRev)));
          return;
        }
      } catch (err) {
        finish(errorEvent(errorFields(err, o.log)));
      }
    },
    cancel() {
      finish();
    },
  });
  return new Response(body, {
    headers: { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", "X-Accel-Buffering": "no" },
  });
}

/** Ends every open watch stream with an error event (shutdown). */
export function endStreams(streams: Set<WatchStream>, code: string, message: string): void {
  for (const s of [...streams]) s.end(code, message);
}

/** Parses Last-Event-ID as sent by this server: `<rev>` or `<rev>.<i>`; null if it is not one. */
export function parseEventId(id: string): { rev: number; skip: number } | null {
  const m = /^(\d{1,15})(?:\.(\d{1,9}))?$/.exec(id.trim());
  if (!m) return null;
  return { rev: Number(m[1]), skip: Number(m[2] ?? 0) + 1 };
}

function eventText(ev: WatchEvent, indexInRev: number): string {
  const data: Record<string, unknown> = { type: ev.type, key: ev.key, rev: ev.rev };
  if (ev.type === "put") Object.assign(data, valueFields(ev.value));
  const id = indexInRev === 0 ? `${ev.rev}` : `${ev.rev}.${indexInRev}`;
  // JSON has no raw newlines, so the data always fits one `data:` line.
  return `id: ${id}\ndata: ${jsonText(data)}\n\n`;
}

function errorEvent(fields: Record<string, unknown>): string {
  return `event: error\ndata: ${JSON.stringify(fields)}\n\n`;
}

function errorFields(err: unknown, log: Logger): Record<string, unknown> {
  if (!(err instanceof HarmonyError)) {
    log.error("watch stream failed", { error: err instanceof Error ? err.message : String(err) });
    return { code: "INTERNAL", message: "internal error" };
  }
  const out: Record<string, unknown> = { code: err.code, message: err.message };
  // CompactedError: rev, oldestRev. WatchOverflowError: rev (watch again from there), bufferMax.
  for (const k of ["rev", "oldestRev", "bufferMax"]) {
    const v = (err as unknown as Record<string, unknown>)[k];
    if (typeof v === "number") out[k] = v;
  }
  return out;
}
