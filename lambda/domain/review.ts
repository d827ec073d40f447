import { DAY_MS } from './dates';

/**
 * The review-cadence tag: how often a person must confirm a key is still needed. Accepted forms: `90d`,
 * `12w`, `6m` (months of 30 days), `1y` (365 days), case-insensitive, and ISO-8601 `P90D`/`P12W`/`P6M`/`P1Y`.
 * Anything else is not a cadence (and is reported as such, never guessed).
 */

const SHORT = /^(\d{1,4})\s*([dwmy])$/i;
const ISO = /^P(\d{1,4})([DWMY])$/i;
const UNIT_DAYS: Record<string, number> = { d: 1, w: 7, m: 30, y: 365 };

/** The cadence in days, or null when the value is not a cadence. */
export function parseCadenceDays(value: string): number | null {
  const v = value.trim();
  const m = SHORT.exec(v) ?? ISO.exec(v);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = UNIT_DAYS[(m[2] as string).toLowerCase()];
  if (!unit || n < 1) return null;
  return n * unit;
}

/** When the next review is due: the last review (or, before any, the key's creation) plus the cadence. */
export function reviewDueAt(
  cadenceDays: number,
  lastReviewAt: string | null,
  createdAt: string | null,
): Date | null {
  const since = lastReviewAt ?? createdAt;
  if (!since) return null;
  return new Date(Date.parse(since) + cadenceDays * DAY_MS);
}
