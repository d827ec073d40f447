import { createHash } from 'node:crypto';

/**
 * Finds Amazon Bedrock API keys in text, offline. A candidate is reported only when it decodes to the documented
 * structure (bedrock-api-keys.md), so prose that mentions the prefixes, base64 noise and truncated keys are not
 * findings. Pure: no I/O, the clock is passed in.
 *
 * Candidates are found with one cheap scan (`indexOf` of the two prefixes); only candidates are decoded. The body
 * after a prefix is read through the escapes a key picks up in transit: JSON `\/` and `\u002B`/`\u002F`/`\u003D`,
 * URL encoding `%2B`/`%2F`/`%3D` (either case), and JSON line breaks `\n`/`\r` (a key wrapped inside a JSON
 * string); JSON escapes may be nested (`\\\/`: a JSON log line inside a JSON log record). The key that is
 * fingerprinted is the unescaped one, so the same key has the same fingerprint in every context.
 *
 * Work is linear in the text whatever it holds (prefix-dense text included): a body is decoded as it is read and
 * reading stops where it can no longer be a key (DecodedHead), which is never past the next `ABSK`.
 */

export type LeakKind = 'LONG_TERM' | 'SHORT_TERM';

/** A stable fingerprint of a key (a SHA-256 of the unescaped key): correlates findings without showing the key. */
export function fingerprint(secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('hex').slice(0, 16)}`;
}

/** What may be shown of a key: its prefix and last 4 characters. */
export function redactedForm(secret: string): string {
  const prefix = secret.startsWith('ABSK') ? 'ABSK' : 'bedrock-api-key-';
  return `${prefix}…${secret.slice(-4)}`;
}

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

export const LONG_PREFIX = 'ABSK';
export const SHORT_PREFIX = 'bedrock-api-key-';

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

interface BodyRead {
  /** The possible cuts, longest first. */
  cuts: BodyCut[];
  /** Everything read, whether or not it can be a key. */
  run: BodyCut;
  /** Characters of the text examined. */
  work: number;
}

/** Base64 digit values by character code (-1: not a base64 digit). */
const B64_VALUE = new Int8Array(128).fill(-1);
for (let v = 0; v < 64; v += 1) {
  B64_VALUE['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(v)] = v;
}

/** Longest IAM user name (64) + `-at-` + 12-digit account: the `:` that ends a long-term key's alias comes by here. */
const MAX_ALIAS = 64 + 4 + 12;
const LONG_TERM_ALIAS = /^[\w+=,.@-]{1,64}-at-\d{12}$/;

/**
 * What a key's body decodes to, checked quantum by quantum while it is read: every decoded byte printable ASCII
 * (`[\x21-\x7e]`: both validators demand it), and the right head (a long-term alias ended by `:`, or the
 * short-term URL prefix). The first quantum that fails it ends every key that could start here, so reading stops
 * there. This is what keeps detection linear: `ABSK` inside a base64 run decodes to a byte below 0x21 at every
 * alignment (0x00, 0x00, 0x01 or 0x05), so the body of one candidate is never read past the next `ABSK`, and a
 * short-term body (its prefix holds `-`, not base64) never runs into another short-term prefix.
 */
class DecodedHead {
  private quantum = 0;
  private digits = 0;
  private padding = 0;
  private head = '';
  private headDone = false;

  constructor(private readonly kind: LeakKind) {}

  /** Adds one unescaped base64 character (or `=`); false when no key can contain what has been read. */
  add(ch: string): boolean {
    const pad = ch === '=';
    if (pad) this.padding += 1;
    this.quantum = (this.quantum << 6) | (pad ? 0 : (B64_VALUE[ch.charCodeAt(0)] ?? 0));
    this.digits += 1;
    if (this.digits < 4) return true;
    const bytes = 3 - this.padding;
    const q = this.quantum;
    this.quantum = 0;
    this.digits = 0;
    let decoded = '';
    for (let b = 0; b < bytes; b += 1) {
      const byte = (q >> (16 - 8 * b)) & 0xff;
      if (byte < 0x21 || byte > 0x7e) return false;
      if (!this.headDone) decoded += String.fromCharCode(byte);
    }
    return this.headDone || this.checkHead(decoded);
  }

  private checkHead(decoded: string): boolean {
    this.head += decoded;
    if (this.kind === 'SHORT_TERM') {
      const n = Math.min(this.head.length, SHORT_TERM_URL_PREFIX.length);
      if (this.head.slice(0, n) !== SHORT_TERM_URL_PREFIX.slice(0, n)) return false;
      this.headDone = n === SHORT_TERM_URL_PREFIX.length;
      return true;
    }
    // The alias holds no `:`, so the first `:` ends it.
    const colon = this.head.indexOf(':');
    if (colon === -1) return this.head.length <= MAX_ALIAS;
    this.headDone = true;
    return LONG_TERM_ALIAS.test(this.head.slice(0, colon));
  }
}

/**
 * Reads the base64 body that starts at `start`, through escapes. Returns the possible cuts, longest first: the
 * whole run, then the run up to each JSON line break inside it (a key followed by `\n` and more text). Reading
 * stops where the decoded text can no longer be a key of `kind` (DecodedHead): the run past that point is not
 * a key, and no cut before it changes.
 */
function readBody(text: string, start: number, kind: LeakKind | 'ANY'): BodyRead {
  const cuts: BodyCut[] = [];
  // 'ANY': the whole escaped base64 run, however long and whatever it decodes to (redaction of key-shaped text).
  const decoded = kind === 'ANY' ? undefined : new DecodedHead(kind);
  const maxBody = kind === 'ANY' ? Number.POSITIVE_INFINITY : MAX_KEY_BODY;
  let body = '';
  let padding = 0;
  let i = start;
  let endedOnBreak = false;
  let breaks = 0;
  let dead = false;
  while (body.length <= maxBody) {
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
      } else if ((next === 'n' || next === 'r') && body.length > 0 && breaks < MAX_SOFT_BREAKS) {
        // Every break counts (not only those that make a cut), so one key's text stays within MAX_KEY_TEXT.
        breaks += 1;
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
    if (decoded && !decoded.add(ch)) {
      dead = true;
      break;
    }
  }
  // A run longer than any key, or one that stopped decoding to a key, is not one key; but a key may still end at
  // a JSON line break inside it.
  if (!dead && !endedOnBreak && body.length > 0 && body.length <= MAX_KEY_BODY) cuts.push({ body, end: i });
  return { cuts: cuts.reverse(), run: { body, end: i }, work: i - start + MAX_ESCAPE_BACKSLASHES + 6 };
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

/** Characters past the end of a body run that reading it may look at (escapes are read ahead). */
const READ_AHEAD = MAX_ESCAPE_BACKSLASHES + 6;

function candidateAt(
  text: string,
  index: number,
  kind: LeakKind,
  now: Date,
  work: DetectionWork,
  extent?: { readTo: number },
): Located | undefined {
  const prefix = kind === 'LONG_TERM' ? LONG_PREFIX : SHORT_PREFIX;
  const read = readBody(text, index + prefix.length, kind);
  work.units += read.work;
  if (extent) extent.readTo = read.run.end + READ_AHEAD;
  for (const cut of read.cuts) {
    // Validation decodes the cut: count it (a cut of the wrong length is refused before decoding).
    if (cut.body.length % 4 === 0) work.units += cut.body.length;
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

/** A key found at a given place, without its line and column (the caller counts lines: see leakAt). */
export type LeakAt = Omit<LeakSpan, 'line' | 'column'>;

/**
 * The key whose prefix (`ABSK` or `bedrock-api-key-`, as `kind` says) starts at `index` in `text`, if it is one,
 * and `readTo`: the end of the stretch of `text` read to decide. A scanner that searches raw bytes for the
 * prefixes decodes only a window after each one: when `readTo` is past the window's end (and the window is not
 * the end of the input), the answer may change with more text, so it asks again with a larger window.
 */
export function leakAt(
  text: string,
  index: number,
  kind: LeakKind,
  opts: { now: Date; work?: DetectionWork },
): { leak: LeakAt | undefined; readTo: number } {
  const extent = { readTo: 0 };
  const hit = candidateAt(text, index, kind, opts.now, opts.work ?? { units: 0 }, extent);
  if (!hit) return { leak: undefined, readTo: extent.readTo };
  return {
    leak: {
      kind,
      fingerprint: fingerprint(hit.key),
      redacted: redactedForm(hit.key),
      ...(hit.longTerm ? { longTerm: hit.longTerm } : {}),
      ...(hit.shortTerm ? { shortTerm: hit.shortTerm } : {}),
      index,
      end: hit.end,
    },
    readTo: extent.readTo,
  };
}

/**
 * Work units spent by detection: characters of the text examined (searching for prefixes, reading key bodies)
 * plus characters decoded to validate them. Detection is linear: `units` stays within a small constant times the
 * text's length, whatever the text (tests assert it on adversarial inputs, without timing anything).
 */
export interface DetectionWork {
  units: number;
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

/** `findLeaks` with each key's span in the text. `opts.work`, when given, is increased by the work spent. */
export function findLeakSpans(text: string, opts: { now: Date; work?: DetectionWork }): LeakSpan[] {
  const work = opts.work ?? { units: 0 };
  const found: LeakSpan[] = [];
  let from = 0;
  // Each search starts past the previous one's result, so the searches together read the text about once.
  const search = (prefix: string): number => {
    const at = text.indexOf(prefix, from);
    work.units += (at === -1 ? text.length : at) - from + prefix.length;
    return at;
  };
  let nextLong = search(LONG_PREFIX);
  let nextShort = search(SHORT_PREFIX);
  // Line counting is incremental: each line break is found once (`nextNl`: the first one not yet counted, -1
  // when there is none left), however many findings share a line.
  let line = 1;
  let lineStart = 0;
  let nextNl: number | undefined;
  const findNl = (at: number): number => {
    const nl = text.indexOf('\n', at);
    work.units += (nl === -1 ? text.length : nl + 1) - at;
    return nl;
  };
  while (nextLong !== -1 || nextShort !== -1) {
    const kind: LeakKind =
      nextShort === -1 || (nextLong !== -1 && nextLong < nextShort) ? 'LONG_TERM' : 'SHORT_TERM';
    const index = kind === 'LONG_TERM' ? nextLong : nextShort;
    const hit = candidateAt(text, index, kind, opts.now, work);
    from = hit ? hit.end : index + 1;
    if (hit) {
      nextNl ??= findNl(0);
      while (nextNl !== -1 && nextNl < index) {
        line += 1;
        lineStart = nextNl + 1;
        nextNl = findNl(lineStart);
      }
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
    if (nextLong !== -1 && nextLong < from) nextLong = search(LONG_PREFIX);
    if (nextShort !== -1 && nextShort < from) nextShort = search(SHORT_PREFIX);
  }
  return found;
}

/** Unescaped base64 characters after a prefix from which a run is redacted though it is no valid key (truncated). */
const MIN_SHAPED_BODY: Record<LeakKind, number> = { LONG_TERM: 40, SHORT_TERM: 20 };

/** A stretch of text that holds key material, with what may be shown in its place. */
export interface KeyMaterialSpan {
  index: number;
  end: number;
  redacted: string;
  fingerprint: string;
}

/**
 * Every stretch of `text` to redact, in order, not overlapping: each key `findLeakSpans` finds (in every context
 * it reads: escapes, line breaks), and around them anything key-shaped though not a valid key (a truncated or
 * altered key): a prefix followed by at least 40 (`ABSK`) or 20 (short-term) base64 characters, read through the
 * same escapes. Linear in the text, as detection is.
 */
export function findKeyMaterial(text: string): KeyMaterialSpan[] {
  const out: KeyMaterialSpan[] = [];
  let pos = 0;
  const shaped = (limit: number): void => {
    // Runs are read only up to `limit` (the next key's start), so a key keeps its own fingerprint.
    const within = text.slice(0, limit);
    let nextLong = within.indexOf(LONG_PREFIX, pos);
    let nextShort = within.indexOf(SHORT_PREFIX, pos);
    while (nextLong !== -1 || nextShort !== -1) {
      const kind: LeakKind =
        nextShort === -1 || (nextLong !== -1 && nextLong < nextShort) ? 'LONG_TERM' : 'SHORT_TERM';
      const index = kind === 'LONG_TERM' ? nextLong : nextShort;
      const prefix = kind === 'LONG_TERM' ? LONG_PREFIX : SHORT_PREFIX;
      const { run } = readBody(within, index + prefix.length, 'ANY');
      let from = index + 1;
      if (run.body.length >= MIN_SHAPED_BODY[kind]) {
        const key = prefix + run.body;
        out.push({ index, end: run.end, redacted: redactedForm(key), fingerprint: fingerprint(key) });
        from = run.end;
      }
      if (nextLong !== -1 && nextLong < from) nextLong = within.indexOf(LONG_PREFIX, from);
      if (nextShort !== -1 && nextShort < from) nextShort = within.indexOf(SHORT_PREFIX, from);
    }
    pos = limit;
  };
  // Whether a short-term key has expired does not matter here: any instant will do.
  for (const span of findLeakSpans(text, { now: new Date(0) })) {
    shaped(span.index);
    out.push({ index: span.index, end: span.end, redacted: span.redacted, fingerprint: span.fingerprint });
    pos = span.end;
  }
  shaped(text.length);
  return out;
}
