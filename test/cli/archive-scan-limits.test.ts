import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  type FileScan,
  MAX_JSON_DEPTH,
  nestingExceeds,
  type ScanOptions,
  scanFile,
} from '../../lambda/cli/archive-scan';
import {
  gunzipChunkSize,
  InflateBuffer,
  type InputFile,
  inflateInto,
  invalidUtf8,
  MiB,
} from '../../lambda/cli/inputs';
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

/** The gzip bytes with the trailer's ISIZE (the size it claims to inflate to) replaced. */
function withIsize(gz: Buffer, isize: number): Buffer {
  const out = Buffer.from(gz);
  out.writeUInt32LE(isize >>> 0, out.length - 4);
  return out;
}

describe('scanFile: the gzip trailer is only a hint', () => {
  it('sizes the output from ISIZE, within what the file can inflate to and the file limit', () => {
    // Prepare
    const gz = gzipSync(Buffer.alloc(3 * MiB, 'a'));

    // Act / Assess: one byte more than announced (never a second chunk); never under 1 MiB; a claim past
    // deflate's ratio or the limit is not believed.
    expect(gunzipChunkSize(gz, 512 * MiB)).toBe(3 * MiB + 1);
    expect(gunzipChunkSize(withIsize(gz, 10), 512 * MiB)).toBe(MiB);
    expect(gunzipChunkSize(withIsize(gz, 0xffffffff), 512 * MiB)).toBe(gz.length * 1032);
    expect(gunzipChunkSize(gz, 2 * MiB)).toBe(2 * MiB + 1);
    expect(gunzipChunkSize(Buffer.from([0x1f, 0x8b]), 512 * MiB)).toBe(MiB);
  });

  it("reads a multi-member gzip file whole (its trailer gives only the last member's size)", async () => {
    // Prepare: over 3 MiB of records (more than one 1 MiB chunk), gzipped as a large member and a small one.
    const records: Array<Record<string, unknown>> = Array.from({ length: 3000 }, (_, i) => ({
      ...createKeyRecord('2026-11-20T09:00:00Z', `svc-${i}`, `ACCAHINT${String(i).padStart(12, '0')}`),
      pad: 'x'.repeat(900),
    }));
    const text = Buffer.from(JSON.stringify({ Records: records }));
    expect(text.length).toBeGreaterThan(3 * MiB);
    const cut = text.length - 100;
    const gz = Buffer.concat([gzipSync(text.subarray(0, cut)), gzipSync(text.subarray(cut))]);
    expect(gunzipChunkSize(gz, 512 * MiB)).toBe(MiB);
    const file = input(tempDir(), 'members.json.gz', gz);

    // Act: in this thread's pool (--jobs 1), synchronously, and into reused memory (as worker threads read)
    const scans = [
      await scanFile(file, REPLAY_FILTER),
      await scanFile(file, REPLAY_FILTER, { syncRead: true }),
      await scanFile(file, REPLAY_FILTER, { syncRead: true, inflateBuffer: new InflateBuffer() }),
    ];

    // Assess
    for (const scan of scans) {
      expect(scan.problems).toEqual([]);
      expect(scan.records).toBe(3000);
      expect(scan.entries.map((e) => e.value.eventID)).toEqual(records.map((r) => r.eventID));
    }
  });

  it.each([
    ['too small', 1],
    ['too large', 0xfffffff0],
  ])('refuses a file whose ISIZE is forged (%s), and still stops a bomb at the limit', async (_, isize) => {
    // Prepare: a bomb of 16 MiB against an 8 MiB limit.
    const dir = tempDir();
    const text = JSON.stringify({
      Records: [createKeyRecord('2026-11-20T09:00:00Z', 'svc-a', 'ACCAHINT0001')],
    });
    const forged = input(dir, 'forged.json.gz', withIsize(gzipSync(text), isize));
    const bomb = input(dir, 'bomb.json.gz', withIsize(gzipSync(Buffer.alloc(16 * MiB, ' ')), isize));
    const limits = { maxFileBytes: 8 * MiB, maxRecordBytes: MiB };

    // Act: asynchronously, synchronously, and into reused memory (worker threads)
    const scans: FileScan[] = [];
    const modes: ScanOptions[] = [
      { limits },
      { limits, syncRead: true },
      { limits, syncRead: true, inflateBuffer: new InflateBuffer() },
    ];
    for (const mode of modes) {
      scans.push(await scanFile(forged, REPLAY_FILTER, mode));
      scans.push(await scanFile(bomb, REPLAY_FILTER, mode));
    }

    // Assess: zlib checks the trailer against what it inflated.
    const expected = [
      ['forged.json.gz: cannot decompress (gzip): incorrect length check'],
      ['bomb.json.gz: more than 8 MiB once decompressed (--max-file-size): not read'],
    ];
    expect(scans.map((s) => s.problems.map((p) => `${p.path}: ${p.reason}`))).toEqual([
      ...expected,
      ...expected,
      ...expected,
    ]);
  });
});

describe('inflateInto: whole files into reused memory (worker threads)', () => {
  it('inflates each file into the memory of the one before, and refuses truncated and non-gzip input', () => {
    // Prepare
    const scratch = new InflateBuffer();
    const a = Buffer.alloc(2 * MiB + 5, 'a');
    const b = Buffer.alloc(MiB + 7, 'b');
    const gzA = gzipSync(a);

    // Act
    const first = Buffer.from(inflateInto(gzA, 512 * MiB, scratch));
    const memory = scratch.buffer;
    const second = inflateInto(gzipSync(b), 512 * MiB, scratch);

    // Assess: the same bytes as zlib's gunzip, in the same memory (the first file's bytes are overwritten).
    expect(first.equals(a)).toBe(true);
    expect(second.equals(b)).toBe(true);
    expect(memory).not.toBeNull();
    expect(scratch.buffer).toBe(memory);
    expect(second.buffer === (memory as Buffer).buffer).toBe(true);
    expect(() => inflateInto(gzA.subarray(0, gzA.length - 100), 512 * MiB, scratch)).toThrow(
      'unexpected end of file',
    );
    expect(() => inflateInto(Buffer.from('not gzip at all'), 512 * MiB, scratch)).toThrow(
      'incorrect header check',
    );
    // After an error the memory still serves the next file.
    expect(inflateInto(gzipSync(b), 512 * MiB, scratch).equals(b)).toBe(true);
  });

  it('scans files one after another in the same memory, a shorter one after a longer, plain or gzipped', async () => {
    // Prepare
    const dir = tempDir();
    const log = (n: number) =>
      JSON.stringify({
        Records: Array.from({ length: n }, (_, i) =>
          createKeyRecord('2026-11-20T09:00:00Z', `svc-${i}`, `ACCAREUSE${String(i).padStart(11, '0')}`),
        ),
      });
    const files = [
      input(dir, 'long.json', log(40)),
      input(dir, 'short.json', log(3)),
      input(dir, 'long.json.gz', gzipSync(log(40))),
      input(dir, 'short.json.gz', gzipSync(log(3))),
    ];
    const inflateBuffer = new InflateBuffer();

    // Act
    const scans: FileScan[] = [];
    for (const f of files) scans.push(await scanFile(f, REPLAY_FILTER, { syncRead: true, inflateBuffer }));

    // Assess: nothing of the longer file is read after the shorter one.
    expect(scans.map((s) => [s.records, s.entries.length, s.problems])).toEqual([
      [40, 40, []],
      [3, 3, []],
      [40, 40, []],
      [3, 3, []],
    ]);
  });

  it('grows the memory for a file larger than its trailer says, and stops at the limit', () => {
    // Prepare: two members (the trailer tells only the last one's size)
    const whole = Buffer.alloc(5 * MiB, 'x');
    const members = Buffer.concat([gzipSync(whole.subarray(0, 5 * MiB - 10)), gzipSync(whole.subarray(-10))]);

    // Act / Assess
    expect(inflateInto(members, 512 * MiB, new InflateBuffer()).equals(whole)).toBe(true);
    expect(inflateInto(members, 5 * MiB, new InflateBuffer()).equals(whole)).toBe(true);
    expect(() => inflateInto(members, 5 * MiB - 1, new InflateBuffer())).toThrow(
      expect.objectContaining({ code: 'ERR_BUFFER_TOO_LARGE' }),
    );
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
