import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { build, version as esbuildVersion, type Metafile } from 'esbuild';
import { DATA_DIR } from './generate-archive';
import { runChild } from './processes';
import { type Figure, num, progress, type Section, type Summary, summarize } from './report';

/**
 * Lambda bundles: each entry in lambda/handlers/ bundled with esbuild the way the CDK construct bundles it,
 * then its size and its cold `require` time in a fresh Node process, against a bare `node -e ''`.
 */

const ROOT = resolve(__dirname, '..');
const HANDLERS_DIR = join(ROOT, 'lambda', 'handlers');
const CONSTRUCT = join(ROOT, 'lib', 'constructs', 'keyguard-function.ts');
const OUT_DIR = join(DATA_DIR, 'bundles');

/**
 * Mirrors KeyguardFunction's `bundling` (lib/constructs/keyguard-function.ts) as NodejsFunction turns it into
 * esbuild flags: `--bundle --platform=node --target=node22 --format=cjs --minify --sourcemap`, nothing external
 * (`externalModules: []`), no `mainFields` (so esbuild's default for platform node applies).
 */
export const CDK_EQUIVALENT = {
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  minify: true,
  sourcemap: true,
  external: [] as string[],
} as const;

/** The construct's settings this mirror depends on; a missing one means the mirror has drifted. */
const CONSTRUCT_MARKERS = [
  'minify: true',
  'sourceMap: true',
  "target: 'node22'",
  'OutputFormat.CJS',
  'externalModules: []',
];

/**
 * What the handlers read at cold start (every variable any lambda/handlers entry requires, as the stack sets
 * them: see lib/constructs/governance-access.ts); the credentials are fake.
 */
const HANDLER_ENV: NodeJS.ProcessEnv = {
  KEYGUARD_CONFIG: '{}',
  POLICY_VERSION: 'p-bench0000000',
  DECISIONS_TABLE_NAME: 'keyguard-decisions',
  KEYS_TABLE_NAME: 'keyguard-keys',
  APPROVALS_TABLE_NAME: 'keyguard-approvals',
  IDEMPOTENCY_TABLE_NAME: 'keyguard-idempotency',
  SWEEP_STATE_TABLE_NAME: 'keyguard-sweep-state',
  // key-usage requires it; the sweep reads it when usage tracking is on (lib/constructs/key-usage-function.ts).
  USAGE_TABLE_NAME: 'keyguard-usage',
  TOPIC_ARN: 'arn:aws:sns:us-east-1:111122223333:keyguard-owner-notices',
  GOVERNED_ACCOUNT_ID: '111122223333',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  POWERTOOLS_SERVICE_NAME: 'keyguard-credential-event',
  POWERTOOLS_METRICS_NAMESPACE: 'BedrockKeyGuard',
  // The bundle targets the node22 Lambda runtime; on this Node 20 machine the SDK would print a notice.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

export interface BundleBenchOptions {
  requireRuns: number;
}

/**
 * Lambda entries: `*.ts` in lambda/handlers/, except `*-handler.ts` and `*-service.ts` (the factories and rules the
 * entries wire up).
 */
export function handlerEntries(): string[] {
  return readdirSync(HANDLERS_DIR)
    .filter(
      (f) =>
        f.endsWith('.ts') &&
        !f.endsWith('-handler.ts') &&
        !f.endsWith('-service.ts') &&
        !f.endsWith('.d.ts') &&
        !f.endsWith('.test.ts'),
    )
    .sort()
    .map((f) => join(HANDLERS_DIR, f));
}

function constructDrift(): string {
  if (!existsSync(CONSTRUCT))
    return 'lib/constructs/keyguard-function.ts not found: esbuild options are the documented defaults';
  const text = readFileSync(CONSTRUCT, 'utf8');
  const missing = CONSTRUCT_MARKERS.filter((m) => !text.includes(m));
  return missing.length === 0
    ? 'esbuild options mirror lib/constructs/keyguard-function.ts (bundle, platform node, target node22, cjs, minify, sourcemap, nothing external)'
    : `WARNING: keyguard-function.ts no longer contains ${missing.join(', ')}: update CDK_EQUIVALENT in bench/bundle.bench.ts`;
}

/** Output bytes per npm package (or "project" for this repository's code), largest first. */
function topContributors(meta: Metafile, outfile: string, limit: number): string {
  const output = Object.entries(meta.outputs).find(([path]) => resolve(ROOT, path) === outfile)?.[1];
  if (!output) return 'n/a';
  const byPackage = new Map<string, number>();
  for (const [path, info] of Object.entries(output.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    const pkg = m?.[1] ?? 'project';
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + info.bytesInOutput);
  }
  const total = [...byPackage.values()].reduce((a, b) => a + b, 0);
  return [...byPackage]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([pkg, bytes]) => `${pkg} ${Math.round((bytes / total) * 100)}%`)
    .join(', ');
}

interface Variant {
  label: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

async function coldStarts(variants: readonly Variant[], runs: number): Promise<Summary[]> {
  const samples: number[][] = variants.map(() => []);
  // Interleaved, so drift in machine load affects every variant alike.
  for (let i = 0; i < runs; i++) {
    for (const [v, variant] of variants.entries()) {
      const run = await runChild({
        command: process.execPath,
        args: variant.args,
        env: variant.env,
        cwd: ROOT,
      });
      if (run.exitCode !== 0) {
        throw new Error(
          `${variant.label}: node exited with ${run.exitCode}: ${run.stderr.trim().split('\n')[0]}`,
        );
      }
      samples[v]?.push(run.wallMs);
    }
  }
  return samples.map((s) => summarize(s));
}

function ms(s: Summary): string {
  return `median ${num(s.median, 1)} ms, p90 ${num(s.p90, 1)} ms`;
}

export async function runBundleBench(options: BundleBenchOptions): Promise<Section> {
  const entries = handlerEntries();
  if (entries.length === 0) throw new Error(`no Lambda entries in ${HANDLERS_DIR}`);
  const baseEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...HANDLER_ENV };
  const figures: Figure[] = [];
  const notes = [constructDrift()];

  for (const entry of entries) {
    const name = basename(entry, '.ts');
    const outDir = join(OUT_DIR, name);
    const outfile = join(outDir, 'index.js');
    await rm(outDir, { recursive: true, force: true });

    progress(`bundle: esbuild ${name}`);
    const t0 = performance.now();
    const result = await build({
      ...CDK_EQUIVALENT,
      entryPoints: [entry],
      outfile,
      absWorkingDir: ROOT,
      metafile: true,
      logLevel: 'silent',
    });
    const buildMs = performance.now() - t0;
    const bytes = statSync(outfile).size;
    const mapBytes = statSync(`${outfile}.map`).size;
    const gzBytes = gzipSync(readFileSync(outfile)).length;

    // Not timed: the bundle must load and export a handler, or the timings below mean nothing.
    const check = await runChild({
      command: process.execPath,
      args: ['-e', `if (typeof require(${JSON.stringify(outfile)}).handler !== 'function') process.exit(3)`],
      env: baseEnv,
      cwd: ROOT,
    });
    if (check.exitCode !== 0) {
      throw new Error(
        // The last lines say why (a minified bundle's first lines are code, not the reason).
        `${name}: bundle does not load or export handler (exit ${check.exitCode}): ${check.stderr.trim().split('\n').slice(-12).join('\n')}`,
      );
    }

    progress(`bundle: ${options.requireRuns} cold starts of ${name} (and of bare node)`);
    const requireScript = `require(${JSON.stringify(outfile)})`;
    const [bare, plain, sourceMaps] = await coldStarts(
      [
        { label: "node -e ''", args: ['-e', ''], env: baseEnv },
        { label: 'require(bundle)', args: ['-e', requireScript], env: baseEnv },
        {
          label: 'require(bundle) with source maps',
          args: ['-e', requireScript],
          env: { ...baseEnv, NODE_OPTIONS: '--enable-source-maps' },
        },
      ],
      options.requireRuns,
    );
    if (!bare || !plain || !sourceMaps) throw new Error('cold-start samples missing');

    figures.push(
      {
        metric: `${name}: bundle size`,
        value: num(bytes),
        unit: 'bytes',
        detail: `${num(bytes / 1024, 1)} KiB; gzip ${num(gzBytes / 1024, 1)} KiB; source map ${num(mapBytes / 1024, 1)} KiB; built in ${num(buildMs)} ms`,
      },
      {
        metric: `${name}: largest parts`,
        value: '',
        unit: '',
        detail: topContributors(result.metafile, outfile, 5),
      },
      { metric: "bare node -e ''", value: num(bare.median, 1), unit: 'ms', detail: ms(bare) },
      { metric: `${name}: cold require`, value: num(plain.median, 1), unit: 'ms', detail: ms(plain) },
      {
        metric: `${name}: require cost over bare node`,
        value: num(plain.median - bare.median, 1),
        unit: 'ms',
        detail: `p90 difference ${num(plain.p90 - bare.p90, 1)} ms`,
      },
      {
        metric: `${name}: cold require, --enable-source-maps`,
        value: num(sourceMaps.median, 1),
        unit: 'ms',
        detail: `${ms(sourceMaps)}; as deployed (NODE_OPTIONS of KeyguardFunction)`,
      },
      {
        metric: `${name}: require cost over bare node, source maps`,
        value: num(sourceMaps.median - bare.median, 1),
        unit: 'ms',
        detail: `p90 difference ${num(sourceMaps.p90 - bare.p90, 1)} ms`,
      },
    );
  }
  notes.push(
    `esbuild ${esbuildVersion}; bundles in ${OUT_DIR}; ${options.requireRuns} interleaved samples per variant, ` +
      "wall time from spawn to exit of `node -e \"require('<bundle>')\"` with the handler's environment " +
      '(fake credentials, no network calls at load)',
    `local Node ${process.version}, not the Lambda node22 runtime: compare the differences, not the absolute times`,
  );
  return { title: 'Bundles: Lambda entries bundled as the CDK construct does (esbuild API)', figures, notes };
}
