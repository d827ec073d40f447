/**
 * A stand-in for archive-worker-main.ts in the pool's tests: it answers ScanRequests like a scan worker, except
 * for files whose name asks for a failure: `deep` (a result the main thread cannot deserialise), `crash` (an
 * uncaught exception), `exit` (the thread exits), `stall` (never answers). Plain JavaScript: worker threads
 * start without the test's TypeScript loader.
 */
const { parentPort } = require('node:worker_threads');

function scanOf() {
  return {
    entries: [],
    problems: [],
    records: 1,
    skipped: { 'not-iam': 1, 'unsupported-event': 0, 'not-bearer-token': 0 },
    parsed: 0,
    invalidUtf8: 0,
  };
}

parentPort.on('message', (request) => {
  const name = request.file.display;
  if (name.includes('stall')) return;
  if (name.includes('exit')) process.exit(3);
  if (name.includes('crash')) throw new Error('boom in the worker');
  const scan = scanOf();
  // When it was answered, for the pool's look-ahead test (an extra field, passed back untouched).
  scan.answeredAt = Date.now();
  if (name.includes('deep')) {
    let value = { eventName: 'bottom' };
    for (let i = 0; i < 5000; i++) value = { a: value };
    scan.entries.push({ envelope: 'record', value, line: null });
  }
  parentPort.postMessage({ kind: 'result', id: request.id, scan });
});
