import type { PermissionFinding } from './types';

/**
 * Does the user behind a Bedrock key hold more than a key should carry? Pure analysis of the policies IAM
 * reports for the user (directly and through groups): the adapters fetch them, this decides.
 *
 * High: AdministratorAccess, PowerUserAccess, AmazonBedrockFullAccess, or any Allow statement whose actions
 * include `*`, `*:*` or `bedrock:*` (or a NotAction Allow, which grants everything but a few actions).
 * Low: AmazonBedrockLimitedAccess, the console's default for API-key users: broad (guardrail deletion,
 * model customization) but expected.
 */

export interface PolicyStatement {
  Effect?: string;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
}

export interface PolicyDocument {
  Version?: string;
  Statement?: PolicyStatement | PolicyStatement[];
}

export interface AttachedPolicy {
  /** Policy name, e.g. `AdministratorAccess`. */
  name: string;
  arn: string;
  /** Default version's document, when it was fetched (AWS managed policies are recognised by ARN). */
  document: PolicyDocument | null;
  /** `user`, or `group:<name>`. */
  via: string;
}

export interface InlinePolicy {
  name: string;
  document: PolicyDocument;
  via: string;
}

export interface UserPolicies {
  attached: AttachedPolicy[];
  inline: InlinePolicy[];
}

const HIGH_AWS_MANAGED = new Set(['AdministratorAccess', 'PowerUserAccess', 'AmazonBedrockFullAccess']);
const LOW_AWS_MANAGED = new Set(['AmazonBedrockLimitedAccess']);
const BROAD_ACTIONS = new Set(['*', '*:*', 'bedrock:*']);

function asList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

function isAwsManaged(arn: string): boolean {
  return /^arn:aws[a-z-]*:iam::aws:policy\//.test(arn);
}

/** IAM returns inline and version documents URL-encoded; the SDK does not decode them. */
export function parsePolicyDocument(raw: string | PolicyDocument | null | undefined): PolicyDocument | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'string') return raw;
  let text = raw;
  if (/^%7B/i.test(text.trim())) text = decodeURIComponent(text);
  try {
    return JSON.parse(text) as PolicyDocument;
  } catch {
    return null;
  }
}

/** The broad statements of one document, as human-readable reasons. */
function broadStatements(doc: PolicyDocument | null): string[] {
  if (!doc) return [];
  const statements = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement ? [doc.Statement] : [];
  const reasons: string[] = [];
  for (const st of statements) {
    if ((st.Effect ?? '').toLowerCase() !== 'allow') continue;
    const broad = asList(st.Action).filter((a) => BROAD_ACTIONS.has(a.toLowerCase()));
    if (broad.length > 0) reasons.push(`allows ${broad.map((a) => `"${a}"`).join(', ')}`);
    if (st.NotAction !== undefined) reasons.push('allows everything except its NotAction list');
  }
  return reasons;
}

export function assessPermissions(p: UserPolicies): PermissionFinding[] {
  const findings: PermissionFinding[] = [];
  for (const a of p.attached) {
    if (isAwsManaged(a.arn) && HIGH_AWS_MANAGED.has(a.name)) {
      findings.push({ policy: a.name, via: a.via, severity: 'high', reason: `AWS managed policy ${a.name}` });
      continue;
    }
    if (isAwsManaged(a.arn) && LOW_AWS_MANAGED.has(a.name)) {
      findings.push({
        policy: a.name,
        via: a.via,
        severity: 'low',
        reason: `AWS managed policy ${a.name} (the console default: broader than inference needs)`,
      });
      continue;
    }
    for (const reason of broadStatements(a.document)) {
      findings.push({
        policy: a.name,
        via: a.via,
        severity: 'high',
        reason: `managed policy ${a.name} ${reason}`,
      });
    }
  }
  for (const i of p.inline) {
    for (const reason of broadStatements(i.document)) {
      findings.push({
        policy: i.name,
        via: i.via,
        severity: 'high',
        reason: `inline policy ${i.name} ${reason}`,
      });
    }
  }
  return findings;
}
