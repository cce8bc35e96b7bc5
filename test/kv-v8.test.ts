// Deno KV's V8 value format (src/kv/v8.ts) against bytes the real Deno wrote: Deno 2.9.6 (npm
// `deno`), values set with Deno.openKv(file) and read back from its SQLite file with bun:sqlite
// (docs/deno-kv.md §3). Each fixture is the value's bytes after Deno's `ff 10` header (version 16);
// ours writes `ff 0f` (version 15) and then the same bytes (src/kv/v8.ts says why).

import { describe, expect, test } from "bun:test";
import { InvalidValueError } from "../src/errors.ts";
import { deserializeV8, serializeV8 } from "../src/kv/v8.ts";
import { rng } from "./helpers/fuzz.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (h: string) => new Uint8Array(Buffer.from(`ff10${h.replace(/ /g, "")}`, "hex"));

const cyclic: Record<string, unknown> = { name: "c" };
cyclic.self = cyclic;
const sparse: unknown[] = [];
sparse[5] = 1;
const shared = new Uint8Array([1, 2, 3, 4]);

/** [what, value, the bytes Deno 2.9.6 wrote]. */
const FIXTURES: [string, unknown, string][] = [
  ["a one-byte string", "hello", "22 05 68656c6c6f"],
  ["a Latin-1 string", "é", "22 01 e9"],
  ["a two-byte string", "日本", "63 04 e5652c67"],
  ["a small integer", 42, "49 54"],
  ["a negative integer", -7, "49 0d"],
  ["2^30", 2 ** 30, "49 8080808008"],
  ["2^31 - 1", 2 ** 31 - 1, "49 feffffff0f"],
  ["-2^31", -(2 ** 31), "49 ffffffff0f"],
  ["2^31, a double", 2 ** 31, "4e 000000000000e041"],
  ["a fraction", 1.5, "4e 000000000000f83f"],
  ["-0", -0, "4e 0000000000000080"],
  ["NaN", NaN, "4e 000000000000f87f"],
  ["a bigint", 10n, "5a 10 0a00000000000000"],
  ["0n", 0n, "5a 00"],
  ["-(2^70)", -(2n ** 70n), "5a 21 0000000000000000 4000000000000000"],
  ["null", null, "30"],
  ["undefined", undefined, "5f"],
  ["an array", [1, "a", true], "41 03 4902 220161 54 24 00 03"],
  ["an array with holes", [1, , 3], "61 03 4900 4902 4904 4906 40 02 03"],
  ["a sparse array", sparse, "61 06 490a 4902 40 01 06"],
  ["an array with a named property", Object.assign([1, 2], { p: 3 }), "41 02 4902 4904 220170 4906 24 01 02"],
  ["an object", { a: 1, b: [2] }, "6f 220161 4902 220162 41014904240001 7b 02"],
  ["an object with index keys", { 1: "a", b: 2, 4294967294: "x" }, "6f 4902 220161 4e0000c0ffffffef41 220178 220162 4904 7b 03"],
  ["an object that holds itself", cyclic, "6f 22046e616d65 220163 220473656c66 5e00 7b 02"],
  ["a date", new Date(0), "44 0000000000000000"],
  ["a regular expression", /ab+c/gi, "52 220461622b63 03"],
  ["a map", new Map([[1, "x"]]), "3b 4902 220178 3a 02"],
  ["a set", new Set(["y"]), "27 220179 2c 01"],
  ["an ArrayBuffer", new Uint8Array([9, 8]).buffer, "42 02 0908"],
  ["a Uint16Array", new Uint16Array([1, 2]), "42 04 01000200 56 57 00 04 00"],
  ["one view twice", [shared, shared], "41 02 42 04 01020304 56 42 00 04 00 5e02 24 00 02"],
  ["a two-byte string where no padding is due", ["日"], "41 01 6302e565 24 00 01"],
];

describe("V8 values as Deno writes them", () => {
  test("serializes each fixture to the bytes Deno wrote", () => {
    for (const [what, value, h] of FIXTURES) expect([what, hex(serializeV8(value))]).toEqual([what, "ff0f" + hex(bytes(h)).slice(4)]);
  });

  test("deserializes the bytes Deno wrote back to the value", () => {
    for (const [what, value, h] of FIXTURES) {
      const back = deserializeV8(bytes(h));
      if (Number.isNaN(value)) expect(Number.isNaN(back)).toBe(true);
      else if (value === cyclic) {
        const c = back as Record<string, unknown>;
        expect([c.name, c.self === c]).toEqual(["c", true]);
      } else if (what === "one view twice") {
        const [a, b] = back as Uint8Array[];
        expect([a === b, [...a!]]).toEqual([true, [1, 2, 3, 4]]);
      } else expect([what, back]).toEqual([what, value]);
    }
  });

  test("errors: Deno's kinds, messages and causes (their stacks differ run to run)", () => {
    const range = deserializeV8(bytes("72 52 6d 2204626f6f6d 2e")) as Error;
    expect([range instanceof RangeError, range.message]).toEqual([true, "boom"]);
    const withCause = deserializeV8(bytes("72 6d 220178 63 490a 2e")) as Error;
    expect([Object.getPrototypeOf(withCause) === Error.prototype, withCause.message, withCause.cause]).toEqual([true, "x", 5]);
    const mine = deserializeV8(serializeV8(new TypeError("t", { cause: [1] }))) as Error;
    expect([mine instanceof TypeError, mine.message, mine.cause, typeof mine.stack]).toEqual([true, "t", [1], "string"]);
  });

  test("reads ArrayBufferViews as Node's node:v8 writes them (host objects: @deno/kv under Node 20)", () => {
    // The bytes Node 20.20's v8.serialize wrote for each view, and for one view referenced twice.
    const node = (h: string) => deserializeV8(new Uint8Array(Buffer.from(h, "hex")));
    expect(node("ff0f5c000101")).toEqual(new Int8Array([1]));
    expect(node("ff0f5c0a0103")).toEqual(new Uint8Array([3])); // a Buffer
    expect(node("ff0f5c0808000000000000f03f")).toEqual(new Float64Array([1]));
    expect(node("ff0f5c0b080500000000000000")).toEqual(new BigInt64Array([5n]));
    expect(node("ff0f5c020107")).toEqual(new Uint8ClampedArray([7]));
    expect(node("ff0f5c09020000")).toBeInstanceOf(DataView);
    const [a, b] = node("ff0f41025c0404010002005e01240002") as Uint16Array[];
    expect([a === b, [...a!]]).toEqual([true, [1, 2]]);
    expect(() => node("ff0f5c0d0100")).toThrow(InvalidValueError); // no type 13
    // From a Buffer (whose slice() is a view): the view still gets its own bytes.
    expect(deserializeV8(Buffer.from("ff0f5c0104deadbeef", "hex"))).toEqual(new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
    expect(() => node("ff0f5c08030102")).toThrow(InvalidValueError); // 3 bytes of Float64Array
  });

  test("a two-byte string gets V8's padding byte when its data would start odd", () => {
    // ff 10 41 02 | 22 01 61 | …: the second string's tag would be at offset 7 and its data at 9,
    // so a padding byte comes first (these are the bytes Deno 2.9.6 wrote for ["a", "日"]).
    const h = hex(serializeV8(["a", "日"]));
    expect(h).toBe("ff0f" + "4102" + "220161" + "00" + "6302e565" + "240002");
    expect(deserializeV8(new Uint8Array(Buffer.from(h, "hex")))).toEqual(["a", "日"]);
  });

  test("round trips of random values; refuses what structured clone cannot hold, and bad bytes", () => {
    const r = rng(8);
    const leaf = () =>
      r.pick<() => unknown>([
        () => r.int(1000) - 500,
        () => r.u32() * 1000.5,
        () => BigInt(r.u32()) ** 3n * (r.chance(0.5) ? -1n : 1n),
        () => String.fromCharCode(...Array.from({ length: r.int(6) }, () => r.pick([0x61, 0xe9, 0x65e5, 0xd83d]))),
        () => r.chance(0.5),
        () => null,
        () => new Date(r.u32()),
        () => new Float64Array([r.u32() / 7, -1]),
      ])();
    const tree = (depth: number): unknown => {
      if (depth === 0 || r.chance(0.3)) return leaf();
      const n = r.int(4);
      switch (r.int(4)) {
        case 0:
          return Array.from({ length: n }, () => tree(depth - 1));
        case 1:
          return Object.fromEntries(Array.from({ length: n }, (_, i) => [r.chance(0.3) ? String(i) : `k${i}`, tree(depth - 1)]));
        case 2:
          return new Map(Array.from({ length: n }, (_, i) => [`m${i}`, tree(depth - 1)]));
        default:
          return new Set(Array.from({ length: n }, () => tree(depth - 1)));
      }
    };
    for (let i = 0; i < 500; i++) {
      const v = tree(4);
      expect(deserializeV8(serializeV8(v))).toEqual(v);
    }
    const long = ["é".repeat(2_000_000), "日".repeat(2_000_000)]; // (more char codes than one call takes: 2M threw RangeError)
    expect(deserializeV8(serializeV8(long))).toEqual(long);
    const refused = [() => 1, Symbol("s"), new (class Point {})(), new WeakMap(), new Number(1), new SharedArrayBuffer(4), new ArrayBuffer(4, { maxByteLength: 8 })];
    for (const bad of refused) expect(() => serializeV8(bad)).toThrow(InvalidValueError);
    const hostile = ["ff10 41 ffffffff0f", "ff10 61 8080808010 40 00 00"]; // a dense array longer than its bytes; a length past 2^32
    for (const h of ["", "ff", "ff11 30", "ff10", "ff10 22 05 6865", "ff10 5e 00", "ff10 77", "ff10 30 30", ...hostile]) {
      expect(() => deserializeV8(new Uint8Array(Buffer.from(h.replace(/ /g, ""), "hex")))).toThrow(InvalidValueError);
    }
  });
});
