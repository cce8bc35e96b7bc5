// The primary's side of read replicas (docs/replication.md): the WAL from a revision on, read from
// the segment files, and the newest snapshot file; and the REPLICA file that marks a replica's directory.

import * as fs from "node:fs";
import * as path from "node:path";
import type { Db } from "./db.ts";

/** What the log is read from: a database or a replica (whose log holds the same revisions). */
type LogOwner = Pick<Db, "dir" | "rev" | "syncedRev">;
import { snapshotName } from "./format/constants.ts";
import { nodeIO } from "./io/file-io.ts";
import { listSnapshots } from "./snapshot/file.ts";
import { WalTail } from "./wal/tail.ts";

/** The file in a replica's directory naming its primary; open() refuses a directory holding it. */
export const REPLICA_FILE = "REPLICA";

export interface ReplicaMarker {
  follow: string;
  /** The database the replica's revisions are those of (its primary's id, or its archive's), once known. */
  source?: string;
}

export function readReplicaMarker(dir: string): ReplicaMarker | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, REPLICA_FILE), "utf8")) as ReplicaMarker;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    return { follow: "(unreadable REPLICA file)" };
  }
}

/** Writes the marker durably (the file, then its directory). */
export function writeReplicaMarker(dir: string, m: ReplicaMarker): void {
  const file = path.join(dir, REPLICA_FILE);
  const fd = fs.openSync(file, "w");
  try {
    fs.writeSync(fd, JSON.stringify(m));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  nodeIO.fsyncDir(dir);
}

/** Where a WAL stream from `from` starts: the log holds it, a snapshot covered it, or it is past the end. */
export type WalStart = { kind: "ok"; source: WalSource } | { kind: "gone"; snapshotRev: number } | { kind: "ahead"; rev: number };

/** The durable entries of `db`'s log from a revision on, as frames byte for byte. */
export class WalSource {
  constructor(
    private readonly db: LogOwner,
    private readonly tail: WalTail,
  ) {}

  /** The revision of the next frame read() hands on. */
  get next(): number {
    return this.tail.next;
  }

  /** Frames of the durable entries not yet read, at most about `maxBytes` of them (none: nothing new). */
  read(maxBytes: number): Uint8Array[] {
    const durable = this.db.syncedRev; // (on disk: a primary that loses power keeps what a replica has)
    if (durable < this.tail.next) return [];
    return this.tail.read(durable, maxBytes).frames;
  }
}

export function walFrom(db: LogOwner, from: number): WalStart {
  if (from > db.rev + 1) return { kind: "ahead", rev: db.rev };
  const tail = new WalTail(nodeIO, path.join(db.dir, "wal"));
  if (!tail.seek(from)) return { kind: "gone", snapshotRev: newestSnapshot(db)?.rev ?? 0 };
  return { kind: "ok", source: new WalSource(db, tail) };
}

/** The newest snapshot file of `db`, or null. */
export function newestSnapshot(db: LogOwner): { rev: number; file: string } | null {
  const snapDir = path.join(db.dir, "snap");
  const snaps = listSnapshots(nodeIO, snapDir, false);
  const s = snaps[snaps.length - 1];
  return s ? { rev: s.rev, file: path.join(snapDir, snapshotName(s.rev)) } : null;
}
