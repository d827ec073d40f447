import { parentPort, workerData } from 'node:worker_threads';
import { type FileScan, type ScanFilter, scanFile } from './archive-scan';
import { type InputFile, messageOf } from './inputs';

/**
 * A replay scan worker: scans the files it is sent (read, gunzip, cheap test, parse the candidates) and posts
 * each result back. It holds one file at a time per message and keeps nothing between files.
 */

export interface ScanRequest {
  id: number;
  file: InputFile;
}

export type ScanResponse = { id: number; scan: FileScan } | { id: number; error: string };

const port = parentPort;
if (port === null) throw new Error('archive-worker-main must run in a worker thread');
const filter = workerData as ScanFilter;

port.on('message', (request: ScanRequest) => {
  scanFile(request.file, filter).then(
    (scan) => port.postMessage({ id: request.id, scan } satisfies ScanResponse),
    (err: unknown) => port.postMessage({ id: request.id, error: messageOf(err) } satisfies ScanResponse),
  );
});
