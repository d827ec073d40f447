import { Logger } from '@aws-lambda-powertools/logger';
import { IAMClient } from '@aws-sdk/client-iam';
import {
  ChildNotFoundException,
  DescribeAccountCommand,
  ListParentsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoApprovalsStore } from '../../lambda/adapters/approvals-store';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { GovernedAccounts } from '../../lambda/adapters/governed-accounts';
import { MemberAccess } from '../../lambda/adapters/member-access';
import { OrgPlacement } from '../../lambda/adapters/org-placement';
import {
  type ApprovalsDeps,
  runApprove,
  runListApprovals,
  runReview,
  runRevoke,
} from '../../lambda/cli/approvals';
import { createApprovalHandler } from '../../lambda/handlers/approval-handler';
import { orgSettings, parseConfig } from '../../lambda/shared/config';
import { createTestTables, startTestDynamo, TABLES } from '../support/dynamo';
import { startFunctionUrlEmulator, type TestIdentity } from '../support/function-url-emulator';
import { captureIO, removeTempDirs, tempDir } from './helpers';

/*
 * `keyguard approve | review | approvals --account <member>` in organization mode (issue 12), end to end: the CLI
 * signs with the security engineer's hub credentials, a loopback emulator of the AWS_IAM function URL verifies the
 * signature, and the real approval function (organization mode: GovernedAccounts over mocked Organizations, dynalite
 * tables) decides. Keys of a governed member account are approved under that account; others are refused.
 */

const orgs = mockClient(OrganizationsClient);

const HUB = '999999999999';
const MEMBER = '333333333333';
const EXCLUDED = '222222222222';
const NOW = new Date('2026-11-20T10:00:00.000Z');
const KEY = 'ACCAEXAMPLEKEYMEMBERA';
const USER = 'svc-chatbot';
const CAROL = `arn:aws:sts::${HUB}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/carol@example.com`;
const MEMBER_ADMIN = `arn:aws:sts::${MEMBER}:assumed-role/Admin/eve`;

const settings = orgSettings(
  parseConfig({
    mode: 'audit',
    organization: {
      id: 'o-a1b2c3d4e5',
      managementAccountId: '111111111111',
      targets: ['r-ab12'],
      excludeAccounts: [EXCLUDED],
    },
  }),
);
if (!settings) throw new Error('test config has no organization');

const identities: TestIdentity[] = [CAROL, MEMBER_ADMIN].map((arn, i) => ({
  accessKeyId: `ASIATESTKEY0000000${i}`,
  secretAccessKey: `test-secret-${i}-${'s'.repeat(24)}`,
  sessionToken: `test-session-token-${i}`,
  userArn: arn,
  accountId: arn.split(':')[4] as string,
}));

let db: EmbeddedDynamo;
let n = 0;
const open: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
  removeTempDirs();
});
beforeEach(() => {
  orgs.reset();
  orgs.on(ListParentsCommand).callsFake((input: { ChildId: string }) => {
    if (input.ChildId !== MEMBER && input.ChildId !== EXCLUDED) {
      throw new ChildNotFoundException({ message: 'child not found', $metadata: {} });
    }
    return { Parents: [{ Id: 'r-ab12', Type: 'ROOT' }] };
  });
  orgs.on(DescribeAccountCommand).callsFake((input: { AccountId: string }) => ({
    Account: { Id: input.AccountId, Name: 'team-chat', State: 'ACTIVE' },
  }));
});
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

async function world() {
  n += 1;
  const tables = {
    approvalsTable: `test-approvals-cli-org-${n}`,
    keysTable: `${TABLES.keysTable}-cli-org-${n}`,
    decisionsTable: `${TABLES.decisionsTable}-cli-org-${n}`,
  };
  await createTestTables(db, { ...tables, idempotencyTable: `${TABLES.idempotencyTable}-cli-org-${n}` });
  for (const accountId of [MEMBER, EXCLUDED]) {
    await new DynamoAuditLog(db.doc, tables).putKnownKey({
      accountId,
      keyId: KEY,
      userName: USER,
      status: 'Active',
      createdAt: '2026-01-10T09:00:00.000Z',
      expiresAt: null,
      creator: `arn:aws:iam::${accountId}:user/bob`,
      owner: 'team-chat@example.com',
      lastDecisionId: '2026-01-10T09:00:00.000Z/event/e-1',
      lastDecisionAt: '2026-01-10T09:00:05.000Z',
    });
  }
  const accounts = new GovernedAccounts(
    settings as NonNullable<typeof settings>,
    new MemberAccess({
      organization: settings?.organization ?? null,
      hubAccountId: HUB,
      functionName: 'approval',
      hubIam: new IAMClient({ region: 'us-east-1' }),
      sts: new STSClient({ region: 'us-east-1' }),
    }),
    new OrgPlacement({ organizations: new OrganizationsClient({ region: 'us-east-1' }) }),
  );
  let id = 0;
  const handler = createApprovalHandler({
    policy: { mode: 'audit', maxApprovalDays: 365, fallbackOwner: null, approvers: [] },
    policyVersion: 'test-policy',
    governedAccountId: HUB,
    organization: async () => accounts,
    ...tables,
    doc: db.doc,
    logger: new Logger({ serviceName: 'keyguard-approval', logLevel: 'SILENT' }),
    now: () => NOW,
    newId: () => `id-${n}-${++id}`,
  });
  const fn = await startFunctionUrlEmulator({ identities, handler });
  open.push(fn);
  let caller = identities[0] as TestIdentity;
  const deps: ApprovalsDeps = {
    credentials: async () => ({
      accessKeyId: caller.accessKeyId,
      secretAccessKey: caller.secretAccessKey,
      ...(caller.sessionToken ? { sessionToken: caller.sessionToken } : {}),
    }),
    now: () => NOW,
  };
  return {
    url: fn.url,
    fn,
    deps,
    cwd: tempDir(),
    store: new DynamoApprovalsStore(db.doc, tables.approvalsTable),
    audit: new DynamoAuditLog(db.doc, tables),
    signAs: (arn: string) => {
      caller = identities.find((i) => i.userArn === arn) as TestIdentity;
    },
  };
}

const approveArgs = (url: string, account: string) => ({
  url,
  account,
  key: KEY,
  reason: 'chatbot migrates to short-term keys; SEC-512',
  until: '2027-01-31',
  covers: 'NEVER_EXPIRES',
});

describe('keyguard approve | review | approvals --account <member> (organization mode)', () => {
  it('approves, reviews, lists and revokes a governed member account key, recorded under that account', async () => {
    // Prepare
    const w = await world();
    const approved = captureIO(w.cwd);
    const reviewed = captureIO(w.cwd);
    const listed = captureIO(w.cwd);
    const revoked = captureIO(w.cwd);

    // Act
    const codes = [
      await runApprove(approveArgs(w.url, MEMBER), approved.io, w.deps),
      await runReview(
        { url: w.url, account: MEMBER, key: KEY, note: 'still needed by the chatbot' },
        reviewed.io,
        w.deps,
      ),
      await runListApprovals({ url: w.url, account: MEMBER, json: true }, listed.io, w.deps),
      await runRevoke(
        { url: w.url, account: MEMBER, approval: `id-${n}-1`, reason: 'migrated early' },
        revoked.io,
        w.deps,
      ),
    ];

    // Assess
    expect([approved, reviewed, listed, revoked].map((o) => o.stderr())).toEqual(['', '', '', '']);
    expect(codes).toEqual([0, 0, 0, 0]);
    expect(approved.stdout()).toContain(`Approved key ${KEY} (user ${USER}, account ${MEMBER})`);
    expect(approved.stdout()).toContain(`approver ${CAROL}`);
    expect(reviewed.stdout()).toContain(`Reviewed key ${KEY} (user ${USER}, account ${MEMBER})`);
    expect(JSON.parse(listed.stdout().trim())).toMatchObject({ accountId: MEMBER, approvalId: `id-${n}-1` });
    expect(revoked.stdout()).toContain(`account ${MEMBER}`);
    const records = await w.store.recordsOfKey(MEMBER, KEY);
    expect(records.approvals).toEqual([
      expect.objectContaining({ accountId: MEMBER, approver: CAROL, revokedBy: CAROL }),
    ]);
    expect(records.reviews).toEqual([expect.objectContaining({ accountId: MEMBER, reviewer: CAROL })]);
    expect((await w.audit.decisionsForKey(MEMBER, KEY)).map((d) => d.trigger.eventName).sort()).toEqual([
      'Approve',
      'Review',
      'RevokeApproval',
    ]);
    // The request named the member account; the approver is the signer, never the body.
    expect(JSON.parse(w.fn.events[0]?.body ?? '')).toMatchObject({ action: 'approve', accountId: MEMBER });
  });

  it('refuses a key of an excluded account: exit 2 naming the account and why, nothing recorded', async () => {
    // Prepare
    const w = await world();
    const out = captureIO(w.cwd);
    // Act
    const code = await runApprove(approveArgs(w.url, EXCLUDED), out.io, w.deps);
    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      `account ${EXCLUDED} is not governed by this stack (listed in organization.excludeAccounts)`,
    );
    expect(await w.store.recordsOfKey(EXCLUDED, KEY)).toEqual({ approvals: [], reviews: [] });
  });

  it("refuses a principal of the member account, even for its own account's key (exit 2)", async () => {
    // Prepare
    const w = await world();
    w.signAs(MEMBER_ADMIN);
    const out = captureIO(w.cwd);
    // Act
    const code = await runApprove(approveArgs(w.url, MEMBER), out.io, w.deps);
    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(`is not a principal of the hub account ${HUB}`);
    expect(await w.store.recordsOfKey(MEMBER, KEY)).toEqual({ approvals: [], reviews: [] });
  });
});
