// The server's configuration: flags over HARMONYDB_* environment variables over defaults.

import { parseArgs } from "node:util";
import type { SyncMode } from "../index.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";

export interface ServerConfig {
  dir: string;
  host: string;
  port: number;
  token: string | null;
  sync: SyncMode;
  logLevel: LogLevel;
  /** A connection with nothing sent or received for this long is closed (Bun.serve idleTimeout, at most 255). */
  idleTimeoutS: number;
  /** s3://bucket/prefix to archive to (docs/archive-format.md), or null. */
  archive: string | null;
  /** The archive's retention in ms (0: keep everything). */
  archiveRetainMs: number;
  /** Zero RPO: a write is acknowledged only once the archive holds it too. */
  archiveSync: boolean;
  /** A read replica of this primary (http://host:port), or null (docs/replication.md). */
  follow: string | null;
  /** The primary's token. */
  followToken: string | null;
  /** KV Connect's port (docs/deno-kv.md §8): port + 1 by default, 0 for any, null when off. */
  kvPort: number | null;
}

export const HELP = `harmonydb server: the HTTP API over one data directory

usage: bun src/server/main.ts [flags]      (or: bun run server -- [flags])

  --dir <path>          data directory               HARMONYDB_DIR        ./data
  --host <addr>         listen address               HARMONYDB_HOST       127.0.0.1
  --port <n>            listen port, 0 for any       HARMONYDB_PORT       7070
  --token <secret>      require Authorization: Bearer <secret> on every route but /healthz
                                                     HARMONYDB_TOKEN      (none)
  --sync <mode>         always | interval | never    HARMONYDB_SYNC       always
  --log-level <level>   debug | info | warn | error  HARMONYDB_LOG_LEVEL  info
  --idle-timeout <s>    close a connection idle this long (1-255; watch streams send heartbeats)
                                                     HARMONYDB_IDLE_TIMEOUT_S  30
  --archive <url>       archive continuously to s3://bucket/prefix (endpoint and credentials from
                        S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_REGION or AWS_*)
                                                     HARMONYDB_ARCHIVE    (none)
  --archive-retain <d>  keep the archive restorable this far back and delete what is older:
                        e.g. 30d, 12h, 90m (docs/archive-format.md, "Retention")
                                                     HARMONYDB_ARCHIVE_RETAIN  (keep all)
  --follow <url>        serve as a read replica of the primary at http://host:port, or of its
                        archive at s3://bucket/prefix (writes answer 403 READ_ONLY; reads take
                        ?min_rev=)                       HARMONYDB_FOLLOW     (none)
  --follow-token <t>    the primary's token                 HARMONYDB_FOLLOW_TOKEN  (none)
  --kv-port <n|off>     KV Connect for Deno's clients at http://HOST:KV_PORT/kv (h2c and HTTP/1.1)
                                                     HARMONYDB_KV_PORT    port + 1
  --archive-sync        zero RPO: acknowledge a write only once the archive holds it (writes wait
                        while S3 is down)                HARMONYDB_ARCHIVE_SYNC=1  (off)
  --help                this text

Prefer HARMONYDB_TOKEN to --token: other users can read a process's flags.
Listening on an address other than loopback without a token prints a warning.
SIGINT/SIGTERM: stop accepting, finish in-flight writes, close the database, exit 0.
`;

const SYNC_MODES: readonly SyncMode[] = ["always", "interval", "never"];

/** The configuration, `help` for --help, or a message saying what is wrong (exit 2). */
export function parseConfig(argv: string[], env: Record<string, string | undefined>): { config: ServerConfig } | { help: true } | { error: string } {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        dir: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        token: { type: "string" },
        sync: { type: "string" },
        "log-level": { type: "string" },
        "idle-timeout": { type: "string" },
        archive: { type: "string" },
        "archive-retain": { type: "string" },
        "archive-sync": { type: "boolean" },
        follow: { type: "string" },
        "follow-token": { type: "string" },
        "kv-port": { type: "string" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    return { error: (err as Error).message };
  }
  if (values.help) return { help: true };
  const pick = (flag: string, name: string, fallback: string) => {
    const v = values[flag];
    return typeof v === "string" ? v : (env[name] ?? fallback);
  };
  const portText = pick("port", "HARMONYDB_PORT", "7070");
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 0 && port <= 65535)) return { error: `port must be an integer from 0 to 65535, got ${JSON.stringify(portText)}` };
  const sync = pick("sync", "HARMONYDB_SYNC", "always") as SyncMode;
  if (!SYNC_MODES.includes(sync)) return { error: `sync must be one of ${SYNC_MODES.join(", ")}, got ${JSON.stringify(sync)}` };
  const logLevel = pick("log-level", "HARMONYDB_LOG_LEVEL", "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) return { error: `log level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(logLevel)}` };
  const idleText = pick("idle-timeout", "HARMONYDB_IDLE_TIMEOUT_S", "30");
  const idleTimeoutS = /^\d{1,3}$/.test(idleText) ? Number(idleText) : NaN;
  if (!(idleTimeoutS >= 1 && idleTimeoutS <= 255)) return { error: `idle timeout must be 1 to 255 seconds, got ${JSON.stringify(idleText)}` };
  const dir = pick("dir", "HARMONYDB_DIR", "./data");
  if (dir === "") return { error: "dir must not be empty" };
  const token = pick("token", "HARMONYDB_TOKEN", "");
  if (/\s/.test(token)) return { error: "token must not contain whitespace" };
  const archive = pick("archive", "HARMONYDB_ARCHIVE", "");
  if (archive !== "" && !/^s3:\/\/[^/]+/.test(archive)) return { error: `archive must be s3://bucket/prefix, got ${JSON.stringify(archive)}` };
  const retainText = pick("archive-retain", "HARMONYDB_ARCHIVE_RETAIN", "");
  const archiveRetainMs = retainText === "" ? 0 : parseDuration(retainText);
  if (archiveRetainMs === null) return { error: `archive retention must be a duration such as 30d, 12h, 90m or 45s, got ${JSON.stringify(retainText)}` };
  if (archiveRetainMs > 0 && archive === "") return { error: "--archive-retain needs --archive" };
  const archiveSync = values["archive-sync"] === true || env.HARMONYDB_ARCHIVE_SYNC === "1";
  if (archiveSync && archive === "") return { error: "--archive-sync needs --archive" };
  const follow = pick("follow", "HARMONYDB_FOLLOW", "");
  if (follow !== "" && !/^(https?:\/\/[^/]+\/?|s3:\/\/[^/]+.*)$/.test(follow)) {
    return { error: `follow must be the primary's http://host:port or its archive's s3://bucket/prefix, got ${JSON.stringify(follow)}` };
  }
  if (follow !== "" && archive !== "") return { error: "a replica (--follow) does not archive: archive the primary" };
  const followToken = pick("follow-token", "HARMONYDB_FOLLOW_TOKEN", "");
  const host = pick("host", "HARMONYDB_HOST", "127.0.0.1");
  const kvPortText = pick("kv-port", "HARMONYDB_KV_PORT", port === 0 || port === 65535 ? "0" : String(port + 1));
  const kvPort = kvPortText === "off" ? null : /^\d{1,5}$/.test(kvPortText) ? Number(kvPortText) : NaN;
  if (kvPort !== null && !(kvPort >= 0 && kvPort <= 65535)) return { error: `kv port must be an integer from 0 to 65535 or "off", got ${JSON.stringify(kvPortText)}` };
  if (kvPort !== null && kvPort !== 0 && kvPort === port) return { error: "kv port must differ from port" };
  return {
    config: {
      dir,
      host,
      port,
      token: token === "" ? null : token,
      sync,
      logLevel,
      idleTimeoutS,
      archive: archive === "" ? null : archive,
      archiveRetainMs,
      archiveSync,
      follow: follow === "" ? null : follow,
      followToken: followToken === "" ? null : followToken,
      kvPort,
    },
  };
}

const DURATION_UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30d", "12h", "90m", "45s" in ms; null for anything else. */
export function parseDuration(text: string): number | null {
  const m = /^(\d{1,6})([smhd])$/.exec(text);
  return m ? Number(m[1]) * DURATION_UNITS_MS[m[2]!]! : null;
}

/** Whether only this machine can reach `host`: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === "::ffff:127.0.0.1";
}
