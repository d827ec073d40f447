import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Config,
  ConfigError,
  DEFAULT_CONFIG_FILE,
  functionPolicy,
  loadConfig,
  parseConfig,
  parsePolicy,
  policyVersion,
} from '../../lambda/shared/config';
import { fakeLongTermKey } from '../support/secrets';

const SOURCE = 'keyguard.config.json';

/** Runs parseConfig and returns the ConfigError message; fails the test if nothing (or something else) is thrown. */
function configErrorFor(input: unknown, source = SOURCE): string {
  try {
    parseConfig(input, source);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError, the config was accepted');
}

describe('parseConfig: defaults', () => {
  it.each([
    ['an empty object', {}],
    ['undefined (no config at all)', undefined],
  ])('gives the conservative default policy for %s', (_label, input) => {
    // Prepare: input from the table
    // Act
    const config = parseConfig(input);
    // Assess: design.md: audit mode, 90-day keys, 72 h grace
    expect(config).toEqual({
      mode: 'audit',
      maxAgeDays: 90,
      gracePeriodHours: 72,
      expiryWarningDays: [14, 3],
      finalWarningHours: 24,
      maxApprovalDays: 365,
      approvers: [],
      sweep: { schedule: 'rate(1 hour)' },
      audit: { retentionDays: 365, digestSchedule: 'rate(1 hour)' },
      tags: { owner: 'owner', purpose: 'purpose', reviewCadence: 'review-cadence' },
      fallbackOwner: null,
      allowLongTermKeys: true,
      notifications: { subscriptions: [] },
      organization: null,
      overrides: [],
      leakDetection: { logGroups: [], deactivateUnverified: false },
      findings: { securityHub: false },
      maxIdleDays: 90,
      usage: { regions: [] },
      guardrails: {
        exemptTag: { key: 'keyguard:guardrail-exempt', value: 'true' },
        deploy: 'none',
        scpTargetIds: [],
      },
    });
  });

  it('fills defaults inside a partly given nested object', () => {
    // Prepare
    const input = { tags: { owner: 'Owner' } };
    // Act
    const config = parseConfig(input);
    // Assess
    expect(config.tags).toEqual({ owner: 'Owner', purpose: 'purpose', reviewCadence: 'review-cadence' });
  });

  it('accepts a full, valid config', () => {
    // Prepare
    const input = {
      mode: 'enforce',
      maxAgeDays: 30,
      gracePeriodHours: 24,
      expiryWarningDays: [7, 1],
      finalWarningHours: 12,
      maxApprovalDays: 180,
      approvers: ['arn:aws:iam::111122223333:role/SecurityApprover'],
      sweep: { schedule: 'rate(30 minutes)' },
      audit: { retentionDays: 2555, digestSchedule: 'rate(6 hours)' },
      tags: { owner: 'team:owner', purpose: 'app/purpose', reviewCadence: 'Review Cadence' },
      fallbackOwner: 'secops@example.com',
      allowLongTermKeys: true,
      notifications: {
        subscriptions: [
          { email: 'secops@example.com' },
          { email: 'ml-team@example.com', owners: ['ml-team@example.com', 'bob@example.com'] },
        ],
      },
      leakDetection: { logGroups: ['/aws/lambda/chatbot', 'app/ci#build-logs'], deactivateUnverified: true },
      findings: { securityHub: true },
      maxIdleDays: 30,
      usage: { regions: ['us-east-1', 'eu-central-1', 'ap-southeast-4'] },
      guardrails: {
        exemptTag: { key: 'security:exempt', value: 'yes' },
        deploy: 'scp',
        scpTargetIds: ['r-ab12', 'ou-ab12-cd34ef56', '111122223333'],
      },
      organization: {
        id: 'o-a1b2c3d4e5',
        managementAccountId: '111111111111',
        targets: ['ou-ab12-cd34ef56', 'r-ab12'],
        excludeAccounts: ['222222222222'],
        memberRoleName: 'BedrockKeyGuardMember',
        sweepConcurrency: 5,
      },
      overrides: [
        { ous: ['ou-ab12-sandbox1'], mode: 'enforce', maxAgeDays: 30 },
        { accounts: ['333333333333'], allowLongTermKeys: false },
      ],
    };
    // Act
    const config = parseConfig(input);
    // Assess
    expect(config).toEqual(input);
  });

  it.each([1, 36600])('accepts maxAgeDays at the IAM limit %p', (maxAgeDays) => {
    // Prepare: IAM allows CredentialAgeDays 1..36600
    // Act
    const config = parseConfig({ maxAgeDays });
    // Assess
    expect(config.maxAgeDays).toBe(maxAgeDays);
  });
});

describe('parseConfig: errors name the source, the key, the bad value and what is allowed', () => {
  it('rejects an unknown mode', () => {
    // Prepare
    const input = { mode: 'block' };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain(SOURCE);
    expect(message).toContain('mode');
    expect(message).toContain('"block"');
    expect(message).toContain('audit');
    expect(message).toContain('enforce');
  });

  it.each([
    [0, '1'],
    [36601, '36600'],
  ])('rejects maxAgeDays %p (outside 1..36600)', (value, bound) => {
    // Prepare
    const input = { maxAgeDays: value };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain(SOURCE);
    expect(message).toContain('maxAgeDays');
    expect(message).toContain(`got ${value}`);
    expect(message).toContain(bound);
  });

  it('rejects maxAgeDays given as a string', () => {
    // Prepare
    const input = { maxAgeDays: '90' };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain(SOURCE);
    expect(message).toContain('maxAgeDays');
    expect(message).toContain('"90"');
    expect(message).toContain('number');
  });

  it('rejects a fractional maxAgeDays', () => {
    // Prepare
    const input = { maxAgeDays: 30.5 };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain('maxAgeDays');
    expect(message).toContain('30.5');
  });

  it('rejects an unknown root key and lists the allowed keys', () => {
    // Prepare: a typo of maxAgeDays must not be silently ignored
    const input = { maxAgeDay: 30 };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain(SOURCE);
    expect(message).toContain('"maxAgeDay"');
    for (const key of [
      'mode',
      'maxAgeDays',
      'gracePeriodHours',
      'expiryWarningDays',
      'finalWarningHours',
      'maxApprovalDays',
      'approvers',
      'sweep',
      'tags',
      'fallbackOwner',
      'allowLongTermKeys',
      'notifications',
      'leakDetection',
    ]) {
      expect(message).toContain(key);
    }
  });

  it('rejects an unknown nested key and lists the keys allowed there', () => {
    // Prepare
    const input = { tags: { owner: 'owner', cadence: 'review' } };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain(SOURCE);
    expect(message).toContain('tags');
    expect(message).toContain('"cadence"');
    expect(message).toMatch(/owner, purpose, reviewCadence/);
  });

  it('rejects an unknown key inside a subscription and lists the subscription keys', () => {
    // Prepare
    const input = { notifications: { subscriptions: [{ email: 'a@example.com', protocol: 'sms' }] } };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain('notifications.subscriptions.0');
    expect(message).toContain('"protocol"');
    expect(message).toContain('email');
    expect(message).toContain('owners');
  });

  it('rejects a bad subscription email', () => {
    // Prepare
    const input = { notifications: { subscriptions: [{ email: 'secops-at-example.com' }] } };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain(SOURCE);
    expect(message).toContain('notifications.subscriptions.0.email');
    expect(message).toContain('"secops-at-example.com"');
    expect(message).toContain('email address');
  });

  it('rejects an empty owners filter (omit it to receive every notice)', () => {
    // Prepare
    const input = { notifications: { subscriptions: [{ email: 'secops@example.com', owners: [] }] } };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain(SOURCE);
    expect(message).toContain('notifications.subscriptions.0.owners');
    expect(message).toContain('[]');
    expect(message).toMatch(/at least 1/);
  });

  it('rejects a tag key IAM would not accept', () => {
    // Prepare
    const input = { tags: { owner: 'owner#team' } };
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain('tags.owner');
    expect(message).toContain('"owner#team"');
    expect(message).toContain('tag key');
  });

  it('reports every bad field, one per line', () => {
    // Prepare
    const input = { mode: 'strict', gracePeriodHours: -1 };
    // Act
    const message = configErrorFor(input);
    // Assess
    const lines = message.split('\n').filter((l) => l.startsWith(`${SOURCE}:`));
    expect(lines).toHaveLength(2);
    expect(lines.some((l) => l.includes('mode') && l.includes('"strict"'))).toBe(true);
    expect(lines.some((l) => l.includes('gracePeriodHours') && l.includes('-1'))).toBe(true);
  });

  it('rejects a root that is not an object', () => {
    // Prepare
    const input = ['audit'];
    // Act
    const message = configErrorFor(input);
    // Assess
    expect(message).toContain(SOURCE);
    expect(message).toContain('object');
  });

  it('throws ConfigError named as such', () => {
    // Prepare
    const input = { mode: 1 };
    // Act
    const act = () => parseConfig(input);
    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(expect.objectContaining({ name: 'ConfigError' }));
  });
});

describe('loadConfig', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyguard-config-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails with the path when an explicit file does not exist', () => {
    // Prepare
    const path = join(dir, 'missing.json');
    // Act
    const act = () => loadConfig(path, dir);
    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(path);
  });

  it('uses the embedded defaults when there is no default file', () => {
    // Prepare: an empty directory
    // Act
    const { config, source } = loadConfig(undefined, dir);
    // Assess
    expect(source).toBe('defaults');
    expect(config).toEqual(parseConfig({}));
  });

  it(`reads ${DEFAULT_CONFIG_FILE} from the directory when present`, () => {
    // Prepare
    const file = join(dir, DEFAULT_CONFIG_FILE);
    writeFileSync(file, JSON.stringify({ mode: 'enforce', maxAgeDays: 30 }));
    // Act
    const { config, source } = loadConfig(undefined, dir);
    // Assess
    expect(source).toBe(file);
    expect(config.mode).toBe('enforce');
    expect(config.maxAgeDays).toBe(30);
  });

  it('reads an explicit file', () => {
    // Prepare
    const file = join(dir, 'prod.json');
    writeFileSync(file, JSON.stringify({ gracePeriodHours: 12 }));
    // Act
    const { config, source } = loadConfig(file, dir);
    // Assess
    expect(source).toBe(file);
    expect(config.gracePeriodHours).toBe(12);
  });

  it('fails with the file name when the file is not valid JSON', () => {
    // Prepare
    const file = join(dir, DEFAULT_CONFIG_FILE);
    writeFileSync(file, '{ "mode": "audit", }');
    // Act
    const act = () => loadConfig(undefined, dir);
    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(file);
    expect(act).toThrow(/JSON/);
  });

  it('names the file in validation errors', () => {
    // Prepare
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ maxAgeDays: 0 }));
    // Act
    const act = () => loadConfig(file, dir);
    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(`${file}: maxAgeDays: got 0`);
  });

  it('fails with ConfigError naming the path when the path is a directory', () => {
    // Prepare
    const path = join(dir, 'conf.d');
    mkdirSync(path);
    // Act
    const act = () => loadConfig(path, dir);
    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(`${path}: not a file`);
  });

  it('resolves a relative explicit path against the given working directory, and names it as given', () => {
    // Prepare
    mkdirSync(join(dir, 'conf'));
    writeFileSync(join(dir, 'conf', 'prod.json'), JSON.stringify({ maxAgeDays: 0 }));
    // Act
    const act = () => loadConfig('conf/prod.json', dir);
    // Assess
    expect(act).toThrow('conf/prod.json: maxAgeDays: got 0; allowed: >= 1');
  });
});

describe('policyVersion', () => {
  it('is stable across key order at every level', () => {
    // Prepare
    const a = parseConfig({ mode: 'enforce', maxAgeDays: 30, tags: { owner: 'Owner', purpose: 'p' } });
    const reordered = {
      tags: { purpose: a.tags.purpose, reviewCadence: a.tags.reviewCadence, owner: a.tags.owner },
      notifications: a.notifications,
      allowLongTermKeys: a.allowLongTermKeys,
      fallbackOwner: a.fallbackOwner,
      sweep: a.sweep,
      approvers: a.approvers,
      maxApprovalDays: a.maxApprovalDays,
      finalWarningHours: a.finalWarningHours,
      expiryWarningDays: a.expiryWarningDays,
      gracePeriodHours: a.gracePeriodHours,
      maxAgeDays: a.maxAgeDays,
      mode: a.mode,
      maxIdleDays: a.maxIdleDays,
      guardrails: a.guardrails,
      usage: a.usage,
      leakDetection: a.leakDetection,
    } as Config;
    const b = parseConfig({ tags: { purpose: 'p', owner: 'Owner' }, maxAgeDays: 30, mode: 'enforce' });
    // Act
    const va = policyVersion(a);
    const vr = policyVersion(reordered);
    const vb = policyVersion(b);
    // Assess
    expect(typeof va).toBe('string');
    expect(va.length).toBeGreaterThan(0);
    expect(vr).toBe(va);
    expect(vb).toBe(va);
  });

  it('is the same for an explicit default and an omitted one', () => {
    // Prepare
    const implicit = parseConfig({});
    const explicit = parseConfig({ mode: 'audit', maxAgeDays: 90 });
    // Act / Assess
    expect(policyVersion(explicit)).toBe(policyVersion(implicit));
  });

  it('is unaffected by notification subscriptions (they do not change decisions)', () => {
    // Prepare
    const base = parseConfig({});
    const withSubs = parseConfig({
      notifications: { subscriptions: [{ email: 'secops@example.com', owners: ['alice@example.com'] }] },
    });
    // Act
    const v1 = policyVersion(base);
    const v2 = policyVersion(withSubs);
    // Assess
    expect(v2).toBe(v1);
  });

  it.each([
    ['maxAgeDays', { maxAgeDays: 30 }],
    ['mode', { mode: 'enforce' }],
    ['gracePeriodHours', { gracePeriodHours: 24 }],
    ['a tag key', { tags: { owner: 'Owner' } }],
    ['fallbackOwner', { fallbackOwner: 'secops@example.com' }],
    ['allowLongTermKeys', { allowLongTermKeys: false }],
  ] as const)('changes when %s changes', (_label, change) => {
    // Prepare
    const base = parseConfig({});
    const changed = parseConfig(change);
    // Act
    const v1 = policyVersion(base);
    const v2 = policyVersion(changed);
    // Assess
    expect(v2).not.toBe(v1);
  });
});

describe('lifecycle settings (sweep, reminders, approvals)', () => {
  it('defaults to an hourly sweep, reminders 14 and 3 days before expiry, a 24 h final warning and 365-day approvals', () => {
    const config = parseConfig({});

    expect(config.sweep).toEqual({ schedule: 'rate(1 hour)' });
    expect(config.expiryWarningDays).toEqual([14, 3]);
    expect(config.finalWarningHours).toBe(24);
    expect(config.maxApprovalDays).toBe(365);
    expect(config.approvers).toEqual([]);
  });

  it.each([
    [{ sweep: { schedule: 'every hour' } }, 'sweep.schedule: got "every hour"'],
    [{ sweep: { schedule: 'rate(0 hours)' } }, 'sweep.schedule: got "rate(0 hours)"'],
    [{ expiryWarningDays: [0] }, 'expiryWarningDays.0: got 0; allowed: >= 1'],
    [{ maxApprovalDays: 0 }, 'maxApprovalDays: got 0; allowed: >= 1'],
    [{ approvers: ['alice'] }, 'approvers.0: got "alice"'],
  ])('rejects %j naming the key', (input, message) => {
    expect(() => parseConfig(input, 'k.json')).toThrow(`k.json: ${message}`);
  });

  it('accepts rate and cron schedules and IAM principal ARNs as approvers', () => {
    const config = parseConfig({
      sweep: { schedule: 'cron(0 */6 * * ? *)' },
      approvers: ['arn:aws:iam::111122223333:role/SecurityApprover', 'arn:aws:iam::111122223333:user/ciso'],
    });

    expect(config.sweep.schedule).toBe('cron(0 */6 * * ? *)');
    expect(parseConfig({ sweep: { schedule: 'rate(15 minutes)' } }).sweep.schedule).toBe('rate(15 minutes)');
    expect(config.approvers).toHaveLength(2);
  });
});

describe('audit (tamper evidence of the decision record)', () => {
  it('locks archived decisions and digests for 365 days and signs a digest every hour by default', () => {
    expect(parseConfig({}).audit).toEqual({ retentionDays: 365, digestSchedule: 'rate(1 hour)' });
    expect(parseConfig({ audit: { retentionDays: 2555 } }).audit).toEqual({
      retentionDays: 2555,
      digestSchedule: 'rate(1 hour)',
    });
  });

  it.each([
    [{ audit: { retentionDays: 0 } }, 'audit.retentionDays: got 0; allowed: >= 1'],
    [{ audit: { retentionDays: 36501 } }, 'audit.retentionDays: got 36501; allowed: <= 36500'],
    [{ audit: { retentionDays: 1.5 } }, 'audit.retentionDays: got 1.5'],
    [{ audit: { retentionDays: '365' } }, 'audit.retentionDays: got "365"'],
    [{ audit: { digestSchedule: 'hourly' } }, 'audit.digestSchedule: got "hourly"'],
    [{ audit: { retention: 30 } }, 'audit'],
  ])('rejects %j naming the setting', (input, message) => {
    expect(() => parseConfig(input, 'k.json')).toThrow(`k.json: ${message}`);
  });

  it('does not change the policy version (archiving does not change decisions)', () => {
    expect(policyVersion(parseConfig({ audit: { retentionDays: 30 } }))).toBe(policyVersion(parseConfig({})));
  });
});

describe('findings (Security Hub)', () => {
  it('is off by default, on with findings.securityHub, and does not change the policy version', () => {
    expect(parseConfig({}).findings).toEqual({ securityHub: false });
    expect(parseConfig({ findings: { securityHub: true } }).findings).toEqual({ securityHub: true });
    expect(policyVersion(parseConfig({ findings: { securityHub: true } }))).toBe(
      policyVersion(parseConfig({})),
    );
  });

  it('names the setting and the value when it is not a boolean, and the allowed keys when one is unknown', () => {
    expect(() => parseConfig({ findings: { securityHub: 'yes' } }, 'keyguard.config.json')).toThrow(
      /keyguard\.config\.json: findings\.securityHub: got "yes"/,
    );
    expect(() => parseConfig({ findings: { securityhub: true } }, 'keyguard.config.json')).toThrow(
      /findings: unknown key\(s\) "securityhub"; allowed: .*securityHub/,
    );
  });
});

describe('decisionEvents.ocsf (OCSF decision events)', () => {
  it('is absent (off) by default, on with decisionEvents.ocsf, and does not change the policy version', () => {
    expect(parseConfig({}).decisionEvents).toBeUndefined();
    expect(parseConfig({ decisionEvents: {} }).decisionEvents).toEqual({ ocsf: false });
    const on = parseConfig({ decisionEvents: { ocsf: true } });
    expect(on.decisionEvents).toEqual({ ocsf: true });
    expect(policyVersion(on)).toBe(policyVersion(parseConfig({})));
  });

  it('names the setting and the value when it is not a boolean, and the allowed keys when one is unknown', () => {
    expect(() => parseConfig({ decisionEvents: { ocsf: 'yes' } }, 'keyguard.config.json')).toThrow(
      /keyguard\.config\.json: decisionEvents\.ocsf: got "yes"/,
    );
    expect(() => parseConfig({ decisionEvents: { format: 'ocsf' } }, 'keyguard.config.json')).toThrow(
      /decisionEvents: unknown key\(s\) "format"; allowed: .*ocsf/,
    );
  });
});

describe('leakDetection (log quarantine)', () => {
  it('scans no log group by default', () => {
    const config = parseConfig({});

    expect(config.leakDetection).toEqual({ logGroups: [], deactivateUnverified: false });
    expect(parseConfig({ leakDetection: {} }).leakDetection.logGroups).toEqual([]);
  });

  it('accepts CloudWatch Logs group names', () => {
    const logGroups = ['/aws/lambda/chatbot', 'ci.build_logs-2026', 'team#app/prod'];

    expect(parseConfig({ leakDetection: { logGroups } }).leakDetection.logGroups).toEqual(logGroups);
  });

  it.each([
    [
      'an ARN',
      'arn:aws:logs:us-east-1:111122223333:log-group:/aws/lambda/x',
      'must be a CloudWatch Logs group name',
    ],
    ['a name with a space', 'my logs', 'must be a CloudWatch Logs group name'],
    ['an empty name', '', 'must be a CloudWatch Logs group name'],
    ['a name longer than 512 characters', 'a'.repeat(513), 'allowed: at most 512 character(s)'],
  ])('rejects %s, naming the key', (_label, name, why) => {
    const message = configErrorFor({ leakDetection: { logGroups: ['/aws/lambda/ok', name] } });

    // A value longer than 200 characters is shown cut, with its length.
    const shown = JSON.stringify(name);
    const echoed = shown.length > 200 ? `${shown.slice(0, 200)}… (${shown.length} chars)` : shown;
    expect(message).toContain(`${SOURCE}: leakDetection.logGroups.1: got ${echoed}`);
    expect(message).toContain(why);
  });

  it('rejects an unknown key under leakDetection and lists logGroups', () => {
    const message = configErrorFor({ leakDetection: { logGroup: ['/aws/lambda/x'] } });

    expect(message).toContain('leakDetection: unknown key(s) "logGroup"; allowed: logGroups');
  });

  it('does not change the policy version (the log groups scanned do not change decisions)', () => {
    expect(policyVersion(parseConfig({ leakDetection: { logGroups: ['/aws/lambda/x'] } }))).toBe(
      policyVersion(parseConfig({})),
    );
  });

  it('never deactivates an unverified leak by default', () => {
    expect(parseConfig({}).leakDetection.deactivateUnverified).toBe(false);
    expect(parseConfig({ leakDetection: { deactivateUnverified: true } }).leakDetection).toEqual({
      logGroups: [],
      deactivateUnverified: true,
    });
  });

  it.each([
    ['a string', 'yes'],
    ['a number', 1],
    ['null', null],
  ])('rejects deactivateUnverified given as %s, naming the file, the key and the value', (_label, value) => {
    const message = configErrorFor({ leakDetection: { deactivateUnverified: value } });

    expect(message).toContain(
      `${SOURCE}: leakDetection.deactivateUnverified: got ${JSON.stringify(value)}; allowed: a boolean`,
    );
  });

  it('lists deactivateUnverified among the keys allowed under leakDetection', () => {
    const message = configErrorFor({ leakDetection: { deactivateUnverfied: true } });

    expect(message).toContain(
      'leakDetection: unknown key(s) "deactivateUnverfied"; allowed: logGroups, deactivateUnverified',
    );
  });

  it('changes the policy version when unverified leaks deactivate, and only then', () => {
    const base = policyVersion(parseConfig({}));

    expect(policyVersion(parseConfig({ leakDetection: { deactivateUnverified: false } }))).toBe(base);
    expect(policyVersion(parseConfig({ leakDetection: { deactivateUnverified: true } }))).not.toBe(base);
  });
});

describe('usage, maxIdleDays and guardrails', () => {
  it.each([
    [{ usage: { regions: ['eu-west-1', 'Frankfurt'] } }, 'usage.regions.1: got "Frankfurt"'],
    [{ maxIdleDays: 0 }, 'maxIdleDays: got 0; allowed: >= 1'],
    [
      { guardrails: { deploy: 'stackset' } },
      'guardrails.deploy: got "stackset"; allowed: "none" | "scp" | "managed-policy"',
    ],
    [{ guardrails: { scpTargetIds: ['ou-123'] } }, 'guardrails.scpTargetIds.0: got "ou-123"'],
    [{ guardrails: { exemptTag: { key: 'x', value: '' } } }, 'guardrails.exemptTag.value: got ""'],
    [
      { guardrails: { exempt: true } },
      'guardrails: unknown key(s) "exempt"; allowed: exemptTag, deploy, scpTargetIds',
    ],
  ])('rejects %j naming the key and value', (input, expected) => {
    expect(configErrorFor(input)).toContain(`${SOURCE}: ${expected}`);
  });

  it('accepts maxIdleDays null (UNUSED never raised)', () => {
    expect(parseConfig({ maxIdleDays: null }).maxIdleDays).toBeNull();
  });

  it('changes the policy version with maxIdleDays but not with the usage regions or the guardrails', () => {
    const base = policyVersion(parseConfig({}));
    expect(policyVersion(parseConfig({ maxIdleDays: 30 }))).not.toBe(base);
    expect(
      policyVersion(
        parseConfig({ usage: { regions: ['us-west-2'] }, guardrails: { deploy: 'managed-policy' } }),
      ),
    ).toBe(base);
  });
});

describe('config: hostile and unlucky files', () => {
  it('never runs a pattern over a huge value: every patterned setting refuses it by length first', () => {
    // Prepare: a 5 MB value in every setting checked by a pattern. Over megabytes, a pattern can exhaust the
    // regular-expression engine's stack (seen in this suite: RangeError instead of a config error).
    const huge = `x${'y'.repeat(5_000_000)}`;
    const inputs: Record<string, unknown> = {
      'tags.owner': { tags: { owner: huge } },
      'notifications.subscriptions.0.email': { notifications: { subscriptions: [{ email: huge }] } },
      'notifications.subscriptions.0.owners.0': {
        notifications: { subscriptions: [{ email: 'a@example.com', owners: [huge] }] },
      },
      'approvers.0': { approvers: [huge] },
      'leakDetection.logGroups.0': { leakDetection: { logGroups: [huge] } },
      'usage.regions.0': { usage: { regions: [huge] } },
      'guardrails.scpTargetIds.0': { guardrails: { scpTargetIds: [huge] } },
    };
    // The settings' patterns are anchored (^…$); zod's own length count uses an unanchored, linear one.
    const patternRuns: number[] = [];
    const test = jest.spyOn(RegExp.prototype, 'test').mockImplementation(function (
      this: RegExp,
      text: string,
    ) {
      if (this.source.startsWith('^')) patternRuns.push(String(text).length);
      return RegExp.prototype.exec.call(this, text) !== null;
    });
    try {
      for (const [key, input] of Object.entries(inputs)) {
        // Act
        const message = configErrorFor(input);
        // Assess: the setting is named, with its length limit
        expect(message).toContain(`${SOURCE}: ${key}: got "x`);
        expect(message).toMatch(/allowed: at most \d+ character\(s\)/);
      }
    } finally {
      test.mockRestore();
    }
    expect(patternRuns.filter((length) => length > 10_000)).toEqual([]);
  });

  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyguard-config-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('rejects a config that is null instead of silently using the defaults', () => {
    // Prepare: a file holding the JSON value null
    const file = join(dir, 'null.json');
    writeFileSync(file, 'null');
    // Act
    const act = () => loadConfig(file, dir);
    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(`${file}: (root): got null; allowed: an object ({} for the built-in defaults)`);
    expect(() => parseConfig(null, 'k.json')).toThrow('k.json: (root): got null');
  });

  it('reads a file that starts with a UTF-8 byte order mark', () => {
    // Prepare: what some Windows editors save
    const file = join(dir, 'bom.json');
    writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"mode":"enforce"}')]));
    // Act
    const { config } = loadConfig(file, dir);
    // Assess
    expect(config.mode).toBe('enforce');
  });

  it.each([
    ['1e400', 'Infinity'],
    ['-1e400', '-Infinity'],
  ])('says a number such as %s is out of range instead of "got null"', (number, reads) => {
    // Prepare
    const file = join(dir, 'huge.json');
    writeFileSync(file, `{"maxAgeDays": ${number}}`);
    // Act
    const act = () => loadConfig(file, dir);
    // Assess
    expect(act).toThrow(`${file}: maxAgeDays: got a number out of range (it reads as ${reads});`);
    expect(act).not.toThrow(/got null/);
  });

  it('cuts a huge bad value it echoes, saying how long it was', () => {
    // Prepare: a 5 MB owner tag key
    const value = `x${'\u00e9'.repeat(10)}${'y'.repeat(5_000_000)}`;
    const file = join(dir, 'huge-value.json');
    writeFileSync(file, JSON.stringify({ tags: { owner: value } }));
    // Act
    let message = '';
    try {
      loadConfig(file, dir);
    } catch (err) {
      message = (err as Error).message;
    }
    // Assess: the line names the key, shows the start of the value and its length, and stays short
    expect(message).toContain(`${file}: tags.owner: got "x`);
    expect(message).toMatch(/… \(5,000,013 chars\)/);
    expect(message.length).toBeLessThan(1000);
  });

  it('cuts long unknown keys, lists only the first few, and bounds the number of lines', () => {
    // Prepare: 1,000 unknown keys, one of them 100,000 characters long, and 40 bad list items (the list's bound)
    const input: Record<string, unknown> = { [`k${'z'.repeat(100_000)}`]: 1 };
    for (let i = 0; i < 1000; i++) input[`unknown${i}`] = i;
    // Act
    const unknown = configErrorFor(input);
    const items = configErrorFor({
      usage: { regions: Array.from({ length: 40 }, (_, i) => `not-a-region-${i}`) },
    });
    // Assess
    expect(unknown.length).toBeLessThan(2000);
    expect(unknown).toContain('and 991 more');
    expect(items.split('\n').length).toBeLessThanOrEqual(22);
    expect(items).toContain('more problem(s)');
  });

  it('never echoes key material: a key-shaped value is redacted to its fingerprint', () => {
    // Prepare: a key pasted into a setting, and as an unknown key name
    const key = fakeLongTermKey('config-echo');
    const file = join(dir, 'leaky.json');
    writeFileSync(file, JSON.stringify({ fallbackOwner: 7, tags: { owner: key }, [key]: true }));
    // Act
    let message = '';
    try {
      loadConfig(file, dir);
    } catch (err) {
      message = (err as Error).message;
    }
    // Assess
    expect(message).toContain('tags.owner: got "ABSK…');
    expect(message).toContain('sha256:');
    expect(message).not.toContain(key.slice(4, 40));
  });
});

describe('config: values AWS would refuse at deploy time (issue 11)', () => {
  it.each([
    ['cron(0 * * * ? *)'],
    ['cron(0 12 ? * MON-FRI *)'],
    ['cron(15 10 ? * 6L 2026-2030)'],
    ['cron(0/5 8-17 ? * 2-6 *)'],
    ['cron(0 0 L * ? *)'],
    ['cron(0 9 3W * ? *)'],
    ['cron(0 9 ? * 3#2 *)'],
    ['cron(30 2 1,15 JAN,JUL ? *)'],
    ['cron(0 */6 * * ? *)'],
  ])('accepts the Scheduler cron expression %s', (schedule) => {
    expect(parseConfig({ sweep: { schedule } }).sweep.schedule).toBe(schedule);
  });

  it.each([
    ['cron(0 * * * * *)', 'day-of-month and day-of-week'],
    ['cron(0 12 ? * ? *)', 'day-of-month and day-of-week'],
    ['cron(0 12 1 * MON *)', 'day-of-month and day-of-week'],
    ['cron(60 * * * ? *)', 'minutes'],
    ['cron(0 24 * * ? *)', 'hours'],
    ['cron(0 0 32 * ? *)', 'day-of-month'],
    ['cron(0 0 * 13 ? *)', 'month'],
    ['cron(0 0 ? * 8 *)', 'day-of-week'],
    ['cron(0 0 * * ? 2200)', 'year'],
    ['cron(0 0 ? * 3#1,6#3 *)', 'day-of-week'],
    ['cron(0 0 5/ * ? *)', 'day-of-month'],
    ['cron(a b c d e f)', 'minutes'],
  ])('refuses %s, naming the field (%s)', (schedule, field) => {
    const message = configErrorFor({ sweep: { schedule } });
    expect(message).toContain(`sweep.schedule: got ${JSON.stringify(schedule)}`);
    expect(message).toContain(field);
  });

  it('refuses the same log group listed twice (two subscription filters of one name on one log group)', () => {
    const message = configErrorFor({ leakDetection: { logGroups: ['/app/a', '/app/b', '/app/a'] } });
    expect(message).toContain('leakDetection.logGroups.2: got "/app/a"');
    expect(message).toContain('listed twice');
  });

  it.each([['us-gov-west-1'], ['cn-north-1'], ['cn-northwest-1']])(
    'refuses %s: another partition, whose events cannot reach us-east-1',
    (region) => {
      const message = configErrorFor({ usage: { regions: [region] } });
      expect(message).toContain(`usage.regions.0: got "${region}"`);
      expect(message).toContain('partition');
    },
  );
});

describe('config: every list is bounded (issue 11)', () => {
  const arn = (i: number) => `arn:aws:iam::123456789012:role/approver-${i}`;
  it.each([
    ['approvers', { approvers: Array.from({ length: 11 }, (_, i) => arn(i)) }, 'approvers', 10],
    [
      'notifications.subscriptions',
      {
        notifications: {
          subscriptions: Array.from({ length: 51 }, (_, i) => ({ email: `s${i}@example.com` })),
        },
      },
      'notifications.subscriptions',
      50,
    ],
    [
      'notifications.subscriptions[].owners',
      {
        notifications: {
          subscriptions: [
            { email: 'a@example.com', owners: Array.from({ length: 41 }, (_, i) => `team-${i}`) },
          ],
        },
      },
      'notifications.subscriptions.0.owners',
      40,
    ],
  ])('refuses %s one longer than its bound', (_name, input, key, max) => {
    const message = configErrorFor(input);
    expect(message).toContain(`${key}: got [`);
    expect(message).toContain(`allowed: at most ${max} item(s)`);
  });

  it('refuses an approver ARN longer than 200 characters', () => {
    const long = `arn:aws:iam::123456789012:role/${'p/'.repeat(90)}approver`;
    expect(configErrorFor({ approvers: [long] })).toContain(
      'approvers.0: got "arn:aws:iam::123456789012:role/p/p',
    );
  });

  it.each([
    ['fallbackOwner', { fallbackOwner: 'ops\ud800team' }],
    [
      'notifications.subscriptions.0.owners.0',
      { notifications: { subscriptions: [{ email: 'a@example.com', owners: ['\udc00'] }] } },
    ],
    ['guardrails.exemptTag.value', { guardrails: { exemptTag: { value: 'yes\ud800' } } }],
  ])('refuses a lone surrogate in %s (not Unicode text; JSON writes it as six bytes)', (key, input) => {
    const message = configErrorFor(input);
    expect(message).toContain(`${key}: got`);
    expect(message).toContain('lone surrogate');
  });

  it.each([
    ['guardrails.exemptTag.key', { guardrails: { exemptTag: { key: 'セキュリティ' } } }],
    ['guardrails.exemptTag.value', { guardrails: { exemptTag: { value: 'はい' } } }],
  ])(
    'refuses %s with characters an IAM policy document cannot hold (the guardrail policies quote it)',
    (key, input) => {
      const message = configErrorFor(input);
      expect(message).toContain(`${key}: got`);
      expect(message).toContain('U+0020..U+00FF');
    },
  );

  it('accepts a Latin-1 exempt tag (é is within U+00FF)', () => {
    expect(
      parseConfig({ guardrails: { exemptTag: { key: 'sécurité', value: 'oui' } } }).guardrails.exemptTag,
    ).toEqual({
      key: 'sécurité',
      value: 'oui',
    });
  });

  it('refuses a fallback owner with control characters (shown in notices and terminals)', () => {
    expect(configErrorFor({ fallbackOwner: 'ops\u001b[2Jteam' })).toContain(
      'fallbackOwner: got "ops\\u001b[2Jteam"',
    );
  });
});

describe('functionPolicy / parsePolicy: what a function receives in KEYGUARD_CONFIG (issue 11)', () => {
  const config = parseConfig({
    mode: 'enforce',
    maxAgeDays: 30,
    approvers: ['arn:aws:iam::123456789012:role/security'],
    notifications: { subscriptions: [{ email: 'security@example.com', owners: ['team-a'] }] },
    leakDetection: { logGroups: ['/app/a'], deactivateUnverified: true },
    usage: { regions: ['eu-west-1', 'us-east-1', 'eu-west-1'] },
    guardrails: { deploy: 'scp', scpTargetIds: ['r-abcd'] },
    sweep: { schedule: 'rate(2 hours)' },
  });

  it('keeps every setting a decision depends on, and drops what only the stack and the CLI use', () => {
    // Act
    const policy = functionPolicy(config);
    // Assess
    expect(policy).toEqual({
      mode: 'enforce',
      maxAgeDays: 30,
      gracePeriodHours: config.gracePeriodHours,
      tags: config.tags,
      expiryWarningDays: config.expiryWarningDays,
      finalWarningHours: config.finalWarningHours,
      maxApprovalDays: config.maxApprovalDays,
      fallbackOwner: null,
      allowLongTermKeys: true,
      maxIdleDays: config.maxIdleDays,
      usage: { regions: ['eu-west-1', 'us-east-1'] },
      leakDetection: { deactivateUnverified: true },
    });
  });

  it('round-trips through JSON as the function reads it', () => {
    expect(parsePolicy(JSON.stringify(functionPolicy(config)))).toEqual(functionPolicy(config));
  });

  it('refuses, naming the variable and the key, a value that is not a policy', () => {
    expect(() => parsePolicy('{"mode":"delete"}')).toThrow(/KEYGUARD_CONFIG: mode: got "delete"/);
    expect(() => parsePolicy('{"approvers":[]}')).toThrow(/KEYGUARD_CONFIG: unknown key\(s\) "approvers"/);
    expect(() => parsePolicy('not json')).toThrow(/KEYGUARD_CONFIG: not valid JSON/);
  });
});

describe('organization and overrides (issue 12)', () => {
  const organization = { id: 'o-a1b2c3d4e5', managementAccountId: '111111111111', targets: ['r-ab12'] };

  it('fills the organization defaults: member role name, sweep concurrency, no exclusions', () => {
    expect(parseConfig({ organization }).organization).toEqual({
      ...organization,
      excludeAccounts: [],
      memberRoleName: 'BedrockKeyGuardMember',
      sweepConcurrency: 5,
    });
  });

  it('takes the hub account id (optional: -c hubAccount may give it instead)', () => {
    expect(
      parseConfig({ organization: { ...organization, hubAccountId: '222222222222' } }).organization,
    ).toMatchObject({
      hubAccountId: '222222222222',
    });
    expect(parseConfig({ organization }).organization).not.toHaveProperty('hubAccountId');
  });

  it('leaves the policy version of a config without organization or overrides as it was', () => {
    const base = parseConfig({ maxAgeDays: 30 });
    const org = parseConfig({
      maxAgeDays: 30,
      organization,
      overrides: [{ accounts: ['333333333333'], mode: 'enforce' }],
    });
    expect(policyVersion(org)).toBe(policyVersion(base));
  });

  it.each([
    [
      'an organization id',
      { organization: { ...organization, id: 'org-1' } },
      'organization.id: got "org-1"',
    ],
    [
      'a target that is an account',
      { organization: { ...organization, targets: ['111122223333'] } },
      'organization.targets.0',
    ],
    ['no target', { organization: { ...organization, targets: [] } }, 'organization.targets: got []'],
    [
      'a target listed twice',
      { organization: { ...organization, targets: ['r-ab12', 'r-ab12'] } },
      'listed twice (also at organization.targets.0)',
    ],
    [
      'a member role name with a slash',
      { organization: { ...organization, memberRoleName: 'team/Member' } },
      'organization.memberRoleName',
    ],
    [
      'a hub account id that is not 12 digits',
      { organization: { ...organization, hubAccountId: '12345' } },
      'organization.hubAccountId: got "12345"',
    ],
    [
      'a sweep concurrency of 1 (Lambda allows 2..1000)',
      { organization: { ...organization, sweepConcurrency: 1 } },
      'allowed: >= 2',
    ],
    [
      'overrides without an organization',
      { overrides: [{ accounts: ['333333333333'], mode: 'enforce' }] },
      'overrides: got',
    ],
    [
      'an override naming both ous and accounts',
      {
        organization,
        overrides: [{ ous: ['ou-ab12-cd34ef56'], accounts: ['333333333333'], mode: 'enforce' }],
      },
      'either "ous" or "accounts"',
    ],
    [
      'an override that overrides nothing',
      { organization, overrides: [{ accounts: ['333333333333'] }] },
      'overrides nothing',
    ],
    [
      'an override of a setting that cannot be overridden',
      { organization, overrides: [{ accounts: ['333333333333'], approvers: [] }] },
      'unknown key(s) "approvers"',
    ],
    [
      'an account in two overrides',
      {
        organization,
        overrides: [
          { accounts: ['333333333333'], mode: 'enforce' },
          { accounts: ['333333333333'], maxAgeDays: 7 },
        ],
      },
      'overrides.1.accounts.0: got "333333333333"; also in overrides.0.accounts',
    ],
  ])('refuses %s, naming the key', (_what, input, expected) => {
    expect(configErrorFor(input)).toContain(expected);
  });
});
