// The original routes, kept for old clients: POST /put and POST /get with a JSON body, errors as { success: false }.

import type { Store } from "../../index.ts";
import type { Ctx } from "../context.ts";
import { BAD_JSON, isJson, isObject, isReserved, kvBodyBytesMax, mediaType, parseJson, readBody } from "../request.ts";
import { error, json, JSON_TYPE } from "../response.ts";
import { jsonText } from "../values.ts";

/** Content types the original routes accepted: JSON, or none/text as a bare fetch() sends. */
function legacyType(req: Request): boolean {
  const t = mediaType(req);
  return t === "" || t === "text/plain" || isJson(t);
}

async function legacyBody(c: Ctx): Promise<{ key: string; value?: unknown } | Response> {
  if (!legacyType(c.req)) return error(415, "UNSUPPORTED_MEDIA_TYPE", "send a JSON body", true);
  const bytes = await readBody(c.req, kvBodyBytesMax, true);
  if (bytes instanceof Response) return bytes;
  const body = parseJson(bytes);
  if (body === BAD_JSON) return error(400, "BAD_JSON", "body is not valid JSON", true);
  if (!isObject(body) || typeof body.key !== "string") return error(400, "INVALID_KEY", "key must be a string", true);
  return body as { key: string; value?: unknown };
}

/** POST /put { key, value } → { success: true }. */
export async function legacyPut(c: Ctx, db: Store): Promise<Response> {
  const body = await legacyBody(c);
  if (body instanceof Response) return body;
  await db.put(body.key, body.value);
  c.state.metrics.op("put");
  return json(200, { success: true });
}

/** POST /get { key } → { success: true, value } or 404 { success: false, error }. */
export async function legacyGet(c: Ctx, db: Store): Promise<Response> {
  const body = await legacyBody(c);
  if (body instanceof Response) return body;
  if (isReserved(body.key)) return error(400, "INVALID_KEY", "keys beginning with U+0000 are reserved (harmonydb/kv's keyspace)", true);
  const value = db.get(body.key);
  c.state.metrics.op("get");
  if (value === undefined) return error(404, "NOT_FOUND", "key not found", true);
  return new Response(`{"success":true,"value":${jsonText(value)}}`, { headers: { "Content-Type": JSON_TYPE } });
}
