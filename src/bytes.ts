// Copying bytes between Uint8Arrays at the speed of memmove, and large buffers on huge pages.
//
// Measured here (Bun 1.4.5): TypedArray.prototype.set moves ~0.6 GB/s (130 MB in 207 ms, into an
// ArrayBuffer or a SharedArrayBuffer alike), Buffer.prototype.copy ~16 GB/s (8 ms). And `subarray`
// of a small typed array makes JSC give it an ArrayBuffer of its own first, which costs more than
// copying a few hundred bytes by hand. So: small spans by a loop, large ones by Buffer.copy.

import { dlopen, FFIType, ptr, type Pointer } from "bun:ffi";

/** Spans up to this many bytes are copied by a plain loop. */
const LOOP_COPY_BYTES_MAX = 512;

/** Copies bytes [start, end) of `src` into `dst` at `pos`; returns pos + (end − start). */
export function copyBytes(dst: Uint8Array, pos: number, src: Uint8Array, start: number, end: number): number {
  const n = end - start;
  if (n <= LOOP_COPY_BYTES_MAX) {
    for (let i = start; i < end; i++) dst[pos++] = src[i]!;
    return pos;
  }
  const from = Buffer.from(src.buffer, src.byteOffset + start, n);
  from.copy(Buffer.from(dst.buffer, dst.byteOffset, dst.byteLength), pos);
  return pos + n;
}

// Large buffers (segments and snapshots read at open, arena blocks) are advised for transparent
// huge pages. First touch of fresh memory costs ~3 ms per MiB on the VMs measured here (a 4 KiB
// page fault each, 10–20× typical hardware): reading a 128 MiB file into a fresh buffer and one
// checksum pass took 598 ms on plain pages, 36 ms on huge ones; touching every page of fresh memory
// 391 ms and 166 ms (`bun bench/pages.ts`, a fresh process each). madvise(MADV_HUGEPAGE) through
// bun:ffi is only a hint: where it is not available (not Linux, no libc.so.6, THP "never") the
// buffer is plain and nothing else changes.

const HUGE_PAGE_BYTES = 2 * 1024 * 1024;
const MADV_HUGEPAGE = 14;

type Madvise = (addr: Pointer, len: number, advice: number) => number;
let madvise: Madvise | null | undefined;

function loadMadvise(): Madvise | null {
  if (process.platform !== "linux") return null;
  try {
    const libc = dlopen("libc.so.6", { madvise: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 } });
    return (addr, len, advice) => libc.symbols.madvise(addr, len, advice);
  } catch {
    return null;
  }
}

/**
 * A zeroed Uint8Array of `size` bytes. From 4 MiB up, the 2 MiB-aligned pages inside it are advised
 * for huge pages (it is cut from an allocation 2 MiB larger, whose unused ends are never touched).
 */
export function allocLarge(size: number): Uint8Array {
  if (size < 2 * HUGE_PAGE_BYTES) return new Uint8Array(size);
  madvise ??= loadMadvise();
  if (madvise === null) return new Uint8Array(size);
  const raw = new Uint8Array(size + HUGE_PAGE_BYTES);
  const addr = ptr(raw);
  const skip = (HUGE_PAGE_BYTES - (addr % HUGE_PAGE_BYTES)) % HUGE_PAGE_BYTES;
  madvise((addr + skip) as Pointer, Math.floor(size / HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES, MADV_HUGEPAGE); // a hint: its result does not matter
  return raw.subarray(skip, skip + size);
}
