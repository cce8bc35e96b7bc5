// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320): the frame checksum. Same values as Bun.hash.crc32.
//
// Bun.hash.crc32 is native and runs at tens of GB/s, but each call costs ~150–200 ns before the
// first byte; a frame is usually ~130 bytes. Slicing-by-8 in JavaScript does such a frame in ~85 ns
// (measured: `bun bench/crc.ts`), so small spans stay in JavaScript and large ones go native.

const TABLE = new Int32Array(256 * 8);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}
for (let n = 0; n < 256; n++) {
  for (let t = 1; t < 8; t++) {
    const prev = TABLE[(t - 1) * 256 + n]!;
    TABLE[t * 256 + n] = (prev >>> 8) ^ TABLE[prev & 0xff]!;
  }
}

/** Below this many bytes the JavaScript loop beats the native call (crossover measured ~300 B). */
export const CRC_JS_BYTES_MAX = 256;

/** CRC-32 of bytes [start, end) of `b`. */
export function crc32(b: Uint8Array, start: number, end: number): number {
  if (end - start > CRC_JS_BYTES_MAX) return Bun.hash.crc32(new Uint8Array(b.buffer, b.byteOffset + start, end - start));
  return crc32Js(b, start, end);
}

export function crc32Js(b: Uint8Array, start: number, end: number): number {
  const T = TABLE;
  let c = -1;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = c ^ (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24));
    c =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + b[i + 4]!]! ^
      T[512 + b[i + 5]!]! ^
      T[256 + b[i + 6]!]! ^
      T[b[i + 7]!]!;
  }
  for (; i < end; i++) c = T[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
