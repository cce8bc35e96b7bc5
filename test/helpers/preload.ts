// Test preload: the costly whole-structure checks are on in tests (see src/assert.ts).
process.env.HARMONYDB_VERIFY = "1";
