import { join } from 'node:path';
import { scanFiles } from '../../lambda/cli/archive-pool';
import type { FileScan, ScanOptions } from '../../lambda/cli/archive-scan';
import type { InputFile } from '../../lambda/cli/inputs';
import { REPLAY_FILTER } from '../../lambda/cli/replay';

/**
 * The replay scan pool never hangs and never loses a file: whatever goes wrong while one file is scanned (its
 * worker's result cannot be deserialised, the worker throws, exits or stops answering; in-process, the scan
 * rejects or never settles), that file comes back with a problem naming it, in its place, and every other file
 * comes back scanned (issue 10 item 10).
 */

const HOSTILE_WORKER = join(__dirname, '..', 'support', 'hostile-scan-worker.js');

function inputs(...names: string[]): InputFile[] {
  return names.map((display) => ({ display, absolute: `/nonexistent/${display}`, bytes: 1 }));
}

async function collect(
  files: InputFile[],
  jobs: number,
  options: Parameters<typeof scanFiles>[3],
): Promise<Array<[string, number, string[]]>> {
  const out: Array<[string, number, string[]]> = [];
  for await (const { file, scan } of scanFiles(files, REPLAY_FILTER, jobs, options)) {
    out.push([file.display, scan.records, scan.problems.map((p) => `${p.path}: ${p.reason}`)]);
  }
  return out;
}

function scanned(records = 1): FileScan {
  return {
    entries: [],
    problems: [],
    records,
    skipped: { 'not-iam': records, 'unsupported-event': 0, 'not-bearer-token': 0 },
    parsed: 0,
    invalidUtf8: 0,
  };
}

describe('scanFiles with workers: a failing worker fails its file, never the run', () => {
  it.each([
    [
      'deep',
      /^deep\.json: its scan result could not be passed back \(.*Maximum call stack size exceeded.*\)$/,
    ],
    ['crash', /^crash\.json: the scan worker reading it failed: boom in the worker$/],
    ['exit', /^exit\.json: the scan worker reading it stopped \(exit code 3\)$/],
    ['stall', /^stall\.json: no progress for 0\.5 s \(--stall-timeout\): given up$/],
  ])(
    '%s: that file fails, the files before and after it (and queued with it) are scanned',
    async (bad, reason) => {
      // Prepare
      const files = inputs('a.json', 'b.json', `${bad}.json`, 'c.json', 'd.json', 'e.json', 'f.json');

      // Act
      const out = await collect(files, 2, { workerEntry: HOSTILE_WORKER, stallMs: 500 });

      // Assess
      expect(out.map(([name]) => name)).toEqual(files.map((f) => f.display));
      for (const [name, records, problems] of out) {
        if (name === `${bad}.json`) {
          expect(records).toBe(0);
          expect(problems).toHaveLength(1);
          expect(problems[0]).toMatch(reason);
        } else {
          expect([name, records, problems]).toEqual([name, 1, []]);
        }
      }
    },
  );

  it('keeps the other workers busy past a file that holds up the output order', async () => {
    // Prepare: the first file never answers; 12 small files follow.
    const later = Array.from({ length: 12 }, (_, i) => `f${i}.json`);
    const files = inputs('stall.json', ...later);
    const answered: Array<[string, number]> = [];
    let givenUpAt = 0;

    // Act
    for await (const { file, scan } of scanFiles(files, REPLAY_FILTER, 2, {
      workerEntry: HOSTILE_WORKER,
      stallMs: 1000,
    })) {
      if (file.display === 'stall.json') givenUpAt = Date.now();
      else answered.push([file.display, (scan as FileScan & { answeredAt: number }).answeredAt]);
    }

    // Assess: all but the file queued behind the stalled one (sent again to a new worker) were scanned while the
    // output waited for the first; with a window of two files per worker only three could be.
    expect(answered.map(([name]) => name)).toEqual(later);
    const ahead = answered.filter(([, at]) => at < givenUpAt).length;
    expect(ahead).toBeGreaterThanOrEqual(later.length - 1);
  });

  it('survives every kind of failure in one run', async () => {
    // Prepare
    const files = inputs('deep.json', 'a.json', 'crash.json', 'b.json', 'exit.json', 'stall.json', 'c.json');

    // Act
    const out = await collect(files, 3, { workerEntry: HOSTILE_WORKER, stallMs: 500 });

    // Assess
    expect(out.map(([name, records, problems]) => [name, records, problems.length])).toEqual([
      ['deep.json', 0, 1],
      ['a.json', 1, 0],
      ['crash.json', 0, 1],
      ['b.json', 1, 0],
      ['exit.json', 0, 1],
      ['stall.json', 0, 1],
      ['c.json', 1, 0],
    ]);
  });
});

describe('scanFiles in-process: a scan that rejects or never settles fails its file', () => {
  it('gives up on a stalled file after the stall timeout, reports a rejected one, and scans the rest', async () => {
    // Prepare
    const signals: AbortSignal[] = [];
    const scan = (file: InputFile, _filter: unknown, options: ScanOptions = {}): Promise<FileScan> => {
      if (options.signal) signals.push(options.signal);
      if (file.display === 'stall.json') return new Promise<FileScan>(() => {});
      if (file.display === 'reject.json') return Promise.reject(new Error('disk on fire'));
      return Promise.resolve(scanned());
    };
    const files = inputs('a.json', 'stall.json', 'b.json', 'reject.json', 'c.json');

    // Act
    const out = await collect(files, 1, { scan, stallMs: 300 });

    // Assess
    expect(out).toEqual([
      ['a.json', 1, []],
      ['stall.json', 0, ['stall.json: no progress for 0.3 s (--stall-timeout): given up']],
      ['b.json', 1, []],
      ['reject.json', 0, ['reject.json: cannot be read: disk on fire']],
      ['c.json', 1, []],
    ]);
    // The stalled scan was told to stop (its file is closed).
    expect(signals[1]?.aborted).toBe(true);
  });

  it('does not give up on a slow file that keeps making progress', async () => {
    // Prepare
    const scan = async (_file: InputFile, _filter: unknown, options: ScanOptions = {}): Promise<FileScan> => {
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 100));
        options.onProgress?.();
      }
      return scanned(7);
    };

    // Act
    const out = await collect(inputs('slow.json'), 1, { scan, stallMs: 300 });

    // Assess
    expect(out).toEqual([['slow.json', 7, []]]);
  });
});
