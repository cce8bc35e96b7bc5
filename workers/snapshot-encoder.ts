// The snapshot encoder worker: copies records out of shared arena blocks into snapshot chunks; a
// thin shell around src/snapshot-encoder.ts.

import { serveEncoderInWorker } from "../src/snapshot-encoder.ts";

serveEncoderInWorker();
