// The probes: /healthz and /health (is the process up) and /readyz (should it get traffic).

import type { Ctx, State } from "../context.ts";
import { errBody, json } from "../response.ts";

/** GET /healthz, and /health for the original clients: always 200 while the process answers. */
export function healthz(c: Ctx): Response {
  return json(200, health(c.state));
}

function health(s: State) {
  return { ok: true, success: true, ready: s.db !== null, draining: s.draining === true, replay: s.progress };
}

/** GET /readyz: 503 with the reason while the WAL replays, during shutdown, or once the WAL has failed. */
export function readyz(c: Ctx): Response {
  const s = c.state;
  const failed = s.db?.stats().failed ?? null;
  const reason = !s.db ? "replaying the WAL" : s.draining ? "shutting down" : failed !== null ? `WAL failed: ${failed}` : null;
  if (reason === null) return json(200, { ready: true });
  return json(503, { ready: false, ...errBody("NOT_READY", reason), replay: s.progress });
}
