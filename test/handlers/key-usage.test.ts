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
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { DynamoUsageStore } from '../../lambda/adapters/usage-store';
import { NEXT_DIGEST } from '../../lambda/domain/owner-digest';
import { EMPTY_HISTORY } from '../../lambda/domain/types';
import {
  createKeyUsageHandler,
  InvalidSqsEventError,
  type KeyUsageResult,
  type KeyUsageRuntime,
} from '../../lambda/handlers/key-usage-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { ACCOUNT } from '../support/events';
import { answerPlainUser } from '../support/iam-facts';
import { fakeLongTermKey, leakedFragments } from '../support/secrets';

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const TOPIC = `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`;
const FIXTURES = join(__dirname, '..', 'fixtures', 'cloudtrail');
const USER = 'svc-chatbot';
const KEY_A = 'ACCAEXAMPLEUSAGEKEY01';
const KEY_B = 'ACCAEXAMPLEUSAGEKEY02';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/ChatbotRuntime`;
const NOW = new Date('2026-11-20T12:00:00Z');

let db: EmbeddedDynamo;
let out: Capture;
let table = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => db.close());

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

async function freshRuntime(
  over: { mode?: 'audit' | 'enforce'; allowLongTermKeys?: boolean; usageTable?: string } = {},
): Promise<KeyUsageRuntime> {
  table += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-usage-${table}`,
    keysTable: `${TABLES.keysTable}-usage-${table}`,
    idempotencyTable: `${TABLES.idempotencyTable}-usage-${table}`,
    approvalsTable: `${TABLES.approvalsTable}-usage-${table}`,
    usageTable: `${TABLES.usageTable}-usage-${table}`,
  };
  await createTestTables(db, names);
  const config = parseConfig({
    mode: over.mode ?? 'audit',
    fallbackOwner: 'security@example.com',
    allowLongTermKeys: over.allowLongTermKeys ?? true,
    usage: { regions: ['us-east-1', 'eu-central-1', 'us-west-2'] },
  });
  return {
    config,
    policyVersion: policyVersion(config),
    decisionsTable: names.decisionsTable,
    keysTable: names.keysTable,
    approvalsTable: names.approvalsTable,
    usageTable: over.usageTable ?? names.usageTable,
    topicArn: TOPIC,
    governedAccountId: ACCOUNT,
    iamFor: () => new IAMClient({ region: 'us-east-1' }),
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-key-usage' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-key-usage' }),
    now: () => NOW,
  };
}

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Record<string, unknown>;
}

const RUNTIME = 'bedrock-invoke-model-bearer-token.json';
const DENIED = 'bedrock-invoke-model-bearer-token-denied.json';
const SESSION = 'bedrock-converse-stream-short-term-assumed-role.json';
const MANTLE = 'bedrock-mantle-chat-completion-absk.json';

/** A CloudTrail record from a fixture, with a new event id and the given time. */
function recordOf(name: string, eventTime: string, change: (r: Record<string, unknown>) => void = () => {}) {
  const r = { ...fixture(name), eventID: randomUUID(), eventTime };
  change(r);
  return r;
}

/** One SQS message whose body is the EventBridge event the usage rule forwards. */
function message(detail: Record<string, unknown>): { messageId: string; body: string } {
  const envelope = {
    version: '0',
    id: randomUUID(),
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.bedrock',
    account: (detail.recipientAccountId as string | undefined) ?? ACCOUNT,
    time: detail.eventTime,
    region: detail.awsRegion,
    resources: [],
    detail,
  };
  return { messageId: randomUUID(), body: JSON.stringify(envelope) };
}

function sqsEvent(messages: Array<{ messageId: string; body: string }>) {
  return {
    Records: messages.map((m) => ({
      ...m,
      receiptHandle: `rh-${m.messageId}`,
      attributes: { ApproximateReceiveCount: '1' },
      messageAttributes: {},
      md5OfBody: 'x',
      eventSource: 'aws:sqs',
      eventSourceARN: `arn:aws:sqs:us-east-1:${ACCOUNT}:keyguard-usage`,
      awsRegion: 'us-east-1',
    })),
  };
}

function listKeys(...keys: Array<{ id: string; status: 'Active' | 'Inactive' }>): void {
  iam.on(ListServiceSpecificCredentialsCommand).resolves({
    ServiceSpecificCredentials: keys.map((k) => ({
      UserName: USER,
      Status: k.status,
      CreateDate: new Date('2026-10-01T00:00:00Z'),
      ServiceSpecificCredentialId: k.id,
      ServiceName: 'bedrock.amazonaws.com',
    })),
  });
}

/** The keys table remembers the key as deactivated by keyguard (what the pipeline writes when it deactivates). */
async function rememberDeactivated(
  rt: KeyUsageRuntime,
  keyId: string,
  lastDecisionId = '2026-11-19T08:00:00.000Z/event/e-deactivate',
): Promise<void> {
  await new DynamoAuditLog(db.doc, rt).putKnownKey({
    accountId: ACCOUNT,
    keyId,
    userName: USER,
    status: 'Inactive',
    createdAt: '2026-10-01T00:00:00.000Z',
    expiresAt: null,
    creator: null,
    owner: 'team-chat@example.com',
    lastDecisionId,
    lastDecisionAt: lastDecisionId.slice(0, 24),
    violationCodes: ['NEVER_EXPIRES'],
    lastAction: 'DEACTIVATE',
    history: { ...EMPTY_HISTORY, deactivatedByUs: true },
  });
}

/** The usage items of subjects (keys, users, principals): the account's tracking start is read separately. */
async function usageItems(rt: KeyUsageRuntime): Promise<Record<string, unknown>[]> {
  return (await scanAll(db, rt.usageTable)).filter((i) => i.subject !== 'meta#tracking');
}

async function trackingSince(rt: KeyUsageRuntime): Promise<string | null> {
  return new DynamoUsageStore(db.doc, rt.usageTable).trackingSince(ACCOUNT);
}

describe('key-usage handler: recording use', () => {
  it('500 calls of one key in a batch make one store item with calls 500, and no decision', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Active' });
    const messages = Array.from({ length: 500 }, (_, i) =>
      message(
        recordOf(RUNTIME, new Date(Date.UTC(2026, 10, 20, 10, 0, 0, i * 100)).toISOString(), (r) => {
          r.awsRegion = i % 2 === 0 ? 'eu-central-1' : 'us-east-1';
        }),
      ),
    );

    // Act
    const result = await createKeyUsageHandler(rt)(sqsEvent(messages));

    // Assess
    expect(result).toMatchObject({ messages: 500, uses: 500, subjects: 1, decisions: [], skipped: {} });
    const items = await usageItems(rt);
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      accountId: ACCOUNT,
      subject: `key#${KEY_A}`,
      keyId: KEY_A,
      userName: USER,
      keyType: 'LONG_TERM',
      calls: 500,
      failedCalls: 0,
      firstUsedAt: '2026-11-20T10:00:00.000Z',
      lastUsedAt: '2026-11-20T10:00:49.900Z',
      lastSourceIp: '192.0.2.145',
    });
    expect([...((items[0]?.regions as Set<string> | undefined) ?? [])].sort()).toEqual([
      'eu-central-1',
      'us-east-1',
    ]);
    // The account's first recorded use starts usage tracking (UNUSED is measured from it)
    expect(await trackingSince(rt)).toBe('2026-11-20T10:00:00.000Z');
    expect(iam).toHaveReceivedCommandTimes(ListServiceSpecificCredentialsCommand, 1);
    expect(await scanAll(db, rt.decisionsTable)).toEqual([]);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    expect(out.text()).toContain('"BearerTokenCalls"');
  });

  it('a later batch adds to the same item, and the sweep’s read sees the latest use', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Active' });
    const handler = createKeyUsageHandler(rt);
    await handler(sqsEvent([message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'))]));

    // Act
    await handler(sqsEvent([message(recordOf(MANTLE, '2026-11-20T11:00:00Z'))]));

    // Assess
    const store = new DynamoUsageStore(db.doc, rt.usageTable);
    expect(await store.getUsage(ACCOUNT, { kind: 'key', keyId: KEY_A, userName: USER })).toMatchObject({
      calls: 2,
      lastUsedAt: '2026-11-20T11:00:00.000Z',
      regions: ['eu-central-1', 'us-east-1'],
      models: ['eu.anthropic.claude-3-7-sonnet-20250219-v1:0', 'openai.gpt-oss-120b-1:0'],
    });
    expect((await store.lastUsedFor(ACCOUNT, [{ keyId: KEY_A, userName: USER }])).get(KEY_A)).toBe(
      '2026-11-20T11:00:00.000Z',
    );
  });

  it('a user with two Active keys: the use is recorded for the user, unattributed', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Active' }, { id: KEY_B, status: 'Active' });

    // Act
    await createKeyUsageHandler(rt)(sqsEvent([message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'))]));

    // Assess
    const items = await usageItems(rt);
    expect(items.map((i) => i.subject)).toEqual([`user#${USER}`]);
  });

  it('short-term use by an assumed role is recorded per role, with no IAM call', async () => {
    // Prepare
    const rt = await freshRuntime({ allowLongTermKeys: false });

    // Act
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([
        message(recordOf(SESSION, '2026-11-20T10:00:00Z')),
        message(recordOf(SESSION, '2026-11-20T10:05:00Z')),
      ]),
    );

    // Assess
    expect(result).toMatchObject({ uses: 2, subjects: 1, decisions: [] });
    const items = await usageItems(rt);
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      subject: `principal#${ROLE}`,
      principalArn: ROLE,
      keyType: 'SHORT_TERM',
      calls: 2,
      lastUsedAt: '2026-11-20T10:05:00.000Z',
    });
    expect(iam.calls()).toHaveLength(0);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });

  it('skips SigV4 calls, other services and foreign accounts (counted), and records the rest', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Active' });
    const foreign = recordOf(RUNTIME, '2026-11-20T10:00:00Z', (r) => {
      r.recipientAccountId = '444455556666';
      (r.userIdentity as Record<string, unknown>).accountId = '444455556666';
    });

    // Act
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([
        message(recordOf('bedrock-invoke-model-sigv4.json', '2026-11-20T10:00:00Z')),
        message(recordOf('bedrock-mantle-list-models-sigv4.json', '2026-11-20T10:00:00Z')),
        message(fixture('create-role.json')),
        message(foreign),
        message(recordOf(RUNTIME, '2026-11-20T10:00:00Z')),
      ]),
    );

    // Assess
    expect(result).toMatchObject({
      messages: 5,
      uses: 1,
      skipped: { 'not-bearer-token': 2, 'not-bedrock': 1, 'foreign-account': 1 },
    });
    const items = await usageItems(rt);
    expect(items.map((i) => [i.accountId, i.subject])).toEqual([[ACCOUNT, `key#${KEY_A}`]]);
    expect(out.text()).toContain('"SkippedUsageRecords"');
  });

  it('skips a call dated 9999-12-31 (warned, counted): the key\u2019s last use does not move there for ever', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Active' });
    const forged = recordOf(RUNTIME, '9999-12-31T00:00:00Z');

    // Act
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([message(forged), message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'))]),
    );

    // Assess
    expect(result).toMatchObject({ uses: 1, skipped: { 'future-event': 1 } });
    const items = await usageItems(rt);
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ calls: 1, lastUsedAt: '2026-11-20T10:00:00.000Z' });
    expect(
      out
        .lines()
        .some(
          (l) =>
            l.level === 'WARN' &&
            l.eventId === forged.eventID &&
            String(l.detail).startsWith(
              'eventTime 9999-12-31T00:00:00.000Z is after 2026-11-21T12:00:00.000Z',
            ),
        ),
    ).toBe(true);
  });

  it.each([['my.app'], ['aws.iam'], ['aws.bedrockx']])(
    'an event whose source is not a Bedrock service source (%j: put by a custom rule or PutEvents) is not counted',
    async (source) => {
      // Prepare: a well-formed bearer-token call of the governed account, in an envelope a user wrote
      const rt = await freshRuntime();
      listKeys({ id: KEY_A, status: 'Active' });
      const m = message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'));
      const body = { ...(JSON.parse(m.body) as Record<string, unknown>), source };

      // Act
      const result = await createKeyUsageHandler(rt)(sqsEvent([{ ...m, body: JSON.stringify(body) }]));

      // Assess: skipped and counted, nothing recorded, IAM not asked
      expect(result).toMatchObject({ uses: 0, skipped: { 'not-aws-source': 1 } });
      expect(await usageItems(rt)).toHaveLength(0);
      expect(iam.calls()).toHaveLength(0);
    },
  );

  it('events of both Bedrock sources (aws.bedrock, aws.bedrock-mantle) are counted', async () => {
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Active' });
    const a = message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'));
    const b = message(recordOf(RUNTIME, '2026-11-20T10:01:00Z'));
    const mantle = { ...(JSON.parse(b.body) as Record<string, unknown>), source: 'aws.bedrock-mantle' };

    const result = await createKeyUsageHandler(rt)(sqsEvent([a, { ...b, body: JSON.stringify(mantle) }]));

    expect(result).toMatchObject({ uses: 2 });
  });

  it('a call without recipientAccountId forwarded from a foreign bus is foreign, whatever account its caller claims', async () => {
    // Prepare: the caller names the governed account; the envelope is another account's
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Active' });
    const detail = recordOf(RUNTIME, '2026-11-20T10:00:00Z', (r) => {
      delete r.recipientAccountId;
      (r.userIdentity as Record<string, unknown>).accountId = ACCOUNT;
    });
    const m = message(detail);
    const body = { ...(JSON.parse(m.body) as Record<string, unknown>), account: '999988887777' };

    // Act
    const result = await createKeyUsageHandler(rt)(sqsEvent([{ ...m, body: JSON.stringify(body) }]));

    // Assess
    expect(result).toMatchObject({ uses: 0, skipped: { 'foreign-account': 1 } });
    expect(await usageItems(rt)).toHaveLength(0);
    expect(iam.calls()).toHaveLength(0);
  });

  it('logs a message that is not an event by messageId and skips it: the rest of the batch is recorded', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Active' });
    const notJson = { messageId: 'poison-1', body: 'not json {' };
    const notEvent = { messageId: 'poison-2', body: JSON.stringify({ hello: 'world' }) };

    // Act
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([notJson, notEvent, message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'))]),
    );

    // Assess
    expect(result).toMatchObject({ uses: 1, skipped: { 'not-an-event': 2 } });
    const errors = out.lines().filter((l) => l.level === 'ERROR');
    expect(errors.map((l) => l.messageId)).toEqual(['poison-1', 'poison-2']);
    expect(out.text()).not.toContain('hello');
    expect(await usageItems(rt)).toHaveLength(1);
  });
});

describe('key-usage handler: long-term keys not allowed', () => {
  it('audit mode: one LONG_TERM_NOT_ALLOWED decision, no IAM change; a second batch records nothing', async () => {
    // Prepare
    const rt = await freshRuntime({ allowLongTermKeys: false });
    listKeys({ id: KEY_A, status: 'Active' });
    const handler = createKeyUsageHandler(rt);
    const first = recordOf(RUNTIME, '2026-11-20T10:00:00Z');

    // Act
    const r1 = await handler(sqsEvent([message(recordOf(RUNTIME, '2026-11-20T09:59:00Z')), message(first)]));
    const r2 = await handler(sqsEvent([message(recordOf(RUNTIME, '2026-11-20T11:00:00Z'))]));

    // Assess
    expect(r1.decisions).toEqual([
      expect.objectContaining({
        keyId: KEY_A,
        cause: 'long-term-not-allowed',
        action: 'DEACTIVATE',
        applied: false,
        recorded: true,
        violations: expect.arrayContaining(['LONG_TERM_NOT_ALLOWED']),
      }),
    ]);
    expect(r2.decisions.filter((d) => d.recorded)).toEqual([]);
    const decisions = await new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY_A);
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({
      decisionId: `2026-11-20T10:00:00.000Z/usage/${first.eventID}`,
      trigger: {
        kind: 'usage',
        eventId: first.eventID,
        eventName: 'InvokeModel',
        eventTime: '2026-11-20T10:00:00.000Z',
      },
      mode: 'audit',
      notice: 'action',
    });
    expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
    // Not a critical event: the notice waits for the owner's next digest, once.
    expect(decisions[0]?.noticeDigest).toBe(NEXT_DIGEST);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    expect((await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY_A))?.pendingNotice).toMatchObject({
      digest: NEXT_DIGEST,
      decisionId: decisions[0]?.decisionId,
      kind: 'action',
    });
    // Usage is still recorded for both batches.
    expect((await usageItems(rt))[0]).toMatchObject({ calls: 3 });
  });

  it('enforce mode deactivates the key (UpdateServiceSpecificCredential Inactive)', async () => {
    // Prepare
    const rt = await freshRuntime({ mode: 'enforce', allowLongTermKeys: false });
    listKeys({ id: KEY_A, status: 'Active' });

    // Act
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([message(recordOf(MANTLE, '2026-11-20T10:00:00Z'))]),
    );

    // Assess
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      UserName: USER,
      ServiceSpecificCredentialId: KEY_A,
      Status: 'Inactive',
    });
    expect(result.decisions).toEqual([
      expect.objectContaining({
        keyId: KEY_A,
        action: 'DEACTIVATE',
        applied: true,
        cause: 'long-term-not-allowed',
      }),
    ]);
  });

  it('an unattributed use (two Active keys) decides each of the user’s keys', async () => {
    // Prepare
    const rt = await freshRuntime({ allowLongTermKeys: false });
    listKeys({ id: KEY_A, status: 'Active' }, { id: KEY_B, status: 'Active' });

    // Act
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'))]),
    );

    // Assess
    expect(result.decisions.map((d) => d.keyId).sort()).toEqual([KEY_A, KEY_B]);
  });

  it('allowed long-term keys: use decides nothing', async () => {
    // Prepare
    const rt = await freshRuntime({ allowLongTermKeys: true, mode: 'enforce' });
    listKeys({ id: KEY_A, status: 'Active' });

    // Act
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'))]),
    );

    // Assess
    expect(result.decisions).toEqual([]);
    expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
  });
});

describe('key-usage handler: a deactivated key still in use', () => {
  it('one decision and one notice per key per UTC day (for the owner’s digest), naming region, source IP and user agent', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Inactive' });
    await rememberDeactivated(rt, KEY_A);
    const handler = createKeyUsageHandler(rt);
    const first = [recordOf(DENIED, '2026-11-20T07:00:00Z'), recordOf(DENIED, '2026-11-20T07:03:29Z')];
    const firstBatch = sqsEvent(first.map((r) => message(r)));
    const nextDay = recordOf(DENIED, '2026-11-21T01:00:00Z');

    // Act
    const r1 = await handler(firstBatch);
    const r2 = await handler(sqsEvent([message(recordOf(DENIED, '2026-11-20T15:00:00Z'))]));
    const redelivered = await handler(firstBatch);
    const r3 = await handler(sqsEvent([message(nextDay)]));

    // Assess: the decision id is the latest attempt's (time-ordered), one per day whatever the batches
    expect(r1.decisions).toEqual([
      expect.objectContaining({
        keyId: KEY_A,
        cause: 'deactivated-key-in-use',
        recorded: true,
        notified: false,
      }),
    ]);
    expect(r2.decisions).toEqual([]);
    expect(redelivered.decisions).toEqual([]);
    expect(r3.decisions).toEqual([expect.objectContaining({ recorded: true, notified: false })]);
    const decisions = await new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY_A);
    expect(decisions.map((d) => d.decisionId)).toEqual([
      `2026-11-20T07:03:29.000Z/usage/${first[1]?.eventID}`,
      `2026-11-21T01:00:00.000Z/usage/${nextDay.eventID}`,
    ]);
    const d = decisions[0];
    expect(d).toMatchObject({
      status: 'Inactive',
      action: 'ALLOW',
      trigger: { kind: 'usage', eventName: 'InvokeModel' },
    });
    expect(d?.reason).toContain('eu-central-1');
    expect(d?.reason).toContain('192.0.2.145');
    expect(d?.reason).toContain('Boto3/1.39.4');
    expect(d?.reason).toContain('2 call(s) on 2026-11-20 (all failed)');
    // Not a critical event: each day's notice waits for the owner's next digest (the later one replaces the earlier).
    expect(decisions.map((x) => x.noticeDigest)).toEqual([NEXT_DIGEST, NEXT_DIGEST]);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY_A);
    expect(known?.pendingNotice).toMatchObject({ digest: NEXT_DIGEST, decisionId: decisions[1]?.decisionId });
    expect(known?.history?.inUseAlertDay).toBe('2026-11-21');
    expect(known?.lastDecisionId).toBe(decisions[1]?.decisionId);
    // Counts are at-least-once: the redelivered batch is counted again
    expect((await usageItems(rt))[0]).toMatchObject({ calls: 6, failedCalls: 6 });
  });

  it('an alert older than the key’s last decision never moves lastDecisionId back, and its notice is marked for the digest once', async () => {
    // Prepare: the key's last decision (a sweep at noon) is later than the uses the batch reports
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Inactive' });
    const sweepDecision = '2026-11-20T12:00:00.000Z/sweep/s-1';
    await rememberDeactivated(rt, KEY_A, sweepDecision);
    const handler = createKeyUsageHandler(rt);
    const batch = sqsEvent([message(recordOf(DENIED, '2026-11-20T07:00:00Z'))]);

    // Act: the batch, then redelivered twice
    const first = await handler(batch);
    const again = [await handler(batch), await handler(batch)];

    // Assess: one decision, its notice held for the digest (not published), the key's last decision still the sweep
    expect(first.decisions).toEqual([
      expect.objectContaining({ cause: 'deactivated-key-in-use', recorded: true, notified: false }),
    ]);
    expect(again.map((r) => r.decisions)).toEqual([[], []]);
    const decisions = await new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY_A);
    expect(decisions).toHaveLength(1);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    const known = await new DynamoAuditLog(db.doc, rt).getKnownKey(ACCOUNT, KEY_A);
    expect(known?.pendingNotice).toMatchObject({ digest: NEXT_DIGEST, decisionId: decisions[0]?.decisionId });
    expect(known?.lastDecisionId).toBe(sweepDecision);
    expect(known?.history?.inUseAlertDay).toBe('2026-11-20');
  });

  it('a refused call credited to the user’s Active key flags the sibling keyguard deactivated', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Inactive' }, { id: KEY_B, status: 'Active' });
    await rememberDeactivated(rt, KEY_A);

    // Act
    const result = await createKeyUsageHandler(rt)(
      sqsEvent([message(recordOf(DENIED, '2026-11-20T07:00:00Z'))]),
    );

    // Assess
    expect((await usageItems(rt)).map((i) => i.subject)).toEqual([`key#${KEY_B}`]);
    expect(result.decisions).toEqual([
      expect.objectContaining({ keyId: KEY_A, cause: 'deactivated-key-in-use', recorded: true }),
    ]);
  });

  it('a throttled call is not a refusal: the deactivated sibling is not flagged', async () => {
    // Prepare
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Inactive' }, { id: KEY_B, status: 'Active' });
    await rememberDeactivated(rt, KEY_A);
    const throttled = recordOf(DENIED, '2026-11-20T07:00:00Z', (r) => {
      r.errorCode = 'ThrottlingException';
    });

    // Act
    const result = await createKeyUsageHandler(rt)(sqsEvent([message(throttled)]));

    // Assess
    expect(result.decisions).toEqual([]);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });

  it('a successful call means the key works again: REACTIVATED_WITHOUT_APPROVAL, deactivated in enforce mode', async () => {
    // Prepare
    const rt = await freshRuntime({ mode: 'enforce' });
    listKeys({ id: KEY_A, status: 'Active' });
    await rememberDeactivated(rt, KEY_A);
    const use = recordOf(RUNTIME, '2026-11-20T10:00:00Z');

    // Act
    const result = await createKeyUsageHandler(rt)(sqsEvent([message(use)]));

    // Assess
    expect(result.decisions).toEqual([
      expect.objectContaining({
        decisionId: `2026-11-20T10:00:00.000Z/usage/${use.eventID}`,
        cause: 'reactivated-key-in-use',
        action: 'DEACTIVATE',
        applied: true,
        violations: expect.arrayContaining(['REACTIVATED_WITHOUT_APPROVAL']),
      }),
    ]);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      ServiceSpecificCredentialId: KEY_A,
      Status: 'Inactive',
    });
  });
});

describe('key-usage handler: failures', () => {
  it('rethrows a store failure so that the batch is retried', async () => {
    // Prepare
    const rt = await freshRuntime({ usageTable: 'no-such-usage-table' });
    listKeys({ id: KEY_A, status: 'Active' });

    // Act / Assess
    await expect(
      createKeyUsageHandler(rt)(sqsEvent([message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'))])),
    ).rejects.toThrow(/not found/i);
    expect(
      out.lines().some((l) => l.level === 'ERROR' && String(l.message).includes('usage batch failed')),
    ).toBe(true);
  });

  it('rethrows an IAM failure', async () => {
    // Prepare
    const rt = await freshRuntime();
    iam.on(ListServiceSpecificCredentialsCommand).rejects(new Error('Rate exceeded'));

    // Act / Assess
    await expect(
      createKeyUsageHandler(rt)(sqsEvent([message(recordOf(RUNTIME, '2026-11-20T10:00:00Z'))])),
    ).rejects.toThrow('Rate exceeded');
  });

  it('rejects an invocation that is not an SQS batch', async () => {
    // Prepare
    const rt = await freshRuntime();

    // Act / Assess
    await expect(createKeyUsageHandler(rt)({ detail: {} })).rejects.toBeInstanceOf(InvalidSqsEventError);
  });
});

describe('key-usage handler: no key material', () => {
  it('writes no fragment of a key planted in a user agent or a poison message to logs, store, notices or results', async () => {
    // Prepare
    const planted = fakeLongTermKey('key-usage-handler');
    const rt = await freshRuntime();
    listKeys({ id: KEY_A, status: 'Inactive' });
    await rememberDeactivated(rt, KEY_A);
    const withKey = recordOf(DENIED, '2026-11-20T07:00:00Z', (r) => {
      r.userAgent = `curl/8.5.0 Authorization: Bearer ${planted}`;
    });
    const results: KeyUsageResult[] = [];

    // Act
    results.push(
      await createKeyUsageHandler(rt)(
        sqsEvent([message(withKey), { messageId: 'poison', body: `{"apiKey":"${planted}"` }]),
      ),
    );

    // Assess
    const written = [
      out.text(),
      JSON.stringify(sns.commandCalls(PublishCommand).map((c) => c.args[0].input)),
      JSON.stringify(iam.calls().map((c) => c.args[0].input)),
      JSON.stringify(await scanAll(db, rt.decisionsTable)),
      JSON.stringify(await scanAll(db, rt.keysTable)),
      JSON.stringify(await usageItems(rt), (_k, v: unknown) => (v instanceof Set ? [...v] : v)),
      JSON.stringify(results),
    ].join('\n');
    expect(results[0]?.decisions).toHaveLength(1);
    expect(leakedFragments(written, [planted])).toEqual([]);
  });
});
