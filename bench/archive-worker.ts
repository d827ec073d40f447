import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { FILE_WINDOW_MS, type PlannedFile } from './archive-plan';
import { RecordFactory } from './cloudtrail-records';
import { Prng } from './prng';

/**
 * Builds archive files in a worker thread (see generate-archive.ts): record generation, JSON.stringify and
 * gzip are all CPU-bound, so one worker per core is what makes a 2 GiB archive take about a minute per GiB
 * instead of several. Everything a file holds follows from its plan entry and the identity seed, so which
 * worker builds it does not matter.
 */

export interface ArchiveWorkerData {
  archiveDir: string;
  identitySeed: number;
  /** Mean serialized background record, to space record times over the file's 5 minutes. */
  averageRecordBytes: number;
}

export interface ArchiveWorkerJob {
  index: number;
  file: PlannedFile;
}

export interface ArchiveWorkerResult {
  index: number;
  records: number;
  uncompressedBytes: number;
  compressedBytes: number;
}

/** Builds one file's text: background records in time order with the planned key events among them. */
export function buildFileText(
  factory: RecordFactory,
  file: PlannedFile,
  averageRecordBytes: number,
): { text: string; records: number } {
  const rng = new Prng(file.seed);
  const start = file.end - FILE_WINDOW_MS;
  const expected = Math.max(1, file.targetBytes / averageRecordBytes);
  const parts: string[] = [];
  let bytes = 0;
  let next = 0;
  for (let k = 0; bytes < file.targetBytes; k++) {
    const at = Math.min(
      file.end - 1,
      Math.max(start, start + Math.floor((k * FILE_WINDOW_MS) / expected) + rng.between(-2000, 2000)),
    );
    for (let e = file.keyEvents[next]; e !== undefined && e.at <= at; e = file.keyEvents[++next]) {
      parts.push(e.json);
      bytes += e.json.length + 1;
    }
    const json = JSON.stringify(factory.backgroundRecord(at, file.region, rng));
    parts.push(json);
    bytes += json.length + 1;
  }
  for (; next < file.keyEvents.length; next++) parts.push((file.keyEvents[next] as { json: string }).json);
  return { text: `{"Records":[${parts.join(',')}]}`, records: parts.length };
}

function serve(): void {
  const port = parentPort;
  if (!port) throw new Error('archive-worker.ts runs as a worker thread');
  const data = workerData as ArchiveWorkerData;
  const factory = new RecordFactory(new Prng(data.identitySeed));
  port.on('message', (job: ArchiveWorkerJob) => {
    const { text, records } = buildFileText(factory, job.file, data.averageRecordBytes);
    // Level 6: zlib's (and gzip's) default, taken to be what CloudTrail delivers.
    const gz = gzipSync(text, { level: 6 });
    const absolute = join(data.archiveDir, job.file.path);
    mkdirSync(dirname(absolute), { recursive: true });
    writeFileSync(absolute, gz);
    const result: ArchiveWorkerResult = {
      index: job.index,
      records,
      uncompressedBytes: Buffer.byteLength(text),
      compressedBytes: gz.length,
    };
    port.postMessage(result);
  });
}

if (parentPort) serve();
