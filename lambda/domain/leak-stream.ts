import { type DetectionWork, findLeakSpans, type LeakFinding, MAX_KEY_TEXT } from './leaks';

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
  private readonly work: DetectionWork;

  /** `work`, when given, is increased by the work spent (detection, line bookkeeping): see DetectionWork. */
  constructor(opts: { now: Date; overlap?: number; work?: DetectionWork }) {
    this.now = opts.now;
    this.overlap = opts.overlap ?? MAX_KEY_TEXT;
    this.work = opts.work ?? { units: 0 };
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
    // Whether a line is allowed is worked out once per line, not once per key (a long line may hold many keys).
    let line: { start: number; end: number; allowed: boolean } | undefined;
    for (const span of findLeakSpans(buffer, { now: this.now, work: this.work })) {
      if (span.index >= cutoff) break;
      const { index, end, ...finding } = span;
      // The finding's column counts from the start of its line in the buffer.
      const start = index - finding.column + 1;
      if (line?.start !== start) line = this.lineAt(start);
      out.push({
        ...finding,
        line: this.baseLine + finding.line - 1,
        column: finding.line === 1 ? this.baseColumn + finding.column - 1 : finding.column,
        allowed: line.allowed,
      });
      resumeAt = Math.max(resumeAt, end);
    }
    if (!final) this.drop(Math.min(resumeAt, buffer.length));
    return out;
  }

  /** The buffer's line that starts at `start`, and whether it carries the allow marker. */
  private lineAt(start: number): { start: number; end: number; allowed: boolean } {
    const next = this.buffer.indexOf('\n', start);
    const end = next === -1 ? this.buffer.length : next;
    this.work.units += end - start;
    const allowed =
      this.buffer.slice(start, end).includes(ALLOW_MARKER) || (start === 0 && this.droppedLineAllowed);
    return { start, end, allowed };
  }

  /** Drops `buffer[0, cut)`, moving the line and column of the buffer's start past it. */
  private drop(cut: number): void {
    const dropped = this.buffer.slice(0, cut);
    this.work.units += cut;
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
