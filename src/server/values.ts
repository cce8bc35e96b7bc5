// Stored values as JSON for the HTTP front: bytes as base64, and what JSON cannot hold made to fit.

/** `{ value }` for anything JSON can carry, `{ valueBase64 }` for a byte string. */
export function valueFields(value: unknown): { value: unknown } | { valueBase64: string } {
  return value instanceof Uint8Array ? { valueBase64: toBase64(value) } : { value };
}

/**
 * JSON text for a stored value. Values that came in over HTTP are JSON already and come back as
 * they went in; values written through the embedded API may hold what JSON cannot, which is made
 * to fit: a bigint becomes its decimal string, a Map an object, a Set an array, nested bytes a
 * base64 string. (A top-level byte string is never JSON: it is sent as bytes or as valueBase64.)
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, replacer) ?? "null";
}

function replacer(_key: string, v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return toBase64(v);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), x]));
  if (v instanceof Set) return [...v];
  return v;
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** Strict base64 (standard alphabet, padded): the bytes, or null if `s` is not exactly that. */
export function fromBase64(s: string): Uint8Array | null {
  const buf = Buffer.from(s, "base64");
  // Buffer skips what it does not understand; only a canonical encoding survives the round trip.
  if (buf.toString("base64") !== s) return null;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength).slice();
}
