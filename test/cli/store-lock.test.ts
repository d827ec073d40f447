import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { LOCK_FILE, lockStore, StoreBusyError } from '../../lambda/cli/store-lock';
import { REPO, removeTempDirs, tempDir, writeFile } from './helpers';

/**
 * The store lock under contention: many processes starting at the same moment on a stale lock must end with
 * exactly one holder, every other one told who holds it. The children run the real module, bundled once with
 * esbuild so that each starts in milliseconds (a start barrier then makes them race: every racer ready, then one
 * instant for all).
 */

/** [racers, trials]: as many racers as cores collide most often (the old lock lost most trials); many racers too. */
const RACES: Array<[number, number]> = [
  [3, 25],
  [10, 5],
];

let bundle: string;

beforeAll(() => {
  const dir = tempDir('keyguard-lock-bundle-');
  bundle = join(dir, 'store-lock.js');
  buildSync({
    entryPoints: [join(REPO, 'lambda', 'cli', 'store-lock.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    outfile: bundle,
    logLevel: 'silent',
  });
});

afterAll(() => removeTempDirs());

/**
 * A child: says it is ready, waits for the go file (written once every racer is ready; it holds the start time),
 * sleeps until just before that instant and spins to it, takes the lock and reports it; a winner holds the lock until
 * its stdin closes, which the test does once every racer has reported (so no rival can find the lock released).
 */
const CHILD = `
const { readFileSync } = require('node:fs');
const { lockStore, StoreBusyError } = require(process.argv[1]);
const [dir, go] = [process.argv[2], process.argv[3]];
const nap = new Int32Array(new SharedArrayBuffer(4));
process.stdout.write('ready\\n');
let start = 0;
while (!start) {
  try { start = Number(readFileSync(go, 'utf8')); } catch { Atomics.wait(nap, 0, 0, 1); }
}
if (start - Date.now() > 3) Atomics.wait(nap, 0, 0, start - Date.now() - 3);
while (Date.now() < start) {}
try {
  const release = lockStore(dir);
  process.stdout.write('won ' + process.pid + '\\n');
  process.stdin.resume();
  process.stdin.on('end', () => { release(); process.exit(0); });
} catch (err) {
  if (!(err instanceof StoreBusyError)) { process.stderr.write(String(err && err.stack)); process.exit(1); }
  process.stdout.write('busy ' + err.pid + ' ' + err.message + '\\n');
  process.exit(2);
}
`;

interface Outcome {
  code: number | null;
  out: string;
  err: string;
  pid: number;
}

/** Lines a child has written so far. */
const linesOf = (out: string) => out.split('\n').length - 1;

/**
 * Starts the racers; once every one is ready, writes the go file with a start time 20 ms ahead (through a rename,
 * so a racer never reads half of it); resolves when all have exited, closing the winners' stdin once every one has
 * reported.
 */
function race(dir: string, racers: number): Promise<Outcome[]> {
  const go = join(tempDir('keyguard-lock-go-'), 'go');
  const children = Array.from({ length: racers }, () =>
    spawn(process.execPath, ['-e', CHILD, bundle, dir, go], { timeout: 20_000 }),
  );
  let ready = 0;
  let reported = 0;
  const isReady = () => {
    if (++ready !== racers) return;
    writeFileSync(`${go}.tmp`, String(Date.now() + 20));
    renameSync(`${go}.tmp`, go);
  };
  const hasReported = () => {
    if (++reported === racers) for (const c of children) c.stdin.end();
  };
  return Promise.all(
    children.map(
      (child) =>
        new Promise<Outcome>((resolve, reject) => {
          let out = '';
          let err = '';
          child.stdout.on('data', (d) => {
            const had = linesOf(out);
            out += d;
            const has = linesOf(out);
            if (had < 1 && has >= 1) isReady();
            if (had < 2 && has >= 2) hasReported();
          });
          child.stderr.on('data', (d) => (err += d));
          child.on('error', reject);
          child.on('close', (code) => {
            const has = linesOf(out);
            if (has < 1) isReady();
            if (has < 2) hasReported();
            resolve({ code, out: out.replace(/^ready\n/, ''), err, pid: child.pid as number });
          });
        }),
    ),
  );
}

/** The pid of a process that has exited: a lock holding it is stale. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid as number;
}

describe('lockStore: concurrent takeover of a stale lock', () => {
  it.each(RACES)(
    'gives the lock to exactly one of %i processes, %i trials in a row',
    async (racers, trials) => {
      for (let trial = 0; trial < trials; trial++) {
        // Prepare: a lock left by a process that has exited
        const dir = tempDir();
        writeFile(join(dir, LOCK_FILE), String(deadPid()));

        // Act: every racer starts at the same instant
        const results = await race(dir, racers);

        // Assess: one winner; every loser names the lock file and the winner's pid; the lock is gone afterwards
        const winners = results.filter((r) => r.code === 0);
        expect({
          trial,
          winners: winners.length,
          crashes: results.filter((r) => r.code === 1).map((r) => r.err),
        }).toEqual({ trial, winners: 1, crashes: [] });
        const winner = winners[0] as { pid: number };
        for (const loser of results.filter((r) => r.code !== 0)) {
          expect(loser.code).toBe(2);
          expect(loser.out).toContain(`busy ${winner.pid} in use by process ${winner.pid}`);
          expect(loser.out).toContain(join(dir, LOCK_FILE));
          expect(loser.out).not.toContain('NaN');
        }
        expect(readdirSync(dir)).toEqual([]);
      }
    },
    120_000,
  );
});

describe('lockStore: what a lock file says', () => {
  it('never shows a half-written lock: a fresh lock holds the whole pid the moment it exists', () => {
    // Prepare
    const dir = tempDir();

    // Act
    const release = lockStore(dir);
    const content = readFileSync(join(dir, LOCK_FILE), 'utf8');
    release();

    // Assess: no temporary file is left behind either
    expect(content.trim()).toBe(String(process.pid));
    expect(readdirSync(dir)).toEqual([]);
  });

  it('takes over a lock file that holds no pid (empty or garbled) instead of reporting process NaN', () => {
    for (const garbage of ['', '12ab', '\n']) {
      // Prepare
      const dir = tempDir();
      writeFile(join(dir, LOCK_FILE), garbage);

      // Act
      const release = lockStore(dir);

      // Assess
      expect(readFileSync(join(dir, LOCK_FILE), 'utf8').trim()).toBe(String(process.pid));
      release();
      expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    }
  });

  it('refuses a lock held by a running process, naming the lock file and the pid', () => {
    // Prepare: this process holds it
    const dir = tempDir();
    const release = lockStore(dir);

    // Act
    let err: unknown;
    try {
      lockStore(dir);
    } catch (e) {
      err = e;
    }
    release();

    // Assess
    expect(err).toBeInstanceOf(StoreBusyError);
    expect((err as StoreBusyError).pid).toBe(process.pid);
    expect((err as Error).message).toBe(
      `in use by process ${process.pid} (if no keyguard runs, delete ${join(dir, LOCK_FILE)})`,
    );
  });

  it('releasing leaves a lock another process has taken meanwhile in place', () => {
    // Prepare: our lock was deleted by hand and another process took the store
    const dir = tempDir();
    const release = lockStore(dir);
    const other = String(deadPid());
    writeFile(join(dir, LOCK_FILE), other);

    // Act
    release();

    // Assess
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(other);
  });
});
