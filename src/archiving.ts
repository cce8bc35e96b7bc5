// The main thread's side of archiving: starts the archiver worker, stops it at close, reads its stats.

import { Worker } from "node:worker_threads";
import { gaveUp, type ArchiverConfig } from "./archive/archiver.ts";
import type { ArchiveOptions } from "./options.ts";
import { archiveStats } from "./stats.ts";
import type { ArchiveStats } from "./types.ts";
import * as R from "./wal/ring.ts";

export class ArchiveLink {
  private readonly worker: Worker;
  private readonly ended: Promise<void>;

  constructor(
    private readonly ring: R.RingViews,
    private readonly o: Required<ArchiveOptions>,
    dir: string,
    dbId: string,
  ) {
    const cfg: ArchiverConfig = { dir, dbId, url: o.url, s3: o.s3, maxLagMs: o.maxLagMs, timeoutMs: o.timeoutMs, retainMs: o.retainMs, snapshotLogRatio: o.snapshotLogRatio, sync: o.sync, sab: ring.sab };
    this.worker = new Worker(new URL("../workers/archiver.ts", import.meta.url), { workerData: cfg });
    this.worker.unref(); // the archive never keeps a process alive by itself
    this.ended = new Promise<void>((resolve) => {
      this.worker.once("exit", () => resolve());
      this.worker.once("error", (err) => {
        gaveUp(ring, `the archiver's thread failed: ${(err as Error)?.message ?? String(err)}`);
        resolve();
      });
      this.worker.on("message", (m: { type?: string }) => m?.type === "stopped" && resolve());
    });
  }

  stats(): ArchiveStats {
    return archiveStats(this.ring, this.o.url);
  }

  /**
   * Lets the archiver ship what is durable (the writer has stopped: nothing more comes), for at most
   * closeTimeoutMs; then ends it. What it did not ship, the next open ships.
   */
  async stop(): Promise<void> {
    this.worker.ref();
    this.worker.postMessage({ type: "stop", flush: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.ended, new Promise((r) => (timer = setTimeout(r, this.o.closeTimeoutMs)))]);
    clearTimeout(timer);
    await this.worker.terminate();
    this.worker.removeAllListeners(); // (see Db.doClose: nothing of the store's stays reachable)
    this.worker.on("error", () => {});
  }
}

