import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { build, version as esbuildVersion, type Metafile } from 'esbuild';
import { LAMBDA_CREDENTIALS_ALIAS } from '../lib/constructs/keyguard-function';
import {
  FULL_CONFIG,
  type FunctionUnderTest,
  functionsOf,
  MINIMAL_CONFIG,
  SINGLE_ACCOUNT_CONFIG,
} from '../test/support/function-environments';
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

/** `--alias:<package>=<path>` of the construct's esbuildArgs as the esbuild API takes it. */
const [aliasedPackage = '', aliasPath = ''] = LAMBDA_CREDENTIALS_ALIAS.split('=');

/**
 * Mirrors KeyguardFunction's `bundling` (lib/constructs/keyguard-function.ts) as NodejsFunction turns it into
 * esbuild flags: `--bundle --platform=node --target=node22 --format=cjs --minify --sourcemap
 * --sources-content=false --main-fields=module,main --alias:@aws-sdk/credential-provider-node=./lambda/adapters/
 * lambda-credentials.ts`, nothing external (`externalModules: []`). The alias path is resolved from the working
 * directory: build with `absWorkingDir` the repository root, as NodejsFunction runs esbuild in the project root.
 */
export const CDK_EQUIVALENT = {
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  mainFields: ['module', 'main'] as string[],
  external: [] as string[],
  alias: { [aliasedPackage]: aliasPath } as Record<string, string>,
} as const;

/** The construct's settings this mirror depends on; a missing one means the mirror has drifted. */
const CONSTRUCT_MARKERS = [
  'minify: true',
  'sourceMap: true',
  'sourcesContent: false',
  "target: 'node22'",
  'OutputFormat.CJS',
  "mainFields: ['module', 'main']",
  'externalModules: []',
  "esbuildArgs: { '--alias': LAMBDA_CREDENTIALS_ALIAS }",
];

/** Credentials as the Lambda runtime gives them (from the execution role); fake: nothing is called at load. */
const RUNTIME_CREDENTIALS: Record<string, string> = {
  AWS_ACCESS_KEY_ID: 'ASIAIOSFODNN7EXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  AWS_SESSION_TOKEN: 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN',
};

/** Configs whose functions are measured, in order of preference: an entry is measured in the first that has it. */
const CONFIGS: ReadonlyArray<readonly [string, unknown]> = [
  ['every optional feature on (organization mode)', FULL_CONFIG],
  ['every feature but organization mode', SINGLE_ACCOUNT_CONFIG],
  ['the defaults', MINIMAL_CONFIG],
];

interface MeasuredFunction {
  fn: FunctionUnderTest;
  configName: string;
  /** The environment Lambda gives the process: the runtime's variables, credentials, the template's variables. */
  env: Record<string, string>;
}

/**
 * The environment of each entry's function, as the synthesized template gives it (the helper
 * test/lib/entry-environment.test.ts loads every entry with), so that each bundle's cold start parses the same
 * configuration and builds the same clients as in the account.
 */
function deployedEnvironments(entries: readonly string[]): Map<string, MeasuredFunction> {
  const byEntry = new Map<string, MeasuredFunction>();
  for (const [configName, config] of CONFIGS) {
    progress(`bundle: synthesizing the app (${configName}) for the functions' environments`);
    for (const fn of functionsOf(config)) {
      const entry = join(ROOT, fn.entry);
      if (byEntry.has(entry)) continue;
      byEntry.set(entry, { fn, configName, env: { ...fn.runtime, ...RUNTIME_CREDENTIALS, ...fn.variables } });
    }
    if (entries.every((e) => byEntry.has(e))) break;
  }
  return byEntry;
}

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
    ? "esbuild options mirror lib/constructs/keyguard-function.ts (bundle, platform node, target node22, cjs, minify, sourcemap without sources content, main fields module then main, nothing external, the SDK's default credential chain aliased to the environment provider)"
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
  /** The script `node -e` runs (empty for bare node). */
  script: string;
  env: NodeJS.ProcessEnv;
}

interface ColdStart {
  /** Spawn to exit, as the ratio is defined. */
  wall: Summary;
  /** The process's own CPU time (user + system, process.cpuUsage() at exit): less swayed by other work on a shared machine. */
  cpu: Summary;
}

/** Appended to every variant's script (bare node included): prints the process's CPU microseconds at exit. */
const CPU_AT_EXIT =
  "process.on('exit',()=>{const u=process.cpuUsage();process.stdout.write(String(u.user+u.system))})";

async function coldStarts(variants: readonly Variant[], runs: number): Promise<ColdStart[]> {
  const wall: number[][] = variants.map(() => []);
  const cpu: number[][] = variants.map(() => []);
  // Interleaved, so drift in machine load affects every variant alike.
  for (let i = 0; i < runs; i++) {
    for (const [v, variant] of variants.entries()) {
      const run = await runChild({
        command: process.execPath,
        args: ['-e', `${variant.script}${variant.script ? ';' : ''}${CPU_AT_EXIT}`],
        env: variant.env,
        cwd: ROOT,
        captureStdout: true,
      });
      if (run.exitCode !== 0) {
        throw new Error(
          `${variant.label}: node exited with ${run.exitCode}: ${run.stderr.trim().split('\n')[0]}`,
        );
      }
      wall[v]?.push(run.wallMs);
      cpu[v]?.push(Number(run.stdoutText) / 1000);
    }
  }
  return variants.map((_, v) => ({ wall: summarize(wall[v] ?? []), cpu: summarize(cpu[v] ?? []) }));
}

function ms(s: Summary): string {
  return `median ${num(s.median, 1)} ms, p90 ${num(s.p90, 1)} ms`;
}

/** Ratio to bare node, median to median and p90 to p90. */
function ratio(s: Summary, bare: Summary): string {
  return `${num(s.median / bare.median, 2)}× (p90 ${num(s.p90 / bare.p90, 2)}×)`;
}

const SOURCE_MAPS_FLAG = '--enable-source-maps';

/** NODE_OPTIONS with source maps switched on or off, the rest as given; undefined when nothing is left. */
function withSourceMaps(nodeOptions: string | undefined, on: boolean): string | undefined {
  const flags = (nodeOptions ?? '').split(/\s+/).filter((f) => f !== '' && f !== SOURCE_MAPS_FLAG);
  if (on) flags.push(SOURCE_MAPS_FLAG);
  return flags.length > 0 ? flags.join(' ') : undefined;
}

function envWith(env: Record<string, string>, nodeOptions: string | undefined): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _dropped, ...rest } = env;
  return nodeOptions === undefined ? rest : { ...rest, NODE_OPTIONS: nodeOptions };
}

export async function runBundleBench(options: BundleBenchOptions): Promise<Section> {
  const entries = handlerEntries();
  if (entries.length === 0) throw new Error(`no Lambda entries in ${HANDLERS_DIR}`);
  const deployed = deployedEnvironments(entries);
  const figures: Figure[] = [];
  const notes = [constructDrift()];
  const summary: string[] = [];
  const nodeOptions = new Set<string>();

  for (const entry of entries) {
    const name = basename(entry, '.ts');
    const measured = deployed.get(entry);
    if (!measured) {
      notes.push(`${name}: no function of the app is bundled from it in any measured config: not measured`);
      continue;
    }
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

    // As deployed: the template's NODE_OPTIONS (if any); the other variant toggles source maps only.
    const deployedOptions = measured.env.NODE_OPTIONS;
    nodeOptions.add(deployedOptions ?? '(none)');
    const deployedMaps = (deployedOptions ?? '').split(/\s+/).includes(SOURCE_MAPS_FLAG);
    const envDeployed = envWith(measured.env, deployedOptions);
    const envToggled = envWith(measured.env, withSourceMaps(deployedOptions, !deployedMaps));
    // Bare node gets the same environment without NODE_OPTIONS (what node itself does with an empty script).
    const envBare = envWith(measured.env, undefined);

    // Not timed: the bundle must load and export a handler, or the timings below mean nothing.
    const check = await runChild({
      command: process.execPath,
      args: ['-e', `if (typeof require(${JSON.stringify(outfile)}).handler !== 'function') process.exit(3)`],
      env: envDeployed,
      cwd: ROOT,
    });
    if (check.exitCode !== 0) {
      throw new Error(
        // The last lines say why (a minified bundle's first lines are code, not the reason).
        `${name}: bundle does not load or export handler with its function's environment (${measured.fn.logicalId}, exit ${check.exitCode}): ${check.stderr.trim().split('\n').slice(-12).join('\n')}`,
      );
    }

    progress(`bundle: ${options.requireRuns} cold starts of ${name} (and of bare node)`);
    const requireScript = `require(${JSON.stringify(outfile)})`;
    const [bare, asDeployed, toggled] = await coldStarts(
      [
        { label: "node -e ''", script: '', env: envBare },
        { label: 'require(bundle) as deployed', script: requireScript, env: envDeployed },
        { label: 'require(bundle), source maps toggled', script: requireScript, env: envToggled },
      ],
      options.requireRuns,
    );
    if (!bare || !asDeployed || !toggled) throw new Error('cold-start samples missing');
    const [plain, sourceMaps] = deployedMaps ? [toggled, asDeployed] : [asDeployed, toggled];
    const deployedTag = (maps: boolean) => (maps === deployedMaps ? ' (as deployed)' : '');

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
      {
        metric: "bare node -e ''",
        value: num(bare.wall.median, 1),
        unit: 'ms',
        detail: `${ms(bare.wall)}; CPU ${ms(bare.cpu)}`,
      },
    );
    for (const [label, run, maps] of [
      ['cold require', plain, false],
      [`cold require, ${SOURCE_MAPS_FLAG}`, sourceMaps, true],
    ] as const) {
      figures.push(
        {
          metric: `${name}: ${label}${deployedTag(maps)}`,
          value: num(run.wall.median, 1),
          unit: 'ms',
          detail: `${ms(run.wall)}; cost over bare node ${num(run.wall.median - bare.wall.median, 1)} ms; CPU ${ms(run.cpu)}`,
        },
        {
          metric: `${name}: ${label} / bare node`,
          value: num(run.wall.median / bare.wall.median, 2),
          unit: '×',
          detail: `wall: median ${ratio(run.wall, bare.wall)}; CPU time: median ${ratio(run.cpu, bare.cpu)}`,
        },
      );
    }
    const shipped = deployedMaps ? sourceMaps : plain;
    summary.push(`${name} ${ratio(shipped.wall, bare.wall)}, CPU ${ratio(shipped.cpu, bare.cpu)}`);
  }
  const deployedOptionsNote = ` (NODE_OPTIONS ${[...nodeOptions].join(', ')})`;
  notes.push(
    `cold require / bare node as deployed${deployedOptionsNote}, wall (issue 13 goal: ≤ 2×) and CPU time: ${summary.join('; ')}`,
    `esbuild ${esbuildVersion}; bundles in ${OUT_DIR}; ${options.requireRuns} interleaved samples per variant, ` +
      'wall time from spawn to exit of `node -e "require(\'<bundle>\')"`: the require and everything the entry does ' +
      "at load (environment parsing and validation, client construction), as Lambda's init phase runs it. Each " +
      "process has its function's environment as the synthesized template gives it (test/support/function-" +
      'environments.ts: ' +
      [...new Set([...deployed.values()].map((m) => m.configName))].join(', ') +
      "), the runtime's variables and fake credentials (no network call at load); bare node has the same " +
      'environment without NODE_OPTIONS',
    `local Node ${process.version}, not the Lambda node22 runtime: compare the ratios, not the absolute times`,
  );
  return { title: 'Bundles: Lambda entries bundled as the CDK construct does (esbuild API)', figures, notes };
}
