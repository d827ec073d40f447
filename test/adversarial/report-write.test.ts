import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { runReplay } from '../../lambda/cli/replay';
import { runReport } from '../../lambda/cli/report';
import { captureIO, REPO, removeTempDirs, tempDir } from '../cli/helpers';

/**
 * Issue 10, item 4: `keyguard report --html FILE` in a directory someone else can write to (/tmp, a CI
 * workspace). A symlink, FIFO or device planted at FILE must be refused (never written through, never replaced
 * by surprise, never blocked on), and no name the CLI writes to may be predictable. The real CLI runs as a child
 * process with a time limit; the planted-temp-name case runs the command in-process, where the pid the old code
 * put in its temporary name is known.
 */

const NOW = new Date('2026-11-23T12:00:00.000Z');
const TIME_LIMIT_MS = 60_000;

let store: string;

beforeAll(async () => {
  store = join(tempDir(), 'store');
  const out = captureIO(REPO);
  expect(await runReplay(['examples/cloudtrail'], { json: true, store }, out.io)).toBe(0);
});
afterAll(removeTempDirs);

function report(dir: string, file: string, ...extra: string[]) {
  const r = spawnSync(
    process.execPath,
    [join(REPO, 'bin', 'keyguard.js'), 'report', '--store', store, '--html', file, ...extra],
    { cwd: dir, encoding: 'utf8', timeout: TIME_LIMIT_MS },
  );
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

function victimIn(dir: string): string {
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious, not yours\n');
  chmodSync(victim, 0o644);
  return victim;
}

describe('keyguard report --html: what is already at FILE', () => {
  it('refuses a symlink at FILE (exit 2, naming it and its target); the target is untouched', () => {
    // Prepare
    const dir = tempDir();
    const victim = victimIn(dir);
    symlinkSync(victim, join(dir, 'report.html'));

    // Act
    const r = report(dir, 'report.html');

    // Assess
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`keyguard: --html: report.html is a symbolic link (to ${victim})`);
    expect(r.stderr).toContain('--force');
    expect(readFileSync(victim, 'utf8')).toBe('precious, not yours\n');
    expect(readlinkSync(join(dir, 'report.html'))).toBe(victim);
    expect(readdirSync(dir).sort()).toEqual(['report.html', 'victim.txt']);
  });

  it('with --force replaces the link itself by the report; the link target is never written', () => {
    // Prepare
    const dir = tempDir();
    const victim = victimIn(dir);
    symlinkSync(victim, join(dir, 'report.html'));

    // Act
    const r = report(dir, 'report.html', '--force');

    // Assess
    expect(r.status).toBe(0);
    const st = lstatSync(join(dir, 'report.html'));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toMatch(/^<!doctype html>/);
    expect(readFileSync(victim, 'utf8')).toBe('precious, not yours\n');
  });

  it('refuses a FIFO at FILE without blocking on it (exit 2 within the time limit); the FIFO stays', () => {
    // Prepare
    const dir = tempDir();
    expect(spawnSync('mkfifo', [join(dir, 'report.html')]).status).toBe(0);

    // Act
    const r = report(dir, 'report.html', '--force');

    // Assess
    expect(r.signal).toBeNull();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('keyguard: --html: report.html is a FIFO (named pipe), not a regular file');
    expect(lstatSync(join(dir, 'report.html')).isFIFO()).toBe(true);
  });

  it('refuses a device at FILE, even with --force; the device stays', () => {
    // Prepare: a null device of our own (mknod needs root; these tests run as root in CI and here).
    const dir = tempDir();
    expect(spawnSync('mknod', [join(dir, 'report.html'), 'c', '1', '3']).status).toBe(0);

    // Act
    const r = report(dir, 'report.html', '--force');

    // Assess
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('report.html is a character device, not a regular file');
    expect(lstatSync(join(dir, 'report.html')).isCharacterDevice()).toBe(true);
  });

  it('replaces an existing regular file atomically, keeping its permissions, leaving no temporary file', () => {
    // Prepare
    const dir = tempDir();
    const file = join(dir, 'report.html');
    writeFileSync(file, 'old report');
    chmodSync(file, 0o640);
    const before = statSync(file).ino;

    // Act
    const r = report(dir, 'report.html');

    // Assess
    expect(r.status).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/^<!doctype html>[\s\S]*<\/html>\n?$/);
    expect(statSync(file).ino).not.toBe(before);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['report.html']);
  });

  it('creates a new report private to its owner (mode 0600)', () => {
    // Prepare
    const dir = tempDir();

    // Act
    const r = report(dir, 'new.html');

    // Assess
    expect(r.status).toBe(0);
    expect(statSync(join(dir, 'new.html')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['new.html']);
  });
});

describe('keyguard report --html: planted temporary names', () => {
  it('is not redirected by symlinks at the old predictable names (FILE.<pid>.tmp and the like)', async () => {
    // Prepare: the old code wrote `${FILE}.${process.pid}.tmp`, following a link planted there.
    const dir = tempDir();
    const victim = victimIn(dir);
    const file = join(dir, 'report.html');
    const planted = [`${file}.${process.pid}.tmp`, `${file}.tmp`, join(dir, '.report.html.tmp')];
    for (const p of planted) symlinkSync(victim, p);
    const out = captureIO(dir);

    // Act
    const code = await runReport({ html: 'report.html', store }, out.io, {
      doc: () => {
        throw new Error('no AWS in this test');
      },
      env: {},
      now: () => NOW,
    });

    // Assess
    expect(code).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('precious, not yours\n');
    expect(lstatSync(file).isFile()).toBe(true);
    expect(readFileSync(file, 'utf8')).toMatch(/^<!doctype html>/);
    for (const p of planted) expect(readlinkSync(p)).toBe(victim);
    expect(readdirSync(dir).sort()).toEqual(
      [
        '.report.html.tmp',
        'report.html',
        ...planted.slice(0, 2).map((p) => p.slice(dir.length + 1)),
        'victim.txt',
      ].sort(),
    );
  });
});

describe('keyguard scan --write-baseline: the same writer', () => {
  it('refuses a symlink at the baseline path (exit 2, naming it); the target is untouched', () => {
    // Prepare
    const dir = tempDir();
    const victim = victimIn(dir);
    symlinkSync(victim, join(dir, 'baseline.json'));
    writeFileSync(join(dir, 'clean.txt'), 'nothing here\n');

    // Act
    const r = spawnSync(
      process.execPath,
      [join(REPO, 'bin', 'keyguard.js'), 'scan', '--write-baseline', 'baseline.json', 'clean.txt'],
      { cwd: dir, encoding: 'utf8', timeout: TIME_LIMIT_MS },
    );

    // Assess
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `keyguard: baseline.json: cannot write baseline: baseline.json is a symbolic link (to ${victim})`,
    );
    expect(r.stderr).not.toContain('--force');
    expect(readFileSync(victim, 'utf8')).toBe('precious, not yours\n');
    expect(readlinkSync(join(dir, 'baseline.json'))).toBe(victim);
  });
});
