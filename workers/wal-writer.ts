// The writer worker: owns the WAL files; a thin shell around src/wal/writer.ts.

import { parentPort, workerData } from "node:worker_threads";
import { WalWriter, type WriterConfig } from "../src/wal/writer.ts";

const writer = new WalWriter(workerData as WriterConfig);
parentPort?.postMessage({ type: "ready" });
writer.run();
parentPort?.postMessage({ type: "closed" });
