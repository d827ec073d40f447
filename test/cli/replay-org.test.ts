import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { REPLAY_TABLES, runReplay } from '../../lambda/cli/replay';
import type { Decision } from '../../lambda/domain/types';
import { scanAll } from '../support/dynamo';
import { ACCOUNT, captureIO, jsonLines, removeTempDirs, tempDir } from './helpers';
import { inAccount, MANAGEMENT, MEMBER_A, MEMBER_B, ORG_ID, orgArchive, writeOrgLog } from './org-archive';

/**
 * `keyguard replay` over an organization trail's S3 archive (`AWSLogs/<org id>/<account>/CloudTrail/...`): every
 * member account's events are decided as that account's, as for a single account (issue 12, CLI).
 */

afterAll(removeTempDirs);

function perAccount(decisions: readonly Decision[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const d of decisions) {
    const row = out[d.accountId] ?? {};
    row[d.action] = (row[d.action] ?? 0) + 1;
    out[d.accountId] = row;
  }
  return out;
}

describe('keyguard replay: an organization trail archive with three accounts', () => {
  it('decides each account’s key events as that account’s, whatever directory the replay starts from', async () => {
    // Prepare
    const { root, dir } = orgArchive();
    const fromBucket = captureIO(root);
    const fromOrg = captureIO(root);

    // Act
    const code = await runReplay(
      ['org-trail-bucket'],
      { json: true, store: tempDir(), jobs: 2 },
      fromBucket.io,
    );
    const orgCode = await runReplay(
      [join(dir, 'AWSLogs', ORG_ID)],
      { json: true, store: tempDir(), jobs: 1 },
      fromOrg.io,
    );

    // Assess
    expect(fromBucket.stderr()).not.toMatch(/^keyguard:/m);
    expect(code).toBe(0);
    const decisions = jsonLines(fromBucket.stdout());
    expect(decisions.map((d) => [d.accountId, d.userName, d.keyId, d.trigger.eventName, d.action])).toEqual([
      [MANAGEMENT, 'svc-shared', 'ACCAORGMGMT000000001', 'CreateServiceSpecificCredential', 'NOTIFY'],
      [MEMBER_A, 'svc-shared', 'ACCAORGMEMBERA000001', 'CreateServiceSpecificCredential', 'DEACTIVATE'],
      [MEMBER_A, 'svc-a2', 'ACCAORGMEMBERA000002', 'CreateServiceSpecificCredential', 'NOTIFY'],
      [MANAGEMENT, 'svc-shared', 'ACCAORGMGMT000000001', 'TagUser', 'ALLOW'],
      [MEMBER_B, 'svc-b', 'ACCAORGMEMBERB000001', 'CreateServiceSpecificCredential', 'NOTIFY'],
      [MEMBER_B, 'svc-b', 'ACCAORGMEMBERB000001', 'TagUser', 'ALLOW'],
    ]);
    // The management account's tags on svc-shared do not reach MEMBER_A's user of the same name.
    expect(perAccount(decisions)).toEqual({
      [MANAGEMENT]: { NOTIFY: 1, ALLOW: 1 },
      [MEMBER_A]: { DEACTIVATE: 1, NOTIFY: 1 },
      [MEMBER_B]: { NOTIFY: 1, ALLOW: 1 },
    });
    expect(orgCode).toBe(0);
    expect(jsonLines(fromOrg.stdout()).map((d) => d.decisionId)).toEqual(decisions.map((d) => d.decisionId));
  });

  it('decides an event once when an account trail and the organization trail both delivered it', async () => {
    // Prepare: the management account also has its own trail (AWSLogs/<account>/...) holding the same records.
    const { root, dir } = orgArchive();
    const orgCopy = join(dir, 'AWSLogs', ORG_ID, MANAGEMENT);
    cpSync(orgCopy, join(dir, 'AWSLogs', MANAGEMENT), { recursive: true });
    const out = captureIO(root);

    // Act
    const code = await runReplay(['org-trail-bucket'], { json: true, store: tempDir(), jobs: 2 }, out.io);

    // Assess
    expect(out.stderr()).not.toMatch(/^keyguard:/m);
    expect(code).toBe(0);
    const decisions = jsonLines(out.stdout());
    expect(decisions.filter((d) => d.accountId === MANAGEMENT).map((d) => d.trigger.eventName)).toEqual([
      'CreateServiceSpecificCredential',
      'TagUser',
    ]);
    expect(decisions).toHaveLength(6);
  });

  it('reads the log files only: digests and Insights files are no events', async () => {
    // Prepare
    const { root } = orgArchive();
    const out = captureIO(root);

    // Act
    const code = await runReplay(['org-trail-bucket'], { store: tempDir(), jobs: 1 }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(out.stdout()).toContain('Files: 5 read, 0 with errors');
    expect(out.stdout()).toContain('Events: 6 read, 6 relevant, 0 rejected, 0 without a decision');
  });

  it('credits a bearer-token call to the key of the calling account’s user, not to a same-named user elsewhere', async () => {
    // Prepare: svc-shared exists in MANAGEMENT and MEMBER_A, each with one key; MEMBER_A's and MEMBER_B's users call.
    const { root, dir } = orgArchive();
    const call = JSON.parse(
      readFileSync(
        join(__dirname, '..', 'fixtures', 'cloudtrail', 'bedrock-mantle-chat-completion-absk.json'),
        'utf8',
      ),
    ) as Record<string, unknown>;
    const byUser = (userName: string, account: string, eventTime: string, n: number) =>
      inAccount(
        {
          ...call,
          eventTime,
          eventID: `u0000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
          userIdentity: {
            type: 'IAMUser',
            principalId: `AIDA${userName.toUpperCase().replace(/-/g, '')}`,
            arn: `arn:aws:iam::${ACCOUNT}:user/${userName}`,
            accountId: ACCOUNT,
            userName,
          },
        },
        account,
      );
    writeOrgLog(
      dir,
      MEMBER_A,
      '2026-11-04T10:05:00Z',
      [byUser('svc-shared', MEMBER_A, '2026-11-04T10:00:00Z', 1)],
      {
        unique: 'UsageA0000000001',
      },
    );
    writeOrgLog(
      dir,
      MEMBER_B,
      '2026-11-04T11:05:00Z',
      [byUser('svc-b', MEMBER_B, '2026-11-04T11:00:00Z', 2)],
      {
        unique: 'UsageB0000000001',
      },
    );
    const store = tempDir();
    const out = captureIO(root);

    // Act
    const code = await runReplay(['org-trail-bucket'], { store, jobs: 2 }, out.io);

    // Assess
    expect(out.stderr()).not.toMatch(/^keyguard:/m);
    expect(code).toBe(0);
    expect(out.stdout()).toContain('Usage: 2 bearer-token calls (2 long-term on 2 keys');
    const db = await startEmbeddedDynamo({ path: store });
    let keys: Record<string, unknown>[];
    try {
      keys = (await scanAll(db, REPLAY_TABLES.usageTable)).filter((i) =>
        String(i.subject).startsWith('key#'),
      );
    } finally {
      await db.close();
    }
    expect(
      keys
        .map((i) => [i.accountId, i.keyId, i.userName, i.calls, i.lastUsedAt])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    ).toEqual([
      [MEMBER_A, 'ACCAORGMEMBERA000001', 'svc-shared', 1, '2026-11-04T10:00:00.000Z'],
      [MEMBER_B, 'ACCAORGMEMBERB000001', 'svc-b', 1, '2026-11-04T11:00:00.000Z'],
    ]);
  });
});
