import { canonicalDecision, type Decision } from '../domain/types';
import { visible } from '../shared/visible-text';

/**
 * Output of `keyguard replay`: decision JSON (one object per line) and the readable table and totals.
 * Everything printed is built from decision fields and counters: no record content ever reaches the output.
 */

/**
 * The decision as stable JSON: fields in the design.md order, and only the decision's own fields. A decision
 * read back from the store has its nested objects in DynamoDB's order; rebuilding them here keeps the output
 * byte-identical between a first run and a re-run.
 */
export function decisionJson(d: Decision): string {
  // JSON.stringify escapes C0 controls but leaves DEL, C1 controls and bidi characters (U+202E…) raw. That is
  // acceptable for machine output, which a program reads, not a person; on the CLI's streams the terminal
  // guard (shared/visible-text.ts terminalSafe) writes them as \uXXXX escapes anyway, which is the same JSON.
  return JSON.stringify(canonicalDecision(d));
}

export interface DecisionRow {
  decision: Decision;
  /** Already on record from an earlier run of the same store. */
  duplicate: boolean;
  /**
   * With --since: the user's tags may have been set before the window (no CreateUser of it was replayed), so its
   * MISSING_* violations are unknown, not established: shown as `MISSING_OWNER?`.
   */
  tagsUnknown?: boolean;
}

/** `2026-11-20T09:31:02.000Z` → `2026-11-20 09:31:02Z`. */
function shortTime(iso: string | undefined): string {
  if (!iso) return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** `CreateServiceSpecificCredential` → `Create key`; other event names are short enough as they are. */
function eventLabel(d: Decision): string {
  const name = d.trigger.eventName;
  if (!name) return d.trigger.kind;
  const m = /^(Create|Update|Reset|Delete)ServiceSpecificCredential$/.exec(name);
  return m ? `${m[1]} key` : name;
}

export function actionLabel(d: Decision): string {
  if (d.action === 'ALLOW') return 'ALLOW';
  if (d.action === 'NOTIFY') return 'NOTIFY';
  return d.applied ? `${d.action} (applied)` : `${d.action} (planned)`;
}

function ownerLabel(d: Decision): string {
  return `${d.owner.value ?? '(none)'} (${d.owner.source})`;
}

/**
 * Left-aligned columns separated by two spaces; the last column is not padded. Every cell is shown through
 * `visible()` (a user name, tag value or reason with a newline, an escape sequence or a bidi override stays in
 * its cell, as text), so every table of every command is safe to print on a terminal.
 */
export function renderTable(header: readonly string[], cells: readonly (readonly string[])[]): string {
  const rows = cells.map((r) => r.map(visible));
  // A loop, not Math.max(...rows): spreading 100,000+ arguments overflows the stack.
  const widths = header.map((h, i) => {
    let width = h.length;
    for (const r of rows) width = Math.max(width, (r[i] ?? '').length);
    return width;
  });
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header.map(visible)), ...rows.map(line)].join('\n');
}

/**
 * `policyVersion`: the policy of this run; a decision on record from an earlier run under another policy says which
 * (`earlier run, policy <version>`): it was not re-evaluated.
 */
export function decisionTable(rows: readonly DecisionRow[], policyVersion?: string): string {
  const header = [
    'EVENT TIME',
    'EVENT',
    'USER',
    'KEY ID',
    'STATUS',
    'ACTION',
    'VIOLATIONS',
    'OWNER (SOURCE)',
    'RECORD',
  ];
  const body = rows.map(({ decision: d, duplicate, tagsUnknown }) => [
    shortTime(d.trigger.eventTime),
    eventLabel(d),
    d.userName,
    d.keyId,
    d.status,
    actionLabel(d),
    d.violations.length
      ? d.violations
          .map((v) => (tagsUnknown && v.code.startsWith('MISSING_') ? `${v.code}?` : v.code))
          .join(',')
      : '-',
    ownerLabel(d),
    duplicate
      ? policyVersion === undefined || d.policyVersion === policyVersion
        ? 'earlier run'
        : `earlier run, policy ${d.policyVersion}`
      : 'new',
  ]);
  return renderTable(header, body);
}

/** Why events produced no decision, worded for the summary. */
export const IGNORE_LABELS: Record<string, string> = {
  'not-iam': 'not IAM',
  'unsupported-event': 'other IAM calls',
  'failed-call': 'failed calls',
  'not-bedrock': 'credentials of other services',
  'not-bedrock-or-unknown': 'keys not known as Bedrock keys',
  'no-bedrock-keys': 'user changes without Bedrock keys (state only)',
  'duplicate-record': 'seen twice (same eventID)',
  'outside-window': 'outside --since/--until',
  'not-bearer-token': 'Bedrock calls signed with SigV4 (not API keys)',
};

export interface ReplayTotals {
  filesRead: number;
  filesWithErrors: number;
  /** Log files and date directories of the S3 layout left unread: their path date is outside the window. */
  filesSkipped: number;
  /** Entries in all files (CloudTrail records and EventBridge events). */
  eventsRead: number;
  /** Records about Bedrock keys or their users' tags. */
  relevant: number;
  /** Relevant records that could not be used (invalid or missing a field). */
  rejected: number;
  ignored: Map<string, number>;
  decisionsByAction: Map<string, number>;
  newDecisions: number;
  earlierDecisions: number;
  notices: number;
  owners: number;
  mode: string;
  policyVersion: string;
  /** With --since: decisions whose MISSING_* violations are unknown before the window (see DecisionRow). */
  tagsUnknownBeforeWindow?: number;
  /** Decisions shown that were made under another policy (earlier runs), per policy version; absent: none. */
  otherPolicies?: Map<string, number>;
  configSource: string;
  store: string;
  /** Flow 3; null when the inputs hold no Bedrock calls at all (the line is left out). */
  usage?: UsageTotals | null;
}

export interface UsageTotals {
  /** Bearer-token calls replayed (in the window). */
  calls: number;
  longTermCalls: number;
  /** Long-term keys the calls were attributed to. */
  keys: number;
  /** Users whose calls could not be attributed to one key (two keys). */
  usersWithSeveralKeys: number;
  /** Users whose calls could not be attributed because the store knows none of their keys. */
  usersWithUnknownKeys: number;
  shortTermCalls: number;
  /** Principals that signed short-term keys. */
  principals: number;
  /** Calls an earlier run on this store replayed: neither counted nor decided again. */
  countedEarlier: number;
  /** Bedrock calls without a bearer token (SigV4), and bearer-token records that could not be used. */
  skipped: number;
}

function num(n: number): string {
  return n.toLocaleString('en-US');
}

function plural(n: number, one: string, many: string): string {
  return `${num(n)} ${n === 1 ? one : many}`;
}

export function usageText(u: UsageTotals): string {
  const unattributed = [
    u.usersWithSeveralKeys > 0 ? `${plural(u.usersWithSeveralKeys, 'user', 'users')} with two keys` : null,
    u.usersWithUnknownKeys > 0
      ? `${plural(u.usersWithUnknownKeys, 'user', 'users')} with keys unknown to this store`
      : null,
  ].filter((x): x is string => x !== null);
  const parts = [plural(u.keys, 'key', 'keys'), ...unattributed];
  const onKeys = parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : parts.join('');
  return (
    `Usage: ${plural(u.calls, 'bearer-token call', 'bearer-token calls')} (${num(u.longTermCalls)} long-term on ${onKeys}, ` +
    `${num(u.shortTermCalls)} short-term by ${plural(u.principals, 'principal', 'principals')})` +
    (u.countedEarlier > 0
      ? `, ${num(u.countedEarlier)} already replayed by an earlier run (not counted again)`
      : '') +
    `, ${num(u.skipped)} skipped (SigV4 or unusable)`
  );
}

function counts(m: Map<string, number>, label: (k: string) => string = (k) => k): string {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([k, n]) => `${label(k)} ${n}`)
    .join(', ');
}

export function summaryText(t: ReplayTotals): string {
  const ignoredTotal = [...t.ignored.values()].reduce((a, b) => a + b, 0);
  const decisions = t.newDecisions + t.earlierDecisions;
  const lines = [
    `Files: ${t.filesRead} read, ${t.filesWithErrors} with errors` +
      (t.filesSkipped > 0
        ? `, ${t.filesSkipped} files or date directories skipped by path date (outside --since/--until)`
        : ''),
    `Events: ${t.eventsRead} read, ${t.relevant} relevant, ${t.rejected} rejected, ${ignoredTotal} without a decision`,
  ];
  if (ignoredTotal > 0)
    lines.push(`  without a decision: ${counts(t.ignored, (k) => IGNORE_LABELS[k] ?? k)}`);
  if (t.usage) lines.push(usageText(t.usage));
  lines.push(
    `Decisions: ${decisions} (${t.newDecisions} new, ${t.earlierDecisions} already on record)` +
      (decisions > 0 ? `: ${counts(t.decisionsByAction)}` : ''),
  );
  const unknown = t.tagsUnknownBeforeWindow ?? 0;
  if (unknown > 0)
    lines.push(
      `  ${unknown} of them ${unknown === 1 ? 'reports' : 'report'} MISSING_* (marked ?) for users whose tags may have been set before --since: ` +
        'unknown before window, not established',
    );
  lines.push(
    `Owners that would be notified: ${t.owners} (${t.notices} notice${t.notices === 1 ? '' : 's'}; nothing was sent)`,
  );
  const other = [...(t.otherPolicies ?? new Map<string, number>()).values()].reduce((a, b) => a + b, 0);
  if (other === 0) {
    lines.push(
      `Mode ${t.mode}: enforcement is planned, never applied, in replay. Policy ${visible(t.policyVersion)} (${visible(t.configSource)}); store ${visible(t.store)}`,
    );
  } else {
    // Decisions on record stay what the policy that made them decided: this run's policy must not be named as theirs.
    const made = decisions - other;
    const policies = t.otherPolicies ?? new Map<string, number>();
    const under =
      policies.size === 1
        ? `policy ${visible([...policies.keys()][0] ?? '')}`
        : counts(policies, (k) => `policy ${visible(k)}`).replace(/ (\d+)(,|$)/g, ' ($1)$2');
    const were = other === 1 ? 'was' : 'were';
    lines.push(
      `Mode ${t.mode}: enforcement is planned, never applied, in replay. Store ${visible(t.store)}`,
      `Policy ${visible(t.policyVersion)} (${visible(t.configSource)}) made ${made} of the decisions shown; ` +
        `${other} ${were} made earlier under ${under} and ${were} not re-evaluated`,
    );
  }
  return lines.join('\n');
}
