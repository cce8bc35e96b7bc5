// Loaded by the writer worker in fail-stop tests (OpenOptions.writerIO): the real disk, except that
// once the trigger file exists, every call of one operation fails with the given errno.

import * as fs from "node:fs";
import { nodeIO, type FileIO } from "../../src/io/file-io.ts";

export interface FailingOptions {
  op: "pwrite" | "fdatasync" | "openWrite";
  code: "EIO" | "ENOSPC";
  /** Armed once this file exists; the test creates it when the failure should start. */
  trigger: string;
  /** Only calls on files whose path contains this fail (e.g. "/snap/"); default: every file. */
  pathIncludes?: string;
}

export default function failingIO(options: unknown): FileIO {
  const o = options as FailingOptions;
  const paths = new Map<number, string>();
  const check = (op: FailingOptions["op"], file: string | undefined) => {
    if (o.pathIncludes !== undefined && !(file ?? "").includes(o.pathIncludes)) return;
    if (op === o.op && fs.existsSync(o.trigger)) {
      const e = new Error(`${o.code}: injected on ${op}`) as NodeJS.ErrnoException;
      e.code = o.code;
      throw e;
    }
  };
  return {
    ...nodeIO,
    openWrite(p, opts) {
      check("openWrite", p);
      const fd = nodeIO.openWrite(p, opts);
      paths.set(fd, p);
      return fd;
    },
    pwrite(fd, bytes, position) {
      check("pwrite", paths.get(fd));
      nodeIO.pwrite(fd, bytes, position);
    },
    fdatasync(fd) {
      check("fdatasync", paths.get(fd));
      nodeIO.fdatasync(fd);
    },
  };
}
