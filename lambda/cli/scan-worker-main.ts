import { parentPort, workerData } from 'node:worker_threads';
import type { StreamFinding } from '../domain/leak-stream';
import { FileScanner, type FileScanResult, type FileScanSetup } from './scan-file';

/**
 * A `keyguard scan --jobs N` worker: scans the files it is sent, one at a time in the order sent, and posts each
 * result back (findings hold no key: fingerprints and redacted forms only). Started by scan-pool.ts.
 */

export interface ScanFileRequest {
  id: number;
  file: string;
}

export type ScanFileResponse =
  | { kind: 'result'; id: number; result: FileScanResult }
  | { kind: 'error'; id: number; error: unknown };

const port = parentPort;
if (port === null) throw new Error('scan-worker-main must run in a worker thread');
const scanner = new FileScanner(workerData as FileScanSetup);

port.on('message', (request: ScanFileRequest) => {
  let response: ScanFileResponse;
  try {
    const findings: StreamFinding[] = [];
    const result = scanner.scan(request.file, (found) => findings.push(...found));
    response = { kind: 'result', id: request.id, result: { ...result, findings } };
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    response = {
      kind: 'error',
      id: request.id,
      error: { code: e?.code, message: e?.message ?? String(err) },
    };
  }
  port.postMessage(response);
});
