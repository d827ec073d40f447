import type { Policy } from '../shared/config';
import { describeLeak, isNeverExpiring } from './evaluate';
import { describeVerification, verificationNote } from './leak-verification';
import type { ShortTermFacts } from './leaks';
import type { KeyMetadata } from './pipeline';
import type { Decision, LeakEvidence, Owner, Trigger, Violation } from './types';

/**
 * The leak decisions that do not go through evaluate(): a found string Bedrock rejected (about a long-term key's
 * user), and a leaked short-term key (no IAM credential to evaluate). Both are NOTIFY, never an action. Pure.
 * (A verified or unverified long-term leak is evaluated like any key: evaluate.ts, LEAKED.)
 */

export interface RejectedLeakInput {
  decisionId: string;
  now: Date;
  accountId: string;
  userName: string;
  /** The key the string named (one of the user's keys, as the finding was matched). */
  meta: KeyMetadata;
  owner: Owner;
  trigger: Trigger;
  leak: LeakEvidence;
  /** Where the leak was found, in words (evaluate's describeLeak). */
  where: string;
  config: Policy;
  policyVersion: string;
}

/**
 * The decision on a found string that Bedrock rejected: NOTIFY, never an action, about this finding only (the
 * key's other violations are the sweep's business), and nothing remembered on the key, so a later evaluation
 * does not inherit a leak that was not one.
 */
export function rejectedLeakDecision(i: RejectedLeakInput): Decision {
  const candidates =
    i.leak.candidates && i.leak.candidates.length > 1 ? ` (one of ${i.leak.candidates.join(', ')})` : '';
  const others = (i.leak.sightings?.logEvents ?? 1) - 1;
  const elsewhere = others > 0 ? ` and in ${others} other log events of the batch` : '';
  return notifyOnlyLeakDecision(i, {
    code: 'LEAKED',
    severity: 'medium',
    detail:
      `a string shaped as a Bedrock API key of user ${i.userName}${candidates} was found in ${i.where}${elsewhere}; ` +
      `${describeVerification(i.leak, i.config)}. It is forged (the user name is public), or a key that is ` +
      'inactive, expired or deleted; nothing was deactivated',
  });
}

/**
 * A leak decision that only tells (NOTIFY, nothing applied, no deadline, nothing remembered on the key), with the
 * key's metadata as IAM lists it and the one LEAKED violation given.
 */
function notifyOnlyLeakDecision(i: RejectedLeakInput, violation: Violation): Decision {
  return {
    decisionId: i.decisionId,
    decidedAt: i.now.toISOString(),
    keyId: i.meta.keyId,
    userName: i.userName,
    accountId: i.accountId,
    keyType: 'LONG_TERM',
    status: i.meta.status,
    trigger: i.trigger,
    createdAt: i.meta.createdAt,
    expiresAt: i.meta.expiresAt,
    neverExpires: isNeverExpiring(i.meta.expiresAt),
    owner: i.owner,
    violations: [violation],
    action: 'NOTIFY',
    applied: false,
    mode: i.config.mode,
    deadline: null,
    policyVersion: i.policyVersion,
    notice: 'first',
    leak: i.leak,
  };
}

export interface LeakGroupInput extends Omit<RejectedLeakInput, 'leak'> {
  /** REJECTED: every string was rejected. UNVERIFIED: the user's unverified strings past the per-user bound. */
  result: 'REJECTED' | 'UNVERIFIED';
  /** The first string's evidence, with `sightings` (counts and samples) and a summarised verification. */
  leak: LeakEvidence & { sightings: NonNullable<LeakEvidence['sightings']> };
  /** How many unverified strings of this user were decided one by one before this group. */
  decidedOneByOne: number;
}

/**
 * One decision for many strings naming one user in one batch (bounded work per batch: domain/leak-plan.ts): NOTIFY,
 * never an action, nothing remembered on the key. REJECTED: medium, as rejectedLeakDecision says for one string.
 * UNVERIFIED: critical, since one of them may be the working key: a person checks (the sample of fingerprints
 * and log event ids says where to look).
 */
export function leakGroupDecision(i: LeakGroupInput): Decision {
  const s = i.leak.sightings;
  const candidates =
    i.leak.candidates && i.leak.candidates.length > 1 ? ` (one of ${i.leak.candidates.join(', ')})` : '';
  const sample =
    s.strings > s.fingerprints.length ? ` (fingerprints of the first ${s.fingerprints.length} recorded)` : '';
  const found =
    `${s.strings} distinct strings shaped as Bedrock API keys of user ${i.userName}${candidates} were found in ` +
    `${s.logEvents} log events of ${i.where}${sample}`;
  const detail =
    i.result === 'REJECTED'
      ? `${found}; Bedrock rejected each of them: none is a working key (${i.leak.verification?.reason ?? 'rejected'}). ` +
        'They are forged (the user name is public), or keys that are inactive, expired or deleted; nothing was deactivated'
      : `${found} beyond the ${i.decidedOneByOne} decided one by one; they could not be verified ` +
        `(${i.leak.verification?.reason ?? 'no check made'}). One of them may be a working key: check the log events ` +
        'and deactivate the key if it leaked; nothing was deactivated automatically';
  return notifyOnlyLeakDecision(i, {
    code: 'LEAKED',
    severity: i.result === 'REJECTED' ? 'medium' : 'critical',
    detail,
  });
}

export interface ShortTermLeakInput {
  decisionId: string;
  now: Date;
  /** The governed account (a short-term key does not say which account signed it). */
  accountId: string;
  facts: ShortTermFacts;
  /** The principal that signed it (CloudTrail), when found. */
  issuer: string | null;
  trigger: Trigger;
  /** The evidence, with its issuer and verification. */
  leak: LeakEvidence;
  /** Whether this decision sends the notice (false: a rejected string already notified in this batch). */
  notify: boolean;
  config: Policy;
  policyVersion: string;
}

/**
 * A leaked short-term key: nothing to deactivate (it is a presigned request, not an IAM credential), a notice to
 * its signer saying how to revoke it, critical; or, when Bedrock rejected the string, medium and saying that
 * nothing needs revoking (a forged string must not get a role's sessions revoked).
 */
export function shortTermLeakDecision(i: ShortTermLeakInput): Decision {
  const { facts, issuer, leak } = i;
  const rejected = leak.verification?.result === 'REJECTED';
  const signer = issuer ?? 'an unknown principal';
  const note = leak.verification ? verificationNote(leak.verification) : 'it was not verified';
  return {
    decisionId: i.decisionId,
    decidedAt: i.now.toISOString(),
    keyId: facts.accessKeyId,
    userName: issuer ? (issuer.split(':').pop() ?? issuer) : 'unknown',
    accountId: i.accountId,
    keyType: 'SHORT_TERM',
    status: 'Active',
    trigger: i.trigger,
    createdAt: facts.signedAt,
    expiresAt: facts.expiresAt,
    neverExpires: false,
    owner: issuer
      ? { value: issuer, source: 'creator' }
      : { value: i.config.fallbackOwner, source: 'fallback' },
    violations: [
      {
        code: 'LEAKED',
        severity: rejected ? 'medium' : 'critical',
        detail: rejected
          ? `a string shaped as a short-term key signed by ${signer} with access key id ${facts.accessKeyId} ` +
            `(region ${facts.region}) was found in ${describeLeak(leak)}; ${note}. It is forged, or a key that no ` +
            "longer works (its signer's session or access key revoked); nothing needs revoking"
          : `a short-term key signed by ${signer} with access key id ${facts.accessKeyId} (region ${facts.region}) ` +
            `was found in ${describeLeak(leak)}; it works until ${facts.expiresAt}; ${note}`,
      },
    ],
    action: 'NOTIFY',
    applied: false,
    mode: i.config.mode,
    deadline: null,
    policyVersion: i.policyVersion,
    notice: i.notify ? 'first' : null,
    leak,
  };
}
