import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
    expect(help).toMatch(/Exit codes:\n\s+0 .*\n\s+1 .*\n\s+2 /);
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
