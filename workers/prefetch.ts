// The prefetch worker: reads one file into shared memory for the main thread; a thin shell around
// src/io/prefetch.ts.

import { servePrefetch } from "../src/io/prefetch.ts";

servePrefetch();
