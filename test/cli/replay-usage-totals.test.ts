import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { runReplay } from '../../lambda/cli/replay';
import {
  ACCOUNT,
  captureIO,
  createKeyRecord,
  FULL_TAGS,
  jsonLines,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from './helpers';

/**
 * `keyguard replay`'s usage totals say what is true about calls it cannot credit to one key: a user holding two
 * keys, or a user none of whose keys the store knows (its key was created before the replayed logs). With long-term
 * keys forbidden, the second case can name no key, so it cannot be decided: it is warned about, once per user.
 */

type Json = Record<string, unknown>;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'cloudtrail', name), 'utf8')) as Json;
}

let n = 0;
/** A long-term (ABSK, declared) bearer-token call by an IAM user. */
function longTermCall(userName: string, eventTime: string): Json {
  n += 1;
  return {
    ...fixture('bedrock-mantle-chat-completion-absk.json'),
    eventTime,
    eventID: `t0000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    userIdentity: {
      type: 'IAMUser',
      principalId: `AIDA${userName.toUpperCase()}`,
      arn: `arn:aws:iam::${ACCOUNT}:user/${userName}`,
      accountId: ACCOUNT,
      userName,
    },
  };
}

function writeLog(root: string, stamp: string, records: Json[]): void {
  const name = `${ACCOUNT}_CloudTrail_us-east-1_${stamp}_Aaj0Vzf9VCKbVbPz.json.gz`;
  writeFile(
    join(root, 'AWSLogs', ACCOUNT, 'CloudTrail', 'us-east-1', '2026', '11', '20', name),
    gzipSync(JSON.stringify({ Records: records })),
  );
}

function configFile(allowLongTermKeys: boolean): string {
  return writeFile(
    join(tempDir(), 'keyguard.config.json'),
    JSON.stringify({ mode: 'audit', allowLongTermKeys }),
  );
}

/** svc-two holds two keys; svc-legacy's key predates the logs; both call Bedrock in three different hours. */
function archive(): string {
  const root = tempDir();
  writeLog(root, '20261120T0905Z', [
    tagUserRecord('2026-11-20T08:59:00Z', 'svc-two', FULL_TAGS),
    createKeyRecord('2026-11-20T09:00:00Z', 'svc-two', 'ACCATOTALSTWOKEYS001', { ageDays: 30 }),
    createKeyRecord('2026-11-20T09:01:00Z', 'svc-two', 'ACCATOTALSTWOKEYS002', { ageDays: 30 }),
  ]);
  writeLog(root, '20261120T1305Z', [
    longTermCall('svc-two', '2026-11-20T10:00:00Z'),
    longTermCall('svc-legacy', '2026-11-20T10:00:00Z'),
    longTermCall('svc-legacy', '2026-11-20T11:00:00Z'),
    longTermCall('svc-legacy', '2026-11-20T12:00:00Z'),
  ]);
  return root;
}

afterAll(removeTempDirs);

describe('keyguard replay: usage totals of calls not credited to one key', () => {
  it('counts a user whose keys the store does not know apart from a user with two keys', async () => {
    // Prepare
    const root = archive();
    const out = captureIO(root);

    // Act
    const code = await runReplay(['.'], { store: tempDir(), config: configFile(true), jobs: 1 }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(out.stdout()).toContain(
      'Usage: 4 bearer-token calls (4 long-term on 0 keys, 1 user with two keys and 1 user with keys unknown to ' +
        'this store, 0 short-term by 0 principals)',
    );
    expect(out.stderr()).not.toContain('warning');
  });

  it('with long-term keys forbidden, warns once about a user whose key it cannot name, naming the user and account', async () => {
    // Prepare
    const root = archive();
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { store: tempDir(), config: configFile(false), json: true, quiet: true, jobs: 1 },
      out.io,
    );

    // Assess: the user with two keys is decided (both keys), the other cannot be, and is warned about once
    expect(code).toBe(0);
    const warnings = out
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('keyguard: warning:'));
    expect(warnings).toEqual([
      `keyguard: warning: user svc-legacy in account ${ACCOUNT} made long-term bearer-token calls (from ` +
        '2026-11-20T10:00:00.000Z) with a key this store does not know; allowLongTermKeys is false, but no ' +
        'decision can name the key: replay the logs of its creation, or look the user up in IAM',
    ]);
    const fromUse = jsonLines(out.stdout()).filter((d) =>
      d.violations.some(
        (v) =>
          v.code === 'LONG_TERM_NOT_ALLOWED' && d.trigger.eventName !== 'CreateServiceSpecificCredential',
      ),
    );
    expect(fromUse.map((d) => d.userName)).not.toContain('svc-legacy');
  });
});
