// harmonydb/kv: Deno KV's API over HarmonyDB (docs/deno-kv.md). `import { openKv } from "harmonydb/kv"`.

export { openKv, Kv } from "./kv.ts";
export { AtomicOperation } from "./atomic.ts";
export { KvU64 } from "./value.ts";
export type * from "./types.ts";
// For KV Connect (src/server/kv-connect): the pieces it shares with openKv.
export { type Check, type Mutation } from "./atomic.ts";
export { decodeKey, engineKey, keyBytes } from "./key.ts";
export { ENCODING, liveStored, type Encoding, type Stored } from "./value.ts";
export { KeysWatch, type WatchedEntry } from "./watch.ts";
// Deno KV's limits (src/limits.ts), as KV Connect enforces them too.
export { kvChecksMax, kvCommitBytesMax, kvEntriesMax, kvKeyBytesMax, kvMutationsMax, kvRangesMax, kvReadKeyBytesMax, kvValueBytesMax, kvWatchKeysMax } from "../limits.ts";
