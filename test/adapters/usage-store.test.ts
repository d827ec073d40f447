import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import {
  DynamoUsageStore,
  UsageReadIncompleteError,
  usageTableDefinition,
} from '../../lambda/adapters/usage-store';
import type { UsageAggregate } from '../../lambda/domain/usage-types';
import { scanAll, startTestDynamo, TABLES } from '../support/dynamo';

const ACCOUNT = '111122223333';

function aggregate(over: Partial<UsageAggregate> = {}): UsageAggregate {
  return {
    accountId: ACCOUNT,
    subject: { kind: 'key', keyId: 'ACCAEXAMPLEUSAGE0001', userName: 'svc-chatbot' },
    keyType: 'LONG_TERM',
    calls: 3,
    failedCalls: 1,
    firstUsedAt: '2026-11-20T10:00:00.000Z',
    lastUsedAt: '2026-11-20T10:05:00.000Z',
    lastAttemptAt: '2026-11-20T10:06:00.000Z',
    regions: ['us-east-1'],
    models: ['anthropic.claude-3-haiku-20240307-v1:0'],
    lastSourceIp: '198.51.100.7',
    lastUserAgent: 'Boto3/1.40.0',
    ...over,
  };
}

let db: EmbeddedDynamo;
let store: DynamoUsageStore;

beforeAll(async () => {
  db = await startTestDynamo();
  store = new DynamoUsageStore(db.doc, TABLES.usageTable);
});
afterAll(async () => db.close());

describe('usageTableDefinition', () => {
  it('keys the table by accountId and subject', () => {
    // Act
    const def = usageTableDefinition('t');

    // Assess
    expect(def.KeySchema).toEqual([
      { AttributeName: 'accountId', KeyType: 'HASH' },
      { AttributeName: 'subject', KeyType: 'RANGE' },
    ]);
    expect(def.BillingMode).toBe('PAY_PER_REQUEST');
  });
});

describe('DynamoUsageStore against dynalite', () => {
  it('adds counters and sets across batches, keeps firstUsedAt, and moves the last fields forward', async () => {
    // Prepare
    const subject = { kind: 'key' as const, keyId: 'ACCAEXAMPLEUSAGE0001', userName: 'svc-chatbot' };

    // Act
    await store.recordUses([aggregate({ subject })]);
    await store.recordUses([
      aggregate({
        subject,
        calls: 2,
        failedCalls: 0,
        firstUsedAt: '2026-11-20T11:00:00.000Z',
        lastUsedAt: '2026-11-20T11:10:00.000Z',
        lastAttemptAt: '2026-11-20T11:10:00.000Z',
        regions: ['eu-west-1', 'us-east-1'],
        models: ['amazon.nova-lite-v1:0'],
        lastSourceIp: '203.0.113.9',
        lastUserAgent: 'aws-sdk-js/3.900.0',
      }),
    ]);

    // Assess
    const rec = await store.getUsage(ACCOUNT, subject);
    expect(rec).toMatchObject({
      accountId: ACCOUNT,
      subject: 'key#ACCAEXAMPLEUSAGE0001',
      kind: 'key',
      keyId: 'ACCAEXAMPLEUSAGE0001',
      userName: 'svc-chatbot',
      keyType: 'LONG_TERM',
      calls: 5,
      failedCalls: 1,
      firstUsedAt: '2026-11-20T10:00:00.000Z',
      lastUsedAt: '2026-11-20T11:10:00.000Z',
      lastAttemptAt: '2026-11-20T11:10:00.000Z',
      lastSourceIp: '203.0.113.9',
      lastUserAgent: 'aws-sdk-js/3.900.0',
      regions: ['eu-west-1', 'us-east-1'],
      models: ['amazon.nova-lite-v1:0', 'anthropic.claude-3-haiku-20240307-v1:0'],
    });
  });

  it('a late, older batch adds its counts but never moves the last fields back (conditional max)', async () => {
    // Prepare
    const subject = { kind: 'key' as const, keyId: 'ACCAEXAMPLEUSAGE0002', userName: 'svc-late' };
    await store.recordUses([
      aggregate({
        subject,
        lastUsedAt: '2026-11-20T12:00:00.000Z',
        lastAttemptAt: '2026-11-20T12:00:00.000Z',
      }),
    ]);

    // Act
    await store.recordUses([
      aggregate({
        subject,
        calls: 4,
        failedCalls: 2,
        firstUsedAt: '2026-11-20T09:00:00.000Z',
        lastUsedAt: '2026-11-20T09:30:00.000Z',
        lastAttemptAt: '2026-11-20T09:31:00.000Z',
        regions: ['ap-southeast-2'],
        lastSourceIp: '192.0.2.1',
        lastUserAgent: 'old-agent',
      }),
    ]);

    // Assess
    const rec = await store.getUsage(ACCOUNT, subject);
    expect(rec).toMatchObject({
      calls: 7,
      failedCalls: 3,
      lastUsedAt: '2026-11-20T12:00:00.000Z',
      lastAttemptAt: '2026-11-20T12:00:00.000Z',
      lastSourceIp: '198.51.100.7',
      lastUserAgent: 'Boto3/1.40.0',
      regions: ['ap-southeast-2', 'us-east-1'],
    });
    // Known limit: firstUsedAt is the first one written, not the minimum.
    expect(rec?.firstUsedAt).toBe('2026-11-20T10:00:00.000Z');
  });

  it('a later batch of only failed calls moves lastAttemptAt but leaves lastUsedAt', async () => {
    // Prepare
    const subject = { kind: 'key' as const, keyId: 'ACCAEXAMPLEUSAGE0003', userName: 'svc-denied' };
    await store.recordUses([aggregate({ subject })]);

    // Act
    await store.recordUses([
      aggregate({
        subject,
        calls: 2,
        failedCalls: 2,
        lastUsedAt: null,
        lastAttemptAt: '2026-11-21T08:00:00.000Z',
        lastSourceIp: '192.0.2.44',
        models: [],
      }),
    ]);

    // Assess
    const rec = await store.getUsage(ACCOUNT, subject);
    expect(rec).toMatchObject({
      calls: 5,
      failedCalls: 3,
      lastUsedAt: '2026-11-20T10:05:00.000Z',
      lastAttemptAt: '2026-11-21T08:00:00.000Z',
      lastSourceIp: '192.0.2.44',
    });
  });

  it('a newer attempt after an older stored success still updates lastUsedAt when only that is newer', async () => {
    // Prepare: stored attempt at 12:00, success at 10:00
    const subject = { kind: 'key' as const, keyId: 'ACCAEXAMPLEUSAGE0004', userName: 'svc-mixed' };
    await store.recordUses([
      aggregate({
        subject,
        lastUsedAt: '2026-11-20T10:00:00.000Z',
        lastAttemptAt: '2026-11-20T12:00:00.000Z',
      }),
    ]);

    // Act: a late batch whose success (11:00) is newer than the stored success, but whose attempt is older
    await store.recordUses([
      aggregate({
        subject,
        lastUsedAt: '2026-11-20T11:00:00.000Z',
        lastAttemptAt: '2026-11-20T11:00:00.000Z',
      }),
    ]);

    // Assess
    const rec = await store.getUsage(ACCOUNT, subject);
    expect(rec).toMatchObject({
      lastUsedAt: '2026-11-20T11:00:00.000Z',
      lastAttemptAt: '2026-11-20T12:00:00.000Z',
    });
  });

  it('keeps counting a subject whose model set has reached the item size limit (the sets stop growing)', async () => {
    // Prepare: 3 batches of 700 distinct 200-character model names (over 400 KB together)
    const subject = { kind: 'key' as const, keyId: 'ACCAEXAMPLEUSAGEBIG1', userName: 'svc-models' };
    const batch = (b: number) =>
      aggregate({
        subject,
        calls: 700,
        failedCalls: 700,
        models: Array.from({ length: 700 }, (_, i) => `m${b}-${i}-${'x'.repeat(190)}`),
        lastAttemptAt: `2026-11-2${b}T10:00:00.000Z`,
      });

    // Act
    for (const b of [1, 2, 3]) await store.recordUses([batch(b)]);

    // Assess: every call counted, the last attempt moved on; the set holds what fitted
    const item = (await scanAll(db, TABLES.usageTable)).find((i) => i.subject === 'key#ACCAEXAMPLEUSAGEBIG1');
    expect(item).toMatchObject({ calls: 2100, failedCalls: 2100, lastAttemptAt: '2026-11-23T10:00:00.000Z' });
    const models = item?.models as Set<string> | undefined;
    expect(models?.size).toBeGreaterThanOrEqual(700);
    expect(models?.size).toBeLessThan(2100);
  });

  it('stores a 100,000-character model name cut to 256 bytes with its hash', async () => {
    // Prepare
    const subject = { kind: 'key' as const, keyId: 'ACCAEXAMPLEUSAGEBIG2', userName: 'svc-models' };

    // Act
    await store.recordUses([aggregate({ subject, models: ['n'.repeat(100_000)] })]);

    // Assess
    const item = (await scanAll(db, TABLES.usageTable)).find((i) => i.subject === 'key#ACCAEXAMPLEUSAGEBIG2');
    const [model] = [...((item?.models as Set<string> | undefined) ?? [])];
    expect(Buffer.byteLength(model ?? '')).toBeLessThanOrEqual(256);
    expect(model).toMatch(/…\[truncated [\d,]+ chars, sha256:[0-9a-f]{16}\]$/);
  });

  it('writes one item per subject kind under its own sort key', async () => {
    // Act
    await store.recordUses([
      aggregate({ accountId: '444455556666', subject: { kind: 'user', userName: 'svc-two-keys' } }),
      aggregate({
        accountId: '444455556666',
        subject: { kind: 'principal', principalArn: 'arn:aws:iam::444455556666:role/app-role' },
        keyType: 'SHORT_TERM',
        models: [],
      }),
    ]);

    // Assess
    const items = (await scanAll(db, TABLES.usageTable)).filter((i) => i.accountId === '444455556666');
    expect(items.map((i) => i.subject).sort()).toEqual([
      'meta#tracking',
      'principal#arn:aws:iam::444455556666:role/app-role',
      'user#svc-two-keys',
    ]);
    const principal = items.find((i) => i.kind === 'principal');
    expect(principal).toMatchObject({
      principalArn: 'arn:aws:iam::444455556666:role/app-role',
      keyType: 'SHORT_TERM',
    });
    expect(principal?.models).toBeUndefined();
  });

  it('lastUsedFor picks the later of the key’s own record and its user’s unattributed record', async () => {
    // Prepare
    const acct = '777788889999';
    await store.recordUses([
      aggregate({
        accountId: acct,
        subject: { kind: 'key', keyId: 'ACCAOWN', userName: 'u1' },
        lastUsedAt: '2026-11-10T00:00:00.000Z',
        lastAttemptAt: '2026-11-10T00:00:00.000Z',
      }),
      aggregate({
        accountId: acct,
        subject: { kind: 'user', userName: 'u1' },
        lastUsedAt: '2026-11-15T00:00:00.000Z',
        lastAttemptAt: '2026-11-15T00:00:00.000Z',
      }),
      aggregate({
        accountId: acct,
        subject: { kind: 'key', keyId: 'ACCAFAILED', userName: 'u3' },
        lastUsedAt: null,
        failedCalls: 3,
      }),
    ]);

    // Act
    const map = await store.lastUsedFor(acct, [
      { keyId: 'ACCAOWN', userName: 'u1' },
      { keyId: 'ACCASIBLING', userName: 'u1' },
      { keyId: 'ACCANEVER', userName: 'u2' },
      { keyId: 'ACCAFAILED', userName: 'u3' },
    ]);

    // Assess
    expect(map.get('ACCAOWN')).toBe('2026-11-15T00:00:00.000Z');
    expect(map.get('ACCASIBLING')).toBe('2026-11-15T00:00:00.000Z');
    expect(map.has('ACCANEVER')).toBe(false);
    expect(map.has('ACCAFAILED')).toBe(true);
    expect(map.get('ACCAFAILED')).toBeNull();
  });

  it('lastUsedFor reads more than 100 keys (BatchGetItem limit) in chunks', async () => {
    // Prepare
    const acct = '121212121212';
    const keys = Array.from({ length: 150 }, (_, i) => ({ keyId: `ACCA${i}`, userName: `user-${i}` }));
    await store.recordUses(
      keys
        .filter((_, i) => i % 2 === 0)
        .map((k) => aggregate({ accountId: acct, subject: { kind: 'key', ...k } })),
    );

    // Act
    const map = await store.lastUsedFor(acct, keys);

    // Assess
    expect(map.size).toBe(75);
    expect(map.get('ACCA148')).toBe('2026-11-20T10:05:00.000Z');
    expect(map.has('ACCA149')).toBe(false);
  });

  it('trackingSince is null while no use of the account was ever recorded', async () => {
    // Act
    const since = await store.trackingSince('999900001111');

    // Assess: no use seen means "not tracked", never "tracked and unused"
    expect(since).toBeNull();
  });

  it('recordUses sets the tracking start once, to the earliest use of the first batch', async () => {
    // Prepare
    const acct = '999900002222';
    const first = [
      aggregate({ accountId: acct, firstUsedAt: '2026-11-20T10:00:00.000Z' }),
      aggregate({
        accountId: acct,
        subject: { kind: 'principal', principalArn: 'arn:aws:iam::999900002222:role/app' },
        keyType: 'SHORT_TERM',
        firstUsedAt: '2026-11-20T09:30:00.000Z',
      }),
    ];

    // Act
    await store.recordUses(first);
    // A late batch (older use) and another container's store do not move it.
    await store.recordUses([aggregate({ accountId: acct, firstUsedAt: '2026-11-19T08:00:00.000Z' })]);
    await new DynamoUsageStore(db.doc, TABLES.usageTable).recordUses([
      aggregate({ accountId: acct, firstUsedAt: '2026-11-01T00:00:00.000Z' }),
    ]);

    // Assess
    expect(await store.trackingSince(acct)).toBe('2026-11-20T09:30:00.000Z');
    expect(await store.trackingSince('999900003333')).toBeNull();
  });

  it('recordUses records the start of each account in a batch', async () => {
    // Prepare
    const a = '999900004444';
    const b = '999900005555';

    // Act
    await store.recordUses([
      aggregate({ accountId: a, firstUsedAt: '2026-11-21T00:00:00.000Z' }),
      aggregate({ accountId: b, firstUsedAt: '2026-11-22T00:00:00.000Z' }),
    ]);

    // Assess
    expect(await store.trackingSince(a)).toBe('2026-11-21T00:00:00.000Z');
    expect(await store.trackingSince(b)).toBe('2026-11-22T00:00:00.000Z');
  });

  it('recordUses with no aggregates records no tracking start', async () => {
    // Act
    await store.recordUses([]);

    // Assess
    expect(await store.trackingSince(ACCOUNT.replace('1111', '7777'))).toBeNull();
  });
});

describe('DynamoUsageStore failures (mocked client)', () => {
  const raw = new DynamoDBClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  const doc = DynamoDBDocumentClient.from(raw);
  const mock = mockClient(doc);
  afterEach(() => mock.reset());
  afterAll(() => raw.destroy());

  it('rethrows a write failure that is not a lost condition', async () => {
    // Prepare
    mock.on(UpdateCommand).rejects(new Error('ProvisionedThroughputExceededException'));

    // Act / Assess
    await expect(new DynamoUsageStore(doc, 't').recordUses([aggregate()])).rejects.toThrow(
      'ProvisionedThroughputExceededException',
    );
  });

  it('swallows only the lost condition of the "last" update, then adds the counters', async () => {
    // Prepare
    mock
      .on(UpdateCommand)
      .rejectsOnce(new ConditionalCheckFailedException({ message: 'cond', $metadata: {} }))
      .resolves({});

    // Act
    await new DynamoUsageStore(doc, 't').recordUses([aggregate()]);

    // Assess: counters-only write, then the two conditional "last" writes, then the tracking start
    const calls = mock.commandCalls(UpdateCommand);
    expect(calls).toHaveLength(5);
    expect(calls[1]?.args[0].input.ConditionExpression).toBeUndefined();
    expect(calls[1]?.args[0].input.UpdateExpression).toContain('ADD calls :calls');
  });

  it('writes the tracking start once per account per container, if_not_exists, after the uses', async () => {
    // Prepare
    mock.on(UpdateCommand).resolves({});
    const store = new DynamoUsageStore(doc, 't');

    // Act
    await store.recordUses([aggregate(), aggregate({ firstUsedAt: '2026-11-20T09:00:00.000Z' })]);
    await store.recordUses([aggregate()]);

    // Assess: two use writes, the tracking start, one use write; no second tracking write
    const inputs = mock.commandCalls(UpdateCommand).map((c) => c.args[0].input);
    expect(inputs).toHaveLength(4);
    expect(inputs[2]).toEqual({
      TableName: 't',
      Key: { accountId: ACCOUNT, subject: 'meta#tracking' },
      UpdateExpression: 'SET trackingSince = if_not_exists(trackingSince, :f)',
      ExpressionAttributeValues: { ':f': '2026-11-20T09:00:00.000Z' },
    });
    expect(inputs.filter((i) => i.Key?.subject === 'meta#tracking')).toHaveLength(1);
  });

  it('rethrows a failed tracking-start write and tries it again with the next batch', async () => {
    // Prepare: the use writes succeed, the tracking write fails once
    const store = new DynamoUsageStore(doc, 't');
    mock.on(UpdateCommand).resolves({});
    mock
      .on(UpdateCommand, { Key: { accountId: ACCOUNT, subject: 'meta#tracking' } })
      .rejectsOnce(new Error('ThrottlingException'))
      .resolves({});

    // Act
    await expect(store.recordUses([aggregate()])).rejects.toThrow('ThrottlingException');
    await store.recordUses([aggregate()]);

    // Assess
    const tracking = mock
      .commandCalls(UpdateCommand)
      .filter((c) => c.args[0].input.Key?.subject === 'meta#tracking');
    expect(tracking).toHaveLength(2);
  });

  it('gives up on keys BatchGetItem keeps leaving unprocessed', async () => {
    // Prepare
    mock.on(BatchGetCommand).resolves({
      Responses: { t: [] },
      UnprocessedKeys: { t: { Keys: [{ accountId: ACCOUNT, subject: 'key#K' }] } },
    });

    // Act / Assess
    await expect(
      new DynamoUsageStore(doc, 't').lastUsedFor(ACCOUNT, [{ keyId: 'K', userName: 'u' }]),
    ).rejects.toBeInstanceOf(UsageReadIncompleteError);
  });
});
