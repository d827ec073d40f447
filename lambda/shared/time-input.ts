/**
 * The one reading of a time given on the command line (`replay --since/--until`, `audit --since/--until`,
 * `approve --until`): a calendar date `YYYY-MM-DD` (UTC), or an ISO-8601 timestamp that names its zone (`Z` or an
 * offset), so nobody's local clock moves the moment. Each command decides what a date means (start or end of the
 * day) and words its own error.
 */

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

export type TimeInput =
  /** A calendar date: `start` is its midnight UTC. */
  | { kind: 'date'; start: Date }
  | { kind: 'instant'; at: Date }
  /** Shaped like a date, but no such day (2026-02-30). */
  | { kind: 'bad-date' }
  /** Shaped like a timestamp, but no such day or time. */
  | { kind: 'bad-timestamp' }
  | { kind: 'unrecognised' };

function calendarDay(y: string, m: string, d: string): Date | null {
  const day = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  const same =
    day.getUTCFullYear() === Number(y) &&
    day.getUTCMonth() === Number(m) - 1 &&
    day.getUTCDate() === Number(d);
  return same ? day : null;
}

export function parseTimeInput(value: string): TimeInput {
  const v = value.trim();
  const date = DATE_ONLY.exec(v);
  if (date) {
    const start = calendarDay(date[1] as string, date[2] as string, date[3] as string);
    return start ? { kind: 'date', start } : { kind: 'bad-date' };
  }
  const stamp = TIMESTAMP.exec(v);
  if (stamp) {
    const ms = Date.parse(v);
    const valid = calendarDay(stamp[1] as string, stamp[2] as string, stamp[3] as string) !== null;
    return valid && !Number.isNaN(ms) ? { kind: 'instant', at: new Date(ms) } : { kind: 'bad-timestamp' };
  }
  return { kind: 'unrecognised' };
}

/** The last millisecond of the UTC day that starts at `start`. */
export function endOfDay(start: Date): Date {
  return new Date(start.getTime() + 86_400_000 - 1);
}
