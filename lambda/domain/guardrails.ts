import type { Config } from '../shared/config';
import { BEDROCK_SERVICE } from './types';

/**
 * Preventive guardrails: IAM policy documents, derived from the config, that stop a non-compliant Bedrock key
 * from being created or used in the first place. Detection (events, sweep) still runs: these close the window
 * between a bad key's creation and its deactivation, and cover accounts where enforcement is off.
 *
 * Pure: plain JSON in, plain JSON out. The CLI prints the documents (`keyguard policy`) and the CDK
 * GuardrailPolicies construct deploys the same documents, so what is reviewed is what is deployed.
 *
 * Every Deny carries one exemption, a principal tag (`guardrails.exemptTag`, e.g. a break-glass role), and the
 * exemption protects itself: nobody without it may set or remove that tag on a user or role, create a user or
 * role carrying it, or pass it as a session tag (otherwise anyone holding iam:TagRole exempts themselves).
 */

/** `scp`: an Organizations SCP. `boundary`: a permissions boundary. `identity`: a managed policy to attach. */
export const GUARDRAIL_KINDS = ['scp', 'boundary', 'identity'] as const;
export type GuardrailKind = (typeof GUARDRAIL_KINDS)[number];

export type ConditionBlock = Record<string, Record<string, string | string[]>>;

export interface GuardrailStatement {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: ConditionBlock;
}

export interface GuardrailPolicyDocument {
  Version: '2012-10-17';
  Statement: GuardrailStatement[];
}

/** What the documents depend on: a full Config satisfies it. */
export type GuardrailConfig = Pick<Config, 'maxAgeDays' | 'allowLongTermKeys'> & {
  guardrails: Pick<Config['guardrails'], 'exemptTag'>;
};

/**
 * Largest document AWS accepts, in characters of the minified JSON (AWS does not count whitespace):
 * an Organizations SCP 5,120; a customer managed policy (identity or boundary) 6,144.
 */
export const POLICY_SIZE_LIMITS: Readonly<Record<GuardrailKind, number>> = {
  scp: 5120,
  boundary: 6144,
  identity: 6144,
};

/** IAM users the console's long-term key flow creates (`BedrockAPIKey-xxxx`), in any account. */
export const BEDROCK_KEY_USERS_ARN = 'arn:aws:iam::*:user/BedrockAPIKey-*';

const SERVICE_NAME_KEY = 'iam:ServiceSpecificCredentialServiceName';
const AGE_DAYS_KEY = 'iam:ServiceSpecificCredentialAgeDays';

/**
 * Credentials that turn a key-holder user into something more than a Bedrock key: an access key (full SigV4
 * access with the user's permissions, outside every Bedrock key control), a console password (created, or
 * changed to take over an existing one), an X.509 signing certificate and an SSH key (CodeCommit). Removing
 * or deactivating any of them stays allowed: remediation must never be blocked by a guardrail.
 */
export const KEY_USER_CREDENTIAL_ACTIONS = [
  'iam:CreateAccessKey',
  'iam:CreateLoginProfile',
  'iam:UpdateLoginProfile',
  'iam:UploadSigningCertificate',
  'iam:UploadSSHPublicKey',
] as const;

/**
 * Every way a principal tag can be set or removed by a principal inside the account: on an existing user or
 * role, on a new one, and as an STS session tag (`aws:PrincipalTag` includes session tags).
 */
export const EXEMPT_TAG_ACTIONS = [
  'iam:TagUser',
  'iam:UntagUser',
  'iam:TagRole',
  'iam:UntagRole',
  'iam:CreateUser',
  'iam:CreateRole',
  'sts:TagSession',
] as const;

export class GuardrailPolicyTooLargeError extends Error {
  constructor(
    readonly kind: GuardrailKind,
    readonly size: number,
    readonly limit: number,
  ) {
    super(
      `the ${kind} guardrail policy is ${size} characters (minified), over the AWS limit of ${limit}; ` +
        'shorten guardrails.exemptTag (key and value appear in every statement)',
    );
    this.name = 'GuardrailPolicyTooLargeError';
  }
}

/** Size of a policy as AWS counts it: the JSON without insignificant whitespace. */
export function policySize(document: GuardrailPolicyDocument): number {
  return JSON.stringify(document).length;
}

/**
 * The guardrail document of one kind. Statements (all Deny, all waived for the exempt principal tag):
 *
 * - `DenyBedrockKeyWithoutExpiry` / `DenyBedrockKeyOverMaxAge`: a key created without `CredentialAgeDays`
 *   never expires, and a condition on a key missing from the request is false, so the `NumericGreaterThan`
 *   statement alone would let it through: the `Null` statement is what stops it. When long-term keys are not
 *   allowed at all, `DenyBedrockKeyCreation` replaces both (it denies every Bedrock key creation).
 * - `DenyLongTermBearerToken` / `DenyLongTermMantleBearerToken` (only when long-term keys are not allowed):
 *   use of an existing long-term key, on the bedrock and the bedrock-mantle endpoints (two statements: each
 *   action has its own condition key, and one statement naming both would never match). Short-term keys stay
 *   usable.
 * - `DenyCredentialsOnBedrockKeyUsers`: access keys, passwords, signing certificates and SSH keys on the
 *   console's `BedrockAPIKey-*` users.
 * - `ProtectGuardrailExemptTag`: the exemption tag key cannot be set or removed by a non-exempt principal.
 *   Tag keys are compared ignoring case, because IAM treats tag keys case-insensitively.
 *
 * A `boundary` also gets `AllowWithinBoundary` (Allow `*` on `*`): a permissions boundary only caps what
 * identity policies grant, and a request is allowed only if both allow it, so a boundary made of denies alone
 * would allow nothing and lock the principal out. An SCP and an identity policy stay deny-only: an SCP
 * filters (FullAWSAccess or the org's other SCPs allow), and an identity policy must never grant.
 *
 * @throws GuardrailPolicyTooLargeError when the minified document exceeds the AWS limit for its kind
 */
export function guardrailPolicy(config: GuardrailConfig, kind: GuardrailKind): GuardrailPolicyDocument {
  const { key, value } = config.guardrails.exemptTag;
  const notExempt: ConditionBlock = { StringNotEquals: { [`aws:PrincipalTag/${key}`]: value } };
  const deny = (
    Sid: string,
    Action: string | string[],
    Resource: string,
    condition: ConditionBlock = {},
  ) => ({
    Sid,
    Effect: 'Deny' as const,
    Action,
    Resource,
    Condition: { ...condition, ...notExempt },
  });
  const bedrockKey = { StringEquals: { [SERVICE_NAME_KEY]: BEDROCK_SERVICE } };

  const statements: GuardrailStatement[] = [];
  if (kind === 'boundary') {
    statements.push({ Sid: 'AllowWithinBoundary', Effect: 'Allow', Action: '*', Resource: '*' });
  }
  if (config.allowLongTermKeys) {
    statements.push(
      deny('DenyBedrockKeyWithoutExpiry', 'iam:CreateServiceSpecificCredential', '*', {
        ...bedrockKey,
        Null: { [AGE_DAYS_KEY]: 'true' },
      }),
      deny('DenyBedrockKeyOverMaxAge', 'iam:CreateServiceSpecificCredential', '*', {
        ...bedrockKey,
        NumericGreaterThan: { [AGE_DAYS_KEY]: String(config.maxAgeDays) },
      }),
    );
  } else {
    statements.push(
      deny('DenyBedrockKeyCreation', 'iam:CreateServiceSpecificCredential', '*', bedrockKey),
      deny('DenyLongTermBearerToken', 'bedrock:CallWithBearerToken', '*', {
        StringEquals: { 'bedrock:BearerTokenType': 'LONG_TERM' },
      }),
      deny('DenyLongTermMantleBearerToken', 'bedrock-mantle:CallWithBearerToken', '*', {
        StringEquals: { 'bedrock-mantle:BearerTokenType': 'LONG_TERM' },
      }),
    );
  }
  statements.push(
    deny('DenyCredentialsOnBedrockKeyUsers', [...KEY_USER_CREDENTIAL_ACTIONS], BEDROCK_KEY_USERS_ARN),
    deny('ProtectGuardrailExemptTag', [...EXEMPT_TAG_ACTIONS], '*', {
      'ForAnyValue:StringEqualsIgnoreCase': { 'aws:TagKeys': [key] },
    }),
  );

  const document: GuardrailPolicyDocument = { Version: '2012-10-17', Statement: statements };
  const size = policySize(document);
  const limit = POLICY_SIZE_LIMITS[kind];
  if (size > limit) throw new GuardrailPolicyTooLargeError(kind, size, limit);
  return document;
}
