// Deno KV values as the engine stores them (src/kv/value.ts): encodings as Deno's own KV stores
// them (a Uint8Array raw, a KvU64 as LE64, the rest V8: docs/deno-kv.md §3), expiry, KvU64.

import { describe, expect, test } from "bun:test";
import { InvalidValueError } from "../src/errors.ts";
import { decodeStored, encodeStored, ENCODING, expired, KvU64, le64, storedOf, valueFrom } from "../src/kv/value.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("Deno KV values in the engine", () => {
  test("each kind of value takes the encoding and bytes Deno's own KV gives it", () => {
    // (Deno 2.9.6 stored these rows: Uint8Array [1,2,3] raw, new Deno.KvU64(5n) as LE64, "hello" as V8.)
    const bytes = storedOf(new Uint8Array([1, 2, 3]));
    expect([bytes.encoding, hex(bytes.data)]).toEqual([ENCODING.bytes, "010203"]);
    const u64 = storedOf(new KvU64(5n));
    expect([u64.encoding, hex(u64.data)]).toEqual([ENCODING.le64, "0500000000000000"]);
    const v8 = storedOf("hello");
    expect([v8.encoding, hex(v8.data)]).toEqual([ENCODING.v8, "ff0f220568656c6c6f"]);
  });

  test("values come back as they went in, each read a copy of its own", () => {
    const source = new Uint8Array([1, 2, 3]);
    const s = storedOf(source);
    source[0] = 9; // (the stored bytes were copied)
    const a = valueFrom(s) as Uint8Array;
    a[1] = 9;
    expect([...(valueFrom(s) as Uint8Array)]).toEqual([1, 2, 3]);
    expect((valueFrom(storedOf(new KvU64(2n ** 64n - 1n))) as KvU64).value).toBe(2n ** 64n - 1n);
    expect(valueFrom(storedOf({ a: [1, new Map([["k", 2n]])] }))).toEqual({ a: [1, new Map([["k", 2n]])] });
  });

  test("the stored bytes: encoding, expiry, data; anything else refused", () => {
    const s = { encoding: ENCODING.v8, expireAt: 1_700_000_000_123, data: storedOf(42).data };
    const b = encodeStored(s);
    expect(hex(b)).toBe("01" + "0000018bcfe5687b" + "ff0f4954");
    expect(decodeStored(b)).toEqual(s);
    expect(decodeStored(encodeStored({ ...s, expireAt: 0 })).expireAt).toBe(0);
    for (const bad of ["", "01000000", "04" + "00".repeat(8), "00" + "00".repeat(8), "01" + "ff".repeat(8)]) {
      expect(() => decodeStored(new Uint8Array(Buffer.from(bad, "hex")))).toThrow(InvalidValueError);
    }
    expect(() => encodeStored({ ...s, expireAt: -1 })).toThrow(InvalidValueError);
    expect(() => le64(new Uint8Array(7))).toThrow(InvalidValueError);
  });

  test("expiry: 0 never expires; otherwise gone at and after its time", () => {
    expect([expired(0, Date.now()), expired(1000, 999), expired(1000, 1000), expired(1000, 1001)]).toEqual([false, false, true, true]);
  });

  test("KvU64 takes what Deno.KvU64 takes, with its errors", () => {
    // (What Deno 2.9.6's Deno.KvU64 throws for the same arguments.)
    expect(() => new KvU64(-1n)).toThrow(new RangeError("Value must be a positive bigint: received -1"));
    expect(() => new KvU64(2n ** 64n)).toThrow(new RangeError("Value must fit in a 64-bit unsigned integer"));
    expect(() => new KvU64(1 as unknown as bigint)).toThrow(new TypeError("Value must be a bigint: received number"));
    const v = new KvU64(7n);
    expect([v.value, String(v), Object.prototype.toString.call(v), Object.isFrozen(v)]).toEqual([7n, "7", "[object Deno.KvU64]", true]);
  });
});
