// harmonydb/kv: Deno KV's API over HarmonyDB (docs/deno-kv.md). `import { openKv } from "harmonydb/kv"`.

export { openKv, Kv } from "./kv.ts";
export { AtomicOperation } from "./atomic.ts";
export { KvU64 } from "./value.ts";
export type * from "./types.ts";
