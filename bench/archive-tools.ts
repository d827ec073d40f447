import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/**
 * Runs a command (or a shell pipeline) to completion and measures the whole process tree: wall time, peak
 * memory, stdout lines. Peak memory is sampled from /proc, because the replay benchmark compares a
 * pipeline (`zcat | jq`, `xargs -P` running several zcat) with a single Node process, and GNU time reports
 * only the largest single process of a tree, never what the tree holds at once.
 *
 * Every `SAMPLE_MS` the tree under the spawned process is walked (parent links from /proc/<pid>/stat) and
 * the VmHWM ("high water mark", the process's own peak RSS so far) of each live member is summed; the
 * figure is the largest such sum. Summing high water marks rather than current RSS means a short spike
 * between two samples is not missed for any process that outlives it; for members that run one after
 * another (xargs batches) only those alive together are summed.
 *
 * CPU time (user + system, the whole tree: every descendant is waited for) comes from GNU time wrapped around
 * the command when /usr/bin/time exists; the wrapper itself is left out of the memory sum. On a shared machine
 * CPU seconds compare tools more fairly than wall time, which grows with everyone else's load.
 */

const GNU_TIME = '/usr/bin/time';

/** Each sample walks /proc (~7 ms of CPU on this machine): 200 ms keeps the sampler under 4 % of a core. */
const SAMPLE_MS = 200;

export interface TreeSpec {
  command: string;
  args: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Keep stdout text (otherwise only lines and bytes are counted). */
  captureStdout?: boolean;
}

export interface TreeRun {
  wallMs: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdoutLines: number;
  stdoutBytes: number;
  stdoutText: string;
  stderr: string;
  /** Largest sum of VmHWM over the tree's live processes, in KiB; null when /proc could not be read. */
  peakRssKb: number | null;
  /** Distinct processes seen in the tree (the root included). */
  processesSeen: number;
  /** User + system CPU seconds of the whole tree, or null without GNU time. */
  cpuSeconds: number | null;
}

/** pid → ppid for every process visible in /proc. */
function parentLinks(): Map<number, number> {
  const links = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces: fields count from the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      links.set(pid, Number(fields[1]));
    } catch {
      // The process ended between readdir and read.
    }
  }
  return links;
}

function descendants(root: number, links: Map<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of links) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop() as number;
    if (!links.has(pid)) continue;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

function highWaterKb(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** `%U %S` as written by GNU time: user and system seconds. */
function readCpuSeconds(file: string): number | null {
  try {
    const m = /(\d+(?:\.\d+)?) (\d+(?:\.\d+)?)\s*$/.exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) + Number(m[2]) : null;
  } catch {
    return null;
  }
}

export function runTree(spec: TreeSpec): Promise<TreeRun> {
  const timed = existsSync(GNU_TIME);
  const dir = timed ? mkdtempSync(join(tmpdir(), 'bench-cpu-')) : null;
  const cpuFile = dir ? join(dir, 'cpu') : null;
  return new Promise<TreeRun>((resolvePromise, reject) => {
    const t0 = performance.now();
    const [command, args] = cpuFile
      ? [GNU_TIME, ['-f', '%U %S', '-o', cpuFile, spec.command, ...spec.args]]
      : [spec.command, [...spec.args]];
    const child = spawn(command, args, {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr: Buffer[] = [];
    const stdout: Buffer[] = [];
    let lines = 0;
    let bytes = 0;
    child.stdout.on('data', (b: Buffer) => {
      if (spec.captureStdout) stdout.push(b);
      bytes += b.length;
      for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) lines += 1;
    });
    child.stderr.on('data', (b: Buffer) => stderr.push(b));

    let peak: number | null = null;
    const seen = new Set<number>();
    const sample = () => {
      if (child.pid === undefined) return;
      let sum = 0;
      let any = false;
      for (const pid of descendants(child.pid, parentLinks())) {
        if (cpuFile && pid === child.pid) continue; // GNU time itself
        const hwm = highWaterKb(pid);
        if (hwm === null) continue;
        any = true;
        seen.add(pid);
        sum += hwm;
      }
      if (any) peak = Math.max(peak ?? 0, sum);
    };
    const timer = setInterval(sample, SAMPLE_MS);
    child.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
    // 'exit' comes before the streams close; sample once more while the tree's other members may still live.
    child.on('exit', () => sample());
    child.on('close', (code, signal) => {
      clearInterval(timer);
      resolvePromise({
        wallMs: performance.now() - t0,
        exitCode: code,
        signal,
        stdoutLines: lines,
        stdoutBytes: bytes,
        stdoutText: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        peakRssKb: peak,
        processesSeen: seen.size,
        cpuSeconds: cpuFile ? readCpuSeconds(cpuFile) : null,
      });
    });
  }).finally(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
}

/** Quotes one argument for `sh -c`. */
export function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}
