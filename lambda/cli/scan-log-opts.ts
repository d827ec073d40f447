/**
 * `keyguard scan --git --log-opts "<git log options>"`: which commits to scan, as gitleaks users write it. The text
 * often comes from a CI variable an attacker may set (a pull request's title, a branch name), and git log has
 * options that write files (`--output`) or run programs (`--ext-diff`, textconv, `-c` before the command), so the
 * options are ALLOWED from a list of commit-selecting ones, never filtered from a deny list; everything else is
 * refused. Revisions may not start with `-` and are passed after `--end-of-options`, paths after `--`. git is
 * spawned directly, never through a shell. Words are split on blanks; "double" or 'single' quotes group words.
 */

/** Options that take no value. */
const FLAGS = new Set([
  '--all',
  '--branches',
  '--tags',
  '--remotes',
  '--first-parent',
  '--no-merges',
  '--merges',
  '--ancestry-path',
  '--full-history',
  '--simplify-merges',
  '--topo-order',
  '--date-order',
  '--author-date-order',
  '--regexp-ignore-case',
  '-i',
  '--all-match',
  '--invert-grep',
  '--extended-regexp',
  '-E',
  '--fixed-strings',
  '-F',
]);

/** Options with a value, as `--name=value` (or `--name value`). */
const WITH_VALUE = new Set([
  '--since',
  '--after',
  '--until',
  '--before',
  '--author',
  '--committer',
  '--grep',
  '--max-count',
  '--skip',
  '--min-parents',
  '--max-parents',
  '--branches',
  '--tags',
  '--remotes',
  '--exclude',
  '--since-as-filter',
]);

const NUMERIC = new Set(['--max-count', '--skip', '--min-parents', '--max-parents']);

export class LogOptsError extends Error {}

/** What `--log-opts` asks for, ready for `git log <options> --end-of-options <revisions> -- <paths>`. */
export interface LogSelection {
  options: string[];
  revisions: string[];
  paths: string[];
  /** A ref-set option (--all, --branches…) was given: no HEAD to add. */
  refSets: boolean;
}

export function splitWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: string | undefined;
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) throw new LogOptsError(`--log-opts has an unclosed ${quote}`);
  if (inWord) words.push(word);
  return words;
}

const shown = (s: string) => JSON.stringify(s);

export function parseLogOpts(text: string): LogSelection {
  if (text.includes('\0')) throw new LogOptsError('--log-opts must not contain a NUL character');
  const words = splitWords(text);
  const sel: LogSelection = { options: [], revisions: [], paths: [], refSets: false };
  for (let i = 0; i < words.length; i += 1) {
    const w = words[i] as string;
    if (w === '--') {
      sel.paths.push(...words.slice(i + 1));
      break;
    }
    if (!w.startsWith('-')) {
      if (w === '') throw new LogOptsError('--log-opts has an empty revision');
      sel.revisions.push(w);
      continue;
    }
    const eq = w.indexOf('=');
    const name = eq === -1 ? w : w.slice(0, eq);
    if (eq === -1 && FLAGS.has(name)) {
      sel.options.push(name);
      if (['--all', '--branches', '--tags', '--remotes'].includes(name)) sel.refSets = true;
      continue;
    }
    // -n 5 / -n5: --max-count.
    const short = /^-n(\d*)$/.exec(w);
    let option = name;
    let value: string | undefined;
    if (short) {
      option = '--max-count';
      value = short[1] || words[++i];
    } else if (WITH_VALUE.has(name)) {
      value = eq === -1 ? words[++i] : w.slice(eq + 1);
    } else {
      throw new LogOptsError(
        `--log-opts: ${shown(w)} is not allowed (only options that select commits: ` +
          `${[...FLAGS].filter((f) => f.startsWith('--')).join(' ')} ` +
          `${[...WITH_VALUE].map((o) => `${o}=…`).join(' ')} -n N, revisions and -- paths)`,
      );
    }
    if (value === undefined) throw new LogOptsError(`--log-opts: ${shown(w)} needs a value`);
    if (NUMERIC.has(option) && !/^\d+$/.test(value))
      throw new LogOptsError(`--log-opts: ${option} takes a whole number, not ${shown(value)}`);
    if (['--branches', '--tags', '--remotes'].includes(option)) sel.refSets = true;
    sel.options.push(`${option}=${value}`);
  }
  return sel;
}

/** `--since-commit REV`: a revision, not an option. */
export function checkRevision(flag: string, rev: string): string {
  if (rev === '' || rev.startsWith('-') || rev.includes('\0') || /\s/.test(rev))
    throw new LogOptsError(
      `${flag} takes a commit (a revision such as a SHA or a branch), not ${shown(rev)}`,
    );
  return rev;
}
