import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { IAMClient } from '@aws-sdk/client-iam';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import {
  AssumeRoleCommand,
  GetAccessKeyInfoCommand,
  STSClient,
  STSServiceException,
} from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { StsAccessKeyAccounts } from '../../lambda/adapters/access-key-accounts';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { GovernedAccounts } from '../../lambda/adapters/governed-accounts';
import { MemberAccess } from '../../lambda/adapters/member-access';
import { OrgPlacement } from '../../lambda/adapters/org-placement';
import { SqsUndecidedLeaks } from '../../lambda/adapters/undecided-leaks';
import type { KeyCandidate, LeakVerifier } from '../../lambda/domain/leak-verification';
import { overrideVersion } from '../../lambda/domain/org-policy';
import type { Decision, LeakVerification } from '../../lambda/domain/types';
import {
  createLeakHandler,
  type LeakResult,
  type LeakRuntime,
  SIGNER_ACCOUNT_LOOKUPS_PER_BATCH,
} from '../../lambda/handlers/leak-handler';
import { orgSettings, parseConfig, policyVersion } from '../../lambda/shared/config';
import { handBuiltShortTermKey } from '../support/bedrock-tokens';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, startTestDynamo, TABLES } from '../support/dynamo';
import { subscriptionBatch } from '../support/leak-harness';
import { answerOrganizationTree, type OrgParent } from '../support/org-tree';
import { leakedFragments } from '../support/secrets';

/**
 * Organization mode of the leak function, short-term keys (issue 12): a leaked short-term key names its signer's
 * access key id; STS says which account that id belongs to, and the signer is traced in that account's CloudTrail
 * event history through its member role when keyguard governs it. A key of an account it does not govern is neither
 * checked nor looked up.
 */

const sns = mockClient(SNSClient);
const sts = mockClient(STSClient);
const orgs = mockClient(OrganizationsClient);
const sqs = mockClient(SQSClient);
const cloudtrail = mockClient(CloudTrailClient);

const HUB = '999999999999';
const MEMBER_A = '333333333333';
const STRANGER = '555555555555';
const ROOT = 'r-ab12';
const OU_WORKLOADS = 'ou-ab12-workload';
const OU_SANDBOX = 'ou-ab12-sandbox1';
const ROLE = 'BedrockKeyGuardMember';
const TOPIC = `arn:aws:sns:us-east-1:${HUB}:keyguard-owner-notices`;
const QUEUE = `https://sqs.us-east-1.amazonaws.com/${HUB}/keyguard-undecided-leaks`;
const NOW = new Date('2026-11-20T10:00:00Z');
const LOG_GROUP = '/aws/lambda/chatbot';
const HUB_CREDENTIALS = { accessKeyId: 'AKIAHUBFUNCTIONROLE1', secretAccessKey: 'not-a-real-secret' };

/** The signers' access key ids and the account STS says each belongs to. */
const AKID_A = 'ASIAMEMBERASIGNER001';
const AKID_HUB = 'ASIAHUBACCOUNTSIGNR1';
const AKID_STRANGER = 'AKIASTRANGERSIGNER01';
const ACCOUNT_OF: Record<string, string> = {
  [AKID_A]: MEMBER_A,
  [AKID_HUB]: HUB,
  [AKID_STRANGER]: STRANGER,
};
const SIGNER_ARN = (account: string) => `arn:aws:sts::${account}:assumed-role/ChatbotRuntime/session-1`;

/** A short-term key signed 2026-11-20 09:31:02 for an hour (live at NOW) with `accessKeyId`, in eu-west-1. */
function shortTermKeyOf(accessKeyId: string): string {
  return handBuiltShortTermKey({ credential: `${accessKeyId}/20261120/eu-west-1/bedrock/aws4_request` });
}

/** Base audit; MEMBER_A's sandbox OU has its own (enforce) policy. */
const config = parseConfig({
  mode: 'audit',
  fallbackOwner: 'security@example.com',
  leakDetection: { logGroups: [LOG_GROUP] },
  organization: {
    id: 'o-a1b2c3d4e5',
    managementAccountId: '111111111111',
    targets: [OU_WORKLOADS],
    excludeAccounts: [],
  },
  overrides: [{ ous: [OU_SANDBOX], mode: 'enforce' }],
});
const settings = orgSettings(config) as NonNullable<ReturnType<typeof orgSettings>>;
const BASE_VERSION = policyVersion(config);
const SANDBOX_VERSION = overrideVersion(
  BASE_VERSION,
  settings.overrides[0] as (typeof settings.overrides)[0],
);

class VerifiedEverything implements LeakVerifier {
  asked: KeyCandidate[] = [];
  async verify(candidate: KeyCandidate): Promise<LeakVerification> {
    this.asked.push(candidate);
    return {
      result: 'VERIFIED',
      method: 'bedrock:ListFoundationModels eu-west-1',
      checkedAt: NOW.toISOString(),
      reason: 'test says VERIFIED',
      principal: null,
    };
  }
}

function answerOrganizations() {
  const parents: Record<string, OrgParent> = {
    [MEMBER_A]: { Id: OU_SANDBOX, Type: 'ORGANIZATIONAL_UNIT' },
    [HUB]: { Id: ROOT, Type: 'ROOT' },
    [OU_SANDBOX]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [OU_WORKLOADS]: { Id: ROOT, Type: 'ROOT' },
  };
  answerOrganizationTree(orgs, parents);
}

/** STS: GetAccessKeyInfo by ACCOUNT_OF; AssumeRole gives credentials ASIA<account> (AccessDenied for `deny`). */
function answerSts(deny: ReadonlySet<string> = new Set()) {
  sts.on(GetAccessKeyInfoCommand).callsFake((input: { AccessKeyId: string }) => ({
    Account: ACCOUNT_OF[input.AccessKeyId],
  }));
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
    const account = input.RoleArn.split(':')[4] as string;
    if (deny.has(account)) {
      throw new STSServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
        message: 'not authorized to perform: sts:AssumeRole',
      });
    }
    return {
      Credentials: {
        AccessKeyId: `ASIA${account}`,
        SecretAccessKey: 'not-a-real-secret',
        SessionToken: 'session',
        Expiration: new Date(NOW.getTime() + 3_600_000),
      },
    };
  });
}

/** The account whose credentials a CloudTrail client signs with (the hub's own: HUB). */
async function accountOfClient(client: CloudTrailClient): Promise<string> {
  const creds = await (client.config.credentials as () => Promise<{ accessKeyId: string }>)();
  return creds.accessKeyId === HUB_CREDENTIALS.accessKeyId ? HUB : creds.accessKeyId.slice(4, 16);
}

/** Event history: each account knows the calls made with its own signers' access key ids. */
function answerCloudTrail() {
  cloudtrail
    .on(LookupEventsCommand)
    .callsFake(
      async (
        input: { LookupAttributes: Array<{ AttributeValue: string }> },
        getClient: () => CloudTrailClient,
      ) => {
        const account = await accountOfClient(getClient());
        const accessKeyId = input.LookupAttributes[0]?.AttributeValue as string;
        if (ACCOUNT_OF[accessKeyId] !== account) return { Events: [] };
        const record = { userIdentity: { arn: SIGNER_ARN(account), accessKeyId } };
        return { Events: [{ CloudTrailEvent: JSON.stringify(record) }] };
      },
    );
}

/** A delivery from the hub's subscribed log group. */
const subscriptionEvent = (messages: string[]) =>
  subscriptionBatch(messages, { owner: HUB, logGroup: LOG_GROUP });

let db: EmbeddedDynamo;
let out: Capture;
let table = 0;
let verifier: VerifiedEverything;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});

async function freshRuntime(): Promise<LeakRuntime> {
  table += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-leakorgst-${table}`,
    keysTable: `${TABLES.keysTable}-leakorgst-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-leakorgst-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-leakorgst-${table}`,
  };
  await createTestTables(db, names);
  const hubIam = new IAMClient({ region: 'us-east-1', credentials: HUB_CREDENTIALS });
  const access = new MemberAccess({
    organization: settings.organization,
    hubAccountId: HUB,
    functionName: 'leak',
    hubIam,
    sts: new STSClient({ region: 'us-east-1' }),
    now: () => NOW,
  });
  const placement = new OrgPlacement({ organizations: new OrganizationsClient({ region: 'us-east-1' }) });
  const accounts = new GovernedAccounts(settings, access, placement);
  return {
    config,
    policyVersion: BASE_VERSION,
    decisionsTable: names.decisionsTable,
    keysTable: names.keysTable,
    approvalsTable: names.approvalsTable,
    topicArn: TOPIC,
    governedAccountId: HUB,
    iamFor: () => hubIam,
    organization: async () => accounts,
    accessKeyAccounts: new StsAccessKeyAccounts(new STSClient({ region: 'us-east-1' })),
    cloudTrailFor: (region) => new CloudTrailClient({ region, credentials: HUB_CREDENTIALS }),
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-leak' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-leak' }),
    verifier,
    now: () => NOW,
    undecided: new SqsUndecidedLeaks(new SQSClient({ region: 'us-east-1' }), QUEUE),
    decisionRetryDelayMs: 0,
  };
}

async function decisionsOf(rt: LeakRuntime, account: string, accessKeyId: string): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(account, accessKeyId);
}

beforeEach(() => {
  sns.reset();
  sts.reset();
  orgs.reset();
  sqs.reset();
  cloudtrail.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  sqs.on(SendMessageCommand).resolves({ MessageId: 'q-1' });
  answerOrganizations();
  answerCloudTrail();
  verifier = new VerifiedEverything();
  out = captureOutput();
});
afterEach(() => out.restore());

describe('leak handler in organization mode: short-term keys', () => {
  it("traces a short-term key signed in a member account in that account's event history, through its member role", async () => {
    // Prepare
    answerSts();
    const rt = await freshRuntime();
    const key = shortTermKeyOf(AKID_A);

    // Act
    const result = (await createLeakHandler(rt)(
      subscriptionEvent([`curl -H "Bearer ${key}"`]),
    )) as LeakResult;

    // Assess: the signer's account from STS, then A's member role, then A's event history
    expect(result).toMatchObject({
      status: 'scanned',
      findings: [{ outcome: 'notified', keyIds: [AKID_A] }],
    });
    expect(sts).toHaveReceivedCommandWith(GetAccessKeyInfoCommand, { AccessKeyId: AKID_A });
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: `arn:aws:iam::${MEMBER_A}:role/${ROLE}`,
      RoleSessionName: 'keyguard-leak',
    });
    const lookups = cloudtrail.commandCalls(LookupEventsCommand);
    expect(lookups.length).toBeGreaterThan(0);
    for (const call of lookups) {
      expect(await accountOfClient(call.thisValue as CloudTrailClient)).toBe(MEMBER_A);
      expect(call.args[0].input.LookupAttributes).toEqual([
        { AttributeKey: 'AccessKeyId', AttributeValue: AKID_A },
      ]);
    }
    // Recorded and noticed under the signer's account, with that account's policy (the sandbox OU's).
    const [decision] = await decisionsOf(rt, MEMBER_A, AKID_A);
    expect(decision).toMatchObject({
      accountId: MEMBER_A,
      keyType: 'SHORT_TERM',
      action: 'NOTIFY',
      policyVersion: SANDBOX_VERSION,
      leak: { issuer: SIGNER_ARN(MEMBER_A) },
    });
    expect(decision?.leak?.issuerUnknownReason).toBeUndefined();
    expect(await decisionsOf(rt, HUB, AKID_A)).toEqual([]);
    const notice = sns.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(notice?.MessageAttributes?.account?.StringValue).toBe(MEMBER_A);
    expect(notice?.Message).toContain(SIGNER_ARN(MEMBER_A));
    expect(leakedFragments(out.text(), [key])).toEqual([]);
  });

  it('neither checks nor looks up a short-term key of an account it does not govern, and says why', async () => {
    // Prepare
    answerSts();
    const rt = await freshRuntime();

    // Act
    const result = (await createLeakHandler(rt)(
      subscriptionEvent([`token ${shortTermKeyOf(AKID_STRANGER)}`]),
    )) as LeakResult;

    // Assess
    expect(result).toMatchObject({
      status: 'scanned',
      findings: [{ outcome: 'ungoverned-account', keyIds: [] }],
    });
    expect(verifier.asked).toHaveLength(0);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
    expect(cloudtrail.calls()).toHaveLength(0);
    expect(sns.calls()).toHaveLength(0);
    const line = out.lines().find((l) => l.message === 'leaked key not acted on');
    expect(line).toMatchObject({ reason: 'ungoverned-account', kind: 'SHORT_TERM' });
    expect(String(line?.detail)).toContain(`account ${STRANGER}: not a member of organization o-a1b2c3d4e5`);
    expect(await decisionsOf(rt, STRANGER, AKID_STRANGER)).toEqual([]);
  });

  it("traces a key signed in the hub's own account with the function's credentials (no AssumeRole)", async () => {
    // Prepare
    answerSts();
    const rt = await freshRuntime();

    // Act
    await createLeakHandler(rt)(subscriptionEvent([`k=${shortTermKeyOf(AKID_HUB)}`]));

    // Assess
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
    const [decision] = await decisionsOf(rt, HUB, AKID_HUB);
    expect(decision).toMatchObject({
      accountId: HUB,
      policyVersion: BASE_VERSION,
      leak: { issuer: SIGNER_ARN(HUB) },
    });
  });

  it('a member role that cannot be assumed leaves the signer unknown with why; the key is still reported', async () => {
    // Prepare
    answerSts(new Set([MEMBER_A]));
    const rt = await freshRuntime();

    // Act
    const result = (await createLeakHandler(rt)(
      subscriptionEvent([`k=${shortTermKeyOf(AKID_A)}`]),
    )) as LeakResult;

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'notified' }] });
    expect(cloudtrail.calls()).toHaveLength(0);
    const [decision] = await decisionsOf(rt, MEMBER_A, AKID_A);
    expect(decision?.leak?.issuer).toBeNull();
    expect(decision?.leak?.issuerUnknownReason).toBe(
      `account ${MEMBER_A}: its member role could not be assumed (AccessDenied), not looked up`,
    );
    expect(out.lines().some((l) => l.IssuerLookupsFailed === 1)).toBe(true);
  });

  it('STS unable to tell the account: the finding is retried, then queued as undecided (redacted)', async () => {
    // Prepare
    answerSts();
    sts.on(GetAccessKeyInfoCommand).rejects(new Error('throttled past retries'));
    const rt = await freshRuntime();
    const key = shortTermKeyOf(AKID_A);

    // Act
    const result = (await createLeakHandler(rt)(subscriptionEvent([`k=${key}`]))) as LeakResult;

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'failed' }] });
    expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
    const body = String(sqs.commandCalls(SendMessageCommand)[0]?.args[0].input.MessageBody);
    expect(body).toContain(AKID_A);
    expect(leakedFragments(body, [key])).toEqual([]);
    expect(cloudtrail.calls()).toHaveLength(0);
    expect(sns.calls()).toHaveLength(0);
  });

  it('a flood of forged short-term keys with distinct access key ids costs a bounded number of STS calls', async () => {
    // Prepare: 200 distinct ids, all of an account keyguard does not govern, every string rejected by Bedrock
    answerSts();
    const ids = Array.from({ length: 200 }, (_, i) => `AKIAFORGED${String(i).padStart(10, '0')}`);
    sts.on(GetAccessKeyInfoCommand).resolves({ Account: STRANGER });
    const rt = await freshRuntime();
    rt.verifier = {
      verify: async (): Promise<LeakVerification> => ({
        result: 'REJECTED',
        method: 'bedrock:ListFoundationModels eu-west-1',
        checkedAt: NOW.toISOString(),
        reason: 'test says REJECTED',
        principal: null,
      }),
    };

    // Act
    const result = (await createLeakHandler(rt)(
      subscriptionEvent([ids.map((id) => shortTermKeyOf(id)).join(' ')]),
    )) as LeakResult;

    // Assess: the ids asked while scanning, and at most the 3 rejected short-term strings a batch decides
    const asked = sts.commandCalls(GetAccessKeyInfoCommand).length;
    expect(asked).toBeGreaterThanOrEqual(SIGNER_ACCOUNT_LOOKUPS_PER_BATCH);
    expect(asked).toBeLessThanOrEqual(SIGNER_ACCOUNT_LOOKUPS_PER_BATCH + 3);
    expect(result.status).toBe('scanned');
    expect(cloudtrail.calls()).toHaveLength(0);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
    expect(sns.calls()).toHaveLength(0);
  });
});
