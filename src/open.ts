// open(): the lock, recovery (the newest snapshot, then the log after it), the writer worker, the Db.

import * as fs from "node:fs";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import hyperid from "hyperid";
import { verifyEnabled } from "./assert.ts";
import { Db } from "./db.ts";
import { HarmonyError, ReadOnlyError, WalFailedError } from "./errors.ts";
import { nodeIO } from "./io/file-io.ts";
import { lockDir, type DirLock } from "./io/lock.ts";
import * as L from "./limits.ts";
import { resolveOptions, type OpenOptions, type Resolved, type TestHooks } from "./options.ts";
import { readReplicaMarker } from "./replication.ts";
import type { KeyIndex } from "./store/key-index.ts";
import { Replay } from "./store/replay.ts";
import * as R from "./wal/ring.ts";
import { openLogAsync, type Apply } from "./wal/recovery.ts";
import { continueLog, type WriterConfig } from "./wal/writer.ts";

/**
 * Opens (creating if needed) the database in `dir`: takes the LOCK, replays the WAL, starts the
 * writer. `hooks` are for tests only (src/testing.ts).
 */
export async function openDb(dir: string, options: OpenOptions = {}, hooks: TestHooks = {}, role: "primary" | "replica" = "primary"): Promise<Db> {
  const o = resolveOptions(options, hooks);
  const marker = role === "primary" ? readReplicaMarker(dir) : null;
  if (marker !== null) {
    throw new ReadOnlyError(`${dir} is a read replica of ${marker.follow}: open it with openReplica(), or promote it (harmonydb promote ${dir})`, marker.follow);
  }
  const created = !fs.existsSync(path.join(dir, "wal")) || !fs.existsSync(path.join(dir, "snap"));
  fs.mkdirSync(path.join(dir, "wal"), { recursive: true });
  fs.mkdirSync(path.join(dir, "snap"), { recursive: true });
  if (created) {
    // The new directories must survive a crash as much as the segments in them.
    nodeIO.fsyncDir(dir);
    nodeIO.fsyncDir(path.dirname(path.resolve(dir)));
  }
  const lock = lockDir(dir);
  try {
    return await start(dir, o, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function start(dir: string, o: Resolved, lock: DirLock): Promise<Db> {
  const walDir = path.join(dir, "wal");
  const snapDir = path.join(dir, "snap");
  const t0 = performance.now();
  const replay = new Replay();
  const apply: Apply = (rev, segment, start, end) => replay.applyEncoded(rev, segment, start, end);
  const rec = await openLogAsync(walDir, apply, {
    onProgress: o.onProgress,
    log: o.log,
    newDbId: () => hyperid({ urlSafe: true })(),
    snapshots: replay.snapshotLoader(snapDir),
    prefetchBytes: o.snapshotPrefetchBytes,
    // The log's changes are replayed while another thread still reads a large snapshot in.
    logFirst: true,
  });
  const ring = R.createRing(o.ringBytes, o.limits.valueBytesMax + L.recordSlackBytes);
  // Archived: the writer keeps every segment until the archiver says the bucket holds it.
  if (o.archive) ring.stats[R.STAT_ARCHIVE_REV] = 0;
  const cfg: WriterConfig = {
    ...continueLog(rec),
    sab: ring.sab,
    walDir,
    snapDir,
    segmentBytes: o.segmentBytes,
    sync: o.sync,
    syncIntervalMs: o.syncIntervalMs,
    commitDelayUs: o.commitDelayUs,
    ...(o.writerIO ? { ioModule: o.writerIO } : {}),
  };
  // The writer starts (~50 ms, mostly loading its modules, on another core) while the index is built.
  const writer = startWorker(cfg);
  let index: KeyIndex;
  try {
    index = replay.finish();
    if (verifyEnabled) index.verify(rec.lastRev);
  } catch (err) {
    void writer.worker.terminate();
    throw err;
  }
  const worker = await writer.ready();
  const snapshot = rec.snapshot ? { rev: rec.snapshot.rev, keys: rec.snapshot.keys, bytes: rec.snapshot.bytes } : null;
  const recovery = { records: rec.records, segments: rec.segments, ms: performance.now() - t0, tornTail: rec.tornTail, snapshot };
  return new Db({ dir, ring, worker, lock, options: o, dbId: rec.dbId, recovery, index, lastRev: rec.lastRev, walBytesAfterSnapshot: rec.walBytesAfterSnapshot });
}

/**
 * Starts the writer worker; `ready()` waits for it to report, at most workerStartMsMax from when it
 * is called (open() builds the index in between, however long that takes).
 */
function startWorker(cfg: WriterConfig): { worker: Worker; ready: () => Promise<Worker> } {
  const worker = new Worker(new URL("../workers/wal-writer.ts", import.meta.url), { workerData: cfg });
  const reported = new Promise<Worker>((resolve, reject) => {
    worker.once("error", reject);
    worker.once("message", (m: { type?: string }) => {
      worker.off("error", reject);
      if (m?.type === "ready") resolve(worker);
      else reject(new Error(`unexpected first message ${JSON.stringify(m)}`));
    });
  });
  reported.catch(() => {}); // (seen by the waiter; open() may throw before it waits)
  const ready = () =>
    new Promise<Worker>((resolve, reject) => {
      const timer = setTimeout(() => fail(new WalFailedError("writer worker did not start")), L.workerStartMsMax);
      const fail = (err: Error) => {
        clearTimeout(timer);
        void worker.terminate();
        reject(err instanceof HarmonyError ? err : new WalFailedError(`writer worker failed to start: ${err.message}`, { cause: err }));
      };
      reported.then((w) => (clearTimeout(timer), resolve(w)), fail);
    });
  return { worker, ready };
}
