import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { CloudTrailRecordSchema } from '../../lambda/domain/cloudtrail';
import type { KeyDirectory, KeyMetadata, PipelineDeps } from '../../lambda/domain/pipeline';
import type { Decision } from '../../lambda/domain/types';
import { aggregateUses, attributeUse, classifyUsage } from '../../lambda/domain/usage';
import {
  groupUses,
  processUsageGroups,
  processUses,
  type UsageOptions,
} from '../../lambda/domain/usage-pipeline';
import type { BearerUse, UsageAggregate } from '../../lambda/domain/usage-types';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { createTestTables, startTestDynamo } from '../support/dynamo';

/**
 * The flow-3 core shared by the key-usage function and replay: attribution through an injected directory,
 * one recorder call per batch, and decisions through decideKey over the real audit store (dynalite).
 */

const KEY = 'ACCAEXAMPLEUSAGEPIPE1';

function fixtureUse(name: string): BearerUse {
  const raw = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'cloudtrail', name), 'utf8'));
  const u = classifyUsage(CloudTrailRecordSchema.parse(raw));
  if (!u) throw new Error(`${name} is not a bearer-token use`);
  return u;
}

const longTerm = fixtureUse('bedrock-invoke-model-bearer-token.json');
const shortTerm = fixtureUse('bedrock-converse-stream-short-term-assumed-role.json');

function use(base: BearerUse, eventTime: string, over: Partial<BearerUse> = {}): BearerUse {
  return { ...base, eventTime, eventId: `ev-${eventTime}-${over.region ?? base.region}`, ...over };
}

function key(status: KeyMetadata['status'] = 'Active'): KeyMetadata {
  return {
    keyId: KEY,
    userName: 'svc-chatbot',
    status,
    createdAt: '2025-07-01T00:00:00.000Z',
    expiresAt: null,
  };
}

function directory(keys: KeyMetadata[]): KeyDirectory & { listed: string[] } {
  const listed: string[] = [];
  return {
    listed,
    getKey: async (_a, _u, keyId) => keys.find((k) => k.keyId === keyId) ?? null,
    listUserKeys: async (_a, userName) => {
      listed.push(userName);
      return keys.filter((k) => k.userName === userName);
    },
    getUserTags: async () => ({ owner: 'team-a@example.com', purpose: 'chatbot', 'review-cadence': '90' }),
  };
}

let db: EmbeddedDynamo;
let n = 0;
beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => db.close());

async function freshAudit(): Promise<DynamoAuditLog> {
  n += 1;
  const names = { decisionsTable: `up-d-${n}`, keysTable: `up-k-${n}`, idempotencyTable: `up-i-${n}` };
  await createTestTables(db, names);
  return new DynamoAuditLog(db.doc, names);
}

function deps(
  audit: DynamoAuditLog,
  dir: KeyDirectory,
  deactivated: string[],
  sent: Decision[],
): PipelineDeps {
  return {
    directory: dir,
    audit,
    enforcer: {
      deactivate: async (_a, _u, keyId) => {
        deactivated.push(keyId);
        return false;
      },
    },
    notifier: { notify: async (d) => void sent.push(d) },
  };
}

function options(over: Partial<UsageOptions> & { allowLongTermKeys?: boolean } = {}): UsageOptions {
  const config = parseConfig({ mode: 'enforce', allowLongTermKeys: over.allowLongTermKeys ?? true });
  return {
    config,
    policyVersion: policyVersion(config),
    now: new Date('2025-07-09T17:00:00Z'),
    triggerKind: 'replay',
    ...over,
  };
}

describe('processUses: attribution and the recorder', () => {
  it('records one aggregate per subject in one call: the long-term key and the short-term principal', async () => {
    // Prepare
    const dir = directory([key()]);
    const audit = await freshAudit();
    const recorded: UsageAggregate[][] = [];
    const uses = [
      use(longTerm, '2025-07-09T16:00:00.000Z'),
      use(longTerm, '2025-07-09T16:10:00.000Z', { region: 'us-east-1', errorCode: 'ThrottlingException' }),
      use(shortTerm, '2025-07-09T16:05:00.000Z'),
    ];

    // Act
    const out = await processUses(
      uses,
      {
        directory: dir,
        recorder: { recordUses: async (a) => void recorded.push([...a]) },
        deps: deps(audit, dir, [], []),
      },
      options(),
    );

    // Assess
    expect(recorded).toHaveLength(1);
    const [first, second] = recorded[0] ?? [];
    expect(first).toMatchObject({
      subject: { kind: 'key', keyId: KEY, userName: 'svc-chatbot' },
      keyType: 'LONG_TERM',
      calls: 2,
      failedCalls: 1,
      firstUsedAt: '2025-07-09T16:00:00.000Z',
      lastUsedAt: '2025-07-09T16:00:00.000Z',
      lastAttemptAt: '2025-07-09T16:10:00.000Z',
      regions: ['eu-central-1', 'us-east-1'],
    });
    expect(second).toMatchObject({ subject: { kind: 'principal' }, keyType: 'SHORT_TERM', calls: 1 });
    expect(dir.listed).toEqual(['svc-chatbot']);
    expect(out.decisions).toEqual([]);
  });

  it('gives the same aggregates as aggregateUses, however the uses are split into groups and merged', async () => {
    // Prepare
    const keys = [key()];
    const uses = [
      use(longTerm, '2025-07-09T16:30:00.000Z', { region: 'us-west-2', modelId: 'm-b' }),
      use(shortTerm, '2025-07-09T16:05:00.000Z'),
      use(longTerm, '2025-07-09T16:00:00.000Z', { errorCode: 'AccessDeniedException' }),
      use(longTerm, '2025-07-09T16:45:00.000Z', {
        sourceIp: '198.51.100.7',
        errorCode: 'ValidationException',
      }),
      use(shortTerm, '2025-07-09T15:05:00.000Z', { region: 'ap-south-1' }),
    ];
    const expected = aggregateUses(uses, (u) => attributeUse(u, u.principal.userName ? keys : null));
    const dir = directory(keys);
    const audit = await freshAudit();
    const recorded: UsageAggregate[] = [];
    const recorder = { recordUses: async (a: ReadonlyArray<UsageAggregate>) => void recorded.push(...a) };

    // Act: two chunks grouped separately, then processed together
    const groups = [...groupUses(uses.slice(0, 2)), ...groupUses(uses.slice(2))];
    const out = await processUsageGroups(
      groups,
      { directory: dir, recorder, deps: deps(audit, dir, [], []) },
      options(),
    );

    // Assess
    expect(groups).toHaveLength(4);
    expect(recorded).toEqual(expected.map((s) => s.aggregate));
    expect(out.subjects.map((s) => [s.latest.eventId, s.deniedCalls])).toEqual(
      expected.map((s) => [s.latest.eventId, s.deniedCalls]),
    );
  });

  it('records nothing without a recorder, and still decides', async () => {
    // Prepare
    const dir = directory([key()]);
    const audit = await freshAudit();

    // Act
    const out = await processUses(
      [use(longTerm, '2025-07-09T16:00:00.000Z')],
      { directory: dir, recorder: null, deps: deps(audit, dir, [], []) },
      options({ allowLongTermKeys: false }),
    );

    // Assess
    expect(out.subjects).toHaveLength(1);
    expect(out.decisions.map((d) => d.cause)).toEqual(['long-term-not-allowed']);
  });
});

describe('processUses: several accounts (replay)', () => {
  it("asks the directory about each use's own account, and keeps the accounts apart", async () => {
    // Prepare
    const OTHER = '444455556666';
    const asked: string[] = [];
    const dir: KeyDirectory = {
      getKey: async () => null,
      listUserKeys: async (accountId) => {
        asked.push(accountId);
        return accountId === OTHER ? [] : [key()];
      },
      getUserTags: async () => ({}),
    };
    const audit = await freshAudit();
    const recorded: UsageAggregate[] = [];

    // Act
    await processUses(
      [
        use(longTerm, '2025-07-09T16:00:00.000Z'),
        use(longTerm, '2025-07-09T16:01:00.000Z', { accountId: OTHER }),
      ],
      {
        directory: dir,
        recorder: { recordUses: async (a) => void recorded.push(...a) },
        deps: deps(audit, dir, [], []),
      },
      options(),
    );

    // Assess
    expect(asked.sort()).toEqual([longTerm.accountId, OTHER].sort());
    expect(recorded.map((a) => [a.accountId, a.subject.kind, a.keyType])).toEqual([
      [longTerm.accountId, 'key', 'LONG_TERM'],
      // The other account's user holds no Bedrock key there: a short-term key of its principal.
      [OTHER, 'principal', 'SHORT_TERM'],
    ]);
  });
});

describe('processUses: decisions', () => {
  it('decides LONG_TERM_NOT_ALLOWED once with the trigger kind given, and plans DEACTIVATE in enforce mode', async () => {
    // Prepare
    const dir = directory([key()]);
    const audit = await freshAudit();
    const deactivated: string[] = [];
    const sent: Decision[] = [];
    const ports = { directory: dir, recorder: null, deps: deps(audit, dir, deactivated, sent) };
    const opts = options({ allowLongTermKeys: false, now: new Date('2025-07-09T16:00:00Z') });

    // Act
    const first = await processUses([use(longTerm, '2025-07-09T16:00:00.000Z')], ports, opts);
    const again = await processUses([use(longTerm, '2025-07-09T16:20:00.000Z')], ports, {
      ...opts,
      now: new Date('2025-07-09T16:20:00Z'),
    });

    // Assess
    const d = first.decisions[0]?.result;
    expect(d?.recorded).toBe(true);
    expect(d?.decision.trigger).toEqual({
      kind: 'replay',
      eventId: 'ev-2025-07-09T16:00:00.000Z-eu-central-1',
      eventName: 'InvokeModel',
      eventTime: '2025-07-09T16:00:00.000Z',
    });
    expect(d?.decision.decisionId).toBe(
      '2025-07-09T16:00:00.000Z/replay/ev-2025-07-09T16:00:00.000Z-eu-central-1',
    );
    expect(d?.decision.violations.map((v) => v.code)).toContain('LONG_TERM_NOT_ALLOWED');
    expect(d?.decision.action).toBe('DEACTIVATE');
    expect(deactivated[0]).toBe(KEY);
    expect(again.decisions.map((x) => x.result.recorded)).toEqual([false]);
  });

  it('decides nothing for short-term uses, even with long-term keys forbidden', async () => {
    // Prepare
    const dir = directory([key()]);
    const audit = await freshAudit();

    // Act
    const out = await processUses(
      [use(shortTerm, '2025-07-09T16:00:00.000Z')],
      { directory: dir, recorder: null, deps: deps(audit, dir, [], []) },
      options({ allowLongTermKeys: false }),
    );

    // Assess
    expect(out.decisions).toEqual([]);
    expect(dir.listed).toEqual([]);
  });
});
