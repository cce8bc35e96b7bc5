// Atomic multi-key writes: POST /v1/batch, every op applied or none.

import { ConflictError, type BatchOp, type Store } from "../../index.ts";
import type { Ctx } from "../context.ts";
import { BAD_JSON, batchBodyBytesMax, isJson, isObject, mediaType, parseJson, readBody } from "../request.ts";
import { conflictBody, error, json } from "../response.ts";
import { fromBase64 } from "../values.ts";

/** POST /v1/batch { ops: [{ op, key, value | valueBase64, ifRev? }] }: one atomic write; 409 names the key whose condition failed. */
export async function batch(c: Ctx, db: Store): Promise<Response> {
  if (!isJson(mediaType(c.req))) return error(415, "UNSUPPORTED_MEDIA_TYPE", "POST /v1/batch takes application/json");
  const body = await readBody(c.req, batchBodyBytesMax);
  if (body instanceof Response) return body;
  const parsed = parseJson(body);
  if (parsed === BAD_JSON) return error(400, "BAD_JSON", "body is not valid JSON");
  const ops = batchOps(parsed);
  if (typeof ops === "string") return error(400, "BAD_BATCH", ops);
  let rev: number;
  try {
    rev = await db.batch(ops);
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    return json(409, conflictBody(err));
  }
  const m = c.state.metrics;
  m.op("batch");
  m.op("put", ops.filter((o) => o.type === "put").length);
  m.op("delete", ops.filter((o) => o.type === "delete").length);
  return json(200, { rev });
}

const OP_FIELDS = new Set(["op", "key", "value", "valueBase64", "ifRev"]);

/** The engine's ops, or what is wrong with the first bad one. */
function batchOps(body: unknown): BatchOp[] | string {
  if (!isObject(body) || !Array.isArray(body.ops)) return 'body must be { "ops": [...] }';
  if (body.ops.length === 0) return "ops must not be empty";
  const out: BatchOp[] = [];
  for (let i = 0; i < body.ops.length; i++) {
    const op = batchOp(body.ops[i]);
    if (typeof op === "string") return `ops[${i}]: ${op}`;
    out.push(op);
  }
  return out;
}

function batchOp(x: unknown): BatchOp | string {
  if (!isObject(x)) return "must be an object";
  for (const k of Object.keys(x)) if (!OP_FIELDS.has(k)) return `unknown field ${JSON.stringify(k)}`;
  if (typeof x.key !== "string") return "key must be a string";
  const ifRev = x.ifRev;
  if (ifRev !== undefined && !(Number.isSafeInteger(ifRev) && (ifRev as number) >= 0)) return "ifRev must be an integer ≥ 0";
  const cond = ifRev === undefined ? {} : { ifRev: ifRev as number };
  const hasValue = "value" in x;
  const hasBase64 = "valueBase64" in x;
  if (x.op === "delete") {
    return hasValue || hasBase64 ? "a delete takes no value" : { type: "delete", key: x.key, ...cond };
  }
  if (x.op !== "put") return 'op must be "put" or "delete"';
  if (hasValue === hasBase64) return "a put takes exactly one of value and valueBase64";
  if (hasValue) return { type: "put", key: x.key, value: x.value, ...cond };
  const bytes = typeof x.valueBase64 === "string" ? fromBase64(x.valueBase64) : null;
  return bytes ? { type: "put", key: x.key, value: bytes, ...cond } : "valueBase64 must be padded standard base64";
}
