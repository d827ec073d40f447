import { fingerprint, redactedForm } from '../shared/redact';

/**
 * Finds Amazon Bedrock API keys in text, offline. A candidate is reported only when it decodes to the documented
 * structure (bedrock-api-keys.md), so prose that mentions the prefixes, base64 noise and truncated keys are not
 * findings. Pure: no I/O, the clock is passed in.
 *
 * Candidates are found with one cheap scan (`indexOf` of the two prefixes); only candidates are decoded. The body
 * after a prefix is read through the escapes a key picks up in transit: JSON `\/` and `\u002B`/`\u002F`/`\u003D`,
 * URL encoding `%2B`/`%2F`/`%3D` (either case), and JSON line breaks `\n`/`\r` (a key wrapped inside a JSON
 * string); JSON escapes may be nested (`\\\/`: a JSON log line inside a JSON log record). The key that is fingerprinted is the unescaped one, so the same key has the same fingerprint in every
 * context.
 */

export type LeakKind = 'LONG_TERM' | 'SHORT_TERM';

export interface LongTermFacts {
  userName: string;
  accountId: string;
  alias: string;
}

export interface ShortTermFacts {
  accessKeyId: string;
  region: string;
  signedAt: string;
  expiresInSeconds: number;
  expiresAt: string;
  expired: boolean;
  hasSessionToken: boolean;
}

export interface LeakFinding {
  kind: LeakKind;
  line: number;
  column: number;
  fingerprint: string;
  redacted: string;
  longTerm?: LongTermFacts;
  shortTerm?: ShortTermFacts;
}

const LONG_PREFIX = 'ABSK';
const SHORT_PREFIX = 'bedrock-api-key-';

/**
 * Longest key body (unescaped base64 characters) considered: a short-term key with a long session token is about
 * 2,000; anything longer is not a key. Bounds the work per candidate.
 */
export const MAX_KEY_BODY = 8192;

/** Backslashes read before an escaped character: up to three levels of JSON nesting (1, 3, 7). */
const MAX_ESCAPE_BACKSLASHES = 7;

/**
 * Longest stretch of text one key can occupy (every body character escaped as `\\\\\\\u002F`, plus prefix
 * and line breaks): a streaming scanner that keeps this much overlap between chunks sees every key whole.
 */
export const MAX_KEY_TEXT = MAX_KEY_BODY * (MAX_ESCAPE_BACKSLASHES + 5) + 1024;

const MAX_SOFT_BREAKS = 64;

/** IAM user names: `[\w+=,.@-]{1,64}`; the alias is `<user>-at-<12-digit account>`; the secret printable ASCII. */
const LONG_TERM_DECODED = /^([\w+=,.@-]{1,64})-at-(\d{12}):([\x21-\x7e]+)$/;
const SHORT_TERM_URL_PREFIX = 'bedrock.amazonaws.com/?';
const PRINTABLE = /^[\x21-\x7e]+$/;
const AKID = /^(?:AKIA|ASIA)[A-Z0-9]{16}$/;
/** `us-east-1`, `us-gov-west-1`, `cn-north-1`, `eusc-de-east-1`. */
const REGION = /^[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SIGNATURE = /^[0-9a-f]{64}$/;
const MAX_EXPIRES = 43200;

function isB64Char(c: number): boolean {
  return (
    (c >= 65 && c <= 90) || // A-Z
    (c >= 97 && c <= 122) || // a-z
    (c >= 48 && c <= 57) || // 0-9
    c === 43 || // +
    c === 47 // /
  );
}

/** `%2B` → `+`, `%2F` → `/`, `%3D` → `=` (either case); anything else is not part of a key. */
function percentEscape(text: string, i: number): string | undefined {
  const code = text.slice(i + 1, i + 3).toUpperCase();
  if (code === '2B') return '+';
  if (code === '2F') return '/';
  if (code === '3D') return '=';
  return undefined;
}

function unicodeEscape(text: string, i: number): string | undefined {
  const code = text.slice(i + 2, i + 6).toLowerCase();
  if (code === '002b') return '+';
  if (code === '002f') return '/';
  if (code === '003d') return '=';
  return undefined;
}

interface BodyCut {
  /** Unescaped base64. */
  body: string;
  /** Index in the text just past the last character of this cut. */
  end: number;
}

/**
 * Reads the base64 body that starts at `start`, through escapes. Returns the possible cuts, longest first: the
 * whole run, then the run up to each JSON line break inside it (a key followed by `\n` and more text).
 */
function readBody(text: string, start: number): BodyCut[] {
  const cuts: BodyCut[] = [];
  let body = '';
  let padding = 0;
  let i = start;
  let endedOnBreak = false;
  while (body.length <= MAX_KEY_BODY) {
    const c = text.charCodeAt(i);
    let ch: string | undefined;
    let width = 1;
    if (isB64Char(c)) {
      if (padding > 0) break;
      ch = text[i];
    } else if (c === 61 /* = */) {
      ch = '=';
    } else if (c === 37 /* % */) {
      ch = percentEscape(text, i);
      width = 3;
      if (ch !== '=' && ch !== undefined && padding > 0) break;
    } else if (c === 92 /* \ */) {
      // One backslash per level of JSON nesting (a JSON log line inside a JSON log record doubles them).
      let slashes = 1;
      while (slashes < MAX_ESCAPE_BACKSLASHES && text.charCodeAt(i + slashes) === 92) slashes += 1;
      const next = text[i + slashes];
      if (next === '/') {
        if (padding > 0) break;
        ch = '/';
        width = slashes + 1;
      } else if (next === 'u') {
        ch = unicodeEscape(text, i + slashes - 1);
        width = slashes + 5;
        if (ch !== '=' && ch !== undefined && padding > 0) break;
      } else if ((next === 'n' || next === 'r') && body.length > 0 && cuts.length < MAX_SOFT_BREAKS) {
        if (!endedOnBreak) cuts.push({ body, end: i });
        endedOnBreak = true;
        i += slashes + 1;
        continue;
      }
    }
    if (ch === undefined) break;
    if (ch === '=') {
      if (padding >= 2) break;
      padding += 1;
    }
    body += ch;
    i += width;
    endedOnBreak = false;
  }
  // A run longer than any key is not one key, but a key may still end at a JSON line break inside it.
  if (!endedOnBreak && body.length > 0 && body.length <= MAX_KEY_BODY) cuts.push({ body, end: i });
  return cuts.reverse();
}

/** Strict base64: length a multiple of 4, padding only at the end, no stray bits (it re-encodes to itself). */
function strictBase64(body: string): Buffer | undefined {
  if (body.length === 0 || body.length % 4 !== 0) return undefined;
  const buf = Buffer.from(body, 'base64');
  return buf.toString('base64') === body ? buf : undefined;
}

function longTermFacts(body: string): LongTermFacts | undefined {
  const bytes = strictBase64(body);
  if (!bytes) return undefined;
  const m = LONG_TERM_DECODED.exec(bytes.toString('latin1'));
  if (!m?.[1] || !m[2]) return undefined;
  return { userName: m[1], accountId: m[2], alias: `${m[1]}-at-${m[2]}` };
}

function validDate(y: number, mo: number, d: number, h = 0, mi = 0, s = 0): Date | undefined {
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  const ok =
    t.getUTCFullYear() === y &&
    t.getUTCMonth() === mo - 1 &&
    t.getUTCDate() === d &&
    t.getUTCHours() === h &&
    t.getUTCMinutes() === mi &&
    t.getUTCSeconds() === s;
  return ok ? t : undefined;
}

function queryParams(query: string): Map<string, string> | undefined {
  const params = new Map<string, string>();
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return undefined;
    const name = pair.slice(0, eq);
    if (params.has(name)) return undefined;
    try {
      params.set(name, decodeURIComponent(pair.slice(eq + 1)));
    } catch {
      return undefined;
    }
  }
  return params;
}

function shortTermFacts(body: string, now: Date): ShortTermFacts | undefined {
  const bytes = strictBase64(body);
  if (!bytes) return undefined;
  const url = bytes.toString('latin1');
  if (!url.startsWith(SHORT_TERM_URL_PREFIX) || !PRINTABLE.test(url)) return undefined;
  const q = queryParams(url.slice(SHORT_TERM_URL_PREFIX.length));
  if (!q) return undefined;
  if (q.get('Action') !== 'CallWithBearerToken') return undefined;
  if (q.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return undefined;
  if (q.get('Version') !== '1') return undefined;
  if (!SIGNATURE.test(q.get('X-Amz-Signature') ?? '')) return undefined;

  const scope = (q.get('X-Amz-Credential') ?? '').split('/');
  if (scope.length !== 5) return undefined;
  const [accessKeyId = '', scopeDate = '', region = '', service, terminator] = scope;
  if (!AKID.test(accessKeyId) || !REGION.test(region)) return undefined;
  if (service !== 'bedrock' || terminator !== 'aws4_request') return undefined;

  const d = AMZ_DATE.exec(q.get('X-Amz-Date') ?? '');
  if (!d) return undefined;
  const [, y, mo, dd, h, mi, s] = d.map(Number) as number[];
  const signed = validDate(y ?? 0, mo ?? 0, dd ?? 0, h, mi, s);
  if (!signed || (q.get('X-Amz-Date') ?? '').slice(0, 8) !== scopeDate) return undefined;

  const expiresText = q.get('X-Amz-Expires') ?? '';
  if (!/^\d{1,5}$/.test(expiresText)) return undefined;
  const expiresInSeconds = Number(expiresText);
  if (expiresInSeconds < 1 || expiresInSeconds > MAX_EXPIRES) return undefined;

  const expiresAt = new Date(signed.getTime() + expiresInSeconds * 1000);
  return {
    accessKeyId,
    region,
    signedAt: signed.toISOString(),
    expiresInSeconds,
    expiresAt: expiresAt.toISOString(),
    expired: now.getTime() >= expiresAt.getTime(),
    hasSessionToken: (q.get('X-Amz-Security-Token') ?? '').length > 0,
  };
}

interface Located {
  kind: LeakKind;
  key: string;
  index: number;
  end: number;
  longTerm?: LongTermFacts;
  shortTerm?: ShortTermFacts;
}

function candidateAt(text: string, index: number, kind: LeakKind, now: Date): Located | undefined {
  const prefix = kind === 'LONG_TERM' ? LONG_PREFIX : SHORT_PREFIX;
  for (const cut of readBody(text, index + prefix.length)) {
    if (kind === 'LONG_TERM') {
      const longTerm = longTermFacts(cut.body);
      if (longTerm) return { kind, key: prefix + cut.body, index, end: cut.end, longTerm };
    } else {
      const shortTerm = shortTermFacts(cut.body, now);
      if (shortTerm) return { kind, key: prefix + cut.body, index, end: cut.end, shortTerm };
    }
  }
  return undefined;
}

/** A finding with where its key lies in the text: `[index, end)` (used to stream text in overlapping chunks). */
export interface LeakSpan extends LeakFinding {
  index: number;
  end: number;
}

/**
 * Every Bedrock API key in `text`, in order of appearance. `line` and `column` are 1-based and point at the
 * key's first character in `text` as given (columns count UTF-16 code units). A short-term key's `expired` is
 * judged at `opts.now`. A finding never holds the key: only its fingerprint and redacted form.
 */
export function findLeaks(text: string, opts: { now: Date }): LeakFinding[] {
  return findLeakSpans(text, opts).map(({ index: _index, end: _end, ...finding }) => finding);
}

/** `findLeaks` with each key's span in the text. */
export function findLeakSpans(text: string, opts: { now: Date }): LeakSpan[] {
  const found: LeakSpan[] = [];
  let from = 0;
  let nextLong = text.indexOf(LONG_PREFIX, from);
  let nextShort = text.indexOf(SHORT_PREFIX, from);
  // Line counting is incremental: from the last counted position to the next finding.
  let line = 1;
  let lineStart = 0;
  let counted = 0;
  while (nextLong !== -1 || nextShort !== -1) {
    const kind: LeakKind =
      nextShort === -1 || (nextLong !== -1 && nextLong < nextShort) ? 'LONG_TERM' : 'SHORT_TERM';
    const index = kind === 'LONG_TERM' ? nextLong : nextShort;
    const hit = candidateAt(text, index, kind, opts.now);
    from = hit ? hit.end : index + 1;
    if (hit) {
      for (let nl = text.indexOf('\n', counted); nl !== -1 && nl < index; nl = text.indexOf('\n', nl + 1)) {
        line += 1;
        lineStart = nl + 1;
      }
      counted = index;
      found.push({
        kind,
        line,
        column: index - lineStart + 1,
        fingerprint: fingerprint(hit.key),
        redacted: redactedForm(hit.key),
        ...(hit.longTerm ? { longTerm: hit.longTerm } : {}),
        ...(hit.shortTerm ? { shortTerm: hit.shortTerm } : {}),
        index,
        end: hit.end,
      });
    }
    if (nextLong !== -1 && nextLong < from) nextLong = text.indexOf(LONG_PREFIX, from);
    if (nextShort !== -1 && nextShort < from) nextShort = text.indexOf(SHORT_PREFIX, from);
  }
  return found;
}
