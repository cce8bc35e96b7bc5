// Deno KV keys as bytes (docs/deno-kv.md §2): FoundationDB's tuple encoding, as Deno and denokv
// write it (denokv proto/codec.rs), so that byte order is Deno's key order, part by part:
// Uint8Array < string < bigint < number < boolean. And those bytes as an engine key.

import { InvalidKeyError } from "../errors.ts";

export type KvKeyPart = Uint8Array | string | number | bigint | boolean;
export type KvKey = readonly KvKeyPart[];

const BYTES = 0x01;
const STRING = 0x02;
const NEG_INT_START = 0x0b;
const INT_ZERO = 0x14;
const POS_INT_END = 0x1d;
const DOUBLE = 0x21;
const FALSE = 0x26;
const TRUE = 0x27;
const ESCAPE = 0xff;
/** Up to this many bytes, an integer's length is in its type byte; past it, in a byte of its own. */
const INT_INLINE_BYTES = 8;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function encodeKey(key: KvKey): Uint8Array {
  const out: number[] = [];
  for (const part of key) {
    if (part instanceof Uint8Array) escaped(out, BYTES, part);
    else if (typeof part === "string") {
      if (!part.isWellFormed()) throw new InvalidKeyError("a key part string has a lone UTF-16 surrogate");
      escaped(out, STRING, utf8.encode(part));
    } else if (typeof part === "bigint") bigint(out, part);
    else if (typeof part === "number") double(out, part);
    else if (part === false) out.push(FALSE);
    else if (part === true) out.push(TRUE);
    else throw new InvalidKeyError(`a key part must be a Uint8Array, string, number, bigint or boolean, got ${typeof part}`);
  }
  return Uint8Array.from(out);
}

export function decodeKey(b: Uint8Array): KvKeyPart[] {
  const parts: KvKeyPart[] = [];
  let at = 0;
  const need = (n: number) => {
    if (at + n > b.length) throw new InvalidKeyError(`key ends inside a part at byte ${at}`);
  };
  while (at < b.length) {
    const tag = b[at++]!;
    if (tag === BYTES || tag === STRING) {
      const bytes: number[] = [];
      for (;;) {
        need(1);
        const x = b[at++]!;
        if (x === 0 && b[at] === ESCAPE) {
          bytes.push(0);
          at++;
        } else if (x === 0) break;
        else bytes.push(x);
      }
      if (tag === BYTES) parts.push(Uint8Array.from(bytes));
      else {
        try {
          parts.push(utf8Strict.decode(Uint8Array.from(bytes)));
        } catch {
          throw new InvalidKeyError("a key part string is not valid UTF-8");
        }
      }
    } else if (tag >= NEG_INT_START && tag <= POS_INT_END) {
      let n: number;
      const negative = tag < INT_ZERO;
      if (tag === NEG_INT_START || tag === POS_INT_END) {
        need(1);
        n = negative ? b[at++]! ^ 0xff : b[at++]!;
      } else n = Math.abs(tag - INT_ZERO);
      need(n);
      let v = 0n;
      for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(negative ? b[at + i]! ^ 0xff : b[at + i]!);
      at += n;
      parts.push(negative ? -v : v);
    } else if (tag === DOUBLE) {
      need(8);
      const bits = new Uint8Array(b.subarray(at, at + 8));
      at += 8;
      if (bits[0]! & 0x80) bits[0]! ^= 0x80; // was positive: only the sign bit was flipped
      else for (let i = 0; i < 8; i++) bits[i]! ^= 0xff; // was negative: every bit was
      parts.push(new DataView(bits.buffer).getFloat64(0));
    } else if (tag === FALSE) parts.push(false);
    else if (tag === TRUE) parts.push(true);
    else throw new InvalidKeyError(`unknown key part type 0x${tag.toString(16)} at byte ${at - 1}`);
  }
  return parts;
}

/** `tag`, then `bytes` with each 0x00 written 0x00 0xFF, then 0x00. */
function escaped(out: number[], tag: number, bytes: Uint8Array): void {
  out.push(tag);
  for (const x of bytes) {
    out.push(x);
    if (x === 0) out.push(ESCAPE);
  }
  out.push(0);
}

/** Big-endian magnitude with the length in the type byte (≤ 8 bytes) or after it; negatives in one's complement. */
function bigint(out: number[], v: bigint): void {
  if (v === 0n) {
    out.push(INT_ZERO);
    return;
  }
  const negative = v < 0n;
  let m = negative ? -v : v;
  const bytes: number[] = [];
  for (; m > 0n; m >>= 8n) bytes.unshift(Number(m & 0xffn));
  const n = bytes.length;
  if (n > 255) throw new InvalidKeyError("a bigint key part needs more than 255 bytes");
  if (n <= INT_INLINE_BYTES) out.push(negative ? INT_ZERO - n : INT_ZERO + n);
  else out.push(negative ? NEG_INT_START : POS_INT_END, negative ? n ^ 0xff : n);
  for (const x of bytes) out.push(negative ? x ^ 0xff : x);
}

/** IEEE 754 bits, big-endian: negatives with every bit flipped, the rest with the sign bit flipped; NaN made canonical. */
function double(out: number[], v: number): void {
  const bits = new Uint8Array(8);
  const view = new DataView(bits.buffer);
  view.setFloat64(0, v);
  if (Number.isNaN(v)) {
    view.setUint32(0, bits[0]! & 0x80 ? 0xfff80000 : 0x7ff80000); // canonical, keeping the sign
    view.setUint32(4, 0);
  }
  if (bits[0]! & 0x80) for (let i = 0; i < 8; i++) bits[i]! ^= 0xff;
  else bits[0]! ^= 0x80;
  out.push(DOUBLE, ...bits);
}

/**
 * Where Deno KV keys live in the engine: a prefix no other key can have (the REST routes and
 * put/delete/batch refuse keys that start with U+0000), then one character per byte, byte b as
 * U+0000 + b, so that the engine's order (UTF-16 code units) is the bytes' order.
 */
export const KV_PREFIX = "\u0000kv\u0000";

export function engineKey(bytes: Uint8Array): string {
  let s = KV_PREFIX;
  for (let i = 0; i < bytes.length; i += 4096) s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  return s;
}

export function keyBytes(engine: string): Uint8Array {
  if (!engine.startsWith(KV_PREFIX)) throw new InvalidKeyError("not a Deno KV key");
  const out = new Uint8Array(engine.length - KV_PREFIX.length);
  for (let i = 0; i < out.length; i++) out[i] = engine.charCodeAt(KV_PREFIX.length + i);
  return out;
}
