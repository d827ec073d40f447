import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { AssumeRoleCommand, STSClient, STSServiceException } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { GovernedAccounts } from '../../lambda/adapters/governed-accounts';
import { MemberAccess } from '../../lambda/adapters/member-access';
import { OrgPlacement } from '../../lambda/adapters/org-placement';
import { DynamoUsageStore } from '../../lambda/adapters/usage-store';
import { overrideVersion } from '../../lambda/domain/org-policy';
import { NEXT_DIGEST } from '../../lambda/domain/owner-digest';
import type { Decision } from '../../lambda/domain/types';
import { createKeyUsageHandler, type KeyUsageRuntime } from '../../lambda/handlers/key-usage-handler';
import { orgSettings, parseConfig, policyVersion } from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { answerPlainUser } from '../support/iam-facts';
import { answerOrganizationTree, type OrgParent } from '../support/org-tree';

/**
 * Organization mode of the key-usage function (issue 12): usage forwarded by the spokes is attributed and decided in
 * the account that made the calls, through that account's member role, with its effective policy; uses of accounts
 * keyguard does not govern are skipped and counted; one account's unusable role fails only its messages.
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const sts = mockClient(STSClient);
const orgs = mockClient(OrganizationsClient);

const HUB = '999999999999';
const MEMBER_A = '333333333333';
const MEMBER_B = '444444444444';
const EXCLUDED = '222222222222';
const STRANGER = '555555555555';
const ROOT = 'r-ab12';
const OU_WORKLOADS = 'ou-ab12-workload';
const OU_SANDBOX = 'ou-ab12-sandbox1';
const ROLE = 'BedrockKeyGuardMember';
const TOPIC = `arn:aws:sns:us-east-1:${HUB}:keyguard-owner-notices`;
const NOW = new Date('2026-11-20T12:00:00Z');
const HOUR = 3_600_000;
const USER = 'svc-chatbot';
const KEY_OF: Record<string, string> = {
  [MEMBER_A]: 'ACCAEXAMPLEUSAGEMEMBA',
  [MEMBER_B]: 'ACCAEXAMPLEUSAGEMEMBB',
  [HUB]: 'ACCAEXAMPLEUSAGEHUB01',
};
const FIXTURE = join(__dirname, '..', 'fixtures', 'cloudtrail', 'bedrock-invoke-model-bearer-token.json');

/** Base policy: audit, no long-term keys; the sandbox OU (MEMBER_A's parent) enforces. */
const config = parseConfig({
  mode: 'audit',
  fallbackOwner: 'security@example.com',
  allowLongTermKeys: false,
  usage: { regions: ['us-east-1', 'eu-central-1'] },
  organization: {
    id: 'o-a1b2c3d4e5',
    managementAccountId: '111111111111',
    targets: [OU_WORKLOADS],
    excludeAccounts: [EXCLUDED],
    memberRoleName: ROLE,
  },
  overrides: [{ ous: [OU_SANDBOX], mode: 'enforce' }],
});
const settings = orgSettings(config);
if (!settings) throw new Error('test config has no organization');
const BASE_VERSION = policyVersion(config);
const SANDBOX_VERSION = overrideVersion(
  BASE_VERSION,
  settings.overrides[0] as (typeof settings.overrides)[0],
);

function answerOrganizations() {
  const parents: Record<string, OrgParent> = {
    [MEMBER_A]: { Id: OU_SANDBOX, Type: 'ORGANIZATIONAL_UNIT' },
    [MEMBER_B]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [EXCLUDED]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [HUB]: { Id: ROOT, Type: 'ROOT' },
    [OU_SANDBOX]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [OU_WORKLOADS]: { Id: ROOT, Type: 'ROOT' },
  };
  answerOrganizationTree(orgs, parents);
}

/** STS: credentials naming the account (ASIA<account>…), valid an hour; AccessDenied for `deny`. */
function answerAssumeRole(deny: ReadonlySet<string> = new Set()) {
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
    const account = input.RoleArn.split(':')[4] as string;
    if (deny.has(account)) {
      throw new STSServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
        message: `not authorized to perform: sts:AssumeRole on resource: ${input.RoleArn}`,
      });
    }
    return {
      Credentials: {
        AccessKeyId: `ASIA${account}XXXX`,
        SecretAccessKey: 'not-a-real-secret',
        SessionToken: 'session',
        Expiration: new Date(NOW.getTime() + HOUR),
      },
    };
  });
}

/** The account whose credentials signed an IAM call (the hub's own client has none of ours: HUB). */
async function signerOf(client: IAMClient): Promise<string> {
  const provider = client.config.credentials as () => Promise<{ accessKeyId: string }>;
  const id = (await provider()).accessKeyId;
  return id.startsWith('ASIA') && id.length === 20 ? id.slice(4, 16) : HUB;
}

/** IAM: each account holds one Active Bedrock key on USER, told apart by the signing account. */
function answerIam() {
  iam.on(ListUserTagsCommand).resolves({
    Tags: [
      { Key: 'owner', Value: 'team-chat@example.com' },
      { Key: 'purpose', Value: 'customer chatbot' },
      { Key: 'review-cadence', Value: '90d' },
    ],
    IsTruncated: false,
  });
  iam.on(UpdateServiceSpecificCredentialCommand).resolves({});
  answerPlainUser(iam);
  iam
    .on(ListServiceSpecificCredentialsCommand)
    .callsFake(async (_input: unknown, getClient: () => IAMClient) => {
      const account = await signerOf(getClient());
      return {
        ServiceSpecificCredentials: [
          {
            UserName: USER,
            Status: 'Active',
            CreateDate: new Date('2026-10-01T00:00:00Z'),
            ServiceSpecificCredentialId: KEY_OF[account],
            ServiceName: 'bedrock.amazonaws.com',
          },
        ],
      };
    });
}

/** One SQS message: a long-term key's Bedrock call in `account`, as a spoke forwards it to the hub bus. */
function useIn(account: string, eventTime: string): { messageId: string; body: string } {
  const record = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Record<string, unknown>;
  const detail = {
    ...record,
    eventID: randomUUID(),
    eventTime,
    recipientAccountId: account,
    userIdentity: {
      ...(record.userIdentity as object),
      accountId: account,
      arn: `arn:aws:iam::${account}:user/${USER}`,
    },
  };
  const envelope = {
    version: '0',
    id: randomUUID(),
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.bedrock',
    account,
    time: eventTime,
    region: record.awsRegion,
    resources: [],
    detail,
  };
  return { messageId: randomUUID(), body: JSON.stringify(envelope) };
}

function sqsEvent(messages: Array<{ messageId: string; body: string }>) {
  return { Records: messages.map((m) => ({ ...m, eventSource: 'aws:sqs', awsRegion: 'us-east-1' })) };
}

let db: EmbeddedDynamo;
let out: Capture;
let table = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});

async function freshRuntime(): Promise<KeyUsageRuntime> {
  table += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-usage-org-${table}`,
    keysTable: `${TABLES.keysTable}-usage-org-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-usage-org-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-usage-org-${table}`,
    usageTable: `${TABLES.usageTable}-usage-org-${table}`,
  };
  await createTestTables(db, names);
  const hubIam = new IAMClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIAHUBFUNCTIONROLE1', secretAccessKey: 'not-a-real-secret' },
  });
  const access = new MemberAccess({
    organization: settings?.organization ?? null,
    hubAccountId: HUB,
    functionName: 'key-usage',
    hubIam,
    sts: new STSClient({ region: 'us-east-1' }),
    now: () => NOW,
  });
  const placement = new OrgPlacement({
    organizations: new OrganizationsClient({ region: 'us-east-1' }),
    now: () => NOW,
  });
  const accounts = new GovernedAccounts(settings as NonNullable<typeof settings>, access, placement);
  return {
    config,
    policyVersion: BASE_VERSION,
    decisionsTable: names.decisionsTable,
    keysTable: names.keysTable,
    approvalsTable: names.approvalsTable,
    usageTable: names.usageTable,
    topicArn: TOPIC,
    governedAccountId: HUB,
    iamFor: () => hubIam,
    organization: async () => accounts,
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-key-usage' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-key-usage' }),
    now: () => NOW,
  };
}

async function decisionsOf(rt: KeyUsageRuntime, account: string): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(account, KEY_OF[account] as string);
}

async function lastUseOf(rt: KeyUsageRuntime, account: string): Promise<string | null | undefined> {
  const key = KEY_OF[account] as string;
  const used = await new DynamoUsageStore(db.doc, rt.usageTable).lastUsedFor(account, [
    { keyId: key, userName: USER },
  ]);
  return used.get(key);
}

beforeEach(() => {
  iam.reset();
  sns.reset();
  sts.reset();
  orgs.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  answerOrganizations();
  answerIam();
  out = captureOutput();
});
afterEach(() => out.restore());

describe('key-usage handler in organization mode', () => {
  it('attributes and decides the uses of two member accounts each in its own account, with its own policy', async () => {
    // Prepare
    answerAssumeRole();
    const rt = await freshRuntime();

    // Act: one batch with uses from both accounts, interleaved
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([
        useIn(MEMBER_A, '2026-11-20T10:00:00Z'),
        useIn(MEMBER_B, '2026-11-20T10:00:01Z'),
        useIn(MEMBER_A, '2026-11-20T10:00:02Z'),
      ]),
    );

    // Assess: one AssumeRole per account, of its member role, named for the function
    expect(sts.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input)).toEqual([
      { RoleArn: `arn:aws:iam::${MEMBER_A}:role/${ROLE}`, RoleSessionName: 'keyguard-key-usage' },
      { RoleArn: `arn:aws:iam::${MEMBER_B}:role/${ROLE}`, RoleSessionName: 'keyguard-key-usage' },
    ]);
    expect(result).toMatchObject({ messages: 3, uses: 3, subjects: 2, batchItemFailures: [] });
    // Each account's key was read with that account's credentials: the use is attributed to its own key.
    expect(await lastUseOf(rt, MEMBER_A)).toBe('2026-11-20T10:00:02.000Z');
    expect(await lastUseOf(rt, MEMBER_B)).toBe('2026-11-20T10:00:01.000Z');
    // Only the sandbox OU enforces: A's key deactivated through A's member role; B's decided in audit.
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    const update = iam.commandCalls(UpdateServiceSpecificCredentialCommand)[0];
    expect(update?.args[0].input).toEqual({
      UserName: USER,
      ServiceSpecificCredentialId: KEY_OF[MEMBER_A],
      Status: 'Inactive',
    });
    expect(await signerOf(update?.thisValue as IAMClient)).toBe(MEMBER_A);
    const [inA] = await decisionsOf(rt, MEMBER_A);
    const [inB] = await decisionsOf(rt, MEMBER_B);
    expect(inA).toMatchObject({
      accountId: MEMBER_A,
      action: 'DEACTIVATE',
      mode: 'enforce',
      applied: true,
      policyVersion: SANDBOX_VERSION,
      trigger: { kind: 'usage' },
    });
    expect(inA?.violations.map((v) => v.code)).toContain('LONG_TERM_NOT_ALLOWED');
    expect(inB).toMatchObject({
      accountId: MEMBER_B,
      action: 'DEACTIVATE',
      mode: 'audit',
      applied: false,
      policyVersion: BASE_VERSION,
    });
    expect(SANDBOX_VERSION).not.toBe(BASE_VERSION);
    // Nothing recorded under the hub's account.
    expect(await decisionsOf(rt, HUB)).toEqual([]);
    // The applied deactivation's notice is sent at once and names its account; the planned one waits for the
    // next digest of its own account.
    const accountsNoticed = sns
      .commandCalls(PublishCommand)
      .map((c) => c.args[0].input.MessageAttributes?.account?.StringValue);
    expect(accountsNoticed).toEqual([MEMBER_A]);
    expect(inB?.noticeDigest).toBe(NEXT_DIGEST);
  });

  it.each([
    ['excluded', EXCLUDED, 'excludeAccounts'],
    ['not a member of the organization', STRANGER, 'not a member of organization o-a1b2c3d4e5'],
  ])(
    'skips the uses of an account %s: no STS or IAM call, nothing recorded, a log line and EventsFromUngovernedAccounts',
    async (_what, account, why) => {
      // Prepare
      answerAssumeRole();
      const rt = await freshRuntime();

      // Act
      const result = await createKeyUsageHandler(rt)(
        sqsEvent([useIn(account, '2026-11-20T10:00:00Z'), useIn(account, '2026-11-20T10:00:01Z')]),
      );

      // Assess
      expect(result).toMatchObject({
        uses: 0,
        subjects: 0,
        decisions: [],
        skipped: { 'ungoverned-account': 2 },
        batchItemFailures: [],
      });
      expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
      expect(iam.calls()).toHaveLength(0);
      expect(sns.calls()).toHaveLength(0);
      expect(await scanAll(db, rt.usageTable)).toEqual([]);
      expect(await scanAll(db, rt.decisionsTable)).toEqual([]);
      const lines = out.lines();
      const logged = lines.find((l) => l.message === 'usage of an ungoverned account ignored');
      expect(logged).toMatchObject({ accountId: account, uses: 2 });
      expect(String(logged?.reason)).toContain(why);
      expect(lines.some((l) => l.EventsFromUngovernedAccounts === 2)).toBe(true);
    },
  );

  it("governs the hub's own account with the function's credentials (no AssumeRole), with the base policy", async () => {
    // Prepare
    answerAssumeRole();
    const rt = await freshRuntime();

    // Act
    await createKeyUsageHandler(rt)(sqsEvent([useIn(HUB, '2026-11-20T10:00:00Z')]));

    // Assess
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
    expect(await lastUseOf(rt, HUB)).toBe('2026-11-20T10:00:00.000Z');
    expect((await decisionsOf(rt, HUB))[0]).toMatchObject({ accountId: HUB, policyVersion: BASE_VERSION });
  });

  it("isolates one account's unusable member role: only its messages fail, the other account's uses are recorded", async () => {
    // Prepare
    answerAssumeRole(new Set([MEMBER_A]));
    const rt = await freshRuntime();
    const a1 = useIn(MEMBER_A, '2026-11-20T10:00:00Z');
    const b1 = useIn(MEMBER_B, '2026-11-20T10:00:01Z');
    const a2 = useIn(MEMBER_A, '2026-11-20T10:00:02Z');

    // Act
    const result = await createKeyUsageHandler(rt)(sqsEvent([a1, b1, a2]));

    // Assess
    expect(result.batchItemFailures).toEqual([
      { itemIdentifier: a1.messageId },
      { itemIdentifier: a2.messageId },
    ]);
    expect(await lastUseOf(rt, MEMBER_B)).toBe('2026-11-20T10:00:01.000Z');
    expect(await decisionsOf(rt, MEMBER_B)).toHaveLength(1);
    expect(await decisionsOf(rt, MEMBER_A)).toEqual([]);
    expect(await lastUseOf(rt, MEMBER_A)).toBeUndefined();
    const lines = out.lines();
    expect(lines.find((l) => l.level === 'ERROR')).toMatchObject({
      accountId: MEMBER_A,
      roleArn: `arn:aws:iam::${MEMBER_A}:role/${ROLE}`,
      code: 'AccessDenied',
      messages: 2,
    });
    expect(lines.some((l) => l.MemberRoleFailures === 1)).toBe(true);
    for (const call of iam.calls()) expect(await signerOf(call.thisValue as IAMClient)).not.toBe(MEMBER_A);
  });
});
