import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { DescribeAccountCommand, OrganizationsClient } from '@aws-sdk/client-organizations';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoApprovalsStore } from '../../lambda/adapters/approvals-store';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { GovernedAccounts } from '../../lambda/adapters/governed-accounts';
import { MemberAccess } from '../../lambda/adapters/member-access';
import { OrgPlacement } from '../../lambda/adapters/org-placement';
import type { KnownKey } from '../../lambda/domain/pipeline';
import { createApprovalHandler } from '../../lambda/handlers/approval-handler';
import { createCredentialEventHandler } from '../../lambda/handlers/credential-event-handler';
import { orgSettings, parseConfig, policyVersion } from '../../lambda/shared/config';
import { createTestTables, scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { createCredentialRecord, eventBridgeEvent, lambdaContext } from '../support/events';
import { answerPlainUser } from '../support/iam-facts';
import { answerOrganizationTree, type OrgParent } from '../support/org-tree';

/**
 * The approval function in organization mode (issue 12): the security team, in the hub account, approves, revokes
 * and reviews keys of the governed member accounts (the check credential-event decides with); keys of accounts
 * keyguard does not govern are refused, callers outside the hub are refused, the self-approval rules hold across
 * accounts, and the member account's decisions see the approval.
 */

const orgs = mockClient(OrganizationsClient);
const sts = mockClient(STSClient);
const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);

const HUB = '999999999999';
const MEMBER = '333333333333';
const EXCLUDED = '222222222222';
const STRANGER = '555555555555';
const OUTSIDE_TARGETS = '666666666666';
const SUSPENDED = '777777777777';
const ROOT = 'r-ab12';
const OU_WORKLOADS = 'ou-ab12-workload';
const OU_SANDBOX = 'ou-ab12-sandbox1';
const OU_OTHER = 'ou-ab12-othertop';
const NOW = new Date('2026-11-20T10:00:00.000Z');
const KEY = 'ACCAEXAMPLEKEYMEMBERA';
const USER = 'svc-chatbot';
const CAROL = `arn:aws:sts::${HUB}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/carol@example.com`;
const FULL_TAGS = [
  { Key: 'owner', Value: 'team-chat@example.com' },
  { Key: 'purpose', Value: 'customer chatbot' },
  { Key: 'review-cadence', Value: '90d' },
];

/** The sandbox OU enforces, so a member key's violation is acted on unless approved. */
const config = parseConfig({
  mode: 'audit',
  fallbackOwner: 'security@example.com',
  organization: {
    id: 'o-a1b2c3d4e5',
    managementAccountId: '111111111111',
    targets: [OU_WORKLOADS],
    excludeAccounts: [EXCLUDED],
  },
  overrides: [{ ous: [OU_SANDBOX], mode: 'enforce', maxAgeDays: 30 }],
});
const settings = orgSettings(config);
if (!settings) throw new Error('test config has no organization');

function answerOrganizations() {
  const parents: Record<string, OrgParent> = {
    [MEMBER]: { Id: OU_SANDBOX, Type: 'ORGANIZATIONAL_UNIT' },
    [EXCLUDED]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [SUSPENDED]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [OUTSIDE_TARGETS]: { Id: OU_OTHER, Type: 'ORGANIZATIONAL_UNIT' },
    [OU_SANDBOX]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [OU_WORKLOADS]: { Id: ROOT, Type: 'ROOT' },
    [OU_OTHER]: { Id: ROOT, Type: 'ROOT' },
  };
  answerOrganizationTree(orgs, parents, new Set([SUSPENDED]));
}

let db: EmbeddedDynamo;
let n = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});
beforeEach(() => {
  orgs.reset();
  sts.reset();
  iam.reset();
  sns.reset();
  answerOrganizations();
});

function governedAccounts(functionName: string, hubIam = new IAMClient({ region: 'us-east-1' })) {
  const access = new MemberAccess({
    organization: settings?.organization ?? null,
    hubAccountId: HUB,
    functionName,
    hubIam,
    sts: new STSClient({ region: 'us-east-1' }),
    now: () => NOW,
  });
  const placement = new OrgPlacement({
    organizations: new OrganizationsClient({ region: 'us-east-1' }),
    now: () => NOW,
  });
  return new GovernedAccounts(settings as NonNullable<typeof settings>, access, placement);
}

interface World {
  handler: ReturnType<typeof createApprovalHandler>;
  tables: { approvalsTable: string; keysTable: string; decisionsTable: string; idempotencyTable: string };
  store: DynamoApprovalsStore;
}

/** Tables holding one known key of MEMBER (and the same key id in each account `alsoIn`), and the org-mode handler. */
async function world(known: Partial<KnownKey> = {}, alsoIn: string[] = []): Promise<World> {
  n += 1;
  const tables = {
    approvalsTable: `${TABLES.approvalsTable}-org-${n}`,
    keysTable: `${TABLES.keysTable}-org-${n}`,
    decisionsTable: `${TABLES.decisionsTable}-org-${n}`,
    idempotencyTable: `${TABLES.idempotencyTable}-org-${n}`,
  };
  await createTestTables(db, tables);
  const audit = new DynamoAuditLog(db.doc, tables);
  for (const accountId of [MEMBER, ...alsoIn]) {
    await audit.putKnownKey({
      accountId,
      keyId: KEY,
      userName: USER,
      status: 'Active',
      createdAt: '2026-01-10T09:00:00.000Z',
      expiresAt: null,
      creator: `arn:aws:iam::${accountId}:user/bob`,
      owner: 'alice@example.com',
      lastDecisionId: '2026-01-10T09:00:00.000Z/event/e-1',
      lastDecisionAt: '2026-01-10T09:00:05.000Z',
      ...known,
    });
  }
  const accounts = governedAccounts('approval');
  let id = 0;
  const handler = createApprovalHandler({
    policy: { mode: 'audit', maxApprovalDays: 365, fallbackOwner: 'security@example.com', approvers: [] },
    policyVersion: policyVersion(config),
    governedAccountId: HUB,
    organization: async () => accounts,
    ...tables,
    doc: db.doc,
    logger: new Logger({ logLevel: 'SILENT' }),
    now: () => NOW,
    newId: () => `id-${n}-${++id}`,
  });
  return { handler, tables, store: new DynamoApprovalsStore(db.doc, tables.approvalsTable) };
}

function request(body: unknown, caller: string): LambdaFunctionURLEvent {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/',
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    isBase64Encoded: false,
    body: JSON.stringify(body),
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abc123',
      domainName: 'abc123.lambda-url.us-east-1.on.aws',
      domainPrefix: 'abc123',
      http: {
        method: 'POST',
        path: '/',
        protocol: 'HTTP/1.1',
        sourceIp: '203.0.113.9',
        userAgent: 'keyguard',
      },
      requestId: 'req-1',
      routeKey: '$default',
      stage: '$default',
      time: '20/Nov/2026:10:00:00 +0000',
      timeEpoch: NOW.getTime(),
      authorizer: {
        iam: {
          accessKey: 'ASIAEXAMPLE',
          accountId: caller.split(':')[4] as string,
          callerId: 'AROAEXAMPLE:session',
          cognitoIdentity: null,
          principalOrgId: 'o-a1b2c3d4e5',
          userArn: caller,
          userId: 'AROAEXAMPLE:session',
        },
      },
    },
  } as LambdaFunctionURLEvent;
}

async function call(w: World, body: unknown, caller = CAROL) {
  const res = (await w.handler(request(body, caller))) as Exclude<LambdaFunctionURLResult, string>;
  return { status: res.statusCode ?? 0, body: JSON.parse(res.body ?? '{}') as Record<string, unknown> };
}

const approve = (over: Record<string, unknown> = {}) => ({
  action: 'approve',
  accountId: MEMBER,
  keyId: KEY,
  reason: 'chatbot migrates to short-term keys in January; SEC-512',
  until: '2027-01-31',
  covers: 'ALL',
  ...over,
});

describe('approval function in organization mode: keys of governed member accounts', () => {
  it('approves, reviews, lists and revokes a member account key, recorded under that account', async () => {
    // Prepare
    const w = await world();
    // Act
    const approved = await call(w, approve());
    const reviewed = await call(w, { action: 'review', accountId: MEMBER, keyId: KEY, note: 'still needed' });
    const listed = await call(w, { action: 'list', accountId: MEMBER });
    const approvalId = (approved.body.approval as { approvalId: string }).approvalId;
    const revoked = await call(w, { action: 'revoke', accountId: MEMBER, approvalId, reason: 'migrated' });
    // Assess
    expect(approved).toMatchObject({
      status: 200,
      body: { approval: { accountId: MEMBER, approver: CAROL } },
    });
    expect(reviewed).toMatchObject({ status: 200, body: { accountId: MEMBER, reviewer: CAROL } });
    expect(listed.body.approvals).toEqual([expect.objectContaining({ accountId: MEMBER, approvalId })]);
    expect(revoked).toMatchObject({ status: 200, body: { approval: { revokedBy: CAROL } } });
    const records = await w.store.recordsOfKey(MEMBER, KEY);
    expect(records.approvals).toEqual([expect.objectContaining({ accountId: MEMBER, revokedBy: CAROL })]);
    expect(records.reviews).toHaveLength(1);
    expect(await w.store.recordsOfKey(HUB, KEY)).toEqual({ approvals: [], reviews: [] });
    const decisions = await scanAll(db, w.tables.decisionsTable);
    expect(decisions.map((d) => d.accountId)).toEqual([MEMBER, MEMBER, MEMBER]);
    // The check read the member's place in Organizations; no member role was assumed (the function calls no IAM).
    expect(orgs).toHaveReceivedCommandWith(DescribeAccountCommand, { AccountId: MEMBER });
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
  });

  it.each([
    ['excluded', EXCLUDED, 'organization.excludeAccounts'],
    ['not a member of the organization', STRANGER, 'not a member of organization o-a1b2c3d4e5'],
    ['outside the targets', OUTSIDE_TARGETS, 'not under organization.targets'],
    ['not ACTIVE', SUSPENDED, 'not ACTIVE'],
  ])(
    'refuses every action on keys of an account %s (404), naming why; nothing is written',
    async (_what, account, why) => {
      // Prepare: the key is even known there (e.g. governed until it moved)
      const w = await world({}, [account]);
      // Act
      const replies = [
        await call(w, approve({ accountId: account })),
        await call(w, { action: 'review', accountId: account, keyId: KEY, note: 'n' }),
        await call(w, { action: 'revoke', accountId: account, approvalId: 'id-x', reason: 'r' }),
        await call(w, { action: 'list', accountId: account }),
      ];
      // Assess
      for (const reply of replies) {
        expect(reply).toMatchObject({ status: 404, body: { error: 'not-found' } });
        expect(String(reply.body.message)).toContain(`account ${account} is not governed by this stack (`);
        expect(String(reply.body.message)).toContain(why);
        expect(String(reply.body.message)).toContain(`hub account ${HUB}`);
      }
      expect(await scanAll(db, w.tables.approvalsTable)).toEqual([]);
      expect(await scanAll(db, w.tables.decisionsTable)).toEqual([]);
    },
  );

  it.each([
    ["the key's own IAM user", `arn:aws:iam::${MEMBER}:user/${USER}`],
    ["the key's creator", `arn:aws:iam::${MEMBER}:user/bob`],
    ['an administrator of the member account', `arn:aws:sts::${MEMBER}:assumed-role/Admin/eve`],
  ])(
    'refuses %s, a principal of the member account (403): approvals are made from the hub',
    async (_who, caller) => {
      // Prepare
      const w = await world();
      // Act
      const reply = await call(w, approve(), caller);
      // Assess
      expect(reply.status).toBe(403);
      expect(reply.body.message).toContain(`is not a principal of the hub account ${HUB}`);
      expect(orgs.calls()).toHaveLength(0);
      expect(await scanAll(db, w.tables.approvalsTable)).toEqual([]);
    },
  );

  it.each([
    [
      'the creator, in the hub through IAM Identity Center',
      { creator: `arn:aws:sts::${MEMBER}:assumed-role/AWSReservedSSO_Dev_0a1b/bob@example.com` },
      `arn:aws:sts::${HUB}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/bob@example.com`,
      'are the creator of key',
    ],
    [
      'the owner (tag), in the hub through IAM Identity Center',
      {},
      `arn:aws:sts::${HUB}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/alice@example.com`,
      'are the owner of key',
    ],
    [
      "the key's IAM user, by name in the hub",
      {},
      `arn:aws:sts::${HUB}:assumed-role/Deployer/${USER}`,
      `are the IAM user of key ${KEY} (user ${USER} in account ${MEMBER})`,
    ],
  ])('refuses %s for a member key, for approve and review (403)', async (_who, known, caller, expected) => {
    // Prepare
    const w = await world(known);
    // Act
    const approved = await call(w, approve(), caller);
    const reviewed = await call(w, { action: 'review', accountId: MEMBER, keyId: KEY, note: 'n' }, caller);
    // Assess
    for (const reply of [approved, reviewed]) {
      expect(reply.status).toBe(403);
      expect(String(reply.body.message)).toContain(expected);
    }
    expect(await w.store.recordsOfKey(MEMBER, KEY)).toEqual({ approvals: [], reviews: [] });
  });

  it("still approves the hub's own keys without asking Organizations", async () => {
    // Prepare
    const w = await world({}, [HUB]);
    // Act
    const reply = await call(w, approve({ accountId: HUB }));
    // Assess
    expect(reply).toMatchObject({ status: 200, body: { approval: { accountId: HUB } } });
    expect(orgs.calls()).toHaveLength(0);
  });
});

describe("a member account's decisions see the approval made in the hub", () => {
  /** The forwarded CreateServiceSpecificCredential event of MEMBER's key, as the hub bus receives it. */
  function memberEvent() {
    const record = createCredentialRecord({ userName: USER, keyId: KEY });
    const detail = {
      ...record,
      recipientAccountId: MEMBER,
      userIdentity: { ...(record.userIdentity as object), accountId: MEMBER },
    };
    return { ...eventBridgeEvent(detail), account: MEMBER };
  }

  function answerMember() {
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: `ASIA${MEMBER}`,
        SecretAccessKey: 'not-a-real-secret',
        SessionToken: 'session',
        Expiration: new Date(NOW.getTime() + 3_600_000),
      },
    });
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    iam.on(ListUserTagsCommand).resolves({ Tags: FULL_TAGS, IsTruncated: false });
    iam.on(UpdateServiceSpecificCredentialCommand).resolves({});
    answerPlainUser(iam);
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [
        {
          UserName: USER,
          Status: 'Active',
          ServiceCredentialAlias: `${USER}-at-${MEMBER}`,
          CreateDate: new Date('2026-11-20T09:31:02Z'),
          ServiceSpecificCredentialId: KEY,
          ServiceName: 'bedrock.amazonaws.com',
        },
      ],
    });
  }

  async function decide(w: World) {
    const hubIam = new IAMClient({ region: 'us-east-1' });
    const accounts = governedAccounts('credential-event', hubIam);
    const handler = createCredentialEventHandler({
      config,
      policyVersion: policyVersion(config),
      ...w.tables,
      topicArn: `arn:aws:sns:us-east-1:${HUB}:keyguard-owner-notices`,
      governedAccountId: HUB,
      iamFor: () => hubIam,
      organization: async () => accounts,
      dynamo: db.client,
      sns: new SNSClient({ region: 'us-east-1' }),
      logger: new Logger({ logLevel: 'SILENT' }),
      metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-credential-event' }),
      now: () => NOW,
    });
    return handler(memberEvent(), lambdaContext());
  }

  it('without an approval the sandbox OU (enforce) deactivates the key in the member account', async () => {
    // Prepare
    answerMember();
    const w = await world();
    // Act
    const result = await decide(w);
    // Assess
    expect(result).toMatchObject({
      status: 'decided',
      decisions: [{ keyId: KEY, action: 'DEACTIVATE', applied: true }],
    });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
  });

  it('with the approval, the member key is allowed and nothing is deactivated', async () => {
    // Prepare
    answerMember();
    const w = await world();
    const approved = await call(w, approve());
    expect(approved.status).toBe(200);
    // Act
    const result = await decide(w);
    // Assess
    expect(result).toMatchObject({ status: 'decided', decisions: [{ keyId: KEY, action: 'ALLOW' }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    const approvalId = (approved.body.approval as { approvalId: string }).approvalId;
    const decided = (await new DynamoAuditLog(db.doc, w.tables).decisionsForKey(MEMBER, KEY)).filter(
      (d) => d.trigger.kind !== 'approval',
    );
    expect(decided).toEqual([
      expect.objectContaining({ accountId: MEMBER, action: 'ALLOW', mode: 'enforce' }),
    ]);
    expect(JSON.stringify(decided[0])).toContain(approvalId);
  });
});
