import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { ChangeMessageVisibilityCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import { type EmbeddedDynamo, ensureTables } from '../../lambda/adapters/embedded-dynamodb';
import { MemberAccess } from '../../lambda/adapters/member-access';
import { DynamoSweepStateStore, sweepStateTableDefinition } from '../../lambda/adapters/sweep-state';
import { DAY_MS } from '../../lambda/domain/dates';
import {
  createQueueSweepHandler,
  FAILED_ACCOUNT_RETRY_SECONDS,
  type SweepMessage,
} from '../../lambda/handlers/sweep-queue-handler';
import {
  type ConfigInput,
  type OrgSettings,
  orgSettings,
  parseConfig,
  policyVersion,
} from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, startTestDynamo, TABLES } from '../support/dynamo';
import { FakeIamAccount } from '../support/fake-iam-account';

const HUB = '111122223333';
const MEMBER_A = '222233334444';
const MEMBER_DENIED = '333344445555';
const TOPIC = `arn:aws:sns:us-east-1:${HUB}:keyguard-owner-notices`;
const QUEUE = `https://sqs.us-east-1.amazonaws.com/${HUB}/sweep`;
const T0 = Date.parse('2026-11-20T10:00:00Z');
const ROUND = new Date(T0 - 60_000).toISOString();
const iso = (ms: number) => new Date(ms).toISOString();

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const sqs = mockClient(SQSClient);
const sts = mockClient(STSClient);

let db: EmbeddedDynamo;
let out: Capture;
let n = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});
beforeEach(() => {
  iam.reset();
  sns.reset();
  sqs.reset();
  sts.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  sqs.on(SendMessageCommand).resolves({ MessageId: 'q-1' });
  sqs.on(ChangeMessageVisibilityCommand).resolves({});
  out = captureOutput();
});
afterEach(() => out.restore());

const IAM_COMMANDS = [
  ListServiceSpecificCredentialsCommand,
  GetAccountAuthorizationDetailsCommand,
  GenerateCredentialReportCommand,
  GetCredentialReportCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
] as const;
type IamCommand = (typeof IAM_COMMANDS)[number];

/**
 * Several fake IAM accounts behind one IAM mock: each call is answered by the account whose credentials the client
 * signs with (STS hands member A `ASIA<account>`; the hub's own client signs as `HUB<account>`).
 */
function installAccounts(fakes: Map<string, FakeIamAccount>): void {
  const handlers = new Map<string, Map<IamCommand, (input: unknown) => unknown>>();
  for (const [account, fake] of fakes) {
    const table = new Map<IamCommand, (input: unknown) => unknown>();
    handlers.set(account, table);
    const shim = {
      on: (cmd: IamCommand) => {
        const behaviour = {
          callsFake: (fn: (input: unknown) => unknown) => {
            table.set(cmd, fn);
            return behaviour;
          },
          resolves: (value: unknown) => {
            table.set(cmd, () => value);
            return behaviour;
          },
        };
        return behaviour;
      },
    };
    fake.install(shim as unknown as Parameters<FakeIamAccount['install']>[0]);
  }
  for (const cmd of IAM_COMMANDS) {
    // One routing answer per command type (the union of command classes is not one `on` overload).
    iam
      .on(cmd as typeof ListUserTagsCommand)
      .callsFake(async (input: unknown, getClient: () => IAMClient) => {
        const creds = await (getClient().config.credentials as () => Promise<{ accessKeyId: string }>)();
        const account = creds.accessKeyId.replace(/^(ASIA|HUB)/, '');
        const answer = handlers.get(account)?.get(cmd);
        if (!answer) throw new Error(`no fake IAM answer for ${cmd.name} in account ${account}`);
        return answer(input);
      });
  }
}

function context(requestId: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'sweep',
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${HUB}:function:sweep`,
    memoryLimitInMB: '1024',
    awsRequestId: requestId,
    logGroupName: '/aws/lambda/sweep',
    logStreamName: 's',
    getRemainingTimeInMillis: () => 14 * 60_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

function record(message: SweepMessage, receiveCount: number): SQSRecord {
  return {
    messageId: `msg-${message.accountId}`,
    receiptHandle: `rh-${message.accountId}-${receiveCount}`,
    body: JSON.stringify(message),
    attributes: {
      ApproximateReceiveCount: String(receiveCount),
      SentTimestamp: String(T0),
      SenderId: 'AROAEXAMPLE',
      ApproximateFirstReceiveTimestamp: String(T0),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:us-east-1:${HUB}:sweep`,
    awsRegion: 'us-east-1',
  };
}

async function world(config: ConfigInput = {}) {
  n += 1;
  const names = Object.fromEntries(
    Object.entries(TABLES).map(([k, v]) => [k, `${v}-orgsweep-${n}`]),
  ) as typeof TABLES;
  await createTestTables(db, names);
  const sweepStateTable = `test-org-sweep-state-${n}`;
  await ensureTables(db.client, [sweepStateTableDefinition(sweepStateTable)]);
  const cfg = parseConfig({
    fallbackOwner: 'security@example.com',
    organization: {
      id: 'o-a1b2c3d4e5',
      managementAccountId: '999999999999',
      targets: ['ou-ab12-cd34ef56'],
    },
    ...config,
  });
  const settings = orgSettings(cfg) as OrgSettings;
  const fakes = new Map<string, FakeIamAccount>([
    [HUB, new FakeIamAccount(HUB)],
    [MEMBER_A, new FakeIamAccount(MEMBER_A)],
  ]);
  installAccounts(fakes);
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
    const account = input.RoleArn.split(':')[4] as string;
    if (account === MEMBER_DENIED) {
      throw Object.assign(
        new Error(`User is not authorized to perform: sts:AssumeRole on ${input.RoleArn}`),
        {
          name: 'AccessDenied',
          $metadata: { httpStatusCode: 403 },
        },
      );
    }
    return {
      Credentials: {
        AccessKeyId: `ASIA${account}`,
        SecretAccessKey: 'fake-secret',
        SessionToken: 'fake-token',
        Expiration: new Date(Date.now() + 3600_000),
      },
    };
  });
  const member = new MemberAccess({
    organization: settings.organization,
    hubAccountId: HUB,
    functionName: 'sweep',
    hubIam: new IAMClient({
      region: 'us-east-1',
      credentials: { accessKeyId: `HUB${HUB}`, secretAccessKey: 'fake' },
    }),
    sts: new STSClient({ region: 'us-east-1' }),
  });
  let sweepNo = 0;
  const handler = createQueueSweepHandler({
    config: cfg,
    policyVersion: policyVersion(cfg),
    decisionsTable: names.decisionsTable,
    keysTable: names.keysTable,
    sweepStateTable,
    topicArn: TOPIC,
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-sweep' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-sweep' }),
    now: () => new Date(T0),
    newSweepId: () => {
      sweepNo += 1;
      return `sweep-${sweepNo}`;
    },
    snapshot: { sleep: async () => undefined },
    hubAccountId: HUB,
    organization: async () => ({ settings, iamFor: member.iamFor }),
    sqs: new SQSClient({ region: 'us-east-1' }),
    queueUrl: QUEUE,
    maxReceiveCount: 3,
  });
  const store = new DynamoSweepStateStore(db.doc, sweepStateTable);
  const audit = new DynamoAuditLog(db.doc, names);
  let requests = 0;
  /** SQS and the event source mapping, batch size 1: a failed message comes back until maxReceiveCount. */
  const deliver = async (messages: SweepMessage[]) => {
    const failures: string[] = [];
    for (const m of messages) {
      for (let receive = 1; receive <= 3; receive += 1) {
        requests += 1;
        const event: SQSEvent = { Records: [record(m, receive)] };
        const res = await handler(event, context(`req-${n}-${requests}`));
        if (res.batchItemFailures.length === 0) break;
        expect(res.batchItemFailures).toEqual([{ itemIdentifier: `msg-${m.accountId}` }]);
        failures.push(m.accountId);
      }
    }
    return failures;
  };
  return { fakes, deliver, store, audit, handler };
}

const message = (accountId: string, ouPath: string[] = ['ou-ab12-cd34ef56']): SweepMessage => ({
  accountId,
  name: `name-${accountId.slice(0, 4)}`,
  ouPath,
  round: ROUND,
});

const findingNotices = () =>
  sns
    .commandCalls(PublishCommand)
    .map((c) => c.args[0].input)
    .filter((i) => i.Subject?.includes('not swept'));

describe('organization sweep: one account per queue message', () => {
  it('sweeps each account in its own account; an account whose role is denied fails alone, and is reported once', async () => {
    // Prepare: a never-expiring key in member A and one in the hub
    const w = await world();
    w.fakes
      .get(MEMBER_A)
      ?.key({ keyId: 'ACCAMEMBERAKEY000001', userName: 'svc-a', createdAt: iso(T0 - DAY_MS) });
    w.fakes.get(HUB)?.key({ keyId: 'ACCAHUBKEY0000000001', userName: 'svc-h', createdAt: iso(T0 - DAY_MS) });
    // Act: the denied account's message first, then the others
    const failures = await w.deliver([message(MEMBER_DENIED), message(MEMBER_A), message(HUB, [])]);
    // Assess: the denied account failed every delivery (3, then the DLQ); the others completed
    expect(failures).toEqual([MEMBER_DENIED, MEMBER_DENIED, MEMBER_DENIED]);
    expect(await w.store.get(MEMBER_A)).toMatchObject({ phase: 'done', counters: { keysSeen: 1 } });
    expect(await w.store.get(HUB)).toMatchObject({ phase: 'done', counters: { keysSeen: 1 } });
    // Decisions in the right account (the member's key decided as the member's)
    const a = await w.audit.decisionsForKey(MEMBER_A, 'ACCAMEMBERAKEY000001');
    expect(a).toHaveLength(1);
    expect(a[0]).toMatchObject({ accountId: MEMBER_A, keyId: 'ACCAMEMBERAKEY000001' });
    expect(await w.audit.decisionsForKey(HUB, 'ACCAMEMBERAKEY000001')).toHaveLength(0);
    // Owner notices are grouped per account sweep: each account's first sweep sends its own summary
    const summaries = sns
      .commandCalls(PublishCommand)
      .map((c) => c.args[0].input)
      .filter((i) => i.Subject?.includes('first sweep of account'));
    expect(summaries.map((i) => i.MessageAttributes?.account?.StringValue).sort()).toEqual(
      [HUB, MEMBER_A].sort(),
    );
    expect(summaries.find((i) => i.MessageAttributes?.account?.StringValue === MEMBER_A)?.Message).toContain(
      'ACCAMEMBERAKEY000001',
    );
    // Member A through its member role, session keyguard-sweep; the hub with its own credentials
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: `arn:aws:iam::${MEMBER_A}:role/BedrockKeyGuardMember`,
      RoleSessionName: 'keyguard-sweep',
    });
    expect(
      sts.commandCalls(AssumeRoleCommand).filter((c) => c.args[0].input.RoleArn?.includes(HUB)),
    ).toHaveLength(0);
    // One account-level notice, on the last delivery, to the fallback owner, filterable by account
    const notices = findingNotices();
    expect(notices).toHaveLength(1);
    expect(notices[0]?.Subject).toBe(`Bedrock Key Guard: account ${MEMBER_DENIED} (name-3333) not swept`);
    expect(notices[0]?.MessageAttributes).toEqual({
      owner: { DataType: 'String', StringValue: 'security@example.com' },
      severity: { DataType: 'String', StringValue: 'high' },
      action: { DataType: 'String', StringValue: 'NOTIFY' },
      account: { DataType: 'String', StringValue: MEMBER_DENIED },
    });
    expect(notices[0]?.Message).toContain('AccessDenied');
    // The finding's log line and metric, once
    const lines = out.lines();
    expect(
      lines.filter((l) => String(l.message).startsWith('account not swept after every retry')),
    ).toHaveLength(1);
    expect(lines.filter((l) => l.AccountsNotSwept === 1)).toHaveLength(1);
    // Coverage: the denied account's last failure, and no completed sweep; the others completed now
    const coverage = await w.store.coverage();
    expect(coverage.find((c) => c.accountId === MEMBER_DENIED)).toMatchObject({
      lastCompletedAt: null,
      lastFailure: { at: iso(T0), reason: expect.stringContaining('AccessDenied') },
    });
    expect(coverage.find((c) => c.accountId === MEMBER_A)).toMatchObject({
      lastCompletedAt: iso(T0),
      lastCompletedSweepId: expect.any(String),
      lastFailure: null,
      running: null,
    });
    // Nothing secret from STS in the output
    expect(out.text()).not.toContain('fake-secret');
  });

  it('a message delivered twice sweeps its account once per round', async () => {
    const w = await world();
    w.fakes
      .get(MEMBER_A)
      ?.key({ keyId: 'ACCAMEMBERAKEY000001', userName: 'svc-a', createdAt: iso(T0 - DAY_MS) });
    await w.deliver([message(MEMBER_A), message(MEMBER_A)]);
    const state = await w.store.get(MEMBER_A);
    expect(state).toMatchObject({ sweepId: 'sweep-1', phase: 'done', invocations: 1 });
    expect(
      out.lines().filter((l) => l.message === 'account already swept this round' && l.accountId === MEMBER_A),
    ).toHaveLength(1);
  });

  it('decides each account with its effective policy (OU override), recording that policy version', async () => {
    const w = await world({
      mode: 'audit',
      overrides: [{ ous: ['ou-ab12-sandbox1'], mode: 'enforce', maxAgeDays: 30 }],
    });
    w.fakes
      .get(MEMBER_A)
      ?.key({ keyId: 'ACCAMEMBERAKEY000001', userName: 'svc-a', createdAt: iso(T0 - DAY_MS) });
    w.fakes.get(HUB)?.key({ keyId: 'ACCAHUBKEY0000000001', userName: 'svc-h', createdAt: iso(T0 - DAY_MS) });
    await w.deliver([message(MEMBER_A, ['ou-ab12-sandbox1']), message(HUB, [])]);
    const [a] = await w.audit.decisionsForKey(MEMBER_A, 'ACCAMEMBERAKEY000001');
    const [h] = await w.audit.decisionsForKey(HUB, 'ACCAHUBKEY0000000001');
    expect(a?.mode).toBe('enforce');
    expect(h?.mode).toBe('audit');
    expect(a?.policyVersion).not.toBe(h?.policyVersion);
  });

  it('fails a message that is not a sweep request (it reaches the DLQ and is reported), without sweeping', async () => {
    const w = await world();
    const bad = { ...record(message(MEMBER_A), 3), body: '{"accountId":"x"}' };
    const res = await w.handler({ Records: [bad] }, context('req-bad'));
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: bad.messageId }]);
    expect(findingNotices()).toHaveLength(1);
    expect(iam.calls()).toHaveLength(0);
  });

  it('a sweep that runs short of time puts a continuation for its account on the queue', async () => {
    const w = await world();
    const fake = w.fakes.get(MEMBER_A) as FakeIamAccount;
    fake.keysPageSize = 1;
    for (let i = 0; i < 3; i += 1) {
      fake.key({ keyId: `ACCAMEMBERAKEY00000${i}`, userName: 'svc-a', createdAt: iso(T0 - DAY_MS) });
    }
    // Time runs short after the first page: the sweep checks before each page.
    let checks = 0;
    const ctx = {
      ...context('req-short'),
      getRemainingTimeInMillis: () => {
        checks += 1;
        return checks <= 1 ? 14 * 60_000 : 60_000;
      },
    };
    const res = await w.handler({ Records: [record(message(MEMBER_A), 1)] }, ctx);
    expect(res.batchItemFailures).toEqual([]);
    const sent = sqs.commandCalls(SendMessageCommand).map((c) => c.args[0].input);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.QueueUrl).toBe(QUEUE);
    expect(JSON.parse(sent[0]?.MessageBody ?? '{}')).toEqual({
      ...message(MEMBER_A),
      continue: true,
      sweepId: 'sweep-1',
    });
    expect(await w.store.get(MEMBER_A)).toMatchObject({ phase: 'keys', holder: null });
  });
});

describe('organization sweep: a failing account reaches the dead-letter queue in minutes, not hours', () => {
  const visibilityChanges = () =>
    sqs.commandCalls(ChangeMessageVisibilityCommand).map((c) => c.args[0].input);

  it('a failed delivery before the last comes back after a short, growing delay (ChangeMessageVisibility)', async () => {
    // Prepare
    const w = await world();
    // Act
    const failures = await w.deliver([message(MEMBER_DENIED)]);
    // Assess: deliveries 1 and 2 are made visible again soon; the last is left to the redrive policy (DLQ)
    expect(failures).toEqual([MEMBER_DENIED, MEMBER_DENIED, MEMBER_DENIED]);
    expect(visibilityChanges()).toEqual([
      {
        QueueUrl: QUEUE,
        ReceiptHandle: `rh-${MEMBER_DENIED}-1`,
        VisibilityTimeout: FAILED_ACCOUNT_RETRY_SECONDS[0],
      },
      {
        QueueUrl: QUEUE,
        ReceiptHandle: `rh-${MEMBER_DENIED}-2`,
        VisibilityTimeout: FAILED_ACCOUNT_RETRY_SECONDS[1],
      },
    ]);
    // From the first failure to the dead-letter queue: minutes (was up to 2 x 90 min of visibility timeout)
    const total = FAILED_ACCOUNT_RETRY_SECONDS.reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(15 * 60);
    expect(FAILED_ACCOUNT_RETRY_SECONDS[1]).toBeGreaterThan(FAILED_ACCOUNT_RETRY_SECONDS[0] as number);
    expect(findingNotices()).toHaveLength(1);
  });

  it('a successful sweep changes no visibility', async () => {
    const w = await world();
    const failures = await w.deliver([message(MEMBER_A)]);
    expect(failures).toEqual([]);
    expect(visibilityChanges()).toEqual([]);
  });

  it('when the visibility cannot be changed, the message is still reported failed (it returns after the queue timeout)', async () => {
    // Prepare
    const w = await world();
    sqs
      .on(ChangeMessageVisibilityCommand)
      .rejects(
        Object.assign(new Error('The receipt handle has expired.'), { name: 'ReceiptHandleIsInvalid' }),
      );
    // Act
    const res = await w.handler({ Records: [record(message(MEMBER_DENIED), 1)] }, context('req-vis'));
    // Assess
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: `msg-${MEMBER_DENIED}` }]);
    const warned = out.lines().find((l) => l.message === "could not shorten the failed message's visibility");
    expect(warned).toMatchObject({ messageId: `msg-${MEMBER_DENIED}` });
    expect(String(warned?.error && JSON.stringify(warned.error))).toContain('ReceiptHandleIsInvalid');
  });
});
