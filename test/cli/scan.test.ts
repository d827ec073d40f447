import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runScan, type ScanDeps, type ScanOptions } from '../../lambda/cli/scan';
import { findLeaks } from '../../lambda/domain/leaks';
import { fingerprint } from '../../lambda/shared/redact';
import { generatedShortTermKey, handBuiltShortTermKey } from '../support/bedrock-tokens';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';
import { captureIO, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

const NOW = new Date('2026-11-20T09:41:02Z');
const LONG = fakeLongTermKey('scan-long');
const LONG_2 = fakeLongTermKey('scan-long-2', '444455556666');
const SHORT = fakeShortTermKey('scan-short');
const EXPIRED = handBuiltShortTermKey({ expires: '60' });
let GENERATED = '';
const planted = () => [LONG, LONG_2, SHORT, EXPIRED, GENERATED];

beforeAll(async () => {
  GENERATED = await generatedShortTermKey({ signedAt: '2026-11-20T09:31:02Z', expiresInSeconds: 3600 });
});
afterAll(removeTempDirs);

function deps(over: Partial<ScanDeps> = {}): ScanDeps {
  return { now: () => NOW, chunkSize: 64 * 1024, gitBinary: 'git', version: '0.0.0-test', ...over };
}

async function scan(cwd: string, paths: string[], opts: ScanOptions = {}, over: Partial<ScanDeps> = {}) {
  const out = captureIO(cwd);
  const code = await runScan(paths, opts, out.io, deps(over));
  return { code, stdout: out.stdout(), stderr: out.stderr() };
}

interface JsonFinding {
  path: string;
  line: number;
  column: number;
  kind: string;
  facts: Record<string, unknown>;
  redacted: string;
  fingerprint: string;
  commit?: string;
}

const lines = (s: string): JsonFinding[] =>
  s
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as JsonFinding);

/** A project with keys in several kinds of file, a .git directory and a binary file (a key after a NUL byte). */
function project(): string {
  const dir = tempDir('keyguard-scan-');
  writeFile(join(dir, '.env'), `# local\nAWS_BEARER_TOKEN_BEDROCK=${LONG}\n`);
  writeFile(
    join(dir, 'config', 'app.json'),
    `{\n  "bedrock": {"token": "${SHORT.replace(/\//g, '\\/')}"}\n}\n`,
  );
  writeFile(join(dir, 'deploy', 'values.yaml'), `env:\n  - name: KEY\n    value: '${LONG_2}'\n`);
  writeFile(join(dir, 'logs', 'app.log'), `09:31 INFO auth=Bearer%20${encodeURIComponent(EXPIRED)} ok\n`);
  writeFile(join(dir, 'src', 'clean.ts'), 'export const prefix = "ABSK"; // bedrock-api-key- docs\n');
  writeFile(join(dir, '.git', 'config'), `token = ${LONG}\n`);
  writeFile(join(dir, 'image.bin'), Buffer.concat([Buffer.from([0x89, 0x50, 0, 1]), Buffer.from(LONG)]));
  return dir;
}

describe('keyguard scan: files and folders', () => {
  it('finds every planted key with path, position, kind and facts, skipping .git, searching binary files as bytes', async () => {
    // Prepare
    const dir = project();

    // Act
    const r = await scan(dir, ['.'], { format: 'json' });

    // Assess
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([
      {
        path: '.env',
        line: 2,
        column: 26,
        kind: 'LONG_TERM',
        facts: {
          userName: expect.stringMatching(/^BedrockAPIKey-/),
          accountId: '111122223333',
          alias: expect.stringMatching(/-at-111122223333$/),
        },
        redacted: `ABSK…${LONG.slice(-4)}`,
        fingerprint: fingerprint(LONG),
      },
      expect.objectContaining({
        path: 'config/app.json',
        line: 2,
        column: 25,
        kind: 'SHORT_TERM',
        fingerprint: fingerprint(SHORT),
        facts: expect.objectContaining({ region: 'us-east-1', expired: false, expiresInSeconds: 43200 }),
      }),
      expect.objectContaining({
        path: 'deploy/values.yaml',
        line: 3,
        column: 13,
        fingerprint: fingerprint(LONG_2),
        facts: expect.objectContaining({ accountId: '444455556666' }),
      }),
      expect.objectContaining({
        path: 'image.bin',
        line: 1,
        column: 5,
        kind: 'LONG_TERM',
        fingerprint: fingerprint(LONG),
      }),
      expect.objectContaining({
        path: 'logs/app.log',
        line: 1,
        column: 26,
        kind: 'SHORT_TERM',
        fingerprint: fingerprint(EXPIRED),
        facts: {
          accessKeyId: 'AKIAI44QH8DHBEXAMPLE',
          region: 'eu-west-1',
          signedAt: '2026-11-20T09:31:02.000Z',
          expiresInSeconds: 60,
          expiresAt: '2026-11-20T09:32:02.000Z',
          expired: true,
          hasSessionToken: false,
        },
      }),
    ]);
    expect(r.stderr).toContain(
      '5 keys found (3 long-term, 2 short-term) in 6 sources scanned; 1 binary searched as bytes;',
    );
  });

  it('prints one readable line per key in text format', async () => {
    // Prepare
    const dir = project();

    // Act
    const r = await scan(dir, ['.env', 'logs']);

    // Assess
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n').filter((l) => l)).toEqual([
      expect.stringMatching(
        /^\.env:2:26: LONG_TERM long-term key of IAM user BedrockAPIKey-\w{4} in account 111122223333 ABSK….{4} sha256:[0-9a-f]{16}$/,
      ),
      expect.stringMatching(
        /^logs\/app\.log:1:26: SHORT_TERM short-term key signed by AKIAI44QH8DHBEXAMPLE in eu-west-1 at 2026-11-20T09:31:02\.000Z, expired 2026-11-20T09:32:02\.000Z bedrock-api-key-….{4} sha256:/,
      ),
    ]);
  });

  it('reads standard input with -', async () => {
    // Prepare
    const stdin = () =>
      Readable.from([
        Buffer.from(`first\nx=${GENERATED.slice(0, 100)}`),
        Buffer.from(`${GENERATED.slice(100)}\n`),
      ]);

    // Act
    const r = await scan(tempDir(), ['-'], { format: 'json' }, { stdin });

    // Assess
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([
      expect.objectContaining({
        path: '-',
        line: 2,
        column: 3,
        kind: 'SHORT_TERM',
        facts: expect.objectContaining({
          accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
          region: 'us-west-2',
          expired: false,
        }),
      }),
    ]);
  });

  it('streams a large file in tiny chunks: keys across chunk boundaries found once, lines and columns right', async () => {
    // Prepare
    const dir = tempDir();
    const keys = [LONG, SHORT, GENERATED, LONG_2];
    let text = '';
    for (let i = 0; text.length < 260_000; i += 1) {
      text += `${'ünïcödé 😀 '.repeat(i % 5)}${'filler '.repeat((i * 13) % 400)}\n`;
      if (i % 9 === 0) text += `k${i}=${keys[i % keys.length]}${i % 2 ? ' ' : '\n'}`;
    }
    writeFile(join(dir, 'big.log'), text);
    const expected = findLeaks(text, { now: NOW });

    // Act
    const r = await scan(dir, ['big.log'], { format: 'json' }, { chunkSize: 61 });
    const smallOverlap = await scan(dir, ['big.log'], { format: 'json' }, { chunkSize: 61, overlap: 2000 });

    // Assess
    expect(expected.length).toBeGreaterThan(20);
    expect(lines(r.stdout).map((f) => [f.line, f.column, f.fingerprint])).toEqual(
      expected.map((f) => [f.line, f.column, f.fingerprint]),
    );
    expect(lines(smallOverlap.stdout).map((f) => [f.line, f.column, f.fingerprint])).toEqual(
      expected.map((f) => [f.line, f.column, f.fingerprint]),
    );
  });

  it('exits 0 when nothing is found', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'README.md'), 'Keys look like ABSK… and bedrock-api-key-…\n');

    // Act
    const r = await scan(dir, ['.']);

    // Assess
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('0 keys found');
  });

  it('exits 2 on a path it cannot read, naming it on stderr, and still scans the others', async () => {
    // Prepare
    const dir = project();

    // Act
    const r = await scan(dir, ['missing.txt', '.env'], { format: 'json' });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('keyguard: missing.txt: no such file or directory');
    expect(lines(r.stdout).map((f) => f.path)).toEqual(['.env']);
  });

  it('exits 2 on usage errors', async () => {
    // Prepare
    const dir = tempDir();

    // Act
    const noPaths = await scan(dir, []);
    const badFormat = captureIO(dir);
    const badFormatCode = await main(['node', 'keyguard', 'scan', '--format', 'xml', '.'], badFormat.io);

    // Assess
    expect(noPaths.code).toBe(2);
    expect(noPaths.stderr).toContain('give paths to scan');
    expect(badFormatCode).toBe(2);
    expect(badFormat.stderr()).toContain("argument 'xml' is invalid");
  });
});

describe('keyguard scan: allow-listing', () => {
  it('does not report a key on a line with keyguard:allow', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'test.env'), `A=${LONG} # keyguard:allow (test fixture)\nB=${LONG_2}\n`);

    // Act
    const r = await scan(dir, ['.'], { format: 'json' });

    // Assess
    expect(r.code).toBe(1);
    expect(lines(r.stdout).map((f) => f.fingerprint)).toEqual([fingerprint(LONG_2)]);
    expect(r.stderr).toContain('suppressed: 1 by keyguard:allow, 0 by baseline');
  });

  it('writes a baseline, then ignores its fingerprints', async () => {
    // Prepare
    const dir = project();

    // Act
    const written = await scan(dir, ['.'], { writeBaseline: 'baseline.json' });
    const baseline = JSON.parse(readFileSync(join(dir, 'baseline.json'), 'utf8')) as string[];
    const again = await scan(dir, ['.'], { baseline: 'baseline.json' });

    // Assess
    expect(written.code).toBe(0);
    expect([...baseline].sort()).toEqual([LONG, SHORT, LONG_2, EXPIRED].map(fingerprint).sort());
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('');
    // Five findings (the binary file holds a key of .env again) of four keys.
    expect(again.stderr).toContain('suppressed: 0 by keyguard:allow, 5 by baseline');
  });

  it('accepts the json output lines as a baseline, and reports keys not in it', async () => {
    // Prepare
    const dir = project();
    const first = await scan(dir, ['.env'], { format: 'json' });
    writeFile(join(dir, 'known.jsonl'), first.stdout);

    // Act
    const r = await scan(dir, ['.'], { format: 'json', baseline: 'known.jsonl' });

    // Assess
    expect(r.code).toBe(1);
    expect(lines(r.stdout).map((f) => f.path)).toEqual([
      'config/app.json',
      'deploy/values.yaml',
      'logs/app.log',
    ]);
  });

  it('exits 2 on a baseline it cannot read or understand', async () => {
    // Prepare
    const dir = project();
    writeFile(join(dir, 'bad.json'), '[1, 2]');

    // Act
    const missing = await scan(dir, ['.'], { baseline: 'nope.json' });
    const bad = await scan(dir, ['.'], { baseline: 'bad.json' });

    // Assess
    expect([missing.code, bad.code]).toEqual([2, 2]);
    expect(missing.stderr).toContain('keyguard: nope.json: cannot read baseline');
    expect(bad.stderr).toContain('keyguard: bad.json: cannot read baseline');
  });
});

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
}

function repoWithDeletedKey(): { repo: string; introducing: string } {
  const repo = tempDir('keyguard-git-');
  git(repo, 'init', '-q');
  git(repo, 'config', 'user.name', 'Test');
  git(repo, 'config', 'user.email', 'test@example.com');
  git(repo, 'config', 'commit.gpgsign', 'false');
  writeFile(join(repo, 'README.md'), 'hello\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'first');
  writeFile(join(repo, 'config', 'prod.env'), `MODE=prod\nKEY=${LONG}\n`);
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'add config');
  const introducing = git(repo, 'rev-parse', 'HEAD');
  git(repo, 'rm', '-q', 'config/prod.env');
  git(repo, 'commit', '-q', '-m', 'remove the key');
  return { repo, introducing };
}

describe('keyguard scan --git', () => {
  it('finds a key deleted from the working tree in history, with the commit that introduced it', async () => {
    // Prepare
    const { repo, introducing } = repoWithDeletedKey();

    // Act
    const tree = await scan(repo, ['.']);
    const history = await scan(repo, [], { format: 'json', git: true });

    // Assess
    expect(tree.code).toBe(0);
    expect(history.code).toBe(1);
    expect(lines(history.stdout)).toEqual([
      expect.objectContaining({
        path: 'config/prod.env',
        line: 2,
        column: 5,
        kind: 'LONG_TERM',
        fingerprint: fingerprint(LONG),
        commit: introducing,
      }),
    ]);
  });

  it('scans a repository given by path, in text and SARIF', async () => {
    // Prepare
    const { repo, introducing } = repoWithDeletedKey();
    const cwd = tempDir();

    // Act
    const text = await scan(cwd, [], { git: repo });
    const sarif = await scan(cwd, [], { git: repo, format: 'sarif' });

    // Assess
    expect(text.stdout).toMatch(new RegExp(`^${introducing.slice(0, 12)}:config/prod\\.env:2:5: LONG_TERM `));
    const result = JSON.parse(sarif.stdout).runs[0].results[0];
    expect(result.locations[0].physicalLocation.artifactLocation.uri).toBe('config/prod.env');
    expect(result.properties.commit).toBe(introducing);
  });

  it('prints the same findings in the same order with --jobs 1, 2 and 3 (blobs read by parallel cat-file)', async () => {
    // Prepare: 300 files (more than one part of blobs per job), keys in some of them, two commits.
    const { repo } = repoWithDeletedKey();
    for (let i = 0; i < 300; i += 1) {
      const key = i % 37 === 0 ? (i % 2 ? LONG_2 : SHORT) : '';
      writeFile(
        join(repo, 'many', `f${String(i).padStart(3, '0')}.txt`),
        `file ${i}\n${'x'.repeat(i * 40)}\n${key}\n`,
      );
    }
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'many files');

    // Act
    const runs = await Promise.all(
      [1, 2, 3].map((jobs) => scan(repo, [], { format: 'json', git: true, jobs }, { chunkSize: 257 })),
    );

    // Assess
    const [one, two, three] = runs as [(typeof runs)[0], (typeof runs)[0], (typeof runs)[0]];
    expect(lines(one.stdout)).toHaveLength(10);
    for (const other of [two, three]) {
      expect(other.stdout).toBe(one.stdout);
      expect(other.stderr).toBe(one.stderr);
      expect(other.code).toBe(1);
    }
  });

  it('exits 2 when the directory is not a git repository', async () => {
    // Prepare
    const notRepo = tempDir();

    // Act
    const r = await scan(notRepo, [], { git: true });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/keyguard: git \.: .*not a git repository/i);
  });
});

describe('keyguard scan --format sarif', () => {
  it('writes SARIF 2.1.0 that GitHub code scanning accepts', async () => {
    // Prepare
    const dir = project();

    // Act
    const r = await scan(dir, ['.'], { format: 'sarif' });
    const log = JSON.parse(r.stdout);

    // Assess
    expect(r.code).toBe(1);
    expect(log.version).toBe('2.1.0');
    expect(log.$schema).toBe('https://json.schemastore.org/sarif-2.1.0.json');
    expect(log.runs).toHaveLength(1);
    const run = log.runs[0];
    expect(run.tool.driver.name).toBe('keyguard');
    expect(run.tool.driver.rules.map((x: { id: string }) => x.id)).toEqual([
      'bedrock-long-term-api-key',
      'bedrock-short-term-api-key',
    ]);
    for (const rule of run.tool.driver.rules) {
      expect(rule.shortDescription.text).toEqual(expect.any(String));
      expect(rule.help.text).toEqual(expect.any(String));
      expect(rule.properties['security-severity']).toMatch(/^\d+(\.\d+)?$/);
    }
    expect(run.results).toHaveLength(5);
    for (const result of run.results) {
      expect(['bedrock-long-term-api-key', 'bedrock-short-term-api-key']).toContain(result.ruleId);
      expect(run.tool.driver.rules[result.ruleIndex].id).toBe(result.ruleId);
      expect(result.level).toBe('error');
      expect(result.message.text).toEqual(expect.any(String));
      const loc = result.locations[0].physicalLocation;
      expect(loc.artifactLocation.uri).not.toMatch(/^\/|\\/);
      expect(loc.region.startLine).toBeGreaterThanOrEqual(1);
      expect(loc.region.startColumn).toBeGreaterThanOrEqual(1);
      expect(result.partialFingerprints['keyguardFingerprint/v1']).toMatch(/^sha256:[0-9a-f]{16}$/);
    }
    expect(run.results[0].locations[0].physicalLocation).toEqual({
      artifactLocation: { uri: '.env' },
      region: { startLine: 2, startColumn: 26 },
    });
  });
});

describe('keyguard scan: no key material in any output', () => {
  it.each(['text', 'json', 'sarif'] as const)(
    'prints no fragment of a planted key in %s format',
    async (format) => {
      // Prepare
      const dir = project();
      writeFile(join(dir, 'gen.txt'), `${GENERATED}\n`);
      const stdin = () => Readable.from([`${LONG} ${SHORT}\n`]);

      // Act
      const r = await scan(dir, ['.', '-', 'missing'], { format }, { stdin });
      const viaMain = captureIO(dir);
      await main(['node', 'keyguard', 'scan', '--format', format, '.'], viaMain.io);

      // Assess
      expect(r.code).toBe(2);
      expect(r.stdout.length).toBeGreaterThan(0);
      const all = r.stdout + r.stderr + viaMain.stdout() + viaMain.stderr();
      expect(leakedFragments(all, planted())).toEqual([]);
    },
  );
});

describe('keyguard scan --jobs (issue 13: files spread over worker threads)', () => {
  it('prints the same findings, summary and problems in the same order with 1, 2 and 3 jobs', async () => {
    // Prepare: the project, more files with keys (one in tiny chunks across boundaries), one unreadable path.
    const dir = project();
    for (let i = 0; i < 12; i += 1) {
      writeFile(
        join(dir, 'more', `f${i}.txt`),
        `${'ünï 😀 filler\n'.repeat(i * 50)}k=${i % 2 ? LONG : SHORT}\n`,
      );
    }

    // Act
    const runs = await Promise.all(
      [1, 2, 3].map((jobs) =>
        scan(dir, ['.', 'missing.txt', 'more/f3.txt'], { format: 'json', jobs }, { chunkSize: 97 }),
      ),
    );

    // Assess
    const [one, two, three] = runs as [(typeof runs)[0], (typeof runs)[0], (typeof runs)[0]];
    expect(lines(one.stdout)).toHaveLength(18);
    expect(one.code).toBe(2);
    for (const other of [two, three]) {
      expect(other.code).toBe(one.code);
      expect(other.stdout).toBe(one.stdout);
      expect(other.stderr).toBe(one.stderr);
    }
    expect(one.stderr).toContain('keyguard: missing.txt: no such file or directory');
    expect(one.stderr).toContain('1 binary searched as bytes');
  });

  it('scans in-process what a worker that exits left, losing no file and printing the same findings', async () => {
    // Prepare
    const dir = project();
    for (let i = 0; i < 12; i += 1) writeFile(join(dir, 'more', `f${i}.txt`), `k=${i % 2 ? LONG : SHORT}\n`);
    const exiting = join(REPO, 'test', 'support', 'exiting-scan-worker.js');

    // Act
    const inProcess = await scan(dir, ['.'], { format: 'json', jobs: 1 });
    const broken = await scan(dir, ['.'], { format: 'json', jobs: 2 }, { scanWorkerEntry: exiting });

    // Assess
    expect(broken.stdout).toBe(inProcess.stdout);
    expect(lines(broken.stdout)).toHaveLength(17);
    expect(broken.stderr).toContain(
      'keyguard: scan: a worker thread failed (a scan worker exited with code 3)',
    );
    expect(broken.code).toBe(1);
  });

  it.each(['0', '-1', '1.5', 'many'])('refuses --jobs %s, naming the option and the value', async (jobs) => {
    // Prepare
    const dir = project();
    const out = captureIO(dir);

    // Act
    const code = await main(['node', 'keyguard', 'scan', '--jobs', jobs, '.'], out.io, undefined, () =>
      deps(),
    );

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(`--jobs must be a whole number from 1 to 256, not ${jobs}`);
    expect(out.stdout()).toBe('');
  });
});

describe('keyguard scan: command line', () => {
  it('documents the command in --help', async () => {
    // Prepare
    const out = captureIO(REPO);

    // Act
    const code = await main(['node', 'keyguard', 'scan', '--help'], out.io);

    // Assess
    expect(code).toBe(0);
    for (const option of [
      '--format <format>',
      '--git [repo]',
      '--baseline <file>',
      '--write-baseline <file>',
      '--jobs <n>',
    ])
      expect(out.stdout()).toContain(option);
    expect(out.stdout()).toMatch(/Exit codes:\n\s+0 .*\n\s+1 .*\n\s+2 /);
  });

  it('runs through main with injected dependencies and returns the exit code', async () => {
    // Prepare
    const dir = project();
    const out = captureIO(dir);

    // Act
    const code = await main(['node', 'keyguard', 'scan', '-f', 'json', '.env'], out.io, undefined, () =>
      deps(),
    );

    // Assess
    expect(code).toBe(1);
    expect(lines(out.stdout())).toHaveLength(1);
  });
});
