import { canonicalDecision, type Decision, type Severity, topSeverity } from './types';

/**
 * OCSF output (issue 16 item 3): every decision as one OCSF 1.5.0 **Detection Finding** (class_uid 2004, category
 * Findings), for `keyguard audit --format ocsf` and, when configured, the decision events. One class for every
 * decision, so that Amazon Security Lake (one custom source per event class) and a SIEM's OCSF parser take the whole
 * stream as one source; the keyguard action is the finding's status and activity (below), not a second class.
 *
 * The finding is the key's: `finding_info.uid` is `bedrock-key-guard/<accountId>/<keyId>` (the Security Hub finding
 * Id), so each later decision about the key is the next state of the same finding:
 * - `activity_id` 1 Create when the decision starts a violation set (its first owner notice), 3 Close when the key
 *   no longer needs attention (no violation left, or the key is not usable: inactive, expired, deleted, or
 *   deactivated or deleted by this decision), else 2 Update;
 * - `status_id` 1 New while the key needs attention, 3 Suppressed when only approved (waived) violations are left,
 *   4 Resolved otherwise; `severity_id` is the worst violation's (1 Informational when none).
 * Everything the mapping does not carry in OCSF attributes is kept under `unmapped.keyguard`: the decision exactly as
 * `keyguard audit --json` prints it (docs/ocsf.md lists every field). Pure: no AWS, no clock. Never key material: the
 * key id and user name are identifiers, and every text in a decision was redacted when the decision was made.
 */

/** The OCSF schema version every event names in `metadata.version`. */
export const OCSF_VERSION = '1.5.0';
export const OCSF_DETECTION_FINDING = { classUid: 2004, className: 'Detection Finding' } as const;
export const OCSF_FINDINGS_CATEGORY = { uid: 2, name: 'Findings' } as const;
/** Prefix of `finding_info.uid` (shared with the Security Hub finding Id). */
export const OCSF_FINDING_PREFIX = 'bedrock-key-guard';

const ACTIVITY = { 1: 'Create', 2: 'Update', 3: 'Close' } as const;
type ActivityId = keyof typeof ACTIVITY;
const STATUS = { 1: 'New', 3: 'Suppressed', 4: 'Resolved' } as const;
type StatusId = keyof typeof STATUS;
const SEVERITY: Record<Severity | 'info', { id: number; name: string }> = {
  info: { id: 1, name: 'Informational' },
  low: { id: 2, name: 'Low' },
  medium: { id: 3, name: 'Medium' },
  high: { id: 4, name: 'High' },
  critical: { id: 5, name: 'Critical' },
};
/** Observable type ids used (OCSF 1.5.0 observable.type_id). */
const OBSERVABLE = {
  userName: { id: 4, name: 'User Name' },
  credentialId: { id: 19, name: 'User Credential ID' },
  accountUid: { id: 35, name: 'Account uid' },
} as const;

/** `resources[].type` of the key and of its IAM user. */
export const OCSF_RESOURCE_TYPES = {
  LONG_TERM: 'Bedrock API key (long-term)',
  SHORT_TERM: 'Bedrock API key (short-term)',
  user: 'AWS::IAM::User',
} as const;

export interface OcsfObservable {
  name: string;
  type: string;
  type_id: number;
  value: string;
}

export interface OcsfResource {
  uid?: string;
  name?: string;
  type: string;
  created_time?: number;
  labels?: string[];
  data?: Record<string, unknown>;
}

/** The attributes keyguard sets (a subset of OCSF 1.5.0 Detection Finding with the `cloud` profile). */
export interface OcsfDetectionFinding {
  activity_id: ActivityId;
  activity_name: string;
  category_uid: number;
  category_name: string;
  class_uid: number;
  class_name: string;
  type_uid: number;
  type_name: string;
  severity_id: number;
  severity: string;
  status_id: StatusId;
  status: string;
  status_code: string;
  status_detail: string;
  time: number;
  message: string;
  is_alert: boolean;
  metadata: {
    version: string;
    uid: string;
    profiles: string[];
    product: { name: string; vendor_name: string; version: string };
    event_code?: string;
    correlation_uid?: string;
  };
  cloud: { provider: 'AWS'; account: { uid: string } };
  finding_info: {
    uid: string;
    title: string;
    desc: string;
    types: string[];
    last_seen_time: number;
  };
  resources: OcsfResource[];
  observables: OcsfObservable[];
  unmapped: { keyguard: OcsfKeyguardDecision };
}

/** A decision as events may carry it: reduced when too large, saying so in `detailTruncated`. */
export type OcsfKeyguardDecision = Decision & { detailTruncated?: unknown };

/** The finding of a key (stable for every decision about it). */
export function ocsfFindingUid(d: Pick<Decision, 'accountId' | 'keyId'>): string {
  return `${OCSF_FINDING_PREFIX}/${d.accountId}/${d.keyId}`;
}

/**
 * Whether the key still needs attention after the decision: it has a violation not waived, it can be used (Active),
 * and the decision did not deactivate or delete it.
 */
export function needsAttention(d: Decision): boolean {
  if (d.violations.length === 0 || d.status !== 'Active') return false;
  return !(d.applied && (d.action === 'DEACTIVATE' || d.action === 'DELETE'));
}

function activityOf(d: Decision): ActivityId {
  if (!needsAttention(d)) return 3;
  return d.notice === 'first' ? 1 : 2;
}

function statusOf(d: Decision): StatusId {
  if (needsAttention(d)) return 1;
  if (d.violations.length === 0 && (d.waived?.length ?? 0) > 0) return 3;
  return 4;
}

function actionDetail(d: Decision): string {
  const done =
    d.action === 'ALLOW' || d.action === 'NOTIFY'
      ? d.action === 'NOTIFY'
        ? 'owner notified'
        : 'no action needed'
      : d.applied
        ? 'applied'
        : `planned, not applied (${d.mode} mode)`;
  return d.reason ? `${d.action}: ${done}; ${d.reason}` : `${d.action}: ${done}`;
}

function title(d: Decision): string {
  const codes = d.violations.map((v) => v.code);
  return codes.length > 0
    ? `Bedrock API key ${d.keyId}: ${codes.join(', ')}`
    : `Bedrock API key ${d.keyId}: no policy violation`;
}

function description(d: Decision): string {
  const parts = d.violations.map((v) => `${v.code} (${v.severity}): ${v.detail}`);
  for (const w of d.waived ?? [])
    parts.push(`${w.code} (${w.severity}) approved by ${w.approvalId}: ${w.detail}`);
  return parts.length > 0 ? parts.join('\n') : 'The key meets the policy.';
}

function millis(iso: string | null): number | undefined {
  if (iso === null) return undefined;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : undefined;
}

/**
 * The OCSF Detection Finding of one decision. `productVersion` is keyguard's own version (metadata.product.version).
 * The input may be a reduced decision (decision events: `detailTruncated`); it is carried as it is in `unmapped`.
 */
export function ocsfDetectionFinding(
  input: OcsfKeyguardDecision,
  productVersion: string,
): OcsfDetectionFinding {
  const { detailTruncated, ...rest } = input;
  const d = canonicalDecision(rest);
  const keyguard: OcsfKeyguardDecision = detailTruncated === undefined ? d : { ...d, detailTruncated };
  const activity = activityOf(d);
  const status = statusOf(d);
  const severity = SEVERITY[topSeverity(d.violations)];
  const time = millis(d.decidedAt) ?? 0;
  const created = millis(d.createdAt);
  const codes = d.violations.map((v) => `${v.code} (${v.severity})`);
  const key: OcsfResource = {
    uid: d.keyId,
    type: OCSF_RESOURCE_TYPES[d.keyType],
    labels: [d.keyType, d.status],
    data: {
      keyType: d.keyType,
      status: d.status,
      createdAt: d.createdAt,
      expiresAt: d.expiresAt,
      neverExpires: d.neverExpires,
    },
    ...(created !== undefined ? { created_time: created } : {}),
  };
  return {
    activity_id: activity,
    activity_name: ACTIVITY[activity],
    category_uid: OCSF_FINDINGS_CATEGORY.uid,
    category_name: OCSF_FINDINGS_CATEGORY.name,
    class_uid: OCSF_DETECTION_FINDING.classUid,
    class_name: OCSF_DETECTION_FINDING.className,
    type_uid: OCSF_DETECTION_FINDING.classUid * 100 + activity,
    type_name: `${OCSF_DETECTION_FINDING.className}: ${ACTIVITY[activity]}`,
    severity_id: severity.id,
    severity: severity.name,
    status_id: status,
    status: STATUS[status],
    status_code: d.action,
    status_detail: actionDetail(d),
    time,
    message:
      `Bedrock API key ${d.keyId} of IAM user ${d.userName} in account ${d.accountId}: ` +
      `${codes.length > 0 ? codes.join(', ') : 'no policy violation'}; ${actionDetail(d)}`,
    is_alert: needsAttention(d),
    metadata: {
      version: OCSF_VERSION,
      uid: `${ocsfFindingUid(d)}/${d.decisionId}`,
      profiles: ['cloud'],
      product: { name: 'bedrock-key-guard', vendor_name: 'bedrock-key-guard', version: productVersion },
      ...(d.trigger.eventName ? { event_code: d.trigger.eventName } : {}),
      ...(d.trigger.eventId ? { correlation_uid: d.trigger.eventId } : {}),
    },
    cloud: { provider: 'AWS', account: { uid: d.accountId } },
    finding_info: {
      uid: ocsfFindingUid(d),
      title: title(d),
      desc: description(d),
      types: d.violations.length > 0 ? d.violations.map((v) => v.code) : ['COMPLIANT'],
      last_seen_time: time,
    },
    resources: [key, { name: d.userName, type: OCSF_RESOURCE_TYPES.user }],
    observables: [
      {
        name: 'resources[0].uid',
        type: OBSERVABLE.credentialId.name,
        type_id: OBSERVABLE.credentialId.id,
        value: d.keyId,
      },
      {
        name: 'resources[1].name',
        type: OBSERVABLE.userName.name,
        type_id: OBSERVABLE.userName.id,
        value: d.userName,
      },
      {
        name: 'cloud.account.uid',
        type: OBSERVABLE.accountUid.name,
        type_id: OBSERVABLE.accountUid.id,
        value: d.accountId,
      },
    ],
    unmapped: { keyguard },
  };
}

/** One line of `keyguard audit --format ocsf`. */
export function ocsfJson(d: Decision, productVersion: string): string {
  return JSON.stringify(ocsfDetectionFinding(d, productVersion));
}
