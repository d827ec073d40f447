import { join } from 'node:path';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { REPLAY_TABLES, runReplay } from '../../lambda/cli/replay';
import type { Decision } from '../../lambda/domain/types';
import { loadConfig, policyVersion } from '../../lambda/shared/config';
import {
  ACCOUNT,
  captureIO,
  EXAMPLES,
  exampleRecords,
  jsonLines,
  REPO,
  removeTempDirs,
  tempDir,
} from './helpers';

/** The decision fields of design.md, plus decisionId/decidedAt/status (the Decision type). */
const DECISION_FIELDS = [
  'decisionId',
  'decidedAt',
  'keyId',
  'userName',
  'accountId',
  'keyType',
  'status',
  'trigger',
  'createdAt',
  'expiresAt',
  'neverExpires',
  'owner',
  'violations',
  'action',
  'applied',
  'mode',
  'deadline',
  'policyVersion',
];

const codes = (d: Decision | undefined) => d?.violations.map((v) => v.code);

function find(decisions: Decision[], userName: string, eventName: string, nth = 0): Decision | undefined {
  return decisions.filter((d) => d.userName === userName && d.trigger.eventName === eventName)[nth];
}

afterAll(removeTempDirs);

describe('keyguard replay over examples/cloudtrail', () => {
  let decisions: Decision[];
  let stdout: string;
  let stderr: string;
  let code: number;

  beforeAll(async () => {
    const out = captureIO(REPO);
    code = await runReplay(['examples/cloudtrail'], { json: true, store: tempDir() }, out.io);
    stdout = out.stdout();
    stderr = out.stderr();
    decisions = jsonLines(stdout);
  });

  it('reads every file and exits 0', () => {
    expect(code).toBe(0);
    expect(stderr).toContain('Files: 7 read, 0 with errors');
    expect(stderr).not.toMatch(/^keyguard: /m);
  });

  it('prints one decision object per line with exactly the design.md fields', () => {
    expect(decisions).toHaveLength(12);
    for (const d of decisions) {
      const keys = Object.keys(d);
      expect(keys.slice(0, DECISION_FIELDS.length)).toEqual(DECISION_FIELDS);
      // After them, only the optional lifecycle fields.
      for (const extra of keys.slice(DECISION_FIELDS.length))
        expect(['waived', 'reason', 'notice']).toContain(extra);
      expect(d).toMatchObject({ keyType: 'LONG_TERM', accountId: ACCOUNT, mode: 'audit', applied: false });
      expect(d.keyId).toMatch(/^ACCA[A-Z0-9]{17}$/);
      expect(d.trigger.kind).toBe('replay');
      expect(d.policyVersion).toMatch(/^p-[0-9a-f]{12}$/);
    }
  });

  it('allows the tagged 30-day key (ISO dates), owner from the tag', () => {
    const d = find(decisions, 'svc-chatbot', 'CreateServiceSpecificCredential');
    expect(d).toMatchObject({
      action: 'ALLOW',
      violations: [],
      createdAt: '2026-11-20T09:31:02.000Z',
      expiresAt: '2026-12-20T09:31:02.000Z',
      neverExpires: false,
      owner: { value: 'alice@example.com', source: 'tag' },
      deadline: null,
    });
  });

  it('plans to deactivate the key with no expiration date (text date with comma), owner from the creator', () => {
    const d = find(decisions, 'svc-batch-summarizer', 'CreateServiceSpecificCredential');
    expect(d).toMatchObject({
      action: 'DEACTIVATE',
      applied: false,
      createdAt: '2026-11-20T10:05:44.000Z',
      expiresAt: null,
      neverExpires: true,
      owner: { value: 'arn:aws:iam::111122223333:user/bob', source: 'creator' },
    });
    expect(codes(d)).toEqual(['NEVER_EXPIRES', 'MISSING_OWNER', 'MISSING_PURPOSE', 'MISSING_REVIEW_CADENCE']);
  });

  it('treats an expiration date in 2125 as never expiring, also after the user is tagged', () => {
    const created = find(decisions, 'BedrockAPIKey-7qzx', 'CreateServiceSpecificCredential');
    const tagged = find(decisions, 'BedrockAPIKey-7qzx', 'TagUser');
    expect(created).toMatchObject({
      expiresAt: '2125-11-20T14:22:10.000Z',
      neverExpires: true,
      action: 'DEACTIVATE',
    });
    expect(codes(tagged)).toEqual(['NEVER_EXPIRES']);
    expect(tagged).toMatchObject({
      action: 'DEACTIVATE',
      owner: { value: 'carol@example.com', source: 'tag' },
    });
  });

  it('flags the 365-day key (text date without comma) with a grace deadline, then the removed tag', () => {
    const created = find(decisions, 'svc-analytics', 'CreateServiceSpecificCredential');
    const untagged = find(decisions, 'svc-analytics', 'UntagUser');
    expect(created).toMatchObject({
      action: 'NOTIFY',
      createdAt: '2026-11-20T14:41:07.000Z',
      expiresAt: '2027-11-20T14:41:07.000Z',
      deadline: '2026-11-23T14:41:07.000Z',
      owner: { value: 'dana@example.com', source: 'tag' },
    });
    expect(codes(created)).toEqual(['EXCEEDS_MAX_AGE']);
    expect(codes(untagged)).toEqual(['EXCEEDS_MAX_AGE', 'MISSING_REVIEW_CADENCE']);
  });

  it("shows the decision change when an untagged key's user is tagged later", () => {
    const created = find(decisions, 'svc-rag-indexer', 'CreateServiceSpecificCredential');
    const tagged = find(decisions, 'svc-rag-indexer', 'TagUser');
    expect(created).toMatchObject({
      action: 'NOTIFY',
      createdAt: '2026-11-21T16:05:10.000Z',
      expiresAt: '2026-12-21T16:05:10.000Z',
      owner: {
        source: 'creator',
        value: 'arn:aws:sts::111122223333:assumed-role/GitHubActionsDeploy/GitHubActions',
      },
    });
    expect(codes(created)).toEqual(['MISSING_OWNER', 'MISSING_PURPOSE', 'MISSING_REVIEW_CADENCE']);
    expect(tagged).toMatchObject({
      action: 'ALLOW',
      violations: [],
      owner: { value: 'erin@example.com', source: 'tag' },
    });
    // The TagUser record comes first in its file: replay still orders it after the key's creation.
    expect(decisions.indexOf(created as Decision)).toBeLessThan(decisions.indexOf(tagged as Decision));
  });

  it('follows Update to Inactive, Reset and Delete', () => {
    expect(find(decisions, 'svc-batch-summarizer', 'UpdateServiceSpecificCredential')).toMatchObject({
      status: 'Inactive',
      action: 'ALLOW',
    });
    expect(find(decisions, 'svc-chatbot', 'ResetServiceSpecificCredential')).toMatchObject({
      status: 'Active',
      action: 'ALLOW',
      createdAt: '2026-11-20T09:31:02.000Z',
    });
    expect(find(decisions, 'BedrockAPIKey-7qzx', 'DeleteServiceSpecificCredential')).toMatchObject({
      status: 'Deleted',
      action: 'ALLOW',
    });
  });

  it('leaves out the CodeCommit credential, the failed call and the noise', () => {
    const records = exampleRecords();
    const failedIds = records.filter((r) => r.errorCode).map((r) => r.eventID);
    const codecommitIds = records
      .filter(
        (r) =>
          (r.requestParameters as { serviceName?: string } | null)?.serviceName ===
          'codecommit.amazonaws.com',
      )
      .map(
        (r) =>
          (r.responseElements as { serviceSpecificCredential: { serviceSpecificCredentialId: string } })
            .serviceSpecificCredential.serviceSpecificCredentialId,
      );
    expect(failedIds).toHaveLength(1);
    expect(codecommitIds).toHaveLength(1);
    expect(decisions.filter((d) => failedIds.includes(d.trigger.eventId))).toEqual([]);
    expect(decisions.filter((d) => codecommitIds.includes(d.keyId) || d.userName === 'dev-bob')).toEqual([]);
    const triggers = new Set(decisions.map((d) => d.trigger.eventName));
    expect([...triggers].sort()).toEqual([
      'CreateServiceSpecificCredential',
      'DeleteServiceSpecificCredential',
      'ResetServiceSpecificCredential',
      'TagUser',
      'UntagUser',
      'UpdateServiceSpecificCredential',
    ]);
    expect(stderr).toMatch(/failed calls 1/);
    expect(stderr).toMatch(/credentials of other services 1/);
  });

  it('puts the decisions in eventTime order', () => {
    const times = decisions.map((d) => d.trigger.eventTime ?? '');
    expect(times).toEqual([...times].sort());
  });
});

describe('keyguard replay: table output and re-runs on one store', () => {
  it('prints a table and totals, and a second run records nothing twice', async () => {
    // Prepare
    const store = tempDir();
    const first = captureIO(REPO);
    const second = captureIO(REPO);
    const firstJson = captureIO(REPO);
    const secondJson = captureIO(REPO);

    // Act
    const code1 = await runReplay(['examples/cloudtrail'], { store }, first.io);
    const code2 = await runReplay(['examples/cloudtrail'], { store }, second.io);
    await runReplay(['examples/cloudtrail'], { store, json: true }, firstJson.io);
    await runReplay([join(EXAMPLES, 'cloudtrail')], { store, json: true }, secondJson.io);

    // Assess
    expect([code1, code2]).toEqual([0, 0]);
    const table = first.stdout();
    expect(table).toMatch(
      /^EVENT TIME\s+EVENT\s+USER\s+KEY ID\s+STATUS\s+ACTION\s+VIOLATIONS\s+OWNER \(SOURCE\)\s+RECORD$/m,
    );
    expect(table).toMatch(
      /2026-11-20 10:05:44Z\s+Create key\s+svc-batch-summarizer\s+ACCA\w+\s+Active\s+DEACTIVATE \(planned\)\s+NEVER_EXPIRES,MISSING_OWNER,MISSING_PURPOSE,MISSING_REVIEW_CADENCE\s+arn:aws:iam::111122223333:user\/bob \(creator\)\s+new$/m,
    );
    expect(table).toContain('Files: 7 read, 0 with errors');
    // The samples hold one Bedrock call made with a long-term key: usage (flow 3), not an event without a decision.
    expect(table).toContain('Events: 27 read, 18 relevant, 0 rejected, 14 without a decision');
    expect(table).toContain(
      'Usage: 1 bearer-token call (1 long-term on 1 key, 0 short-term by 0 principals), 0 skipped (SigV4 or unusable)',
    );
    expect(table).toContain('Decisions: 12 (12 new, 0 already on record): ALLOW 6, DEACTIVATE 3, NOTIFY 3');
    expect(table).toContain('Owners that would be notified: 6 (8 notices; nothing was sent)');
    expect(first.stderr()).toBe('');

    const rerun = second.stdout();
    expect(rerun).toContain('Decisions: 12 (0 new, 12 already on record)');
    expect(rerun.split('\n').filter((l) => l.endsWith('earlier run'))).toHaveLength(12);
    expect(secondJson.stdout()).toBe(firstJson.stdout());

    const db = await startEmbeddedDynamo({ path: store });
    try {
      const audit = new DynamoAuditLog(db.doc, REPLAY_TABLES);
      const decisions = jsonLines(firstJson.stdout());
      for (const keyId of new Set(decisions.map((d) => d.keyId))) {
        const stored = await audit.decisionsForKey(ACCOUNT, keyId);
        expect(stored.map((d) => d.decisionId)).toEqual(
          decisions.filter((d) => d.keyId === keyId).map((d) => d.decisionId),
        );
      }
    } finally {
      await db.close();
    }
  });

  it('decides under the policy of the --config file', async () => {
    // Prepare
    const out = captureIO(REPO);
    const defaults = captureIO(REPO);
    const store = tempDir();

    // Act
    const code = await runReplay(
      ['examples/events'],
      { json: true, store, config: 'examples/keyguard.config.json' },
      out.io,
    );
    await runReplay(['examples/events'], { json: true, store: tempDir() }, defaults.io);

    // Assess
    expect(code).toBe(0);
    const withConfig = jsonLines(out.stdout());
    const withDefaults = jsonLines(defaults.stdout());
    expect(withConfig.length).toBeGreaterThan(0);
    const expected = policyVersion(loadConfig(join(EXAMPLES, 'keyguard.config.json')).config);
    expect(new Set(withConfig.map((d) => d.policyVersion))).toEqual(new Set([expected]));
    expect(withDefaults[0]?.policyVersion).not.toBe(expected);
    expect(out.stderr()).toContain(`Policy ${expected} (examples/keyguard.config.json)`);
  });
});
