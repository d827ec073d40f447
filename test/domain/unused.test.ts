import { coversViolation, type EvaluationContext, evaluate } from '../../lambda/domain/evaluate';
import { planNotice } from '../../lambda/domain/staging';
import {
  type Approval,
  type Decision,
  EMPTY_HISTORY,
  type KeySnapshot,
  type ViolationCode,
} from '../../lambda/domain/types';
import type { KeyUsage } from '../../lambda/domain/usage-types';
import { type Config, type ConfigInput, parseConfig, policyVersion } from '../../lambda/shared/config';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const NOW = new Date('2026-11-20T10:00:00.000Z');
const COMPLETE_TAGS = { owner: 'alice@example.com', purpose: 'support chatbot', 'review-cadence': '10y' };

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
const daysAgo = (days: number, extraMs = 0) => iso(NOW.getTime() - days * DAY - extraMs);

/**
 * A compliant key (every tag, a 10-year review cadence) created 20 days ago and expiring in 100 days; the
 * policy in `context` allows any lifetime, so only UNUSED can be found.
 */
function key(overrides: Partial<KeySnapshot> = {}): KeySnapshot {
  return {
    keyId: 'ACCAUNUSEDEXAMPLE0001',
    userName: 'svc-batch',
    accountId: '111122223333',
    status: 'Active',
    createdAt: daysAgo(20),
    expiresAt: iso(NOW.getTime() + 100 * DAY),
    userTags: { ...COMPLETE_TAGS },
    creator: 'arn:aws:iam::111122223333:user/alice',
    ...overrides,
  };
}

/** A key created long before usage tracking started. */
const oldKey = (overrides: Partial<KeySnapshot> = {}) => key({ createdAt: daysAgo(400), ...overrides });

function context(
  usage: KeyUsage | null | undefined,
  input: ConfigInput = {},
  overrides: Partial<EvaluationContext> = {},
): EvaluationContext {
  const config: Config = parseConfig({ maxAgeDays: 36600, ...input });
  return {
    config,
    policyVersion: policyVersion(config),
    now: NOW,
    trigger: { kind: 'sweep', eventId: 'sweep-1', eventTime: NOW.toISOString() },
    decisionId: `${NOW.toISOString()}/sweep/sweep-1`,
    ...(usage === undefined ? {} : { usage }),
    ...overrides,
  };
}

function codes(d: Decision): ViolationCode[] {
  return d.violations.map((v) => v.code);
}

function unused(d: Decision) {
  return d.violations.find((v) => v.code === 'UNUSED');
}

function approval(covers: Approval['covers']): Approval {
  return {
    approvalId: 'apr-0001',
    accountId: '111122223333',
    keyId: 'ACCAUNUSEDEXAMPLE0001',
    covers,
    reason: 'quarterly batch job: runs once every 6 months',
    approver: 'arn:aws:iam::111122223333:role/KeyGuardApprover',
    approvedAt: daysAgo(1),
    until: iso(NOW.getTime() + 100 * DAY),
    revokedAt: null,
    revokedBy: null,
  };
}

describe('UNUSED: idle time since the last use', () => {
  it('allows a key last used exactly maxIdleDays ago', () => {
    // Prepare
    const usage = { lastUsedAt: daysAgo(90), trackingSince: daysAgo(365) };
    // Act
    const d = evaluate(oldKey(), context(usage));
    // Assess
    expect(d.violations).toEqual([]);
    expect(d.action).toBe('ALLOW');
  });

  it('flags a key last used maxIdleDays and 1 ms ago, naming the last use and the limit', () => {
    // Prepare
    const lastUsedAt = daysAgo(90, 1);
    const usage = { lastUsedAt, trackingSince: daysAgo(365) };
    // Act
    const d = evaluate(oldKey(), context(usage));
    // Assess
    expect(codes(d)).toEqual(['UNUSED']);
    expect(unused(d)?.severity).toBe('medium');
    expect(unused(d)?.detail).toContain(lastUsedAt);
    expect(unused(d)?.detail).toContain('90');
  });

  it('uses the configured maxIdleDays', () => {
    // Prepare: 31 days idle is fine under the default 90, not under 30
    const usage = { lastUsedAt: daysAgo(31), trackingSince: daysAgo(365) };
    // Act
    const byDefault = evaluate(oldKey(), context(usage));
    const strict = evaluate(oldKey(), context(usage, { maxIdleDays: 30 }));
    // Assess
    expect(byDefault.violations).toEqual([]);
    expect(codes(strict)).toEqual(['UNUSED']);
    expect(unused(strict)?.detail).toContain('30');
  });

  it('does not flag a key used yesterday, however old the key and the tracking', () => {
    // Prepare
    const usage = { lastUsedAt: daysAgo(1), trackingSince: daysAgo(3000) };
    // Act
    const d = evaluate(oldKey(), context(usage));
    // Assess
    expect(d.violations).toEqual([]);
  });

  it('does not flag a last use in the future (clock skew between CloudTrail and the sweep)', () => {
    // Prepare
    const usage = { lastUsedAt: iso(NOW.getTime() + HOUR), trackingSince: daysAgo(365) };
    // Act
    const d = evaluate(oldKey(), context(usage));
    // Assess
    expect(d.violations).toEqual([]);
  });
});

describe('UNUSED: never measured from before usage tracking started, nor before the key existed', () => {
  it('does not flag an old, never-seen-used key while tracking started less than maxIdleDays ago', () => {
    // Prepare: a 400-day-old key (which may well be used daily) on the first weeks after deployment
    const usage = { lastUsedAt: null, trackingSince: daysAgo(10) };
    // Act
    const d = evaluate(oldKey(), context(usage));
    // Assess
    expect(d.violations).toEqual([]);
  });

  it('flags an old key never used since tracking started more than maxIdleDays ago, naming that date', () => {
    // Prepare
    const trackingSince = daysAgo(90, 1);
    const usage = { lastUsedAt: null, trackingSince };
    // Act
    const d = evaluate(oldKey(), context(usage));
    // Assess
    expect(codes(d)).toEqual(['UNUSED']);
    expect(unused(d)?.detail).toContain(`never used since ${trackingSince}`);
    expect(unused(d)?.detail).toContain('90');
  });

  it('allows an old key never used when tracking started exactly maxIdleDays ago', () => {
    // Prepare
    const usage = { lastUsedAt: null, trackingSince: daysAgo(90) };
    // Act
    const d = evaluate(oldKey(), context(usage));
    // Assess
    expect(d.violations).toEqual([]);
  });

  it('measures a never-used key created after tracking started from its creation', () => {
    // Prepare: tracking for a year; one key created 20 days ago, one 91 days ago, neither used
    const usage = { lastUsedAt: null, trackingSince: daysAgo(365) };
    const created91 = daysAgo(91);
    // Act
    const young = evaluate(key({ createdAt: daysAgo(20) }), context(usage));
    const idle = evaluate(key({ createdAt: created91 }), context(usage));
    // Assess
    expect(young.violations).toEqual([]);
    expect(codes(idle)).toEqual(['UNUSED']);
    expect(unused(idle)?.detail).toContain(`never used since it was created ${created91}`);
  });

  it('does not count a use from before the key existed against it (the user’s unattributed record of an older key)', () => {
    // Prepare: the user's last unattributed use is 200 days old; one key created 20 days ago, one 100 days ago
    const usage = { lastUsedAt: daysAgo(200), trackingSince: daysAgo(365) };
    const created100 = daysAgo(100);
    // Act
    const young = evaluate(key({ createdAt: daysAgo(20) }), context(usage));
    const idle = evaluate(key({ createdAt: created100 }), context(usage));
    // Assess: the older key is idle since its creation, not since the 200-day-old use
    expect(young.violations).toEqual([]);
    expect(codes(idle)).toEqual(['UNUSED']);
    expect(unused(idle)?.detail).toContain(`not used since it was created ${created100}`);
    expect(unused(idle)?.detail).toContain('idle 100 days');
  });

  it('does not measure from a use recorded before the tracking start it reports', () => {
    // Prepare: a use recorded 120 days ago, before the first sweep set the tracking start
    const lastUsedAt = daysAgo(120);
    // Act
    const recent = evaluate(oldKey(), context({ lastUsedAt, trackingSince: daysAgo(10) }));
    const idle = evaluate(oldKey(), context({ lastUsedAt, trackingSince: daysAgo(100) }));
    // Assess
    expect(recent.violations).toEqual([]);
    expect(codes(idle)).toEqual(['UNUSED']);
    expect(unused(idle)?.detail).toContain('idle 100 days');
    expect(unused(idle)?.detail).toContain(lastUsedAt);
  });

  it('does not flag anything when the tracking start is not a date', () => {
    // Prepare
    const usage = { lastUsedAt: null, trackingSince: 'not-a-date' };
    // Act
    const d = evaluate(oldKey(), context(usage));
    // Assess
    expect(d.violations).toEqual([]);
  });
});

describe('UNUSED: when it is not evaluated', () => {
  const idle = { lastUsedAt: null, trackingSince: daysAgo(365) };

  it.each([
    ['an Inactive', 'Inactive'],
    ['an Expired', 'Expired'],
    ['a Deleted', 'Deleted'],
  ] as const)('does not flag %s key (it cannot be used)', (_label, status) => {
    // Prepare
    const k = oldKey({ status });
    // Act
    const d = evaluate(k, context(idle));
    // Assess
    expect(d.violations).toEqual([]);
    expect(d.action).toBe('ALLOW');
  });

  it('does not flag anything with maxIdleDays null (never)', () => {
    // Prepare
    const ctx = context(idle, { maxIdleDays: null });
    // Act
    const d = evaluate(oldKey(), ctx);
    // Assess
    expect(d.violations).toEqual([]);
  });

  it.each([
    ['absent', undefined],
    ['null', null],
  ] as const)('does not flag anything when usage is %s (usage not tracked)', (_label, usage) => {
    // Prepare
    const ctx = context(usage);
    // Act
    const d = evaluate(oldKey(), ctx);
    // Assess
    expect(d.violations).toEqual([]);
    expect(d.action).toBe('ALLOW');
  });
});

describe('UNUSED: action, escalation and approvals', () => {
  const idle = { lastUsedAt: daysAgo(120), trackingSince: daysAgo(365) };

  it('notifies first with a grace deadline, like MISSING_OWNER', () => {
    // Prepare
    const ctx = context(idle, { mode: 'enforce', gracePeriodHours: 72 });
    // Act
    const d = evaluate(oldKey(), ctx);
    const plan = planNotice(d, EMPTY_HISTORY, ctx.config, NOW);
    // Assess
    expect(d.action).toBe('NOTIFY');
    expect(d.deadline).toBe(iso(NOW.getTime() + 72 * HOUR));
    expect(plan.notice).toBe('first');
    expect(plan.history.notice?.codes).toEqual(['UNUSED']);
  });

  it('deactivates once the grace deadline set earlier has passed, naming UNUSED in the reason', () => {
    // Prepare: an earlier sweep notified and set the deadline, which passed an hour ago
    const deadline = iso(NOW.getTime() - HOUR);
    const history = {
      ...EMPTY_HISTORY,
      deadline,
      notice: { codes: ['UNUSED' as const], stage: 'final' as const, firstNotifiedAt: daysAgo(3, HOUR) },
    };
    const ctx = context(idle, { mode: 'enforce' }, { history });
    // Act
    const d = evaluate(oldKey(), ctx);
    const plan = planNotice(d, history, ctx.config, NOW);
    // Assess
    expect(d.action).toBe('DEACTIVATE');
    expect(d.deadline).toBe(deadline);
    expect(d.reason).toContain('UNUSED');
    expect(plan.notice).toBe('action');
  });

  it('keeps notifying before the deadline (a deadline never passes in the evaluation that set it)', () => {
    // Prepare
    const deadline = iso(NOW.getTime() + HOUR);
    const history = { ...EMPTY_HISTORY, deadline };
    // Act
    const d = evaluate(oldKey(), context(idle, { mode: 'enforce' }, { history }));
    // Assess
    expect(d.action).toBe('NOTIFY');
    expect(d.deadline).toBe(deadline);
  });

  it.each([
    ['names UNUSED', ['UNUSED'] as ViolationCode[]],
    ['covers ALL', 'ALL' as const],
  ])('is waived by an active approval that %s', (_label, covers) => {
    // Prepare
    const a = approval(covers);
    // Act
    const d = evaluate(oldKey(), context(idle, {}, { approvals: [a] }));
    // Assess
    expect(coversViolation(a, 'UNUSED')).toBe(true);
    expect(d.violations).toEqual([]);
    expect(d.waived?.map((w) => [w.code, w.approvalId])).toEqual([['UNUSED', 'apr-0001']]);
    expect(d.action).toBe('ALLOW');
    expect(d.deadline).toBeNull();
  });

  it('is not waived by an approval for other codes', () => {
    // Prepare
    const a = approval(['NEVER_EXPIRES']);
    // Act
    const d = evaluate(oldKey(), context(idle, {}, { approvals: [a] }));
    // Assess
    expect(codes(d)).toEqual(['UNUSED']);
    expect(d.waived).toBeUndefined();
  });
});
