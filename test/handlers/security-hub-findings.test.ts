import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { BatchImportFindingsCommand, SecurityHubClient } from '@aws-sdk/client-securityhub';
import type { SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import {
  type EmbeddedDynamo,
  ensureTables,
  startEmbeddedDynamo,
} from '../../lambda/adapters/embedded-dynamodb';
import { DynamoFindingsState, findingsStateTableDefinition } from '../../lambda/adapters/findings-state';
import {
  DECISION_EVENT_DETAIL_TYPE,
  DECISION_EVENT_SOURCE,
  decisionEventEntry,
} from '../../lambda/domain/decision-events';
import type { KeyFinding } from '../../lambda/domain/security-hub';
import type { Decision } from '../../lambda/domain/types';
import { createSecurityHubFindingsHandler } from '../../lambda/handlers/security-hub-findings-handler';
import { AsffFindingSchema } from '../support/asff';
import { scanAll } from '../support/dynamo';

/**
 * Security Hub findings: decision events (as the governance bus's rule queues them) → BatchImportFindings, with the
 * findings state on dynalite and Security Hub mocked at the SDK client.
 */

const ACCOUNT = '111122223333';
const TARGET = { partition: 'aws', region: 'us-east-1', accountId: ACCOUNT };
const securityHub = mockClient(SecurityHubClient);
const logger = { info: jest.fn(), warn: jest.fn() };
const metrics = { addMetric: jest.fn(), publishStoredMetrics: jest.fn() };
const sleep = jest.fn(async (_ms: number) => undefined);

let db: EmbeddedDynamo;
let table = 0;
let tableName = '';

beforeAll(async () => {
  db = await startEmbeddedDynamo();
});
afterAll(async () => db.close());

beforeEach(async () => {
  securityHub.reset();
  logger.warn.mockClear();
  metrics.addMetric.mockClear();
  sleep.mockClear();
  tableName = `findings-${++table}`;
  await ensureTables(db.client, [findingsStateTableDefinition(tableName)]);
  securityHub
    .on(BatchImportFindingsCommand)
    .resolves({ SuccessCount: 1, FailedCount: 0, FailedFindings: [] });
});

function handler() {
  return createSecurityHubFindingsHandler({
    securityHub: securityHub as unknown as SecurityHubClient,
    state: new DynamoFindingsState(db.doc, tableName),
    target: TARGET,
    logger,
    metrics,
    sleep,
  });
}

let seq = 0;
function decision(over: Partial<Decision> = {}): Decision {
  const at = over.decidedAt ?? new Date(Date.UTC(2026, 11, 7, 10, 0, seq++)).toISOString();
  return {
    decisionId: `${at}/event/e-${seq}`,
    decidedAt: at,
    keyId: 'ACCAEXAMPLEKEYSHUB001',
    userName: 'svc-batch-summarizer',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: { kind: 'event', eventId: `e-${seq}` },
    createdAt: '2026-12-01T00:00:00.000Z',
    expiresAt: '2027-03-01T00:00:00.000Z',
    neverExpires: false,
    owner: { value: null, source: 'fallback' },
    violations: [{ code: 'MISSING_OWNER', severity: 'medium', detail: 'the user has no owner tag' }],
    action: 'NOTIFY',
    applied: false,
    mode: 'enforce',
    deadline: '2026-12-09T10:00:00.000Z',
    policyVersion: 'p-000000000000',
    ...over,
  };
}

/** An SQS message as the rule delivers it: the whole EventBridge event, its detail the decision event's detail. */
function messages(decisions: Decision[]): SQSEvent {
  return {
    Records: decisions.map((d, i) => {
      const entry = decisionEventEntry(d);
      const event = {
        version: '0',
        id: `ev-${d.decisionId}`,
        'detail-type': entry.DetailType,
        source: entry.Source,
        account: ACCOUNT,
        time: entry.Time.toISOString(),
        region: 'us-east-1',
        resources: [],
        detail: JSON.parse(entry.Detail),
      };
      return {
        messageId: `m-${i}-${d.decisionId}`,
        body: JSON.stringify(event),
      } as SQSEvent['Records'][number];
    }),
  };
}

function imported(): KeyFinding[][] {
  return securityHub
    .commandCalls(BatchImportFindingsCommand)
    .map((c) => (c.args[0].input.Findings ?? []) as unknown as KeyFinding[]);
}

describe('a key across its life', () => {
  it('one finding, updated: violation → worse → deactivated (archived) → still clean (archived) → violations again (active)', async () => {
    // Prepare
    const run = handler();
    const first = decision();
    const worse = decision({
      violations: [
        ...first.violations,
        { code: 'LEAKED', severity: 'critical', detail: 'found in build.log, line 3' },
      ],
      action: 'DEACTIVATE',
      applied: true,
    });
    const deactivated = decision({ status: 'Inactive', action: 'ALLOW', violations: worse.violations });
    const stillInactive = decision({ status: 'Inactive', action: 'ALLOW', violations: [] });
    const reactivated = decision({
      violations: [{ code: 'REACTIVATED_WITHOUT_APPROVAL', severity: 'critical', detail: 'Active again' }],
    });
    // Act
    for (const d of [first, worse, deactivated, stillInactive, reactivated]) {
      expect(await run(messages([d]))).toEqual({ batchItemFailures: [] });
    }
    // Assess: five imports of one Id, CreatedAt kept, UpdatedAt moving, archived while the key cannot be used.
    const findings = imported().flat();
    for (const f of findings) expect(AsffFindingSchema.safeParse(f).error?.issues).toBeUndefined();
    expect(findings).toHaveLength(5);
    expect(new Set(findings.map((f) => f.Id))).toEqual(
      new Set(['bedrock-key-guard/111122223333/ACCAEXAMPLEKEYSHUB001']),
    );
    expect(findings.map((f) => f.CreatedAt)).toEqual(Array(5).fill(first.decidedAt));
    expect(findings.map((f) => f.UpdatedAt)).toEqual(
      [first, worse, deactivated, stillInactive, reactivated].map((d) => d.decidedAt),
    );
    expect(findings.map((f) => f.FindingProviderFields.Severity.Label)).toEqual([
      'MEDIUM',
      'CRITICAL',
      'CRITICAL',
      'INFORMATIONAL',
      'CRITICAL',
    ]);
    expect(findings.map((f) => f.RecordState)).toEqual([
      'ACTIVE',
      'ACTIVE',
      'ARCHIVED',
      'ARCHIVED',
      'ACTIVE',
    ]);
    expect(findings.map((f) => f.Compliance.Status)).toEqual([
      'FAILED',
      'FAILED',
      'PASSED',
      'PASSED',
      'FAILED',
    ]);
    expect(findings.map((f) => f.Workflow?.Status)).toEqual([
      'NEW',
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    expect(findings.map((f) => f.ProductFields['bedrock-key-guard/decisionId'])).toEqual(
      [first, worse, deactivated, stillInactive, reactivated].map((d) => d.decisionId),
    );
    // The state table holds the latest import.
    expect(await scanAll(db, tableName)).toEqual([
      {
        id: 'bedrock-key-guard/111122223333/ACCAEXAMPLEKEYSHUB001',
        createdAt: first.decidedAt,
        updatedAt: reactivated.decidedAt,
        decisionId: reactivated.decisionId,
        recordState: 'ACTIVE',
      },
    ]);
  });

  it('a key that was never in violation and is then deleted: no finding at all', async () => {
    // Act
    const res = await handler()(
      messages([
        decision({ violations: [], action: 'ALLOW' }),
        decision({ status: 'Deleted', violations: [] }),
      ]),
    );
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    expect(securityHub.commandCalls(BatchImportFindingsCommand)).toHaveLength(0);
  });

  it('a decision delivered after a newer one is not imported over it', async () => {
    // Prepare
    const run = handler();
    const older = decision({ decidedAt: '2026-12-07T08:00:00.000Z' });
    const newer = decision({ decidedAt: '2026-12-07T09:00:00.000Z', status: 'Inactive', action: 'ALLOW' });
    await run(messages([decision({ decidedAt: '2026-12-07T07:00:00.000Z' })]));
    await run(messages([newer]));
    // Act
    const res = await run(messages([older]));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    expect(
      imported()
        .flat()
        .map((f) => f.UpdatedAt),
    ).toEqual(['2026-12-07T07:00:00.000Z', '2026-12-07T09:00:00.000Z']);
  });

  it("a key's decisions in one batch: one finding, from the latest, answering for every message", async () => {
    // Act
    const a = decision({ decidedAt: '2026-12-07T11:00:00.000Z' });
    const b = decision({
      decidedAt: '2026-12-07T11:05:00.000Z',
      violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'no expiration date' }],
    });
    const res = await handler()(messages([b, a]));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    expect(imported()).toHaveLength(1);
    expect(imported()[0]?.map((f) => f.UpdatedAt)).toEqual(['2026-12-07T11:05:00.000Z']);
  });
});

describe('decision events as the bus carries them', () => {
  it('a decision too large for one event (sent reduced, detailTruncated) still makes a valid finding', async () => {
    // Prepare: five 60 KB violation details: the event carries each cut to 512 characters.
    const d = decision({
      violations: Array.from({ length: 5 }, () => ({
        code: 'MISSING_OWNER' as const,
        severity: 'medium' as const,
        detail: 'd'.repeat(60_000),
      })),
    });
    const event = messages([d]);
    expect(event.Records[0]?.body).toContain('detailTruncated');
    // Act
    const res = await handler()(event);
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    const [finding] = imported().flat();
    expect(AsffFindingSchema.safeParse(finding).error?.issues).toBeUndefined();
    expect(finding?.ProductFields['bedrock-key-guard/decisionId']).toBe(d.decisionId);
  });
});

describe('limits and failures', () => {
  const keys = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      decision({ keyId: `ACCAEXAMPLEKEYMANY${String(i).padStart(3, '0')}` }),
    );

  it('201 keys: requests of 100, 100 and 1', async () => {
    // Act
    const res = await handler()(messages(keys(201)));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    expect(imported().map((b) => b.length)).toEqual([100, 100, 1]);
    expect((await scanAll(db, tableName)).length).toBe(201);
    expect(metrics.addMetric).toHaveBeenCalledWith('FindingsImported', MetricUnit.Count, 201);
  });

  it('FailedFindings are sent again (only they), with backoff, and recorded once imported', async () => {
    // Prepare: the first call fails two findings, the second imports them.
    const ds = keys(5);
    const failing = [ds[1], ds[3]].map((d) => `bedrock-key-guard/${ACCOUNT}/${d?.keyId}`);
    securityHub
      .on(BatchImportFindingsCommand)
      .resolvesOnce({
        SuccessCount: 3,
        FailedCount: 2,
        FailedFindings: failing.map((Id) => ({
          Id,
          ErrorCode: 'InternalException',
          ErrorMessage: 'try again',
        })),
      })
      .resolves({ SuccessCount: 2, FailedCount: 0, FailedFindings: [] });
    // Act
    const res = await handler()(messages(ds));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    expect(imported().map((b) => b.map((f) => f.Id))).toEqual([
      ds.map((d) => `bedrock-key-guard/${ACCOUNT}/${d.keyId}`),
      failing,
    ]);
    expect(sleep).toHaveBeenCalledWith(500);
    expect((await scanAll(db, tableName)).length).toBe(5);
  });

  it('a finding failed on every try: its message is a batch item failure, counted and logged; the others are imported', async () => {
    // Prepare
    const ds = keys(3);
    const bad = `bedrock-key-guard/${ACCOUNT}/${ds[2]?.keyId}`;
    securityHub.on(BatchImportFindingsCommand).callsFake((input: { Findings: KeyFinding[] }) => ({
      SuccessCount: input.Findings.length - 1,
      FailedCount: 1,
      FailedFindings: input.Findings.filter((f) => f.Id === bad).map((f) => ({
        Id: f.Id,
        ErrorCode: 'InvalidInput',
        ErrorMessage: 'refused',
      })),
    }));
    const event = messages(ds);
    // Act
    const res = await handler()(event);
    // Assess: four tries of the bad one (1 + 3 retries, backoff 500, 1000, 2000), never dropped.
    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[2]?.messageId }] });
    expect(imported().map((b) => b.length)).toEqual([3, 1, 1, 1]);
    expect(sleep.mock.calls.map((c) => c[0])).toEqual([500, 1000, 2000]);
    expect(metrics.addMetric).toHaveBeenCalledWith('FindingsNotImported', MetricUnit.Count, 1);
    expect(logger.warn).toHaveBeenCalledWith(
      'findings not imported after every try: their messages are retried',
      expect.objectContaining({
        failed: [{ findingId: bad, decisionId: ds[2]?.decisionId, errorCode: 'InvalidInput' }],
      }),
    );
    const state = await scanAll(db, tableName);
    expect(state.map((s) => s.id).sort()).toEqual(
      ds
        .slice(0, 2)
        .map((d) => `bedrock-key-guard/${ACCOUNT}/${d.keyId}`)
        .sort(),
    );
  });

  it('a call that fails (after the SDK retries) fails the messages of its findings, not the batch', async () => {
    // Prepare
    securityHub
      .on(BatchImportFindingsCommand)
      .rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    const event = messages(keys(2));
    // Act
    const res = await handler()(event);
    // Assess
    expect(res.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(
      event.Records.map((r) => r.messageId).sort(),
    );
    expect(logger.warn).toHaveBeenCalledWith(
      'findings not imported after every try: their messages are retried',
      expect.objectContaining({
        failed: expect.arrayContaining([expect.objectContaining({ errorCode: 'AccessDeniedException' })]),
      }),
    );
    expect(await scanAll(db, tableName)).toEqual([]);
  });

  it('the state table unreadable: the batch fails whole (SQS delivers it again), nothing imported', async () => {
    // Prepare
    const run = createSecurityHubFindingsHandler({
      securityHub: securityHub as unknown as SecurityHubClient,
      state: {
        get: async () => {
          throw Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' });
        },
        put: async () => true,
      },
      target: TARGET,
      logger,
      sleep,
    });
    // Act / Assess
    await expect(run(messages(keys(2)))).rejects.toThrow('throttled');
    expect(securityHub.commandCalls(BatchImportFindingsCommand)).toHaveLength(0);
  });

  it('a finding imported but its state not recorded: its message is retried (the import is repeated, the same update)', async () => {
    // Prepare
    const real = new DynamoFindingsState(db.doc, tableName);
    const ds = keys(2);
    const run = createSecurityHubFindingsHandler({
      securityHub: securityHub as unknown as SecurityHubClient,
      state: {
        get: (ids) => real.get(ids),
        put: async (st) => {
          if (st.id.endsWith(ds[1]?.keyId ?? ''))
            throw Object.assign(new Error('x'), { name: 'InternalServerError' });
          return real.put(st);
        },
      },
      target: TARGET,
      logger,
      sleep,
    });
    const event = messages(ds);
    // Act
    const res = await run(event);
    // Assess
    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: event.Records[1]?.messageId }] });
    expect(imported().flat()).toHaveLength(2);
    expect(logger.warn).toHaveBeenCalledWith(
      'finding imported but its state was not recorded: its messages are retried',
      expect.objectContaining({ error: 'InternalServerError' }),
    );
  });

  it('a message that is not a decision event is a batch item failure (to the dead-letter queue), never read as one', async () => {
    // Prepare
    const event = messages([decision()]);
    event.Records.push(
      { messageId: 'not-json', body: '{' } as SQSEvent['Records'][number],
      {
        messageId: 'other-source',
        body: JSON.stringify({
          source: 'keyguard.scan',
          'detail-type': DECISION_EVENT_DETAIL_TYPE,
          detail: {},
        }),
      } as SQSEvent['Records'][number],
    );
    // Act
    const res = await handler()(event);
    // Assess
    expect(res).toEqual({
      batchItemFailures: [{ itemIdentifier: 'not-json' }, { itemIdentifier: 'other-source' }],
    });
    expect(imported().flat()).toHaveLength(1);
    expect(DECISION_EVENT_SOURCE).toBe('keyguard.decisions');
  });
});
