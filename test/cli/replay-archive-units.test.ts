import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { scanFile, splitRecords } from '../../lambda/cli/archive-scan';
import {
  directoryMayHold,
  directorySpan,
  inWindow,
  logFileMayHold,
  logFileTime,
  parseWindow,
  ReplayWindowError,
} from '../../lambda/cli/archive-window';
import { REPLAY_FILTER, runReplay } from '../../lambda/cli/replay';
import { startProgress } from '../../lambda/cli/replay-progress';
import { captureIO, createKeyRecord, jsonLines, removeTempDirs, tempDir, writeFile } from './helpers';

/** The pieces under `keyguard replay` at archive scale: the window, path dates and the record splitter. */

afterAll(removeTempDirs);

const at = (iso: string) => Date.parse(iso);

describe('replay window (--since/--until)', () => {
  it('reads a date as midnight UTC and an ISO timestamp with its zone', () => {
    // Act
    const w = parseWindow('2026-11-02', '2026-11-03T01:00:00+01:00');

    // Assess
    expect(w).toEqual({ since: at('2026-11-02T00:00:00Z'), until: at('2026-11-03T00:00:00Z') });
  });

  it('keeps since inclusive and until exclusive', () => {
    // Prepare
    const w = parseWindow('2026-11-02', '2026-11-03');

    // Act
    const kept = [
      '2026-11-01T23:59:59.999Z',
      '2026-11-02T00:00:00Z',
      '2026-11-02T23:59:59.999Z',
      '2026-11-03T00:00:00Z',
    ].map((t) => inWindow(w, t));

    // Assess
    expect(kept).toEqual([false, true, true, false]);
  });

  it.each(['2026-02-30', '2026-11-2', '20261102', '2026-11-02T10:00:00', 'now', ''])(
    'rejects %j',
    (value) => {
      // Act
      const act = () => parseWindow(value, undefined);

      // Assess
      expect(act).toThrow(ReplayWindowError);
      expect(act).toThrow(`--since: ${JSON.stringify(value)} is not a date`);
    },
  );
});

describe('S3 layout path dates', () => {
  const base = '/data/bucket/AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/us-east-1';

  it('gives the span of a year, month and day directory, and nothing for other directories', () => {
    // Act
    const spans = [
      `${base}/2026`,
      `${base}/2026/11`,
      `${base}/2026/11/02`,
      base,
      '/data/other/2026/11/02',
      `${base}/2026/11/02/extra`,
    ].map(directorySpan);

    // Assess
    expect(spans).toEqual([
      { start: at('2026-01-01T00:00:00Z'), end: at('2027-01-01T00:00:00Z') },
      { start: at('2026-11-01T00:00:00Z'), end: at('2026-12-01T00:00:00Z') },
      { start: at('2026-11-02T00:00:00Z'), end: at('2026-11-03T00:00:00Z') },
      null,
      null,
      null,
    ]);
  });

  it('reads the delivery time from a log file name, and nothing from other names', () => {
    // Act
    const times = [
      '111122223333_CloudTrail_us-east-1_20261102T0935Z_Aaj0Vzf9VCKbVbPz.json.gz',
      '111122223333_CloudTrail_eu-west-1_20261102T2355Z_x1.json',
      '111122223333_CloudTrail-Digest_us-east-1_20261102T0935Z.json.gz',
      'events.json',
    ].map(logFileTime);

    // Assess
    expect(times).toEqual([at('2026-11-02T09:35:00Z'), at('2026-11-02T23:55:00Z'), null, null]);
  });

  it('skips a day only when it is clearly outside the window, keeping margins for delivery', () => {
    // Prepare
    const w = parseWindow('2026-11-02', '2026-11-03');

    // Act
    const days = ['2026/10/31', '2026/11/01', '2026/11/02', '2026/11/03', '2026/11/04'].map((d) =>
      directoryMayHold(w, `${base}/${d}`),
    );

    // Assess: 1 Nov may hold a record skewed past midnight; 3 Nov may hold late deliveries.
    expect(days).toEqual([false, true, true, true, false]);
  });

  it('skips a log file by its name time, with 15 min before --since and 6 h after --until', () => {
    // Prepare
    const w = parseWindow('2026-11-02T00:00:00Z', '2026-11-03T00:00:00Z');
    const file = (t: string) => `111122223333_CloudTrail_us-east-1_${t}_Aaj0Vzf9VCKbVbPz.json.gz`;

    // Act
    const kept = ['20261101T2344Z', '20261101T2346Z', '20261103T0559Z', '20261103T0601Z'].map((t) =>
      logFileMayHold(w, file(t)),
    );

    // Assess
    expect(kept).toEqual([false, true, true, false]);
  });
});

describe('splitRecords', () => {
  const spans = (text: string) => {
    const b = Buffer.from(text, 'utf8');
    const s = splitRecords(b);
    if (s === null) return null;
    const out: string[] = [];
    for (let k = 0; k < s.length; k += 2) out.push(b.toString('utf8', s[k], s[k + 1]));
    return out;
  };

  it('finds each record of a compact or pretty-printed file, whatever its strings hold', () => {
    // Prepare
    const records = [
      { eventName: 'A', note: 'a "quote" \\ {brace} [bracket] , : ü 🙂' },
      { eventName: 'B', nested: { list: [1, { x: '}' }], empty: {} }, n: -1.5e3, t: true, z: null },
    ];

    // Act
    const compact = spans(JSON.stringify({ Records: records }));
    const pretty = spans(
      `\ufeff${JSON.stringify({ other: [1, '{'], Records: records, after: 'x' }, null, 2)}\n`,
    );

    // Assess
    expect(compact?.map((s) => JSON.parse(s))).toEqual(records);
    expect(pretty?.map((s) => JSON.parse(s))).toEqual(records);
  });

  it('returns null for other shapes and for broken files', () => {
    // Act
    const results = [
      '{"detail-type": "AWS API Call via CloudTrail", "detail": {}}',
      '[{"Records": []}]',
      '{"Records": [{"a": 1}',
      '{"Records": [{"a": "unterminated}]}',
      '{"Records": [1, 2]}',
      '{"Records": []} trailing',
    ].map(spans);

    // Assess
    expect(results).toEqual([null, null, null, null, null, null]);
  });

  it('gives no spans for an empty Records array', () => {
    // Act
    const result = spans('{"Records":[]}');

    // Assess
    expect(result).toEqual([]);
  });
});

describe('replay: NDJSON streaming', () => {
  it('reports a gzip stream that breaks mid-file and keeps the lines before the break', async () => {
    // Prepare
    const dir = tempDir();
    const lines = [
      JSON.stringify(createKeyRecord('2026-11-20T09:00:00Z', 'svc-first', 'ACCASTREAMFIRST000001')),
    ];
    for (let i = 0; i < 2000; i++)
      lines.push(JSON.stringify({ eventSource: 's3.amazonaws.com', n: i, pad: 'x'.repeat(200) }));
    const gz = gzipSync(lines.join('\n'));
    writeFile(join(dir, 'big.ndjson.gz'), gz.subarray(0, Math.floor(gz.length * 0.8)));
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir(), jobs: 1 }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(
      /^keyguard: big\.ndjson\.gz: cannot decompress \(gzip\): unexpected end of file$/m,
    );
    expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-first']);
  });
});

describe('scanFile: a large .json file of JSON lines', () => {
  function truncatedLines(dir: string): { display: string; absolute: string; bytes: number } {
    const lines = [
      JSON.stringify(createKeyRecord('2026-11-20T09:00:00Z', 'svc-first', 'ACCASTREAMJSON0000001')),
    ];
    for (let i = 0; i < 3000; i++)
      lines.push(JSON.stringify({ eventSource: 's3.amazonaws.com', n: i, pad: 'y'.repeat(300) }));
    const gz = gzipSync(lines.join('\n'));
    const path = writeFile(join(dir, 'export.json.gz'), gz.subarray(0, Math.floor(gz.length * 0.9)));
    return { display: 'export.json.gz', absolute: path, bytes: gz.length };
  }

  it('is streamed line by line above the size limit: the lines before a break count', async () => {
    // Prepare
    const file = truncatedLines(tempDir());

    // Act
    const scan = await scanFile(file, REPLAY_FILTER, { streamAboveBytes: 0 });

    // Assess
    expect(scan.entries).toHaveLength(1);
    expect(scan.parsed).toBe(1);
    expect(scan.records).toBeGreaterThan(1000);
    expect(scan.problems.map((p) => p.reason)).toEqual(['cannot decompress (gzip): unexpected end of file']);
  });

  it('is read whole below it (a broken file yields nothing)', async () => {
    // Prepare
    const file = truncatedLines(tempDir());

    // Act
    const scan = await scanFile(file, REPLAY_FILTER);

    // Assess
    expect(scan.entries).toHaveLength(0);
    expect(scan.problems.map((p) => p.reason)).toEqual(['cannot decompress (gzip): unexpected end of file']);
  });
});

describe('replay progress bar', () => {
  it('shows bytes of the total, MiB/s and ETA from the rate so far, and files done', () => {
    // Prepare
    let written = '';
    const sink = { write: (s: string) => (written += s), isTTY: true };
    let clock = 0;
    const MiB = 1024 * 1024;
    const progress = startProgress(sink, {
      quiet: false,
      totalBytes: 10 * MiB,
      totalFiles: 2,
      now: () => clock,
    });
    const atStart = written;

    // Act
    clock = 1000;
    progress.fileDone(5 * MiB);
    clock = 2000;
    progress.fileDone(5 * MiB);
    progress.stop();

    // Assess
    expect(atStart).toContain('0% | 0.0/10.0 MiB | 0.0 MiB/s | ETA -- | files 0/2');
    expect(written).toContain('100% | 10.0/10.0 MiB | 5.0 MiB/s | ETA 0s | files 2/2');
  });

  it('writes nothing when the sink is not a terminal or with --quiet', () => {
    // Prepare
    let written = '';
    const pipe = { write: (s: string) => (written += s) };
    const tty = { write: (s: string) => (written += s), isTTY: true };

    // Act
    for (const [sink, quiet] of [
      [pipe, false],
      [tty, true],
    ] as const) {
      const p = startProgress(sink, { quiet, totalBytes: 100, totalFiles: 1 });
      p.fileDone(100);
      p.stop();
    }

    // Assess
    expect(written).toBe('');
  });
});
