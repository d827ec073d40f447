import {
  GetAccountAuthorizationDetailsCommand,
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import {
  DynamoSweepStateStore,
  SweepLeaseLostError,
  type SweepState,
} from '../../lambda/adapters/sweep-state';
import { DynamoUsageStore, usageStoreFromEnv } from '../../lambda/adapters/usage-store';
import { DAY_MS, HOUR_MS } from '../../lambda/domain/dates';
import type { Decision } from '../../lambda/domain/types';
import type { UsageAggregate, UsageSource } from '../../lambda/domain/usage-types';
import {
  type CreatorSource,
  createSweepHandler,
  InvalidSweepEventError,
  type SweepRuntime,
} from '../../lambda/handlers/sweep-handler';
import type { ConfigInput } from '../../lambda/shared/config';
import { type Capture, captureOutput } from '../support/capture';
import { startTestDynamo } from '../support/dynamo';
import { FULL_TAGS } from '../support/fake-iam-account';
import { type SweepWorld, sweepContext, sweepWorld } from '../support/sweep-world';

const ACCOUNT = '111122223333';
const T0 = Date.parse('2026-11-20T10:00:00Z');
const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);

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

type World = SweepWorld;

/** Fresh tables (new names), a fake account installed on the IAM mock, and a controllable clock. */
function world(config: ConfigInput = {}, over: Partial<SweepRuntime> = {}): Promise<World> {
  n += 1;
  return sweepWorld({ db, iam, prefix: 'sweep', n, t0: T0, config, over });
}

const context = sweepContext;

const iso = (ms: number) => new Date(ms).toISOString();

/** A promise with its resolver, so a test can wait for (or release) a point inside a mocked call. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
const notices = () => sns.commandCalls(PublishCommand).map((c) => c.args[0].input);

describe('sweep: discovery and reconciliation', () => {
  it('evaluates every key of every user, page by page, as discovered; other services are ignored', async () => {
    // Prepare: 3 Bedrock keys over 2 pages, one CodeCommit credential
    const w = await world();
    w.fake.keysPageSize = 2;
    w.fake
      .key({
        keyId: 'ACCAEXAMPLEKEYOK00001',
        userName: 'svc-ok',
        createdAt: iso(T0 - DAY_MS),
        expiresAt: iso(T0 + 29 * DAY_MS),
      })
      .key({
        keyId: 'ACCAEXAMPLECODECOMMIT',
        userName: 'svc-ok',
        createdAt: iso(T0),
        serviceName: 'codecommit.amazonaws.com',
      })
      .key({ keyId: 'ACCAEXAMPLEKEYNEVER01', userName: 'svc-never', createdAt: iso(T0 - 400 * DAY_MS) })
      .user('svc-untagged', { tags: {} })
      .key({
        keyId: 'ACCAEXAMPLEKEYUNTAG01',
        userName: 'svc-untagged',
        createdAt: iso(T0 - DAY_MS),
        expiresAt: iso(T0 + 29 * DAY_MS),
      });
    // Act
    const result = await w.run();
    // Assess: outcome and counters
    expect(result).toMatchObject({
      status: 'done',
      sweepId: 'sweep-1',
      phase: 'done',
      counters: {
        keysSeen: 3,
        decisionsRecorded: 3,
        noticesSent: 2,
        keysDeactivated: 0,
        keysGone: 0,
        messagesSent: 1,
      },
    });
    // IAM: AllUsers pages only, and the bulk snapshot; no per-user calls
    const lists = iam.commandCalls(ListServiceSpecificCredentialsCommand).map((c) => c.args[0].input);
    expect(lists).toEqual([
      { AllUsers: true, ServiceName: 'bedrock.amazonaws.com', MaxItems: 1000, Marker: undefined },
      { AllUsers: true, ServiceName: 'bedrock.amazonaws.com', MaxItems: 1000, Marker: '2' },
    ]);
    expect(iam).toHaveReceivedCommandTimes(GetAccountAuthorizationDetailsCommand, 1);
    expect(iam).toHaveReceivedCommandTimes(ListUserTagsCommand, 0);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    // Decisions
    const [ok] = await w.decisions('ACCAEXAMPLEKEYOK00001');
    expect(ok).toMatchObject({
      decisionId: `${iso(T0)}/sweep/sweep-1`,
      trigger: { kind: 'sweep', eventId: 'sweep-1', eventTime: iso(T0) },
      action: 'ALLOW',
      violations: [],
      owner: { value: 'team@example.com', source: 'tag' },
    });
    expect(ok?.notice).toBeUndefined();
    const [never] = await w.decisions('ACCAEXAMPLEKEYNEVER01');
    expect(never).toMatchObject({ action: 'DEACTIVATE', applied: false, mode: 'audit', notice: 'action' });
    const [untagged] = await w.decisions('ACCAEXAMPLEKEYUNTAG01');
    expect(untagged).toMatchObject({ action: 'NOTIFY', deadline: iso(T0 + 72 * HOUR_MS), notice: 'first' });
    expect(untagged?.violations.map((v) => v.code)).toEqual([
      'MISSING_OWNER',
      'MISSING_PURPOSE',
      'MISSING_REVIEW_CADENCE',
    ]);
    expect(await w.decisions('ACCAEXAMPLECODECOMMIT')).toEqual([]);
    // The account's first sweep: the two notices go in one summary to the fallback owner.
    expect(never?.noticeDigest).toBe('summary/sweep-1');
    expect(untagged?.noticeDigest).toBe('summary/sweep-1');
    expect(notices()).toHaveLength(1);
    expect(notices()[0]?.MessageAttributes?.owner?.StringValue).toBe('security@example.com');
    expect(await w.state()).toMatchObject({ phase: 'done', holder: null, pages: 2, finishedAt: iso(T0) });
  });

  it('a second sweep that finds nothing new records nothing and sends nothing', async () => {
    // Prepare
    const w = await world();
    w.fake
      .key({
        keyId: 'ACCAEXAMPLEKEYOK00001',
        userName: 'svc-ok',
        createdAt: iso(T0),
        expiresAt: iso(T0 + 30 * DAY_MS),
      })
      .key({ keyId: 'ACCAEXAMPLEKEYNEVER01', userName: 'svc-never', createdAt: iso(T0) })
      .user('svc-untagged', { tags: {} })
      .key({
        keyId: 'ACCAEXAMPLEKEYUNTAG01',
        userName: 'svc-untagged',
        createdAt: iso(T0),
        expiresAt: iso(T0 + 30 * DAY_MS),
      });
    await w.run();
    sns.resetHistory();
    w.clock.now = T0 + HOUR_MS;
    // Act
    const second = await w.run();
    // Assess
    expect(second).toMatchObject({
      status: 'done',
      sweepId: 'sweep-2',
      counters: { keysSeen: 3, decisionsRecorded: 0, noticesSent: 0, keysDeactivated: 0, keysGone: 0 },
    });
    expect(notices()).toEqual([]);
    for (const id of ['ACCAEXAMPLEKEYOK00001', 'ACCAEXAMPLEKEYNEVER01', 'ACCAEXAMPLEKEYUNTAG01']) {
      expect(await w.decisions(id)).toHaveLength(1);
      expect((await w.audit.getKnownKey(ACCOUNT, id))?.lastSweepId).toBe('sweep-2');
    }
  });

  it('records keys gone from IAM as Deleted (resolved notice when they had violations) and changed status or expiry', async () => {
    // Prepare
    const w = await world();
    w.fake
      .key({
        keyId: 'ACCAEXAMPLEKEYOK00001',
        userName: 'svc-ok',
        createdAt: iso(T0),
        expiresAt: iso(T0 + 30 * DAY_MS),
      })
      .key({
        keyId: 'ACCAEXAMPLEKEYOK00002',
        userName: 'svc-ok',
        createdAt: iso(T0),
        expiresAt: iso(T0 + 30 * DAY_MS),
      })
      .key({
        keyId: 'ACCAEXAMPLEKEYCLEAN01',
        userName: 'svc-clean',
        createdAt: iso(T0),
        expiresAt: iso(T0 + 30 * DAY_MS),
      })
      .user('svc-untagged', { tags: {} })
      .key({
        keyId: 'ACCAEXAMPLEKEYUNTAG01',
        userName: 'svc-untagged',
        createdAt: iso(T0),
        expiresAt: iso(T0 + 30 * DAY_MS),
      });
    await w.run();
    sns.resetHistory();
    w.fake.remove('ACCAEXAMPLEKEYUNTAG01');
    w.fake.remove('ACCAEXAMPLEKEYCLEAN01');
    w.fake.find('ACCAEXAMPLEKEYOK00001').status = 'Inactive';
    w.fake.find('ACCAEXAMPLEKEYOK00002').expiresAt = iso(T0 + 20 * DAY_MS);
    w.clock.now = T0 + HOUR_MS;
    // Act
    const result = await w.run();
    // Assess
    expect(result.counters).toEqual({
      keysSeen: 2,
      decisionsRecorded: 4,
      noticesSent: 1,
      keysDeactivated: 0,
      keysGone: 2,
      messagesSent: 1,
    });
    const untagged = await w.decisions('ACCAEXAMPLEKEYUNTAG01');
    expect(untagged.map((d) => [d.status, d.notice ?? null])).toEqual([
      ['Active', 'first'],
      ['Deleted', 'resolved'],
    ]);
    expect((await w.decisions('ACCAEXAMPLEKEYCLEAN01')).map((d) => [d.status, d.notice ?? null])).toEqual([
      ['Active', null],
      ['Deleted', null],
    ]);
    expect((await w.decisions('ACCAEXAMPLEKEYOK00001')).map((d) => d.status)).toEqual(['Active', 'Inactive']);
    expect((await w.decisions('ACCAEXAMPLEKEYOK00002')).map((d) => d.expiresAt)).toEqual([
      iso(T0 + 30 * DAY_MS),
      iso(T0 + 20 * DAY_MS),
    ]);
    expect(notices()).toHaveLength(1);
    expect(notices()[0]?.Subject).toMatch(/resolved/i);
    // A gone key is recorded once: the next sweep does not see it again.
    w.clock.now = T0 + 2 * HOUR_MS;
    expect((await w.run()).counters).toMatchObject({ keysSeen: 2, decisionsRecorded: 0, keysGone: 0 });
  });

  it('does not record as deleted a key the pages missed but IAM still has (re-checked live)', async () => {
    // Prepare: the key is on record from an earlier sweep, then the listing misses it once
    const w = await world();
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYMISSED1',
      userName: 'svc-ok',
      createdAt: iso(T0),
      expiresAt: iso(T0 + 30 * DAY_MS),
    });
    await w.run();
    w.fake.hiddenFromListing.add('ACCAEXAMPLEKEYMISSED1');
    w.clock.now = T0 + HOUR_MS;
    // Act
    const result = await w.run();
    // Assess
    expect(result.counters).toMatchObject({ keysSeen: 1, decisionsRecorded: 0, keysGone: 0 });
    expect(iam).toHaveReceivedCommandWith(ListServiceSpecificCredentialsCommand, {
      UserName: 'svc-ok',
      ServiceName: 'bedrock.amazonaws.com',
    });
    expect(await w.decisions('ACCAEXAMPLEKEYMISSED1')).toHaveLength(1);
    expect((await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYMISSED1'))?.status).toBe('Active');
  });
});

describe('sweep: time-driven rules across sweeps', () => {
  async function graceWorld(mode: 'audit' | 'enforce') {
    const w = await world({ mode });
    w.fake.user('svc-nopurpose', { tags: { owner: 'team@example.com', 'review-cadence': '1y' } });
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYGRACE01',
      userName: 'svc-nopurpose',
      createdAt: iso(T0),
      expiresAt: iso(T0 + 60 * DAY_MS),
    });
    return w;
  }

  /** Sweeps at T0 + hours and returns the notice each sweep sent (null: none). */
  async function sweepAt(w: World, hours: number[]): Promise<Array<string | null>> {
    const sent: Array<string | null> = [];
    for (const h of hours) {
      w.clock.now = T0 + h * HOUR_MS;
      const before = notices().length;
      await w.run();
      const after = notices();
      sent.push(
        after.length > before
          ? ((after[after.length - 1]?.MessageAttributes?.action?.StringValue ?? '') as string)
          : null,
      );
    }
    return sent;
  }

  it('sends first notice, reminder and final warning once each, then deactivates when the deadline passes (enforce)', async () => {
    // Prepare
    const w = await graceWorld('enforce');
    // Act: grace 72 h, reminder half-way (36 h), final warning 24 h before (48 h), deadline at 72 h
    const sent = await sweepAt(w, [0, 1, 36, 37, 48, 49, 72, 73]);
    // Assess
    const decisions = await w.decisions('ACCAEXAMPLEKEYGRACE01');
    expect(decisions.map((d) => [d.status, d.notice ?? null, d.action, d.applied])).toEqual([
      ['Active', 'first', 'NOTIFY', false],
      ['Active', 'reminder', 'NOTIFY', false],
      ['Active', 'final', 'NOTIFY', false],
      ['Active', 'action', 'DEACTIVATE', true],
      // The next sweep sees the key Inactive (our doing): recorded once, with no notice.
      ['Inactive', null, 'ALLOW', false],
    ]);
    expect(decisions[3]?.reason).toMatch(/grace deadline .* passed with MISSING_PURPOSE/);
    expect(sent.filter((s) => s !== null)).toHaveLength(4);
    expect(sent[1]).toBeNull();
    expect(sent[3]).toBeNull();
    expect(sent[5]).toBeNull();
    expect(sent[7]).toBeNull();
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      UserName: 'svc-nopurpose',
      ServiceSpecificCredentialId: 'ACCAEXAMPLEKEYGRACE01',
      Status: 'Inactive',
    });
    expect(w.fake.find('ACCAEXAMPLEKEYGRACE01').status).toBe('Inactive');
  });

  it('records the deactivation as planned in audit mode, and changes nothing in IAM', async () => {
    // Prepare
    const w = await graceWorld('audit');
    // Act
    await sweepAt(w, [0, 72, 73]);
    // Assess
    const decisions = await w.decisions('ACCAEXAMPLEKEYGRACE01');
    expect(decisions.map((d) => [d.action, d.applied, d.notice ?? null])).toEqual([
      ['NOTIFY', false, 'first'],
      ['DEACTIVATE', false, 'action'],
    ]);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    expect(w.fake.find('ACCAEXAMPLEKEYGRACE01').status).toBe('Active');
  });

  it('reminds of expiry once per threshold (14 and 3 days)', async () => {
    // Prepare: a compliant 30-day key, 20 days left at T0
    const w = await world();
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYEXPIRE1',
      userName: 'svc-ok',
      createdAt: iso(T0 - 10 * DAY_MS),
      expiresAt: iso(T0 + 20 * DAY_MS),
    });
    // Act: 20, 13, 12, 2.5, 2 days left
    const sent = await sweepAt(w, [0, 7 * 24, 8 * 24, 17.5 * 24, 18 * 24]);
    // Assess
    expect(sent.map((s) => s !== null)).toEqual([false, true, false, true, false]);
    const decisions = await w.decisions('ACCAEXAMPLEKEYEXPIRE1');
    expect(decisions.map((d) => d.notice ?? null)).toEqual([null, 'expiring', 'expiring']);
    expect(decisions[1]?.violations.map((v) => v.code)).toEqual(['EXPIRING_SOON']);
    expect((await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYEXPIRE1'))?.history?.expiryReminders).toEqual([
      14, 3,
    ]);
  });

  it('deactivates again, with a critical notice, a key we deactivated that became Active again', async () => {
    // Prepare
    const w = await world({ mode: 'enforce' });
    w.fake.key({ keyId: 'ACCAEXAMPLEKEYREACT01', userName: 'svc-never', createdAt: iso(T0) });
    await w.run();
    expect(w.fake.find('ACCAEXAMPLEKEYREACT01').status).toBe('Inactive');
    // The next sweeps see it Inactive: recorded once (no notice), then nothing.
    w.clock.now = T0 + HOUR_MS;
    expect((await w.run()).counters).toMatchObject({ decisionsRecorded: 1, noticesSent: 0 });
    w.clock.now = T0 + 1.5 * HOUR_MS;
    expect((await w.run()).counters).toMatchObject({ decisionsRecorded: 0, noticesSent: 0 });
    w.fake.find('ACCAEXAMPLEKEYREACT01').status = 'Active';
    w.clock.now = T0 + 2 * HOUR_MS;
    // Act
    const result = await w.run();
    // Assess
    expect(result.counters).toMatchObject({ decisionsRecorded: 1, keysDeactivated: 1, noticesSent: 1 });
    const last = (await w.decisions('ACCAEXAMPLEKEYREACT01')).at(-1);
    expect(last).toMatchObject({ action: 'DEACTIVATE', applied: true, notice: 'action' });
    expect(last?.violations).toContainEqual(
      expect.objectContaining({ code: 'REACTIVATED_WITHOUT_APPROVAL', severity: 'critical' }),
    );
    expect(notices().at(-1)?.MessageAttributes?.severity?.StringValue).toBe('critical');
    expect(w.fake.find('ACCAEXAMPLEKEYREACT01').status).toBe('Inactive');
  });

  it('finds broad permissions and other credentials from the account snapshot', async () => {
    // Prepare
    const w = await world();
    w.fake.groups.set('admins', {
      attached: [{ name: 'AdministratorAccess', arn: 'arn:aws:iam::aws:policy/AdministratorAccess' }],
    });
    w.fake.user('svc-risky', { tags: FULL_TAGS, groups: ['admins'], activeAccessKeys: 1, password: true });
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYRISKY01',
      userName: 'svc-risky',
      createdAt: iso(T0),
      expiresAt: iso(T0 + 30 * DAY_MS),
    });
    // Act
    await w.run();
    // Assess
    const [d] = await w.decisions('ACCAEXAMPLEKEYRISKY01');
    expect(d?.violations.map((v) => [v.code, v.severity])).toEqual([
      ['BROAD_PERMISSIONS', 'high'],
      ['USER_HAS_OTHER_CREDENTIALS', 'high'],
    ]);
    expect(d?.violations[0]?.detail).toContain('AWS managed policy AdministratorAccess (via group:admins)');
    expect(d?.violations[1]?.detail).toContain('1 active access key(s) and a console password');
  });
});

describe('sweep: resumption, failures and concurrency', () => {
  function fiveKeys(w: World) {
    w.fake.keysPageSize = 2;
    w.fake.user('svc-untagged', { tags: {} });
    for (let i = 1; i <= 5; i++) {
      w.fake.key({
        keyId: `ACCAEXAMPLEKEYRESUME${i}`,
        userName: i % 2 ? 'svc-untagged' : 'svc-ok',
        createdAt: iso(T0),
        expiresAt: iso(T0 + 30 * DAY_MS),
      });
    }
  }

  it('pauses when time runs short and resumes from the saved marker: no key lost or counted twice', async () => {
    // Prepare: plenty of time for two pages, then less than the safety margin
    const w = await world();
    fiveKeys(w);
    const remaining = [600_000, 600_000, 60_000];
    // Act
    const first = await w.run({}, () => remaining.shift() ?? 60_000);
    // Assess
    expect(first).toMatchObject({
      status: 'paused',
      phase: 'keys',
      counters: { keysSeen: 4, decisionsRecorded: 4, noticesSent: 2, messagesSent: 0 },
    });
    // Nothing is sent before the sweep has every key: the notices wait for the summary.
    expect(notices()).toEqual([]);
    expect(await w.state()).toMatchObject({ marker: '4', pages: 2, holder: null, invocations: 1 });
    // Act: the continuation schedule
    w.clock.now = T0 + 5 * 60_000;
    const second = await w.run({ continue: true });
    // Assess
    expect(second).toMatchObject({
      status: 'done',
      sweepId: 'sweep-1',
      counters: { keysSeen: 5, decisionsRecorded: 5, noticesSent: 3, keysGone: 0, messagesSent: 1 },
      invocation: { keysSeen: 1, decisionsRecorded: 1, noticesSent: 1, messagesSent: 1 },
    });
    expect(await w.state()).toMatchObject({ invocations: 2, pages: 3, phase: 'done' });
    expect(
      iam.commandCalls(ListServiceSpecificCredentialsCommand).map((c) => c.args[0].input.Marker),
    ).toEqual([undefined, '2', '4']);
    for (let i = 1; i <= 5; i++) {
      const ds = await w.decisions(`ACCAEXAMPLEKEYRESUME${i}`);
      expect(ds).toHaveLength(1);
      // The decision's time is the sweep's start, whichever invocation made it.
      expect(ds[0]?.decisionId).toBe(`${iso(T0)}/sweep/sweep-1`);
    }
    // One summary, listing the three keys with a notice, from both invocations.
    expect(notices()).toHaveLength(1);
    for (const k of [1, 3, 5]) expect(notices()[0]?.Message).toContain(`ACCAEXAMPLEKEYRESUME${k}`);
  });

  it('after a failure mid-page, the retry redoes that page only: one decision per key, one notice each, exact counters', async () => {
    // Prepare: the approvals read fails once for key 3 (the second page); SNS fails the first summary publish
    let failed = false;
    const approvals = {
      recordsFor: async (_account: string, keyId: string) => {
        if (keyId === 'ACCAEXAMPLEKEYRESUME3' && !failed) {
          failed = true;
          throw Object.assign(new Error('DynamoDB unavailable'), { name: 'InternalServerError' });
        }
        return { approvals: [], lastReviewAt: null };
      },
    };
    const w = await world({}, { approvals });
    fiveKeys(w);
    let publishes = 0;
    sns.on(PublishCommand).callsFake(() => {
      publishes += 1;
      if (publishes === 1)
        throw Object.assign(new Error('SNS unavailable'), { name: 'InternalErrorException' });
      return { MessageId: `m-${publishes}` };
    });
    // Act
    await expect(w.run({}, () => 600_000, 'req-fail')).rejects.toThrow('DynamoDB unavailable');
    // Assess: the first page is saved, the lease released
    expect(await w.state()).toMatchObject({
      phase: 'keys',
      marker: '2',
      pages: 1,
      holder: null,
      counters: { keysSeen: 2, decisionsRecorded: 2, noticesSent: 1 },
    });
    // Act: Lambda's retry (same request id): the page is redone, then the summary's publish fails
    await expect(w.run({}, () => 600_000, 'req-fail')).rejects.toThrow('SNS unavailable');
    expect(await w.state()).toMatchObject({ phase: 'digest', holder: null });
    // Act: the next retry sends the summary
    const retry = await w.run({}, () => 600_000, 'req-fail');
    // Assess
    expect(retry).toMatchObject({
      status: 'done',
      counters: {
        keysSeen: 5,
        decisionsRecorded: 5,
        noticesSent: 3,
        keysDeactivated: 0,
        keysGone: 0,
        messagesSent: 1,
      },
    });
    for (let i = 1; i <= 5; i++) expect(await w.decisions(`ACCAEXAMPLEKEYRESUME${i}`)).toHaveLength(1);
    // Keys 1, 3, 5 get a first notice, all in the summary; its failed publish is sent again, once, on the retry.
    const sent = sns.commandCalls(PublishCommand).map((c) => c.args[0].input.Message ?? '');
    expect(sent).toHaveLength(2);
    expect(sent[1]).toBe(sent[0]);
    for (const k of [1, 3, 5]) expect(sent[1]).toContain(`ACCAEXAMPLEKEYRESUME${k}`);
    for (const k of [2, 4]) expect(sent[1]).not.toContain(`ACCAEXAMPLEKEYRESUME${k}`);
  });

  it('rethrows IAM throttling the SDK could not absorb, keeping the progress for the next run', async () => {
    // Prepare
    const w = await world();
    fiveKeys(w);
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: {} });
    iam
      .on(ListServiceSpecificCredentialsCommand, { AllUsers: true, Marker: '2' })
      .rejectsOnce(throttled)
      .callsFake((input) => w.fake.listKeys(input));
    // Act / Assess
    await expect(w.run()).rejects.toThrow('Rate exceeded');
    expect(await w.state()).toMatchObject({ phase: 'keys', marker: '2', holder: null });
    const next = await w.run();
    expect(next).toMatchObject({ status: 'done', counters: { keysSeen: 5, decisionsRecorded: 5 } });
    expect(out.lines().some((l) => l.message?.toString().startsWith('sweep failed'))).toBe(true);
  });

  it('keeps the coverage record: the failure and its reason, then the complete sweep, carried into the next sweep', async () => {
    // Prepare: the second page is throttled past the SDK's retries once
    const w = await world();
    fiveKeys(w);
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: {} });
    iam
      .on(ListServiceSpecificCredentialsCommand, { AllUsers: true, Marker: '2' })
      .rejectsOnce(throttled)
      .callsFake((input) => w.fake.listKeys(input));
    const store = new DynamoSweepStateStore(db.doc, w.rt.sweepStateTable);
    // Act: a failed sweep
    await expect(w.run()).rejects.toThrow('Rate exceeded');
    // Assess: the failure, and no complete sweep yet
    expect(await store.coverage()).toEqual([
      {
        accountId: ACCOUNT,
        lastCompletedAt: null,
        lastCompletedSweepId: null,
        lastFailure: { at: iso(T0), sweepId: 'sweep-1', reason: 'Throttling: Rate exceeded' },
        running: { sweepId: 'sweep-1', startedAt: iso(T0), phase: 'keys' },
      },
    ]);
    // Act: the retry completes it, an hour later
    w.clock.now = T0 + HOUR_MS;
    await w.run();
    // Assess: completed now; the earlier failure is kept (older than the completion)
    expect(await store.coverage()).toEqual([
      expect.objectContaining({
        lastCompletedAt: iso(T0 + HOUR_MS),
        lastCompletedSweepId: 'sweep-1',
        lastFailure: expect.objectContaining({ reason: 'Throttling: Rate exceeded' }),
        running: null,
      }),
    ]);
    // Act: the next sweep starts: the record is carried
    w.clock.now = T0 + 2 * HOUR_MS;
    await w.run();
    expect(await w.state()).toMatchObject({
      sweepId: 'sweep-2',
      lastCompletedAt: iso(T0 + 2 * HOUR_MS),
      lastCompletedSweepId: 'sweep-2',
      lastFailure: { sweepId: 'sweep-1' },
    });
  });

  it('refuses a second invocation while one is running, and lets a stale one be taken over', async () => {
    // Prepare: the first invocation blocks inside its first IAM page (it holds the lease by then)
    const w = await world();
    fiveKeys(w);
    const entered = deferred();
    const gate = deferred();
    iam
      .on(ListServiceSpecificCredentialsCommand, { AllUsers: true, Marker: undefined })
      .callsFakeOnce(async (input) => {
        entered.resolve();
        await gate.promise;
        return w.fake.listKeys(input);
      })
      .callsFake((input) => w.fake.listKeys(input));
    const running = w.run({}, () => 600_000, 'req-a');
    await entered.promise;
    // Act
    const second = await w.run({}, () => 600_000, 'req-b');
    // Assess
    expect(second).toMatchObject({ status: 'locked', sweepId: 'sweep-1' });
    gate.resolve();
    expect(await running).toMatchObject({ status: 'done', counters: { keysSeen: 5, decisionsRecorded: 5 } });

    // Prepare: a holder that died 21 minutes ago, mid-sweep
    const dead = (await w.state()) as SweepState;
    const store = new DynamoSweepStateStore(db.doc, w.rt.sweepStateTable);
    w.clock.now = T0 + 2 * HOUR_MS;
    const stuck: SweepState = {
      ...dead,
      sweepId: 'sweep-stuck',
      startedAt: iso(T0 + HOUR_MS),
      phase: 'keys',
      marker: '2',
      holder: 'req-dead',
      heartbeatAt: iso(w.clock.now - 21 * 60_000),
      finishedAt: null,
    };
    await db.doc.send(
      new (await import('@aws-sdk/lib-dynamodb')).PutCommand({
        TableName: w.rt.sweepStateTable,
        Item: stuck,
      }),
    );
    // Act
    const takeover = await w.run({}, () => 600_000, 'req-c');
    // Assess
    expect(takeover).toMatchObject({ status: 'done', sweepId: 'sweep-stuck' });
    expect(await store.get(ACCOUNT)).toMatchObject({ holder: null, phase: 'done', sweepId: 'sweep-stuck' });
    expect(
      out.lines().some((l) => l.message === 'took over a sweep whose holder stopped sending heartbeats'),
    ).toBe(true);
  });

  it('a holder whose lease was taken over cannot save: its save is refused, it stops, and the new holder finishes', async () => {
    // Prepare: invocation A takes the lease and blocks inside its first IAM page
    const w = await world();
    fiveKeys(w);
    const aEntered = deferred();
    const aGate = deferred();
    const bEntered = deferred();
    const bGate = deferred();
    iam
      .on(ListServiceSpecificCredentialsCommand, { AllUsers: true, Marker: undefined })
      .callsFakeOnce(async (input) => {
        aEntered.resolve();
        await aGate.promise;
        return w.fake.listKeys(input);
      })
      .callsFakeOnce(async (input) => {
        bEntered.resolve();
        await bGate.promise;
        return w.fake.listKeys(input);
      })
      .callsFake((input) => w.fake.listKeys(input));
    const a = w.run({}, () => 600_000, 'req-a');
    const aOutcome = a.then(
      () => null,
      (err: unknown) => err,
    );
    await aEntered.promise;
    // A's heartbeat goes stale, and invocation B takes the sweep over (and blocks in its own first page)
    w.clock.now = T0 + 21 * 60_000;
    const b = w.run({}, () => 600_000, 'req-b');
    await bEntered.promise;
    const takenOver = await w.state();
    expect(takenOver).toMatchObject({ sweepId: 'sweep-1', holder: 'req-b', invocations: 2, pages: 0 });

    // Act: A gets its page, decides it and tries to save its progress
    aGate.resolve();
    const aError = await aOutcome;

    // Assess: A's save was refused; A wrote nothing to the state (no save, no release) and stopped there
    expect(aError).toBeInstanceOf(SweepLeaseLostError);
    expect((aError as Error).message).toContain('req-a');
    expect(await w.state()).toEqual(takenOver);
    expect(
      iam.commandCalls(ListServiceSpecificCredentialsCommand).map((c) => c.args[0].input.Marker),
    ).toEqual([undefined, undefined]);
    const failed = out.lines().find((l) => l.message?.toString().startsWith('sweep failed'));
    expect(failed?.error).toMatchObject({ name: 'SweepLeaseLostError' });
    expect(out.lines().some((l) => l.message?.toString().startsWith('could not release'))).toBe(false);

    // Act: B goes on
    bGate.resolve();
    const done = await b;

    // Assess: B finishes the sweep alone; the page A decided is counted once, each key has one decision
    expect(done).toMatchObject({
      status: 'done',
      sweepId: 'sweep-1',
      counters: { keysSeen: 5, decisionsRecorded: 5, noticesSent: 3 },
    });
    expect(await w.state()).toMatchObject({ holder: null, phase: 'done', pages: 3, invocations: 2 });
    for (let i = 1; i <= 5; i++) expect(await w.decisions(`ACCAEXAMPLEKEYRESUME${i}`)).toHaveLength(1);
    expect(
      out.lines().some((l) => l.message === 'took over a sweep whose holder stopped sending heartbeats'),
    ).toBe(true);
  });

  it('a continue-only invocation with nothing to continue does nothing', async () => {
    // Prepare
    const w = await world();
    fiveKeys(w);
    // Act
    const idle = await w.run({ continue: true });
    // Assess
    expect(idle).toMatchObject({ status: 'idle', sweepId: null });
    expect(iam.calls()).toHaveLength(0);
    await w.run();
    expect(await w.run({ continue: true, sweepId: 'sweep-1' })).toMatchObject({
      status: 'idle',
      sweepId: 'sweep-1',
    });
  });

  it('rejects an input that is not a sweep request', async () => {
    const w = await world();
    await expect(w.run({ detail: { eventName: 'x' } })).rejects.toThrow(InvalidSweepEventError);
  });
});

describe('sweep: creator attribution', () => {
  it('looks creators up once per invocation for keys without one, since the previous sweep after the first', async () => {
    // Prepare
    const calls: Array<{ since: string; until: string }> = [];
    const creators: CreatorSource = {
      creators: async (_account, since, until) => {
        calls.push({ since: since.toISOString(), until: until.toISOString() });
        return new Map([['ACCAEXAMPLEKEYCREATE1', `arn:aws:iam::${ACCOUNT}:user/bob`]]);
      },
    };
    const w = await world({}, { creators });
    w.fake.keysPageSize = 1;
    w.fake.user('svc-noowner', { tags: { purpose: 'x', 'review-cadence': '1y' } });
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYCREATE1',
      userName: 'svc-noowner',
      createdAt: iso(T0 - DAY_MS),
      expiresAt: iso(T0 + 20 * DAY_MS),
    });
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYCREATE2',
      userName: 'svc-noowner',
      createdAt: iso(T0 - DAY_MS),
      expiresAt: iso(T0 + 20 * DAY_MS),
    });
    // Act: the first sweep looks back 90 days; the second only since the first (keys older than that were
    // looked up already), and only because a newer key appeared.
    await w.run();
    w.clock.now = T0 + HOUR_MS;
    await w.run();
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYCREATE3',
      userName: 'svc-noowner',
      createdAt: iso(T0 + 0.5 * HOUR_MS),
      expiresAt: iso(T0 + 20 * DAY_MS),
    });
    w.clock.now = T0 + 2 * HOUR_MS;
    await w.run();
    // Assess
    expect(calls).toEqual([
      { since: iso(T0 - 90 * DAY_MS), until: iso(T0) },
      { since: iso(T0), until: iso(T0 + 2 * HOUR_MS) },
    ]);
    const [d] = await w.decisions('ACCAEXAMPLEKEYCREATE1');
    expect(d?.owner).toEqual({ value: `arn:aws:iam::${ACCOUNT}:user/bob`, source: 'creator' });
    expect((await w.audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYCREATE1'))?.creator).toBe(
      `arn:aws:iam::${ACCOUNT}:user/bob`,
    );
    expect((await w.decisions('ACCAEXAMPLEKEYCREATE2'))[0]?.owner).toEqual({
      value: 'security@example.com',
      source: 'fallback',
    });
  });
});

describe('sweep: UNUSED (usage tracking)', () => {
  /** An in-memory usage store: last use per key id, the account's tracking start, and every call made. */
  class FakeUsage implements UsageSource {
    readonly lastUsed = new Map<string, string>();
    /** The account's first recorded use (null: none ever recorded). */
    since: string | null = null;
    failWith: Error | null = null;
    readonly calls: Array<{ op: 'lastUsedFor'; keyIds: string[] } | { op: 'trackingSince' }> = [];

    async lastUsedFor(
      accountId: string,
      keys: ReadonlyArray<{ keyId: string; userName: string }>,
    ): Promise<Map<string, string | null>> {
      expect(accountId).toBe(ACCOUNT);
      this.calls.push({ op: 'lastUsedFor', keyIds: keys.map((k) => k.keyId).sort() });
      if (this.failWith) throw this.failWith;
      return new Map(
        keys
          .filter((k) => this.lastUsed.has(k.keyId))
          .map((k) => [k.keyId, this.lastUsed.get(k.keyId) ?? null]),
      );
    }

    async trackingSince(accountId: string): Promise<string | null> {
      expect(accountId).toBe(ACCOUNT);
      this.calls.push({ op: 'trackingSince' });
      return this.since;
    }
  }

  /** Tracked in one region, 30 idle days allowed, lifetimes up to a year (so that old keys are compliant). */
  const TRACKED: ConfigInput = { maxAgeDays: 365, maxIdleDays: 30, usage: { regions: ['us-east-1'] } };
  const IDLE = 'ACCAEXAMPLEKEYIDLE001';
  const USED = 'ACCAEXAMPLEKEYUSED001';
  const NEVER = 'ACCAEXAMPLEKEYNOUSE01';
  const INACTIVE = 'ACCAEXAMPLEKEYOFF0001';

  /** Four 100-day-old keys with full tags, two per page: idle 40 days, used yesterday, never used, Inactive. */
  async function usageWorld(config: ConfigInput = TRACKED, over: Partial<SweepRuntime> = {}) {
    const usage = new FakeUsage();
    usage.since = iso(T0 - 200 * DAY_MS);
    usage.lastUsed.set(IDLE, iso(T0 - 40 * DAY_MS));
    usage.lastUsed.set(USED, iso(T0 - DAY_MS));
    const w = await world(config, { usage, ...over });
    w.fake.keysPageSize = 2;
    for (const [keyId, userName, status] of [
      [IDLE, 'svc-idle', 'Active'],
      [USED, 'svc-used', 'Active'],
      [NEVER, 'svc-never-used', 'Active'],
      [INACTIVE, 'svc-off', 'Inactive'],
    ] as const) {
      w.fake.key({
        keyId,
        userName,
        status,
        createdAt: iso(T0 - 100 * DAY_MS),
        expiresAt: iso(T0 + 200 * DAY_MS),
      });
    }
    return { w, usage };
  }

  const codesOf = (d: Decision | undefined) => d?.violations.map((v) => v.code);

  it('flags UNUSED once for Active keys idle longer than maxIdleDays, not a used key; one usage read per page', async () => {
    // Prepare
    const { w, usage } = await usageWorld();
    // Act
    const first = await w.run();
    w.clock.now = T0 + HOUR_MS;
    sns.resetHistory();
    const second = await w.run();
    // Assess: the idle and the never-used key are UNUSED (notified, graced); the used and the Inactive one not
    expect(first.counters).toMatchObject({
      keysSeen: 4,
      decisionsRecorded: 4,
      noticesSent: 2,
      keysDeactivated: 0,
    });
    const [idle] = await w.decisions(IDLE);
    expect(codesOf(idle)).toEqual(['UNUSED']);
    expect(idle).toMatchObject({ action: 'NOTIFY', notice: 'first', deadline: iso(T0 + 72 * HOUR_MS) });
    expect(idle?.violations[0]?.detail).toContain(`last used ${iso(T0 - 40 * DAY_MS)}`);
    const [never] = await w.decisions(NEVER);
    expect(codesOf(never)).toEqual(['UNUSED']);
    expect(never?.violations[0]?.detail).toContain(
      `never used since it was created ${iso(T0 - 100 * DAY_MS)}`,
    );
    expect((await w.decisions(USED)).map(codesOf)).toEqual([[]]);
    expect((await w.decisions(INACTIVE)).map(codesOf)).toEqual([[]]);
    // The second sweep finds nothing new: nothing recorded, nothing sent
    expect(second.counters).toMatchObject({ keysSeen: 4, decisionsRecorded: 0, noticesSent: 0 });
    expect(notices()).toEqual([]);
    expect(await w.decisions(IDLE)).toHaveLength(1);
    expect(await w.decisions(NEVER)).toHaveLength(1);
    // One tracking-start read per sweep, one last-use read per page (only the page's Active keys)
    expect(usage.calls).toEqual([
      { op: 'trackingSince' },
      { op: 'lastUsedFor', keyIds: [IDLE, USED] },
      { op: 'lastUsedFor', keyIds: [NEVER] },
      { op: 'trackingSince' },
      { op: 'lastUsedFor', keyIds: [IDLE, USED] },
      { op: 'lastUsedFor', keyIds: [NEVER] },
    ]);
  });

  it('never flags UNUSED while no use was ever recorded (events may not arrive), and warns with a metric', async () => {
    // Prepare: usage tracked by policy, but no use event has ever reached the usage store
    const { w, usage } = await usageWorld({ ...TRACKED, mode: 'enforce' });
    usage.since = null;
    usage.lastUsed.clear();
    // Act: sweeps long past maxIdleDays and the grace period
    await w.run();
    w.clock.now = T0 + 100 * DAY_MS;
    await w.run();
    // Assess: nothing UNUSED, nothing deactivated, no last-use read
    for (const id of [IDLE, USED, NEVER]) expect((await w.decisions(id)).map(codesOf)).toEqual([[]]);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    expect(usage.calls).toEqual([{ op: 'trackingSince' }, { op: 'trackingSince' }]);
    const warnings = out
      .lines()
      .filter((l) => l.level === 'WARN' && String(l.message).startsWith('no Bedrock API key use'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ regions: ['us-east-1'] });
    expect(out.text()).toMatch(/"UsageNeverRecorded":1/);
  });

  it('resolves UNUSED when the key is used again, and deactivates an idle key after the grace deadline (enforce)', async () => {
    // Prepare
    const { w, usage } = await usageWorld({ ...TRACKED, mode: 'enforce' });
    await w.run();
    usage.lastUsed.set(NEVER, iso(T0 + 2 * HOUR_MS));
    // Act: the never-used key is used; the idle one stays idle past the 72 h deadline
    w.clock.now = T0 + 3 * HOUR_MS;
    await w.run();
    w.clock.now = T0 + 72 * HOUR_MS;
    await w.run();
    // Assess
    expect((await w.decisions(NEVER)).map((d) => [codesOf(d), d.action, d.notice ?? null])).toEqual([
      [['UNUSED'], 'NOTIFY', 'first'],
      [[], 'ALLOW', 'resolved'],
    ]);
    const idle = await w.decisions(IDLE);
    expect(idle.map((d) => [codesOf(d), d.action, d.applied, d.notice ?? null])).toEqual([
      [['UNUSED'], 'NOTIFY', false, 'first'],
      [['UNUSED'], 'DEACTIVATE', true, 'action'],
    ]);
    expect(idle.at(-1)?.reason).toMatch(/grace deadline .* passed with UNUSED/);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      UserName: 'svc-idle',
      ServiceSpecificCredentialId: IDLE,
      Status: 'Inactive',
    });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
  });

  it('with usage not tracked (no usage.regions) never asks the usage source and flags nothing UNUSED', async () => {
    // Prepare
    const { w, usage } = await usageWorld({ ...TRACKED, usage: { regions: [] } });
    // Act
    const result = await w.run();
    // Assess
    expect(usage.calls).toEqual([]);
    expect(result.counters).toMatchObject({ keysSeen: 4, decisionsRecorded: 4, noticesSent: 0 });
    for (const id of [IDLE, USED, NEVER, INACTIVE])
      expect((await w.decisions(id)).map(codesOf)).toEqual([[]]);
  });

  it('with maxIdleDays null reads the tracking start (for the warning) but no last use, and flags nothing', async () => {
    // Prepare
    const { w, usage } = await usageWorld({ ...TRACKED, maxIdleDays: null });
    // Act
    await w.run();
    // Assess
    expect(usage.calls).toEqual([{ op: 'trackingSince' }]);
    for (const id of [IDLE, USED, NEVER]) expect((await w.decisions(id)).map(codesOf)).toEqual([[]]);
  });

  it('fails the sweep when usage cannot be read, rather than deciding without it', async () => {
    // Prepare
    const { w, usage } = await usageWorld();
    usage.failWith = new Error('ProvisionedThroughputExceededException');
    // Act
    const run = w.run();
    // Assess
    await expect(run).rejects.toThrow('ProvisionedThroughputExceededException');
    for (const id of [IDLE, USED]) expect(await w.decisions(id)).toEqual([]);
    expect(await w.state()).toMatchObject({ phase: 'keys', pages: 0, holder: null });
  });

  it('reads usage for a key the pages missed but IAM still has, so it keeps its UNUSED', async () => {
    // Prepare: on record as UNUSED from a first sweep; the next listing misses it
    const { w, usage } = await usageWorld();
    await w.run();
    w.fake.hiddenFromListing.add(IDLE);
    w.clock.now = T0 + HOUR_MS;
    usage.calls.length = 0;
    // Act
    const result = await w.run();
    // Assess: no change recorded (no false "resolved"), and its usage was read in the gone phase
    expect(result.counters).toMatchObject({ decisionsRecorded: 0, noticesSent: 0, keysGone: 0 });
    expect(await w.decisions(IDLE)).toHaveLength(1);
    expect(usage.calls).toContainEqual({ op: 'lastUsedFor', keyIds: [IDLE] });
  });
});

describe('sweep: UNUSED with the DynamoDB usage store', () => {
  const TRACKED: ConfigInput = { maxAgeDays: 365, maxIdleDays: 30, usage: { regions: ['us-east-1'] } };

  function use(subject: UsageAggregate['subject'], lastUsedAt: string): UsageAggregate {
    return {
      accountId: ACCOUNT,
      subject,
      keyType: 'LONG_TERM',
      calls: 2,
      failedCalls: 0,
      firstUsedAt: lastUsedAt,
      lastUsedAt,
      lastAttemptAt: lastUsedAt,
      regions: ['us-east-1'],
      models: [],
      lastSourceIp: null,
      lastUserAgent: null,
    };
  }

  it('usageStoreFromEnv: a DynamoUsageStore when USAGE_TABLE_NAME is set, none when absent, an error when blank', () => {
    // Act
    const store = usageStoreFromEnv({ USAGE_TABLE_NAME: 'keyguard-usage' }, db.doc);
    const none = usageStoreFromEnv({}, db.doc);
    // Assess
    expect(store).toBeInstanceOf(DynamoUsageStore);
    expect(none).toBeUndefined();
    expect(() => usageStoreFromEnv({ USAGE_TABLE_NAME: ' ' }, db.doc)).toThrow('USAGE_TABLE_NAME');
  });

  it('flags the idle and the never-used key once; a key used through its user record is not flagged', async () => {
    // Prepare: tracking started 200 days ago; the keys are 100 days old
    const w = await world(TRACKED);
    const usage = usageStoreFromEnv({ USAGE_TABLE_NAME: w.tables.usageTable }, db.doc);
    if (!usage) throw new Error('no usage store');
    const store = new DynamoUsageStore(db.doc, w.tables.usageTable);
    // The first use recorded (a short-term key, 200 days ago) starts tracking for the account.
    await store.recordUses([
      use({ kind: 'principal', principalArn: `arn:aws:iam::${ACCOUNT}:role/app` }, iso(T0 - 200 * DAY_MS)),
    ]);
    await store.recordUses([
      use({ kind: 'key', keyId: 'ACCAEXAMPLEKEYIDLE001', userName: 'svc-idle' }, iso(T0 - 40 * DAY_MS)),
      // The user holds two keys: a use the store cannot attribute to one key counts for both.
      use({ kind: 'user', userName: 'svc-pair' }, iso(T0 - DAY_MS)),
    ]);
    for (const [keyId, userName] of [
      ['ACCAEXAMPLEKEYIDLE001', 'svc-idle'],
      ['ACCAEXAMPLEKEYPAIR001', 'svc-pair'],
      ['ACCAEXAMPLEKEYPAIR002', 'svc-pair'],
      ['ACCAEXAMPLEKEYNOUSE01', 'svc-never-used'],
    ] as const) {
      w.fake.key({ keyId, userName, createdAt: iso(T0 - 100 * DAY_MS), expiresAt: iso(T0 + 200 * DAY_MS) });
    }
    const handler = createSweepHandler({ ...w.rt, usage });
    const ctx = context(() => 14 * 60_000, 'req-usage-1');
    // Act
    const first = await handler({}, ctx);
    w.clock.now = T0 + HOUR_MS;
    const second = await handler({}, { ...ctx, awsRequestId: 'req-usage-2' });
    // Assess
    expect(first.counters).toMatchObject({ keysSeen: 4, decisionsRecorded: 4, noticesSent: 2 });
    expect(second.counters).toMatchObject({ keysSeen: 4, decisionsRecorded: 0, noticesSent: 0 });
    const codes = async (keyId: string) =>
      (await w.decisions(keyId)).map((d) => d.violations.map((v) => v.code));
    expect(await codes('ACCAEXAMPLEKEYIDLE001')).toEqual([['UNUSED']]);
    expect(await codes('ACCAEXAMPLEKEYNOUSE01')).toEqual([['UNUSED']]);
    expect(await codes('ACCAEXAMPLEKEYPAIR001')).toEqual([[]]);
    expect(await codes('ACCAEXAMPLEKEYPAIR002')).toEqual([[]]);
    // The sweep only reads the tracking start: it stays the first recorded use
    expect(await store.trackingSince(ACCOUNT)).toBe(iso(T0 - 200 * DAY_MS));
  });

  it('warns at creation when usage.regions is set but no usage source is given (UNUSED is then not evaluated)', async () => {
    // Prepare
    const w = await world(TRACKED);
    w.fake.key({
      keyId: 'ACCAEXAMPLEKEYNOUSE01',
      userName: 'svc-never-used',
      createdAt: iso(T0 - 100 * DAY_MS),
      expiresAt: iso(T0 + 200 * DAY_MS),
    });
    // Act
    await w.run();
    // Assess
    expect(out.text()).toMatch(/usage\.regions is set but the sweep has no usage table/);
    expect((await w.decisions('ACCAEXAMPLEKEYNOUSE01')).map((d) => d.violations)).toEqual([[]]);
  });
});
