import type { Config } from '../shared/config';
import { redactSecrets } from '../shared/redact';
import { DAY_MS, HOUR_MS } from './dates';
import type { Action, Decision, KeySnapshot, Owner, Trigger, Violation } from './types';

/** IAM's "never expires" is either no ExpirationDate or one about a century out; both count. */
export const NEVER_EXPIRES_YEAR = 2100;

export interface EvaluationContext {
  config: Config;
  policyVersion: string;
  /** The decision clock: wall time live, the event's time in replay. */
  now: Date;
  trigger: Trigger;
  decisionId: string;
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
export function resolveOwner(key: KeySnapshot, config: Config): Owner {
  const tagged = tagValue(key.userTags, config.tags.owner);
  // A tag value is free text (256 chars: a pasted key fits); it is copied into decisions, notices and logs.
  if (tagged) return { value: redactSecrets(tagged), source: 'tag' };
  if (key.creator) return { value: key.creator, source: 'creator' };
  return { value: config.fallbackOwner, source: 'fallback' };
}

function lifetimeViolations(key: KeySnapshot, config: Config, now: Date): Violation[] {
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
  if (lifetimeDays > config.maxAgeDays) {
    return [
      {
        code: 'EXCEEDS_MAX_AGE',
        severity: 'medium',
        detail: `lifetime is ${Math.ceil(lifetimeDays)} days; policy allows at most ${config.maxAgeDays}`,
      },
    ];
  }
  return [];
}

function tagViolations(key: KeySnapshot, config: Config): Violation[] {
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
  if (!tagValue(key.userTags, t.reviewCadence)) {
    out.push({
      code: 'MISSING_REVIEW_CADENCE',
      severity: 'low',
      detail: `user ${key.userName} has no "${t.reviewCadence}" tag`,
    });
  }
  return out;
}

/**
 * Evaluates one long-term key against the policy. Pure: the same snapshot, config and clock always give
 * the same decision. `applied` is always false here; only the enforcer may set it after IAM changed.
 */
export function evaluate(key: KeySnapshot, ctx: EvaluationContext): Decision {
  const { config, now } = ctx;
  const { violations, action, deadline } = decide(key, config, now);
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
  };
}

function decide(
  key: KeySnapshot,
  config: Config,
  now: Date,
): { violations: Violation[]; action: Action; deadline: string | null } {
  // A deleted key has nothing left to govern; the decision records that it is gone.
  if (key.status === 'Deleted') return { violations: [], action: 'ALLOW', deadline: null };

  const forbidden: Violation[] = config.allowLongTermKeys
    ? []
    : [
        {
          code: 'LONG_TERM_NOT_ALLOWED',
          severity: 'high',
          detail:
            'policy allows no long-term Bedrock API keys (allowLongTermKeys is false): use short-term keys',
        },
      ];
  const violations = [...forbidden, ...lifetimeViolations(key, config, now), ...tagViolations(key, config)];
  if (key.status !== 'Active') {
    // An inactive or expired key cannot be used: its violations are recorded, nothing needs doing.
    // (This is also what our own deactivation's UpdateServiceSpecificCredential event evaluates to.)
    return { violations, action: 'ALLOW', deadline: null };
  }
  if (violations.some((v) => v.code === 'NEVER_EXPIRES' || v.code === 'LONG_TERM_NOT_ALLOWED')) {
    return { violations, action: 'DEACTIVATE', deadline: null };
  }
  if (violations.length > 0) {
    const deadline = new Date(now.getTime() + config.gracePeriodHours * HOUR_MS).toISOString();
    return { violations, action: 'NOTIFY', deadline };
  }
  return { violations, action: 'ALLOW', deadline: null };
}
