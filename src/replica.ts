// A read replica (docs/replication.md): a database directory of its own that applies the primary's
// WAL stream in order, so that its revision r is the primary's r, and serves reads at what it applied.

import * as fs from "node:fs";
import * as path from "node:path";
import hyperid from "hyperid";
import { backoffMs, Bucket, parseArchiveUrl, type S3Settings } from "./archive/bucket.ts";
import { decodeLogObject, decodePosition, LOG_DIR, logListStart, parseLogName, POSITION_NAME } from "./archive/object.ts";
import { restoreWith, wholeSnapshot, writeDatabase, type RestoredState } from "./archive/restore.ts";
import type { Db } from "./db.ts";
import { ClosedError, CorruptionError, InvalidArgumentError, ReadOnlyError, TimeoutError } from "./errors.ts";
import { decodeOps, payloadOf, readFrame, viewOf } from "./format/decoder.ts";
import { FRAME_HEADER_BYTES, FRAME_LEN_OFFSET, frameBytes, snapshotName, TYPE_ENTRY } from "./format/constants.ts";
import { nodeIO } from "./io/file-io.ts";
import * as L from "./limits.ts";
import { openDb } from "./open.ts";
import type { OpenOptions } from "./options.ts";
import { readReplicaMarker, writeReplicaMarker } from "./replication.ts";
import { bumpRevisionDefault } from "./restore.ts";
import { verifySnapshot } from "./snapshot/file.ts";
import type { Stats } from "./types.ts";
import { concatBytes } from "./bytes.ts";

export interface ReplicaOptions extends Omit<OpenOptions, "archive"> {
  /**
   * The primary server, http(s)://host:port (the replica reads its GET /v1/wal and GET
   * /v1/snapshot), or its archive, s3://bucket/prefix (the replica polls it).
   */
  follow: string;
  /** The primary's bearer token (its --token), if it has one. */
  token?: string;
  /** Following an archive: endpoint and credentials (default: Bun's S3_* / AWS_* environment). */
  s3?: S3Settings;
  /** Following an archive: how often its position object is read (default 1,000 ms). */
  pollMs?: number;
}

export interface ReplicaStats {
  primary: string;
  /**
   * Whether a WAL stream from the primary is open now (Bun sends a streamed response's headers with
   * its first bytes: to an idle primary's stream, this turns true with the first write).
   */
  connected: boolean;
  /** The newest revision applied and durable here: reads are served at it. */
  appliedRev: number;
  /** ms since the last entry arrived (0 before any). */
  idleMs: number;
  /** Streams opened, and full resyncs from a snapshot (the position was gone from the primary's log). */
  connects: number;
  bootstraps: number;
  errors: number;
  lastError: string | null;
}

/** Entries handed to the replica's WAL and not yet durable, at most: then the stream waits. */
const applyAhead = 8192;
/** A replica of an archive reads its position object this often. */
export const archivePollMsDefault = 1000;

/** What a full resync writes: the state at revision `rev` of database `source`. */
interface Resync {
  rev: number;
  state: RestoredState;
  /** null: an empty database, whose stream from revision 1 names its source. */
  source: string | null;
}

/**
 * Opens (creating, and bootstrapping from the primary, if need be) the read replica in `dir`. Reads
 * are served from the first moment, at the revision applied so far; writes are refused (READ_ONLY).
 */
export async function openReplica(dir: string, o: ReplicaOptions): Promise<Replica> {
  const follow = primaryUrl(o.follow);
  const marker = readReplicaMarker(dir);
  const holdsDb = fs.existsSync(path.join(dir, "wal"));
  if (holdsDb && marker === null) throw new InvalidArgumentError(`${dir} holds a database that is not a replica: give a new directory`);
  if (!holdsDb) {
    fs.mkdirSync(dir, { recursive: true });
    writeReplicaMarker(dir, { follow });
  } else if (marker!.follow !== follow) writeReplicaMarker(dir, { follow }); // the primary moved: whose history it has is unknown now
  const { follow: _f, token: _t, s3, pollMs, ...openOptions } = o;
  if (pollMs !== undefined && !(Number.isSafeInteger(pollMs) && pollMs >= 1)) throw new InvalidArgumentError("pollMs must be an integer ≥ 1");
  const db = await openDb(dir, openOptions, {}, "replica");
  const archive = follow.startsWith("s3://") ? { bucket: new Bucket(follow, s3), pollMs: pollMs ?? archivePollMsDefault } : null;
  const source = marker !== null && marker.follow === follow ? (marker.source ?? null) : null;
  return new Replica(dir, follow, o.token ?? null, archive, openOptions, db, source);
}

/**
 * Promotes the (stopped) replica in `dir` to a database of its own (docs/replication.md,
 * "Promotion"): its state is written as a new database at its applied revision + `bumpRevision`,
 * so that it continues above any revision the old primary may have handed out.
 */
export async function promote(dir: string, o: { bumpRevision?: number } = {}): Promise<{ appliedRev: number; rev: number; keys: number; newDb: string }> {
  const bump = o.bumpRevision ?? bumpRevisionDefault;
  if (!(Number.isSafeInteger(bump) && bump >= 0)) throw new InvalidArgumentError("bumpRevision must be an integer ≥ 0");
  if (readReplicaMarker(dir) === null) throw new InvalidArgumentError(`${dir} is not a read replica`);
  // Its whole state in one snapshot file (taken now if the newest does not cover every revision).
  const db = await openDb(dir, { snapshotEveryBytes: 0 }, {}, "replica");
  let appliedRev: number;
  try {
    appliedRev = db.rev;
    if (db.stats().snapshot.rev !== appliedRev) await db.snapshot();
  } finally {
    await db.close();
  }
  const snapFile = path.join(dir, "snap", snapshotName(appliedRev));
  const snap = appliedRev === 0 ? null : verifySnapshot(snapFile, nodeIO.readFile(snapFile));
  const abs = path.resolve(dir);
  const part = `${abs}.part`;
  const old = `${abs}.old`;
  fs.rmSync(part, { recursive: true, force: true });
  const newDb = hyperid({ urlSafe: true })();
  const rev = appliedRev + bump;
  const keys = await writeDatabase(nodeIO, part, newDb, rev, { snapshot: snap && wholeSnapshot(snap), changes: new Map() });
  fs.renameSync(abs, old);
  fs.renameSync(part, abs);
  nodeIO.fsyncDir(path.dirname(abs));
  fs.rmSync(old, { recursive: true, force: true });
  return { appliedRev, rev, keys, newDb };
}

export class Replica {
  readonly primary: string;
  private closing = false;
  private readonly abort = new AbortController();
  private readonly follower: Promise<void>;
  private connected = false;
  private connects = 0;
  private bootstraps = 0;
  private errors = 0;
  private lastError: string | null = null;
  private lastEntryAt = 0;
  /** The newest replicate() promise, and how many are not settled. */
  private lastApply: Promise<unknown> = Promise.resolve();
  private applying = 0;
  private applyFailure: Error | null = null;
  private readonly waiters = new Set<{ rev: number; resolve: () => void }>();
  private wake: (() => void) | null = null;

  /** @internal use openReplica() */
  constructor(
    readonly dir: string,
    follow: string,
    private readonly token: string | null,
    /** Following an archive instead of a primary server. */
    private readonly archive: { bucket: Bucket; pollMs: number } | null,
    private readonly openOptions: OpenOptions,
    private db: Db,
    /** The database whose revisions these are (null: not known; then only an empty replica streams on). */
    private source: string | null,
  ) {
    this.primary = follow;
    this.follower = this.follow();
  }

  // ---- reads: the replica's own database, at the revision applied ----

  get rev(): number {
    return this.db.rev;
  }
  get syncedRev(): number {
    return this.db.syncedRev;
  }
  /** The replica's own database id (not its primary's). */
  get id(): string {
    return this.db.id;
  }
  get: Db["get"] = (key) => this.db.get(key);
  getEntry: Db["getEntry"] = (key) => this.db.getEntry(key);
  has: Db["has"] = (key) => this.db.has(key);
  range: Db["range"] = (opts) => this.db.range(opts);
  view: Db["view"] = () => this.db.view();
  watch: Db["watch"] = (opts) => this.db.watch(opts);
  snapshot: Db["snapshot"] = () => this.db.snapshot();

  stats(): Stats & { replica: ReplicaStats } {
    return { ...this.db.stats(), replica: this.replicaStats() };
  }

  replicaStats(): ReplicaStats {
    return {
      primary: this.primary,
      connected: this.connected,
      appliedRev: this.db.rev,
      idleMs: this.lastEntryAt === 0 ? 0 : Date.now() - this.lastEntryAt,
      connects: this.connects,
      bootstraps: this.bootstraps,
      errors: this.errors,
      lastError: this.lastError,
    };
  }

  // ---- writes go to the primary ----

  put: Db["put"] = () => this.readOnly();
  delete: Db["delete"] = () => this.readOnly();
  batch: Db["batch"] = () => this.readOnly();

  private readOnly(): Promise<never> {
    const where = this.archive ? `its primary (it follows the archive ${this.primary})` : `the primary, ${this.primary}`;
    return Promise.reject(new ReadOnlyError(`this is a read replica: write to ${where}`, this.primary));
  }

  /** Resolves once revision `rev` is applied here (reads then see it); rejects after `timeoutMs`. */
  waitForRev(rev: number, timeoutMs: number): Promise<void> {
    if (this.db.rev >= rev) return Promise.resolve();
    if (this.closing) return Promise.reject(new ClosedError());
    return new Promise((resolve, reject) => {
      const w = {
        rev,
        resolve: () => {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new TimeoutError(`revision ${rev} was not applied in ${timeoutMs} ms (applied: ${this.db.rev})`, rev, this.db.rev));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      this.abort.abort();
      this.wake?.();
    }
    await this.follower;
    await this.db.close();
    for (const w of [...this.waiters]) w.resolve(); // (they read the closed database next, and hear CLOSED)
  }

  // ---- following ----

  private async follow(): Promise<void> {
    let failures = 0;
    while (!this.closing) {
      try {
        // A failed apply ended the last round (reported): start again from what is durable here.
        await this.lastApply.catch(() => {});
        this.applyFailure = null;
        if (this.archive) await this.pollArchive(this.archive.bucket, this.archive.pollMs);
        else await this.streamOnce(); // (returns only after a resync: then it streams again at once)
        failures = 0;
      } catch (err) {
        if (this.closing) break;
        this.errors++;
        this.lastError = `${new Date().toISOString()} ${(err as Error).message ?? String(err)}`;
        this.connected = false;
        await this.pause(backoffMs(failures++));
      }
    }
    await this.lastApply.catch(() => {});
  }

  private headers(): Record<string, string> {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  /** One WAL stream, from the revision after the newest applied, until it ends or fails. */
  private async streamOnce(): Promise<void> {
    const from = this.db.rev + 1;
    const res = await fetch(`${this.primary}/v1/wal?from=${from}`, { headers: this.headers(), signal: this.abort.signal });
    if (res.status === 410) {
      await res.body?.cancel();
      await this.bootstrap();
      return;
    }
    if (res.status !== 200) throw new Error(`GET ${this.primary}/v1/wal?from=${from}: ${res.status} ${(await res.text()).slice(0, 500)}`);
    // The stream's database must be the one these revisions are of; an empty replica takes it.
    const source = res.headers.get("harmony-db");
    if (source !== null && source !== this.source) {
      if (this.db.rev > 0) {
        await res.body?.cancel();
        await this.bootstrap();
        return;
      }
      this.source = source;
      writeReplicaMarker(this.dir, { follow: this.primary, source });
    }
    this.connected = true;
    this.connects++;
    const reader = res.body!.getReader();
    try {
      await this.consume(reader, from);
    } finally {
      reader.cancel().catch(() => {}); // (the connection is not left open after an error)
    }
  }

  /** Applies the frames of a WAL stream, which starts at revision `from`, until it ends or fails. */
  private async consume(reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }, from: number): Promise<void> {
    let buf: Uint8Array = new Uint8Array(0);
    let next = from;
    for (;;) {
      const r = await reader.read();
      if (r.done || !r.value) throw new Error("the primary ended the WAL stream");
      buf = buf.length === 0 ? r.value : concatBytes([buf, r.value]);
      const view = viewOf(buf);
      let at = 0;
      while (buf.length - at >= FRAME_HEADER_BYTES) {
        const size = frameBytes(view.getUint32(at + FRAME_LEN_OFFSET, true));
        if (size > L.recordBytesMax + 2 * FRAME_HEADER_BYTES) throw new CorruptionError(`replication stream: a frame of ${size} bytes at revision ${next}`, this.primary, 0, next);
        if (buf.length - at < size) break;
        const f = readFrame(buf, at, view);
        if (f.kind !== "frame" || f.type !== TYPE_ENTRY || f.rev !== next) {
          const what = f.kind !== "frame" ? f.kind : f.type !== TYPE_ENTRY ? `a frame of type ${f.type}` : `revision ${f.rev}`;
          throw new CorruptionError(`replication stream: ${what} where entry ${next} was expected`, this.primary, 0, next);
        }
        this.apply(next, decodeOps(payloadOf(buf, f))); // (decodeOps copies the values out)
        next++;
        at = f.next;
      }
      buf = buf.subarray(at);
      this.lastEntryAt = Date.now();
      if (this.applyFailure) throw this.applyFailure;
      if (this.applying >= applyAhead) await this.lastApply;
    }
  }

  private apply(rev: number, ops: ReturnType<typeof decodeOps>): void {
    this.applying++;
    const p = this.db.replicate(rev, ops);
    this.lastApply = p;
    p.then(
      () => {
        this.applying--;
        this.wakeWaiters();
      },
      (err: Error) => {
        this.applying--;
        this.applyFailure ??= err;
      },
    );
  }

  /**
   * One look at the archive: its position (a GET), and when it has moved on, the log objects after
   * what is applied here (a LIST from there, and a GET each), verified whole and applied in order.
   * A revision no object holds any more (the archive started again from a snapshot, or retention
   * deleted it) means a full resync from the archive.
   */
  private async pollArchive(bucket: Bucket, pollMs: number): Promise<void> {
    if (this.db.rev === 0) return this.bootstrap(); // (restore's plan: the newest snapshot and the log after it)
    const text = await bucket.get(POSITION_NAME);
    if (text === null) throw new Error(`${this.primary} holds no archive (no position object)`);
    const pos = decodePosition(new TextDecoder().decode(text), bucket.key(POSITION_NAME));
    // Another database's archive now (a restore's, say), or one whose history is not known to be
    // this replica's: its revisions are not these. A full resync.
    if (pos.db !== this.source) return this.bootstrap();
    this.connected = true;
    let next = this.db.rev + 1;
    if (pos.rev < next) return this.pause(pollMs);
    let whole = false;
    let logs = await this.listLogs(bucket, next - 1);
    while (next <= pos.rev && !this.closing) {
      let l = null;
      for (const x of logs) if (x.firstRev <= next && x.lastRev >= next && (!l || x.lastRev > l.lastRev)) l = x;
      if (!l) {
        if (whole) return this.bootstrap();
        logs = await this.listLogs(bucket, null); // (an object overlapping from before: rare)
        whole = true;
        continue;
      }
      const bytes = await bucket.get(l.name);
      if (bytes === null) throw new Error(`${bucket.key(l.name)} listed, then gone`);
      const log = decodeLogObject(bucket.key(l.name), bytes, this.source);
      for (const e of log.entries) {
        if (e.rev < next) continue; // an overlap with what is applied
        this.apply(e.rev, decodeOps(log.bytes.subarray(e.start, e.start + e.len)));
        next = e.rev + 1;
      }
      this.lastEntryAt = Date.now();
      if (this.applyFailure) throw this.applyFailure;
      if (this.applying >= applyAhead) await this.lastApply;
    }
  }

  /** Log objects whose first revision is at least `from` (null: all of them). */
  private async listLogs(bucket: Bucket, from: number | null): Promise<{ name: string; firstRev: number; lastRev: number }[]> {
    const listed = await bucket.list(LOG_DIR, from === null ? undefined : logListStart(from));
    return listed.flatMap((o) => {
      const r = parseLogName(o.name);
      return r ? [{ name: o.name, ...r }] : [];
    });
  }

  /** The primary's newest snapshot, verified whole. */
  private async primarySnapshot(): Promise<Resync> {
    const res = await fetch(`${this.primary}/v1/snapshot`, { headers: this.headers(), signal: this.abort.signal });
    if (res.status === 404) {
      // No snapshot yet: the primary's log starts at revision 1, and so does the replica, empty.
      await res.body?.cancel();
      return { rev: 0, state: { snapshot: null, changes: new Map() }, source: null };
    }
    if (res.status !== 200) throw new Error(`GET ${this.primary}/v1/snapshot: ${res.status} ${(await res.text()).slice(0, 500)}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const snap = verifySnapshot(`${this.primary}/v1/snapshot`, bytes);
    return { rev: snap.header.rev, state: { snapshot: wholeSnapshot(snap), changes: new Map() }, source: snap.header.db };
  }

  /**
   * A full resync: the primary's newest snapshot (verified whole) or the archive's newest state (as
   * restore reads it, written while its snapshot downloads; with no bump: the replica keeps the
   * primary's revisions) becomes this directory's database, written beside it, then renamed into
   * place; following goes on from its revision + 1.
   */
  private async bootstrap(): Promise<void> {
    const dir = path.resolve(this.dir);
    const part = `${dir}.part`;
    const old = `${dir}.old`;
    const writePart = async (r: Resync): Promise<Resync> => {
      await this.lastApply.catch(() => {});
      this.applyFailure = null;
      fs.rmSync(part, { recursive: true, force: true });
      fs.rmSync(old, { recursive: true, force: true });
      if (r.rev > 0) await writeDatabase(nodeIO, part, hyperid({ urlSafe: true })(), r.rev, r.state);
      else fs.mkdirSync(part, { recursive: true }); // (opened below as a new, empty database)
      writeReplicaMarker(part, { follow: this.primary, ...(r.source !== null ? { source: r.source } : {}) });
      return r;
    };
    const bucket = this.archive?.bucket;
    const r = bucket
      ? (await restoreWith({ url: this.primary, s3: bucket.settings, timeoutMs: bucket.timeoutMs }, (plan, state) => writePart({ rev: plan.targetRev, state, source: plan.db }))).result
      : await writePart(await this.primarySnapshot());
    await this.db.close();
    fs.renameSync(dir, old);
    fs.renameSync(part, dir);
    nodeIO.fsyncDir(path.dirname(dir));
    fs.rmSync(old, { recursive: true, force: true });
    this.db = await openDb(dir, this.openOptions, {}, "replica");
    this.source = r.source;
    this.bootstraps++;
    this.wakeWaiters();
  }

  /** Resolves the waitForRev() callers whose revision is applied. */
  private wakeWaiters(): void {
    if (this.waiters.size === 0) return;
    const applied = this.db.rev;
    for (const w of [...this.waiters]) if (w.rev <= applied) w.resolve();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }
}

function primaryUrl(url: string): string {
  if (url.startsWith("s3://")) {
    parseArchiveUrl(url); // (throws ArchiveError on a malformed one)
    return url.replace(/\/+$/, "");
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InvalidArgumentError(`follow must be the primary's URL, http(s)://host:port, not ${JSON.stringify(url)}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new InvalidArgumentError(`follow must be http(s)://host:port, not ${JSON.stringify(url)}`);
  return u.origin;
}
