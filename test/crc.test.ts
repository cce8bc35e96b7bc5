import { expect, test } from "bun:test";
import { CRC_JS_BYTES_MAX, crc32, crc32Js } from "../src/codec/crc.ts";

test("the JavaScript CRC-32 equals Bun.hash.crc32 at every length and alignment around the switch-over", () => {
  const seed = 0x9e3779b9;
  let x = seed;
  const bytes = new Uint8Array(4 * CRC_JS_BYTES_MAX).map(() => ((x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d)) >>> 24) & 0xff);
  for (let start = 0; start < 9; start++) {
    for (let len = 0; len <= 2 * CRC_JS_BYTES_MAX + 9; len += len < 40 ? 1 : 37) {
      const expected = Bun.hash.crc32(bytes.subarray(start, start + len));
      expect(crc32Js(bytes, start, start + len)).toBe(expected);
      expect(crc32(bytes, start, start + len)).toBe(expected);
    }
  }
  // The standard check value: CRC-32 of "123456789" is 0xCBF43926.
  expect(crc32Js(new TextEncoder().encode("123456789"), 0, 9)).toBe(0xcbf43926);
});
