import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fakeLongTermKey, secretFragments } from '../support/secrets';
import { jsonLines, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

/**
 * The package as others would install it: `npm pack` of the package (its `files`, the CLI built by
 * scripts/build-cli.mjs), installed into an empty folder with `npm ci --offline` (its dependencies come from the
 * local npm cache, pinned by a lockfile made from this repository's), then `npx keyguard scan` and `replay` run
 * there with no TypeScript toolchain. The package is staged in a temporary folder (package.json, README, bin,
 * examples, dist built there), so the repository's own dist/ is never rebuilt under other running tests.
 */

type Lock = { packages: Record<string, LockEntry> };
type LockEntry = {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [k: string]: unknown;
};
type Manifest = { version: string; dependencies?: Record<string, string>; files: string[] };

const NPM_BIN = dirname(process.execPath);
const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as Manifest;

/**
 * The environment without npm's lifecycle variables (jest may run under `npm test`, whose npm_config_local_prefix
 * and npm_package_* describe this repository), but with the npm cache and user config in force; a quiet npm.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^npm_/i.test(k) || /^npm_config_(cache|userconfig)$/i.test(k)) env[k] = v;
  return { ...env, PATH: `${NPM_BIN}:${env.PATH ?? ''}`, npm_config_update_notifier: 'false' };
}

function run(cmd: string, args: string[], cwd: string, timeout = 180_000): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: cleanEnv(), timeout });
  if (r.error) throw r.error;
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Where node would find `name` from the lockfile entry at `from` (nested first, then up to the top). */
function locate(lock: Lock, name: string, from: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ''}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!dir) return undefined;
    const up = dir.lastIndexOf('/node_modules/');
    dir = up < 0 ? '' : dir.slice(0, up);
  }
}

/**
 * A lockfile for a folder depending on the tarball only: the tarball's dependencies and theirs, at this
 * repository's locked versions and integrity, so `npm ci --offline` takes them from the cache.
 */
function appLock(tarball: string): object {
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as Lock;
  const entries: Record<string, LockEntry> = {};
  const todo = Object.keys(manifest.dependencies ?? {}).map((name) => {
    const at = locate(lock, name, '');
    if (!at) throw new Error(`package-lock.json has no ${name}`);
    return at;
  });
  for (let at = todo.pop(); at !== undefined; at = todo.pop()) {
    if (entries[at]) continue;
    const { dev: _dev, devOptional: _devOptional, peer: _peer, ...entry } = lock.packages[at] as LockEntry;
    entries[at] = entry;
    const optional = entry.optionalDependencies ?? {};
    for (const name of Object.keys({ ...entry.dependencies, ...optional })) {
      const dep = locate(lock, name, at);
      if (dep) todo.push(dep);
      else if (!(name in optional)) throw new Error(`package-lock.json has no ${name} (needed by ${at})`);
    }
  }
  return {
    name: 'keyguard-install-check',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'keyguard-install-check', dependencies: { 'bedrock-key-guard': tarball } },
      'node_modules/bedrock-key-guard': {
        version: manifest.version,
        resolved: tarball,
        dependencies: manifest.dependencies,
        bin: { keyguard: 'bin/keyguard.js' },
      },
      ...entries,
    },
  };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

let app = '';
let installed = '';

beforeAll(() => {
  // Prepare: the package staged and built, packed, and installed into an empty folder.
  const stage = tempDir('keyguard-pack-stage-');
  for (const f of ['package.json', 'README.md', 'docs', 'bin/keyguard.js', 'examples'])
    cpSync(join(REPO, f), join(stage, f), { recursive: true });
  ok(
    run(process.execPath, [join(REPO, 'scripts', 'build-cli.mjs'), '--outdir', join(stage, 'dist')], REPO),
    'build',
  );
  const out = tempDir('keyguard-pack-out-');
  const packed = JSON.parse(
    ok(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], stage), 'npm pack'),
  ) as Array<{ filename: string }>;
  app = tempDir('keyguard-pack-app-');
  const tarball = `file:${relative(app, join(out, packed[0]?.filename ?? ''))}`;
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'keyguard-install-check',
      private: true,
      dependencies: { 'bedrock-key-guard': tarball },
    }),
  );
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify(appLock(tarball)));
  ok(run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], app), 'npm ci --offline');
  installed = join(app, 'node_modules', 'bedrock-key-guard');
}, 300_000);

afterAll(removeTempDirs);

/** `npx keyguard …` in the folder the package was installed into, offline. */
function npxKeyguard(...args: string[]): SpawnSyncReturns<string> {
  return run('npx', ['--offline', '--no', '--', 'keyguard', ...args], app, 120_000);
}

describe('the packed CLI, installed into an empty folder', () => {
  it('packs only what runs and its documentation: the built CLI, the bin shim, examples, README and docs/; no TypeScript', () => {
    // Act: what `npm pack` would take from the repository itself
    const listed = JSON.parse(
      ok(run('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], REPO), 'npm pack --dry-run'),
    ) as Array<{ files: Array<{ path: string }> }>;

    // Assess
    const paths = (listed[0]?.files ?? []).map((f) => f.path);
    expect(paths).toEqual(
      // docs/configuration.md: the file a config error names (see docs/configuration.md) and README.md links to.
      expect.arrayContaining(['bin/keyguard.js', 'package.json', 'README.md', 'docs/configuration.md']),
    );
    const outside = paths.filter(
      (p) =>
        !/^(dist\/[^/]+\.(js|js\.map|json)|bin\/keyguard\.js|examples\/.+|README\.md|docs\/.+\.md|package\.json)$/.test(
          p,
        ),
    );
    expect(outside).toEqual([]);
    expect(paths.filter((p) => p.endsWith('.ts'))).toEqual([]);
  });

  it('installs the bundles, with no TypeScript toolchain and only the runtime dependencies', () => {
    // Assess
    for (const f of [
      'dist/keyguard.js',
      'dist/vendor.js',
      'dist/archive-worker.js',
      'bin/keyguard.js',
      'docs/configuration.md',
    ])
      expect(existsSync(join(installed, f))).toBe(true);
    expect(filesUnder(installed).filter((f) => f.endsWith('.ts'))).toEqual([]);
    const modules = readdirSync(join(app, 'node_modules'));
    for (const toolchain of ['typescript', 'tsx', 'esbuild', '@swc', 'ts-node'])
      expect(modules).not.toContain(toolchain);
    expect(modules).toEqual(expect.arrayContaining(Object.keys(manifest.dependencies ?? {})));
  });

  it('npx keyguard --version prints the package version', () => {
    // Act
    const r = npxKeyguard('--version');

    // Assess
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(manifest.version);
  });

  it('npx keyguard scan finds a planted key, redacted, and exits 1', () => {
    // Prepare
    const key = fakeLongTermKey('pack-test');
    writeFile(join(app, 'src', 'settings.env'), `BEDROCK=1\nAWS_BEARER_TOKEN_BEDROCK=${key}\n`);
    writeFile(join(app, 'src', 'clean.txt'), 'nothing here\n');

    // Act
    const r = npxKeyguard('scan', '--format', 'json', 'src');

    // Assess
    expect(r.status).toBe(1);
    const findings = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { path: string; line: number; kind: string });
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ path: join('src', 'settings.env'), line: 2 });
    for (const fragment of secretFragments(key)) expect(r.stdout + r.stderr).not.toContain(fragment);
  });

  it('npx keyguard replay replays the shipped examples on worker threads, into a local store', () => {
    // Prepare
    const store = join(app, 'store');
    const examples = join(installed, 'examples');

    // Act
    const r = npxKeyguard(
      'replay',
      '--json',
      '--jobs',
      '2',
      '--store',
      store,
      join(examples, 'cloudtrail'),
      join(examples, 'events'),
    );

    // Assess
    expect(r.status).toBe(0);
    const decisions = jsonLines(r.stdout);
    expect(decisions).toHaveLength(15);
    expect(decisions.every((d) => d.trigger.kind === 'replay' && d.applied === false)).toBe(true);
    expect(r.stderr).toMatch(/^Files: 9 read, 0 with errors$/m);
    expect(r.stderr).not.toMatch(/warning/i);
    expect(existsSync(store)).toBe(true);
  });
});
