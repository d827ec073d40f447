import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fingerprint } from '../lambda/shared/redact';
import { Prng } from './prng';
import { progress } from './report';
import { DATA_DIR } from './scan-corpus';
import { type FileType, fillerPools, longTermKey, plantedLine, shortTermKey } from './scan-lines';

/**
 * A deterministic git repository for the git-history row of the scan benchmark (issue 13): COMMITS commits on
 * one branch over a small source tree (ts, py, yaml, json, .env), each changing a few lines of one to three files,
 * with a key planted every PLANT_EVERY commits on average (in the contexts of the scan corpus) and removed again
 * some commits later, so most keys live only in history. Built with `git fast-import` (seconds, not minutes),
 * cached under bench/.data/scan-git with a manifest beside it (the planted keys' fingerprints, never a key).
 *
 * Standalone: `npx tsx bench/scan-git.ts`.
 */

const GENERATOR_VERSION = 1;
const SEED = 0x6b676974; // "kgit"
export const COMMITS = 5000;
const FILES = 48;
const PLANT_EVERY = 40;
export const GIT_REPO_DIR = join(DATA_DIR, 'scan-git');
const MANIFEST_FILE = join(DATA_DIR, 'scan-git.manifest.json');

export interface GitHistoryManifest {
  generatorVersion: number;
  seed: number;
  commits: number;
  /** The head commit: the cache is reused only while the repository still has it. */
  head: string;
  /** Fingerprints of the keys planted (each distinct key once). */
  planted: string[];
}

export interface GitHistory {
  dir: string;
  manifest: GitHistoryManifest;
  generatedSeconds: number | null;
}

const TYPES: readonly FileType[] = ['ts', 'py', 'yaml', 'json', 'env'];
const EXT: Partial<Record<FileType, string>> = { ts: 'ts', py: 'py', yaml: 'yaml', json: 'json', env: 'env' };

function git(dir: string, args: string[]): string {
  const r = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function cached(): Promise<GitHistoryManifest | null> {
  try {
    const m = JSON.parse(await readFile(MANIFEST_FILE, 'utf8')) as GitHistoryManifest;
    if (m.generatorVersion !== GENERATOR_VERSION || m.seed !== SEED || m.commits !== COMMITS) return null;
    if (!existsSync(join(GIT_REPO_DIR, '.git'))) return null;
    return git(GIT_REPO_DIR, ['rev-parse', 'HEAD']) === m.head ? m : null;
  } catch {
    return null;
  }
}

/** The fast-import stream, written to git's stdin as it is made. */
async function generate(): Promise<GitHistoryManifest> {
  await rm(MANIFEST_FILE, { force: true });
  await rm(GIT_REPO_DIR, { recursive: true, force: true });
  await mkdir(GIT_REPO_DIR, { recursive: true });
  git(GIT_REPO_DIR, ['init', '-q', '-b', 'main']);
  const rng = new Prng(SEED);
  const pools = fillerPools(new Prng(SEED ^ 0x5a5a5a5a));
  const files = Array.from({ length: FILES }, (_, i) => {
    const type = TYPES[i % TYPES.length] as FileType;
    const lines = Array.from({ length: rng.between(40, 400) }, () => rng.pick(pools[type]));
    return { path: `src/${['core', 'api', 'jobs', 'infra'][i % 4]}/file-${i}.${EXT[type]}`, type, lines };
  });
  const planted = new Set<string>();
  /** Keys in the tree now: file index, line index; removed later. */
  const live: Array<{ file: number; line: number; removeAt: number }> = [];

  const child = spawn('git', ['-C', GIT_REPO_DIR, 'fast-import', '--quiet'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  const write = (chunk: string): Promise<void> =>
    new Promise((resolve) => {
      if (child.stdin.write(chunk)) resolve();
      else child.stdin.once('drain', resolve);
    });
  const data = (text: string): string => `data ${Buffer.byteLength(text)}\n${text}\n`;

  const start = Date.UTC(2025, 0, 1) / 1000;
  for (let c = 1; c <= COMMITS; c += 1) {
    const touched = new Set<number>();
    // Keys due for removal go first (a later commit "rotates the secret out").
    for (let k = live.length - 1; k >= 0; k -= 1) {
      const key = live[k] as (typeof live)[number];
      if (key.removeAt > c) continue;
      const f = files[key.file] as (typeof files)[number];
      f.lines[key.line] = rng.pick(pools[f.type]);
      touched.add(key.file);
      live.splice(k, 1);
    }
    for (let n = rng.between(1, 3); n > 0; n -= 1) {
      const i = rng.int(FILES);
      const f = files[i] as (typeof files)[number];
      for (let e = rng.between(1, 6); e > 0; e -= 1) {
        const at = rng.int(f.lines.length + 1);
        if (rng.chance(0.5) && at < f.lines.length && !live.some((k) => k.file === i && k.line === at)) {
          f.lines[at] = rng.pick(pools[f.type]);
        } else if (!live.some((k) => k.file === i)) {
          f.lines.splice(at, 0, rng.pick(pools[f.type]));
        }
      }
      touched.add(i);
    }
    if (rng.chance(1 / PLANT_EVERY)) {
      const i = rng.int(FILES);
      const f = files[i] as (typeof files)[number];
      if (!live.some((k) => k.file === i)) {
        const key = rng.chance(0.5) ? longTermKey(rng) : shortTermKey(rng);
        const line = rng.int(f.lines.length);
        f.lines[line] = plantedLine(rng, f.type, key).text;
        planted.add(fingerprint(key));
        live.push({ file: i, line, removeAt: c + rng.between(1, 200) });
        touched.add(i);
      }
    }
    let commit = `commit refs/heads/main\nmark :${c}\ncommitter Bench <bench@example.com> ${start + c * 600} +0000\n`;
    commit += data(`change ${c}`);
    if (c > 1) commit += `from :${c - 1}\n`;
    for (const i of [...touched].sort((a, b) => a - b)) {
      const f = files[i] as (typeof files)[number];
      commit += `M 100644 inline ${f.path}\n${data(`${f.lines.join('\n')}\n`)}`;
    }
    await write(commit);
    if (c % 1000 === 0) progress(`scan-git: ${c} / ${COMMITS} commits`);
  }
  child.stdin.end();
  const code = await closed;
  if (code !== 0) throw new Error(`git fast-import exited with ${code}: ${stderr.trim().slice(0, 500)}`);
  git(GIT_REPO_DIR, ['checkout', '-q', 'main']);
  const manifest: GitHistoryManifest = {
    generatorVersion: GENERATOR_VERSION,
    seed: SEED,
    commits: COMMITS,
    head: git(GIT_REPO_DIR, ['rev-parse', 'HEAD']),
    planted: [...planted].sort(),
  };
  await writeFile(MANIFEST_FILE, `${JSON.stringify(manifest)}\n`);
  return manifest;
}

/** The cached repository, or a new one when missing or made by another generator version. */
export async function ensureGitHistory(): Promise<GitHistory> {
  const manifest = await cached();
  if (manifest) return { dir: GIT_REPO_DIR, manifest, generatedSeconds: null };
  progress(`generating a git history of ${COMMITS} commits under ${GIT_REPO_DIR}`);
  const t0 = performance.now();
  const made = await generate();
  return { dir: GIT_REPO_DIR, manifest: made, generatedSeconds: (performance.now() - t0) / 1000 };
}

if (require.main === module) {
  ensureGitHistory()
    .then((h) => {
      progress(
        `${h.dir}: ${h.manifest.commits} commits, ${h.manifest.planted.length} keys planted ` +
          `(${h.generatedSeconds === null ? 'cached' : `generated in ${h.generatedSeconds.toFixed(1)} s`})`,
      );
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
