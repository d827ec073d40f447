import {
  BENCH_ACCOUNT,
  HOME_REGION,
  KEY_EVENTS_PER_CYCLE,
  type PlantedKeyEvent,
  RecordFactory,
} from './cloudtrail-records';
import { Prng } from './prng';

/**
 * The plan of a generated CloudTrail archive: which log files exist (region, delivery time, size), where each
 * Bedrock-key event goes, and the seed of every file. Made on one thread before any file is written, so the
 * archive is byte-for-byte the same however many workers then build the files and in whatever order.
 *
 * Shape, chosen to look like a real trail and to exercise what a replay over S3 has to handle:
 * - S3's delivery layout `AWSLogs/<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/<account>_CloudTrail_<region>_<yyyymmdd>T<hhmm>Z_<16 alnum>.json.gz`,
 *   over 33 days that cross a month boundary (14 October to 15 November 2026), in four regions;
 * - IAM events, the Bedrock-key ones included, only in us-east-1 (IAM is global and records there);
 * - delivery times on CloudTrail's 5-minute grid, each file holding the 5 minutes before its time;
 * - file sizes drawn log-normally around 768 KiB uncompressed (clamped to 128 KiB..6 MiB before scaling),
 *   busier in the (UTC) afternoon. A real trail delivers a file per region about every 5 minutes, so 2 GiB
 *   over 33 days in four regions would be ~70 KiB files; we keep realistic file sizes and let the grid be
 *   sparse instead: per-file cost (open, gunzip set-up, parse) then weighs as it does in a busy account.
 */

export const ARCHIVE_SEED = 0x6b657967; // "keyg"
export const ARCHIVE_START = Date.UTC(2026, 9, 14);
export const ARCHIVE_DAYS = 33;
export const FILE_WINDOW_MS = 5 * 60_000;
/** Share of the archive's bytes per region; IAM (and so every key event) is only in the first. */
export const ARCHIVE_REGIONS: ReadonlyArray<readonly [string, number]> = [
  [HOME_REGION, 0.55],
  ['us-west-2', 0.2],
  ['eu-west-1', 0.15],
  ['ap-northeast-1', 0.1],
];
const MEDIAN_FILE_BYTES = 768 * 1024;
const FILE_SIGMA = 0.7;
const MIN_FILE_BYTES = 128 * 1024;
const MAX_FILE_BYTES = 6 * 1024 * 1024;
/** Key-scenario cycles per MiB of archive: 2 GiB gets 32 cycles (352 events), within 1..40. */
const MIB_PER_CYCLE = 64;
const MAX_CYCLES = 40;

export interface PlannedKeyEvent {
  at: number;
  /** The record, serialized on the planning thread (the scenario is stateful, so it runs in time order). */
  json: string;
}

export interface PlannedFile {
  /** Relative to the archive directory. */
  path: string;
  region: string;
  /** Delivery time in the file name; its records fall in the 5 minutes before. */
  end: number;
  /** Background records are added until the file reaches this many bytes. */
  targetBytes: number;
  /** Seed of the file's own PRNG. */
  seed: number;
  keyEvents: PlannedKeyEvent[];
}

export interface ArchivePlan {
  files: PlannedFile[];
  keyEvents: number;
  /** Key events replay counts as relevant (the jq name filter also selects the others). */
  expectedRelevant: number;
  expectedDecisions: number;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

export function archivePath(region: string, end: number, suffix: string): string {
  const d = new Date(end);
  const y = d.getUTCFullYear();
  const m = pad2(d.getUTCMonth() + 1);
  const day = pad2(d.getUTCDate());
  return (
    `AWSLogs/${BENCH_ACCOUNT}/CloudTrail/${region}/${y}/${m}/${day}/` +
    `${BENCH_ACCOUNT}_CloudTrail_${region}_${y}${m}${day}T${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}Z_${suffix}.json.gz`
  );
}

/** A standard normal draw (Box-Muller), for log-normal file sizes. */
function gaussian(rng: Prng): number {
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Relative traffic by UTC hour: quiet at night, busiest in the afternoon. */
function diurnal(end: number): number {
  const hour = new Date(end).getUTCHours();
  return 0.55 + 0.9 * Math.max(0, Math.sin(((hour - 7) / 24) * 2 * Math.PI));
}

function fileSeed(index: number): number {
  return (ARCHIVE_SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
}

export function keyEventCount(targetMb: number): number {
  const cycles = Math.min(MAX_CYCLES, Math.max(1, Math.round(targetMb / MIB_PER_CYCLE)));
  return cycles * KEY_EVENTS_PER_CYCLE;
}

/** Plans an archive of at least `targetMb` MiB uncompressed. */
export function planArchive(targetMb: number): ArchivePlan {
  const rng = new Prng(ARCHIVE_SEED + 2);
  const names = new Prng(ARCHIVE_SEED + 1);
  const targetBytes = targetMb * 1024 * 1024;
  const slots = (ARCHIVE_DAYS * 86_400_000) / FILE_WINDOW_MS;
  const meanBytes = MEDIAN_FILE_BYTES * Math.exp((FILE_SIGMA * FILE_SIGMA) / 2);
  const files: Omit<PlannedFile, 'seed' | 'path'>[] = [];

  for (const [region, share] of ARCHIVE_REGIONS) {
    const budget = targetBytes * share;
    const n = Math.max(1, Math.min(slots, Math.ceil(budget / meanBytes)));
    const drawn: Array<{ end: number; bytes: number }> = [];
    for (let i = 0; i < n; i++) {
      // Stratified over the span: sorted, at most one file per slot and region.
      const slot = Math.floor(((i + rng.next()) * slots) / n);
      const end = ARCHIVE_START + (slot + 1) * FILE_WINDOW_MS;
      const size = MEDIAN_FILE_BYTES * Math.exp(FILE_SIGMA * gaussian(rng));
      drawn.push({ end, bytes: Math.min(MAX_FILE_BYTES, Math.max(MIN_FILE_BYTES, size)) * diurnal(end) });
    }
    // Scaled so the region holds its share exactly (rounding up: the archive never falls short of the target).
    const scale = budget / drawn.reduce((a, f) => a + f.bytes, 0);
    for (const f of drawn) {
      files.push({ region, end: f.end, targetBytes: Math.ceil(f.bytes * scale), keyEvents: [] });
    }
  }
  files.sort((a, b) => a.end - b.end || a.region.localeCompare(b.region));

  // Key events: spread evenly over the us-east-1 files, at increasing times at least a second apart, so
  // replay's time order is the scenario's order.
  const home = files.filter((f) => f.region === HOME_REGION);
  const total = keyEventCount(targetMb);
  const times: Array<{ file: (typeof files)[number]; at: number }> = [];
  let last = 0;
  for (let j = 0; j < total; j++) {
    const file = home[Math.floor(((j + 0.5) * home.length) / total)] as (typeof files)[number];
    const start = file.end - FILE_WINDOW_MS;
    let at = start + Math.floor(rng.next() * (FILE_WINDOW_MS - 60_000));
    if (at < last + 1000) at = last + 1000;
    if (at >= file.end) throw new RangeError('too many key events for the archive: raise its size');
    times.push({ file, at });
    last = at;
  }
  const factory = new RecordFactory(new Prng(ARCHIVE_SEED));
  let expectedRelevant = 0;
  let expectedDecisions = 0;
  for (const { file, at } of times) {
    const planted: PlantedKeyEvent = factory.nextKeyEvent(at);
    file.keyEvents.push({ at, json: JSON.stringify(planted.record) });
    expectedDecisions += planted.decisions;
    if (planted.relevant) expectedRelevant += 1;
  }

  return {
    files: files.map((f, i) => ({
      ...f,
      path: archivePath(f.region, f.end, names.alnum(16)),
      seed: fileSeed(i),
    })),
    keyEvents: total,
    expectedRelevant,
    expectedDecisions,
  };
}
