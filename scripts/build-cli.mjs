#!/usr/bin/env node
/**
 * Builds the `keyguard` CLI into dist/ with esbuild, so that bin/keyguard.js starts compiled JavaScript instead
 * of transpiling TypeScript at every start (tsx). Run by `npm run build:cli`, and by `npm ci`/`npm install` of
 * the repository (`prepare`).
 *
 * Output (CommonJS, Node 20, minified, with source maps):
 *   dist/keyguard.js        the CLI (bin/keyguard.ts) and the project code it imports, commander and zod
 *   dist/vendor.js          the AWS SDK, Smithy and cli-progress, loaded only when a command first uses one of
 *                           their exports (see lazyPackages): `--version`, `--help`, `scan` and `policy` never
 *                           parse this 1.3 MB
 *   dist/archive-worker.js  the replay scan worker (lambda/cli/archive-worker-main.ts). archive-pool.ts starts
 *                           `join(__dirname, 'archive-worker.js')`: from the bundle __dirname is dist/, so it
 *                           finds this file; from source it finds lambda/cli/archive-worker.js (the tsx shim)
 *   dist/scan-worker.js     the `keyguard scan --jobs N` worker (lambda/cli/scan-worker-main.ts), found the same
 *                           way by scan-pool.ts (from source: lambda/cli/scan-worker.js)
 *   dist/inputs.json        the project files the bundles were built from: bin/keyguard.js runs the bundle only
 *                           while none of them is newer (a checkout being edited runs from source instead)
 *
 * External (not bundled, so a runtime dependency of the package): dynalite, the embedded DynamoDB, which loads
 * LevelDB's native addon (classic-level) and is resolved from its own folder at run time.
 *
 * Source maps: `node --enable-source-maps bin/keyguard.js …` gives stacks in the TypeScript sources. Not on by
 * default: Node reads and parses a bundle's whole map when it loads the bundle, which would cost more than the
 * CLI's start itself.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const rootRequire = createRequire(join(ROOT, 'package.json'));

/** Packages left out of the bundles: a runtime dependency of the installed package. */
export const EXTERNAL = ['dynalite'];

/** Packages the project imports whose code goes to dist/vendor.js and runs only on first use of an export. */
const LAZY = /^(@aws-sdk\/|@smithy\/|cli-progress$)/;

/**
 * Node built-ins that Node does not load at start itself, loaded on first use too: at the top of the bundle
 * they would cost a fifth of the start (crypto, child_process, worker_threads, zlib and what they pull in).
 */
const LAZY_BUILTIN =
  /^node:(buffer|child_process|crypto|fs\/promises|net|os|stream|string_decoder|util|worker_threads|zlib)$/;

const COMMON = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  // Maps point at the sources by path and line; leaving the sources' text out keeps the package small.
  sourcesContent: false,
  // KEYGUARD_BUILD_MINIFY=0 keeps names and layout readable, for profiling (node --cpu-prof).
  minify: process.env.KEYGUARD_BUILD_MINIFY !== '0',
  // No keepNames: it wraps every function and class in a naming call at load (a tenth of the start); error
  // names the code checks are set explicitly (`this.name = …`, the SDK's exception names), as in the Lambda bundles.
  external: EXTERNAL,
  logLevel: 'warning',
};

/**
 * The names of `import { a, type B, c as d } from 'pkg'` statements (also `import type {…}`, across lines) in a
 * source, with how many such statements there are and how many times the source names the package at all.
 */
function namedImports(source, pkg) {
  const quoted = pkg.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const re = new RegExp(`import\\s+(?:type\\s+)?\\{([^}]*)\\}\\s*from\\s*['"]${quoted}['"]`, 'g');
  const names = [];
  let statements = 0;
  for (const m of source.matchAll(re)) {
    statements += 1;
    for (const spec of m[1].split(',')) {
      const name = spec
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)[0];
      if (name) names.push(name);
    }
  }
  const mentions = source.match(new RegExp(`['"]${quoted}['"]`, 'g'))?.length ?? 0;
  return { names, statements, mentions };
}

/**
 * esbuild plugin for the main bundles: an import of a LAZY package from project code resolves to a small module
 * whose exports are getters that load dist/vendor.js, and the package in it, on first access (a LAZY_BUILTIN: the
 * built-in module, on first access). Where a file only has `import { … } from` statements for the package, only
 * the names it imports get a getter (one per export of every SDK client would itself cost tens of milliseconds
 * at start), read from the file and checked against the package's real exports (type-only names are dropped);
 * any other form of import in that file gets a getter for every export. A package in node_modules that imports a
 * LAZY package fails the build: it would otherwise be bundled twice.
 */
function lazyPackages(used) {
  return {
    name: 'keyguard-lazy-packages',
    setup(build) {
      const lazy = new RegExp(`${LAZY.source}|${LAZY_BUILTIN.source}`);
      build.onResolve({ filter: lazy }, (args) => {
        // The small modules' own require of the built-in: left to esbuild (external, as every built-in).
        if (args.namespace === 'lazy') return undefined;
        const builtin = LAZY_BUILTIN.test(args.path);
        if (!builtin && args.importer.includes('/node_modules/')) {
          throw new Error(
            `${args.importer} imports ${args.path}: it would be bundled twice (main and vendor)`,
          );
        }
        // A package's own require of a built-in (commander's child_process): getters for all its exports.
        if (builtin && args.importer.includes('/node_modules/')) {
          return { path: `${args.path}|*`, namespace: 'lazy', pluginData: null };
        }
        if (!builtin) used.add(args.path);
        // Only `import { … } from` in the importing file: getters for the names it imports. Any other form there
        // (namespace, default, require, re-export, dynamic import): getters for every export, slower but complete.
        const named =
          args.kind === 'import-statement'
            ? namedImports(readFileSync(args.importer, 'utf8'), args.path)
            : null;
        const found = named && named.statements === named.mentions ? named.names : null;
        // One small module per importing file, with that file's names (the vendor bundle loads each package once).
        return {
          path: `${args.path}|${relative(ROOT, args.importer)}`,
          namespace: 'lazy',
          pluginData: found,
        };
      });
      build.onResolve({ filter: /^\.\/vendor\.js$/, namespace: 'lazy' }, () => ({
        path: './vendor.js',
        external: true,
      }));
      build.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => {
        const pkg = args.path.slice(0, args.path.indexOf('|'));
        const real = rootRequire(pkg);
        const exported = args.pluginData
          ? [...new Set(args.pluginData)].filter((n) => n in real).sort()
          : Object.keys(real).filter((n) => n !== '__esModule');
        const contents = [
          'let real;',
          LAZY_BUILTIN.test(pkg)
            ? `const load = () => real ?? (real = require(${JSON.stringify(pkg)}));`
            : `const load = () => real ?? (real = require('./vendor.js')[${JSON.stringify(pkg)}]());`,
          `for (const name of ${JSON.stringify(exported)})`,
          '  Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] });',
          // As the real module: with __esModule, a default import is its `default`, else the module itself.
          real.__esModule ? "Object.defineProperty(exports, '__esModule', { value: true });" : '',
        ].join('\n');
        return { contents, loader: 'js', resolveDir: ROOT };
      });
    },
  };
}

/**
 * Builds the CLI into `outdir` (default dist/, replaced whole); returns the esbuild metafiles. The build goes to a
 * sibling folder first, then takes the place of the old one by two renames, so a CLI starting meanwhile finds
 * either the old build or the new one (or, between the renames, none, and runs from source), never half of one.
 */
export async function buildCli({ outdir = DIST } = {}) {
  const final = outdir;
  const temp = `${final}.building-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  try {
    const metafiles = await buildInto(temp);
    const old = `${final}.old-${process.pid}`;
    if (existsSync(final)) renameSync(final, old);
    renameSync(temp, final);
    rmSync(old, { recursive: true, force: true });
    return metafiles;
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

async function buildInto(outdir) {
  const used = new Set();
  const main = await esbuild.build({
    ...COMMON,
    entryPoints: {
      keyguard: 'bin/keyguard.ts',
      'archive-worker': 'lambda/cli/archive-worker-main.ts',
      'scan-worker': 'lambda/cli/scan-worker-main.ts',
    },
    outdir,
    plugins: [lazyPackages(used)],
    metafile: true,
  });
  const packages = [...used].sort();
  const vendor = await esbuild.build({
    ...COMMON,
    stdin: {
      contents: `module.exports = {\n${packages.map((p) => `  ${JSON.stringify(p)}: () => require(${JSON.stringify(p)}),`).join('\n')}\n};\n`,
      resolveDir: ROOT,
      sourcefile: 'vendor-entry.js',
      loader: 'js',
    },
    outfile: join(outdir, 'vendor.js'),
    metafile: true,
  });
  const inputs = Object.keys(main.metafile.inputs)
    .filter((p) => !p.includes('node_modules/') && !p.includes(':'))
    .sort();
  writeFileSync(
    join(outdir, 'inputs.json'),
    `${JSON.stringify({ inputs: [...inputs, 'package.json', 'package-lock.json'] }, null, 1)}\n`,
  );
  return { main: main.metafile, vendor: vendor.metafile };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // `--outdir DIR` builds elsewhere than dist/ (the tests build into a temporary copy of the package).
  const at = process.argv.indexOf('--outdir');
  const outdir = at > 0 ? resolve(process.argv[at + 1] ?? '') : DIST;
  const t0 = Date.now();
  const { main, vendor } = await buildCli({ outdir });
  const sizes = Object.entries({ ...main.outputs, ...vendor.outputs })
    .filter(([p]) => !p.endsWith('.map'))
    .map(([p, o]) => `${relative(ROOT, join(outdir, basename(p)))} ${(o.bytes / 1024).toFixed(0)} KiB`);
  process.stderr.write(`keyguard CLI built in ${Date.now() - t0} ms: ${sizes.join(', ')}\n`);
}
