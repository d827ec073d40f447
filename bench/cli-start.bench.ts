import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DATA_DIR } from './generate-archive';
import { runChild } from './processes';
import { type Figure, num, progress, type Section, type Summary, summarize } from './report';

/**
 * CLI start-up: `keyguard --version` and `--help` as users run them (node bin/keyguard.js, which runs the bundle
 * scripts/build-cli.mjs builds into dist/), against a bare `node -e ''`, in interleaved runs of one benchmark
 * run; and, for comparison, the same CLI started from its TypeScript sources through tsx (how bin/keyguard.js
 * ran before the build, and what it falls back to while dist/ is older than the sources).
 */

const ROOT = resolve(__dirname, '..');
const BIN = join(ROOT, 'bin', 'keyguard.js');

export interface CliStartBenchOptions {
  runs: number;
}

/**
 * Builds dist/ (scripts/build-cli.mjs), so that every benchmark running bin/keyguard.js measures the current
 * sources compiled, not a stale bundle or the tsx fallback.
 */
export function buildCliForBench(): void {
  progress('building the CLI into dist/ (scripts/build-cli.mjs)');
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-cli.mjs')], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`scripts/build-cli.mjs failed: ${r.stderr.trim()}`);
}

interface Variant {
  label: string;
  args: string[];
}

function ms(s: Summary): string {
  return `median ${num(s.median, 1)} ms, p90 ${num(s.p90, 1)} ms, min ${num(s.min, 1)} ms`;
}

export async function runCliStartBench(options: CliStartBenchOptions): Promise<Section> {
  // The old start: tsx registered, then the TypeScript CLI (a file, not -e: commander reads argv from it).
  mkdirSync(DATA_DIR, { recursive: true });
  const fromSource = join(DATA_DIR, 'keyguard-from-source.js');
  writeFileSync(
    fromSource,
    [
      "process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';",
      "require('tsx/cjs');",
      `require(${JSON.stringify(join(ROOT, 'bin', 'keyguard.ts'))}).runAsProcess();`,
    ].join('\n'),
  );
  const variants: Variant[] = [
    { label: "node -e ''", args: ['-e', ''] },
    { label: 'keyguard --version', args: [BIN, '--version'] },
    { label: 'keyguard --help', args: [BIN, '--help'] },
    { label: 'keyguard --version from source (tsx)', args: [fromSource, '--version'] },
  ];
  // One run of each first: writes the bundle's code cache (as a user's first run does) and warms the disk cache.
  for (const v of variants)
    await runChild({ command: process.execPath, args: v.args, env: process.env, cwd: ROOT });

  progress(`CLI start-up: ${options.runs} interleaved runs of ${variants.length} commands`);
  const samples: number[][] = variants.map(() => []);
  for (let i = 0; i < options.runs; i++) {
    for (const [n, v] of variants.entries()) {
      const run = await runChild({ command: process.execPath, args: v.args, env: process.env, cwd: ROOT });
      if (run.exitCode !== 0)
        throw new Error(`${v.label}: exited with ${run.exitCode}: ${run.stderr.trim()}`);
      samples[n]?.push(run.wallMs);
    }
  }
  const [bare, version, help, source] = samples.map((s) => summarize(s)) as [
    Summary,
    Summary,
    Summary,
    Summary,
  ];
  const figures: Figure[] = [
    { metric: "bare node -e ''", value: num(bare.median, 1), unit: 'ms', detail: ms(bare) },
    { metric: 'keyguard --version', value: num(version.median, 1), unit: 'ms', detail: ms(version) },
    {
      metric: "keyguard --version vs node -e ''",
      value: num(version.median / bare.median, 2),
      unit: '×',
      detail: 'ratio of medians; issue 13 goal: ≤ 2×',
    },
    { metric: 'keyguard --help', value: num(help.median, 1), unit: 'ms', detail: ms(help) },
    {
      metric: "keyguard --help vs node -e ''",
      value: num(help.median / bare.median, 2),
      unit: '×',
      detail: 'ratio of medians',
    },
    {
      metric: 'keyguard --version from source (tsx)',
      value: num(source.median, 1),
      unit: 'ms',
      detail: ms(source),
    },
    {
      metric: "from source (tsx) vs node -e ''",
      value: num(source.median / bare.median, 2),
      unit: '×',
      detail: 'the start before the CLI was built, and the fallback while dist/ is stale',
    },
  ];
  return {
    title: 'CLI start-up (bin/keyguard.js running dist/keyguard.js)',
    figures,
    notes: [
      `${options.runs} interleaved samples per command (--require-runs), wall time from spawn to exit; ` +
        'one unmeasured run of each first (it writes the code cache dist/keyguard.js.v8cache, as a first run does).',
      'The AWS SDK is in dist/vendor.js, loaded only when a command first uses it: --version and --help never load it.',
    ],
  };
}
