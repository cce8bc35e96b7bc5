#!/usr/bin/env bun
// `harmonydb verify | dump | repair | restore`: the operator's command line; the logic lives in
// src/tools/*.ts (restore: src/restore.ts).

import { parseArgs } from "node:util";
import { HarmonyError } from "../errors.ts";
import { bumpRevisionDefault, promote, restore } from "../index.ts";
import { compactedNote, dump, dumpSnapshot, formatSnapshotProblem } from "./dump.ts";
import { formatPointInTime, formatTruncateTail, pointInTime, truncateTail } from "./repair.ts";
import { EXIT_CORRUPT, formatVerify, verify, verifyExitCode } from "./verify.ts";

/** Bad command line (sysexits EX_USAGE): kept apart from 1 and 2, which describe the log. */
export const EXIT_USAGE = 64;

const EXIT_CODES = `exit codes:
  0   the log is clean (or was repaired)
  1   corruption open() refuses, a damaged newest snapshot, a refused repair, or an error (locked,
      unreadable, not a data dir)
  2   a torn tail open() would truncate (verify, dump)
  64  bad command line
`;

const HELP = `harmonydb: operator tools for a HarmonyDB data directory

usage:
  harmonydb verify <dir>                      check every segment and snapshot, change nothing
  harmonydb dump <dir> [--from-rev N] [--json]  print every record in order
  harmonydb dump <dir> --snapshot [--json]    print the keys of the newest snapshot
  harmonydb repair <dir> --truncate-tail      drop a torn tail, as open() would
  harmonydb repair <dir> --point-in-time      keep the log up to the first damaged record
  harmonydb restore s3://bucket/prefix <dir> [--rev N] [--time ISO] [--bump-revision B] [--dry-run]
                                              a new database from an archive
  harmonydb promote <dir> [--bump-revision B]  a stopped read replica becomes a database of its own
  harmonydb <command> --help                  more about one command

${EXIT_CODES}`;

const HELP_VERIFY = `harmonydb verify <dir>

Reads the log as open() does, from the newest good snapshot in <dir>/snap, with every check it
makes (magic, headers, the segment chain, checksums, contiguous revisions, entry grammar), and
writes nothing, not even the LOCK.
Clean: "ok: <segments> segments, <records> records, last rev <n>, db <id>", plus
"; from snapshot <file> (rev <r>, <k> keys)" when the log starts from one.
Otherwise the first problem, with its file, offset and revision, and the repair that fits it.
Then every snapshot file, newest first, checked whole (frames, then every entry):
  snapshot <file>: rev <r>, <k> keys, <b> bytes: ok[, open() starts from it] | damaged: <why>
A damaged newest snapshot exits 1 even when open() would fall back to an older one.
Safe on a running database, though a record being written at that moment can show as a torn tail.

${EXIT_CODES}`;

const HELP_DUMP = `harmonydb dump <dir> [--from-rev N] [--json]
harmonydb dump <dir> --snapshot [--snapshot-file F] [--json]

One record per entry, in revision order, then its operations:
  rev=<n> seg=<segment file> off=<frame offset> ops=<k>
    put "<key>" <value, as JSON, cut to 80 characters>
    delete "<key>"
and a line where a snapshot became durable:
  marker rev=<rev of the entry before it> seg=<segment file> off=<frame offset> snapshot=<file> bytes=<size>
When the log starts from a snapshot, only the entries after it are listed; a note on stderr says
which revisions the snapshot holds.
  --from-rev N       start at revision N (earlier records are still checked)
  --json             one JSON object per line: {rev, segment, offset, ops: [{op:"put", key, value} |
                     {op:"delete", key}]}, markers {rev, segment, offset, marker: {snapshotRev, bytes}};
                     bytes are {"$bytes": base64}, bigints {"$bigint": "..."}, Map {"$map": [[k, v], ...]},
                     Set {"$set": [...]}, undefined {"$undefined": true}
  --snapshot         instead of the log, the keys of the newest snapshot in key order, after a header line
                     "snapshot=<file> rev=<r> keys=<k> db=<id>":
                       "<key>" rev=<n> createRev=<n> version=<n> <value, as JSON, cut to 80 characters>
                     with --json: {key, rev, createRev, version, value}, no header
  --snapshot-file F  the same for snapshot F (a name in <dir>/snap, or a path)
Records go to stdout up to the first problem; the problem goes to stderr, as verify reports it.

${EXIT_CODES}`;

const HELP_REPAIR = `harmonydb repair <dir> --truncate-tail | --point-in-time

Takes the directory LOCK first: a running database makes it refuse.
  --truncate-tail  drops a torn tail exactly as open() would: the bytes after the last good record
                   of the last segment are copied to <segment>.<offset>.broken and zeroed. Refuses
                   (exit 1, nothing changed) when the damage is anywhere else.
  --point-in-time  for corruption in the middle: keeps every record before the first damaged one.
                   The rest of that segment is copied to <segment>.<offset>.broken and zeroed; every
                   later segment is renamed to <segment>.broken (kept, ignored by open()). Prints the
                   revisions lost, then verifies. Refuses when what it would keep no longer reaches
                   the snapshot the log starts from (those revisions are only in snap/), and when
                   the damage is in a snapshot: restore snap/ from a backup then.
Both print exactly what was dropped; nothing is ever deleted.

${EXIT_CODES}`;

const HELP_RESTORE = `harmonydb restore s3://bucket/prefix <dir> [--rev N] [--time ISO] [--bump-revision B] [--dry-run]

Rebuilds a database from its archive (docs/archive-format.md) into <dir>, which must not exist or
be empty: the newest snapshot at or before the target, then the log objects after it, each verified
whole (checksums, database id, contiguous revisions). A gap, or a torn or foreign object, is an error
naming it, and nothing is written. The result is written into <dir>.part, opened and checked, then
renamed to <dir>.
  --rev N             restore to revision N (default: the newest the archive holds without a gap)
  --time ISO          restore what had reached the archive by that time (e.g. 2026-12-05T10:00:00Z):
                      every revision committed more than the archive's lag before it, none after
  --bump-revision B   the restored database continues at the archive's newest revision + B
                      (default ${bumpRevisionDefault}): no revision the old database may have handed
                      out is handed out again (etcd's --bump-revision)
  --dry-run           list and verify every object, write nothing
Endpoint and credentials come from S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_REGION
(or their AWS_* names).

exit codes: 0 restored (or verified), 1 refused or failed, 64 bad command line
`;

/** `restore`, the one asynchronous command. */
async function restoreCommand(args: string[], io: Io): Promise<number> {
  const opts: Options = { rev: { type: "string" }, time: { type: "string" }, "bump-revision": { type: "string" }, "dry-run": { type: "boolean" } };
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, options: { ...opts, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true }));
  } catch (err) {
    return usage(io, (err as Error).message, HELP_RESTORE);
  }
  if (values.help) return help(io, HELP_RESTORE);
  const [url, dir] = positionals;
  if (url === undefined || dir === undefined || positionals.length > 2) return usage(io, "give the archive's URL and one directory", HELP_RESTORE);
  const int = (name: string): number | undefined | null => {
    const v = values[name];
    if (v === undefined) return undefined;
    return typeof v === "string" && /^\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : null;
  };
  const rev = int("rev");
  const bump = int("bump-revision");
  if (rev === null || bump === null) return usage(io, "--rev and --bump-revision take a whole number", HELP_RESTORE);
  const time = typeof values.time === "string" ? Date.parse(values.time) : undefined;
  if (Number.isNaN(time)) return usage(io, `--time takes an ISO 8601 time, not ${JSON.stringify(values.time)}`, HELP_RESTORE);
  try {
    const r = await restore(url, dir, { rev, time, bumpRevision: bump, dryRun: values["dry-run"] === true });
    io.out(`archive of database ${r.db}: newest revision ${r.headRev}`);
    io.out(r.snapshot ? `snapshot ${r.snapshot.name} (rev ${r.snapshot.rev})` : "no snapshot: the log from revision 1");
    const logRevs = r.logs.length > 0 ? ` (revisions ${r.logs[0]!.firstRev}…${r.logs[r.logs.length - 1]!.lastRev})` : "";
    io.out(`${r.logs.length} log objects${logRevs}, applied up to revision ${r.targetRev}; ${r.keys} keys`);
    for (const x of r.skipped) io.err(`warning: skipped ${x.name}: ${x.why}`);
    if (r.rev === 0) io.out("dry run: every object verified, nothing written");
    else io.out(`restored into ${dir}: database ${r.newDb}, revision ${r.rev} (the next write is ${r.rev + 1})`);
    return 0;
  } catch (err) {
    io.err(err instanceof HarmonyError ? err.message : `harmonydb: ${String((err as Error)?.stack ?? err)}`);
    return EXIT_CORRUPT;
  }
}

const HELP_PROMOTE = `harmonydb promote <dir> [--bump-revision B]

Makes the read replica in <dir> (stopped first) a database of its own (docs/replication.md): its
state at the revision it had applied is written as a new database whose revisions continue at that
revision + B (default ${bumpRevisionDefault}), above any the old primary may have handed out.
What it loses: every write the old primary acknowledged that the replica had not applied. Stop the
old primary first: writes it takes afterwards go nowhere.

exit codes: 0 promoted, 1 refused or failed, 64 bad command line
`;

async function promoteCommand(args: string[], io: Io): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, options: { "bump-revision": { type: "string" }, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true }));
  } catch (err) {
    return usage(io, (err as Error).message, HELP_PROMOTE);
  }
  if (values.help) return help(io, HELP_PROMOTE);
  if (positionals.length !== 1) return usage(io, "give one directory", HELP_PROMOTE);
  const b = values["bump-revision"];
  if (b !== undefined && !(typeof b === "string" && /^\d+$/.test(b))) return usage(io, "--bump-revision takes a whole number", HELP_PROMOTE);
  try {
    const r = await promote(positionals[0]!, { bumpRevision: b === undefined ? undefined : Number(b) });
    io.out(`promoted ${positionals[0]}: applied up to revision ${r.appliedRev}, ${r.keys} keys; now database ${r.newDb} at revision ${r.rev} (the next write is ${r.rev + 1})`);
    return 0;
  } catch (err) {
    io.err(err instanceof HarmonyError ? err.message : `harmonydb: ${String((err as Error)?.stack ?? err)}`);
    return EXIT_CORRUPT;
  }
}

/** main(), with the asynchronous commands too. */
export async function mainAsync(argv: string[], io: Io): Promise<number> {
  if (argv[0] === "restore") return restoreCommand(argv.slice(1), io);
  if (argv[0] === "promote") return promoteCommand(argv.slice(1), io);
  return main(argv, io);
}

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** Runs one command line (without the `bun cli.ts` part); returns the exit code. */
export function main(argv: string[], io: Io): number {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    (command === undefined ? io.err : io.out)(HELP);
    return command === undefined ? EXIT_USAGE : 0;
  }
  const run = COMMANDS[command];
  if (!run) return usage(io, `unknown command ${JSON.stringify(command)}`, HELP);
  try {
    return run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) return usage(io, err.message, err.help);
    // Errors for the world (locked, unreadable, not a data directory) carry their own message.
    io.err(err instanceof HarmonyError ? err.message : `harmonydb: ${String((err as Error)?.stack ?? err)}`);
    return EXIT_CORRUPT;
  }
}

const COMMANDS: Record<string, (args: string[], io: Io) => number> = {
  verify(args, io) {
    const { dir, values } = parse(args, {}, HELP_VERIFY);
    if (values.help) return help(io, HELP_VERIFY);
    const r = verify(dir);
    const code = verifyExitCode(r);
    for (const line of formatVerify(r, dir)) (code === 0 ? io.out : io.err)(line);
    return code;
  },

  dump(args, io) {
    const opts: Options = {
      "from-rev": { type: "string" },
      json: { type: "boolean" },
      snapshot: { type: "boolean" },
      "snapshot-file": { type: "string" },
    };
    const { dir, values } = parse(args, opts, HELP_DUMP);
    if (values.help) return help(io, HELP_DUMP);
    const json = values.json === true;
    const snapshotFile = values["snapshot-file"] as string | undefined;
    if (values.snapshot !== true && snapshotFile === undefined) return dumpLog(dir, values["from-rev"], json, io);
    if (values["from-rev"] !== undefined) throw new UsageError("--from-rev is for the log, not --snapshot", HELP_DUMP);
    const r = dumpSnapshot(dir, { file: snapshotFile, json }, io.out);
    if (r.kind === "clean") return 0;
    for (const line of formatSnapshotProblem(r)) io.err(line);
    return EXIT_CORRUPT;
  },

  repair(args, io) {
    const opts: Options = { "truncate-tail": { type: "boolean" }, "point-in-time": { type: "boolean" } };
    const { dir, values } = parse(args, opts, HELP_REPAIR);
    if (values.help) return help(io, HELP_REPAIR);
    const tail = values["truncate-tail"] === true;
    const pit = values["point-in-time"] === true;
    if (tail === pit) throw new UsageError("give exactly one of --truncate-tail and --point-in-time", HELP_REPAIR);
    if (tail) {
      const r = truncateTail(dir);
      for (const line of formatTruncateTail(r, dir)) (r.kind === "refused" ? io.err : io.out)(line);
      return r.kind === "refused" ? EXIT_CORRUPT : 0;
    }
    const r = pointInTime(dir);
    const ok = r.kind === "clean" || (r.kind === "repaired" && r.after.kind === "clean");
    for (const line of formatPointInTime(r)) (ok ? io.out : io.err)(line);
    return ok ? 0 : EXIT_CORRUPT;
  },
};

function dumpLog(dir: string, raw: string | boolean | undefined, json: boolean, io: Io): number {
  const fromRev = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : raw === undefined ? 0 : -1;
  if (!Number.isSafeInteger(fromRev) || fromRev < 0) throw new UsageError("--from-rev takes a revision (0, 1, 2, ...)", HELP_DUMP);
  const r = dump(dir, { fromRev, json }, io.out);
  const note = compactedNote(r.scan, fromRev, dir);
  if (note) io.err(note);
  if (r.kind !== "clean") for (const line of formatVerify(r, dir)) io.err(line);
  return verifyExitCode(r);
}

class UsageError extends Error {
  constructor(message: string, readonly help: string) {
    super(message);
  }
}

type Options = Record<string, { type: "string" | "boolean" }>;

/** Parses `<dir> [flags]`: exactly one positional, known flags only, `--help` always allowed. */
function parse(args: string[], options: Options, helpText: string): { dir: string; values: Record<string, string | boolean | undefined> } {
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw new UsageError((err as Error).message, helpText);
  }
  const dir = parsed.positionals[0];
  if (!parsed.values.help && (dir === undefined || parsed.positionals.length > 1)) {
    throw new UsageError("give one data directory", helpText);
  }
  return { dir: dir ?? "", values: parsed.values };
}

function help(io: Io, text: string): number {
  io.out(text);
  return 0;
}

function usage(io: Io, message: string, text: string): number {
  io.err(`harmonydb: ${message}\n`);
  io.err(text);
  return EXIT_USAGE;
}

if (import.meta.main) {
  // Lines are gathered and written in chunks; the process then ends by itself (no process.exit), so
  // everything written reaches a pipe before it closes.
  const chunkCharsMax = 64 * 1024;
  let pending: string[] = [];
  let pendingChars = 0;
  const flush = () => {
    if (pending.length > 0) process.stdout.write(pending.join(""));
    pending = [];
    pendingChars = 0;
  };
  const out = (line: string) => {
    pending.push(line.endsWith("\n") ? line : `${line}\n`);
    pendingChars += line.length + 1;
    if (pendingChars >= chunkCharsMax) flush();
  };
  const err = (line: string) => {
    flush(); // keep stdout and stderr in order on a terminal
    process.stderr.write(line.endsWith("\n") ? line : `${line}\n`);
  };
  // `harmonydb dump … | head`: a reader that went away is the end of the output, not an error.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
  });
  process.exitCode = await mainAsync(process.argv.slice(2), { out, err });
  flush();
}
