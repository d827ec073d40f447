/**
 * Entry of the `keyguard scan --jobs N` workers (scan-pool.ts) when the CLI runs from source: a worker thread
 * starts without the TypeScript loader its parent may have (tsx, SWC under jest), so this plain file registers
 * tsx, then loads the TypeScript worker. The built CLI starts dist/scan-worker.js instead (no tsx).
 */
require('tsx/cjs');
require('./scan-worker-main.ts');
