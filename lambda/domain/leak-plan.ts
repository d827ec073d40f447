import type { LongTermFacts } from './leaks';
import type { KeyMetadata } from './pipeline';
import type { LeakSightings, LeakVerificationResult } from './types';

/**
 * How the leak function spends one batch, so that a real leak in it is always decided whatever else the batch
 * holds (issue 10, item 2). Anyone who can write to a subscribed log group can fill a batch with thousands of
 * DIFFERENT forged keys naming a real user (a 256 KiB message holds about 2,000); each used to cost the whole
 * pipeline (IAM, the audit table, a notice), one after another, past the function's timeout. Now:
 *
 * 1. Every distinct string is verified first (one read-only call each), VERIFICATION_CONCURRENCY at a time, round
 *    robin over the users (and access key ids) they name, within the verification budget: a flood naming one
 *    user does not hold back the check of another user's key.
 * 2. Then the strings are decided in this order: VERIFIED ones (always, one decision per string), UNVERIFIED
 *    ones one by one up to MAX_UNVERIFIED_PER_SUBJECT per user and MAX_UNVERIFIED_PER_BATCH in all, then
 *    GROUPS: per user, one decision for all
 *    its REJECTED strings and one for its UNVERIFIED strings past that bound (counts and a bounded sample of
 *    fingerprints and log event ids: LeakSightings). At most MAX_GROUPS group decisions per batch, and
 *    MAX_REJECTED_SHORT_TERM rejected short-term strings decided one by one (each needs CloudTrail lookups).
 * 3. What is over these bounds, or left when the function's remaining time runs short (everything but the
 *    VERIFIED strings waits for time), is not decided: it is logged with counts and a sample of fingerprints
 *    and counted in a metric, never dropped silently, and the batch does not fail because of it.
 *
 * So the pipeline runs at most once per VERIFIED string (only a working key is one: an attacker cannot add
 * any), plus MAX_UNVERIFIED_PER_BATCH + MAX_REJECTED_SHORT_TERM + MAX_GROUPS decisions: the work of a batch
 * does not grow with the number of forged strings in it. Only the checks do (one call each, concurrent and
 * within the budget). Pure: no I/O.
 */

/** Checks in flight at once. */
export const VERIFICATION_CONCURRENCY = 16;
/** Distinct UNVERIFIED strings of one user (or access key id) decided one by one; the rest are grouped. */
export const MAX_UNVERIFIED_PER_SUBJECT = 3;
/** UNVERIFIED strings decided one by one per batch, all subjects together; the rest are grouped per user. */
export const MAX_UNVERIFIED_PER_BATCH = 10;
/** Rejected short-term strings decided one by one per batch (each costs CloudTrail lookups); the rest logged. */
export const MAX_REJECTED_SHORT_TERM = 3;
/** Group decisions (all REJECTED or excess UNVERIFIED strings of one user) per batch; the rest logged. */
export const MAX_GROUPS = 10;
/** Fingerprints and log event ids kept in a group decision or a log line (the counts are complete). */
export const MAX_SAMPLE = 20;

export interface PlanCandidate {
  fingerprint: string;
  kind: 'LONG_TERM' | 'SHORT_TERM';
  /** What the string names: `<account>/<user>` (long-term) or the access key id (short-term). */
  subject: string;
  /** Rank of its first occurrence in the batch. */
  order: number;
}

/** The order of the checks: round robin over subjects, each subject's strings in batch order. */
export function verificationOrder<C extends PlanCandidate>(candidates: readonly C[]): C[] {
  const bySubject = new Map<string, C[]>();
  for (const c of [...candidates].sort((a, b) => a.order - b.order)) {
    const list = bySubject.get(c.subject);
    if (list) list.push(c);
    else bySubject.set(c.subject, [c]);
  }
  const queues = [...bySubject.values()];
  const out: C[] = [];
  for (let round = 0; out.length < candidates.length; round++) {
    for (const q of queues) {
      const c = q[round];
      if (c) out.push(c);
    }
  }
  return out;
}

export interface LeakGroup<C> {
  subject: string;
  result: 'REJECTED' | 'UNVERIFIED';
  /** In batch order. */
  candidates: C[];
  /** Strings of this subject with the same result decided one by one before the group (UNVERIFIED only). */
  oneByOne: number;
}

export interface BatchPlan<C> {
  /** VERIFIED strings: always decided, first. */
  verified: C[];
  /** Then these, one by one (unverified up to the bound per subject, a few rejected short-term strings). */
  individual: C[];
  /** Then these, one decision per group (unverified groups before rejected ones). */
  groups: LeakGroup<C>[];
  /** Over the bounds: not decided, logged and counted. */
  overflow: C[];
}

/** Splits a batch's verified strings as described above. */
export function planBatch<C extends PlanCandidate>(
  candidates: readonly C[],
  resultOf: (c: C) => LeakVerificationResult,
): BatchPlan<C> {
  const sorted = [...candidates].sort((a, b) => a.order - b.order);
  const plan: BatchPlan<C> = { verified: [], individual: [], groups: [], overflow: [] };
  const unverifiedOf = new Map<string, number>();
  const oneByOneOf = new Map<string, number>();
  let unverifiedOneByOne = 0;
  let rejectedShort = 0;
  const unverifiedGroups = new Map<string, LeakGroup<C>>();
  const rejectedGroups = new Map<string, LeakGroup<C>>();
  const overflowShort: C[] = [];
  for (const c of sorted) {
    const result = resultOf(c);
    if (result === 'VERIFIED') {
      plan.verified.push(c);
    } else if (result === 'UNVERIFIED') {
      const seen = unverifiedOf.get(c.subject) ?? 0;
      unverifiedOf.set(c.subject, seen + 1);
      if (seen < MAX_UNVERIFIED_PER_SUBJECT && unverifiedOneByOne < MAX_UNVERIFIED_PER_BATCH) {
        plan.individual.push(c);
        unverifiedOneByOne += 1;
        oneByOneOf.set(c.subject, (oneByOneOf.get(c.subject) ?? 0) + 1);
      } else if (c.kind === 'SHORT_TERM') overflowShort.push(c);
      else addTo(unverifiedGroups, c, 'UNVERIFIED');
    } else if (c.kind === 'SHORT_TERM') {
      if (rejectedShort < MAX_REJECTED_SHORT_TERM) plan.individual.push(c);
      else overflowShort.push(c);
      rejectedShort += 1;
    } else {
      addTo(rejectedGroups, c, 'REJECTED');
    }
  }
  for (const g of unverifiedGroups.values()) g.oneByOne = oneByOneOf.get(g.subject) ?? 0;
  const groups = [...unverifiedGroups.values(), ...rejectedGroups.values()];
  plan.groups = groups.slice(0, MAX_GROUPS);
  plan.overflow = [...overflowShort, ...groups.slice(MAX_GROUPS).flatMap((g) => g.candidates)].sort(
    (a, b) => a.order - b.order,
  );
  return plan;
}

function addTo<C extends PlanCandidate>(
  groups: Map<string, LeakGroup<C>>,
  c: C,
  result: LeakGroup<C>['result'],
): void {
  const g = groups.get(c.subject);
  if (g) g.candidates.push(c);
  else groups.set(c.subject, { subject: c.subject, result, candidates: [c], oneByOne: 0 });
}

/** One string seen in one log event. */
export interface Sighting {
  fingerprint: string;
  logEventId: string;
}

/** Counts and a bounded sample (first ones, in batch order) of the strings and log events of some sightings. */
export function sightingsOf(sightings: readonly Sighting[]): LeakSightings {
  const fingerprints = new Set<string>();
  const logEventIds = new Set<string>();
  for (const s of sightings) {
    fingerprints.add(s.fingerprint);
    logEventIds.add(s.logEventId);
  }
  return {
    strings: fingerprints.size,
    logEvents: logEventIds.size,
    fingerprints: [...fingerprints].slice(0, MAX_SAMPLE),
    logEventIds: [...logEventIds].slice(0, MAX_SAMPLE),
  };
}

/** What is logged about strings that were not decided: counts by result and subject, a sample of fingerprints. */
export interface NotDecided {
  strings: number;
  findings: number;
  byResult: Partial<Record<LeakVerificationResult, number>>;
  subjects: number;
  fingerprints: string[];
}

export function notDecided(
  items: ReadonlyArray<{
    fingerprint: string;
    subject: string;
    result: LeakVerificationResult;
    findings: number;
  }>,
): NotDecided {
  const byResult: NotDecided['byResult'] = {};
  const subjects = new Set<string>();
  let findings = 0;
  for (const i of items) {
    byResult[i.result] = (byResult[i.result] ?? 0) + 1;
    subjects.add(i.subject);
    findings += i.findings;
  }
  return {
    strings: items.length,
    findings,
    byResult,
    subjects: subjects.size,
    fingerprints: items.slice(0, MAX_SAMPLE).map((i) => i.fingerprint),
  };
}

/**
 * The keys a leaked long-term key may be: it names its user and account, not its key id. The key decided on: the
 * user's only key; else the one whose alias matches; else the user's only Active key. Otherwise (`certain` false)
 * every candidate gets a critical notice naming them all, and none is deactivated (keyguard will not guess).
 */
export function leakTargets(
  keys: KeyMetadata[],
  facts: LongTermFacts,
): { targets: KeyMetadata[]; certain: boolean } {
  if (keys.length === 1) return { targets: keys, certain: true };
  const byAlias = keys.filter((k) => k.alias === facts.alias);
  if (byAlias.length === 1) return { targets: byAlias, certain: true };
  const active = keys.filter((k) => k.status === 'Active');
  if (active.length === 1) return { targets: active, certain: true };
  return { targets: active.length > 1 ? active : keys, certain: false };
}
