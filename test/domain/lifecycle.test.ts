import { coversViolation, type EvaluationContext, evaluate } from '../../lambda/domain/evaluate';
import { planNotice } from '../../lambda/domain/staging';
import {
  type Approval,
  type Decision,
  EMPTY_HISTORY,
  type KeyHistory,
  type KeySnapshot,
  type NoticeKind,
} from '../../lambda/domain/types';
import { type ConfigInput, parseConfig, policyVersion } from '../../lambda/shared/config';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.parse('2026-11-01T00:00:00.000Z');
const TAGS = { owner: 'alice@example.com', purpose: 'chatbot', 'review-cadence': '90d' };

function key(over: Partial<KeySnapshot> = {}): KeySnapshot {
  return {
    keyId: 'ACCAEXAMPLELIFECYCLE1',
    userName: 'svc-chatbot',
    accountId: '111122223333',
    status: 'Active',
    createdAt: new Date(T0).toISOString(),
    expiresAt: new Date(T0 + 60 * DAY).toISOString(),
    userTags: { ...TAGS },
    creator: 'arn:aws:iam::111122223333:user/bob',
    ...over,
  };
}

function ctx(at: number, input: ConfigInput = {}, over: Partial<EvaluationContext> = {}): EvaluationContext {
  const config = parseConfig(input);
  return {
    config,
    policyVersion: policyVersion(config),
    now: new Date(at),
    trigger: { kind: 'sweep', eventId: 's-1', eventTime: new Date(at).toISOString() },
    decisionId: `${new Date(at).toISOString()}/sweep/s-1`,
    ...over,
  };
}

function codes(d: Decision): string[] {
  return d.violations.map((v) => v.code);
}

function approval(over: Partial<Approval> = {}): Approval {
  return {
    approvalId: 'ap-1',
    accountId: '111122223333',
    keyId: 'ACCAEXAMPLELIFECYCLE1',
    covers: ['NEVER_EXPIRES'],
    reason: 'vendor integration cannot rotate before Q3',
    approver: 'arn:aws:iam::111122223333:role/SecurityApprover',
    approvedAt: new Date(T0).toISOString(),
    until: new Date(T0 + 30 * DAY).toISOString(),
    revokedAt: null,
    revokedBy: null,
    ...over,
  };
}

/**
 * Evaluates the same key at each time in `times`, carrying the history from one evaluation to the next as
 * the pipeline does through the keys table; returns what each evaluation decided and sent.
 */
function timeline(
  times: number[],
  snapshotAt: (t: number) => KeySnapshot,
  input: ConfigInput = {},
  start: KeyHistory = EMPTY_HISTORY,
): Array<{
  at: string;
  action: string;
  notice: NoticeKind | null;
  deadline: string | null;
  applied: boolean;
}> {
  let history = start;
  const config = parseConfig(input);
  return times.map((t) => {
    let d = evaluate(snapshotAt(t), { ...ctx(t, input), history });
    if (d.action === 'DEACTIVATE' && config.mode === 'enforce') d = { ...d, applied: true };
    const plan = planNotice(d, history, config, new Date(t));
    history = plan.history;
    return {
      at: new Date(t).toISOString(),
      action: d.action,
      notice: plan.notice,
      deadline: d.deadline,
      applied: d.applied,
    };
  });
}

describe('time-driven rules', () => {
  it('raises EXPIRING_SOON inside the largest warning window only, as a reminder that never escalates', () => {
    const exp = T0 + 60 * DAY;

    const early = evaluate(key(), ctx(exp - 15 * DAY));
    const inside = evaluate(key(), ctx(exp - 14 * DAY));
    const expired = evaluate(key(), ctx(exp + 1));

    expect(codes(early)).toEqual([]);
    expect(codes(inside)).toEqual(['EXPIRING_SOON']);
    expect(inside).toMatchObject({ action: 'NOTIFY', deadline: null });
    expect(codes(expired)).toEqual([]);
  });

  it('raises REVIEW_OVERDUE a cadence after creation, and after the last review once there is one', () => {
    const due = T0 + 90 * DAY;
    const reviewed: KeyHistory = { ...EMPTY_HISTORY, lastReviewAt: new Date(T0 + 80 * DAY).toISOString() };
    const longKey = key({ expiresAt: new Date(T0 + 89 * DAY + 200 * DAY).toISOString() });

    expect(codes(evaluate(longKey, ctx(due - 1, { maxAgeDays: 400 })))).toEqual([]);
    expect(codes(evaluate(longKey, ctx(due, { maxAgeDays: 400 })))).toEqual(['REVIEW_OVERDUE']);
    expect(codes(evaluate(longKey, { ...ctx(due, { maxAgeDays: 400 }), history: reviewed }))).toEqual([]);
  });

  it('treats an unparseable review-cadence tag as a missing cadence, and says why', () => {
    const d = evaluate(key({ userTags: { ...TAGS, 'review-cadence': 'quarterly' } }), ctx(T0));

    expect(codes(d)).toEqual(['MISSING_REVIEW_CADENCE']);
    expect(d.violations[0]?.detail).toContain('"quarterly", not a cadence');
  });

  it('keeps one grace deadline per key and deactivates once it has passed (enforce)', () => {
    const untagged = () => key({ userTags: { owner: 'alice@example.com' } });
    const grace = 72 * HOUR;

    const steps = timeline([T0, T0 + 24 * HOUR, T0 + grace - 1, T0 + grace], untagged, { mode: 'enforce' });

    expect(steps.map((s) => s.action)).toEqual(['NOTIFY', 'NOTIFY', 'NOTIFY', 'DEACTIVATE']);
    expect(new Set(steps.map((s) => s.deadline))).toEqual(new Set([new Date(T0 + grace).toISOString()]));
    expect(steps[3]?.applied).toBe(true);
  });

  it('never escalates in the evaluation that starts the grace period, even with a zero grace period', () => {
    const steps = timeline([T0, T0 + 1], () => key({ userTags: {} }), { gracePeriodHours: 0 });

    expect(steps.map((s) => [s.action, s.notice])).toEqual([
      ['NOTIFY', 'first'],
      ['DEACTIVATE', 'action'],
    ]);
  });

  it('records the passed deadline as the reason for the deactivation', () => {
    const history: KeyHistory = { ...EMPTY_HISTORY, deadline: new Date(T0).toISOString() };

    const d = evaluate(key({ userTags: {} }), { ...ctx(T0 + 1), history });

    expect(d.action).toBe('DEACTIVATE');
    expect(d.reason).toContain(`grace deadline ${new Date(T0).toISOString()} passed`);
  });
});

describe('access and reactivation rules', () => {
  it('raises BROAD_PERMISSIONS with the highest finding severity, and USER_HAS_OTHER_CREDENTIALS', () => {
    const d = evaluate(
      key({
        permissions: [
          {
            policy: 'AmazonBedrockLimitedAccess',
            via: 'user',
            severity: 'low',
            reason: 'AWS managed policy AmazonBedrockLimitedAccess',
          },
          {
            policy: 'AdministratorAccess',
            via: 'group:admins',
            severity: 'high',
            reason: 'AWS managed policy AdministratorAccess',
          },
        ],
        otherCredentials: { activeAccessKeys: 1, consolePassword: true },
      }),
      ctx(T0),
    );

    expect(d.violations.map((v) => [v.code, v.severity])).toEqual([
      ['BROAD_PERMISSIONS', 'high'],
      ['USER_HAS_OTHER_CREDENTIALS', 'high'],
    ]);
    expect(d.violations[0]?.detail).toContain('(via group:admins)');
    expect(d.violations[1]?.detail).toContain('1 active access key(s) and a console password');
  });

  it('notes only the console-default policy as low severity', () => {
    const d = evaluate(
      key({
        permissions: [{ policy: 'AmazonBedrockLimitedAccess', via: 'user', severity: 'low', reason: 'x' }],
      }),
      ctx(T0),
    );

    expect(d.violations).toEqual([expect.objectContaining({ code: 'BROAD_PERMISSIONS', severity: 'low' })]);
  });

  it('does not evaluate permission or credential rules when those facts are unknown (replay)', () => {
    expect(codes(evaluate(key({ permissions: null, otherCredentials: null }), ctx(T0)))).toEqual([]);
  });

  it('deactivates again, critically, a key keyguard deactivated that is Active again without approval', () => {
    const history: KeyHistory = { ...EMPTY_HISTORY, deactivatedByUs: true };

    const d = evaluate(key(), { ...ctx(T0), history });

    expect(d.violations).toEqual([
      expect.objectContaining({ code: 'REACTIVATED_WITHOUT_APPROVAL', severity: 'critical' }),
    ]);
    expect(d.action).toBe('DEACTIVATE');
  });
});

describe('approvals', () => {
  const neverExpiring = () => key({ expiresAt: null });

  it('waives the codes an active approval covers, keeping them on record, and acts on the rest', () => {
    const d = evaluate(key({ expiresAt: null, userTags: {} }), { ...ctx(T0 + DAY), approvals: [approval()] });

    expect(codes(d)).toEqual(['MISSING_OWNER', 'MISSING_PURPOSE', 'MISSING_REVIEW_CADENCE']);
    expect(d.waived).toEqual([expect.objectContaining({ code: 'NEVER_EXPIRES', approvalId: 'ap-1' })]);
    expect(d.action).toBe('NOTIFY');
  });

  it('lets a never-expiring key live while approved (covers ALL also waives a reactivation)', () => {
    const history: KeyHistory = { ...EMPTY_HISTORY, deactivatedByUs: true };

    const d = evaluate(neverExpiring(), {
      ...ctx(T0 + DAY),
      history,
      approvals: [approval({ covers: 'ALL' })],
    });

    expect(d).toMatchObject({ action: 'ALLOW', violations: [] });
    expect(d.waived?.map((w) => w.code)).toEqual(['REACTIVATED_WITHOUT_APPROVAL', 'NEVER_EXPIRES']);
  });

  it('never lets a blanket approval cover a leak: LEAKED is waived only when named', () => {
    const blanket = approval({ covers: 'ALL' });
    const named = approval({ approvalId: 'ap-2', covers: ['LEAKED'] });

    expect(coversViolation(blanket, 'LEAKED')).toBe(false);
    expect(coversViolation(named, 'LEAKED')).toBe(true);
    expect(coversViolation(blanket, 'NEVER_EXPIRES')).toBe(true);
    expect(coversViolation(named, 'NEVER_EXPIRES')).toBe(false);
  });

  it.each([
    ['expired', approval({ until: new Date(T0 + DAY).toISOString() })],
    [
      'revoked',
      approval({
        revokedAt: new Date(T0 + DAY).toISOString(),
        revokedBy: 'arn:aws:iam::111122223333:user/ciso',
      }),
    ],
    ['not yet valid', approval({ approvedAt: new Date(T0 + 10 * DAY).toISOString() })],
  ])('brings the violation back when the approval is %s', (_label, a) => {
    const d = evaluate(neverExpiring(), { ...ctx(T0 + 2 * DAY), approvals: [a] });

    expect(codes(d)).toEqual(['NEVER_EXPIRES']);
    expect(d.action).toBe('DEACTIVATE');
    expect(d.waived).toBeUndefined();
  });
});

describe('staged notices', () => {
  const untagged = () => key({ userTags: { owner: 'alice@example.com' } });

  it('sends first, reminder (half-way), final warning (24 h before) and action, once each', () => {
    const times = [0, 1, 35, 36, 40, 48, 49, 60, 71, 72, 73].map((h) => T0 + h * HOUR);

    const steps = timeline(times, untagged, { mode: 'audit' });

    expect(steps.map((s) => s.notice)).toEqual([
      'first',
      null,
      null,
      'reminder',
      null,
      'final',
      null,
      null,
      null,
      'action',
      null,
    ]);
  });

  it('sends nothing on a sweep that finds nothing new', () => {
    const steps = timeline([T0, T0 + HOUR, T0 + 2 * HOUR], () => key(), {});

    expect(steps.map((s) => s.notice)).toEqual([null, null, null]);
  });

  it('starts again with a first notice when the violation set changes, and keeps the deadline', () => {
    const tagsAt = (t: number): Record<string, string> =>
      t < T0 + 5 * HOUR ? { owner: 'alice@example.com' } : { owner: 'alice@example.com', purpose: 'chatbot' };

    const steps = timeline([T0, T0 + HOUR, T0 + 5 * HOUR], (t) => key({ userTags: tagsAt(t) }));

    expect(steps.map((s) => s.notice)).toEqual(['first', null, 'first']);
    expect(new Set(steps.map((s) => s.deadline))).toEqual(new Set([new Date(T0 + 72 * HOUR).toISOString()]));
  });

  it('sends one "resolved" notice when the violations are fixed, and clears the deadline', () => {
    let tags: Record<string, string> = {};
    const steps: Array<{ notice: NoticeKind | null; deadline: string | null }> = [];
    let history = EMPTY_HISTORY;
    const config = parseConfig({});
    for (const [h, t] of [
      [0, {}],
      [5, TAGS],
      [6, TAGS],
    ] as const) {
      tags = { ...t };
      const d = evaluate(key({ userTags: tags }), { ...ctx(T0 + h * HOUR), history });
      const plan = planNotice(d, history, config, new Date(T0 + h * HOUR));
      history = plan.history;
      steps.push({ notice: plan.notice, deadline: history.deadline });
    }

    expect(steps).toEqual([
      { notice: 'first', deadline: new Date(T0 + 72 * HOUR).toISOString() },
      { notice: 'resolved', deadline: null },
      { notice: null, deadline: null },
    ]);
  });

  it('reminds once per expiry threshold, and once only when discovered late', () => {
    const exp = T0 + 60 * DAY;
    const onTime = timeline([exp - 14 * DAY, exp - 10 * DAY, exp - 3 * DAY, exp - 2 * DAY], () => key());
    const late = timeline([exp - 2 * DAY, exp - DAY], () => key());

    expect(onTime.map((s) => s.notice)).toEqual(['expiring', null, 'expiring', null]);
    expect(late.map((s) => s.notice)).toEqual(['expiring', null]);
  });

  it('sends the action notice once per violation set, also when the deactivation is only planned (audit)', () => {
    const steps = timeline([T0, T0 + HOUR, T0 + 2 * HOUR], () => key({ expiresAt: null }), { mode: 'audit' });

    expect(steps.map((s) => [s.action, s.notice])).toEqual([
      ['DEACTIVATE', 'action'],
      ['DEACTIVATE', null],
      ['DEACTIVATE', null],
    ]);
  });

  it('remembers a deactivation keyguard applied, and sends nothing while the key stays inactive', () => {
    let status: 'Active' | 'Inactive' = 'Active';
    const config = parseConfig({ mode: 'enforce' });
    let history = EMPTY_HISTORY;
    const sent: Array<NoticeKind | null> = [];
    for (const h of [0, 1, 2]) {
      let d = evaluate(key({ expiresAt: null, status }), {
        ...ctx(T0 + h * HOUR, { mode: 'enforce' }),
        history,
      });
      if (d.action === 'DEACTIVATE') {
        d = { ...d, applied: true };
        status = 'Inactive';
      }
      const plan = planNotice(d, history, config, new Date(T0 + h * HOUR));
      history = plan.history;
      sent.push(plan.notice);
    }

    expect(sent).toEqual(['action', null, null]);
    expect(history.deactivatedByUs).toBe(true);
  });
});
