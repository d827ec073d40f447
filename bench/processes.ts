import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/**
 * Child processes under measurement: wall time (spawn to exit, as a user would see it), stdout line count,
 * captured stderr and peak RSS. Peak RSS comes from GNU time (`/usr/bin/time -v`) when present; otherwise a
 * Node script is run inside a small wrapper that reports its own `process.resourceUsage().maxRSS` at exit.
 */

export const GNU_TIME = '/usr/bin/time';

export interface ChildRun {
  wallMs: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdoutLines: number;
  stdoutBytes: number;
  /** Stdout itself, only when `captureStdout` was set. */
  stdoutText: string;
  stderr: string;
  /** Peak resident set size in KiB, or null when it could not be measured. */
  maxRssKb: number | null;
  rssSource: 'gnu-time' | 'node-wrapper' | 'none';
}

export interface ChildSpec {
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Keep stdout (otherwise only its lines and bytes are counted). */
  captureStdout?: boolean;
  /** Measure peak RSS. For the wrapper fallback, `command` must be `node` and `args[0]` a script. */
  peakRss?: boolean;
}

/**
 * Runs the script in args[0] as the main module (`require.main`, `process.argv` as if started directly) and
 * writes its rusage at exit. A file, not `node -e`: under -e, commander reads argv in "eval" mode.
 */
const RUSAGE_WRAPPER = [
  "const fs = require('node:fs');",
  "const path = require('node:path');",
  'process.argv.splice(1, 1);',
  'process.argv[1] = path.resolve(process.argv[1]);',
  "process.on('exit', () => fs.writeFileSync(process.env.BENCH_RUSAGE_FILE, JSON.stringify(process.resourceUsage())));",
  "require('node:module').runMain();",
].join('\n');

let gnuTime: boolean | null = null;
async function hasGnuTime(): Promise<boolean> {
  if (gnuTime === null) {
    gnuTime =
      process.env.BENCH_NO_GNU_TIME !== '1' &&
      existsSync(GNU_TIME) &&
      (
        await run({ command: GNU_TIME, args: ['-v', 'true'], env: process.env, cwd: process.cwd() }, null)
      ).stderr.includes('Maximum resident set size');
  }
  return gnuTime;
}

function run(spec: ChildSpec, stdoutCounter: { lines: number; bytes: number } | null): Promise<ChildRun> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ['ignore', stdoutCounter ? 'pipe' : 'ignore', 'pipe'],
    });
    const stderr: Buffer[] = [];
    const stdout: Buffer[] = [];
    child.stderr?.on('data', (b: Buffer) => stderr.push(b));
    child.stdout?.on('data', (b: Buffer) => {
      if (!stdoutCounter) return;
      if (spec.captureStdout) stdout.push(b);
      stdoutCounter.bytes += b.length;
      for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) stdoutCounter.lines += 1;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolvePromise({
        wallMs: performance.now() - t0,
        exitCode: code,
        signal,
        stdoutLines: stdoutCounter?.lines ?? 0,
        stdoutBytes: stdoutCounter?.bytes ?? 0,
        stdoutText: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        maxRssKb: null,
        rssSource: 'none',
      });
    });
  });
}

/** Runs a child to completion and measures it. */
export async function runChild(spec: ChildSpec): Promise<ChildRun> {
  const counter = { lines: 0, bytes: 0 };
  if (!spec.peakRss) return run(spec, counter);

  const dir = await mkdtemp(join(tmpdir(), 'bench-rss-'));
  const out = join(dir, 'rusage');
  try {
    if (await hasGnuTime()) {
      const result = await run(
        { ...spec, command: GNU_TIME, args: ['-v', '-o', out, spec.command, ...spec.args] },
        counter,
      );
      const match = /Maximum resident set size \(kbytes\): (\d+)/.exec(await readFile(out, 'utf8'));
      return { ...result, maxRssKb: match ? Number(match[1]) : null, rssSource: 'gnu-time' };
    }
    const wrapper = join(dir, 'rusage-wrapper.cjs');
    await writeFile(wrapper, RUSAGE_WRAPPER);
    const result = await run(
      { ...spec, args: [wrapper, ...spec.args], env: { ...spec.env, BENCH_RUSAGE_FILE: out } },
      counter,
    );
    const usage = JSON.parse(await readFile(out, 'utf8')) as NodeJS.ResourceUsage;
    return { ...result, maxRssKb: usage.maxRSS, rssSource: 'node-wrapper' };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
