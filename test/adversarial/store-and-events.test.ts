import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { REPLAY_TABLES } from '../../lambda/cli/replay';
import { LOCK_FILE } from '../../lambda/cli/store-lock';
import {
  ACCOUNT,
  createKeyRecord,
  FULL_TAGS,
  jsonLines,
  REPO,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from '../cli/helpers';
import { scanAll } from '../support/dynamo';
import { fakeLongTermKey } from '../support/secrets';

/**
 * The embedded store and the events it is fed, attacked and mistreated through the real CLI as processes with a
 * time limit (issue 10, items 12–17): replays racing for a stale lock, a disk that fills up, an event dated
 * 9999-12-31, a 500,000-character tag, an event whose account cannot be established, and broken config files.
 * Each case asserts the exit code, a message naming the path, the lock released and nothing lost.
 */

const BIN = join(REPO, 'bin', 'keyguard.js');
/** Generous: a run takes seconds; a hang is what this catches. */
const RUN_LIMIT_MS = 90_000;
const FAULTS = join(REPO, 'test', 'support', 'level-faults.js');

afterAll(removeTempDirs);

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a process (asynchronously, so that several can race). */
function keyguard(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      timeout: RUN_LIMIT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function writeLog(root: string, stamp: string, records: unknown[]): string {
  const name = `${ACCOUNT}_CloudTrail_us-east-1_${stamp}_Aaj0Vzf9VCKbVbPz.json.gz`;
  return writeFile(
    join(
      root,
      'AWSLogs',
      ACCOUNT,
      'CloudTrail',
      'us-east-1',
      stamp.slice(0, 4),
      stamp.slice(4, 6),
      stamp.slice(6, 8),
      name,
    ),
    gzipSync(JSON.stringify({ Records: records })),
  );
}

/** An archive of `keys` key creations (a replay of it takes a few seconds). */
function keysArchive(keys: number): string {
  const root = tempDir('keyguard-adv-');
  const records = Array.from({ length: keys }, (_, i) =>
    createKeyRecord('2026-11-20T09:00:00Z', `svc-${i}`, `ACCAADVERSARIAL${String(i).padStart(6, '0')}`),
  );
  writeLog(root, '20261120T0905Z', records);
  return root;
}

async function storedDecisionIds(store: string): Promise<string[]> {
  const db = await startEmbeddedDynamo({ path: store });
  try {
    const items = await scanAll(db, REPLAY_TABLES.decisionsTable);
    return items
      .filter((i) => !String(i.pk).startsWith('chain#') && !String(i.pk).startsWith('digest#'))
      .map((i) => String(i.sk))
      .sort();
  } finally {
    await db.close();
  }
}

/** The pid of a process that has exited: a lock holding it is stale. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid as number;
}

const noCrash = (stderr: string) => {
  expect(stderr).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/);
  expect(stderr).not.toContain('Database is closed');
  expect(stderr).not.toContain('NaN');
};

describe('adversarial: replays racing for a stale lock', () => {
  it('never runs two replays on one store: each either runs or exits 2 naming the store and the holder', async () => {
    // Prepare: a lock left by a dead process, and an archive long enough for the racers to overlap
    const root = keysArchive(300);
    const store = tempDir('keyguard-adv-store-');
    writeFile(join(store, LOCK_FILE), String(deadPid()));

    // Act
    const runs = await Promise.all(
      [0, 1, 2].map(() =>
        keyguard(['replay', '.', '--store', store, '--json', '--quiet', '--jobs', '1'], { cwd: root }),
      ),
    );

    // Assess
    const ran = runs.filter((r) => r.status === 0);
    const refused = runs.filter((r) => r.status !== 0);
    expect(ran.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) {
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(
          `^keyguard: store ${store.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: in use by process \\d+ `,
        ),
      );
      expect(r.stdout).toBe('');
    }
    for (const r of runs) noCrash(r.stderr);
    // Every decision exactly once (the first run recorded them; later ones found them on record)
    expect(jsonLines(ran[0]?.stdout ?? '')).toHaveLength(300);
    const ids = await storedDecisionIds(store);
    expect(ids).toHaveLength(300);
    expect(new Set(ids).size).toBe(300);
    expect(readdirSync(store)).not.toContain(LOCK_FILE);
  }, 240_000);
});

describe('adversarial: the disk fills up during a replay', () => {
  it('exits 2 with "no space left on device" and the store path, releases the lock, and a re-run completes', async () => {
    // Prepare: LevelDB refuses writes after the first 40 (as ENOSPC makes it), through the real CLI
    const root = keysArchive(200);
    const store = tempDir('keyguard-adv-store-');
    const args = ['replay', '.', '--store', store, '--json', '--quiet', '--jobs', '1'];

    // Act
    const full = await keyguard(args, {
      cwd: root,
      env: { NODE_OPTIONS: `--require ${FAULTS}`, KEYGUARD_TEST_ENOSPC_AFTER: '40' },
    });
    const lockAfterFailure = readdirSync(store).includes(LOCK_FILE);
    const rerun = await keyguard(args, { cwd: root });

    // Assess
    expect(full.status).toBe(2);
    expect(full.stderr).toContain(`keyguard: store ${store}: no space left on device`);
    expect(full.stderr).not.toContain('LEVEL_IO_ERROR\n');
    noCrash(full.stderr);
    expect(lockAfterFailure).toBe(false);
    expect(rerun.status).toBe(0);
    expect(jsonLines(rerun.stdout)).toHaveLength(200);
    expect(await storedDecisionIds(store)).toHaveLength(200);
  }, 240_000);
});

describe('adversarial: events that lie', () => {
  it('a bearer-token call dated 9999-12-31 is refused with its file; later real calls are still counted', async () => {
    // Prepare
    const root = tempDir('keyguard-adv-');
    writeLog(root, '20261120T0905Z', [
      tagUserRecord('2026-11-20T08:59:00Z', 'svc-chatbot', FULL_TAGS),
      createKeyRecord('2026-11-20T09:00:00Z', 'svc-chatbot', 'ACCAADVERSARIALKEY01', { ageDays: 30 }),
    ]);
    const call = JSON.parse(
      readFileSync(
        join(REPO, 'test', 'fixtures', 'cloudtrail', 'bedrock-invoke-model-bearer-token.json'),
        'utf8',
      ),
    ) as Record<string, unknown>;
    const forgedFile = writeLog(root, '20261120T1005Z', [
      { ...call, eventID: 'forged-9999', eventTime: '9999-12-31T23:59:59Z' },
      { ...call, eventID: 'real-1', eventTime: '2026-11-20T10:00:00Z' },
    ]);
    const later = tempDir('keyguard-adv-');
    writeLog(later, '20261121T1005Z', [{ ...call, eventID: 'real-2', eventTime: '2026-11-21T10:00:00Z' }]);
    const store = tempDir('keyguard-adv-store-');

    // Act
    const first = await keyguard(['replay', '.', '--store', store], { cwd: root });
    const second = await keyguard(['replay', '.', '--store', store], { cwd: later });

    // Assess
    expect(first.status).toBe(2);
    expect(first.stderr).toContain(
      `keyguard: ${forgedFile.slice(root.length + 1)}: InvokeModel forged-9999: eventTime`,
    );
    expect(first.stderr).toContain('implausibly far in the future');
    expect(second.status).toBe(0);
    expect(second.stdout).toMatch(/Usage: 1 bearer-token call \(1 long-term on 1 key/);
    expect(second.stdout).not.toContain('already replayed');
    expect(readdirSync(store)).not.toContain(LOCK_FILE);
  }, 120_000);

  it('an IAM event without recipientAccountId on a foreign bus is decided as the foreign account, never ours', async () => {
    // Prepare
    const root = tempDir('keyguard-adv-');
    const { recipientAccountId: _r, ...detail } = createKeyRecord(
      '2026-11-20T09:00:00Z',
      'svc-x',
      'ACCAADVERSARIALKEY02',
    );
    const event = (account: string) => ({
      version: '0',
      id: `ev-${account}`,
      'detail-type': 'AWS API Call via CloudTrail',
      source: 'aws.iam',
      account,
      time: '2026-11-20T09:00:00Z',
      region: 'us-east-1',
      resources: [],
      detail,
    });
    writeFile(join(root, 'events', 'foreign.json'), JSON.stringify(event('999988887777')));

    // Act
    const run = await keyguard(
      ['replay', '.', '--store', tempDir('keyguard-adv-store-'), '--json', '--quiet'],
      {
        cwd: root,
      },
    );

    // Assess
    expect(run.status).toBe(0);
    expect(jsonLines(run.stdout).map((d) => d.accountId)).toEqual(['999988887777']);
  }, 120_000);

  it('a user tagged with 500,000-character values is decided and stored, values cut and hashed', async () => {
    // Prepare
    const root = tempDir('keyguard-adv-');
    const huge = 'o'.repeat(500_000);
    writeLog(root, '20261120T0905Z', [
      tagUserRecord('2026-11-20T08:59:00Z', 'svc-big', { ...FULL_TAGS, owner: huge }),
      createKeyRecord('2026-11-20T09:00:00Z', 'svc-big', 'ACCAADVERSARIALKEY03', { ageDays: 30 }),
    ]);
    const store = tempDir('keyguard-adv-store-');

    // Act
    const run = await keyguard(['replay', '.', '--store', store, '--json', '--quiet'], { cwd: root });

    // Assess
    expect(run.status).toBe(0);
    noCrash(run.stderr);
    const [decision] = jsonLines(run.stdout);
    expect(decision?.owner.value).toMatch(/…\[truncated 499,\d{3} chars, sha256:[0-9a-f]{16}\]$/);
    expect(await storedDecisionIds(store)).toEqual([decision?.decisionId]);
    expect(readdirSync(store)).not.toContain(LOCK_FILE);
  }, 120_000);
});

describe('adversarial: broken config files', () => {
  const key = fakeLongTermKey('adversarial-config');
  it.each([
    ['null', 'null', /: \(root\): got null; allowed: an object/],
    [
      'a number out of range',
      '{"maxAgeDays": 1e400}',
      /maxAgeDays: got a number out of range \(it reads as Infinity\)/,
    ],
    ['a key pasted into a setting', JSON.stringify({ tags: { owner: key } }), /tags\.owner: got "ABSK…/],
    [
      'a 50 MB bad value',
      JSON.stringify({ fallbackOwner: 'f'.repeat(50 * 1024 * 1024) }),
      /fallbackOwner: got "f+… \(52,428,802 chars\)/,
    ],
  ])(
    '%s: exits 2 naming the file, with a short message, before touching the store',
    async (_label, text, message) => {
      // Prepare
      const root = keysArchive(1);
      const config = writeFile(join(tempDir('keyguard-adv-'), 'bad.json'), text);
      const store = tempDir('keyguard-adv-store-');

      // Act
      const run = await keyguard(['replay', '.', '--store', store, '--config', config], { cwd: root });

      // Assess
      expect(run.status).toBe(2);
      expect(run.stderr).toContain(config);
      expect(run.stderr).toMatch(message);
      expect(run.stderr.length).toBeLessThan(2000);
      expect(run.stderr).not.toContain(key.slice(4, 40));
      expect(readdirSync(store)).toEqual([]);
    },
    120_000,
  );

  it('a config saved with a UTF-8 byte order mark is read', async () => {
    // Prepare
    const root = keysArchive(1);
    const config = writeFile(
      join(tempDir('keyguard-adv-'), 'bom.json'),
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"mode":"audit","maxAgeDays":30}')]),
    );

    // Act
    const run = await keyguard(
      ['replay', '.', '--store', tempDir('keyguard-adv-store-'), '--config', config, '--json', '--quiet'],
      {
        cwd: root,
      },
    );

    // Assess
    expect(run.status).toBe(0);
    expect(jsonLines(run.stdout)).toHaveLength(1);
  }, 120_000);
});
