// Deno KV's keys and values, checked against the real Deno (the npm `deno` binary) both ways,
// through Deno's own local KV: Deno.openKv(file) keeps its data in SQLite, which bun:sqlite reads
// and writes (docs/deno-kv.md §3). Deno writes, and our key codec must find each row and our
// value codec read it; we write rows, and Deno must read each value back as it was.

import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { encodeKey, type KvKey } from "../src/kv/key.ts";
import { deserializeV8 } from "../src/kv/v8.ts";
import { ENCODING, KvU64, le64, storedOf } from "../src/kv/value.ts";
import { KV_VALUES } from "./fixtures/kv-values.ts";
import { tmpDir } from "./helpers/index.ts";

const root = path.join(import.meta.dir, "..");
const DENO = path.join(root, "node_modules", ".bin", "deno");
const FIXTURES = path.join(import.meta.dir, "fixtures", "kv-values.ts");

/** Runs `script` (TypeScript, for Deno) with `args`; returns its stdout. */
function deno(dir: string, script: string, ...args: string[]): string {
  const file = path.join(dir, `script-${Math.random().toString(36).slice(2)}.ts`);
  fs.writeFileSync(file, script);
  const p = Bun.spawnSync([DENO, "run", "--quiet", "--allow-all", "--unstable-kv", file, ...args], {
    env: { ...process.env, DENO_DIR: path.join(dir, "deno-dir"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    timeout: 60_000,
  });
  if (p.exitCode !== 0) throw new Error(`deno exited with ${p.exitCode}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("Deno KV keys and values against the real Deno", () => {
  test("rows Deno writes: our key codec finds each one, our value codec reads it as it was", () => {
    const dir = tmpDir();
    const file = path.join(dir, "kv.sqlite");
    deno(dir, `import { KV_VALUES } from ${JSON.stringify(`file://${FIXTURES}`)};
const kv = await Deno.openKv(Deno.args[0]);
for (const [k, v] of KV_VALUES) await kv.set(k, v);
await kv.set(["u64"], new Deno.KvU64(18446744073709551615n));
kv.close();`, file);
    const db = new Database(file, { readonly: true });
    try {
      const row = db.query<{ v: Uint8Array; v_encoding: number }, [Uint8Array]>("select v, v_encoding from kv where k = ?");
      for (const [key, value] of KV_VALUES) {
        const r = row.get(encodeKey(key as KvKey));
        expect([key, r !== null]).toEqual([key, true]); // (a key we encode differently from Deno has no row)
        if (value instanceof Uint8Array) {
          expect([key, r!.v_encoding, hex(r!.v)]).toEqual([key, ENCODING.bytes, hex(value)]);
          continue;
        }
        expect([key, r!.v_encoding]).toEqual([key, ENCODING.v8]);
        // Ours writes what Deno wrote, byte for byte after the version (15 for Deno's 16: src/kv/v8.ts),
        // for all but errors (their stacks are Deno's).
        expect(hex(r!.v.subarray(0, 2))).toBe("ff10");
        if (!(value instanceof Error)) expect([key, hex(storedOf(value).data)]).toEqual([key, "ff0f" + hex(r!.v).slice(4)]);
        const back = deserializeV8(r!.v);
        if (value instanceof Error) {
          const e = back as Error;
          expect([e.constructor.name, e.message, e.cause]).toEqual([value.constructor.name, value.message, value.cause]);
        } else if (Number.isNaN(value)) expect(Number.isNaN(back)).toBe(true);
        else if (key[0] === "obj" && key[1] === "cyclic") {
          const c = back as Record<string, unknown>;
          expect([c.name, c.self === c]).toEqual(["c", true]);
        } else if (key[0] === "views") {
          const [a, b, f, g] = back as [Uint16Array, Uint16Array, Float64Array, BigInt64Array];
          expect([a === b, [...a], [...f], [...g]]).toEqual([true, [1, 2, 65535], [Math.PI], [-5n]]);
        } else expect([key, back]).toEqual([key, value]);
      }
      expect(db.query<{ n: number }, []>("select count(*) as n from kv").get()!.n).toBe(KV_VALUES.length + 1);
      const u64 = row.get(encodeKey(["u64"]))!;
      expect([u64.v_encoding, new KvU64(le64(u64.v)).value]).toEqual([ENCODING.le64, 2n ** 64n - 1n]);
    } finally {
      db.close();
    }
  });

  test("rows we write: Deno reads each key and value back as it was", () => {
    const dir = tmpDir();
    const file = path.join(dir, "kv.sqlite");
    deno(dir, "(await Deno.openKv(Deno.args[0])).close();", file); // Deno makes its tables
    const db = new Database(file);
    try {
      const insert = db.query("insert into kv (k, v, v_encoding, version) values (?, ?, ?, ?)");
      KV_VALUES.forEach(([key, value], i) => {
        const s = storedOf(value);
        insert.run(encodeKey(key as KvKey), s.data, s.encoding, i + 1);
      });
      const u64 = storedOf(new KvU64(12345678901234567890n));
      insert.run(encodeKey(["u64"]), u64.data, u64.encoding, KV_VALUES.length + 1);
    } finally {
      db.close();
    }
    const out = deno(dir, `import { KV_VALUES } from ${JSON.stringify(`file://${FIXTURES}`)};
import { deepStrictEqual } from "node:assert";
const kv = await Deno.openKv(Deno.args[0]);
const wrong: string[] = [];
for (const [k, v] of KV_VALUES) {
  const e = await kv.get(k);
  try {
    if (v instanceof Error) deepStrictEqual([e.value?.constructor.name, e.value?.message, e.value?.cause], [v.constructor.name, v.message, v.cause]);
    else deepStrictEqual(e.value, v);
  } catch (err) {
    wrong.push(JSON.stringify(k.map(String)) + ": " + String(err).slice(0, 200));
  }
}
const u = (await kv.get(["u64"])).value;
if (!(u instanceof Deno.KvU64) || u.value !== 12345678901234567890n) wrong.push("u64: " + String(u));
kv.close();
console.log(JSON.stringify(wrong));`, file);
    expect(JSON.parse(out)).toEqual([]);
  });
});
