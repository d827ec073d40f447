import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * One `keyguard replay` per store at a time. The embedded DynamoDB keeps its data in LevelDB, which a second
 * process cannot open; dynalite then fails every request with an uncaught error. A lock file holding the
 * owner's pid turns that into a clear message up front. A lock left by a process that no longer runs is
 * taken over.
 */

export const LOCK_FILE = 'keyguard-replay.lock';

export class StoreBusyError extends Error {
  constructor(
    readonly lockFile: string,
    readonly pid: number,
  ) {
    super(`in use by process ${pid} (if no keyguard runs, delete ${lockFile})`);
    this.name = 'StoreBusyError';
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

/** Takes the store's lock (creating the directory); returns the function that releases it. */
export function lockStore(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EEXIST') throw err;
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(readFileSync(file, 'utf8'), 10);
    } catch {
      // Removed meanwhile: try again.
    }
    if (Number.isInteger(holder) && holder > 0 && isRunning(holder)) throw new StoreBusyError(file, holder);
    rmSync(file, { force: true });
  }
  throw new StoreBusyError(file, Number.NaN);
}
