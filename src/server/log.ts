// The server's log: one line per event, levelled, `key=value` fields; never a request body.

export type LogLevel = "debug" | "info" | "warn" | "error";

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  readonly level: LogLevel;
  enabled(level: LogLevel): boolean;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/**
 * A logger writing `2025-01-01T00:00:00.000Z info  harmonydb: msg k=v` lines: debug and info to
 * stdout, warn and error to stderr (unless `write` is given, which gets every line).
 */
export function createLogger(level: LogLevel, write?: (line: string, level: LogLevel) => void): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const out = write ?? writeStd;
  const at = (l: LogLevel) => (msg: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(l) < min) return;
    out(formatLine(new Date(), l, msg, fields), l);
  };
  return {
    level,
    enabled: (l) => LOG_LEVELS.indexOf(l) >= min,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
}

function writeStd(line: string, level: LogLevel): void {
  try {
    (level === "warn" || level === "error" ? process.stderr : process.stdout).write(line + "\n");
  } catch {
    // The reader of our output went away (EPIPE): the server goes on without its log, as with SIGPIPE ignored.
  }
}

/** A logger that drops everything: the default for an in-process handler. */
export const silentLogger: Logger = createLogger("error", () => {});

export function formatLine(at: Date, level: LogLevel, msg: string, fields?: LogFields): string {
  let line = `${at.toISOString()} ${level.padEnd(5)} harmonydb: ${oneLine(msg)}`;
  for (const [k, v] of Object.entries(fields ?? {})) {
    if (v === undefined) continue;
    const s = String(v);
    // Quote values that would break the k=v grammar, so every event stays on one parseable line.
    line += ` ${k}=${/^[^\s"=]+$/.test(s) ? s : JSON.stringify(s)}`;
  }
  return line;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ");
}
