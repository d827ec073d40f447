import { TextDecoder } from 'node:util';
import { ByteLeakScanner } from '../../lambda/domain/leak-bytes';
import { LeakStreamScanner, type StreamFinding } from '../../lambda/domain/leak-stream';
import { escapeRichLongTermKey, KEY_ENCODINGS } from '../support/key-encodings';
import { fakeLongTermKey, fakeShortTermKey } from '../support/secrets';

/**
 * Issue 13 (scan speed): UTF-8 and binary input is searched as bytes (ByteTextScanner in leak-bytes.ts) instead
 * of being decoded and scanned as text. The findings must not change: for random inputs holding keys in every
 * context, non-ASCII characters, invalid UTF-8, CRLF, allow markers and long lines, fed in chunks of random
 * sizes, they equal LeakStreamScanner's over the decoded text (the scanner every input went through before),
 * line, column and `allowed` included, and so does the count of invalid UTF-8 sequences.
 */

const NOW = new Date('2026-11-20T10:00:00Z');
const OVERLAP = 8192;

/** A small deterministic generator (xorshift32), so a failure can be replayed by its seed. */
function rng(seed: number): () => number {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

const KEYS = [
  fakeLongTermKey('equiv-a'),
  fakeShortTermKey('equiv-b'),
  escapeRichLongTermKey('equiv-c'),
  fakeLongTermKey('equiv-d', '444455556666'),
];

const PIECES: Array<string | Buffer> = [
  'plain words ',
  'é',
  '😀',
  '日本語 ',
  '\n',
  '\r\n',
  '\\n',
  ' keyguard:allow ',
  'ABSK',
  'ABSKQmVkcm9ja0FQSUtleS',
  'bedrock-api-key-',
  'bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t',
  '%2F',
  '\\u002B',
  '"',
  '\uFFFD',
  Buffer.from([0xff]),
  Buffer.from([0xc3]),
  Buffer.from([0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xf0, 0x9f, 0x98]),
];

function randomInput(seed: number): Buffer {
  const next = rng(seed);
  const parts: Buffer[] = [];
  const count = 50 + Math.floor(next() * 400);
  for (let i = 0; i < count; i += 1) {
    const r = next();
    if (r < 0.08) {
      const key = KEYS[Math.floor(next() * KEYS.length)] as string;
      const [, encode] = KEY_ENCODINGS[Math.floor(next() * KEY_ENCODINGS.length)] as [
        string,
        (k: string) => string,
      ];
      parts.push(Buffer.from(encode(key)));
    } else if (r < 0.1) {
      // A long line: many columns past the chunk and overlap sizes.
      parts.push(Buffer.from('x'.repeat(Math.floor(next() * 3 * OVERLAP))));
    } else {
      const piece = PIECES[Math.floor(next() * PIECES.length)] as string | Buffer;
      parts.push(typeof piece === 'string' ? Buffer.from(piece) : piece);
    }
  }
  // At least one key, at the very end (no line break after it).
  parts.push(Buffer.from(KEYS[seed % KEYS.length] as string));
  return Buffer.concat(parts);
}

/** Chunks of random sizes (`seed`), or the whole input in one write (`seed` 0). */
function viaBytes(bytes: Buffer, seed: number): { found: StreamFinding[]; invalid: number } {
  const next = rng(seed * 7 + 3);
  const scanner = new ByteLeakScanner({ now: NOW, overlap: OVERLAP });
  const found: StreamFinding[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = seed === 0 ? bytes.length : 1 + Math.floor(next() * (next() < 0.5 ? 64 : 40_000));
    found.push(...scanner.write(bytes.subarray(at, at + size)));
    at += size;
  }
  found.push(...scanner.end());
  return { found, invalid: scanner.invalidUtf8 };
}

function viaText(bytes: Buffer): { found: StreamFinding[]; invalid: number } {
  let text = new TextDecoder('utf-8').decode(bytes);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const scanner = new LeakStreamScanner({ now: NOW, overlap: OVERLAP });
  const found = [...scanner.push(text), ...scanner.end()];
  const replaced = text.split('\uFFFD').length - 1;
  const written = bytes.toString('latin1').split('\xEF\xBF\xBD').length - 1;
  return { found, invalid: replaced - written };
}

describe('ByteLeakScanner searches UTF-8 as bytes with the findings of the text scanner', () => {
  it.each(Array.from({ length: 40 }, (_, i) => i + 1))('random input %i', (seed) => {
    // Prepare
    const bytes = randomInput(seed);

    // Act
    const chunked = viaBytes(bytes, seed);
    const whole = viaBytes(bytes, 0);
    const textScan = viaText(bytes);

    // Assess: in one write, everything; in chunks, everything but `allowed` (a streaming scanner sees a long
    // line's marker only if it arrives within the overlap of the key, in text as in bytes).
    expect(whole.found.length).toBeGreaterThan(0);
    expect(whole.found).toEqual(textScan.found);
    const placed = (found: StreamFinding[]) => found.map(({ allowed: _allowed, ...f }) => f);
    expect(placed(chunked.found)).toEqual(placed(textScan.found));
    expect(chunked.invalid).toBe(textScan.invalid);
    expect(whole.invalid).toBe(textScan.invalid);
  });

  it('keeps a byte order mark out of the columns, as the text scanner does', () => {
    // Prepare
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), randomInput(99)]);

    // Act / Assess
    expect(viaBytes(bytes, 99).found).toEqual(viaText(bytes).found);
  });
});
