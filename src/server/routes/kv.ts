// One key: GET, PUT and DELETE /v1/kv/<key>, with If-Match / If-None-Match as revision conditions.

import type { Store } from "../../index.ts";
import type { Ctx } from "../context.ts";
import { BAD_JSON, isJson, kvBodyBytesMax, mediaType, parseJson, readBody } from "../request.ts";
import { error, json, JSON_TYPE } from "../response.ts";
import { jsonText } from "../values.ts";

export function getKey(c: Ctx, db: Store): Response {
  const e = db.getEntry(c.key);
  c.state.metrics.op("get");
  if (!e) return error(404, "NOT_FOUND", `key ${JSON.stringify(c.key)} not found`);
  const headers = { ETag: `"${e.rev}"` };
  if (e.value instanceof Uint8Array) return new Response(e.value, { headers: { ...headers, "Content-Type": "application/octet-stream" } });
  return new Response(jsonText(e.value), { headers: { ...headers, "Content-Type": JSON_TYPE } });
}

export async function putKey(c: Ctx, db: Store): Promise<Response> {
  const ifRev = condition(c.req, db, c.key);
  if (ifRev instanceof Response) return ifRev;
  const body = await readBody(c.req, kvBodyBytesMax);
  if (body instanceof Response) return body;
  let value: unknown = body;
  if (isJson(mediaType(c.req))) {
    value = parseJson(body);
    if (value === BAD_JSON) return error(400, "BAD_JSON", "body is not valid JSON");
  }
  const rev = await db.put(c.key, value, ifRev === undefined ? {} : { ifRev });
  c.state.metrics.op("put");
  return json(200, { rev });
}

export async function deleteKey(c: Ctx, db: Store): Promise<Response> {
  const ifRev = condition(c.req, db, c.key);
  if (ifRev instanceof Response) return ifRev;
  const r = await db.delete(c.key, ifRev === undefined ? {} : { ifRev });
  c.state.metrics.op("delete");
  return json(200, r);
}

/**
 * If-Match: "<rev>" → that revision; If-Match: * → whatever revision the key has now (412 if it
 * has none); If-None-Match: * → must not exist (ifRev 0). Other forms are refused, not ignored.
 */
function condition(req: Request, db: Store, key: string): number | undefined | Response {
  const none = req.headers.get("if-none-match");
  const match = req.headers.get("if-match");
  if (none !== null && match !== null) return error(400, "BAD_CONDITION", "use If-Match or If-None-Match, not both");
  if (none !== null) return none.trim() === "*" ? 0 : error(400, "BAD_CONDITION", "If-None-Match supports only *");
  if (match === null) return undefined;
  if (match.trim() === "*") {
    const rev = db.getEntry(key)?.rev;
    const message = `harmonydb: condition failed for key ${JSON.stringify(key)}: If-Match: * and no key`;
    return rev ?? json(412, { error: { code: "CONFLICT", message, key } });
  }
  const m = /^\s*"(\d{1,15})"\s*$/.exec(match);
  if (!m) return error(400, "BAD_CONDITION", 'If-Match must be * or one quoted revision, like "42"');
  return Number(m[1]);
}
