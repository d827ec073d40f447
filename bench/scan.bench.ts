import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mib, num, progress, renderTable, type Section } from './report';
import { type Corpus, ensureScanCorpus, type PlantedKey } from './scan-corpus';
import { denseTable, measureDenseScan } from './scan-dense';
import { ensureGitHistory } from './scan-git';
import { CONTEXTS, DECOY_KINDS } from './scan-lines';
import {
  type Availability,
  ripgrepAvailable,
  runGitLogRipgrep,
  runKeyguard,
  runKeyguardGit,
  runRipgrep,
  runSecretlint,
  secretlintAvailable,
  type ToolRun,
} from './scan-tools';

/**
 * `keyguard scan` against ripgrep with gitleaks' two Bedrock regexes and secretlint with a pattern rule holding
 * the same regexes, over a generated corpus with keys planted at known lines (scan-corpus.ts): wall time, MiB/s,
 * and recall and precision against the corpus manifest. A finding matches a planted key by path and line, and
 * for keyguard (the only one that reports a fingerprint) by fingerprint too. Each tool runs once, after one
 * untimed read of the whole corpus so every tool starts from the page cache.
 */

interface Score {
  tool: string;
  wallS: number;
  mibPerS: number;
  rssMib: number | null;
  found: number;
  truePositives: number;
  falsePositives: number;
  /** Indexes into the manifest's `planted`. */
  recalled: Set<number>;
  /** False positives by the decoy on their line, or `filler` when no decoy was planted there. */
  falseByDecoy: Map<string, number>;
}

function score(
  result: ToolRun,
  corpus: Corpus,
  plantedAt: Map<string, number>,
  decoyAt: Map<string, string>,
): Score {
  const { manifest } = corpus;
  const seen = new Set<string>();
  const recalled = new Set<number>();
  const falseByDecoy = new Map<string, number>();
  let found = 0;
  let truePositives = 0;
  for (const f of result.findings) {
    const where = `${f.path}:${f.line}`;
    const id = f.fingerprint ? `${where}:${f.fingerprint}` : where;
    if (seen.has(id)) continue;
    seen.add(id);
    found += 1;
    const index = plantedAt.get(where);
    const planted = index === undefined ? undefined : manifest.planted[index];
    if (index !== undefined && planted && (!f.fingerprint || f.fingerprint === planted.fingerprint)) {
      truePositives += 1;
      recalled.add(index);
    } else {
      const decoy = decoyAt.get(where) ?? (planted ? 'planted line, other key' : 'filler');
      falseByDecoy.set(decoy, (falseByDecoy.get(decoy) ?? 0) + 1);
    }
  }
  const wallS = result.run.wallMs / 1000;
  return {
    tool: result.tool,
    wallS,
    mibPerS: mib(manifest.bytes) / wallS,
    rssMib: result.run.maxRssKb === null ? null : result.run.maxRssKb / 1024,
    found,
    truePositives,
    falsePositives: found - truePositives,
    recalled,
    falseByDecoy,
  };
}

/** Interleaved rounds of the ripgrep and keyguard runs. */
const ROUNDS = 3;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function ratioText(s: Score, reference: Score | undefined): string {
  return reference ? `${(s.mibPerS / reference.mibPerS).toFixed(3)}×` : 'n/a';
}

/**
 * Issue 13's git-history row: `keyguard scan --git` (every blob reachable from any ref, with the commit that
 * introduced it) against `git log -p --all | rg -P <gitleaks' regexes>` (the diffs), at 1 and 2 threads
 * (`--jobs`, `rg --threads`), over the generated repository (scan-git.ts), interleaved, median of ROUNDS. The
 * ratio is ripgrep's pipeline wall time over keyguard's (> 1: keyguard is faster).
 */
async function measureGitHistory(): Promise<{ figures: Section['figures']; table: string; notes: string[] }> {
  const history = await ensureGitHistory();
  progress('scan: git history, warming the page cache');
  await runGitLogRipgrep(history.dir, 2);
  const walls = new Map<string, number[]>();
  let found = new Set<string>();
  let rgMatches = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const threads of [1, 2]) {
      progress(`scan: git log -p | rg -P -j${threads}, round ${round + 1}/${ROUNDS}`);
      const rg = await runGitLogRipgrep(history.dir, threads);
      rgMatches = rg.matches;
      walls.set(`rg${threads}`, [...(walls.get(`rg${threads}`) ?? []), rg.run.wallMs]);
      progress(`scan: keyguard scan --git --jobs ${threads}, round ${round + 1}/${ROUNDS}`);
      const kg = await runKeyguardGit(history.dir, threads);
      found = kg.fingerprints;
      walls.set(`kg${threads}`, [...(walls.get(`kg${threads}`) ?? []), kg.run.wallMs]);
    }
  }
  const planted = history.manifest.planted;
  const recalled = planted.filter((f) => found.has(f)).length;
  const extra = [...found].filter((f) => !planted.includes(f)).length;
  const wall = (k: string) => median(walls.get(k) ?? []) / 1000;
  const rows = [1, 2].map((t) => [
    `${t}`,
    num(wall(`kg${t}`), 2),
    num(wall(`rg${t}`), 2),
    `${(wall(`rg${t}`) / wall(`kg${t}`)).toFixed(3)}×`,
  ]);
  return {
    figures: [1, 2].map((t) => ({
      metric: `keyguard scan --git --jobs ${t} vs git log -p | rg -P -j${t}`,
      value: (wall(`rg${t}`) / wall(`kg${t}`)).toFixed(3),
      unit: '×',
      detail:
        `${num(wall(`kg${t}`), 2)} s vs ${num(wall(`rg${t}`), 2)} s; ${history.manifest.commits} commits; ` +
        `keys planted ${planted.length}, keyguard found ${recalled} (${extra} not planted)`,
    })),
    table: renderTable(
      `git history: ${history.manifest.commits} commits (speed = rg pipeline wall ÷ keyguard wall)`,
      ['threads', 'keyguard --git s', 'git log -p | rg s', 'speed vs rg'],
      rows,
    ),
    notes: [
      `git history ${history.dir} (${history.generatedSeconds === null ? 'cached' : `generated in ${history.generatedSeconds.toFixed(1)} s`}): ` +
        `${planted.length} distinct keys planted and removed again; keyguard found ${recalled} of them and ${extra} others; ` +
        `ripgrep's pipeline printed ${rgMatches} matching lines (diff lines, added and removed)`,
    ],
  };
}

function pct(part: number, whole: number): string {
  return whole === 0 ? 'n/a' : `${((100 * part) / whole).toFixed(1)}%`;
}

function group(p: PlantedKey): string {
  return `${p.kind === 'LONG_TERM' ? 'long-term' : 'short-term'} ${p.context}`;
}

const GROUPS = ['long-term', 'short-term'].flatMap((k) => CONTEXTS.map((c) => `${k} ${c}`));

/** Reads every file once (untimed), so no tool pays for the cold cache. */
async function warmCache(corpus: Corpus): Promise<void> {
  for (const f of corpus.manifest.files) await readFile(join(corpus.dir, f.path));
}

export async function runScanBench(opts: { scanMb: number }): Promise<Section> {
  const corpus = await ensureScanCorpus(opts.scanMb);
  const { manifest } = corpus;
  const plantedAt = new Map<string, number>();
  manifest.planted.forEach((p, i) => {
    plantedAt.set(`${p.path}:${p.line}`, i);
  });
  const decoyAt = new Map<string, string>(manifest.decoys.map((d) => [`${d.path}:${d.line}`, d.decoy]));
  const notes: string[] = [];

  progress('scan: warming the page cache');
  await warmCache(corpus);

  // Interleaved rounds (ripgrep and keyguard at 1, then 2 threads), so load from elsewhere on the machine falls
  // on both sides of each ratio; each tool's median wall time is used, its first run is scored.
  const rounds: ToolRun[][] = [];
  const rg: Availability = ripgrepAvailable();
  for (let round = 0; round < ROUNDS; round += 1) {
    const runs: ToolRun[] = [];
    for (const threads of [1, 2]) {
      if (rg.ok) {
        progress(`scan: ripgrep -P -j${threads} (gitleaks regexes), round ${round + 1}/${ROUNDS}`);
        runs.push(await runRipgrep(corpus.dir, threads));
      }
      progress(`scan: keyguard scan --jobs ${threads}, round ${round + 1}/${ROUNDS}`);
      runs.push(await runKeyguard(corpus.dir, threads));
    }
    rounds.push(runs);
  }
  const runs = (rounds[0] as ToolRun[]).map((first) => ({
    ...first,
    run: {
      ...first.run,
      wallMs: median(rounds.map((r) => (r.find((x) => x.tool === first.tool) as ToolRun).run.wallMs)),
    },
  }));
  if (rg.ok) {
    notes.push(
      `${rg.version}; gitleaks' two regexes in one pass with -P (PCRE2), --hidden --no-ignore; ` +
        `wall time: median of ${ROUNDS} interleaved rounds`,
    );
  } else {
    notes.push(`SKIPPED ripgrep rows: ${rg.reason}`);
  }
  const sl: Availability = secretlintAvailable();
  if (sl.ok) {
    progress('scan: secretlint (pattern rule)');
    runs.push(await runSecretlint(corpus.dir));
    notes.push(
      `${sl.version} + @secretlint/secretlint-rule-pattern with the same two regexes, --format compact --maskSecrets --output <file>, glob **/*`,
    );
  } else {
    notes.push(`SKIPPED secretlint rows: ${sl.reason}`);
  }

  const history = rg.ok ? await measureGitHistory() : undefined;
  if (!rg.ok) notes.push('SKIPPED git history rows: ripgrep is not installed');

  // Prefix-dense inputs (issue 10, item 2): keyguard only, the other tools do not decode candidates.
  const dense = await measureDenseScan();

  const scores = runs.map((r) => score(r, corpus, plantedAt, decoyAt));
  const byTool = new Map(scores.map((s) => [s.tool, s]));
  const keyguard = byTool.get('keyguard scan --jobs 1') as Score;
  const sameThreads = (s: Score): Score | undefined =>
    byTool.get(s.tool.endsWith('--jobs 2') || s.tool.endsWith('-j2') ? 'ripgrep -j2' : 'ripgrep -j1');
  const planted = manifest.planted.length;

  const main = renderTable(
    'tools (warm cache; speed vs rg: against ripgrep -P with as many threads)',
    [
      'tool',
      'MiB/s',
      'wall s',
      'speed vs rg',
      'peak RSS MiB',
      'found',
      'true pos',
      'false pos',
      'recall',
      'precision',
    ],
    scores.map((s) => [
      s.tool,
      num(s.mibPerS, 1),
      num(s.wallS, 2),
      ratioText(s, sameThreads(s)),
      s.rssMib === null ? 'n/a' : num(s.rssMib, 0),
      num(s.found),
      num(s.truePositives),
      num(s.falsePositives),
      pct(s.recalled.size, planted),
      pct(s.truePositives, s.found),
    ]),
  );

  const others = scores.filter(
    (s) => s !== keyguard && !['ripgrep -j2', 'keyguard scan --jobs 2'].includes(s.tool),
  );
  const count = (set: Set<number>, g: string, not?: Set<number>) =>
    [...set].filter((i) => group(manifest.planted[i] as PlantedKey) === g && !not?.has(i)).length;
  const plantedIn = (g: string) => manifest.planted.filter((p) => group(p) === g).length;
  const recallTable = renderTable(
    'planted keys found, by kind and context',
    ['kind / context', 'planted', ...scores.map((s) => s.tool)],
    [
      ...GROUPS.map((g) => [g, num(plantedIn(g)), ...scores.map((s) => num(count(s.recalled, g)))]),
      ['all', num(planted), ...scores.map((s) => num(s.recalled.size))],
    ],
  );
  const diffTable = renderTable(
    'planted keys one finds and the other misses',
    ['kind / context', ...others.flatMap((o) => [`keyguard only (vs ${o.tool})`, `${o.tool} only`])],
    [...GROUPS, 'all'].map((g) => [
      g,
      ...others.flatMap((o) =>
        g === 'all'
          ? [
              num([...keyguard.recalled].filter((i) => !o.recalled.has(i)).length),
              num([...o.recalled].filter((i) => !keyguard.recalled.has(i)).length),
            ]
          : [num(count(keyguard.recalled, g, o.recalled)), num(count(o.recalled, g, keyguard.recalled))],
      ),
    ]),
  );
  const decoyRows = [...DECOY_KINDS, 'filler', 'planted line, other key'];
  const falseTable = renderTable(
    'false positives, by the decoy on their line',
    ['decoy', 'planted', ...scores.map((s) => s.tool)],
    decoyRows
      .filter(
        (d) =>
          !['filler', 'planted line, other key'].includes(d) || scores.some((s) => s.falseByDecoy.has(d)),
      )
      .map((d) => [
        d,
        DECOY_KINDS.includes(d as never) ? num(manifest.decoys.filter((x) => x.decoy === d).length) : '-',
        ...scores.map((s) => num(s.falseByDecoy.get(d) ?? 0)),
      ]),
  );

  const longTerm = manifest.planted.filter((p) => p.kind === 'LONG_TERM').length;
  notes.unshift(
    `corpus ${corpus.dir} (${manifest.targetMb} MiB requested; --scan-mb / BENCH_SCAN_MB), ${corpus.generatedSeconds === null ? 'cached' : `generated in ${corpus.generatedSeconds.toFixed(1)} s`}`,
    'a finding matches a planted key by path + line (keyguard: + fingerprint); duplicates on one line count once',
    'speed vs rg = MiB/s ÷ MiB/s of ripgrep -P with as many threads (secretlint: one thread, against -j1); issue 13 goal ≥ 0.5×',
  );
  const ratioFigures = [1, 2].flatMap((threads) => {
    const k = byTool.get(`keyguard scan --jobs ${threads}`);
    const r = byTool.get(`ripgrep -j${threads}`);
    if (!k || !r) return [];
    return [
      {
        metric: `keyguard scan --jobs ${threads} vs ripgrep -P -j${threads}`,
        value: (k.mibPerS / r.mibPerS).toFixed(3),
        unit: '×',
        detail: `${num(k.mibPerS, 1)} vs ${num(r.mibPerS, 1)} MiB/s; issue 13 goal ≥ 0.5×`,
      },
    ];
  });

  return {
    title: 'scan: keyguard scan vs ripgrep (gitleaks regexes) vs secretlint',
    figures: [
      {
        metric: 'corpus size',
        value: num(mib(manifest.bytes), 1),
        unit: 'MiB',
        detail: `${num(manifest.files.length)} files`,
      },
      {
        metric: 'planted keys',
        value: num(planted),
        unit: 'keys',
        detail: `${longTerm} long-term, ${planted - longTerm} short-term; ${CONTEXTS.join(', ')}`,
      },
      { metric: 'decoys', value: num(manifest.decoys.length), unit: 'lines', detail: DECOY_KINDS.join(', ') },
      ...ratioFigures,
      ...(history?.figures ?? []),
      ...scores.map((s) => ({
        metric: `${s.tool} throughput`,
        value: num(s.mibPerS, 1),
        unit: 'MiB/s',
        detail: `${num(s.wallS, 2)} s; recall ${pct(s.recalled.size, planted)}, precision ${pct(s.truePositives, s.found)}`,
      })),
      ...dense.map((r) => ({
        metric: `keyguard on ${r.input}`,
        value: num(r.inProcessMibPerS, 1),
        unit: 'MiB/s',
        detail: `in process; CLI ${num(r.cliWallS, 2)} s for ${num(mib(r.bytes), 1)} MiB; ${num(r.workPerChar, 2)} work units/char`,
      })),
    ],
    tables: [
      main,
      recallTable,
      diffTable,
      falseTable,
      ...(history ? [history.table] : []),
      denseTable(dense),
    ],
    notes: [...notes, ...(history?.notes ?? [])],
  };
}
