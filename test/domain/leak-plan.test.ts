import { leakGroupDecision } from '../../lambda/domain/leak-decision';
import {
  MAX_GROUPS,
  MAX_REJECTED_SHORT_TERM,
  MAX_SAMPLE,
  MAX_UNVERIFIED_PER_BATCH,
  MAX_UNVERIFIED_PER_SUBJECT,
  notDecided,
  type PlanCandidate,
  planBatch,
  sightingsOf,
  verificationOrder,
} from '../../lambda/domain/leak-plan';
import { canonicalDecision, type LeakVerificationResult } from '../../lambda/domain/types';
import { parseConfig, policyVersion } from '../../lambda/shared/config';

interface C extends PlanCandidate {
  result: LeakVerificationResult;
}

let order = 0;
function c(subject: string, result: LeakVerificationResult, kind: C['kind'] = 'LONG_TERM'): C {
  order += 1;
  return { fingerprint: `sha256:${String(order).padStart(16, '0')}`, kind, subject, order, result };
}
const resultOf = (x: C) => x.result;
const fps = (xs: readonly C[]) => xs.map((x) => x.fingerprint);

describe('verificationOrder', () => {
  it('takes the subjects in turn, each in batch order, so that a flood naming one user does not delay another', () => {
    // Prepare: 5 strings for user a, then one for b
    const a = Array.from({ length: 5 }, () => c('acct/a', 'REJECTED'));
    const b = c('acct/b', 'VERIFIED');

    // Act
    const order = verificationOrder([...a, b]);

    // Assess: b's string is checked second, not sixth; nothing lost or repeated
    expect(fps(order)).toEqual(fps([a[0] as C, b, ...a.slice(1)]));
  });
});

describe('planBatch', () => {
  it('decides verified strings first and groups every rejected long-term string per user', () => {
    // Prepare: a real key hidden in a flood of forged strings for the same user, and two for another user
    const forged = Array.from({ length: 500 }, () => c('acct/a', 'REJECTED'));
    const real = c('acct/a', 'VERIFIED');
    const other = [c('acct/b', 'REJECTED'), c('acct/b', 'REJECTED')];

    // Act
    const plan = planBatch([...forged, real, ...other], resultOf);

    // Assess
    expect(fps(plan.verified)).toEqual([real.fingerprint]);
    expect(plan.individual).toEqual([]);
    expect(plan.groups.map((g) => [g.subject, g.result, g.candidates.length])).toEqual([
      ['acct/a', 'REJECTED', 500],
      ['acct/b', 'REJECTED', 2],
    ]);
    expect(plan.overflow).toEqual([]);
  });

  it('decides unverified strings one by one up to the per-user and per-batch bounds, then groups the rest', () => {
    // Prepare: 5 unverified strings for each of 5 users
    const users = ['u1', 'u2', 'u3', 'u4', 'u5'];
    const all = users.flatMap((u) => Array.from({ length: 5 }, () => c(`acct/${u}`, 'UNVERIFIED')));

    // Act
    const plan = planBatch(all, resultOf);

    // Assess: 3 per user, 10 in all (in batch order: u1 ×3, u2 ×3, u3 ×3, u4 ×1), the rest grouped per user
    expect(plan.individual).toHaveLength(MAX_UNVERIFIED_PER_BATCH);
    const perUser = new Map<string, number>();
    for (const x of plan.individual) perUser.set(x.subject, (perUser.get(x.subject) ?? 0) + 1);
    expect(Math.max(...perUser.values())).toBe(MAX_UNVERIFIED_PER_SUBJECT);
    expect(plan.groups.map((g) => [g.subject, g.result, g.candidates.length, g.oneByOne])).toEqual([
      ['acct/u1', 'UNVERIFIED', 2, 3],
      ['acct/u2', 'UNVERIFIED', 2, 3],
      ['acct/u3', 'UNVERIFIED', 2, 3],
      ['acct/u4', 'UNVERIFIED', 4, 1],
      ['acct/u5', 'UNVERIFIED', 5, 0],
    ]);
    // Nothing lost: every string is in exactly one place
    const placed = [...plan.individual, ...plan.groups.flatMap((g) => g.candidates), ...plan.overflow];
    expect(new Set(fps(placed))).toEqual(new Set(fps(all)));
    expect(placed).toHaveLength(all.length);
  });

  it('caps group decisions and rejected short-term strings per batch; the excess is overflow, never verified strings', () => {
    // Prepare: rejected strings naming 15 users, 5 rejected short-term strings, and verified ones among them
    const longs = Array.from({ length: MAX_GROUPS + 5 }, (_v, i) => c(`acct/user-${i}`, 'REJECTED'));
    const shorts = Array.from({ length: 5 }, (_v, i) => c(`ASIA${i}`, 'REJECTED', 'SHORT_TERM'));
    const verified = [c('acct/user-14', 'VERIFIED'), c('ASIA9', 'VERIFIED', 'SHORT_TERM')];

    // Act
    const plan = planBatch([...longs, ...shorts, ...verified], resultOf);

    // Assess
    expect(fps(plan.verified)).toEqual(fps(verified));
    expect(plan.groups).toHaveLength(MAX_GROUPS);
    expect(plan.individual).toHaveLength(MAX_REJECTED_SHORT_TERM);
    expect(fps(plan.overflow)).toEqual(
      fps([...longs.slice(MAX_GROUPS), ...shorts.slice(MAX_REJECTED_SHORT_TERM)]),
    );
  });
});

describe('sightingsOf and notDecided', () => {
  it('counts every string and log event and keeps the first ones, bounded', () => {
    // Prepare: 30 strings over 60 log events (each string in two)
    const sightings = Array.from({ length: 60 }, (_v, i) => ({
      fingerprint: `fp-${i % 30}`,
      logEventId: `e-${i}`,
    }));

    // Act
    const s = sightingsOf(sightings);

    // Assess
    expect(s.strings).toBe(30);
    expect(s.logEvents).toBe(60);
    expect(s.fingerprints).toEqual(Array.from({ length: MAX_SAMPLE }, (_v, i) => `fp-${i}`));
    expect(s.logEventIds).toEqual(Array.from({ length: MAX_SAMPLE }, (_v, i) => `e-${i}`));
  });

  it('summarises what was not decided by result and subject', () => {
    const summary = notDecided([
      { fingerprint: 'a', subject: 'u1', result: 'REJECTED', findings: 2 },
      { fingerprint: 'b', subject: 'u1', result: 'UNVERIFIED', findings: 1 },
      { fingerprint: 'c', subject: 'u2', result: 'REJECTED', findings: 1 },
    ]);
    expect(summary).toEqual({
      strings: 3,
      findings: 4,
      byResult: { REJECTED: 2, UNVERIFIED: 1 },
      subjects: 2,
      fingerprints: ['a', 'b', 'c'],
    });
  });
});

describe('leakGroupDecision', () => {
  const config = parseConfig({ mode: 'enforce' });
  const input = {
    decisionId: '2026-11-20T09:40:00.000Z/leak/e-1/rejected/svc-chatbot',
    now: new Date('2026-11-20T10:00:00.000Z'),
    accountId: '111122223333',
    userName: 'svc-chatbot',
    meta: {
      keyId: 'ACCAEXAMPLELEAKED0001',
      userName: 'svc-chatbot',
      alias: 'svc-chatbot-at-111122223333',
      status: 'Active' as const,
      createdAt: '2026-11-01T00:00:00.000Z',
      expiresAt: '2027-01-15T00:00:00.000Z',
    },
    owner: { value: 'team@example.com', source: 'tag' as const },
    trigger: { kind: 'leak' as const, eventId: 'e-1', eventTime: '2026-11-20T09:40:00.000Z' },
    where: 'log group /aws/apigateway/public-api',
    config,
    policyVersion: policyVersion(config),
    decidedOneByOne: 3,
  };
  function leak(result: LeakVerificationResult) {
    return {
      fingerprint: 'fp-0',
      redacted: 'ABSK…wxyz',
      location: {
        logGroup: '/aws/apigateway/public-api',
        logStream: 's',
        logEventId: 'e-1',
        timestamp: '2026-11-20T09:40:00.000Z',
        line: 1,
        column: 1,
      },
      verification: {
        result,
        method: 'none',
        checkedAt: '2026-11-20T10:00:00.000Z',
        reason: 'budget',
        principal: null,
      },
      sightings: { strings: 500, logEvents: 50, fingerprints: ['fp-0', 'fp-1'], logEventIds: ['e-1', 'e-2'] },
    };
  }

  it('REJECTED: a medium NOTIFY that acts on nothing and names the counts', () => {
    const d = leakGroupDecision({ ...input, result: 'REJECTED', leak: leak('REJECTED') });
    expect(d).toMatchObject({ action: 'NOTIFY', applied: false, deadline: null, notice: 'first' });
    expect(d.violations).toEqual([expect.objectContaining({ code: 'LEAKED', severity: 'medium' })]);
    expect(d.violations[0]?.detail).toContain('500 distinct strings');
    expect(d.violations[0]?.detail).toContain('50 log events');
    expect(d.violations[0]?.detail).toContain('nothing was deactivated');
    // The sightings survive the audit store's canonical shape
    expect(canonicalDecision(d).leak?.sightings).toEqual(leak('REJECTED').sightings);
  });

  it('UNVERIFIED: critical, since one of them may be the working key, and still no action', () => {
    const d = leakGroupDecision({ ...input, result: 'UNVERIFIED', leak: leak('UNVERIFIED') });
    expect(d).toMatchObject({ action: 'NOTIFY', applied: false });
    expect(d.violations[0]?.severity).toBe('critical');
    expect(d.violations[0]?.detail).toContain('beyond the 3 decided one by one');
    expect(d.violations[0]?.detail).toContain('One of them may be a working key');
  });
});
