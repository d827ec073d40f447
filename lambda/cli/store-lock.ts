import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * One `keyguard replay` (or `audit` on the store) per store at a time. The embedded DynamoDB keeps its data in
 * LevelDB, which a second process cannot open; dynalite then fails every request with an uncaught error. A lock
 * file holding the owner's pid turns that into a clear message up front. A lock left by a process that no longer
 * runs is taken over.
 *
 * Every step is atomic, so that any number of processes starting at once on a free or stale lock end with
 * exactly one holder:
 * - the lock appears whole: its content is written to a private temporary file that is then hard-linked to the
 *   lock's name (`link` fails with EEXIST when the name exists), so no reader ever sees an empty or half-written
 *   lock (which would read as "pid NaN");
 * - a stale lock is removed only by the holder of a second, short-lived lock (`<lock>.takeover`, taken the same
 *   way), after judging it stale again: two racers can never both remove a lock, nor one remove the lock the
 *   other just took. A takeover lock left by a process killed in that
 *   window of microseconds is removed once it is older than TAKEOVER_STALE_MS.
 */

export const LOCK_FILE = 'keyguard-replay.lock';
/** A takeover lock this old belongs to a process that died while holding it (holding it takes microseconds). */
const TAKEOVER_STALE_MS = 10_000;
/** How long a process waits for another one's takeover to finish before giving up. */
const TAKEOVER_WAIT_MS = 5_000;

export class StoreBusyError extends Error {
  constructor(
    readonly lockFile: string,
    /** The holder's pid; null when the lock could not be read (another process is taking it over). */
    readonly pid: number | null,
  ) {
    super(
      pid === null
        ? `in use: another keyguard is taking over its lock ${lockFile}; try again`
        : `in use by process ${pid} (if no keyguard runs, delete ${lockFile})`,
    );
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

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

/** Creates `file` holding `content`, atomically and whole, or returns false when it exists. */
function createWhole(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if (codeOf(err) === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The lock's holder and identity; null when there is no lock. A content that is no pid reads as pid null. */
function readLock(file: string): { pid: number | null; mtimeMs: number } | null {
  try {
    const st = statSync(file);
    const text = readFileSync(file, 'utf8');
    const m = /^\s*(\d{1,10})\s*$/.exec(text);
    const pid = m ? Number(m[1]) : null;
    return { pid: pid !== null && pid > 0 ? pid : null, mtimeMs: st.mtimeMs };
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/** A lock whose pid names a running process (this one included) is held; any other lock is stale. */
function isHeld(lock: { pid: number | null }): boolean {
  return lock.pid !== null && isRunning(lock.pid);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Takes the store's lock (creating the directory); returns the function that releases it. */
export function lockStore(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  const takeover = `${file}.takeover`;
  const mine = `${process.pid}\n`;
  const deadline = Date.now() + TAKEOVER_WAIT_MS;
  for (;;) {
    if (createWhole(file, mine)) {
      let released = false;
      return () => {
        if (released) return;
        released = true;
        // Only our own lock is removed (a lock file deleted by hand and taken by another process is theirs).
        const now = readLock(file);
        if (now && now.pid === process.pid) rmSync(file, { force: true });
      };
    }
    const held = readLock(file);
    if (held === null) continue; // Released meanwhile: try again.
    if (isHeld(held)) throw new StoreBusyError(file, held.pid as number);
    // Stale (its process is gone, or it holds no pid): only the holder of the takeover lock may remove it, after
    // judging it stale again. While a stale lock exists nobody can create one, and nobody else may remove it, so
    // what is removed is the stale lock, never one another process has just taken.
    if (createWhole(takeover, mine)) {
      try {
        const again = readLock(file);
        if (again && !isHeld(again)) rmSync(file, { force: true });
      } finally {
        rmSync(takeover, { force: true });
      }
      continue;
    }
    const other = readLock(takeover);
    if (other && Date.now() - other.mtimeMs > TAKEOVER_STALE_MS) rmSync(takeover, { force: true });
    if (Date.now() > deadline) throw new StoreBusyError(file, null);
    sleepMs(2);
  }
}
