// Watching changes: GET /v1/watch as a Server-Sent Events stream, resumable by Last-Event-ID.

import { CompactedError, type Store, type HarmonyError, type WatchOptions } from "../../index.ts";
import type { Ctx } from "../context.ts";
import { intParam, RESERVED_END, unknownParam } from "../request.ts";
import { parseEventId, sseResponse } from "../sse.ts";

const WATCH_PARAMS = new Set(["prefix", "start", "end", "from_rev"]);

/** GET /v1/watch?prefix=&start=&end=&from_rev= as Server-Sent Events (see sse.ts for the event grammar). */
export function watch(c: Ctx, db: Store): Response {
  const p = c.url.searchParams;
  const unknown = unknownParam(p, WATCH_PARAMS);
  if (unknown) return unknown;
  const fromRev = intParam(p, "from_rev", 1, Number.MAX_SAFE_INTEGER);
  if (fromRev instanceof Response) return fromRev;
  const opts: WatchOptions = {};
  const prefix = p.get("prefix");
  const start = p.get("start");
  const end = p.get("end");
  if (prefix !== null) opts.prefix = prefix;
  if (start !== null) opts.gte = start;
  if (end !== null) opts.lt = end;
  if (!(opts.gte !== undefined && opts.gte >= RESERVED_END)) opts.gte = RESERVED_END; // not harmonydb/kv's keys
  // An EventSource that reconnects sends the last id it saw: resume just after that event.
  const lastId = c.req.headers.get("last-event-id");
  const resume = fromRev === undefined && lastId !== null ? parseEventId(lastId) : null;
  if (fromRev !== undefined) opts.fromRev = fromRev;
  else if (resume) opts.fromRev = resume.rev;
  let source: ReturnType<Store["watch"]> | HarmonyError;
  try {
    source = db.watch(opts);
  } catch (err) {
    // A compacted start is reported in the stream, where an EventSource can read it.
    if (!(err instanceof CompactedError)) throw err;
    source = err;
  }
  c.server?.timeout(c.req, 0); // the heartbeat keeps it alive instead
  const s = c.state;
  return sseResponse(source, { streams: s.streams, signal: c.req.signal, metrics: s.metrics, log: s.log, ...(resume ? { resume } : {}) });
}
