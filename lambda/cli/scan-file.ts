import { closeSync, openSync, readSync } from 'node:fs';
import { type ByteEncoding, ByteLeakScanner } from '../domain/leak-bytes';
import type { StreamFinding } from '../domain/leak-stream';

/**
 * One file scanned for keys, the same way in the main thread and in a scan worker (scan-pool.ts): read in chunks
 * with synchronous calls into one buffer reused for every file (a round trip through libuv's thread pool per read
 * costs more than the read itself on trees of small files), searched as bytes (domain/leak-bytes.ts).
 */

export interface FileScanSetup {
  /** ISO time at which short-term keys are judged expired. */
  now: string;
  /** Bytes read at a time. */
  chunkSize: number;
  /** Characters kept between chunks (default: the longest key's text). */
  overlap?: number;
}

export interface FileScanResult {
  findings: StreamFinding[];
  encoding: ByteEncoding | undefined;
  invalidUtf8: number;
}

export class FileScanner {
  private buffer: Buffer | undefined;
  private readonly now: Date;

  constructor(private readonly setup: FileScanSetup) {
    this.now = new Date(setup.now);
  }

  newScan(): ByteLeakScanner {
    const { overlap } = this.setup;
    return new ByteLeakScanner(overlap === undefined ? { now: this.now } : { now: this.now, overlap });
  }

  /**
   * Scans `file`; `take` receives findings as they complete (a large file's first keys before its end). Throws
   * what opening or reading throws.
   */
  scan(file: string, take: (findings: StreamFinding[]) => void): FileScanResult {
    const fd = openSync(file, 'r');
    try {
      const scan = this.newScan();
      this.buffer ??= Buffer.allocUnsafe(this.setup.chunkSize);
      const buf = this.buffer;
      for (;;) {
        const bytesRead = readSync(fd, buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        const found = scan.write(buf.subarray(0, bytesRead));
        if (found.length > 0) take(found);
      }
      const found = scan.end();
      if (found.length > 0) take(found);
      return { findings: [], encoding: scan.encoding, invalidUtf8: scan.invalidUtf8 };
    } finally {
      closeSync(fd);
    }
  }
}
