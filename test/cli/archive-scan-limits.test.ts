import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { MAX_JSON_DEPTH, nestingExceeds, scanFile } from '../../lambda/cli/archive-scan';
import { type InputFile, invalidUtf8, MiB } from '../../lambda/cli/inputs';
import { parseReadBounds, REPLAY_FILTER } from '../../lambda/cli/replay';
import { createKeyRecord, removeTempDirs, tempDir, writeFile } from './helpers';

/**
 * The reading limits of `keyguard replay` at their edges (issue 10 items 7, 8, 10, 16): NDJSON lines that
 * cross the 1 MiB read chunks, a line exactly at the record limit and one byte over, a file exactly at the file
 * limit and one byte over, a character split between two chunks (valid UTF-8, not counted as invalid).
 */

afterAll(removeTempDirs);

function input(dir: string, name: string, content: string | Buffer): InputFile {
  const absolute = writeFile(join(dir, name), content);
  return { display: name, absolute, bytes: Buffer.byteLength(content) };
}

/** A record that passes the cheap test and parses (an IAM event replay does not follow, naming one it does). */
function candidate(n: number, padBytes: number): string {
  return JSON.stringify({
    eventSource: 'iam.amazonaws.com',
    eventName: 'ListUsers',
    note: 'TagUser',
    n,
    pad: 'é'.repeat(padBytes / 2),
  });
}

describe('scanFile: NDJSON streamed in chunks', () => {
  it('reads every line whole when lines cross the read chunks, with CRLF endings and a BOM', async () => {
    // Prepare: ~5 MiB of lines of uneven length (multi-byte characters land on chunk edges).
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) lines.push(candidate(i, 1000 + ((i * 7919) % 30_000)));
    const text = `\ufeff${lines.join('\r\n')}\r\n`;
    const dir = tempDir();
    const plain = input(dir, 'a.jsonl', text);
    const gz = input(dir, 'b.jsonl.gz', gzipSync(text));

    // Act
    const scans = [await scanFile(plain, REPLAY_FILTER), await scanFile(gz, REPLAY_FILTER)];

    // Assess
    for (const scan of scans) {
      expect(scan.problems).toEqual([]);
      expect(scan.invalidUtf8).toBe(0);
      expect(scan.entries.map((e) => e.value.n)).toEqual(lines.map((_, i) => i));
      expect(scan.entries.map((e) => e.line)).toEqual(lines.map((_, i) => i + 1));
    }
  });

  it('takes a line of exactly the record limit and skips one a byte longer, by line number', async () => {
    // Prepare
    const limit = 64 * 1024;
    const fit = candidate(1, 0);
    const exact = fit.replace('"pad":""', `"pad":"${'x'.repeat(limit - Buffer.byteLength(fit))}"`);
    const over = exact.replace('"pad":"', '"pad":"x');
    expect([Buffer.byteLength(exact), Buffer.byteLength(over)]).toEqual([limit, limit + 1]);
    const dir = tempDir();
    const file = input(dir, 'a.jsonl', `${exact}\n${over}\n${exact}`);

    // Act
    const scan = await scanFile(file, REPLAY_FILTER, {
      limits: { maxFileBytes: MiB, maxRecordBytes: limit },
    });

    // Assess
    expect(scan.entries.map((e) => e.line)).toEqual([1, 3]);
    expect(scan.problems).toEqual([
      { path: 'a.jsonl', line: 2, reason: 'a line of more than 65536 bytes (--max-record-size): skipped' },
    ]);
  });

  it('does not count a character cut by a chunk edge as invalid, and counts a lone continuation byte once', async () => {
    // Prepare: 'é' (2 bytes) straddles the 1 MiB edge; later a lone continuation byte.
    const head = `{"pad":"${'a'.repeat(MiB - 9)}é"}\n`;
    const bad = Buffer.concat([Buffer.from('{"x":"'), Buffer.from([0x80]), Buffer.from('"}\n')]);
    const dir = tempDir();
    const file = input(dir, 'a.jsonl', Buffer.concat([Buffer.from(head), bad]));

    // Act
    const scan = await scanFile(file, REPLAY_FILTER);

    // Assess
    expect(scan.problems).toEqual([]);
    expect(scan.invalidUtf8).toBe(1);
  });
});

describe('scanFile: the file limit', () => {
  it('reads a file of exactly the limit and refuses one a byte larger, plain or gzipped', async () => {
    // Prepare
    const record = JSON.stringify(createKeyRecord('2026-11-20T09:00:00Z', 'svc-a', 'ACCALIMITS0000000001'));
    const limit = Buffer.byteLength(record);
    const dir = tempDir();
    const files = [
      input(dir, 'exact.json', record),
      input(dir, 'over.json', `${record} `),
      input(dir, 'exact.json.gz', gzipSync(record)),
      input(dir, 'over.json.gz', gzipSync(`${record} `)),
    ];

    // Act
    const scans = await Promise.all(
      files.map((f) => scanFile(f, REPLAY_FILTER, { limits: { maxFileBytes: limit, maxRecordBytes: MiB } })),
    );

    // Assess
    expect(scans.map((s) => [s.entries.length, s.problems.map((p) => p.reason)])).toEqual([
      [1, []],
      [0, [`more than ${limit} bytes (--max-file-size): not read`]],
      [1, []],
      [0, [`more than ${limit} bytes once decompressed (--max-file-size): not read`]],
    ]);
  });
});

describe('nesting depth', () => {
  it(`allows ${MAX_JSON_DEPTH} levels, not one more, and ignores brackets inside strings`, () => {
    // Prepare
    const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

    // Act / Assess
    expect(nestingExceeds(nest(MAX_JSON_DEPTH), MAX_JSON_DEPTH)).toBe(false);
    expect(nestingExceeds(nest(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)).toBe(true);
    expect(nestingExceeds(`{"a":"${'{['.repeat(100)}\\"${'['.repeat(100)}"}`, MAX_JSON_DEPTH)).toBe(false);
  });
});

describe('invalidUtf8', () => {
  it('counts invalid sequences as a decoder replaces them, not the U+FFFD the text really holds', () => {
    // Act / Assess
    expect(invalidUtf8(Buffer.from('plain ascii and é and \ufffd'))).toBe(0);
    expect(invalidUtf8(Buffer.from([0x61, 0xff, 0xfe, 0x62, 0xc3]))).toBe(3);
    expect(invalidUtf8(Buffer.concat([Buffer.from('\ufffd'), Buffer.from([0xe2, 0x82])]))).toBe(1);
  });
});

describe('parseReadBounds (--max-file-size, --max-record-size, --stall-timeout)', () => {
  it('defaults to 512 MiB per file, 32 MiB per record and 120 s without progress', () => {
    // Act / Assess
    expect(parseReadBounds({})).toEqual({
      limits: { maxFileBytes: 512 * MiB, maxRecordBytes: 32 * MiB },
      stallMs: 120_000,
    });
    expect(parseReadBounds({ maxFileSize: '2048', maxRecordSize: '1', stallTimeout: '5' })).toEqual({
      limits: { maxFileBytes: 2048 * MiB, maxRecordBytes: MiB },
      stallMs: 5000,
    });
  });

  it.each([
    [{ maxFileSize: '4097' }, '--max-file-size: "4097" is not a whole number of MiB from 1 to 4096'],
    [{ maxRecordSize: '1.5' }, '--max-record-size: "1.5" is not a whole number of MiB from 1 to 256'],
    [{ stallTimeout: '-1' }, '--stall-timeout: "-1" is not a whole number of seconds from 1 to 86400'],
  ])('refuses %j, naming the option', (options, message) => {
    // Act / Assess
    expect(() => parseReadBounds(options)).toThrow(message);
  });
});
