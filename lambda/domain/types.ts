/**
 * The domain vocabulary. Pure data: no AWS SDK, no I/O. The decision shape is the audit record and the
 * CLI's `--json` output (see shared/docs/design.md); it never holds key material.
 */

export const BEDROCK_SERVICE = 'bedrock.amazonaws.com';

export type KeyType = 'LONG_TERM' | 'SHORT_TERM';
export type KeyStatus = 'Active' | 'Inactive' | 'Expired' | 'Deleted';
export type Severity = 'low' | 'medium' | 'high' | 'critical';
export type Action = 'ALLOW' | 'NOTIFY' | 'DEACTIVATE' | 'DELETE';
export type Mode = 'audit' | 'enforce';
export type OwnerSource = 'tag' | 'creator' | 'fallback';

export type ViolationCode =
  | 'NEVER_EXPIRES'
  | 'EXCEEDS_MAX_AGE'
  | 'MISSING_OWNER'
  | 'MISSING_PURPOSE'
  | 'MISSING_REVIEW_CADENCE'
  | 'REVIEW_OVERDUE'
  | 'EXPIRING_SOON'
  | 'BROAD_PERMISSIONS'
  | 'USER_HAS_OTHER_CREDENTIALS'
  | 'REACTIVATED_WITHOUT_APPROVAL'
  | 'LEAKED'
  | 'UNUSED'
  | 'LONG_TERM_NOT_ALLOWED';

/** Every violation code, for validating input (e.g. `keyguard approve --covers`); a Record keeps it exhaustive. */
const VIOLATION_CODE_SET: Record<ViolationCode, true> = {
  NEVER_EXPIRES: true,
  EXCEEDS_MAX_AGE: true,
  MISSING_OWNER: true,
  MISSING_PURPOSE: true,
  MISSING_REVIEW_CADENCE: true,
  REVIEW_OVERDUE: true,
  EXPIRING_SOON: true,
  BROAD_PERMISSIONS: true,
  USER_HAS_OTHER_CREDENTIALS: true,
  REACTIVATED_WITHOUT_APPROVAL: true,
  LEAKED: true,
  UNUSED: true,
  LONG_TERM_NOT_ALLOWED: true,
};
export const VIOLATION_CODES: readonly ViolationCode[] = Object.keys(VIOLATION_CODE_SET) as ViolationCode[];

export function isViolationCode(value: string): value is ViolationCode {
  return Object.hasOwn(VIOLATION_CODE_SET, value);
}

export interface Violation {
  code: ViolationCode;
  severity: Severity;
  detail: string;
}

export interface Trigger {
  kind: 'event' | 'sweep' | 'usage' | 'leak' | 'replay' | 'approval' | 'review';
  eventId?: string;
  eventName?: string;
  eventTime?: string;
}

export interface Owner {
  value: string | null;
  source: OwnerSource;
}

/** Why a decision notifies: the stage of the owner's notices it sends (at most one per decision). */
export type NoticeKind = 'first' | 'reminder' | 'final' | 'action' | 'resolved' | 'expiring';

/** A violation set aside by an active approval (still recorded, so the audit shows what was approved). */
export interface WaivedViolation extends Violation {
  approvalId: string;
}

/** Where a leaked key was found: a CloudWatch Logs event (never the line itself). */
export interface LeakLocation {
  logGroup: string;
  logStream: string;
  /** The log event's id and time (ISO). */
  logEventId: string;
  timestamp: string;
  /** 1-based position of the key in the log message (in the file, for a scan report). */
  line: number;
  column: number;
  /**
   * A leak reported by `keyguard scan --quarantine` (issue 15): the file (and commit) it was found in. Then
   * `logGroup` is `keyguard scan`, `logStream` the path, `logEventId` the report's EventBridge event id and
   * `timestamp` the time of the scan.
   */
  file?: { path: string; commit?: string };
}

/** What `keyguard scan --quarantine` reported with a key: every place it was found (the first ones listed). */
export interface LeakReport {
  by: 'keyguard scan';
  scannerVersion: string;
  /** The EventBridge event that carried the report (the first delivery decided). */
  eventId: string;
  scannedAt: string;
  /** Places the key was found in, and the first of them (at most 100). */
  locationCount: number;
  locations: Array<{ path: string; line: number; column: number; commit?: string }>;
  /** sha256 of every place (scan-report.ts): one decision per key per location set. */
  locationSetDigest: string;
}

/**
 * What a live check of a found key said (see lambda/adapters/bedrock-key-probe.ts):
 * - `VERIFIED`: Bedrock authenticated the key (as the user its alias names, when the answer names a principal);
 * - `REJECTED`: Bedrock refused it as a credential: not a working key (forged, or inactive, expired, deleted);
 * - `UNVERIFIED`: no answer that tells (network error, timeout, throttling, an unexpected response).
 * The alias a long-term key decodes to is public; only its secret proves a leak, so only VERIFIED may deactivate
 * (UNVERIFIED only with `leakDetection.deactivateUnverified`).
 */
export type LeakVerificationResult = 'VERIFIED' | 'REJECTED' | 'UNVERIFIED';

export interface LeakVerification {
  result: LeakVerificationResult;
  /**
   * The call made, e.g. `bedrock:ListFoundationModels us-east-1` (`none` when no call could be made, `skipped`
   * when none was tried: the batch's budget or time was used up; such a leak never deactivates automatically).
   */
  method: string;
  /** When the answer came (ISO). */
  checkedAt: string;
  /** Why, in words (status, error code, the principal named); never key material. */
  reason: string;
  /** The principal Bedrock named in its answer, when it named one. */
  principal?: string | null;
}

/** A leaked key as the audit keeps it: fingerprint, redacted form and location, never the key. */
export interface LeakEvidence {
  fingerprint: string;
  redacted: string;
  location: LeakLocation;
  /**
   * Keys of the user the leaked long-term key may be, when keyguard cannot tell which one it is (IAM's key
   * metadata does not identify a key string): none of them is deactivated automatically.
   */
  candidates?: string[];
  /** The principal that signed a leaked short-term key (from CloudTrail), when found. */
  issuer?: string | null;
  /**
   * Why the signer of a short-term key may have been missed: a region that was not called (not a known region) or
   * whose lookup failed (not enabled, denied, timed out). Absent when every region searched answered.
   */
  issuerUnknownReason?: string;
  /**
   * Whether the found string is a working key. Absent on leaks recorded before keys were verified: those count
   * as UNVERIFIED (never deactivated automatically unless `leakDetection.deactivateUnverified`).
   */
  verification?: LeakVerification;
  /** A leak reported by `keyguard scan --quarantine`: where the scan found it (never the key). */
  report?: LeakReport;
  /**
   * Present on a decision about a string seen in several log events of its batch, and on every group decision
   * (strings naming one user decided together: all its rejected strings, or its unverified ones past the bounds,
   * lambda/domain/leak-plan.ts). The fields above describe the first of them.
   */
  sightings?: LeakSightings;
}

/** Counts (complete) and samples (the first ones, in batch order, at most 20) of what a leak decision covers. */
export interface LeakSightings {
  /** Distinct key strings (fingerprints). */
  strings: number;
  /** Log events holding at least one of them. */
  logEvents: number;
  fingerprints: string[];
  logEventIds: string[];
}

export interface Decision {
  /** Stable per trigger and key: the same event about the same key always yields the same id. */
  decisionId: string;
  decidedAt: string;
  keyId: string;
  userName: string;
  accountId: string;
  keyType: KeyType;
  /** Status of the key in IAM when the decision was made (`Deleted` when IAM no longer has it). */
  status: KeyStatus;
  trigger: Trigger;
  createdAt: string | null;
  expiresAt: string | null;
  neverExpires: boolean;
  owner: Owner;
  violations: Violation[];
  action: Action;
  applied: boolean;
  mode: Mode;
  deadline: string | null;
  policyVersion: string;
  /** Violations an active approval covers: not acted on, still on record. */
  waived?: WaivedViolation[];
  /** Why the action was taken, when it is not evident from the violations (e.g. a grace deadline passed). */
  reason?: string;
  /** The owner notice this decision sends, if any. */
  notice?: NoticeKind | null;
  /**
   * Set when the notice is delivered grouped rather than on its own: the id of the owner digest
   * (`digest/<sweepId>`) or first-deployment summary (`summary/<sweepId>`) that carries it.
   */
  noticeDigest?: string;
  /** For a leak: where it was found, its fingerprint and redacted form (never the key). */
  leak?: LeakEvidence;
}

/**
 * What is known about one long-term key at decision time: metadata from IAM (or, in replay, rebuilt
 * from the events), the user's tags, and who created it. Never the secret.
 */
export interface KeySnapshot {
  keyId: string;
  userName: string;
  accountId: string;
  status: KeyStatus;
  createdAt: string | null;
  expiresAt: string | null;
  userTags: Record<string, string>;
  /** Principal ARN (or name) of whoever called CreateServiceSpecificCredential, when known. */
  creator: string | null;
  /** Broad grants found on the key's user (directly or through groups); null when not checked. */
  permissions?: PermissionFinding[] | null;
  /** Other credentials on the key's user; null when not checked. */
  otherCredentials?: OtherCredentials | null;
}

export interface PermissionFinding {
  /** Policy name (managed) or `<user|group>/<name>` (inline). */
  policy: string;
  /** `user`, or `group:<name>` when it comes through a group. */
  via: string;
  severity: Severity;
  reason: string;
}

export interface OtherCredentials {
  activeAccessKeys: number;
  consolePassword: boolean;
}

/**
 * An explicit, expiring, attributable exception for one key. Never self-granted: the approver is neither the
 * key's owner nor its creator. Tags are never approvals (whoever can tag the user could approve themselves).
 */
export interface Approval {
  approvalId: string;
  accountId: string;
  keyId: string;
  /** Violation codes it covers, or every code. */
  covers: ViolationCode[] | 'ALL';
  reason: string;
  /** Principal ARN from STS GetCallerIdentity. */
  approver: string;
  approvedAt: string;
  until: string;
  revokedAt: string | null;
  revokedBy: string | null;
}

export function isApprovalActive(a: Approval, now: Date): boolean {
  return (
    a.revokedAt === null && Date.parse(a.approvedAt) <= now.getTime() && now.getTime() < Date.parse(a.until)
  );
}

/** The staged-notice state of a key, kept between evaluations (the keys table). */
export interface NoticeState {
  /** The violation set the notices are about (sorted codes, EXPIRING_SOON excluded). */
  codes: ViolationCode[];
  stage: Exclude<NoticeKind, 'resolved' | 'expiring'>;
  firstNotifiedAt: string;
}

/** What earlier evaluations left that later ones depend on. */
export interface KeyHistory {
  /** The pipeline deactivated this key (a later Active status without approval is a reactivation). */
  deactivatedByUs: boolean;
  lastReviewAt: string | null;
  /** The grace deadline running for this key, set when it first had an escalating violation. */
  deadline: string | null;
  notice: NoticeState | null;
  /** expiryWarningDays thresholds already reminded about. */
  expiryReminders: number[];
  /** Where the key was found leaked. Kept: a leaked key stays LEAKED until it is replaced (or approved). */
  leak?: LeakEvidence | null;
  /**
   * UTC day (YYYY-MM-DD) of the latest "deactivated key still in use" alert: the key-usage function alerts at
   * most once per key per day, and a redelivered batch finds its alert done. Absent on items written before it.
   */
  inUseAlertDay?: string | null;
}

export const EMPTY_HISTORY: KeyHistory = {
  deactivatedByUs: false,
  lastReviewAt: null,
  deadline: null,
  notice: null,
  expiryReminders: [],
};

/** Violations that must not wait for a grace period. */
export const IMMEDIATE_CODES: readonly ViolationCode[] = [
  'NEVER_EXPIRES',
  'LONG_TERM_NOT_ALLOWED',
  'REACTIVATED_WITHOUT_APPROVAL',
  'LEAKED',
];
/** Violations that are only reminders: they never escalate (the key expires by itself). */
export const INFORMATIONAL_CODES: readonly ViolationCode[] = ['EXPIRING_SOON'];

const SEVERITY_RANK: Record<Severity, number> = { low: 1, medium: 2, high: 3, critical: 4 };

/** The highest severity among violations, or `info` when there are none. */
export function topSeverity(violations: readonly Violation[]): Severity | 'info' {
  let top: Severity | 'info' = 'info';
  for (const v of violations) {
    if (top === 'info' || SEVERITY_RANK[v.severity] > SEVERITY_RANK[top]) top = v.severity;
  }
  return top;
}

/**
 * Exactly the decision's fields, in the order of design.md, with nothing else: table keys and index
 * attributes of a stored item are dropped, and trigger fields that are absent stay absent. The audit store
 * reads decisions back through it and the CLI prints through it, so both show the same bytes.
 */
export function canonicalDecision(d: Decision): Decision {
  const trigger: Trigger = { kind: d.trigger.kind };
  if (d.trigger.eventId !== undefined) trigger.eventId = d.trigger.eventId;
  if (d.trigger.eventName !== undefined) trigger.eventName = d.trigger.eventName;
  if (d.trigger.eventTime !== undefined) trigger.eventTime = d.trigger.eventTime;
  return {
    decisionId: d.decisionId,
    decidedAt: d.decidedAt,
    keyId: d.keyId,
    userName: d.userName,
    accountId: d.accountId,
    keyType: d.keyType,
    status: d.status,
    trigger,
    createdAt: d.createdAt ?? null,
    expiresAt: d.expiresAt ?? null,
    neverExpires: d.neverExpires,
    owner: { value: d.owner.value ?? null, source: d.owner.source },
    violations: d.violations.map((v) => ({ code: v.code, severity: v.severity, detail: v.detail })),
    action: d.action,
    applied: d.applied,
    mode: d.mode,
    deadline: d.deadline ?? null,
    policyVersion: d.policyVersion,
    ...(d.waived && d.waived.length > 0
      ? {
          waived: d.waived.map((w) => ({
            code: w.code,
            severity: w.severity,
            detail: w.detail,
            approvalId: w.approvalId,
          })),
        }
      : {}),
    ...(d.reason ? { reason: d.reason } : {}),
    ...(d.notice ? { notice: d.notice } : {}),
    ...(d.noticeDigest ? { noticeDigest: d.noticeDigest } : {}),
    ...(d.leak ? { leak: canonicalLeak(d.leak) } : {}),
  };
}

function canonicalLeak(l: LeakEvidence): LeakEvidence {
  const loc = l.location;
  return {
    fingerprint: l.fingerprint,
    redacted: l.redacted,
    location: {
      logGroup: loc.logGroup,
      logStream: loc.logStream,
      logEventId: loc.logEventId,
      timestamp: loc.timestamp,
      line: loc.line,
      column: loc.column,
    },
    ...(l.candidates ? { candidates: [...l.candidates] } : {}),
    ...(l.issuer !== undefined ? { issuer: l.issuer } : {}),
    ...(l.issuerUnknownReason ? { issuerUnknownReason: l.issuerUnknownReason } : {}),
    ...(l.verification
      ? {
          verification: {
            result: l.verification.result,
            method: l.verification.method,
            checkedAt: l.verification.checkedAt,
            reason: l.verification.reason,
            ...(l.verification.principal !== undefined ? { principal: l.verification.principal } : {}),
          },
        }
      : {}),
    ...(l.sightings
      ? {
          sightings: {
            strings: l.sightings.strings,
            logEvents: l.sightings.logEvents,
            fingerprints: [...l.sightings.fingerprints],
            logEventIds: [...l.sightings.logEventIds],
          },
        }
      : {}),
  };
}
