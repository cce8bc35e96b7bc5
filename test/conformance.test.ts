// One suite, every front: the same cases against the embedded API and the HTTP handler, each also after a reopen.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { HarmonyError, open, type BatchOp, type Db } from "../src/index.ts";
import { createHandler, type ServerState } from "../src/server/http.ts";

type Fail = { ok: false; code: string; key?: string };
type Result<T> = ({ ok: true } & T) | Fail;
interface Item {
  key: string;
  rev: number;
  value?: unknown;
}
interface ListQuery {
  prefix?: string;
  start?: string;
  end?: string;
  limit?: number;
  reverse?: boolean;
  keysOnly?: boolean;
  cursor?: string;
}
interface Listing {
  items: Item[];
  more: boolean;
  next?: string;
}

/** What every front can do, in the front's own terms, reduced to plain results. */
interface Front {
  put(key: string, value: unknown, ifRev?: number): Promise<Result<{ rev: number }>>;
  get(key: string): Promise<{ value: unknown; rev: number } | null>;
  del(key: string, ifRev?: number): Promise<Result<{ rev: number; deleted: boolean }>>;
  batch(ops: BatchOp[]): Promise<Result<{ rev: number }>>;
  list(q: ListQuery): Promise<Listing>;
  /** The newest durable revision, read from the engine. */
  rev(): number;
  /** Between writing and checking: nothing, or close and open the database again. */
  settle(): Promise<void>;
}

async function caught<T>(p: Promise<T>): Promise<Result<T extends object ? T : never> | Fail> {
  try {
    return { ok: true, ...(await p) } as Result<T extends object ? T : never>;
  } catch (err) {
    if (!(err instanceof HarmonyError)) throw err;
    const key = (err as { key?: unknown }).key;
    return { ok: false, code: err.code, ...(typeof key === "string" ? { key } : {}) };
  }
}

function embedded(h: { db: Db }): Omit<Front, "settle"> {
  return {
    put: async (key, value, ifRev) => {
      const r = await caught(h.db.put(key, value, ifRev === undefined ? {} : { ifRev }).then((rev) => ({ rev })));
      return r;
    },
    get: async (key) => {
      const e = h.db.getEntry(key);
      return e ? { value: e.value, rev: e.rev } : null;
    },
    del: (key, ifRev) => caught(h.db.delete(key, ifRev === undefined ? {} : { ifRev })),
    batch: (ops) => caught(h.db.batch(ops).then((rev) => ({ rev }))),
    list: async (q) => {
      // The embedded equivalent of a page: the cursor is an exclusive bound in the listing's direction.
      const limit = q.limit ?? 1000;
      const o: Parameters<Db["range"]>[0] = { reverse: q.reverse === true };
      if (q.prefix !== undefined) o.prefix = q.prefix;
      if (q.start !== undefined) o.gte = q.start;
      if (q.end !== undefined) o.lt = q.end;
      if (q.cursor !== undefined) q.reverse ? (o.lt = q.cursor) : (o.gt = q.cursor);
      const all = [...h.db.range({ ...o, limit: limit + 1 })];
      const items = all.slice(0, limit).map((e) => (q.keysOnly ? { key: e.key, rev: e.rev } : e));
      const more = all.length > limit;
      return { items, more, ...(more ? { next: items[items.length - 1]!.key } : {}) };
    },
    rev: () => h.db.rev,
  };
}

/** HTTP status each error code must come with on the single-key routes (a batch conflict is 409). */
const STATUS: Record<string, number> = { CONFLICT: 412, INVALID_KEY: 400, KEY_TOO_LARGE: 413, VALUE_TOO_LARGE: 413, INVALID_VALUE: 400 };

function http(h: { db: Db; state: ServerState }): Omit<Front, "settle"> {
  const handler = createHandler(h.state);
  const call = (method: string, p: string, init: RequestInit = {}) => handler(new Request(`http://x${p}`, { method, ...init }));
  const url = (key: string) => `/v1/kv/${encodeURIComponent(key)}`;
  const cond = (ifRev?: number): Record<string, string> =>
    ifRev === undefined ? {} : ifRev === 0 ? { "if-none-match": "*" } : { "if-match": `"${ifRev}"` };
  const fail = async (res: Response, status = STATUS): Promise<Fail> => {
    const body = (await res.json()) as { error: { code: string; key?: string } };
    expect(res.status).toBe(status[body.error.code] ?? -1);
    return { ok: false, code: body.error.code, ...(body.error.key !== undefined ? { key: body.error.key } : {}) };
  };
  return {
    put: async (key, value, ifRev) => {
      const bytes = value instanceof Uint8Array;
      const res = await call("PUT", url(key), {
        body: bytes ? value : JSON.stringify(value),
        headers: { "content-type": bytes ? "application/octet-stream" : "application/json", ...cond(ifRev) },
      });
      return res.status === 200 ? { ok: true, ...((await res.json()) as { rev: number }) } : fail(res);
    },
    get: async (key) => {
      const res = await call("GET", url(key));
      if (res.status === 404) return null;
      expect(res.status).toBe(200);
      const rev = Number(/^"(\d+)"$/.exec(res.headers.get("etag") ?? "")![1]);
      const isBytes = res.headers.get("content-type") === "application/octet-stream";
      return { value: isBytes ? new Uint8Array(await res.arrayBuffer()) : await res.json(), rev };
    },
    del: async (key, ifRev) => {
      const res = await call("DELETE", url(key), { headers: cond(ifRev) });
      return res.status === 200 ? { ok: true, ...((await res.json()) as { rev: number; deleted: boolean }) } : fail(res);
    },
    batch: async (ops) => {
      const body = {
        ops: ops.map((o) => {
          const base = { op: o.type, key: o.key, ...(o.ifRev !== undefined ? { ifRev: o.ifRev } : {}) };
          if (o.type === "delete") return base;
          return o.value instanceof Uint8Array ? { ...base, valueBase64: Buffer.from(o.value).toString("base64") } : { ...base, value: o.value };
        }),
      };
      const res = await call("POST", "/v1/batch", { body: JSON.stringify(body), headers: { "content-type": "application/json" } });
      return res.status === 200 ? { ok: true, ...((await res.json()) as { rev: number }) } : fail(res, { ...STATUS, CONFLICT: 409 });
    },
    list: async (q) => {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries({ prefix: q.prefix, start: q.start, end: q.end, cursor: q.cursor })) if (v !== undefined) params.set(k, v);
      if (q.limit !== undefined) params.set("limit", String(q.limit));
      if (q.reverse) params.set("reverse", "true");
      if (q.keysOnly) params.set("keys_only", "1");
      const res = await call("GET", `/v1/kv?${params}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { items: (Item & { valueBase64?: string })[]; more: boolean; next?: string };
      const items = body.items.map(({ valueBase64, ...rest }) =>
        valueBase64 === undefined ? rest : { ...rest, value: new Uint8Array(Buffer.from(valueBase64, "base64")) },
      );
      return { ...body, items };
    },
    rev: () => h.db.rev,
  };
}

const FRONTS = [
  { name: "embedded", kind: embedded, reopen: false },
  { name: "HTTP handler", kind: http, reopen: false },
  { name: "embedded, after a reopen", kind: embedded, reopen: true },
  { name: "HTTP handler, after a reopen", kind: http, reopen: true },
] as const;

for (const front of FRONTS) {
  describe(`conformance: ${front.name}`, () => {
    // One database per front, outliving tmpDir's per-test cleanup; each case works under its own prefix.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harmonydb-conf-"));
    const h = { db: null as unknown as Db, state: { db: null, progress: null } as ServerState };
    let f: Front;
    beforeAll(async () => {
      h.db = await open(dir);
      h.state.db = h.db;
      f = {
        ...front.kind(h),
        settle: async () => {
          if (!front.reopen) return;
          await h.db.close();
          h.db = await open(dir);
          h.state.db = h.db;
        },
      };
    });
    afterAll(async () => {
      await h.db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    test("a put answers the next revision; get returns the same JSON value with that revision", async () => {
      const values = [{ name: "ada", tags: ["x", "y"], n: 1.5, nested: { ok: true, none: null } }, [1, "two", [3]], "text é 😀", 42, -7.25, true, false, null];
      const revs: number[] = [];
      for (const [i, v] of values.entries()) {
        const r = await f.put(`json/${i}`, v);
        expect(r).toEqual({ ok: true, rev: f.rev() });
        revs.push((r as { rev: number }).rev);
      }
      expect(revs).toEqual(revs.map((_, i) => revs[0]! + i));
      await f.settle();
      for (const [i, v] of values.entries()) expect(await f.get(`json/${i}`)).toEqual({ value: v, rev: revs[i]! });
      expect(await f.get("json/absent")).toBeNull();
    });

    test("bytes round-trip byte-exact, all 256 values and the empty string", async () => {
      const all = new Uint8Array(256).map((_, i) => i);
      await f.put("bytes/all", all);
      await f.put("bytes/empty", new Uint8Array(0));
      await f.settle();
      expect((await f.get("bytes/all"))!.value).toEqual(all);
      expect((await f.get("bytes/empty"))!.value).toEqual(new Uint8Array(0));
    });

    test("keys hold slashes, spaces, percent signs, reserved URL characters and any UTF-8", async () => {
      const keys = ["keys/a/b/c", "keys/sp ace", "keys/100%", "keys/%41", "keys/?#&=+;,", "keys/é😀中", "keys/\u0000nul", "keys/trailing/"];
      for (const [i, k] of keys.entries()) expect((await f.put(k, i)).ok).toBe(true);
      await f.settle();
      for (const [i, k] of keys.entries()) expect((await f.get(k))?.value).toBe(i);
      const listed = await f.list({ prefix: "keys/", keysOnly: true });
      expect(listed.items.map((x) => x.key)).toEqual([...keys].sort());
    });

    test("ifRev 0 (If-None-Match: *) creates only; a second create conflicts and changes nothing", async () => {
      const first = await f.put("create/a", "one", 0);
      expect(first.ok).toBe(true);
      const rev = f.rev();
      expect(await f.put("create/a", "two", 0)).toEqual({ ok: false, code: "CONFLICT", key: "create/a" });
      expect(f.rev()).toBe(rev);
      await f.settle();
      expect(await f.get("create/a")).toEqual({ value: "one", rev: (first as { rev: number }).rev });
    });

    test("ifRev (If-Match) must be the key's current revision", async () => {
      const a = (await f.put("match/a", 1)) as { rev: number };
      await f.put("match/other", 0);
      expect(await f.put("match/a", 2, a.rev + 1)).toEqual({ ok: false, code: "CONFLICT", key: "match/a" });
      const b = await f.put("match/a", 3, a.rev);
      expect(b.ok).toBe(true);
      expect(await f.del("match/a", a.rev)).toEqual({ ok: false, code: "CONFLICT", key: "match/a" });
      await f.settle();
      expect((await f.get("match/a"))?.value).toBe(3);
      expect(await f.del("match/a", (b as { rev: number }).rev)).toMatchObject({ ok: true, deleted: true });
    });

    test("delete says whether it deleted; deleting a missing key writes nothing", async () => {
      await f.put("del/a", "x");
      const d = await f.del("del/a");
      expect(d).toEqual({ ok: true, rev: f.rev(), deleted: true });
      const again = await f.del("del/a");
      expect(again).toEqual({ ok: true, rev: f.rev(), deleted: false });
      expect(f.rev()).toBe((d as { rev: number }).rev);
      await f.settle();
      expect(await f.get("del/a")).toBeNull();
    });

    test("a batch is atomic: one failed condition writes nothing and names its key", async () => {
      await f.put("batch/taken", "old");
      const rev = f.rev();
      const r = await f.batch([
        { type: "put", key: "batch/new", value: 1 },
        { type: "put", key: "batch/taken", value: "new", ifRev: 0 },
        { type: "delete", key: "batch/taken" },
      ]);
      expect(r).toEqual({ ok: false, code: "CONFLICT", key: "batch/taken" });
      expect(f.rev()).toBe(rev);
      await f.settle();
      expect(await f.get("batch/new")).toBeNull();
      expect((await f.get("batch/taken"))?.value).toBe("old");
    });

    test("a batch of puts and deletes, bytes among them, is one revision", async () => {
      const old = (await f.put("batch2/gone", 0)) as { rev: number };
      const bytes = new Uint8Array([0, 255, 10, 13]);
      const r = await f.batch([
        { type: "put", key: "batch2/a", value: { a: 1 } },
        { type: "put", key: "batch2/b", value: bytes },
        { type: "delete", key: "batch2/gone", ifRev: old.rev },
      ]);
      expect(r).toEqual({ ok: true, rev: f.rev() });
      const rev = (r as { rev: number }).rev;
      await f.settle();
      expect(await f.get("batch2/a")).toEqual({ value: { a: 1 }, rev });
      expect(await f.get("batch2/b")).toEqual({ value: bytes, rev });
      expect(await f.get("batch2/gone")).toBeNull();
    });

    test("invalid keys and values are refused with the same codes, and write nothing", async () => {
      const rev = f.rev();
      expect(await f.put("", 1)).toEqual({ ok: false, code: "INVALID_KEY" });
      expect(await f.put("k".repeat(5000), 1)).toEqual({ ok: false, code: "KEY_TOO_LARGE" });
      expect(await f.put("big", new Uint8Array(16 * 1024 * 1024 + 1))).toEqual({ ok: false, code: "VALUE_TOO_LARGE" });
      expect(await f.batch([{ type: "put", key: "fine", value: 1 }, { type: "put", key: "", value: 1 }])).toEqual({ ok: false, code: "INVALID_KEY" });
      expect(f.rev()).toBe(rev);
      await f.settle();
      expect(await f.get("fine")).toBeNull();
    });

    test("listing: prefix, [start, end), limit with more, reverse, keys only", async () => {
      const ops: BatchOp[] = ["a", "b", "c", "d", "e"].map((k, i) => ({ type: "put", key: `list/${k}`, value: i }));
      ops.push({ type: "put", key: "list/f", value: new Uint8Array([7]) }, { type: "put", key: "listx", value: "outside" });
      const rev = ((await f.batch(ops)) as { rev: number }).rev;
      await f.settle();
      const keys = (l: Listing) => l.items.map((x) => x.key);
      expect(keys(await f.list({ prefix: "list/" }))).toEqual(["list/a", "list/b", "list/c", "list/d", "list/e", "list/f"]);
      expect((await f.list({ prefix: "list/", start: "list/b", end: "list/d" })).items).toEqual([
        { key: "list/b", rev, value: 1 },
        { key: "list/c", rev, value: 2 },
      ]);
      expect(await f.list({ prefix: "list/", limit: 2 })).toMatchObject({ more: true, next: "list/b" });
      expect((await f.list({ prefix: "list/", start: "list/e" })).items).toEqual([
        { key: "list/e", rev, value: 4 },
        { key: "list/f", rev, value: new Uint8Array([7]) },
      ]);
      expect(keys(await f.list({ prefix: "list/", reverse: true, limit: 3 }))).toEqual(["list/f", "list/e", "list/d"]);
      expect((await f.list({ prefix: "list/", keysOnly: true, limit: 1 })).items).toEqual([{ key: "list/a", rev }]);
      expect(await f.list({ prefix: "list/none" })).toEqual({ items: [], more: false });
    });

    test("a large range pages through every key exactly once with the cursor, both ways", async () => {
      const n = 2500;
      const all = Array.from({ length: n }, (_, i) => `page/${String(i).padStart(5, "0")}`);
      for (let i = 0; i < n; i += 500) {
        await f.batch(all.slice(i, i + 500).map((key) => ({ type: "put", key, value: key.length })));
      }
      await f.settle();
      for (const reverse of [false, true]) {
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 10; page++) {
          const l = await f.list({ prefix: "page/", limit: 1000, reverse, keysOnly: true, ...(cursor ? { cursor } : {}) });
          seen.push(...l.items.map((x) => x.key));
          if (!l.more) break;
          cursor = l.next;
        }
        expect(seen).toEqual(reverse ? [...all].reverse() : all);
      }
    });
  });
}
