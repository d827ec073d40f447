import type { Policy } from '../shared/config';
import { NEXT_DIGEST } from './owner-digest';
import {
  decideKey,
  decisionIdFor,
  type KeyDirectory,
  type KeyMetadata,
  type KeyStep,
  type KeyStepResult,
  type PipelineDeps,
} from './pipeline';
import {
  type Attribution,
  aggregateUses,
  attributeUse,
  deactivatedUseReason,
  mergeAggregates,
  type SubjectUsage,
  utcDay,
} from './usage';
import type { BearerUse, UsageAggregate, UseSubject } from './usage-types';

/**
 * Flow 3 (key usage) after parsing, shared by the `key-usage` function and `keyguard replay`: uses → attributed
 * to a key, a user or a principal through the key directory → aggregated per subject → one usage write per
 * subject → decisions only where a use matters to policy:
 * - a long-term key used while `allowLongTermKeys` is false (LONG_TERM_NOT_ALLOWED, recorded on change only);
 * - a key keyguard deactivated that is still being tried (one decision and notice per key per UTC day), or that
 *   works again (REACTIVATED_WITHOUT_APPROVAL, from the directory's state).
 * No AWS SDK here: the directory, the usage recorder and the decision ports are injected. The live function
 * passes IAM and DynamoDB adapters; replay passes the state rebuilt from the logs and an embedded store.
 */

/** Write side of the usage store: one call per batch (or replay chunk), one aggregate per subject. */
export interface UsageRecorder {
  recordUses(aggregates: ReadonlyArray<UsageAggregate>): Promise<void>;
}

export interface UsagePorts {
  /** The keys of each calling IAM user, as they are when the uses were made. */
  directory: KeyDirectory;
  /** Where the aggregates go; null records nothing (uses already counted by an earlier replay run). */
  recorder: UsageRecorder | null;
  /** decideKey's ports: audit, enforcer, notifier, approvals, facts, usage. */
  deps: PipelineDeps;
}

export interface UsageOptions {
  config: Policy;
  policyVersion: string;
  /** The evaluation time: the clock in the live function, the chunk's latest use in replay. */
  now: Date;
  /** `usage` live; `replay` offline (the decision ids differ, so the two never collide). */
  triggerKind: 'usage' | 'replay';
}

export type UsageCause = 'long-term-not-allowed' | 'deactivated-key-in-use' | 'reactivated-key-in-use';

export interface UsageStepResult {
  result: KeyStepResult;
  /** Why usage led to this decision. */
  cause: UsageCause;
}

export interface UsageOutcome {
  /** The aggregates written (or, with no recorder, that would have been), one per subject. */
  subjects: SubjectUsage[];
  decisions: UsageStepResult[];
}

/**
 * The part of a use that attribution reads: uses with the same identity are always attributed alike, so they can
 * be pre-aggregated (replay does, per chunk) before attribution without changing the result.
 */
export function identityOf(use: BearerUse): string {
  const p = use.principal;
  return [
    use.accountId,
    use.declaredKeyType ?? '-',
    p.type,
    p.userName ?? '-',
    p.sessionIssuerArn ?? p.arn ?? (p.accessKeyId ? `accessKeyId/${p.accessKeyId}` : 'unknown'),
  ].join('|');
}

/** Groups uses per identity (a pseudo-subject); attribution to real subjects happens in processUsage. */
export function groupUses(uses: ReadonlyArray<BearerUse>): SubjectUsage[] {
  return aggregateUses(uses, (u) => ({
    keyType: u.declaredKeyType ?? 'SHORT_TERM',
    subject: { kind: 'principal', principalArn: identityOf(u) },
  }));
}

function subjectId(accountId: string, s: UseSubject): string {
  switch (s.kind) {
    case 'key':
      return `${accountId}|key|${s.keyId}`;
    case 'user':
      return `${accountId}|user|${s.userName}`;
    case 'principal':
      return `${accountId}|principal|${s.principalArn}`;
  }
}

function isLater(a: BearerUse, b: BearerUse): boolean {
  return a.eventTime > b.eventTime || (a.eventTime === b.eventTime && a.eventId > b.eventId);
}

/**
 * Merges two aggregates of the same subject exactly as aggregateUses would have aggregated their uses together:
 * counters add, firstUsedAt is the earlier, lastUsedAt the later successful call, the latest call (and its
 * source IP and user agent) wins, regions and models are sorted and distinct.
 */
export function mergeUsage(a: SubjectUsage, b: SubjectUsage, attribution: Attribution): SubjectUsage {
  // Counters, sets and first/last use combine as the store combines them; the latest call is decided by time,
  // then event id (aggregateUses' order), not by the store's tie rule.
  const latest = isLater(b.latest, a.latest) ? b : a;
  return {
    aggregate: {
      ...mergeAggregates(a.aggregate, b.aggregate),
      accountId: a.aggregate.accountId,
      subject: attribution.subject,
      keyType: attribution.keyType,
      lastAttemptAt: latest.aggregate.lastAttemptAt,
      lastSourceIp: latest.aggregate.lastSourceIp,
      lastUserAgent: latest.aggregate.lastUserAgent,
    },
    latest: latest.latest,
    deniedCalls: a.deniedCalls + b.deniedCalls,
  };
}

/** Directory lookups are per account and user. */
function userRef(accountId: string, userName: string): string {
  return `${accountId}|${userName}`;
}

/** The Bedrock keys of each IAM user whose uses may be long-term (one directory listing per user). */
async function keysOfCallers(
  groups: ReadonlyArray<SubjectUsage>,
  directory: KeyDirectory,
): Promise<Map<string, KeyMetadata[]>> {
  const out = new Map<string, KeyMetadata[]>();
  for (const { latest: u } of groups) {
    const userName = u.principal.userName;
    if (u.principal.type !== 'IAMUser' || !userName || u.declaredKeyType === 'SHORT_TERM') continue;
    const ref = userRef(u.accountId, userName);
    if (!out.has(ref)) out.set(ref, await directory.listUserKeys(u.accountId, userName));
  }
  return out;
}

/** The decision steps a long-term subject's use calls for (none for most batches). */
async function stepsFor(
  s: SubjectUsage,
  keys: KeyMetadata[],
  deps: PipelineDeps,
  opts: UsageOptions,
): Promise<Array<[KeyStep, UsageCause]>> {
  const subject = s.aggregate.subject;
  if (subject.kind === 'principal') return [];
  const used = subject.kind === 'key' ? keys.filter((k) => k.keyId === subject.keyId) : keys;
  // A refused call credited to the user's only Active key may have been made with a sibling keyguard turned off.
  const maybeTried = s.deniedCalls > 0 ? keys.filter((k) => k.status !== 'Active' && !used.includes(k)) : [];
  const perEvent = decisionIdFor(opts.triggerKind, s.latest.eventTime, s.latest.eventId);
  const trigger: KeyStep['trigger'] = {
    kind: opts.triggerKind,
    eventId: s.latest.eventId,
    eventName: s.latest.eventName,
    eventTime: s.latest.eventTime,
  };
  const steps: Array<[KeyStep, UsageCause]> = [];
  for (const meta of [...used, ...maybeTried]) {
    const base = {
      accountId: s.aggregate.accountId,
      keyId: meta.keyId,
      userName: meta.userName,
      meta,
      trigger,
      // Only a critical alert (a reactivated key in use) is sent at once; the others wait for the owner's next
      // digest. A replay shows every notice as its own.
      ...(opts.triggerKind === 'usage' ? { digest: NEXT_DIGEST } : {}),
    };
    const known = await deps.audit.getKnownKey(base.accountId, meta.keyId);
    const deactivatedByUs = known?.history?.deactivatedByUs === true && known.status === 'Inactive';
    if (deactivatedByUs) {
      const reason = deactivatedUseReason(s);
      if (meta.status === 'Active') {
        // It works again: evaluate() raises REACTIVATED_WITHOUT_APPROVAL; decided per event, never folded into a day.
        steps.push([
          { ...base, decisionId: perEvent, record: 'always', alert: { reason } },
          'reactivated-key-in-use',
        ]);
      } else {
        // Still Inactive and still tried: one decision (and notice) per key per UTC day, whatever the batches.
        // The key's history remembers the day of its latest alert once the notice is sent; a batch of a day
        // already alerted (or older: a late or redelivered batch) decides nothing. The id is the latest
        // attempt's, time-ordered like every other decision of the key.
        const day = utcDay(s.latest.eventTime);
        if ((known.history?.inUseAlertDay ?? '') >= day) continue;
        steps.push([
          { ...base, decisionId: perEvent, record: 'always', alert: { reason, day } },
          'deactivated-key-in-use',
        ]);
      }
    } else if (!opts.config.allowLongTermKeys && used.includes(meta)) {
      // evaluate() raises LONG_TERM_NOT_ALLOWED; recorded only when it is news for this key.
      steps.push([{ ...base, decisionId: perEvent, record: 'on-change' }, 'long-term-not-allowed']);
    }
  }
  return steps;
}

/**
 * Runs pre-grouped uses (groupUses, or merged groups) through attribution → per-subject aggregates → the
 * recorder → decisions. Callers keep out the accounts they do not govern.
 */
export async function processUsageGroups(
  groups: ReadonlyArray<SubjectUsage>,
  ports: UsagePorts,
  opts: UsageOptions,
): Promise<UsageOutcome> {
  const keysByUser = await keysOfCallers(groups, ports.directory);
  const bySubject = new Map<string, SubjectUsage>();
  for (const g of groups) {
    const u = g.latest;
    const attribution = attributeUse(
      u,
      u.principal.userName ? (keysByUser.get(userRef(u.accountId, u.principal.userName)) ?? null) : null,
    );
    const id = subjectId(g.aggregate.accountId, attribution.subject);
    const current = bySubject.get(id);
    bySubject.set(
      id,
      current
        ? mergeUsage(current, g, attribution)
        : { ...g, aggregate: { ...g.aggregate, subject: attribution.subject, keyType: attribution.keyType } },
    );
  }
  const subjects = [...bySubject.values()];
  if (ports.recorder && subjects.length > 0)
    await ports.recorder.recordUses(subjects.map((s) => s.aggregate));

  const decisions: UsageStepResult[] = [];
  for (const s of subjects) {
    if (s.aggregate.keyType !== 'LONG_TERM' || s.aggregate.subject.kind === 'principal') continue;
    const keys = keysByUser.get(userRef(s.aggregate.accountId, s.aggregate.subject.userName)) ?? [];
    for (const [step, cause] of await stepsFor(s, keys, ports.deps, opts)) {
      const result = await decideKey(step, ports.deps, {
        config: opts.config,
        policyVersion: opts.policyVersion,
        now: opts.now,
      });
      if (result) decisions.push({ result, cause });
    }
  }
  return { subjects, decisions };
}

/** Runs one batch of uses (all of the governed account) through flow 3. */
export function processUses(
  uses: ReadonlyArray<BearerUse>,
  ports: UsagePorts,
  opts: UsageOptions,
): Promise<UsageOutcome> {
  return processUsageGroups(groupUses(uses), ports, opts);
}
