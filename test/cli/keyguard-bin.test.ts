import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { captureIO, jsonLines, REPO, removeTempDirs, tempDir } from './helpers';

// An extension-less import would find the executable shim bin/keyguard.js first: load the TypeScript directly.
const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

afterAll(removeTempDirs);

describe('keyguard command line', () => {
  it('lists the replay command in --help and exits 0', async () => {
    // Prepare
    const out = captureIO(REPO);

    // Act
    const code = await main(['node', 'keyguard', '--help'], out.io);

    // Assess
    expect(code).toBe(0);
    expect(out.stdout()).toMatch(/^Usage: keyguard \[options\] \[command\]/);
    expect(out.stdout()).toMatch(/replay \[options\] <paths\.\.\.>\s+replay CloudTrail logs/);
  });

  it('documents inputs, options and exit codes in replay --help', async () => {
    // Prepare
    const out = captureIO(REPO);

    // Act
    const code = await main(['node', 'keyguard', 'replay', '--help'], out.io);

    // Assess
    expect(code).toBe(0);
    const help = out.stdout();
    expect(help).toMatch(/^Usage: keyguard replay \[options\] <paths\.\.\.>/);
    for (const option of ['-c, --config <file>', '-s, --store <dir>', '--json'])
      expect(help).toContain(option);
    expect(help).toContain('.json, .jsonl, .ndjson and their .gz');
    expect(help).toMatch(/Exit codes:\n {2}0 {2}.*\n {2}1 {2}.*(\n {5}.*)*\n {2}2 {2}/);
  });

  it('exits 2 on a usage error, with the reason on stderr', async () => {
    // Prepare
    const missingArg = captureIO(REPO);
    const unknownOption = captureIO(REPO);

    // Act
    const code1 = await main(['node', 'keyguard', 'replay'], missingArg.io);
    const code2 = await main(['node', 'keyguard', 'replay', '--frobnicate', 'x'], unknownOption.io);

    // Assess
    expect([code1, code2]).toEqual([2, 2]);
    expect(missingArg.stderr()).toContain("error: missing required argument 'paths'");
    expect(unknownOption.stderr()).toContain("error: unknown option '--frobnicate'");
    expect(missingArg.stdout() + unknownOption.stdout()).toBe('');
  });

  it('passes --config, --store and --json through to replay', async () => {
    // Prepare
    const store = tempDir();
    const out = captureIO(REPO);

    // Act
    const code = await main(
      [
        'node',
        'keyguard',
        'replay',
        '--json',
        '-c',
        'examples/keyguard.config.json',
        '-s',
        store,
        'examples/events',
      ],
      out.io,
    );

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout())).toHaveLength(3);
    expect(out.stderr()).toContain(`(examples/keyguard.config.json); store ${store}`);
  });

  it('runs end to end as a process through bin/keyguard.js', () => {
    // Prepare
    const store = tempDir();

    // Act
    const run = spawnSync(
      process.execPath,
      [
        join(REPO, 'bin', 'keyguard.js'),
        'replay',
        '--json',
        '--store',
        store,
        'examples/cloudtrail',
        'examples/events',
      ],
      {
        cwd: REPO,
        encoding: 'utf8',
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: '' },
        timeout: 30_000,
      },
    );

    // Assess
    expect(run.status).toBe(0);
    const decisions = jsonLines(run.stdout);
    expect(decisions).toHaveLength(15);
    expect(decisions.every((d) => d.trigger.kind === 'replay' && d.applied === false)).toBe(true);
    expect(run.stderr).toMatch(/^Files: 9 read, 0 with errors$/m);
    expect(run.stderr).not.toMatch(/warning/i);
  });
  it('has every command wired: policy, audit and report run through the program as users call them', async () => {
    // Prepare: a local store made by replay, and a report path
    const store = tempDir();
    const replay = captureIO(REPO);
    expect(
      await main(['node', 'keyguard', 'replay', '--store', store, 'examples/cloudtrail'], replay.io),
    ).toBe(0);
    const policy = captureIO(REPO);
    const audit = captureIO(REPO);
    const report = captureIO(REPO);
    const html = join(tempDir(), 'report.html');

    // Act
    const policyCode = await main(['node', 'keyguard', 'policy', '--kind', 'scp'], policy.io);
    const auditCode = await main(['node', 'keyguard', 'audit', '--store', store, '--json'], audit.io);
    const reportCode = await main(
      ['node', 'keyguard', 'report', '--store', store, '--html', html],
      report.io,
    );

    // Assess
    expect(policyCode).toBe(0);
    const scp = JSON.parse(policy.stdout()) as { Statement: Array<{ Effect: string }> };
    expect(scp.Statement.length).toBeGreaterThan(0);
    expect(scp.Statement.every((st) => st.Effect === 'Deny')).toBe(true);
    expect(auditCode).toBe(0);
    expect(jsonLines(audit.stdout())).toHaveLength(12);
    expect(reportCode).toBe(0);
    expect(readFileSync(html, 'utf8')).toMatch(/^<!DOCTYPE html>/i);
  });
});

/**
 * The built CLI (scripts/build-cli.mjs) as bin/keyguard.js runs it, in a temporary copy of the checkout (bin, the
 * sources, package.json; node_modules linked), built there, so the repository's own dist/ is left alone.
 */
describe('bin/keyguard.js with the built CLI (dist/)', () => {
  let stage = '';
  const PROBE_MARK = 'typescript modules loaded: ';

  beforeAll(() => {
    stage = tempDir('keyguard-bin-stage-');
    for (const f of ['package.json', 'bin/keyguard.js', 'bin/keyguard.ts', 'lambda', 'examples'])
      cpSync(join(REPO, f), join(stage, f), { recursive: true });
    symlinkSync(join(REPO, 'node_modules'), join(stage, 'node_modules'));
    // Reports, at exit, how many TypeScript modules the process loaded (through tsx: none from the bundle), and
    // whether it loaded dist/vendor.js (the AWS SDK).
    writeFileSync(
      join(stage, 'probe.js'),
      `process.on('exit', () => process.stderr.write('\\n${PROBE_MARK}' + ` +
        `Object.keys(require.cache).filter((f) => f.endsWith('.ts')).length + ' ' + ` +
        `Object.keys(require.cache).some((f) => f.endsWith('vendor.js')) + '\\n'));\n`,
    );
    const build = spawnSync(
      process.execPath,
      [join(REPO, 'scripts', 'build-cli.mjs'), '--outdir', join(stage, 'dist')],
      { cwd: REPO, encoding: 'utf8', timeout: 120_000 },
    );
    if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  }, 180_000);

  function keyguard(root: string, ...args: string[]) {
    const r = spawnSync(
      process.execPath,
      ['-r', join(stage, 'probe.js'), join(root, 'bin', 'keyguard.js'), ...args],
      { cwd: root, encoding: 'utf8', env: { ...process.env }, timeout: 60_000 },
    );
    const probe = new RegExp(`\\n${PROBE_MARK}(\\d+) (true|false)\\n$`).exec(r.stderr);
    return {
      status: r.status,
      stdout: r.stdout,
      stderr: probe ? r.stderr.slice(0, probe.index) : r.stderr,
      tsModules: probe ? Number(probe[1]) : Number.NaN,
      sdkLoaded: probe?.[2] === 'true',
    };
  }

  it('runs the bundle, loading no TypeScript, for --version and a replay on worker threads', () => {
    // Act
    const version = keyguard(stage, '--version');
    const replay = keyguard(
      stage,
      'replay',
      '--json',
      '--jobs',
      '2',
      '--store',
      tempDir(),
      'examples/cloudtrail',
      'examples/events',
    );

    // Assess
    expect(version).toMatchObject({
      status: 0,
      stdout: `${JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version}\n`,
      tsModules: 0,
    });
    expect(replay.status).toBe(0);
    expect(replay.tsModules).toBe(0);
    expect(jsonLines(replay.stdout)).toHaveLength(15);
    expect(replay.stderr).toMatch(/^Files: 9 read, 0 with errors$/m);
    expect(replay.stderr).not.toMatch(/warning/i);
  });

  it('loads the AWS SDK (dist/vendor.js) only for a command that uses it', () => {
    // Prepare
    const dir = tempDir();
    writeFileSync(join(dir, 'notes.txt'), 'no key here\n');

    // Act
    const help = keyguard(stage, '--help');
    const scan = keyguard(stage, 'scan', dir);
    const replay = keyguard(stage, 'replay', '--store', tempDir(), 'examples/events');

    // Assess
    expect([help.status, scan.status, replay.status]).toEqual([0, 0, 0]);
    expect([help.sdkLoaded, scan.sdkLoaded, replay.sdkLoaded]).toEqual([false, false, true]);
  });

  it('writes the code cache after a run and survives a corrupt one, rewriting it', () => {
    // Prepare
    const cache = join(stage, 'dist', 'keyguard.js.v8cache');
    keyguard(stage, '--version');
    const written = existsSync(cache);
    writeFileSync(cache, 'not a V8 code cache');

    // Act
    const r = keyguard(stage, 'policy', '--kind', 'scp');

    // Assess
    expect(written).toBe(true);
    expect(r.status).toBe(0);
    expect(r.tsModules).toBe(0);
    expect((JSON.parse(r.stdout) as { Statement: unknown[] }).Statement.length).toBeGreaterThan(0);
    expect(readFileSync(cache, 'utf8')).not.toBe('not a V8 code cache');
  });

  it('runs from source (tsx) when a source file is newer than the bundle, with a notice on a terminal only', () => {
    // Prepare: bin/keyguard.ts edited after the build
    const source = join(stage, 'bin', 'keyguard.ts');
    const built = statSync(join(stage, 'dist', 'keyguard.js')).mtime;
    utimesSync(source, new Date(), new Date(built.getTime() + 60_000));

    // Act
    const r = keyguard(stage, 'replay', '--json', '--store', tempDir(), 'examples/events');
    // On a terminal (util-linux `script` gives the command one), a one-line notice says why the start is slow.
    const onTerminal = spawnSync(
      'script',
      ['-qec', `${process.execPath} ${join(stage, 'bin', 'keyguard.js')} --version`, '/dev/null'],
      { cwd: stage, encoding: 'utf8', timeout: 60_000 },
    );

    // Assess
    expect(r.status).toBe(0);
    expect(r.tsModules).toBeGreaterThan(0);
    expect(jsonLines(r.stdout)).toHaveLength(3);
    expect(r.stderr).not.toContain('running from source');
    expect(onTerminal.status).toBe(0);
    expect(onTerminal.stdout).toContain(
      'keyguard: dist/ is older than the sources: running from source (slow start; npm run build:cli)',
    );
  });

  it('fails clearly when neither the bundle nor the sources are there', () => {
    // Prepare: a copy of the package with its dist/ missing
    const broken = tempDir('keyguard-bin-broken-');
    cpSync(join(REPO, 'bin', 'keyguard.js'), join(broken, 'bin', 'keyguard.js'));

    // Act
    const r = keyguard(broken, '--version');

    // Assess
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      `${join(broken, 'dist', 'keyguard.js')} is missing: this copy of the package was not built`,
    );
  });
});
