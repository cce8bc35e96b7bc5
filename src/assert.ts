// Assertions: for our own bugs, always on, crashing loudly (errors for the world live in errors.ts).

export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new AssertionError(`harmonydb: assertion failed: ${msg}`);
}

/** Costly whole-structure checks run only when HARMONYDB_VERIFY=1 (the test script sets it). */
export const verifyEnabled = process.env.HARMONYDB_VERIFY === "1";
