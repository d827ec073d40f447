import type { KnownKey } from '../domain/pipeline';
import type { Decision, KeyStatus, Severity, Violation } from '../domain/types';
import { visible } from '../shared/visible-text';
import { type CliIO, EXIT_OK } from './io';

/**
 * `--fail-on <severity>` of `inventory`, `audit` and `replay`: exit 1 when a key still at risk has a violation at or
 * above the severity, so a pipeline can gate on posture as it gates on `keyguard scan`.
 *
 * - Severities are the ones each violation carries (set by `evaluate()`, shared/docs/design.md): LEAKED is critical
 *   (medium when the string is not a working key), REACTIVATED_WITHOUT_APPROVAL critical, NEVER_EXPIRES,
 *   LONG_TERM_NOT_ALLOWED and USER_HAS_OTHER_CREDENTIALS high, BROAD_PERMISSIONS high (low for a narrower grant),
 *   EXCEEDS_MAX_AGE, MISSING_OWNER, REVIEW_OVERDUE and UNUSED medium, MISSING_PURPOSE, MISSING_REVIEW_CADENCE and
 *   EXPIRING_SOON low. Waived violations (an active approval) never count.
 * - Only keys that can be used count: status Active, and not deactivated or deleted by the decision itself
 *   (an applied DEACTIVATE or DELETE). An inactive, expired or deleted key is no live risk (a reactivation is a
 *   new REACTIVATED_WITHOUT_APPROVAL decision, which counts again). A planned, not applied, deactivation (audit
 *   mode, replay) leaves the key Active: it counts.
 * - Each command says which state is current: the keys as read now (inventory), each key's latest decision in the
 *   window (audit), the store's state at the end of the run (replay).
 *
 * The posture never hides another exit code: bad usage or input (2) and unread accounts (3) win over it (1).
 */

/** A current violation at or above --fail-on (the same number as an unexpected failure, as `scan`'s findings). */
export const EXIT_POSTURE = 1;

export const SEVERITIES: readonly Severity[] = ['low', 'medium', 'high', 'critical'];
const RANK: Record<Severity, number> = { low: 1, medium: 2, high: 3, critical: 4 };

/** A bad --fail-on value; each command reports it as its own bad usage (exit 2). */
export class FailOnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FailOnError';
  }
}

/** The severity `--fail-on` names (case-insensitive), or undefined when the flag is absent. */
export function parseFailOn(value: string | undefined): Severity | undefined {
  if (value === undefined) return undefined;
  const s = value.trim().toLowerCase();
  const found = SEVERITIES.find((v) => v === s);
  if (!found) {
    throw new FailOnError(
      `--fail-on: got ${visible(JSON.stringify(value))}; allowed: ${SEVERITIES.join(', ')}`,
    );
  }
  return found;
}

/** What the posture needs of a key: its status and its (unwaived) violations. */
export interface PostureKey {
  status: KeyStatus;
  violations: readonly Violation[];
  /** From a decision: the deactivation or deletion it applied (the key is no longer usable). */
  action?: Decision['action'];
  applied?: boolean;
}

/** Whether a key is still usable (see the module comment). */
export function isLive(k: PostureKey): boolean {
  if (k.status !== 'Active') return false;
  return !(k.applied === true && (k.action === 'DEACTIVATE' || k.action === 'DELETE'));
}

/** Whether a live key has a violation at or above the threshold. */
export function failsAt(k: PostureKey, threshold: Severity): boolean {
  return isLive(k) && k.violations.some((v) => RANK[v.severity] >= RANK[threshold]);
}

/** Keys (live) with a violation at or above the threshold. */
export function countFailing(keys: Iterable<PostureKey>, threshold: Severity): number {
  let n = 0;
  for (const k of keys) if (failsAt(k, threshold)) n += 1;
  return n;
}

/** Each key's latest decision (by decidedAt, then decisionId; ties keep the later one given). */
export function latestPerKey(decisions: Iterable<Decision>): Decision[] {
  const latest = new Map<string, Decision>();
  for (const d of decisions) {
    const id = `${d.accountId}|${d.keyId}`;
    const prev = latest.get(id);
    if (
      !prev ||
      d.decidedAt > prev.decidedAt ||
      (d.decidedAt === prev.decidedAt && d.decisionId >= prev.decisionId)
    ) {
      latest.set(id, d);
    }
  }
  return [...latest.values()];
}

/** What the posture reads of a store: its keys and their last decisions (DynamoAuditLog). */
export interface KeyRecords {
  allKnownKeys(): Promise<KnownKey[]>;
  getDecision(accountId: string, keyId: string, decisionId: string): Promise<Decision | null>;
}

/**
 * Keys of a store whose state (the keys table: status, and its last decision's violations) fails the threshold:
 * the state at the end of a replay, this run's keys and the earlier runs' alike. Only the last decisions of live
 * keys with violations are read.
 */
export async function storeFailing(store: KeyRecords, threshold: Severity): Promise<number> {
  let n = 0;
  for (const k of await store.allKnownKeys()) {
    if (k.status !== 'Active' || (k.violationCodes !== undefined && k.violationCodes.length === 0)) continue;
    if (!k.lastDecisionId) continue;
    const d = await store.getDecision(k.accountId, k.keyId, k.lastDecisionId);
    if (d && failsAt({ ...d, status: k.status }, threshold)) n += 1;
  }
  return n;
}

/**
 * The exit code with the posture folded in: any code other than 0 is kept (2 bad usage or input, 3 unread
 * accounts, 1 failure), else 1 when `failing` keys are at or above the threshold. The reason goes to stderr as
 * one line whenever the threshold is met, also when another code wins.
 */
export function withPosture(
  code: number,
  threshold: Severity | undefined,
  failing: number,
  where: string,
  io: CliIO,
): number {
  if (threshold === undefined || failing === 0) return code;
  io.stderr.write(
    `keyguard: --fail-on ${threshold}: ${failing} key(s) with a current violation of severity ${threshold} or ` +
      `above (${where})\n`,
  );
  return code === EXIT_OK ? EXIT_POSTURE : code;
}
