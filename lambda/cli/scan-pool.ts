import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FileScanResult, FileScanSetup } from './scan-file';
import type { ScanFileRequest, ScanFileResponse } from './scan-worker-main';

/**
 * Scans files on N threads (`keyguard scan --jobs N`: this one and N - 1 workers), results handed back in the
 * files' order whatever finishes first, so the output is the same for any number of jobs. Each worker has at most PER_WORKER files in
 * flight, given as workers answer (a large file does not hold up the others), and results wait for an earlier
 * file at most AHEAD files past it (memory stays bounded by those files' findings).
 */

/**
 * The worker's entry beside this code: from source lambda/cli/scan-worker.js (registers tsx), from the built CLI
 * (whose __dirname is dist/) dist/scan-worker.js, its own bundle (scripts/build-cli.mjs).
 */
const WORKER_ENTRY = join(__dirname, 'scan-worker.js');
const PER_WORKER = 8;
const AHEAD = 512;

export type PooledScan = { ok: true; result: FileScanResult } | { ok: false; error: unknown };

/**
 * Scans `files` on `jobs` threads: this one (`local`, between answers from the workers) and `jobs - 1` workers.
 * `each` gets every file's result in the files' order.
 */
export async function scanFilesOnWorkers(
  files: readonly string[],
  jobs: number,
  setup: FileScanSetup,
  local: (file: string) => PooledScan,
  each: (index: number, scan: PooledScan) => void,
  workerEntry = WORKER_ENTRY,
): Promise<void> {
  const workers = Array.from({ length: Math.max(0, Math.min(jobs, files.length) - 1) }, () => {
    const worker = new Worker(workerEntry, { workerData: setup });
    worker.unref();
    return worker;
  });
  const done = new Map<number, PooledScan>();
  let next = 0;
  let emitted = 0;
  const inFlight = new Map<Worker, number>();
  try {
    await new Promise<void>((resolve, reject) => {
      let finished = false;
      let localBusy = false;
      const open = () => next < files.length && next < emitted + AHEAD;
      const feed = (worker: Worker) => {
        while ((inFlight.get(worker) ?? 0) < PER_WORKER && open()) {
          const request: ScanFileRequest = { id: next, file: files[next] as string };
          next += 1;
          inFlight.set(worker, (inFlight.get(worker) ?? 0) + 1);
          worker.postMessage(request);
        }
      };
      const flush = () => {
        for (let scan = done.get(emitted); scan; scan = done.get(emitted)) {
          done.delete(emitted);
          each(emitted, scan);
          emitted += 1;
        }
        if (emitted === files.length && !finished) {
          finished = true;
          resolve();
        }
      };
      const fail = (err: unknown) => {
        finished = true;
        reject(err);
      };
      // This thread scans one file per turn of the event loop, so the workers' answers are taken between files.
      const runLocal = () => {
        localBusy = false;
        if (finished || !open()) return;
        const id = next;
        next += 1;
        try {
          done.set(id, local(files[id] as string));
          flush();
          for (const w of workers) feed(w);
        } catch (err) {
          fail(err);
          return;
        }
        wakeLocal();
      };
      const wakeLocal = () => {
        if (localBusy || finished || !open()) return;
        localBusy = true;
        setImmediate(runLocal);
      };
      for (const worker of workers) {
        worker.on('message', (response: ScanFileResponse) => {
          inFlight.set(worker, (inFlight.get(worker) ?? 1) - 1);
          done.set(
            response.id,
            response.kind === 'result'
              ? { ok: true, result: response.result }
              : { ok: false, error: response.error },
          );
          try {
            flush();
          } catch (err) {
            fail(err);
            return;
          }
          for (const w of workers) feed(w);
          wakeLocal();
        });
        worker.on('error', fail);
        worker.on('exit', (code) => {
          if (!finished) fail(new Error(`a scan worker exited with code ${code}`));
        });
      }
      if (files.length === 0) {
        finished = true;
        resolve();
        return;
      }
      for (const worker of workers) feed(worker);
      wakeLocal();
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
