import { countFailing, latestPerKey, parseFailOn, withPosture } from '../../lambda/cli/fail-on';
import type { Decision } from '../../lambda/domain/types';
import { captureIO } from './helpers';

function decision(over: Partial<Decision>): Decision {
  return {
    decisionId: '2026-11-20T09:00:00.000Z/e1/ACCAKEY1',
    decidedAt: '2026-11-20T09:00:00.000Z',
    keyId: 'ACCAKEY1',
    userName: 'svc',
    accountId: '111122223333',
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: { kind: 'event' },
    createdAt: null,
    expiresAt: null,
    neverExpires: true,
    owner: { value: 'team@example.com', source: 'tag' },
    violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'never expires' }],
    action: 'DEACTIVATE',
    applied: false,
    mode: 'enforce',
    deadline: null,
    policyVersion: 'v1',
    ...over,
  };
}

describe('--fail-on', () => {
  it('takes the four severities in any case, and names the flag and value otherwise', () => {
    // Act / Assess
    expect(['low', 'Medium', ' HIGH ', 'critical'].map(parseFailOn)).toEqual([
      'low',
      'medium',
      'high',
      'critical',
    ]);
    expect(parseFailOn(undefined)).toBeUndefined();
    expect(() => parseFailOn('')).toThrow('--fail-on: got ""; allowed: low, medium, high, critical');
  });

  it('counts live keys only: an applied deactivation or deletion, or a key not Active, no longer counts', () => {
    // Prepare
    const planned = decision({});
    const applied = decision({ keyId: 'ACCAKEY2', applied: true });
    const deleted = decision({ keyId: 'ACCAKEY3', action: 'DELETE', applied: true });
    const inactive = decision({ keyId: 'ACCAKEY4', status: 'Inactive', action: 'ALLOW' });
    const waivedOnly = decision({
      keyId: 'ACCAKEY5',
      violations: [],
      waived: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'x', approvalId: 'a1' }],
    });

    // Act
    const n = countFailing([planned, applied, deleted, inactive, waivedOnly], 'low');

    // Assess
    expect(n).toBe(1);
  });

  it('takes each key’s latest decision, whatever the order given', () => {
    // Prepare
    const fixed = decision({
      decisionId: '2026-11-21T09:00:00.000Z/e2/ACCAKEY1',
      decidedAt: '2026-11-21T09:00:00.000Z',
      violations: [],
      action: 'ALLOW',
    });

    // Act
    const latest = latestPerKey([fixed, decision({})]);

    // Assess
    expect(latest).toEqual([fixed]);
  });

  it('keeps every other exit code, and prints the reason only when the threshold is met', () => {
    // Prepare
    const out = captureIO('/');

    // Act
    const codes = [
      withPosture(0, 'high', 0, 'w', out.io),
      withPosture(0, undefined, 3, 'w', out.io),
      withPosture(0, 'high', 2, 'w', out.io),
      withPosture(3, 'high', 2, 'w', out.io),
      withPosture(2, 'high', 2, 'w', out.io),
    ];

    // Assess
    expect(codes).toEqual([0, 0, 1, 3, 2]);
    expect(out.stderr().split('\n').filter(Boolean)).toHaveLength(3);
  });
});
