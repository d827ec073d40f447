import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { ensureTables } from '../../lambda/adapters/embedded-dynamodb';
import { DynamoUsageStore, usageTableDefinition } from '../../lambda/adapters/usage-store';
import { PendingUsage } from '../../lambda/cli/replay';
import { mergeAggregates } from '../../lambda/domain/usage';
import type { UsageAggregate } from '../../lambda/domain/usage-types';
import { scanAll, startTestDynamo, TABLES } from '../support/dynamo';

/**
 * `keyguard replay` writes the usage replay's aggregates once per subject between two reads of the usage store
 * (PendingUsage), and the one write must leave the store as the per-step writes would.
 */

const ACCOUNT = '111122223333';
const KEY = { kind: 'key', keyId: 'ACCAPENDINGUSAGEKEY01', userName: 'svc-a' } as const;

function aggregate(over: Partial<UsageAggregate>): UsageAggregate {
  return {
    accountId: ACCOUNT,
    subject: KEY,
    keyType: 'LONG_TERM',
    calls: 1,
    failedCalls: 0,
    firstUsedAt: '2026-11-20T10:00:00.000Z',
    lastUsedAt: '2026-11-20T10:00:00.000Z',
    lastAttemptAt: '2026-11-20T10:00:00.000Z',
    regions: ['us-east-1'],
    models: [],
    lastSourceIp: '198.51.100.1',
    lastUserAgent: 'ua/1',
    ...over,
  };
}

/** Three replay steps of one key (the last one failed, from another region and model) and one of a role. */
const STEPS: UsageAggregate[][] = [
  [aggregate({ calls: 3 })],
  [
    aggregate({
      calls: 2,
      firstUsedAt: '2026-11-20T11:05:00.000Z',
      lastUsedAt: '2026-11-20T11:40:00.000Z',
      lastAttemptAt: '2026-11-20T11:40:00.000Z',
      models: ['anthropic.claude-3'],
      lastSourceIp: '198.51.100.2',
      lastUserAgent: 'ua/2',
    }),
    aggregate({
      subject: { kind: 'principal', principalArn: `arn:aws:iam::${ACCOUNT}:role/Runtime` },
      keyType: 'SHORT_TERM',
      calls: 5,
    }),
  ],
  [
    aggregate({
      calls: 1,
      failedCalls: 1,
      firstUsedAt: '2026-11-20T12:10:00.000Z',
      lastUsedAt: null,
      lastAttemptAt: '2026-11-20T12:10:00.000Z',
      regions: ['eu-west-1'],
      models: ['amazon.nova-pro'],
      lastSourceIp: '198.51.100.3',
      lastUserAgent: 'ua/3',
    }),
  ],
];

/** Counts the store's writes, and reads nothing. */
class CountingStore {
  readonly writes: UsageAggregate[][] = [];
  async recordUses(aggregates: ReadonlyArray<UsageAggregate>): Promise<void> {
    this.writes.push([...aggregates]);
  }
  async lastUsedFor(): Promise<Map<string, string | null>> {
    return new Map();
  }
  async trackingSince(): Promise<string | null> {
    return null;
  }
}

async function active(db: EmbeddedDynamo, table: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const res = await db.client.send(new DescribeTableCommand({ TableName: table }));
    if (res.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('replay usage writes (PendingUsage)', () => {
  it('writes nothing until the store is read, then one aggregate per subject', async () => {
    // Prepare
    const store = new CountingStore();
    const pending = new PendingUsage(store);

    // Act
    for (const step of STEPS) await pending.recordUses(step);
    const before = store.writes.length;
    await pending.trackingSince(ACCOUNT);
    await pending.lastUsedFor(ACCOUNT, [{ keyId: KEY.keyId, userName: KEY.userName }]);
    await pending.flush();

    // Assess
    expect(before).toBe(0);
    expect(store.writes).toHaveLength(1);
    const [key, role] = store.writes[0] as UsageAggregate[];
    expect(key).toEqual({
      ...aggregate({}),
      calls: 6,
      failedCalls: 1,
      firstUsedAt: '2026-11-20T10:00:00.000Z',
      lastUsedAt: '2026-11-20T11:40:00.000Z',
      lastAttemptAt: '2026-11-20T12:10:00.000Z',
      regions: ['eu-west-1', 'us-east-1'],
      models: ['amazon.nova-pro', 'anthropic.claude-3'],
      lastSourceIp: '198.51.100.3',
      lastUserAgent: 'ua/3',
    });
    expect(role).toMatchObject({ keyType: 'SHORT_TERM', calls: 5 });
  });

  it('one merged write leaves the usage store as one write per step does', async () => {
    // Prepare
    const db = await startTestDynamo();
    const merged = 'test-usage-merged';
    await ensureTables(db.client, [usageTableDefinition(merged)]);
    await active(db, TABLES.usageTable);
    await active(db, merged);
    const perStep = new DynamoUsageStore(db.doc, TABLES.usageTable);
    const pending = new PendingUsage(new DynamoUsageStore(db.doc, merged));

    try {
      // Act
      for (const step of STEPS) {
        await perStep.recordUses(step);
        await pending.recordUses(step);
      }
      await pending.flush();

      // Assess
      const items = async (table: string) =>
        JSON.stringify(
          (await scanAll(db, table)).sort((a, b) => String(a.subject).localeCompare(String(b.subject))),
          (_k, v) => (v instanceof Set ? [...v].sort() : v),
        );
      const expected = await items(TABLES.usageTable);
      expect(expected).toContain('"calls":6');
      expect(await items(merged)).toBe(expected);
    } finally {
      await db.close();
    }
  });

  it('on a tie in the last attempt the earlier aggregate keeps its source IP, as the store does', () => {
    // Act
    const out = mergeAggregates(aggregate({ lastSourceIp: 'first' }), aggregate({ lastSourceIp: 'second' }));

    // Assess
    expect(out.lastSourceIp).toBe('first');
    expect(out.calls).toBe(2);
  });
});
