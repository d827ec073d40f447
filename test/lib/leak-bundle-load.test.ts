import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { CDK_EQUIVALENT } from '../../bench/bundle.bench';
import { FULL_CONFIG, functionsOf } from '../support/function-environments';

// Bundles the leak entry as KeyguardFunction does (the bundle benchmark's mirror of the construct's esbuild options,
// checked against the construct there) and loads it with its template's environment, as Lambda's init does.
jest.setTimeout(300_000);

const REPO = resolve(__dirname, '..', '..');

/**
 * Loads the bundle under V8's precise coverage and prints the original source of every function that ran (through
 * the bundle's source map): the code a cold start executed. Runs in the child, with exactly the function's environment.
 */
const LOADED_SOURCES = `
const inspector = require('node:inspector');
const fs = require('node:fs');
const { SourceMap } = require('node:module');
const file = process.argv[1];
const session = new inspector.Session();
session.connect();
const post = (m, p) => new Promise((ok, fail) => session.post(m, p, (e, r) => (e ? fail(e) : ok(r))));
(async () => {
  await post('Profiler.enable');
  await post('Profiler.startPreciseCoverage', { callCount: true, detailed: false });
  if (typeof require(file).handler !== 'function') throw new Error('no handler');
  const { result } = await post('Profiler.takePreciseCoverage');
  const text = fs.readFileSync(file, 'utf8');
  const map = new SourceMap(JSON.parse(fs.readFileSync(file + '.map', 'utf8')));
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) lineStarts.push(i + 1);
  const ran = new Set();
  for (const f of result.find((r) => r.url.endsWith(file)).functions) {
    const range = f.ranges[0];
    if (range.count === 0) continue;
    let line = 0;
    while (line + 1 < lineStarts.length && lineStarts[line + 1] <= range.startOffset) line++;
    const entry = map.findEntry(line, range.startOffset - lineStarts[line]);
    if (entry.originalSource) ran.add(entry.originalSource);
  }
  process.stdout.write(JSON.stringify([...ran]));
})();
`;

let outdir: string;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'keyguard-leak-bundle-'));
});

afterAll(() => rmSync(outdir, { recursive: true, force: true }));

test("the leak function's cold start neither loads nor builds the SQS client of the undecided-leaks queue", async () => {
  // Prepare: the leak function of the fullest config (organization mode), bundled as deployed.
  const fn = functionsOf(FULL_CONFIG).find((f) => f.entry === 'lambda/handlers/leak.ts');
  if (!fn) throw new Error('the full config has no leak function');
  const outfile = join(outdir, 'leak', 'index.js');
  await build({
    ...CDK_EQUIVALENT,
    entryPoints: [join(REPO, fn.entry)],
    outfile,
    absWorkingDir: REPO,
    logLevel: 'silent',
  });

  // Act: load it as Lambda's init does (the template's NODE_OPTIONS, source maps on), recording what ran.
  const run = spawnSync(process.execPath, ['-e', LOADED_SOURCES, outfile], {
    env: {
      ...fn.runtime,
      AWS_ACCESS_KEY_ID: 'ASIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      AWS_SESSION_TOKEN: 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN',
      ...fn.variables,
    },
    encoding: 'utf8',
  });

  // Assess: the clients every invocation uses were built at load; the SQS client is in the bundle (the first batch
  // with a finding not decided loads it) but none of its code ran.
  expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
  const ran = JSON.parse(run.stdout) as string[];
  const packages = new Set(
    ran.map((s) => /node_modules\/(@aws-sdk\/client-[\w-]+)\//.exec(s)?.[1]).filter(Boolean),
  );
  expect(packages).toContain('@aws-sdk/client-dynamodb');
  expect(packages).toContain('@aws-sdk/client-iam');
  expect(packages).not.toContain('@aws-sdk/client-sqs');
  expect(ran.filter((s) => s.endsWith('lambda/adapters/undecided-leaks.ts'))).toEqual([]);
  const sources = (JSON.parse(readFileSync(`${outfile}.map`, 'utf8')) as { sources: string[] }).sources;
  expect(sources.some((s) => s.endsWith('lambda/adapters/undecided-leaks.ts'))).toBe(true);
  expect(sources.some((s) => s.includes('node_modules/@aws-sdk/client-sqs/'))).toBe(true);
});
