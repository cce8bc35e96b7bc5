// The writer worker: owns the WAL files; a thin shell around src/wal/writer.ts.

import { parentPort, workerData } from "node:worker_threads";
import { nodeIO, type FileIO } from "../src/io/file-io.ts";
import { WalWriter, type WriterConfig } from "../src/wal/writer.ts";

const cfg = workerData as WriterConfig;
let io: FileIO = nodeIO;
if (cfg.ioModule) {
  const mod = (await import(cfg.ioModule.path)) as { default: (options: unknown) => FileIO };
  io = mod.default(cfg.ioModule.options);
}
const writer = new WalWriter(cfg, io);
parentPort?.postMessage({ type: "ready" });
writer.run();
parentPort?.postMessage({ type: "closed" });
