import { join } from 'node:path';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoApprovalsStore } from '../../lambda/adapters/approvals-store';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import {
  type ApprovalsDeps,
  parseUntil,
  runApprove,
  runListApprovals,
  runReview,
  runRevoke,
} from '../../lambda/cli/approvals';
import {
  decideKey,
  type Enforcer,
  type KeyDirectory,
  type KeyStep,
  type KnownKey,
  type Notifier,
  type PipelineDeps,
} from '../../lambda/domain/pipeline';
import type { Decision } from '../../lambda/domain/types';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { createTestTables, startTestDynamo, TABLES } from '../support/dynamo';
import { fakeLongTermKey, leakedFragments } from '../support/secrets';
import { captureIO, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

// Load the TypeScript CLI itself (an extension-less import would find the bin/keyguard.js shim).
const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

const ACCOUNT = '111122223333';
const NOW = new Date('2026-11-20T10:00:00.000Z');
const KEY = 'ACCAEXAMPLEKEYAPPROVE';
const USER = 'svc-batch-summarizer';
/** A security engineer's SSO session: neither owner nor creator of KEY. */
const CAROL = `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/carol@example.com`;
const sts = mockClient(STSClient);

let db: EmbeddedDynamo;
let n = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
  removeTempDirs();
});
beforeEach(() => {
  sts.reset();
  callerIs(CAROL);
});

function callerIs(arn: string): void {
  sts.on(GetCallerIdentityCommand).resolves({ Arn: arn, Account: arn.split(':')[4], UserId: 'AIDAEXAMPLE' });
}

interface World {
  tables: { approvalsTable: string; keysTable: string; decisionsTable: string };
  deps: ApprovalsDeps;
  audit: DynamoAuditLog;
  store: DynamoApprovalsStore;
  /** The CLI's working directory: an empty one (no keyguard.config.json) unless a test writes one. */
  cwd: string;
}

/** Fresh tables per test (no shared state) and a key the keys table knows. */
async function world(known: Partial<KnownKey> = {}, now: Date = NOW): Promise<World> {
  n += 1;
  const tables = {
    approvalsTable: `test-approvals-cli-${n}`,
    keysTable: `${TABLES.keysTable}-cli-${n}`,
    decisionsTable: `${TABLES.decisionsTable}-cli-${n}`,
  };
  await createTestTables(db, { ...tables, idempotencyTable: `${TABLES.idempotencyTable}-cli-${n}` });
  const audit = new DynamoAuditLog(db.doc, tables);
  await audit.putKnownKey({
    accountId: ACCOUNT,
    keyId: KEY,
    userName: USER,
    status: 'Active',
    createdAt: '2026-01-10T09:00:00.000Z',
    expiresAt: null,
    creator: `arn:aws:iam::${ACCOUNT}:user/bob`,
    owner: 'alice@example.com',
    lastDecisionId: '2026-01-10T09:00:00.000Z/event/e-1',
    lastDecisionAt: '2026-01-10T09:00:05.000Z',
    ...known,
  });
  let id = 0;
  const deps: ApprovalsDeps = {
    sts: new STSClient({ region: 'us-east-1' }),
    doc: db.doc,
    now: () => now,
    newId: () => `id-${n}-${++id}`,
  };
  return {
    tables,
    deps,
    audit,
    store: new DynamoApprovalsStore(db.doc, tables.approvalsTable),
    cwd: tempDir(),
  };
}

function approveArgs(w: World, over: Record<string, string | undefined> = {}) {
  return {
    key: KEY,
    reason: 'batch summarizer is migrating to short-term keys; SEC-481',
    until: '2027-01-31',
    covers: 'NEVER_EXPIRES',
    ...w.tables,
    ...over,
  };
}

describe('keyguard approve', () => {
  it('records the approval and an audit decision, attributed to the STS caller', async () => {
    // Prepare
    const w = await world();
    const out = captureIO(w.cwd);

    // Act
    const code = await runApprove(approveArgs(w), out.io, w.deps);

    // Assess
    expect(out.stderr()).toBe('');
    expect(code).toBe(0);
    const [approval, ...more] = await w.store.listApprovals(ACCOUNT, KEY);
    expect(more).toHaveLength(0);
    expect(approval).toEqual({
      approvalId: `id-${n}-1`,
      accountId: ACCOUNT,
      keyId: KEY,
      covers: ['NEVER_EXPIRES'],
      reason: 'batch summarizer is migrating to short-term keys; SEC-481',
      approver: CAROL,
      approvedAt: NOW.toISOString(),
      until: '2027-01-31T23:59:59.999Z',
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
    });
    const [decision] = await w.audit.decisionsForKey(ACCOUNT, KEY);
    expect(decision).toMatchObject({
      decisionId: `${NOW.toISOString()}/approval/id-${n}-1`,
      decidedAt: NOW.toISOString(),
      keyId: KEY,
      userName: USER,
      accountId: ACCOUNT,
      status: 'Active',
      trigger: { kind: 'approval', eventId: `id-${n}-1`, eventName: 'Approve', eventTime: NOW.toISOString() },
      createdAt: '2026-01-10T09:00:00.000Z',
      expiresAt: null,
      neverExpires: true,
      owner: { value: 'alice@example.com', source: 'tag' },
      violations: [],
      action: 'ALLOW',
      applied: false,
    });
    expect(decision?.reason).toBe(
      `approval id-${n}-1 by ${CAROL} waives NEVER_EXPIRES until 2027-01-31T23:59:59.999Z: ` +
        'batch summarizer is migrating to short-term keys; SEC-481',
    );
    expect(out.stdout()).toContain(
      `Approved key ${KEY} (user ${USER}, account ${ACCOUNT}): NEVER_EXPIRES until 2027-01-31T23:59:59.999Z`,
    );
    expect(sts).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
  });

  it('covers every code when --covers is omitted, and accepts several codes in any case', async () => {
    const w = await world();

    const all = await runApprove(approveArgs(w, { covers: undefined }), captureIO(w.cwd).io, w.deps);
    const some = await runApprove(
      approveArgs(w, { covers: 'never_expires, MISSING_PURPOSE' }),
      captureIO(w.cwd).io,
      w.deps,
    );

    expect([all, some]).toEqual([0, 0]);
    expect((await w.store.listApprovals(ACCOUNT, KEY)).map((a) => a.covers)).toEqual([
      'ALL',
      ['NEVER_EXPIRES', 'MISSING_PURPOSE'],
    ]);
  });

  it.each([
    [
      'the owner, by email, through an SSO session named after it',
      { owner: 'Alice@Example.com' },
      `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice@example.com`,
      /you \(.*alice@example.com\) are the owner of key ACCAEXAMPLEKEYAPPROVE \(owner Alice@Example.com\)/,
    ],
    [
      'the creator, named as a role (with a path), through a session of that role',
      { creator: `arn:aws:iam::${ACCOUNT}:role/pipelines/Deployer` },
      `arn:aws:sts::${ACCOUNT}:assumed-role/Deployer/ci-run-4242`,
      /are the creator of key .* \(creator arn:aws:iam::111122223333:role\/pipelines\/Deployer\)/,
    ],
    ['the creator, as an IAM user', {}, `arn:aws:iam::${ACCOUNT}:user/bob`, /are the creator of key/],
    [
      'the creator session, from another role (same session name)',
      { creator: `arn:aws:sts::${ACCOUNT}:assumed-role/Developer/dana@example.com` },
      `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/dana@example.com`,
      /are the creator of key/,
    ],
  ])('refuses approval by %s (exit 2, nothing written)', async (_what, known, caller, message) => {
    // Prepare
    const w = await world(known);
    callerIs(caller);
    const out = captureIO(w.cwd);

    // Act
    const code = await runApprove(approveArgs(w), out.io, w.deps);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(message);
    expect(out.stderr()).toContain('ask another approver');
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
    expect(await w.audit.decisionsForKey(ACCOUNT, KEY)).toEqual([]);
  });

  it('accepts a colleague in the same shared role as the creator (a different session is a different person)', async () => {
    const w = await world({ creator: `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/bob@example.com` });
    callerIs(`arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/carol@example.com`);

    const code = await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);

    expect(code).toBe(0);
  });

  it('refuses a key the keys table does not know, naming account and table', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { key: 'ACCAEXAMPLEKEYUNKNOWN' }), out.io, w.deps);

    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      `key ACCAEXAMPLEKEYUNKNOWN is not known in account ${ACCOUNT} (keys table ${w.tables.keysTable})`,
    );
  });

  it.each([
    ['a past date', '2026-11-19', /--until: 2026-11-19T23:59:59.999Z is not in the future/],
    ['now', NOW.toISOString(), /is not in the future/],
    [
      'more than maxApprovalDays (default 365) away',
      '2027-11-21',
      /more than maxApprovalDays \(365\) away; the latest allowed is 2027-11-20T10:00:00.000Z/,
    ],
    [
      'a timestamp without a zone',
      '2027-01-31T17:00:00',
      /allowed: a date YYYY-MM-DD .* or an ISO-8601 timestamp with a zone/,
    ],
    ['a non-date', 'next friday', /--until: got "next friday"/],
    ['an impossible date', '2027-02-30', /is not a calendar date/],
  ])('refuses --until that is %s', async (_what, until, message) => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { until }), out.io, w.deps);

    expect(code).toBe(2);
    expect(out.stderr()).toMatch(message);
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
  });

  it('takes maxApprovalDays from --config', async () => {
    const w = await world();
    const config = writeFile(join(w.cwd, 'policy.json'), JSON.stringify({ maxApprovalDays: 30 }));
    const tooLong = captureIO(w.cwd);
    const fine = captureIO(w.cwd);

    const refused = await runApprove(approveArgs(w, { until: '2026-12-21', config }), tooLong.io, w.deps);
    const accepted = await runApprove(
      approveArgs(w, { until: '2026-12-19T18:00:00+01:00', config }),
      fine.io,
      w.deps,
    );

    expect([refused, accepted]).toEqual([2, 0]);
    expect(tooLong.stderr()).toContain('more than maxApprovalDays (30) away');
    expect((await w.store.listApprovals(ACCOUNT, KEY))[0]?.until).toBe('2026-12-19T17:00:00.000Z');
  });

  it('refuses an unknown violation code, listing the allowed ones', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { covers: 'NEVER_EXPIRES,EVERYTHING' }), out.io, w.deps);

    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      '--covers: unknown violation code(s) EVERYTHING; allowed: NEVER_EXPIRES, EXCEEDS_MAX_AGE,',
    );
    expect(out.stderr()).toContain('LONG_TERM_NOT_ALLOWED');
    expect(sts).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 0);
  });

  it('refuses an empty or blank --reason', async () => {
    const w = await world();
    const empty = captureIO(w.cwd);
    const blank = captureIO(w.cwd);

    const codes = [
      await runApprove(approveArgs(w, { reason: '' }), empty.io, w.deps),
      await runApprove(approveArgs(w, { reason: '   ' }), blank.io, w.deps),
    ];

    expect(codes).toEqual([2, 2]);
    expect(empty.stderr()).toContain('--reason: must not be empty');
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
  });

  it('never stores or prints key material pasted into --reason', async () => {
    const w = await world();
    const secret = fakeLongTermKey('approve-reason');
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { reason: `rotating ${secret} soon` }), out.io, w.deps);

    expect(code).toBe(0);
    const stored = JSON.stringify([
      await w.store.listApprovals(ACCOUNT, KEY),
      await w.audit.decisionsForKey(ACCOUNT, KEY),
    ]);
    expect(leakedFragments(stored + out.stdout() + out.stderr(), [secret])).toEqual([]);
    expect(stored).toContain('ABSK…');
  });
});

describe('keyguard approvals revoke', () => {
  it('revokes once, with an audit decision; a second revocation is refused', async () => {
    // Prepare
    const w = await world();
    await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);
    const dave = `arn:aws:iam::${ACCOUNT}:user/dave`;
    callerIs(dave);
    const first = captureIO(w.cwd);
    const second = captureIO(w.cwd);
    const revokeArgs = { approval: `id-${n}-1`, reason: 'replacement key is live', ...w.tables };

    // Act
    const codes = [
      await runRevoke(revokeArgs, first.io, w.deps),
      await runRevoke(revokeArgs, second.io, w.deps),
    ];

    // Assess
    expect(codes).toEqual([0, 2]);
    expect(first.stdout()).toContain(`Revoked approval id-${n}-1 of key ${KEY}`);
    expect(second.stderr()).toContain(
      `approval id-${n}-1 was already revoked at ${NOW.toISOString()} by ${dave}`,
    );
    const [approval] = await w.store.listApprovals(ACCOUNT, KEY);
    expect(approval).toMatchObject({
      revokedAt: NOW.toISOString(),
      revokedBy: dave,
      revokeReason: 'replacement key is live',
    });
    const decisions = await w.audit.decisionsForKey(ACCOUNT, KEY);
    expect(decisions.map((d) => [d.trigger.kind, d.trigger.eventName, d.action])).toEqual([
      ['approval', 'Approve', 'ALLOW'],
      ['approval', 'RevokeApproval', 'ALLOW'],
    ]);
    expect(decisions[1]?.reason).toBe(
      `approval id-${n}-1 (NEVER_EXPIRES until 2027-01-31T23:59:59.999Z, by ${CAROL}) revoked by ${dave}: replacement key is live`,
    );
  });

  it('refuses an unknown approval id and an empty reason', async () => {
    const w = await world();
    const unknown = captureIO(w.cwd);
    const noReason = captureIO(w.cwd);

    const codes = [
      await runRevoke({ approval: 'nope', reason: 'x', ...w.tables }, unknown.io, w.deps),
      await runRevoke({ approval: 'nope', reason: '', ...w.tables }, noReason.io, w.deps),
    ];

    expect(codes).toEqual([2, 2]);
    expect(unknown.stderr()).toContain('approval nope not found');
    expect(noReason.stderr()).toContain('--reason: must not be empty');
  });
});

describe('keyguard approvals list', () => {
  it('prints the account approvals as a table, or one JSON object per line, with their state', async () => {
    // Prepare: one active, one revoked.
    const w = await world();
    await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);
    await runApprove(approveArgs(w, { covers: undefined, until: '2026-12-01' }), captureIO(w.cwd).io, w.deps);
    await runRevoke({ approval: `id-${n}-2`, reason: 'too broad', ...w.tables }, captureIO(w.cwd).io, w.deps);
    const table = captureIO(w.cwd);
    const json = captureIO(w.cwd);

    // Act
    const codes = [
      await runListApprovals({ approvalsTable: w.tables.approvalsTable }, table.io, w.deps),
      await runListApprovals(
        { approvalsTable: w.tables.approvalsTable, key: KEY, json: true },
        json.io,
        w.deps,
      ),
    ];

    // Assess
    expect(codes).toEqual([0, 0]);
    const lines = table.stdout().trimEnd().split('\n');
    expect(lines[0]).toMatch(/^APPROVAL\s+KEY ID\s+STATE\s+COVERS\s+UNTIL\s+APPROVER\s+REASON$/);
    expect(lines[1]).toMatch(
      new RegExp(`^id-${n}-1\\s+${KEY}\\s+active\\s+NEVER_EXPIRES\\s+2027-01-31T23:59:59.999Z`),
    );
    expect(lines[2]).toMatch(new RegExp(`^id-${n}-2\\s+${KEY}\\s+revoked\\s+ALL\\s+`));
    expect(lines[2]).toContain('(revoked by');
    const objects = json
      .stdout()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objects.map((o) => [o.approvalId, o.state, o.covers])).toEqual([
      [`id-${n}-1`, 'active', ['NEVER_EXPIRES']],
      [`id-${n}-2`, 'revoked', 'ALL'],
    ]);
  });

  it('shows control and bidi characters of a reason and a user name as escapes (issue 10, item 5)', async () => {
    // Prepare: a user name and an approval reason that try to forge a row, clear the screen and reverse text.
    const w = await world({ userName: `svc\u202eyrots\n${'id-0-9'}  ${KEY}  active  ALL` });
    const forged = `ok\nid-0-9  ${KEY}  active  ALL  2099-01-01  arn:aws:iam::${ACCOUNT}:user/x  fine\x1b[2J\u202e`;
    const approve = captureIO(w.cwd);
    const review = captureIO(w.cwd);
    const table = captureIO(w.cwd);

    // Act
    const codes = [
      await runApprove(approveArgs(w, { reason: forged }), approve.io, w.deps),
      await runReview({ key: KEY, note: 'n', ...w.tables }, review.io, w.deps),
      await runListApprovals({ approvalsTable: w.tables.approvalsTable }, table.io, w.deps),
    ];

    // Assess
    expect(codes).toEqual([0, 0, 0]);
    const raw = /(?!\n)[\p{Cc}\u202a-\u202e\u2066-\u2069]/u;
    for (const out of [approve, review, table]) expect(out.stdout()).not.toMatch(raw);
    const rows = table.stdout().trimEnd().split('\n');
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain(`ok\\nid-0-9  ${KEY}  active  ALL  2099-01-01`);
    expect(rows[1]).toMatch(/fine\\x1b\[2J\\u202e$/);
    expect(approve.stdout()).toContain(`(user svc\\u202eyrots\\nid-0-9  ${KEY}  active  ALL, account`);
    expect(review.stdout().split('\n')[0]).toContain(
      `user svc\\u202eyrots\\nid-0-9  ${KEY}  active  ALL, account`,
    );
  });

  it('says so when there are none', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runListApprovals({ approvalsTable: w.tables.approvalsTable }, out.io, w.deps);

    expect(code).toBe(0);
    expect(out.stdout()).toBe(`No approvals in account ${ACCOUNT}.\n`);
  });
});

describe('keyguard review', () => {
  it('records a review and an audit decision', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runReview(
      { key: KEY, note: 'still used by the nightly batch', ...w.tables },
      out.io,
      w.deps,
    );

    expect(code).toBe(0);
    expect(await w.store.recordsFor(ACCOUNT, KEY)).toEqual({
      approvals: [],
      lastReviewAt: NOW.toISOString(),
    });
    const [decision] = await w.audit.decisionsForKey(ACCOUNT, KEY);
    expect(decision).toMatchObject({
      decisionId: `${NOW.toISOString()}/review/id-${n}-1`,
      trigger: { kind: 'review', eventName: 'Review', eventId: `id-${n}-1` },
      action: 'ALLOW',
      violations: [],
    });
    expect(decision?.reason).toContain(`reviewed by ${CAROL}`);
    expect(decision?.reason).toContain('still used by the nightly batch');
  });

  it('refuses a review by the key owner and an empty note', async () => {
    const w = await world({ owner: 'carol@example.com' });
    const self = captureIO(w.cwd);
    const empty = captureIO(w.cwd);

    const codes = [
      await runReview({ key: KEY, note: 'fine', ...w.tables }, self.io, w.deps),
      await runReview({ key: KEY, note: ' ', ...w.tables }, empty.io, w.deps),
    ];

    expect(codes).toEqual([2, 2]);
    expect(self.stderr()).toContain('are the owner of key');
    expect(self.stderr()).toContain('nobody may review a key they own or created');
    expect(empty.stderr()).toContain('--note: must not be empty');
    expect(await w.store.recordsFor(ACCOUNT, KEY)).toEqual({ approvals: [], lastReviewAt: null });
  });
});

describe('evaluation honours approvals and reviews (decideKey with the approvals store)', () => {
  const config = parseConfig({ mode: 'enforce' });
  const TAGS = { owner: 'alice@example.com', purpose: 'nightly summaries', 'review-cadence': '90d' };

  class RecordingEnforcer implements Enforcer {
    readonly calls: string[] = [];
    async deactivate(_a: string, _u: string, keyId: string): Promise<boolean> {
      this.calls.push(keyId);
      return true;
    }
  }
  const silent: Notifier = { notify: async () => undefined };
  const directory: KeyDirectory = {
    getKey: async () => null,
    listUserKeys: async () => [],
    getUserTags: async () => TAGS,
  };

  function pipeline(w: World): { deps: PipelineDeps; enforcer: RecordingEnforcer } {
    const enforcer = new RecordingEnforcer();
    return { deps: { directory, audit: w.audit, enforcer, notifier: silent, approvals: w.store }, enforcer };
  }

  async function sweepAt(w: World, at: Date, expiresAt: string | null = null): Promise<Decision> {
    const step: KeyStep = {
      accountId: ACCOUNT,
      keyId: KEY,
      userName: USER,
      meta: {
        keyId: KEY,
        userName: USER,
        status: 'Active',
        createdAt: '2026-11-01T00:00:00.000Z',
        expiresAt,
      },
      trigger: { kind: 'sweep', eventTime: at.toISOString() },
      decisionId: `${at.toISOString()}/sweep/s-${at.getTime()}`,
      record: 'always',
    };
    const result = await decideKey(step, pipeline(w).deps, {
      config,
      policyVersion: policyVersion(config),
      now: at,
    });
    if (!result) throw new Error('no decision');
    return result.decision;
  }

  it('an active approval covering NEVER_EXPIRES waives it; once expired or revoked the key is deactivated', async () => {
    // Prepare: approved until the end of 2026-11-30.
    const w = await world();
    expect(await runApprove(approveArgs(w, { until: '2026-11-30' }), captureIO(w.cwd).io, w.deps)).toBe(0);
    const { deps, enforcer } = pipeline(w);
    const at = (iso: string) => new Date(iso);

    // Act + Assess: while active
    const during = await decideKey(
      {
        accountId: ACCOUNT,
        keyId: KEY,
        userName: USER,
        meta: {
          keyId: KEY,
          userName: USER,
          status: 'Active',
          createdAt: '2026-11-01T00:00:00.000Z',
          expiresAt: null,
        },
        trigger: { kind: 'sweep' },
        decisionId: '2026-11-25T00:00:00.000Z/sweep/s-1',
        record: 'always',
      },
      deps,
      { config, policyVersion: policyVersion(config), now: at('2026-11-25T00:00:00.000Z') },
    );
    expect(during?.decision).toMatchObject({ action: 'ALLOW', violations: [], applied: false });
    expect(during?.decision.waived).toEqual([
      expect.objectContaining({ code: 'NEVER_EXPIRES', approvalId: `id-${n}-1` }),
    ]);
    expect(enforcer.calls).toEqual([]);

    // ... and after it expired
    const after = await sweepAt(w, at('2026-12-01T00:00:00.000Z'));
    expect(after).toMatchObject({ action: 'DEACTIVATE', applied: true });
    expect(after.violations.map((v) => v.code)).toEqual(['NEVER_EXPIRES']);
    expect(after.waived).toBeUndefined();
  });

  it('a revoked approval no longer waives anything', async () => {
    const w = await world();
    await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);
    const before = await sweepAt(w, new Date('2026-11-20T11:00:00.000Z'));
    await runRevoke(
      { approval: `id-${n}-1`, reason: 'no longer needed', ...w.tables },
      captureIO(w.cwd).io,
      w.deps,
    );

    const after = await sweepAt(w, new Date('2026-11-20T12:00:00.000Z'));

    expect(before.action).toBe('ALLOW');
    expect(after).toMatchObject({ action: 'DEACTIVATE', applied: true });
  });

  it('an approval covering another code does not waive NEVER_EXPIRES', async () => {
    const w = await world();
    await runApprove(approveArgs(w, { covers: 'MISSING_PURPOSE' }), captureIO(w.cwd).io, w.deps);

    const d = await sweepAt(w, new Date('2026-11-20T11:00:00.000Z'));

    expect(d.action).toBe('DEACTIVATE');
  });

  it('a review resets the review clock: REVIEW_OVERDUE goes away', async () => {
    // Prepare: created 2026-11-01 with a 90-day cadence and an expiry in range, so review is the only issue.
    const w = await world({}, new Date('2027-02-05T09:00:00.000Z'));
    const expiresAt = '2027-02-20T00:00:00.000Z';
    const overdue = await sweepAt(w, new Date('2027-02-05T08:00:00.000Z'), expiresAt);

    // Act
    const code = await runReview(
      { key: KEY, note: 'checked with the team', ...w.tables },
      captureIO(w.cwd).io,
      w.deps,
    );
    const reviewed = await sweepAt(w, new Date('2027-02-05T10:00:00.000Z'), expiresAt);

    // Assess
    expect(code).toBe(0);
    expect(overdue.violations.map((v) => v.code)).toContain('REVIEW_OVERDUE');
    expect(reviewed.violations.map((v) => v.code)).not.toContain('REVIEW_OVERDUE');
  });
});

describe('keyguard CLI wiring', () => {
  it('runs approve from argv, with table names from the KEYGUARD_*_TABLE environment variables', async () => {
    // Prepare
    const w = await world();
    const saved = { ...process.env };
    process.env.KEYGUARD_APPROVALS_TABLE = w.tables.approvalsTable;
    process.env.KEYGUARD_KEYS_TABLE = w.tables.keysTable;
    process.env.KEYGUARD_DECISIONS_TABLE = w.tables.decisionsTable;
    const out = captureIO(w.cwd);
    let code: number;

    // Act
    try {
      code = await main(
        [
          'node',
          'keyguard',
          'approve',
          '--key',
          KEY,
          '--reason',
          'SEC-481',
          '--until',
          '2027-01-31',
          '--covers',
          'NEVER_EXPIRES',
        ],
        out.io,
        () => w.deps,
      );
    } finally {
      process.env = saved;
    }

    // Assess
    expect(out.stderr()).toBe('');
    expect(code).toBe(0);
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toHaveLength(1);
  });

  it('lists approve, approvals and review in --help, and exits 2 when a required option is missing', async () => {
    const help = captureIO(REPO);
    const missing = captureIO(REPO);

    const codes = [
      await main(['node', 'keyguard', '--help'], help.io),
      await main(['node', 'keyguard', 'approve', '--key', KEY], missing.io),
    ];

    expect(codes).toEqual([0, 2]);
    expect(help.stdout()).toMatch(/approve \[options\]\s+approve a key/);
    expect(help.stdout()).toMatch(/approvals\s+list or revoke approvals/);
    expect(help.stdout()).toMatch(/review \[options\]\s+record a review/);
    expect(missing.stderr()).toContain("required option '--reason <text>' not specified");
  });
});

describe('parseUntil', () => {
  it('reads a date as the end of that day, UTC, and a timestamp with its zone', () => {
    expect(parseUntil('2026-12-01', NOW, 365)).toBe('2026-12-01T23:59:59.999Z');
    expect(parseUntil('2026-12-01T08:30:00-05:00', NOW, 365)).toBe('2026-12-01T13:30:00.000Z');
    expect(parseUntil(' 2026-11-20T10:00:01Z ', NOW, 365)).toBe('2026-11-20T10:00:01.000Z');
  });
});
