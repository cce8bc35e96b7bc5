// The archiver worker: ships the WAL and snapshots to a bucket; a thin shell around src/archive/archiver.ts.

import { parentPort, workerData } from "node:worker_threads";
import { Archiver, type ArchiverConfig } from "../src/archive/archiver.ts";
import { nodeIO } from "../src/io/file-io.ts";

const archiver = new Archiver(workerData as ArchiverConfig, nodeIO);
parentPort?.on("message", (m: { type?: string; flush?: boolean }) => {
  if (m?.type === "stop") archiver.stop(m.flush === true);
});
await archiver.run();
parentPort?.postMessage({ type: "stopped" });
parentPort?.close();
