import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { constants, gzipSync } from 'node:zlib';
import { runReplay } from '../../lambda/cli/replay';
import { LOCK_FILE } from '../../lambda/cli/store-lock';
import {
  captureIO,
  createKeyRecord,
  iamRecord,
  jsonLines,
  REPO,
  removeTempDirs,
  tempDir,
  writeFile,
} from '../cli/helpers';

/**
 * Hostile and damaged inputs to `keyguard replay` (issue 10, items 7–11 and 16), each run through the real CLI
 * as a process with a time limit: a bad file is named on stderr with its reason, the exit code is 2, the other
 * files' decisions are all there, nothing hangs, the store's lock is released (the store opens again), and the
 * output is the same with --jobs 1 and --jobs 2.
 */

const BIN = join(REPO, 'bin', 'keyguard.js');
/** Generous: a run takes a few seconds; a hang is what this catches. */
const RUN_LIMIT_MS = 90_000;
const MiB = 1024 * 1024;
/**
 * gzip options for the large inputs: run-length matching only (zlib's Z_RLE), a standard single-member gzip stream
 * made in a fraction of the time of level 1 (513 MiB of zeros: 0.3 s instead of 2 s) and as small as level 9, which
 * the reader also inflates faster.
 */
const RLE = { level: 9, strategy: constants.Z_RLE };

afterAll(removeTempDirs);

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  store: string;
}

/**
 * As root, the DAC capabilities are dropped (setpriv) so that permissions apply as they would to a user: a
 * directory with mode 000 is then unreadable.
 */
function command(args: string[]): [string, string[]] {
  const node = [BIN, ...args];
  if (process.getuid?.() === 0) {
    return [
      'setpriv',
      [
        '--bounding-set=-dac_override,-dac_read_search',
        '--inh-caps=-dac_override,-dac_read_search',
        process.execPath,
        ...node,
      ],
    ];
  }
  return [process.execPath, node];
}

function replay(cwd: string, args: string[], jobs: number): Run {
  const store = tempDir('keyguard-adv-store-');
  const [file, argv] = command([
    'replay',
    '--json',
    '--quiet',
    '--jobs',
    String(jobs),
    '--store',
    store,
    ...args,
  ]);
  const r = spawnSync(file, argv, {
    cwd,
    encoding: 'utf8',
    timeout: RUN_LIMIT_MS,
    maxBuffer: 256 * MiB,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, store };
}

/** The store was released: no lock left, and a replay into it runs to completion. */
async function expectReleased(store: string): Promise<void> {
  expect(readdirSync(store)).not.toContain(LOCK_FILE);
  const dir = tempDir();
  writeFile(
    join(dir, 'after.json'),
    JSON.stringify(createKeyRecord('2026-11-25T09:00:00Z', 'svc-after', 'ACCAADVAFTER00000001')),
  );
  const out = captureIO(dir);
  expect(await runReplay(['after.json'], { json: true, quiet: true, store }, out.io)).toBe(0);
  expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-after']);
}

/** Runs with --jobs 1 and --jobs 2: same exit code, stdout and stderr; both stores released. */
async function replayBoth(cwd: string, args: string[]): Promise<Run> {
  const one = replay(cwd, args, 1);
  const two = replay(cwd, args, 2);
  expect(one.signal).toBeNull();
  expect(two.signal).toBeNull();
  expect(two.status).toBe(one.status);
  expect(two.stdout).toBe(one.stdout);
  expect(two.stderr).toBe(one.stderr);
  await expectReleased(one.store);
  await expectReleased(two.store);
  return one;
}

function keyLine(user: string, n: number, time = '2026-11-20T09:00:00Z'): string {
  return JSON.stringify(
    createKeyRecord(
      time,
      user,
      `ACCAADV${user.toUpperCase().replace(/[^A-Z]/g, '')}${String(n).padStart(4, '0')}`.slice(0, 21),
    ),
  );
}

/** The text as UTF-8, with each placeholder replaced by raw bytes (invalid UTF-8 a string cannot hold). */
function withBytes(text: string, bytes: Record<string, number[]>): Buffer {
  const parts = text.split(/(#\d#)/);
  return Buffer.concat(parts.map((p) => (p in bytes ? Buffer.from(bytes[p] ?? []) : Buffer.from(p, 'utf8'))));
}

function users(run: Run): string[] {
  return jsonLines(run.stdout)
    .map((d) => d.userName)
    .sort();
}

describe('replay: a file that expands beyond the size cap (issue 10 item 7)', () => {
  it('reports a gzip bomb by path, reads the other files, releases the store, whatever --jobs', async () => {
    // Prepare: 64 MiB of zeros is 64 KiB gzipped; the cap is lowered to 16 MiB so the test is fast. The bombs are
    // compressed as run-length (Z_RLE: as small as level 9, several times faster to make).
    const dir = tempDir();
    writeFile(join(dir, 'a.json'), keyLine('svc-a', 1));
    writeFile(join(dir, 'b-bomb.json.gz'), gzipSync(Buffer.alloc(64 * MiB), RLE));
    writeFile(join(dir, 'c-bomb.jsonl.gz'), gzipSync(Buffer.alloc(64 * MiB, '\n'), RLE));
    writeFile(join(dir, 'd.jsonl'), `${keyLine('svc-d', 2)}\n`);

    // Act
    const run = await replayBoth(dir, ['--max-file-size', '16', '.']);

    // Assess
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(
      /^keyguard: b-bomb\.json\.gz: more than 16 MiB once decompressed \(--max-file-size\): not read$/m,
    );
    expect(run.stderr).toMatch(
      /^keyguard: c-bomb\.jsonl\.gz: more than 16 MiB once decompressed \(--max-file-size\): read no further$/m,
    );
    expect(users(run)).toEqual(['svc-a', 'svc-d']);
  });

  it('applies a default cap of 512 MiB', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'a.json'), keyLine('svc-a', 3));
    writeFile(join(dir, 'bomb.json.gz'), gzipSync(Buffer.alloc(513 * MiB), RLE));

    // Act
    const run = replay(dir, ['.'], 1);

    // Assess
    expect(run.signal).toBeNull();
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(
      /^keyguard: bomb\.json\.gz: more than 512 MiB once decompressed \(--max-file-size\): not read$/m,
    );
    expect(users(run)).toEqual(['svc-a']);
    await expectReleased(run.store);
  });

  it('refuses a --max-file-size that is not a positive whole number of MiB', () => {
    // Act
    const run = replay(tempDir(), ['--max-file-size', '0', '.'], 1);

    // Assess
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('keyguard: --max-file-size: "0" is not a whole number of MiB from 1 to');
  });
});

describe('replay: a record or line beyond the record cap (issue 10 item 8)', () => {
  it('reports an over-long JSON line and an over-large record by place, and replays the rest of both files', async () => {
    // Prepare
    const dir = tempDir();
    const huge = JSON.stringify(
      iamRecord('TagUser', '2026-11-20T09:30:00Z', { userName: 'x', pad: 'A'.repeat(3 * MiB) }),
    );
    writeFile(
      join(dir, 'a.jsonl.gz'),
      gzipSync([keyLine('svc-first', 4), huge, keyLine('svc-third', 5)].join('\n')),
    );
    writeFile(
      join(dir, 'b.json'),
      `{"Records": [${[keyLine('svc-r1', 6), huge, keyLine('svc-r3', 7)].join(',')}]}`,
    );

    // Act
    const run = await replayBoth(dir, ['--max-record-size', '1', '.']);

    // Assess
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(
      /^keyguard: a\.jsonl\.gz:2: a line of more than 1 MiB \(--max-record-size\): skipped$/m,
    );
    expect(run.stderr).toMatch(
      /^keyguard: b\.json: Records\[1\]: a record of more than 1 MiB \(--max-record-size\): skipped$/m,
    );
    expect(users(run)).toEqual(['svc-first', 'svc-r1', 'svc-r3', 'svc-third']);
  });

  it('bounds lines at 32 MiB by default (a 40 MiB line in a .jsonl.gz)', async () => {
    // Prepare
    const dir = tempDir();
    const huge = `{"eventSource":"iam.amazonaws.com","eventName":"TagUser","pad":"${'B'.repeat(40 * MiB)}"}`;
    writeFile(
      join(dir, 'big.jsonl.gz'),
      gzipSync([keyLine('svc-first', 8), huge, keyLine('svc-last', 9)].join('\n'), RLE),
    );

    // Act
    const run = replay(dir, ['.'], 1);

    // Assess
    expect(run.signal).toBeNull();
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(
      /^keyguard: big\.jsonl\.gz:2: a line of more than 32 MiB \(--max-record-size\): skipped$/m,
    );
    expect(run.stderr).not.toMatch(/Invalid string length|\n\s+at /);
    expect(users(run)).toEqual(['svc-first', 'svc-last']);
    await expectReleased(run.store);
  });
});

describe('replay: many candidate records in one file (issue 10 item 9)', () => {
  it('reads 200,000 candidates of one file in-process as with workers', async () => {
    // Prepare: records that pass the cheap text test (IAM, a followed event name quoted) but are not followed.
    const dir = tempDir();
    const candidate = '{"eventSource":"iam.amazonaws.com","eventName":"ListUsers","note":"TagUser"}';
    const records = [keyLine('svc-many', 10), ...Array.from({ length: 200_000 }, () => candidate)];
    writeFile(join(dir, 'a-many.json'), `{"Records": [${records.join(',')}]}`);
    writeFile(join(dir, 'b.json'), keyLine('svc-b', 11));

    // Act
    const run = await replayBoth(dir, ['.']);

    // Assess
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(users(run)).toEqual(['svc-b', 'svc-many']);
  });
});

describe('replay: absurdly nested records (issue 10 item 10)', () => {
  it('reports a record nested 5,000 deep by place instead of hanging, and replays the rest', async () => {
    // Prepare (built as text: the test's own JSON.stringify would overflow the stack too)
    const deep = JSON.stringify(
      iamRecord('CreateServiceSpecificCredential', '2026-11-20T09:40:00Z', {
        userName: 'svc-deep',
        serviceName: 'bedrock.amazonaws.com',
        nested: '@nested@',
      }),
    ).replace('"@nested@"', `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`);
    const dir = tempDir();
    writeFile(join(dir, 'a.json'), `{"Records": [${[keyLine('svc-a', 12), deep].join(',')}]}`);
    writeFile(join(dir, 'b.jsonl'), [deep, keyLine('svc-b', 13)].join('\n'));
    writeFile(join(dir, 'c.json'), keyLine('svc-c', 14));

    // Act
    const run = await replayBoth(dir, ['.']);

    // Assess
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(
      /^keyguard: a\.json: Records\[1\]: JSON nested deeper than 64 levels \(not a CloudTrail record\): skipped$/m,
    );
    expect(run.stderr).toMatch(
      /^keyguard: b\.jsonl:1: JSON nested deeper than 64 levels \(not a CloudTrail record\): skipped$/m,
    );
    expect(users(run)).toEqual(['svc-a', 'svc-b', 'svc-c']);
  });
});

describe('replay: directories and special files (issue 10 item 11)', () => {
  it('reports an unreadable subdirectory and still reads the rest of its parent', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'logs', 'a.json'), keyLine('svc-a', 15));
    writeFile(join(dir, 'logs', 'locked', 'hidden.json'), keyLine('svc-hidden', 16));
    writeFile(join(dir, 'logs', 'z', 'z.json'), keyLine('svc-z', 17));
    chmodSync(join(dir, 'logs', 'locked'), 0o000);

    try {
      // Act
      const run = await replayBoth(dir, ['logs']);

      // Assess
      expect(run.status).toBe(2);
      expect(run.stderr).toMatch(/^keyguard: logs\/locked: cannot read the directory: permission denied$/m);
      expect(users(run)).toEqual(['svc-a', 'svc-z']);
    } finally {
      chmodSync(join(dir, 'logs', 'locked'), 0o755);
    }
  });

  it('skips and reports a FIFO named as an argument or met in a directory, instead of blocking', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'a.json'), keyLine('svc-a', 18));
    writeFile(join(dir, 'logs', 'b.json'), keyLine('svc-b', 19));
    execFileSync('mkfifo', [join(dir, 'pipe.json'), join(dir, 'logs', 'pipe.json')]);

    // Act
    const run = await replayBoth(dir, ['pipe.json', 'a.json', 'logs']);

    // Assess
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^keyguard: pipe\.json: not a regular file \(a FIFO\): skipped$/m);
    expect(run.stderr).toMatch(/^keyguard: logs\/pipe\.json: not a regular file \(a FIFO\): skipped$/m);
    expect(users(run)).toEqual(['svc-a', 'svc-b']);
  });
});

describe('replay: invalid UTF-8 (issue 10 item 16)', () => {
  it('warns with the file and the number of invalid sequences, and replays the file', async () => {
    // Prepare: \xff\xff in a key event's user agent (two sequences), a lone \xc3 in a record replay skips.
    const dir = tempDir();
    const key = keyLine('svc-u', 20).replace('aws-cli/2.22.4', 'aws-cli/#1##1#');
    const other = '{"eventSource":"s3.amazonaws.com","eventName":"GetObject","userAgent":"x#2#"}';
    writeFile(
      join(dir, 'a.json'),
      withBytes(`{"Records": [${key},${other}]}`, { '#1#': [0xff], '#2#': [0xc3] }),
    );
    writeFile(
      join(dir, 'b.jsonl'),
      withBytes(`${keyLine('svc-v', 21)}\n{"x":"#3#"}\n`, { '#3#': [0xe2, 0x82] }),
    );
    writeFile(join(dir, 'c.json'), keyLine('svc-ok', 22).replace('aws-cli/2.22.4', 'aws-cli/\ufffd'));

    // Act
    const run = await replayBoth(dir, ['.']);

    // Assess
    expect(run.status).toBe(0);
    expect(run.stderr).toMatch(
      /^keyguard: warning: a\.json: 3 invalid UTF-8 sequences, each read as U\+FFFD$/m,
    );
    expect(run.stderr).toMatch(/^keyguard: warning: b\.jsonl: 1 invalid UTF-8 sequence, read as U\+FFFD$/m);
    expect(run.stderr.split('\n').filter(Boolean)).toHaveLength(2);
    expect(users(run)).toEqual(['svc-ok', 'svc-u', 'svc-v']);
  });
});

describe('replay: one eventID with different contents (issue 10 item 16)', () => {
  it('replays the first copy and reports the conflicting one, naming both places and the eventID', async () => {
    // Prepare
    const dir = tempDir();
    const real = createKeyRecord('2026-11-20T09:00:00Z', 'svc-real', 'ACCAADVREAL000000001');
    const forged = JSON.parse(JSON.stringify(real).replaceAll('svc-real', 'svc-forged')) as typeof real;
    writeFile(join(dir, 'a.json'), JSON.stringify({ Records: [real] }));
    writeFile(join(dir, 'b.jsonl'), `${keyLine('svc-b', 24)}\n${JSON.stringify(forged)}\n`);
    writeFile(join(dir, 'c.json'), JSON.stringify(real));
    const eventId = real.eventID as string;

    // Act
    const run = await replayBoth(dir, ['.']);

    // Assess
    expect(run.status).toBe(2);
    expect(run.stderr).toBe(
      `keyguard: b.jsonl:2: event ${eventId} was already read from a.json with different content ` +
        '(corruption or forgery): the first copy is replayed, this one is not\n',
    );
    expect(users(run)).toEqual(['svc-b', 'svc-real']);
  });
});
