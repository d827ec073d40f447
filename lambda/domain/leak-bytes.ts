import { StringDecoder } from 'node:string_decoder';
import { TextDecoder } from 'node:util';
import { LeakStreamScanner, type StreamFinding } from './leak-stream';
import type { DetectionWork } from './leaks';

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

/** UTF-8, counting the U+FFFD that decoding puts in place of invalid sequences. */
class Utf8Decoder implements Decoder {
  private readonly decoder = new StringDecoder('utf8');
  /** The last bytes of the previous chunk: a U+FFFD written in the file may straddle two chunks. */
  private tail = Buffer.alloc(0);
  private started = false;
  invalid = 0;

  write(bytes: Buffer): string {
    const seen = Buffer.concat([this.tail, bytes]);
    this.tail = seen.subarray(Math.max(0, seen.length - (REPLACEMENT_UTF8.length - 1)));
    this.invalid -= bytesCountOf(seen, REPLACEMENT_UTF8);
    return this.counted(this.decoder.write(bytes));
  }

  end(): string {
    return this.counted(this.decoder.end());
  }

  private counted(text: string): string {
    this.invalid += countOf(text, REPLACEMENT);
    if (this.started || text.length === 0) return text;
    this.started = true;
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  }
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

const latin1: Decoder = { write: (bytes) => bytes.toString('latin1'), end: () => '' };

export function sniffEncoding(head: Buffer): ByteEncoding {
  // `FF FE 00 00` is UTF-32 LE's mark, not UTF-16's: left to the binary search.
  if (head[0] === 0xff && head[1] === 0xfe && !(head[2] === 0 && head[3] === 0)) return 'utf-16le';
  if (head[0] === 0xfe && head[1] === 0xff) return 'utf-16be';
  return head.subarray(0, SNIFF_BYTES).includes(0) ? 'binary' : 'utf-8';
}

export class ByteLeakScanner {
  private readonly scanner: LeakStreamScanner;
  private decoder: Decoder | undefined;
  private utf8: Utf8Decoder | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** How the bytes are read; undefined until SNIFF_BYTES have arrived (or the end). */
  encoding: ByteEncoding | undefined;

  constructor(opts: { now: Date; overlap?: number; work?: DetectionWork }) {
    this.scanner = new LeakStreamScanner(opts);
  }

  /** Invalid UTF-8 sequences read as U+FFFD so far (UTF-8 input only). */
  get invalidUtf8(): number {
    return this.utf8?.invalid ?? 0;
  }

  write(bytes: Buffer): StreamFinding[] {
    if (this.decoder) return this.scanner.push(this.decoder.write(bytes));
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    return this.pendingBytes >= SNIFF_BYTES ? this.decide() : [];
  }

  end(): StreamFinding[] {
    const head = this.decoder ? [] : this.decide();
    const decoder = this.decoder as Decoder;
    return [...head, ...this.scanner.push(decoder.end()), ...this.scanner.end()];
  }

  private decide(): StreamFinding[] {
    const head = Buffer.concat(this.pending);
    this.pending = [];
    this.encoding = sniffEncoding(head);
    if (this.encoding === 'utf-8') {
      this.utf8 = new Utf8Decoder();
      this.decoder = this.utf8;
    } else if (this.encoding === 'binary') {
      this.decoder = latin1;
    } else {
      this.decoder = new Utf16Decoder(this.encoding);
    }
    return this.scanner.push(this.decoder.write(head));
  }
}
