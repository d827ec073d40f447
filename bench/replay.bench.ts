import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gunzipSync } from 'node:zlib';
import { type Archive, ensureArchive } from './generate-archive';
import { type ChildRun, runChild } from './processes';
import { type Figure, mib, num, progress, type Section, type Summary, summarize } from './report';

/**
 * End-to-end throughput of `keyguard replay` over a generated CloudTrail archive, run exactly as a user runs
 * it (`node bin/keyguard.js replay <dir> --json --store <fresh dir>`), next to the floors set by decompression
 * alone and by decompression plus JSON.parse.
 */

const ROOT = resolve(__dirname, '..');
const CLI = join(ROOT, 'bin', 'keyguard.js');

export interface ReplayBenchOptions {
  archiveMb: number;
  runs: number;
}

async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One replay with a fresh audit store (so every run records every decision anew). */
function replayOnce(input: string): Promise<ChildRun> {
  return withTempDir('bench-store-', (store) =>
    runChild({
      command: process.execPath,
      args: [CLI, 'replay', input, '--json', '--store', store],
      cwd: ROOT,
      env: { ...process.env },
      peakRss: true,
    }),
  );
}

async function timeRuns(runs: number, fn: () => Promise<void>): Promise<Summary> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    samples.push((performance.now() - t0) / 1000);
  }
  return summarize(samples);
}

/** `zcat` over every file, output discarded: the single-core decompression floor. */
async function zcatOnce(files: readonly string[]): Promise<void> {
  const run = await runChild({ command: 'zcat', args: files, cwd: ROOT, env: process.env });
  if (run.exitCode !== 0) throw new Error(`zcat exited with ${run.exitCode}: ${run.stderr.trim()}`);
}

async function nodeFloor(files: readonly string[], parse: boolean): Promise<void> {
  let records = 0;
  for (const f of files) {
    const text = gunzipSync(await readFile(f)).toString('utf8');
    if (parse) records += (JSON.parse(text) as { Records: unknown[] }).Records.length;
  }
  if (parse && records === 0) throw new Error('no records parsed');
}

function eventsReadByCli(stderr: string): number | null {
  const m = /Events: (\d+) read/.exec(stderr);
  return m ? Number(m[1]) : null;
}

function seconds(s: Summary): string {
  return `${num(s.median, 2)}`;
}

function spread(s: Summary): string {
  return s.n > 1 ? `min ${num(s.min, 2)} / max ${num(s.max, 2)} s over ${s.n} runs` : '1 run';
}

function floorFigures(label: string, s: Summary, archive: Archive): Figure[] {
  const m = archive.manifest;
  return [
    {
      metric: label,
      value: num(mib(m.uncompressedBytes) / s.median, 1),
      unit: 'MiB/s uncompr.',
      detail: `${seconds(s)} s median; ${spread(s)}`,
    },
  ];
}

export async function runReplayBench(options: ReplayBenchOptions): Promise<Section> {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} not found: the replay CLI is not there yet`);
  }
  const archive = await ensureArchive(options.archiveMb);
  const m = archive.manifest;
  const files = archive.files;
  const uncompressedMib = mib(m.uncompressedBytes);
  const compressedMib = mib(m.compressedBytes);

  // The floors run first: they also bring the archive into the page cache, so no replay run pays for disk reads.
  progress(`replay: decompression floors over ${files.length} files`);
  const zcat = await timeRuns(options.runs, () => zcatOnce(files));
  const gunzipOnly = await timeRuns(options.runs, () => nodeFloor(files, false));
  const gunzipParse = await timeRuns(options.runs, () => nodeFloor(files, true));

  progress('replay: CLI fixed cost (empty input directory)');
  const empty: ChildRun[] = [];
  for (let i = 0; i < options.runs; i++)
    empty.push(await withTempDir('bench-empty-', (dir) => replayOnce(dir)));
  const fixed = summarize(empty.map((r) => r.wallMs / 1000));

  const runs: ChildRun[] = [];
  for (let i = 0; i < options.runs; i++) {
    progress(`replay: run ${i + 1}/${options.runs} over ${num(uncompressedMib)} MiB`);
    runs.push(await replayOnce(archive.dir));
  }
  const wall = summarize(runs.map((r) => r.wallMs / 1000));
  const rss = runs.map((r) => r.maxRssKb).filter((v): v is number => v !== null);
  const rssSummary = rss.length > 0 ? summarize(rss.map((kb) => kb / 1024)) : null;
  const decisions = [...new Set(runs.map((r) => r.stdoutLines))];
  const exitCodes = [...new Set(runs.map((r) => r.exitCode))];
  const eventsRead = [...new Set(runs.map((r) => eventsReadByCli(r.stderr)))];
  const net = wall.median - fixed.median;

  const notes = [
    `archive: ${archive.dir} (${archive.generatedSeconds === null ? 'cached' : `generated in ${num(archive.generatedSeconds, 1)} s`}); ` +
      `key events about every ${num(m.keyEventEvery)} records`,
    `command: node bin/keyguard.js replay <archive> --json --store <fresh tmp dir>; wall time from spawn to exit, ` +
      `so it includes Node/tsx start-up and the embedded DynamoDB (the "fixed cost" row)`,
    `peak RSS from ${runs[0]?.rssSource ?? 'none'}; floors run in this process (gunzipSync, JSON.parse) or as one zcat process`,
  ];
  const failed = runs.find((r) => r.exitCode !== 0);
  if (failed) {
    notes.push(
      `replay exited with ${failed.exitCode}; stderr begins: ${failed.stderr.split('\n').slice(0, 3).join(' | ')}`,
    );
  }
  if (!decisions.every((d) => d === m.expectedDecisions)) {
    notes.push(
      `decisions printed (${decisions.join(', ')}) differ from the ${m.expectedDecisions} the archive was built to produce`,
    );
  }

  return {
    title: `Replay: keyguard replay over a ${num(uncompressedMib)} MiB CloudTrail archive (subprocess)`,
    figures: [
      {
        metric: 'archive',
        value: num(m.files.length),
        unit: 'files',
        detail: `${num(m.records)} records; ${num(uncompressedMib, 1)} MiB uncompressed, ${num(compressedMib, 1)} MiB gzip; ${m.keyEvents} key events`,
      },
      { metric: 'replay wall time', value: seconds(wall), unit: 's', detail: spread(wall) },
      {
        metric: 'throughput, uncompressed',
        value: num(uncompressedMib / wall.median, 1),
        unit: 'MiB/s',
        detail: `best run ${num(uncompressedMib / wall.min, 1)} MiB/s`,
      },
      {
        metric: 'throughput, compressed',
        value: num(compressedMib / wall.median, 1),
        unit: 'MiB/s',
        detail: `best run ${num(compressedMib / wall.min, 1)} MiB/s`,
      },
      {
        metric: 'throughput, records',
        value: num(m.records / wall.median),
        unit: 'records/s',
        detail: `CLI reported ${eventsRead.map((e) => (e === null ? 'n/a' : num(e))).join(', ')} events read`,
      },
      {
        metric: 'decisions printed',
        value: decisions.map((d) => num(d)).join(', '),
        unit: 'lines',
        detail: `expected ${m.expectedDecisions}; exit code ${exitCodes.join(', ')}`,
      },
      {
        metric: 'peak RSS',
        value: rssSummary ? num(rssSummary.median, 1) : 'n/a',
        unit: 'MiB',
        detail: rssSummary ? `max ${num(rssSummary.max, 1)} MiB` : 'not measurable here',
      },
      { metric: 'CLI fixed cost (empty input)', value: seconds(fixed), unit: 's', detail: spread(fixed) },
      {
        metric: 'throughput net of fixed cost',
        value: net > 0 ? num(uncompressedMib / net, 1) : 'n/a',
        unit: 'MiB/s',
        detail: 'uncompressed MiB / (replay - fixed cost), medians',
      },
      ...floorFigures('floor: zcat', zcat, archive),
      ...floorFigures('floor: node gunzipSync', gunzipOnly, archive),
      ...floorFigures('floor: node gunzipSync + JSON.parse', gunzipParse, archive),
    ],
    notes,
  };
}
