// A user value → its CBOR bytes: the two commonest shapes by hand, the rest by cbor-x.
// (Here rather than in codec/: it measures strings with format/encoder.ts's UTF-8 helpers.)

import { copyBytes } from "../bytes.ts";
import { valueEncoder } from "../codec/cbor.ts";
import { MAJOR_BYTES, MAJOR_TEXT, TAG_UINT8ARRAY, TAG_UINT8ARRAY_HEAD, headBytes, writeHead } from "../codec/cbor-head.ts";
import { utf8, utf8Bytes } from "../format/encoder.ts";

/** Where encodeValueView writes the two common shapes; grows to the largest such value. */
let scratch = new Uint8Array(4096);

/**
 * The value's CBOR encoding, as cbor-x's valueEncoder writes it, in a buffer shared by every call:
 * valid until the next one. A put copies it straight into the ring, with no buffer of its own.
 * Whoever keeps the bytes must copy them out: cbor-x's buffer grows to the largest value it ever
 * encoded, and one small value would keep it all alive. Throws what cbor-x throws for a value it
 * cannot encode.
 */
export function encodeValueView(value: unknown): Uint8Array {
  return fastEncode(value) ?? valueEncoder.encode(value);
}

/**
 * The CBOR cbor-x would write, for the two commonest value shapes, without its buffer management:
 * a Uint8Array (tag 64 + byte string) and a string (text string).
 */
function fastEncode(value: unknown): Uint8Array | null {
  if (value instanceof Uint8Array && value.constructor === Uint8Array) {
    const n = value.length;
    const head = headBytes(n);
    const out = room(2 + head + n);
    out[0] = TAG_UINT8ARRAY_HEAD;
    out[1] = TAG_UINT8ARRAY;
    writeHead(out, 2, MAJOR_BYTES, n);
    copyBytes(out, 2 + head, value, 0, n);
    return out.subarray(0, 2 + head + n);
  }
  if (typeof value === "string" && value.length < 0x10000) {
    const n = utf8Bytes(value);
    const head = headBytes(n);
    const out = room(head + n);
    writeHead(out, 0, MAJOR_TEXT, n);
    if (n === value.length) for (let i = 0; i < n; i++) out[head + i] = value.charCodeAt(i);
    else utf8.encodeInto(value, out.subarray(head, head + n));
    return out.subarray(0, head + n);
  }
  return null;
}

function room(n: number): Uint8Array {
  if (n > scratch.length) scratch = new Uint8Array(Math.max(n, 2 * scratch.length));
  return scratch;
}
