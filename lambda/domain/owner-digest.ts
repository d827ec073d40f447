import type { Policy } from '../shared/config';
import { visible } from '../shared/visible-text';
import { ascii, headline, type Notice, remedy, SUBJECT_MAX, UNOWNED } from './notice';
import type { Action, Decision, NoticeKind, Severity, ViolationCode } from './types';
import { topSeverity } from './types';

/**
 * Owner digests: a sweep delivers the staged notices of its keys grouped, one message per owner (per account swept),
 * listing every key of theirs that needs action, worst first, with what to do and by when. The staging itself stays
 * per key (staging.ts): each key's decision records its own notice and the digest that carried it
 * (`noticeDigest`), so a reminder is neither sent twice nor lost for going in a digest. Critical events are never
 * held for a digest (`isImmediateNotice`). The first sweep of an account sends its fallback owner one summary of the
 * account instead of a first notice per key (`buildAccountSummary`). Built from decisions only: no key material.
 */

/** SNS Publish: a message is at most 256 KB (262,144 bytes of UTF-8), message attributes included. */
export const SNS_MESSAGE_MAX_BYTES = 262_144;
/** The body's budget: the rest is left to the subject and the message attributes. */
export const DIGEST_BODY_MAX_BYTES = SNS_MESSAGE_MAX_BYTES - 16 * 1024;
/** Keys listed one per line in a first-deployment summary (the counts cover every key). */
export const SUMMARY_KEYS_MAX = 50;
/** Owners listed in a first-deployment summary (the counts cover every owner). */
export const SUMMARY_OWNERS_MAX = 100;

/**
 * Violations whose notice is never held for a digest: a leak and a reactivation without approval are critical
 * events the owner must hear about now, as is a deactivation that was applied (their keys stop working).
 */
const IMMEDIATE_VIOLATIONS: readonly ViolationCode[] = ['LEAKED', 'REACTIVATED_WITHOUT_APPROVAL'];

/** Whether a decision's notice is sent on its own, at once, rather than in the owner's digest. */
export function isImmediateNotice(d: Decision): boolean {
  return d.applied || d.violations.some((v) => IMMEDIATE_VIOLATIONS.includes(v.code));
}

/**
 * Where an event-driven notice waits (credential events, key usage): the owner's next digest, whichever sweep sends
 * it. The decision records this id as its `noticeDigest`; the next sweep's digest phase claims the key's pending
 * notice for its own digest (the key's `pendingNotice.digest` then names the digest that carried it).
 */
export const NEXT_DIGEST = 'digest/next';

/** The id of the digests of one sweep (`digest/<sweepId>`), or of its first-deployment summary. */
export function digestIdFor(sweepId: string, firstSweep: boolean): string {
  return `${firstSweep ? 'summary' : 'digest'}/${sweepId}`;
}

export function isSummaryId(digestId: string): boolean {
  return digestId.startsWith('summary/');
}

/**
 * What the keys table keeps about a key's notice while its digest is not sent yet: enough to group (owner), order
 * (severity, deadline) and count (summary) without reading the decision, and the decision to read for the entry.
 */
export interface PendingNotice {
  digest: string;
  decisionId: string;
  owner: string;
  kind: NoticeKind;
  severity: Severity | 'info';
  deadline: string | null;
  action: Action;
}

/** The pending notice a decision leaves on its key, or null when it is not delivered in a digest. */
export function pendingNoticeOf(d: Decision): PendingNotice | null {
  if (!d.notice || !d.noticeDigest) return null;
  return {
    digest: d.noticeDigest,
    decisionId: d.decisionId,
    owner: d.owner.value ?? UNOWNED,
    kind: d.notice,
    severity: topSeverity(d.violations),
    deadline: d.deadline,
    action: d.action,
  };
}

const RANK: Record<Severity | 'info', number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };
const ACTION_RANK: Record<Action, number> = { ALLOW: 0, NOTIFY: 1, DEACTIVATE: 2, DELETE: 3 };

/** Worst first: a resolved notice last, then severity (highest first), deadline (soonest first, none last), key. */
export function worstFirst(
  a: { kind: NoticeKind; severity: Severity | 'info'; deadline: string | null; keyId: string },
  b: { kind: NoticeKind; severity: Severity | 'info'; deadline: string | null; keyId: string },
): number {
  const resolved = Number(a.kind === 'resolved') - Number(b.kind === 'resolved');
  if (resolved !== 0) return resolved;
  const sev = RANK[b.severity] - RANK[a.severity];
  if (sev !== 0) return sev;
  if (a.deadline !== b.deadline) {
    if (a.deadline === null) return 1;
    if (b.deadline === null) return -1;
    return a.deadline < b.deadline ? -1 : 1;
  }
  return a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0;
}

function worstAction(actions: readonly Action[]): Action {
  return actions.reduce<Action>((w, a) => (ACTION_RANK[a] > ACTION_RANK[w] ? a : w), 'ALLOW');
}

function topOf(severities: ReadonlyArray<Severity | 'info'>): Severity | 'info' {
  return severities.reduce<Severity | 'info'>((w, s) => (RANK[s] > RANK[w] ? s : w), 'info');
}

const STAGE: Record<NoticeKind, string> = {
  first: 'new',
  reminder: 'reminder',
  final: 'FINAL WARNING',
  action: 'action',
  resolved: 'resolved',
  expiring: 'expiring',
};

function bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** By when the owner must act, in words. */
function byWhen(d: Decision): string | null {
  if (d.notice === 'resolved') return null;
  if (d.action === 'DEACTIVATE' || d.action === 'DELETE') {
    return d.applied ? null : 'now (the policy asks for the key to be deactivated)';
  }
  if (d.deadline) {
    const after =
      d.mode === 'enforce' ? 'the key will be deactivated' : 'the key will be reported for deactivation';
    return `${d.deadline} (after that ${after})`;
  }
  if (d.violations.some((v) => v.code === 'EXPIRING_SOON') && d.expiresAt) {
    return `${d.expiresAt} (the key expires)`;
  }
  return null;
}

/** One key's entry in a digest: its stage, what is wrong, how to fix it, by when, and its decision id. */
export function digestEntry(d: Decision, config: Policy): string {
  const severity = topSeverity(d.violations).toUpperCase();
  const stage = d.notice ? STAGE[d.notice] : 'notice';
  const lines: string[] = [
    `[${severity}] ${stage}: Bedrock API key ${d.keyId} on IAM user ${d.userName} ${headline(d)}`,
    `  Account: ${d.accountId}   Expires: ${d.neverExpires ? 'never' : (d.expiresAt ?? 'unknown')}   Action: ${d.action}${
      d.applied ? ' (applied)' : d.action === 'DEACTIVATE' ? ` (planned, not applied: ${d.mode} mode)` : ''
    }`,
  ];
  const by = byWhen(d);
  if (by) lines.push(`  By: ${by}`);
  if (d.reason) lines.push(`  Why: ${d.reason}`);
  for (const v of d.violations) {
    lines.push(`  - ${v.code} (${v.severity}): ${v.detail}`);
    lines.push(`    Fix: ${remedy(v, d, config)}`);
  }
  for (const w of d.waived ?? []) {
    lines.push(`  - ${w.code}: approved (approval ${w.approvalId}), not acted on while the approval lasts.`);
  }
  lines.push(`  Decision: ${d.decisionId}`);
  return lines.map(visible).join('\n');
}

export interface OwnerDigestInput {
  owner: string;
  accountId: string;
  digestId: string;
  /** The decisions whose notices the digest carries (any order: they are listed worst first). */
  decisions: readonly Decision[];
  /** Further keys of the owner in this digest whose decisions were not loaded (counted in "… and N more"). */
  notLoaded?: number;
  config: Policy;
  /** @default DIGEST_BODY_MAX_BYTES */
  maxBytes?: number;
}

export interface BuiltDigest {
  notice: Notice;
  /** Keys listed in full in the message. */
  listed: number;
  /** Keys counted in "… and N more keys" (their notices are still recorded on their decisions). */
  omitted: number;
}

function moreLine(n: number, owner: string): string {
  return visible(
    `… and ${n} more key${n === 1 ? '' : 's'} (not listed: the message would exceed the SNS size limit). ` +
      `Each is in the audit record: keyguard audit --owner ${owner}`,
  );
}

/** The message of a digest listing `fitted.listed` of `total` keys (the others counted as omitted). */
function builtDigest(
  subject: string,
  attributes: Notice['attributes'],
  fitted: { body: string; listed: number },
  total: number,
): BuiltDigest {
  return {
    notice: { subject, body: fitted.body, attributes },
    listed: fitted.listed,
    omitted: total - fitted.listed,
  };
}

/**
 * Lists entries after `head` while the body stays within `maxBytes`, keeping room for the "… and N more keys" line.
 * Returns the body and how many entries it lists.
 */
function fitEntries(
  head: string,
  entries: readonly string[],
  extra: number,
  maxBytes: number,
  more: (n: number) => string,
  sep = '\n\n',
): { body: string; listed: number } {
  const total = entries.length + extra;
  // Room for the longest "more" line (its count has at most as many digits as the total).
  const reserve = bytes(more(total)) + bytes(sep);
  let size = bytes(head);
  const parts: string[] = [head];
  let listed = 0;
  for (const e of entries) {
    const add = bytes(e) + bytes(sep);
    if (size + add + (listed + 1 < total ? reserve : 0) > maxBytes) break;
    parts.push(e);
    size += add;
    listed += 1;
  }
  if (listed < total) parts.push(more(total - listed));
  return { body: parts.join(sep), listed };
}

/** The digest of one owner's keys for one sweep of one account: one SNS message, at most `maxBytes` of body. */
export function buildOwnerDigest(input: OwnerDigestInput): BuiltDigest {
  const { owner, accountId, config } = input;
  const maxBytes = input.maxBytes ?? DIGEST_BODY_MAX_BYTES;
  const decisions = [...input.decisions].sort((a, b) =>
    worstFirst(
      {
        kind: a.notice ?? 'first',
        severity: topSeverity(a.violations),
        deadline: a.deadline,
        keyId: a.keyId,
      },
      {
        kind: b.notice ?? 'first',
        severity: topSeverity(b.violations),
        deadline: b.deadline,
        keyId: b.keyId,
      },
    ),
  );
  const notLoaded = input.notLoaded ?? 0;
  const total = decisions.length + notLoaded;
  const open = decisions.filter((d) => d.notice !== 'resolved').length;
  const resolved = decisions.length - open;
  const severity = topOf(
    decisions.filter((d) => d.notice !== 'resolved').map((d) => topSeverity(d.violations)),
  );
  const action = worstAction(decisions.map((d) => d.action));
  const count = (n: number) => `${n} Bedrock API key${n === 1 ? '' : 's'}`;
  const subject = ascii(
    open > 0 || notLoaded > 0
      ? `[keyguard] ${severity.toUpperCase()}: ${count(open + notLoaded)} of yours need action (account ${accountId})`
      : `[keyguard] ${count(resolved)} of yours resolved (account ${accountId})`,
  ).slice(0, SUBJECT_MAX);
  const head = [
    `Bedrock Key Guard: the keys of owner ${owner} in account ${accountId} that need action, worst first ` +
      `(${total} key${total === 1 ? '' : 's'}${resolved > 0 ? `, ${resolved} resolved listed last` : ''}).`,
    'Each key keeps its own staged notices (new, reminder, final warning, action, resolved): this message groups ' +
      'them. Leaks, reactivations and applied deactivations are sent at once, on their own.',
    `Digest: ${input.digestId}`,
  ]
    .map(visible)
    .join('\n');
  const fitted = fitEntries(
    head,
    decisions.map((d) => digestEntry(d, config)),
    notLoaded,
    maxBytes,
    (n) => moreLine(n, owner),
  );
  return builtDigest(subject, { owner, severity, action, account: accountId }, fitted, total);
}

/** A key of the account as the first-deployment summary counts it (from the keys table, no decision read). */
export interface SummaryKey {
  keyId: string;
  userName: string;
  owner: string;
  codes: readonly ViolationCode[];
  kind: NoticeKind;
  severity: Severity | 'info';
  deadline: string | null;
  action: Action;
}

export interface AccountSummaryInput {
  accountId: string;
  digestId: string;
  keys: readonly SummaryKey[];
  config: Policy;
  /** Keys the sweep saw (the summary's "of N keys"). */
  keysSeen: number;
  /** @default DIGEST_BODY_MAX_BYTES */
  maxBytes?: number;
}

function countBy<T>(items: readonly T[], keyOf: (t: T) => readonly string[]): Array<[string, number]> {
  const counts = new Map<string, number>();
  for (const item of items) for (const k of keyOf(item)) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

/**
 * The first-deployment summary of an account, for its fallback owner: counts per violation and per owner, the
 * worst keys first (at most SUMMARY_KEYS_MAX listed), and what happens next. One message, bounded in size.
 */
export function buildAccountSummary(input: AccountSummaryInput): BuiltDigest {
  const { accountId, config } = input;
  const maxBytes = input.maxBytes ?? DIGEST_BODY_MAX_BYTES;
  const keys = [...input.keys].sort(worstFirst);
  const needing = keys.filter((k) => k.kind !== 'resolved');
  const owner = config.fallbackOwner ?? UNOWNED;
  const severity = topOf(needing.map((k) => k.severity));
  const action = worstAction(keys.map((k) => k.action));
  const subject = ascii(
    `[keyguard] ${severity.toUpperCase()}: first sweep of account ${accountId}: ${needing.length} Bedrock API keys need action`,
  ).slice(0, SUBJECT_MAX);

  const lines: string[] = [
    `Bedrock Key Guard swept account ${accountId} for the first time: ${needing.length} of ${input.keysSeen} Bedrock API keys need action.`,
    `Instead of ${keys.length} first notices to their owners, this one summary goes to the fallback owner (${config.fallbackOwner ?? 'none configured: sent as owner "unowned"'}).`,
    "Each key's staged notices start from this sweep: its owner hears in their digest when its reminder, final warning or action is due, and at once for a leak, a reactivation or an applied deactivation.",
    `Mode: ${config.mode}. Digest: ${input.digestId}`,
    '',
    'Keys per violation:',
    ...countBy(needing, (k) => k.codes).map(([code, n]) => `  ${code}: ${n}`),
  ];
  const owners = countBy(needing, (k) => [k.owner]);
  lines.push('', `Keys per owner (${owners.length} owner${owners.length === 1 ? '' : 's'}):`);
  for (const [o, n] of owners.slice(0, SUMMARY_OWNERS_MAX)) lines.push(`  ${o}: ${n}`);
  if (owners.length > SUMMARY_OWNERS_MAX)
    lines.push(`  … and ${owners.length - SUMMARY_OWNERS_MAX} more owners`);
  lines.push('', 'Worst keys first:');
  const head = lines.map(visible).join('\n');
  const entries = needing
    .slice(0, SUMMARY_KEYS_MAX)
    .map((k) =>
      visible(
        `  [${k.severity.toUpperCase()}] ${k.keyId} on ${k.userName} (owner ${k.owner}): ${k.codes.join(', ') || 'no violation'}; ` +
          `action ${k.action}${k.deadline && k.action === 'NOTIFY' ? `, fix by ${k.deadline}` : ''}`,
      ),
    );
  const more = (n: number) =>
    visible(`  … and ${n} more key${n === 1 ? '' : 's'}: keyguard inventory lists every key of the account.`);
  // Entries are lines here, not paragraphs.
  const fitted = fitEntries(head, entries, needing.length - entries.length, maxBytes, more, '\n');
  return builtDigest(subject, { owner, severity, action, account: accountId }, fitted, needing.length);
}
