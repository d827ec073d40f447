import type { Decision, Severity, Violation } from './types';

/**
 * Security Hub findings (issue 16 item 1): each key with violations is one finding in the AWS Security Finding Format
 * (ASFF), imported with BatchImportFindings through the product ARN of custom integrations in the account and region
 * (`arn:<partition>:securityhub:<region>:<account>:product/<account>/default`). Pure: no AWS, no clock.
 *
 * One finding per key: its `Id` is `bedrock-key-guard/<accountId>/<keyId>`, so every later decision about the key
 * updates the same finding. What a finding provider may change with BatchImportFindings, and how it is used:
 * - `UpdatedAt` and `LastObservedAt` move to the decision's time; `CreatedAt` and `FirstObservedAt` stay the time of the
 *   first decision that opened the finding (kept in the findings state table, the import itself returns nothing).
 * - Severity is the worst violation's, sent as `FindingProviderFields.Severity` (the provider's own copy, which
 *   BatchImportFindings may update) and as the required top-level `Severity` (which Security Hub keeps once a
 *   customer has changed it with BatchUpdateFindings). No violation left: `INFORMATIONAL`.
 * - `RecordState` is `ARCHIVED` when the key no longer needs attention: no violation left (fixed, or every
 *   violation approved), deleted, deactivated or expired; `ACTIVE` otherwise. `Compliance.Status` says the same as
 *   `FAILED`/`PASSED`; Security Hub sets the workflow back to `NEW` when a finding turns ACTIVE or FAILED again.
 * - `Workflow.Status` is `NEW` on the first import only. BatchImportFindings cannot change `Workflow` after the
 *   finding exists (it belongs to the analysts, through BatchUpdateFindings): moving an archived finding's workflow to
 *   `RESOLVED` is a Security Hub automation rule (docs/operations.md, Security Hub), not this function's call.
 * - The decision that produced the import is in `ProductFields` (`bedrock-key-guard/decisionId` and the rest):
 *   `UserDefinedFields` belong to the customer and cannot be updated by BatchImportFindings.
 * Nothing here is key material: the key id (`ACCA…`, or a short-term key's signing access key id) and the user name
 * are identifiers (docs/threat-model.md); violation details were redacted when the decision was made.
 */

/** The ASFF schema version of every finding. */
export const ASFF_SCHEMA_VERSION = '2018-10-08';
/** `GeneratorId` of every finding: the policy evaluation that decides keys. */
export const FINDING_GENERATOR_ID = 'bedrock-key-guard/key-policy';
/** Prefix of every finding `Id` and of every ProductFields key. */
export const FINDING_PREFIX = 'bedrock-key-guard';

/** BatchImportFindings takes at most this many findings per call. */
export const IMPORT_MAX_FINDINGS = 100;
/** ... and at most 6 MB per call; this leaves room for the request's own JSON around the findings. */
export const IMPORT_MAX_BYTES = 6 * 1024 * 1024 - 64 * 1024;
/** A finding may be at most 240 KB. */
export const FINDING_MAX_BYTES = 240 * 1024;

/** ASFF field limits (AwsSecurityFinding, Resource, Recommendation in the Security Hub API reference). */
export const ASFF_LIMITS = {
  id: 512,
  generatorId: 512,
  title: 256,
  description: 1024,
  recommendationText: 512,
  resourceType: 256,
  productFields: 50,
  productFieldKey: 128,
  productFieldValue: 2048,
  otherDetails: 50,
  otherDetailKey: 128,
  otherDetailValue: 1024,
} as const;

export type SeverityLabel = 'INFORMATIONAL' | 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL';
export type RecordState = 'ACTIVE' | 'ARCHIVED';

/** The ASFF fields keyguard sends (a subset of AwsSecurityFinding; the SDK's type accepts it). */
export interface KeyFinding {
  SchemaVersion: string;
  Id: string;
  ProductArn: string;
  GeneratorId: string;
  AwsAccountId: string;
  Types: string[];
  CreatedAt: string;
  UpdatedAt: string;
  FirstObservedAt: string;
  LastObservedAt: string;
  Severity: { Label: SeverityLabel; Original: string };
  FindingProviderFields: { Severity: { Label: SeverityLabel; Original: string }; Types: string[] };
  Title: string;
  Description: string;
  Remediation: { Recommendation: { Text: string } };
  ProductFields: Record<string, string>;
  Resources: Array<{
    Type: string;
    Id: string;
    Partition: string;
    Region: string;
    Details: Record<string, unknown>;
  }>;
  Compliance: { Status: 'FAILED' | 'PASSED' };
  RecordState: RecordState;
  Workflow?: { Status: 'NEW' };
}

/** What the findings state table keeps per finding (the finding's `Id` is the key). */
export interface FindingState {
  id: string;
  /** The finding's `CreatedAt`: the first import's decision time. */
  createdAt: string;
  /** The latest decision imported (its `decidedAt`), so an older decision delivered late never overwrites it. */
  updatedAt: string;
  decisionId: string;
  recordState: RecordState;
}

/** Where findings are imported: the custom-integration product of the account and region the function runs in. */
export interface FindingTarget {
  partition: string;
  region: string;
  /** The account that calls BatchImportFindings: every finding's `AwsAccountId` (see docs/operations.md). */
  accountId: string;
}

/** `arn:<partition>:securityhub:<region>:<account>:product/<account>/default`: custom integrations' product ARN. */
export function defaultProductArn(t: FindingTarget): string {
  return `arn:${t.partition}:securityhub:${t.region}:${t.accountId}:product/${t.accountId}/default`;
}

/** The stable `Id` of the finding of one key. */
export function findingId(accountId: string, keyId: string): string {
  return `${FINDING_PREFIX}/${accountId}/${keyId}`;
}

const LABELS: Record<Severity, SeverityLabel> = {
  low: 'LOW',
  medium: 'MEDIUM',
  high: 'HIGH',
  critical: 'CRITICAL',
};
const RANK: Record<Severity, number> = { low: 1, medium: 2, high: 3, critical: 4 };

function worst(violations: readonly Violation[]): Severity | null {
  let top: Severity | null = null;
  for (const v of violations) if (top === null || RANK[v.severity] > RANK[top]) top = v.severity;
  return top;
}

/** Whether the decision leaves the key needing attention: violations on a key that can still be used. */
export function isOpen(d: Pick<Decision, 'violations' | 'status'>): boolean {
  return d.violations.length > 0 && d.status === 'Active';
}

/**
 * What to do with one decision, given the finding's state: `skip` when there is nothing to show (no violation and no
 * finding yet) or when the decision is older than the one already imported; otherwise `import`. An archived finding
 * is imported again by each later decision, clean or not, like an open one: two batches about one key imported at
 * the same moment can leave the older decision in Security Hub, and the key's next decision puts it right.
 */
export type FindingPlan =
  | { kind: 'skip'; reason: 'nothing-to-report' | 'older-than-imported' }
  | { kind: 'import'; recordState: RecordState; isNew: boolean };

export function planFinding(
  d: Pick<Decision, 'violations' | 'status' | 'decidedAt' | 'decisionId'>,
  prior: FindingState | null,
): FindingPlan {
  const open = isOpen(d);
  if (prior) {
    // The same decision again (a redelivery, or the import after its state was claimed failed): import it again.
    if (d.decidedAt < prior.updatedAt || (d.decidedAt === prior.updatedAt && d.decisionId < prior.decisionId))
      return { kind: 'skip', reason: 'older-than-imported' };
    return { kind: 'import', recordState: open ? 'ACTIVE' : 'ARCHIVED', isNew: false };
  }
  if (!open) return { kind: 'skip', reason: 'nothing-to-report' };
  return { kind: 'import', recordState: 'ACTIVE', isNew: true };
}

function cut(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** Finding types: a policy check on a credential; a leak is also a data exposure. */
function typesOf(violations: readonly Violation[]): string[] {
  const types = ['Software and Configuration Checks/AWS Security Best Practices/Bedrock API Key Governance'];
  if (violations.some((v) => v.code === 'LEAKED')) types.push('Effects/Data Exposure/Bedrock API Key Leaked');
  return types;
}

function whyArchived(d: Pick<Decision, 'violations' | 'status' | 'waived'>): string {
  if (d.status === 'Deleted') return 'the key was deleted';
  if (d.status === 'Inactive') return 'the key is deactivated';
  if (d.status === 'Expired') return 'the key has expired';
  if (d.waived && d.waived.length > 0) return 'every remaining violation is covered by an approval';
  return 'the key has no violation left';
}

const REMEDIATION: Record<string, string> = {
  LEAKED: 'Deactivate the key now, then replace it and remove it from where it was found.',
  REACTIVATED_WITHOUT_APPROVAL:
    'Deactivate the key again, or have it approved (keyguard approve) by someone other than its owner.',
  NEVER_EXPIRES: 'Replace the key with one created with CredentialAgeDays, then delete this one.',
  LONG_TERM_NOT_ALLOWED: 'Replace the long-term key with short-term keys (@aws/bedrock-token-generator).',
  EXCEEDS_MAX_AGE: 'Replace the key with one whose lifetime is within the policy (maxAgeDays).',
  BROAD_PERMISSIONS: "Narrow the key user's permissions to the Bedrock actions it needs.",
  USER_HAS_OTHER_CREDENTIALS:
    "Remove the user's access keys and console password, or move the key to a dedicated user.",
};

/** Remediation text: the most severe violations' own advice first, then the owner tags, at most 512 characters. */
function remediationOf(d: Pick<Decision, 'violations' | 'status'>, recordState: RecordState): string {
  const nothing = 'Nothing to do: keyguard records no open violation on this key.';
  if (recordState === 'ARCHIVED' || d.violations.length === 0) return nothing;
  const seen = new Set<string>();
  const parts: string[] = [];
  const sorted = [...d.violations].sort((a, b) => RANK[b.severity] - RANK[a.severity]);
  for (const v of sorted) {
    const text =
      REMEDIATION[v.code] ??
      (v.code.startsWith('MISSING_') || v.code === 'REVIEW_OVERDUE'
        ? "Tag the key's IAM user with its owner, purpose and review cadence, and record the review."
        : 'Review the key with its owner; keyguard audit shows the decision.');
    if (!seen.has(text)) {
      seen.add(text);
      parts.push(text);
    }
  }
  return cut(parts.join(' '), ASFF_LIMITS.recommendationText);
}

/**
 * The finding of one decision. `createdAt` is the finding's first import (the decision's own time for a new one);
 * `target` names the product and account the finding is imported into.
 */
export function keyFinding(
  d: Decision,
  plan: { recordState: RecordState; isNew: boolean },
  createdAt: string,
  target: FindingTarget,
): KeyFinding {
  const top = worst(d.violations);
  const label: SeverityLabel = top ? LABELS[top] : 'INFORMATIONAL';
  const severity = { Label: label, Original: top ?? 'none' };
  const types = typesOf(d.violations);
  const codes = d.violations.map((v) => v.code);
  const archived = plan.recordState === 'ARCHIVED';
  const subject = d.keyType === 'SHORT_TERM' ? 'short-term key signed with' : 'key';
  const title = archived
    ? `Bedrock API ${subject} ${d.keyId} (${d.userName}): resolved`
    : `Bedrock API ${subject} ${d.keyId} (${d.userName}): ${codes.join(', ')}`;
  const lines = archived
    ? [`Resolved: ${whyArchived(d)} (decision ${d.decisionId}).`]
    : d.violations.map((v) => `${v.code} (${v.severity}): ${v.detail}`);
  const description = [
    `keyguard ${d.mode} mode decided ${d.action}${d.applied ? ' (applied)' : ''} for ${d.keyType === 'SHORT_TERM' ? 'a short-term' : 'the long-term'} Bedrock API key ${d.keyId} of ${d.userName} in account ${d.accountId}.`,
    ...lines,
  ].join(' ');
  const userArn = `arn:${target.partition}:iam::${d.accountId}:user/${d.userName}`;
  const product: Record<string, string> = {
    [`${FINDING_PREFIX}/decisionId`]: d.decisionId,
    [`${FINDING_PREFIX}/decidedAt`]: d.decidedAt,
    [`${FINDING_PREFIX}/action`]: d.action,
    [`${FINDING_PREFIX}/applied`]: String(d.applied),
    [`${FINDING_PREFIX}/mode`]: d.mode,
    [`${FINDING_PREFIX}/keyId`]: d.keyId,
    [`${FINDING_PREFIX}/keyType`]: d.keyType,
    [`${FINDING_PREFIX}/keyStatus`]: d.status,
    [`${FINDING_PREFIX}/keyAccountId`]: d.accountId,
    [`${FINDING_PREFIX}/userName`]: d.userName,
    [`${FINDING_PREFIX}/violations`]: codes.join(',') || 'none',
    [`${FINDING_PREFIX}/policyVersion`]: d.policyVersion,
    [`${FINDING_PREFIX}/owner`]: d.owner.value ?? 'unknown',
    [`${FINDING_PREFIX}/ownerSource`]: d.owner.source,
    ...(d.deadline ? { [`${FINDING_PREFIX}/deadline`]: d.deadline } : {}),
    ...(d.waived && d.waived.length > 0
      ? {
          [`${FINDING_PREFIX}/approvedViolations`]: d.waived
            .map((w) => `${w.code}:${w.approvalId}`)
            .join(','),
        }
      : {}),
  };
  const productFields: Record<string, string> = {};
  for (const [k, v] of Object.entries(product)) productFields[k] = cut(v, ASFF_LIMITS.productFieldValue);
  const keyDetails: Record<string, string> = {
    ServiceSpecificCredentialId: d.keyId,
    ServiceName: 'bedrock.amazonaws.com',
    KeyType: d.keyType,
    Status: d.status,
    UserName: d.userName,
    ...(d.createdAt ? { CreateDate: d.createdAt } : {}),
    ExpirationDate: d.neverExpires ? 'never' : (d.expiresAt ?? 'unknown'),
  };
  for (const [k, v] of Object.entries(keyDetails)) keyDetails[k] = cut(v, ASFF_LIMITS.otherDetailValue);
  const common = { Partition: target.partition, Region: target.region };
  const resources: KeyFinding['Resources'] =
    d.keyType === 'SHORT_TERM'
      ? [
          {
            Type: 'AwsIamAccessKey',
            Id: d.keyId,
            ...common,
            Details: {
              AwsIamAccessKey: { AccessKeyId: d.keyId, AccountId: d.accountId, PrincipalName: d.userName },
            },
          },
        ]
      : [
          { Type: 'AwsIamUser', Id: userArn, ...common, Details: { AwsIamUser: { UserName: d.userName } } },
          {
            Type: 'Other',
            Id: `${userArn}/service-specific-credential/${d.keyId}`,
            ...common,
            Details: { Other: keyDetails },
          },
        ];
  return {
    SchemaVersion: ASFF_SCHEMA_VERSION,
    Id: findingId(d.accountId, d.keyId),
    ProductArn: defaultProductArn(target),
    GeneratorId: FINDING_GENERATOR_ID,
    AwsAccountId: target.accountId,
    Types: types,
    CreatedAt: createdAt,
    UpdatedAt: d.decidedAt,
    FirstObservedAt: createdAt,
    LastObservedAt: d.decidedAt,
    Severity: severity,
    FindingProviderFields: { Severity: severity, Types: types },
    Title: cut(title, ASFF_LIMITS.title),
    Description: cut(description, ASFF_LIMITS.description),
    Remediation: { Recommendation: { Text: remediationOf(d, plan.recordState) } },
    ProductFields: productFields,
    Resources: resources,
    Compliance: { Status: archived ? 'PASSED' : 'FAILED' },
    RecordState: plan.recordState,
    ...(plan.isNew ? { Workflow: { Status: 'NEW' as const } } : {}),
  };
}

/** The bytes a finding takes in a BatchImportFindings request (its JSON, UTF-8). */
export function findingBytes(f: KeyFinding): number {
  return Buffer.byteLength(JSON.stringify(f), 'utf8');
}

/** Findings cut into BatchImportFindings requests: at most 100 each and under the request size limit, in order. */
export function importBatches<T>(items: readonly T[], bytesOf: (item: T) => number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const n = bytesOf(item) + 1;
    if (current.length > 0 && (current.length === IMPORT_MAX_FINDINGS || size + n > IMPORT_MAX_BYTES)) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += n;
  }
  if (current.length > 0) out.push(current);
  return out;
}
