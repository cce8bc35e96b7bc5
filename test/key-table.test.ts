import { expect, test } from "bun:test";
import { hashBytes, KeyTable } from "../src/store/key-table.ts";
import { encoded, readExactKey } from "../src/format/decoder.ts";
import { rng } from "./helpers/fuzz.ts";

// The table only ever sees (hash, slot) pairs; a key is its slot here, and `same` compares slots.
const same = (slot: number, want: number) => slot === want;

test("the key table agrees with a Map through inserts, removes and growth, with hashes crowded into clusters", () => {
  for (const seed of [1, 2, 3, 4]) {
    const r = rng(seed);
    const table = new KeyTable();
    const model = new Map<number, number>(); // slot → hash
    // Few distinct hashes, and hashes near the top of the table: long clusters that wrap around its end.
    const hashOf = () => (seed % 2 === 0 ? r.int(64) : 1023 - r.int(8) + r.int(3) * 1024);
    let next = 0;
    for (let step = 0; step < 8_000; step++) {
      if (model.size === 0 || r.chance(0.55)) {
        const h = hashOf();
        table.insert(h, next);
        model.set(next++, h);
      } else {
        const slots = [...model.keys()];
        const slot = slots[r.int(slots.length)]!;
        const h = model.get(slot)!;
        table.remove(h, slot);
        model.delete(slot);
        expect(table.find(h, slot, same)).toBe(-1);
        expect(table.has(h, slot)).toBe(false);
      }
      expect(table.size).toBe(model.size);
      if (step % 97 === 0 || model.size < 8) {
        for (const [slot, h] of model) {
          expect(table.find(h, slot, same)).toBe(slot);
          expect(table.has(h, slot)).toBe(true);
        }
        expect([...table.entries()].sort((a, b) => a[1] - b[1])).toEqual([...model].map(([s, h]) => [h, s] as [number, number]).sort((a, b) => a[1] - b[1]));
      }
    }
  }
});

test("a key table finds nothing that was not put in, and a removed slot stays gone", () => {
  const table = new KeyTable(10);
  expect(table.find(5, 1, same)).toBe(-1);
  table.insert(5, 1);
  table.insert(5, 2);
  expect(table.find(5, 2, same)).toBe(2);
  expect(table.find(6, 2, same)).toBe(-1); // another hash: another probe start, and an empty bucket ends it
  table.remove(5, 1);
  expect(table.find(5, 1, same)).toBe(-1);
  expect(table.find(5, 2, same)).toBe(2);
  expect(() => table.remove(5, 1)).toThrow("slot 1 is in the key table");
});

test("hashBytes spreads keys that differ in one byte over the low bits", () => {
  const seen = new Set<number>();
  const key = new TextEncoder().encode("k000000000000000");
  for (let i = 0; i < 4096; i++) {
    key[12] = 48 + ((i >> 9) & 7);
    key[13] = 48 + ((i >> 6) & 7);
    key[14] = 48 + ((i >> 3) & 7);
    key[15] = 48 + (i & 7);
    seen.add(hashBytes(key, 0, key.length) & 8191);
  }
  // 4096 keys into 8192 buckets: about 3,200 distinct if the hash spreads them as a random one would.
  expect(seen.size).toBeGreaterThan(3000);
  expect(hashBytes(key, 0, 16)).toBe(hashBytes(new Uint8Array([0, ...key]), 1, 17));
});

test("a snapshot key is read only if its bytes are exactly its UTF-8 (the table looks keys up by those bytes)", () => {
  const read = (bytes: number[]) => {
    const b = new Uint8Array([0x2a, ...bytes, 0x2a]); // a byte either side: only [1, n + 1) is the key
    return readExactKey(encoded(b), 1, 1 + bytes.length);
  };
  const utf8 = (s: string) => [...new TextEncoder().encode(s)];
  for (const key of ["k0001", "", "é", "键値", "𝄞x", "\uFFFD", "\uFEFFa", "\0"]) expect(read(utf8(key))).toBe(key);
  const invalid: [string, number[]][] = [
    ["a lone continuation byte", [0x61, 0x80]],
    ["0xff", [0xff]],
    ["a cut two-byte character", [0x61, 0xc3]],
    ["a cut three-byte character", [0xe9, 0x94]],
    ["an overlong NUL", [0xc0, 0x80]],
    ["an encoded surrogate half", [0xed, 0xa0, 0x80]],
    ["a code point past U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
  ];
  for (const [, bytes] of invalid) expect(() => read(bytes)).toThrow("is not UTF-8");
});
