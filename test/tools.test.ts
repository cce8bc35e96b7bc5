import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { LockedError } from "../src/index.ts";
// Small snapshot chunks (a test hook) so the tools see several.
import { openForTest as open, type TestOptions as OpenOptions } from "../src/testing.ts";
import { compactedNote, dump, dumpSnapshot, jsonRecord, type JsonEntry, type JsonMarker, type JsonRecord } from "../src/tools/dump.ts";
import { formatPointInTime, formatTruncateTail, pointInTime, truncateTail } from "../src/tools/repair.ts";
import { formatVerify, verify, verifyExitCode } from "../src/tools/verify.ts";
import { SEGMENT_NAME_RE } from "../src/format/constants.ts";
import { corrupt, flipByte, frameOffsets, lastSegment, segments, tmpDir, writeAt } from "./helpers/index.ts";

const small: OpenOptions = { segmentBytes: 64 * 1024, log: () => {} };
const root = path.resolve(import.meta.dir, "..");
const key = (i: number) => `k${String(i).padStart(3, "0")}`;
const valueOf = (i: number) => ({ i, pad: "x".repeat(1500) });

/** Writes `n` puts k000… (rev i+1 holds key(i)) of ~1.5 KiB each: 40 fit in a 64 KiB segment. */
async function seeded(n: number): Promise<string> {
  const dir = tmpDir();
  const db = await open(dir, small);
  for (let i = 0; i < n; i++) await db.put(key(i), valueOf(i));
  await db.close();
  return dir;
}

/** Every file under `dir` with its bytes, to show that a tool changed nothing. */
function snapshot(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out.set(path.relative(dir, file), fs.readFileSync(file));
  }
  return out;
}

/** Tears the last record of the last segment: its header and a few payload bytes stay, the rest is zero. */
function tearLastRecord(dir: string): { file: string; offset: number } {
  const file = lastSegment(dir);
  const { offsets, end } = frameOffsets(file);
  const offset = offsets[offsets.length - 1]!;
  corrupt(file, (b) => b.fill(0, offset + 24, end));
  return { file, offset };
}

function cli(...args: string[]) {
  const r = Bun.spawnSync([process.execPath, "src/tools/cli.ts", ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

function dumpLines(dir: string, opts: { fromRev?: number; json?: boolean } = {}) {
  const lines: string[] = [];
  const result = dump(dir, opts, (l) => lines.push(l));
  return { lines, result };
}

describe("verify", () => {
  test("a clean log exits 0 with a one-line summary", async () => {
    const dir = await seeded(100);
    const r = verify(dir);
    expect(r.kind).toBe("clean");
    expect(verifyExitCode(r)).toBe(0);
    expect(r.scan.segments.length).toBeGreaterThanOrEqual(3);
    const lines = formatVerify(r, dir);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^ok: ${r.scan.segments.length} segments, 100 records, last rev 100, db \\S+$`));
  });

  test("an empty database verifies clean", async () => {
    const dir = tmpDir();
    await (await open(dir, small)).close();
    const r = verify(dir);
    expect(r.kind).toBe("clean");
    expect(formatVerify(r, dir)[0]).toMatch(/^ok: 1 segment, 0 records, last rev 0, db \S+$/);
  });

  test("a bad record in the middle exits 1 naming file, offset and revision, and changes nothing", async () => {
    const dir = await seeded(100);
    const first = segments(dir)[0]!;
    const victim = frameOffsets(first).offsets[5]!; // offsets[0] is the header: this is rev 5
    flipByte(first, victim + 20);
    const before = snapshot(dir);
    const r = verify(dir);
    expect(r.kind).toBe("corrupt");
    expect(verifyExitCode(r)).toBe(1);
    if (r.kind !== "corrupt") throw new Error("unreachable");
    expect(r.problem).toMatchObject({ file: first, offset: victim, rev: 5 });
    const text = formatVerify(r, dir).join("\n");
    expect(text).toContain(first);
    expect(text).toContain(`offset ${victim}`);
    expect(text).toContain("--point-in-time");
    expect(snapshot(dir)).toEqual(before);
  });

  test("a torn tail exits 2, says what open would do, and leaves every byte in place", async () => {
    const dir = await seeded(20);
    const { file, offset } = tearLastRecord(dir);
    expect(fs.existsSync(path.join(dir, "wal", "spare.tmp"))).toBe(true); // open would tidy it; verify must not
    const before = snapshot(dir);
    const r = verify(dir);
    expect(r.kind).toBe("torn-tail");
    expect(verifyExitCode(r)).toBe(2);
    if (r.kind !== "torn-tail") throw new Error("unreachable");
    expect(r.tornTail).toMatchObject({ file, offset, lastGoodRev: 19 });
    expect(formatVerify(r, dir)[0]).toBe("torn tail: would be truncated on open; run repair --truncate-tail or just open it");
    expect(snapshot(dir)).toEqual(before);
  });

  test("a directory without a log is an error, not a clean verify", () => {
    expect(() => verify(tmpDir())).toThrow(/not a harmonydb data directory/);
  });
});

describe("dump", () => {
  test("prints every revision in order, with the segment and the offset of its frame", async () => {
    const dir = await seeded(100);
    const { lines, result } = dumpLines(dir);
    expect(result.kind).toBe("clean");
    const heads = lines.filter((l) => l.startsWith("rev="));
    expect(heads.map((l) => Number(/^rev=(\d+) /.exec(l)![1]))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    // Each record's seg= and off= point at the frame that holds it.
    const expected = segments(dir).flatMap((file) =>
      frameOffsets(file).offsets.slice(1).map((off) => `seg=${path.basename(file)} off=${off} ops=1`),
    );
    expect(heads.map((l) => l.replace(/^rev=\d+ /, ""))).toEqual(expected);
    expect(lines[1]).toStartWith(`  put "k000" {"i":0,"pad":"xxx`);
  });

  test("--from-rev skips the earlier records", async () => {
    const dir = await seeded(50);
    const { lines } = dumpLines(dir, { fromRev: 45 });
    expect(lines.filter((l) => l.startsWith("rev=")).map((l) => l.split(" ")[0])).toEqual(
      ["rev=45", "rev=46", "rev=47", "rev=48", "rev=49", "rev=50"],
    );
    expect(dumpLines(dir, { fromRev: 51 }).lines).toEqual([]);
  });

  test("--json: one parseable object per record, values decoded, bytes as base64", async () => {
    const dir = tmpDir();
    const db = await open(dir, small);
    await db.put("a", 1);
    await db.batch([
      { type: "put", key: "b", value: new Uint8Array([1, 2, 3]) },
      { type: "put", key: "c", value: new Map([["m", 1n]]) },
      { type: "delete", key: "a" },
    ]);
    await db.put("weird key\n", { nested: [true, null, "s"] });
    await db.close();
    const { lines } = dumpLines(dir, { json: true });
    const records = lines.map((l) => JSON.parse(l) as JsonRecord);
    expect(records.map((r) => r.rev)).toEqual([1, 2, 3]);
    const seg = path.basename(segments(dir)[0]!);
    expect(records[0]).toEqual({ rev: 1, segment: seg, offset: frameOffsets(segments(dir)[0]!).offsets[1]!, ops: [{ op: "put", key: "a", value: 1 }] });
    expect(records[1]!.ops).toEqual([
      { op: "put", key: "b", value: { $bytes: "AQID" } },
      { op: "put", key: "c", value: { $map: [["m", { $bigint: "1" }]] } },
      { op: "delete", key: "a" },
    ]);
    expect(records[2]!.ops).toEqual([{ op: "put", key: "weird key\n", value: { nested: [true, null, "s"] } }]);
    expect(jsonRecord({ rev: 9, segment: "s", offset: 8, ops: [["d"]] })).toEqual({ rev: 9, segment: "s", offset: 8, ops: [{ op: "delete", key: "d" }] });
  });

  test("an error from the output is passed on as it is, never reported as corruption", async () => {
    const dir = await seeded(3);
    const broken = new Error("stdout went away");
    expect(() => dump(dir, {}, () => { throw broken; })).toThrow(broken);
  });

  test("stops at corruption after printing the good prefix, and reports it", async () => {
    const dir = await seeded(30);
    const file = lastSegment(dir);
    const victim = frameOffsets(file).offsets[10]!;
    flipByte(file, victim + 20);
    const { lines, result } = dumpLines(dir);
    expect(lines.filter((l) => l.startsWith("rev=")).length).toBe(9);
    expect(result.kind).toBe("corrupt");
    expect(verifyExitCode(result)).toBe(1);
  });
});

describe("repair --truncate-tail", () => {
  test("drops a torn tail as open would, keeps a copy, and open then has the prefix", async () => {
    const dir = await seeded(20);
    const { file, offset } = tearLastRecord(dir);
    const r = truncateTail(dir);
    expect(r.kind).toBe("repaired");
    if (r.kind !== "repaired") throw new Error("unreachable");
    expect(r.tornTail).toMatchObject({ file, offset, lastGoodRev: 19 });
    expect(r.tornTail.bytesDropped).toBeGreaterThan(0);
    expect(fs.statSync(r.tornTail.brokenCopy).size).toBe(r.tornTail.bytesDropped);
    const text = formatTruncateTail(r, dir).join("\n");
    for (const part of [file, `offset:        ${offset}`, `last good rev: 19`, r.tornTail.brokenCopy]) expect(text).toContain(part);
    expect(verify(dir).kind).toBe("clean");
    const db = await open(dir, small);
    expect(db.rev).toBe(19);
    expect(db.stats().recovery.tornTail).toBeNull();
    expect(db.has(key(19))).toBe(false);
    expect(db.get(key(18))).toEqual(valueOf(18));
    expect(await db.put("after", 1)).toBe(20);
    await db.close();
  });

  test("a clean log has nothing to truncate", async () => {
    const dir = await seeded(3);
    expect(truncateTail(dir).kind).toBe("clean");
  });

  test("refuses corruption in the middle, changes nothing, and points at --point-in-time", async () => {
    const dir = await seeded(20);
    const file = lastSegment(dir);
    flipByte(file, frameOffsets(file).offsets[5]! + 20);
    fs.rmSync(path.join(dir, "LOCK")); // the check itself must not leave a changed directory behind
    const before = snapshot(dir);
    const r = truncateTail(dir);
    expect(r.kind).toBe("refused");
    expect(formatTruncateTail(r, dir).join("\n")).toContain("--point-in-time");
    const after = snapshot(dir);
    after.delete("LOCK"); // taken and released: it names the last holder
    expect(after).toEqual(before);
  });
});

describe("repair --point-in-time", () => {
  test("mid-log corruption: keeps exactly the records before the damage, sets the rest aside", async () => {
    const dir = await seeded(120);
    const all = segments(dir);
    expect(all.length).toBeGreaterThanOrEqual(3);
    const first = all[0]!;
    const { offsets } = frameOffsets(first);
    const victim = offsets[30]!; // rev 30
    const original = fs.readFileSync(first);
    flipByte(first, victim + 20);

    const r = pointInTime(dir);
    expect(r.kind).toBe("repaired");
    if (r.kind !== "repaired") throw new Error("unreachable");
    expect(r.keptRev).toBe(29);
    expect(r.cut).toMatchObject({ file: first, offset: victim });
    // The copy holds the bytes from the damage point on, as they were (the flipped byte aside).
    const copy = fs.readFileSync(r.cut!.brokenCopy!);
    expect(copy.length).toBe(r.cut!.bytes);
    expect(copy.subarray(21)).toEqual(original.subarray(victim + 21, victim + r.cut!.bytes));
    expect(r.moved.map((m) => m.from)).toEqual(all.slice(1).reverse());
    for (const m of r.moved) expect(m.to).toBe(`${m.from}.broken`);
    expect(r.lost).toEqual({ fromRev: 30, toRev: 120, readable: 90 });
    expect(r.after.kind).toBe("clean");
    const text = formatPointInTime(r).join("\n");
    expect(text).toContain("kept revisions 1..29");
    expect(text).toContain("revs 30..120");
    for (const m of r.moved) expect(text).toContain(m.to);

    const db = await open(dir, small);
    expect(db.rev).toBe(29);
    expect([...db.range()].map((e) => e.key)).toEqual(Array.from({ length: 29 }, (_, i) => key(i)));
    expect(db.get(key(28))).toEqual(valueOf(28));
    // Writing goes on from rev 30, across new segments, and survives a reopen.
    for (let i = 0; i < 60; i++) await db.put(`new${i}`, "v".repeat(1500));
    await db.close();
    expect(verify(dir).kind).toBe("clean");
    const again = await open(dir, small);
    expect(again.rev).toBe(89);
    await again.close();
  });

  test("damage in the last segment with records after it: cuts only that segment", async () => {
    const dir = await seeded(30);
    const file = lastSegment(dir);
    const victim = frameOffsets(file).offsets[10]!;
    flipByte(file, victim + 20);
    const r = pointInTime(dir);
    if (r.kind !== "repaired") throw new Error(`expected a repair, got ${r.kind}`);
    expect(r.moved).toEqual([]);
    expect(r.lost).toEqual({ fromRev: 10, toRev: 30, readable: 20 });
    const db = await open(dir, small);
    expect(db.rev).toBe(9);
    await db.close();
  });

  test("a damaged segment header sets that whole segment aside", async () => {
    const dir = await seeded(100);
    const all = segments(dir);
    const lastOfFirst = frameOffsets(all[0]!).offsets.length - 1; // entries in segment 1
    flipByte(all[1]!, 8 + 20); // inside the header frame's payload
    const r = pointInTime(dir);
    if (r.kind !== "repaired") throw new Error(`expected a repair, got ${r.kind}`);
    expect(r.cut).toBeNull();
    expect(r.keptRev).toBe(lastOfFirst);
    expect(r.moved.map((m) => m.from)).toEqual(all.slice(1).reverse());
    const db = await open(dir, small);
    expect(db.rev).toBe(lastOfFirst);
    await db.close();
  });

  test("a clean log is left alone", async () => {
    const dir = await seeded(3);
    expect(pointInTime(dir).kind).toBe("clean");
  });

  test("a missing middle segment: keeps the segments before the gap", async () => {
    const dir = await seeded(120);
    const all = segments(dir);
    const inFirst = frameOffsets(all[0]!).offsets.length - 1;
    fs.rmSync(all[1]!);
    const r = pointInTime(dir);
    if (r.kind !== "repaired") throw new Error(`expected a repair, got ${r.kind}`);
    expect(r.keptRev).toBe(inFirst);
    expect(r.moved.map((m) => m.from)).toEqual(all.slice(2).reverse());
    expect(r.lost.fromRev).toBe(inFirst + 1);
    expect(r.lost.toRev).toBe(120);
    const db = await open(dir, small);
    expect(db.rev).toBe(inFirst);
    await db.close();
  });

  test("a damaged first segment header leaves an empty log, and says so", async () => {
    const dir = await seeded(10);
    const only = segments(dir)[0]!;
    flipByte(only, 0);
    const r = pointInTime(dir);
    if (r.kind !== "repaired") throw new Error(`expected a repair, got ${r.kind}`);
    expect(r.keptRev).toBe(0);
    expect(r.lost).toEqual({ fromRev: 1, toRev: 10, readable: 10 });
    expect(formatPointInTime(r)[0]).toContain("start empty");
    expect(fs.existsSync(`${only}.broken`)).toBe(true);
    const db = await open(dir, small);
    expect(db.rev).toBe(0);
    await db.close();
  });

  test("a stray file in the wal directory is refused and left for the operator", async () => {
    const dir = await seeded(3);
    const stray = path.join(dir, "wal", "notes.txt");
    fs.writeFileSync(stray, "hello");
    const r = pointInTime(dir);
    expect(r.kind).toBe("refused");
    expect(formatPointInTime(r).join("\n")).toContain("move it out of the wal directory");
    expect(fs.readFileSync(stray, "utf8")).toBe("hello");
    expect(verifyExitCode(verify(dir))).toBe(1);
  });

  test("refuses while a database holds the directory", async () => {
    const dir = await seeded(10);
    const db = await open(dir, small);
    try {
      expect(() => pointInTime(dir)).toThrow(LockedError);
      expect(() => truncateTail(dir)).toThrow(LockedError);
      const r = cli("repair", dir, "--point-in-time");
      expect(r.code).toBe(1);
      expect(r.err).toContain("locked");
    } finally {
      await db.close();
    }
  });

  test("a second run after a repair finds nothing to do, and copies never overwrite older ones", async () => {
    const dir = await seeded(20);
    const file = lastSegment(dir);
    const victim = frameOffsets(file).offsets[5]!;
    flipByte(file, victim + 20);
    const r1 = pointInTime(dir);
    if (r1.kind !== "repaired") throw new Error("expected a repair");
    expect(pointInTime(dir).kind).toBe("clean");
    // Damage at the same offset again (a torn tail this time): a second copy, the first one kept.
    writeAt(file, victim, new Uint8Array(40).fill(0xab));
    const r2 = pointInTime(dir);
    if (r2.kind !== "repaired") throw new Error("expected a repair");
    expect(r2.cut!.brokenCopy).not.toBe(r1.cut!.brokenCopy);
    expect(fs.existsSync(r1.cut!.brokenCopy!)).toBe(true);
  });
});

describe("the harmonydb command", () => {
  test("exit codes: verify clean 0, corrupt 1, torn tail 2; help 0; bad usage 64", async () => {
    const dir = await seeded(20);
    const ok = cli("verify", dir);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^ok: 1 segment, 20 records, last rev 20, db \S+\n$/);

    const torn = await seeded(20);
    tearLastRecord(torn);
    const t = cli("verify", torn);
    expect(t.code).toBe(2);
    expect(t.err).toContain("torn tail: would be truncated on open");

    const file = lastSegment(dir);
    const victim = frameOffsets(file).offsets[5]!;
    flipByte(file, victim + 20);
    const bad = cli("verify", dir);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(file);
    expect(bad.err).toContain(`offset ${victim}`);
    expect(bad.err).toContain("rev 5");

    const fixed = cli("repair", dir, "--point-in-time");
    expect(fixed.code).toBe(0);
    expect(fixed.out).toContain("kept revisions 1..4");
    expect(cli("verify", dir).code).toBe(0);

    const d = cli("dump", dir, "--json", "--from-rev", "3");
    expect(d.code).toBe(0);
    expect(d.out.trim().split("\n").map((l) => (JSON.parse(l) as JsonRecord).rev)).toEqual([3, 4]);

    for (const args of [["--help"], ["verify", "--help"], ["dump", "--help"], ["repair", "--help"]]) {
      const h = cli(...args);
      expect(h.code).toBe(0);
      expect(h.out).toContain("harmonydb");
    }
    expect(cli().code).toBe(64);
    expect(cli("frobnicate", dir).code).toBe(64);
    expect(cli("repair", dir).code).toBe(64);
    expect(cli("dump", dir, "--from-rev", "x").code).toBe(64);
    expect(cli("verify", path.join(dir, "nope")).code).toBe(1);
  });
});

// ---- a log that starts from a snapshot ----

const snappy: OpenOptions = { segmentBytes: 64 * 1024, snapshotEveryBytes: 0, snapshotChunkBytes: 1024, log: () => {} };
/** Revisions of the fixture below: 150 puts, one overwrite, one delete, the snapshot, then 5 puts. */
const SNAP_REV = 152;
const LAST_REV = 157;

/**
 * 150 puts over ~4 segments (rev i+1 holds key(i)), key(1) overwritten at rev 151 and key(0)
 * deleted at rev 152, a snapshot at rev 152 (its covered segments deleted), then after0..after4 at
 * revs 153..157. `after`: how many puts follow the snapshot.
 */
async function snapshotted(after = 5): Promise<{ dir: string; snapFile: string; snapBytes: number }> {
  const dir = tmpDir();
  const db = await open(dir, snappy);
  for (let i = 0; i < 150; i++) await db.put(key(i), valueOf(i));
  await db.put(key(1), "v2");
  await db.delete(key(0));
  const info = await db.snapshot();
  expect(info.rev).toBe(SNAP_REV);
  for (let i = 0; i < after; i++) await db.put(`after${i}`, i);
  await db.close();
  return { dir, snapFile: info.file, snapBytes: fs.statSync(info.file).size };
}

const firstRevOf = (file: string) => parseInt(SEGMENT_NAME_RE.exec(path.basename(file))![2]!, 16);
const seqOf = (file: string) => parseInt(SEGMENT_NAME_RE.exec(path.basename(file))![1]!, 16);

/** The offset of the entry frame holding `rev` in `file` (entries are contiguous from firstRev; markers skipped). */
function entryOffset(file: string, rev: number): number {
  const bytes = fs.readFileSync(file);
  let r = firstRevOf(file) - 1;
  for (const off of frameOffsets(file).offsets.slice(1)) {
    if (bytes[off + 15] !== 2) continue; // not an entry (a snapshot marker)
    if (++r === rev) return off;
  }
  throw new Error(`rev ${rev} is not in ${file}`);
}

describe("snapshots", () => {
  test("verify: a log that starts from a snapshot is clean, and the snapshot is checked and reported", async () => {
    const { dir, snapFile, snapBytes } = await snapshotted();
    expect(seqOf(segments(dir)[0]!)).toBeGreaterThan(1); // the covered segments are gone
    const r = verify(dir);
    expect(r.kind).toBe("clean");
    expect(verifyExitCode(r)).toBe(0);
    expect(r.scan.snapshot).toEqual({ file: snapFile, rev: SNAP_REV, keys: 149 });
    expect(r.scan).toMatchObject({ records: LAST_REV - SNAP_REV, lastRev: LAST_REV, skippedSnapshots: [], problem: null });
    const name = path.basename(snapFile);
    expect(r.snapshots).toEqual([{ name, file: snapFile, rev: SNAP_REV, keys: 149, bytes: snapBytes, problem: null }]);
    expect(formatVerify(r, dir)).toEqual([
      expect.stringMatching(new RegExp(`^ok: \\d+ segments?, 5 records, last rev ${LAST_REV}, db \\S+; from snapshot ${name} \\(rev ${SNAP_REV}, 149 keys\\)$`)),
      `snapshot ${name}: rev ${SNAP_REV}, 149 keys, ${snapBytes} bytes: ok, open() starts from it`,
    ]);
    const c = cli("verify", dir);
    expect(c.code).toBe(0);
    expect(c.out).toContain(`snapshot ${name}: rev ${SNAP_REV}, 149 keys`);
  });

  test("dump lists the log after the snapshot with its marker, and says which revisions the snapshot holds", async () => {
    const { dir, snapFile, snapBytes } = await snapshotted();
    const name = path.basename(snapFile);
    const { lines, result } = dumpLines(dir);
    expect(result.kind).toBe("clean");
    const heads = lines.filter((l) => !l.startsWith("  "));
    const markerAt = heads.findIndex((l) => l.startsWith("marker "));
    const seg = lastSegment(dir);
    const markerOffset = frameOffsets(seg).offsets.find((off) => fs.readFileSync(seg)[off + 15] === 3);
    expect(heads[markerAt]).toBe(`marker rev=${SNAP_REV} seg=${path.basename(seg)} off=${markerOffset} snapshot=${name} bytes=${snapBytes}`);
    // The marker follows entry 152 (covered: not listed) and comes before entry 153.
    expect(heads.filter((l) => l.startsWith("rev=")).map((l) => l.split(" ")[0])).toEqual(["rev=153", "rev=154", "rev=155", "rev=156", "rev=157"]);
    expect(markerAt).toBe(0);
    expect(lines).toContain(`  put "after0" 0`);

    const json = dumpLines(dir, { json: true }).lines.map((l) => JSON.parse(l) as JsonRecord | JsonMarker);
    expect(json[0]).toEqual({ rev: SNAP_REV, segment: path.basename(seg), offset: markerOffset!, marker: { snapshotRev: SNAP_REV, bytes: snapBytes } });
    expect(json.slice(1).map((r) => r.rev)).toEqual([153, 154, 155, 156, 157]);

    expect(compactedNote(result.scan, 0, dir)).toContain(`revisions 1..${SNAP_REV} are compacted into snapshot ${snapFile}`);
    expect(compactedNote(result.scan, SNAP_REV + 1, dir)).toBeNull();
    const c = cli("dump", dir, "--from-rev", "10");
    expect(c.code).toBe(0);
    expect(c.err).toContain(`revisions 10..${SNAP_REV} are compacted into snapshot ${snapFile}`);
    expect(c.out.split("\n")[0]).toStartWith(`marker rev=${SNAP_REV} `);
  });

  test("dump finds a marker in a segment whose every entry the snapshot covers", async () => {
    const { dir, snapFile } = await snapshotted(0);
    const { lines, result } = dumpLines(dir);
    expect(result.kind).toBe("clean");
    expect(result.scan.lastRev).toBe(SNAP_REV);
    expect(lines).toEqual([expect.stringMatching(new RegExp(`^marker rev=${SNAP_REV} seg=\\S+ off=\\d+ snapshot=${path.basename(snapFile)} bytes=\\d+$`))]);
  });

  test("dump --snapshot prints every key in order with its revisions and decoded value", async () => {
    const { dir, snapFile } = await snapshotted();
    const lines: string[] = [];
    const r = dumpSnapshot(dir, {}, (l) => lines.push(l));
    expect(r.kind).toBe("clean");
    expect(lines[0]).toMatch(new RegExp(`^snapshot=${path.basename(snapFile)} rev=${SNAP_REV} keys=149 db=\\S+$`));
    expect(lines.slice(1).map((l) => JSON.parse(l.split(" ")[0]!))).toEqual(Array.from({ length: 149 }, (_, i) => key(i + 1)));
    expect(lines[1]).toBe(`"k001" rev=151 createRev=2 version=2 "v2"`);
    expect(lines[2]).toStartWith(`"k002" rev=3 createRev=3 version=1 {"i":2,"pad":"xxx`);

    const json: string[] = [];
    dumpSnapshot(dir, { file: path.basename(snapFile), json: true }, (l) => json.push(l));
    const entries = json.map((l) => JSON.parse(l) as JsonEntry);
    expect(entries).toHaveLength(149);
    expect(entries[0]).toEqual({ key: "k001", rev: 151, createRev: 2, version: 2, value: "v2" });
    expect(entries[148]).toEqual({ key: "k149", rev: 150, createRev: 150, version: 1, value: valueOf(149) });
    expect(entries.some((e) => e.key.startsWith("after"))).toBe(false); // written after the snapshot

    const c = cli("dump", dir, "--snapshot", "--json");
    expect(c.code).toBe(0);
    expect(c.out.trim().split("\n").map((l) => (JSON.parse(l) as JsonEntry).key)).toEqual(entries.map((e) => e.key));
    expect(cli("dump", dir, "--snapshot", "--from-rev", "3").code).toBe(64);
    const none = await seeded(3);
    const n = cli("dump", none, "--snapshot");
    expect(n.code).toBe(1);
    expect(n.err).toContain("no snapshot in");
  });

  test("a flipped byte in the snapshot: verify, dump --snapshot and both repairs report it, exit 1, change nothing", async () => {
    const { dir, snapFile } = await snapshotted();
    flipByte(snapFile, Math.floor(fs.statSync(snapFile).size / 2));
    fs.rmSync(path.join(dir, "LOCK"));
    const before = snapshot(dir);
    const r = verify(dir);
    expect(verifyExitCode(r)).toBe(1);
    expect(r.snapshots).toHaveLength(1);
    expect(r.snapshots[0]!.problem).toContain(snapFile);
    expect(r.snapshots[0]!.problem).toContain("crc mismatch");
    // open() would skip it, but the log no longer reaches back to revision 1.
    expect(r.scan.skippedSnapshots).toEqual([r.snapshots[0]!.problem!]);
    if (r.kind !== "corrupt") throw new Error(`expected corrupt, got ${r.kind}`);
    expect(r.problem.kind).toBe("coverage");
    const text = formatVerify(r, dir).join("\n");
    expect(text).toContain(`snapshot ${path.basename(snapFile)}: rev ${SNAP_REV}, ? keys`);
    expect(text).toContain("damaged: ");
    expect(text).toContain("restore snap/ from a backup");
    expect(text).not.toContain("--point-in-time");

    const c = cli("verify", dir);
    expect(c.code).toBe(1);
    expect(c.err).toContain(`snapshot ${path.basename(snapFile)}: rev ${SNAP_REV}`);
    const d = cli("dump", dir, "--snapshot");
    expect(d.code).toBe(1);
    expect(d.err).toContain("crc mismatch");

    const pit = pointInTime(dir);
    expect(pit.kind).toBe("refused");
    expect(formatPointInTime(pit).join("\n")).toContain("does not join a good snapshot");
    const tail = truncateTail(dir);
    expect(tail.kind).toBe("refused");
    expect(formatTruncateTail(tail, dir).join("\n")).toContain("--point-in-time cannot fix it either");
    const after = snapshot(dir);
    after.delete("LOCK");
    expect(after).toEqual(before);
  });

  test("a damaged newest snapshot fails verify even when the log still reaches back to revision 1", async () => {
    const dir = tmpDir();
    const db = await open(dir, snappy);
    for (let i = 0; i < 10; i++) await db.put(key(i), i);
    const { file } = await db.snapshot();
    for (let i = 10; i < 15; i++) await db.put(key(i), i); // segment 1 now holds revisions past the snapshot: kept
    await db.close();
    expect(seqOf(segments(dir)[0]!)).toBe(1);
    flipByte(file, fs.statSync(file).size - 10);
    const r = verify(dir);
    expect(r.kind).toBe("clean"); // the log itself is fine: open() replays it from revision 1
    expect(r.scan).toMatchObject({ snapshot: null, records: 15, lastRev: 15 });
    expect(r.scan.skippedSnapshots).toHaveLength(1);
    expect(verifyExitCode(r)).toBe(1);
    const text = formatVerify(r, dir);
    expect(text[1]).toContain("damaged: ");
    expect(text[2]).toBe("  the newest snapshot is damaged: open() skips it and starts from revision 1 of the log; take a new snapshot soon");
    const again = await open(dir, snappy);
    expect(again.rev).toBe(15);
    await again.close();
  });

  test("a stray file in snap/ is named, and left for the operator", async () => {
    const dir = await seeded(3);
    fs.mkdirSync(path.join(dir, "snap"), { recursive: true }); // open() may have made it
    const stray = path.join(dir, "snap", "old-backup.snap");
    fs.writeFileSync(stray, "hello");
    const r = verify(dir);
    if (r.kind !== "corrupt") throw new Error(`expected corrupt, got ${r.kind}`);
    expect(r.problem).toMatchObject({ kind: "stray", file: stray });
    expect(formatVerify(r, dir).join("\n")).toContain("not a snapshot: move it out of the snap directory");
    const pit = pointInTime(dir);
    expect(pit.kind).toBe("refused");
    expect(fs.readFileSync(stray, "utf8")).toBe("hello");
    expect(segments(dir).map((f) => fs.existsSync(f))).toEqual([true]);
  });

  test("repair --truncate-tail works on a log that starts after segment 1", async () => {
    const { dir } = await snapshotted();
    const { file, offset } = tearLastRecord(dir);
    expect(verify(dir).kind).toBe("torn-tail");
    const r = truncateTail(dir);
    if (r.kind !== "repaired") throw new Error(`expected a repair, got ${r.kind}`);
    expect(r.tornTail).toMatchObject({ file, offset, lastGoodRev: LAST_REV - 1 });
    expect(verify(dir).kind).toBe("clean");
    const db = await open(dir, snappy);
    expect(db.rev).toBe(LAST_REV - 1);
    expect(db.get("after3")).toBe(3);
    expect(db.has("after4")).toBe(false);
    expect(db.get(key(5))).toEqual(valueOf(5));
    await db.close();
  });

  test("repair --point-in-time cuts damage after the snapshot", async () => {
    const { dir } = await snapshotted();
    const file = lastSegment(dir);
    flipByte(file, entryOffset(file, 155) + 20);
    const r = pointInTime(dir);
    if (r.kind !== "repaired") throw new Error(`expected a repair, got ${r.kind}`);
    expect(r.keptRev).toBe(154);
    expect(r.lost).toEqual({ fromRev: 155, toRev: LAST_REV, readable: 2 });
    expect(r.after.kind).toBe("clean");
    const db = await open(dir, snappy);
    expect(db.rev).toBe(154);
    expect(db.get("after1")).toBe(1);
    expect(db.get(key(1))).toBe("v2");
    await db.close();
  });

  test("repair --point-in-time refuses a cut that would end the log before the snapshot, or a log without its snapshot", async () => {
    const { dir, snapFile } = await snapshotted();
    const first = segments(dir)[0]!;
    const covered = firstRevOf(first);
    expect(covered).toBeLessThanOrEqual(SNAP_REV); // this segment starts with entries the snapshot holds
    flipByte(first, entryOffset(first, covered) + 20);
    fs.rmSync(path.join(dir, "LOCK"));
    const before = snapshot(dir);
    const r = verify(dir);
    if (r.kind !== "corrupt") throw new Error(`expected corrupt, got ${r.kind}`);
    expect(r.problem).toMatchObject({ kind: "segment", rev: covered, file: first });
    const text = formatVerify(r, dir).join("\n");
    expect(text).toContain(`inside what snapshot ${path.basename(snapFile)} (rev ${SNAP_REV}) covers`);
    expect(text).not.toContain("--point-in-time");
    const pit = pointInTime(dir);
    expect(pit.kind).toBe("refused");
    expect(formatPointInTime(pit).join("\n")).toContain("a log cut there would end before the snapshot");
    const after = snapshot(dir);
    after.delete("LOCK");
    expect(after).toEqual(before);

    // Without its snapshot, a log whose first segments were deleted cannot be cut into shape either.
    const other = await snapshotted();
    fs.rmSync(other.snapFile);
    const gone = pointInTime(other.dir);
    expect(gone.kind).toBe("refused");
    expect(formatPointInTime(gone).join("\n")).toContain(`the log starts at segment ${seqOf(segments(other.dir)[0]!)}`);
    expect(segments(other.dir).length).toBeGreaterThan(0);
  });
});
