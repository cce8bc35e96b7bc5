// The directory LOCK: flock(LOCK_EX | LOCK_NB) through bun:ffi, held for the life of the database.

import { dlopen, FFIType, read } from "bun:ffi";
import * as fs from "node:fs";
import * as os from "node:os";
import { LockedError } from "../errors.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;

const libc = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", {
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
});

export interface DirLock {
  release(): void;
}

/**
 * Takes `<dir>/LOCK`. A second holder, in this process or another, gets LockedError naming the
 * first one (its pid and host, as it wrote them into the file).
 */
export function lockDir(dir: string): DirLock {
  const file = `${dir}/LOCK`;
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  if (libc.symbols.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = read.i32(libc.symbols.__errno_location()!, 0);
    fs.closeSync(fd);
    const holder = safeRead(file).trim();
    throw new LockedError(dir, holder ? `${holder} (errno ${errno})` : `another process (errno ${errno})`);
  }
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, `pid ${process.pid} on ${os.hostname()}\n`, 0);
  return {
    release() {
      fs.closeSync(fd); // closing the last descriptor drops the flock
    },
  };
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
