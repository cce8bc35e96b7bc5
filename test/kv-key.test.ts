// Deno KV's key codec (src/kv/key.ts): the bytes denokv's own tests fix (proto/codec.rs), its order
// cases, round trips, and the engine-key mapping's order.

import { describe, expect, test } from "bun:test";
import { InvalidKeyError } from "../src/errors.ts";
import { decodeKey, encodeKey, engineKey, keyBytes, KV_PREFIX, type KvKey } from "../src/kv/key.ts";
import { rng } from "./helpers/fuzz.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const cmpBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe("the tuple codec", () => {
  test("writes the bytes denokv's tests fix", () => {
    // proto/codec.rs explicit_bijection
    expect(hex(encodeKey(["hello"]))).toBe("0268656c6c6f00");
    expect(hex(encodeKey([new Uint8Array([1, 2, 0, 7, 8])]))).toBe("01010200ff070800");
    expect(hex(encodeKey(["hello", new Uint8Array([1, 2, 0, 7, 8])]))).toBe("0268656c6c6f00" + "01010200ff070800");
    // The type bytes, and integers by length (FoundationDB's tuple layer, as codec.rs writes them).
    expect(hex(encodeKey([0n, 1n, -1n, 255n, 256n, -256n]))).toBe("14" + "1501" + "13fe" + "15ff" + "160100" + "12feff");
    expect(hex(encodeKey([2n ** 64n]))).toBe("1d09" + "010000000000000000");
    expect(hex(encodeKey([-(2n ** 64n)]))).toBe("0bf6" + "feffffffffffffffff");
    expect(hex(encodeKey([false, true]))).toBe("2627");
    expect(hex(encodeKey([1.5]))).toBe("21" + "bff8000000000000");
    expect(hex(encodeKey([-1.5]))).toBe("21" + "4007ffffffffffff");
  });

  test("orders as denokv's tests say: across types, then within each", () => {
    const ordered: KvKey[] = [
      // order_tags: bytes < string < int < float < false < true
      [new Uint8Array([])],
      [new Uint8Array([0, 1, 2, 3, 0xff, 0x00, 0xff, 0x00])],
      [new Uint8Array([0, 1, 2, 3, 0xff, 0x00, 0xff, 0x00, 0x00])],
      [new Uint8Array([0, 1, 2, 3, 0xff, 0x00, 0xff, 0x01])],
      [""],
      ["a"],
      ["a", 1n],
      ["b"],
      // order_ints
      [-(2n ** 70n)],
      [-10000n],
      [-100n],
      [-1n],
      [0n],
      [1n],
      [100n],
      [10000n],
      [2n ** 70n],
      // order_floats (less its -NaN first: a JavaScript number's NaN has no sign to give)
      [-Infinity],
      [-10],
      [-0],
      [0],
      [10],
      [Infinity],
      [NaN],
      [false],
      [true],
    ];
    const bytes = ordered.map(encodeKey);
    for (let i = 1; i < bytes.length; i++) expect([i, cmpBytes(bytes[i - 1]!, bytes[i]!)]).toEqual([i, -1]);
  });

  test("decodes what it encodes, and refuses what no key encodes to", () => {
    const r = rng(17);
    const part = (): KvKey[number] => {
      switch (r.int(6)) {
        case 0:
          return Uint8Array.from({ length: r.int(6) }, () => (r.int(3) === 0 ? 0 : r.int(256)));
        case 1:
          return String.fromCodePoint(...Array.from({ length: r.int(5) }, () => [0, 0x61, 0xe9, 0x65e5, 0x1f600][r.int(5)]!));
        case 2:
          return (r.int(2) ? -1n : 1n) * BigInt(r.int(1 << 30)) ** BigInt(1 + r.int(4));
        case 3:
          return [0, -0, 1.5, -2.25, 1e300, -1e-300, Infinity, -Infinity][r.int(8)]!;
        default:
          return r.int(2) === 0;
      }
    };
    for (let i = 0; i < 2000; i++) {
      const key = Array.from({ length: 1 + r.int(4) }, part);
      const back = decodeKey(encodeKey(key));
      expect(back.length).toBe(key.length);
      back.forEach((p, j) => (p instanceof Uint8Array ? expect(hex(p)).toBe(hex(key[j] as Uint8Array)) : expect(Object.is(p, key[j])).toBe(true)));
    }
    expect(Number.isNaN(decodeKey(encodeKey([NaN]))[0])).toBe(true);
    for (const bad of ["03", "0261", "15", "1d09", "2100", "01"]) expect(() => decodeKey(Buffer.from(bad, "hex"))).toThrow(InvalidKeyError);
    expect(() => decodeKey(Buffer.from("02ff00", "hex"))).toThrow("not valid UTF-8");
    expect(() => encodeKey([{} as unknown as string])).toThrow(InvalidKeyError);
    expect(() => encodeKey(["\ud800"])).toThrow(InvalidKeyError);
  });
});

describe("Deno KV keys in the engine", () => {
  test("the engine's string order is the bytes' order, and the bytes come back", () => {
    const r = rng(18);
    const keys = Array.from({ length: 500 }, () => Uint8Array.from({ length: r.int(8) }, () => r.int(256)));
    for (const k of keys) {
      const e = engineKey(k);
      expect(e.startsWith(KV_PREFIX)).toBe(true);
      expect(hex(keyBytes(e))).toBe(hex(k));
    }
    const byBytes = [...keys].sort(cmpBytes).map(hex);
    const byEngine = [...keys].sort((a, b) => (engineKey(a) < engineKey(b) ? -1 : engineKey(a) > engineKey(b) ? 1 : 0)).map(hex);
    expect(byEngine).toEqual(byBytes);
    expect(() => keyBytes("plain")).toThrow(InvalidKeyError);
  });
});
