import { gzipSync } from 'node:zlib';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  CloudTrailClient,
  CloudTrailServiceException,
  LookupEventsCommand,
} from '@aws-sdk/client-cloudtrail';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { SqsUndecidedLeaks } from '../../lambda/adapters/undecided-leaks';
import { UNDECIDED_MESSAGE_TYPE } from '../../lambda/domain/leak-undecided';
import type { KeyCandidate, LeakVerifier } from '../../lambda/domain/leak-verification';
import type { Decision, LeakVerification, LeakVerificationResult } from '../../lambda/domain/types';
import {
  createLeakHandler,
  InvalidLogEventError,
  type LeakResult,
  type LeakRuntime,
} from '../../lambda/handlers/leak-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { fingerprint } from '../../lambda/shared/redact';
import { handBuiltShortTermKey } from '../support/bedrock-tokens';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { ACCOUNT } from '../support/events';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const cloudtrail = mockClient(CloudTrailClient);
const sqs = mockClient(SQSClient);
const UNDECIDED_QUEUE = `https://sqs.us-east-1.amazonaws.com/${ACCOUNT}/keyguard-undecided-leaks`;
const TOPIC = `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`;
/** fakeShortTermKey is signed 2026-11-20T09:31:02Z for 43200 s: valid until 21:31:02Z. */
const NOW = new Date('2026-11-20T10:00:00Z');
const LOG_GROUP = '/aws/lambda/chatbot';
const LOG_STREAM = '2026/11/20/[$LATEST]0123456789abcdef';
const KEY_A = 'ACCAEXAMPLELEAKED0001';
const KEY_B = 'ACCAEXAMPLELEAKED0002';
const ROLE_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/ChatbotRuntime/i-0abc1234`;

const LONG = fakeLongTermKey('leak-handler');
const FOREIGN = fakeLongTermKey('leak-handler-foreign', '444455556666');
const SHORT = fakeShortTermKey('leak-handler');
const PLANTED = [LONG, FOREIGN, SHORT];

/** The user and alias a long-term key decodes to (`ABSK` + base64("<user>-at-<account>:<secret>")). */
function aliasOf(key: string): { alias: string; userName: string } {
  const alias = Buffer.from(key.slice(4), 'base64').toString('utf8').split(':')[0] as string;
  return { alias, userName: alias.replace(/-at-\d{12}$/, '') };
}
const { alias: ALIAS, userName: USER } = aliasOf(LONG);
/** The access key id a short-term key was signed with (from X-Amz-Credential). */
const AKID = /X-Amz-Credential=([A-Z0-9]+)%2F/.exec(
  Buffer.from(SHORT.slice('bedrock-api-key-'.length), 'base64').toString('utf8'),
)?.[1] as string;

let db: EmbeddedDynamo;
let out: Capture;
let table = 0;

/** The verifier the handler is given: answers `answer` (or throws `failure`) and records what it was asked. */
class FakeVerifier implements LeakVerifier {
  asked: KeyCandidate[] = [];
  answer: LeakVerificationResult = 'VERIFIED';
  failure: Error | null = null;
  async verify(candidate: KeyCandidate): Promise<LeakVerification> {
    this.asked.push(candidate);
    if (this.failure) throw this.failure;
    return {
      result: this.answer,
      method: 'bedrock:ListFoundationModels us-east-1',
      checkedAt: NOW.toISOString(),
      reason: `test says ${this.answer}`,
      principal: null,
    };
  }
}
let verifier: FakeVerifier;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});

async function freshRuntime(
  mode: 'audit' | 'enforce',
  now = NOW,
  leakDetection: Record<string, unknown> = {},
): Promise<LeakRuntime> {
  table += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-leak-${table}`,
    keysTable: `${TABLES.keysTable}-leak-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-leak-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-leak-${table}`,
  };
  await createTestTables(db, names);
  const config = parseConfig({
    mode,
    fallbackOwner: 'security@example.com',
    leakDetection: { logGroups: [LOG_GROUP], ...leakDetection },
  });
  return {
    config,
    policyVersion: policyVersion(config),
    decisionsTable: names.decisionsTable,
    keysTable: names.keysTable,
    approvalsTable: names.approvalsTable,
    topicArn: TOPIC,
    governedAccountId: ACCOUNT,
    iamFor: () => new IAMClient({ region: 'us-east-1' }),
    cloudTrailFor: (region) => new CloudTrailClient({ region }),
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-leak' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-leak' }),
    verifier,
    now: () => now,
    undecided: new SqsUndecidedLeaks(new SQSClient({ region: 'us-east-1' }), UNDECIDED_QUEUE),
    // Retries without waiting (the waits are the defaults' business, not these tests').
    decisionRetryDelayMs: 0,
  };
}

interface LogLine {
  id: string;
  message: string;
  timestamp?: number;
}

/** A subscription event exactly as CloudWatch Logs delivers it: base64(gzip(JSON)). */
function subscriptionEvent(lines: LogLine[], messageType = 'DATA_MESSAGE'): { awslogs: { data: string } } {
  const payload = {
    messageType,
    owner: ACCOUNT,
    logGroup: LOG_GROUP,
    logStream: LOG_STREAM,
    subscriptionFilters: ['keyguard-leaks'],
    logEvents: lines.map((l) => ({
      id: l.id,
      timestamp: l.timestamp ?? Date.parse('2026-11-20T09:40:00Z'),
      message: l.message,
    })),
  };
  return { awslogs: { data: gzipSync(Buffer.from(JSON.stringify(payload))).toString('base64') } };
}

const LINE_ID = '37841210574231846289014356798437254983264721934719872340';

function bedrockKey(keyId: string, status: 'Active' | 'Inactive', alias = ALIAS) {
  return {
    UserName: USER,
    Status: status,
    ServiceCredentialAlias: alias,
    CreateDate: new Date('2026-10-01T00:00:00Z'),
    ExpirationDate: new Date('2026-12-30T00:00:00Z'),
    ServiceSpecificCredentialId: keyId,
    ServiceName: 'bedrock.amazonaws.com',
  };
}

async function decisionsOf(rt: LeakRuntime, keyId: string): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, keyId);
}

function publishedMessages(): Array<{ subject: string; message: string; owner?: string; severity?: string }> {
  return sns.commandCalls(PublishCommand).map((c) => ({
    subject: c.args[0].input.Subject ?? '',
    message: c.args[0].input.Message ?? '',
    owner: c.args[0].input.MessageAttributes?.owner?.StringValue,
    severity: c.args[0].input.MessageAttributes?.severity?.StringValue,
  }));
}

/** Everything the function could have leaked a key into: logs/metrics, notices, both tables, its results. */
async function everythingWritten(rt: LeakRuntime, results: unknown[]): Promise<string> {
  const items = [...(await scanAll(db, rt.decisionsTable)), ...(await scanAll(db, rt.keysTable))];
  return [
    out.text(),
    JSON.stringify(sns.commandCalls(PublishCommand).map((c) => c.args[0].input)),
    JSON.stringify(iam.calls().map((c) => c.args[0].input)),
    JSON.stringify(cloudtrail.calls().map((c) => c.args[0].input)),
    JSON.stringify(sqs.calls().map((c) => c.args[0].input)),
    JSON.stringify(items),
    JSON.stringify(results),
  ].join('\n');
}

beforeEach(() => {
  iam.reset();
  sns.reset();
  cloudtrail.reset();
  sqs.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  sqs.on(SendMessageCommand).resolves({ MessageId: 'q-1' });
  iam.on(ListUserTagsCommand).resolves({
    Tags: [
      { Key: 'owner', Value: 'team-chat@example.com' },
      { Key: 'purpose', Value: 'customer chatbot' },
      { Key: 'review-cadence', Value: '90d' },
    ],
    IsTruncated: false,
  });
  iam.on(UpdateServiceSpecificCredentialCommand).resolves({});
  cloudtrail.on(LookupEventsCommand).resolves({ Events: [] });
  verifier = new FakeVerifier();
  out = captureOutput();
});
afterEach(() => out.restore());

describe('leak handler: long-term keys', () => {
  it('deactivates the only key of the user in enforce mode, with a critical notice and a leak decision', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active')] });
    const handler = createLeakHandler(rt);
    const event = subscriptionEvent([
      { id: 'e-1', message: 'INFO starting' },
      { id: LINE_ID, message: `DEBUG client config {"apiKey":"${LONG}","region":"us-east-1"}` },
    ]);

    // Act
    const result = await handler(event);

    // Assess
    expect(result).toMatchObject({
      status: 'scanned',
      logGroup: LOG_GROUP,
      logEvents: 2,
      findings: [{ kind: 'LONG_TERM', logEventId: LINE_ID, outcome: 'deactivated', keyIds: [KEY_A] }],
    });
    expect(iam).toHaveReceivedCommandWith(ListServiceSpecificCredentialsCommand, {
      UserName: USER,
      ServiceName: 'bedrock.amazonaws.com',
    });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      UserName: USER,
      ServiceSpecificCredentialId: KEY_A,
      Status: 'Inactive',
    });
    const decisions = await decisionsOf(rt, KEY_A);
    expect(decisions).toHaveLength(1);
    const d = decisions[0] as Decision;
    expect(d).toMatchObject({
      keyId: KEY_A,
      userName: USER,
      accountId: ACCOUNT,
      keyType: 'LONG_TERM',
      trigger: { kind: 'leak', eventId: LINE_ID, eventTime: '2026-11-20T09:40:00.000Z' },
      action: 'DEACTIVATE',
      applied: true,
      mode: 'enforce',
      notice: 'action',
      leak: {
        fingerprint: fingerprint(LONG),
        redacted: `ABSK…${LONG.slice(-4)}`,
        location: {
          logGroup: LOG_GROUP,
          logStream: LOG_STREAM,
          logEventId: LINE_ID,
          timestamp: '2026-11-20T09:40:00.000Z',
          line: 1,
          column: 'DEBUG client config {"apiKey":"'.length + 1,
        },
      },
    });
    const leaked = d.violations.find((v) => v.code === 'LEAKED');
    expect(leaked?.severity).toBe('critical');
    expect(leaked?.detail).toContain(LOG_GROUP);
    expect(leaked?.detail).toContain(LOG_STREAM);
    expect(leaked?.detail).toContain(fingerprint(LONG));
    const [notice, ...more] = publishedMessages();
    expect(more).toEqual([]);
    expect(notice?.severity).toBe('critical');
    expect(notice?.owner).toBe('team-chat@example.com');
    expect(notice?.subject).toContain(`${KEY_A} on ${USER} deactivated`);
    expect(notice?.message).toContain('LEAKED (critical)');
    expect(notice?.message).toContain('delete key');
    expect(notice?.message).toContain('rotate');
    expect(out.text()).toContain('"LeaksFound"');
    expect(out.text()).toContain('"KeysDeactivated"');
  });

  it('plans the deactivation in audit mode without changing IAM', async () => {
    // Prepare
    const rt = await freshRuntime('audit');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active')] });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: `key=${LONG}` }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'deactivation-planned', keyIds: [KEY_A] }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    const [d] = await decisionsOf(rt, KEY_A);
    expect(d).toMatchObject({
      action: 'DEACTIVATE',
      applied: false,
      mode: 'audit',
      trigger: { kind: 'leak' },
    });
    const [notice] = publishedMessages();
    expect(notice?.message).toContain('must be deactivated');
    expect(notice?.message).toContain('planned, not applied');
    expect(notice?.severity).toBe('critical');
  });

  it('deactivates nothing when the user has two active keys and the alias matches both: a critical notice names both', async () => {
    // Prepare: IAM gives a user's keys the same alias, so it cannot tell them apart
    const rt = await freshRuntime('enforce');
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active'), bedrockKey(KEY_B, 'Active')],
    });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: LONG }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'ambiguous', keyIds: [KEY_A, KEY_B] }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    for (const keyId of [KEY_A, KEY_B]) {
      const [d] = await decisionsOf(rt, keyId);
      expect(d).toMatchObject({ action: 'NOTIFY', applied: false, leak: { candidates: [KEY_A, KEY_B] } });
      expect(d?.violations.find((v) => v.code === 'LEAKED')?.severity).toBe('critical');
    }
    const notices = publishedMessages();
    expect(notices).toHaveLength(2);
    for (const n of notices) {
      expect(n.severity).toBe('critical');
      expect(n.message).toContain(KEY_A);
      expect(n.message).toContain(KEY_B);
      expect(n.message).toContain('none was deactivated automatically');
    }
  });

  it('deactivates the one key whose alias matches when the user has two', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active', 'other-alias'), bedrockKey(KEY_B, 'Active')],
    });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: LONG }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'deactivated', keyIds: [KEY_B] }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      ServiceSpecificCredentialId: KEY_B,
    });
    expect(await decisionsOf(rt, KEY_A)).toEqual([]);
  });

  it('deactivates the only Active key of a user that also has an Inactive one', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Inactive'), bedrockKey(KEY_B, 'Active')],
    });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: LONG }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'deactivated', keyIds: [KEY_B] }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      ServiceSpecificCredentialId: KEY_B,
    });
  });

  it('ignores a key whose user has no Bedrock key (log and metric)', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [] });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: LONG }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'no-bedrock-keys', keyIds: [] }] });
    expect(sns.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toEqual([]);
    expect(out.lines().find((l) => l.message === 'leaked key not acted on')).toMatchObject({
      reason: 'no-bedrock-keys',
    });
  });

  it('ignores a key of another account (log and metric), without reading or changing IAM', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: `token ${FOREIGN}` }]));

    // Assess
    expect(result).toMatchObject({
      findings: [{ kind: 'LONG_TERM', outcome: 'foreign-account', keyIds: [] }],
    });
    expect(iam.calls()).toHaveLength(0);
    expect(sns.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toEqual([]);
    const line = out.lines().find((l) => l.message === 'leaked key not acted on');
    expect(line).toMatchObject({ reason: 'foreign-account', fingerprint: fingerprint(FOREIGN) });
    expect(out.text()).toContain('"IgnoredLeaks"');
  });
});

/** The undecided-leaks messages the handler sent, parsed. */
function undecidedMessages(): Array<Record<string, unknown> & { leaks: Array<Record<string, unknown>> }> {
  return sqs.commandCalls(SendMessageCommand).map((c) => {
    expect(c.args[0].input.QueueUrl).toBe(UNDECIDED_QUEUE);
    return JSON.parse(c.args[0].input.MessageBody ?? '{}');
  });
}

describe('leak handler: a failure never fails the batch, and never queues a key (issue 11 item 11)', () => {
  function oneActiveKey(): void {
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active')] });
  }

  it('IAM throttled on every try: resolves, tries 3 times, queues a redacted record of the finding and nothing of the key', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    const throttled = Object.assign(new Error(`Rate exceeded for ${LONG}`), { name: 'Throttling' });
    iam.on(ListServiceSpecificCredentialsCommand).rejects(throttled);
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(
      subscriptionEvent([{ id: LINE_ID, message: `DEBUG client config {"apiKey":"${LONG}"}` }]),
    );

    // Assess: not decided, said so, and queued as a redacted record
    expect(result).toMatchObject({ findings: [{ kind: 'LONG_TERM', outcome: 'failed', keyIds: [] }] });
    expect(iam).toHaveReceivedCommandTimes(ListServiceSpecificCredentialsCommand, 3);
    expect(sns.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toEqual([]);
    expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
    expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
      MessageAttributes: { type: { DataType: 'String', StringValue: UNDECIDED_MESSAGE_TYPE } },
    });
    expect(undecidedMessages()).toEqual([
      {
        type: UNDECIDED_MESSAGE_TYPE,
        version: 1,
        logGroup: LOG_GROUP,
        logStream: LOG_STREAM,
        part: 1,
        parts: 1,
        leaks: [
          {
            kind: 'LONG_TERM',
            fingerprint: fingerprint(LONG),
            redacted: `ABSK…${LONG.slice(-4)}`,
            accountId: ACCOUNT,
            userName: USER,
            verification: 'VERIFIED',
            reason: 'error',
            error: 'Throttling',
            sightings: 1,
            logEvents: [
              {
                logEventId: LINE_ID,
                timestamp: '2026-11-20T09:40:00.000Z',
                line: 1,
                column: 'DEBUG client config {"apiKey":"'.length + 1,
              },
            ],
          },
        ],
      },
    ]);
    expect(
      out.lines().find((l) => l.message === 'leak findings not decided: queued as undecided (redacted)'),
    ).toMatchObject({
      level: 'ERROR',
      reason: 'error',
      fingerprints: [fingerprint(LONG)],
    });
    expect(out.text()).toContain('"LeaksNotDecided"');
    // The error message held the key: neither the queue nor the logs repeat it.
    expect(leakedFragments(await everythingWritten(rt, [result]), PLANTED)).toEqual([]);
  });

  it('a transient failure is tried again: the second try decides the finding and nothing is queued', async () => {
    // Prepare: IAM throttles the first listing only
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }))
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active')] });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: LONG }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'deactivated', keyIds: [KEY_A] }] });
    // The failed listing, the retry's listing, and the enforcer's re-read before deactivating.
    expect(iam).toHaveReceivedCommandTimes(ListServiceSpecificCredentialsCommand, 3);
    expect(await decisionsOf(rt, KEY_A)).toHaveLength(1);
    expect(sqs.calls()).toHaveLength(0);
  });

  it('SNS failing for one finding: that finding is queued, the other findings of the batch are still decided', async () => {
    // Prepare: the long-term key's notice cannot be published; the short-term key's can
    const rt = await freshRuntime('enforce');
    oneActiveKey();
    cloudtrail.on(LookupEventsCommand).resolves({
      Events: [
        { CloudTrailEvent: JSON.stringify({ userIdentity: { arn: ROLE_SESSION, accessKeyId: AKID } }) },
      ],
    });
    sns.on(PublishCommand).callsFake(async (input: { Subject?: string }) => {
      if (input.Subject?.includes(KEY_A)) {
        throw Object.assign(new Error('KMS key disabled'), { name: 'KMSDisabledException' });
      }
      return { MessageId: 'm-2' };
    });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(
      subscriptionEvent([
        { id: 'l-1', message: `export AWS_BEARER_TOKEN_BEDROCK=${LONG}` },
        { id: 'l-2', message: `{"headers":{"authorization":"Bearer ${SHORT}"}}` },
      ]),
    );

    // Assess: the short-term key decided (notice + record); the long-term key queued with the error's name
    expect(result).toMatchObject({
      findings: [
        { kind: 'LONG_TERM', outcome: 'failed', logEventId: 'l-1' },
        { kind: 'SHORT_TERM', outcome: 'notified', logEventId: 'l-2', keyIds: [AKID] },
      ],
    });
    expect(await decisionsOf(rt, AKID)).toHaveLength(1);
    // The long-term key's decision is on record (recorded before its notice); each retry re-sent the notice.
    expect(await decisionsOf(rt, KEY_A)).toHaveLength(1);
    expect(
      sns.commandCalls(PublishCommand).filter((c) => c.args[0].input.Subject?.includes(KEY_A)),
    ).toHaveLength(3);
    const [message, ...more] = undecidedMessages();
    expect(more).toEqual([]);
    expect(message?.leaks).toEqual([
      expect.objectContaining({
        kind: 'LONG_TERM',
        fingerprint: fingerprint(LONG),
        reason: 'error',
        error: 'KMSDisabledException',
        logEvents: [expect.objectContaining({ logEventId: 'l-1' })],
      }),
    ]);
    expect(leakedFragments(await everythingWritten(rt, [result]), PLANTED)).toEqual([]);
  });

  it('a group decision failing on every try: each of its strings is queued, once, and the batch resolves', async () => {
    // Prepare: two strings naming the user that Bedrock rejects (decided together), and the user's tags unreadable
    const rt = await freshRuntime('enforce');
    oneActiveKey();
    verifier.answer = 'REJECTED';
    iam.on(ListUserTagsCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    const forged = ['f', 'g'].map((c) => `ABSK${Buffer.from(`${ALIAS}:${c.repeat(60)}`).toString('base64')}`);
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(
      subscriptionEvent(forged.map((key, i) => ({ id: `${LINE_ID}${i}`, message: `token=${key}` }))),
    );

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'failed' }, { outcome: 'failed' }] });
    expect(iam).toHaveReceivedCommandTimes(ListUserTagsCommand, 3);
    expect(await scanAll(db, rt.decisionsTable)).toEqual([]);
    const messages = undecidedMessages();
    expect(messages).toHaveLength(1);
    expect(messages[0]?.leaks.map((l) => [l.fingerprint, l.verification, l.reason, l.error])).toEqual(
      forged.map((key) => [fingerprint(key), 'REJECTED', 'error', 'Throttling']),
    );
    expect(leakedFragments(await everythingWritten(rt, [result]), [...PLANTED, ...forged])).toEqual([]);
  });

  it('findings left when the invocation runs out of time are queued too (reason deadline)', async () => {
    // Prepare: 5 s left, less than the reserve kept for decisions: nothing but VERIFIED strings is decided
    const rt = await freshRuntime('enforce');
    oneActiveKey();
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: SHORT }]), {
      getRemainingTimeInMillis: () => 5000,
    });

    // Assess
    expect(result).toMatchObject({ findings: [{ kind: 'SHORT_TERM', outcome: 'not-decided' }] });
    const [message] = undecidedMessages();
    expect(message?.leaks).toEqual([
      expect.objectContaining({
        kind: 'SHORT_TERM',
        fingerprint: fingerprint(SHORT),
        accessKeyId: AKID,
        verification: 'UNVERIFIED',
        reason: 'deadline',
      }),
    ]);
    expect(leakedFragments(JSON.stringify(sqs.calls().map((c) => c.args[0].input)), PLANTED)).toEqual([]);
  });

  it('the undecided queue unreachable: the batch fails (Lambda retries, then drops it: no destination holds it), logging no key', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    sqs.on(SendMessageCommand).rejects(Object.assign(new Error('Access denied'), { name: 'AccessDenied' }));
    const handler = createLeakHandler(rt);

    // Act + Assess
    await expect(handler(subscriptionEvent([{ id: LINE_ID, message: LONG }]))).rejects.toThrow(
      'Access denied',
    );
    expect(out.lines().find((l) => String(l.message).startsWith('log batch failed'))).toMatchObject({
      level: 'ERROR',
      error: { name: 'AccessDenied', message: 'Access denied' },
    });
    // What to fetch and scan again once Lambda has dropped the batch:
    expect(out.lines().find((l) => l.message === 'log batch received')).toMatchObject({
      logGroup: LOG_GROUP,
      logStream: LOG_STREAM,
      logEvents: 1,
      firstEventAt: '2026-11-20T09:40:00.000Z',
      lastEventAt: '2026-11-20T09:40:00.000Z',
    });
    expect(leakedFragments(out.text(), PLANTED)).toEqual([]);
  });
});

describe('leak handler: only a verified leak deactivates', () => {
  function oneKey(): void {
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active')] });
  }

  it('asks the verifier about the exact key found, once, with the user and account it names', async () => {
    // Prepare: the key JSON-escaped in one line and plain in another (same key, same fingerprint)
    const rt = await freshRuntime('enforce');
    oneKey();
    const escaped = LONG.replace(/\//g, '\\/').replace(/\+/g, '\\u002B');

    // Act
    await createLeakHandler(rt)(
      subscriptionEvent([
        { id: LINE_ID, message: `{"msg":"config","key":"${escaped}"}` },
        { id: `${LINE_ID}1`, message: `key=${LONG}` },
      ]),
    );

    // Assess
    expect(verifier.asked).toEqual([{ kind: 'LONG_TERM', key: LONG, accountId: ACCOUNT, userName: USER }]);
  });

  it("does not ask about another account's keys; a user without keys is asked about (before IAM) but nothing is recorded", async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [] });

    // Act
    const result = await createLeakHandler(rt)(
      subscriptionEvent([
        { id: LINE_ID, message: FOREIGN },
        { id: `${LINE_ID}1`, message: LONG },
      ]),
    );

    // Assess: the check comes first so that IAM is asked once per user whatever the number of strings
    expect(verifier.asked).toEqual([{ kind: 'LONG_TERM', key: LONG, accountId: ACCOUNT, userName: USER }]);
    expect(result).toMatchObject({
      findings: [{ outcome: 'foreign-account' }, { outcome: 'no-bedrock-keys', keyIds: [] }],
    });
    expect(iam).toHaveReceivedCommandTimes(ListServiceSpecificCredentialsCommand, 1);
    expect(await scanAll(db, rt.decisionsTable)).toEqual([]);
    expect(sns.calls()).toHaveLength(0);
  });

  it('REJECTED: no IAM change, a medium NOTIFY decision saying forged or inactive, no leak remembered', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    oneKey();
    verifier.answer = 'REJECTED';

    // Act
    const result = await createLeakHandler(rt)(subscriptionEvent([{ id: LINE_ID, message: LONG }]));

    // Assess
    expect(result).toMatchObject({
      findings: [{ outcome: 'rejected', verification: 'REJECTED', keyIds: [KEY_A] }],
    });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    const [d, ...more] = await decisionsOf(rt, KEY_A);
    expect(more).toEqual([]);
    expect(d).toMatchObject({
      action: 'NOTIFY',
      applied: false,
      notice: 'first',
      owner: { value: 'team-chat@example.com', source: 'tag' },
      leak: {
        fingerprint: fingerprint(LONG),
        verification: { result: 'REJECTED', reason: 'test says REJECTED' },
      },
    });
    expect(d?.violations).toEqual([expect.objectContaining({ code: 'LEAKED', severity: 'medium' })]);
    expect(d?.violations[0]?.detail).toContain('forged');
    const [notice, ...others] = publishedMessages();
    expect(others).toEqual([]);
    expect(notice?.severity).toBe('medium');
    expect(notice?.subject).toContain('needs attention');
    expect(notice?.message).toContain('No action is needed on the key');
    expect(JSON.stringify(await scanAll(db, rt.keysTable))).not.toContain('"leak"');
  });

  it('UNVERIFIED (the verifier fails): a critical notice, no deactivation, the decision says unverified', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    oneKey();
    verifier.failure = Object.assign(new Error(`socket hang up ${LONG}`), { name: 'FetchError' });

    // Act
    const result = await createLeakHandler(rt)(subscriptionEvent([{ id: LINE_ID, message: LONG }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'unverified', verification: 'UNVERIFIED' }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    const [d] = await decisionsOf(rt, KEY_A);
    expect(d).toMatchObject({
      action: 'NOTIFY',
      applied: false,
      deadline: null,
      leak: { verification: { result: 'UNVERIFIED', reason: 'the check failed: FetchError' } },
    });
    const leaked = d?.violations.find((v) => v.code === 'LEAKED');
    expect(leaked?.severity).toBe('critical');
    expect(leaked?.detail).toContain('could not be verified');
    expect(leaked?.detail).toContain('leakDetection.deactivateUnverified is false');
    const [notice] = publishedMessages();
    expect(notice?.severity).toBe('critical');
    expect(leakedFragments(out.text(), [LONG])).toEqual([]);
  });

  it('UNVERIFIED with leakDetection.deactivateUnverified: deactivated, and the decision says it was unverified', async () => {
    // Prepare
    const rt = await freshRuntime('enforce', NOW, { deactivateUnverified: true });
    oneKey();
    verifier.answer = 'UNVERIFIED';

    // Act
    const result = await createLeakHandler(rt)(subscriptionEvent([{ id: LINE_ID, message: LONG }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'deactivated', verification: 'UNVERIFIED' }] });
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      ServiceSpecificCredentialId: KEY_A,
      Status: 'Inactive',
    });
    const [d] = await decisionsOf(rt, KEY_A);
    expect(d).toMatchObject({
      action: 'DEACTIVATE',
      applied: true,
      leak: { verification: { result: 'UNVERIFIED' } },
    });
    expect(d?.violations.find((v) => v.code === 'LEAKED')?.detail).toContain(
      'leakDetection.deactivateUnverified is true',
    );
  });

  it('a redelivered batch is finished with the verification on record, though a new check rejects the deactivated key', async () => {
    // Prepare: the first delivery deactivated the key; IAM now shows it Inactive (a new check would be rejected)
    const rt = await freshRuntime('enforce');
    oneKey();
    const handler = createLeakHandler(rt);
    const event = subscriptionEvent([{ id: LINE_ID, message: LONG }]);
    await handler(event);
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Inactive')] });
    verifier.answer = 'REJECTED';

    // Act
    const again = await handler(event);

    // Assess
    expect(again).toMatchObject({ findings: [{ outcome: 'duplicate', verification: 'VERIFIED' }] });
    // Checked again (every delivery checks its distinct strings first), but the leak remembered on the key and
    // the decision on record win over the new answer
    expect(verifier.asked).toHaveLength(2);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(await decisionsOf(rt, KEY_A)).toHaveLength(1);
  });

  it('stops checking when the batch has spent its verification budget: the rest are unverified, not lost', async () => {
    // Prepare: four distinct keys; each check takes 8 s of a 20 s budget (a fake monotonic clock)
    const rt = await freshRuntime('audit');
    // Each user has its own key
    iam.on(ListServiceSpecificCredentialsCommand).callsFake((input: { UserName?: string }) => ({
      ServiceSpecificCredentials: [
        {
          ...bedrockKey(`ACCA${input.UserName?.slice(-4).toUpperCase()}`, 'Active'),
          UserName: input.UserName,
        },
      ],
    }));
    let clockMs = 0;
    const slow: LeakVerifier = {
      verify: async (candidate) => {
        clockMs += 8000;
        return verifier.verify(candidate);
      },
    };
    const keys = ['budget-1', 'budget-2', 'budget-3', 'budget-4'].map((seed) => fakeLongTermKey(seed));

    // Act
    const result = await createLeakHandler({ ...rt, verifier: slow, clock: () => clockMs })(
      subscriptionEvent(keys.map((k, i) => ({ id: `${LINE_ID}${i}`, message: k }))),
    );

    // Assess: three checks (0, 8 and 16 s spent before each), the fourth finding decided without one
    expect(verifier.asked).toHaveLength(3);
    expect(result).toMatchObject({
      findings: [
        { verification: 'VERIFIED' },
        { verification: 'VERIFIED' },
        { verification: 'VERIFIED' },
        { outcome: 'unverified', verification: 'UNVERIFIED' },
      ],
    });
    const lastKey = (result as { findings: Array<{ keyIds: string[] }> }).findings[3]?.keyIds[0] ?? '';
    const [last] = await decisionsOf(rt, lastKey);
    expect(last?.action).toBe('NOTIFY');
    expect(last?.leak?.verification?.reason).toBe(
      'the checks of this batch took their whole budget (20000 ms): no call made',
    );
  });

  it('a string left unchecked by the budget is never deactivated automatically, even with deactivateUnverified', async () => {
    // Prepare: the opt-in is for a check that fails; a flood of strings exhausting the budget must not trigger it
    const rt = await freshRuntime('enforce', NOW, { deactivateUnverified: true });
    iam.on(ListServiceSpecificCredentialsCommand).callsFake((input: { UserName?: string }) => ({
      ServiceSpecificCredentials: [
        {
          ...bedrockKey(`ACCA${input.UserName?.slice(-4).toUpperCase()}`, 'Active'),
          UserName: input.UserName,
        },
      ],
    }));
    verifier.answer = 'UNVERIFIED';
    let clockMs = 0;
    const slow: LeakVerifier = {
      verify: async (candidate) => {
        clockMs += 8000;
        return verifier.verify(candidate);
      },
    };
    const keys = ['skip-1', 'skip-2', 'skip-3', 'skip-4'].map((seed) => fakeLongTermKey(seed));

    // Act
    const result = await createLeakHandler({
      ...rt,
      verifier: slow,
      clock: () => clockMs,
      verificationConcurrency: 1,
    })(subscriptionEvent(keys.map((k, i) => ({ id: `${LINE_ID}${i}`, message: k }))));

    // Assess: the three checked (unverified: the opt-in applies) are deactivated, the unchecked one is not
    const findings = (result as { findings: Array<{ outcome: string; keyIds: string[] }> }).findings;
    expect(findings.map((f) => f.outcome)).toEqual([
      'deactivated',
      'deactivated',
      'deactivated',
      'unverified',
    ]);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 3);
    const [last] = await decisionsOf(rt, findings[3]?.keyIds[0] ?? '');
    expect(last).toMatchObject({
      action: 'NOTIFY',
      applied: false,
      leak: { verification: { result: 'UNVERIFIED', method: 'skipped' } },
    });
    expect(last?.violations.find((v) => v.code === 'LEAKED')?.detail).toContain(
      'not deactivated automatically, even with leakDetection.deactivateUnverified',
    );
  });

  it('a key deactivated for a leak, found again in a later batch, is recorded as rejected now (and the batch ends)', async () => {
    // Prepare: the first batch deactivates the key (the leak is remembered on it); then IAM shows it Inactive
    // and Bedrock rejects it
    const rt = await freshRuntime('enforce');
    oneKey();
    const handler = createLeakHandler(rt);
    await handler(subscriptionEvent([{ id: LINE_ID, message: LONG }]));
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Inactive')] });
    verifier.answer = 'REJECTED';

    const forged = `ABSK${Buffer.from(`${ALIAS}:${'f'.repeat(60)}`).toString('base64')}`;

    // Act: the same key in a new log event, with a forged string of the same user
    const later = await handler(
      subscriptionEvent([
        { id: `${LINE_ID}8`, message: `again ${LONG}` },
        { id: `${LINE_ID}9`, message: forged },
      ]),
    );

    // Assess: both rejected now, recorded together; nothing deactivated again
    expect(later).toMatchObject({
      findings: [
        { outcome: 'rejected', verification: 'REJECTED' },
        { outcome: 'rejected', verification: 'REJECTED' },
      ],
    });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    const decisions = await decisionsOf(rt, KEY_A);
    expect(
      decisions.map((d) => [d.action, d.leak?.verification?.result, d.leak?.sightings?.strings]),
    ).toEqual([
      ['DEACTIVATE', 'VERIFIED', undefined],
      ['NOTIFY', 'REJECTED', 2],
    ]);
  }, 15_000);

  it('a redelivered REJECTED finding is not recorded or notified again', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    oneKey();
    verifier.answer = 'REJECTED';
    const handler = createLeakHandler(rt);
    const event = subscriptionEvent([{ id: LINE_ID, message: LONG }]);
    await handler(event);

    // Act
    const again = await handler(event);

    // Assess
    expect(again).toMatchObject({ findings: [{ outcome: 'duplicate', verification: 'REJECTED' }] });
    expect(verifier.asked).toHaveLength(2);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(await decisionsOf(rt, KEY_A)).toHaveLength(1);
  });
});

describe('leak handler: short-term keys', () => {
  it('traces a live key to its signer with LookupEvents and says how to revoke the role sessions', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    cloudtrail.on(LookupEventsCommand).resolves({
      Events: [
        {
          EventId: 'ct-1',
          EventName: 'InvokeModel',
          CloudTrailEvent: JSON.stringify({
            eventName: 'InvokeModel',
            userIdentity: { type: 'AssumedRole', arn: ROLE_SESSION, accessKeyId: AKID },
          }),
        },
      ],
    });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(
      subscriptionEvent([{ id: LINE_ID, message: `Authorization: Bearer ${SHORT}` }]),
    );

    // Assess
    expect(result).toMatchObject({ findings: [{ kind: 'SHORT_TERM', outcome: 'notified', keyIds: [AKID] }] });
    expect(cloudtrail).toHaveReceivedCommandWith(LookupEventsCommand, {
      LookupAttributes: [{ AttributeKey: 'AccessKeyId', AttributeValue: AKID }],
    });
    const input = cloudtrail.commandCalls(LookupEventsCommand)[0]?.args[0].input;
    expect(input?.StartTime?.getTime()).toBeLessThanOrEqual(Date.parse('2026-11-20T09:31:02Z'));
    expect(input?.EndTime?.toISOString()).toBe(NOW.toISOString());
    const [notice, ...more] = publishedMessages();
    expect(more).toEqual([]);
    expect(notice?.owner).toBe(ROLE_SESSION);
    expect(notice?.severity).toBe('critical');
    expect(notice?.message).toContain(`Signed by: ${ROLE_SESSION}`);
    expect(notice?.message).toContain(`log group ${LOG_GROUP}, stream ${LOG_STREAM}`);
    expect(notice?.message).toContain('Expires: 2026-11-20T21:31:02.000Z');
    expect(notice?.message).toContain('Revoke active sessions');
    expect(notice?.message).toContain('aws:TokenIssueTime');
    expect(notice?.message).toContain('--role-name ChatbotRuntime');
    const decisions = await new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, AKID);
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({
      keyId: AKID,
      keyType: 'SHORT_TERM',
      trigger: { kind: 'leak', eventId: LINE_ID },
      action: 'NOTIFY',
      applied: false,
      owner: { value: ROLE_SESSION, source: 'creator' },
      expiresAt: '2026-11-20T21:31:02.000Z',
      leak: {
        fingerprint: fingerprint(SHORT),
        issuer: ROLE_SESSION,
        location: { logGroup: LOG_GROUP, logStream: LOG_STREAM, logEventId: LINE_ID },
      },
    });
    expect(iam.calls()).toHaveLength(0);
  });

  it('tells an IAM user to deactivate the signing access key', async () => {
    // Prepare
    const rt = await freshRuntime('audit');
    const userArn = `arn:aws:iam::${ACCOUNT}:user/dev-alice`;
    cloudtrail.on(LookupEventsCommand).resolves({
      Events: [
        {
          CloudTrailEvent: JSON.stringify({
            userIdentity: { type: 'IAMUser', arn: userArn, accessKeyId: AKID },
          }),
        },
      ],
    });
    const handler = createLeakHandler(rt);

    // Act
    await handler(subscriptionEvent([{ id: LINE_ID, message: SHORT }]));

    // Assess
    const [notice] = publishedMessages();
    expect(notice?.owner).toBe(userArn);
    expect(notice?.message).toContain(
      `aws iam update-access-key --user-name dev-alice --access-key-id ${AKID} --status Inactive`,
    );
  });

  it('sends an IAM Identity Center session to Identity Center to revoke (its role cannot be edited)', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    const sso = `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_Developers_0123456789abcdef/alice@example.com`;
    cloudtrail.on(LookupEventsCommand).resolves({
      Events: [{ CloudTrailEvent: JSON.stringify({ userIdentity: { arn: sso, accessKeyId: AKID } }) }],
    });
    const handler = createLeakHandler(rt);

    // Act
    await handler(subscriptionEvent([{ id: LINE_ID, message: SHORT }]));

    // Assess
    const [notice] = publishedMessages();
    expect(notice?.owner).toBe(sso);
    expect(notice?.message).toContain('IAM Identity Center');
    expect(notice?.message).not.toContain('put-role-policy');
  });

  it('notifies the fallback owner when CloudTrail does not know the signer', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: SHORT }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'notified' }] });
    const [notice] = publishedMessages();
    expect(notice?.owner).toBe('security@example.com');
    expect(notice?.message).toContain('Signed by: unknown');
    expect(notice?.message).toContain(`AttributeKey=AccessKeyId,AttributeValue=${AKID}`);
  });

  it('checks a live key in the region it was signed for, and says in the decision that it was verified', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: SHORT }]));

    // Assess
    expect(verifier.asked).toEqual([{ kind: 'SHORT_TERM', key: SHORT, region: 'us-east-1' }]);
    expect(result).toMatchObject({ findings: [{ outcome: 'notified', verification: 'VERIFIED' }] });
    const [d] = await new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, AKID);
    expect(d?.leak?.verification?.result).toBe('VERIFIED');
    expect(d?.violations[0]).toMatchObject({ code: 'LEAKED', severity: 'critical' });
    expect(d?.violations[0]?.detail).toContain('verified: Bedrock accepted it');
  });

  it('REJECTED: a medium notice that nothing needs revoking, without revocation steps', async () => {
    // Prepare: a forged short-term key naming a real role session's access key id
    const rt = await freshRuntime('enforce');
    cloudtrail.on(LookupEventsCommand).resolves({
      Events: [
        { CloudTrailEvent: JSON.stringify({ userIdentity: { arn: ROLE_SESSION, accessKeyId: AKID } }) },
      ],
    });
    verifier.answer = 'REJECTED';
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: SHORT }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'rejected', verification: 'REJECTED' }] });
    const [notice, ...more] = publishedMessages();
    expect(more).toEqual([]);
    expect(notice?.severity).toBe('medium');
    expect(notice?.subject).toContain('not a working key');
    expect(notice?.message).toContain('Nothing needs revoking');
    expect(notice?.message).not.toContain('Revoke active sessions');
    expect(notice?.message).not.toContain('put-role-policy');
    const [d] = await new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, AKID);
    expect(d).toMatchObject({ action: 'NOTIFY', leak: { verification: { result: 'REJECTED' } } });
  });

  it('UNVERIFIED: still a critical notice with the revocation steps, the decision saying it was not verified', async () => {
    const rt = await freshRuntime('enforce');
    verifier.answer = 'UNVERIFIED';

    await createLeakHandler(rt)(subscriptionEvent([{ id: LINE_ID, message: SHORT }]));

    const [notice] = publishedMessages();
    expect(notice?.severity).toBe('critical');
    expect(notice?.message).toContain('could not be verified');
    expect(notice?.message).toContain('aws cloudtrail lookup-events');
  });

  it('only logs and counts an expired key: no lookup, no notice, no decision', async () => {
    // Prepare: the next day, long after the 12 h lifetime
    const rt = await freshRuntime('enforce', new Date('2026-11-21T10:00:00Z'));
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(subscriptionEvent([{ id: LINE_ID, message: SHORT }]));

    // Assess
    expect(result).toMatchObject({ findings: [{ kind: 'SHORT_TERM', outcome: 'expired' }] });
    expect(cloudtrail.calls()).toHaveLength(0);
    // An expired key works nowhere: no check is made
    expect(verifier.asked).toEqual([]);
    expect(sns.calls()).toHaveLength(0);
    expect(await scanAll(db, rt.decisionsTable)).toEqual([]);
    expect(out.lines().find((l) => l.message === 'leaked key not acted on')).toMatchObject({
      reason: 'expired',
      kind: 'SHORT_TERM',
    });
  });
});

describe('leak handler: batches', () => {
  it('ignores a CONTROL_MESSAGE', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(
      subscriptionEvent(
        [{ id: 'c', message: 'CWL CONTROL MESSAGE: Checking health of destination Lambda.' }],
        'CONTROL_MESSAGE',
      ),
    );

    // Assess
    expect(result).toEqual({ status: 'ignored', reason: 'control-message' });
    expect(iam.calls().length + sns.calls().length + cloudtrail.calls().length).toBe(0);
  });

  it('records nothing twice and sends no second notice when the same batch is delivered again', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active')] });
    const handler = createLeakHandler(rt);
    const event = subscriptionEvent([
      { id: LINE_ID, message: LONG },
      { id: `${LINE_ID}1`, message: SHORT },
    ]);
    await handler(event);
    // IAM now shows the key as deactivated
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Inactive')] });

    // Act
    const again = await handler(event);

    // Assess
    expect(again).toMatchObject({ findings: [{ outcome: 'duplicate' }, { outcome: 'duplicate' }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 2);
    expect(cloudtrail).toHaveReceivedCommandTimes(LookupEventsCommand, 1);
    // Two decisions, each with its chain link (lambda/domain/audit-chain.ts).
    const items = await scanAll(db, rt.decisionsTable);
    expect(items.filter((i) => !String(i.pk).startsWith('chain#'))).toHaveLength(2);
    expect(items.filter((i) => String(i.pk).startsWith('chain#'))).toHaveLength(2);
  });

  it('rejects a payload that is not a subscription event, naming only paths', async () => {
    // Prepare
    const rt = await freshRuntime('enforce');
    const handler = createLeakHandler(rt);
    const notGzip = { awslogs: { data: Buffer.from(LONG).toString('base64') } };

    // Act + Assess
    await expect(handler({ detail: LONG })).rejects.toThrow(InvalidLogEventError);
    await expect(handler(notGzip)).rejects.toThrow('awslogs.data is not base64 of gzipped JSON');
    expect(leakedFragments(out.text(), PLANTED)).toEqual([]);
  });

  it('never writes any fragment of a planted key to logs, metrics, notices, IAM/CloudTrail calls, tables or results', async () => {
    // Prepare: every kind in one batch, in enforce mode (the most side effects)
    const rt = await freshRuntime('enforce');
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active')] });
    cloudtrail.on(LookupEventsCommand).resolves({
      Events: [
        { CloudTrailEvent: JSON.stringify({ userIdentity: { arn: ROLE_SESSION, accessKeyId: AKID } }) },
      ],
    });
    const handler = createLeakHandler(rt);
    const results: LeakResult[] = [];

    // Act
    results.push(
      await handler(
        subscriptionEvent([
          { id: 'l-1', message: `{"level":"debug","headers":{"authorization":"Bearer ${SHORT}"}}` },
          { id: 'l-2', message: `export AWS_BEARER_TOKEN_BEDROCK=${LONG}\nexport OTHER=${FOREIGN}` },
        ]),
      ),
    );
    const expiredRt = { ...rt, now: () => new Date('2026-11-22T00:00:00Z') };
    results.push(await createLeakHandler(expiredRt)(subscriptionEvent([{ id: 'l-3', message: SHORT }])));

    // Assess: the findings were acted on...
    expect(results[0]).toMatchObject({
      findings: [{ outcome: 'notified' }, { outcome: 'deactivated' }, { outcome: 'foreign-account' }],
    });
    // ...and nothing anywhere holds a piece of a key
    expect(leakedFragments(await everythingWritten(rt, results), PLANTED)).toEqual([]);
  });
});

describe('leak handler: usage tracking', () => {
  it('warns at creation when usage.regions is set but no usage source is given (UNUSED is then not evaluated)', async () => {
    // Prepare
    const rt = await freshRuntime('audit');
    const tracked = parseConfig({ ...rt.config, usage: { regions: ['us-east-1'] } });
    // Act
    createLeakHandler({ ...rt, config: tracked });
    createLeakHandler(rt);
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

describe('leak handler: the signer lookup never fails the batch (issue 11 item 12)', () => {
  /** A live short-term key (signed 09:31:02Z for 1 h) naming `region`, with its own access key id. */
  function shortTermIn(region: string): string {
    return handBuiltShortTermKey({
      credential: `AKIAI44QH8DHBEXAMPLE/20261120/${region}/bedrock/aws4_request`,
    });
  }

  /** A batch holding that short-term key and the user's real long-term key (the only key of its user). */
  function mixedBatch(short: string) {
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [bedrockKey(KEY_A, 'Active')] });
    return subscriptionEvent([
      { id: 'e-short', message: `Authorization: Bearer ${short}` },
      { id: LINE_ID, message: `DEBUG client config {"apiKey":"${LONG}"}` },
    ]);
  }

  function findingsOf(result: LeakResult): unknown[] {
    expect(result.status).toBe('scanned');
    return result.status === 'scanned' ? result.findings : [];
  }

  function lookupWarning(): Record<string, unknown> | undefined {
    return out.lines().find((l) => l.message === 'short-term key signer not looked up everywhere');
  }

  it('a forged region (zz-fake-1): no CloudTrail client or call for it, us-east-1 searched, the real leak decided', async () => {
    // Prepare: Bedrock rejects the forged short-term string, accepts the long-term key
    verifier = new (class extends FakeVerifier {
      override async verify(c: KeyCandidate): Promise<LeakVerification> {
        const v = await super.verify(c);
        return c.kind === 'SHORT_TERM' ? { ...v, result: 'REJECTED' } : v;
      }
    })();
    const asked: string[] = [];
    const rt: LeakRuntime = {
      ...(await freshRuntime('enforce')),
      cloudTrailFor: (region) => {
        asked.push(region);
        return new CloudTrailClient({ region });
      },
    };
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(mixedBatch(shortTermIn('zz-fake-1')));

    // Assess
    expect(asked).toEqual(['us-east-1']);
    expect(cloudtrail).toHaveReceivedCommandTimes(LookupEventsCommand, 1);
    expect(findingsOf(result)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'LONG_TERM', outcome: 'deactivated', keyIds: [KEY_A] }),
        expect.objectContaining({
          kind: 'SHORT_TERM',
          outcome: 'rejected',
          keyIds: ['AKIAI44QH8DHBEXAMPLE'],
        }),
      ]),
    );
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      ServiceSpecificCredentialId: KEY_A,
      Status: 'Inactive',
    });
    expect(lookupWarning()).toMatchObject({
      level: 'WARN',
      accessKeyId: 'AKIAI44QH8DHBEXAMPLE',
      region: 'zz-fake-1',
      reason: 'zz-fake-1: not a known AWS commercial region, not called',
    });
    const [d] = await decisionsOf(rt, 'AKIAI44QH8DHBEXAMPLE');
    expect(d?.leak?.issuer).toBeNull();
    expect(d?.leak?.issuerUnknownReason).toBe('zz-fake-1: not a known AWS commercial region, not called');
    expect(out.text()).toContain('"IssuerLookupsFailed"');
  });

  it('an opt-in region the account has not enabled (UnrecognizedClientException): signer unknown with the reason, the batch decided', async () => {
    // Prepare: every LookupEvents call fails as a disabled region answers
    const rt = await freshRuntime('enforce');
    cloudtrail.on(LookupEventsCommand).callsFake(async (input: { LookupAttributes?: unknown }) => {
      expect(input.LookupAttributes).toBeDefined();
      throw new CloudTrailServiceException({
        name: 'UnrecognizedClientException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'The security token included in the request is invalid.',
      });
    });
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(mixedBatch(shortTermIn('ap-southeast-7')));

    // Assess
    expect(cloudtrail).toHaveReceivedCommandTimes(LookupEventsCommand, 2);
    expect(findingsOf(result)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'LONG_TERM', outcome: 'deactivated', keyIds: [KEY_A] }),
        expect.objectContaining({
          kind: 'SHORT_TERM',
          outcome: 'notified',
          keyIds: ['AKIAI44QH8DHBEXAMPLE'],
        }),
      ]),
    );
    expect(lookupWarning()?.reason).toBe(
      'ap-southeast-7: credentials not accepted in this region: an opt-in region the account has not enabled? (UnrecognizedClientException); ' +
        'us-east-1: credentials not accepted in this region: an opt-in region the account has not enabled? (UnrecognizedClientException)',
    );
    const shortNotice = publishedMessages().find((m) => m.message.includes('AKIAI44QH8DHBEXAMPLE'));
    expect(shortNotice?.owner).toBe('security@example.com');
    expect(shortNotice?.message).toContain(
      'Signed by: unknown (not found in CloudTrail event history; not searched everywhere: ap-southeast-7: credentials not accepted',
    );
  });

  it('a LookupEvents call that hangs times out: signer unknown, the batch decided within the timeouts', async () => {
    // Prepare
    const rt: LeakRuntime = { ...(await freshRuntime('enforce')), issuerLookupTimeoutMs: 20 };
    cloudtrail.on(LookupEventsCommand).callsFake(() => new Promise(() => {}));
    const handler = createLeakHandler(rt);
    const started = Date.now();

    // Act
    const result = await handler(mixedBatch(shortTermIn('eu-west-1')));

    // Assess
    expect(Date.now() - started).toBeLessThan(5000);
    expect(findingsOf(result)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'LONG_TERM', outcome: 'deactivated', keyIds: [KEY_A] }),
        expect.objectContaining({
          kind: 'SHORT_TERM',
          outcome: 'notified',
          keyIds: ['AKIAI44QH8DHBEXAMPLE'],
        }),
      ]),
    );
    expect(lookupWarning()?.reason).toBe(
      'eu-west-1: timed out after 20 ms; us-east-1: timed out after 20 ms',
    );
    const [d] = await decisionsOf(rt, 'AKIAI44QH8DHBEXAMPLE');
    expect(d?.leak?.issuer).toBeNull();
    expect(d?.leak?.issuerUnknownReason).toBe(
      'eu-west-1: timed out after 20 ms; us-east-1: timed out after 20 ms',
    );
  });
});
