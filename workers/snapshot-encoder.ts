// The snapshot encoder worker: copies records out of shared arena blocks into snapshot chunks; a
// thin shell around src/store/snapshot-encoder.ts.

import { serveEncoderInWorker } from "../src/store/snapshot-encoder.ts";

serveEncoderInWorker();
