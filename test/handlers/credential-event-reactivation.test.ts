import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import {
  type CredentialEventRuntime,
  createCredentialEventHandler,
} from '../../lambda/handlers/credential-event-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { CREDENTIAL_EVENT_PATTERN } from '../../lib/constructs/credential-event-rule';
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
 * The deployed roles may call UpdateServiceSpecificCredential with Status=Active too (no IAM condition key restricts
 * the status). The acknowledgement of that grant (governance-access.ts, UPDATE_BEDROCK_KEYS_REASON) says a
 * reactivation by any principal, keyguard's own role included, is watched: these tests hold it to that.
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const NOW = new Date('2026-11-20T09:31:05Z');
const KEY = 'ACCAEXAMPLEKEYREACT01';
const USER = 'svc-chatbot';
/** keyguard's own credential-event role, as CloudTrail names a call it makes. */
const KEYGUARD_ROLE_SESSION = {
  type: 'AssumedRole',
  principalId: 'AROAEXAMPLEKEYGUARD01:keyguard-credential-event',
  arn: `arn:aws:sts::${ACCOUNT}:assumed-role/BedrockKeyGuard-CredentialEventFunctionHandlerRole/keyguard-credential-event`,
  accountId: ACCOUNT,
  sessionContext: {
    sessionIssuer: {
      type: 'Role',
      arn: `arn:aws:iam::${ACCOUNT}:role/BedrockKeyGuard-CredentialEventFunctionHandlerRole`,
      accountId: ACCOUNT,
    },
  },
};

let db: EmbeddedDynamo;
let out: Capture;
let table = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});

async function freshRuntime(): Promise<CredentialEventRuntime> {
  table += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-react-${table}`,
    keysTable: `${TABLES.keysTable}-react-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-react-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-react-${table}`,
  };
  await createTestTables(db, names);
  const config = parseConfig({ mode: 'enforce', fallbackOwner: 'security@example.com' });
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

/** IAM's live answer: the key, never expiring, in the given status. */
function iamSays(status: 'Active' | 'Inactive'): void {
  iam.on(ListServiceSpecificCredentialsCommand).resolves({
    ServiceSpecificCredentials: [
      {
        UserName: USER,
        Status: status,
        ServiceUserName: undefined,
        ServiceCredentialAlias: `${USER}-at-${ACCOUNT}`,
        CreateDate: new Date('2026-11-20T09:31:02Z'),
        ServiceSpecificCredentialId: KEY,
        ServiceName: 'bedrock.amazonaws.com',
      },
    ],
  });
}

/** The CloudTrail record of keyguard's own role setting the key Active again. */
function reactivatedByKeyguardRole() {
  return eventBridgeEvent(
    cloudTrailRecord({
      eventName: 'UpdateServiceSpecificCredential',
      eventTime: '2026-11-20T09:31:04Z',
      userIdentity: KEYGUARD_ROLE_SESSION,
      requestParameters: { userName: USER, serviceSpecificCredentialId: KEY, status: 'Active' },
    }),
  );
}

beforeEach(() => {
  iam.reset();
  sns.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
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
  out = captureOutput();
});
afterEach(() => out.restore());

describe('a reactivation through the UpdateServiceSpecificCredential grant is watched', () => {
  test('the credential-event rule routes every successful UpdateServiceSpecificCredential, whatever its status or caller', () => {
    // Act
    const branches = CREDENTIAL_EVENT_PATTERN.detail.$or as Array<Record<string, unknown>>;
    const update = branches.find((b) =>
      (b.eventName as string[]).includes('UpdateServiceSpecificCredential'),
    );
    // Assess: matched on the event name alone (no requestParameters or userIdentity filter)
    expect(update && Object.keys(update)).toEqual(['eventName']);
    expect(CREDENTIAL_EVENT_PATTERN.detail.errorCode).toEqual([{ exists: false }]);
  });

  test("keyguard's own role setting a key it deactivated Active again: REACTIVATED_WITHOUT_APPROVAL, deactivated again, notified", async () => {
    // Prepare: keyguard deactivated the never-expiring key on its creation event
    const rt = await freshRuntime();
    const handler = createCredentialEventHandler(rt);
    iamSays('Active');
    await handler(eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY })), lambdaContext());
    iam.resetHistory();
    sns.resetHistory();
    // the role then calls UpdateServiceSpecificCredential Status=Active (a bug, or a stolen session)
    iamSays('Active');

    // Act
    const result = await handler(reactivatedByKeyguardRole(), lambdaContext());

    // Assess
    expect(result).toMatchObject({
      status: 'decided',
      decisions: [{ keyId: KEY, action: 'DEACTIVATE', applied: true }],
    });
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      UserName: USER,
      ServiceSpecificCredentialId: KEY,
      Status: 'Inactive',
    });
    const decisions = await new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY);
    const latest = decisions.find((d) => d.trigger.eventName === 'UpdateServiceSpecificCredential');
    expect(latest?.violations).toContainEqual(
      expect.objectContaining({ code: 'REACTIVATED_WITHOUT_APPROVAL', severity: 'critical' }),
    );
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(sns.commandCalls(PublishCommand)[0]?.args[0].input.Message).toContain(
      'REACTIVATED_WITHOUT_APPROVAL',
    );
  });

  test('a reactivated key keyguard never deactivated is evaluated like any change (no REACTIVATED_WITHOUT_APPROVAL)', async () => {
    // Prepare: the key was deactivated by someone else; keyguard has no record of deactivating it
    const rt = await freshRuntime();
    const handler = createCredentialEventHandler(rt);
    iamSays('Active');

    // Act
    const result = await handler(reactivatedByKeyguardRole(), lambdaContext());

    // Assess: still decided on its own violations (here NEVER_EXPIRES), and on record with the event's name
    expect(result).toMatchObject({ status: 'decided', decisions: [{ keyId: KEY, action: 'DEACTIVATE' }] });
    const [decision] = await new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY);
    expect(decision?.trigger.eventName).toBe('UpdateServiceSpecificCredential');
    expect(decision?.violations.map((v) => v.code)).toEqual(['NEVER_EXPIRES']);
  });
});
