import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type DetectionWork, findLeakSpans } from '../lambda/domain/leaks';
import { runChild } from './processes';
import { mib, num, progress, renderSection, renderTable, type Section } from './report';
import { CLI } from './scan-tools';

/**
 * Adversarial inputs for key detection (issue 10, item 2): text dense with the key prefixes, where every `ABSK`
 * once read up to 8,192 characters (about 36 s per MiB). Each input is scanned by `keyguard scan` as a process
 * (wall time, and MiB/s net of the process start measured on an empty file) and by `findLeakSpans` in process
 * (MiB/s, best of three, and work units per character: DetectionWork). Normal log text is the reference row.
 */

const SIZE = 8 * 1024 * 1024;
const LOG_LINE =
  '2026-11-20T09:31:02.123Z INFO [main] req=42 path=/api/v1/items status=200 user=alice latency_ms=12\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Name and repeated unit of each input. */
export const DENSE_INPUTS: ReadonlyArray<readonly [string, string]> = [
  ['normal log lines (reference)', LOG_LINE],
  ['ABSK repeated', 'ABSK'],
  ['ABSK + valid alias, unpadded (no key)', `ABSK${b64(`alice-at-111122223333:${'x'.repeat(59)}`)}`],
  ['valid keys back to back, one line', `ABSK${b64(`alice-at-111122223333:${'x'.repeat(60)}`)}`],
  ['short-term prefix repeated', 'bedrock-api-key-'],
  ['short-term prefix + URL head + ABSK', `bedrock-api-key-${b64('bedrock.amazonaws.com/?')}ABSK`],
  ['ABSK with %2B, \\u002B and \\\\\\/ escapes', 'ABSK%2BABSK\\u002BABSK\\\\\\/'],
];

function fill(unit: string, size: number): string {
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

interface DenseRow {
  input: string;
  bytes: number;
  cliWallS: number;
  cliMibPerS: number;
  netMibPerS: number | null;
  inProcessMibPerS: number;
  workPerChar: number;
}

function inProcess(text: string): { mibPerS: number; workPerChar: number } {
  let best = Number.POSITIVE_INFINITY;
  let units = 0;
  for (let run = 0; run < 3; run += 1) {
    const work: DetectionWork = { units: 0 };
    const t0 = performance.now();
    findLeakSpans(text, { now: new Date('2026-11-20T09:41:02Z'), work });
    best = Math.min(best, performance.now() - t0);
    units = work.units;
  }
  return { mibPerS: mib(text.length) / (best / 1000), workPerChar: units / text.length };
}

async function cliSeconds(dir: string, file: string): Promise<number> {
  const run = await runChild({
    command: process.execPath,
    args: [CLI, 'scan', file, '--format', 'json'],
    cwd: dir,
    env: { ...process.env },
  });
  if (run.exitCode !== 0 && run.exitCode !== 1) {
    throw new Error(
      `keyguard scan ${file} exited with ${run.exitCode ?? run.signal}: ${run.stderr.slice(0, 500)}`,
    );
  }
  return run.wallMs / 1000;
}

/** Scans each dense input (8 MiB) with the CLI and in process. */
export async function measureDenseScan(): Promise<DenseRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'keyguard-bench-dense-'));
  try {
    await writeFile(join(dir, 'empty.txt'), '');
    progress('scan: dense inputs: process start (empty file)');
    const startS = await cliSeconds(dir, 'empty.txt');
    const rows: DenseRow[] = [];
    for (const [index, [input, unit]] of DENSE_INPUTS.entries()) {
      const text = fill(unit, SIZE);
      const file = `dense-${index}.txt`;
      await writeFile(join(dir, file), text);
      progress(`scan: dense inputs: ${input}`);
      const wallS = await cliSeconds(dir, file);
      const local = inProcess(text);
      const netS = wallS - startS;
      rows.push({
        input,
        bytes: text.length,
        cliWallS: wallS,
        cliMibPerS: mib(text.length) / wallS,
        netMibPerS: netS > 0.05 ? mib(text.length) / netS : null,
        inProcessMibPerS: local.mibPerS,
        workPerChar: local.workPerChar,
      });
    }
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function denseTable(rows: readonly DenseRow[]): string {
  return renderTable(
    'prefix-dense inputs (8 MiB each; keyguard scan as a process, findLeakSpans in process)',
    [
      'input',
      'MiB',
      'CLI wall s',
      'CLI MiB/s',
      'CLI MiB/s net of start',
      'in-process MiB/s',
      'work units/char',
    ],
    rows.map((r) => [
      r.input,
      num(mib(r.bytes), 1),
      num(r.cliWallS, 2),
      num(r.cliMibPerS, 1),
      r.netMibPerS === null ? 'n/a' : num(r.netMibPerS, 1),
      num(r.inProcessMibPerS, 1),
      num(r.workPerChar, 2),
    ]),
  );
}

/** `npx tsx bench/scan-dense.ts`: the dense inputs alone (no corpus to generate). */
export async function runDenseScanBench(): Promise<Section> {
  const rows = await measureDenseScan();
  return {
    title: 'scan: prefix-dense inputs',
    figures: rows.map((r) => ({
      metric: `${r.input} in process`,
      value: num(r.inProcessMibPerS, 1),
      unit: 'MiB/s',
      detail: `CLI ${num(r.cliWallS, 2)} s for ${num(mib(r.bytes), 1)} MiB; ${num(r.workPerChar, 2)} work units/char`,
    })),
    tables: [denseTable(rows)],
    notes: ['before the linear reader (issue 10 item 2), ABSK repeated ran at about 0.03 MiB/s'],
  };
}

if (require.main === module) {
  runDenseScanBench()
    .then((section) => process.stdout.write(`${renderSection(section)}\n`))
    .catch((err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exitCode = 1;
    });
}
