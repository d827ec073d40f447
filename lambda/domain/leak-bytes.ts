import { isAscii, isUtf8 } from 'node:buffer';
import { TextDecoder } from 'node:util';
import { ALLOW_MARKER, LeakStreamScanner, type StreamFinding } from './leak-stream';
import {
  type DetectionWork,
  type LeakAt,
  type LeakKind,
  LONG_PREFIX,
  leakAt,
  MAX_KEY_TEXT,
  SHORT_PREFIX,
} from './leaks';

/**
 * Bytes in, findings out, for a stream of bytes of unknown encoding (a file, a git blob, stdin): the first
 * `SNIFF_BYTES` decide how the bytes become text, then the text is scanned in overlapping chunks
 * (LeakStreamScanner). Pure: the caller does the I/O.
 *
 * - A UTF-16 byte order mark (`FF FE`, `FE FF`): UTF-16 LE or BE (a key saved by a Windows editor or PowerShell).
 * - Otherwise a NUL byte in the head: binary. Binary content is not skipped: keys are ASCII wherever they sit (a
 *   compiled program, an archive member stored uncompressed, a core dump), so each byte is read as one character
 *   (Latin-1) and searched like text; lines and columns then count `\n` bytes and bytes.
 * - Otherwise UTF-8 (a UTF-8 byte order mark is dropped, so columns count from the first real character). Invalid
 *   sequences become U+FFFD, and are counted (`invalidUtf8`).
 *
 * UTF-8 and binary are searched as bytes (ByteTextScanner), not decoded: both prefixes and every character a key
 * can hold are ASCII, and in UTF-8 an ASCII byte is never part of another character, so the prefixes are found
 * with `Buffer.indexOf` and only a window after each one is decoded (Latin-1: a byte a character, and a byte
 * above 0x7F ends a key's body as the character it decodes to would). Line breaks are counted as bytes; a column
 * (UTF-16 code units, as findLeaks counts them) decodes only its line's bytes before the key, and only when they
 * are not all ASCII. Validity of UTF-8 is checked by `isUtf8`; only bytes that fail it are decoded, to count
 * their invalid sequences. The findings are those of LeakStreamScanner over the decoded text (tests compare them).
 * UTF-16 is decoded and scanned as text.
 */

export type ByteEncoding = 'utf-8' | 'utf-16le' | 'utf-16be' | 'binary';

/** Bytes looked at to decide the encoding. */
export const SNIFF_BYTES = 8192;

const REPLACEMENT = '\uFFFD';
/** U+FFFD as UTF-8: written in the file, it is not an invalid sequence. */
const REPLACEMENT_UTF8 = Buffer.from(REPLACEMENT, 'utf8');

interface Decoder {
  write(bytes: Buffer): string;
  end(): string;
}

function countOf(text: string, part: string): number {
  let n = 0;
  for (let i = text.indexOf(part); i !== -1; i = text.indexOf(part, i + part.length)) n += 1;
  return n;
}

function bytesCountOf(bytes: Buffer, part: Buffer): number {
  let n = 0;
  for (let i = bytes.indexOf(part); i !== -1; i = bytes.indexOf(part, i + part.length)) n += 1;
  return n;
}

/** UTF-16 (the byte order mark is dropped by TextDecoder). */
class Utf16Decoder implements Decoder {
  private readonly decoder: TextDecoder;

  constructor(encoding: 'utf-16le' | 'utf-16be') {
    this.decoder = new TextDecoder(encoding);
  }

  write(bytes: Buffer): string {
    return this.decoder.decode(bytes, { stream: true });
  }

  end(): string {
    return this.decoder.decode();
  }
}

export function sniffEncoding(head: Buffer): ByteEncoding {
  // `FF FE 00 00` is UTF-32 LE's mark, not UTF-16's: left to the binary search.
  if (head[0] === 0xff && head[1] === 0xfe && !(head[2] === 0 && head[3] === 0)) return 'utf-16le';
  if (head[0] === 0xfe && head[1] === 0xff) return 'utf-16be';
  return head.subarray(0, SNIFF_BYTES).includes(0) ? 'binary' : 'utf-8';
}

/** The part of the WebAssembly API used here (the project's TypeScript libraries do not declare it). */
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}

/**
 * Counts line feeds (0x0A) in bytes: a WebAssembly SIMD loop (16 bytes a step) over a copy of the bytes in its
 * memory, several times faster than a `Buffer.indexOf` per line; `indexOf` where WebAssembly SIMD is missing.
 * The module is 90 bytes, written out below (count(from, to) over memory [from, to), `to - from` a multiple of 16).
 */
class LineFeedCounter {
  private static shared: LineFeedCounter | undefined;
  private readonly count: ((from: number, to: number) => number) | undefined;
  private readonly memory: Uint8Array | undefined;
  private static readonly PAGES = 16;

  static get(): LineFeedCounter {
    LineFeedCounter.shared ??= new LineFeedCounter();
    return LineFeedCounter.shared;
  }

  private constructor() {
    try {
      const splat = new Array<number>(16).fill(0x0a);
      // (func (param $p i32) (param $end i32) (result i32) (local $n i32)
      //   (block (loop (br_if 1 (i32.ge_u $p $end))
      //     $n += popcnt(i8x16.bitmask(i8x16.eq(v128.load $p, splat 0x0A))); $p += 16; (br 0)))
      //   $n)
      const body = [
        ...[0x01, 0x01, 0x7f],
        ...[0x02, 0x40, 0x03, 0x40],
        ...[0x20, 0x00, 0x20, 0x01, 0x4f, 0x0d, 0x01],
        ...[0x20, 0x02, 0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0xfd, 0x0c, ...splat],
        ...[0xfd, 0x23, 0xfd, 0x64, 0x69, 0x6a, 0x21, 0x02],
        ...[0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b],
        ...[0x20, 0x02, 0x0b],
      ];
      const section = (id: number, bytes: number[]): number[] => [id, bytes.length, ...bytes];
      const module = new Uint8Array([
        ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
        ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f]),
        ...section(3, [0x01, 0x00]),
        ...section(5, [0x01, 0x00, LineFeedCounter.PAGES]),
        ...section(7, [0x02, 0x01, 0x63, 0x00, 0x00, 0x01, 0x6d, 0x02, 0x00]),
        ...section(10, [0x01, body.length, ...body]),
      ]);
      const wasm = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;
      const { exports } = new wasm.Instance(new wasm.Module(module));
      this.count = exports.c as (from: number, to: number) => number;
      this.memory = new Uint8Array((exports.m as { buffer: ArrayBuffer }).buffer);
    } catch {
      this.count = undefined;
      this.memory = undefined;
    }
  }

  /** Line feeds in `bytes[from, to)`. */
  countIn(bytes: Buffer, from: number, to: number): number {
    let n = 0;
    const { count, memory } = this;
    if (!count || !memory) {
      for (let i = bytes.indexOf(10, from); i !== -1 && i < to; i = bytes.indexOf(10, i + 1)) n += 1;
      return n;
    }
    for (let at = from; at < to; at += memory.length) {
      const part = bytes.subarray(at, Math.min(to, at + memory.length));
      memory.set(part, 0);
      const whole = part.length & ~15;
      n += count(0, whole);
      for (let i = whole; i < part.length; i += 1) if (part[i] === 10) n += 1;
    }
    return n;
  }
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const MARKER = Buffer.from(ALLOW_MARKER, 'latin1');
const LONG = Buffer.from(LONG_PREFIX, 'latin1');
/**
 * The short-term prefix is found by its rarer tail `k-api-` (`bedrock-api-key-` starts with `b`, a frequent
 * byte, which makes `indexOf` several times slower), then checked whole.
 */
const SHORT_TAIL = Buffer.from('k-api-', 'latin1');
const SHORT_TAIL_AT = SHORT_PREFIX.indexOf('k-api-');
const SHORT = Buffer.from(SHORT_PREFIX, 'latin1');
/** First window decoded after a prefix (a short-term key with a session token is about 2,000 characters). */
const FIRST_WINDOW = 4096;

function isContinuation(byte: number | undefined): boolean {
  return byte !== undefined && (byte & 0xc0) === 0x80;
}

/**
 * The place at or before `at` where UTF-8 decoding is between characters: decoding the bytes before it alone
 * gives the same characters as decoding them with what follows (a sequence is never cut).
 */
function utf8Boundary(bytes: Buffer, at: number): number {
  for (let k = 0; k <= 3 && at - k > 0; k += 1) if (!isContinuation(bytes[at - k])) return at - k;
  // Three continuation bytes before `at`: any sequence before them has ended.
  return at;
}

/** The end of the bytes that hold only whole UTF-8 sequences (an incomplete one at the end is left out). */
function completeUtf8(bytes: Buffer): number {
  const end = bytes.length;
  for (let k = 1; k <= 3 && end - k >= 0; k += 1) {
    const b = bytes[end - k] as number;
    if (isContinuation(b)) continue;
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > k ? end - k : end;
  }
  return end;
}

/** Invalid sequences in whole UTF-8 sequences: U+FFFD after decoding, less those written in the bytes. */
function invalidIn(bytes: Buffer): number {
  if (isUtf8(bytes)) return 0;
  return countOf(bytes.toString('utf8'), REPLACEMENT) - bytesCountOf(bytes, REPLACEMENT_UTF8);
}

const EMPTY = Buffer.alloc(0);
/**
 * The store of the scanner that ended last, for the next one: a scan of many small files (or git blobs) one after
 * another then allocates no memory per file. Scanners that overlap in time simply allocate their own.
 */
let spareStore: Buffer | undefined;

function takeStore(bytes: number): Buffer {
  const spare = spareStore;
  if (spare && spare.length >= bytes) {
    spareStore = undefined;
    return spare;
  }
  return Buffer.allocUnsafe(Math.max(bytes, 64 * 1024));
}

function releaseStore(store: Buffer): void {
  if (store.length > (spareStore?.length ?? 0)) spareStore = store;
}

interface LineCache {
  /** Where the line starts in the buffer (0 when it started before the buffer). */
  start: number;
  /** A place in the line whose column (from the line's start) is known: `units` code units before it. */
  at: number;
  units: number;
  allowed: boolean;
}

/**
 * LeakStreamScanner for bytes that are UTF-8 or binary: the same findings (line, column, allowed) as that scanner
 * on the decoded text, without decoding the text (see the top of this file). Keeps the last `overlap` bytes
 * between chunks (a key's text is ASCII: as many bytes as characters).
 */
class ByteTextScanner {
  /** Holds `buffer` (its start), with room to append a chunk without allocating. */
  private store: Buffer = EMPTY;
  private buffer: Buffer = EMPTY;
  private baseLine = 1;
  private baseColumn = 1;
  private droppedLineAllowed = false;
  private started = false;
  /** UTF-8: the buffer's bytes before this have been checked. */
  private checkedTo = 0;
  invalid = 0;
  private readonly lines = LineFeedCounter.get();

  constructor(
    private readonly utf8: boolean,
    private readonly now: Date,
    private readonly overlap: number,
    private readonly work: DetectionWork,
  ) {}

  push(bytes: Buffer): StreamFinding[] {
    let add = bytes;
    if (!this.started && add.length > 0) {
      this.started = true;
      if (this.utf8 && add.subarray(0, 3).equals(UTF8_BOM)) add = add.subarray(3);
    }
    const kept = this.buffer.length;
    if (kept + add.length > this.store.length) {
      const grown = takeStore(Math.max(kept + add.length, 2 * this.store.length));
      this.buffer.copy(grown, 0);
      this.store = grown;
    }
    add.copy(this.store, kept);
    this.buffer = this.store.subarray(0, kept + add.length);
    if (this.utf8) {
      const complete = completeUtf8(this.buffer);
      if (complete > this.checkedTo) {
        this.invalid += invalidIn(this.buffer.subarray(this.checkedTo, complete));
        this.checkedTo = complete;
      }
    }
    if (this.buffer.length < this.overlap * 2) return [];
    return this.scan(false);
  }

  end(): StreamFinding[] {
    if (this.utf8 && this.checkedTo < this.buffer.length) {
      // An incomplete sequence at the end: U+FFFD.
      this.invalid += invalidIn(this.buffer.subarray(this.checkedTo));
    }
    const found = this.scan(true);
    releaseStore(this.store);
    this.store = EMPTY;
    this.buffer = EMPTY;
    return found;
  }

  /** Code units of `buffer[from, to)` as text. */
  private units(from: number, to: number): number {
    if (!this.utf8 || to <= from) return Math.max(0, to - from);
    const part = this.buffer.subarray(from, to);
    return isAscii(part) ? part.length : part.toString('utf8').length;
  }

  private scan(final: boolean): StreamFinding[] {
    const buffer = this.buffer;
    const len = buffer.length;
    let cutoff = final ? len : len - this.overlap;
    if (!final && this.utf8) cutoff = utf8Boundary(buffer, cutoff);
    const out: StreamFinding[] = [];
    let resumeAt = cutoff;
    // Lines before the finding being placed: line feeds in buffer[0, countedTo), the last of them at lastNl.
    let countedTo = 0;
    let lineFeeds = 0;
    let lastNl = -1;
    let line: LineCache | undefined;
    for (const leak of this.leaks(cutoff)) {
      const { index, end, ...finding } = leak;
      const more = this.lines.countIn(buffer, countedTo, index);
      this.work.units += index - countedTo;
      if (more > 0) {
        lineFeeds += more;
        lastNl = buffer.lastIndexOf(10, index - 1);
      }
      countedTo = index;
      const start = lastNl + 1;
      if (line?.start !== start) line = this.lineAt(start);
      line.units += this.units(line.at, index);
      line.at = index;
      const column = (start === 0 ? this.baseColumn : 1) + line.units;
      out.push({ ...finding, line: this.baseLine + lineFeeds, column, allowed: line.allowed });
      resumeAt = Math.max(resumeAt, end);
    }
    if (!final) this.drop(Math.min(resumeAt, len));
    return out;
  }

  /** The keys that start before `cutoff`, in order, as findLeakSpans finds them in the decoded text. */
  private leaks(cutoff: number): LeakAt[] {
    const buffer = this.buffer;
    const found: LeakAt[] = [];
    let from = 0;
    const searchLong = (): number => {
      const at = buffer.indexOf(LONG, from);
      this.work.units += (at === -1 ? buffer.length : at) - from;
      return at === -1 || at >= cutoff ? -1 : at;
    };
    const searchShort = (): number => {
      for (let tail = buffer.indexOf(SHORT_TAIL, from + SHORT_TAIL_AT); tail !== -1; ) {
        const at = tail - SHORT_TAIL_AT;
        if (at >= cutoff) break;
        if (buffer.subarray(at, at + SHORT.length).equals(SHORT)) return at;
        tail = buffer.indexOf(SHORT_TAIL, tail + 1);
      }
      return -1;
    };
    let nextLong = searchLong();
    let nextShort = searchShort();
    while (nextLong !== -1 || nextShort !== -1) {
      const kind: LeakKind =
        nextShort === -1 || (nextLong !== -1 && nextLong < nextShort) ? 'LONG_TERM' : 'SHORT_TERM';
      const index = kind === 'LONG_TERM' ? nextLong : nextShort;
      const leak = this.leakAt(index, kind);
      from = leak ? leak.end : index + 1;
      if (leak) found.push(leak);
      if (nextLong !== -1 && nextLong < from) nextLong = searchLong();
      if (nextShort !== -1 && nextShort < from) nextShort = searchShort();
    }
    return found;
  }

  /** leakAt on a Latin-1 window after `index`, grown until the answer cannot change with more text. */
  private leakAt(index: number, kind: LeakKind): LeakAt | undefined {
    const buffer = this.buffer;
    for (let window = FIRST_WINDOW; ; window *= 2) {
      const stop = Math.min(buffer.length, index + window);
      const text = buffer.toString('latin1', index, stop);
      const { leak, readTo } = leakAt(text, 0, kind, { now: this.now, work: this.work });
      if (readTo <= text.length || stop === buffer.length) {
        return leak ? { ...leak, index: index + leak.index, end: index + leak.end } : undefined;
      }
    }
  }

  /** The buffer's line that starts at `start`, and whether it carries the allow marker. */
  private lineAt(start: number): LineCache {
    const next = this.buffer.indexOf(10, start);
    const end = next === -1 ? this.buffer.length : next;
    this.work.units += end - start;
    const allowed =
      this.buffer.subarray(start, end).includes(MARKER) || (start === 0 && this.droppedLineAllowed);
    return { start, at: start, units: 0, allowed };
  }

  /** Drops `buffer[0, cut)`, moving the line and column of the buffer's start past it. */
  private drop(cut: number): void {
    const buffer = this.buffer;
    this.work.units += cut;
    const lastNl = cut === 0 ? -1 : buffer.lastIndexOf(10, cut - 1);
    // The marker may straddle the cut: look a marker's length into what is kept.
    const lineHead = buffer.subarray(lastNl + 1, cut + MARKER.length - 1);
    if (lastNl === -1) {
      this.baseColumn += this.units(0, cut);
      this.droppedLineAllowed = this.droppedLineAllowed || lineHead.includes(MARKER);
    } else {
      this.baseLine += this.lines.countIn(buffer, 0, cut);
      this.baseColumn = this.units(lastNl + 1, cut) + 1;
      this.droppedLineAllowed = lineHead.includes(MARKER);
    }
    this.checkedTo = Math.max(0, this.checkedTo - cut);
    this.store.copyWithin(0, cut, buffer.length);
    this.buffer = this.store.subarray(0, buffer.length - cut);
  }
}

export class ByteLeakScanner {
  private readonly opts: { now: Date; overlap: number; work: DetectionWork };
  private text: LeakStreamScanner | undefined;
  private bytes: ByteTextScanner | undefined;
  private decoder: Decoder | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** How the bytes are read; undefined until SNIFF_BYTES have arrived (or the end). */
  encoding: ByteEncoding | undefined;

  constructor(opts: { now: Date; overlap?: number; work?: DetectionWork }) {
    this.opts = { now: opts.now, overlap: opts.overlap ?? MAX_KEY_TEXT, work: opts.work ?? { units: 0 } };
  }

  /** Invalid UTF-8 sequences read as U+FFFD so far (UTF-8 input only). */
  get invalidUtf8(): number {
    return this.bytes?.invalid ?? 0;
  }

  /** Reads `bytes` now: the caller may reuse them once this returns. */
  write(bytes: Buffer): StreamFinding[] {
    if (this.bytes) return this.bytes.push(bytes);
    if (this.text && this.decoder) return this.text.push(this.decoder.write(bytes));
    if (this.pendingBytes === 0 && bytes.length >= SNIFF_BYTES) return this.decide(bytes);
    this.pending.push(Buffer.from(bytes));
    this.pendingBytes += bytes.length;
    return this.pendingBytes >= SNIFF_BYTES ? this.decide(Buffer.concat(this.pending)) : [];
  }

  end(): StreamFinding[] {
    const head = this.bytes || this.text ? [] : this.decide(Buffer.concat(this.pending));
    if (this.bytes) return [...head, ...this.bytes.end()];
    const text = this.text as LeakStreamScanner;
    const decoder = this.decoder as Decoder;
    return [...head, ...text.push(decoder.end()), ...text.end()];
  }

  private decide(head: Buffer): StreamFinding[] {
    this.pending = [];
    this.encoding = sniffEncoding(head);
    const { now, overlap, work } = this.opts;
    if (this.encoding === 'utf-8' || this.encoding === 'binary') {
      this.bytes = new ByteTextScanner(this.encoding === 'utf-8', now, overlap, work);
      return this.bytes.push(head);
    }
    this.text = new LeakStreamScanner(this.opts);
    this.decoder = new Utf16Decoder(this.encoding);
    return this.text.push(this.decoder.write(head));
  }
}
