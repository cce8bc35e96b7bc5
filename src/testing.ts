// The test-only entry: open() with the hooks that are kept out of OpenOptions (src/options.ts TestHooks).

import type { Db } from "./db.ts";
import { openDb } from "./open.ts";
import type { OpenOptions, TestHooks } from "./options.ts";

export type { TestHooks } from "./options.ts";
export type TestOptions = OpenOptions & TestHooks;

/** open(), with test hooks (small snapshot chunks, encoder and prefetch thresholds, a writer I/O module). */
export function openForTest(dir: string, options: TestOptions = {}): Promise<Db> {
  const { snapshotChunkBytes, snapshotWorkerBytes, snapshotPrefetchBytes, writerIO, ...rest } = options;
  return openDb(dir, rest, { snapshotChunkBytes, snapshotWorkerBytes, snapshotPrefetchBytes, writerIO });
}
