// Test preload for every file: verification on, temp dirs removed after each test.
import "./verify-env.ts";
import { afterEach } from "bun:test";
import { cleanupTmpDirs } from "./index.ts";

// Registered here, the hook applies to every test file (in a helper module, to the first only).
afterEach(cleanupTmpDirs);
