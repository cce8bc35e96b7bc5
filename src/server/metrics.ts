// Server metrics: request and operation counters, and the Prometheus text exposition of them and db.stats().

import type { Histogram, Stats } from "../index.ts";

/** Operations the handler counts, whatever route carried them (a batch counts each of its ops). */
export type OpKind = "put" | "get" | "delete" | "batch" | "list" | "watch_event";

export class Metrics {
  /** `route\tstatus` → requests answered. */
  private readonly requests = new Map<string, number>();
  private readonly ops: Record<OpKind, number> = { put: 0, get: 0, delete: 0, batch: 0, list: 0, watch_event: 0 };
  readonly startedAtMs = Date.now();

  request(route: string, status: number): void {
    const k = `${route}\t${status}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  op(kind: OpKind, n = 1): void {
    this.ops[kind] += n;
  }

  /** Requests answered so far for one route and status (tests and /v1/status). */
  requestCount(route: string, status: number): number {
    return this.requests.get(`${route}\t${status}`) ?? 0;
  }

  opCount(kind: OpKind): number {
    return this.ops[kind];
  }

  /** The Prometheus text format (version 0.0.4). `stats` is null while the WAL is replaying. */
  render(stats: Stats | null, extra: { ready: boolean; streams: number }): string {
    const out: string[] = [];
    const counter = family(out, "counter");
    const gauge = family(out, "gauge");
    counter("harmonydb_http_requests_total", "HTTP requests answered, by route and status.", [...this.requests].map(([k, n]) => {
      const [route, status] = k.split("\t");
      return [{ route: route!, status: status! }, n];
    }));
    counter("harmonydb_operations_total", "Key-value operations served over HTTP, by kind (a batch counts each op).", (Object.keys(this.ops) as OpKind[]).map(
      (kind) => [{ op: kind }, this.ops[kind]],
    ));
    gauge("harmonydb_ready", "1 once the WAL is replayed and the database accepts writes.", [[{}, extra.ready ? 1 : 0]]);
    gauge("harmonydb_watch_streams", "Open Server-Sent Event watch streams.", [[{}, extra.streams]]);
    gauge("harmonydb_uptime_seconds", "Seconds since the server started.", [[{}, (Date.now() - this.startedAtMs) / 1000]]);
    if (stats) renderStats(out, stats);
    return out.join("\n") + "\n";
  }
}

type Labels = Record<string, string>;
type Sample = [Labels, number];

function family(out: string[], type: "counter" | "gauge") {
  return (name: string, help: string, samples: Sample[]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) out.push(`${name}${labelText(labels)} ${num(v)}`);
  };
}

function renderStats(out: string[], s: Stats): void {
  const gauge = family(out, "gauge");
  const counter = family(out, "counter");
  gauge("harmonydb_revision", "Revision of the newest durable write.", [[{}, s.rev]]);
  gauge("harmonydb_keys", "Keys in the database.", [[{}, s.keys]]);
  gauge("harmonydb_pending_writes", "Writes framed into the WAL ring and not yet durable.", [[{}, s.pendingWrites]]);
  gauge("harmonydb_queued_writes", "Writes waiting for room in the WAL ring.", [[{}, s.queuedWrites]]);
  gauge("harmonydb_wal_failed", "1 once a WAL write or fdatasync failed: read-only until restarted.", [[{}, s.failed === null ? 0 : 1]]);
  gauge("harmonydb_watchers", "Open db.watch() iterators.", [[{}, s.watchers ?? 0]]);
  counter("harmonydb_wal_bytes_total", "Bytes written to the WAL since open.", [[{}, s.wal.bytes]]);
  gauge("harmonydb_wal_segment_seq", "Sequence number of the WAL segment being written.", [[{}, s.wal.segmentSeq]]);
  counter("harmonydb_wal_records_total", "WAL records written since open.", [[{}, s.wal.records]]);
  counter("harmonydb_wal_fsyncs_total", "Group-commit fdatasyncs since open.", [[{}, s.wal.fsyncs]]);
  gauge("harmonydb_wal_fsync_max_seconds", "Slowest group-commit fdatasync since open.", [[{}, s.wal.fsyncMsMax / 1000]]);
  gauge("harmonydb_recovery_seconds", "How long open() took to replay the WAL.", [[{}, s.recovery.ms / 1000]]);
  gauge("harmonydb_recovery_records", "WAL records replayed by open().", [[{}, s.recovery.records]]);
  gauge("harmonydb_snapshot_revision", "Revision of the newest durable snapshot (0: none).", [[{}, s.snapshot.rev]]);
  gauge("harmonydb_snapshot_bytes", "Size of the newest durable snapshot.", [[{}, s.snapshot.bytes]]);
  gauge("harmonydb_snapshot_running", "1 while a snapshot is being written.", [[{}, s.snapshot.running ? 1 : 0]]);
  gauge("harmonydb_wal_bytes_since_snapshot", "WAL bytes after the newest snapshot: what a restart replays.", [[{}, s.snapshot.walBytesSince]]);
  counter("harmonydb_snapshots_total", "Snapshots written since open.", [[{}, s.snapshot.taken]]);
  counter("harmonydb_wal_segments_deleted_total", "WAL segments deleted because a snapshot covers them, since open.", [[{}, s.snapshot.segmentsDeleted]]);
  const a = s.archive;
  if (a) {
    gauge("harmonydb_archive_revision", "Every revision up to this one is in the archive.", [[{}, a.rev]]);
    gauge("harmonydb_archive_behind_revisions", "Durable revisions not yet in the archive.", [[{}, a.behindRevs]]);
    gauge("harmonydb_archive_behind_seconds", "How long the oldest revision not yet archived has waited.", [[{}, a.behindMs / 1000]]);
    counter("harmonydb_archive_objects_total", "Objects uploaded to the archive since open.", [[{}, a.objects]]);
    counter("harmonydb_archive_bytes_total", "Bytes uploaded to the archive since open.", [[{}, a.bytes]]);
    counter("harmonydb_archive_requests_total", "S3 requests made by the archiver since open.", [[{}, a.requests]]);
    counter("harmonydb_archive_errors_total", "S3 requests of the archiver that failed since open.", [[{}, a.errors]]);
    counter("harmonydb_archive_deleted_total", "Objects the archive's retention deleted since open.", [[{}, a.deleted]]);
    counter("harmonydb_archive_list_requests_total", "LIST requests of the archiver since open (retention's one per run).", [[{}, a.lists]]);
  }
  // The engine counts per bucket; Prometheus wants cumulative counts. Microseconds become seconds.
  histogram(out, "harmonydb_wal_fsync_duration_seconds", "Group-commit fdatasync latency.", s.wal.fsyncLatencyUs, 1e-6);
  histogram(out, "harmonydb_wal_batch_records", "Records carried by one group commit.", s.wal.batchRecords, 1);
}

/** A per-bucket histogram as a Prometheus cumulative one; nothing if the engine did not provide it. */
export function histogram(out: string[], name: string, help: string, h: Histogram | undefined, scale: number): void {
  if (!isHistogram(h)) return;
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  let cumulative = 0;
  for (let i = 0; i < h.le.length; i++) {
    cumulative += h.counts[i]!;
    const le = h.le[i]!;
    out.push(`${name}_bucket{le="${le === Infinity ? "+Inf" : num(le * scale)}"} ${cumulative}`);
  }
  // A histogram always has a +Inf bucket equal to its count.
  if (h.le[h.le.length - 1] !== Infinity) out.push(`${name}_bucket{le="+Inf"} ${h.count}`);
  out.push(`${name}_sum ${num(h.sum * scale)}`, `${name}_count ${h.count}`);
}

function isHistogram(h: unknown): h is Histogram {
  if (typeof h !== "object" || h === null) return false;
  const x = h as Partial<Histogram>;
  return Array.isArray(x.le) && Array.isArray(x.counts) && x.le.length === x.counts.length && typeof x.sum === "number" && typeof x.count === "number";
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function num(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  // Round away float noise from the µs → s conversion (64e-6 prints as 0.000064, not 0.00006399…).
  return String(Number.isInteger(v) ? v : Number(v.toPrecision(12)));
}
