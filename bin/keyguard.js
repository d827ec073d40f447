#!/usr/bin/env node

/**
 * Executable shim for the `keyguard` bin (package.json "bin"). Runs the compiled CLI, dist/keyguard.js (built by
 * scripts/build-cli.mjs: `npm run build:cli`, and `prepare` on `npm ci`/`npm install`), so a start costs no
 * TypeScript transpiling. In a source checkout, when dist/ is missing or older than any file it was built from
 * (dist/inputs.json), it runs the TypeScript sources through tsx instead: the same code, a slower start, and a
 * one-line notice when stderr is a terminal. An installed package holds only dist/: it always runs the bundle.
 * The bundle is compiled with V8's code cache (dist/keyguard.js.v8cache, written after the first run, where
 * dist/ is writable): Node 20 has no compile cache of its own, and parsing and compiling the bundle is about a
 * third of the start.
 * Required rather than run (e.g. by a test resolving `bin/keyguard` to this file), it only exports the CLI module.
 */
// Set before the AWS SDK loads: its Node-version notice would otherwise pollute the CLI's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const { readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { dirname, join } = require('node:path');
const vm = require('node:vm');

const ROOT = join(__dirname, '..');
const BUNDLE = join(ROOT, 'dist', 'keyguard.js');
const SOURCE = join(ROOT, 'bin', 'keyguard.ts');
const CODE_CACHE = `${BUNDLE}.v8cache`;

/** 'fresh', 'missing', or 'stale' (a source file it was built from changed since). */
function bundleState() {
  const bundle = statSync(BUNDLE, { throwIfNoEntry: false });
  if (!bundle) return 'missing';
  // No sources beside it (an installed package): nothing to compare with.
  if (!statSync(SOURCE, { throwIfNoEntry: false })) return 'fresh';
  let inputs;
  try {
    inputs = JSON.parse(readFileSync(join(ROOT, 'dist', 'inputs.json'), 'utf8')).inputs;
  } catch {
    return 'stale';
  }
  for (const input of inputs) {
    const source = statSync(join(ROOT, input), { throwIfNoEntry: false });
    if (source && source.mtimeMs > bundle.mtimeMs) return 'stale';
  }
  return 'fresh';
}

/**
 * Loads the bundle as require() would (same module wrapper, require relative to dist/), compiled with the code
 * cache when there is one at least as new as the bundle. V8 rejects a cache made by another V8 version, with other
 * flags or for a source of another length; a missing or rejected cache is (re)written at exit, with the functions
 * this run compiled, through a temporary file and a rename (concurrent runs never see half a file). A cache that
 * cannot be written (read-only install) is simply not used.
 */
function loadBundle() {
  const source = readFileSync(BUNDLE, 'utf8');
  const cache = statSync(CODE_CACHE, { throwIfNoEntry: false });
  const cachedData =
    cache && cache.mtimeMs >= statSync(BUNDLE).mtimeMs ? readFileSync(CODE_CACHE) : undefined;
  const script = new vm.Script(Module.wrap(source), {
    filename: BUNDLE,
    cachedData,
    importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (!cachedData || script.cachedDataRejected) {
    process.once('exit', () => {
      const temp = `${CODE_CACHE}.${process.pid}.tmp`;
      try {
        writeFileSync(temp, script.createCachedData());
        renameSync(temp, CODE_CACHE);
      } catch {
        // Not writable (e.g. a global install owned by root): start without the cache.
      }
    });
  }
  const bundle = new Module(BUNDLE, module);
  bundle.filename = BUNDLE;
  bundle.paths = Module._nodeModulePaths(dirname(BUNDLE));
  script.runInThisContext()(bundle.exports, Module.createRequire(BUNDLE), bundle, BUNDLE, dirname(BUNDLE));
  bundle.loaded = true;
  return bundle.exports;
}

function loadCli() {
  const state = bundleState();
  if (state === 'fresh') return loadBundle();
  if (!statSync(SOURCE, { throwIfNoEntry: false })) {
    process.stderr.write(`keyguard: ${BUNDLE} is missing: this copy of the package was not built\n`);
    process.exit(1);
  }
  if (process.stderr.isTTY) {
    process.stderr.write(
      `keyguard: dist/ is ${state === 'missing' ? 'missing' : 'older than the sources'}: running from source (slow start; npm run build:cli)\n`,
    );
  }
  require('tsx/cjs');
  return require(SOURCE);
}

const cli = loadCli();
if (require.main === module) cli.runAsProcess();
else module.exports = cli;
