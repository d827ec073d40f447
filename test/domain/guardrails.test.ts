import {
  GUARDRAIL_KINDS,
  type GuardrailConfig,
  GuardrailPolicyTooLargeError,
  type GuardrailStatement,
  guardrailPolicy,
  POLICY_SIZE_LIMITS,
  policySize,
} from '../../lambda/domain/guardrails';
import { parseConfig } from '../../lambda/shared/config';

const DEFAULTS = parseConfig({});
const NO_LONG_TERM = parseConfig({ allowLongTermKeys: false });
const EXEMPT = { StringNotEquals: { 'aws:PrincipalTag/keyguard:guardrail-exempt': 'true' } };

function sids(statements: GuardrailStatement[]): string[] {
  return statements.map((s) => s.Sid);
}

function statement(config: GuardrailConfig, sid: string, kind: 'scp' | 'boundary' | 'identity' = 'scp') {
  const found = guardrailPolicy(config, kind).Statement.find((s) => s.Sid === sid);
  if (!found) throw new Error(`no statement ${sid}`);
  return found;
}

describe('guardrailPolicy: document shape', () => {
  test('default config (long-term keys allowed): age statements, key-user credentials, exempt-tag protection', () => {
    // Act
    const doc = guardrailPolicy(DEFAULTS, 'scp');
    // Assess
    expect(doc.Version).toBe('2012-10-17');
    expect(sids(doc.Statement)).toEqual([
      'DenyBedrockKeyWithoutExpiry',
      'DenyBedrockKeyOverMaxAge',
      'DenyCredentialsOnBedrockKeyUsers',
      'ProtectGuardrailExemptTag',
    ]);
    expect(doc.Statement.every((s) => s.Effect === 'Deny')).toBe(true);
  });

  test('no expiry: Null guard on the age key, only for Bedrock keys, unless exempt', () => {
    expect(statement(DEFAULTS, 'DenyBedrockKeyWithoutExpiry')).toEqual({
      Sid: 'DenyBedrockKeyWithoutExpiry',
      Effect: 'Deny',
      Action: 'iam:CreateServiceSpecificCredential',
      Resource: '*',
      Condition: {
        StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' },
        Null: { 'iam:ServiceSpecificCredentialAgeDays': 'true' },
        ...EXEMPT,
      },
    });
  });

  test('over max age: NumericGreaterThan maxAgeDays, from the config', () => {
    // Prepare
    const config = parseConfig({ maxAgeDays: 30 });
    // Act
    const s = statement(config, 'DenyBedrockKeyOverMaxAge');
    // Assess
    expect(s).toEqual({
      Sid: 'DenyBedrockKeyOverMaxAge',
      Effect: 'Deny',
      Action: 'iam:CreateServiceSpecificCredential',
      Resource: '*',
      Condition: {
        StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' },
        NumericGreaterThan: { 'iam:ServiceSpecificCredentialAgeDays': '30' },
        ...EXEMPT,
      },
    });
  });

  test('long-term keys forbidden: every Bedrock key creation and LONG_TERM use (bedrock and bedrock-mantle) denied', () => {
    // Act
    const doc = guardrailPolicy(NO_LONG_TERM, 'identity');
    // Assess
    expect(sids(doc.Statement)).toEqual([
      'DenyBedrockKeyCreation',
      'DenyLongTermBearerToken',
      'DenyLongTermMantleBearerToken',
      'DenyCredentialsOnBedrockKeyUsers',
      'ProtectGuardrailExemptTag',
    ]);
    expect(doc.Statement.slice(0, 3)).toEqual([
      {
        Sid: 'DenyBedrockKeyCreation',
        Effect: 'Deny',
        Action: 'iam:CreateServiceSpecificCredential',
        Resource: '*',
        Condition: {
          StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' },
          ...EXEMPT,
        },
      },
      {
        Sid: 'DenyLongTermBearerToken',
        Effect: 'Deny',
        Action: 'bedrock:CallWithBearerToken',
        Resource: '*',
        Condition: { StringEquals: { 'bedrock:BearerTokenType': 'LONG_TERM' }, ...EXEMPT },
      },
      {
        Sid: 'DenyLongTermMantleBearerToken',
        Effect: 'Deny',
        Action: 'bedrock-mantle:CallWithBearerToken',
        Resource: '*',
        Condition: { StringEquals: { 'bedrock-mantle:BearerTokenType': 'LONG_TERM' }, ...EXEMPT },
      },
    ]);
  });

  test('key-holder users: access keys, passwords, signing certificates and SSH keys denied; removal is not', () => {
    // Act
    const s = statement(DEFAULTS, 'DenyCredentialsOnBedrockKeyUsers');
    // Assess
    expect(s).toEqual({
      Sid: 'DenyCredentialsOnBedrockKeyUsers',
      Effect: 'Deny',
      Action: [
        'iam:CreateAccessKey',
        'iam:CreateLoginProfile',
        'iam:UpdateLoginProfile',
        'iam:UploadSigningCertificate',
        'iam:UploadSSHPublicKey',
      ],
      Resource: 'arn:aws:iam::*:user/BedrockAPIKey-*',
      Condition: EXEMPT,
    });
    expect((s.Action as string[]).some((a) => /Delete|UpdateAccessKey/.test(a))).toBe(false);
  });

  test('the exemption protects itself: tagging, untagging, creating with, or session-tagging the key', () => {
    expect(statement(DEFAULTS, 'ProtectGuardrailExemptTag')).toEqual({
      Sid: 'ProtectGuardrailExemptTag',
      Effect: 'Deny',
      Action: [
        'iam:TagUser',
        'iam:UntagUser',
        'iam:TagRole',
        'iam:UntagRole',
        'iam:CreateUser',
        'iam:CreateRole',
        'sts:TagSession',
      ],
      Resource: '*',
      Condition: {
        'ForAnyValue:StringEqualsIgnoreCase': { 'aws:TagKeys': ['keyguard:guardrail-exempt'] },
        ...EXEMPT,
      },
    });
  });

  test('a configured exempt tag is used everywhere, and no statement keeps the default tag', () => {
    // Prepare
    const config = parseConfig({
      guardrails: { exemptTag: { key: 'security:break-glass', value: 'approved' } },
    });
    // Act
    const doc = guardrailPolicy(config, 'scp');
    // Assess
    for (const s of doc.Statement) {
      expect(s.Condition?.StringNotEquals).toEqual({ 'aws:PrincipalTag/security:break-glass': 'approved' });
    }
    expect(JSON.stringify(doc)).not.toContain('keyguard:guardrail-exempt');
    expect(
      statement(config, 'ProtectGuardrailExemptTag').Condition?.['ForAnyValue:StringEqualsIgnoreCase'],
    ).toEqual({ 'aws:TagKeys': ['security:break-glass'] });
  });

  test('scp and identity are deny-only and identical; a boundary adds exactly one Allow * on * first', () => {
    for (const config of [DEFAULTS, NO_LONG_TERM]) {
      // Act
      const scp = guardrailPolicy(config, 'scp');
      const identity = guardrailPolicy(config, 'identity');
      const boundary = guardrailPolicy(config, 'boundary');
      // Assess
      expect(identity).toEqual(scp);
      expect(scp.Statement.filter((s) => s.Effect === 'Allow')).toEqual([]);
      expect(boundary.Statement[0]).toEqual({
        Sid: 'AllowWithinBoundary',
        Effect: 'Allow',
        Action: '*',
        Resource: '*',
      });
      expect(boundary.Statement.slice(1)).toEqual(scp.Statement);
    }
  });

  test('Sids are unique and alphanumeric (IAM and Organizations reject other characters)', () => {
    for (const config of [DEFAULTS, NO_LONG_TERM]) {
      for (const kind of GUARDRAIL_KINDS) {
        const all = sids(guardrailPolicy(config, kind).Statement);
        expect(new Set(all).size).toBe(all.length);
        for (const sid of all) expect(sid).toMatch(/^[A-Za-z0-9]+$/);
      }
    }
  });

  test('is deterministic: the same config gives byte-identical JSON', () => {
    expect(JSON.stringify(guardrailPolicy(parseConfig({}), 'scp'))).toBe(
      JSON.stringify(guardrailPolicy(parseConfig({}), 'scp')),
    );
  });
});

describe('guardrailPolicy: size limits', () => {
  // The longest exempt tag the config schema accepts (key 128, value 256 characters) and no long-term keys:
  // the most statements and the longest conditions a valid config can produce.
  const LARGEST = parseConfig({
    maxAgeDays: 36600,
    allowLongTermKeys: false,
    guardrails: { exemptTag: { key: `k:${'x'.repeat(126)}`, value: 'v'.repeat(256) } },
  });

  test('AWS counts minified JSON: policySize ignores pretty-printing whitespace', () => {
    const doc = guardrailPolicy(DEFAULTS, 'scp');
    expect(policySize(doc)).toBe(JSON.stringify(doc).length);
    expect(policySize(doc)).toBeLessThan(JSON.stringify(doc, null, 2).length);
  });

  test.each(GUARDRAIL_KINDS)('%s: the default and the largest valid config fit the AWS limit', (kind) => {
    // Act
    const sizes = [DEFAULTS, NO_LONG_TERM, LARGEST].map((c) => policySize(guardrailPolicy(c, kind)));
    // Assess
    expect(POLICY_SIZE_LIMITS[kind]).toBe(kind === 'scp' ? 5120 : 6144);
    for (const size of sizes) expect(size).toBeLessThanOrEqual(POLICY_SIZE_LIMITS[kind]);
    // The largest config really is larger: the check measures something that grows with the config.
    expect(sizes[2]).toBeGreaterThan(sizes[1] as number);
  });

  test('a document over the limit is refused with a clear, typed error', () => {
    // Prepare: a tag value longer than the schema allows (the type does not stop a caller that skips it).
    const huge: GuardrailConfig = {
      maxAgeDays: 90,
      allowLongTermKeys: false,
      guardrails: { exemptTag: { key: 'keyguard:guardrail-exempt', value: 'v'.repeat(1000) } },
    };
    // Act
    const act = () => guardrailPolicy(huge, 'scp');
    // Assess
    expect(act).toThrow(GuardrailPolicyTooLargeError);
    expect(act).toThrow(/scp guardrail policy is \d+ characters \(minified\), over the AWS limit of 5120/);
  });

  test('the limit is per kind: a document can fit a managed policy and not an SCP', () => {
    // Prepare: ~5.5k characters, between the SCP (5,120) and managed-policy (6,144) limits.
    const mid: GuardrailConfig = {
      maxAgeDays: 90,
      allowLongTermKeys: false,
      guardrails: { exemptTag: { key: 'keyguard:guardrail-exempt', value: 'v'.repeat(800) } },
    };
    // Act + Assess
    expect(() => guardrailPolicy(mid, 'scp')).toThrow(GuardrailPolicyTooLargeError);
    expect(policySize(guardrailPolicy(mid, 'identity'))).toBeGreaterThan(5120);
  });
});
