import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fingerprint } from '../lambda/shared/redact';
import { readCachedManifest } from './cache';
import { BenchUsageError, parseBenchOptions, USAGE } from './options';
import { Prng, WeightedChoice } from './prng';
import { mib, num, progress } from './report';
import {
  type Context,
  type DecoyKind,
  decoyLine,
  type FileType,
  fillerPools,
  longTermKey,
  plantedLine,
  shortTermKey,
} from './scan-lines';

/**
 * A deterministic corpus for `npm run bench -- --only scan`: source trees (ts, py, yaml, .env, json, shell) and
 * log files (JSON lines and plain text) with Bedrock API keys of both kinds planted at known lines in varied
 * contexts, and decoys that look like keys but are not. Cached under bench/.data/scan-corpus with a manifest
 * beside it (never inside: the scanners would read it) holding where each key was planted and its fingerprint,
 * never the key. Regenerated when missing, incomplete, or built with another size or generator version.
 *
 * Standalone: `npx tsx bench/scan-corpus.ts [--scan-mb N]`.
 */

/** Bump when the generated content changes, so cached corpora are rebuilt. */
const GENERATOR_VERSION = 1;
const SEED = 0x6b736361; // "ksca"
/** On average one planted key, and about as many decoys, per this many bytes. */
const PLANT_EVERY_BYTES = 160 * 1024;
const DECOY_EVERY_BYTES = 160 * 1024;
/** Share of the corpus (bytes) that is logs; the rest is source trees. */
const LOG_SHARE = 0.55;
const FILES_PER_REPO = 60;

export const DATA_DIR = resolve(__dirname, '.data');
export const CORPUS_DIR = join(DATA_DIR, 'scan-corpus');
const MANIFEST_FILE = join(DATA_DIR, 'scan-corpus.manifest.json');

export interface PlantedKey {
  /** Relative to the corpus directory, `/`-separated. */
  path: string;
  line: number;
  kind: 'LONG_TERM' | 'SHORT_TERM';
  context: Context;
  fileType: FileType;
  /** keyguard's fingerprint of the (unescaped) key: `sha256:` + 16 hex digits. Never the key. */
  fingerprint: string;
}

export interface Decoy {
  path: string;
  line: number;
  decoy: DecoyKind;
}

export interface CorpusManifest {
  generatorVersion: number;
  seed: number;
  targetMb: number;
  bytes: number;
  files: Array<{ path: string; bytes: number; type: FileType }>;
  planted: PlantedKey[];
  decoys: Decoy[];
}

export interface Corpus {
  dir: string;
  manifest: CorpusManifest;
  /** Seconds spent generating, or null when the cached corpus was used. */
  generatedSeconds: number | null;
}

function readCached(targetMb: number): Promise<CorpusManifest | null> {
  return readCachedManifest<CorpusManifest>(
    MANIFEST_FILE,
    CORPUS_DIR,
    { generatorVersion: GENERATOR_VERSION, seed: SEED, targetMb },
    (f) => f.bytes,
  );
}

const SOURCE_TYPES = new WeightedChoice<FileType>([
  ['ts', 34],
  ['py', 22],
  ['yaml', 12],
  ['json', 16],
  ['sh', 8],
  ['env', 8],
]);

function sourceSize(type: FileType, rng: Prng): number {
  if (type === 'env') return rng.between(200, 3000);
  if (type === 'json') return rng.between(2_000, 200_000);
  return rng.between(2_000, 90_000);
}

const EXT: Record<FileType, string> = {
  ts: 'ts',
  py: 'py',
  yaml: 'yaml',
  json: 'json',
  sh: 'sh',
  env: 'env',
  jsonlog: 'log',
  textlog: 'log',
};

const SERVICES = ['api', 'worker', 'gateway', 'billing', 'ingest', 'ci-runner', 'chatbot', 'search'];

async function generate(targetMb: number): Promise<CorpusManifest> {
  await rm(MANIFEST_FILE, { force: true });
  await rm(CORPUS_DIR, { recursive: true, force: true });
  await mkdir(CORPUS_DIR, { recursive: true });

  const rng = new Prng(SEED);
  const pools = fillerPools(new Prng(SEED ^ 0x1f2e3d4c));
  const targetBytes = targetMb * 1024 * 1024;
  const manifest: CorpusManifest = {
    generatorVersion: GENERATOR_VERSION,
    seed: SEED,
    targetMb,
    bytes: 0,
    files: [],
    planted: [],
    decoys: [],
  };
  let logBytes = 0;
  let repo = 0;
  let inRepo = 0;
  let logIndex = 0;
  const used = new Set<string>();
  let lastReport = 0;

  while (manifest.bytes < targetBytes) {
    const isLog = logBytes < manifest.bytes * LOG_SHARE || manifest.bytes === 0;
    let type: FileType;
    let path: string;
    let size: number;
    if (isLog) {
      type = rng.chance(0.6) ? 'jsonlog' : 'textlog';
      const service = rng.pick(SERVICES);
      logIndex += 1;
      path = `logs/${service}/${type === 'jsonlog' ? 'app' : 'access'}-2026-11-${String(1 + (logIndex % 28)).padStart(2, '0')}-${logIndex}.${EXT[type]}`;
      size = rng.between(1, 8) * 1024 * 1024;
    } else {
      if (inRepo >= FILES_PER_REPO) {
        repo += 1;
        inRepo = 0;
      }
      inRepo += 1;
      type = SOURCE_TYPES.pick(rng);
      const r = `repos/repo-${String(repo).padStart(3, '0')}`;
      const n = `${rng.pick(['core', 'util', 'handler', 'client', 'model', 'config', 'deploy', 'test'])}-${inRepo}`;
      path =
        type === 'env'
          ? `${r}/${rng.pick(['.env', '.env.local', '.env.production', 'deploy/.env'])}`
          : type === 'sh'
            ? `${r}/scripts/${n}.sh`
            : type === 'yaml'
              ? `${r}/config/${n}.yaml`
              : type === 'json'
                ? `${r}/fixtures/${n}.json`
                : `${r}/src/${n}.${EXT[type]}`;
      if (used.has(path))
        path = `${path.replace(/(\.[a-z]+)?$/, '')}-${inRepo}${type === 'env' ? '' : `.${EXT[type]}`}`;
      size = sourceSize(type, rng);
    }
    used.add(path);
    size = Math.min(size, targetBytes - manifest.bytes + 1024);

    const pool = pools[type];
    const lines: string[] = [];
    let bytes = 0;
    let nextPlant = manifest.bytes + rng.int(2 * PLANT_EVERY_BYTES);
    let nextDecoy = manifest.bytes + rng.int(2 * DECOY_EVERY_BYTES);
    while (bytes < size) {
      const here = manifest.bytes + bytes;
      let line: string;
      if (here >= nextPlant) {
        const kind = rng.chance(0.5) ? 'LONG_TERM' : 'SHORT_TERM';
        const key = kind === 'LONG_TERM' ? longTermKey(rng) : shortTermKey(rng);
        const planted = plantedLine(rng, type, key);
        line = planted.text;
        manifest.planted.push({
          path,
          line: lines.length + 1,
          kind,
          context: planted.context,
          fileType: type,
          fingerprint: fingerprint(key),
        });
        nextPlant = here + 1 + rng.int(2 * PLANT_EVERY_BYTES);
      } else if (here >= nextDecoy) {
        const decoy = decoyLine(rng, type);
        line = decoy.text;
        manifest.decoys.push({ path, line: lines.length + 1, decoy: decoy.decoy });
        nextDecoy = here + 1 + rng.int(2 * DECOY_EVERY_BYTES);
      } else {
        line = pool[rng.int(pool.length)] as string;
      }
      lines.push(line);
      bytes += Buffer.byteLength(line) + 1;
    }
    const text = `${lines.join('\n')}\n`;
    const file = join(CORPUS_DIR, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
    const written = Buffer.byteLength(text);
    manifest.files.push({ path, bytes: written, type });
    manifest.bytes += written;
    if (isLog) logBytes += written;
    if (manifest.bytes - lastReport > 50 * 1024 * 1024) {
      lastReport = manifest.bytes;
      progress(`scan corpus: ${num(mib(manifest.bytes))} / ${num(targetMb)} MiB`);
    }
  }
  await writeFile(MANIFEST_FILE, `${JSON.stringify(manifest)}\n`);
  return manifest;
}

/** The corpus of `targetMb` MiB: the cached one when it is complete and current, otherwise generated anew. */
export async function ensureScanCorpus(targetMb: number): Promise<Corpus> {
  const cached = await readCached(targetMb);
  if (cached) return { dir: CORPUS_DIR, manifest: cached, generatedSeconds: null };
  progress(`generating the scan corpus (${num(targetMb)} MiB) under ${CORPUS_DIR}`);
  const t0 = performance.now();
  const manifest = await generate(targetMb);
  return { dir: CORPUS_DIR, manifest, generatedSeconds: (performance.now() - t0) / 1000 };
}

if (require.main === module) {
  (async () => {
    const options = parseBenchOptions(process.argv.slice(2), process.env);
    if (options.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    const corpus = await ensureScanCorpus(options.scanMb);
    process.stdout.write(
      `${corpus.dir}: ${corpus.manifest.files.length} files, ${num(mib(corpus.manifest.bytes), 1)} MiB, ` +
        `${corpus.manifest.planted.length} planted keys, ${corpus.manifest.decoys.length} decoys` +
        `${corpus.generatedSeconds === null ? ' (cached)' : ` (generated in ${corpus.generatedSeconds.toFixed(1)} s)`}\n`,
    );
  })().catch((err: unknown) => {
    process.stderr.write(`${err instanceof BenchUsageError ? `${err.message}\n\n${USAGE}` : String(err)}\n`);
    process.exitCode = err instanceof BenchUsageError ? 2 : 1;
  });
}
