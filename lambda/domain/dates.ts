/**
 * Dates as IAM puts them in CloudTrail `responseElements`: ISO-8601, or CloudTrail's text form
 * `Jan 24, 2021 9:18:50 PM` / `Jan 15, 2024, 3:30:00 AM` (with or without the comma after the year,
 * always UTC). Both are accepted; anything else is rejected rather than guessed.
 */

const MONTHS: Record<string, number> = {
  jan: 0,
  feb: 1,
  mar: 2,
  apr: 3,
  may: 4,
  jun: 5,
  jul: 6,
  aug: 7,
  sep: 8,
  oct: 9,
  nov: 10,
  dec: 11,
};

const TEXT_FORM = /^([A-Za-z]{3})[a-z]*\.? (\d{1,2}), (\d{4}),? (\d{1,2}):(\d{2}):(\d{2}) ?([AaPp][Mm])$/;
const ISO_FORM = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

export class DateFormatError extends Error {
  constructor(readonly value: string) {
    super(`unrecognised date ${JSON.stringify(value)}: expected ISO-8601 or "Mon D, YYYY, h:mm:ss AM"`);
    this.name = 'DateFormatError';
  }
}

/** Parses either accepted form to a UTC ISO string. Throws DateFormatError on anything else. */
export function parseAwsDate(value: string): string {
  const s = value.trim();
  const text = TEXT_FORM.exec(s);
  if (text) {
    const [, mon, day, year, hh, mm, ss, ampm] = text as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const month = MONTHS[mon.toLowerCase()];
    let hour = Number(hh);
    if (month === undefined || hour < 1 || hour > 12) throw new DateFormatError(value);
    const pm = ampm.toLowerCase() === 'pm';
    if (hour === 12) hour = pm ? 12 : 0;
    else if (pm) hour += 12;
    const d = new Date(Date.UTC(Number(year), month, Number(day), hour, Number(mm), Number(ss)));
    if (d.getUTCDate() !== Number(day) || Number(mm) > 59 || Number(ss) > 59)
      throw new DateFormatError(value);
    return d.toISOString();
  }
  if (ISO_FORM.test(s)) {
    // Date.parse rolls 2024-02-30 over to 1 March instead of failing: check the calendar date first.
    const [year, month, day] = [Number(s.slice(0, 4)), Number(s.slice(5, 7)), Number(s.slice(8, 10))];
    const calendar = new Date(Date.UTC(year, month - 1, day));
    if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day)
      throw new DateFormatError(value);
    // A date-time without a zone is UTC in IAM's output; make that explicit so Date does not use local time
    // (for either separator: `2024-01-15 03:30:00` would otherwise be read in the host's zone).
    const normal = s.replace(' ', 'T');
    const zoned =
      /T\d{2}:\d{2}/.test(normal) && !/(Z|[+-]\d{2}:?\d{2})$/.test(normal) ? `${normal}Z` : normal;
    const ms = Date.parse(zoned);
    if (!Number.isNaN(ms)) return new Date(ms).toISOString();
  }
  throw new DateFormatError(value);
}

/** Accepts a string in either form, a Date (as the SDK returns), or nothing. */
export function toIso(value: string | Date | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  return parseAwsDate(value);
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
