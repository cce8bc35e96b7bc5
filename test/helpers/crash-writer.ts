// A child for kill -9 tests: writes key w<i> = i with many puts in flight and prints each
// acknowledged i on its own line ("ack <i> <rev>"), until it is killed.

import { open } from "../../src/index.ts";

const [dir, inflightArg] = process.argv.slice(2);
if (!dir) throw new Error("usage: crash-writer.ts <dir> [inflight]");
const inflight = Number(inflightArg ?? 64);
// Small segments and a low snapshot threshold: kills land during rotations and snapshots too.
// HARMONYDB_TEST_ARCHIVE: archive to that s3:// URL as well (endpoint and credentials from S3_*).
const archive = process.env.HARMONYDB_TEST_ARCHIVE;
const db = await open(dir, {
  segmentBytes: 256 * 1024,
  snapshotEveryBytes: 1024 * 1024,
  log: () => {},
  ...(archive ? { archive: { url: archive, maxLagMs: 50 } } : {}),
});
const start = db.stats().keys; // keys written by earlier runs of this child
let next = start;
process.stdout.write(`ready ${start}\n`);
async function lane(): Promise<never> {
  for (;;) {
    const i = next++;
    const rev = await db.put(`w${String(i).padStart(8, "0")}`, { i, pad: "p".repeat(i % 300) });
    process.stdout.write(`ack ${i} ${rev}\n`);
  }
}
await Promise.all(Array.from({ length: inflight }, lane));
