// What the server says about itself: /metrics for Prometheus and /v1/status for people.

import type { Ctx } from "../context.ts";
import { json } from "../response.ts";

/** GET /metrics in the Prometheus text format. */
export function metrics(c: Ctx): Response {
  const s = c.state;
  const text = s.metrics.render(s.db?.stats() ?? null, { ready: s.db !== null && !s.draining, streams: s.streams.size });
  return new Response(text, { headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" } });
}

/** GET /v1/status: the server's own state, the engine's stats, and the replay progress. */
export function status(c: Ctx): Response {
  const s = c.state;
  const server = {
    ...s.info,
    ready: s.db !== null && !s.draining && s.db.stats().failed === null,
    draining: s.draining === true,
    auth: Boolean(s.token),
    watchStreams: s.streams.size,
    uptimeS: (Date.now() - s.metrics.startedAtMs) / 1000,
  };
  return json(200, { server, db: s.db?.stats() ?? null, replay: s.progress });
}
