import { parentPort, workerData } from 'node:worker_threads';
import { type FileScan, type ScanFilter, scanFile } from './archive-scan';
import { InflateBuffer, type InputFile, messageOf, type ReadLimits } from './inputs';

/**
 * A replay scan worker: scans the files it is sent (read, gunzip, cheap test, parse the candidates) one at a
 * time, in the order sent, and posts each result back. It keeps nothing between files. One at a time, so that
 * whatever goes wrong (a result that cannot be passed back, a crash, a stall) is known to concern the first
 * file the pool is waiting for, and the files queued behind it can be given to another worker untouched.
 */

export interface ScanRequest {
  id: number;
  file: InputFile;
}

/** What a worker is started with (workerData). */
export interface WorkerSetup {
  filter: ScanFilter;
  limits: ReadLimits;
}

/** `progress`: the file is being read (for the pool's watchdog), at most every PROGRESS_MS. */
export type ScanResponse =
  | { kind: 'progress'; id: number }
  | { kind: 'result'; id: number; scan: FileScan }
  | { kind: 'error'; id: number; error: string };

const PROGRESS_MS = 250;

const port = parentPort;
if (port === null) throw new Error('archive-worker-main must run in a worker thread');
const { filter, limits } = workerData as WorkerSetup;
/** Files are scanned one at a time (see below): each is inflated into the memory of the one before. */
const inflateBuffer = new InflateBuffer();

async function scanOne(request: ScanRequest, to: NonNullable<typeof port>): Promise<void> {
  let last = 0;
  const onProgress = () => {
    const now = Date.now();
    if (now - last < PROGRESS_MS) return;
    last = now;
    to.postMessage({ kind: 'progress', id: request.id } satisfies ScanResponse);
  };
  let response: ScanResponse;
  try {
    response = {
      kind: 'result',
      id: request.id,
      scan: await scanFile(request.file, filter, { limits, onProgress, syncRead: true, inflateBuffer }),
    };
  } catch (err) {
    response = { kind: 'error', id: request.id, error: messageOf(err) };
  }
  try {
    to.postMessage(response);
  } catch (err) {
    // A result that cannot be cloned: the file fails, the worker goes on.
    to.postMessage({ kind: 'error', id: request.id, error: messageOf(err) } satisfies ScanResponse);
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (request: ScanRequest) => {
  queue = queue.then(() => scanOne(request, port));
});
