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
import { MemberAccess, MemberRoleError } from '../../lambda/adapters/member-access';
import { OrgPlacement } from '../../lambda/adapters/org-placement';
import { overrideVersion } from '../../lambda/domain/org-policy';
import { NEXT_DIGEST } from '../../lambda/domain/owner-digest';
import type { Decision } from '../../lambda/domain/types';
import {
  type CredentialEventRuntime,
  createCredentialEventHandler,
} from '../../lambda/handlers/credential-event-handler';
import { orgSettings, parseConfig, policyVersion } from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { createCredentialRecord, eventBridgeEvent, lambdaContext } from '../support/events';
import { answerPlainUser } from '../support/iam-facts';
import { answerOrganizationTree, type OrgParent } from '../support/org-tree';

/**
 * Organization mode of the credential-event function (issue 12): a forwarded event is decided in the account that
 * produced it, through that account's member role, with its effective policy; accounts keyguard does not govern are
 * never acted on; one account's unusable role fails only that account's events.
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
const OUTSIDE_TARGETS = '666666666666';
const ROOT = 'r-ab12';
const OU_WORKLOADS = 'ou-ab12-workload';
const OU_SANDBOX = 'ou-ab12-sandbox1';
const OU_OTHER = 'ou-ab12-othertop';
const ROLE = 'BedrockKeyGuardMember';
const TOPIC = `arn:aws:sns:us-east-1:${HUB}:keyguard-owner-notices`;
const T0 = new Date('2026-11-20T09:31:05Z');
const HOUR = 3_600_000;
const USER = 'svc-chatbot';
const KEY_A = 'ACCAEXAMPLEKEYMEMBERA';
const KEY_B = 'ACCAEXAMPLEKEYMEMBERB';
const FULL_TAGS = [
  { Key: 'owner', Value: 'team-chat@example.com' },
  { Key: 'purpose', Value: 'customer chatbot' },
  { Key: 'review-cadence', Value: '90d' },
];

/** Base policy audit; the sandbox OU (MEMBER_A's parent) enforces. */
const config = parseConfig({
  mode: 'audit',
  fallbackOwner: 'security@example.com',
  organization: {
    id: 'o-a1b2c3d4e5',
    managementAccountId: '111111111111',
    targets: [OU_WORKLOADS],
    excludeAccounts: [EXCLUDED],
    memberRoleName: ROLE,
  },
  overrides: [{ ous: [OU_SANDBOX], mode: 'enforce', maxAgeDays: 30 }],
});
const settings = orgSettings(config);
if (!settings) throw new Error('test config has no organization');
const BASE_VERSION = policyVersion(config);
const SANDBOX_VERSION = overrideVersion(
  BASE_VERSION,
  settings.overrides[0] as (typeof settings.overrides)[0],
);

/** Organizations: A in workloads/sandbox, B and EXCLUDED in workloads, OUTSIDE_TARGETS in another OU. */
function answerOrganizations() {
  const parents: Record<string, OrgParent> = {
    [MEMBER_A]: { Id: OU_SANDBOX, Type: 'ORGANIZATIONAL_UNIT' },
    [MEMBER_B]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [EXCLUDED]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [OUTSIDE_TARGETS]: { Id: OU_OTHER, Type: 'ORGANIZATIONAL_UNIT' },
    [HUB]: { Id: ROOT, Type: 'ROOT' },
    [OU_SANDBOX]: { Id: OU_WORKLOADS, Type: 'ORGANIZATIONAL_UNIT' },
    [OU_WORKLOADS]: { Id: ROOT, Type: 'ROOT' },
    [OU_OTHER]: { Id: ROOT, Type: 'ROOT' },
  };
  answerOrganizationTree(orgs, parents);
}

/** STS: credentials naming the account and the n-th AssumeRole, valid an hour from `issuedAt()`. */
function answerAssumeRole(issuedAt: () => Date, deny: ReadonlySet<string> = new Set()) {
  let n = 0;
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
    const account = input.RoleArn.split(':')[4] as string;
    if (deny.has(account)) {
      throw new STSServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
        message: `User: arn:aws:sts::${HUB}:assumed-role/hub-fn/keyguard-credential-event is not authorized to perform: sts:AssumeRole on resource: ${input.RoleArn}`,
      });
    }
    n += 1;
    return {
      Credentials: {
        AccessKeyId: `ASIA${account}N${n}`,
        SecretAccessKey: 'not-a-real-secret',
        SessionToken: `session-${n}`,
        Expiration: new Date(issuedAt().getTime() + HOUR),
      },
    };
  });
}

/** IAM: each account holds one never-expiring key on USER (the key id tells the accounts apart). */
function answerIam() {
  iam.on(ListUserTagsCommand).resolves({ Tags: FULL_TAGS, IsTruncated: false });
  iam.on(UpdateServiceSpecificCredentialCommand).resolves({});
  answerPlainUser(iam);
  iam
    .on(ListServiceSpecificCredentialsCommand)
    .callsFake(async (_input: unknown, getClient: () => IAMClient) => {
      const creds = await (getClient().config.credentials as () => Promise<{ accessKeyId: string }>)();
      const account = creds.accessKeyId.slice(4, 16);
      return {
        ServiceSpecificCredentials: [
          {
            UserName: USER,
            Status: 'Active',
            ServiceCredentialAlias: `${USER}-at-${account}`,
            CreateDate: new Date('2026-11-20T09:31:02Z'),
            ServiceSpecificCredentialId: account === MEMBER_A ? KEY_A : KEY_B,
            ServiceName: 'bedrock.amazonaws.com',
          },
        ],
      };
    });
}

/** A forwarded CreateServiceSpecificCredential event of `account`, as the hub bus receives it. */
function memberEvent(account: string, keyId: string) {
  const record = createCredentialRecord({ userName: USER, keyId });
  const detail = {
    ...record,
    recipientAccountId: account,
    userIdentity: { ...(record.userIdentity as object), accountId: account },
  };
  return { ...eventBridgeEvent(detail), account };
}

/** The account whose credentials signed each IAM call of a command, in order. */
async function accountsOf(command: typeof UpdateServiceSpecificCredentialCommand) {
  const out: string[] = [];
  for (const call of iam.commandCalls(command)) {
    const client = call.thisValue as IAMClient;
    const creds = await (client.config.credentials as () => Promise<{ accessKeyId: string }>)();
    out.push(creds.accessKeyId);
  }
  return out;
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

async function freshRuntime(now: () => Date = () => T0): Promise<CredentialEventRuntime> {
  table += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-org-${table}`,
    keysTable: `${TABLES.keysTable}-org-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-org-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-org-${table}`,
  };
  await createTestTables(db, names);
  const hubIam = new IAMClient({ region: 'us-east-1' });
  const access = new MemberAccess({
    organization: settings?.organization ?? null,
    hubAccountId: HUB,
    functionName: 'credential-event',
    hubIam,
    sts: new STSClient({ region: 'us-east-1' }),
    now,
  });
  const placement = new OrgPlacement({
    organizations: new OrganizationsClient({ region: 'us-east-1' }),
    now,
  });
  const accounts = new GovernedAccounts(settings as NonNullable<typeof settings>, access, placement);
  return {
    config,
    policyVersion: BASE_VERSION,
    ...names,
    topicArn: TOPIC,
    governedAccountId: HUB,
    iamFor: () => hubIam,
    organization: async () => accounts,
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-credential-event' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-credential-event' }),
    now,
  };
}

async function decisionsOf(rt: CredentialEventRuntime, account: string, key: string): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(account, key);
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

describe('credential-event handler in organization mode', () => {
  it('decides events of two member accounts each in its own account, through its member role', async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const rt = await freshRuntime();
    const handler = createCredentialEventHandler(rt);

    // Act
    const a = await handler(memberEvent(MEMBER_A, KEY_A), lambdaContext());
    const b = await handler(memberEvent(MEMBER_B, KEY_B), lambdaContext());

    // Assess: one AssumeRole per account, of its member role, named for the function
    expect(sts.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input)).toEqual([
      { RoleArn: `arn:aws:iam::${MEMBER_A}:role/${ROLE}`, RoleSessionName: 'keyguard-credential-event' },
      { RoleArn: `arn:aws:iam::${MEMBER_B}:role/${ROLE}`, RoleSessionName: 'keyguard-credential-event' },
    ]);
    expect(a).toMatchObject({
      status: 'decided',
      decisions: [{ keyId: KEY_A, action: 'DEACTIVATE', applied: true }],
    });
    expect(b).toMatchObject({
      status: 'decided',
      decisions: [{ keyId: KEY_B, action: 'DEACTIVATE', applied: false }],
    });
    // The deactivation (sandbox OU enforces) is sent by the client holding A's assumed credentials, to A's key.
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      ServiceSpecificCredentialId: KEY_A,
      UserName: USER,
      Status: 'Inactive',
    });
    expect(await accountsOf(UpdateServiceSpecificCredentialCommand)).toEqual([`ASIA${MEMBER_A}N1`]);
    // Each decision is recorded under its account, and nothing under the hub.
    expect((await decisionsOf(rt, MEMBER_A, KEY_A))[0]?.accountId).toBe(MEMBER_A);
    expect((await decisionsOf(rt, MEMBER_B, KEY_B))[0]?.accountId).toBe(MEMBER_B);
    expect(await decisionsOf(rt, HUB, KEY_A)).toEqual([]);
  });

  it('applies the OU override and records its policy version; the base policy elsewhere', async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const rt = await freshRuntime();
    const handler = createCredentialEventHandler(rt);

    // Act
    await handler(memberEvent(MEMBER_A, KEY_A), lambdaContext());
    await handler(memberEvent(MEMBER_B, KEY_B), lambdaContext());

    // Assess
    const [inSandbox] = await decisionsOf(rt, MEMBER_A, KEY_A);
    const [inWorkloads] = await decisionsOf(rt, MEMBER_B, KEY_B);
    expect(SANDBOX_VERSION).not.toBe(BASE_VERSION);
    expect(inSandbox).toMatchObject({ mode: 'enforce', applied: true, policyVersion: SANDBOX_VERSION });
    expect(inWorkloads).toMatchObject({ mode: 'audit', applied: false, policyVersion: BASE_VERSION });
    // The override's notice (an applied deactivation: sent at once) quotes the override's maxAgeDays (30); the
    // base policy's planned deactivation waits for the owner's next digest.
    const published = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(published).toHaveLength(1);
    expect(published[0]?.Message).toContain('--credential-age-days 30');
    expect(published[0]?.MessageAttributes?.account?.StringValue).toBe(MEMBER_A);
    expect(inWorkloads?.noticeDigest).toBe(NEXT_DIGEST);
  });

  it('notices carry the account id and name as message attributes', async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const handler = createCredentialEventHandler(await freshRuntime());

    // Act: an applied deactivation (the sandbox override enforces), sent at once
    await handler(memberEvent(MEMBER_A, KEY_A), lambdaContext());

    // Assess
    const attrs = sns.commandCalls(PublishCommand)[0]?.args[0].input.MessageAttributes;
    expect(attrs?.account).toEqual({ DataType: 'String', StringValue: MEMBER_A });
    expect(attrs?.accountName).toEqual({ DataType: 'String', StringValue: 'team-333' });
  });

  it.each([
    ['excluded', EXCLUDED, 'excludeAccounts'],
    ['not a member of the organization', STRANGER, 'not a member of organization o-a1b2c3d4e5'],
    ['outside the targets', OUTSIDE_TARGETS, 'not under organization.targets'],
  ])(
    'ignores an event from an account %s: no STS or IAM call, a log line and EventsFromUngovernedAccounts',
    async (_what, account, why) => {
      // Prepare
      answerAssumeRole(() => T0);
      const rt = await freshRuntime();

      // Act
      const result = await createCredentialEventHandler(rt)(memberEvent(account, KEY_A), lambdaContext());

      // Assess
      expect(result).toMatchObject({ status: 'ignored', reason: 'ungoverned-account' });
      expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
      expect(iam.calls()).toHaveLength(0);
      expect(sns.calls()).toHaveLength(0);
      expect(await scanAll(db, rt.decisionsTable)).toHaveLength(0);
      const lines = out.lines();
      const logged = lines.find((l) => l.message === 'event ignored' && l.reason === 'ungoverned-account');
      expect(String(logged?.detail)).toContain(account);
      expect(String(logged?.detail)).toContain(why);
      expect(lines.some((l) => l.EventsFromUngovernedAccounts === 1)).toBe(true);
    },
  );

  it("isolates one account's unusable member role: its event fails naming account and role, the other is decided", async () => {
    // Prepare
    answerAssumeRole(() => T0, new Set([MEMBER_A]));
    const rt = await freshRuntime();
    const handler = createCredentialEventHandler(rt);

    // Act
    const failed = await handler(memberEvent(MEMBER_A, KEY_A), lambdaContext()).catch((e: unknown) => e);
    const decided = await handler(memberEvent(MEMBER_B, KEY_B), lambdaContext());

    // Assess
    expect(failed).toBeInstanceOf(MemberRoleError);
    expect(decided).toMatchObject({ status: 'decided', decisions: [{ keyId: KEY_B }] });
    expect(await decisionsOf(rt, MEMBER_A, KEY_A)).toEqual([]);
    expect(await decisionsOf(rt, MEMBER_B, KEY_B)).toHaveLength(1);
    const lines = out.lines();
    const error = lines.find((l) => l.level === 'ERROR');
    expect(error).toMatchObject({
      accountId: MEMBER_A,
      roleArn: `arn:aws:iam::${MEMBER_A}:role/${ROLE}`,
      code: 'AccessDenied',
    });
    expect(lines.some((l) => l.MemberRoleFailures === 1)).toBe(true);
    // No IAM call was made as another account on A's behalf.
    for (const call of iam.calls()) {
      const creds = await (
        (call.thisValue as IAMClient).config.credentials as () => Promise<{ accessKeyId: string }>
      )();
      expect(creds.accessKeyId).not.toContain(MEMBER_A);
    }
  });

  it('reuses the member credentials across events, and assumes the role again five minutes before they expire', async () => {
    // Prepare
    let now = T0;
    answerAssumeRole(() => now);
    const rt = await freshRuntime(() => now);
    const handler = createCredentialEventHandler(rt);
    const at = (ms: number) => {
      now = new Date(T0.getTime() + ms);
    };

    // Act: events at 0, 30 min and 54 min reuse the first credentials; at 56 min they are renewed
    await handler(memberEvent(MEMBER_A, KEY_A), lambdaContext());
    at(30 * 60_000);
    await handler(memberEvent(MEMBER_A, KEY_A), lambdaContext());
    at(54 * 60_000);
    await handler(memberEvent(MEMBER_A, KEY_A), lambdaContext());
    const assumedBefore = sts.commandCalls(AssumeRoleCommand).length;
    at(56 * 60_000);
    await handler(memberEvent(MEMBER_A, KEY_A), lambdaContext());

    // Assess
    expect(assumedBefore).toBe(1);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
    const signers = await accountsOf(UpdateServiceSpecificCredentialCommand);
    expect(signers).toHaveLength(4);
    expect(signers.at(-1)).toBe(`ASIA${MEMBER_A}N2`);
  });

  it("governs the hub's own account with the function's credentials (no AssumeRole)", async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const rt = await freshRuntime();
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [
        {
          UserName: USER,
          Status: 'Active',
          CreateDate: new Date('2026-11-20T09:31:02Z'),
          ServiceSpecificCredentialId: KEY_B,
          ServiceName: 'bedrock.amazonaws.com',
        },
      ],
    });

    // Act
    const result = await createCredentialEventHandler(rt)(memberEvent(HUB, KEY_B), lambdaContext());

    // Assess
    expect(result).toMatchObject({ status: 'decided', decisions: [{ keyId: KEY_B }] });
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
    expect((await decisionsOf(rt, HUB, KEY_B))[0]).toMatchObject({
      accountId: HUB,
      policyVersion: BASE_VERSION,
    });
  });
});
