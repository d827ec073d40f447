import { join } from 'node:path';
import { buildProgram } from '../../bin/keyguard';
import { runReplay } from '../../lambda/cli/replay';
import {
  captureIO,
  createKeyRecord,
  FULL_TAGS,
  iamRecord,
  jsonLines,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from './helpers';

afterAll(removeTempDirs);

const NEVER = 'ACCAREPLAYFAILNEVER01';
const CLEAN = 'ACCAREPLAYFAILCLEAN01';

/** A CloudTrail log file of these records in dir. */
function trail(dir: string, name: string, records: Array<Record<string, unknown>>): string {
  return writeFile(join(dir, name), JSON.stringify({ Records: records }));
}

const neverKey = () => [
  tagUserRecord('2026-11-20T08:00:00Z', 'svc-never', FULL_TAGS),
  createKeyRecord('2026-11-20T09:00:00Z', 'svc-never', NEVER),
];
const cleanKey = () => [
  tagUserRecord('2026-11-20T08:00:01Z', 'svc-clean', FULL_TAGS),
  createKeyRecord('2026-11-20T09:00:01Z', 'svc-clean', CLEAN, { ageDays: 60 }),
];

async function replay(dir: string, paths: string[], failOn?: string) {
  const out = captureIO(dir);
  const code = await runReplay(
    paths,
    { json: true, quiet: true, jobs: 1, store: join(dir, 'store'), ...(failOn ? { failOn } : {}) },
    out.io,
  );
  return { code, stdout: out.stdout(), stderr: out.stderr() };
}

describe('keyguard replay --fail-on', () => {
  it('exits 0 when no key has a violation', async () => {
    // Prepare
    const dir = tempDir();
    const file = trail(dir, 'clean.json', cleanKey());

    // Act
    const r = await replay(dir, [file], 'low');

    // Assess
    expect(jsonLines(r.stdout).flatMap((d) => d.violations)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('exits 0 below the threshold, 1 at it (one line on stderr), and 0 without --fail-on', async () => {
    // Prepare: NEVER_EXPIRES is high
    const below = tempDir();
    const at = tempDir();
    const absent = tempDir();

    // Act
    const b = await replay(below, [trail(below, 't.json', neverKey())], 'critical');
    const a = await replay(at, [trail(at, 't.json', neverKey())], 'high');
    const n = await replay(absent, [trail(absent, 't.json', neverKey())]);

    // Assess
    expect(b.code).toBe(0);
    expect(a.code).toBe(1);
    expect(a.stderr).toBe(
      'keyguard: --fail-on high: 1 key(s) with a current violation of severity high or above (the keys of the ' +
        'store at the end of the replay)\n',
    );
    expect(jsonLines(n.stdout).some((d) => d.violations.some((v) => v.code === 'NEVER_EXPIRES'))).toBe(true);
    expect(n.code).toBe(0);
  });

  it('is the state of the store at the end: earlier runs’ keys count, a key deleted since does not', async () => {
    // Prepare
    const dir = tempDir();
    await replay(dir, [trail(dir, 'day1.json', neverKey())]);

    // Act: a later run that does not mention the never-expiring key, then one that deletes it
    const later = await replay(dir, [trail(dir, 'day2.json', cleanKey())], 'high');
    const deleted = await replay(
      dir,
      [
        trail(dir, 'day3.json', [
          iamRecord('DeleteServiceSpecificCredential', '2026-11-22T10:00:00Z', {
            userName: 'svc-never',
            serviceSpecificCredentialId: NEVER,
          }),
        ]),
      ],
      'high',
    );

    // Assess
    expect(jsonLines(later.stdout).map((d) => d.keyId)).toEqual([CLEAN]);
    expect(later.code).toBe(1);
    expect(jsonLines(deleted.stdout).map((d) => d.status)).toEqual(['Deleted']);
    expect(deleted.code).toBe(0);
  });

  it('an input that could not be read (exit 2) wins over the posture, which is still said', async () => {
    // Prepare
    const dir = tempDir();
    const good = trail(dir, 't.json', neverKey());
    const bad = writeFile(join(dir, 'broken.json'), '{"Records": [');

    // Act
    const r = await replay(dir, [good, bad], 'high');

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('broken.json');
    expect(r.stderr).toContain('keyguard: --fail-on high: 1 key(s)');
  });

  it('exits 2 on a bad value, naming the flag and the value, before reading anything', async () => {
    // Prepare
    const dir = tempDir();

    // Act
    const r = await replay(dir, [trail(dir, 't.json', neverKey())], 'hihg');

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('keyguard: --fail-on: got "hihg"; allowed: low, medium, high, critical\n');
    expect(r.stdout).toBe('');
  });

  it('is wired on the command line', async () => {
    // Prepare
    const dir = tempDir();
    const file = trail(dir, 't.json', neverKey());
    const out = captureIO(dir);
    let code = -1;
    const program = buildProgram(out.io, (n) => {
      code = n;
    });

    // Act
    await program.parseAsync([
      'node',
      'keyguard',
      'replay',
      '--json',
      '-q',
      '-j',
      '1',
      '--fail-on',
      'medium',
      file,
    ]);

    // Assess
    expect(code).toBe(1);
    expect(out.stderr()).toContain('--fail-on medium: 1 key(s)');
  });
});
