import { evaluate } from '../../lambda/domain/evaluate';
import { buildNotice } from '../../lambda/domain/notice';
import type { Decision, KeySnapshot, Severity, Violation } from '../../lambda/domain/types';
import { type Config, type ConfigInput, parseConfig, policyVersion } from '../../lambda/shared/config';

const DAY = 86_400_000;
const NOW = new Date('2025-07-09T14:02:11.000Z');
const SEVERITY_ORDER: Severity[] = ['low', 'medium', 'high', 'critical'];

function key(overrides: Partial<KeySnapshot> = {}): KeySnapshot {
  return {
    keyId: 'ACCACGZMVM3QEJSJ53FAL',
    userName: 'svc-chatbot',
    accountId: '111122223333',
    status: 'Active',
    createdAt: NOW.toISOString(),
    expiresAt: new Date(NOW.getTime() + 30 * DAY).toISOString(),
    userTags: { owner: 'alice@example.com', purpose: 'support chatbot', 'review-cadence': '90d' },
    creator: null,
    ...overrides,
  };
}

function decide(k: KeySnapshot, input: ConfigInput = {}): { decision: Decision; config: Config } {
  const config = parseConfig(input);
  const decision = evaluate(k, {
    config,
    policyVersion: policyVersion(config),
    now: NOW,
    trigger: {
      kind: 'event',
      eventId: 'b3ab6a1c-3a26-4a2a-b004-4f16c81b9272',
      eventName: 'CreateServiceSpecificCredential',
    },
    decisionId: 'd-notice-1',
  });
  return { decision, config };
}

/** The JSON object printed after the "Decision record:" line. */
function embeddedDecision(body: string): unknown {
  const marker = body.indexOf('Decision record:');
  expect(marker).toBeGreaterThanOrEqual(0);
  const start = body.indexOf('{', marker);
  return JSON.parse(body.slice(start, body.lastIndexOf('}') + 1));
}

function highest(violations: Violation[]): Severity {
  return violations.reduce<Severity>(
    (top, v) => (SEVERITY_ORDER.indexOf(v.severity) > SEVERITY_ORDER.indexOf(top) ? v.severity : top),
    'low',
  );
}

describe('buildNotice: subject', () => {
  it('is under 100 printable ASCII characters (SNS: "less than 100") even for the longest IAM user name', () => {
    // Prepare: IAM user names are at most 64 characters
    const longName = `svc-${'x'.repeat(56)}-end`;
    expect(longName).toHaveLength(64);
    const { decision, config } = decide(key({ userName: longName, expiresAt: null, userTags: {} }));
    // Act
    const notice = buildNotice(decision, config);
    // Assess
    expect(notice.subject.length).toBeLessThan(100);
    expect(notice.subject).toMatch(/^[\x20-\x7e]+$/);
  });

  it('stays printable ASCII when a field holds non-ASCII text', () => {
    // Prepare: decisions can come from replayed or hand-made records; never trust them to be ASCII
    const { decision, config } = decide(key({ expiresAt: null }));
    const odd: Decision = { ...decision, userName: 'svc-chätbot\n🚀' };
    // Act
    const notice = buildNotice(odd, config);
    // Assess
    expect(notice.subject).toMatch(/^[\x20-\x7e]+$/);
    expect(notice.subject.length).toBeLessThan(100);
  });

  it('names the key and the user when they fit', () => {
    // Prepare
    const { decision, config } = decide(key({ userTags: {} }));
    // Act
    const notice = buildNotice(decision, config);
    // Assess
    expect(notice.subject).toContain('ACCACGZMVM3QEJSJ53FAL');
    expect(notice.subject).toContain('svc-chatbot');
  });
});

describe('buildNotice: body', () => {
  it('names the key, the user and the account', () => {
    // Prepare
    const { decision, config } = decide(key({ userTags: {} }));
    // Act
    const { body } = buildNotice(decision, config);
    // Assess
    expect(body).toContain('ACCACGZMVM3QEJSJ53FAL');
    expect(body).toContain('svc-chatbot');
    expect(body).toContain('111122223333');
  });

  it('lists every violation with its detail', () => {
    // Prepare
    const { decision, config } = decide(key({ expiresAt: null, userTags: {} }));
    expect(decision.violations.length).toBe(4);
    // Act
    const { body } = buildNotice(decision, config);
    // Assess
    for (const v of decision.violations) {
      expect(body).toContain(v.code);
      expect(body).toContain(v.detail);
    }
  });

  it.each([
    ['owner', 'MISSING_OWNER'],
    ['purpose', 'MISSING_PURPOSE'],
    ['reviewCadence', 'MISSING_REVIEW_CADENCE'],
  ] as const)('gives the tag-user command with the configured %s tag key for %s', (configKey, code) => {
    // Prepare: custom tag keys, none of them on the user
    const tags = { owner: 'Owner', purpose: 'app:purpose', reviewCadence: 'ReviewEvery' };
    const { decision, config } = decide(key({ userTags: {} }), { tags });
    expect(decision.violations.map((v) => v.code)).toContain(code);
    // Act
    const { body } = buildNotice(decision, config);
    // Assess
    expect(body).toContain(`aws iam tag-user --user-name svc-chatbot --tags Key=${tags[configKey]},Value=`);
  });

  it.each([
    ['NEVER_EXPIRES', { expiresAt: null }],
    ['EXCEEDS_MAX_AGE', { expiresAt: new Date(NOW.getTime() + 365 * DAY).toISOString() }],
  ] as const)(
    'tells the owner to recreate the key with --credential-age-days maxAgeDays for %s',
    (code, overrides) => {
      // Prepare
      const { decision, config } = decide(key(overrides), { maxAgeDays: 30 });
      expect(decision.violations.map((v) => v.code)).toEqual([code]);
      // Act
      const { body } = buildNotice(decision, config);
      // Assess
      expect(body).toContain(
        'aws iam create-service-specific-credential --user-name svc-chatbot --service-name bedrock.amazonaws.com --credential-age-days 30',
      );
    },
  );

  it('states the deadline of a NOTIFY decision', () => {
    // Prepare
    const { decision, config } = decide(key({ userTags: {} }), { gracePeriodHours: 24 });
    expect(decision.deadline).toBe('2025-07-10T14:02:11.000Z');
    // Act
    const { body } = buildNotice(decision, config);
    // Assess
    expect(body).toContain('2025-07-10T14:02:11.000Z');
  });

  it('says a deactivation is planned, not applied, when it was not applied', () => {
    // Prepare
    const { decision, config } = decide(key({ expiresAt: null }));
    expect(decision).toMatchObject({ action: 'DEACTIVATE', applied: false });
    // Act
    const notice = buildNotice(decision, config);
    // Assess
    expect(notice.body).toContain('planned, not applied');
    expect(notice.body).not.toMatch(/\bwas deactivated\b/);
  });

  it('says the key was deactivated when the enforcer applied it', () => {
    // Prepare
    const { decision, config } = decide(key({ expiresAt: null }), { mode: 'enforce' });
    const applied: Decision = { ...decision, applied: true };
    // Act
    const notice = buildNotice(applied, config);
    // Assess
    expect(notice.body).not.toContain('planned, not applied');
    expect(notice.body).toContain('(applied)');
    expect(notice.body).toContain('deactivated, not deleted');
    expect(notice.subject).toContain('deactivated');
    expect(notice.subject).not.toContain('must be deactivated');
  });

  it('contains the decision record as JSON', () => {
    // Prepare
    const { decision, config } = decide(key({ expiresAt: null, userTags: {} }));
    // Act
    const { body } = buildNotice(decision, config);
    // Assess
    expect(embeddedDecision(body)).toEqual(JSON.parse(JSON.stringify(decision)));
  });
});

describe('buildNotice: attributes (SNS filter policy inputs)', () => {
  it('carries the owner, the highest severity and the action', () => {
    // Prepare
    const { decision, config } = decide(key({ expiresAt: null, userTags: { owner: 'alice@example.com' } }));
    // Act
    const notice = buildNotice(decision, config);
    // Assess
    expect(notice.attributes).toEqual({
      owner: 'alice@example.com',
      severity: highest(decision.violations),
      action: 'DEACTIVATE',
      // The key's account: subscriptions of an organization filter on it.
      account: decision.accountId,
    });
  });

  it.each([
    [['low', 'low'], 'low'],
    [['low', 'medium'], 'medium'],
    [['medium', 'critical', 'high'], 'critical'],
    [['high', 'low'], 'high'],
  ] as [Severity[], Severity][])('reports %p as %s', (severities, expected) => {
    // Prepare
    const { decision, config } = decide(key());
    const withViolations: Decision = {
      ...decision,
      action: 'NOTIFY',
      violations: severities.map((severity) => ({ code: 'MISSING_PURPOSE', severity, detail: 'x' })),
    };
    // Act
    const notice = buildNotice(withViolations, config);
    // Assess
    expect(notice.attributes.severity).toBe(expected);
    expect(notice.subject.toLowerCase()).toContain(expected);
  });

  it('uses "unowned" when the decision has no owner', () => {
    // Prepare
    const { decision, config } = decide(key({ userTags: {}, creator: null }));
    expect(decision.owner).toEqual({ value: null, source: 'fallback' });
    // Act
    const notice = buildNotice(decision, config);
    // Assess
    expect(notice.attributes.owner).toBe('unowned');
    expect(notice.attributes.action).toBe('NOTIFY');
  });

  it('uses the fallback owner when one is configured', () => {
    // Prepare
    const { decision, config } = decide(key({ userTags: {}, creator: null }), {
      fallbackOwner: 'secops@example.com',
    });
    // Act
    const notice = buildNotice(decision, config);
    // Assess
    expect(notice.attributes.owner).toBe('secops@example.com');
  });

  it('reports a compliant key as ALLOW with no violation severity', () => {
    // Prepare
    const { decision, config } = decide(key());
    // Act
    const notice = buildNotice(decision, config);
    // Assess
    expect(notice.attributes.action).toBe('ALLOW');
    expect(SEVERITY_ORDER).not.toContain(notice.attributes.severity);
  });
});

describe('buildNotice: policy without long-term keys, and inactive keys', () => {
  it('tells the owner to move to short-term keys when long-term keys are not allowed', () => {
    const { decision, config } = decide(key(), { allowLongTermKeys: false });

    const notice = buildNotice(decision, config);

    expect(notice.attributes).toEqual({
      owner: 'alice@example.com',
      severity: 'high',
      action: 'DEACTIVATE',
      account: decision.accountId,
    });
    expect(notice.body).toContain('LONG_TERM_NOT_ALLOWED (high)');
    expect(notice.body).toContain('short-term keys');
    expect(notice.body).toContain(`delete key ${decision.keyId} from user ${decision.userName}`);
  });

  it('does not call an inactive key with violations "compliant"', () => {
    const { decision, config } = decide(key({ status: 'Inactive', expiresAt: null }));

    const notice = buildNotice(decision, config);

    expect(decision.action).toBe('ALLOW');
    expect(notice.subject).toContain('is inactive');
    expect(notice.subject).not.toContain('compliant');
  });
});

describe('buildNotice: UNUSED', () => {
  it('tells the owner to delete an unused key, or to get an approval when it is needed only rarely', () => {
    // Prepare: created 200 days ago, never used since tracking started 100 days ago; 90 idle days allowed
    const config = parseConfig({ maxIdleDays: 90, usage: { regions: ['us-east-1'] } });
    const k = key({ createdAt: new Date(NOW.getTime() - 200 * DAY).toISOString() });
    const decision = evaluate(k, {
      config,
      policyVersion: policyVersion(config),
      now: NOW,
      trigger: { kind: 'sweep', eventId: 'sweep-1' },
      decisionId: 'd-notice-unused',
      usage: { lastUsedAt: null, trackingSince: new Date(NOW.getTime() - 100 * DAY).toISOString() },
    });
    expect(decision.violations.map((v) => v.code)).toContain('UNUSED');

    // Act
    const notice = buildNotice(decision, config);

    // Assess
    const fix = notice.body.split('\n').find((l) => l.startsWith('  Fix: If nothing uses key'));
    expect(fix).toBe(
      `  Fix: If nothing uses key ${k.keyId} any more, delete it (aws iam delete-service-specific-credential ` +
        `--user-name ${k.userName} --service-specific-credential-id ${k.keyId}); if it is needed only rarely, ` +
        `get an approval (keyguard approve --key ${k.keyId} --covers UNUSED ...).`,
    );
    expect(notice.body).not.toContain('See the decision record for details.');
  });
});

describe('buildNotice: hostile values', () => {
  it('shows control and bidi characters of user names and tags as escapes, so no line can be forged', () => {
    const { decision, config } = decide(
      key({
        userName: 'svc-bot',
        expiresAt: null,
        userTags: {
          owner: 'alice@example.com\nAction: ALLOW (nothing to do)\u202etxt.exe',
          purpose: 'clear \u001b[2J screen',
          'review-cadence': '90d',
        },
      }),
    );
    const { body } = buildNotice(decision, config);
    expect(body).not.toMatch(
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for exactly these characters
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/,
    );
    expect(body).not.toMatch(/^Action: ALLOW/m);
    expect(body).toContain('alice@example.com\\nAction: ALLOW (nothing to do)\\u202etxt.exe');
    // The decision record is still the exact decision, once parsed.
    expect(embeddedDecision(body)).toEqual(JSON.parse(JSON.stringify(decision)));
  });
});
