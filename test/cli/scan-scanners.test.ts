import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_BASELINE_BYTES, runScan, type ScanDeps, type ScanOptions } from '../../lambda/cli/scan';
import { MAX_IGNORE_FILE_BYTES } from '../../lambda/cli/scan-exclude';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';
import { captureIO, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

/** Issue 14, "Scan like the scanners people use": excludes, git ranges, --staged, --output. */

const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

const NOW = new Date('2026-11-20T09:41:02Z');
const KEY_A = fakeLongTermKey('scanners-a');
const KEY_B = fakeLongTermKey('scanners-b', '444455556666');
const KEY_C = fakeShortTermKey('scanners-c');
const KEYS = [KEY_A, KEY_B, KEY_C];

afterAll(removeTempDirs);

function deps(over: Partial<ScanDeps> = {}): ScanDeps {
  return { now: () => NOW, chunkSize: 64 * 1024, gitBinary: 'git', version: '0.0.0-test', ...over };
}

async function scan(cwd: string, paths: string[], opts: ScanOptions = {}, over: Partial<ScanDeps> = {}) {
  const out = captureIO(cwd);
  const code = await runScan(paths, opts, out.io, deps(over));
  const result = { code, stdout: out.stdout(), stderr: out.stderr() };
  expect(leakedFragments(result.stdout + result.stderr, KEYS)).toEqual([]);
  return result;
}

const paths = (stdout: string): string[] =>
  stdout
    .split('\n')
    .filter((l) => l)
    .map((l) => (JSON.parse(l) as { path: string }).path)
    .sort();

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
}

function newRepo(): string {
  const repo = tempDir('keyguard-scanners-git-');
  git(repo, 'init', '-q');
  git(repo, 'config', 'user.name', 'Test');
  git(repo, 'config', 'user.email', 'test@example.com');
  git(repo, 'config', 'commit.gpgsign', 'false');
  return repo;
}

function commit(repo: string, file: string, content: string, message: string): string {
  writeFile(join(repo, file), content);
  git(repo, 'add', file);
  git(repo, 'commit', '-q', '-m', message);
  return git(repo, 'rev-parse', 'HEAD');
}

/** A project with a key in source, and keys in dependency folders the default excludes skip. */
function project(): string {
  const dir = tempDir('keyguard-scanners-');
  writeFile(join(dir, 'src', 'app.env'), `KEY=${KEY_A}\n`);
  writeFile(join(dir, 'node_modules', 'pkg', 'index.js'), `const k = "${KEY_B}";\n`);
  writeFile(join(dir, 'packages', 'web', 'node_modules', 'dep', 'x.js'), `k="${KEY_B}"\n`);
  writeFile(join(dir, 'vendor', 'lib', 'conf.php'), `$k = '${KEY_C}';\n`);
  writeFile(join(dir, '.venv', 'lib', 'site.py'), `k = '${KEY_C}'\n`);
  writeFile(join(dir, '.git', 'config'), `token = ${KEY_A}\n`);
  return dir;
}

describe('keyguard scan: default excludes', () => {
  it('skips node_modules, vendor, .venv and .git at any depth, and says so in the summary', async () => {
    // Prepare
    const dir = project();

    // Act
    const r = await scan(dir, ['.'], { format: 'json' });

    // Assess
    expect(r.code).toBe(1);
    expect(paths(r.stdout)).toEqual(['src/app.env']);
    expect(r.stderr).toContain('in 1 source scanned');
    expect(r.stderr).toContain('skipped: 5 folders by default excludes (.git, node_modules,');
    expect(r.stderr).toContain('--no-default-excludes scans them');
  });

  it('scans them all with --no-default-excludes (defaultExcludes: false), and through main', async () => {
    // Prepare
    const dir = project();
    const out = captureIO(dir);

    // Act
    const direct = await scan(dir, ['.'], { format: 'json', defaultExcludes: false });
    const code = await main(
      ['node', 'keyguard', 'scan', '-f', 'json', '--no-default-excludes', '-j', '1', '.'],
      out.io,
      undefined,
      () => deps(),
    );

    // Assess
    const all = [
      '.git/config',
      '.venv/lib/site.py',
      'node_modules/pkg/index.js',
      'packages/web/node_modules/dep/x.js',
      'src/app.env',
      'vendor/lib/conf.php',
    ];
    expect(direct.code).toBe(1);
    expect(paths(direct.stdout)).toEqual(all);
    expect(direct.stderr).not.toContain('skipped:');
    expect(code).toBe(1);
    expect(paths(out.stdout())).toEqual(all);
  });

  it('re-includes a default-excluded folder with a !pattern in .keyguardignore', async () => {
    // Prepare
    const dir = project();
    writeFile(join(dir, '.keyguardignore'), '# our vendored code is ours\n!vendor/\n');

    // Act
    const r = await scan(dir, ['.'], { format: 'json' });

    // Assess
    expect(paths(r.stdout)).toEqual(['src/app.env', 'vendor/lib/conf.php']);
    expect(r.stderr).toContain('skipped: 4 folders by default excludes');
  });
});

describe('keyguard scan: a folder named on the command line', () => {
  it('is scanned even when the excludes match it, its content matched relative to it', async () => {
    // Prepare
    const dir = project();

    // Act
    const modules = await scan(dir, ['node_modules'], { format: 'json' });
    const vendor = await scan(dir, ['vendor', 'packages/web/node_modules'], {
      format: 'json',
      exclude: ['*.php'],
    });

    // Assess
    expect(paths(modules.stdout)).toEqual(['node_modules/pkg/index.js']);
    expect(modules.stderr).not.toContain('skipped:');
    expect(paths(vendor.stdout)).toEqual(['packages/web/node_modules/dep/x.js']);
    expect(vendor.stderr).toContain('0 folders and 1 file by --exclude/.keyguardignore');
  });
});

describe('keyguard scan --exclude and .keyguardignore', () => {
  function tree(): string {
    const dir = tempDir('keyguard-scanners-ex-');
    writeFile(join(dir, 'src', 'app.env'), `KEY=${KEY_A}\n`);
    writeFile(join(dir, 'test', 'fixtures', 'token.txt'), `${KEY_B}\n`);
    writeFile(join(dir, 'test', 'unit.snap'), `${KEY_C}\n`);
    writeFile(join(dir, 'docs', 'leak.md'), `${KEY_C}\n`);
    writeFile(join(dir, 'docs', 'keep.md'), `${KEY_B}\n`);
    return dir;
  }

  it('leaves out paths matching repeatable --exclude patterns (.gitignore syntax), counting them', async () => {
    // Prepare
    const dir = tree();

    // Act
    const r = await scan(dir, ['.'], { format: 'json', exclude: ['test/fixtures/', '*.snap'] });

    // Assess
    expect(r.code).toBe(1);
    expect(paths(r.stdout)).toEqual(['docs/keep.md', 'docs/leak.md', 'src/app.env']);
    expect(r.stderr).toContain('1 folder and 1 file by --exclude/.keyguardignore');
  });

  it('reads .keyguardignore from the current directory: comments, blank lines, globs and !negation', async () => {
    // Prepare
    const dir = tree();
    writeFile(join(dir, '.keyguardignore'), '# test data\ntest/\n\ndocs/*.md\n!docs/keep.md\n');

    // Act
    const r = await scan(dir, ['.'], { format: 'json' });

    // Assess
    expect(paths(r.stdout)).toEqual(['docs/keep.md', 'src/app.env']);
    expect(r.stderr).toContain('1 folder and 1 file by --exclude/.keyguardignore');
  });

  it('matches paths relative to the current directory when scanning a subfolder, and always scans a file named on the command line', async () => {
    // Prepare
    const dir = tree();

    // Act
    const sub = await scan(dir, ['test'], { format: 'json', exclude: ['test/fixtures/'] });
    const named = await scan(dir, ['test/unit.snap'], { format: 'json', exclude: ['*.snap'] });

    // Assess
    expect(paths(sub.stdout)).toEqual(['test/unit.snap']);
    expect(paths(named.stdout)).toEqual(['test/unit.snap']);
  });

  it('applies excludes before files are handed to worker threads: the same findings and sources with 1 and 3 jobs', async () => {
    // Prepare
    const dir = tree();
    for (let i = 0; i < 20; i += 1) writeFile(join(dir, 'test', 'fixtures', `f${i}.txt`), `${KEY_B}\n`);

    // Act
    const runs = await Promise.all(
      [1, 3].map((jobs) => scan(dir, ['.'], { format: 'json', jobs, exclude: ['test/'] })),
    );

    // Assess
    for (const r of runs) {
      expect(paths(r.stdout)).toEqual(['docs/keep.md', 'docs/leak.md', 'src/app.env']);
      expect(r.stderr).toContain('in 3 sources scanned');
    }
    expect(runs[1]?.stdout).toBe(runs[0]?.stdout);
  });

  it('refuses an empty --exclude, naming the option (exit 2)', async () => {
    // Prepare
    const dir = tree();

    // Act
    const r = await scan(dir, ['.'], { exclude: [' '] });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--exclude must be a non-empty pattern, not " "/);
    expect(r.stdout).toBe('');
  });
});

/** Three commits, one key each: A, then B, then C. */
function history(): { repo: string; c1: string; c2: string; c3: string } {
  const repo = newRepo();
  const c1 = commit(repo, 'a.env', `A=${KEY_A}\n`, 'one');
  const c2 = commit(repo, 'b.env', `B=${KEY_B}\n`, 'two');
  const c3 = commit(repo, 'c.env', `C=${KEY_C}\n`, 'three');
  return { repo, c1, c2, c3 };
}

const commits = (stdout: string): string[] =>
  stdout
    .split('\n')
    .filter((l) => l)
    .map((l) => {
      const f = JSON.parse(l) as { path: string; commit?: string };
      return `${f.commit}:${f.path}`;
    });

describe('keyguard scan --git over a range', () => {
  it('--since-commit REV scans only the blobs of the commits after REV', async () => {
    // Prepare
    const { repo, c1, c2, c3 } = history();

    // Act
    const r = await scan(repo, [], { format: 'json', git: true, sinceCommit: c1 });

    // Assess
    expect(r.code).toBe(1);
    expect(commits(r.stdout)).toEqual([`${c2}:b.env`, `${c3}:c.env`]);
  });

  it('--log-opts selects commits like git log: a range, --max-count, quoted values', async () => {
    // Prepare
    const { repo, c1, c2, c3 } = history();

    // Act
    const range = await scan(repo, [], { format: 'json', git: true, logOpts: `${c1}..${c2}` });
    const last = await scan(repo, [], { format: 'json', git: true, logOpts: '--all --max-count=1' });
    const author = await scan(repo, [], { format: 'json', git: true, logOpts: '--author "Nobody Here"' });
    const both = await scan(repo, [], {
      format: 'json',
      git: true,
      logOpts: '-n 5 -- c.env b.env',
      sinceCommit: c2,
    });

    // Assess
    expect(commits(range.stdout)).toEqual([`${c2}:b.env`]);
    expect(commits(last.stdout)).toEqual([`${c3}:c.env`]);
    expect(author.code).toBe(0);
    expect(author.stderr).toContain('in 0 sources scanned');
    expect(commits(both.stdout)).toEqual([`${c3}:c.env`]);
  });

  it('applies excludes to the paths in history', async () => {
    // Prepare
    const { repo, c3 } = history();

    // Act
    const r = await scan(repo, [], { format: 'json', git: true, exclude: ['a.env', 'b.env'] });

    // Assess
    expect(commits(r.stdout)).toEqual([`${c3}:c.env`]);
    expect(r.stderr).toContain('0 folders and 2 files by --exclude/.keyguardignore');
  });

  it.each([
    ['--output=PWNED', '"--output=PWNED"'],
    ['--output PWNED', '"--output"'],
    ['HEAD --ext-diff -p', '"--ext-diff"'],
    ['-c core.pager=touch\\ PWNED', '"-c"'],
    ['--format=%H', '"--format=%H"'],
    ['"--output=PWNED"', '"--output=PWNED"'],
    ['--textconv', '"--textconv"'],
    ['--exec=touch PWNED', '"--exec=touch"'],
    ['--max-count=$(touch PWNED)', '--max-count takes a whole number'],
    ['--since', '"--since" needs a value'],
    ["--author='x", 'unclosed'],
  ])(
    'refuses --log-opts %s before running git, naming the option (exit 2), and writes nothing',
    async (opts, named) => {
      // Prepare
      const repo = tempDir('keyguard-scanners-deny-');
      const calls = join(repo, 'git-was-run');
      const fakeGit = writeFile(join(repo, 'fake-git.sh'), `#!/bin/sh\ntouch '${calls}'\nexit 1\n`);
      execFileSync('chmod', ['+x', fakeGit]);

      // Act
      const r = await scan(repo, [], { git: true, logOpts: opts }, { gitBinary: fakeGit });

      // Assess
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--log-opts');
      expect(r.stderr).toContain(named);
      expect(existsSync(calls)).toBe(false);
      expect(existsSync(join(repo, 'PWNED'))).toBe(false);
    },
  );

  it.each([['-x'], ['--output=PWNED'], ['a b']])(
    'refuses --since-commit %s before running git (exit 2)',
    async (rev) => {
      // Prepare
      const repo = tempDir('keyguard-scanners-deny-');

      // Act
      const r = await scan(
        repo,
        [],
        { git: true, sinceCommit: rev },
        { gitBinary: join(repo, 'no-such-git') },
      );

      // Assess
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `--since-commit takes a commit (a revision such as a SHA or a branch), not ${JSON.stringify(rev)}`,
      );
      expect(existsSync(join(repo, 'PWNED'))).toBe(false);
    },
  );

  it('exits 2 naming --since-commit and the value when the commit does not exist', async () => {
    // Prepare
    const { repo } = history();

    // Act
    const r = await scan(repo, [], { git: true, sinceCommit: 'no-such-branch' });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--since-commit no-such-branch: no such commit');
  });

  it('refuses --since-commit and --log-opts without --git (exit 2)', async () => {
    // Prepare
    const { repo, c1 } = history();

    // Act
    const since = await scan(repo, ['.'], { sinceCommit: c1 });
    const log = await scan(repo, ['.'], { logOpts: '--all' });

    // Assess
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since-commit needs --git');
    expect(log.code).toBe(2);
    expect(log.stderr).toContain('--log-opts needs --git');
  });
});

describe('keyguard scan --staged', () => {
  it('scans what is staged (the index), not the working tree', async () => {
    // Prepare
    const repo = newRepo();
    commit(repo, 'README.md', 'hello\n', 'first');
    writeFile(join(repo, 'staged.env'), `K=${KEY_A}\n`);
    git(repo, 'add', 'staged.env');
    writeFile(join(repo, 'staged.env'), 'K=removed-from-the-working-tree-but-still-staged\n');
    writeFile(join(repo, 'unstaged.env'), `K=${KEY_B}\n`);
    writeFile(join(repo, 'README.md'), `hello ${KEY_C}\n`);

    // Act
    const r = await scan(repo, [], { format: 'json', staged: true });

    // Assess
    expect(r.code).toBe(1);
    expect(paths(r.stdout)).toEqual(['staged.env']);
    expect(r.stderr).toContain('in 1 source scanned');
  });

  it('works before the first commit, and applies excludes to staged paths', async () => {
    // Prepare
    const repo = newRepo();
    writeFile(join(repo, 'a.env'), `K=${KEY_A}\n`);
    writeFile(join(repo, 'fixtures', 'b.env'), `K=${KEY_B}\n`);
    git(repo, 'add', '.');

    // Act
    const r = await scan(repo, [], { format: 'json', staged: true, exclude: ['fixtures/'] });

    // Assess
    expect(r.code).toBe(1);
    expect(paths(r.stdout)).toEqual(['a.env']);
  });

  it('exits 0 when nothing staged holds a key, and 2 outside a repository', async () => {
    // Prepare
    const repo = newRepo();
    commit(repo, 'a.env', 'clean\n', 'first');
    const notRepo = tempDir('keyguard-scanners-norepo-');

    // Act
    const clean = await scan(repo, [], { staged: true });
    const outside = await scan(notRepo, [], { staged: true });

    // Assess
    expect(clean.code).toBe(0);
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/git \. \(staged\): .*not a git repository/i);
  });

  it('runs the hook of .pre-commit-hooks.yaml: its entry, without file names, finds a staged key', async () => {
    // Prepare
    const yaml = readFileSync(join(REPO, '.pre-commit-hooks.yaml'), 'utf8');
    const entries = [...yaml.matchAll(/^\s+entry:\s*(.+)$/gm)].map((m) => (m[1] as string).trim());
    expect(yaml).toMatch(/pass_filenames:\s*false/);
    expect(entries.length).toBeGreaterThan(0);
    const repo = newRepo();
    writeFile(join(repo, 'a.env'), `K=${KEY_A}\n`);
    git(repo, 'add', '.');

    for (const entry of entries) {
      const [command, ...args] = entry.split(/\s+/);
      const out = captureIO(repo);

      // Act
      const code = await main(['node', command as string, ...args], out.io, undefined, () => deps());

      // Assess
      expect(command).toBe('keyguard');
      expect(code).toBe(1);
      expect(out.stdout()).toContain('a.env:1:3: LONG_TERM');
      expect(leakedFragments(out.stdout() + out.stderr(), KEYS)).toEqual([]);
    }
  });
});

describe('keyguard scan --output FILE', () => {
  it('writes the findings to the file (mode 0600), not to standard output, in each format', async () => {
    // Prepare
    const dir = project();

    // Act
    const json = await scan(dir, ['.'], { format: 'json', output: 'findings.jsonl' });
    const sarif = await scan(dir, ['.'], { format: 'sarif', output: 'findings.sarif' });

    // Assess
    expect(json.code).toBe(1);
    expect(json.stdout).toBe('');
    const written = readFileSync(join(dir, 'findings.jsonl'), 'utf8');
    expect(paths(written)).toEqual(['src/app.env']);
    expect(lstatSync(join(dir, 'findings.jsonl')).mode & 0o777).toBe(0o600);
    expect(sarif.stdout).toBe('');
    const log = JSON.parse(readFileSync(join(dir, 'findings.sarif'), 'utf8')) as {
      runs: Array<{ results: unknown[] }>;
    };
    expect(log.runs[0]?.results).toHaveLength(1);
    expect(leakedFragments(written + readFileSync(join(dir, 'findings.sarif'), 'utf8'), KEYS)).toEqual([]);
  });

  it('refuses a symbolic link at the output path, naming the file (exit 2), and leaves its target alone', async () => {
    // Prepare
    const dir = project();
    const target = writeFile(join(dir, 'precious.txt'), 'keep me\n');
    symlinkSync(target, join(dir, 'out.txt'));

    // Act
    const r = await scan(dir, ['src'], { output: 'out.txt' });

    const missing = await scan(dir, ['src'], { output: 'no-such-dir/out.txt' });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/keyguard: out\.txt: cannot write --output: .*symbolic link/);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/keyguard: no-such-dir\/out\.txt: cannot write --output: /);
    expect(readFileSync(target, 'utf8')).toBe('keep me\n');
  });
});

describe('keyguard scan: the baseline', () => {
  function withKey(): string {
    const dir = tempDir('keyguard-scanners-baseline-');
    writeFile(join(dir, 'app.env'), `K=${KEY_A}\n`);
    return dir;
  }

  it('reads .keyguard-baseline.json from the current directory when --baseline is not given, naming it in the summary', async () => {
    // Prepare
    const dir = withKey();
    const first = await scan(dir, ['.'], { writeBaseline: '.keyguard-baseline.json' });

    // Act
    const r = await scan(dir, ['.'], {});

    // Assess
    expect(first.code).toBe(0);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('0 by keyguard:allow, 1 by baseline .keyguard-baseline.json;');
  });

  it('is no error when there is no .keyguard-baseline.json and --baseline is not given', async () => {
    // Prepare
    const dir = withKey();

    // Act
    const r = await scan(dir, ['.'], { format: 'json' });

    // Assess
    expect(r.code).toBe(1);
    expect(paths(r.stdout)).toEqual(['app.env']);
    expect(r.stderr).toContain('0 by baseline; 0 errors');
  });

  it('exits 2 naming the file when --baseline is given and does not exist, or the default one is unreadable', async () => {
    // Prepare
    const dir = withKey();
    const broken = withKey();
    writeFile(join(broken, '.keyguard-baseline.json'), '{not json');

    // Act
    const explicit = await scan(dir, ['.'], { baseline: 'missing-baseline.json' });
    const defaultBroken = await scan(broken, ['.'], {});

    // Assess
    expect(explicit.code).toBe(2);
    expect(explicit.stderr).toContain(
      'keyguard: missing-baseline.json: cannot read baseline: no such file or directory',
    );
    expect(explicit.stdout).toBe('');
    expect(defaultBroken.code).toBe(2);
    expect(defaultBroken.stderr).toMatch(/keyguard: \.keyguard-baseline\.json: cannot read baseline: /);
  });
});

describe('keyguard scan: .keyguardignore and the baseline are files of the scanned repository (hostile)', () => {
  // A repository can hold a symbolic link where keyguard looks for these files: to /dev/zero (endless), to a FIFO
  // (opening it would wait for a writer), or a file far larger than any real one. Each is refused, naming the file.
  function repoWith(name: string, make: (path: string) => void): string {
    const dir = tempDir('keyguard-scanners-hostile-');
    writeFile(join(dir, 'app.env'), `K=${KEY_A}\n`);
    make(join(dir, name));
    return dir;
  }
  const cases: Array<[string, (path: string) => void, RegExp]> = [
    ['a link to /dev/zero', (p) => symlinkSync('/dev/zero', p), /not a regular file: not read/],
    ['a FIFO', (p) => execFileSync('mkfifo', [p]), /not a regular file: not read/],
    ['a directory', (p) => mkdirSync(p), /not a regular file: not read/],
  ];

  it.each(cases)('.keyguardignore as %s: exit 2, naming it, without reading it', async (_what, make, why) => {
    // Prepare
    const dir = repoWith('.keyguardignore', make);

    // Act
    const r = await scan(dir, ['app.env']);

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`\\.keyguardignore: ${why.source}`));
    expect(r.stdout).toBe('');
  });

  it.each(cases)(
    '.keyguard-baseline.json as %s: exit 2, naming it, without reading it',
    async (_what, make, why) => {
      // Prepare
      const dir = repoWith('.keyguard-baseline.json', make);

      // Act
      const r = await scan(dir, ['app.env']);

      // Assess
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`\\.keyguard-baseline\\.json: cannot read baseline: ${why.source}`),
      );
    },
  );

  it('refuses a .keyguardignore or a baseline larger than its bound, saying both sizes', async () => {
    // Prepare
    const ignoreDir = repoWith('.keyguardignore', (p) => writeFile(p, '#'.repeat(MAX_IGNORE_FILE_BYTES + 1)));
    const baselineDir = repoWith('.keyguard-baseline.json', (p) =>
      writeFile(p, ' '.repeat(MAX_BASELINE_BYTES + 1)),
    );

    // Act
    const ignoreRun = await scan(ignoreDir, ['app.env']);
    const baselineRun = await scan(baselineDir, ['app.env']);

    // Assess
    expect(ignoreRun.code).toBe(2);
    expect(ignoreRun.stderr).toContain(
      `.keyguardignore: ${MAX_IGNORE_FILE_BYTES + 1} bytes; allowed: at most ${MAX_IGNORE_FILE_BYTES}`,
    );
    expect(baselineRun.code).toBe(2);
    expect(baselineRun.stderr).toContain(
      `${MAX_BASELINE_BYTES + 1} bytes; allowed: at most ${MAX_BASELINE_BYTES}`,
    );
  });
});

describe('keyguard scan: the new options on the command line', () => {
  it('lists them in --help with the default-excluded folders and the --log-opts allow-list', async () => {
    // Prepare
    const out = captureIO(REPO);

    // Act
    const code = await main(['node', 'keyguard', 'scan', '--help'], out.io);

    // Assess
    expect(code).toBe(0);
    for (const option of [
      '--since-commit <rev>',
      '--log-opts <options>',
      '--staged',
      '--exclude <pattern>',
      '--no-default-excludes',
      '--output <file>',
      '.keyguardignore',
      '.git, node_modules, bower_components, jspm_packages, vendor, .venv, venv, __pycache__, .tox',
      'anything else (--output, --ext-diff, -p, --format, -c…) is refused',
      '.keyguard-baseline.json',
    ])
      expect(out.stdout()).toContain(option);
  });

  it('takes --exclude more than once, and --output, through main', async () => {
    // Prepare
    const dir = tempDir('keyguard-scanners-main-');
    writeFile(join(dir, 'a.env'), `K=${KEY_A}\n`);
    writeFile(join(dir, 'b.snap'), `K=${KEY_B}\n`);
    writeFile(join(dir, 'fixtures', 'c.txt'), `K=${KEY_C}\n`);
    const out = captureIO(dir);

    // Act
    const argv = [
      'scan',
      '-f',
      'json',
      '--exclude',
      '*.snap',
      '--exclude',
      'fixtures/',
      '-o',
      'f.jsonl',
      '.',
    ];
    const code = await main(['node', 'keyguard', ...argv], out.io, undefined, () => deps());

    // Assess
    expect(code).toBe(1);
    expect(out.stdout()).toBe('');
    expect(paths(readFileSync(join(dir, 'f.jsonl'), 'utf8'))).toEqual(['a.env']);
    expect(out.stderr()).toContain('1 folder and 1 file by --exclude/.keyguardignore');
  });

  it('skips files of default-excluded folders committed to history, counting them', async () => {
    // Prepare
    const repo = newRepo();
    commit(repo, 'node_modules/dep/index.js', `k="${KEY_B}"\n`, 'vendored');
    const mine = commit(repo, 'src/app.env', `K=${KEY_A}\n`, 'mine');

    // Act
    const r = await scan(repo, [], { format: 'json', git: true });
    const all = await scan(repo, [], { format: 'json', git: true, defaultExcludes: false });

    // Assess
    expect(commits(r.stdout)).toEqual([`${mine}:src/app.env`]);
    expect(r.stderr).toContain('skipped: 0 folders and 1 file by default excludes');
    expect(commits(all.stdout).sort()).toHaveLength(2);
  });
});

describe('keyguard scan --since-commit: the baseline is read as it is at REV (a change cannot allow-list itself)', () => {
  /** The fingerprint of each key found in `dir`'s files, by path. */
  async function fingerprints(dir: string): Promise<Record<string, string>> {
    const r = await scan(dir, ['.'], { format: 'json' });
    const out: Record<string, string> = {};
    for (const l of r.stdout.split('\n').filter((x) => x)) {
      const f = JSON.parse(l) as { path: string; fingerprint: string };
      out[f.path] = f.fingerprint;
    }
    return out;
  }

  /** main: a.env (KEY_A, accepted in main's baseline); the change: b.env (KEY_B) with its fingerprint added. */
  async function pullRequest(): Promise<{ repo: string; base: string }> {
    const repo = newRepo();
    writeFile(join(repo, 'a.env'), `A=${KEY_A}\n`);
    writeFile(join(repo, 'b.env'), `B=${KEY_B}\n`);
    const fp = await fingerprints(repo);
    commit(repo, 'a.env', `A=${KEY_A}\n`, 'fixture');
    const base = commit(repo, '.keyguard-baseline.json', `${JSON.stringify([fp['a.env']])}\n`, 'accept A');
    commit(repo, 'b.env', `B=${KEY_B}\n`, 'add B');
    commit(repo, 'copy.env', `again=${KEY_A}\n`, 'copy A');
    commit(repo, '.keyguard-baseline.json', `${JSON.stringify([fp['a.env'], fp['b.env']])}\n`, 'silence B');
    return { repo, base };
  }

  it("reports a key whose fingerprint the change itself added to the baseline, and applies the base's baseline", async () => {
    // Prepare
    const { repo, base } = await pullRequest();

    // Act
    const r = await scan(repo, [], { format: 'json', git: true, sinceCommit: base });

    // Assess
    expect(r.code).toBe(1);
    expect(commits(r.stdout).map((c) => c.split(':')[1])).toEqual(['b.env']);
    expect(r.stderr).toContain(`1 by baseline .keyguard-baseline.json at ${base};`);
    expect(r.stderr).toContain(
      `keyguard scan: 1 fingerprint of ./.keyguard-baseline.json is not in the baseline at ${base} and was not ` +
        'applied: a change cannot allow-list its own findings (merge the baseline change first, or pass --baseline)',
    );
  });

  it('uses an explicit --baseline FILE as given (the working-tree file)', async () => {
    // Prepare
    const { repo, base } = await pullRequest();

    // Act
    const r = await scan(repo, [], {
      format: 'json',
      git: true,
      sinceCommit: base,
      baseline: '.keyguard-baseline.json',
    });

    // Assess
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('2 by baseline .keyguard-baseline.json;');
  });

  it('has an empty baseline when REV has none, and says so', async () => {
    // Prepare
    const repo = newRepo();
    const base = commit(repo, 'readme.txt', 'hello\n', 'start');
    commit(repo, 'b.env', `B=${KEY_B}\n`, 'add B');
    writeFile(join(repo, '.keyguard-baseline.json'), '[]\n');

    // Act
    const r = await scan(repo, [], { format: 'json', git: true, sinceCommit: base });

    // Assess
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`0 by baseline (none at ${base});`);
  });

  it.each([
    [
      'a symbolic link',
      (repo: string) => symlinkSync('/dev/zero', join(repo, '.keyguard-baseline.json')),
      /not a regular file: not read/,
    ],
    [
      'larger than the limit',
      (repo: string) => writeFile(join(repo, '.keyguard-baseline.json'), 'x'.repeat(MAX_BASELINE_BYTES + 1)),
      /bytes; allowed: at most/,
    ],
  ])('refuses a baseline at REV that is %s (exit 2, naming it)', async (_what, make, why) => {
    // Prepare
    const repo = newRepo();
    make(repo);
    git(repo, 'add', '.keyguard-baseline.json');
    git(repo, 'commit', '-q', '-m', 'hostile baseline');
    const base = git(repo, 'rev-parse', 'HEAD');
    commit(repo, 'b.env', `B=${KEY_B}\n`, 'add B');

    // Act
    const r = await scan(repo, [], { format: 'json', git: true, sinceCommit: base });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`keyguard: .keyguard-baseline.json at ${base}: cannot read baseline: `);
    expect(r.stderr).toMatch(why);
  });
});
