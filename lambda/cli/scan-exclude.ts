import ignore, { type Ignore } from 'ignore';
import { readSmallText, SmallFileError } from './small-file';

/**
 * Which paths `keyguard scan` leaves out. Patterns use .gitignore syntax (the `ignore` library, the one eslint and
 * globby use): `--exclude GLOB` (repeatable) and the lines of `.keyguardignore` in the current directory. They are
 * matched against the path relative to the current directory (relative to the folder given, for a folder outside
 * it) and, in git history and the index, against the path inside the repository. A file named on the command line
 * is always scanned.
 *
 * The default excludes skip dependency folders and `.git`, whose content the project did not write (`--git` scans
 * the history). A security scanner that skips something by default says so: the summary counts what they skipped,
 * and `--no-default-excludes` turns them off. A `!pattern` in `.keyguardignore` or `--exclude` re-includes one.
 */
export const DEFAULT_EXCLUDED_FOLDERS = [
  '.git',
  'node_modules',
  'bower_components',
  'jspm_packages',
  'vendor',
  '.venv',
  'venv',
  '__pycache__',
  '.tox',
] as const;

export const IGNORE_FILE = '.keyguardignore';

export interface ExcludeOptions {
  exclude?: readonly string[];
  /** false: `--no-default-excludes`. */
  defaultExcludes?: boolean;
}

/** What the excludes skipped, for the summary. */
export interface ExcludeCounts {
  defaultFolders: number;
  defaultFiles: number;
  folders: number;
  files: number;
}

export class ExcludeError extends Error {}

export class Excludes {
  readonly counts: ExcludeCounts = { defaultFolders: 0, defaultFiles: 0, folders: 0, files: 0 };
  private readonly all: Ignore;
  private readonly defaults: Ignore | undefined;
  private readonly user: Ignore;
  readonly active: boolean;

  private constructor(userPatterns: string[], useDefaults: boolean) {
    const defaultPatterns = useDefaults ? DEFAULT_EXCLUDED_FOLDERS.map((f) => `${f}/`) : [];
    this.defaults = useDefaults ? ignore().add(defaultPatterns) : undefined;
    this.user = ignore().add(userPatterns);
    // One matcher over both, the user's patterns last: `!vendor/` in .keyguardignore re-includes vendor folders.
    this.all = ignore().add(defaultPatterns).add(userPatterns);
    this.active = useDefaults || userPatterns.length > 0;
  }

  /**
   * The excludes of a run: `--exclude` patterns, then `.keyguardignore` in `cwd` when there is one (a missing file
   * is not an error; an unreadable one is).
   */
  static load(cwd: string, opts: ExcludeOptions, readIgnoreFile = defaultRead): Excludes {
    const patterns: string[] = [];
    for (const p of opts.exclude ?? []) {
      if (p.trim() === '' || p.includes('\0'))
        throw new ExcludeError(`--exclude must be a non-empty pattern, not ${JSON.stringify(p)}`);
      patterns.push(p);
    }
    const text = readIgnoreFile(`${cwd}/${IGNORE_FILE}`);
    if (text !== undefined) patterns.push(...text.split(/\r?\n/));
    return new Excludes(patterns, opts.defaultExcludes !== false);
  }

  /** Whether the excludes match this path (as skip, without counting). */
  matches(path: string): boolean {
    if (!this.active || !ignore.isPathValid(path.endsWith('/') ? path.slice(0, -1) : path)) return false;
    return this.all.ignores(path);
  }

  /**
   * Whether to skip this path (relative, `/`-separated; a folder ends with `/`), counting it when skipped.
   * Paths that cannot be matched (empty, absolute, `..`) are never skipped.
   */
  skip(path: string): boolean {
    if (!this.active || !ignore.isPathValid(path.endsWith('/') ? path.slice(0, -1) : path)) return false;
    if (!this.all.ignores(path)) return false;
    const folder = path.endsWith('/');
    const byDefault = this.defaults?.ignores(path) === true && !this.user.ignores(path);
    if (byDefault) {
      if (folder) this.counts.defaultFolders += 1;
      else this.counts.defaultFiles += 1;
    } else if (folder) this.counts.folders += 1;
    else this.counts.files += 1;
    return true;
  }

  /** The summary's words, or '' when nothing was skipped. */
  summary(): string {
    const { defaultFolders, defaultFiles, folders, files } = this.counts;
    const parts: string[] = [];
    if (defaultFolders + defaultFiles > 0)
      parts.push(
        `${count(defaultFolders, 'folder')}${defaultFiles > 0 ? ` and ${count(defaultFiles, 'file')}` : ''} ` +
          `by default excludes (${DEFAULT_EXCLUDED_FOLDERS.join(', ')}; --no-default-excludes scans them)`,
      );
    if (folders + files > 0)
      parts.push(`${count(folders, 'folder')} and ${count(files, 'file')} by --exclude/${IGNORE_FILE}`);
    return parts.length > 0 ? `skipped: ${parts.join(', ')}; ` : '';
  }
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** A .keyguardignore of more than this is refused (a real one is a few lines). */
export const MAX_IGNORE_FILE_BYTES = 1024 * 1024;

function defaultRead(file: string): string | undefined {
  try {
    return readSmallText(file, MAX_IGNORE_FILE_BYTES);
  } catch (err) {
    const why = err instanceof SmallFileError ? err.message : `cannot read: ${(err as Error).message}`;
    throw new ExcludeError(`${IGNORE_FILE}: ${why}`);
  }
}
