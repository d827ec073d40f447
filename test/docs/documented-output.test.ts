import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { buildProgram, main } from '../../bin/keyguard';
import { captureIO, EXAMPLES, REPO, removeTempDirs, tempDir, writeFile } from '../cli/helpers';

/**
 * The documentation must show what the program prints today (issue 14). Every fenced block marked ```console in
 * README.md and docs/ is a transcript: `$ npx keyguard …` lines are run (in process, from source, once each) and
 * the lines under each are compared with what the command printed (stdout, then stderr), after normalising what
 * legitimately varies. `...` alone on a line stands for any number of lines. The blocks of one file run in order
 * in one temporary folder holding a copy of examples/, so a later block sees the store an earlier replay made.
 * `$ echo '<text>' > <file>` writes a file there (a config to try). See docs/development.md.
 */

const DOC_FILES = ['README.md', ...markdownUnder('docs')];
const ELLIPSIS = '...';

function markdownUnder(dir: string): string[] {
  const abs = join(REPO, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(join(REPO, p)).isDirectory()) return markdownUnder(p);
      return name.endsWith('.md') ? [p] : [];
    });
}

interface Step {
  /** The `$ …` line without the prompt. */
  command: string;
  /** 1-based line of the command in its file. */
  line: number;
  /** The documented output, each line with its own 1-based line number. */
  expected: Array<{ text: string; line: number }>;
}

interface ConsoleBlock {
  file: string;
  line: number;
  steps: Step[];
}

/** The ```console blocks of a Markdown file, outside other fences. */
function consoleBlocks(file: string, text: string): ConsoleBlock[] {
  const lines = text.split('\n');
  const blocks: ConsoleBlock[] = [];
  let fence: { marker: string; indent: string; block: ConsoleBlock | null } | null = null;
  lines.forEach((raw, i) => {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(raw);
    if (!fence) {
      if (!open) return;
      const block = open[3] === 'console' ? { file, line: i + 1, steps: [] } : null;
      if (block) blocks.push(block);
      fence = { marker: open[2] ?? '```', indent: open[1] ?? '', block };
      return;
    }
    if (raw.trim() === fence.marker) {
      fence = null;
      return;
    }
    const block = fence.block;
    if (!block) return;
    const body = raw.startsWith(fence.indent) ? raw.slice(fence.indent.length) : raw;
    if (body.startsWith('$ ')) block.steps.push({ command: body.slice(2).trim(), line: i + 1, expected: [] });
    else {
      const step = block.steps.at(-1);
      if (!step) throw new Error(`${file}:${i + 1}: a console block must start with a "$ " command line`);
      step.expected.push({ text: body, line: i + 1 });
    }
  });
  return blocks;
}

/** Shell words without expansion: blanks separate, '…' and "…" group, ` #` starts a comment. */
function shellWords(command: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: string | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i] as string;
    if (quote) {
      if (c === quote) quote = null;
      else word = (word ?? '') + c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word = word ?? '';
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null) {
      break;
    } else word = (word ?? '') + c;
  }
  if (quote) throw new Error(`unterminated ${quote} in: ${command}`);
  if (word !== null) words.push(word);
  return words;
}

/**
 * One line as compared: what legitimately varies between runs or releases is replaced by a placeholder
 * (instants, policy versions, fingerprints, uuids, durations, the temporary folder) and column padding (two or
 * more blanks) counts as one gap, so a wider cell elsewhere in a table is not a drift. Counts, codes, column
 * names and the order of lines are compared as printed.
 */
function normalise(line: string, cwd: string): string {
  return line
    .split(`${cwd}/`)
    .join('')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)/g, '<instant>')
    .replace(/\bp-[0-9a-f]{12}\b/g, 'p-<policy>')
    .replace(/\bsha256:[0-9a-f]{16}\b/g, 'sha256:<fingerprint>')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '<uuid>')
    .replace(/\b\d+(\.\d+)? ?(ms|s)\b/g, '<duration>')
    .replace(/[ \t]{2,}/g, '  ')
    .trimEnd();
}

/**
 * Where the documented lines first stop matching the printed ones, or null when they match. `...` matches any
 * run of lines (the earliest placement that lets the rest match is taken).
 */
function firstDrift(
  expected: Array<{ text: string; line: number }>,
  actual: string[],
): { docLine: number | null; documented: string; printedIndex: number; printed: string | null } | null {
  let best = { e: -1, a: -1 };
  const match = (e: number, a: number): boolean => {
    if (e === expected.length) {
      if (a === actual.length) return true;
      if (e > best.e || (e === best.e && a > best.a)) best = { e, a };
      return false;
    }
    const want = expected[e] as { text: string; line: number };
    if (want.text === ELLIPSIS) {
      for (let k = a; k <= actual.length; k++) if (match(e + 1, k)) return true;
      return false;
    }
    if (a < actual.length && actual[a] === want.text) return match(e + 1, a + 1);
    if (e > best.e || (e === best.e && a > best.a)) best = { e, a };
    return false;
  };
  if (match(0, 0)) return null;
  const miss = expected[best.e];
  return {
    docLine: miss ? miss.line : null,
    documented: miss ? miss.text : '(end of the documented output)',
    printedIndex: best.a,
    printed: best.a < actual.length ? (actual[best.a] ?? null) : null,
  };
}

/** Runs one documented command in `cwd`; returns its output lines (stdout, then stderr). */
async function run(step: Step, cwd: string): Promise<string[]> {
  const words = shellWords(step.command);
  if (words[0] === 'echo' && words.length === 4 && words[2] === '>') {
    writeFile(join(cwd, words[3] as string), `${words[1]}\n`);
    return [];
  }
  if (words[0] !== 'npx' || words[1] !== 'keyguard') {
    throw new Error(
      `unsupported command in a console block: ${step.command} (only "npx keyguard …" and "echo '…' > FILE")`,
    );
  }
  const out = captureIO(cwd);
  await main(['node', 'keyguard', ...words.slice(2)], out.io);
  const text = out.stdout() + out.stderr();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

const blocks = DOC_FILES.flatMap((file) => consoleBlocks(file, readFileSync(join(REPO, file), 'utf8')));

afterAll(() => removeTempDirs());

describe('documented command output', () => {
  it('the docs hold console transcripts, the quick start among them', () => {
    expect(
      blocks.some((b) => b.file === 'README.md' && b.steps[0]?.command.startsWith('npx keyguard replay')),
    ).toBe(true);
  });

  const files = [...new Set(blocks.map((b) => b.file))];
  it.each(files)('%s: every console transcript is what the program prints today', async (file) => {
    // Prepare: a folder of its own with the examples, as in a fresh clone.
    const cwd = tempDir('keyguard-docs-');
    cpSync(EXAMPLES, join(cwd, 'examples'), { recursive: true });
    const drifts: string[] = [];

    for (const block of blocks.filter((b) => b.file === file)) {
      for (const step of block.steps) {
        // Act
        const printed = (await run(step, cwd)).map((l) => normalise(l, cwd));
        const documented = step.expected.map((e) => ({
          text: normalise(e.text, cwd),
          line: e.line,
          raw: e.text,
        }));

        // Assess
        const drift = firstDrift(documented, printed);
        if (drift) {
          drifts.push(
            [
              `${file}:${step.line}: the output of \`${step.command}\` drifted from the docs`,
              `  ${drift.docLine ? `${file}:${drift.docLine}` : 'documented'}: ${
                documented.find((d) => d.line === drift.docLine)?.raw ?? drift.documented
              }`,
              `  printed line ${drift.printedIndex + 1}: ${drift.printed ?? '(no more output)'}`,
              '  printed (normalised):',
              ...printed.map((l, i) => `  ${String(i + 1).padStart(4)} | ${l}`),
            ].join('\n'),
          );
        }
      }
    }
    expect(drifts.join('\n\n')).toBe('');
  });
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, blanks to hyphens; repeats get -1, -2… */
function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const h = fenced ? null : /^#{1,6} (.*)$/.exec(line);
    if (!h) continue;
    const base = (h[1] ?? '')
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}_\- ]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

describe('documentation links', () => {
  it.each([...DOC_FILES, 'bench/README.md'])('%s: every relative link and anchor resolves', (file) => {
    // Prepare
    const text = readFileSync(join(REPO, file), 'utf8');
    const broken: string[] = [];
    let fenced = false;

    // Act
    text.split('\n').forEach((line, i) => {
      if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
      if (fenced) return;
      for (const m of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] as string;
        if (/^[a-z]+:/i.test(target)) continue;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const abs = path ? resolve(dirname(join(REPO, file)), path) : join(REPO, file);
        if (!existsSync(abs)) broken.push(`${file}:${i + 1}: ${target}: no such file ${relative(REPO, abs)}`);
        else if (anchor && !anchorsOf(readFileSync(abs, 'utf8')).has(anchor))
          broken.push(`${file}:${i + 1}: ${target}: no heading with that anchor in ${relative(REPO, abs)}`);
      }
    });

    // Assess
    expect(broken).toEqual([]);
  });
});

describe('documentation tables', () => {
  it('README.md, docs/ and bench/README.md are formatted as biome formats them (tables aligned)', () => {
    // Act: biome exits non-zero and prints the diff when a file (a table's columns) is not as it would write it.
    let report = '';
    try {
      execFileSync(join(REPO, 'node_modules', '.bin', 'biome'), ['format', ...DOC_FILES, 'bench/README.md'], {
        cwd: REPO,
        stdio: 'pipe',
      });
    } catch (err) {
      const e = err as { stdout?: Buffer; stderr?: Buffer };
      report = `${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}\nfix: npx biome format --write <file>`;
    }

    // Assess
    expect(report).toBe('');
  });
});

/** The docs file of a command: docs/commands/<words joined by ->.md, else of its first word; approve and review
 * are documented with approvals. */
function commandDoc(words: string[]): string | null {
  const first = words[0] === 'approve' || words[0] === 'review' ? 'approvals' : (words[0] as string);
  for (const name of [[first, ...words.slice(1)].join('-'), first]) {
    const p = join('docs', 'commands', `${name}.md`);
    if (existsSync(join(REPO, p))) return p;
  }
  return null;
}

interface OptionLike {
  long?: string;
}
interface CommandLike {
  name(): string;
  commands: readonly CommandLike[];
  options: readonly OptionLike[];
}

describe('documented options', () => {
  it("every option of every keyguard command is named in that command's docs file", () => {
    // Prepare: the command tree as bin/keyguard.ts builds it (nothing is run).
    const silent = { cwd: REPO, stdout: { write: () => true }, stderr: { write: () => true } };
    const program = buildProgram(silent, () => undefined) as unknown as CommandLike;
    const missing: string[] = [];

    // Act
    const walk = (cmd: CommandLike, path: string[]): void => {
      for (const sub of cmd.commands) {
        const words = [...path, sub.name()];
        const longs = sub.options.map((o) => o.long).filter((l): l is string => Boolean(l));
        if (longs.length > 0) {
          const doc = commandDoc(words);
          if (!doc) missing.push(`keyguard ${words.join(' ')}: no docs/commands/ file`);
          else {
            const text = readFileSync(join(REPO, doc), 'utf8');
            for (const long of longs) {
              if (!new RegExp(`(^|[^\\w-])${long}(?![\\w-])`, 'm').test(text))
                missing.push(`keyguard ${words.join(' ')} ${long}: not in ${doc}`);
            }
          }
        }
        walk(sub, words);
      }
    };
    walk(program, []);

    // Assess
    expect(missing).toEqual([]);
  });
});

describe('how a transcript is compared', () => {
  const doc = (...lines: string[]) =>
    lines.map((text, i) => ({ text: normalise(text, '/tmp/x'), line: 10 + i }));
  const printed = (...lines: string[]) => lines.map((l) => normalise(l, '/tmp/x'));
  const TABLE = ['KEY ID  ACTION', 'ACCA1   ALLOW', 'ACCA2   NOTIFY', '', 'Decisions: 2 (2 new)'];

  it('matches whatever the columns are padded to, and ... stands for any lines', () => {
    // Act
    const drift = firstDrift(
      doc('KEY ID    ACTION', '...', 'Decisions: 2 (2 new)'),
      printed('KEY ID  ACTION', 'ACCA1       ALLOW', 'ACCA2       NOTIFY', '', 'Decisions: 2 (2 new)'),
    );

    // Assess
    expect(drift).toBeNull();
  });

  it('a new column is a drift at the documented header line', () => {
    // Act
    const drift = firstDrift(doc(...TABLE), printed('KEY ID  ACTION  RECORD', ...TABLE.slice(1)));

    // Assess
    expect(drift).toMatchObject({ docLine: 10, printedIndex: 0, printed: 'KEY ID  ACTION  RECORD' });
  });

  it('a changed total is a drift at the documented total', () => {
    // Act
    const drift = firstDrift(doc(...TABLE), printed(...TABLE.slice(0, 4), 'Decisions: 3 (3 new)'));

    // Assess
    expect(drift).toMatchObject({
      docLine: 14,
      documented: 'Decisions: 2 (2 new)',
      printed: 'Decisions: 3 (3 new)',
    });
  });

  it('a line no longer printed, or a line printed beyond the documented end, is a drift', () => {
    // Act
    const missing = firstDrift(doc(...TABLE), printed(...TABLE.slice(0, 4)));
    const extra = firstDrift(doc(...TABLE), printed(...TABLE, 'Usage: 1 call'));

    // Assess
    expect(missing).toMatchObject({ docLine: 14, printed: null });
    expect(extra).toMatchObject({ docLine: null, printed: 'Usage: 1 call' });
  });

  it('instants, policy versions, fingerprints and the temporary folder are placeholders; counts are not', () => {
    // Act
    const line = normalise(
      'as of 2026-12-07T21:33:16.627Z policy p-c1c7a578cfce ABSK…wxyz sha256:0123456789abcdef in /tmp/x/store: 12 keys',
      '/tmp/x',
    );

    // Assess
    expect(line).toBe('as of <instant> policy p-<policy> ABSK…wxyz sha256:<fingerprint> in store: 12 keys');
  });
});

/** The subcommand named by the leading words of `args` (as far as the tree goes) and the words after it. */
function subcommandOf(program: CommandLike, args: string[]): { cmd: CommandLike | null; words: string[] } {
  let cmd: CommandLike | null = null;
  let level: CommandLike = program;
  const words: string[] = [];
  for (const w of args) {
    const sub = level.commands.find((c) => c.name() === w);
    if (!sub) break;
    cmd = sub;
    level = sub;
    words.push(w);
  }
  return { cmd, words };
}

describe('documented command lines', () => {
  it('every --option in a documented `npx keyguard …` line (examples and synopses) is one its command has', () => {
    // Prepare
    const silent = { cwd: REPO, stdout: { write: () => true }, stderr: { write: () => true } };
    const program = buildProgram(silent, () => undefined) as unknown as CommandLike;
    const wrong: string[] = [];
    let seen = 0;

    // Act: each `npx keyguard` in a fenced block, with the indented lines that continue a synopsis.
    for (const file of [...DOC_FILES, 'examples/README.md']) {
      const lines = readFileSync(join(REPO, file), 'utf8').split('\n');
      let fenced = false;
      lines.forEach((line, i) => {
        if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
        const at = fenced ? line.indexOf('npx keyguard') : -1;
        if (at < 0) return;
        let text = line.slice(at + 'npx keyguard'.length);
        for (let k = i + 1; k < lines.length && /^\s{8,}\[/.test(lines[k] as string); k++)
          text += ` ${lines[k]}`;
        // Quoted values (git log options in --log-opts), comments and what follows a pipe or && are not ours.
        text = text.replace(/"[^"]*"|'[^']*'/g, 'VALUE').split(/\s#\s|&&|\|\s|\s>\s/)[0] as string;
        const { cmd, words } = subcommandOf(program, text.trim().split(/\s+/));
        if (!cmd) {
          if (text.trim() !== '') wrong.push(`${file}:${i + 1}: npx keyguard${text}: no such command`);
          return;
        }
        seen += 1;
        const longs = new Set([...cmd.options.map((o) => o.long), '--help']);
        for (const flag of text.match(/(?<![\w-])--[a-z][a-z-]*/g) ?? []) {
          if (!longs.has(flag))
            wrong.push(`${file}:${i + 1}: keyguard ${words.join(' ')} has no option ${flag}`);
        }
      });
    }

    // Assess
    expect(seen).toBeGreaterThan(30);
    expect(wrong).toEqual([]);
  });
});
