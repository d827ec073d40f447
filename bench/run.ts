import { availableParallelism, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { version as esbuildVersion } from 'esbuild';
import { OrganizationSchema } from '../lambda/shared/config';
import { runBundleBench } from './bundle.bench';
import { buildCliForBench, runCliStartBench } from './cli-start.bench';
import { runEvaluateBench } from './evaluate.bench';
import { type BenchName, BenchUsageError, parseBenchOptions, USAGE } from './options';
import { runOrgSweepBench } from './org-sweep.bench';
import { runReplayBench } from './replay.bench';
import { renderSection, type Section } from './report';
import { runScanBench } from './scan.bench';
import { runSlackBench } from './slack.bench';
import { runSweepBench } from './sweep.bench';

/**
 * `npm run bench`: runs the selected benchmarks one after another (never in parallel, so they do not compete
 * for the two cores) and prints one table per benchmark on stdout. Progress goes to stderr. Benchmarks print
 * figures; nothing here passes or fails on a threshold.
 */

/** 1/5/15-minute load averages: on a shared 2-core machine, other work skews every wall-clock figure. */
function load(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
}

function machineInfo(): string {
  const cpu = cpus();
  const model = cpu[0]?.model.trim() ?? 'unknown';
  return [
    '# bedrock-key-guard benchmarks',
    `machine: ${cpu.length} CPU(s) (${availableParallelism()} available), ${model}; ` +
      `${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM; ${platform()} ${release()}`,
    `node ${process.version}; esbuild ${esbuildVersion}; started ${new Date().toISOString()}; load average ${load()}`,
  ].join('\n');
}

async function main(): Promise<number> {
  const options = parseBenchOptions(process.argv.slice(2), process.env);
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const benches: Record<BenchName, () => Promise<Section>> = {
    evaluate: () => runEvaluateBench(),
    replay: () => runReplayBench({ archiveMb: options.archiveMb, runs: options.replayRuns }),
    bundle: () => runBundleBench({ requireRuns: options.requireRuns }),
    sweep: () => runSweepBench({ users: options.sweepUsers }),
    // At the default organization.sweepConcurrency.
    'org-sweep': () =>
      runOrgSweepBench({
        accounts: options.orgAccounts,
        keys: options.orgKeys,
        concurrency: OrganizationSchema.shape.sweepConcurrency.parse(undefined),
      }),
    scan: () => runScanBench({ scanMb: options.scanMb }),
    cli: () => runCliStartBench({ runs: options.requireRuns }),
    slack: () => runSlackBench({ channels: options.slackChannels, messages: options.slackMessages }),
  };

  process.stdout.write(`${machineInfo()}\n`);
  const t0 = performance.now();
  // The benchmarks that run bin/keyguard.js measure the CLI as built from the current sources.
  if (['replay', 'scan', 'cli', 'slack'].some((n) => options.only.has(n as BenchName))) buildCliForBench();
  let failures = 0;
  for (const name of options.only) {
    let section: Section;
    const loadBefore = load();
    try {
      section = await benches[name]();
      section.notes.push(`load average (1/5/15 min) before ${loadBefore}, after ${load()}`);
    } catch (err) {
      failures += 1;
      section = {
        title: `${name}: FAILED`,
        figures: [],
        notes: [err instanceof Error ? err.message : String(err)],
      };
    }
    process.stdout.write(`\n${renderSection(section)}\n`);
  }
  process.stdout.write(`\ntotal bench time: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return failures > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof BenchUsageError ? `${err.message}\n\n${USAGE}` : String(err)}\n`);
    process.exitCode = err instanceof BenchUsageError ? 2 : 1;
  },
);
