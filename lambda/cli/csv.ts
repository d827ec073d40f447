import { visible } from '../shared/visible-text';

/**
 * CSV output (`inventory --csv`, `audit --csv`): RFC 4180 records, safe to open in a spreadsheet and to print.
 * Every field can hold a tag value, a user name or a reason that someone else chose.
 */

/**
 * A field a spreadsheet could take for a formula (CWE-1236): one starting with `= + - @`, their full-width
 * forms `＝ ＋ － ＠` (U+FF1D, U+FF0B, U+FF0D, U+FF20, which some spreadsheets fold to ASCII), after any
 * leading spaces, tabs, control or invisible format characters (which importers may strip), or one starting
 * with a control character (tab, carriage return, NUL…) at all.
 */
const FORMULA_START = /^(?:[\s\p{Cc}\p{Cf}]*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]|[\p{Cc}])/u;

/**
 * Line breaks (LF, CRLF) and tabs are data in a quoted field; every other control or bidi character, a lone
 * carriage return included (it rewinds a terminal line), is shown escaped.
 */
const KEPT_RAW = /(\r\n|\n|\t)/;

/**
 * One RFC 4180 field: formula-like values get a leading apostrophe; control, bidi and invisible characters
 * other than line breaks and tabs become visible escapes (`\x00`, `\x1b`, `\u202e`, see shared/visible-text.ts);
 * quoted when it holds a comma, a quote or a line break, quotes doubled.
 */
export function csvField(value: string): string {
  const shown = value
    .split(KEPT_RAW)
    .map((part, i) => (i % 2 === 1 ? part : visible(part)))
    .join('');
  const safe = FORMULA_START.test(value) ? `'${shown}` : shown;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** One record: fields joined by commas, ended by CRLF (RFC 4180). */
export function csvRecord(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\r\n`;
}
