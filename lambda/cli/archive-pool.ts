import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  type FileScan,
  failedScan,
  parseCounter,
  type ScanFilter,
  scanCounter,
  scanFile,
} from './archive-scan';
import type { ScanRequest, ScanResponse, WorkerSetup } from './archive-worker-main';
import { DEFAULT_READ_LIMITS, type InputFile, messageOf, type ReadLimits } from './inputs';

/**
 * Scans replay's input files on several cores: decompression, the cheap test and parsing run in worker
 * threads, one file per task. Results come back in input order whatever finishes first, so the output (and
 * every problem line) is the same for any number of jobs. Memory is bounded by the files in flight: at most
 * two per worker, plus the results waiting for an earlier file (a few files' worth, or up to AHEAD_FILES small
 * ones).
 *
 * No file can stop the run: whatever goes wrong while scanning a file (its worker crashes or exits, its result
 * cannot be passed back, it makes no progress for `stallMs`) fails that file with a problem naming it, and the
 * other files are still scanned. A worker that has to be stopped is replaced; the files queued behind the one
 * it was reading are given to a worker again, unread.
 */

/**
 * The worker's entry beside this code: from source, lambda/cli/archive-worker.js (registers tsx, then loads the
 * TypeScript worker); from the built CLI, whose __dirname is dist/, dist/archive-worker.js (the worker's own
 * bundle, scripts/build-cli.mjs).
 */
const WORKER_ENTRY = join(__dirname, 'archive-worker.js');
/** Files queued per worker, so a worker never waits for the main thread between two files. */
const PER_WORKER = 2;
/**
 * How far past the file awaited (the next in input order) workers may go while the results waiting hold few
 * entries and problems: a large file then does not leave the other workers idle, nor does the main thread's
 * start (opening the store) while workers begin. Results are usually small (a file's few candidates), so the
 * memory this holds is bounded by AHEAD_ITEMS, not by the files.
 */
const AHEAD_FILES = 256;
const AHEAD_ITEMS = 10_000;
/** In-process (--jobs 1): files read and decompressed ahead of the one being scanned (overlapped I/O). */
const READ_AHEAD = 2;

/**
 * A file that shows no progress (no bytes read, no records looked at) for this long is given up on. Generous:
 * the longest step without progress is parsing one whole file (hundreds of MiB at most, a few seconds).
 */
export const DEFAULT_STALL_MS = 120_000;

export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

export interface ScannedFile {
  file: InputFile;
  scan: FileScan;
}

export interface PoolOptions {
  /** @default DEFAULT_READ_LIMITS */
  limits?: ReadLimits;
  /** @default DEFAULT_STALL_MS */
  stallMs?: number;
  /** Tests: another worker entry (a plain .js file that answers ScanRequests). */
  workerEntry?: string;
  /** Tests: another in-process scanner. */
  scan?: typeof scanFile;
}

function stallReason(ms: number): string {
  const seconds = ms / 1000;
  return `no progress for ${seconds} s (--stall-timeout): given up`;
}

/**
 * Notices files that make no progress. Time during which this thread could not run (busy with a long
 * synchronous step) does not count: no file could have shown progress then.
 */
class Watchdog {
  private readonly last = new Map<number, number>();
  private readonly period: number;
  private tickAt = Date.now();
  // Not unref'd: while a file is awaited, this timer is what guarantees the run ends.
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly stallMs: number,
    private readonly onStall: (id: number) => void,
  ) {
    this.period = Math.max(10, Math.min(1000, Math.floor(stallMs / 4)));
    this.timer = setInterval(() => this.tick(), this.period);
  }

  watch(id: number): void {
    this.last.set(id, Date.now());
  }

  progress(id: number): void {
    if (this.last.has(id)) this.last.set(id, Date.now());
  }

  forget(id: number): void {
    this.last.delete(id);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = Date.now();
    const late = now - this.tickAt - this.period;
    this.tickAt = now;
    if (late > this.period) for (const [id, t] of this.last) this.last.set(id, t + late);
    const stalled: number[] = [];
    for (const [id, t] of this.last) if (now - t > this.stallMs) stalled.push(id);
    for (const id of stalled) {
      this.last.delete(id);
      this.onStall(id);
    }
  }
}

async function* inProcess(
  files: readonly InputFile[],
  filter: ScanFilter,
  options: PoolOptions,
): AsyncGenerator<ScannedFile> {
  const scan = options.scan ?? scanFile;
  const stallMs = options.stallMs ?? DEFAULT_STALL_MS;
  const giveUp = new Map<number, () => void>();
  const watchdog = new Watchdog(stallMs, (id) => giveUp.get(id)?.());
  const start = (id: number): Promise<ScannedFile> => {
    const file = files[id] as InputFile;
    const abort = new AbortController();
    watchdog.watch(id);
    return new Promise<FileScan>((resolve) => {
      giveUp.set(id, () => {
        abort.abort();
        resolve(failedScan(file, stallReason(stallMs)));
      });
      scan(file, filter, {
        limits: options.limits ?? DEFAULT_READ_LIMITS,
        onProgress: () => watchdog.progress(id),
        signal: abort.signal,
      }).then(resolve, (err: unknown) => resolve(failedScan(file, `cannot be read: ${messageOf(err)}`)));
    })
      .finally(() => {
        watchdog.forget(id);
        giveUp.delete(id);
      })
      .then((s) => ({ file, scan: s }));
  };
  const pending: Promise<ScannedFile>[] = [];
  let next = 0;
  const fill = () => {
    while (pending.length < READ_AHEAD && next < files.length) pending.push(start(next++));
  };
  try {
    fill();
    for (let p = pending.shift(); p; p = pending.shift()) {
      const done = await p;
      fill();
      yield done;
    }
  } finally {
    watchdog.close();
  }
}

interface Slot {
  worker: Worker;
  /** Ids sent to this worker, in order: the first is the one it is reading. */
  queue: number[];
  retired: boolean;
}

async function* withWorkers(
  files: readonly InputFile[],
  filter: ScanFilter,
  jobs: number,
  options: PoolOptions,
): AsyncGenerator<ScannedFile> {
  const count = Math.min(jobs, files.length);
  const setup: WorkerSetup = { filter, limits: options.limits ?? DEFAULT_READ_LIMITS };
  const stallMs = options.stallMs ?? DEFAULT_STALL_MS;
  const done = new Map<number, FileScan>();
  /** Ids not yet sent to a worker, ascending (a file handed back by a stopped worker returns to its place). */
  const todo: number[] = files.map((_, i) => i);
  const slots: Slot[] = [];
  let closing = false;
  let wake: (() => void) | null = null;
  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  let yielded = 0;
  const window = count * PER_WORKER;

  /** Entries and problems of the results waiting in `done`. */
  let held = 0;
  const sizeOf = (scan: FileScan) => scan.entries.length + scan.problems.length;
  const finish = (id: number, scan: FileScan) => {
    watchdog.forget(id);
    if (id >= yielded && !done.has(id)) {
      done.set(id, scan);
      held += sizeOf(scan);
    }
  };
  /** A file may be sent within the window, or further ahead while the results waiting are small. */
  const mayStart = (id: number) =>
    id < yielded + window || (id < yielded + AHEAD_FILES && held < AHEAD_ITEMS);
  const fail = (id: number, reason: string) => finish(id, failedScan(files[id] as InputFile, reason));
  const requeue = (id: number) => {
    let at = 0;
    while (at < todo.length && (todo[at] as number) < id) at++;
    todo.splice(at, 0, id);
  };
  const watchHead = (slot: Slot) => {
    const head = slot.queue[0];
    if (head !== undefined) watchdog.watch(head);
  };

  const dispatch = () => {
    for (const slot of slots) {
      while (slot.queue.length < PER_WORKER && todo.length > 0 && mayStart(todo[0] as number)) {
        const id = todo.shift() as number;
        slot.worker.postMessage({ id, file: files[id] as InputFile } satisfies ScanRequest);
        slot.queue.push(id);
        if (slot.queue.length === 1) watchHead(slot);
      }
    }
  };

  /** Stops a worker: the file it was reading fails with `reason`, the files queued behind it are sent again. */
  const retire = (slot: Slot, reason: string) => {
    if (slot.retired) return;
    slot.retired = true;
    const [head, ...rest] = slot.queue;
    slot.queue = [];
    if (head !== undefined) fail(head, reason);
    for (const id of rest) requeue(id);
    void slot.worker.terminate();
    const index = slots.indexOf(slot);
    if (!closing && todo.length > 0) slots[index] = spawn();
    else slots.splice(index, 1);
    dispatch();
    signal();
  };

  const spawn = (): Slot => {
    const worker = new Worker(options.workerEntry ?? WORKER_ENTRY, { workerData: setup, execArgv: [] });
    const slot: Slot = { worker, queue: [], retired: false };
    worker.on('message', (response: ScanResponse) => {
      if (slot.retired) return;
      if (response.kind === 'progress') {
        watchdog.progress(response.id);
        return;
      }
      // A worker answers in the order it was asked (one file at a time); an answer out of turn is taken too.
      const at = slot.queue.indexOf(response.id);
      if (at < 0) return;
      slot.queue.splice(at, 1);
      if (response.kind === 'result') {
        parseCounter.records += response.scan.parsed;
        scanCounter.files += 1;
        finish(response.id, response.scan);
      } else {
        fail(response.id, `cannot be read: ${response.error}`);
      }
      if (at === 0) watchHead(slot);
      dispatch();
      signal();
    });
    worker.on('messageerror', (err) => {
      if (slot.retired) return;
      // Progress messages are two fields: what could not be deserialised is the result of the file being read.
      const head = slot.queue.shift();
      if (head !== undefined) fail(head, `its scan result could not be passed back (${messageOf(err)})`);
      watchHead(slot);
      dispatch();
      signal();
    });
    worker.on('error', (err) => retire(slot, `the scan worker reading it failed: ${messageOf(err)}`));
    worker.on('exit', (code) => {
      if (!closing) retire(slot, `the scan worker reading it stopped (exit code ${code})`);
    });
    return slot;
  };

  const watchdog = new Watchdog(stallMs, (id) => {
    const slot = slots.find((s) => s.queue.includes(id));
    if (slot) retire(slot, stallReason(stallMs));
    else fail(id, stallReason(stallMs));
  });

  try {
    for (let w = 0; w < count; w++) slots.push(spawn());
    dispatch();
    while (yielded < files.length) {
      const scan = done.get(yielded);
      if (scan === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      done.delete(yielded);
      held -= sizeOf(scan);
      const file = files[yielded] as InputFile;
      yielded += 1;
      dispatch();
      yield { file, scan };
    }
  } finally {
    closing = true;
    watchdog.close();
    await Promise.all(slots.map((s) => s.worker.terminate()));
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
  options: PoolOptions = {},
): AsyncGenerator<ScannedFile> {
  return jobs <= 1 || files.length <= 1
    ? inProcess(files, filter, options)
    : withWorkers(files, filter, jobs, options);
}
