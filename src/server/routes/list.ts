// Listing keys: GET /v1/kv with a prefix or a range, in pages a cursor continues.

import type { Store, RangeOptions } from "../../index.ts";
import type { Ctx } from "../context.ts";
import { boolParam, intParam, listBytesMax, listLimitDefault, listLimitMax, RESERVED_END, unknownParam } from "../request.ts";
import { JSON_TYPE } from "../response.ts";
import { jsonText, valueFields } from "../values.ts";

interface ListQuery {
  prefix?: string;
  start?: string;
  end?: string;
  cursor?: string;
  limit: number;
  reverse: boolean;
  keysOnly: boolean;
}

/**
 * GET /v1/kv?prefix=&start=&end=&limit=&reverse=&keys_only=&cursor= — keys in `[start, end)` with
 * the prefix, in order (or reversed). When more keys remain, the answer has `more: true` and
 * `next` (the last key it holds): pass it back as `cursor` with the same other parameters for the
 * next page, which starts just after it in the listing's direction.
 */
export function list(c: Ctx, db: Store): Response {
  const q = listQuery(c.url.searchParams);
  if (q instanceof Response) return q;
  const parts: string[] = [];
  let bytes = 0;
  let last = "";
  let more = false;
  for (const item of db.range(rangeOptions(q))) {
    if (parts.length >= q.limit || bytes >= listBytesMax) {
      more = true;
      break;
    }
    const text = jsonText(q.keysOnly ? { key: item.key, rev: item.rev } : { key: item.key, rev: item.rev, ...valueFields(item.value) });
    parts.push(text);
    bytes += text.length;
    last = item.key;
  }
  c.state.metrics.op("list");
  const next = more ? `,"next":${jsonText(last)}` : "";
  return new Response(`{"items":[${parts.join(",")}],"more":${more}${next}}`, { headers: { "Content-Type": JSON_TYPE } });
}

/** The engine's range for a listing page; a cursor replaces the near bound, so every page starts where it should, in O(log n). */
function rangeOptions(q: ListQuery): RangeOptions {
  const o: RangeOptions = { reverse: q.reverse, keysOnly: q.keysOnly };
  if (q.prefix !== undefined) o.prefix = q.prefix;
  if (q.start !== undefined) o.gte = q.start;
  if (q.end !== undefined) o.lt = q.end;
  if (q.cursor !== undefined) {
    if (!q.reverse && (q.start === undefined || q.cursor >= q.start)) {
      delete o.gte;
      o.gt = q.cursor;
    } else if (q.reverse && (q.end === undefined || q.cursor < q.end)) {
      o.lt = q.cursor;
    }
  }
  // Keys beginning with U+0000 are harmonydb/kv's (docs/deno-kv.md §2): a listing starts after them.
  if (!(o.gte !== undefined && o.gte >= RESERVED_END) && !(o.gt !== undefined && o.gt >= RESERVED_END)) {
    delete o.gt;
    o.gte = RESERVED_END;
  }
  return o;
}


const LIST_PARAMS = new Set(["prefix", "start", "end", "cursor", "limit", "reverse", "keys_only"]);

function listQuery(p: URLSearchParams): ListQuery | Response {
  const unknown = unknownParam(p, LIST_PARAMS);
  if (unknown) return unknown;
  const limit = intParam(p, "limit", 1, Number.MAX_SAFE_INTEGER);
  const reverse = boolParam(p, "reverse");
  const keysOnly = boolParam(p, "keys_only");
  for (const r of [limit, reverse, keysOnly]) if (r instanceof Response) return r;
  const q: ListQuery = {
    limit: Math.min((limit as number | undefined) ?? listLimitDefault, listLimitMax),
    reverse: reverse === true,
    keysOnly: keysOnly === true,
  };
  for (const k of ["prefix", "start", "end", "cursor"] as const) {
    const v = p.get(k);
    if (v !== null) q[k] = v;
  }
  return q;
}
