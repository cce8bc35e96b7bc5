// What a route is called with: the server's shared state, the request and its parsed URL.

import type { Store, ReplayProgress } from "../index.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { WatchStream } from "./sse.ts";

/** What the handler serves, and what main.ts shares with it. Only `db` and `progress` are required. */
export interface ServerState {
  /** The database once it is open; null while the WAL replays. */
  db: Store | null;
  progress: ReplayProgress | null;
  /** With a token, every route but /healthz needs `Authorization: Bearer <token>`. */
  token?: string | null;
  /** Set when shutdown begins: new requests get 503, /readyz turns 503. */
  draining?: boolean;
  metrics?: Metrics;
  log?: Logger;
  /** Shown by /v1/status. */
  info?: Record<string, string | number | boolean>;
  /** How long ?min_rev= waits for its revision before 504 TIMEOUT (default 10,000 ms). */
  minRevWaitMs?: number;
  /** Open watch streams; shutdown ends them (sse.ts endStreams). */
  streams?: Set<WatchStream>;
}

/** The part of Bun's Server the handler uses: turning the idle timeout off for a watch stream. */
export interface ServerHooks {
  timeout(req: Request, seconds: number): void;
}

export type Handler = (req: Request, server?: ServerHooks) => Promise<Response>;

/** ServerState once createHandler has filled in the optional parts routes rely on. */
export type State = ServerState & { metrics: Metrics; log: Logger; streams: Set<WatchStream> };

export interface Ctx {
  state: State;
  req: Request;
  url: URL;
  server: ServerHooks | undefined;
  /** The percent-decoded key of /v1/kv/<key> ("" on other routes). */
  key: string;
}
