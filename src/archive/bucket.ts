// An archive's bucket: Bun's S3 client, with a timeout on every call and jittered retries.

import * as fs from "node:fs";
import { ArchiveError } from "../errors.ts";
import * as L from "../limits.ts";
import { Arriving } from "../snapshot/file.ts";

/** Endpoint and credentials; any left out come from Bun's S3_* / AWS_* environment variables. */
export interface S3Settings {
  endpoint?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  sessionToken?: string;
}

export interface ArchiveTarget {
  bucket: string;
  /** "" or a prefix ending in "/". */
  prefix: string;
}

/** "s3://bucket/some/prefix" → bucket and "some/prefix/". */
export function parseArchiveUrl(url: string): ArchiveTarget {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new ArchiveError(`not an archive URL (s3://bucket/prefix): ${JSON.stringify(url)}`);
  const prefix = (m[2] ?? "").replace(/\/+$/, "");
  return { bucket: m[1]!, prefix: prefix === "" ? "" : `${prefix}/` };
}

const backoffFirstMs = 100;
/** Files up to this size go up in one PUT (S3 takes up to 5 GiB so); larger ones in parts. */
const singlePutBytesMax = 4 * 1024 ** 3;
/** A presigned URL is good for this long (it is used at once). */
const presignSeconds = 900;
/** An upload or a download of a large object may take this long per byte, beyond the call's timeout. */
const minUploadBytesPerSec = 1024 * 1024;
const backoffMaxMs = 5_000;

/** Full jitter (AWS's "exponential backoff and jitter"): a random wait up to the doubled cap. */
export function backoffMs(attempt: number): number {
  return Math.random() * Math.min(backoffMaxMs, backoffFirstMs * 2 ** attempt);
}

/** A GET answered, its body not read yet. */
interface OpenedGet {
  res: Response;
  abort: AbortController;
  what: string;
  /** The body's length (the object's, from the byte asked for). */
  length: number;
}

export interface Listed {
  name: string;
  size: number;
  modified: number;
}

export class Bucket {
  private readonly client: Bun.S3Client;
  readonly target: ArchiveTarget;
  /** Calls made, by kind (the bill: PUT/GET/LIST). */
  readonly calls = { put: 0, get: 0, list: 0, delete: 0 };

  constructor(
    readonly url: string,
    readonly settings: S3Settings = {},
    readonly timeoutMs = L.archiveCallTimeoutMsDefault,
  ) {
    this.target = parseArchiveUrl(url);
    this.client = new Bun.S3Client({ ...definedOnly(settings), bucket: this.target.bucket });
  }

  /** The object's full key in the bucket. */
  key(name: string): string {
    return this.target.prefix + name;
  }

  /**
   * A PUT of a presigned URL: its signature leaves the body out, so nothing hashes the body (the
   * client's own write hashed every byte with SHA-256: ~60% of its CPU per 8 MiB object). The
   * objects carry their own checksums, which restore checks.
   */
  async put(name: string, body: Uint8Array | string): Promise<void> {
    this.calls.put++;
    const abort = new AbortController();
    const ms = this.timeoutMs + (body.length / minUploadBytesPerSec) * 1000;
    await this.timed(`PUT ${name}`, () => this.putBody(name, body, abort.signal), ms, () => abort.abort());
  }

  /** One PUT of `body` to a presigned URL. */
  private async putBody(name: string, body: Uint8Array | string | Blob, signal?: AbortSignal): Promise<void> {
    const url = this.client.presign(this.key(name), { method: "PUT", expiresIn: presignSeconds });
    const res = await fetch(url, { method: "PUT", body, ...(signal ? { signal } : {}) });
    const text = await res.text();
    if (!res.ok) throw new Error(`PUT ${name}: ${res.status} ${text.slice(0, 300)}`);
  }

  /**
   * Uploads a file, streamed from a descriptor opened here (it may be replaced or deleted meanwhile),
   * as a multipart upload when it is large (S3 makes it visible only once whole); returns its size.
   * The timeout grows with the size (at least 1 MiB/s is expected). The descriptor stays open until
   * the upload itself ends, also after a timeout: its number is never reused under it.
   */
  async putFile(name: string, file: string): Promise<number> {
    const fd = fs.openSync(file, "r");
    let size: number;
    let upload: Promise<unknown>;
    try {
      size = fs.fstatSync(fd).size;
      this.calls.put++;
      upload = size <= singlePutBytesMax ? this.putBody(name, Bun.file(fd)) : this.client.write(this.key(name), Bun.file(fd));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    const close = () => fs.closeSync(fd);
    upload.then(close, close);
    await this.timed(`PUT ${name}`, () => upload, this.timeoutMs + (size / minUploadBytesPerSec) * 1000);
    return size;
  }

  /**
   * The object's bytes, or null when there is no such object. A plain fetch of a presigned URL: the
   * client's own read took 282–397 ms for a 124 MiB snapshot from s3rver, a fetch 184 ms. The
   * timeout runs to the response's headers, then again for the body, longer for a larger one.
   */
  async get(name: string): Promise<Uint8Array | null> {
    this.calls.get++;
    const url = this.client.presign(this.key(name), { method: "GET", expiresIn: presignSeconds });
    const abort = new AbortController();
    const what = `GET ${name}`;
    const res = await this.timed(what, () => fetch(url, { signal: abort.signal }), this.timeoutMs, () => abort.abort());
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    const bodyMs = this.timeoutMs + (Number(res.headers.get("content-length") ?? 0) / minUploadBytesPerSec) * 1000;
    const body = await this.timed<ArrayBuffer | string>(what, () => (res.ok ? res.arrayBuffer() : res.text()), bodyMs, () => abort.abort());
    if (typeof body === "string") throw new Error(`${what}: ${res.status} ${body.slice(0, 300)}`);
    return new Uint8Array(body);
  }

  /**
   * The object's bytes as they arrive (null when there is no such object), front to back, a window
   * at a time, while the caller uses what is in (a restore writes the database while its snapshot
   * downloads). The caller's fail() stops it. A body cut short is asked for again from where it
   * stopped (a Range GET); `attempts` tries in all, with get()'s timeouts.
   */
  async download(name: string, attempts: number): Promise<Arriving | null> {
    const first = await this.retrying(() => this.openGet(name, 0), attempts);
    if (first === null) return null;
    const into = new Arriving(first.length);
    void (async () => {
      let res: OpenedGet | null = first;
      for (let failures = 0; ; ) {
        try {
          res ??= await this.openGet(name, into.received);
          if (res === null) throw new ArchiveError("object gone while it was read", this.key(name));
          if (into.received + res.length !== into.size) throw new ArchiveError(`object changed size while it was read (${into.size} → ${into.received + res.length} bytes)`, this.key(name));
          await this.readBody(res, into);
          into.finish();
          return;
        } catch (err) {
          res = null;
          if (++failures >= attempts || err instanceof ArchiveError || into.failed) return into.fail(err);
          await Bun.sleep(backoffMs(failures - 1));
        }
      }
    })();
    return into;
  }

  /** A GET of the object from byte `from` on, up to its headers; null for a 404. */
  private async openGet(name: string, from: number): Promise<OpenedGet | null> {
    this.calls.get++;
    const url = this.client.presign(this.key(name), { method: "GET", expiresIn: presignSeconds });
    const abort = new AbortController();
    const what = `GET ${name}${from > 0 ? ` from byte ${from}` : ""}`;
    const init = from > 0 ? { signal: abort.signal, headers: { range: `bytes=${from}-` } } : { signal: abort.signal };
    const res = await this.timed(what, () => fetch(url, init), this.timeoutMs, () => abort.abort());
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (res.status !== (from > 0 ? 206 : 200) || !res.body) throw new Error(`${what}: ${res.status} ${(await res.text()).slice(0, 300)}`);
    const length = Number(res.headers.get("content-length") ?? NaN);
    if (!Number.isSafeInteger(length) || length < 0) {
      abort.abort();
      throw new Error(`${what}: no Content-Length`);
    }
    return { res, abort, what, length };
  }

  /** Reads an opened GET's body into `into`, within a timeout that grows with its length. */
  private async readBody(g: OpenedGet, into: Arriving): Promise<void> {
    const reader = g.res.body!.getReader();
    const end = into.received + g.length;
    const read = async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (into.received + value.length > end) throw new Error(`${g.what}: body longer than announced`);
        await into.add(value); // (waits while the reader is behind: the connection then waits too)
      }
      if (into.received !== end) throw new Error(`${g.what}: body ended at byte ${into.received} of ${end}`);
    };
    try {
      await this.timed(g.what, read, this.timeoutMs + (g.length / minUploadBytesPerSec) * 1000);
    } catch (err) {
      g.abort.abort(); // (the connection too, whatever stopped the read: a timeout, the reader gone)
      throw err;
    }
  }

  /**
   * Every object under `dir` (after the name `startAfter`, if given), in key order: its name relative
   * to the prefix, size, and upload time (ms; NaN if not told).
   */
  async list(dir: string, startAfter?: string): Promise<Listed[]> {
    const out: Listed[] = [];
    let token: string | undefined;
    const after = startAfter !== undefined ? { startAfter: this.key(startAfter) } : {};
    do {
      this.calls.list++;
      const page = await this.timed(`LIST ${dir}`, () =>
        this.client.list({ prefix: this.key(dir), ...(token !== undefined ? { continuationToken: token } : after) }),
      );
      for (const c of page.contents ?? []) {
        out.push({ name: c.key.slice(this.target.prefix.length), size: c.size ?? 0, modified: Date.parse(c.lastModified ?? "") });
      }
      token = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async delete(name: string): Promise<void> {
    this.calls.delete++;
    await this.timed(`DELETE ${name}`, () => this.client.delete(this.key(name)));
  }

  /** `call` with up to `attempts` tries, waiting backoffMs between them; the last failure is thrown. */
  async retrying<T>(call: () => Promise<T>, attempts: number, stopped: () => boolean = () => false): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await call();
      } catch (err) {
        if (i + 1 >= attempts || stopped() || err instanceof ArchiveError) throw err;
        await Bun.sleep(backoffMs(i));
      }
    }
  }

  /** Bun's client has no timeout of its own for every call: a silent endpoint would hang it. */
  private timed<T>(what: string, call: () => Promise<T>, ms = this.timeoutMs, onTimeout?: () => void): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout?.();
        reject(new Error(`${what}: no answer in ${Math.round(ms)} ms`));
      }, ms);
    });
    return Promise.race([call(), timeout]).finally(() => clearTimeout(timer));
  }
}

function definedOnly(s: S3Settings): S3Settings {
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as S3Settings;
}
