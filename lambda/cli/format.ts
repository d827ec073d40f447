import stringWidth from 'string-width';
import {
  canonicalDecision,
  type Decision,
  type Severity,
  topSeverity,
  type Violation,
} from '../domain/types';
import { mapVisible, visible } from '../shared/visible-text';
import type { TerminalFacts } from './io';

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

/** Printable ASCII only: one column per character, no segmentation needed (the common, fast case). */
const PLAIN_ASCII = /^[\x20-\x7e]*$/;
const ESC = '\u001b';
const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

/**
 * A cell as it is shown: the pieces truncation may cut between (grapheme clusters of the text, and each
 * `visible()` escape such as `\x1b` or `\u202e` whole), each with its width in terminal columns (`string-width`:
 * East Asian wide characters and emoji take two). Never a surrogate half, never half an escape.
 */
interface Shown {
  text: string;
  width: number;
  pieces?: { text: string; width: number }[];
}

function shown(value: string): Shown {
  if (PLAIN_ASCII.test(value)) return { text: value, width: value.length };
  const pieces: { text: string; width: number }[] = [];
  const text = mapVisible(
    value,
    (run) => {
      for (const { segment } of graphemes.segment(run))
        pieces.push({ text: segment, width: stringWidth(segment) });
      return run;
    },
    (sequence) => {
      pieces.push({ text: sequence, width: sequence.length });
      return sequence;
    },
  );
  let width = 0;
  for (const p of pieces) width += p.width;
  return { text, width, pieces };
}

/** The cell cut to `width` columns, ending in `…` when something was left out; its width is ≤ `width`. */
function cut(cell: Shown, width: number): Shown {
  if (cell.width <= width) return cell;
  if (width <= 0) return { text: '', width: 0 };
  const pieces = cell.pieces ?? [...cell.text].map((ch) => ({ text: ch, width: 1 }));
  let text = '';
  let used = 0;
  for (const p of pieces) {
    if (used + p.width > width - 1) break;
    text += p.text;
    used += p.width;
  }
  return { text: `${text}…`, width: used + 1 };
}

/**
 * Columns that keep their full width while any other can still shrink: identifiers (a truncated key id or
 * account cannot be looked up), times and the short fixed vocabularies (action, status, state).
 */
const KEEP = /\bID\b|ACCOUNT|APPROVAL|TIME|DECIDED AT|^ACTION$|^STATUS$|^STATE$|^UNTIL$|^CREATED$|^EXPIRES$/;
/** A free-text column is not cut below this (or its natural width, if smaller); ids not below their own width unless nothing else is left. */
const MIN_FREE = 8;
const MIN_ANY = 4;

/**
 * Column widths that fit `columns` (two spaces between columns): the widest free-text column (user, owner,
 * violations, reason, trigger…) loses a column at a time, down to MIN_FREE; only then the kept columns (ids,
 * times, action), widest first, down to MIN_ANY. If even that does not fit, the lines are longer than the terminal.
 */
function fitWidths(header: readonly string[], widths: number[], columns: number): number[] {
  const out = [...widths];
  let total = out.reduce((a, b) => a + b, 0) + 2 * (out.length - 1);
  const shrink = (eligible: (i: number) => boolean, floor: number) => {
    while (total > columns) {
      let widest = -1;
      for (let i = 0; i < out.length; i++) {
        const w = out[i] ?? 0;
        if (eligible(i) && w > floor && (widest < 0 || w > (out[widest] ?? 0))) widest = i;
      }
      if (widest < 0) return;
      out[widest] = (out[widest] ?? 0) - 1;
      total -= 1;
    }
  };
  shrink((i) => !KEEP.test(header[i] ?? ''), MIN_FREE);
  shrink(() => true, MIN_ANY);
  return out;
}

/** SGR colour of an action cell: enforcement red, a notice yellow, allowed green. */
function actionColour(cell: string): string | undefined {
  if (/^(DEACTIVATE|DELETE)\b/.test(cell)) return `${ESC}[31m`;
  if (/^NOTIFY\b/.test(cell)) return `${ESC}[33m`;
  if (/^ALLOW\b/.test(cell)) return `${ESC}[32m`;
  return undefined;
}

/** The columns holding an action (a preview has the action now and under the new policy). */
const ACTION_COLUMNS = new Set(['ACTION', 'NOW', 'NEW']);

/** SGR colour of a severity: critical bold red, high red, medium yellow, low cyan. */
const SEVERITY_COLOUR: Record<Severity, string> = {
  critical: `${ESC}[1;31m`,
  high: `${ESC}[31m`,
  medium: `${ESC}[33m`,
  low: `${ESC}[36m`,
};

/** A cell coloured, on a colour terminal, by a severity (e.g. the worst violation it lists). */
export interface SeverityCell {
  readonly text: string;
  readonly severity: Severity | 'info';
}

/** A table cell: text, or text with the severity it is coloured by. */
export type TableCell = string | SeverityCell;

/** The codes of `violations` (`-` when none, or `text` when given), coloured by the worst of them. */
export function violationsCell(violations: readonly Violation[], text?: string): SeverityCell {
  return {
    text: text ?? (violations.length > 0 ? violations.map((v) => v.code).join(',') : '-'),
    severity: topSeverity(violations),
  };
}

function cellText(cell: TableCell): string {
  return typeof cell === 'string' ? cell : cell.text;
}

function cellColour(cell: TableCell, header: string): string | undefined {
  if (typeof cell !== 'string') return cell.severity === 'info' ? undefined : SEVERITY_COLOUR[cell.severity];
  return ACTION_COLUMNS.has(header) ? actionColour(cell) : undefined;
}

/**
 * Left-aligned columns separated by two spaces; the last column is not padded. Every cell is shown through
 * `visible()` (a user name, tag value or reason with a newline, an escape sequence or a bidi override stays in
 * its cell, as text), so every table of every command is safe to print on a terminal. Widths count terminal
 * columns (wide characters two, escapes as printed).
 *
 * With `terminal` (stdout is a TTY, see `CliIO.terminal`): the table fits `terminal.columns` by cutting the
 * longest free-text cells with `…` (see `fitWidths`; the full values are in `--json`/`--csv`), and with
 * `terminal.color` the action columns (ACTION, NOW, NEW) are coloured by action, and a SeverityCell (the violations
 * column, see `violationsCell`) by its severity: write such a table with `writeStyled()`. Without it (piped
 * output, tests), the table is full width and plain, as it always was.
 */
export function renderTable(
  header: readonly string[],
  cells: readonly (readonly TableCell[])[],
  terminal?: TerminalFacts,
): string {
  const head = header.map(shown);
  const rows = cells.map((r) => r.map((c) => shown(cellText(c))));
  // A loop, not Math.max(...rows): spreading 100,000+ arguments overflows the stack.
  let widths = head.map((h, i) => {
    let width = h.width;
    for (const r of rows) width = Math.max(width, r[i]?.width ?? 0);
    return width;
  });
  if (terminal) widths = fitWidths(header, widths, terminal.columns);
  const line = (cells: readonly Shown[], source?: readonly TableCell[]) =>
    cells
      .map((c, i) => {
        const width = widths[i] ?? 0;
        const fitted = terminal ? cut(c, width) : c;
        const pad = i === cells.length - 1 ? '' : ' '.repeat(Math.max(0, width - fitted.width));
        const raw = source?.[i];
        const colour = terminal?.color && raw !== undefined ? cellColour(raw, header[i] ?? '') : undefined;
        return colour ? `${colour}${fitted.text}${ESC}[0m${pad}` : `${fitted.text}${pad}`;
      })
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map((r, n) => line(r, cells[n]))].join('\n');
}

/**
 * `policyVersion`: the policy of this run; a decision on record from an earlier run under another policy says which
 * (`earlier run, policy <version>`): it was not re-evaluated.
 */
export function decisionTable(
  rows: readonly DecisionRow[],
  policyVersion?: string,
  terminal?: TerminalFacts,
): string {
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
    violationsCell(
      d.violations,
      d.violations.length
        ? d.violations
            .map((v) => (tagsUnknown && v.code.startsWith('MISSING_') ? `${v.code}?` : v.code))
            .join(',')
        : '-',
    ),
    ownerLabel(d),
    duplicate
      ? policyVersion === undefined || d.policyVersion === policyVersion
        ? 'earlier run'
        : `earlier run, policy ${d.policyVersion}`
      : 'new',
  ]);
  return renderTable(header, body, terminal);
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
