// A child for kill -9 tests of harmonydb/kv: each commit adds one to ["count"], sets ["item", i]
// and enqueues i, all in one atomic write, with many commits in flight; prints "ack <i>
// <versionstamp>" for each acknowledged one, until it is killed.

import { openKv } from "../../src/kv/index.ts";

const [dir] = process.argv.slice(2);
if (!dir) throw new Error("usage: kv-crash-writer.ts <dir>");
// Small segments and a low snapshot threshold: kills land during rotations and snapshots too.
const kv = await openKv(dir, { segmentBytes: 256 * 1024, snapshotEveryBytes: 512 * 1024, log: () => {} });
const start = Number(((await kv.get<{ value: bigint }>(["count"])).value?.value ?? 0n));
let next = start;
process.stdout.write(`ready ${start}\n`);
async function lane(): Promise<never> {
  for (;;) {
    const i = next++;
    const r = await kv.atomic().sum(["count"], 1n).set(["item", i], { i, pad: "p".repeat(i % 200) }).enqueue(i).commit();
    if (!r.ok) throw new Error("a commit without checks failed");
    process.stdout.write(`ack ${i} ${r.versionstamp}\n`);
  }
}
await Promise.all(Array.from({ length: 32 }, lane));
