// Imported first by the preload: the costly whole-structure checks are on in tests (src/assert.ts
// reads this when it loads, so it must be set before any src module is imported).
process.env.HARMONYDB_VERIFY = "1";
