import { parseTimeInput } from '../shared/time-input';

/**
 * `keyguard replay --since/--until`: the time window, and the cheap tests that skip whole parts of a CloudTrail
 * S3 archive (`AWSLogs/[o-org/]<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/<file>`) by the dates in their
 * paths, before anything is read. Records are still filtered one by one by eventTime: the path tests only
 * decide what cannot hold a record of the window, with margins for how CloudTrail delivers.
 */

/** `since` inclusive, `until` exclusive, epoch milliseconds; either may be open. */
export interface ReplayWindow {
  since: number | null;
  until: number | null;
}

export const OPEN_WINDOW: ReplayWindow = { since: null, until: null };

/** A `--since`/`--until` value that is not a date, or a window that is empty. */
export class ReplayWindowError extends Error {}

/**
 * A log file's name holds the time CloudTrail wrote it; its records are from before then, usually by under
 * 15 minutes, but delivery can lag by hours. A file is skipped only when it is more than this much older than
 * `--since` ... (clock skew between services puts a record slightly after the name time) ...
 */
const AFTER_NAME_MARGIN_MS = 15 * 60_000;
/** ... or named more than this much after `--until` (records delivered late, e.g. after an outage). */
const BEFORE_NAME_MARGIN_MS = 6 * 3_600_000;

function parseInstant(option: string, value: string): number {
  const t = parseTimeInput(value);
  if (t.kind === 'date') return t.start.getTime();
  if (t.kind === 'instant') return t.at.getTime();
  throw new ReplayWindowError(
    `${option}: ${JSON.stringify(value)} is not a date; use YYYY-MM-DD (midnight UTC) or an ISO-8601 ` +
      'timestamp with a zone, e.g. 2026-11-20T09:30:00Z',
  );
}

/**
 * Parses `--since` (inclusive) and `--until` (exclusive). A date alone means midnight UTC at its start, so
 * `--since 2026-11-01 --until 2026-11-02` is the whole of 1 November.
 */
export function parseWindow(since: string | undefined, until: string | undefined): ReplayWindow {
  const window: ReplayWindow = {
    since: since === undefined ? null : parseInstant('--since', since),
    until: until === undefined ? null : parseInstant('--until', until),
  };
  if (window.since !== null && window.until !== null && window.since >= window.until) {
    throw new ReplayWindowError(
      `--since ${JSON.stringify(since)} is not before --until ${JSON.stringify(until)}: the window is empty`,
    );
  }
  return window;
}

export function isOpen(w: ReplayWindow): boolean {
  return w.since === null && w.until === null;
}

/** True when an eventTime (ISO) falls in the window. */
export function inWindow(w: ReplayWindow, eventTime: string): boolean {
  const t = Date.parse(eventTime);
  if (w.since !== null && !(t >= w.since)) return false;
  if (w.until !== null && !(t < w.until)) return false;
  return true;
}

/** True when a delivery time span [start, end) may hold records of the window. */
function spanMayHold(w: ReplayWindow, start: number, end: number): boolean {
  if (w.since !== null && end + AFTER_NAME_MARGIN_MS <= w.since) return false;
  if (w.until !== null && start - BEFORE_NAME_MARGIN_MS >= w.until) return false;
  return true;
}

const SEGMENT = /[\\/]/;
const YEAR = /^\d{4}$/;
const TWO_DIGITS = /^\d{2}$/;
/** `<account>_CloudTrail_<region>_<yyyymmdd>T<hhmm>Z_<unique>.json.gz` */
const LOG_FILE_NAME =
  /^\d{12}_CloudTrail_[a-z0-9-]+_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})Z_[A-Za-z0-9]+\.json(\.gz)?$/;

/**
 * The delivery dates a directory of the S3 layout covers: `.../CloudTrail/<region>/<yyyy>[/<mm>[/<dd>]]`, as
 * [start, end) in epoch ms; null for any other directory (it is searched whatever the window).
 */
export function directorySpan(path: string): { start: number; end: number } | null {
  const parts = path.split(SEGMENT).filter((p) => p.length > 0);
  const at = parts.lastIndexOf('CloudTrail');
  if (at < 0) return null;
  const dates = parts.slice(at + 2);
  const [y, m, d] = dates;
  if (dates.length === 0 || dates.length > 3 || y === undefined || !YEAR.test(y)) return null;
  const year = Number(y);
  if (m === undefined) return { start: Date.UTC(year, 0, 1), end: Date.UTC(year + 1, 0, 1) };
  if (!TWO_DIGITS.test(m)) return null;
  const month = Number(m) - 1;
  if (d === undefined) return { start: Date.UTC(year, month, 1), end: Date.UTC(year, month + 1, 1) };
  if (!TWO_DIGITS.test(d)) return null;
  const day = Number(d);
  return { start: Date.UTC(year, month, day), end: Date.UTC(year, month, day + 1) };
}

/** The time in a CloudTrail log file's name (epoch ms), or null for a file not named the CloudTrail way. */
export function logFileTime(name: string): number | null {
  const m = LOG_FILE_NAME.exec(name);
  if (!m) return null;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
  return Number.isFinite(ms) ? ms : null;
}

/** False only for an S3-layout date directory that cannot hold a record of the window. */
export function directoryMayHold(w: ReplayWindow, path: string): boolean {
  if (isOpen(w)) return true;
  const span = directorySpan(path);
  return span === null || spanMayHold(w, span.start, span.end);
}

/** False only for a CloudTrail-named log file that cannot hold a record of the window. */
export function logFileMayHold(w: ReplayWindow, name: string): boolean {
  if (isOpen(w)) return true;
  const t = logFileTime(name);
  return t === null || spanMayHold(w, t, t);
}
