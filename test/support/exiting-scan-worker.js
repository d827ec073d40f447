/**
 * A stand-in for scan-worker-main.ts in `keyguard scan --jobs` tests: its thread exits on the first file it is
 * sent, as a worker that crashes would. Plain JavaScript: worker threads start without the test's TypeScript loader.
 */
const { parentPort } = require('node:worker_threads');

parentPort.on('message', () => process.exit(3));
