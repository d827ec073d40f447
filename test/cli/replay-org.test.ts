import { join } from 'node:path';
import { runReplay } from '../../lambda/cli/replay';
import type { Decision } from '../../lambda/domain/types';
import { captureIO, jsonLines, removeTempDirs, tempDir } from './helpers';
import { MANAGEMENT, MEMBER_A, MEMBER_B, ORG_ID, orgArchive } from './org-archive';

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
});
