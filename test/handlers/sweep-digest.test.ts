import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { IAMClient, UpdateServiceSpecificCredentialCommand } from '@aws-sdk/client-iam';
import { PublishCommand, type PublishCommandInput, SNSClient } from '@aws-sdk/client-sns';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { type SweepState, ZERO_COUNTERS } from '../../lambda/adapters/sweep-state';
import { DAY_MS, HOUR_MS } from '../../lambda/domain/dates';
import { NEXT_DIGEST, SNS_MESSAGE_MAX_BYTES } from '../../lambda/domain/owner-digest';
import { createCredentialEventHandler } from '../../lambda/handlers/credential-event-handler';
import { type ConfigInput, policyVersion } from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, startTestDynamo } from '../support/dynamo';
import {
  createCredentialRecord,
  credentialChangeRecord,
  eventBridgeEvent,
  lambdaContext,
} from '../support/events';
import { answerPlainUser } from '../support/iam-facts';
import { sweepWorld } from '../support/sweep-world';

/**
 * Owner digests (issue 14): a sweep sends one message per owner listing their keys worst first, critical events at
 * once, and, on an account's first sweep, one summary to the fallback owner. The staging stays per key.
 */

const ACCOUNT = '111122223333';
const TOPIC = `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`;
const T0 = Date.parse('2026-11-20T10:00:00Z');
const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const iso = (ms: number) => new Date(ms).toISOString();

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
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  out = captureOutput();
});
afterEach(() => out.restore());

const sent = (): PublishCommandInput[] => sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
const ownerOf = (m: PublishCommandInput) => m.MessageAttributes?.owner?.StringValue;

/**
 * Fresh tables and a fake account. `swept`: the account already had a complete sweep (a deployment in service),
 * so this sweep sends owner digests; without it the first sweep is a first deployment.
 */
async function world(config: ConfigInput = {}, swept: boolean | 'without coverage fields' = true) {
  n += 1;
  const w = await sweepWorld({ db, iam, prefix: 'digest', n, t0: T0, config });
  if (swept) {
    const before = iso(T0 - HOUR_MS);
    const done: SweepState = {
      accountId: ACCOUNT,
      sweepId: 'sweep-0',
      startedAt: before,
      phase: 'done',
      marker: null,
      goneCursor: null,
      counters: { ...ZERO_COUNTERS },
      pages: 1,
      invocations: 1,
      heartbeatAt: before,
      holder: null,
      finishedAt: before,
      previousStartedAt: null,
      ...(swept === true ? { lastCompletedAt: before, lastCompletedSweepId: 'sweep-0' } : {}),
    };
    await db.doc.send(new PutCommand({ TableName: w.sweepStateTable, Item: done }));
  }
  return {
    fake: w.fake,
    clock: w.clock,
    audit: w.audit,
    names: w.tables,
    cfg: w.cfg,
    run: () => w.run(),
    decisions: w.decisions,
  };
}

type World = Awaited<ReturnType<typeof world>>;

const tags = (
  owner: string,
  more: Record<string, string> = { purpose: 'chatbot', 'review-cadence': '1y' },
) => ({
  tags: { owner, ...more },
});

/** Three owners with several keys each: a never-expiring key (high), one over the maximum age (medium), tags missing (low). */
function threeOwners(w: World): void {
  for (const [i, owner] of ['alice', 'bob', 'carol'].entries()) {
    w.fake.user(`svc-${owner}-a`, tags(`${owner}@example.com`));
    w.fake.user(`svc-${owner}-b`, tags(`${owner}@example.com`, { 'review-cadence': '1y' }));
    w.fake
      // MISSING_PURPOSE (low), grace deadline
      .key({
        keyId: `ACCAEXAMPLEKEY${owner.toUpperCase().padEnd(5, 'X')}LOW`,
        userName: `svc-${owner}-b`,
        createdAt: iso(T0 - DAY_MS),
        expiresAt: iso(T0 + 29 * DAY_MS),
      })
      // NEVER_EXPIRES (high): DEACTIVATE, planned in audit mode
      .key({
        keyId: `ACCAEXAMPLEKEY${owner.toUpperCase().padEnd(5, 'X')}HIG`,
        userName: `svc-${owner}-a`,
        createdAt: iso(T0 - 10 * DAY_MS),
      })
      // EXCEEDS_MAX_AGE (medium), grace deadline
      .key({
        keyId: `ACCAEXAMPLEKEY${owner.toUpperCase().padEnd(5, 'X')}MED`,
        userName: `svc-${owner}-a`,
        createdAt: iso(T0 - DAY_MS),
        expiresAt: iso(T0 + (200 + i) * DAY_MS),
      });
  }
}

describe('sweep: owner digests', () => {
  it('sends one message per owner, listing each of their keys worst first with what to do and by when', async () => {
    // Prepare
    const w = await world();
    threeOwners(w);
    // Act
    const result = await w.run();
    // Assess: 9 key notices, 3 messages
    expect(result.counters).toMatchObject({ keysSeen: 9, noticesSent: 9, messagesSent: 3 });
    const messages = sent();
    expect(messages.map(ownerOf).sort()).toEqual([
      'alice@example.com',
      'bob@example.com',
      'carol@example.com',
    ]);
    for (const m of messages) {
      const owner = (ownerOf(m) ?? '').split('@')[0]?.toUpperCase().padEnd(5, 'X');
      const body = m.Message ?? '';
      const at = (suffix: string) => body.indexOf(`ACCAEXAMPLEKEY${owner}${suffix}`);
      // Worst first: high, then medium, then low; no other owner's key.
      expect(at('HIG')).toBeGreaterThan(0);
      expect(at('HIG')).toBeLessThan(at('MED'));
      expect(at('MED')).toBeLessThan(at('LOW'));
      expect(body.match(/ACCAEXAMPLEKEY\w+/g)?.every((k) => k.startsWith(`ACCAEXAMPLEKEY${owner}`))).toBe(
        true,
      );
      // What to do and by when
      expect(body).toContain('Fix: Create a replacement key with an expiry of at most 90 days');
      expect(body).toContain(
        `By: ${iso(T0 + 72 * HOUR_MS)} (after that the key will be reported for deactivation)`,
      );
      expect(m.Subject).toMatch(/^\[keyguard\] HIGH: 3 Bedrock API keys of yours need action/);
      expect(m.MessageAttributes?.severity?.StringValue).toBe('high');
      expect(m.MessageAttributes?.action?.StringValue).toBe('DEACTIVATE');
      expect(m.MessageAttributes?.account?.StringValue).toBe(ACCOUNT);
    }
    // The audit is per key: each decision records its own notice and the digest that carried it.
    const [high] = await w.decisions('ACCAEXAMPLEKEYALICEHIG');
    expect(high).toMatchObject({ notice: 'action', action: 'DEACTIVATE', noticeDigest: 'digest/sweep-1' });
    const [low] = await w.decisions('ACCAEXAMPLEKEYBOBXXLOW');
    expect(low).toMatchObject({ notice: 'first', noticeDigest: 'digest/sweep-1' });
    // A sweep that finds nothing new sends nothing.
    sns.resetHistory();
    w.clock.now = T0 + HOUR_MS;
    expect((await w.run()).counters).toMatchObject({ noticesSent: 0, messagesSent: 0 });
    expect(sent()).toEqual([]);
  });

  it('advances the reminder and final warning per key across sweeps, each in one digest, never sent twice', async () => {
    // Prepare: grace 72 h: reminder half-way (36 h), final warning 24 h before the deadline (48 h)
    const w = await world();
    w.fake.user('svc-nopurpose', tags('team@example.com', { 'review-cadence': '1y' }));
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYGRACE01',
      userName: 'svc-nopurpose',
      createdAt: iso(T0),
      expiresAt: iso(T0 + 60 * DAY_MS),
    });
    // A second key of the same owner, first seen at 36 h: its own stages, in the same digests.
    const perSweep: string[][] = [];
    // Act
    for (const h of [0, 1, 36, 37, 48, 49]) {
      if (h === 36) {
        w.fake.key({
          keyId: 'ACCAEXAMPLEKEYGRACE02',
          userName: 'svc-nopurpose',
          createdAt: iso(T0 + h * HOUR_MS),
          expiresAt: iso(T0 + 60 * DAY_MS),
        });
      }
      sns.resetHistory();
      w.clock.now = T0 + h * HOUR_MS;
      await w.run();
      perSweep.push(sent().map((m) => m.Message ?? ''));
    }
    // Assess: one digest at 0, 36 and 48 h, none in between
    expect(perSweep.map((s) => s.length)).toEqual([1, 0, 1, 0, 1, 0]);
    expect(perSweep[0]?.[0]).toMatch(/\[LOW\] new: Bedrock API key ACCAEXAMPLEKEYGRACE01/);
    expect(perSweep[2]?.[0]).toMatch(/\[LOW\] reminder: Bedrock API key ACCAEXAMPLEKEYGRACE01/);
    expect(perSweep[2]?.[0]).toMatch(/\[LOW\] new: Bedrock API key ACCAEXAMPLEKEYGRACE02/);
    expect(perSweep[4]?.[0]).toMatch(/\[LOW\] FINAL WARNING: Bedrock API key ACCAEXAMPLEKEYGRACE01/);
    // Key 2's reminder is not due yet at 48 h (half-way from 36 h to 108 h): not listed.
    expect(perSweep[4]?.[0]).not.toContain('ACCAEXAMPLEKEYGRACE02');
    const one = await w.decisions('ACCAEXAMPLEKEYGRACE01');
    expect(one.map((d) => [d.notice ?? null, d.noticeDigest ?? null])).toEqual([
      ['first', 'digest/sweep-1'],
      ['reminder', 'digest/sweep-3'],
      ['final', 'digest/sweep-5'],
    ]);
    expect((await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYGRACE01'))?.history?.notice?.stage).toBe(
      'final',
    );
  });

  it('sends a critical event at once, on its own: a deactivation applied (enforce)', async () => {
    // Prepare
    const w = await world({ mode: 'enforce' });
    w.fake.user('svc-never', tags('team@example.com'));
    w.fake.key({ keyId: 'ACCAEXAMPLEKEYNEVER01', userName: 'svc-never', createdAt: iso(T0 - DAY_MS) });
    w.fake.user('svc-nopurpose', tags('team@example.com', { 'review-cadence': '1y' }));
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYGRACE01',
      userName: 'svc-nopurpose',
      createdAt: iso(T0),
      expiresAt: iso(T0 + 30 * DAY_MS),
    });
    // Act
    const result = await w.run();
    // Assess: the deactivation's own notice, then the owner's digest with the other key only
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(result.counters).toMatchObject({ noticesSent: 2, keysDeactivated: 1, messagesSent: 2 });
    const [immediate, digest] = sent();
    expect(immediate?.Subject).toBe(
      '[keyguard] HIGH: Bedrock API key ACCAEXAMPLEKEYNEVER01 on svc-never deactivated',
    );
    expect(digest?.Message).toContain('ACCAEXAMPLEKEYGRACE01');
    expect(digest?.Message).not.toContain('ACCAEXAMPLEKEYNEVER01');
    const [never] = await w.decisions('ACCAEXAMPLEKEYNEVER01');
    expect(never).toMatchObject({ notice: 'action', applied: true });
    expect(never?.noticeDigest).toBeUndefined();
  });

  it('sends the reactivation of a key it deactivated at once (critical), outside the digest', async () => {
    // Prepare: deactivated by the sweep (enforce), then turned back on without an approval
    const w = await world({ mode: 'enforce' });
    w.fake.user('svc-never', tags('team@example.com'));
    w.fake.key({ keyId: 'ACCAEXAMPLEKEYNEVER01', userName: 'svc-never', createdAt: iso(T0 - DAY_MS) });
    await w.run();
    w.fake.find('ACCAEXAMPLEKEYNEVER01').status = 'Active';
    sns.resetHistory();
    w.clock.now = T0 + HOUR_MS;
    // Act
    await w.run();
    // Assess
    const [latest] = (await w.decisions('ACCAEXAMPLEKEYNEVER01')).slice(-1);
    expect(latest?.violations.map((v) => v.code)).toContain('REACTIVATED_WITHOUT_APPROVAL');
    expect(latest?.noticeDigest).toBeUndefined();
    expect(sent()).toHaveLength(1);
    expect(sent()[0]?.Subject).toMatch(/CRITICAL: Bedrock API key ACCAEXAMPLEKEYNEVER01/);
  });
});

describe('sweep: first deployment', () => {
  it('sends the fallback owner one summary of the account instead of a first notice per key; stages start there', async () => {
    // Prepare: no complete sweep on record
    const w = await world({}, false);
    threeOwners(w);
    w.fake.user('svc-untagged', { tags: {} });
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYUNTAG01',
      userName: 'svc-untagged',
      createdAt: iso(T0),
      expiresAt: iso(T0 + 30 * DAY_MS),
    });
    // Act
    const result = await w.run();
    // Assess: one message, to the fallback owner
    expect(result.counters).toMatchObject({ keysSeen: 10, noticesSent: 10, messagesSent: 1 });
    expect(sent()).toHaveLength(1);
    const [summary] = sent();
    expect(summary && ownerOf(summary)).toBe('security@example.com');
    expect(summary?.Subject).toBe(
      '[keyguard] HIGH: first sweep of account 111122223333: 10 Bedrock API keys need action',
    );
    const body = summary?.Message ?? '';
    expect(body).toContain('Instead of 10 first notices to their owners, this one summary');
    // Counts per violation and per owner
    expect(body).toContain(
      'Keys per violation:\n  MISSING_PURPOSE: 4\n  EXCEEDS_MAX_AGE: 3\n  NEVER_EXPIRES: 3\n  MISSING_OWNER: 1\n',
    );
    expect(body).toContain('Keys per owner (4 owners):');
    expect(body).toContain('  alice@example.com: 3');
    expect(body).toContain('  security@example.com: 1');
    // Worst keys first
    const lines = body.split('\n').filter((l) => /^ {2}\[/.test(l));
    expect(lines).toHaveLength(10);
    expect(lines.slice(0, 3).every((l) => l.startsWith('  [HIGH]'))).toBe(true);
    expect(lines.slice(-3).every((l) => l.startsWith('  [LOW]'))).toBe(true);
    // Each key's first notice is recorded, delivered in the summary, and its stages start from this sweep.
    const [low] = await w.decisions('ACCAEXAMPLEKEYBOBXXLOW');
    expect(low).toMatchObject({ notice: 'first', noticeDigest: 'summary/sweep-1' });
    expect((await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYBOBXXLOW'))?.history?.notice).toEqual({
      codes: ['MISSING_PURPOSE'],
      stage: 'first',
      firstNotifiedAt: iso(T0),
    });
    // The next sweeps: nothing until the reminders are due, then one digest per owner (not the summary again).
    sns.resetHistory();
    w.clock.now = T0 + HOUR_MS;
    await w.run();
    expect(sent()).toEqual([]);
    w.clock.now = T0 + 36 * HOUR_MS;
    await w.run();
    expect(sent().map(ownerOf).sort()).toEqual([
      'alice@example.com',
      'bob@example.com',
      'carol@example.com',
      'security@example.com',
    ]);
    expect(sent()[0]?.Message).toMatch(/reminder: Bedrock API key/);
  });

  it('is not a first deployment when the account has a state item from a version without coverage fields', async () => {
    // Prepare
    const w = await world({}, 'without coverage fields');
    w.fake.user('svc-nopurpose', tags('team@example.com', { 'review-cadence': '1y' }));
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYGRACE01',
      userName: 'svc-nopurpose',
      createdAt: iso(T0),
      expiresAt: iso(T0 + 30 * DAY_MS),
    });
    // Act
    await w.run();
    // Assess: the owner's digest, not a summary
    expect(sent().map(ownerOf)).toEqual(['team@example.com']);
    expect((await w.decisions('ACCAEXAMPLEKEYGRACE01'))[0]?.noticeDigest).toBe('digest/sweep-1');
  });

  it('keeps a large summary within the SNS limits: the worst keys listed, the rest counted', async () => {
    // Prepare: more keys than the summary lists (the size limit of digests: test/domain/owner-digest.test.ts)
    const w = await world({}, false);
    for (let i = 0; i < 55; i++) {
      const user = `svc-${String(i).padStart(3, '0')}-${'x'.repeat(50)}`;
      w.fake.user(user, tags('team@example.com', { 'review-cadence': '1y' }));
      w.fake.key({
        keyId: `ACCAEXAMPLEKEYBULK${String(i).padStart(3, '0')}`,
        userName: user,
        createdAt: iso(T0),
        expiresAt: iso(T0 + 30 * DAY_MS),
      });
    }
    // Act
    await w.run();
    // Assess: a summary, 50 keys listed, the rest counted; every key's notice recorded as in the summary
    const [summary] = sent();
    expect(sent()).toHaveLength(1);
    expect(summary?.Message?.match(/\] ACCAEXAMPLEKEYBULK/g)).toHaveLength(50);
    expect(summary?.Message).toContain('… and 5 more keys');
    const [last] = await w.decisions('ACCAEXAMPLEKEYBULK054');
    expect(last).toMatchObject({ notice: 'first', noticeDigest: 'summary/sweep-1' });
    for (const m of sent()) {
      expect(Buffer.byteLength(m.Message ?? '')).toBeLessThan(SNS_MESSAGE_MAX_BYTES);
      expect(m.Subject?.length).toBeLessThan(100);
      expect(m.Subject).toMatch(/^[\x20-\x7e]+$/);
    }
  });
});

describe('credential events: non-critical notices wait for the owner’s next digest', () => {
  /** The credential-event function on the world's tables and fake account (idempotency table: its own, or given). */
  function events(w: World, idempotencyTable = w.names.idempotencyTable) {
    answerPlainUser(iam);
    return createCredentialEventHandler({
      config: w.cfg,
      policyVersion: policyVersion(w.cfg),
      decisionsTable: w.names.decisionsTable,
      keysTable: w.names.keysTable,
      idempotencyTable,
      approvalsTable: w.names.approvalsTable,
      topicArn: TOPIC,
      governedAccountId: ACCOUNT,
      iamFor: () => new IAMClient({ region: 'us-east-1' }),
      dynamo: db.client,
      sns: new SNSClient({ region: 'us-east-1' }),
      logger: new Logger({ serviceName: 'keyguard-credential-event' }),
      metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-credential-event' }),
      now: () => new Date(w.clock.now),
    });
  }
  /** A digest's entries about a key: one headline line each (`[SEVERITY] stage: Bedrock API key <id> …`). */
  const listings = (body: string | undefined, keyId: string) =>
    (body ?? '').split('\n').filter((l) => l.startsWith('[') && l.includes(`API key ${keyId} `)).length;
  /** One digest was sent, listing ACCAEXAMPLEKEYNEVER01 once, as deleted (resolved). */
  function expectListedOnceAsResolved(): void {
    expect(sent()).toHaveLength(1);
    const body = sent()[0]?.Message;
    expect(listings(body, 'ACCAEXAMPLEKEYNEVER01')).toBe(1);
    expect(body).toContain('ACCAEXAMPLEKEYNEVER01 on IAM user svc-ok is deleted: resolved');
  }
  /** Creates the never-expiring key ACCAEXAMPLEKEYNEVER01 on svc-ok; returns its creation event, at `eventTime`. */
  function neverExpiringKeyCreated(w: World, eventTime: number) {
    w.fake.key({ keyId: 'ACCAEXAMPLEKEYNEVER01', userName: 'svc-ok', createdAt: iso(T0) });
    return eventBridgeEvent(
      createCredentialRecord({
        userName: 'svc-ok',
        keyId: 'ACCAEXAMPLEKEYNEVER01',
        eventTime: iso(eventTime),
      }),
    );
  }

  it('holds a planned deactivation’s notice: not published, pending, listed once in the next sweep’s digest', async () => {
    // Prepare: a key already swept (no notice: compliant), then a never-expiring key created (audit mode)
    const w = await world();
    w.fake.user('svc-ok', tags('team@example.com'));
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYOKAY001',
      userName: 'svc-ok',
      createdAt: iso(T0 - DAY_MS),
      expiresAt: iso(T0 + 30 * DAY_MS),
    });
    await w.run();
    expect(sent()).toEqual([]);
    const event = neverExpiringKeyCreated(w, T0 + 60_000);
    w.clock.now = T0 + 2 * 60_000;

    // Act: the event, delivered twice
    const handler = events(w);
    await handler(event, lambdaContext());
    await handler(event, lambdaContext());

    // Assess: recorded once, nothing published, pending for the next digest
    const decisions = await w.decisions('ACCAEXAMPLEKEYNEVER01');
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({ notice: 'action', applied: false, noticeDigest: NEXT_DIGEST });
    expect(sent()).toEqual([]);
    const pendingBefore = (await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYNEVER01'))?.pendingNotice;
    expect(pendingBefore).toMatchObject({ digest: NEXT_DIGEST, decisionId: decisions[0]?.decisionId });

    // Act: the next sweep (it does not notify the key again: its notice was given by the event)
    w.clock.now = T0 + HOUR_MS;
    const result = await w.run();

    // Assess: one digest, listing the key once; the key's pending notice names the digest that carried it
    expect(result.counters).toMatchObject({ messagesSent: 1 });
    expect(sent()).toHaveLength(1);
    expect(ownerOf(sent()[0] as PublishCommandInput)).toBe('team@example.com');
    expect(listings(sent()[0]?.Message, 'ACCAEXAMPLEKEYNEVER01')).toBe(1);
    expect(sent()[0]?.Message).toContain('(planned, not applied: audit mode)');
    expect(sent()[0]?.Message).toContain(`Decision: ${decisions[0]?.decisionId}`);
    expect(sent()[0]?.Message).not.toContain('ACCAEXAMPLEKEYOKAY001');
    const known = await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYNEVER01');
    expect(known?.pendingNotice).toMatchObject({
      digest: 'digest/sweep-2',
      decisionId: decisions[0]?.decisionId,
    });

    // Act: the event redelivered once more after the digest (its idempotency record gone), then another sweep
    sns.resetHistory();
    const expired = `${w.names.idempotencyTable}-expired`;
    await createTestTables(db, { ...w.names, idempotencyTable: expired });
    const again = await events(w, expired)(event, lambdaContext());
    expect(again).toMatchObject({ status: 'decided', decisions: [{ duplicate: true }] });
    w.clock.now = T0 + 2 * HOUR_MS;
    await w.run();

    // Assess: never sent again, never marked again
    expect(sent()).toEqual([]);
    expect(await w.decisions('ACCAEXAMPLEKEYNEVER01')).toHaveLength(1);
    expect((await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYNEVER01'))?.pendingNotice?.digest).toBe(
      'digest/sweep-2',
    );
  });

  it('a notice marked after a digest phase sent its first owner waits for the next sweep: listed once, never lost', async () => {
    // Prepare: two owners with a key each; the second owner's digest fails once (SNS), after the first was sent
    const w = await world();
    for (const who of ['alice', 'bob']) {
      w.fake.user(`svc-${who}`, tags(`${who}@example.com`));
      w.fake.key({
        keyId: `ACCAEXAMPLEKEY${who.toUpperCase().padEnd(5, 'X')}01`,
        userName: `svc-${who}`,
        createdAt: iso(T0 - DAY_MS),
      });
    }
    sns.on(PublishCommand).resolvesOnce({ MessageId: 'm-a' }).rejectsOnce(new Error('SNS unavailable'));
    await expect(w.run()).rejects.toThrow('SNS unavailable');
    expect(sent().map(ownerOf)).toEqual(['alice@example.com', 'bob@example.com']);
    sns.reset();
    sns.on(PublishCommand).resolves({ MessageId: 'm-b' });
    // Each owner gets a new key while the digest phase is unfinished: their notices wait for the next digest.
    const handler = events(w);
    for (const who of ['alice', 'bob']) {
      const keyId = `ACCAEXAMPLEKEY${who.toUpperCase().padEnd(5, 'X')}02`;
      w.fake.key({ keyId, userName: `svc-${who}`, createdAt: iso(T0) });
      await handler(
        eventBridgeEvent(
          createCredentialRecord({ userName: `svc-${who}`, keyId, eventTime: iso(T0 + 60_000) }),
        ),
        lambdaContext(),
      );
    }
    w.clock.now = T0 + 2 * 60_000;

    // Act: the retry finishes the digest phase (bob's digest), then the next sweep
    sns.resetHistory();
    await w.run();
    const resumed = sent();
    sns.resetHistory();
    w.clock.now = T0 + HOUR_MS;
    await w.run();
    const next = sent();

    // Assess: bob's digest on the retry lists only the sweep's key; the next sweep's digests list the new keys
    expect(resumed.map(ownerOf)).toEqual(['bob@example.com']);
    expect(listings(resumed[0]?.Message, 'ACCAEXAMPLEKEYBOBXX01')).toBe(1);
    expect(listings(resumed[0]?.Message, 'ACCAEXAMPLEKEYBOBXX02')).toBe(0);
    expect(next.map(ownerOf).sort()).toEqual(['alice@example.com', 'bob@example.com']);
    const all = [...resumed, ...next].map((m) => m.Message).join('\n');
    for (const k of ['ACCAEXAMPLEKEYALICE02', 'ACCAEXAMPLEKEYBOBXX02']) expect(listings(all, k)).toBe(1);
    for (const k of ['ACCAEXAMPLEKEYALICE01', 'ACCAEXAMPLEKEYBOBXX01']) {
      expect(listings(next.map((m) => m.Message).join('\n'), k)).toBe(0);
    }
  });

  it('sends a critical event’s notice (an applied deactivation) at once and never lists it in a digest', async () => {
    // Prepare
    const w = await world({ mode: 'enforce' });
    w.fake.user('svc-ok', tags('team@example.com'));
    const event = neverExpiringKeyCreated(w, T0 - 60_000);

    // Act
    await events(w)(event, lambdaContext());

    // Assess: published now, on its own; nothing pending
    expect(sent()).toHaveLength(1);
    expect(sent()[0]?.Subject).toMatch(/HIGH: Bedrock API key ACCAEXAMPLEKEYNEVER01 on svc-ok deactivated/);
    const [decision] = await w.decisions('ACCAEXAMPLEKEYNEVER01');
    expect(decision).toMatchObject({ applied: true, notice: 'action' });
    expect(decision?.noticeDigest).toBeUndefined();
    expect((await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYNEVER01'))?.pendingNotice).toBeUndefined();

    // Act: the next sweep
    sns.resetHistory();
    w.clock.now = T0 + HOUR_MS;
    await w.run();

    // Assess: the notice is not listed again
    expect(sent().map((m) => listings(m.Message, 'ACCAEXAMPLEKEYNEVER01'))).toEqual(sent().map(() => 0));
  });

  it('a key deleted before the next sweep: its waiting notice is replaced by a resolved one, listed once', async () => {
    // Prepare: a planned deactivation waiting for the digest (audit mode)
    const w = await world();
    w.fake.user('svc-ok', tags('team@example.com'));
    const handler = events(w);
    await handler(neverExpiringKeyCreated(w, T0 - 120_000), lambdaContext());

    // Act: the key is deleted (its event), then the next sweep
    w.fake.remove('ACCAEXAMPLEKEYNEVER01');
    await handler(
      eventBridgeEvent({
        ...credentialChangeRecord('DeleteServiceSpecificCredential', 'svc-ok', 'ACCAEXAMPLEKEYNEVER01'),
        eventTime: iso(T0 - 60_000),
      }),
      lambdaContext(),
    );
    expect(sent()).toEqual([]);
    w.clock.now = T0 + HOUR_MS;
    await w.run();

    // Assess: one digest, the key listed once, as resolved
    expectListedOnceAsResolved();
  });

  it('a key deleted before the next sweep without an event: the sweep finds it gone, listed once as resolved', async () => {
    // Prepare: a planned deactivation waiting for the digest (audit mode); the key is then deleted, its event lost
    const w = await world();
    w.fake.user('svc-ok', tags('team@example.com'));
    await events(w)(neverExpiringKeyCreated(w, T0 - 120_000), lambdaContext());
    w.fake.remove('ACCAEXAMPLEKEYNEVER01');

    // Act
    w.clock.now = T0 + HOUR_MS;
    await w.run();

    // Assess: one digest, the key listed once, as resolved
    expectListedOnceAsResolved();
  });
});
