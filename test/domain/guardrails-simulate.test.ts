// @cloud-copilot/iam-simulate is AGPL: it is a devDependency and is imported only by tests, never by lambda/,
// lib/ or bin/ code.
import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';
import {
  GUARDRAIL_KINDS,
  type GuardrailKind,
  type GuardrailPolicyDocument,
  guardrailPolicy,
} from '../../lambda/domain/guardrails';
import { type Config, parseConfig } from '../../lambda/shared/config';

/**
 * The generated guardrails evaluated by a real IAM policy evaluator, as AWS would apply each kind:
 * - `scp`: an SCP beside FullAWSAccess (as Organizations attaches by default), the principal's identity policy
 *   allowing everything;
 * - `boundary`: the principal's permissions boundary, its identity policy allowing everything;
 * - `identity`: an identity policy beside one allowing everything.
 * So whatever is not Allowed is the guardrail's doing. Every denial is also checked to be caused by the
 * statement it names: without that one statement the same request is allowed.
 *
 * iam-simulate's data (iam-data) knows `bedrock-mantle:CallWithBearerToken` and its `bedrock-mantle:BearerTokenType`
 * key, so both endpoints are evaluated (a context key the action does not support would be dropped:
 * `ignoredContextKeys` is asserted empty).
 */

const ACCOUNT = '111122223333';
const PRINCIPAL = `arn:aws:iam::${ACCOUNT}:role/platform-admin`;
const EXEMPT_KEY = 'keyguard:guardrail-exempt';

const ALLOW_ALL = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

type Outcome = 'Allowed' | 'ExplicitlyDenied';

interface Request {
  action: string;
  resource: string;
  context: Record<string, string | string[]>;
}

async function evaluate(kind: GuardrailKind, policy: GuardrailPolicyDocument, request: Request) {
  const named = { name: 'KeyguardGuardrails', policy };
  const simulation: Simulation = {
    request: {
      principal: PRINCIPAL,
      action: request.action,
      resource: { resource: request.resource, accountId: ACCOUNT },
      contextVariables: request.context,
    },
    identityPolicies: [{ name: 'AllowAll', policy: ALLOW_ALL }, ...(kind === 'identity' ? [named] : [])],
    serviceControlPolicies:
      kind === 'scp'
        ? [{ orgIdentifier: 'r-ab12', policies: [{ name: 'FullAWSAccess', policy: ALLOW_ALL }, named] }]
        : [],
    resourceControlPolicies: [],
    ...(kind === 'boundary' ? { permissionBoundaryPolicies: [named] } : {}),
  };
  const result = await runSimulation(simulation, {});
  if (result.resultType !== 'single') {
    throw new Error(`simulation did not run: ${JSON.stringify(result)}`);
  }
  // A context key the action does not know would be silently dropped: the case would test nothing.
  expect(result.result.ignoredContextKeys).toEqual([]);
  return result.overallResult;
}

function without(policy: GuardrailPolicyDocument, sid: string): GuardrailPolicyDocument {
  const kept = policy.Statement.filter((s) => s.Sid !== sid);
  expect(kept.length).toBe(policy.Statement.length - 1);
  return { ...policy, Statement: kept };
}

// --- requests ------------------------------------------------------------------------------------------------------

const exempt = (value = 'true'): Record<string, string> => ({ [`aws:PrincipalTag/${EXEMPT_KEY}`]: value });

function createKey(ageDays: number | null, serviceName = 'bedrock.amazonaws.com', tags = {}): Request {
  return {
    action: 'iam:CreateServiceSpecificCredential',
    resource: `arn:aws:iam::${ACCOUNT}:user/BedrockAPIKey-ab12`,
    context: {
      'iam:ServiceSpecificCredentialServiceName': serviceName,
      ...(ageDays === null ? {} : { 'iam:ServiceSpecificCredentialAgeDays': String(ageDays) }),
      ...tags,
    },
  };
}

function bearer(service: 'bedrock' | 'bedrock-mantle', type: 'SHORT_TERM' | 'LONG_TERM', tags = {}): Request {
  return {
    action: `${service}:CallWithBearerToken`,
    resource: '*',
    context: { [`${service}:BearerTokenType`]: type, ...tags },
  };
}

function onUser(action: string, user: string, tags = {}): Request {
  return { action, resource: `arn:aws:iam::${ACCOUNT}:user/${user}`, context: { ...tags } };
}

function tagging(action: string, keys: string[], tags = {}): Request {
  const resource = /Role|TagSession/.test(action)
    ? `arn:aws:iam::${ACCOUNT}:role/ml-inference`
    : `arn:aws:iam::${ACCOUNT}:user/ml-batch`;
  return { action, resource, context: { 'aws:TagKeys': keys, ...tags } };
}

interface Case {
  name: string;
  request: Request;
  expected: Outcome;
  /** For a denial: the statement that must be the cause. */
  deniedBy?: string;
}

const denied = (name: string, request: Request, deniedBy: string): Case => ({
  name,
  request,
  expected: 'ExplicitlyDenied',
  deniedBy,
});
const allowed = (name: string, request: Request): Case => ({ name, request, expected: 'Allowed' });

const CREDENTIAL_ACTIONS = [
  'iam:CreateAccessKey',
  'iam:CreateLoginProfile',
  'iam:UpdateLoginProfile',
  'iam:UploadSigningCertificate',
  'iam:UploadSSHPublicKey',
];
const TAG_ACTIONS = [
  'iam:TagUser',
  'iam:UntagUser',
  'iam:TagRole',
  'iam:UntagRole',
  'iam:CreateUser',
  'iam:CreateRole',
  'sts:TagSession',
];

/** Cases every config shares: key-holder users' credentials and the exempt tag's protection. */
const COMMON: Case[] = [
  ...CREDENTIAL_ACTIONS.flatMap((a) => [
    denied(`${a} on BedrockAPIKey-ab12`, onUser(a, 'BedrockAPIKey-ab12'), 'DenyCredentialsOnBedrockKeyUsers'),
    denied(
      `${a} on BedrockAPIKey-ab12 by a wrong tag value`,
      onUser(a, 'BedrockAPIKey-ab12', exempt('false')),
      'DenyCredentialsOnBedrockKeyUsers',
    ),
    allowed(`${a} on alice`, onUser(a, 'alice')),
    allowed(`${a} on BedrockAPIKey-ab12 by the exempt principal`, onUser(a, 'BedrockAPIKey-ab12', exempt())),
  ]),
  // Remediation is never blocked.
  ...['iam:DeleteAccessKey', 'iam:UpdateAccessKey', 'iam:DeleteLoginProfile', 'iam:DeleteSSHPublicKey'].map(
    (a) => allowed(`${a} on BedrockAPIKey-ab12 (remediation)`, onUser(a, 'BedrockAPIKey-ab12')),
  ),
  ...TAG_ACTIONS.flatMap((a) => [
    denied(`${a} with the exempt tag key`, tagging(a, ['owner', EXEMPT_KEY]), 'ProtectGuardrailExemptTag'),
    denied(
      `${a} with the exempt tag key in other case`,
      tagging(a, [EXEMPT_KEY.toUpperCase()]),
      'ProtectGuardrailExemptTag',
    ),
    denied(
      `${a} with the exempt tag key by a wrong tag value`,
      tagging(a, [EXEMPT_KEY], exempt('TRUE')),
      'ProtectGuardrailExemptTag',
    ),
    allowed(`${a} with other tag keys`, tagging(a, ['owner', 'purpose'])),
    allowed(`${a} with the exempt tag key by the exempt principal`, tagging(a, [EXEMPT_KEY], exempt())),
  ]),
];

/** maxAgeDays 90, long-term keys allowed (the defaults). */
const LONG_TERM_ALLOWED: Case[] = [
  allowed('create a key for 30 days', createKey(30)),
  allowed('create a key for 90 days (= maxAgeDays)', createKey(90)),
  denied('create a key for 91 days', createKey(91), 'DenyBedrockKeyOverMaxAge'),
  denied('create a key for 36600 days', createKey(36600), 'DenyBedrockKeyOverMaxAge'),
  denied('create a key with no age (never expires)', createKey(null), 'DenyBedrockKeyWithoutExpiry'),
  denied(
    'create a key for 91 days, wrong tag value',
    createKey(91, undefined, exempt('yes')),
    'DenyBedrockKeyOverMaxAge',
  ),
  denied(
    'create a key with no age, wrong tag value',
    createKey(null, undefined, exempt('yes')),
    'DenyBedrockKeyWithoutExpiry',
  ),
  allowed('the exempt principal creates a key for 36600 days', createKey(36600, undefined, exempt())),
  allowed('the exempt principal creates a key with no age', createKey(null, undefined, exempt())),
  allowed('CodeCommit credential with no age', createKey(null, 'codecommit.amazonaws.com')),
  allowed('CodeCommit credential for 36600 days', createKey(36600, 'codecommit.amazonaws.com')),
  allowed('bedrock SHORT_TERM use', bearer('bedrock', 'SHORT_TERM')),
  allowed(
    'bedrock LONG_TERM use (no statement when long-term keys are allowed)',
    bearer('bedrock', 'LONG_TERM'),
  ),
  allowed('bedrock-mantle SHORT_TERM use', bearer('bedrock-mantle', 'SHORT_TERM')),
  allowed('bedrock-mantle LONG_TERM use', bearer('bedrock-mantle', 'LONG_TERM')),
  ...COMMON,
];

/** Long-term keys not allowed: no Bedrock key may be created, LONG_TERM use is denied. */
const LONG_TERM_FORBIDDEN: Case[] = [
  denied('create a key for 30 days', createKey(30), 'DenyBedrockKeyCreation'),
  denied('create a key for 90 days', createKey(90), 'DenyBedrockKeyCreation'),
  denied('create a key for 91 days', createKey(91), 'DenyBedrockKeyCreation'),
  denied('create a key for 36600 days', createKey(36600), 'DenyBedrockKeyCreation'),
  denied('create a key with no age', createKey(null), 'DenyBedrockKeyCreation'),
  denied(
    'create a key, wrong tag value',
    createKey(30, undefined, exempt('false')),
    'DenyBedrockKeyCreation',
  ),
  allowed('the exempt principal creates a key with no age', createKey(null, undefined, exempt())),
  allowed('CodeCommit credential with no age', createKey(null, 'codecommit.amazonaws.com')),
  allowed('bedrock SHORT_TERM use', bearer('bedrock', 'SHORT_TERM')),
  denied('bedrock LONG_TERM use', bearer('bedrock', 'LONG_TERM'), 'DenyLongTermBearerToken'),
  denied(
    'bedrock LONG_TERM use, wrong tag value',
    bearer('bedrock', 'LONG_TERM', exempt('false')),
    'DenyLongTermBearerToken',
  ),
  allowed('bedrock LONG_TERM use by the exempt principal', bearer('bedrock', 'LONG_TERM', exempt())),
  allowed('bedrock-mantle SHORT_TERM use', bearer('bedrock-mantle', 'SHORT_TERM')),
  denied(
    'bedrock-mantle LONG_TERM use',
    bearer('bedrock-mantle', 'LONG_TERM'),
    'DenyLongTermMantleBearerToken',
  ),
  allowed(
    'bedrock-mantle LONG_TERM use by the exempt principal',
    bearer('bedrock-mantle', 'LONG_TERM', exempt()),
  ),
  ...COMMON,
];

const CONFIGS: Array<[string, Config, Case[]]> = [
  ['long-term keys allowed, maxAgeDays 90', parseConfig({ maxAgeDays: 90 }), LONG_TERM_ALLOWED],
  ['long-term keys forbidden', parseConfig({ allowLongTermKeys: false }), LONG_TERM_FORBIDDEN],
];

describe.each(GUARDRAIL_KINDS)('%s kind, evaluated by iam-simulate', (kind) => {
  describe.each(CONFIGS)('%s', (_label, config, cases) => {
    const policy = guardrailPolicy(config, kind);

    test.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
      // Act
      const outcome = await evaluate(kind, policy, c.request);
      // Assess
      expect(outcome).toBe(c.expected);
      if (c.deniedBy) {
        // The named statement is the cause: without it, the same request is allowed.
        expect(await evaluate(kind, without(policy, c.deniedBy), c.request)).toBe('Allowed');
      }
    });

    test('every Deny statement is shown to deny something', () => {
      const denyingSids = policy.Statement.filter((s) => s.Effect === 'Deny').map((s) => s.Sid);
      const covered = new Set(cases.flatMap((c) => (c.deniedBy ? [c.deniedBy] : [])));
      expect([...covered].sort()).toEqual([...denyingSids].sort());
    });
  });
});

describe('a configured max age and exempt tag', () => {
  const config = parseConfig({
    maxAgeDays: 30,
    guardrails: { exemptTag: { key: 'security:break-glass', value: 'approved' } },
  });
  const breakGlass = { 'aws:PrincipalTag/security:break-glass': 'approved' };

  test.each(GUARDRAIL_KINDS)(
    '%s: 30 days allowed, 31 denied, the configured tag exempts, the default tag does not',
    async (kind) => {
      // Prepare
      const policy = guardrailPolicy(config, kind);
      // Act
      const outcomes = await Promise.all([
        evaluate(kind, policy, createKey(30)),
        evaluate(kind, policy, createKey(31)),
        evaluate(kind, policy, createKey(31, undefined, breakGlass)),
        evaluate(kind, policy, createKey(31, undefined, exempt())),
        evaluate(kind, policy, tagging('iam:TagRole', ['Security:Break-Glass'])),
        evaluate(kind, policy, tagging('iam:TagRole', [EXEMPT_KEY])),
      ]);
      // Assess
      expect(outcomes).toEqual([
        'Allowed',
        'ExplicitlyDenied',
        'Allowed',
        'ExplicitlyDenied',
        'ExplicitlyDenied',
        'Allowed',
      ]);
    },
  );
});

describe('why a boundary needs its Allow statement', () => {
  test('the boundary without AllowWithinBoundary allows nothing, even a request no statement denies', async () => {
    // Prepare
    const policy = guardrailPolicy(parseConfig({}), 'boundary');
    const request = bearer('bedrock', 'SHORT_TERM');
    // Act
    const withAllow = await evaluate('boundary', policy, request);
    const denyOnly = await runSimulation(
      {
        request: {
          principal: PRINCIPAL,
          action: request.action,
          resource: { resource: request.resource, accountId: ACCOUNT },
          contextVariables: request.context,
        },
        identityPolicies: [{ name: 'AllowAll', policy: ALLOW_ALL }],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        permissionBoundaryPolicies: [{ name: 'DenyOnly', policy: without(policy, 'AllowWithinBoundary') }],
      },
      {},
    );
    // Assess
    expect(withAllow).toBe('Allowed');
    expect(denyOnly.resultType === 'single' && denyOnly.overallResult).toBe('ImplicitlyDenied');
  });
});
