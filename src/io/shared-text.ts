// Text in shared memory: a worker's error message for the thread that waits on it, UTF-8, NUL-padded.

/** Writes `text` into `area`, cut to its size (a cut character reads back as U+FFFD); the rest is zeros. */
export function writeSharedText(area: Uint8Array, text: string): void {
  const bytes = new TextEncoder().encode(text).subarray(0, area.length);
  area.fill(0);
  area.set(bytes);
}

/** The text in `area`, up to its first zero byte; decoded from a copy, as TextDecoder may refuse shared memory. */
export function readSharedText(area: Uint8Array): string {
  const end = area.indexOf(0);
  return new TextDecoder().decode(area.slice(0, end < 0 ? area.length : end));
}
