// Scenario: the frame checksum. Bun.hash.crc32 (native), our slicing-by-8 CRC-32 in JavaScript, and a
// table-driven CRC-32C in JavaScript (what etcd/RocksDB use, which Bun does not expose natively).

import { crc32, crc32Js } from "../src/codec/crc.ts";
import * as B from "./lib.ts";

const CALLS = B.numberFlag("calls", 1_000_000);

const C_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  C_TABLE[n] = c;
}
function crc32c(b: Uint8Array, start: number, end: number): number {
  let c = -1;
  for (let i = start; i < end; i++) c = C_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const data = new Uint8Array(64 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
const variants: [string, (b: Uint8Array, s: number, e: number) => number][] = [
  ["Bun.hash.crc32 (native)", (b, s, e) => Bun.hash.crc32(new Uint8Array(b.buffer, s, e - s))],
  ["CRC-32 slicing-by-8 (JS)", crc32Js],
  ["crc32() as the WAL uses it", crc32],
  ["CRC-32C table (JS)", crc32c],
];

const rows: string[][] = [];
for (const size of [128, 1024, 64 * 1024]) {
  const calls = Math.max(200, Math.floor(CALLS / Math.max(1, size / 128)));
  for (const [name, f] of variants) {
    const ns: number[] = [];
    for (let round = 0; round < 3; round++) {
      let x = 0;
      const t0 = Bun.nanoseconds();
      for (let i = 0; i < calls; i++) {
        const s = (i * size) % (data.length - size); // sequential, as replay and commits read
        x ^= f(data, s, s + size);
      }
      ns.push((Bun.nanoseconds() - t0) / calls);
      if (x === 0.5) console.log(x); // keep the result alive
    }
    const per = B.median(ns);
    rows.push([B.fmt(size), name, B.fmt(per), B.fmt((size / per) * 1e9 / 2 ** 30, 2)]);
  }
}
console.log("## CRC per frame size (median of 3 rounds)\n");
B.table(["bytes", "variant", "ns per call", "GiB/s"], rows);
B.finish();
