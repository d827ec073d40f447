import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FileScanResult, FileScanSetup } from './scan-file';
import type { ScanFileRequest, ScanFileResponse } from './scan-worker-main';

/**
 * Scans files on worker threads (`keyguard scan --jobs N`), results handed back in the files' order whatever
 * finishes first, so the output is the same for any number of jobs. Each worker has at most PER_WORKER files in
 * flight, given as workers answer (a large file does not hold up the others), and results wait for an earlier
 * file at most AHEAD files past it (memory stays bounded by those files' findings).
 */

/**
 * The worker's entry beside this code: from source lambda/cli/scan-worker.js (registers tsx), from the built CLI
 * (whose __dirname is dist/) dist/scan-worker.js, its own bundle (scripts/build-cli.mjs).
 */
const WORKER_ENTRY = join(__dirname, 'scan-worker.js');
const PER_WORKER = 2;
const AHEAD = 512;

export type PooledScan = { ok: true; result: FileScanResult } | { ok: false; error: unknown };

export async function scanFilesOnWorkers(
  files: readonly string[],
  jobs: number,
  setup: FileScanSetup,
  each: (index: number, scan: PooledScan) => void,
): Promise<void> {
  const workers = Array.from({ length: Math.min(jobs, files.length) }, () => {
    const worker = new Worker(WORKER_ENTRY, { workerData: setup });
    worker.unref();
    return worker;
  });
  const done = new Map<number, PooledScan>();
  let next = 0;
  let emitted = 0;
  const inFlight = new Map<Worker, number>();
  try {
    await new Promise<void>((resolve, reject) => {
      const feed = (worker: Worker) => {
        while ((inFlight.get(worker) ?? 0) < PER_WORKER && next < files.length && next < emitted + AHEAD) {
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
        if (emitted === files.length) resolve();
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
            reject(err);
            return;
          }
          for (const w of workers) feed(w);
        });
        worker.on('error', reject);
        worker.on('exit', (code) => {
          if (emitted < files.length) reject(new Error(`a scan worker exited with code ${code}`));
        });
      }
      if (files.length === 0) resolve();
      for (const worker of workers) feed(worker);
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
