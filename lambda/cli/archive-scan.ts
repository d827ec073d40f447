import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import {
  describeJsonError,
  type Entry,
  type InputFile,
  type InputProblem,
  type Item,
  isLineDelimited,
  itemsOf,
  loadBytes,
  messageOf,
  textOf,
} from './inputs';

/**
 * One input file of `keyguard replay`, scanned for the few records that can matter: IAM events about Bedrock
 * keys and their users. In a CloudTrail archive they are perhaps one record in tens of thousands, so each
 * record is first judged from its raw text (does it mention `iam.amazonaws.com` and, as a quoted string, one
 * of the followed event names?) and only the candidates are parsed. A record failing that test cannot be
 * relevant: its eventSource and eventName are in its text. Candidates may still be irrelevant (the caller
 * classifies them); what is skipped never is. Bedrock calls made with an API key (flow 3) are judged the same
 * way (a Bedrock eventSource and a bearer-token field in the text; see ScanFilter.usage).
 *
 * This module imports nothing heavy (no zod, no SDK): it runs in worker threads (archive-worker-main.ts).
 */

/** What a candidate must mention. */
export interface ScanFilter {
  source: string;
  eventNames: readonly string[];
  /**
   * Bedrock calls made with an API key (flow 3: a Bedrock eventSource and `callWithBearerToken` or
   * `bearerTokenType` in the text): `keep` parses them as candidates. Bedrock calls without either word (SigV4)
   * are `not-bearer-token`, unparsed.
   * @default none: Bedrock calls are `not-iam`, like any other record
   */
  usage?: 'keep';
}

/** Why a record was skipped without parsing (the replay summary's ignore reasons). */
export type SkipReason = 'not-iam' | 'unsupported-event' | 'not-bearer-token';

/**
 * A Bedrock (runtime or mantle) eventSource, in a record's text: plain or pretty-printed, or escaped inside a
 * JSON string (Lake eventJson, LookupEvents CloudTrailEvent).
 */
const BEDROCK_SOURCE = /eventSource\\?"\s*:\s*\\?"bedrock(?:-mantle)?\.amazonaws\.com\\?"/;
/** Either field marks a bearer-token call (describeUsage accepts a token type without the flag). */
const BEARER_MARKS = ['callWithBearerToken', 'bearerTokenType'] as const;
/** Every Bedrock source contains this: records without it are not read further. */
const BEDROCK_WORD = 'bedrock';

export interface FileScan {
  /** The candidate entries, parsed, in file order. */
  entries: Entry[];
  problems: InputProblem[];
  /** Records (or NDJSON lines) seen, skipped or not. */
  records: number;
  /** Records skipped from their text alone, by reason. */
  skipped: Record<SkipReason, number>;
  /** Records turned into objects by JSON.parse. */
  parsed: number;
}

/**
 * Records parsed in this process since it started (worker threads' counts are added when their results
 * arrive): what the cheap test saves is visible, and testable, here.
 */
export const parseCounter = { records: 0 };

/**
 * Files scanned (read and, when gzipped, decompressed) in this process since it started; worker threads' files
 * are added when their results arrive. Replay reads each input once: this makes that testable.
 */
export const scanCounter = { files: 0 };

class Scan {
  readonly result: FileScan = {
    entries: [],
    problems: [],
    records: 0,
    skipped: { 'not-iam': 0, 'unsupported-event': 0, 'not-bearer-token': 0 },
    parsed: 0,
  };
  private readonly quoted: string[];

  constructor(
    readonly file: InputFile,
    readonly filter: ScanFilter,
  ) {
    // `"Name"` in a record; `"Name\` where the record is itself a JSON string (Lake eventJson, LookupEvents
    // CloudTrailEvent, read as raw NDJSON text), whose quotes are escaped.
    this.quoted = filter.eventNames.flatMap((n) => [`"${n}"`, `"${n}\\`]);
  }

  problem(line: number | null, reason: string): void {
    this.result.problems.push({ path: this.file.display, line, reason });
  }

  skip(reason: SkipReason): void {
    this.result.skipped[reason] += 1;
  }

  parsedOne(n = 1): void {
    this.result.parsed += n;
    parseCounter.records += n;
  }

  /** The cheap test on one record's text: why it cannot matter, or null for a candidate. */
  cheapReason(text: string): SkipReason | null {
    if (!text.includes(this.filter.source)) return this.usageReason(text);
    for (const q of this.quoted) if (text.includes(q)) return null;
    return 'unsupported-event';
  }

  /** The cheap test for a record that does not mention IAM's source: a Bedrock call with an API key? */
  usageReason(text: string): SkipReason | null {
    const usage = this.filter.usage;
    if (usage === undefined || !text.includes(BEDROCK_WORD) || !BEDROCK_SOURCE.test(text)) return 'not-iam';
    return BEARER_MARKS.some((m) => text.includes(m)) ? null : 'not-bearer-token';
  }

  /** Items of one decoded value; records held as JSON strings are parsed only when they are candidates. */
  take(items: readonly Item[]): void {
    for (const item of items) {
      this.result.records += 1;
      if (item.kind === 'entry') {
        this.result.entries.push(item.entry);
        continue;
      }
      const why = this.cheapReason(item.json);
      if (why) {
        this.skip(why);
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(item.json);
      } catch (err) {
        this.problem(item.line, `embedded record: ${describeJsonError(err, item.json)}`);
        continue;
      }
      this.parsedOne();
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        this.result.entries.push({
          envelope: 'record',
          value: value as Record<string, unknown>,
          line: item.line,
        });
      } else {
        this.problem(item.line, 'embedded record is not a JSON object');
      }
    }
  }

  /** Counts the records an item list holds that were parsed with their container. */
  static parsedIn(items: readonly Item[]): number {
    return items.reduce((n, i) => n + (i.kind === 'entry' ? 1 : 0), 0);
  }

  /**
   * One line of NDJSON. A line that is one JSON object (starts with `{`, ends with `}`) and fails the cheap
   * test is counted and skipped; anything else is parsed, so a broken line is still reported with its number.
   */
  line(raw: string, line: number): void {
    const text = raw.trim();
    if (text.length === 0) return;
    if (text.startsWith('{') && text.endsWith('}')) {
      const why = this.cheapReason(text);
      if (why) {
        this.result.records += 1;
        this.skip(why);
        return;
      }
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.problem(line, describeJsonError(err, text));
      return;
    }
    const items: Item[] = [];
    const why = itemsOf(value, line, items);
    if (why) {
      this.problem(line, why);
      return;
    }
    this.parsedOne(Scan.parsedIn(items));
    this.take(items);
  }

  /** A whole document: a CloudTrail log file, an event, a record, a Lake or LookupEvents export. */
  document(bytes: Buffer): void {
    const spans = splitRecords(bytes);
    if (spans !== null && this.records(bytes, spans)) return;
    const text = textOf(bytes);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      // `.json` files holding one event per line are common (e.g. saved EventBridge events).
      if (looksLineDelimited(text)) {
        this.lines(text);
        return;
      }
      this.problem(null, describeJsonError(err, text));
      return;
    }
    const items: Item[] = [];
    const why = itemsOf(value, null, items);
    // A file of an unknown shape is rejected whole, rather than replayed in part.
    if (why) {
      this.problem(null, why);
      return;
    }
    this.parsedOne(Scan.parsedIn(items));
    this.take(items);
  }

  /**
   * The records of a `{"Records": [...]}` file, from their spans: only the candidates are parsed. Returns
   * false (and changes nothing) when a candidate is not valid JSON, so the caller parses the whole file and
   * reports where it breaks.
   */
  private records(bytes: Buffer, spans: readonly number[]): boolean {
    // One pass over the file for the source; only the records that have it are decoded and looked at again.
    const iam = occurrences(bytes, this.filter.source);
    // Bedrock records are looked at only when usage is followed (most archives hold many SigV4 calls).
    const bedrock = this.filter.usage === undefined ? [] : occurrences(bytes, BEDROCK_WORD);
    const found: Entry[] = [];
    const skipped = { ...this.result.skipped };
    let a = 0;
    let b = 0;
    for (let k = 0; k < spans.length; k += 2) {
      const start = spans[k] as number;
      const end = spans[k + 1] as number;
      while (a < iam.length && (iam[a] as number) < start) a++;
      while (b < bedrock.length && (bedrock[b] as number) < start) b++;
      const hasIam = a < iam.length && (iam[a] as number) < end;
      const hasBedrock = b < bedrock.length && (bedrock[b] as number) < end;
      if (!hasIam && !hasBedrock) {
        skipped['not-iam'] += 1;
        continue;
      }
      const record = bytes.toString('utf8', start, end);
      const why = hasIam
        ? this.quoted.some((q) => record.includes(q))
          ? null
          : 'unsupported-event'
        : this.usageReason(record);
      if (why) {
        skipped[why] += 1;
        continue;
      }
      try {
        found.push({ envelope: 'record', value: JSON.parse(record) as Record<string, unknown>, line: null });
      } catch {
        return false;
      }
    }
    this.result.records += spans.length / 2;
    this.result.skipped = skipped;
    this.parsedOne(found.length);
    this.result.entries.push(...found);
    return true;
  }

  private lines(text: string): void {
    let start = 0;
    let line = 0;
    while (start <= text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      line += 1;
      this.line(text.slice(start, end), line);
      start = end + 1;
    }
  }
}

/** Start offsets of every occurrence of the needle, in order. */
function occurrences(bytes: Buffer, needle: string): number[] {
  const at: number[] = [];
  const n = Buffer.from(needle, 'utf8');
  for (let i = bytes.indexOf(n); i >= 0; i = bytes.indexOf(n, i + n.length)) at.push(i);
  return at;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

const RECORDS_KEY = 'Records';

function hasBom(b: Uint8Array): boolean {
  return b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;
}

function isAscii(b: Uint8Array, start: number, end: number, ascii: string): boolean {
  if (end - start !== ascii.length) return false;
  for (let k = 0; k < ascii.length; k++) if (b[start + k] !== ascii.charCodeAt(k)) return false;
  return true;
}

function skipWs(b: Uint8Array, i: number): number {
  let j = i;
  for (;;) {
    const c = b[j];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) j++;
    else return j;
  }
}

/** The index of the quote closing the string opened at `i`, or -1. */
function stringEnd(b: Uint8Array, i: number): number {
  const len = b.length;
  let k = i + 1;
  for (;;) {
    while (k < len && b[k] !== QUOTE) k++;
    if (k >= len) return -1;
    let n = 0;
    while (b[k - 1 - n] === BACKSLASH) n++;
    if (n % 2 === 0) return k;
    k += 1;
  }
}

/** The index just past the JSON value starting at `i` (structure only, not validated), or -1. */
function valueEnd(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c === QUOTE) {
    const e = stringEnd(b, i);
    return e < 0 ? -1 : e + 1;
  }
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    let j = i;
    while (j < b.length) {
      const d = b[j];
      if (d === QUOTE) {
        const e = stringEnd(b, j);
        if (e < 0) return -1;
        j = e + 1;
        continue;
      }
      if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
      else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) return j + 1;
      }
      j++;
    }
    return -1;
  }
  let j = i;
  while (j < b.length) {
    const d = b[j];
    if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || d === 0x20 || d === 0x0a || d === 0x0d)
      break;
    j++;
  }
  return j > i ? j : -1;
}

/**
 * The spans (start, end byte offsets) of the records of a `{"Records": [...]}` document, found from its
 * structure without decoding or parsing it; null when it is not such a document (or is broken: JSON.parse then
 * says where). Works on UTF-8 bytes: JSON's structural characters never occur inside a multi-byte character.
 */
export function splitRecords(b: Uint8Array): number[] | null {
  let i = skipWs(b, hasBom(b) ? 3 : 0);
  if (b[i] !== OPEN_BRACE) return null;
  i = skipWs(b, i + 1);
  let spans: number[] | null = null;
  if (b[i] === CLOSE_BRACE) return null;
  for (;;) {
    if (b[i] !== QUOTE) return null;
    const keyEnd = stringEnd(b, i);
    if (keyEnd < 0) return null;
    const isRecords = isAscii(b, i + 1, keyEnd, RECORDS_KEY);
    i = skipWs(b, keyEnd + 1);
    if (b[i] !== COLON) return null;
    i = skipWs(b, i + 1);
    if (isRecords) {
      if (spans !== null || b[i] !== OPEN_BRACKET) return null;
      spans = [];
      i = skipWs(b, i + 1);
      if (b[i] === CLOSE_BRACKET) i += 1;
      else {
        for (;;) {
          if (b[i] !== OPEN_BRACE) return null;
          const end = valueEnd(b, i);
          if (end < 0) return null;
          spans.push(i, end);
          i = skipWs(b, end);
          const c = b[i];
          if (c === CLOSE_BRACKET) {
            i += 1;
            break;
          }
          if (c !== COMMA) return null;
          i = skipWs(b, i + 1);
        }
      }
    } else {
      const end = valueEnd(b, i);
      if (end < 0) return null;
      i = end;
    }
    i = skipWs(b, i);
    const c = b[i];
    if (c === CLOSE_BRACE) break;
    if (c !== COMMA) return null;
    i = skipWs(b, i + 1);
  }
  if (skipWs(b, i + 1) !== b.length) return null;
  return spans;
}

/** True when the first non-blank line is a JSON object on its own (newline-delimited JSON). */
function looksLineDelimited(text: string): boolean {
  const trimmed = text.trimStart();
  const nl = trimmed.indexOf('\n');
  if (nl < 0 || trimmed.slice(nl + 1).trim().length === 0) return false;
  try {
    return JSON.parse(trimmed.slice(0, nl)) !== null && trimmed.startsWith('{');
  } catch {
    return false;
  }
}

async function startsWithGzipMagic(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/**
 * NDJSON, streamed line by line through gunzip: memory stays at one line whatever the file's size. A read or
 * decompression error ends the file with a problem; the lines before it count.
 */
async function streamLines(scan: Scan): Promise<void> {
  const { file } = scan;
  let gzip: boolean;
  try {
    gzip = await startsWithGzipMagic(file.absolute);
  } catch (err) {
    scan.problem(null, `cannot read: ${messageOf(err)}`);
    return;
  }
  if (!gzip && file.display.toLowerCase().endsWith('.gz')) {
    scan.problem(null, 'cannot decompress (gzip): not in gzip format');
    return;
  }
  const raw = createReadStream(file.absolute);
  let input: Readable = raw;
  let failure: string | null = null;
  raw.on('error', (err) => {
    failure ??= `cannot read: ${messageOf(err)}`;
    input.destroy();
  });
  if (gzip) {
    const gunzip = createGunzip();
    gunzip.on('error', (err) => {
      failure ??= `cannot decompress (gzip): ${messageOf(err)}`;
    });
    input = raw.pipe(gunzip);
  }
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  try {
    for await (const l of lines) {
      n += 1;
      scan.line(n === 1 && l.charCodeAt(0) === 0xfeff ? l.slice(1) : l, n);
    }
  } catch (err) {
    failure ??= messageOf(err);
  }
  if (failure !== null) scan.problem(null, failure);
}

/**
 * A `.json` file larger than this (on disk) is first peeked at: when it is newline-delimited JSON it is
 * streamed like `.jsonl`, so memory does not grow with it. Smaller files are read whole (a CloudTrail log
 * file is one JSON document, a few MiB at most).
 */
export const STREAM_JSON_ABOVE_BYTES = 8 * 1024 * 1024;
/** How far the peek reads (decompressed) looking for the end of the first line. */
const PEEK_BYTES = 1024 * 1024;

/** True when the file's first line is a JSON object on its own and more follows (NDJSON). */
async function peekLineDelimited(file: InputFile): Promise<boolean> {
  const gzip = await startsWithGzipMagic(file.absolute);
  const raw = createReadStream(file.absolute);
  const input: Readable = gzip ? raw.pipe(createGunzip()) : raw;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of input) {
      const buf = chunk as Buffer;
      chunks.push(buf);
      size += buf.length;
      const nl = Buffer.concat(chunks).indexOf(0x0a);
      if (nl >= 0 || size >= PEEK_BYTES) {
        const head = Buffer.concat(chunks).toString('utf8');
        return looksLineDelimited(head.charCodeAt(0) === 0xfeff ? head.slice(1) : head);
      }
    }
    return false;
  } catch {
    return false;
  } finally {
    raw.destroy();
    input.destroy();
  }
}

/**
 * Scans one input file. Never throws for bad input: problems are in the result. `streamAboveBytes` is for
 * tests (default STREAM_JSON_ABOVE_BYTES).
 */
export async function scanFile(
  file: InputFile,
  filter: ScanFilter,
  streamAboveBytes = STREAM_JSON_ABOVE_BYTES,
): Promise<FileScan> {
  scanCounter.files += 1;
  const scan = new Scan(file, filter);
  const stream =
    isLineDelimited(file.display) ||
    (file.bytes > streamAboveBytes && (await peekLineDelimited(file).catch(() => false)));
  if (stream) {
    await streamLines(scan);
    return scan.result;
  }
  const loaded = await loadBytes(file);
  if ('error' in loaded) scan.problem(null, loaded.error);
  else scan.document(loaded.bytes);
  return scan.result;
}
