/**
 * Entry of the replay scan workers (archive-pool.ts). A worker thread starts a fresh module system, without
 * the TypeScript loader its parent may have (tsx from bin/keyguard.js, SWC under jest): this plain file
 * registers tsx, then loads the TypeScript worker, so the same file works from the CLI and from tests.
 */
require('tsx/cjs');
require('./archive-worker-main.ts');
