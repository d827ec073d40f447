import { byDecidedAt } from '../adapters/audit-store';
import { DAY_MS } from '../domain/dates';
import { NEVER_EXPIRES_YEAR } from '../domain/evaluate';
import type { KnownKey } from '../domain/pipeline';
import type { Action, Decision, KeyStatus, ViolationCode } from '../domain/types';

/**
 * The numbers behind `keyguard report`: pure functions of the keys table, the decisions and a clock, so the
 * same store and the same `now` always give the same report. No I/O, no AWS.
 */

export interface Bar {
  label: string;
  value: number;
}

export const ACTIONS: readonly Action[] = ['ALLOW', 'NOTIFY', 'DEACTIVATE', 'DELETE'];

export interface DayBar {
  /** `YYYY-MM-DD` (UTC). */
  day: string;
  byAction: Record<Action, number>;
  total: number;
}

/** One key as the report's inventory shows it. */
export interface ReportKey {
  accountId: string;
  /** As {@link AccountBar.accountName}. */
  accountName: string | null;
  keyId: string;
  userName: string;
  owner: string | null;
  status: KeyStatus;
  createdAt: string | null;
  expiresAt: string | null;
  neverExpires: boolean;
  /** Days from creation to expiry; null when either is unknown or the key never expires. */
  lifetimeDays: number | null;
  /** Codes of the key's latest decision (the keys table's when no decision is on record). */
  codes: ViolationCode[];
  lastAction: Action | null;
  lastDecisionAt: string | null;
}

/** One account's numbers (organization mode: a report over several accounts' keys and decisions). */
export interface AccountBar {
  /** The account id as recorded (replay takes it from the log record, so it is text to escape, not trusted). */
  accountId: string;
  /** The account's name when one was given (--account-names): chosen by the account's administrator, escaped. */
  accountName: string | null;
  /** Keys that still exist (as the other charts count them). */
  keys: number;
  /** Existing keys whose latest decision has at least one violation. */
  withViolations: number;
  /** Every decision on record about the account's keys. */
  decisions: number;
}

export interface ReportData {
  generatedAt: string;
  /** Every key known, Deleted ones included (the table shows them with their status). */
  keys: ReportKey[];
  /** Keys that still exist (status other than Deleted): what the charts count. */
  liveKeys: number;
  decisions: number;
  lifetime: Bar[];
  expiry: Bar[];
  owners: Bar[];
  violations: Bar[];
  days: DayBar[];
  /** The decision days were cut to the most recent MAX_DAYS. */
  daysTruncated: boolean;
  /** Every account with a key or a decision on record, by account id. */
  accounts: AccountBar[];
}

/** At most this many accounts get their own bars on the chart; the rest are summed under "others". */
export const MAX_ACCOUNT_BARS = 20;

/** At most this many owners get their own bar; the rest are summed under "others". */
export const MAX_OWNERS = 15;
/** At most this many days of decisions are drawn (the most recent). */
export const MAX_DAYS = 366;
export const NO_OWNER = '(no owner)';

export const LIFETIME_BUCKETS = [
  '≤ 7 days',
  '≤ 30 days',
  '≤ 90 days',
  '≤ 365 days',
  '> 365 days',
  'never',
] as const;
export const LIFETIME_UNKNOWN = 'unknown';

/** IAM's "never expires": no ExpirationDate, or one a century out. */
export function keyNeverExpires(expiresAt: string | null): boolean {
  if (expiresAt === null) return true;
  const t = Date.parse(expiresAt);
  return !Number.isNaN(t) && new Date(t).getUTCFullYear() >= NEVER_EXPIRES_YEAR;
}

function lifetimeDays(createdAt: string | null, expiresAt: string | null, never: boolean): number | null {
  if (never || createdAt === null || expiresAt === null) return null;
  const c = Date.parse(createdAt);
  const e = Date.parse(expiresAt);
  if (Number.isNaN(c) || Number.isNaN(e)) return null;
  return Math.round(((e - c) / DAY_MS) * 10) / 10;
}

function lifetimeBucket(k: ReportKey): string {
  if (k.neverExpires) return 'never';
  const d = k.lifetimeDays;
  if (d === null) return LIFETIME_UNKNOWN;
  if (d <= 7) return '≤ 7 days';
  if (d <= 30) return '≤ 30 days';
  if (d <= 90) return '≤ 90 days';
  if (d <= 365) return '≤ 365 days';
  return '> 365 days';
}

function monthLabel(year: number, month: number): string {
  const d = new Date(Date.UTC(year, month, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** Overdue, then the 12 calendar months from now's (UTC), then later; never-expiring keys are not on it. */
function expiryTimeline(keys: readonly ReportKey[], now: Date): Bar[] {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  const bars: Bar[] = [{ label: 'overdue', value: 0 }];
  const starts: number[] = [];
  for (let i = 0; i <= 12; i++) starts.push(Date.UTC(y, m + i, 1));
  for (let i = 0; i < 12; i++) bars.push({ label: monthLabel(y, m + i), value: 0 });
  bars.push({ label: 'later', value: 0 });
  for (const k of keys) {
    if (k.neverExpires || k.expiresAt === null) continue;
    const t = Date.parse(k.expiresAt);
    if (Number.isNaN(t)) continue;
    let index: number;
    if (t < now.getTime()) index = 0;
    else if (t >= (starts[12] as number)) index = 13;
    else index = 1 + starts.findIndex((s, i) => i < 12 && t >= s && t < (starts[i + 1] as number));
    (bars[index] as Bar).value += 1;
  }
  return bars;
}

function countBars(values: readonly string[]): Bar[] {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m.entries()]
    .map(([label, value]) => ({ label, value }))
    .sort((a, b) => b.value - a.value || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

function ownerBars(keys: readonly ReportKey[]): Bar[] {
  const bars = countBars(keys.map((k) => k.owner ?? NO_OWNER));
  if (bars.length <= MAX_OWNERS) return bars;
  const rest = bars.slice(MAX_OWNERS - 1);
  return [
    ...bars.slice(0, MAX_OWNERS - 1),
    { label: `others (${rest.length})`, value: rest.reduce((a, b) => a + b.value, 0) },
  ];
}

function emptyByAction(): Record<Action, number> {
  return { ALLOW: 0, NOTIFY: 0, DEACTIVATE: 0, DELETE: 0 };
}

/** One bar per UTC day from the first decision's day to the last's, empty days included. */
function decisionDays(sorted: readonly Decision[]): { days: DayBar[]; truncated: boolean } {
  if (sorted.length === 0) return { days: [], truncated: false };
  const dayOf = (d: Decision) => d.decidedAt.slice(0, 10);
  const last = Date.parse(`${dayOf(sorted[sorted.length - 1] as Decision)}T00:00:00Z`);
  let first = Date.parse(`${dayOf(sorted[0] as Decision)}T00:00:00Z`);
  let truncated = false;
  if ((last - first) / DAY_MS + 1 > MAX_DAYS) {
    first = last - (MAX_DAYS - 1) * DAY_MS;
    truncated = true;
  }
  const days: DayBar[] = [];
  const index = new Map<string, DayBar>();
  for (let t = first; t <= last; t += DAY_MS) {
    const bar: DayBar = { day: new Date(t).toISOString().slice(0, 10), byAction: emptyByAction(), total: 0 };
    days.push(bar);
    index.set(bar.day, bar);
  }
  for (const d of sorted) {
    const bar = index.get(dayOf(d));
    if (!bar) continue;
    bar.byAction[d.action] += 1;
    bar.total += 1;
  }
  return { days, truncated };
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Keys, keys with violations and decisions per account, every account that has any, by account id. */
function accountBars(
  keys: readonly ReportKey[],
  decisions: readonly Decision[],
  names: ReadonlyMap<string, string> | undefined,
): AccountBar[] {
  const bars = new Map<string, AccountBar>();
  const bar = (accountId: string): AccountBar => {
    let b = bars.get(accountId);
    if (!b) {
      b = { accountId, accountName: names?.get(accountId) ?? null, keys: 0, withViolations: 0, decisions: 0 };
      bars.set(accountId, b);
    }
    return b;
  };
  for (const k of keys) {
    const b = bar(k.accountId);
    if (k.status === 'Deleted') continue;
    b.keys += 1;
    if (k.codes.length > 0) b.withViolations += 1;
  }
  for (const d of decisions) bar(d.accountId).decisions += 1;
  return [...bars.values()].sort((a, b) => byText(a.accountId, b.accountId));
}

/**
 * The accounts the chart draws: all of them up to MAX_ACCOUNT_BARS, else the ones with the most keys (then
 * violations, then decisions) and one `others (n)` bar summing the rest.
 */
export function chartedAccounts(accounts: readonly AccountBar[]): AccountBar[] {
  if (accounts.length <= MAX_ACCOUNT_BARS) return [...accounts];
  const ranked = [...accounts].sort(
    (a, b) =>
      b.keys - a.keys ||
      b.withViolations - a.withViolations ||
      b.decisions - a.decisions ||
      byText(a.accountId, b.accountId),
  );
  const rest = ranked.slice(MAX_ACCOUNT_BARS - 1);
  const others: AccountBar = {
    accountId: `others (${rest.length})`,
    accountName: null,
    keys: 0,
    withViolations: 0,
    decisions: 0,
  };
  for (const a of rest) {
    others.keys += a.keys;
    others.withViolations += a.withViolations;
    others.decisions += a.decisions;
  }
  return [...ranked.slice(0, MAX_ACCOUNT_BARS - 1), others];
}

function compareKeys(a: ReportKey, b: ReportKey): number {
  const ka = `${a.accountId}\u0000${a.userName}\u0000${a.keyId}`;
  const kb = `${b.accountId}\u0000${b.userName}\u0000${b.keyId}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Builds the report's numbers. `decisions` may come in any order; `names` are account names, where known. */
export function buildReportData(
  knownKeys: readonly KnownKey[],
  decisions: readonly Decision[],
  now: Date,
  names?: ReadonlyMap<string, string>,
): ReportData {
  const sorted = [...decisions].sort(byDecidedAt);
  const latest = new Map<string, Decision>();
  for (const d of sorted) latest.set(`${d.accountId}#${d.keyId}`, d);

  const keys: ReportKey[] = knownKeys
    .map((k) => {
      const last = latest.get(`${k.accountId}#${k.keyId}`);
      const never = keyNeverExpires(k.expiresAt);
      return {
        accountId: k.accountId,
        accountName: names?.get(k.accountId) ?? null,
        keyId: k.keyId,
        userName: k.userName,
        owner: k.owner,
        status: k.status,
        createdAt: k.createdAt,
        expiresAt: k.expiresAt,
        neverExpires: never,
        lifetimeDays: lifetimeDays(k.createdAt, k.expiresAt, never),
        codes: last ? last.violations.map((v) => v.code) : [...(k.violationCodes ?? [])],
        lastAction: last ? last.action : (k.lastAction ?? null),
        lastDecisionAt: last ? last.decidedAt : k.lastDecisionAt || null,
      };
    })
    .sort(compareKeys);

  const live = keys.filter((k) => k.status !== 'Deleted');
  const lifetime: Bar[] = LIFETIME_BUCKETS.map((label) => ({ label, value: 0 }));
  for (const k of live) {
    const bucket = lifetimeBucket(k);
    const bar = lifetime.find((b) => b.label === bucket);
    if (bar) bar.value += 1;
    else lifetime.push({ label: LIFETIME_UNKNOWN, value: 1 });
  }
  const { days, truncated } = decisionDays(sorted);
  return {
    generatedAt: now.toISOString(),
    keys,
    liveKeys: live.length,
    decisions: sorted.length,
    lifetime,
    expiry: expiryTimeline(live, now),
    owners: ownerBars(live),
    violations: countBars(live.flatMap((k) => [...new Set(k.codes)])),
    days,
    daysTruncated: truncated,
    accounts: accountBars(keys, sorted, names),
  };
}
