import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  NoSuchEntityException,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoApprovalsStore } from '../../lambda/adapters/approvals-store';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { IamEnforcer, IamKeyDirectory } from '../../lambda/adapters/iam';
import { SnsNotifier } from '../../lambda/adapters/notifier';
import { DynamoUsageStore } from '../../lambda/adapters/usage-store';
import { NEXT_DIGEST } from '../../lambda/domain/owner-digest';
import { decideKey, decisionIdFor } from '../../lambda/domain/pipeline';
import type { Decision } from '../../lambda/domain/types';
import type { UsageAggregate } from '../../lambda/domain/usage-types';
import {
  type CredentialEventRuntime,
  createCredentialEventHandler,
  InvalidEventError,
} from '../../lambda/handlers/credential-event-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import {
  ACCOUNT,
  ADMIN_ARN,
  cloudTrailRecord,
  createCredentialRecord,
  credentialChangeRecord,
  eventBridgeEvent,
  lambdaContext,
  tagUserRecord,
} from '../support/events';
import { answerPlainUser } from '../support/iam-facts';

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const TOPIC = `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`;
const NOW = new Date('2026-11-20T09:31:05Z');
const KEY = 'ACCAEXAMPLEKEYNEVER01';
const USER = 'svc-chatbot';
const FULL_TAGS = [
  { Key: 'owner', Value: 'team-chat@example.com' },
  { Key: 'purpose', Value: 'customer chatbot' },
  { Key: 'review-cadence', Value: '90d' },
];

let db: EmbeddedDynamo;
let out: Capture;
let table = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});

/** Each test gets its own tables (fresh names), so no state leaks between tests. */
async function freshRuntime(mode: 'audit' | 'enforce'): Promise<CredentialEventRuntime> {
  table += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-${table}`,
    keysTable: `${TABLES.keysTable}-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-${table}`,
  };
  await createTestTables(db, names);
  const config = parseConfig({ mode, fallbackOwner: 'security@example.com' });
  return {
    config,
    policyVersion: policyVersion(config),
    ...names,
    topicArn: TOPIC,
    governedAccountId: ACCOUNT,
    iamFor: () => new IAMClient({ region: 'us-east-1' }),
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-credential-event' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-credential-event' }),
    now: () => NOW,
  };
}

function liveKey(status: 'Active' | 'Inactive', expiration?: Date) {
  return {
    UserName: USER,
    Status: status,
    ServiceUserName: undefined,
    ServiceCredentialAlias: `${USER}-at-${ACCOUNT}`,
    CreateDate: new Date('2026-11-20T09:31:02Z'),
    ...(expiration ? { ExpirationDate: expiration } : {}),
    ServiceSpecificCredentialId: KEY,
    ServiceName: 'bedrock.amazonaws.com',
  };
}

async function decisionsIn(rt: CredentialEventRuntime): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY);
}

beforeEach(() => {
  iam.reset();
  sns.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  iam.on(ListUserTagsCommand).resolves({ Tags: FULL_TAGS, IsTruncated: false });
  iam.on(UpdateServiceSpecificCredentialCommand).resolves({});
  answerPlainUser(iam);
  out = captureOutput();
});
afterEach(() => out.restore());

describe('credential-event handler', () => {
  it('deactivates a never-expiring key in enforce mode, records the decision and notifies the owner', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });
    const handler = createCredentialEventHandler(rt);
    const event = eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY }));

    // Act
    const result = await handler(event, lambdaContext());

    // Assess
    expect(result).toMatchObject({
      status: 'decided',
      decisions: [{ keyId: KEY, action: 'DEACTIVATE', applied: true }],
    });
    expect(iam).toHaveReceivedCommandWith(ListServiceSpecificCredentialsCommand, {
      UserName: USER,
      ServiceName: 'bedrock.amazonaws.com',
    });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      UserName: USER,
      ServiceSpecificCredentialId: KEY,
      Status: 'Inactive',
    });
    const [decision, ...rest] = await decisionsIn(rt);
    expect(rest).toHaveLength(0);
    expect(decision).toMatchObject({
      keyId: KEY,
      userName: USER,
      accountId: ACCOUNT,
      keyType: 'LONG_TERM',
      action: 'DEACTIVATE',
      applied: true,
      mode: 'enforce',
      neverExpires: true,
      expiresAt: null,
      owner: { value: 'team-chat@example.com', source: 'tag' },
      trigger: { kind: 'event', eventName: 'CreateServiceSpecificCredential' },
      policyVersion: rt.policyVersion,
    });
    expect(decision?.violations.map((v) => v.code)).toEqual(['NEVER_EXPIRES']);
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY);
    expect(known).toMatchObject({ status: 'Inactive', creator: ADMIN_ARN, owner: 'team-chat@example.com' });

    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    const publish = sns.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(publish?.TopicArn).toBe(TOPIC);
    expect(publish?.MessageAttributes).toEqual({
      owner: { DataType: 'String', StringValue: 'team-chat@example.com' },
      severity: { DataType: 'String', StringValue: 'high' },
      action: { DataType: 'String', StringValue: 'DEACTIVATE' },
      // Subscriptions can filter by account (organization mode); harmless with one account.
      account: { DataType: 'String', StringValue: ACCOUNT },
    });
    expect(publish?.Message).toContain(`account ${ACCOUNT}`);
    expect(publish?.Message).toContain('NEVER_EXPIRES');
  });

  it('records a decision about a user whose owner tag is 500,000 characters: cut, with its hash, never refused', async () => {
    // Prepare: a tag far over DynamoDB's 400 KB item limit (IAM caps tags; the store must not rely on it)
    const rt = await freshRuntime('audit');
    const huge = `owner-${'q'.repeat(499_994)}`;
    iam.on(ListUserTagsCommand).resolves({
      Tags: [
        { Key: 'owner', Value: huge },
        { Key: 'purpose', Value: huge },
      ],
      IsTruncated: false,
    });
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });

    // Act
    const result = await createCredentialEventHandler(rt)(
      eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY })),
      lambdaContext(),
    );

    // Assess: recorded, with the owner cut to a bounded value that names the cut and the hash of the whole
    expect(result).toMatchObject({ status: 'decided', decisions: [{ keyId: KEY }] });
    const [decision] = await decisionsIn(rt);
    expect(decision?.owner.value).toMatch(/^owner-q+…\[truncated 499,\d{3} chars, sha256:[0-9a-f]{16}\]$/);
    expect(JSON.stringify(decision).length).toBeLessThan(20_000);
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY);
    expect(known?.owner).toBe(decision?.owner.value);
  });

  it('only plans the deactivation in audit mode: IAM is never changed, the notice waits for the owner’s digest', async () => {
    const rt = await freshRuntime('audit');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });

    await createCredentialEventHandler(rt)(
      eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY })),
      lambdaContext(),
    );

    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    const [decision] = await decisionsIn(rt);
    expect(decision).toMatchObject({ action: 'DEACTIVATE', applied: false, mode: 'audit' });
    // A planned deactivation is not a critical event: not published now, pending for the next digest.
    expect(decision).toMatchObject({ notice: 'action', noticeDigest: NEXT_DIGEST });
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY);
    expect(known?.pendingNotice).toMatchObject({
      digest: NEXT_DIGEST,
      decisionId: decision?.decisionId,
      owner: 'team-chat@example.com',
      kind: 'action',
      action: 'DEACTIVATE',
    });
  });

  it('acts on what IAM says now, not on the event: a key created with an expiry in the event but never-expiring in IAM is deactivated', async () => {
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });
    const event = eventBridgeEvent(
      createCredentialRecord({
        userName: USER,
        keyId: KEY,
        credentialAgeDays: 30,
        expirationDate: '2026-12-20T09:31:02Z',
      }),
    );

    await createCredentialEventHandler(rt)(event, lambdaContext());

    const [decision] = await decisionsIn(rt);
    expect(decision).toMatchObject({ action: 'DEACTIVATE', applied: true, expiresAt: null });
  });

  it('ignores a CodeCommit credential without calling IAM or SNS, with a log line and a metric', async () => {
    const rt = await freshRuntime('enforce');
    const event = eventBridgeEvent(
      createCredentialRecord({
        userName: 'git-user',
        keyId: 'ACCAEXAMPLECODECOMMIT1',
        serviceName: 'codecommit.amazonaws.com',
      }),
    );

    const result = await createCredentialEventHandler(rt)(event, lambdaContext());

    expect(result).toMatchObject({ status: 'ignored', reason: 'not-bedrock' });
    expect(iam.calls()).toHaveLength(0);
    expect(sns.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toHaveLength(0);
    const lines = out.lines();
    expect(lines.some((l) => l.message === 'event ignored' && l.reason === 'not-bedrock')).toBe(true);
    expect(lines.some((l) => l.IgnoredEvents === 1 && l.reason === 'not-bedrock')).toBe(true);
  });

  it('never acts on an event from an account it does not govern (a same-named user here must stay untouched)', async () => {
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });
    const foreign = {
      ...tagUserRecord(USER, { owner: 'x@example.com' }),
      recipientAccountId: '999988887777',
    };

    const result = await createCredentialEventHandler(rt)(
      { ...eventBridgeEvent(foreign), account: '999988887777' },
      lambdaContext(),
    );

    expect(result).toMatchObject({ status: 'ignored', reason: 'foreign-account' });
    expect(iam.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toHaveLength(0);
    expect(out.lines().some((l) => l.message === 'event ignored' && l.reason === 'foreign-account')).toBe(
      true,
    );
  });

  it('never acts as the governed account on an event without recipientAccountId put on a foreign bus', async () => {
    // Prepare: the caller claims the governed account; the envelope says where the event came from
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });
    const { recipientAccountId: _dropped, ...detail } = tagUserRecord(USER, { owner: 'x@example.com' });

    // Act
    const result = await createCredentialEventHandler(rt)(
      { ...eventBridgeEvent(detail), account: '999988887777' },
      lambdaContext(),
    );

    // Assess
    expect((detail.userIdentity as { accountId?: string }).accountId).toBe(ACCOUNT);
    expect(result).toMatchObject({ status: 'ignored', reason: 'foreign-account' });
    expect(iam.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toHaveLength(0);
  });

  it('ignores, with a warning and a metric, an event whose recipientAccountId and envelope account disagree', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    const detail = tagUserRecord(USER, { owner: 'x@example.com' });

    // Act
    const result = await createCredentialEventHandler(rt)(
      { ...eventBridgeEvent(detail), account: '999988887777' },
      lambdaContext(),
    );

    // Assess
    expect(result).toMatchObject({ status: 'ignored', reason: 'account-mismatch' });
    expect(iam.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toHaveLength(0);
    const lines = out.lines();
    expect(
      lines.some(
        (l) =>
          l.level === 'WARN' &&
          l.reason === 'account-mismatch' &&
          l.detail === `recipientAccountId ${ACCOUNT} differs from the envelope account 999988887777`,
      ),
    ).toBe(true);
    expect(lines.some((l) => l.IgnoredEvents === 1 && l.reason === 'account-mismatch')).toBe(true);
  });

  it('ignores an event dated implausibly far in the future, with a warning naming its time', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });
    const detail = { ...tagUserRecord(USER, { owner: 'x@example.com' }), eventTime: '9999-12-31T23:59:59Z' };

    // Act
    const result = await createCredentialEventHandler(rt)(eventBridgeEvent(detail), lambdaContext());

    // Assess
    expect(result).toMatchObject({ status: 'ignored', reason: 'future-event' });
    expect(iam.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toHaveLength(0);
    expect(
      out
        .lines()
        .some(
          (l) =>
            l.level === 'WARN' && String(l.detail).startsWith('eventTime 9999-12-31T23:59:59.000Z is after'),
        ),
    ).toBe(true);
  });

  it('ignores a failed call (errorCode) without touching anything', async () => {
    const rt = await freshRuntime('enforce');
    const event = eventBridgeEvent(
      createCredentialRecord({ userName: USER, keyId: KEY, errorCode: 'LimitExceeded' }),
    );

    const result = await createCredentialEventHandler(rt)(event, lambdaContext());

    expect(result).toMatchObject({ status: 'ignored', reason: 'failed-call' });
    expect(iam.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toHaveLength(0);
  });

  it('handles a redelivered event once: one decision, one deactivation, one notice', async () => {
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolvesOnce({ ServiceSpecificCredentials: [liveKey('Active')] })
      .resolvesOnce({ ServiceSpecificCredentials: [liveKey('Active')] })
      .resolves({ ServiceSpecificCredentials: [liveKey('Inactive')] });
    const handler = createCredentialEventHandler(rt);
    const event = eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY }));

    const first = await handler(event, lambdaContext());
    const second = await handler(structuredClone(event), lambdaContext());

    expect(second).toEqual(first);
    expect(await decisionsIn(rt)).toHaveLength(1);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  it('handles one CloudTrail event delivered in two envelopes with different ids once: the key is detail.eventID', async () => {
    // Prepare: EventBridge may deliver the same CloudTrail event (same detail.eventID) in envelopes whose own
    // `id` differs, so keying idempotency on the envelope would run the pipeline twice.
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolvesOnce({ ServiceSpecificCredentials: [liveKey('Active')] })
      .resolvesOnce({ ServiceSpecificCredentials: [liveKey('Active')] })
      .resolves({ ServiceSpecificCredentials: [liveKey('Inactive')] });
    const handler = createCredentialEventHandler(rt);
    const first = eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY }));
    const again: Record<string, unknown> = {
      ...structuredClone(first),
      id: 'b2c9d0e1-6f7a-4b3c-9d8e-0f1a2b3c4d5e',
    };
    expect(again.id).not.toBe(first.id);
    expect(again.detail).toEqual(first.detail);

    // Act
    const firstResult = await handler(first, lambdaContext());
    const callsAfterFirst = iam.calls().length;
    const againResult = await handler(again, lambdaContext());

    // Assess: the second delivery returns the stored result without calling IAM, recording or notifying again
    expect(againResult).toEqual(firstResult);
    expect(iam.calls()).toHaveLength(callsAfterFirst);
    expect(await decisionsIn(rt)).toHaveLength(1);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(await scanAll(db, rt.idempotencyTable)).toHaveLength(1);
  });

  it('rethrows IAM throttling so Lambda retries; the retry records exactly one decision', async () => {
    const rt = await freshRuntime('enforce');
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $fault: 'client' });
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .rejectsOnce(throttled)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });
    const handler = createCredentialEventHandler(rt);
    const event = eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY }));

    await expect(handler(event, lambdaContext())).rejects.toThrow('Rate exceeded');
    const failure = out.lines().find((l) => l.level === 'ERROR');
    expect(failure?.message).toContain('Lambda retries it');
    expect(failure?.eventId).toBe((event.detail as { eventID: string }).eventID);
    expect(await decisionsIn(rt)).toHaveLength(0);

    await handler(event, lambdaContext());

    expect(await decisionsIn(rt)).toHaveLength(1);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  it('retries a failed SNS publish of a critical notice (an applied deactivation) without writing a second audit item', async () => {
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });
    sns.on(PublishCommand).rejectsOnce(new Error('SNS unavailable')).resolves({ MessageId: 'm-2' });
    const handler = createCredentialEventHandler(rt);
    const event = eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY }));

    await expect(handler(event, lambdaContext())).rejects.toThrow('SNS unavailable');
    expect(await decisionsIn(rt)).toHaveLength(1);

    const retry = await handler(event, lambdaContext());

    expect(retry).toMatchObject({ status: 'decided', decisions: [{ duplicate: true }] });
    expect(await decisionsIn(rt)).toHaveLength(1);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 2);
  });

  it('records a known key deleted in IAM as Deleted, with no action, and tells the owner it is resolved in the next digest', async () => {
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });
    const handler = createCredentialEventHandler(rt);
    await handler(eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY })), lambdaContext());
    iam.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [] });
    sns.resetHistory();

    const deletion = {
      ...credentialChangeRecord('DeleteServiceSpecificCredential', USER, KEY),
      eventTime: '2026-11-21T08:00:00Z',
    };

    const result = await handler(eventBridgeEvent(deletion), lambdaContext());

    expect(result).toMatchObject({ status: 'decided', decisions: [{ action: 'ALLOW', applied: false }] });
    const decisions = await decisionsIn(rt);
    expect(decisions.map((d) => d.status)).toEqual(['Active', 'Deleted']);
    expect(decisions[1]?.notice).toBe('resolved');
    expect(decisions[1]?.noticeDigest).toBe(NEXT_DIGEST);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY);
    expect(known).toMatchObject({
      status: 'Deleted',
      pendingNotice: { digest: NEXT_DIGEST, decisionId: decisions[1]?.decisionId, kind: 'resolved' },
    });
  });

  it('ignores an update for a credential that is not a Bedrock key it knows (e.g. CodeCommit, or already gone)', async () => {
    const rt = await freshRuntime('enforce');
    iam.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [] });

    const result = await createCredentialEventHandler(rt)(
      eventBridgeEvent(
        credentialChangeRecord('UpdateServiceSpecificCredential', USER, 'ACCAEXAMPLEUNKNOWN001', {
          status: 'Active',
        }),
      ),
      lambdaContext(),
    );

    expect(result).toMatchObject({ status: 'ignored', reason: 'not-bedrock-or-unknown' });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
  });

  it('treats a deleted user as having no keys and no tags', async () => {
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .rejects(new NoSuchEntityException({ message: 'no user', $metadata: {} }));

    const result = await createCredentialEventHandler(rt)(
      eventBridgeEvent(tagUserRecord(USER, { owner: 'x@example.com' })),
      lambdaContext(),
    );

    expect(result).toMatchObject({ status: 'ignored', reason: 'no-bedrock-keys' });
  });

  it('re-evaluates every Bedrock key of a user when its tags change', async () => {
    const rt = await freshRuntime('audit');
    const second = {
      ...liveKey('Active', new Date('2026-12-01T00:00:00Z')),
      ServiceSpecificCredentialId: 'ACCAEXAMPLEKEYSECOND1',
    };
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [liveKey('Active', new Date('2026-12-10T00:00:00Z')), second],
    });
    iam.on(ListUserTagsCommand).resolves({ Tags: [{ Key: 'owner', Value: 'team-chat@example.com' }] });

    const result = await createCredentialEventHandler(rt)(
      eventBridgeEvent(tagUserRecord(USER, { owner: 'team-chat@example.com' })),
      lambdaContext(),
    );

    expect(result.status).toBe('decided');
    const ids = result.status === 'decided' ? result.decisions.map((d) => [d.keyId, d.action]) : [];
    expect(ids).toEqual([
      [KEY, 'NOTIFY'],
      ['ACCAEXAMPLEKEYSECOND1', 'NOTIFY'],
    ]);
    const decisions = await decisionsIn(rt);
    expect(decisions[0]?.violations.map((v) => v.code)).toEqual([
      'MISSING_PURPOSE',
      'MISSING_REVIEW_CADENCE',
    ]);
    expect(decisions[0]?.deadline).toBe('2026-11-23T09:31:05.000Z');
  });

  it('rejects an event that is not a CloudTrail event, logging why, so it ends in the failure destination', async () => {
    const rt = await freshRuntime('enforce');

    await expect(createCredentialEventHandler(rt)({ hello: 'world' }, lambdaContext())).rejects.toThrow(
      InvalidEventError,
    );
    expect(out.lines().some((l) => l.level === 'ERROR')).toBe(true);
    expect(iam.calls()).toHaveLength(0);
  });
});

describe('credential-event handler: approvals', () => {
  const APPROVER = `arn:aws:sts::${ACCOUNT}:assumed-role/KeyguardApprover/carol@example.com`;

  async function approve(
    rt: CredentialEventRuntime,
    over: { approvalId: string; until: string; revoked?: boolean },
  ): Promise<void> {
    const store = new DynamoApprovalsStore(db.doc, rt.approvalsTable);
    await store.putApproval({
      approvalId: over.approvalId,
      accountId: ACCOUNT,
      keyId: KEY,
      covers: ['NEVER_EXPIRES'],
      reason: 'legacy integration, replacement planned',
      approver: APPROVER,
      approvedAt: '2026-11-01T00:00:00.000Z',
      until: over.until,
      revokedAt: null,
      revokedBy: null,
    });
    if (over.revoked) {
      await store.revokeApproval(ACCOUNT, over.approvalId, {
        revokedAt: '2026-11-15T00:00:00.000Z',
        revokedBy: APPROVER,
        reason: 'no longer needed',
      });
    }
  }

  it('an active approval covering NEVER_EXPIRES: no deactivation, no notice, the waiver on record', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    await approve(rt, { approvalId: 'apv-active', until: '2027-01-31T23:59:59.999Z' });
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });

    // Act
    const result = await createCredentialEventHandler(rt)(
      eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY })),
      lambdaContext(),
    );

    // Assess
    expect(result).toMatchObject({ status: 'decided', decisions: [{ action: 'ALLOW', applied: false }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 0);
    const [decision] = await decisionsIn(rt);
    expect(decision?.violations).toEqual([]);
    expect(decision?.waived).toEqual([
      {
        code: 'NEVER_EXPIRES',
        severity: 'high',
        detail: 'the key has no expiration date',
        approvalId: 'apv-active',
      },
    ]);
  });

  it.each([
    ['expired', { approvalId: 'apv-expired', until: '2026-11-19T23:59:59.999Z' }],
    ['revoked', { approvalId: 'apv-revoked', until: '2027-01-31T23:59:59.999Z', revoked: true }],
  ])('an %s approval waives nothing: the key is deactivated', async (_what, approval) => {
    // Prepare
    const rt = await freshRuntime('enforce');
    await approve(rt, approval);
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [liveKey('Active')] });

    // Act
    await createCredentialEventHandler(rt)(
      eventBridgeEvent(createCredentialRecord({ userName: USER, keyId: KEY })),
      lambdaContext(),
    );

    // Assess
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    const [decision] = await decisionsIn(rt);
    expect(decision).toMatchObject({ action: 'DEACTIVATE', applied: true });
    expect(decision?.violations.map((v) => v.code)).toEqual(['NEVER_EXPIRES']);
    expect(decision?.waived).toBeUndefined();
  });
});

describe('credential-event handler: usage (UNUSED)', () => {
  const SWEEP_AT = '2026-11-20T08:00:00.000Z';

  /** Tracked since Sep 1 (first recorded use), the key last used Oct 1: idle 50 days, 30 allowed. */
  async function trackedRuntime(): Promise<CredentialEventRuntime & { usage: DynamoUsageStore }> {
    const base = await freshRuntime('enforce');
    const usageTable = `${TABLES.usageTable}-${table}`;
    await createTestTables(db, {
      decisionsTable: base.decisionsTable,
      keysTable: base.keysTable,
      idempotencyTable: base.idempotencyTable,
      usageTable,
    });
    const usage = new DynamoUsageStore(db.doc, usageTable);
    const use = (subject: UsageAggregate['subject'], at: string): UsageAggregate => ({
      accountId: ACCOUNT,
      subject,
      keyType: subject.kind === 'principal' ? 'SHORT_TERM' : 'LONG_TERM',
      calls: 1,
      failedCalls: 0,
      firstUsedAt: at,
      lastUsedAt: at,
      lastAttemptAt: at,
      regions: ['us-east-1'],
      models: [],
      lastSourceIp: null,
      lastUserAgent: null,
    });
    await usage.recordUses([
      use(
        { kind: 'principal', principalArn: `arn:aws:iam::${ACCOUNT}:role/app` },
        '2026-09-01T00:00:00.000Z',
      ),
    ]);
    await usage.recordUses([use({ kind: 'key', keyId: KEY, userName: USER }, '2026-10-01T00:00:00.000Z')]);
    const config = parseConfig({
      mode: 'enforce',
      maxAgeDays: 365,
      maxIdleDays: 30,
      usage: { regions: ['us-east-1'] },
    });
    return { ...base, config, policyVersion: policyVersion(config), usage };
  }

  function oldKey() {
    return {
      ...liveKey('Active', new Date('2027-03-01T00:00:00Z')),
      CreateDate: new Date('2026-09-01T12:00:00Z'),
    };
  }

  /** The sweep's decision for the key, as the sweep makes it (its step carries the key's usage). */
  async function sweepFlagsUnused(rt: CredentialEventRuntime): Promise<Decision | undefined> {
    const directory = new IamKeyDirectory(rt.iamFor);
    const meta = await directory.getKey(ACCOUNT, USER, KEY);
    const r = await decideKey(
      {
        accountId: ACCOUNT,
        keyId: KEY,
        userName: USER,
        meta,
        trigger: { kind: 'sweep', eventId: 'sweep-1', eventTime: SWEEP_AT },
        decisionId: decisionIdFor('sweep', SWEEP_AT, 'sweep-1'),
        record: 'on-change',
        sweepId: 'sweep-1',
        usage: { lastUsedAt: '2026-10-01T00:00:00.000Z', trackingSince: '2026-09-01T00:00:00.000Z' },
      },
      {
        directory,
        audit: new DynamoAuditLog(db.doc, rt),
        enforcer: new IamEnforcer(rt.iamFor, directory),
        notifier: new SnsNotifier(rt.sns, rt.topicArn, rt.config),
      },
      { config: rt.config, policyVersion: rt.policyVersion, now: new Date(SWEEP_AT) },
    );
    return r?.decision;
  }

  it('an event after the sweep flagged UNUSED keeps UNUSED and the grace deadline: no "resolved" notice', async () => {
    // Prepare: the sweep flagged the key UNUSED (first notice, deadline in 72 h)
    const rt = await trackedRuntime();
    iam.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [oldKey()] });
    const swept = await sweepFlagsUnused(rt);
    expect(swept).toMatchObject({ action: 'NOTIFY', notice: 'first', deadline: '2026-11-23T08:00:00.000Z' });
    expect(swept?.violations.map((v) => v.code)).toEqual(['UNUSED']);
    sns.resetHistory();

    // Act: the user's tags are edited (nothing about use changed)
    const result = await createCredentialEventHandler(rt)(
      eventBridgeEvent(tagUserRecord(USER, { note: 'x' })),
      lambdaContext(),
    );

    // Assess
    expect(result).toMatchObject({ status: 'decided', decisions: [{ keyId: KEY, action: 'NOTIFY' }] });
    const [, event] = await decisionsIn(rt);
    expect(event?.violations.map((v) => v.code)).toEqual(['UNUSED']);
    expect(event?.deadline).toBe('2026-11-23T08:00:00.000Z');
    expect(event?.notice ?? null).toBeNull();
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY);
    expect(known?.history?.deadline).toBe('2026-11-23T08:00:00.000Z');
    expect(known?.violationCodes).toEqual(['UNUSED']);
  });

  it('keeps deciding UNUSED past the deadline: an event then deactivates the idle key (enforce)', async () => {
    // Prepare
    const rt = await trackedRuntime();
    iam.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [oldKey()] });
    await sweepFlagsUnused(rt);

    // Act: a tag edit after the 72 h deadline
    const later = { ...rt, now: () => new Date('2026-11-24T00:00:00Z') };
    await createCredentialEventHandler(later)(
      eventBridgeEvent(
        cloudTrailRecord({
          eventName: 'TagUser',
          eventTime: '2026-11-24T00:00:00Z',
          requestParameters: { userName: USER, tags: [{ key: 'note', value: 'x' }] },
        }),
      ),
      lambdaContext(),
    );

    // Assess
    const decisions = await decisionsIn(rt);
    expect(decisions.at(-1)).toMatchObject({ action: 'DEACTIVATE', applied: true });
    expect(decisions.at(-1)?.violations.map((v) => v.code)).toEqual(['UNUSED']);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      ServiceSpecificCredentialId: KEY,
      Status: 'Inactive',
    });
  });
});

describe('credential-event handler: usage tracking', () => {
  it('warns at creation when usage.regions is set but no usage source is given (UNUSED is then not evaluated)', async () => {
    // Prepare
    const rt = await freshRuntime('audit');
    const tracked = parseConfig({ ...rt.config, usage: { regions: ['us-east-1'] } });
    // Act
    createCredentialEventHandler({ ...rt, config: tracked });
    createCredentialEventHandler(rt);
    // Assess: once, for the tracked policy only
    const warnings = out
      .lines()
      .filter((l) =>
        String(l.message).startsWith('usage.regions is set but this function has no usage table'),
      );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 'WARN', regions: ['us-east-1'] });
  });
});
