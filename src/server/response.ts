// HTTP responses: JSON bodies, the two error shapes, and the HTTP status of each engine error.

import { ConflictError, HarmonyError, type ErrorCode, type ReplayProgress } from "../index.ts";
import type { Logger } from "./log.ts";

export const JSON_TYPE = "application/json;charset=utf-8";

/** The HTTP status of each engine error; typed by ErrorCode, so a new code without one does not compile. */
const STATUS: Record<ErrorCode, number> = {
  CLOSED: 503,
  LOCKED: 503,
  CORRUPTION: 500,
  INVALID_KEY: 400,
  KEY_TOO_LARGE: 413,
  VALUE_TOO_LARGE: 413,
  INVALID_VALUE: 400,
  INVALID_ARGUMENT: 400,
  CONFLICT: 412,
  WAL_FAILED: 503,
  COMPACTED: 410,
  NO_SPACE: 507,
  WATCH_OVERFLOW: 503,
  // No route takes a snapshot today; 500 (what the fallback gave) because the server's own file write failed, not the request.
  SNAPSHOT_FAILED: 500,
  // restore, and writes waiting for the archive (archive.sync) when it gives up or at close.
  ARCHIVE: 502,
  // A write to a read replica: the message names the primary.
  READ_ONLY: 403,
  // ?min_rev= on a replica that had not applied that revision in time.
  TIMEOUT: 504,
};

/** Errors thrown by the engine or by a bug, as responses; never a stack trace, the log gets the detail. */
export function failure(err: unknown, legacy: boolean, log: Logger): Response {
  if (err instanceof ConflictError && !legacy) return json(412, conflictBody(err));
  // The ?? only guards a code that was cast past the type (STATUS covers every ErrorCode).
  if (err instanceof HarmonyError) return error(STATUS[err.code] ?? 500, err.code, err.message, legacy);
  log.error("unexpected error", { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return error(500, "INTERNAL", "internal error", legacy);
}

/** 503 with Retry-After while the WAL replays, and how far the replay has got. */
export function notReady(progress: ReplayProgress | null): Response {
  return new Response(JSON.stringify({ ...errBody("NOT_READY", "replaying the WAL"), replay: progress }), {
    status: 503,
    headers: { "Retry-After": "1", "Content-Type": JSON_TYPE },
  });
}

/** A failed condition names its key, as ConflictError does: { error: { code: "CONFLICT", message, key } }. */
export function conflictBody(err: ConflictError) {
  return { error: { code: err.code, message: err.message, key: err.key } };
}

export function errBody(code: string, message: string) {
  return { error: { code, message } };
}

/** A JSON error: { error: { code, message } }, or for the original routes { success: false, error, code }. */
export function error(status: number, code: string, message: string, legacy = false): Response {
  return json(status, legacy ? { success: false, error: message, code } : errBody(code, message));
}

/** Content-Type is application/json;charset=utf-8 (Response.json: the fastest way Bun builds one). */
export function json(status: number, body: unknown): Response {
  return Response.json(body, status === 200 ? undefined : { status });
}

export function withHeaders(res: Response, headers: Record<string, string>): Response {
  for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
  return res;
}
