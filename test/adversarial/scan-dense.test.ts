import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fingerprint } from '../../lambda/shared/redact';
import { REPO, removeTempDirs, tempDir, writeFile } from '../cli/helpers';
import { fakeLongTermKey, fakeShortTermKey } from '../support/secrets';

/**
 * Prefix-dense input to `keyguard scan` (issue 10, item 2): text made of `ABSK` (or the short-term prefix)
 * repeated used to cost about 36 s per MiB, so 8 MB never finished in any reasonable time. The real CLI runs as a
 * process with a time limit; it must finish, find the real keys hidden in the noise and report nothing else.
 */

const BIN = join(REPO, 'bin', 'keyguard.js');
/** Generous: the scan takes a few seconds even on a loaded machine; a quadratic scan takes hours. */
const RUN_LIMIT_MS = 120_000;
const MB = 1000 * 1000;

afterAll(removeTempDirs);

function scan(
  cwd: string,
  args: string[],
): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'scan', ...args], {
    cwd,
    encoding: 'utf8',
    timeout: RUN_LIMIT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe('keyguard scan on prefix-dense input', () => {
  it(
    'scans 8 MB of ABSK repeated, with keys in it, in time and finds only the keys',
    () => {
      // Prepare: 8 MB of ABSK, one long-term key in the middle (a space each side), a short-term key at the end.
      const dir = tempDir('keyguard-dense-');
      const longKey = fakeLongTermKey('dense-cli');
      const shortKey = fakeShortTermKey('dense-cli');
      const half = 'ABSK'.repeat(MB);
      writeFile(join(dir, 'dense.txt'), `${half} ${longKey} ${half}\n${shortKey}\n`);

      // Act
      const r = scan(dir, ['dense.txt', '--format', 'json']);

      // Assess
      expect(r.signal).toBeNull();
      expect(r.status).toBe(1);
      const found = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { fingerprint: string; line: number; column: number });
      expect(found.map((f) => [f.fingerprint, f.line, f.column])).toEqual([
        [fingerprint(longKey), 1, half.length + 2],
        [fingerprint(shortKey), 2, 1],
      ]);
    },
    RUN_LIMIT_MS + 10_000,
  );

  it(
    'scans 8 MB of the short-term prefix and escaped ABSK mixed, in time, with nothing to report',
    () => {
      // Prepare
      const dir = tempDir('keyguard-dense-');
      const unit = 'bedrock-api-key-ABSK\\u002BABSK%2BABSK\\\\\\/';
      writeFile(join(dir, 'mixed.log'), unit.repeat(Math.ceil((8 * MB) / unit.length)));

      // Act
      const r = scan(dir, ['.']);

      // Assess
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('0 keys found');
    },
    RUN_LIMIT_MS + 10_000,
  );
});
