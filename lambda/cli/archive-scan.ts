import {
  DEFAULT_READ_LIMITS,
  describeJsonError,
  type Entry,
  type InflateBuffer,
  type InputFile,
  type InputProblem,
  InputReadError,
  InputTooLargeError,
  type Item,
  invalidUtf8,
  isLineDelimited,
  itemsOf,
  loadBytes,
  messageOf,
  type ReadLimits,
  readChunks,
  sizeText,
  textOf,
} from './inputs';
import { BEDROCK_NEEDLE, HAS_BEDROCK, HAS_IAM, IAM_NEEDLE, RecordWalker, wasmApi } from './record-walk';

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
const BEDROCK_WORD = BEDROCK_NEEDLE;

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
  /** Invalid UTF-8 sequences met (each decoded as U+FFFD): reported as a warning, the file is still read. */
  invalidUtf8: number;
}

/**
 * JSON nested deeper than this is not a CloudTrail record (real ones are a dozen levels deep at most, with
 * their container). It is refused before parsing: such values overflow the stack of anything recursive that
 * meets them later (zod, JSON.stringify, and the structured clone that carries a worker's result back).
 */
export const MAX_JSON_DEPTH = 64;
const TOO_DEEP = `JSON nested deeper than ${MAX_JSON_DEPTH} levels (not a CloudTrail record): skipped`;

/** True when the JSON text opens more than `max` objects or arrays inside one another (strings skipped). */
export function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  const end = text.length;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      for (i++; i < end; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === QUOTE) break;
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth += 1;
      if (depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth -= 1;
    }
  }
  return false;
}

/** Where a worker reports progress from long loops, so the watchdog sees a busy file is not stuck. */
const PROGRESS_EVERY = 4096;

export interface ScanOptions {
  /** @default DEFAULT_READ_LIMITS */
  limits?: ReadLimits;
  /** Called as the scan moves on (bytes read, records looked at): the watchdog's sign of life. */
  onProgress?: () => void;
  /** Aborting stops reading the file (a file the watchdog gave up on). */
  signal?: AbortSignal;
  /** Tests: see STREAM_JSON_ABOVE_BYTES. */
  streamAboveBytes?: number;
  /**
   * Tests: walk `{"Records": [...]}` files in JavaScript, as where WebAssembly is not available (record-walk.ts).
   * @default false
   */
  jsWalk?: boolean;
  /**
   * Read and decompress a whole file in this thread (loadBytes' `sync`): for worker threads, which wait for it
   * anyway. The main thread (--jobs 1) reads asynchronously, so that the next files decompress meanwhile.
   */
  syncRead?: boolean;
  /**
   * With syncRead: the memory gzip files are inflated into, used again for each file (see InflateBuffer). The
   * caller scans one file at a time with it: a file's bytes are overwritten by the next one's.
   */
  inflateBuffer?: InflateBuffer;
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

/** A scan that read nothing: the file failed as a whole (also used by the pool for a worker failure). */
export function failedScan(file: InputFile, reason: string): FileScan {
  return {
    entries: [],
    problems: [{ path: file.display, line: null, reason }],
    records: 0,
    skipped: { 'not-iam': 0, 'unsupported-event': 0, 'not-bearer-token': 0 },
    parsed: 0,
    invalidUtf8: 0,
  };
}

class Scan {
  readonly result: FileScan = {
    entries: [],
    problems: [],
    records: 0,
    skipped: { 'not-iam': 0, 'unsupported-event': 0, 'not-bearer-token': 0 },
    parsed: 0,
    invalidUtf8: 0,
  };
  /** Any followed event name, quoted (see the constructor). */
  private readonly quoted: RegExp;

  constructor(
    readonly file: InputFile,
    readonly filter: ScanFilter,
    readonly limits: ReadLimits,
    readonly progress: () => void,
    readonly jsWalk = false,
  ) {
    // `"Name"` in a record; `"Name\` where the record is itself a JSON string (Lake eventJson, LookupEvents
    // CloudTrailEvent, read as raw NDJSON text), whose quotes are escaped.
    // One regular expression rather than a search per name and form: those searches over the IAM records took
    // 6 % of a worker's time on the replay benchmark's archive (profiled, issue 13).
    const names = filter.eventNames.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.quoted = names.length === 0 ? /(?!)/ : new RegExp(`"(?:${names.join('|')})["\\\\]`);
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
    return this.quoted.test(text) ? null : 'unsupported-event';
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
      const bound = this.unparseable(item.json, 'a record');
      if (bound) {
        this.problem(item.line, `embedded record: ${bound}`);
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

  /**
   * Why a JSON text is not given to JSON.parse: longer than a record may be, or nested deeper than a record is;
   * null when it may be parsed.
   */
  unparseable(text: string, what: 'a record' | 'a line'): string | null {
    return this.oversize(text, what) ?? (nestingExceeds(text, MAX_JSON_DEPTH) ? TOO_DEEP : null);
  }

  /** Why a JSON text is too long to be decoded and parsed, or null. */
  oversize(text: string, what: 'a record' | 'a line'): string | null {
    const max = this.limits.maxRecordBytes;
    // UTF-16 units never outnumber UTF-8 bytes: the byte count is needed only near the limit.
    if (text.length * 3 <= max || Buffer.byteLength(text) <= max) return null;
    return `${what} of more than ${sizeText(max)} (--max-record-size): skipped`;
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
    const bound = this.unparseable(text, 'a line');
    if (bound) {
      this.problem(line, bound);
      return;
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
    this.result.invalidUtf8 += invalidUtf8(bytes);
    const wasm = this.filter.source === IAM_NEEDLE && !this.jsWalk;
    const split = splitRecordsFlagged(bytes, wasm ? recordWalker(bytes) : null);
    if (split !== null && this.records(bytes, split)) return;
    const text = textOf(bytes);
    let value: unknown;
    let failure: string | null = null;
    if (nestingExceeds(text, MAX_JSON_DEPTH)) failure = TOO_DEEP;
    else {
      try {
        value = JSON.parse(text);
      } catch (err) {
        failure = describeJsonError(err, text);
      }
    }
    if (failure !== null) {
      // `.json` files holding one event per line are common (e.g. saved EventBridge events).
      if (looksLineDelimited(text)) {
        this.lines(text);
        return;
      }
      this.problem(null, failure);
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
  private records(bytes: Buffer, split: SplitRecords): boolean {
    const { spans, flags } = split;
    // Which records hold the source (and the Bedrock word): from the walk itself when it ran in WebAssembly
    // (flags), else one pass over the file for each; only those records are decoded and looked at again.
    const iam = flags === null ? occurrences(bytes, this.filter.source) : [];
    // Bedrock records are looked at only when usage is followed (most archives hold many SigV4 calls).
    const bedrock = this.filter.usage === undefined || flags !== null ? [] : occurrences(bytes, BEDROCK_WORD);
    const usage = this.filter.usage !== undefined;
    const found: Entry[] = [];
    const problems: InputProblem[] = [];
    const skipped = { ...this.result.skipped };
    const maxRecord = this.limits.maxRecordBytes;
    let a = 0;
    let b = 0;
    for (let k = 0; k < spans.length; k += 2) {
      if (k % (2 * PROGRESS_EVERY) === 0) this.progress();
      const start = spans[k] as number;
      const end = spans[k + 1] as number;
      while (a < iam.length && (iam[a] as number) < start) a++;
      while (b < bedrock.length && (bedrock[b] as number) < start) b++;
      // Any record over the limit is reported, relevant or not: the same file streamed as NDJSON could not
      // tell (a line that long is dropped unread), and the outcome must not depend on the layout.
      if (end - start > maxRecord) {
        const reason = `a record of more than ${sizeText(maxRecord)} (--max-record-size): skipped`;
        problems.push({ path: this.file.display, line: null, reason: `Records[${k / 2}]: ${reason}` });
        continue;
      }
      const f = flags === null ? 0 : (flags[k >>> 1] as number);
      const hasIam = flags === null ? a < iam.length && (iam[a] as number) < end : (f & HAS_IAM) !== 0;
      const hasBedrock =
        flags === null
          ? b < bedrock.length && (bedrock[b] as number) < end
          : usage && (f & HAS_BEDROCK) !== 0;
      if (!hasIam && !hasBedrock) {
        skipped['not-iam'] += 1;
        continue;
      }
      const record = bytes.toString('utf8', start, end);
      const why = hasIam ? (this.quoted.test(record) ? null : 'unsupported-event') : this.usageReason(record);
      if (why) {
        skipped[why] += 1;
        continue;
      }
      if (nestingExceeds(record, MAX_JSON_DEPTH)) {
        problems.push({ path: this.file.display, line: null, reason: `Records[${k / 2}]: ${TOO_DEEP}` });
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
    // A loop, not push(...found): spreading 100,000+ arguments overflows the stack.
    for (const e of found) this.result.entries.push(e);
    for (const p of problems) this.result.problems.push(p);
    return true;
  }

  private lines(text: string): void {
    let start = 0;
    let line = 0;
    while (start <= text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      line += 1;
      if (line % PROGRESS_EVERY === 0) this.progress();
      const one = text.slice(start, end);
      const long = this.oversize(one, 'a line');
      if (long) this.problem(line, long);
      else this.line(one, line);
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

/**
 * The index of the quote closing the string whose body starts at `from` (just past its opening quote), or -1.
 * Most of a CloudTrail file's bytes are inside strings: they are skipped by Buffer.indexOf (native) rather than
 * looked at one by one (a quarter less time for the whole split, measured on the replay benchmark's archive).
 */
function closingQuote(b: Buffer, from: number): number {
  let at = from;
  for (;;) {
    const q = b.indexOf(QUOTE, at);
    if (q < 0) return -1;
    let n = 0;
    while (b[q - 1 - n] === BACKSLASH) n++;
    if (n % 2 === 0) return q;
    at = q + 1;
  }
}

/** The index just past the JSON value starting at `i` (structure only, not validated), or -1. */
function valueEnd(b: Buffer, i: number): number {
  const c = b[i];
  if (c === QUOTE) {
    const e = closingQuote(b, i + 1);
    return e < 0 ? -1 : e + 1;
  }
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    let j = i;
    while (j < b.length) {
      const d = b[j];
      if (d === QUOTE) {
        const e = closingQuote(b, j + 1);
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
export function splitRecords(bytes: Uint8Array): number[] | null {
  return splitRecordsFlagged(bytes, null)?.spans ?? null;
}

/** The spans of splitRecords, and for each record what the WebAssembly walk found in it (else null). */
export interface SplitRecords {
  spans: number[];
  /** Per record, HAS_IAM | HAS_BEDROCK (record-walk.ts); null when the records were walked in JavaScript. */
  flags: number[] | null;
}

/**
 * WebAssembly memory grows but never shrinks: a walker grown past this for one large file is dropped once that
 * file is walked (as InflateBuffer drops its memory), so one huge file does not hold memory for good.
 */
const KEEP_WALKER_BYTES = 64 * 1024 * 1024;
/** This thread's walker (a file is walked whole before the next: one is enough); null until first needed. */
let walker: RecordWalker | null = null;
/** False where WebAssembly cannot run (e.g. node --jitless): the walk is then done in JavaScript. */
let wasmWorks = wasmApi !== undefined;

/** This thread's walker with the file's bytes loaded, or null where WebAssembly is not available. */
function recordWalker(bytes: Uint8Array): RecordWalker | null {
  if (!wasmWorks) return null;
  try {
    walker ??= new RecordWalker();
    walker.load(bytes);
  } catch {
    // Out of memory for this file, or no WebAssembly after all: this file (or every file) in JavaScript.
    if (walker === null) wasmWorks = false;
    walker = null;
    return null;
  }
  return walker;
}

/** Drops a walker grown past KEEP_WALKER_BYTES, once the file it holds is walked. */
function releaseWalker(): void {
  if (walker !== null && walker.size > KEEP_WALKER_BYTES) walker = null;
}

/**
 * splitRecords, with the records' ends (and what they contain) found by `walk` when given (it holds the same
 * bytes): the structure around them is read here either way.
 */
export function splitRecordsFlagged(bytes: Uint8Array, walk: RecordWalker | null): SplitRecords | null {
  try {
    return splitWith(bytes, walk);
  } finally {
    if (walk !== null) releaseWalker();
  }
}

function splitWith(bytes: Uint8Array, walk: RecordWalker | null): SplitRecords | null {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags: number[] | null = walk === null ? null : [];
  let i = skipWs(b, hasBom(b) ? 3 : 0);
  if (b[i] !== OPEN_BRACE) return null;
  i = skipWs(b, i + 1);
  let spans: number[] | null = null;
  if (b[i] === CLOSE_BRACE) return null;
  for (;;) {
    if (b[i] !== QUOTE) return null;
    const keyEnd = closingQuote(b, i + 1);
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
          const end = walk === null ? valueEnd(b, i) : walk.valueEnd(i);
          if (end < 0) return null;
          spans.push(i, end);
          flags?.push((walk as RecordWalker).flags);
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
  return spans === null ? null : { spans, flags };
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

/**
 * NDJSON, streamed line by line through gunzip: memory stays at one line whatever the file's size, and a line
 * longer than the record limit is dropped as it streams (reported with its number), never held whole. A read
 * or decompression error, or the file limit, ends the file with a problem; the lines before it count.
 */
async function streamLines(scan: Scan, options: ScanOptions): Promise<void> {
  const { limits } = scan;
  const maxLine = limits.maxRecordBytes;
  let parts: Buffer[] = [];
  let partBytes = 0;
  let tooLong = false;
  let n = 0;
  const endLine = () => {
    n += 1;
    if (tooLong) {
      scan.problem(n, `a line of more than ${sizeText(maxLine)} (--max-record-size): skipped`);
    } else if (partBytes > 0) {
      let bytes = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, partBytes);
      if (n === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
      scan.result.invalidUtf8 += invalidUtf8(bytes);
      scan.line(bytes.toString('utf8'), n);
    }
    parts = [];
    partBytes = 0;
    tooLong = false;
  };
  try {
    for await (const chunk of readChunks(scan.file, {
      maxBytes: limits.maxFileBytes,
      onProgress: options.onProgress,
      signal: options.signal,
    })) {
      let pos = 0;
      while (pos < chunk.length) {
        const nl = chunk.indexOf(0x0a, pos);
        const end = nl < 0 ? chunk.length : nl;
        if (!tooLong && end > pos) {
          if (partBytes + (end - pos) > maxLine) {
            tooLong = true;
            parts = [];
            partBytes = 0;
          } else {
            parts.push(chunk.subarray(pos, end));
            partBytes += end - pos;
          }
        }
        if (nl < 0) break;
        endLine();
        pos = nl + 1;
      }
    }
  } catch (err) {
    if (err instanceof InputTooLargeError) scan.problem(null, `${err.message}: read no further`);
    else if (err instanceof InputReadError) scan.problem(null, err.message);
    else throw err;
    return;
  }
  if (partBytes > 0 || tooLong) endLine();
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
async function peekLineDelimited(file: InputFile, limits: ReadLimits): Promise<boolean> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of readChunks(file, { maxBytes: limits.maxFileBytes })) {
      chunks.push(chunk);
      size += chunk.length;
      const nl = chunk.indexOf(0x0a);
      if (nl >= 0 || size >= PEEK_BYTES) {
        const head = Buffer.concat(chunks).subarray(0, Math.min(size, PEEK_BYTES)).toString('utf8');
        return looksLineDelimited(head.charCodeAt(0) === 0xfeff ? head.slice(1) : head);
      }
    }
    return false;
  } catch {
    return false;
  }
}

/**
 * Scans one input file. Never throws for bad input: problems are in the result (a file that cannot be read,
 * or goes over a limit, is one problem naming it).
 */
export async function scanFile(
  file: InputFile,
  filter: ScanFilter,
  options: ScanOptions = {},
): Promise<FileScan> {
  scanCounter.files += 1;
  const limits = options.limits ?? DEFAULT_READ_LIMITS;
  const scan = new Scan(file, filter, limits, options.onProgress ?? (() => {}), options.jsWalk);
  try {
    const stream =
      isLineDelimited(file.display) ||
      (file.bytes > (options.streamAboveBytes ?? STREAM_JSON_ABOVE_BYTES) &&
        (await peekLineDelimited(file, limits)));
    if (stream) {
      await streamLines(scan, options);
      return scan.result;
    }
    const loaded = await loadBytes(file, {
      maxBytes: limits.maxFileBytes,
      onProgress: options.onProgress,
      signal: options.signal,
      sync: options.syncRead,
      scratch: options.inflateBuffer,
    });
    if ('error' in loaded) scan.problem(null, loaded.error);
    else scan.document(loaded.bytes);
  } catch (err) {
    // Not bad input as such (e.g. text longer than V8 can hold): still this file's problem, not the run's.
    scan.problem(null, `cannot be read: ${messageOf(err)}`);
  }
  return scan.result;
}
