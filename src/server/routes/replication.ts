// What read replicas follow (docs/replication.md): GET /v1/wal?from=N streams the WAL's durable
// entries byte for byte, and GET /v1/snapshot answers the newest snapshot file.

import { newestSnapshot, walFrom, type Store } from "../../index.ts";
import type { Ctx } from "../context.ts";
import { intParam, unknownParam } from "../request.ts";
import { error, withHeaders } from "../response.ts";
import type { WatchStream } from "../sse.ts";

const WAL_PARAMS = new Set(["from"]);
export const WAL_TYPE = "application/vnd.harmonydb.wal";
/** How long a WAL stream waits before looking again for new durable entries. */
const walPollMs = 2;
/** Bytes of frames per chunk of the stream. */
const walChunkBytes = 1024 * 1024;

/** GET /v1/wal?from=N: the entry frames of N, N+1, … as they become durable, without end. */
export function wal(c: Ctx, db: Store): Response {
  const p = c.url.searchParams;
  const unknown = unknownParam(p, WAL_PARAMS);
  if (unknown) return unknown;
  const from = intParam(p, "from", 1, Number.MAX_SAFE_INTEGER);
  if (from instanceof Response) return from;
  if (from === undefined) return error(400, "INVALID_ARGUMENT", "from (the first revision wanted) is required");
  const start = walFrom(db, from);
  if (start.kind === "gone") {
    const res = error(410, "COMPACTED", `revision ${from} is no longer in the log; the newest snapshot is at revision ${start.snapshotRev} (GET /v1/snapshot)`);
    return withHeaders(res, { "Harmony-Snapshot-Rev": String(start.snapshotRev) });
  }
  if (start.kind === "ahead") return error(416, "AHEAD", `revision ${from} is past this database's newest (${start.rev}) + 1`);
  const source = start.source;
  c.server?.timeout(c.req, 0); // a quiet stream is not idle: it waits for writes
  const streams = c.state.streams;
  let ended = false;
  const entry: WatchStream = { end: () => void (ended = true) };
  streams.add(entry);
  const finish = () => {
    ended = true;
    streams.delete(entry);
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (!ended && !c.req.signal.aborted) {
          const frames = source.read(walChunkBytes);
          if (frames.length > 0) {
            for (const f of frames) controller.enqueue(f); // (views of a buffer read for this chunk alone)
            return;
          }
          await Bun.sleep(walPollMs);
        }
      } catch (err) {
        // A segment deleted before it was read to its end: the replica reconnects, and hears 410.
        finish();
        controller.error(err);
        return;
      }
      finish();
      try {
        controller.close();
      } catch {
        // (cancelled by the client meanwhile)
      }
    },
    cancel: finish,
  });
  return new Response(body, { headers: { "Content-Type": WAL_TYPE, "Cache-Control": "no-store", "Harmony-From-Rev": String(from), "Harmony-Db": db.id } });
}

/** GET /v1/snapshot: the newest snapshot file byte for byte, its revision in Harmony-Snapshot-Rev. */
export function snapshot(_c: Ctx, db: Store): Response {
  const s = newestSnapshot(db);
  if (!s) return error(404, "NOT_FOUND", "no snapshot yet: the log starts at revision 1 (GET /v1/wal?from=1)");
  return new Response(Bun.file(s.file), { headers: { "Content-Type": "application/octet-stream", "Harmony-Snapshot-Rev": String(s.rev) } });
}
