import { findLeakSpans, type LeakFinding, MAX_KEY_TEXT } from './leaks';

/**
 * Scans text that arrives in chunks (a large file, a git blob, stdin) without holding it whole, with the same
 * findings as `findLeaks` on the whole text: each chunk is scanned together with the last `MAX_KEY_TEXT`
 * characters before it, a key is reported only once its start is at least that far from the end of what has
 * arrived (so it is seen whole), and scanning resumes after the end of the last key reported (so it is reported
 * once). Line and column are counted across chunks. Pure: the caller does the I/O and decodes the bytes.
 */

/** The inline marker that suppresses a finding on its line. */
export const ALLOW_MARKER = 'keyguard:allow';

export interface StreamFinding extends LeakFinding {
  /** The key's line carries `keyguard:allow`. */
  allowed: boolean;
}

export class LeakStreamScanner {
  private buffer = '';
  /** Line and column of `buffer[0]` in the whole text. */
  private baseLine = 1;
  private baseColumn = 1;
  /** The part of the current line already dropped from the buffer holds the allow marker. */
  private droppedLineAllowed = false;
  private readonly now: Date;
  private readonly overlap: number;

  constructor(opts: { now: Date; overlap?: number }) {
    this.now = opts.now;
    this.overlap = opts.overlap ?? MAX_KEY_TEXT;
  }

  /** Adds text; returns the findings that are complete. */
  push(text: string): StreamFinding[] {
    this.buffer += text;
    // Scanning re-reads the overlap: wait until there is at least as much new text as overlap.
    if (this.buffer.length < this.overlap * 2) return [];
    return this.scan(false);
  }

  /** The text has ended: returns the remaining findings. */
  end(): StreamFinding[] {
    const found = this.scan(true);
    this.buffer = '';
    return found;
  }

  private scan(final: boolean): StreamFinding[] {
    const buffer = this.buffer;
    const cutoff = final ? buffer.length : buffer.length - this.overlap;
    const out: StreamFinding[] = [];
    let resumeAt = cutoff;
    for (const span of findLeakSpans(buffer, { now: this.now })) {
      if (span.index >= cutoff) break;
      const { index, end, ...finding } = span;
      out.push({
        ...finding,
        line: this.baseLine + finding.line - 1,
        column: finding.line === 1 ? this.baseColumn + finding.column - 1 : finding.column,
        allowed: this.lineAllowed(index),
      });
      resumeAt = Math.max(resumeAt, end);
    }
    if (!final) this.drop(Math.min(resumeAt, buffer.length));
    return out;
  }

  private lineAllowed(index: number): boolean {
    const start = this.buffer.lastIndexOf('\n', index - 1) + 1;
    const next = this.buffer.indexOf('\n', index);
    const line = this.buffer.slice(start, next === -1 ? this.buffer.length : next);
    return line.includes(ALLOW_MARKER) || (start === 0 && this.droppedLineAllowed);
  }

  /** Drops `buffer[0, cut)`, moving the line and column of the buffer's start past it. */
  private drop(cut: number): void {
    const dropped = this.buffer.slice(0, cut);
    const lastNl = dropped.lastIndexOf('\n');
    // The marker may straddle the cut: look a marker's length into what is kept.
    const lineHead = this.buffer.slice(lastNl + 1, cut + ALLOW_MARKER.length - 1);
    if (lastNl === -1) {
      this.baseColumn += cut;
      this.droppedLineAllowed = this.droppedLineAllowed || lineHead.includes(ALLOW_MARKER);
    } else {
      let lines = 0;
      for (let nl = dropped.indexOf('\n'); nl !== -1; nl = dropped.indexOf('\n', nl + 1)) lines += 1;
      this.baseLine += lines;
      this.baseColumn = cut - lastNl;
      this.droppedLineAllowed = lineHead.includes(ALLOW_MARKER);
    }
    this.buffer = this.buffer.slice(cut);
  }
}
