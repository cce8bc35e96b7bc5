// The adapter every benchmarked engine implements: scenarios loop over these and know no engine by name.

/** Values are 100 B: a Uint8Array, or a 100-char string for the string variant of the get scenario. */
export type Value = Uint8Array | string;

export interface OpenOptions {
  /** Bulk loading: the engine's fastest way to write, durability off (HarmonyDB sync "never", lmdb noSync, …). */
  bulk?: boolean;
  /** What the values are, for engines that store strings and bytes through different encodings. */
  values?: "bytes" | "string";
}

/** An open store. The caller keeps ownership of keys and values passed in and may reuse them at once. */
export interface Store {
  /** Resolves once the put is as durable as the engine's `durable` flag says. */
  put(key: string, value: Value): Promise<unknown>;
  /** The stored value, or undefined. */
  get(key: string): unknown;
  /** Reads the `n` entries from `start` on in key order, values included; returns how many it read. */
  range(start: string, n: number): number | Promise<number>;
  /** As range, keys only (no value read), for engines that have such a path. */
  rangeKeys?(start: string, n: number): number | Promise<number>;
  /** Puts key(i) → values[i % values.length] for i in [from, to) in the engine's batched way (quick, not measured). */
  load(from: number, to: number, values: readonly Value[]): Promise<void>;
  /** Waits out background work that follows open (HarmonyDB zero-fills its next segments) before writes are timed. */
  settle?(): Promise<void>;
  /** Write records and the fdatasyncs that made them durable so far, for engines that count them (HarmonyDB). */
  syncStats?(): { records: number; fsyncs: number };
  close(): Promise<void>;
}

export interface Engine {
  /** Short and stable: flags (`--engines lmdb-sync`) and results files use it. */
  id: string;
  /** As the tables and the chart show it. */
  name: string;
  /** Variants of one family share the on-disk format: a store one variant loaded opens with another. */
  family: string;
  /** True when a resolved put has been fdatasynced (survives power loss). */
  durable: boolean;
  /** The one engine the others are compared with (HarmonyDB). */
  subject?: boolean;
  /**
   * Measured in the read scenarios. Variants that differ only in how writes are flushed read the
   * same way, so only one per family is.
   */
  reads: boolean;
  /** How the engine is configured, one sentence. */
  notes: string;
  /** The package (or library) version. */
  version(): string;
  /** Opens (creating if needed) a store in `dir`. Throws when the engine cannot load: callers report it. */
  open(dir: string, options?: OpenOptions): Promise<Store>;
}
