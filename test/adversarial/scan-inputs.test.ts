import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fingerprint } from '../../lambda/shared/redact';
import { REPO, removeTempDirs, tempDir, writeFile } from '../cli/helpers';
import { fakeLongTermKey, fakeShortTermKey } from '../support/secrets';

/**
 * Inputs that used to hide a key from `keyguard scan` (issue 10, item 16): a UTF-16 file (PowerShell's `>` writes
 * UTF-16 LE with a byte order mark), a binary file (a NUL byte in its first 8 KB) holding a key as ASCII, and
 * invalid UTF-8 around a key. The real CLI runs as a process with a time limit.
 */

const BIN = join(REPO, 'bin', 'keyguard.js');
const RUN_LIMIT_MS = 60_000;

afterAll(removeTempDirs);

function scan(cwd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'scan', ...args], {
    cwd,
    encoding: 'utf8',
    timeout: RUN_LIMIT_MS,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function findings(
  stdout: string,
): Array<{ path: string; line: number; column: number; fingerprint: string }> {
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l));
}

describe('keyguard scan: encodings and binary files', () => {
  it(
    'finds keys in UTF-16 LE and BE files, a binary file and a file with invalid UTF-8, and says how it read them',
    () => {
      // Prepare
      const dir = tempDir('keyguard-scan-inputs-');
      const keys = {
        le: fakeLongTermKey('utf16le'),
        be: fakeShortTermKey('utf16be'),
        bin: fakeLongTermKey('binary'),
        bad: fakeLongTermKey('invalid-utf8'),
      };
      const text = (k: string) => `$env:AWS_BEARER_TOKEN_BEDROCK = "${k}"\r\n`;
      writeFile(
        join(dir, 'a-profile.ps1'),
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text(keys.le), 'utf16le')]),
      );
      writeFile(
        join(dir, 'b-notes.txt'),
        Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text(keys.be), 'utf16le').swap16()]),
      );
      writeFile(
        join(dir, 'c-app.bin'),
        Buffer.concat([
          Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]),
          Buffer.from(`${keys.bin}\0`),
          Buffer.alloc(20000, 0xaa),
        ]),
      );
      writeFile(
        join(dir, 'd-latin1.log'),
        Buffer.concat([Buffer.from('caf\xe9 ', 'latin1'), Buffer.from(`${keys.bad}\n`)]),
      );

      // Act
      const r = scan(dir, ['.', '--format', 'json']);

      // Assess
      expect(r.status).toBe(1);
      expect(findings(r.stdout).map((f) => [f.path, f.line, f.column, f.fingerprint])).toEqual([
        ['a-profile.ps1', 1, 34, fingerprint(keys.le)],
        ['b-notes.txt', 1, 34, fingerprint(keys.be)],
        ['c-app.bin', 1, 11, fingerprint(keys.bin)],
        ['d-latin1.log', 1, 6, fingerprint(keys.bad)],
      ]);
      expect(r.stderr).toContain(
        '4 keys found (3 long-term, 1 short-term) in 4 sources scanned; 1 binary searched as bytes; 2 UTF-16; ' +
          '1 invalid UTF-8 sequence read as U+FFFD in 1 source;',
      );
    },
    RUN_LIMIT_MS + 10_000,
  );

  it(
    'finds a key in UTF-16 standard input',
    () => {
      // Prepare
      const key = fakeLongTermKey('stdin-utf16');
      const input = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`key=${key}\n`, 'utf16le')]);

      // Act
      const r = spawnSync(process.execPath, [BIN, 'scan', '-', '--format', 'json'], {
        input,
        encoding: 'utf8',
        timeout: RUN_LIMIT_MS,
      });

      // Assess
      expect(r.status).toBe(1);
      expect(findings(r.stdout).map((f) => [f.path, f.column, f.fingerprint])).toEqual([
        ['-', 5, fingerprint(key)],
      ]);
    },
    RUN_LIMIT_MS + 10_000,
  );
});
