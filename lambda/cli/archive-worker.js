/**
 * Entry of the replay scan workers (archive-pool.ts) when the CLI runs from source. A worker thread starts a
 * fresh module system, without the TypeScript loader its parent may have (tsx from bin/keyguard.js, SWC under
 * jest): this plain file registers tsx, then loads the TypeScript worker, so the same file works from the
 * CLI's source fallback and from tests. The built CLI starts dist/archive-worker.js instead (no tsx).
 */
require('tsx/cjs');
require('./archive-worker-main.ts');
