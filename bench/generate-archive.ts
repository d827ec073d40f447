import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { readCachedManifest } from './cache';
import {
  BENCH_ACCOUNT,
  type CloudTrailJson,
  KEY_EVENTS_PER_CYCLE,
  RecordFactory,
} from './cloudtrail-records';
import { BenchUsageError, parseBenchOptions, USAGE } from './options';
import { Prng } from './prng';
import { mib, num, progress } from './report';

/**
 * A deterministic CloudTrail archive in S3's delivery layout
 * (`AWSLogs/<account>/CloudTrail/us-east-1/2026/11/<dd>/<account>_CloudTrail_us-east-1_<yyyymmdd>T<hhmm>Z_<16 alnum>.json.gz`),
 * each file `{"Records":[...]}` of a few MiB, with Bedrock-key events about once per 50,000 records.
 * Cached under bench/.data and regenerated only when missing, incomplete or generated with other parameters.
 *
 * Standalone: `npx tsx bench/generate-archive.ts [--archive-mb N]`.
 */

/** Bump when the generated content changes, so cached archives are rebuilt. */
const GENERATOR_VERSION = 1;
const SEED = 0x6b657967; // "keyg"
/** Uncompressed size of one log file (CloudTrail writes files of up to a few MiB). */
const FILE_TARGET_BYTES = 4 * 1024 * 1024;
/** How rare key events are: one per this many records, unless the archive is too small for one full cycle. */
const KEY_EVENT_EVERY = 50_000;
/** Records of one file span the five minutes before the time in its name, as CloudTrail delivers them. */
const FILE_WINDOW_MS = 5 * 60_000;
const FIRST_FILE_END = Date.UTC(2026, 10, 1, 0, 5);
/** Files are spread over 1–9 November. */
const SPAN_MS = 9 * 86_400_000;
/** Gzip jobs in flight (zlib runs them on the libuv pool, overlapping with generation on the main thread). */
const MAX_PENDING_GZIP = 2;

export const DATA_DIR = resolve(__dirname, '.data');
const ARCHIVE_DIR = join(DATA_DIR, 'cloudtrail-archive');
/** Beside the archive, not in it: `keyguard replay <dir>` would try to read a JSON file inside. */
const MANIFEST_FILE = join(DATA_DIR, 'cloudtrail-archive.manifest.json');

export interface ArchiveFile {
  /** Relative to the archive directory. */
  path: string;
  records: number;
  uncompressedBytes: number;
  compressedBytes: number;
}

export interface ArchiveManifest {
  generatorVersion: number;
  seed: number;
  targetMb: number;
  files: ArchiveFile[];
  records: number;
  uncompressedBytes: number;
  compressedBytes: number;
  keyEvents: number;
  /** Decisions `keyguard replay` should print for the key events (see cloudtrail-records.ts). */
  expectedDecisions: number;
  keyEventEvery: number;
}

export interface Archive {
  /** The directory to pass to `keyguard replay` (holds `AWSLogs/`). */
  dir: string;
  manifest: ArchiveManifest;
  /** Absolute paths of the log files, in name order. */
  files: string[];
  /** Seconds spent generating, or null when the cached archive was used. */
  generatedSeconds: number | null;
}

const gzipAsync = promisify(gzip);

function readCached(targetMb: number): Promise<ArchiveManifest | null> {
  return readCachedManifest<ArchiveManifest>(
    MANIFEST_FILE,
    ARCHIVE_DIR,
    { generatorVersion: GENERATOR_VERSION, seed: SEED, targetMb },
    (f) => f.compressedBytes,
  );
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

function fileName(end: number, suffix: string): string {
  const d = new Date(end);
  const day = `${d.getUTCFullYear()}${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}`;
  const dir = `AWSLogs/${BENCH_ACCOUNT}/CloudTrail/us-east-1/${d.getUTCFullYear()}/${pad2(d.getUTCMonth() + 1)}/${pad2(d.getUTCDate())}`;
  return `${dir}/${BENCH_ACCOUNT}_CloudTrail_us-east-1_${day}T${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}Z_${suffix}.json.gz`;
}

/** Average serialized record size, from a sample drawn with its own PRNG (the archive's stream is untouched). */
function averageRecordBytes(): number {
  const factory = new RecordFactory(new Prng(SEED ^ 0x5a5a5a5a));
  let bytes = 0;
  const n = 4000;
  for (let i = 0; i < n; i++) bytes += JSON.stringify(factory.backgroundRecord(FIRST_FILE_END)).length + 1;
  return bytes / n;
}

async function generate(targetMb: number): Promise<ArchiveManifest> {
  await rm(MANIFEST_FILE, { force: true });
  await rm(ARCHIVE_DIR, { recursive: true, force: true });
  await mkdir(ARCHIVE_DIR, { recursive: true });

  const targetBytes = targetMb * 1024 * 1024;
  const fileCount = Math.max(1, Math.ceil(targetBytes / FILE_TARGET_BYTES));
  const avgBytes = averageRecordBytes();
  const recordsPerFile = FILE_TARGET_BYTES / avgBytes;
  const estimatedRecords = targetBytes / avgBytes;
  // Rare, but at least one full cycle of the scenario fits in a small archive.
  const keyEventEvery = Math.max(
    100,
    Math.min(KEY_EVENT_EVERY, Math.floor((estimatedRecords * 0.9) / KEY_EVENTS_PER_CYCLE)),
  );
  const stepMs = Math.max(FILE_WINDOW_MS, Math.floor(SPAN_MS / fileCount / FILE_WINDOW_MS) * FILE_WINDOW_MS);

  const rng = new Prng(SEED);
  const names = new Prng(SEED + 1);
  const factory = new RecordFactory(rng);
  const files: ArchiveFile[] = [];
  const pending = new Set<Promise<void>>();
  let failure: unknown = null;
  let records = 0;
  let uncompressed = 0;
  let keyEvents = 0;
  let expectedDecisions = 0;

  for (let i = 0; uncompressed < targetBytes; i++) {
    const end = FIRST_FILE_END + i * stepMs;
    const start = end - FILE_WINDOW_MS;
    const parts: string[] = [];
    let bytes = 0;
    for (let k = 0; bytes < FILE_TARGET_BYTES; k++) {
      const jitter = rng.between(-2000, 2000);
      const at = Math.min(
        end - 1,
        Math.max(start, start + Math.floor((k * FILE_WINDOW_MS) / recordsPerFile) + jitter),
      );
      let record: CloudTrailJson;
      if (records % keyEventEvery === keyEventEvery >>> 1) {
        const key = factory.nextKeyEvent(at);
        record = key.record;
        keyEvents += 1;
        expectedDecisions += key.decisions;
      } else {
        record = factory.backgroundRecord(at);
      }
      const json = JSON.stringify(record);
      parts.push(json);
      bytes += json.length + 1;
      records += 1;
    }
    const text = `{"Records":[${parts.join(',')}]}`;
    const entry: ArchiveFile = {
      path: fileName(end, names.alnum(16)),
      records: parts.length,
      uncompressedBytes: Buffer.byteLength(text),
      compressedBytes: 0,
    };
    files.push(entry);
    uncompressed += entry.uncompressedBytes;

    const job: Promise<void> = (async () => {
      const gz = await gzipAsync(text);
      const absolute = join(ARCHIVE_DIR, entry.path);
      await mkdir(dirname(absolute), { recursive: true });
      await writeFile(absolute, gz);
      entry.compressedBytes = gz.length;
    })()
      .catch((err: unknown) => {
        failure ??= err;
      })
      .finally(() => pending.delete(job));
    pending.add(job);
    if (pending.size >= MAX_PENDING_GZIP) await Promise.race(pending);
    if (failure !== null) throw failure;
    if ((i + 1) % 10 === 0) progress(`  archive: ${i + 1} files, ${num(mib(uncompressed))} MiB`);
  }
  await Promise.all(pending);
  if (failure !== null) throw failure;

  const manifest: ArchiveManifest = {
    generatorVersion: GENERATOR_VERSION,
    seed: SEED,
    targetMb,
    files,
    records,
    uncompressedBytes: uncompressed,
    compressedBytes: files.reduce((a, f) => a + f.compressedBytes, 0),
    keyEvents,
    expectedDecisions,
    keyEventEvery,
  };
  // Written last: an interrupted run leaves no manifest, so the next run starts over.
  await writeFile(MANIFEST_FILE, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Returns the cached archive for `targetMb`, generating it first when needed. */
export async function ensureArchive(targetMb: number): Promise<Archive> {
  let manifest = await readCached(targetMb);
  let generatedSeconds: number | null = null;
  if (!manifest) {
    progress(`generating a ${targetMb} MiB CloudTrail archive in ${ARCHIVE_DIR} (cached for later runs)`);
    const t0 = performance.now();
    manifest = await generate(targetMb);
    generatedSeconds = (performance.now() - t0) / 1000;
  }
  return {
    dir: ARCHIVE_DIR,
    manifest,
    files: manifest.files.map((f) => join(ARCHIVE_DIR, f.path)),
    generatedSeconds,
  };
}

async function main(): Promise<void> {
  const options = parseBenchOptions(process.argv.slice(2), process.env);
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const archive = await ensureArchive(options.archiveMb);
  const m = archive.manifest;
  process.stdout.write(
    `${archive.dir}: ${m.files.length} files, ${num(m.records)} records, ` +
      `${num(mib(m.uncompressedBytes), 1)} MiB uncompressed / ${num(mib(m.compressedBytes), 1)} MiB gzip, ` +
      `${m.keyEvents} key events (${m.expectedDecisions} decisions expected)` +
      `${archive.generatedSeconds === null ? ' [cached]' : ` [generated in ${num(archive.generatedSeconds, 1)} s]`}\n`,
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof BenchUsageError ? err.message : String(err)}\n`);
    process.exitCode = err instanceof BenchUsageError ? 2 : 1;
  });
}
