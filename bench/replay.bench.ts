import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { CREDENTIAL_EVENTS, USER_LIFECYCLE_EVENTS, USER_TAG_EVENTS } from '../lambda/domain/cloudtrail';
import { runTree, shellQuote, type TreeRun } from './archive-tools';
import { type Archive, ensureArchive } from './generate-archive';
import { mib, num, progress, renderTable, type Section, summarize } from './report';

/**
 * `keyguard replay` over a generated multi-GiB CloudTrail archive in S3's layout, run as a user runs it, next
 * to what the same files cost other tools in the same run: `zcat` to /dev/null (the decompression floor, on
 * one core and on every core with `xargs -P`) and `zcat | jq` selecting the same IAM events replay acts on.
 * Each row is one process tree measured from spawn to exit (wall time, MiB/s, records/s, peak memory of the
 * whole tree). Sanity checks, not tests: jq must select exactly the key events the generator planted, and
 * replay must count as relevant and decide exactly what the generator says it should; a mismatch fails the
 * benchmark (with the figures in the message).
 */

const ROOT = resolve(__dirname, '..');
/**
 * The CLI bundle itself (what bin/keyguard.js runs when it is fresh), built by `npm run bench` before the
 * benchmarks: bin/keyguard.js would switch to the TypeScript sources through tsx as soon as a source file is
 * edited during the run (the working tree is shared), which measures another program. Another checkout's CLI
 * can be measured (e.g. a clean `git archive` of a commit): BENCH_KEYGUARD_CLI.
 */
const CLI = resolve(process.env.BENCH_KEYGUARD_CLI ?? join(ROOT, 'dist', 'keyguard.js'));

/** The IAM event names replay follows (lambda/cli/replay.ts): the jq filter selects on the same list. */
export const REPLAY_EVENT_NAMES: readonly string[] = [
  ...CREDENTIAL_EVENTS,
  ...USER_TAG_EVENTS,
  ...USER_LIFECYCLE_EVENTS,
];

/** Processes (`xargs -P`) and replay workers (`--jobs`) of the parallel rows: issue 13 compares them at two. */
const PARALLEL = 2;

/** Inflates every file of a NUL-separated list (argv[1]) with zlib, discarding the output; prints the bytes. */
const NODE_GUNZIP = [
  "const { readFileSync } = require('node:fs');",
  "const { gunzipSync } = require('node:zlib');",
  "const files = readFileSync(process.argv[1], 'utf8').split('\\0').filter(Boolean);",
  'let bytes = 0;',
  'for (const f of files) bytes += gunzipSync(readFileSync(f)).length;',
  "process.stdout.write(String(bytes) + '\\n');",
].join('\n');

export interface ReplayBenchOptions {
  archiveMb: number;
  /** Runs of each keyguard replay row (median reported); the other tools run once. */
  runs: number;
}

export class ReplaySanityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplaySanityError';
  }
}

/**
 * `--quiet` is detected and reported but not passed: it also drops the totals on stderr, which hold the
 * relevant-event count checked here, and the progress bar it exists to silence is off anyway when stderr is
 * not a terminal (here it is a pipe).
 */
interface CliSupport {
  quiet: boolean;
  jobs: boolean;
}

/** Which of the scaling flags this CLI accepts, read from `keyguard replay --help`. */
function cliSupport(): CliSupport {
  const help = spawnSync(process.execPath, [CLI, 'replay', '--help'], { cwd: ROOT, encoding: 'utf8' });
  const text = `${help.stdout ?? ''}${help.stderr ?? ''}`;
  return { quiet: /--quiet\b/.test(text), jobs: /--jobs\b/.test(text) };
}

export function jqFilter(names: readonly string[]): string {
  return `.Records[] | select(.eventSource=="iam.amazonaws.com" and (.eventName as $n | ${JSON.stringify(names)} | index($n)))`;
}

interface Row {
  tool: string;
  runs: TreeRun[];
  /** What the row's output is checked against (empty: output not checked). */
  checks: Array<{ label: string; actual: number | null; expected: number }>;
}

async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function sh(script: string, cwd: string, captureStdout = false): Promise<TreeRun> {
  return runTree({ command: 'sh', args: ['-c', script], cwd, env: process.env, captureStdout });
}

/**
 * Of the records jq selected (one JSON per line), those replay should count as relevant: the name filter
 * also takes failed calls and credentials of other services (CodeCommit), which change no Bedrock key.
 */
export function replayRelevantOf(jqOutput: string): number {
  let n = 0;
  for (const line of jqOutput.split('\n')) {
    if (line.trim() === '') continue;
    const r = JSON.parse(line) as {
      errorCode?: unknown;
      requestParameters?: { serviceName?: unknown } | null;
    };
    const service = r.requestParameters?.serviceName;
    if (r.errorCode === undefined && (service === undefined || service === 'bedrock.amazonaws.com')) n += 1;
  }
  return n;
}

function failedRun(r: TreeRun): string | null {
  if (r.exitCode === 0) return null;
  return `exit ${r.exitCode ?? r.signal}; stderr: ${r.stderr.trim().split('\n').slice(0, 3).join(' | ')}`;
}

/** One `keyguard replay` with a fresh audit store (so every run records every decision anew). */
function replayOnce(input: string, support: CliSupport, jobs: number | null): Promise<TreeRun> {
  return withTempDir('bench-store-', (store) =>
    runTree({
      command: process.execPath,
      args: [
        CLI,
        'replay',
        '--json',
        ...(jobs !== null && support.jobs ? ['--jobs', String(jobs)] : []),
        '--store',
        store,
        input,
      ],
      cwd: ROOT,
      env: process.env,
    }),
  );
}

/** `Events: N read, M relevant` from replay's totals on stderr. */
function replayTotals(stderr: string): { read: number; relevant: number } | null {
  const m = /Events: (\d+) read, (\d+) relevant/.exec(stderr);
  return m ? { read: Number(m[1]), relevant: Number(m[2]) } : null;
}

/** Median wall seconds of a row. */
function medianWall(row: Row): number {
  return summarize(row.runs.map((r) => r.wallMs / 1000)).median;
}

/** The row's throughput as a multiple of the reference row's (same bytes: the ratio of their wall times). */
function ratio(row: Row, reference: Row | undefined): string {
  return reference === undefined ? 'n/a' : `${num(medianWall(reference) / medianWall(row), 2)}×`;
}

/**
 * `references`: the rows every other row is compared with (issue 13: replay vs one zcat and vs `xargs -P 2
 * zcat`), as throughput ratios from the same run.
 */
function renderRows(rows: readonly Row[], archive: Archive, references: readonly Row[]): string {
  const m = archive.manifest;
  const body = rows.map((row) => {
    const wall = summarize(row.runs.map((r) => r.wallMs / 1000));
    const rss = row.runs.map((r) => r.peakRssKb).filter((v): v is number => v !== null);
    const cpuSamples = row.runs.map((r) => r.cpuSeconds).filter((v): v is number => v !== null);
    const cpu = cpuSamples.length === row.runs.length ? summarize(cpuSamples) : null;
    const failure = row.runs.map(failedRun).find((f) => f !== null);
    const check = row.checks
      .map(
        (c) =>
          `${c.label} ${c.actual ?? 'n/a'}${c.actual === c.expected ? ' ok' : ` ≠ ${c.expected} MISMATCH`}`,
      )
      .join('; ');
    return [
      row.tool,
      num(wall.median, 2),
      num(mib(m.uncompressedBytes) / wall.median, 1),
      num(mib(m.compressedBytes) / wall.median, 1),
      ...references.map((r) => ratio(row, r)),
      num(m.records / wall.median),
      cpu ? num(cpu.median, 1) : 'n/a',
      cpu ? num(mib(m.uncompressedBytes) / cpu.median, 1) : 'n/a',
      rss.length > 0 ? num(Math.max(...rss) / 1024, 1) : 'n/a',
      row.runs.length > 1 ? `${row.runs.length} (${num(wall.min, 2)}–${num(wall.max, 2)} s)` : '1',
      failure ? `FAILED: ${failure}` : check,
    ];
  });
  return renderTable(
    `same ${num(m.files.length)} files, same run (wall time spawn→exit; MiB/s over the archive's uncompressed and gzip bytes; × zcat: throughput as a multiple of that row's, from the same run; CPU = user+sys of the whole tree)`,
    [
      'tool',
      'wall s',
      'MiB/s',
      'gzip MiB/s',
      ...references.map((r) => `× ${r.tool.replace(' > /dev/null', '').replace(' (1 process)', '')}`),
      'records/s',
      'CPU s',
      'MiB/CPU s',
      'peak RSS MiB',
      'runs',
      'check',
    ],
    body,
  );
}

export async function runReplayBench(options: ReplayBenchOptions): Promise<Section> {
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: the replay CLI is not there yet`);
  const archive = await ensureArchive(options.archiveMb);
  const m = archive.manifest;
  const cores = availableParallelism();
  const support = cliSupport();

  return withTempDir('bench-replay-', async (work) => {
    // File list for xargs: NUL-separated paths relative to the archive, in delivery order.
    const list = join(work, 'files.list');
    await writeFile(list, `${archive.files.map((f) => relative(archive.dir, f)).join('\0')}\0`);
    const perBatch = Math.max(1, Math.ceil(archive.files.length / (PARALLEL * 8)));
    const rows: Row[] = [];

    // zcat first: it also brings the archive into the page cache, so no later row pays for disk reads.
    progress(`replay: zcat over ${num(archive.files.length)} files (${num(mib(m.uncompressedBytes))} MiB)`);
    rows.push({
      tool: 'zcat > /dev/null (1 process)',
      runs: [await sh(`xargs -0 -a ${shellQuote(list)} zcat > /dev/null`, archive.dir)],
      checks: [],
    });
    // Two processes, as `--jobs 2` has two workers (issue 13 compares them); -n spreads the files in batches.
    progress(`replay: xargs -P ${PARALLEL} zcat`);
    rows.push({
      tool: `xargs -P ${PARALLEL} zcat > /dev/null`,
      runs: [
        await sh(
          `xargs -0 -a ${shellQuote(list)} -P ${PARALLEL} -n ${perBatch} zcat > /dev/null`,
          archive.dir,
        ),
      ],
      checks: [],
    });
    const references = rows.slice(0, 2);
    // zcat is GNU gzip's inflate; Node (and so keyguard) uses zlib's, which is faster: this row is the floor
    // for a single-threaded Node reader.
    progress('replay: node zlib gunzipSync (1 thread)');
    const zlib = await runTree({
      command: process.execPath,
      args: ['-e', NODE_GUNZIP, list],
      cwd: archive.dir,
      env: process.env,
      captureStdout: true,
    });
    rows.push({
      tool: 'node zlib gunzipSync (1 thread)',
      runs: [zlib],
      checks: [{ label: 'bytes', actual: Number(zlib.stdoutText.trim()), expected: m.uncompressedBytes }],
    });
    progress('replay: zcat | jq');
    const jq = await sh(
      `xargs -0 -a ${shellQuote(list)} zcat | jq -c ${shellQuote(jqFilter(REPLAY_EVENT_NAMES))}`,
      archive.dir,
      true,
    );
    rows.push({
      tool: 'zcat | jq -c (select IAM key events)',
      runs: [jq],
      checks: [
        { label: 'selected', actual: jq.stdoutLines, expected: m.keyEvents },
        {
          label: 'of which replay-relevant',
          actual: replayRelevantOf(jq.stdoutText),
          expected: m.expectedRelevant,
        },
      ],
    });

    progress('replay: CLI fixed cost (empty input directory)');
    const empty = await withTempDir('bench-empty-', (dir) => replayOnce(dir, support, null));

    const variants: Array<{ label: string; jobs: number | null }> = support.jobs
      ? [
          { label: 'keyguard replay --jobs 1', jobs: 1 },
          { label: `keyguard replay --jobs ${PARALLEL}`, jobs: PARALLEL },
        ]
      : [{ label: 'keyguard replay (no --jobs support)', jobs: null }];
    const totals: string[] = [];
    for (const v of variants) {
      const runs: TreeRun[] = [];
      for (let i = 0; i < options.runs; i++) {
        progress(`replay: ${v.label}, run ${i + 1}/${options.runs}`);
        runs.push(await replayOnce(archive.dir, support, v.jobs));
      }
      const decisions = [...new Set(runs.map((r) => r.stdoutLines))];
      const parsed = runs.map((r) => replayTotals(r.stderr));
      const relevant = [...new Set(parsed.map((t) => t?.relevant ?? null))];
      const read = [...new Set(parsed.map((t) => t?.read ?? null))];
      totals.push(
        `${v.label}: events read ${read.map((r) => (r === null ? 'n/a' : num(r))).join(', ')} ` +
          `(archive holds ${num(m.records)}); relevant ${relevant.join(', ')} (expected ${m.expectedRelevant}); ` +
          `decisions ${decisions.join(', ')} (expected ${m.expectedDecisions})`,
      );
      rows.push({
        tool: v.label,
        runs,
        checks: [
          {
            label: 'decisions',
            actual: decisions.length === 1 ? (decisions[0] as number) : null,
            expected: m.expectedDecisions,
          },
          {
            label: 'relevant',
            actual: relevant.length === 1 ? (relevant[0] ?? null) : null,
            expected: m.expectedRelevant,
          },
        ],
      });
    }

    const table = renderRows(rows, archive, references);
    const regions = new Map<string, number>();
    for (const f of m.files) regions.set(f.region, (regions.get(f.region) ?? 0) + f.uncompressedBytes);
    const sizes = m.files.map((f) => f.uncompressedBytes).sort((a, b) => a - b);
    const notes = [
      `archive: ${archive.dir}`,
      `layout AWSLogs/<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/*.json.gz, ${m.firstDay}..${m.lastDay}; ` +
        `MiB per region: ${[...regions].map(([r, b]) => `${r} ${num(mib(b))}`).join(', ')}; ` +
        `file sizes (uncompressed) min ${num(mib(sizes[0] ?? 0), 2)}, median ${num(mib(sizes[sizes.length >>> 1] ?? 0), 2)}, max ${num(mib(sizes[sizes.length - 1] ?? 0), 2)} MiB; gzip level 6`,
      `planted ${m.keyEvents} IAM key events (us-east-1 only): jq's name filter selects all of them; replay counts ` +
        `${m.expectedRelevant} relevant (not the CodeCommit credentials or the failed calls: "of which replay-relevant" ` +
        `counts jq's records without errorCode and with no serviceName or bedrock's) and prints ${m.expectedDecisions} decisions`,
      `jq filter: ${jqFilter(REPLAY_EVENT_NAMES)}`,
      `keyguard: node ${relative(ROOT, CLI).startsWith('..') ? CLI : relative(ROOT, CLI)} replay --json [--jobs N] --store <fresh tmp dir> <archive>, stderr a pipe (no progress bar); ` +
        `--quiet ${support.quiet ? 'supported but not passed (it drops the totals with the relevant count)' : 'not supported'}, --jobs ${support.jobs ? 'supported' : 'not supported (one row only)'}; ` +
        `${cores} cores available; ${options.runs} run(s) per keyguard row (median), the other tools once`,
      `CLI fixed cost (empty input directory): ${num(empty.wallMs / 1000, 2)} s, peak RSS ${empty.peakRssKb === null ? 'n/a' : `${num(empty.peakRssKb / 1024, 1)} MiB`}` +
        (failedRun(empty) ? ` (${failedRun(empty)})` : ''),
      ...totals,
      `peak RSS: largest sum of VmHWM over the live processes of the tree (sampled every 200 ms from /proc), so pipelines count every stage`,
    ];

    const mismatch = rows.find(
      (r) => r.runs.some((run) => run.exitCode !== 0) || r.checks.some((c) => c.actual !== c.expected),
    );
    const section: Section = {
      title: `Replay: keyguard replay over a ${num(mib(m.uncompressedBytes))} MiB CloudTrail archive (${num(m.files.length)} files, ${num(m.records)} records) vs zcat and jq`,
      figures: [
        {
          metric: 'archive',
          value: num(m.files.length),
          unit: 'files',
          detail: `${num(m.records)} records; ${num(mib(m.uncompressedBytes), 1)} MiB uncompressed, ${num(mib(m.compressedBytes), 1)} MiB gzip; ${m.regions.length} regions`,
        },
        {
          metric: 'archive generation',
          value: num(m.generatedSeconds, 1),
          unit: 's',
          detail: `${m.generationWorkers} worker threads; ${archive.generatedSeconds === null ? 'cached for this run' : 'generated in this run'}`,
        },
        ...rows
          .filter((r) => r.tool.startsWith('keyguard replay'))
          .map((r) => ({
            metric: r.tool.replace('keyguard ', ''),
            value: ratio(r, references[0]).replace('×', ''),
            unit: '× zcat',
            detail: `${ratio(r, references[1])} xargs -P ${PARALLEL} zcat (throughput, same run; issue 13's goal ≥ 1.5× zcat)`,
          })),
        {
          metric: 'key events planted',
          value: num(m.keyEvents),
          unit: 'records',
          detail: `${m.expectedRelevant} relevant to replay, ${m.expectedDecisions} decisions expected`,
        },
      ],
      tables: [table],
      notes,
    };
    if (mismatch) {
      throw new ReplaySanityError(
        `sanity check failed in row "${mismatch.tool.trim()}"\n${table}\n${notes.map((n) => `  * ${n}`).join('\n')}`,
      );
    }
    return section;
  });
}
