// Checks on what a caller hands to a write, before anything is framed: keys, conditions, values.

import { InvalidArgumentError, InvalidKeyError, InvalidValueError, KeyTooLargeError, ValueTooLargeError } from "../errors.ts";
import { utf8Bytes, type Op } from "../format/encoder.ts";
import type { Limits } from "../limits.ts";
import { encodeValueView } from "./value.ts";

/** One operation of db.batch(). */
export type BatchOp =
  | { type: "put"; key: string; value: unknown; ifRev?: number }
  | { type: "delete"; key: string; ifRev?: number };

/** A condition of a write: the key's newest revision must be `ifRev` (0: the key must not exist). */
export interface Condition {
  key: string;
  ifRev: number;
}

export function checkKeyType(key: unknown): asserts key is string {
  if (typeof key !== "string") throw new InvalidKeyError(`key must be a string, got ${typeof key}`);
}

/** The first character of the reserved keyspace: harmonydb/kv's keys (docs/deno-kv.md §2). */
export const RESERVED_KEY_CHAR = 0;

export function checkKey(key: unknown, limits: Limits, reservedOk = false): asserts key is string {
  checkKeyType(key);
  if (key.length === 0) throw new InvalidKeyError("key must not be empty");
  if (key.charCodeAt(0) === RESERVED_KEY_CHAR && !reservedOk) {
    throw new InvalidKeyError("keys beginning with U+0000 are reserved (harmonydb/kv's keyspace)");
  }
  // A lone surrogate has no UTF-8 form: two such keys would become one after a restart.
  if (!key.isWellFormed()) throw new InvalidKeyError("key has a lone UTF-16 surrogate (not valid Unicode)");
  // Cheap bound first: a UTF-8 byte is at most 3 per UTF-16 unit.
  if (key.length * 3 > limits.keyBytesMax) {
    const bytes = utf8Bytes(key);
    if (bytes > limits.keyBytesMax) throw new KeyTooLargeError(bytes, limits.keyBytesMax);
  }
}

/** A write without conditions (shared, never changed: a batch copies conditions out of it). */
export const NO_CONDS: Condition[] = [];

export function condition(key: string, ifRev: number | undefined): Condition[] {
  if (ifRev === undefined) return NO_CONDS;
  if (!Number.isSafeInteger(ifRev) || ifRev < 0) throw new InvalidArgumentError(`ifRev must be an integer ≥ 0, got ${ifRev}`);
  return [{ key, ifRev }];
}

/** The value's CBOR encoding, in a buffer of its own (so later changes by the caller do not matter). */
export function checkedValue(value: unknown, limits: Limits): Uint8Array {
  return checkedValueView(value, limits).slice();
}

/** As checkedValue, but in a buffer shared by every call (see encodeValueView): copy it before the next. */
export function checkedValueView(value: unknown, limits: Limits): Uint8Array {
  if (value === undefined) throw new InvalidValueError("value is undefined (use delete to remove a key)");
  if (typeof value === "string" && !value.isWellFormed()) {
    throw new InvalidValueError("string value has a lone UTF-16 surrogate (it would not read back the same)");
  }
  let bytes: Uint8Array;
  try {
    bytes = encodeValueView(value);
  } catch (cause) {
    throw new InvalidValueError(`value cannot be encoded as CBOR: ${(cause as Error).message}`, { cause });
  }
  if (bytes.length > limits.valueBytesMax) throw new ValueTooLargeError(bytes.length, limits.valueBytesMax);
  return bytes;
}

/** A batch's operations, checked and encoded, with their conditions (`reservedOk`: db.atomic's). */
export function batchOps(ops: BatchOp[], limits: Limits, reservedOk = false): { ops: Op[]; conds: Condition[] } {
  if (!Array.isArray(ops) || ops.length === 0) throw new InvalidArgumentError("batch needs a non-empty array of operations");
  if (ops.length > limits.batchOpsMax) {
    throw new InvalidArgumentError(`batch has ${ops.length} operations, the limit is ${limits.batchOpsMax}`);
  }
  const out: Op[] = [];
  const conds: Condition[] = [];
  for (const op of ops) {
    checkKey(op?.key, limits, reservedOk);
    conds.push(...condition(op.key, op.ifRev));
    if (op.type === "put") out.push([op.key, checkedValue(op.value, limits)]);
    else if (op.type === "delete") out.push([op.key]);
    else throw new InvalidArgumentError(`batch op type must be "put" or "delete", got ${JSON.stringify((op as { type: unknown }).type)}`);
  }
  return { ops: out, conds };
}
