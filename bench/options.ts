import { parseArgs } from 'node:util';

/**
 * Command-line and environment options of `npm run bench`. Flags win over environment variables, which
 * win over the defaults.
 */

export const BENCH_NAMES = [
  'evaluate',
  'replay',
  'bundle',
  'sweep',
  'org-sweep',
  'scan',
  'cli',
  'slack',
] as const;
export type BenchName = (typeof BENCH_NAMES)[number];

export interface BenchOptions {
  only: ReadonlySet<BenchName>;
  /** Uncompressed size of the generated CloudTrail archive, in MiB. */
  archiveMb: number;
  /** Replay CLI runs over the archive (each with a fresh store). */
  replayRuns: number;
  /** Cold `require` runs per bundle (and of the bare-node baseline). */
  requireRuns: number;
  /** IAM users of the simulated account swept (two Bedrock keys each). */
  sweepUsers: number;
  /** Size of the generated scan corpus (source trees and logs with planted keys), in MiB. */
  scanMb: number;
  /** Member accounts of the simulated organization the org-sweep bench sweeps. */
  orgAccounts: number;
  /** Bedrock keys in all, spread evenly over those accounts. */
  orgKeys: number;
  /** Channels of the fake Slack workspace the slack bench scans. */
  slackChannels: number;
  /** Messages in all (top-level and thread replies) over those channels. */
  slackMessages: number;
}

export const USAGE = `Usage: npm run bench -- [--only evaluate|replay|bundle|sweep|org-sweep|scan|cli|slack[,...]] [--archive-mb N] [--replay-runs N] [--require-runs N] [--sweep-users N] [--org-accounts N] [--org-keys N] [--scan-mb N]

  --only          run only these benchmarks (repeatable or comma-separated; default: all)
  --archive-mb    uncompressed size of the generated CloudTrail archive in MiB (env BENCH_ARCHIVE_MB; default 2048: at least 2 GiB, as issue 6 asks)
  --replay-runs   runs of \`keyguard replay\` over the archive (env BENCH_REPLAY_RUNS; default 3)
  --require-runs  cold-start samples per bundle, and per CLI start-up command (env BENCH_REQUIRE_RUNS; default 15)
  --sweep-users   IAM users of the simulated account the sweep bench sweeps, 2 keys each (env BENCH_SWEEP_USERS; default 10000)
  --org-accounts  member accounts of the simulated organization the org-sweep bench sweeps, 1% denying AssumeRole (env BENCH_ORG_ACCOUNTS; default 500)
  --org-keys      Bedrock keys in all over those accounts (env BENCH_ORG_KEYS; default 20000)
  --scan-mb       size of the generated corpus \`keyguard scan\`, ripgrep and secretlint scan, in MiB (env BENCH_SCAN_MB; default 500)
  --slack-channels  channels of the fake Slack workspace \`keyguard scan --slack\` scans (env BENCH_SLACK_CHANNELS; default 200)
  --slack-messages  messages in it, thread replies included (env BENCH_SLACK_MESSAGES; default 500000)

Peak RSS comes from /usr/bin/time -v when available; BENCH_NO_GNU_TIME=1 forces the in-process fallback.`;

export class BenchUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchUsageError';
  }
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new BenchUsageError(`${name}: got ${JSON.stringify(raw)}; allowed: an integer >= 1`);
  return n;
}

function isBenchName(v: string): v is BenchName {
  return (BENCH_NAMES as readonly string[]).includes(v);
}

export function parseBenchOptions(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): BenchOptions & { help: boolean } {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new BenchUsageError(err instanceof Error ? err.message : String(err));
  }
  const { values } = parsed;
  const only = new Set<BenchName>();
  for (const item of (values.only ?? []).flatMap((v) => v.split(','))) {
    const name = item.trim();
    if (!isBenchName(name)) {
      throw new BenchUsageError(`--only: got ${JSON.stringify(name)}; allowed: ${BENCH_NAMES.join(' | ')}`);
    }
    only.add(name);
  }
  return {
    help: values.help ?? false,
    only: only.size > 0 ? only : new Set(BENCH_NAMES),
    archiveMb: positiveInt('--archive-mb', values['archive-mb'] ?? env.BENCH_ARCHIVE_MB, 2048),
    replayRuns: positiveInt('--replay-runs', values['replay-runs'] ?? env.BENCH_REPLAY_RUNS, 3),
    requireRuns: positiveInt('--require-runs', values['require-runs'] ?? env.BENCH_REQUIRE_RUNS, 15),
    sweepUsers: positiveInt('--sweep-users', values['sweep-users'] ?? env.BENCH_SWEEP_USERS, 10_000),
    scanMb: positiveInt('--scan-mb', values['scan-mb'] ?? env.BENCH_SCAN_MB, 500),
    orgAccounts: positiveInt('--org-accounts', values['org-accounts'] ?? env.BENCH_ORG_ACCOUNTS, 500),
    orgKeys: positiveInt('--org-keys', values['org-keys'] ?? env.BENCH_ORG_KEYS, 20_000),
    slackChannels: positiveInt('--slack-channels', values['slack-channels'] ?? env.BENCH_SLACK_CHANNELS, 200),
    slackMessages: positiveInt(
      '--slack-messages',
      values['slack-messages'] ?? env.BENCH_SLACK_MESSAGES,
      500_000,
    ),
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      only: { type: 'string', multiple: true },
      'archive-mb': { type: 'string' },
      'replay-runs': { type: 'string' },
      'require-runs': { type: 'string' },
      'sweep-users': { type: 'string' },
      'scan-mb': { type: 'string' },
      'org-accounts': { type: 'string' },
      'org-keys': { type: 'string' },
      'slack-channels': { type: 'string' },
      'slack-messages': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
