import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AssumeRoleCommand, STSClient, STSServiceException } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { GovernedAccounts } from '../../lambda/adapters/governed-accounts';
import { MemberAccess } from '../../lambda/adapters/member-access';
import { OrgPlacement } from '../../lambda/adapters/org-placement';
import { SqsUndecidedLeaks } from '../../lambda/adapters/undecided-leaks';
import type { KeyCandidate, LeakVerifier } from '../../lambda/domain/leak-verification';
import { overrideVersion } from '../../lambda/domain/org-policy';
import type { Decision, LeakVerification } from '../../lambda/domain/types';
import { createLeakHandler, type LeakResult, type LeakRuntime } from '../../lambda/handlers/leak-handler';
import { orgSettings, parseConfig, policyVersion } from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, startTestDynamo, TABLES } from '../support/dynamo';
import { subscriptionBatch } from '../support/leak-harness';
import { answerOrganizationTree, type OrgParent } from '../support/org-tree';
import { fakeLongTermKey, leakedFragments } from '../support/secrets';

/**
 * Organization mode of the leak function (issue 12): a leaked long-term key decodes to its account; it is matched
 * and deactivated in that account through its member role when keyguard governs the account, and never acted on
 * (nor checked against Bedrock) otherwise.
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const sts = mockClient(STSClient);
const orgs = mockClient(OrganizationsClient);
const sqs = mockClient(SQSClient);

const HUB = '999999999999';
const MEMBER_A = '333333333333';
const MEMBER_B = '444444444444';
const EXCLUDED = '222222222222';
const ROOT = 'r-ab12';
const OU_WORKLOADS = 'ou-ab12-workload';
const OU_SANDBOX = 'ou-ab12-sandbox1';
const ROLE = 'BedrockKeyGuardMember';
const TOPIC = `arn:aws:sns:us-east-1:${HUB}:keyguard-owner-notices`;
const QUEUE = `https://sqs.us-east-1.amazonaws.com/${HUB}/keyguard-undecided-leaks`;
const NOW = new Date('2026-11-20T10:00:00Z');
const LOG_GROUP = '/aws/lambda/chatbot';

const LEAK_A = fakeLongTermKey('org-leak-a', MEMBER_A);
const LEAK_B = fakeLongTermKey('org-leak-b', MEMBER_B);
const LEAK_EXCLUDED = fakeLongTermKey('org-leak-excluded', EXCLUDED);
const KEY_ID: Record<string, string> = {
  [MEMBER_A]: 'ACCAEXAMPLEORGLEAKA01',
  [MEMBER_B]: 'ACCAEXAMPLEORGLEAKB01',
};

function userOf(key: string): string {
  const alias = Buffer.from(key.slice(4), 'base64').toString('utf8').split(':')[0] as string;
  return alias.replace(/-at-\d{12}$/, '');
}

/** Base audit; MEMBER_A's sandbox OU enforces. */
const config = parseConfig({
  mode: 'audit',
  fallbackOwner: 'security@example.com',
  leakDetection: { logGroups: [LOG_GROUP] },
  organization: {
    id: 'o-a1b2c3d4e5',
    managementAccountId: '111111111111',
    targets: [OU_WORKLOADS],
    excludeAccounts: [EXCLUDED],
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
      method: 'bedrock:ListFoundationModels us-east-1',
      checkedAt: NOW.toISOString(),
      reason: 'test says VERIFIED',
      principal: null,
    };
  }
}

function answerOrganizations() {
  const parents: Record<string, OrgParent> = {
    [MEMBER_A]: { Id: OU_SANDBOX, Type: 'ORGANIZATIONAL_UNIT' },
    [MEMBER_B]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [EXCLUDED]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [OU_SANDBOX]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [OU_WORKLOADS]: { Id: ROOT, Type: 'ROOT' },
  };
  answerOrganizationTree(orgs, parents);
}

function answerAssumeRole(deny: ReadonlySet<string> = new Set()) {
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

async function accountOfClient(client: IAMClient): Promise<string> {
  const creds = await (client.config.credentials as () => Promise<{ accessKeyId: string }>)();
  return creds.accessKeyId.slice(4, 16);
}

/** IAM: the leaked key's user in the account the signing credentials belong to. */
function answerIam() {
  iam
    .on(ListUserTagsCommand)
    .resolves({ Tags: [{ Key: 'owner', Value: 'team@example.com' }], IsTruncated: false });
  iam.on(UpdateServiceSpecificCredentialCommand).resolves({});
  iam
    .on(ListServiceSpecificCredentialsCommand)
    .callsFake(async (input: { UserName: string }, getClient: () => IAMClient) => {
      const account = await accountOfClient(getClient());
      return {
        ServiceSpecificCredentials: [
          {
            UserName: input.UserName,
            Status: 'Active',
            ServiceCredentialAlias: `${input.UserName}-at-${account}`,
            CreateDate: new Date('2026-10-01T00:00:00Z'),
            ExpirationDate: new Date('2026-12-30T00:00:00Z'),
            ServiceSpecificCredentialId: KEY_ID[account] ?? 'ACCAEXAMPLEUNEXPECTED',
            ServiceName: 'bedrock.amazonaws.com',
          },
        ],
      };
    });
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
    decisionsTable: `${TABLES.decisionsTable}-leakorg-${table}`,
    keysTable: `${TABLES.keysTable}-leakorg-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-leakorg-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-leakorg-${table}`,
  };
  await createTestTables(db, names);
  const hubIam = new IAMClient({ region: 'us-east-1' });
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
    cloudTrailFor: (region) => new CloudTrailClient({ region }),
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

async function decisionsOf(rt: LeakRuntime, account: string): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(account, KEY_ID[account] as string);
}

beforeEach(() => {
  iam.reset();
  sns.reset();
  sts.reset();
  orgs.reset();
  sqs.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  sqs.on(SendMessageCommand).resolves({ MessageId: 'q-1' });
  answerOrganizations();
  answerIam();
  verifier = new VerifiedEverything();
  out = captureOutput();
});
afterEach(() => out.restore());

describe('leak handler in organization mode', () => {
  it("deactivates a verified leaked key of a member account through that account's member role", async () => {
    // Prepare
    answerAssumeRole();
    const rt = await freshRuntime();

    // Act
    const result = (await createLeakHandler(rt)(subscriptionEvent([`export KEY=${LEAK_A}`]))) as LeakResult;

    // Assess
    expect(result).toMatchObject({ status: 'scanned', findings: [{ outcome: 'deactivated' }] });
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: `arn:aws:iam::${MEMBER_A}:role/${ROLE}`,
      RoleSessionName: 'keyguard-leak',
    });
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      ServiceSpecificCredentialId: KEY_ID[MEMBER_A],
      UserName: userOf(LEAK_A),
      Status: 'Inactive',
    });
    const update = iam.commandCalls(UpdateServiceSpecificCredentialCommand)[0];
    expect(await accountOfClient(update?.thisValue as IAMClient)).toBe(MEMBER_A);
    const [decision] = await decisionsOf(rt, MEMBER_A);
    expect(decision).toMatchObject({
      accountId: MEMBER_A,
      action: 'DEACTIVATE',
      applied: true,
      mode: 'enforce',
      policyVersion: SANDBOX_VERSION,
    });
    const notice = sns.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(notice?.MessageAttributes?.account?.StringValue).toBe(MEMBER_A);
  });

  it('never checks nor acts on a leaked key of an account it does not govern, and says why', async () => {
    // Prepare
    answerAssumeRole();
    const rt = await freshRuntime();

    // Act
    const result = (await createLeakHandler(rt)(subscriptionEvent([`token ${LEAK_EXCLUDED}`]))) as LeakResult;

    // Assess
    expect(result).toMatchObject({
      status: 'scanned',
      findings: [{ outcome: 'ungoverned-account', keyIds: [] }],
    });
    expect(verifier.asked).toHaveLength(0);
    expect(sts.calls()).toHaveLength(0);
    expect(iam.calls()).toHaveLength(0);
    const lines = out.lines();
    const line = lines.find((l) => l.message === 'leaked key not acted on');
    expect(line).toMatchObject({ reason: 'ungoverned-account' });
    expect(String(line?.detail)).toContain(`account ${EXCLUDED}: listed in organization.excludeAccounts`);
    expect(lines.some((l) => l.IgnoredLeaks === 1 && l.reason === 'ungoverned-account')).toBe(true);
    expect(leakedFragments(out.text(), [LEAK_EXCLUDED])).toEqual([]);
  });

  it("isolates one account's unusable member role: its leak is queued undecided (redacted), the other decided", async () => {
    // Prepare
    answerAssumeRole(new Set([MEMBER_A]));
    const rt = await freshRuntime();

    // Act
    const result = (await createLeakHandler(rt)(
      subscriptionEvent([`a ${LEAK_A}`, `b ${LEAK_B}`]),
    )) as LeakResult;

    // Assess
    expect(result.status).toBe('scanned');
    const outcomes = result.status === 'scanned' ? result.findings.map((f) => f.outcome) : [];
    expect(outcomes).toEqual(['failed', 'deactivation-planned']);
    expect(await decisionsOf(rt, MEMBER_A)).toEqual([]);
    expect(await decisionsOf(rt, MEMBER_B)).toMatchObject([
      {
        accountId: MEMBER_B,
        action: 'DEACTIVATE',
        applied: false,
        mode: 'audit',
        policyVersion: BASE_VERSION,
      },
    ]);
    expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
    const queued = sqs.commandCalls(SendMessageCommand)[0]?.args[0].input.MessageBody ?? '';
    expect(queued).toContain(MEMBER_A);
    expect(leakedFragments(queued, [LEAK_A, LEAK_B])).toEqual([]);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
  });
});
