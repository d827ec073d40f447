import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { type ChildRun, runChild } from './processes';

/**
 * The scanners the scan benchmark compares, each run as a subprocess over the corpus directory (its cwd) and its
 * output parsed into located findings. No output here holds a key: keyguard prints redacted keys, ripgrep is told
 * to replace each match (`-r`), secretlint masks (`--maskSecrets`).
 */

const ROOT = resolve(__dirname, '..');
/**
 * The CLI bundle itself (what bin/keyguard.js runs when it is fresh), built by `npm run bench` before the
 * benchmarks: bin/keyguard.js would switch to the TypeScript sources through tsx as soon as a source file is
 * edited during the run (the working tree is shared), which measures another program.
 */
export const CLI = join(ROOT, 'dist', 'keyguard.js');
const SECRETLINT = join(ROOT, 'node_modules', '.bin', 'secretlint');

/** gitleaks' published rules for Bedrock API keys (config/gitleaks.toml: aws-amazon-bedrock-api-key-*). */
export const GITLEAKS_LONG_TERM = String.raw`\b(ABSK[A-Za-z0-9+/]{109,269}={0,2})(?:[\x60'"\s;]|\\[nr]|$)`;
export const GITLEAKS_SHORT_TERM = 'bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t';

export interface ToolFinding {
  /** Relative to the corpus directory, `/`-separated. */
  path: string;
  line: number;
  kind?: 'LONG_TERM' | 'SHORT_TERM';
  /** Only keyguard reports one. */
  fingerprint?: string;
}

export interface ToolRun {
  tool: string;
  run: ChildRun;
  findings: ToolFinding[];
}

/** Whether a tool can run here: its version, or why not. */
export type Availability = { ok: true; version: string } | { ok: false; reason: string };

function relPath(corpusDir: string, p: string): string {
  const abs = isAbsolute(p) ? p : resolve(corpusDir, p);
  return normalize(relative(corpusDir, abs)).split(sep).join('/');
}

function checkExit(tool: string, run: ChildRun): void {
  // Scanners exit 1 when they find something; anything else is a failure.
  if (run.exitCode !== 0 && run.exitCode !== 1) {
    throw new Error(`${tool} exited with ${run.exitCode ?? run.signal}: ${run.stderr.trim().slice(0, 500)}`);
  }
}

/** `keyguard scan . --format json`, on `jobs` threads (`--jobs`; default: the CLI's, one per core). */
export async function runKeyguard(corpusDir: string, jobs?: number): Promise<ToolRun> {
  const run = await runChild({
    command: process.execPath,
    args: [CLI, 'scan', '.', '--format', 'json', ...(jobs ? ['--jobs', String(jobs)] : [])],
    cwd: corpusDir,
    env: { ...process.env },
    captureStdout: true,
    peakRss: true,
  });
  checkExit('keyguard scan', run);
  const findings: ToolFinding[] = [];
  for (const line of run.stdoutText.split('\n')) {
    if (line.trim() === '') continue;
    const f = JSON.parse(line) as {
      path: string;
      line: number;
      kind: 'LONG_TERM' | 'SHORT_TERM';
      fingerprint: string;
    };
    findings.push({
      path: relPath(corpusDir, f.path),
      line: f.line,
      kind: f.kind,
      fingerprint: f.fingerprint,
    });
  }
  return { tool: jobs ? `keyguard scan --jobs ${jobs}` : 'keyguard scan', run, findings };
}

export function ripgrepAvailable(): Availability {
  const r = spawnSync('rg', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    return {
      ok: false,
      reason: 'ripgrep (`rg`) is not installed: `apt-get install ripgrep` (Debian/Ubuntu) to add its rows',
    };
  }
  return { ok: true, version: r.stdout.split('\n')[0]?.trim() ?? 'rg' };
}

/** ripgrep's arguments for gitleaks' two regexes, PCRE2 (`-P`, as issue 13 measures it), matches replaced. */
export function ripgrepPatternArgs(): string[] {
  return ['-P', '--replace', '$st', '-e', GITLEAKS_LONG_TERM, '-e', `(?P<st>${GITLEAKS_SHORT_TERM})`];
}

/**
 * ripgrep with both gitleaks regexes in one pass (PCRE2, `-P`), as gitleaks applies its rules: hidden and
 * ignored files too (the corpus sits in a gitignored folder and holds `.env` files). Each match is replaced by
 * the short-term literal (named group `st`, the public prefix, not a key) or by nothing, so the output says which
 * rule matched and never holds a key. `threads`: rg's own parallelism (default: all cores).
 */
export async function runRipgrep(corpusDir: string, threads?: number): Promise<ToolRun> {
  const run = await runChild({
    command: 'rg',
    args: [
      '--hidden',
      '--no-ignore',
      '--no-heading',
      '--with-filename',
      '--line-number',
      '--column',
      '--only-matching',
      '--color',
      'never',
      ...(threads ? ['--threads', String(threads)] : []),
      ...ripgrepPatternArgs(),
      '.',
    ],
    cwd: corpusDir,
    env: { ...process.env },
    captureStdout: true,
    peakRss: true,
  });
  checkExit('rg', run);
  const findings: ToolFinding[] = [];
  for (const line of run.stdoutText.split('\n')) {
    const m = /^(.*):(\d+):(\d+):(.*)$/.exec(line);
    if (!m) continue;
    findings.push({
      path: relPath(corpusDir, m[1] as string),
      line: Number(m[2]),
      kind: m[4] === GITLEAKS_SHORT_TERM ? 'SHORT_TERM' : 'LONG_TERM',
    });
  }
  return { tool: threads ? `ripgrep -j${threads}` : 'ripgrep', run, findings };
}

export function secretlintAvailable(): Availability {
  if (!existsSync(SECRETLINT)) {
    return { ok: false, reason: 'secretlint is not installed (devDependency missing: run `npm ci`)' };
  }
  const r = spawnSync(SECRETLINT, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    return {
      ok: false,
      reason: `secretlint does not run here: ${(r.stderr || String(r.error)).trim().slice(0, 200)}`,
    };
  }
  return { ok: true, version: `secretlint ${r.stdout.trim()}` };
}

/** secretlint's pattern rule with the same two gitleaks regexes (JavaScript syntax: `\x60` is a backtick). */
function secretlintConfig(): string {
  return JSON.stringify({
    rules: [
      {
        id: '@secretlint/secretlint-rule-pattern',
        options: {
          patterns: [
            { name: 'bedrock-long-term', pattern: `/${GITLEAKS_LONG_TERM}/` },
            { name: 'bedrock-short-term', pattern: `/${GITLEAKS_SHORT_TERM}/` },
          ],
        },
      },
    ],
  });
}

export async function runSecretlint(corpusDir: string): Promise<ToolRun> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-secretlint-'));
  try {
    const rc = join(dir, 'secretlintrc.json');
    const out = join(dir, 'report.txt');
    await writeFile(rc, secretlintConfig());
    const run = await runChild({
      command: SECRETLINT,
      // --output, not stdout: over a pipe, secretlint exits before its report is written out (it was cut short).
      args: [
        '--secretlintrc',
        rc,
        '--format',
        'compact',
        '--maskSecrets',
        '--no-color',
        '--output',
        out,
        '**/*',
      ],
      cwd: corpusDir,
      env: { ...process.env },
      captureStdout: true,
      peakRss: true,
    });
    checkExit('secretlint', run);
    const findings: ToolFinding[] = [];
    const report = await readFile(out, 'utf8').catch(() => '');
    for (const line of report.split('\n')) {
      const m = /^(.*): line (\d+), col \d+, /.exec(line);
      if (m) findings.push({ path: relPath(corpusDir, m[1] as string), line: Number(m[2]) });
    }
    return { tool: 'secretlint', run, findings };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `keyguard scan --git <repo> --format json --jobs N`: the distinct fingerprints it reports. */
export async function runKeyguardGit(
  repo: string,
  jobs: number,
): Promise<{ run: ChildRun; fingerprints: Set<string> }> {
  const run = await runChild({
    command: process.execPath,
    args: [CLI, 'scan', '--git', repo, '--format', 'json', '--jobs', String(jobs)],
    cwd: repo,
    env: { ...process.env },
    captureStdout: true,
    peakRss: true,
  });
  checkExit('keyguard scan --git', run);
  const fingerprints = new Set<string>();
  for (const line of run.stdoutText.split('\n')) {
    if (line.trim() !== '') fingerprints.add((JSON.parse(line) as { fingerprint: string }).fingerprint);
  }
  return { run, fingerprints };
}

/**
 * `git log -p --all | rg -P <gitleaks' regexes>` (matches replaced, so no key is printed), through `sh -c` with
 * the regexes passed as positional parameters (no quoting of them in the script): the lines it matches.
 */
export async function runGitLogRipgrep(
  repo: string,
  threads: number,
): Promise<{ run: ChildRun; matches: number }> {
  const run = await runChild({
    command: 'sh',
    args: [
      '-c',
      'git log -p --all | rg --no-heading --only-matching --color never --threads "$0" "$@"',
      String(threads),
      ...ripgrepPatternArgs(),
    ],
    cwd: repo,
    env: { ...process.env },
    captureStdout: true,
    peakRss: false,
  });
  checkExit('git log -p | rg', run);
  return { run, matches: run.stdoutLines };
}
