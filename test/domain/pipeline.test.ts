import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { NEXT_DIGEST } from '../../lambda/domain/owner-digest';
import {
  type ApprovalSource,
  decideKey,
  decisionIdFor,
  type KeyDirectory,
  type KeyMetadata,
  type KeyStep,
  type PipelineDeps,
} from '../../lambda/domain/pipeline';
import type { Decision } from '../../lambda/domain/types';
import type { UsageSource } from '../../lambda/domain/usage-types';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { createTestTables, startTestDynamo } from '../support/dynamo';

/**
 * decideKey over the real audit store (dynalite): the directory, enforcer and notifier are plain in-memory
 * stand-ins for IAM and SNS (their AWS behaviour is tested with the adapters).
 */

const ACCOUNT = '111122223333';
const KEY = 'ACCAEXAMPLEPIPELINE01';
const config = parseConfig({ mode: 'audit' });
const opts = (at: string) => ({ config, policyVersion: policyVersion(config), now: new Date(at) });

let db: EmbeddedDynamo;
let n = 0;
beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => db.close());

async function freshAudit(): Promise<DynamoAuditLog> {
  n += 1;
  const names = {
    decisionsTable: `p-decisions-${n}`,
    keysTable: `p-keys-${n}`,
    idempotencyTable: `p-idem-${n}`,
  };
  await createTestTables(db, names);
  return new DynamoAuditLog(db.doc, names);
}

function meta(over: Partial<KeyMetadata> = {}): KeyMetadata {
  return {
    keyId: KEY,
    userName: 'svc-chatbot',
    status: 'Active',
    createdAt: '2026-11-01T00:00:00.000Z',
    expiresAt: '2026-12-01T00:00:00.000Z',
    ...over,
  };
}

function directory(tags: Record<string, string>): KeyDirectory {
  return {
    getKey: async () => meta(),
    listUserKeys: async () => [meta()],
    getUserTags: async () => ({ ...tags }),
  };
}

function deps(
  audit: DynamoAuditLog,
  tags: Record<string, string>,
  sent: Decision[],
  failNotify = false,
): PipelineDeps {
  let fail = failNotify;
  return {
    directory: directory(tags),
    audit,
    enforcer: { deactivate: async () => true },
    notifier: {
      notify: async (d) => {
        if (fail) {
          fail = false;
          throw new Error('SNS unavailable');
        }
        sent.push(d);
      },
    },
  };
}

function sweepStep(at: string, sweepId: string): KeyStep {
  return {
    accountId: ACCOUNT,
    keyId: KEY,
    userName: 'svc-chatbot',
    meta: meta(),
    trigger: { kind: 'sweep', eventId: sweepId, eventTime: at },
    decisionId: decisionIdFor('sweep', at, sweepId),
    record: 'on-change',
    sweepId,
  };
}

describe('decideKey', () => {
  it('finishes a decision whose notice failed: the retry notifies once and writes no second decision', async () => {
    const audit = await freshAudit();
    const sent: Decision[] = [];
    const d = deps(audit, {}, sent, true);
    const step = sweepStep('2026-11-02T00:00:00.000Z', 'sweep-1');

    await expect(decideKey(step, d, opts('2026-11-02T00:00:00.000Z'))).rejects.toThrow('SNS unavailable');
    const retry = await decideKey(step, d, opts('2026-11-02T00:05:00.000Z'));

    expect(retry).toMatchObject({ duplicate: true, notified: true });
    expect(sent.map((x) => x.notice)).toEqual(['first']);
    expect(await audit.decisionsForKey(ACCOUNT, KEY)).toHaveLength(1);
    expect((await audit.getKnownKey(ACCOUNT, KEY))?.lastDecisionId).toBe(step.decisionId);
  });

  it('a notice that goes in a digest is not sent on its own: recorded on the decision, pending on the key, also on a retry', async () => {
    // Prepare: the keys-table write fails once, after the decision was recorded
    const audit = await freshAudit();
    const sent: Decision[] = [];
    let failPut = true;
    const flaky = Object.assign(Object.create(audit) as DynamoAuditLog, {
      putKnownKey: async (k: Parameters<DynamoAuditLog['putKnownKey']>[0]) => {
        if (failPut) {
          failPut = false;
          throw new Error('DynamoDB unavailable');
        }
        return audit.putKnownKey(k);
      },
    });
    const step = { ...sweepStep('2026-11-02T00:00:00.000Z', 'sweep-1'), digest: 'digest/sweep-1' };
    // Act
    await expect(decideKey(step, deps(flaky, {}, sent), opts('2026-11-02T00:00:00.000Z'))).rejects.toThrow(
      'DynamoDB unavailable',
    );
    const retry = await decideKey(step, deps(flaky, {}, sent), opts('2026-11-02T00:05:00.000Z'));
    // Assess
    expect(sent).toEqual([]);
    expect(retry?.decision).toMatchObject({ notice: 'first', noticeDigest: 'digest/sweep-1' });
    expect(await audit.decisionsForKey(ACCOUNT, KEY)).toHaveLength(1);
    expect((await audit.getKnownKey(ACCOUNT, KEY))?.pendingNotice).toEqual({
      digest: 'digest/sweep-1',
      decisionId: step.decisionId,
      owner: 'unowned',
      kind: 'first',
      severity: 'medium',
      deadline: retry?.decision.deadline,
      action: 'NOTIFY',
    });
  });

  it('an older notice for the digest (a late usage batch) never replaces the key’s newer waiting one', async () => {
    // Prepare: a notice waiting for the next digest, decided at 00:00 on 3 November
    const audit = await freshAudit();
    const sent: Decision[] = [];
    const newer = { ...sweepStep('2026-11-03T00:00:00.000Z', 'sweep-2'), digest: NEXT_DIGEST };
    await decideKey(newer, deps(audit, {}, sent), opts('2026-11-03T00:00:00.000Z'));
    // Act: an alert about uses of 2 November arrives late (its own notice, for the digest too)
    const late = {
      ...sweepStep('2026-11-02T00:00:00.000Z', 'late-batch'),
      sweepId: undefined,
      record: 'always' as const,
      alert: { reason: 'tried while inactive' },
      digest: NEXT_DIGEST,
    };
    const r = await decideKey(late, deps(audit, {}, sent), opts('2026-11-03T00:05:00.000Z'));
    // Assess: recorded with its notice for the digest, but the key's waiting notice is still the newer one
    expect(r?.decision).toMatchObject({ notice: 'first', noticeDigest: NEXT_DIGEST });
    expect(sent).toEqual([]);
    expect((await audit.getKnownKey(ACCOUNT, KEY))?.pendingNotice).toMatchObject({
      digest: NEXT_DIGEST,
      decisionId: newer.decisionId,
    });
  });

  it('does nothing for a step already completed (a redelivery)', async () => {
    const audit = await freshAudit();
    const sent: Decision[] = [];
    const step = sweepStep('2026-11-02T00:00:00.000Z', 'sweep-1');
    await decideKey(step, deps(audit, {}, sent), opts('2026-11-02T00:00:00.000Z'));

    const again = await decideKey(step, deps(audit, {}, sent), opts('2026-11-02T00:01:00.000Z'));

    expect(again).toMatchObject({ duplicate: true, notified: false, recorded: false });
    expect(sent).toHaveLength(1);
  });

  it('records a sweep decision only when something changed, and always for an event', async () => {
    const audit = await freshAudit();
    const sent: Decision[] = [];
    const tags = { owner: 'a@example.com', purpose: 'chat', 'review-cadence': '90d' };

    const first = await decideKey(
      sweepStep('2026-11-02T00:00:00.000Z', 's1'),
      deps(audit, tags, sent),
      opts('2026-11-02T00:00:00.000Z'),
    );
    const second = await decideKey(
      sweepStep('2026-11-02T01:00:00.000Z', 's2'),
      deps(audit, tags, sent),
      opts('2026-11-02T01:00:00.000Z'),
    );
    const event = await decideKey(
      {
        ...sweepStep('2026-11-02T02:00:00.000Z', 'e1'),
        trigger: { kind: 'event', eventId: 'e1' },
        record: 'always',
      },
      deps(audit, tags, sent),
      opts('2026-11-02T02:00:00.000Z'),
    );

    expect([first?.recorded, second?.recorded, event?.recorded]).toEqual([true, false, true]);
    expect(await audit.decisionsForKey(ACCOUNT, KEY)).toHaveLength(2);
    expect((await audit.getKnownKey(ACCOUNT, KEY))?.lastSweepId).toBe('e1');
    expect(sent).toHaveLength(0);
  });

  it('takes the latest review from the approvals source, which clears REVIEW_OVERDUE', async () => {
    const audit = await freshAudit();
    const sent: Decision[] = [];
    const tags = { owner: 'a@example.com', purpose: 'chat', 'review-cadence': '7d' };
    const at = '2026-11-10T00:00:00.000Z';
    const reviews: ApprovalSource = {
      recordsFor: async () => ({ approvals: [], lastReviewAt: '2026-11-09T00:00:00.000Z' }),
    };

    const without = await decideKey(sweepStep(at, 's1'), deps(audit, tags, sent), opts(at));
    const withReview = await decideKey(
      sweepStep('2026-11-10T01:00:00.000Z', 's2'),
      { ...deps(audit, tags, sent), approvals: reviews },
      opts('2026-11-10T01:00:00.000Z'),
    );

    expect(without?.decision.violations.map((v) => v.code)).toEqual(['REVIEW_OVERDUE']);
    expect(withReview?.decision.violations).toEqual([]);
    expect(withReview?.decision.notice).toBe('resolved');
    expect((await audit.getKnownKey(ACCOUNT, KEY))?.history?.lastReviewAt).toBe('2026-11-09T00:00:00.000Z');
  });
});

describe('decideKey: usage on the event path', () => {
  const TAGS = { owner: 'a@example.com', purpose: 'chat', 'review-cadence': '90d' };
  const tracked = parseConfig({ mode: 'audit', maxIdleDays: 30, usage: { regions: ['us-east-1'] } });
  const trackedOpts = (at: string, c = tracked) => ({
    config: c,
    policyVersion: policyVersion(c),
    now: new Date(at),
  });

  /** An in-memory usage source that records what it was asked. */
  function usageSource(since: string | null, lastUsed: Record<string, string> = {}) {
    const calls: string[] = [];
    const source: UsageSource = {
      trackingSince: async (accountId) => {
        calls.push(`trackingSince ${accountId}`);
        return since;
      },
      lastUsedFor: async (accountId, keys) => {
        calls.push(`lastUsedFor ${accountId} ${keys.map((k) => `${k.userName}/${k.keyId}`).join(',')}`);
        return new Map(
          keys.filter((k) => k.keyId in lastUsed).map((k) => [k.keyId, lastUsed[k.keyId] ?? null]),
        );
      },
    };
    return { source, calls };
  }

  function eventStep(at: string, eventId: string, over: Partial<KeyStep> = {}): KeyStep {
    return {
      ...sweepStep(at, eventId),
      trigger: { kind: 'event', eventId, eventName: 'TagUser', eventTime: at },
      decisionId: decisionIdFor('event', at, eventId),
      record: 'always',
      sweepId: undefined,
      ...over,
    };
  }

  it('reads the key’s last use and the tracking start, so an event keeps UNUSED', async () => {
    // Prepare: created Nov 1, tracked since Oct 1, last used Nov 2; 30 idle days allowed
    const audit = await freshAudit();
    const sent: Decision[] = [];
    const usage = usageSource('2026-10-01T00:00:00.000Z', { [KEY]: '2026-11-02T00:00:00.000Z' });
    const at = '2026-12-10T00:00:00.000Z';

    // Act
    const r = await decideKey(
      eventStep(at, 'e1'),
      { ...deps(audit, TAGS, sent), usage: usage.source },
      trackedOpts(at),
    );

    // Assess
    expect(r?.decision.violations.map((v) => v.code)).toEqual(['UNUSED']);
    expect(r?.decision.violations[0]?.detail).toContain('last used 2026-11-02T00:00:00.000Z');
    expect(usage.calls).toEqual([`trackingSince ${ACCOUNT}`, `lastUsedFor ${ACCOUNT} svc-chatbot/${KEY}`]);
  });

  it('does not evaluate UNUSED while no use was ever recorded (no tracking start), and reads no last use', async () => {
    // Prepare
    const audit = await freshAudit();
    const usage = usageSource(null);
    const at = '2026-12-10T00:00:00.000Z';

    // Act
    const r = await decideKey(
      eventStep(at, 'e1'),
      { ...deps(audit, TAGS, []), usage: usage.source },
      trackedOpts(at),
    );

    // Assess
    expect(r?.decision.violations).toEqual([]);
    expect(usage.calls).toEqual([`trackingSince ${ACCOUNT}`]);
  });

  it('uses the step’s own usage when the driver gives it (sweeps), even null', async () => {
    // Prepare
    const audit = await freshAudit();
    const usage = usageSource('2026-10-01T00:00:00.000Z');
    const at = '2026-12-10T00:00:00.000Z';

    // Act
    const r = await decideKey(
      eventStep(at, 'e1', { usage: null }),
      { ...deps(audit, TAGS, []), usage: usage.source },
      trackedOpts(at),
    );

    // Assess
    expect(r?.decision.violations).toEqual([]);
    expect(usage.calls).toEqual([]);
  });

  it('asks nothing when usage is not tracked, UNUSED is off, or the key is not Active', async () => {
    // Prepare
    const usage = usageSource('2026-10-01T00:00:00.000Z');
    const at = '2026-12-10T00:00:00.000Z';
    const untracked = parseConfig({ mode: 'audit', maxIdleDays: 30 });
    const off = parseConfig({ mode: 'audit', maxIdleDays: null, usage: { regions: ['us-east-1'] } });

    // Act
    for (const [step, c] of [
      [eventStep(at, 'e1'), untracked],
      [eventStep(at, 'e2'), off],
      [eventStep(at, 'e3', { meta: meta({ status: 'Inactive' }) }), tracked],
      [eventStep(at, 'e4', { meta: null, created: { createdAt: null, expiresAt: null } }), tracked],
    ] as const) {
      await decideKey(
        step,
        { ...deps(await freshAudit(), TAGS, []), usage: usage.source },
        trackedOpts(at, c),
      );
    }

    // Assess
    expect(usage.calls).toEqual([]);
  });
});

describe('decideKey: lastDecisionId and dated alerts', () => {
  it('a decision about an older trigger is recorded, but the key’s last decision stays the later one', async () => {
    // Prepare: a sweep decided at noon
    const audit = await freshAudit();
    const sent: Decision[] = [];
    const noon = sweepStep('2026-11-02T12:00:00.000Z', 's1');
    await decideKey(noon, deps(audit, {}, sent), opts('2026-11-02T12:00:00.000Z'));

    // Act: an event of the morning, delivered late
    const morning = {
      ...sweepStep('2026-11-02T08:00:00.000Z', 'e1'),
      trigger: { kind: 'event' as const, eventId: 'e1' },
      decisionId: decisionIdFor('event', '2026-11-02T08:00:00.000Z', 'e1'),
      record: 'always' as const,
    };
    const late = await decideKey(morning, deps(audit, {}, sent), opts('2026-11-02T12:05:00.000Z'));

    // Assess
    expect(late?.recorded).toBe(true);
    expect(await audit.decisionsForKey(ACCOUNT, KEY)).toHaveLength(2);
    expect((await audit.getKnownKey(ACCOUNT, KEY))?.lastDecisionId).toBe(noon.decisionId);
  });

  it('remembers the day of a dated alert, keeps the latest day, and keeps it through later decisions', async () => {
    // Prepare
    const audit = await freshAudit();
    const sent: Decision[] = [];
    const alertStep = (at: string, id: string, day: string): KeyStep => ({
      ...sweepStep(at, id),
      trigger: { kind: 'usage', eventId: id, eventTime: at },
      decisionId: decisionIdFor('usage', at, id),
      record: 'always',
      sweepId: undefined,
      alert: { reason: 'still in use', day },
    });

    // Act
    await decideKey(
      alertStep('2026-11-03T01:00:00.000Z', 'u2', '2026-11-03'),
      deps(audit, {}, sent),
      opts('2026-11-03T01:00:00.000Z'),
    );
    await decideKey(
      alertStep('2026-11-02T23:00:00.000Z', 'u1', '2026-11-02'),
      deps(audit, {}, sent),
      opts('2026-11-03T01:01:00.000Z'),
    );
    await decideKey(
      sweepStep('2026-11-03T02:00:00.000Z', 's1'),
      deps(audit, {}, sent),
      opts('2026-11-03T02:00:00.000Z'),
    );

    // Assess
    const known = await audit.getKnownKey(ACCOUNT, KEY);
    expect(known?.history?.inUseAlertDay).toBe('2026-11-03');
    expect(sent.filter((d) => d.trigger.kind === 'usage')).toHaveLength(2);
  });
});
