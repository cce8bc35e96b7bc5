// A fault-injecting, in-memory FileIO: it keeps what was fdatasync'ed apart from what was only
// written, can "lose power" in the ways disks do, and fails calls with EIO/ENOSPC on demand.

import * as path from "node:path";
import type { FileIO } from "../../src/io/file-io.ts";

interface SimFile {
  /** What a read sees now. */
  data: Uint8Array;
  /** What survives power loss: the data as of the last fdatasync/fsync. */
  durable: Uint8Array;
  /** Writes since the last sync, in order: a crash may keep any prefix of them, the last one torn. */
  pending: { offset: number; bytes: Uint8Array }[];
}

export type Op = "openWrite" | "pwrite" | "fdatasync" | "fsync" | "rename" | "fsyncDir" | "readFile" | "unlink";

/** How power loss treats writes that were not synced. */
export type LossMode =
  | "drop-unsynced" // every unsynced byte is gone
  | "keep-all" // a process crash: the OS had them all
  | "prefix" // a random prefix of the unsynced writes survives
  | "torn"; // a random prefix survives and the next write is torn at a 512 B or 4 KiB boundary

export interface Fault {
  op: Op;
  code: "EIO" | "ENOSPC";
  /** Fails the n-th call of `op` from now (1 = the next one), or every call with probability p. */
  nth?: number;
  probability?: number;
}

/** Thrown by every call once the simulated machine has lost power mid-operation. */
export class PowerLoss extends Error {
  override name = "PowerLoss";
}

const MUTATING = new Set<Op>(["openWrite", "pwrite", "fdatasync", "fsync", "rename", "fsyncDir", "unlink"]);

export class FaultIO implements FileIO {
  /** Directory → name → file, as a read sees it now. */
  private readonly dirs = new Map<string, Map<string, SimFile>>();
  /** Directory → name → file, as the last fsync of that directory left it. */
  private readonly durableDirs = new Map<string, Map<string, SimFile>>();
  private readonly fds = new Map<number, { file: SimFile }>();
  private nextFd = 3;
  private faults: (Fault & { seen: number })[] = [];
  readonly calls: Record<string, number> = {};
  private mutations = 0;
  private powerLossAt = Infinity;

  /** Power fails at the n-th mutating call from now (that call does not happen), and stays off. */
  losePowerAfter(n: number): void {
    this.powerLossAt = this.mutations + n;
  }

  get powerLost(): boolean {
    return this.mutations >= this.powerLossAt;
  }

  constructor(private readonly random: () => number) {}

  /** A directory that exists and is durable (the database directory as the test made it). */
  mkdir(dir: string): void {
    if (!this.dirs.has(dir)) this.dirs.set(dir, new Map());
    if (!this.durableDirs.has(dir)) this.durableDirs.set(dir, new Map());
  }

  inject(f: Fault): void {
    this.faults.push({ ...f, seen: 0 });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** The disk after power loss: a new FaultIO whose files hold what `mode` lets survive. */
  crash(mode: LossMode, forgetUnsyncedDirs = this.random() < 0.5): FaultIO {
    const after = new FaultIO(this.random);
    const survivors = new Map<SimFile, Uint8Array>();
    const contentOf = (f: SimFile) => {
      let data = survivors.get(f);
      if (!data) survivors.set(f, (data = this.survivingData(f, mode)));
      return data;
    };
    for (const [dir, names] of forgetUnsyncedDirs ? this.durableDirs : this.dirs) {
      after.mkdir(dir);
      for (const [name, f] of names) {
        const data = contentOf(f);
        const copy: SimFile = { data: data.slice(), durable: data.slice(), pending: [] };
        after.dirs.get(dir)!.set(name, copy);
        after.durableDirs.get(dir)!.set(name, copy);
      }
    }
    return after;
  }

  private survivingData(f: SimFile, mode: LossMode): Uint8Array {
    if (mode === "keep-all") return f.data;
    if (mode === "drop-unsynced" || f.pending.length === 0) return f.durable;
    const keep = Math.floor(this.random() * (f.pending.length + 1));
    let data = f.durable;
    for (let i = 0; i < keep; i++) data = writeInto(data, f.pending[i]!.offset, f.pending[i]!.bytes);
    const next = f.pending[keep];
    if (mode === "torn" && next) {
      // Sectors reach the disk whole or not at all: keep the part of the write before a boundary.
      const sector = this.random() < 0.5 ? 512 : 4096;
      const end = next.offset + next.bytes.length;
      const cut = Math.floor((next.offset + this.random() * (end - next.offset)) / sector) * sector;
      if (cut > next.offset) data = writeInto(data, next.offset, next.bytes.subarray(0, cut - next.offset));
    }
    return data;
  }

  // ---- FileIO ----

  openWrite(p: string, opts: { create?: boolean; truncate?: boolean } = {}): number {
    this.maybeFail("openWrite");
    const names = this.dirOf(p);
    let f = names.get(path.basename(p));
    if (!f) {
      if (!opts.create) throw errno("ENOENT", `open ${p}`);
      f = { data: new Uint8Array(0), durable: new Uint8Array(0), pending: [] };
      names.set(path.basename(p), f);
    } else if (opts.truncate) {
      f.data = new Uint8Array(0);
      f.pending.push({ offset: 0, bytes: new Uint8Array(0) });
    }
    const fd = this.nextFd++;
    this.fds.set(fd, { file: f });
    return fd;
  }

  pwrite(fd: number, bytes: Uint8Array, position: number): void {
    this.maybeFail("pwrite");
    const f = this.file(fd);
    const copy = bytes.slice();
    f.data = writeInto(f.data, position, copy);
    f.pending.push({ offset: position, bytes: copy });
  }

  fdatasync(fd: number): void {
    this.maybeFail("fdatasync");
    this.sync(this.file(fd));
  }

  /** A hint that makes nothing durable: what it covers is lost at power loss as before. */
  startWriteBack(_fd: number, _offset: number, _bytes: number): void {}

  fsync(fd: number): void {
    this.maybeFail("fsync");
    this.sync(this.file(fd));
  }

  close(fd: number): void {
    if (!this.fds.delete(fd)) throw errno("EBADF", `close ${fd}`);
  }

  size(fd: number): number {
    return this.file(fd).data.length;
  }

  /** The file at `p`, or ENOENT as `call` would fail. */
  private existing(p: string, call: string) {
    const f = this.dirOf(p).get(path.basename(p));
    if (!f) throw errno("ENOENT", `${call} ${p}`);
    return f;
  }

  readFile(p: string): Uint8Array {
    this.maybeFail("readFile");
    return this.existing(p, "open").data.slice();
  }

  fileSize(p: string): number {
    return this.existing(p, "stat").data.length;
  }

  readAt(p: string, into: Uint8Array, position: number): number {
    this.maybeFail("readFile");
    const part = this.existing(p, "open").data.subarray(position, position + into.length);
    into.set(part);
    return part.length;
  }

  rename(from: string, to: string): void {
    this.maybeFail("rename");
    const src = this.dirOf(from);
    const f = src.get(path.basename(from));
    if (!f) throw errno("ENOENT", `rename ${from}`);
    src.delete(path.basename(from));
    this.dirOf(to).set(path.basename(to), f);
  }

  fsyncDir(dir: string): void {
    this.maybeFail("fsyncDir");
    this.durableDirs.set(dir, new Map(this.dirOf(path.join(dir, "x"))));
  }

  readdir(dir: string): string[] {
    return [...this.dirOf(path.join(dir, "x")).keys()];
  }

  unlink(p: string): void {
    this.maybeFail("unlink");
    this.dirOf(p).delete(path.basename(p));
  }

  /** Names in a directory that would survive power loss now (for assertions). */
  durableNames(dir: string): string[] {
    return [...(this.durableDirs.get(dir)?.keys() ?? [])];
  }

  // ---- internals ----

  private sync(f: SimFile): void {
    f.durable = f.data.slice();
    f.pending = [];
  }

  private file(fd: number): SimFile {
    const h = this.fds.get(fd);
    if (!h) throw errno("EBADF", `fd ${fd}`);
    return h.file;
  }

  private dirOf(p: string): Map<string, SimFile> {
    const names = this.dirs.get(path.dirname(p));
    if (!names) throw errno("ENOENT", `no directory ${path.dirname(p)}`);
    return names;
  }

  private maybeFail(op: Op): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    if (this.powerLost || (MUTATING.has(op) && ++this.mutations >= this.powerLossAt)) throw new PowerLoss("power lost");
    for (const f of this.faults) {
      if (f.op !== op) continue;
      f.seen++;
      const hit = f.nth !== undefined ? f.seen === f.nth : this.random() < (f.probability ?? 0);
      if (hit) throw errno(f.code, `injected ${f.code} on ${op}`);
    }
  }
}

function writeInto(data: Uint8Array, offset: number, bytes: Uint8Array): Uint8Array {
  const out = offset + bytes.length > data.length ? new Uint8Array(offset + bytes.length) : data.slice();
  if (out !== data) out.set(data);
  out.set(bytes, offset);
  return out;
}

function errno(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/** A small seeded PRNG (mulberry32), so every scenario replays from its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
