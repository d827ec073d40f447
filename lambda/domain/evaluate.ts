import type { Policy } from '../shared/config';
import { redactSecrets } from '../shared/redact';
import { DAY_MS, HOUR_MS } from './dates';
import { describeVerification, leakMayDeactivate } from './leak-verification';
import { parseCadenceDays, reviewDueAt } from './review';
import {
  type Action,
  type Approval,
  type Decision,
  EMPTY_HISTORY,
  IMMEDIATE_CODES,
  INFORMATIONAL_CODES,
  isApprovalActive,
  type KeyHistory,
  type KeySnapshot,
  type LeakEvidence,
  type Owner,
  type Severity,
  type Trigger,
  type Violation,
  type ViolationCode,
  type WaivedViolation,
} from './types';
import type { KeyUsage } from './usage-types';

/** IAM's "never expires" is either no ExpirationDate or one about a century out; both count. */
export const NEVER_EXPIRES_YEAR = 2100;

export interface EvaluationContext {
  config: Policy;
  policyVersion: string;
  /** The decision clock: wall time live, the event's time in replay. */
  now: Date;
  trigger: Trigger;
  decisionId: string;
  /** What earlier evaluations of this key left (deadline, notices, reviews); none for a key never seen. */
  history?: KeyHistory | null;
  /** Approvals recorded for this key (active or not: only active ones count). */
  approvals?: readonly Approval[];
  /** The key (or, with `candidates`, one of the user's keys) was found leaked: LEAKED, critical. */
  leak?: LeakEvidence | null;
  /**
   * Last use of the key and start of usage tracking (UNUSED with config.maxIdleDays); null: not tracked, or no
   * use of the account ever recorded.
   */
  usage?: KeyUsage | null;
}

/** Where a leak was found, for violation details and notices (no key material: only its fingerprint). */
export function describeLeak(leak: LeakEvidence): string {
  return `${whereFound(leak)}; key ${leak.redacted}, fingerprint ${leak.fingerprint}`;
}

/** Where a leak was found, in words: a log event, or the file a `keyguard scan` report names (and how many more). */
export function whereFound(leak: Pick<LeakEvidence, 'location' | 'report'>): string {
  const l = leak.location;
  if (!l.file) {
    return (
      `log group ${l.logGroup}, stream ${l.logStream}, event ${l.logEventId} at ${l.timestamp} ` +
      `(line ${l.line}, column ${l.column})`
    );
  }
  const more = (leak.report?.locationCount ?? 1) - 1;
  return (
    `file ${l.file.path}${l.file.commit ? ` (commit ${l.file.commit.slice(0, 12)})` : ''} ` +
    `(line ${l.line}, column ${l.column})${more > 0 ? ` and ${more} more place${more === 1 ? '' : 's'}` : ''}, ` +
    `reported by keyguard scan at ${l.timestamp} (event ${l.logEventId})`
  );
}

function leakViolations(
  key: KeySnapshot,
  leak: LeakEvidence | null | undefined,
  config: Policy,
): Violation[] {
  if (!leak) return [];
  const which =
    leak.candidates && leak.candidates.length > 1
      ? `a Bedrock API key of user ${key.userName} was found in ${describeLeak(leak)}; it is one of ${leak.candidates.join(', ')} and keyguard cannot tell which, so none was deactivated automatically`
      : `the key was found in ${describeLeak(leak)}`;
  // A string Bedrock rejected is not a leak of this key (the leak function records it apart, as forged or dead).
  const rejected = leak.verification?.result === 'REJECTED';
  return [
    {
      code: 'LEAKED',
      severity: rejected ? 'medium' : 'critical',
      detail: `${which}; ${describeVerification(leak, config)}`,
    },
  ];
}

export function isNeverExpiring(expiresAt: string | null): boolean {
  if (expiresAt === null) return true;
  return new Date(expiresAt).getUTCFullYear() >= NEVER_EXPIRES_YEAR;
}

function tagValue(tags: Record<string, string>, key: string): string | null {
  const v = tags[key];
  return v !== undefined && v.trim().length > 0 ? v.trim() : null;
}

/** Owner tag, else the key's creator, else the configured fallback (source recorded for the audit). */
export function resolveOwner(key: KeySnapshot, config: Policy): Owner {
  const tagged = tagValue(key.userTags, config.tags.owner);
  // A tag value is free text (256 chars: a pasted key fits); it is copied into decisions, notices and logs.
  if (tagged) return { value: redactSecrets(tagged), source: 'tag' };
  if (key.creator) return { value: key.creator, source: 'creator' };
  return { value: config.fallbackOwner, source: 'fallback' };
}

function lifetimeViolations(key: KeySnapshot, config: Policy, now: Date): Violation[] {
  if (isNeverExpiring(key.expiresAt)) {
    return [
      {
        code: 'NEVER_EXPIRES',
        severity: 'high',
        detail:
          key.expiresAt === null
            ? 'the key has no expiration date'
            : `the key expires ${key.expiresAt.slice(0, 10)}, which IAM uses to mean "never"`,
      },
    ];
  }
  const expires = Date.parse(key.expiresAt as string);
  const start = key.createdAt ? Date.parse(key.createdAt) : now.getTime();
  const lifetimeDays = (expires - start) / DAY_MS;
  const out: Violation[] = [];
  if (lifetimeDays > config.maxAgeDays) {
    out.push({
      code: 'EXCEEDS_MAX_AGE',
      severity: 'medium',
      detail: `lifetime is ${Math.ceil(lifetimeDays)} days; policy allows at most ${config.maxAgeDays}`,
    });
  }
  const daysLeft = (expires - now.getTime()) / DAY_MS;
  const warnFrom = Math.max(0, ...config.expiryWarningDays);
  if (daysLeft > 0 && daysLeft <= warnFrom) {
    out.push({
      code: 'EXPIRING_SOON',
      severity: 'low',
      detail: `the key expires ${key.expiresAt} (in ${Math.ceil(daysLeft)} day(s)): create its replacement`,
    });
  }
  return out;
}

function tagViolations(key: KeySnapshot, config: Policy): Violation[] {
  const out: Violation[] = [];
  const t = config.tags;
  if (!tagValue(key.userTags, t.owner)) {
    out.push({
      code: 'MISSING_OWNER',
      severity: 'medium',
      detail: `user ${key.userName} has no "${t.owner}" tag`,
    });
  }
  if (!tagValue(key.userTags, t.purpose)) {
    out.push({
      code: 'MISSING_PURPOSE',
      severity: 'low',
      detail: `user ${key.userName} has no "${t.purpose}" tag`,
    });
  }
  const cadence = tagValue(key.userTags, t.reviewCadence);
  if (!cadence) {
    out.push({
      code: 'MISSING_REVIEW_CADENCE',
      severity: 'low',
      detail: `user ${key.userName} has no "${t.reviewCadence}" tag`,
    });
  } else if (parseCadenceDays(cadence) === null) {
    out.push({
      code: 'MISSING_REVIEW_CADENCE',
      severity: 'low',
      detail: `the "${t.reviewCadence}" tag of user ${key.userName} is ${JSON.stringify(redactSecrets(cadence))}, not a cadence such as 90d, 12w, 6m or 1y`,
    });
  }
  return out;
}

function reviewViolations(key: KeySnapshot, config: Policy, history: KeyHistory, now: Date): Violation[] {
  const cadence = tagValue(key.userTags, config.tags.reviewCadence);
  const days = cadence ? parseCadenceDays(cadence) : null;
  if (days === null) return [];
  const due = reviewDueAt(days, history.lastReviewAt, key.createdAt);
  if (!due || now.getTime() < due.getTime()) return [];
  return [
    {
      code: 'REVIEW_OVERDUE',
      severity: 'medium',
      detail: `a review was due ${due.toISOString()} (every ${days} days; last review ${history.lastReviewAt ?? 'never'})`,
    },
  ];
}

function accessViolations(key: KeySnapshot): Violation[] {
  const out: Violation[] = [];
  const findings = key.permissions ?? [];
  if (findings.length > 0) {
    const severity: Severity = findings.some((f) => f.severity === 'high') ? 'high' : 'low';
    out.push({
      code: 'BROAD_PERMISSIONS',
      severity,
      detail: `user ${key.userName}: ${findings.map((f) => `${f.reason}${f.via === 'user' ? '' : ` (via ${f.via})`}`).join('; ')}`,
    });
  }
  const other = key.otherCredentials;
  if (other && (other.activeAccessKeys > 0 || other.consolePassword)) {
    const what = [
      other.activeAccessKeys > 0 ? `${other.activeAccessKeys} active access key(s)` : null,
      other.consolePassword ? 'a console password' : null,
    ].filter((x): x is string => x !== null);
    out.push({
      code: 'USER_HAS_OTHER_CREDENTIALS',
      severity: 'high',
      detail: `user ${key.userName} also has ${what.join(' and ')}: whoever holds them can mint keys or escalate`,
    });
  }
  return out;
}

/**
 * UNUSED: an Active key nobody has used for more than `maxIdleDays` days is standing access that only an
 * attacker may still want; the owner is asked to delete it (or to get an approval, e.g. for a yearly job).
 *
 * Idle since = the latest of the last use, the key's creation and the start of usage tracking (the account's
 * first recorded use of any Bedrock API key). Usually that is simply the last use, or, for a key never seen
 * used, `max(createdAt, trackingSince)`. Taking the latest of all three also guards two edges that would
 * otherwise call a live key unused:
 * - idleness is never measured from before tracking started: a 400-day-old key used daily has no use on
 *   record before the first use event arrives, and must not be UNUSED then;
 * - a use recorded before the key existed was not this key's (`lastUsedFor` may return the user's
 *   unattributed record, left by an older key of the same user), so a fresh key is measured from its creation.
 * Exactly `maxIdleDays` idle is allowed; one millisecond more is not. A use in the future (clock skew) is
 * simply not idle. An unparseable tracking start gives no verdict: no UNUSED rather than a guess.
 *
 * Not evaluated without usage (`usage` absent or null: the driver does not track usage, i.e. `usage.regions`
 * is empty, or no use of the account was ever recorded, so "unused" cannot be told from "not tracked": use
 * events may not be arriving at all), with `maxIdleDays` null, or on a key that is not Active (it cannot be used, so idleness says
 * nothing). Medium and not immediate: it goes through the grace period and staged notices like
 * MISSING_OWNER, so in enforce mode the key is deactivated only after the grace deadline, and a single use
 * before then resolves it. Approvals may cover it.
 */
function unusedViolations(
  key: KeySnapshot,
  config: Policy,
  usage: KeyUsage | null | undefined,
  now: Date,
): Violation[] {
  const maxIdleDays = config.maxIdleDays;
  if (!usage || maxIdleDays === null || key.status !== 'Active') return [];
  const trackingSince = Date.parse(usage.trackingSince);
  if (Number.isNaN(trackingSince)) return [];
  const lastUsed = usage.lastUsedAt === null ? Number.NaN : Date.parse(usage.lastUsedAt);
  const created = key.createdAt === null ? Number.NaN : Date.parse(key.createdAt);
  const idleSince = Math.max(trackingSince, ...[lastUsed, created].filter((t) => !Number.isNaN(t)));
  const idleMs = now.getTime() - idleSince;
  if (idleMs <= maxIdleDays * DAY_MS) return [];
  const idleDays = Math.floor(idleMs / DAY_MS);
  const hasUse = usage.lastUsedAt !== null && !Number.isNaN(lastUsed);
  let since: string;
  if (idleSince === lastUsed) since = `last used ${usage.lastUsedAt}`;
  else if (idleSince === created) {
    since = hasUse
      ? `not used since it was created ${key.createdAt} (the last use on record, ${usage.lastUsedAt}, predates it)`
      : `never used since it was created ${key.createdAt} (usage tracked since ${usage.trackingSince})`;
  } else {
    since = hasUse
      ? `not used since usage tracking started ${usage.trackingSince} (last use on record ${usage.lastUsedAt})`
      : `never used since ${usage.trackingSince} (when usage tracking started)`;
  }
  return [
    {
      code: 'UNUSED',
      severity: 'medium',
      detail:
        `the key was ${since}: idle ${idleDays} days; policy allows at most ${maxIdleDays} idle days ` +
        '(delete the key if nothing needs it)',
    },
  ];
}

/**
 * Whether an approval covers a violation code. `ALL` covers every code except LEAKED: a leaked key must be
 * replaced, so keeping it alive takes an approval that names the leak explicitly.
 */
export function coversViolation(a: Approval, code: ViolationCode): boolean {
  return a.covers === 'ALL' ? code !== 'LEAKED' : a.covers.includes(code);
}

/** Splits violations into those acted on and those an active approval covers. */
function applyApprovals(
  violations: Violation[],
  approvals: readonly Approval[],
  now: Date,
): { violations: Violation[]; waived: WaivedViolation[] } {
  const active = approvals.filter((a) => isApprovalActive(a, now));
  const kept: Violation[] = [];
  const waived: WaivedViolation[] = [];
  for (const v of violations) {
    const by = active.find((a) => coversViolation(a, v.code));
    if (by) waived.push({ ...v, approvalId: by.approvalId });
    else kept.push(v);
  }
  return { violations: kept, waived };
}

/**
 * Evaluates one long-term key against the policy. Pure: the same snapshot, config and clock always give
 * the same decision. `applied` is always false here; only the enforcer may set it after IAM changed.
 */
export function evaluate(key: KeySnapshot, ctx: EvaluationContext): Decision {
  const { config, now } = ctx;
  const { violations, waived, action, deadline, reason } = decide(key, ctx);
  const leak = leakOf(ctx);
  // One object literal in the field order of design.md (spreading a base object and adding fields is several
  // times slower on Node 20: see bench/).
  return {
    decisionId: ctx.decisionId,
    decidedAt: now.toISOString(),
    keyId: key.keyId,
    userName: key.userName,
    accountId: key.accountId,
    keyType: 'LONG_TERM',
    status: key.status,
    trigger: ctx.trigger,
    createdAt: key.createdAt,
    expiresAt: key.expiresAt,
    neverExpires: isNeverExpiring(key.expiresAt),
    owner: resolveOwner(key, config),
    violations,
    action,
    applied: false,
    mode: config.mode,
    deadline,
    policyVersion: ctx.policyVersion,
    ...(waived.length > 0 ? { waived } : {}),
    ...(reason ? { reason } : {}),
    ...(leak ? { leak } : {}),
  };
}

/** This trigger's leak, else one found earlier: a leaked key stays leaked. */
function leakOf(ctx: EvaluationContext): LeakEvidence | null {
  return ctx.leak ?? ctx.history?.leak ?? null;
}

interface Outcome {
  violations: Violation[];
  waived: WaivedViolation[];
  action: Action;
  deadline: string | null;
  reason: string | null;
}

function decide(key: KeySnapshot, ctx: EvaluationContext): Outcome {
  const { config, now } = ctx;
  const history = ctx.history ?? EMPTY_HISTORY;
  // A deleted key has nothing left to govern; the decision records that it is gone.
  if (key.status === 'Deleted')
    return { violations: [], waived: [], action: 'ALLOW', deadline: null, reason: null };

  const found: Violation[] = [];
  if (!config.allowLongTermKeys) {
    found.push({
      code: 'LONG_TERM_NOT_ALLOWED',
      severity: 'high',
      detail: 'policy allows no long-term Bedrock API keys (allowLongTermKeys is false): use short-term keys',
    });
  }
  if (history.deactivatedByUs && key.status === 'Active') {
    found.push({
      code: 'REACTIVATED_WITHOUT_APPROVAL',
      severity: 'critical',
      detail: 'the key was deactivated by keyguard and is Active again, with no approval',
    });
  }
  found.push(
    ...leakViolations(key, leakOf(ctx), config),
    ...lifetimeViolations(key, config, now),
    ...tagViolations(key, config),
    ...reviewViolations(key, config, history, now),
    ...accessViolations(key),
    ...unusedViolations(key, config, ctx.usage, now),
  );
  const { violations, waived } = applyApprovals(found, ctx.approvals ?? [], now);

  if (key.status !== 'Active') {
    // An inactive or expired key cannot be used: its violations are recorded, nothing needs doing.
    // (This is also what our own deactivation's UpdateServiceSpecificCredential event evaluates to.)
    return { violations, waived, action: 'ALLOW', deadline: null, reason: null };
  }
  // A leak that names several candidate keys must not deactivate a key that may not be the leaked one; nor may a
  // string that is not known to be a working key (the alias is public: only the secret proves a leak). Such a
  // LEAKED is notified once, and a person decides.
  const leak = leakOf(ctx);
  const uncertainLeak =
    (leak?.candidates?.length ?? 0) > 1 ||
    (!leakMayDeactivate(ctx.leak, config) && !leakMayDeactivate(ctx.history?.leak, config));
  if (violations.some((v) => IMMEDIATE_CODES.includes(v.code) && !(uncertainLeak && v.code === 'LEAKED'))) {
    return { violations, waived, action: 'DEACTIVATE', deadline: null, reason: null };
  }
  // Nor does a grace deadline: an uncertain leak is notified once, and a person picks the key.
  const escalating = violations.filter(
    (v) => !INFORMATIONAL_CODES.includes(v.code) && !(uncertainLeak && v.code === 'LEAKED'),
  );
  if (escalating.length > 0) {
    // One grace period per key: set when it first had an escalating violation, kept while any remains
    // (fixing part of it, or adding another, neither extends nor shortens it).
    // Only a deadline set by an earlier evaluation can pass: the owner always hears before anything is done.
    const deadline =
      history.deadline ?? new Date(now.getTime() + config.gracePeriodHours * HOUR_MS).toISOString();
    if (history.deadline !== null && now.getTime() >= Date.parse(deadline)) {
      return {
        violations,
        waived,
        action: 'DEACTIVATE',
        deadline,
        reason: `the grace deadline ${deadline} passed with ${escalating.map((v) => v.code).join(', ')} unresolved`,
      };
    }
    return { violations, waived, action: 'NOTIFY', deadline, reason: null };
  }
  if (violations.length > 0) return { violations, waived, action: 'NOTIFY', deadline: null, reason: null };
  return { violations, waived, action: 'ALLOW', deadline: null, reason: null };
}
