import { ByteLeakScanner, SNIFF_BYTES, sniffEncoding } from '../../lambda/domain/leak-bytes';
import type { StreamFinding } from '../../lambda/domain/leak-stream';
import { findLeaks, type LeakFinding } from '../../lambda/domain/leaks';
import { fingerprint } from '../../lambda/shared/redact';
import { fakeLongTermKey, fakeShortTermKey } from '../support/secrets';

/**
 * Issue 10, item 16 (scan): a UTF-16 file or a NUL byte in the first 8 KB no longer hides a key; invalid UTF-8 is
 * counted. Bytes go in, in chunks of any size; findings come out as for the same text in UTF-8.
 */

const NOW = new Date('2026-11-20T10:00:00Z');
const LONG = fakeLongTermKey('bytes');
const SHORT = fakeShortTermKey('bytes');

function scanBytes(bytes: Buffer, chunk: number): { found: StreamFinding[]; scanner: ByteLeakScanner } {
  const scanner = new ByteLeakScanner({ now: NOW, overlap: 2048 });
  const found: StreamFinding[] = [];
  for (let i = 0; i < bytes.length; i += chunk) found.push(...scanner.write(bytes.subarray(i, i + chunk)));
  found.push(...scanner.end());
  return { found, scanner };
}

function where(found: LeakFinding[]): Array<[string, number, number]> {
  return found.map((f) => [f.fingerprint, f.line, f.column]);
}

const TEXT = `first line é😀\n  token = "${LONG}"\r\nthird ${SHORT} end\n`;
/** Where the keys are in TEXT (as findLeaks reports them for the same text in UTF-8). */
const EXPECTED: Array<[string, number, number]> = [
  [fingerprint(LONG), 2, 12],
  [fingerprint(SHORT), 3, 7],
];

function utf16be(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16();
}

describe('ByteLeakScanner', () => {
  it('expects what findLeaks finds in the UTF-8 text', () => {
    expect(where(findLeaks(TEXT, { now: NOW }))).toEqual(EXPECTED);
  });

  it.each([1, 3, 7, 4096])(
    'finds keys in UTF-16 LE with a byte order mark, in chunks of %i bytes',
    (chunk) => {
      // Prepare
      const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(TEXT, 'utf16le')]);

      // Act
      const { found, scanner } = scanBytes(bytes, chunk);

      // Assess
      expect(scanner.encoding).toBe('utf-16le');
      expect(where(found)).toEqual(EXPECTED);
    },
  );

  it.each([1, 3, 7, 4096])(
    'finds keys in UTF-16 BE with a byte order mark, in chunks of %i bytes',
    (chunk) => {
      // Prepare
      const bytes = Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be(TEXT)]);

      // Act
      const { found, scanner } = scanBytes(bytes, chunk);

      // Assess
      expect(scanner.encoding).toBe('utf-16be');
      expect(where(found)).toEqual(EXPECTED);
    },
  );

  it.each([5, 1000, 65536])(
    'searches binary content (a NUL in the head) for keys, in chunks of %i bytes',
    (chunk) => {
      // Prepare: keys among bytes of every value, one of them past the sniffed head.
      const noise = Buffer.from(Array.from({ length: 3 * SNIFF_BYTES }, (_, i) => (i * 131 + 7) % 256));
      const bytes = Buffer.concat([
        Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0]),
        Buffer.from(` ${LONG}\0`),
        noise,
        Buffer.from(`\0${SHORT}\0`),
        noise,
      ]);

      // Act
      const { found, scanner } = scanBytes(bytes, chunk);

      // Assess
      expect(scanner.encoding).toBe('binary');
      expect(found.map((f) => f.fingerprint)).toEqual([fingerprint(LONG), fingerprint(SHORT)]);
      expect(found[0]).toEqual(expect.objectContaining({ line: 1, column: 10 }));
    },
  );

  it('takes a UTF-32 LE byte order mark for binary, not UTF-16', () => {
    expect(sniffEncoding(Buffer.from([0xff, 0xfe, 0, 0, 0x41, 0, 0, 0]))).toBe('binary');
    expect(sniffEncoding(Buffer.from([0xff, 0xfe, 0x41, 0]))).toBe('utf-16le');
    expect(sniffEncoding(Buffer.from('plain text'))).toBe('utf-8');
  });

  it('decides on a file shorter than the sniffed head at its end', () => {
    // Act
    const { found, scanner } = scanBytes(
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(LONG, 'utf16le')]),
      64,
    );

    // Assess
    expect(scanner.encoding).toBe('utf-16le');
    expect(where(found)).toEqual([[fingerprint(LONG), 1, 1]]);
  });

  it('drops a UTF-8 byte order mark, so columns count from the first character', () => {
    // Act
    const { found } = scanBytes(Buffer.from(`\uFEFF${LONG}`, 'utf8'), 2);

    // Assess
    expect(where(found)).toEqual([[fingerprint(LONG), 1, 1]]);
  });

  it.each([1, 2, 5, 4096])(
    'counts invalid UTF-8 sequences, not a U+FFFD written in the file (chunks of %i bytes)',
    (chunk) => {
      // Prepare: 0xFF, a truncated 2-byte sequence, a lone continuation byte: 3 invalid; one real U+FFFD.
      const bytes = Buffer.concat([
        Buffer.from('a \uFFFD b '),
        Buffer.from([0xff]),
        Buffer.from(` ${LONG} `),
        Buffer.from([0xc3, 0x20, 0x80]),
        Buffer.from(' end \uFFFD'),
      ]);

      // Act
      const { found, scanner } = scanBytes(bytes, chunk);

      // Assess
      expect(scanner.encoding).toBe('utf-8');
      expect(scanner.invalidUtf8).toBe(3);
      expect(found.map((f) => f.fingerprint)).toEqual([fingerprint(LONG)]);
    },
  );

  it('counts a sequence left incomplete at the end of the input', () => {
    // Act
    const { scanner } = scanBytes(Buffer.from([0x61, 0xe2, 0x82]), 1);

    // Assess
    expect(scanner.invalidUtf8).toBe(1);
  });
});
