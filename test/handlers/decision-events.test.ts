import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import {
  DECISION_EVENT_DETAIL_TYPE,
  DECISION_EVENT_OCSF_DETAIL_TYPE,
  DECISION_EVENT_SOURCE,
} from '../../lambda/domain/decision-events';
import { canonicalDecision, type Decision } from '../../lambda/domain/types';
import { createDecisionEventsHandler } from '../../lambda/handlers/decision-events-handler';
import { scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { ocsfProblems } from '../support/ocsf';

/**
 * Decision events: the decisions table's stream → one event per decision on the governance bus. The stream records
 * are built from what the real audit store writes (decisions, chain links) on dynalite, which has no streams.
 */

const eventBridge = mockClient(EventBridgeClient);
const logger = { info: jest.fn(), warn: jest.fn() };
const BUS = 'arn:aws:events:us-east-1:111122223333:event-bus/bedrock-key-guard-governance';
const ACCOUNT = '111122223333';

function decision(i: number, over: Partial<Decision> = {}): Decision {
  const at = new Date(Date.UTC(2026, 11, 7, 12, 0, i)).toISOString();
  return {
    decisionId: `${at}/event/e-${i}`,
    decidedAt: at,
    keyId: `ACCAEVENTSKEY${String(i).padStart(7, '0')}`,
    userName: 'svc-chatbot',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: { kind: 'event', eventId: `e-${i}`, eventName: 'CreateServiceSpecificCredential' },
    createdAt: '2026-11-20T09:31:02.000Z',
    expiresAt: null,
    neverExpires: true,
    owner: { value: 'team-chat@example.com', source: 'tag' },
    violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'the key has no expiration date' }],
    action: 'DEACTIVATE',
    applied: true,
    mode: 'enforce',
    deadline: null,
    policyVersion: 'p-000000000000',
    ...over,
  };
}

let db: EmbeddedDynamo;
/** What the audit store wrote for 23 decisions: 23 decision items and 23 chain links, in write order. */
let written: Record<string, unknown>[];
const DECISIONS = Array.from({ length: 23 }, (_, i) => decision(i + 1));

beforeAll(async () => {
  db = await startTestDynamo();
  const audit = new DynamoAuditLog(db.doc, TABLES);
  for (const d of DECISIONS) await audit.recordDecision(d);
  const items = await scanAll(db, TABLES.decisionsTable);
  // Stream order: each decision, then its link (the store writes them in that order).
  const byKey = (pk: string) => items.filter((i) => String(i.pk).endsWith(pk));
  written = DECISIONS.flatMap((d) => byKey(`${d.accountId}#${d.keyId}`));
  const digest = { pk: 'digest#log', sk: '2026-12-07T13:00:00.000Z', time: '2026-12-07T13:00:00.000Z' };
  written.push(digest);
});
afterAll(async () => db.close());

function insert(item: Record<string, unknown>, seq: number): DynamoDBStreamEvent['Records'][number] {
  return {
    eventID: `ev-${seq}`,
    eventName: 'INSERT',
    dynamodb: {
      SequenceNumber: String(seq),
      Keys: marshall({ pk: item.pk, sk: item.sk }) as never,
      NewImage: marshall(item, { removeUndefinedValues: true }) as never,
    },
  };
}

function streamOf(items: Record<string, unknown>[]): DynamoDBStreamEvent {
  return { Records: items.map((item, i) => insert(item, 100 + i)) };
}

function handler(attempts = 3) {
  return createDecisionEventsHandler({
    eventBridge: eventBridge as unknown as EventBridgeClient,
    busArn: BUS,
    logger,
    attempts,
    sleep: async () => undefined,
  });
}

/** Every entry of every PutEvents call, in call order. */
function putEntries(): PutEventsRequestEntry[][] {
  return eventBridge.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries ?? []);
}

/** Accepts every entry, giving each an event id. */
function acceptAll() {
  eventBridge.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map((_, i) => ({ EventId: `id-${i}` })),
  }));
}

beforeEach(() => {
  eventBridge.reset();
  logger.info.mockReset();
  logger.warn.mockReset();
});

describe('decision events (decisions table stream → governance bus)', () => {
  it('puts one event per decision, in batches of 10, and skips chain links and the digest log', async () => {
    // Prepare
    acceptAll();
    expect(written.filter((i) => String(i.pk).startsWith('chain#'))).toHaveLength(23);
    // Act
    const res = await handler()(streamOf(written));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    const calls = putEntries();
    expect(calls.map((c) => c.length)).toEqual([10, 10, 3]);
    const entries = calls.flat();
    expect(entries.map((e) => JSON.parse(e.Detail ?? '').decisionId)).toEqual(
      DECISIONS.map((d) => d.decisionId),
    );
    for (const e of entries) {
      expect(e).toMatchObject({
        EventBusName: BUS,
        Source: DECISION_EVENT_SOURCE,
        DetailType: DECISION_EVENT_DETAIL_TYPE,
      });
    }
    expect(DECISION_EVENT_SOURCE).toBe('keyguard.decisions');
    expect(DECISION_EVENT_DETAIL_TYPE).toBe('Bedrock API Key Decision');
  });

  it('the detail is the decision exactly as keyguard audit --json prints it (no table keys), timed at decidedAt', async () => {
    // Prepare
    acceptAll();
    const first = DECISIONS[0] as Decision;
    // Act
    await handler()(streamOf(written.slice(0, 2)));
    // Assess
    const [entry] = putEntries().flat();
    expect(entry?.Detail).toBe(JSON.stringify(canonicalDecision(first)));
    expect(JSON.parse(entry?.Detail ?? '{}')).not.toHaveProperty('pk');
    expect(JSON.parse(entry?.Detail ?? '{}')).not.toHaveProperty('ownerKey');
    expect(entry?.Time).toEqual(new Date(first.decidedAt));
  });

  it('puts rejected entries again, and only those', async () => {
    // Prepare: the first call rejects entries 2 and 5 (throttled), the second accepts them.
    let call = 0;
    eventBridge.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => {
      call += 1;
      return {
        FailedEntryCount: call === 1 ? 2 : 0,
        Entries: input.Entries.map((_, i) =>
          call === 1 && (i === 2 || i === 5)
            ? { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' }
            : { EventId: `id-${call}-${i}` },
        ),
      };
    });
    const items = written.filter((i) => !String(i.pk).startsWith('chain#')).slice(0, 8);
    // Act
    const res = await handler()(streamOf(items));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    const calls = putEntries();
    expect(calls.map((c) => c.length)).toEqual([8, 2]);
    expect(calls[1]?.map((e) => JSON.parse(e.Detail ?? '').decisionId)).toEqual([
      DECISIONS[2]?.decisionId,
      DECISIONS[5]?.decisionId,
    ]);
  });

  it('an entry still rejected after every try is reported as the batch item failure, and later batches are not put', async () => {
    // Prepare: the 12th decision (second request, third entry) is always rejected.
    eventBridge.on(PutEventsCommand).callsFake((input: { Entries: Array<{ Detail: string }> }) => ({
      FailedEntryCount: 1,
      Entries: input.Entries.map((e) =>
        JSON.parse(e.Detail).decisionId === DECISIONS[11]?.decisionId
          ? { ErrorCode: 'InternalFailure', ErrorMessage: 'try again' }
          : { EventId: 'ok' },
      ),
    }));
    const stream = streamOf(written);
    const seqOf12th = stream.Records.find(
      (r) => r.dynamodb?.NewImage?.decisionId?.S === DECISIONS[11]?.decisionId,
    )?.dynamodb?.SequenceNumber;
    // Act
    const res = await handler(3)(stream);
    // Assess: the stream retries from the 12th decision's record; the third request was never made.
    expect(seqOf12th).toBeDefined();
    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: seqOf12th }] });
    expect(putEntries().map((c) => c.length)).toEqual([10, 10, 1, 1]);
    expect(logger.warn).toHaveBeenCalledWith(
      expect.stringContaining('rejected after every try'),
      expect.objectContaining({
        rejected: [{ decisionId: DECISIONS[11]?.decisionId, errorCode: 'InternalFailure' }],
      }),
    );
  });

  it('a failing PutEvents call reports the first record of its request (earlier requests are done)', async () => {
    // Prepare
    let call = 0;
    eventBridge.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => {
      call += 1;
      if (call === 2) throw Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
      return { FailedEntryCount: 0, Entries: input.Entries.map(() => ({ EventId: 'ok' })) };
    });
    const stream = streamOf(written);
    const seqOf11th = stream.Records.find(
      (r) => r.dynamodb?.NewImage?.decisionId?.S === DECISIONS[10]?.decisionId,
    )?.dynamodb?.SequenceNumber;
    // Act
    const res = await handler()(stream);
    // Assess
    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: seqOf11th }] });
    expect(call).toBe(2);
  });

  it('changes and removals are not new decisions: nothing is put', async () => {
    // Prepare
    acceptAll();
    const item = written[0] as Record<string, unknown>;
    const modify = { ...insert(item, 1), eventName: 'MODIFY' as const };
    const remove = {
      eventID: 'ev-2',
      eventName: 'REMOVE' as const,
      dynamodb: { SequenceNumber: '2', Keys: marshall({ pk: item.pk, sk: item.sk }) as never },
    };
    // Act
    const res = await handler()({ Records: [modify, remove] });
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(0);
  });

  it('a decision too large for one event keeps every field but the leak evidence, marked detailTruncated', async () => {
    // Prepare: a 300 KB reason (a stored decision may reach 300 KB; an event must stay under 256 KB).
    acceptAll();
    const big = decision(99, { reason: 'x'.repeat(300 * 1024) });
    const item = { pk: `${big.accountId}#${big.keyId}`, sk: big.decisionId, ownerKey: 'o', ...big };
    // Act
    const res = await handler()(streamOf([item]));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    const [entry] = putEntries().flat();
    const detail = JSON.parse(entry?.Detail ?? '{}');
    expect(detail).toMatchObject({
      decisionId: big.decisionId,
      action: 'DEACTIVATE',
      applied: true,
      violations: big.violations,
      detailTruncated: { omitted: [] },
    });
    expect(detail.reason.length).toBeLessThanOrEqual(513);
    expect(Buffer.byteLength(entry?.Detail ?? '')).toBeLessThan(256 * 1024);
  });
  it('a decision that fits no event even reduced: the decisions before it are put, then it is the batch item failure', async () => {
    // Prepare: 1,000 violations of 600 characters each (the reduced detail still holds every violation).
    acceptAll();
    const huge = decision(98, {
      violations: Array.from({ length: 1000 }, () => ({
        code: 'MISSING_OWNER' as const,
        severity: 'medium' as const,
        detail: 'y'.repeat(600),
      })),
    });
    const item = { pk: `${huge.accountId}#${huge.keyId}`, sk: huge.decisionId, ownerKey: 'o', ...huge };
    const before = written.filter((i) => !String(i.pk).startsWith('chain#')).slice(0, 3);
    const stream = streamOf([...before, item]);
    // Act
    const res = await handler()(stream);
    // Assess
    expect(res).toEqual({
      batchItemFailures: [{ itemIdentifier: stream.Records[3]?.dynamodb?.SequenceNumber }],
    });
    expect(putEntries().flat()).toHaveLength(3);
    expect(logger.warn).toHaveBeenCalledWith('decision event could not be built', {
      eventID: stream.Records[3]?.eventID,
      error: 'DecisionEventTooLargeError',
    });
  });
});

describe('decision events in OCSF too (decisionEvents.ocsf)', () => {
  function handlerWith(ocsf: boolean) {
    return createDecisionEventsHandler({
      eventBridge: eventBridge as unknown as EventBridgeClient,
      busArn: BUS,
      logger,
      sleep: async () => undefined,
      ocsf,
      productVersion: '9.9.9',
    });
  }
  const decisionsOnly = () => written.filter((i) => !String(i.pk).startsWith('chain#'));

  it('each decision as its keyguard event, then as its OCSF Detection Finding (valid against the pinned schema)', async () => {
    // Prepare
    acceptAll();
    const items = decisionsOnly().slice(0, 6);
    // Act
    const res = await handlerWith(true)(streamOf(items));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    const entries = putEntries().flat();
    expect(entries.map((e) => e.DetailType)).toEqual(
      items.flatMap(() => [DECISION_EVENT_DETAIL_TYPE, DECISION_EVENT_OCSF_DETAIL_TYPE]),
    );
    expect(entries.every((e) => e.Source === DECISION_EVENT_SOURCE && e.EventBusName === BUS)).toBe(true);
    const ocsf = entries.filter((e) => e.DetailType === DECISION_EVENT_OCSF_DETAIL_TYPE);
    ocsf.forEach((e, i) => {
      const detail = JSON.parse(e.Detail ?? '{}');
      expect(ocsfProblems(detail)).toEqual([]);
      expect(detail.unmapped.keyguard).toEqual(
        JSON.parse(JSON.stringify(canonicalDecision(DECISIONS[i] as Decision))),
      );
      expect(detail.metadata.product.version).toBe('9.9.9');
      expect(e.Time).toEqual(new Date((DECISIONS[i] as Decision).decidedAt));
    });
  });

  it('off (the default): only the keyguard events', async () => {
    // Prepare
    acceptAll();
    const items = decisionsOnly().slice(0, 2);
    // Act
    await handlerWith(false)(streamOf(items));
    const off = putEntries().flat();
    eventBridge.reset();
    acceptAll();
    await handler()(streamOf(items));
    // Assess
    expect(off.map((e) => e.DetailType)).toEqual([DECISION_EVENT_DETAIL_TYPE, DECISION_EVENT_DETAIL_TYPE]);
    expect(putEntries().flat()).toEqual(off);
  });

  it('a decision too large for one event: its OCSF event carries the reduced decision, still valid', async () => {
    // Prepare
    acceptAll();
    const big = decision(97, { reason: 'x'.repeat(300 * 1024) });
    const item = { pk: `${big.accountId}#${big.keyId}`, sk: big.decisionId, ownerKey: 'o', ...big };
    // Act
    const res = await handlerWith(true)(streamOf([item]));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    const entry = putEntries()
      .flat()
      .find((e) => e.DetailType === DECISION_EVENT_OCSF_DETAIL_TYPE);
    const detail = JSON.parse(entry?.Detail ?? '{}');
    expect(ocsfProblems(detail)).toEqual([]);
    expect(detail.unmapped.keyguard.detailTruncated).toMatchObject({ omitted: [] });
    expect(Buffer.byteLength(entry?.Detail ?? '')).toBeLessThan(256 * 1024);
  });
});
