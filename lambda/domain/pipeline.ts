import type { Config } from '../shared/config';
import type { KeyEvent } from './cloudtrail';
import { evaluate } from './evaluate';
import type { Decision, KeySnapshot, KeyStatus, Trigger } from './types';

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

/** What the pipeline remembers about a key between events (the keys table). */
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
}

export interface PipelineOptions {
  config: Config;
  policyVersion: string;
  now: Date;
  triggerKind: Extract<Trigger['kind'], 'event' | 'replay'>;
}

export interface PipelineResult {
  decisions: Array<{ decision: Decision; duplicate: boolean; notified: boolean }>;
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

async function decideOne(
  event: KeyEvent,
  meta: KeyMetadata | null,
  keyId: string,
  userName: string,
  deps: PipelineDeps,
  opts: PipelineOptions,
): Promise<PipelineResult['decisions'][number] | null> {
  const accountId = event.meta.accountId;
  const decisionId = decisionIdFor(opts.triggerKind, event.meta.eventTime, event.meta.eventId);

  // A redelivery after a partial failure: the decision on record stands (it may say we deactivated the key,
  // which re-reading IAM now would no longer show); only the remaining effects are redone.
  const earlier = await deps.audit.getDecision(accountId, keyId, decisionId);
  if (earlier) {
    const notified = await notifyIfNeeded(earlier, deps);
    return { decision: earlier, duplicate: true, notified };
  }

  const known = await deps.audit.getKnownKey(accountId, keyId);
  const createdHere = event.kind === 'credential' && event.action === 'Create' ? event : null;
  if (!meta && !known && !createdHere) return null;

  const creator = known?.creator ?? (createdHere ? createdHere.meta.actor : null);
  const snapshot: KeySnapshot = meta
    ? { ...meta, accountId, userTags: await deps.directory.getUserTags(accountId, userName), creator }
    : {
        keyId,
        userName,
        accountId,
        status: 'Deleted',
        createdAt: known?.createdAt ?? createdHere?.created?.createdAt ?? null,
        expiresAt: known?.expiresAt ?? createdHere?.created?.expiresAt ?? null,
        userTags: {},
        creator,
      };

  const trigger: Trigger = {
    kind: opts.triggerKind,
    eventId: event.meta.eventId,
    eventName: event.meta.eventName,
    eventTime: event.meta.eventTime,
  };
  let decision = evaluate(snapshot, {
    config: opts.config,
    policyVersion: opts.policyVersion,
    now: opts.now,
    trigger,
    decisionId,
  });

  if (decision.action === 'DEACTIVATE' && opts.config.mode === 'enforce') {
    const applied = await deps.enforcer.deactivate(accountId, userName, keyId);
    decision = { ...decision, applied };
  }

  const recorded = await deps.audit.recordDecision(decision);
  decision = recorded.decision;
  await deps.audit.putKnownKey({
    accountId,
    keyId,
    userName,
    status: decision.applied ? 'Inactive' : snapshot.status,
    createdAt: snapshot.createdAt,
    expiresAt: snapshot.expiresAt,
    creator,
    owner: decision.owner.value,
    lastDecisionId: decision.decisionId,
    lastDecisionAt: decision.decidedAt,
  });
  const notified = await notifyIfNeeded(decision, deps);
  return { decision, duplicate: recorded.duplicate, notified };
}

async function notifyIfNeeded(decision: Decision, deps: PipelineDeps): Promise<boolean> {
  if (decision.action === 'ALLOW') return false;
  await deps.notifier.notify(decision);
  return true;
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
    const one = await decideOne(event, meta, event.keyId, event.userName, deps, opts);
    return one ? { decisions: [one], ignored: null } : { decisions: [], ignored: 'not-bedrock-or-unknown' };
  }
  // Tags changed on a user: every Bedrock key on that user is re-evaluated.
  const keys = await deps.directory.listUserKeys(accountId, event.userName);
  if (keys.length === 0) return { decisions: [], ignored: 'no-bedrock-keys' };
  const decisions: PipelineResult['decisions'] = [];
  for (const meta of keys) {
    const one = await decideOne(event, meta, meta.keyId, meta.userName, deps, opts);
    if (one) decisions.push(one);
  }
  return { decisions, ignored: null };
}
