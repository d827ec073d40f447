import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  GetLoginProfileCommand,
  GetPolicyCommand,
  GetUserPolicyCommand,
  IAMClient,
  ListAccessKeysCommand,
  ListAttachedUserPoliciesCommand,
  ListServiceSpecificCredentialsCommand,
  ListUserPoliciesCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { NEXT_DIGEST } from '../../lambda/domain/owner-digest';
import type { Decision } from '../../lambda/domain/types';
import {
  type CredentialEventRuntime,
  createCredentialEventHandler,
} from '../../lambda/handlers/credential-event-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, startTestDynamo, TABLES } from '../support/dynamo';
import {
  ACCOUNT,
  cloudTrailRecord,
  createCredentialRecord,
  eventBridgeEvent,
  lambdaContext,
} from '../support/events';
import { answerPlainUser } from '../support/iam-facts';

/**
 * The event side of BROAD_PERMISSIONS and USER_HAS_OTHER_CREDENTIALS: a call that gives a key's user more
 * access (an access key, a password, a policy, a group) re-evaluates that user's Bedrock keys with the user's
 * facts read from IAM.
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const NOW = new Date('2026-11-20T09:31:05Z');
const KEY = 'ACCAEXAMPLEKEYESCAL01';
const USER = 'svc-chatbot';

let db: EmbeddedDynamo;
let out: Capture;
let table = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => db.close());

async function freshRuntime(): Promise<CredentialEventRuntime> {
  table += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-ua-${table}`,
    keysTable: `${TABLES.keysTable}-ua-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-ua-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-ua-${table}`,
  };
  await createTestTables(db, names);
  const config = parseConfig({ mode: 'enforce' });
  return {
    config,
    policyVersion: policyVersion(config),
    ...names,
    topicArn: `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`,
    governedAccountId: ACCOUNT,
    iamFor: () => new IAMClient({ region: 'us-east-1' }),
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-credential-event' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-credential-event' }),
    now: () => NOW,
  };
}

/** A compliant key: 30-day expiry, all tags: any violation comes from the user's facts. */
function compliantKey() {
  return {
    UserName: USER,
    Status: 'Active' as const,
    CreateDate: new Date('2026-11-20T09:00:00Z'),
    ExpirationDate: new Date('2026-12-20T09:00:00Z'),
    ServiceSpecificCredentialId: KEY,
    ServiceName: 'bedrock.amazonaws.com',
  };
}

async function decisionsIn(rt: CredentialEventRuntime): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY);
}

function onUser(eventName: string, requestParameters: Record<string, unknown>) {
  return eventBridgeEvent(
    cloudTrailRecord({ eventName, requestParameters: { userName: USER, ...requestParameters } }),
  );
}

beforeEach(() => {
  iam.reset();
  sns.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  answerPlainUser(iam);
  iam.on(ListUserTagsCommand).resolves({
    Tags: [
      { Key: 'owner', Value: 'team-chat@example.com' },
      { Key: 'purpose', Value: 'customer chatbot' },
      { Key: 'review-cadence', Value: '90d' },
    ],
  });
  iam.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [compliantKey()] });
  out = captureOutput();
});
afterEach(() => out.restore());

describe('credential-event handler: calls that give a key user more access', () => {
  it('an access key created on a key user is USER_HAS_OTHER_CREDENTIALS, and the owner hears about it', async () => {
    // Prepare
    const rt = await freshRuntime();
    iam.on(ListAccessKeysCommand).resolves({
      AccessKeyMetadata: [{ UserName: USER, AccessKeyId: 'AKIAEXAMPLENEWKEY001', Status: 'Active' }],
    });

    // Act
    const result = await createCredentialEventHandler(rt)(onUser('CreateAccessKey', {}), lambdaContext());

    // Assess
    expect(result).toMatchObject({
      status: 'decided',
      decisions: [{ keyId: KEY, action: 'NOTIFY', applied: false }],
    });
    const [decision] = await decisionsIn(rt);
    expect(decision?.trigger).toMatchObject({ kind: 'event', eventName: 'CreateAccessKey' });
    expect(decision?.violations).toEqual([
      {
        code: 'USER_HAS_OTHER_CREDENTIALS',
        severity: 'high',
        detail: `user ${USER} also has 1 active access key(s): whoever holds them can mint keys or escalate`,
      },
    ]);
    expect(decision?.notice).toBe('first');
    // Not a critical event: the owner hears about it in their next digest.
    expect(decision?.noticeDigest).toBe(NEXT_DIGEST);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY);
    expect(known?.pendingNotice).toMatchObject({
      digest: NEXT_DIGEST,
      decisionId: decision?.decisionId,
      severity: 'high',
      kind: 'first',
    });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
  });

  it('a console password created by the user itself (no userName in the request) is caught too', async () => {
    // Prepare
    const rt = await freshRuntime();
    iam.on(ListAccessKeysCommand).resolves({ AccessKeyMetadata: [] });
    iam.on(GetLoginProfileCommand).resolves({ LoginProfile: { UserName: USER, CreateDate: NOW } });
    const self = cloudTrailRecord({
      eventName: 'CreateLoginProfile',
      requestParameters: { passwordResetRequired: false },
      userIdentity: {
        type: 'IAMUser',
        principalId: 'AIDAEXAMPLESVCCHAT01',
        arn: `arn:aws:iam::${ACCOUNT}:user/${USER}`,
        accountId: ACCOUNT,
        userName: USER,
      },
    });

    // Act
    const result = await createCredentialEventHandler(rt)(eventBridgeEvent(self), lambdaContext());

    // Assess
    expect(result).toMatchObject({ status: 'decided', decisions: [{ keyId: KEY, action: 'NOTIFY' }] });
    const [decision] = await decisionsIn(rt);
    expect(decision?.violations.map((v) => [v.code, v.detail])).toEqual([
      [
        'USER_HAS_OTHER_CREDENTIALS',
        `user ${USER} also has a console password: whoever holds them can mint keys or escalate`,
      ],
    ]);
    expect(iam).toHaveReceivedCommandWith(ListServiceSpecificCredentialsCommand, { UserName: USER });
  });

  it('AdministratorAccess attached to a key user is BROAD_PERMISSIONS, high', async () => {
    // Prepare
    const rt = await freshRuntime();
    iam.on(ListAttachedUserPoliciesCommand).resolves({
      AttachedPolicies: [
        { PolicyName: 'AdministratorAccess', PolicyArn: 'arn:aws:iam::aws:policy/AdministratorAccess' },
      ],
    });

    // Act
    const result = await createCredentialEventHandler(rt)(
      onUser('AttachUserPolicy', { policyArn: 'arn:aws:iam::aws:policy/AdministratorAccess' }),
      lambdaContext(),
    );

    // Assess
    expect(result).toMatchObject({ status: 'decided', decisions: [{ action: 'NOTIFY' }] });
    const [decision] = await decisionsIn(rt);
    expect(decision?.violations).toEqual([
      {
        code: 'BROAD_PERMISSIONS',
        severity: 'high',
        detail: `user ${USER}: AWS managed policy AdministratorAccess`,
      },
    ]);
    expect(iam).toHaveReceivedCommandTimes(GetPolicyCommand, 0);
  });

  it('AmazonBedrockLimitedAccess (the console default) is BROAD_PERMISSIONS, low', async () => {
    // Prepare
    const rt = await freshRuntime();
    iam.on(ListAttachedUserPoliciesCommand).resolves({
      AttachedPolicies: [
        {
          PolicyName: 'AmazonBedrockLimitedAccess',
          PolicyArn: 'arn:aws:iam::aws:policy/AmazonBedrockLimitedAccess',
        },
      ],
    });

    // Act
    await createCredentialEventHandler(rt)(
      onUser('AttachUserPolicy', { policyArn: 'arn:aws:iam::aws:policy/AmazonBedrockLimitedAccess' }),
      lambdaContext(),
    );

    // Assess
    const [decision] = await decisionsIn(rt);
    expect(decision?.violations).toEqual([
      expect.objectContaining({ code: 'BROAD_PERMISSIONS', severity: 'low' }),
    ]);
    expect(decision?.violations[0]?.detail).toContain('AmazonBedrockLimitedAccess');
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY);
    expect(known?.pendingNotice).toMatchObject({ digest: NEXT_DIGEST, severity: 'low' });
  });

  it('an inline policy allowing bedrock:* is BROAD_PERMISSIONS, high', async () => {
    // Prepare
    const rt = await freshRuntime();
    const doc = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'bedrock:*', Resource: '*' }],
    };
    iam.on(ListUserPoliciesCommand).resolves({ PolicyNames: ['bedrock-all'] });
    iam.on(GetUserPolicyCommand).resolves({
      UserName: USER,
      PolicyName: 'bedrock-all',
      PolicyDocument: encodeURIComponent(JSON.stringify(doc)),
    });

    // Act
    await createCredentialEventHandler(rt)(
      onUser('PutUserPolicy', { policyName: 'bedrock-all', policyDocument: JSON.stringify(doc) }),
      lambdaContext(),
    );

    // Assess
    const [decision] = await decisionsIn(rt);
    expect(decision?.violations).toEqual([
      {
        code: 'BROAD_PERMISSIONS',
        severity: 'high',
        detail: `user ${USER}: inline policy user/bedrock-all allows "bedrock:*"`,
      },
    ]);
  });

  it('ignores a call on a user with no Bedrock keys: no decision, no user facts read', async () => {
    // Prepare
    const rt = await freshRuntime();
    iam.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [] });

    // Act
    const result = await createCredentialEventHandler(rt)(
      onUser('AddUserToGroup', { groupName: 'admins' }),
      lambdaContext(),
    );

    // Assess
    expect(result).toMatchObject({ status: 'ignored', reason: 'no-bedrock-keys' });
    expect(await decisionsIn(rt)).toEqual([]);
    expect(iam).toHaveReceivedCommandTimes(ListAttachedUserPoliciesCommand, 0);
    expect(iam).toHaveReceivedCommandTimes(ListAccessKeysCommand, 0);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 0);
  });

  it('evaluates the user facts on a key creation too', async () => {
    // Prepare
    const rt = await freshRuntime();
    iam.on(ListAttachedUserPoliciesCommand).resolves({
      AttachedPolicies: [
        { PolicyName: 'PowerUserAccess', PolicyArn: 'arn:aws:iam::aws:policy/PowerUserAccess' },
      ],
    });
    const create = createCredentialRecord({
      userName: USER,
      keyId: KEY,
      credentialAgeDays: 30,
      expirationDate: '2026-12-20T09:00:00Z',
    });

    // Act
    await createCredentialEventHandler(rt)(eventBridgeEvent(create), lambdaContext());

    // Assess
    const [decision] = await decisionsIn(rt);
    expect(decision?.violations.map((v) => [v.code, v.severity])).toEqual([['BROAD_PERMISSIONS', 'high']]);
  });
});
