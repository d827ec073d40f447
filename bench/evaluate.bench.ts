import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { CDK_EQUIVALENT } from './bundle.bench';
import { measureDomain } from './domain-measure';
import { DATA_DIR } from './generate-archive';
import { runChild } from './processes';
import { type Figure, progress, type Section } from './report';

/**
 * The domain figures twice: in this process, as tsx runs the code (and so as `keyguard replay` runs it), and in
 * a child process from an esbuild bundle built like the Lambda bundle (as the deployed functions run it).
 */

const ROOT = resolve(__dirname, '..');
const BUNDLE = join(DATA_DIR, 'bundles', 'evaluate-bundled', 'index.js');

async function measureBundled(): Promise<Section> {
  await build({
    ...CDK_EQUIVALENT,
    entryPoints: [join(__dirname, 'evaluate-bundled.ts')],
    outfile: BUNDLE,
    absWorkingDir: ROOT,
    logLevel: 'silent',
  });
  progress('evaluate: measuring the esbuild bundle in a child process');
  const run = await runChild({
    command: process.execPath,
    args: [BUNDLE],
    env: process.env,
    cwd: ROOT,
    captureStdout: true,
  });
  if (run.exitCode !== 0)
    throw new Error(`bundled domain bench exited with ${run.exitCode}: ${run.stderr.trim()}`);
  return JSON.parse(run.stdoutText) as Section;
}

export async function runEvaluateBench(): Promise<Section> {
  const inProcess = measureDomain();
  const bundled = await measureBundled();
  const figures: Figure[] = [];
  for (const [i, f] of inProcess.figures.entries()) {
    figures.push({ ...f, metric: `${f.metric} [tsx]` });
    const b = bundled.figures[i];
    if (b) figures.push({ ...b, metric: `${b.metric} [bundle]` });
  }
  return {
    title: inProcess.title,
    figures,
    notes: [
      ...inProcess.notes,
      '[tsx]: this process, code as tsx transpiles it (as `keyguard replay` runs it); tsx sets esbuild keepNames, ' +
        'so each closure created per call (e.g. `ignore` in classifyRecord) also costs a __name() call',
      '[bundle]: a child process running an esbuild bundle built with the Lambda construct options (no keepNames)',
    ],
  };
}
