// `bun run server`: flags, Bun.serve, signals. Listens at once; KV routes answer 503 until replay is done.

import { parseArgs } from "node:util";
import { open } from "../index.ts";
import type { SyncMode } from "../wal/writer.ts";
import { createHandler, type ServerState } from "./http.ts";

const HELP = `harmonydb server

  --dir <path>    data directory            (HARMONYDB_DIR, default ./data)
  --host <addr>   listen address            (HARMONYDB_HOST, default 127.0.0.1)
  --port <n>      listen port, 0 for any    (HARMONYDB_PORT, default 7070)
  --sync <mode>   always | interval | never (HARMONYDB_SYNC, default always)
  --help          this text
`;

const { values } = parseArgs({
  options: {
    dir: { type: "string" },
    host: { type: "string" },
    port: { type: "string" },
    sync: { type: "string" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const env = process.env;
const dir = values.dir ?? env.HARMONYDB_DIR ?? "./data";
const host = values.host ?? env.HARMONYDB_HOST ?? "127.0.0.1";
const port = Number(values.port ?? env.HARMONYDB_PORT ?? 7070);
const sync = (values.sync ?? env.HARMONYDB_SYNC ?? "always") as SyncMode;

const state: ServerState = { db: null, progress: null };
const server = Bun.serve({ hostname: host, port, fetch: createHandler(state) });
console.log(`harmonydb: listening on http://${server.hostname}:${server.port}, data in ${dir}`);

try {
  const t0 = performance.now();
  state.db = await open(dir, { sync, onProgress: (p) => (state.progress = p) });
  console.log(`harmonydb: ready at rev ${state.db.rev} after ${(performance.now() - t0).toFixed(0)} ms`);
} catch (err) {
  console.error(`harmonydb: cannot open ${dir}: ${(err as Error).message}`);
  server.stop(true);
  process.exit(1);
}

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`harmonydb: ${signal}: stopping`);
  await server.stop(); // stop accepting; let in-flight requests finish
  await state.db?.close();
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
