import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type FileScan, parseCounter, type ScanFilter, scanCounter, scanFile } from './archive-scan';
import type { ScanRequest, ScanResponse } from './archive-worker-main';
import type { InputFile } from './inputs';

/**
 * Scans replay's input files on several cores: decompression, the cheap test and parsing run in worker
 * threads, one file per task. Results come back in input order whatever finishes first, so the output (and
 * every problem line) is the same for any number of jobs. Memory is bounded by the files in flight: at most
 * two per worker, plus the results waiting for an earlier file.
 */

/** A worker failed (not a bad input: those are problems in the scan). */
export class ScanWorkerError extends Error {}

const WORKER_ENTRY = join(__dirname, 'archive-worker.js');
/** Files queued per worker, so a worker never waits for the main thread between two files. */
const PER_WORKER = 2;
/** In-process (--jobs 1): files read and decompressed ahead of the one being scanned (overlapped I/O). */
const READ_AHEAD = 2;

export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

export interface ScannedFile {
  file: InputFile;
  scan: FileScan;
}

async function* inProcess(files: readonly InputFile[], filter: ScanFilter): AsyncGenerator<ScannedFile> {
  const pending: Promise<ScannedFile>[] = [];
  let next = 0;
  const fill = () => {
    while (pending.length < READ_AHEAD && next < files.length) {
      const file = files[next++] as InputFile;
      pending.push(scanFile(file, filter).then((scan) => ({ file, scan })));
    }
  };
  fill();
  for (let p = pending.shift(); p; p = pending.shift()) {
    const done = await p;
    fill();
    yield done;
  }
}

async function* withWorkers(
  files: readonly InputFile[],
  filter: ScanFilter,
  jobs: number,
): AsyncGenerator<ScannedFile> {
  const count = Math.min(jobs, files.length);
  const workers: Worker[] = [];
  const load: number[] = [];
  const done = new Map<number, FileScan>();
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  let dispatched = 0;
  let yielded = 0;
  const window = count * PER_WORKER;

  const dispatch = () => {
    for (let w = 0; w < workers.length; w++) {
      while ((load[w] as number) < PER_WORKER && dispatched < files.length && dispatched - yielded < window) {
        const request: ScanRequest = { id: dispatched, file: files[dispatched] as InputFile };
        (workers[w] as Worker).postMessage(request);
        load[w] = (load[w] as number) + 1;
        dispatched += 1;
      }
    }
  };

  try {
    for (let w = 0; w < count; w++) {
      const worker = new Worker(WORKER_ENTRY, { workerData: filter, execArgv: [] });
      worker.on('message', (response: ScanResponse) => {
        load[w] = (load[w] as number) - 1;
        if ('error' in response) {
          failure ??= new ScanWorkerError(`scanning ${files[response.id]?.display}: ${response.error}`);
        } else {
          parseCounter.records += response.scan.parsed;
          scanCounter.files += 1;
          done.set(response.id, response.scan);
        }
        signal();
      });
      worker.on('error', (err) => {
        failure ??= new ScanWorkerError(`a scan worker failed: ${err.message}`);
        signal();
      });
      worker.on('exit', (code) => {
        if (yielded < files.length) failure ??= new ScanWorkerError(`a scan worker exited with code ${code}`);
        signal();
      });
      workers.push(worker);
      load.push(0);
    }
    dispatch();
    while (yielded < files.length) {
      if (failure) throw failure;
      const scan = done.get(yielded);
      if (scan === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      done.delete(yielded);
      const file = files[yielded] as InputFile;
      yielded += 1;
      dispatch();
      yield { file, scan };
    }
  } finally {
    yielded = files.length;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * Scans every file, yielding results in input order. `jobs` 1 scans in this thread; more starts that many
 * worker threads (never more than there are files).
 */
export function scanFiles(
  files: readonly InputFile[],
  filter: ScanFilter,
  jobs: number,
): AsyncGenerator<ScannedFile> {
  return jobs <= 1 || files.length <= 1 ? inProcess(files, filter) : withWorkers(files, filter, jobs);
}
