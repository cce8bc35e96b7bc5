// Runs s3rver (an S3-compatible server, from npm) under Node for the archive tests: argv[2] is its
// data directory, argv[3] a port (0: any); prints {"port": N} once it listens. Under Bun, s3rver
// answers PUTs with InternalError; under Node it needs the legacy OpenSSL provider (set by the caller)
// for its listing pagination tokens.
const S3rver = require("s3rver");

const server = new S3rver({
  address: "127.0.0.1",
  port: Number(process.argv[3] ?? 0),
  silent: true,
  directory: process.argv[2],
  configureBuckets: [{ name: "test" }],
});
server.run().then(
  ({ port }) => process.stdout.write(JSON.stringify({ port }) + "\n"),
  (err) => {
    process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
    process.exit(1);
  },
);
process.on("SIGTERM", () => server.close().then(() => process.exit(0)));
// The parent holds our stdin open: it closes when the parent exits, however it exits (a test run
// killed, a bench that crashed), and then so do we instead of listening on, orphaned.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
