import {
  type EvaluationContext,
  evaluate,
  isNeverExpiring,
  resolveOwner,
} from '../../lambda/domain/evaluate';
import type { Decision, KeySnapshot, Severity, ViolationCode } from '../../lambda/domain/types';
import { type Config, type ConfigInput, parseConfig, policyVersion } from '../../lambda/shared/config';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const NOW = new Date('2025-07-09T14:02:11.000Z');
const SEVERITIES: Severity[] = ['low', 'medium', 'high', 'critical'];

const COMPLETE_TAGS = { owner: 'alice@example.com', purpose: 'support chatbot', 'review-cadence': '90d' };

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A compliant key under the default policy: 30-day lifetime, every required tag set. */
function key(overrides: Partial<KeySnapshot> = {}): KeySnapshot {
  return {
    keyId: 'ACCACGZMVM3QEJSJ53FAL',
    userName: 'svc-chatbot',
    accountId: '111122223333',
    status: 'Active',
    createdAt: NOW.toISOString(),
    expiresAt: iso(NOW.getTime() + 30 * DAY),
    userTags: { ...COMPLETE_TAGS },
    creator:
      'arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_PlatformAdmin_5f1c2d3e4a6b7c8d/alice@example.com',
    ...overrides,
  };
}

function context(input: ConfigInput = {}, overrides: Partial<EvaluationContext> = {}): EvaluationContext {
  const config: Config = parseConfig(input);
  return {
    config,
    policyVersion: policyVersion(config),
    now: NOW,
    trigger: {
      kind: 'event',
      eventId: 'b3ab6a1c-3a26-4a2a-b004-4f16c81b9272',
      eventName: 'CreateServiceSpecificCredential',
      eventTime: NOW.toISOString(),
    },
    decisionId: 'd-test-0001',
    ...overrides,
  };
}

function codes(d: Decision): ViolationCode[] {
  return d.violations.map((v) => v.code);
}

describe('evaluate: lifetime', () => {
  it('allows a key whose lifetime is within maxAgeDays and whose tags are complete', () => {
    // Prepare
    const k = key();
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.violations).toEqual([]);
    expect(d.action).toBe('ALLOW');
    expect(d.deadline).toBeNull();
    expect(d.neverExpires).toBe(false);
  });

  it.each([
    ['no expiration date', null],
    ['expiry in 2100 (the first "century" year)', '2100-01-01T00:00:00.000Z'],
    ['expiry in 2125 (about 100 years out)', '2125-07-09T14:02:11.000Z'],
  ])('flags NEVER_EXPIRES for %s', (_label, expiresAt) => {
    // Prepare
    const k = key({ expiresAt });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(codes(d)).toEqual(['NEVER_EXPIRES']);
    expect(d.neverExpires).toBe(true);
    expect(d.expiresAt).toBe(expiresAt);
    expect(SEVERITIES).toContain(d.violations[0]?.severity);
    expect(d.violations[0]?.detail.length).toBeGreaterThan(0);
  });

  it('does not count 2099-12-31 as never-expiring (it is an ordinary, over-long lifetime)', () => {
    // Prepare
    const k = key({ expiresAt: '2099-12-31T23:59:59.000Z' });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.neverExpires).toBe(false);
    expect(codes(d)).toEqual(['EXCEEDS_MAX_AGE']);
  });

  it('reports EXCEEDS_MAX_AGE with the lifetime and the limit in the detail', () => {
    // Prepare: 365-day key against the default 90-day policy
    const k = key({ expiresAt: iso(NOW.getTime() + 365 * DAY) });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(codes(d)).toEqual(['EXCEEDS_MAX_AGE']);
    expect(d.violations[0]?.detail).toContain('365');
    expect(d.violations[0]?.detail).toContain('90');
    expect(SEVERITIES).toContain(d.violations[0]?.severity);
  });

  it('allows a lifetime of exactly maxAgeDays', () => {
    // Prepare
    const k = key({ expiresAt: iso(NOW.getTime() + 90 * DAY) });
    // Act
    const d = evaluate(k, context({ maxAgeDays: 90 }));
    // Assess
    expect(d.violations).toEqual([]);
    expect(d.action).toBe('ALLOW');
  });

  it('flags a lifetime of maxAgeDays plus one second', () => {
    // Prepare
    const k = key({ expiresAt: iso(NOW.getTime() + 90 * DAY + 1000) });
    // Act
    const d = evaluate(k, context({ maxAgeDays: 90 }));
    // Assess
    expect(codes(d)).toEqual(['EXCEEDS_MAX_AGE']);
  });

  it('measures lifetime from createdAt, not from now', () => {
    // Prepare: created 60 days ago with a 100-day lifetime (40 days left)
    const created = NOW.getTime() - 60 * DAY;
    const k = key({ createdAt: iso(created), expiresAt: iso(created + 100 * DAY) });
    // Act
    const d = evaluate(k, context({ maxAgeDays: 90 }));
    // Assess
    expect(codes(d)).toEqual(['EXCEEDS_MAX_AGE']);
  });

  it('measures lifetime from now when createdAt is unknown', () => {
    // Prepare
    const within = key({ createdAt: null, expiresAt: iso(NOW.getTime() + 30 * DAY) });
    const beyond = key({ createdAt: null, expiresAt: iso(NOW.getTime() + 31 * DAY) });
    // Act
    const a = evaluate(within, context({ maxAgeDays: 30 }));
    const b = evaluate(beyond, context({ maxAgeDays: 30 }));
    // Assess
    expect(a.violations).toEqual([]);
    expect(codes(b)).toEqual(['EXCEEDS_MAX_AGE']);
  });

  it('follows a configured maxAgeDays', () => {
    // Prepare: a 30-day key is fine under 90 days but too long under 7
    const k = key();
    // Act
    const lenient = evaluate(k, context({ maxAgeDays: 90 }));
    const strict = evaluate(k, context({ maxAgeDays: 7 }));
    // Assess
    expect(lenient.violations).toEqual([]);
    expect(codes(strict)).toEqual(['EXCEEDS_MAX_AGE']);
  });
});

describe('isNeverExpiring', () => {
  it.each([
    [null, true],
    ['2100-01-01T00:00:00.000Z', true],
    ['2125-05-12T08:15:30.000Z', true],
    ['2099-12-31T23:59:59.999Z', false],
    ['2025-08-08T14:02:11.000Z', false],
  ])('%p -> %p', (expiresAt, expected) => {
    // Prepare: value from the table
    // Act
    const result = isNeverExpiring(expiresAt);
    // Assess
    expect(result).toBe(expected);
  });
});

describe('evaluate: required tags', () => {
  it.each([
    ['owner', 'MISSING_OWNER'],
    ['purpose', 'MISSING_PURPOSE'],
    ['review-cadence', 'MISSING_REVIEW_CADENCE'],
  ] as const)('flags a missing %s tag as %s', (tag, code) => {
    // Prepare
    const { [tag]: _removed, ...tags } = COMPLETE_TAGS;
    const k = key({ userTags: tags });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(codes(d)).toEqual([code]);
    expect(d.violations[0]?.detail).toContain(tag);
    expect(SEVERITIES).toContain(d.violations[0]?.severity);
  });

  it.each([
    ['owner', 'MISSING_OWNER'],
    ['purpose', 'MISSING_PURPOSE'],
    ['review-cadence', 'MISSING_REVIEW_CADENCE'],
  ] as const)('counts a whitespace-only or empty %s tag as missing', (tag, code) => {
    // Prepare
    const blank = key({ userTags: { ...COMPLETE_TAGS, [tag]: ' \t ' } });
    const empty = key({ userTags: { ...COMPLETE_TAGS, [tag]: '' } });
    // Act
    const a = evaluate(blank, context());
    const b = evaluate(empty, context());
    // Assess
    expect(codes(a)).toEqual([code]);
    expect(codes(b)).toEqual([code]);
  });

  it('flags all three when the user has no tags', () => {
    // Prepare
    const k = key({ userTags: {} });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(codes(d).sort()).toEqual(['MISSING_OWNER', 'MISSING_PURPOSE', 'MISSING_REVIEW_CADENCE']);
  });

  it('reads the tag keys named in the config, not the defaults', () => {
    // Prepare: tags under the default keys only; the policy asks for custom ones
    const tagsConfig = { owner: 'Owner', purpose: 'app:purpose', reviewCadence: 'ReviewEvery' };
    const defaultsOnly = key({ userTags: { ...COMPLETE_TAGS } });
    const customOnly = key({
      userTags: { Owner: 'alice@example.com', 'app:purpose': 'chatbot', ReviewEvery: '30d' },
    });
    // Act
    const a = evaluate(defaultsOnly, context({ tags: tagsConfig }));
    const b = evaluate(customOnly, context({ tags: tagsConfig }));
    // Assess
    expect(codes(a).sort()).toEqual(['MISSING_OWNER', 'MISSING_PURPOSE', 'MISSING_REVIEW_CADENCE']);
    expect(a.violations.map((v) => v.detail).join(' ')).toContain('Owner');
    expect(a.violations.map((v) => v.detail).join(' ')).toContain('ReviewEvery');
    expect(b.violations).toEqual([]);
  });
});

describe('evaluate: action', () => {
  it('DEACTIVATEs an active never-expiring key at once (deadline null)', () => {
    // Prepare
    const k = key({ expiresAt: null });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.action).toBe('DEACTIVATE');
    expect(d.deadline).toBeNull();
  });

  it('DEACTIVATEs a century-out key too, even with other violations', () => {
    // Prepare
    const k = key({ expiresAt: '2125-07-09T14:02:11.000Z', userTags: {} });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.action).toBe('DEACTIVATE');
    expect(d.deadline).toBeNull();
    expect(codes(d)).toContain('NEVER_EXPIRES');
    expect(codes(d)).toContain('MISSING_OWNER');
  });

  it.each([
    ['EXCEEDS_MAX_AGE', { expiresAt: iso(NOW.getTime() + 365 * DAY) }],
    ['MISSING_OWNER', { userTags: { purpose: 'x', 'review-cadence': '90d' } }],
    ['MISSING_PURPOSE', { userTags: { owner: 'alice@example.com', 'review-cadence': '90d' } }],
    ['MISSING_REVIEW_CADENCE', { userTags: { owner: 'alice@example.com', purpose: 'x' } }],
  ] as const)('NOTIFYs for %s with deadline = now + gracePeriodHours', (_code, overrides) => {
    // Prepare
    const k = key(overrides);
    // Act
    const d = evaluate(k, context({ gracePeriodHours: 48 }));
    // Assess
    expect(d.action).toBe('NOTIFY');
    expect(d.deadline).toBe(iso(NOW.getTime() + 48 * HOUR));
  });

  it('uses the default 72 h grace period', () => {
    // Prepare
    const k = key({ userTags: {} });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.deadline).toBe('2025-07-12T14:02:11.000Z');
  });

  it('sets the deadline to now with a zero grace period', () => {
    // Prepare
    const k = key({ userTags: {} });
    // Act
    const d = evaluate(k, context({ gracePeriodHours: 0 }));
    // Assess
    expect(d.action).toBe('NOTIFY');
    expect(d.deadline).toBe(NOW.toISOString());
  });

  it.each(['Inactive', 'Expired'] as const)('ALLOWs an %s key but still lists its violations', (status) => {
    // Prepare
    const k = key({ status, expiresAt: null, userTags: {} });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.action).toBe('ALLOW');
    expect(d.deadline).toBeNull();
    expect(d.status).toBe(status);
    expect(codes(d).sort()).toEqual([
      'MISSING_OWNER',
      'MISSING_PURPOSE',
      'MISSING_REVIEW_CADENCE',
      'NEVER_EXPIRES',
    ]);
  });

  it('ALLOWs a deleted key with no violations', () => {
    // Prepare
    const k = key({ status: 'Deleted', expiresAt: null, userTags: {} });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.action).toBe('ALLOW');
    expect(d.violations).toEqual([]);
    expect(d.deadline).toBeNull();
    expect(d.status).toBe('Deleted');
  });
});

describe('evaluate: owner', () => {
  it('prefers the owner tag (trimmed) over the creator', () => {
    // Prepare
    const k = key({ userTags: { ...COMPLETE_TAGS, owner: '  team-ml@example.com ' } });
    // Act
    const d = evaluate(k, context({ fallbackOwner: 'secops@example.com' }));
    // Assess
    expect(d.owner).toEqual({ value: 'team-ml@example.com', source: 'tag' });
  });

  it('falls back to the creator when there is no owner tag', () => {
    // Prepare
    const k = key({ userTags: {} });
    // Act
    const d = evaluate(k, context({ fallbackOwner: 'secops@example.com' }));
    // Assess
    expect(d.owner).toEqual({ value: k.creator, source: 'creator' });
  });

  it('falls back to the creator when the owner tag is whitespace only', () => {
    // Prepare
    const k = key({ userTags: { owner: '   ' } });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.owner.source).toBe('creator');
  });

  it('uses the configured fallback owner when neither tag nor creator is known', () => {
    // Prepare
    const k = key({ userTags: {}, creator: null });
    // Act
    const d = evaluate(k, context({ fallbackOwner: 'secops@example.com' }));
    // Assess
    expect(d.owner).toEqual({ value: 'secops@example.com', source: 'fallback' });
  });

  it('records a null owner from the fallback when none is configured', () => {
    // Prepare
    const k = key({ userTags: {}, creator: null });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.owner).toEqual({ value: null, source: 'fallback' });
  });

  it('reads the owner from the configured tag key', () => {
    // Prepare
    const k = key({ userTags: { owner: 'wrong@example.com', Owner: 'right@example.com' } });
    const config = parseConfig({ tags: { owner: 'Owner' } });
    // Act
    const owner = resolveOwner(k, config);
    // Assess
    expect(owner).toEqual({ value: 'right@example.com', source: 'tag' });
  });

  it('resolves the owner of a deleted key too (the decision says whose it was)', () => {
    // Prepare
    const k = key({ status: 'Deleted' });
    // Act
    const d = evaluate(k, context());
    // Assess
    expect(d.owner).toEqual({ value: 'alice@example.com', source: 'tag' });
  });
});

describe('evaluate: decision record', () => {
  it('has every field design.md names, with the documented types', () => {
    // Prepare
    const k = key({ expiresAt: null });
    // Act
    const d = evaluate(k, context());
    const json = JSON.parse(JSON.stringify(d)) as Record<string, unknown>;
    // Assess
    for (const field of [
      'keyId',
      'userName',
      'accountId',
      'keyType',
      'trigger',
      'createdAt',
      'expiresAt',
      'neverExpires',
      'owner',
      'violations',
      'action',
      'applied',
      'mode',
      'deadline',
      'policyVersion',
    ]) {
      expect(json).toHaveProperty([field]);
    }
    expect(json.keyType).toBe('LONG_TERM');
    expect(['ALLOW', 'NOTIFY', 'DEACTIVATE', 'DELETE']).toContain(json.action);
    expect(['audit', 'enforce']).toContain(json.mode);
    expect(typeof json.neverExpires).toBe('boolean');
    expect(typeof json.applied).toBe('boolean');
    expect(json.deadline).toBeNull();
    expect(json.expiresAt).toBeNull();
    expect(typeof json.createdAt).toBe('string');
    expect(['tag', 'creator', 'fallback']).toContain((json.owner as { source: string }).source);
    for (const v of json.violations as { code: string; severity: string; detail: string }[]) {
      expect(SEVERITIES).toContain(v.severity);
      expect(typeof v.code).toBe('string');
      expect(typeof v.detail).toBe('string');
    }
  });

  it('copies key identity, trigger, ids and clock into the decision', () => {
    // Prepare
    const k = key();
    const ctx = context({}, { decisionId: 'd-42', trigger: { kind: 'sweep' } });
    // Act
    const d = evaluate(k, ctx);
    // Assess
    expect(d).toMatchObject({
      decisionId: 'd-42',
      decidedAt: NOW.toISOString(),
      keyId: k.keyId,
      userName: k.userName,
      accountId: k.accountId,
      status: 'Active',
      trigger: { kind: 'sweep' },
      createdAt: k.createdAt,
      expiresAt: k.expiresAt,
    });
  });

  it.each(['audit', 'enforce'] as const)('copies mode %s and never marks the decision applied', (mode) => {
    // Prepare
    const k = key({ expiresAt: null });
    const ctx = context({ mode });
    // Act
    const d = evaluate(k, ctx);
    // Assess
    expect(d.mode).toBe(mode);
    expect(d.applied).toBe(false);
    expect(d.action).toBe('DEACTIVATE');
  });

  it('copies the policy version given in the context', () => {
    // Prepare
    const ctx = context({}, { policyVersion: 'p-from-context' });
    // Act
    const d = evaluate(key(), ctx);
    // Assess
    expect(d.policyVersion).toBe('p-from-context');
  });

  it('is pure: same inputs give the same decision and the snapshot is not modified', () => {
    // Prepare
    const k = key({ userTags: { owner: ' ' } });
    const before = structuredClone(k);
    const ctx = context();
    // Act
    const a = evaluate(k, ctx);
    const b = evaluate(k, ctx);
    // Assess
    expect(a).toEqual(b);
    expect(k).toEqual(before);
  });
});

describe('evaluate: long-term keys forbidden by policy', () => {
  it('raises LONG_TERM_NOT_ALLOWED on every Active long-term key, even a compliant one, and deactivates it', () => {
    // Prepare
    const ctx = context({ allowLongTermKeys: false });

    // Act
    const d = evaluate(key(), ctx);

    // Assess
    expect(codes(d)).toEqual(['LONG_TERM_NOT_ALLOWED']);
    expect(d.violations[0]?.severity).toBe('high');
    expect(d).toMatchObject({ action: 'DEACTIVATE', deadline: null, applied: false });
  });

  it('lists it beside the other violations, and only records it on an inactive key', () => {
    const ctx = context({ allowLongTermKeys: false });

    const active = evaluate(key({ expiresAt: null, userTags: {} }), ctx);
    const inactive = evaluate(key({ status: 'Inactive' }), ctx);

    expect(codes(active)).toEqual([
      'LONG_TERM_NOT_ALLOWED',
      'NEVER_EXPIRES',
      'MISSING_OWNER',
      'MISSING_PURPOSE',
      'MISSING_REVIEW_CADENCE',
    ]);
    expect(active.action).toBe('DEACTIVATE');
    expect(codes(inactive)).toEqual(['LONG_TERM_NOT_ALLOWED']);
    expect(inactive.action).toBe('ALLOW');
  });

  it('is not raised when long-term keys are allowed (the default)', () => {
    expect(codes(evaluate(key(), context()))).toEqual([]);
  });
});
