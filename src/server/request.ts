// Reading a request: the limits on it, its body, JSON and media types, the key in the path, query parameters.

import { recordBytesMax, valueBytesMax } from "../index.ts";
import { error, withHeaders } from "./response.ts";

// ---- limits (bytes unless the name says otherwise) ----

/** Largest body of PUT /v1/kv/<key> and the legacy routes: the largest value plus room for JSON syntax. */
export const kvBodyBytesMax = valueBytesMax + 64 * 1024;
/** Largest POST /v1/batch body: a whole record's worth of values as base64 (4/3 of it), plus the JSON around them. */
export const batchBodyBytesMax = Math.ceil((recordBytesMax * 4) / 3) + 1024 * 1024;
export const listLimitDefault = 1000;
export const listLimitMax = 10_000;
/** A listing stops once its items hold about this much JSON, and says `more: true`. */
export const listBytesMax = 8 * 1024 * 1024;

// ---- the body ----

/**
 * The body, at most `max` bytes: a declared Content-Length over it is refused before reading,
 * and a streamed body is cut off as soon as it passes it.
 */
export async function readBody(req: Request, max: number, legacy = false): Promise<Uint8Array | Response> {
  const declared = req.headers.get("content-length");
  if (declared !== null) {
    if (!/^\s*\d{1,16}\s*$/.test(declared)) return error(400, "BAD_REQUEST", "Content-Length is not a number", legacy);
    if (Number(declared) > max) return tooLarge(max, legacy);
    // The server reads exactly Content-Length bytes: the bound holds, and the one-call read is the fast path.
    if (!req.body) return new Uint8Array(0);
    const bytes = await req.bytes();
    return bytes.byteLength > max ? tooLarge(max, legacy) : bytes;
  }
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      void reader.cancel().catch(() => {});
      return tooLarge(max, legacy);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(n);
  let at = 0;
  for (const ch of chunks) {
    out.set(ch, at);
    at += ch.byteLength;
  }
  return out;
}

function tooLarge(max: number, legacy: boolean): Response {
  // The rest of the body is not read: the connection cannot be reused.
  return withHeaders(error(413, "BODY_TOO_LARGE", `body is over ${max} bytes`, legacy), { Connection: "close" });
}

export const BAD_JSON = Symbol("bad json");
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8Strict.decode(bytes));
  } catch {
    return BAD_JSON; // syntax, invalid UTF-8, or nesting too deep for the parser
  }
}

export function mediaType(req: Request): string {
  return (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
}

export function isJson(mediaType: string): boolean {
  return mediaType === "application/json" || (mediaType.startsWith("application/") && mediaType.endsWith("+json"));
}

export function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

// ---- the URL ----

/**
 * Keys below this are harmonydb/kv's (they begin with U+0000: docs/deno-kv.md §2). No REST route
 * reads, writes, lists or watches them.
 */
export const RESERVED_END = "\u0001";

export function isReserved(key: string): boolean {
  return key.charCodeAt(0) === 0;
}

/** The key decodeKey gives for a path it cannot decode; the KV route answers 400 for it. */
export const INVALID = "\u0000invalid";

/** Percent-decodes exactly once; INVALID for malformed escapes or invalid UTF-8. */
export function decodeKey(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return INVALID;
  }
}

export function unknownParam(p: URLSearchParams, known: Set<string>): Response | null {
  for (const k of p.keys()) if (!known.has(k)) return error(400, "BAD_QUERY", `unknown query parameter ${JSON.stringify(k)}`);
  return null;
}

export function intParam(p: URLSearchParams, name: string, min: number, max: number): number | undefined | Response {
  const v = p.get(name);
  if (v === null) return undefined;
  const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) return error(400, "BAD_QUERY", `${name} must be an integer from ${min}`);
  return n;
}

export function boolParam(p: URLSearchParams, name: string): boolean | Response {
  const v = p.get(name);
  if (v === null || v === "false" || v === "0") return false;
  if (v === "" || v === "true" || v === "1") return true;
  return error(400, "BAD_QUERY", `${name} must be true or false`);
}
