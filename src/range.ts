// db.range()'s options as bounds on the B-tree walk: where to start, where to stop, what to skip.

import { InvalidArgumentError } from "./errors.ts";
import type { RangeOptions } from "./types.ts";

export interface Bounds {
  lo: string | undefined;
  hi: string | undefined;
  aboveLo: (k: string) => boolean;
  belowHi: (k: string) => boolean;
  reverse: boolean;
  limit: number;
}

export function rangeBounds(o: RangeOptions): Bounds {
  const { prefix, gte, gt, lte, lt } = o;
  let lo = gte ?? gt;
  if (prefix !== undefined && (lo === undefined || prefix > lo)) lo = prefix;
  let hi = lte ?? lt;
  if (prefix !== undefined && hi === undefined && prefix.length > 0 && prefix.charCodeAt(prefix.length - 1) < 0xffff) {
    // Every key with the prefix sorts below the prefix with its last unit incremented.
    hi = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  }
  const limit = o.limit ?? Infinity;
  if (typeof limit !== "number" || Number.isNaN(limit)) throw new InvalidArgumentError("range limit must be a number");
  return {
    lo,
    hi,
    aboveLo: (k) => (gte === undefined || k >= gte) && (gt === undefined || k > gt) && (prefix === undefined || k >= prefix),
    belowHi: (k) =>
      (lte === undefined || k <= lte) && (lt === undefined || k < lt) && (prefix === undefined || k.startsWith(prefix) || k < prefix),
    reverse: o.reverse === true,
    limit,
  };
}
