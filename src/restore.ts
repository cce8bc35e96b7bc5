// restore(): an archive (docs/archive-format.md) into a new database directory, checked by opening it.

import * as fs from "node:fs";
import * as path from "node:path";
import hyperid from "hyperid";
import type { S3Settings } from "./archive/bucket.ts";
import { mergeEntries, restoreWith, writeDatabase, type RestorePlan } from "./archive/restore.ts";
import { InvalidArgumentError } from "./errors.ts";
import { nodeIO } from "./io/file-io.ts";

export interface RestoreOptions {
  /** The revision to restore to (default: the newest the archive holds without a gap). */
  rev?: number;
  /**
   * Restore what had reached the archive by this time (a Date, or ms since the epoch): the newest
   * snapshot uploaded by then and the log objects made by then (docs/archive-format.md, "Restore
   * to a time"). With `rev` too, whichever comes first.
   */
  time?: Date | number;
  /**
   * The restored database's revisions continue this far above the newest revision in the archive
   * (default 1,000,000; etcd's --bump-revision), so that no revision the old database may have
   * handed out is handed out again with other contents.
   */
  bumpRevision?: number;
  /** Plan and verify every object, write nothing. */
  dryRun?: boolean;
  s3?: S3Settings;
  timeoutMs?: number;
}

export interface RestoreResult extends RestorePlan {
  /** The restored database's id (a new one) and revision; "" and 0 for a dry run. */
  newDb: string;
  rev: number;
  keys: number;
}

export const bumpRevisionDefault = 1_000_000;

/**
 * Restores the archive at `url` into `dir`, which must not exist or be empty: written into
 * `<dir>.part`, checked as it is written, then renamed. Throws ArchiveError naming any object that is
 * missing, torn or foreign, or the revision a gap starts at; nothing is left at `dir` then.
 */
export async function restore(url: string, dir: string, o: RestoreOptions = {}): Promise<RestoreResult> {
  const bump = o.bumpRevision ?? bumpRevisionDefault;
  if (!(Number.isSafeInteger(bump) && bump >= 0)) throw new InvalidArgumentError("bumpRevision must be an integer ≥ 0");
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) throw new InvalidArgumentError(`${dir} exists and is not empty`);
  const time = o.time instanceof Date ? o.time.getTime() : o.time;
  if (time !== undefined && !Number.isFinite(time)) throw new InvalidArgumentError("time must be a valid Date or ms since the epoch");
  const from = { url, rev: o.rev, time, s3: o.s3, timeoutMs: o.timeoutMs };
  // A dry run merges too: every snapshot entry is checked as it is walked.
  if (o.dryRun) {
    const { plan, result } = await restoreWith(from, (_, state) => mergeEntries(state, () => {}, () => {}));
    return { ...plan, newDb: "", rev: 0, keys: result };
  }
  const part = `${path.resolve(dir)}.part`;
  const newDb = hyperid({ urlSafe: true })();
  // Written as the snapshot downloads, and checked as it is written: keys in order, the snapshot
  // file read back whole (every checksum, the counts), the segment's header read back. (An open()
  // of it here, which loads every key into an index again, was a third of a restore's time:
  // docs/archive-format.md.)
  const { plan, result } = await restoreWith(from, async (plan, state) => {
    fs.rmSync(part, { recursive: true, force: true }); // an earlier try's, or an interrupted restore's
    const rev = plan.headRev + bump;
    try {
      return { rev, keys: await writeDatabase(nodeIO, part, newDb, rev, state) };
    } catch (err) {
      fs.rmSync(part, { recursive: true, force: true });
      throw err;
    }
  });
  const { rev, keys } = result;
  if (fs.existsSync(dir)) fs.rmdirSync(dir); // (empty)
  fs.renameSync(part, dir);
  nodeIO.fsyncDir(path.dirname(path.resolve(dir)));
  return { ...plan, newDb, rev, keys };
}
