import { spawnSync } from 'node:child_process';
import fs, {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { checkOutputTarget, OutputFileError, writeOutputFile } from '../../lambda/cli/output-file';
import { removeTempDirs, tempDir } from './helpers';

/** Issue 10, item 4: the CLI writes its files without following links planted in the output directory. */

afterAll(removeTempDirs);
afterEach(() => jest.restoreAllMocks());

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

describe('writeOutputFile', () => {
  it('writes a new file with mode 0600 and leaves no temporary file behind', () => {
    // Prepare
    const dir = tempDir();
    const path = join(dir, 'report.html');

    // Act
    writeOutputFile(path, '<p>report</p>');

    // Assess
    expect(readFileSync(path, 'utf8')).toBe('<p>report</p>');
    expect(mode(path)).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['report.html']);
  });

  it('replaces an existing regular file by a new one (rename), keeping its permission bits', () => {
    // Prepare
    const dir = tempDir();
    const path = join(dir, 'report.html');
    writeFileSync(path, 'old');
    fs.chmodSync(path, 0o644);
    const oldInode = statSync(path).ino;

    // Act
    writeOutputFile(path, 'new');

    // Assess
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(statSync(path).ino).not.toBe(oldInode);
    expect(mode(path)).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['report.html']);
  });

  it('refuses a symbolic link at the path, naming it and its target; the target is untouched', () => {
    // Prepare
    const dir = tempDir();
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'precious');
    const path = join(dir, 'report.html');
    symlinkSync(victim, path);

    // Act
    const act = () => writeOutputFile(path, 'evil', { display: 'report.html' });

    // Assess
    expect(act).toThrow(OutputFileError);
    expect(act).toThrow(`report.html is a symbolic link (to ${victim}): refusing to write through it`);
    expect(act).toThrow('--force');
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['report.html', 'victim.txt']);
  });

  it('refuses a dangling symbolic link too (it would create the file it points to)', () => {
    // Prepare
    const dir = tempDir();
    const path = join(dir, 'report.html');
    symlinkSync(join(dir, 'created-elsewhere'), path);

    // Act
    const act = () => writeOutputFile(path, 'evil');

    // Assess
    expect(act).toThrow(/is a symbolic link/);
    expect(readdirSync(dir)).toEqual(['report.html']);
  });

  it('with replaceLink, replaces the link itself by a regular file and never writes its target', () => {
    // Prepare
    const dir = tempDir();
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'precious');
    const path = join(dir, 'report.html');
    symlinkSync(victim, path);

    // Act
    writeOutputFile(path, 'report', { replaceLink: true });

    // Assess
    expect(lstatSync(path).isFile()).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe('report');
    expect(mode(path)).toBe(0o600);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
  });

  it('refuses a FIFO without opening it (no hang), a directory and a device', () => {
    // Prepare
    const dir = tempDir();
    const fifo = join(dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const sub = join(dir, 'sub');
    mkdirSync(sub);

    // Act / Assess
    expect(() => writeOutputFile(fifo, 'x', { display: 'pipe' })).toThrow(
      'pipe is a FIFO (named pipe), not a regular file',
    );
    expect(() => writeOutputFile(sub, 'x', { replaceLink: true })).toThrow(/is a directory/);
    expect(() => writeOutputFile('/dev/null', 'x', { replaceLink: true })).toThrow(
      '/dev/null is a character device, not a regular file',
    );
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['pipe', 'sub']);
  });

  it('refuses a missing directory', () => {
    // Prepare
    const dir = tempDir();

    // Act / Assess
    expect(() => writeOutputFile(join(dir, 'nope', 'r.html'), 'x', { display: 'nope/r.html' })).toThrow(
      'directory nope does not exist',
    );
  });

  it('is not redirected by symlinks planted at the old predictable temporary name', () => {
    // Prepare
    const dir = tempDir();
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'precious');
    const path = join(dir, 'report.html');
    const planted = [`${path}.${process.pid}.tmp`, `${path}.tmp`, join(dir, '.report.html.tmp')];
    for (const p of planted) symlinkSync(victim, p);

    // Act
    writeOutputFile(path, 'report');

    // Assess
    expect(readFileSync(path, 'utf8')).toBe('report');
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    for (const p of planted) expect(readlinkSync(p)).toBe(victim);
  });

  it('creates its temporary file exclusively, without following a link, mode 0600, at a random name', () => {
    // Prepare
    const dir = tempDir();
    const path = join(dir, 'report.html');
    const open = jest.spyOn(fs, 'openSync');

    // Act
    writeOutputFile(path, 'a');
    writeOutputFile(path, 'b');

    // Assess
    const calls = open.mock.calls.map(([p, flags, m]) => ({ p: String(p), flags: Number(flags), m }));
    expect(calls).toHaveLength(2);
    const { O_CREAT, O_EXCL, O_WRONLY, O_NOFOLLOW } = fs.constants;
    for (const c of calls) {
      expect(c.flags & (O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW)).toBe(
        O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW,
      );
      expect(c.m).toBe(0o600);
      expect(c.p).toMatch(/\/\.report\.html\.[0-9a-f]{24}\.tmp$/);
    }
    expect(calls[0]?.p).not.toBe(calls[1]?.p);
  });

  it('removes its temporary file and keeps the old file when the rename fails', () => {
    // Prepare
    const dir = tempDir();
    const path = join(dir, 'report.html');
    writeFileSync(path, 'old');
    jest.spyOn(fs, 'renameSync').mockImplementation(() => {
      throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
    });

    // Act
    const act = () => writeOutputFile(path, 'new');

    // Assess
    expect(act).toThrow('EIO');
    expect(readFileSync(path, 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['report.html']);
  });
});

describe('checkOutputTarget', () => {
  it('shows a control character in the path as an escape in its message', () => {
    // Prepare
    const dir = tempDir();
    const path = join(dir, 'a\nb');
    mkdirSync(path);

    // Act / Assess
    expect(() => checkOutputTarget(path, { display: 'a\nb' })).toThrow('a\\nb is a directory');
  });
});
