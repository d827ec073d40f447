import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { type ConfigInput, parseConfig, policyVersion } from '../../lambda/shared/config';
import {
  COMPACT_OMITTED,
  EffectivePolicyTooLargeError,
  effectiveConfig,
  parseEffectivePolicyDocument,
  publishedPolicy,
} from '../../lambda/shared/effective-policy';
import { EffectivePolicy } from '../../lib/constructs/effective-policy';
import { ORG_SETTINGS_PARAMETER_NAME } from '../../lib/constructs/org-hub';
import { largestConfig } from '../support/largest-config';

/**
 * The published effective policy: tier by size, the forms a large config falls back to, the synth error beyond
 * them. Each test synthesizes one bare stack holding only the construct (no functions): fast. That the stack's
 * parameter carries the functions' POLICY_VERSION is asserted on the shared synthesis in keyguard-stack.test.ts.
 */

const ORG = {
  id: 'o-abcdefghij',
  managementAccountId: '111111111111',
  targets: ['r-abcd'],
};

function synth(input: ConfigInput, organizationSettingsParameterName?: string) {
  const app = new App();
  const stack = new Stack(app, 'BedrockKeyGuard', { env: { region: 'us-east-1' } });
  const construct = new EffectivePolicy(stack, 'EffectivePolicy', {
    config: parseConfig(input),
    ...(organizationSettingsParameterName ? { organizationSettingsParameterName } : {}),
  });
  const parameters = Template.fromStack(stack).findResources('AWS::SSM::Parameter');
  const [logicalId, resource] = Object.entries(parameters)[0] as [
    string,
    { Properties: { Name: string; Tier: string; Type: string; Value: string } },
  ];
  expect(Object.keys(parameters)).toHaveLength(1);
  return { stack, construct, logicalId, ...resource.Properties };
}

/** `n` subscriptions of long distinct addresses: never change a decision, only the size. */
function subscriptions(n: number): ConfigInput['notifications'] {
  return {
    subscriptions: Array.from({ length: n }, (_v, i) => ({
      email: `security-team-notices-${String(i).padStart(3, '0')}@${'x'.repeat(60)}.example.com`,
    })),
  };
}

describe('EffectivePolicy', () => {
  test('a small config: the whole validated config, its policyVersion and mode, in a Standard String parameter', () => {
    // Prepare
    const input: ConfigInput = { mode: 'enforce', maxAgeDays: 30 };
    // Act
    const p = synth(input);
    // Assess
    const doc = JSON.parse(p.Value) as Record<string, unknown>;
    expect(doc).toEqual({
      format: 1,
      policyVersion: policyVersion(parseConfig(input)),
      mode: 'enforce',
      config: JSON.parse(JSON.stringify(parseConfig(input))),
      omitted: [],
    });
    expect(p.Type).toBe('String');
    expect(p.Tier).toBe('Standard');
    expect(p.Name).toBe('/BedrockKeyGuard/effective-policy/standard');
    expect(Buffer.byteLength(p.Value)).toBeLessThanOrEqual(4096);
  });

  test('over 4 KB and up to 8 KB: still the whole config, in the Advanced tier under another name and id', () => {
    // Prepare: 40 subscriptions of ~110 bytes each (about 4.5 KB more).
    const input: ConfigInput = { notifications: subscriptions(40) };
    // Act
    const p = synth(input);
    // Assess
    const bytes = Buffer.byteLength(p.Value);
    expect(bytes).toBeGreaterThan(4096);
    expect(bytes).toBeLessThanOrEqual(8192);
    expect(p.Tier).toBe('Advanced');
    expect(p.Name).toBe('/BedrockKeyGuard/effective-policy/advanced');
    // A shrinking config goes back to Standard by replacement (AWS never downgrades an Advanced parameter in place).
    expect(p.logicalId).toMatch(/^EffectivePolicyAdvancedParameter/);
    expect((JSON.parse(p.Value) as { omitted: string[] }).omitted).toEqual([]);
  });

  test('over 8 KB: the lists that never change a decision are left out, and named', () => {
    // Prepare: 50 subscriptions and 50 log groups.
    const input: ConfigInput = {
      notifications: subscriptions(50),
      leakDetection: {
        logGroups: Array.from({ length: 50 }, (_v, i) => `/aws/lambda/${'a'.repeat(200)}-${i}`),
      },
    };
    const config = parseConfig(input);
    expect(Buffer.byteLength(JSON.stringify(config))).toBeGreaterThan(8192);
    // Act
    const p = synth(input);
    // Assess
    const doc = JSON.parse(p.Value) as { omitted: string[]; policyVersion: string; config: ConfigInput };
    expect(doc.omitted).toEqual([...COMPACT_OMITTED]);
    expect(doc.config.notifications).toEqual({});
    expect(doc.config.leakDetection).toEqual({ deactivateUnverified: false });
    expect(doc.policyVersion).toBe(policyVersion(config));
    expect(p.Tier).toBe('Standard');
    // What the CLI reads back is the same policy.
    const source = 'SSM parameter test';
    expect(policyVersion(effectiveConfig(parseEffectivePolicyDocument(p.Value, source), source))).toBe(
      policyVersion(config),
    );
  });

  test('organization mode: the whole config, overrides included, when it fits', () => {
    // Prepare
    const input: ConfigInput = {
      organization: ORG,
      overrides: [{ accounts: ['222222222222'], mode: 'enforce' }],
    };
    // Act
    const p = synth(input, ORG_SETTINGS_PARAMETER_NAME);
    // Assess
    const doc = JSON.parse(p.Value) as { config: Record<string, unknown>; omitted: string[] };
    expect(doc.omitted).toEqual([]);
    expect(doc.config.overrides).toEqual([{ accounts: ['222222222222'], mode: 'enforce' }]);
    expect(doc.config.organization).toMatchObject(ORG);
  });

  test('the largest config the schema accepts fits 8 KB (organization form), ASCII and wide', () => {
    for (const wide of [false, true]) {
      // Prepare
      const config = parseConfig(largestConfig({ wide }));
      // Act
      const published = publishedPolicy(config, ORG_SETTINGS_PARAMETER_NAME);
      // Assess
      expect(published.bytes).toBeLessThanOrEqual(8192);
      expect(published.document.organizationSettingsParameter).toBe(ORG_SETTINGS_PARAMETER_NAME);
      expect(published.document.omitted).toEqual([...COMPACT_OMITTED, 'organization', 'overrides']);
      // Read back with the organization settings, it is the same policy.
      const source = 'SSM parameter test';
      const doc = parseEffectivePolicyDocument(published.value, source);
      const back = effectiveConfig(doc, source, {
        organization: config.organization as NonNullable<typeof config.organization>,
        overrides: config.overrides,
      });
      expect(policyVersion(back)).toBe(policyVersion(config));
      expect(back.overrides).toEqual(config.overrides);
      // Single-account mode: the largest config without the organization fits in the compact form.
      const {
        organization: _o,
        overrides: _v,
        ...single
      } = largestConfig({ wide }) as Record<string, unknown>;
      const alone = publishedPolicy(parseConfig(single));
      expect(alone.bytes).toBeLessThanOrEqual(8192);
      expect(alone.document.omitted).toEqual([...COMPACT_OMITTED]);
    }
  });

  test('a config no form fits fails synth naming the size, the limit and the largest settings', () => {
    // Prepare: the largest config without the organization parameter to point to.
    const config = parseConfig(largestConfig({ wide: true }));
    // Act
    let error: unknown;
    try {
      publishedPolicy(config);
    } catch (err) {
      error = err;
    }
    // Assess
    expect(error).toBeInstanceOf(EffectivePolicyTooLargeError);
    expect((error as Error).message).toMatch(
      /^effective policy: [\d,]+ bytes even without notifications\.subscriptions, notifications\.chat, leakDetection\.logGroups, guardrails\.scpTargetIds, leakDetection\.slack, leakDetection\.confluence; an SSM parameter holds at most 8,192 bytes \(Advanced tier\)\. Largest settings: overrides [\d,]+ bytes/,
    );
  });

  test('passes cdk-nag AwsSolutions', () => {
    // Prepare
    const { stack } = synth({});
    // Act
    const report = new AwsSolutionsChecks().validateScope(stack);
    // Assess
    expect(report.violations).toEqual([]);
  });
});
