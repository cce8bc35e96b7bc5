// KV Connect (denokv proto/kv-connect.md, versions 2 and 3): the metadata exchange and the data
// path (snapshot_read, atomic_write, watch) over the store, independent of the transport
// (front.ts). Refusals are 4xx with denokv's plain-text messages: a 5xx means "try again" to the
// clients, which retry it for ever.

import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timingSafeEqual } from "node:crypto";
import { HarmonyError, type Store } from "../../index.ts";
import * as L from "../../kv/index.ts";
import { ENCODING, KeysWatch, decodeKey, engineKey, keyBytes, liveStored, type Check, type Kv, type Mutation, type Stored, type WatchedEntry } from "../../kv/index.ts";
import * as pb from "./datapath_pb.ts";

/** A request as the transport hands it over: lower-case header names, the whole body. */
export interface KvRequest {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  body: Uint8Array;
  /** Whether the client connected from this machine (no token configured: only those may connect). */
  loopback: boolean;
}

export type KvResponse =
  | { status: number; type: string; body: Uint8Array | string }
  /** A watch: frames until the client goes away (close()) or the store closes. */
  | { status: 200; type: string; frames: AsyncIterable<Uint8Array>; close: () => Promise<void> };

export interface KvConnectOptions {
  /** The store, once open (null while the server replays: 503, which the clients retry). */
  store: () => Store | null;
  /** Deno KV over the store, for writes (null on a read replica: writes are refused). */
  kv: () => Kv | null;
  /** --token, or null: then loopback clients may use any token, others none. */
  token: string | null;
  /** How often a watch sends a ping frame (denokv: 5 s). */
  pingMs?: number;
  /** Told of failures that are not the client's (answered 503, which the clients retry). */
  onError?: (err: unknown) => void;
}

/** The database URL's path, and the data path's endpoint under it. */
export const KV_PATH = "/kv";
const DATA_PATH = "/kv/v2";
const PROTOBUF = "application/x-protobuf";
const TEXT = "text/plain; charset=utf-8";
const PING_MS = 5000;

/** A refusal, with denokv's status and text. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const refuse = {
  notFound: () => new Refusal(404, "Resource not found."),
  malformedAuth: () => new Refusal(401, "Malformed authorization header."),
  badToken: () => new Refusal(401, "Invalid access token."),
  badDatabaseId: () => new Refusal(400, "Invalid database id."),
  badVersion: () => new Refusal(400, "Expected protocol version 2."),
  keyTooLong: () => new Refusal(400, "A key exceeds the key size limit."),
  valueTooLong: () => new Refusal(400, "A value exceeds the value size limit."),
  readTooLarge: () => new Refusal(400, "The total number of entries requested across read ranges in the read request is too large."),
  writeTooLarge: () => new Refusal(400, "The total size of the atomic write is too large."),
  tooManyRanges: () => new Refusal(400, "Too many read ranges requested in one read request."),
  tooManyWatched: () => new Refusal(400, "Too many keys watched in a single watch request."),
  tooManyChecks: () => new Refusal(400, "Too many checks included in atomic write."),
  tooManyMutations: () => new Refusal(400, "Too many mutations / enqueues included in atomic write."),
  badLimit: () => new Refusal(400, "The read range limit of the snapshot read request is invalid."),
  badVersionstamp: () => new Refusal(400, "Invalid versionstamp."),
  badMutation: () => new Refusal(400, "Invalid mutation kind or arguments."),
  badExpireAt: () => new Refusal(400, "Invalid mutation expire at."),
  minVersion: () => new Refusal(400, "The server requires at least protocol version 2. Use Deno 1.38.0 or newer."),
  noVersion: () => new Refusal(400, "The server could not negotiate a protocol version. The server requires protocol version 2 or 3."),
  readOnly: () => new Refusal(400, "This database is read only."),
  queues: () => new Refusal(400, "Queues are not supported over KV Connect (docs/deno-kv.md §7)."),
  unavailable: () => new Refusal(503, "The server is temporarially unavailable, try again later."),
  unknownEncoding: (e: number) => new Refusal(400, `The value encoding ${e} is unknown.`),
  badProto: (m: string) => new Refusal(400, `Request protobuf is invalid: ${m}.`),
};

export class KvConnect {
  constructor(private readonly o: KvConnectOptions) {}

  async handle(req: KvRequest): Promise<KvResponse> {
    try {
      if (req.method !== "POST") throw refuse.notFound();
      if (req.path === KV_PATH) return this.metadata(req);
      if (!req.path.startsWith(DATA_PATH + "/")) throw refuse.notFound();
      this.authorizeDataPath(req);
      const store = this.o.store();
      if (store === null) throw refuse.unavailable();
      switch (req.path.slice(DATA_PATH.length + 1)) {
        case "snapshot_read":
          return proto(pb.SnapshotReadOutputSchema, snapshotRead(store, decode(pb.SnapshotReadSchema, req.body)));
        case "atomic_write":
          return proto(pb.AtomicWriteOutputSchema, await this.atomicWrite(decode(pb.AtomicWriteSchema, req.body)));
        case "watch":
          return this.watch(store, decode(pb.WatchSchema, req.body));
        default:
          throw refuse.notFound();
      }
    } catch (err) {
      if (err instanceof Refusal) return { status: err.status, type: TEXT, body: err.message };
      // The engine's refusals of bad input (a sum on a value that is not a KvU64, ...) are the client's.
      if (err instanceof HarmonyError && /^(INVALID_|KEY_TOO_LARGE|VALUE_TOO_LARGE)/.test(err.code)) {
        return { status: 400, type: TEXT, body: err.message.replace(/^harmonydb: /, "") };
      }
      if (err instanceof HarmonyError && err.code === "READ_ONLY") return { status: 400, type: TEXT, body: refuse.readOnly().message };
      this.o.onError?.(err);
      return { status: 503, type: TEXT, body: refuse.unavailable().message };
    }
  }

  /** POST /kv: the protocol version, the database's id, the data path's endpoint. */
  private metadata(req: KvRequest): KvResponse {
    let versions: unknown;
    try {
      versions = (JSON.parse(new TextDecoder().decode(req.body)) as { supportedVersions?: unknown }).supportedVersions;
    } catch {
      throw refuse.minVersion();
    }
    if (!Array.isArray(versions)) throw refuse.minVersion();
    const version = versions.includes(3) ? 3 : versions.includes(2) ? 2 : 0;
    if (version === 0) throw refuse.noVersion();
    const token = this.authorize(req);
    const store = this.o.store();
    if (store === null) throw refuse.unavailable();
    const body = {
      version,
      databaseId: databaseUuid(store.id),
      endpoints: [{ url: DATA_PATH, consistency: "strong" }],
      token,
      expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    };
    return { status: 200, type: "application/json", body: JSON.stringify(body) };
  }

  /** The bearer token, if the client may use it. */
  private authorize(req: KvRequest): string {
    const m = /^(\S+) (\S+)$/.exec(req.headers.authorization ?? "");
    if (m === null) throw refuse.malformedAuth();
    if (m[1]!.toLowerCase() !== "bearer") throw refuse.badToken();
    const ok = this.o.token === null ? req.loopback : sameToken(m[2]!, this.o.token);
    if (!ok) throw refuse.badToken();
    return m[2]!;
  }

  private authorizeDataPath(req: KvRequest): void {
    const v = req.headers["x-denokv-version"];
    if (v !== "2" && v !== "3") throw refuse.badVersion();
    this.authorize(req);
    const store = this.o.store();
    if (store !== null && req.headers["x-denokv-database-id"] !== databaseUuid(store.id)) throw refuse.badDatabaseId();
  }

  private async atomicWrite(w: pb.AtomicWrite): Promise<pb.AtomicWriteOutput> {
    if (w.checks.length > L.kvChecksMax) throw refuse.tooManyChecks();
    if (w.mutations.length + w.enqueues.length > L.kvMutationsMax) throw refuse.tooManyMutations();
    if (w.enqueues.length > 0) throw refuse.queues();
    const checks = w.checks.map(compileCheck);
    const mutations = w.mutations.map(compileMutation);
    const bytes = w.checks.reduce((n, c) => n + c.key.length, 0) + w.mutations.reduce((n, m) => n + m.key.length + (m.value?.data.length ?? 0), 0);
    if (bytes > L.kvCommitBytesMax) throw refuse.writeTooLarge();
    const kv = this.o.kv();
    if (kv === null) throw refuse.readOnly();
    const r = await kv.commitCompiled(checks, mutations);
    if (!r.ok) return create(pb.AtomicWriteOutputSchema, { status: pb.AtomicWriteStatus.AW_CHECK_FAILURE, failedChecks: r.failed });
    return create(pb.AtomicWriteOutputSchema, { status: pb.AtomicWriteStatus.AW_SUCCESS, versionstamp: versionstampBytes(r.rev) });
  }

  /** A stream of frames: u32 LE length, then a WatchOutput; a zero-length frame is a ping. */
  private watch(store: Store, w: pb.Watch): KvResponse {
    if (w.keys.length > L.kvWatchKeysMax) throw refuse.tooManyWatched();
    const keys = w.keys.map((k) => readKey(k.key));
    const watch = new KeysWatch(store, keys.map(engineKey));
    const pingMs = this.o.pingMs ?? PING_MS;
    let closed = false;
    async function* frames(): AsyncGenerator<Uint8Array> {
      let last: (number | undefined)[] | null = null;
      let next = watch.next();
      while (!closed) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const ping = new Promise<"ping">((r) => (timer = setTimeout(() => r("ping"), pingMs)));
        const got = await Promise.race([next, ping]);
        clearTimeout(timer);
        if (got === "ping") {
          yield frame(new Uint8Array(0));
          continue;
        }
        if (got === null) return; // the store closed
        const out = create(pb.WatchOutputSchema, {
          status: pb.SnapshotReadStatus.SR_SUCCESS,
          keys: got.map((e, i) => {
            const changed = last === null || e?.rev !== last[i];
            return create(pb.WatchKeyOutputSchema, { changed, entryIfChanged: changed && e !== undefined ? kvEntry(keys[i]!, e) : undefined });
          }),
        });
        last = got.map((e) => e?.rev);
        yield frame(toBinary(pb.WatchOutputSchema, out));
        next = watch.next();
      }
    }
    return {
      status: 200,
      type: "application/octet-stream",
      frames: frames(),
      close: async () => {
        closed = true;
        await watch.close();
      },
    };
  }
}

/** Up to 10 ranges, read at one revision; expired entries are left out. */
function snapshotRead(store: Store, r: pb.SnapshotRead): pb.SnapshotReadOutput {
  if (r.ranges.length > L.kvRangesMax) throw refuse.tooManyRanges();
  let total = 0;
  for (const range of r.ranges) {
    if (range.limit <= 0) throw refuse.badLimit();
    total += range.limit;
    readKey(range.start);
    readKey(range.end);
  }
  if (total > L.kvEntriesMax) throw refuse.readTooLarge();
  const view = store.view();
  const now = Date.now();
  const ranges = r.ranges.map((range) => {
    const values: pb.KvEntry[] = [];
    for (const item of view.range({ gte: engineKey(range.start), lt: engineKey(range.end), reverse: range.reverse })) {
      const live = liveStored(item, now);
      if (live === undefined) continue;
      values.push(kvEntry(keyBytes(item.key), live));
      if (values.length === range.limit) break;
    }
    return create(pb.ReadRangeOutputSchema, { values });
  });
  return create(pb.SnapshotReadOutputSchema, { ranges, readIsStronglyConsistent: true, status: pb.SnapshotReadStatus.SR_SUCCESS });
}

function compileCheck(c: pb.Check): Check {
  const key = engineKey(writeKey(c.key));
  if (c.versionstamp.length === 0) return { key, rev: 0 };
  if (c.versionstamp.length !== 10) throw refuse.badVersionstamp();
  const v = new DataView(c.versionstamp.buffer, c.versionstamp.byteOffset, 10);
  const rev = v.getBigUint64(0);
  // Ours end in two zero bytes and hold a safe integer ≥ 1: any other versionstamp matches nothing.
  const ok = v.getUint16(8) === 0 && rev > 0n && rev <= BigInt(Number.MAX_SAFE_INTEGER);
  return { key, rev: ok ? Number(rev) : -1 };
}

function compileMutation(m: pb.Mutation): Mutation {
  const T = pb.MutationType;
  const key = engineKey(writeKey(m.key, m.mutationType === T.M_SET_SUFFIX_VERSIONSTAMPED_KEY));
  const expireAt = Number(m.expireAtMs);
  if (!(Number.isSafeInteger(expireAt) && expireAt >= 0)) throw refuse.badExpireAt();
  switch (m.mutationType) {
    case T.M_SET:
    case T.M_SET_SUFFIX_VERSIONSTAMPED_KEY:
      return { kind: "set", key, stored: storedOf(m.value, expireAt), suffixed: m.mutationType === T.M_SET_SUFFIX_VERSIONSTAMPED_KEY };
    case T.M_DELETE:
      return { kind: "delete", key };
    case T.M_SUM:
    case T.M_MIN:
    case T.M_MAX: {
      // On LE64 only: sums of V8 numbers (sum_min, sum_max, sum_clamp) are not served.
      const s = storedOf(m.value, 0);
      if (s.encoding !== ENCODING.le64 || s.data.length !== 8 || m.sumMin.length > 0 || m.sumMax.length > 0 || m.sumClamp) throw refuse.badMutation();
      const operand = new DataView(s.data.buffer, s.data.byteOffset, 8).getBigUint64(0, true);
      return { kind: m.mutationType === T.M_SUM ? "sum" : m.mutationType === T.M_MIN ? "min" : "max", key, operand };
    }
    default:
      throw refuse.badMutation();
  }
}

function storedOf(v: pb.KvValue | undefined, expireAt: number): Stored {
  if (v === undefined) throw refuse.badMutation();
  if (v.encoding !== ENCODING.v8 && v.encoding !== ENCODING.le64 && v.encoding !== ENCODING.bytes) throw refuse.unknownEncoding(v.encoding);
  if (v.data.length > L.kvValueBytesMax) throw refuse.valueTooLong();
  // What would be stored must read back: an LE64 is 8 bytes (a V8 value is checked by whoever reads it).
  if (v.encoding === ENCODING.le64 && v.data.length !== 8) throw refuse.badMutation();
  return { encoding: v.encoding, expireAt, data: v.data.slice() };
}

function writeKey(key: Uint8Array, emptyOk = false): Uint8Array {
  if (key.length > L.kvKeyBytesMax) throw refuse.keyTooLong();
  if (key.length === 0 && !emptyOk) throw refuse.keyTooLong();
  try {
    decodeKey(key); // a key openKv and the clients can read back as a tuple
  } catch {
    throw refuse.badMutation();
  }
  return key;
}

function readKey(key: Uint8Array): Uint8Array {
  if (key.length > L.kvReadKeyBytesMax) throw refuse.keyTooLong();
  return key;
}

function kvEntry(key: Uint8Array, e: WatchedEntry): pb.KvEntry {
  return create(pb.KvEntrySchema, { key, value: e.stored.data, encoding: e.stored.encoding, versionstamp: versionstampBytes(e.rev) });
}

function versionstampBytes(rev: number): Uint8Array {
  const out = new Uint8Array(10);
  new DataView(out.buffer).setBigUint64(0, BigInt(rev));
  return out;
}

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length, true);
  out.set(payload, 4);
  return out;
}

function decode<T extends DescMessage>(schema: T, body: Uint8Array): MessageShape<T> {
  try {
    return fromBinary(schema, body);
  } catch (err) {
    throw refuse.badProto((err as Error).message);
  }
}

function proto<T extends DescMessage>(schema: T, msg: MessageShape<T>): KvResponse {
  return { status: 200, type: PROTOBUF, body: toBinary(schema, msg) };
}

const uuids = new Map<string, string>();

/** The database's id as the UUID KV Connect wants: stable, derived from the store's own id (computed once). */
function databaseUuid(id: string): string {
  let u = uuids.get(id);
  if (u === undefined) uuids.set(id, (u = uuidOf(id)));
  return u;
}

function uuidOf(id: string): string {
  const h = new Bun.CryptoHasher("sha1").update(`harmonydb:${id}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50; // version 5 (name-based, SHA-1)
  h[8] = (h[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const x = Buffer.from(h.subarray(0, 16)).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
