// The prefetch worker: reads one file into shared memory for the main thread; a thin shell around
// src/prefetch.ts.

import { servePrefetch } from "../src/prefetch.ts";

servePrefetch();
