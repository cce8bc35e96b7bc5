// A Deno KV value as the engine stores it (docs/deno-kv.md §3): one byte string holding the value's
// encoding (KV Connect's ValueEncoding numbers), when it expires, and its bytes. The engine never
// looks inside; reads hand KV Connect the encoding and bytes, and openKv the value.

import { InvalidValueError } from "../errors.ts";
import { deserializeV8, serializeV8 } from "./v8.ts";

/** KV Connect's ValueEncoding: V8 (structured clone), LE64 (Deno.KvU64), raw bytes (a Uint8Array). */
export const ENCODING = { v8: 1, le64: 2, bytes: 3 } as const;
export type Encoding = (typeof ENCODING)[keyof typeof ENCODING];

const HEADER_BYTES = 1 + 8;
const U64_MAX = 2n ** 64n - 1n;

/** Deno.KvU64: an unsigned 64-bit integer that sum/min/max work on (its errors' texts as Deno 2.9.6's). */
export class KvU64 {
  readonly value: bigint;

  constructor(value: bigint) {
    if (typeof value !== "bigint") throw new TypeError(`Value must be a bigint: received ${typeof value}`);
    if (value < 0n) throw new RangeError(`Value must be a positive bigint: received ${value}`);
    if (value > U64_MAX) throw new RangeError("Value must fit in a 64-bit unsigned integer");
    this.value = value;
    Object.freeze(this);
  }

  valueOf(): bigint {
    return this.value;
  }

  toString(): string {
    return this.value.toString();
  }

  get [Symbol.toStringTag](): string {
    return "Deno.KvU64";
  }
}

/** What a stored value holds: its encoding, when it expires (ms since the epoch; 0: never), its bytes. */
export interface Stored {
  encoding: Encoding;
  expireAt: number;
  data: Uint8Array;
}

/** A value as openKv is given it: a Uint8Array as its bytes, a KvU64 as LE64, anything else through V8. */
export function storedOf(value: unknown, expireAt = 0): Stored {
  if (value instanceof Uint8Array) return { encoding: ENCODING.bytes, expireAt, data: value.slice() };
  if (value instanceof KvU64) {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setBigUint64(0, value.value, true);
    return { encoding: ENCODING.le64, expireAt, data };
  }
  return { encoding: ENCODING.v8, expireAt, data: serializeV8(value) };
}

/** The value a Stored holds, as openKv hands it out (a fresh copy each time). */
export function valueFrom(s: Stored): unknown {
  if (s.encoding === ENCODING.bytes) return s.data.slice();
  if (s.encoding === ENCODING.le64) return new KvU64(le64(s.data));
  return deserializeV8(s.data);
}

/** An LE64 value's number; anything but 8 bytes is refused. */
export function le64(data: Uint8Array): bigint {
  if (data.length !== 8) throw new InvalidValueError(`an LE64 value is 8 bytes, not ${data.length}`);
  return new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true);
}

export function encodeStored(s: Stored): Uint8Array {
  if (!(Number.isSafeInteger(s.expireAt) && s.expireAt >= 0)) throw new InvalidValueError(`expireAt must be ms since the epoch, ≥ 0, got ${s.expireAt}`);
  const out = new Uint8Array(HEADER_BYTES + s.data.length);
  out[0] = s.encoding;
  new DataView(out.buffer).setBigUint64(1, BigInt(s.expireAt));
  out.set(s.data, HEADER_BYTES);
  return out;
}

/** A stored value's parts; `data` is a view into `b`. */
export function decodeStored(b: Uint8Array): Stored {
  if (b.length < HEADER_BYTES) throw new InvalidValueError(`a stored Deno KV value has ${b.length} bytes, less than its header`);
  const encoding = b[0]!;
  if (encoding !== ENCODING.v8 && encoding !== ENCODING.le64 && encoding !== ENCODING.bytes) throw new InvalidValueError(`value encoding ${encoding} is unknown`);
  const at = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(1);
  if (at > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidValueError(`a stored Deno KV value expires at ${at}, past any date`);
  return { encoding, expireAt: Number(at), data: b.subarray(HEADER_BYTES) };
}

/**
 * An engine entry of harmonydb/kv (its value a stored value) as it reads at `now`: its stored value
 * and revision, or undefined when it is absent or has expired. Every read of a KV entry goes here.
 */
export function liveStored(e: { value: unknown; rev: number } | undefined, now: number): { stored: Stored; rev: number } | undefined {
  if (e === undefined) return undefined;
  const stored = decodeStored(e.value as Uint8Array);
  return expired(stored.expireAt, now) ? undefined : { stored, rev: e.rev };
}

/** Whether a value that expires at `expireAt` is gone at `now` (an expired value is never returned). */
export function expired(expireAt: number, now: number): boolean {
  return expireAt !== 0 && expireAt <= now;
}
