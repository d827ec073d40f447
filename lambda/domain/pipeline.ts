import { boundItem } from '../shared/bounded';
import type { Policy } from '../shared/config';
import type { KeyEvent } from './cloudtrail';
import { evaluate } from './evaluate';
import { isImmediateNotice, NEXT_DIGEST, type PendingNotice, pendingNoticeOf } from './owner-digest';
import { planNotice } from './staging';
import {
  type Action,
  type Approval,
  type Decision,
  EMPTY_HISTORY,
  type KeyHistory,
  type KeySnapshot,
  type KeyStatus,
  type LeakEvidence,
  type OtherCredentials,
  type PermissionFinding,
  type Trigger,
  type ViolationCode,
} from './types';
import type { KeyUsage, UsageSource } from './usage-types';

/**
 * One path from a key event to recorded decisions, shared by the `credential-event` function (ports backed
 * by IAM, DynamoDB and SNS) and by `keyguard replay` (ports backed by state rebuilt from the log files and an
 * embedded DynamoDB). The event is a hint: what is decided is what the directory says now.
 */

/** Key metadata as IAM lists it (never the secret). */
export interface KeyMetadata {
  keyId: string;
  userName: string;
  status: Exclude<KeyStatus, 'Deleted'>;
  createdAt: string | null;
  expiresAt: string | null;
  /** IAM's ServiceCredentialAlias (`<user>-at-<account>`), when listed. */
  alias?: string | null;
}

/** Where the current state of keys and users is read from: IAM live, rebuilt state in replay. */
export interface KeyDirectory {
  /** The Bedrock key with this id on this user, or null when IAM has no such Bedrock key (now). */
  getKey(accountId: string, userName: string, keyId: string): Promise<KeyMetadata | null>;
  /** Every Bedrock key on the user ([] when the user does not exist). */
  listUserKeys(accountId: string, userName: string): Promise<KeyMetadata[]>;
  /** The user's tags ({} when the user does not exist). */
  getUserTags(accountId: string, userName: string): Promise<Record<string, string>>;
}

/** What the pipeline remembers about a key between evaluations (the keys table). */
export interface KnownKey {
  accountId: string;
  keyId: string;
  userName: string;
  status: KeyStatus;
  createdAt: string | null;
  expiresAt: string | null;
  creator: string | null;
  owner: string | null;
  lastDecisionId: string;
  lastDecisionAt: string;
  /** Codes and action of the last decision: a sweep records a new decision only when they change. */
  violationCodes?: ViolationCode[];
  lastAction?: Action;
  /** Deadline, notice stage, reviews, reactivation watch (absent on items written before it existed). */
  history?: KeyHistory;
  /** The sweep that last saw the key in IAM (a key no sweep sees any more is gone). */
  lastSweepId?: string;
  /**
   * The key's latest notice that goes in an owner digest (or first-deployment summary), with what the digest needs
   * to group and order it. The sweep's digest phase sends the digests whose id it names (owner-digest.ts).
   */
  pendingNotice?: PendingNotice;
}

/** Facts about a key's user beyond its tags; a driver that cannot know them (replay) leaves them out. */
export interface UserFactsSource {
  userFacts(
    accountId: string,
    userName: string,
  ): Promise<{ permissions: PermissionFinding[] | null; otherCredentials: OtherCredentials | null }>;
}

/**
 * Approvals and reviews recorded for a key by approvers (the functions only read them). The latest review
 * resets the review clock.
 */
export interface ApprovalSource {
  recordsFor(
    accountId: string,
    keyId: string,
  ): Promise<{ approvals: Approval[]; lastReviewAt: string | null }>;
}

export interface AuditLog {
  /** A decision already recorded under this id (a redelivered event), or null. */
  getDecision(accountId: string, keyId: string, decisionId: string): Promise<Decision | null>;
  /**
   * Appends a decision unless one with its id exists. Returns the decision that is on record: the given one,
   * or the earlier one when this is a duplicate.
   */
  recordDecision(decision: Decision): Promise<{ decision: Decision; duplicate: boolean }>;
  getKnownKey(accountId: string, keyId: string): Promise<KnownKey | null>;
  putKnownKey(key: KnownKey): Promise<void>;
}

export interface Enforcer {
  /** Sets the key Inactive. Returns true when IAM was changed by this call. */
  deactivate(accountId: string, userName: string, keyId: string): Promise<boolean>;
}

export interface Notifier {
  notify(decision: Decision): Promise<void>;
}

export interface PipelineDeps {
  directory: KeyDirectory;
  audit: AuditLog;
  enforcer: Enforcer;
  notifier: Notifier;
  /** Permissions and other credentials of the key's user. @default none: those rules are not evaluated */
  facts?: UserFactsSource;
  /** @default none: no approvals */
  approvals?: ApprovalSource;
  /**
   * Last use per key, for steps that do not carry their own usage (events, leaks, usage alerts). Without it an
   * event would evaluate a key the sweep flagged UNUSED as compliant: a false "resolved" notice, the grace
   * deadline cleared, and a user tagged now and then would never reach deactivation.
   * @default none: UNUSED is evaluated only where the step carries usage (the sweep)
   */
  usage?: UsageSource;
}

export interface PipelineOptions {
  config: Policy;
  policyVersion: string;
  now: Date;
  triggerKind: Extract<Trigger['kind'], 'event' | 'replay'>;
}

export interface KeyStepResult {
  decision: Decision;
  /** The decision was already on record (a retry or redelivery). */
  duplicate: boolean;
  /** A decision was written (a sweep writes one only when something changed). */
  recorded: boolean;
  /** The notice was published on its own, now (a notice held for a digest is on `decision.noticeDigest`). */
  notified: boolean;
}

export interface PipelineResult {
  decisions: KeyStepResult[];
  /** Set when the event turned out not to concern a Bedrock key the pipeline can see. */
  ignored: 'not-bedrock-or-unknown' | 'no-bedrock-keys' | null;
}

/**
 * Stable per trigger and key, so a redelivered event maps onto the decision already on record. It starts with
 * the trigger's time so that it sorts chronologically as the decisions table's sort key (the key id is the
 * partition key, so it is not repeated here).
 */
export function decisionIdFor(kind: Trigger['kind'], triggerTime: string, triggerId: string): string {
  return `${triggerTime}/${kind}/${triggerId}`;
}

/** Everything one evaluation of one key needs to know about where it came from. */
export interface KeyStep {
  accountId: string;
  keyId: string;
  userName: string;
  /** The key as the directory shows it now; null when the directory no longer has it. */
  meta: KeyMetadata | null;
  trigger: Trigger;
  decisionId: string;
  /** The principal that created the key, when this trigger knows it (the Create event). */
  creator?: string | null;
  /** Dates from the creating event, for a key already gone when evaluated. */
  created?: { createdAt: string | null; expiresAt: string | null } | null;
  /** `always` (events: every event is a decision) or `on-change` (sweeps: only what changed, or what acts). */
  record: 'always' | 'on-change';
  /** The sweep that is evaluating, remembered on the key. */
  sweepId?: string;
  /** The key was found leaked (trigger kind `leak`). */
  leak?: LeakEvidence;
  /**
   * The key's last use and the start of usage tracking, for UNUSED (null: not evaluated). Absent: read from
   * `PipelineDeps.usage` when there is one (see usageOf).
   */
  usage?: KeyUsage | null;
  /**
   * Usage alert (trigger kind `usage`): a key keyguard deactivated is still being used. Its text becomes the
   * decision's reason, and the owner is told even when the staged notices have nothing new to say. With `day`
   * (UTC, YYYY-MM-DD), the day is remembered in the key's history (`inUseAlertDay`) once the notice is sent:
   * the caller alerts at most once per key per day, and a retry knows whether this alert was completed.
   */
  alert?: { reason: string; day?: string };
  /**
   * The owner digest (or first-deployment summary) this step's notice goes in, unless it is a critical event
   * (isImmediateNotice), which is sent at once. The decision records it as `noticeDigest`, the key as its
   * `pendingNotice`. Events and usage alerts name NEXT_DIGEST (the owner's next digest, claimed by the next sweep).
   * Absent: the notice is sent on its own (leaks, which are all critical).
   */
  digest?: string;
}

function changedSince(known: KnownKey | null, d: Decision): boolean {
  if (!known) return true;
  const codes = d.violations.map((v) => v.code).sort();
  const before = [...(known.violationCodes ?? [])].sort();
  return (
    known.status !== d.status ||
    known.expiresAt !== d.expiresAt ||
    known.lastAction !== d.action ||
    codes.length !== before.length ||
    codes.some((c, i) => c !== before[i])
  );
}

/**
 * One key through evaluate → enforce → plan notice → record → notify → remember. Safe to repeat: a retry
 * with the same decisionId finds the decision on record and only finishes what the earlier attempt did not
 * (the notice, the keys table), using the decision on record (which may say the key was deactivated, which
 * re-reading IAM would no longer show).
 */
export async function decideKey(
  step: KeyStep,
  deps: PipelineDeps,
  opts: PipelineOptions | SweepOptions,
): Promise<KeyStepResult | null> {
  const { accountId, keyId, userName } = step;
  const known = await deps.audit.getKnownKey(accountId, keyId);
  let history: KeyHistory = known?.history ?? EMPTY_HISTORY;

  const earlier = await deps.audit.getDecision(accountId, keyId, step.decisionId);
  if (earlier) {
    // Decision ids start with their trigger's time: one at or before the key's last decision was completed
    // (its notice sent, the key remembered); a later one is an attempt that failed part-way, finished here.
    // An alert about uses older than the key's last decision is complete only once its day is remembered.
    if (known && known.lastDecisionId >= step.decisionId && alertDone(history, step)) {
      return { decision: earlier, duplicate: true, recorded: false, notified: false };
    }
    const plan = planNotice(earlier, history, opts.config, new Date(earlier.decidedAt));
    // A notice that goes in a digest is sent by the digest (remember() marks it pending again).
    if (earlier.notice && !earlier.noticeDigest) await deps.notifier.notify(earlier);
    await remember(deps, step, known, earlier, withAlertDay(plan.history, history, step));
    return {
      decision: earlier,
      duplicate: true,
      recorded: false,
      notified: Boolean(earlier.notice && !earlier.noticeDigest),
    };
  }

  if (!step.meta && !known && !step.created) return null;
  const creator = known?.creator ?? step.creator ?? null;
  let snapshot: KeySnapshot;
  if (step.meta) {
    const [userTags, facts] = await Promise.all([
      deps.directory.getUserTags(accountId, userName),
      deps.facts ? deps.facts.userFacts(accountId, userName) : Promise.resolve(null),
    ]);
    snapshot = {
      ...step.meta,
      accountId,
      userTags,
      creator,
      permissions: facts?.permissions ?? null,
      otherCredentials: facts?.otherCredentials ?? null,
    };
  } else {
    snapshot = {
      keyId,
      userName,
      accountId,
      status: 'Deleted',
      createdAt: known?.createdAt ?? step.created?.createdAt ?? null,
      expiresAt: known?.expiresAt ?? step.created?.expiresAt ?? null,
      userTags: {},
      creator,
    };
  }
  const usage = await usageOf(step, deps, opts.config);
  const records = deps.approvals ? await deps.approvals.recordsFor(accountId, keyId) : null;
  const approvals = records?.approvals ?? [];
  if (
    records?.lastReviewAt &&
    (history.lastReviewAt === null || records.lastReviewAt > history.lastReviewAt)
  ) {
    history = { ...history, lastReviewAt: records.lastReviewAt };
  }

  let decision = evaluate(snapshot, {
    config: opts.config,
    policyVersion: opts.policyVersion,
    now: opts.now,
    trigger: step.trigger,
    decisionId: step.decisionId,
    history,
    approvals,
    leak: step.leak ?? null,
    usage,
  });
  if (step.alert) {
    const why = step.alert.reason;
    decision = { ...decision, reason: decision.reason ? `${decision.reason}; ${why}` : why };
  }
  // Values come from tags, CloudTrail and callers: bounded before anything compares, records or sends them.
  decision = boundDecision(decision);
  if (decision.action === 'DEACTIVATE' && opts.config.mode === 'enforce') {
    const applied = await deps.enforcer.deactivate(accountId, userName, keyId);
    decision = { ...decision, applied };
  }
  const plan = planNotice(decision, history, opts.config, opts.now);
  // An alert is news on its own; the staged notice state is left as planned.
  decision = { ...decision, notice: plan.notice ?? (step.alert ? 'first' : null) };
  if (decision.notice && step.digest && !isImmediateNotice(decision)) {
    decision = { ...decision, noticeDigest: step.digest };
  }

  const mustRecord =
    step.record === 'always' || decision.applied || decision.notice !== null || changedSince(known, decision);
  if (!mustRecord) {
    await remember(deps, step, known, null, withAlertDay(plan.history, history, step));
    return { decision, duplicate: false, recorded: false, notified: false };
  }
  const recorded = await deps.audit.recordDecision(decision);
  decision = recorded.decision;
  if (decision.notice && !decision.noticeDigest) await deps.notifier.notify(decision);
  await remember(deps, step, known, decision, withAlertDay(plan.history, history, step));
  return {
    decision,
    duplicate: recorded.duplicate,
    recorded: !recorded.duplicate,
    notified: Boolean(decision.notice && !decision.noticeDigest),
  };
}

/**
 * A decision with every value bounded (shared/bounded.ts): a 500k-character tag is stored cut, with its hash, not
 * refused by DynamoDB. The identifiers (the item's keys) are bounded where they are read (cloudtrail.ts).
 */
export function boundDecision(decision: Decision): Decision {
  return boundItem(decision, `decision ${decision.decisionId}`, ['accountId', 'keyId', 'decisionId']);
}

/**
 * The usage UNUSED is evaluated with: the step's own (the sweep reads it per page), else, for an Active key when
 * the policy tracks usage and has a maxIdleDays, the account's tracking start and the key's last use from
 * `deps.usage`. Null when no use of the account was ever recorded: "unused" cannot be told from "not tracked".
 */
async function usageOf(step: KeyStep, deps: PipelineDeps, config: Policy): Promise<KeyUsage | null> {
  if (step.usage !== undefined) return step.usage;
  if (!deps.usage || config.usage.regions.length === 0 || config.maxIdleDays === null) return null;
  if (step.meta?.status !== 'Active') return null;
  const trackingSince = await deps.usage.trackingSince(step.accountId);
  if (trackingSince === null) return null;
  const last = await deps.usage.lastUsedFor(step.accountId, [{ keyId: step.keyId, userName: step.userName }]);
  return { lastUsedAt: last.get(step.keyId) ?? null, trackingSince };
}

/** The step's dated alert was completed earlier (its day, or a later one, is remembered). */
function alertDone(history: KeyHistory, step: KeyStep): boolean {
  const day = step.alert?.day;
  return day === undefined || (history.inUseAlertDay ?? '') >= day;
}

/** The planned history, keeping the latest in-use alert day (planNotice knows nothing of it). */
function withAlertDay(planned: KeyHistory, before: KeyHistory, step: KeyStep): KeyHistory {
  const days = [before.inUseAlertDay, step.alert?.day].filter((d): d is string => typeof d === 'string');
  if (days.length === 0) return planned;
  // YYYY-MM-DD strings sort as days do.
  return { ...planned, inUseAlertDay: [...days].sort().at(-1) ?? null };
}

/**
 * Writes the key's current state; `decision` null when nothing was recorded (the last decision stays).
 * `lastDecisionId` never moves back: a decision about an older trigger (a late usage batch) is recorded and
 * sent, but the later decision stays the key's last, so the completion rule of decideKey keeps holding.
 */
async function remember(
  deps: PipelineDeps,
  step: KeyStep,
  known: KnownKey | null,
  decision: Decision | null,
  history: KeyHistory,
): Promise<void> {
  const d = decision;
  const latest = d && (!known || d.decisionId >= known.lastDecisionId) ? d : null;
  // A notice waiting for its digest stays pending until a later digest notice replaces it. The same notice again (a
  // redelivered event or a retried step) or an older one (a late usage batch) leaves the key's pending notice as it
  // is: a digest may have claimed or sent it already, and marking it again would send it twice.
  const fresh = d ? pendingNoticeOf(d) : null;
  const kept = known?.pendingNotice ?? null;
  const pending = fresh && !(kept && kept.decisionId >= fresh.decisionId) ? fresh : kept;
  await deps.audit.putKnownKey({
    accountId: step.accountId,
    keyId: step.keyId,
    userName: step.userName,
    status: d ? (d.applied ? 'Inactive' : d.status) : (step.meta?.status ?? known?.status ?? 'Deleted'),
    createdAt: step.meta?.createdAt ?? known?.createdAt ?? step.created?.createdAt ?? null,
    expiresAt: step.meta?.expiresAt ?? known?.expiresAt ?? step.created?.expiresAt ?? null,
    creator: known?.creator ?? step.creator ?? null,
    owner: d ? d.owner.value : (known?.owner ?? null),
    lastDecisionId: latest ? latest.decisionId : (known?.lastDecisionId ?? ''),
    lastDecisionAt: latest ? latest.decidedAt : (known?.lastDecisionAt ?? ''),
    violationCodes: d ? d.violations.map((v) => v.code) : (known?.violationCodes ?? []),
    lastAction: d ? d.action : known?.lastAction,
    history,
    ...(step.sweepId
      ? { lastSweepId: step.sweepId }
      : known?.lastSweepId
        ? { lastSweepId: known.lastSweepId }
        : {}),
    ...(pending ? { pendingNotice: pending } : {}),
  });
}

/** Options of a sweep evaluation (the trigger is built by the sweep). */
export interface SweepOptions {
  config: Policy;
  policyVersion: string;
  now: Date;
}

function eventStep(
  event: KeyEvent,
  opts: PipelineOptions,
  meta: KeyMetadata | null,
  keyId: string,
  userName: string,
): KeyStep {
  const createdHere = event.kind === 'credential' && event.action === 'Create' ? event : null;
  return {
    accountId: event.meta.accountId,
    keyId,
    userName,
    meta,
    trigger: {
      kind: opts.triggerKind,
      eventId: event.meta.eventId,
      eventName: event.meta.eventName,
      eventTime: event.meta.eventTime,
    },
    decisionId: decisionIdFor(opts.triggerKind, event.meta.eventTime, event.meta.eventId),
    creator: createdHere ? createdHere.meta.actor : null,
    created: createdHere?.created
      ? { createdAt: createdHere.created.createdAt, expiresAt: createdHere.created.expiresAt }
      : null,
    record: 'always',
    // Only a critical event's notice is sent at once; the others wait for the owner's next digest. A replay shows
    // every notice as its own (what it counts is the notices, not the messages).
    ...(opts.triggerKind === 'event' ? { digest: NEXT_DIGEST } : {}),
  };
}

/** Runs one normalised key event through directory → evaluate → enforce → audit → notify. */
export async function processKeyEvent(
  event: KeyEvent,
  deps: PipelineDeps,
  opts: PipelineOptions,
): Promise<PipelineResult> {
  const accountId = event.meta.accountId;
  if (event.kind === 'credential') {
    const meta = await deps.directory.getKey(accountId, event.userName, event.keyId);
    const one = await decideKey(eventStep(event, opts, meta, event.keyId, event.userName), deps, opts);
    return one ? { decisions: [one], ignored: null } : { decisions: [], ignored: 'not-bedrock-or-unknown' };
  }
  // Tags, credentials or permissions changed on a user: every Bedrock key on that user is re-evaluated.
  const keys = await deps.directory.listUserKeys(accountId, event.userName);
  if (keys.length === 0) return { decisions: [], ignored: 'no-bedrock-keys' };
  const decisions: PipelineResult['decisions'] = [];
  for (const meta of keys) {
    const one = await decideKey(eventStep(event, opts, meta, meta.keyId, meta.userName), deps, opts);
    if (one) decisions.push(one);
  }
  return { decisions, ignored: null };
}
