import { type EvaluationContext, evaluate } from '../../lambda/domain/evaluate';
import { rejectedLeakDecision } from '../../lambda/domain/leak-decision';
import {
  keyInText,
  leakMayDeactivate,
  leakToRemember,
  SKIPPED_CHECK,
} from '../../lambda/domain/leak-verification';
import { findLeakSpans } from '../../lambda/domain/leaks';
import { buildNotice } from '../../lambda/domain/notice';
import { planNotice } from '../../lambda/domain/staging';
import {
  type Approval,
  canonicalDecision,
  EMPTY_HISTORY,
  type KeySnapshot,
  type LeakEvidence,
  type LeakVerification,
} from '../../lambda/domain/types';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { fingerprint } from '../../lambda/shared/redact';
import { fakeLongTermKey } from '../support/secrets';

const NOW = new Date('2026-11-20T10:00:00.000Z');
const CONFIG = parseConfig({ mode: 'enforce' });

function verification(result: LeakVerification['result']): LeakVerification {
  return {
    result,
    method: 'bedrock:ListFoundationModels us-east-1',
    checkedAt: '2026-11-20T09:59:58.000Z',
    reason: `HTTP answer meaning ${result}`,
    principal: null,
  };
}

/** A leak Bedrock confirmed: the only kind that deactivates by default. */
const LEAK: LeakEvidence = {
  verification: verification('VERIFIED'),
  fingerprint: 'sha256:0123456789abcdef',
  redacted: 'ABSK…wxyz',
  location: {
    logGroup: '/aws/lambda/chatbot',
    logStream: '2026/11/20/[$LATEST]abc',
    logEventId: '3784121057',
    timestamp: '2026-11-20T09:40:00.000Z',
    line: 2,
    column: 17,
  },
};

function key(overrides: Partial<KeySnapshot> = {}): KeySnapshot {
  return {
    keyId: 'ACCAEXAMPLELEAKED0001',
    userName: 'svc-chatbot',
    accountId: '111122223333',
    status: 'Active',
    createdAt: '2026-11-01T00:00:00.000Z',
    expiresAt: '2027-01-15T00:00:00.000Z',
    userTags: { owner: 'alice@example.com', purpose: 'chatbot', 'review-cadence': '90d' },
    creator: null,
    ...overrides,
  };
}

function ctx(overrides: Partial<EvaluationContext> = {}): EvaluationContext {
  return {
    config: CONFIG,
    policyVersion: policyVersion(CONFIG),
    now: NOW,
    trigger: { kind: 'leak', eventId: LEAK.location.logEventId, eventTime: LEAK.location.timestamp },
    decisionId: 'd-leak-1',
    leak: LEAK,
    ...overrides,
  };
}

function approval(covers: Approval['covers']): Approval {
  return {
    approvalId: 'ap-1',
    accountId: '111122223333',
    keyId: 'ACCAEXAMPLELEAKED0001',
    covers,
    reason: 'r',
    approver: 'arn:aws:iam::111122223333:user/bob',
    approvedAt: '2026-11-01T00:00:00.000Z',
    until: '2027-01-01T00:00:00.000Z',
    revokedAt: null,
    revokedBy: null,
  };
}

describe('evaluate: LEAKED', () => {
  it('adds a critical LEAKED naming where the key was found and deactivates an active key at once', () => {
    const d = evaluate(key(), ctx());

    expect(d.action).toBe('DEACTIVATE');
    expect(d.deadline).toBeNull();
    expect(d.violations).toEqual([
      {
        code: 'LEAKED',
        severity: 'critical',
        detail:
          'the key was found in log group /aws/lambda/chatbot, stream 2026/11/20/[$LATEST]abc, event 3784121057 at ' +
          '2026-11-20T09:40:00.000Z (line 2, column 17); key ABSK…wxyz, fingerprint sha256:0123456789abcdef; ' +
          'verified: Bedrock accepted it as a working key (bedrock:ListFoundationModels us-east-1 at ' +
          '2026-11-20T09:59:58.000Z: HTTP answer meaning VERIFIED)',
      },
    ]);
    expect(d.leak).toEqual(LEAK);
  });

  it('does not deactivate when the leak names several candidate keys: it notifies', () => {
    const d = evaluate(key(), ctx({ leak: { ...LEAK, candidates: ['ACCA1', 'ACCA2'] } }));

    expect(d.action).toBe('NOTIFY');
    expect(d.violations[0]?.detail).toContain('one of ACCA1, ACCA2');
  });

  it('is waived only by an approval that names LEAKED', () => {
    expect(evaluate(key(), ctx({ approvals: [approval('ALL')] })).action).toBe('DEACTIVATE');
    const named = evaluate(key(), ctx({ approvals: [approval(['LEAKED'])] }));
    expect(named.action).toBe('ALLOW');
    expect(named.waived?.map((w) => w.code)).toEqual(['LEAKED']);
  });

  it('records the leak on an inactive key without acting', () => {
    const d = evaluate(key({ status: 'Inactive' }), ctx());

    expect(d.action).toBe('ALLOW');
    expect(d.violations.map((v) => v.code)).toEqual(['LEAKED']);
  });

  it('adds nothing without a leak', () => {
    expect(evaluate(key(), ctx({ leak: null })).violations).toEqual([]);
  });
});

describe('canonicalDecision and notices carry the leak', () => {
  it('keeps the leak evidence, in a fixed field order, and drops anything else', () => {
    const d = evaluate(key(), ctx({ leak: { ...LEAK, issuer: null, candidates: ['A', 'B'] } }));
    const extra = { ...d, leak: { ...d.leak, secret: 'x' } } as unknown as typeof d;

    const c = canonicalDecision(extra);

    expect(Object.keys(c.leak ?? {})).toEqual([
      'fingerprint',
      'redacted',
      'location',
      'candidates',
      'issuer',
      'verification',
    ]);
    expect(Object.keys(c.leak?.verification ?? {})).toEqual([
      'result',
      'method',
      'checkedAt',
      'reason',
      'principal',
    ]);
    expect(JSON.stringify(c)).not.toContain('secret');
  });

  it('tells the owner to replace the key, delete the old one once the replacement is live, and rotate it', () => {
    const d = { ...evaluate(key(), ctx()), applied: true, notice: 'action' as const };

    const n = buildNotice(d, CONFIG);

    expect(n.attributes.severity).toBe('critical');
    expect(n.body).toContain('LEAKED (critical)');
    expect(n.body).toContain('it is deactivated');
    expect(n.body).toContain('create a replacement');
    expect(n.body).toContain('rotate it wherever the old key was used');
    expect(n.body).toContain('once the replacement is live');
  });
});

describe('a leak is remembered', () => {
  it('keeps LEAKED in later evaluations without the leak trigger, so an unreplaced key is never "resolved"', () => {
    // Prepare: audit mode, the leak decision plans the deactivation and notifies
    const audit = parseConfig({ mode: 'audit' });
    const first = evaluate(key(), ctx({ config: audit }));
    const plan = planNotice(first, EMPTY_HISTORY, audit, NOW);
    expect(plan.notice).toBe('action');
    expect(plan.history.leak).toEqual(LEAK);

    // Act: an hour later, a sweep evaluates the still-Active key with the remembered history
    const later = new Date(NOW.getTime() + 3_600_000);
    const sweep = evaluate(
      key(),
      ctx({ config: audit, now: later, trigger: { kind: 'sweep' }, leak: null, history: plan.history }),
    );
    const next = planNotice(sweep, plan.history, audit, later);

    // Assess
    expect(sweep.violations.map((v) => v.code)).toEqual(['LEAKED']);
    expect(sweep.action).toBe('DEACTIVATE');
    expect(next.notice).toBeNull();
    expect(next.history.leak).toEqual(LEAK);
  });

  it('notifies an uncertain leak once, with no grace deadline that would later deactivate both candidates', () => {
    const leak = { ...LEAK, candidates: ['ACCA1', 'ACCA2'] };
    const first = evaluate(key(), ctx({ leak }));
    const plan = planNotice(first, EMPTY_HISTORY, CONFIG, NOW);
    const muchLater = new Date(NOW.getTime() + 30 * 86_400_000);
    const sweep = evaluate(key(), ctx({ now: muchLater, leak: null, history: plan.history }));

    expect(first.deadline).toBeNull();
    expect(plan.notice).toBe('first');
    expect(sweep.action).toBe('NOTIFY');
    expect(planNotice(sweep, plan.history, CONFIG, muchLater).notice).toBeNull();
  });
});

describe('evaluate: only a verified leak deactivates', () => {
  it('UNVERIFIED: LEAKED stays critical, the key is notified once and never deactivated, not even after a deadline', () => {
    // Prepare
    const leak = { ...LEAK, verification: verification('UNVERIFIED') };
    // Act
    const first = evaluate(key(), ctx({ leak }));
    const plan = planNotice(first, EMPTY_HISTORY, CONFIG, NOW);
    const muchLater = new Date(NOW.getTime() + 30 * 86_400_000);
    const sweep = evaluate(key(), ctx({ now: muchLater, leak: null, history: plan.history }));
    // Assess
    expect(first.action).toBe('NOTIFY');
    expect(first.deadline).toBeNull();
    expect(first.violations[0]).toMatchObject({ code: 'LEAKED', severity: 'critical' });
    expect(first.violations[0]?.detail).toContain('could not be verified');
    expect(plan.notice).toBe('first');
    expect(sweep.action).toBe('NOTIFY');
    expect(planNotice(sweep, plan.history, CONFIG, muchLater).notice).toBeNull();
  });

  it('UNVERIFIED with leakDetection.deactivateUnverified: deactivated, the detail saying it was not verified', () => {
    const config = parseConfig({ mode: 'enforce', leakDetection: { deactivateUnverified: true } });

    const d = evaluate(key(), ctx({ config, leak: { ...LEAK, verification: verification('UNVERIFIED') } }));

    expect(d.action).toBe('DEACTIVATE');
    expect(d.violations[0]?.detail).toContain('could not be verified');
    expect(d.violations[0]?.detail).toContain('leakDetection.deactivateUnverified is true');
  });

  it('a leak recorded before verification existed counts as unverified', () => {
    const { verification: _none, ...legacy } = LEAK;

    expect(evaluate(key(), ctx({ leak: legacy })).action).toBe('NOTIFY');
    expect(evaluate(key(), ctx({ leak: null, history: { ...EMPTY_HISTORY, leak: legacy } })).action).toBe(
      'NOTIFY',
    );
  });

  it('REJECTED never deactivates, whatever the config', () => {
    const config = parseConfig({ mode: 'enforce', leakDetection: { deactivateUnverified: true } });
    const leak = { ...LEAK, verification: verification('REJECTED') };

    const d = evaluate(key(), ctx({ config, leak }));

    expect(d.action).toBe('NOTIFY');
    expect(d.violations[0]).toMatchObject({ code: 'LEAKED', severity: 'medium' });
    expect(leakMayDeactivate(leak, config)).toBe(false);
  });

  it('an UNVERIFIED leak that was never checked (budget or time used up) does not deactivate, even with the opt-in', () => {
    const config = parseConfig({ mode: 'enforce', leakDetection: { deactivateUnverified: true } });
    const failed = { ...LEAK, verification: verification('UNVERIFIED') };
    const skipped = { ...LEAK, verification: { ...verification('UNVERIFIED'), method: SKIPPED_CHECK } };

    expect(evaluate(key(), ctx({ config, leak: failed })).action).toBe('DEACTIVATE');
    expect(evaluate(key(), ctx({ config, leak: skipped })).action).toBe('NOTIFY');
    // Remembered on the key, it does not deactivate at a later sweep either
    expect(
      evaluate(key(), ctx({ config, leak: null, history: { ...EMPTY_HISTORY, leak: skipped } })).action,
    ).toBe('NOTIFY');
  });

  it('a later unverified finding does not undo a verified leak remembered on the key', () => {
    // Prepare: audit mode, a verified leak is on record
    const audit = parseConfig({ mode: 'audit' });
    const plan = planNotice(evaluate(key(), ctx({ config: audit })), EMPTY_HISTORY, audit, NOW);
    const unverified = {
      ...LEAK,
      fingerprint: 'sha256:fedcba9876543210',
      verification: verification('UNVERIFIED'),
    };
    // Act
    const d = evaluate(key(), ctx({ config: audit, leak: unverified, history: plan.history }));
    const next = planNotice(d, plan.history, audit, NOW);
    // Assess
    expect(d.action).toBe('DEACTIVATE');
    expect(next.history.leak).toEqual(LEAK);
    expect(leakToRemember(unverified, LEAK)).toBe(LEAK);
    expect(leakToRemember(LEAK, unverified)).toBe(LEAK);
  });
});

describe('rejectedLeakDecision', () => {
  it('is a medium NOTIFY about this finding only, saying forged or inactive, with the verification on record', () => {
    const leak = { ...LEAK, verification: verification('REJECTED') };

    const d = rejectedLeakDecision({
      decisionId: 'd-rejected',
      now: NOW,
      accountId: '111122223333',
      userName: 'svc-chatbot',
      meta: {
        keyId: 'ACCAEXAMPLELEAKED0001',
        userName: 'svc-chatbot',
        status: 'Active',
        createdAt: '2026-11-01T00:00:00.000Z',
        expiresAt: null,
      },
      owner: { value: 'alice@example.com', source: 'tag' },
      trigger: { kind: 'leak', eventId: '3784121057', eventTime: LEAK.location.timestamp },
      leak,
      where: 'log group /aws/lambda/chatbot',
      config: CONFIG,
      policyVersion: policyVersion(CONFIG),
    });

    expect(d).toMatchObject({
      action: 'NOTIFY',
      applied: false,
      status: 'Active',
      neverExpires: true,
      notice: 'first',
      deadline: null,
      leak: { verification: { result: 'REJECTED' } },
    });
    expect(d.violations).toHaveLength(1);
    expect(d.violations[0]).toMatchObject({ code: 'LEAKED', severity: 'medium' });
    expect(d.violations[0]?.detail).toContain('Bedrock rejected it');
    expect(d.violations[0]?.detail).toContain('forged');
    expect(d.violations[0]?.detail).toContain('nothing was deactivated');
    const n = buildNotice(d, CONFIG);
    expect(n.attributes.severity).toBe('medium');
    expect(n.body).toContain('No action is needed on the key');
    expect(n.body).not.toContain('Treat the key as compromised');
  });

  it('an unverified leak notice asks a person to check before deactivating', () => {
    const d = evaluate(key(), ctx({ leak: { ...LEAK, verification: verification('UNVERIFIED') } }));

    const n = buildNotice({ ...d, notice: 'first' }, CONFIG);

    expect(n.attributes.severity).toBe('critical');
    expect(n.body).toContain('could not verify that the string found is the working key');
  });
});

describe('keyInText', () => {
  const KEY = fakeLongTermKey('key-in-text');

  it.each([
    ['plain', KEY],
    ['JSON-escaped', KEY.replace(/\//g, '\\/').replace(/\+/g, '\\u002B').replace(/=/g, '\\u003d')],
    ['URL-encoded', KEY.replace(/\//g, '%2F').replace(/\+/g, '%2b').replace(/=/g, '%3D')],
    ['doubly JSON-escaped', KEY.replace(/\//g, '\\\\\\/')],
    ['wrapped by a JSON line break', `${KEY.slice(0, 60)}\\n${KEY.slice(60)}`],
  ])('gives back the key found in %s text, checked by its fingerprint', (_label, written) => {
    const text = `{"level":"debug","msg":"key ${written} used"}`;
    const [span] = findLeakSpans(text, { now: NOW });
    if (!span) throw new Error('the key was not found');

    expect(keyInText(text, span, fingerprint)).toBe(KEY);
  });

  it('gives nothing when the text does not give back the key found', () => {
    const text = `key ${KEY}`;
    const [span] = findLeakSpans(text, { now: NOW });
    if (!span) throw new Error('the key was not found');

    expect(keyInText(text, { ...span, fingerprint: 'sha256:0000000000000000' }, fingerprint)).toBeNull();
  });
});
