import { spawn } from 'node:child_process';
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ByteLeakScanner } from '../domain/leak-bytes';
import type { StreamFinding } from '../domain/leak-stream';
import type { LeakKind, LongTermFacts, ShortTermFacts } from '../domain/leaks';
import { visible } from '../shared/visible-text';
import { type CliIO, EXIT_INPUT, EXIT_OK, problem } from './io';
import { writeOutputFile } from './output-file';
import { ExcludeError, Excludes } from './scan-exclude';
import { FileScanner, type FileScanResult } from './scan-file';
import { checkRevision, LogOptsError, type LogSelection, parseLogOpts } from './scan-log-opts';
import { type PooledScan, scanFilesOnWorkers } from './scan-pool';
import { openQuarantine, type QuarantineDeps, type QuarantineFlags } from './scan-quarantine';
import { parseS3Url, parseSince, type S3Location, type S3ScanDeps, S3Source, S3UrlError } from './scan-s3';
import { AtlassianAuthError, type AtlassianDeps } from './scan-sources/atlassian';
import { ConfluenceSource, confluenceSummary, spaceKeys } from './scan-sources/confluence';
import { JiraSource, jiraSummary } from './scan-sources/jira';
import {
  SlackAuthError,
  type SlackDeps,
  SlackSource,
  slackSummary,
  type TextSink,
} from './scan-sources/slack';
import { readSmallText, SmallFileError } from './small-file';
import { type AwsTarget, awsTarget, StackLookupError } from './stack-outputs';

/** `--jobs` when not given: one worker per core. */
export function defaultScanJobs(): number {
  return Math.max(1, availableParallelism());
}

/** The baseline read when --baseline is not given, if it exists (in the current directory). */
export const DEFAULT_BASELINE = '.keyguard-baseline.json';

/** Keys were found (not in the baseline, not allowed inline). */
export const EXIT_FOUND = 1;

/**
 * `keyguard scan`: finds Bedrock API keys in files, folders, stdin and git history. Files are read in chunks and
 * scanned with overlap (never loaded whole); UTF-16 with a byte order mark is decoded, binary files (a NUL byte in
 * the first 8 KB) are searched as bytes (domain/leak-bytes.ts). Output
 * never holds a key: only its redacted form, fingerprint and decoded facts.
 */

export type ScanFormat = 'text' | 'json' | 'sarif';

export interface ScanOptions {
  format?: ScanFormat;
  /** Scan every blob reachable from any ref of this repository (`true`: the current directory). */
  git?: string | boolean;
  baseline?: string;
  writeBaseline?: string;
  /** Files scanned in parallel on worker threads (a number or its text, from the command line); 1: in-process. */
  jobs?: number | string;
  /** .gitignore-syntax patterns of paths to leave out (scan-exclude.ts), besides `.keyguardignore`. */
  exclude?: string[];
  /** false (`--no-default-excludes`): scan node_modules, .git, vendor… too. */
  defaultExcludes?: boolean;
  /** With --git: only the commits after this one (up to HEAD, or the --log-opts revisions). */
  sinceCommit?: string;
  /** With --git: git log options selecting the commits (scan-log-opts.ts: an allow-list). */
  logOpts?: string;
  /** Scan the staged content of the index (`git diff --cached`), for a pre-commit hook. */
  staged?: boolean;
  /** Write the findings (text, json or sarif) to this file instead of standard output. */
  output?: string;
  /** Report every distinct key found to the deployed stack's governance bus (scan-quarantine.ts). */
  quarantine?: boolean;
  /** --bus ARN (with --quarantine), and the stack the bus is otherwise read from. */
  bus?: string;
  /** Scan the Slack channels SLACK_TOKEN can read (scan-sources/slack.ts). */
  slack?: boolean;
  /** With --slack: only these channels (names or IDs). */
  channel?: string[];
  /** Scan the Jira Cloud issues this JQL selects (JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN; scan-sources/jira.ts). */
  jira?: string;
  /** Scan the current pages and comments of these Confluence Cloud spaces (keys; repeatable, or comma-separated). */
  confluence?: string[];
  /** With --slack, --jira or s3://: only what was posted or modified after this date or duration back from now. */
  since?: string;
  profile?: string;
  region?: string;
  stack?: string;
}

export interface ScanDeps {
  now: () => Date;
  /** Bytes read at a time (tests make it tiny to put keys across chunk boundaries). */
  chunkSize: number;
  /** Characters kept between chunks; defaults to the longest key's text. */
  overlap?: number;
  stdin?: () => AsyncIterable<Buffer | string>;
  /** Tests: another entry for the `--jobs` workers (scan-pool.ts). */
  scanWorkerEntry?: string;
  /** The git executable (spawned directly, no shell). */
  gitBinary: string;
  version: string;
  /** --quarantine: how the bus is found and reported to (tests: mocked clients, no backoff). */
  quarantine?: QuarantineDeps;
  /** s3:// sources: the S3 client and the gzip limit (tests: a loopback endpoint, a small limit). */
  s3?: S3ScanDeps;
  /** --slack: the environment (SLACK_TOKEN, SLACK_API_URL) and the wait on Retry-After (tests: no sleeping). */
  slack?: SlackDeps;
  /** --jira and --confluence: the environment (site URLs, JIRA_EMAIL, JIRA_API_TOKEN) and the Retry-After wait. */
  atlassian?: AtlassianDeps;
}

export function defaultScanDeps(version: string): ScanDeps {
  return {
    now: () => new Date(),
    chunkSize: 1024 * 1024,
    stdin: () => process.stdin,
    gitBinary: 'git',
    version,
  };
}

/** One finding where it was found. */
export interface LocatedFinding extends StreamFinding {
  path: string;
  commit?: string;
  /** A collaboration source's poster of the message (Slack user id), when known. */
  postedBy?: string;
}

class ScanRun {
  readonly errors: string[] = [];
  readonly reported: LocatedFinding[] = [];
  readonly fingerprints = new Set<string>();
  suppressedInline = 0;
  suppressedBaseline = 0;
  sources = 0;
  /** Sources read as bytes (binary) and as UTF-16; invalid UTF-8 sequences read as U+FFFD, and in how many sources. */
  binary = 0;
  utf16 = 0;
  invalidUtf8 = 0;
  invalidUtf8Sources = 0;
  private readonly files: FileScanner;

  constructor(
    private readonly io: CliIO,
    private readonly deps: ScanDeps,
    private readonly baseline: ReadonlySet<string>,
    private readonly emit: (f: LocatedFinding) => void,
    readonly excludes: Excludes,
  ) {
    const { overlap } = deps;
    this.files = new FileScanner({
      now: deps.now().toISOString(),
      chunkSize: deps.chunkSize,
      ...(overlap === undefined ? {} : { overlap }),
    });
  }

  newByteScan(): ByteLeakScanner {
    return this.files.newScan();
  }

  fail(where: string, reason: string): void {
    this.errors.push(where);
    problem(this.io, where, reason);
  }

  /** A source that failed with its own line already on stderr. */
  failed(where: string): void {
    this.errors.push(where);
  }

  take(findings: StreamFinding[], path: string, commit?: string, postedBy?: string): void {
    for (const f of findings) {
      this.fingerprints.add(f.fingerprint);
      if (f.allowed) {
        this.suppressedInline += 1;
      } else if (this.baseline.has(f.fingerprint)) {
        this.suppressedBaseline += 1;
      } else {
        const located: LocatedFinding = {
          ...f,
          path,
          ...(commit ? { commit } : {}),
          ...(postedBy ? { postedBy } : {}),
        };
        this.reported.push(located);
        this.emit(located);
      }
    }
  }

  /** A collaboration source's texts (scan-sources/): scanned whole, located once the source knows they hold keys. */
  textSink(): TextSink {
    return {
      scan: (text) => {
        const scan = this.newByteScan();
        const found = [...scan.write(typeof text === 'string' ? Buffer.from(text) : text), ...scan.end()];
        this.count(scan);
        return {
          found: found.length > 0,
          take: (path, postedBy) => this.take(found, path, undefined, postedBy),
        };
      },
      fail: (where, why) => this.fail(where, why),
    };
  }

  finishSource(scan: ByteLeakScanner, path: string, commit?: string): void {
    this.take(scan.end(), path, commit);
    this.count(scan);
  }

  count(scan: Pick<FileScanResult, 'encoding' | 'invalidUtf8'>): void {
    this.sources += 1;
    if (scan.encoding === 'binary') this.binary += 1;
    if (scan.encoding === 'utf-16le' || scan.encoding === 'utf-16be') this.utf16 += 1;
    if (scan.invalidUtf8 > 0) {
      this.invalidUtf8 += scan.invalidUtf8;
      this.invalidUtf8Sources += 1;
    }
  }

  scanFile(file: string, shown: string): void {
    try {
      this.count(this.files.scan(file, (found) => this.take(found, shown)));
    } catch (err) {
      this.fail(shown, reason(err));
    }
  }

  /** Scans the files on `jobs` worker threads; findings are taken in the files' order. */
  async scanFilesOnWorkers(
    files: ReadonlyArray<{ full: string; shown: string }>,
    jobs: number,
  ): Promise<void> {
    const { overlap } = this.deps;
    const setup = {
      now: this.deps.now().toISOString(),
      chunkSize: this.deps.chunkSize,
      ...(overlap === undefined ? {} : { overlap }),
    };
    const local = (file: string): PooledScan => {
      const findings: StreamFinding[] = [];
      try {
        const result = this.files.scan(file, (found) => findings.push(...found));
        return { ok: true, result: { ...result, findings } };
      } catch (error) {
        return { ok: false, error };
      }
    };
    let taken = 0;
    try {
      await scanFilesOnWorkers(
        files.map((f) => f.full),
        jobs,
        setup,
        local,
        (index, scan) => {
          const { shown } = files[index] as { shown: string };
          taken = index + 1;
          if (scan.ok) {
            this.take(scan.result.findings, shown);
            this.count(scan.result);
          } else {
            this.fail(shown, reason(scan.error));
          }
        },
        this.deps.scanWorkerEntry,
      );
    } catch (err) {
      // A worker that crashed or exited loses nothing: the files not yet taken are scanned here, in order.
      problem(this.io, 'scan', `a worker thread failed (${reason(err)}): scanning the rest in-process`);
      for (const f of files.slice(taken)) this.scanFile(f.full, f.shown);
    }
  }

  /** Scans a file or a folder's files (`sink`: what to do with each file; default: scan it here and now). */
  async scanPath(input: string, sink?: (full: string, shown: string) => void): Promise<void> {
    const take = sink ?? ((full: string, shown: string) => this.scanFile(full, shown));
    const full = resolve(this.io.cwd, input);
    let isDir: boolean;
    try {
      isDir = (await stat(full)).isDirectory();
    } catch (err) {
      this.fail(input, reason(err));
      return;
    }
    if (!isDir) {
      take(full, this.shownPath(full));
      return;
    }
    // A folder named on the command line is scanned even when the excludes match it (`keyguard scan vendor`):
    // its content is then matched relative to it, not to the working directory.
    const rel = relative(this.io.cwd, full).split(sep).join('/');
    const inside = rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
    const base = rel === '' || (inside && !this.excludes.matches(`${rel}/`)) ? this.io.cwd : full;
    await this.walk(base, full, take);
  }

  /**
   * The path the excludes match, with `/` separators: relative to `base`, the working directory, or the folder
   * given when it is outside the working directory or matched by the excludes itself.
   */
  private matchPath(full: string, base: string): string {
    return relative(base, full).split(sep).join('/');
  }

  /**
   * Directories in name order; excluded paths (scan-exclude.ts: `.git`, node_modules… by default) are skipped
   * before they are read or handed to a worker; symbolic links are not followed.
   */
  private async walk(base: string, dir: string, take: (full: string, shown: string) => void): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      this.fail(this.shownPath(dir), reason(err));
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (!this.excludes.skip(`${this.matchPath(p, base)}/`)) await this.walk(base, p, take);
      } else if (e.isFile()) {
        if (!this.excludes.skip(this.matchPath(p, base))) take(p, this.shownPath(p));
      }
    }
  }

  async scanStdin(): Promise<void> {
    if (!this.deps.stdin) {
      this.fail('-', 'standard input is not available');
      return;
    }
    try {
      const scan = this.newByteScan();
      for await (const chunk of this.deps.stdin()) {
        this.take(scan.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk), '-');
      }
      this.finishSource(scan, '-');
    } catch (err) {
      this.fail('-', reason(err));
    }
  }

  /** Relative to the working directory when inside it, with `/` separators (SARIF and CI want that). */
  shownPath(full: string): string {
    const rel = relative(this.io.cwd, full);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return full.split(sep).join('/');
    return rel.split(sep).join('/');
  }

  /**
   * Every blob reachable from any ref, each with the first commit that introduced it. The blob list is cut into
   * `jobs` consecutive parts, each read by its own `git cat-file --batch` (git's inflating and delta resolving
   * is most of the work, and runs on as many cores); the first part's findings are taken as they come, the
   * others' kept until the parts before them are done, so the output is the same for any --jobs.
   */
  async scanGit(repoArg: string, jobs: number, range?: GitRange): Promise<void> {
    const repo = resolve(this.io.cwd, repoArg);
    const git = this.deps.gitBinary;
    try {
      const blobs = new Map<string, string>();
      let introduced: Map<string, { commit: string; path: string }>;
      if (range) {
        // A range: the blobs the selected commits add or change (as gitleaks and trufflehog scan a range).
        if (range.sinceCommit !== undefined) {
          await runGit(git, repo, [
            'rev-parse',
            '--verify',
            '--quiet',
            '--end-of-options',
            `${range.sinceCommit}^{commit}`,
          ]).catch(() => {
            throw new GitError(`--since-commit ${visible(range.sinceCommit ?? '')}: no such commit`);
          });
        }
        introduced = await blobIntroductions(git, repo, rangeArgs(range));
      } else {
        const [all, listing] = await Promise.all([
          blobIntroductions(git, repo, ['--all']),
          runGit(git, repo, ['rev-list', '--objects', '--all']),
        ]);
        introduced = all;
        for (const line of listing.split('\n')) {
          const space = line.indexOf(' ');
          if (space === -1) continue;
          const sha = line.slice(0, space);
          if (!blobs.has(sha)) blobs.set(sha, line.slice(space + 1));
        }
      }
      const place = (sha: string) => {
        const where = introduced.get(sha);
        return { path: where?.path ?? blobs.get(sha) ?? sha, commit: where?.commit };
      };
      // Excludes apply to the blobs a commit adds or changes (`introduced`: known to be blobs, counted once each).
      // rev-list also lists trees, and the rare blob reached only through a merge: those are read as before.
      const shas = [...new Set([...blobs.keys(), ...introduced.keys()])].filter((sha) => {
        const where = introduced.get(sha);
        return where === undefined || !this.excludes.skip(where.path);
      });
      const parts = Math.max(1, Math.min(jobs, Math.floor(shas.length / 64)));
      const kept: Array<Array<{ sha: string; findings: StreamFinding[]; scan?: ByteLeakScanner }>> = [];
      await Promise.all(
        Array.from({ length: parts }, (_, part) => {
          const from = Math.floor((part * shas.length) / parts);
          const to = Math.floor(((part + 1) * shas.length) / parts);
          const keep: (typeof kept)[number] = [];
          kept[part] = keep;
          const streamed = part === 0;
          return catBlobs(git, repo, shas.slice(from, to), {
            start: () => this.newByteScan(),
            data: (scan, sha, bytes) => {
              const found = scan.write(bytes);
              if (streamed) {
                const { path, commit } = place(sha);
                this.take(found, path, commit);
              } else if (found.length > 0) {
                keep.push({ sha, findings: found });
              }
            },
            end: (scan, sha) => {
              if (streamed) {
                const { path, commit } = place(sha);
                this.finishSource(scan, path, commit);
              } else {
                keep.push({ sha, findings: scan.end(), scan });
              }
            },
          });
        }),
      );
      for (const keep of kept.slice(1)) {
        for (const k of keep) {
          const { path, commit } = place(k.sha);
          this.take(k.findings, path, commit);
          if (k.scan) this.count(k.scan);
        }
      }
    } catch (err) {
      this.fail(`git ${repoArg}`, reason(err));
    }
  }

  /**
   * The staged content of the index: each blob `git diff --cached` adds or changes (whole, as it would be
   * committed, not the working tree's file), for a pre-commit hook. Excludes apply to the paths.
   */
  async scanStaged(repoArg: string): Promise<void> {
    const repo = resolve(this.io.cwd, repoArg);
    const git = this.deps.gitBinary;
    try {
      // Outside a repository `git diff` would compare files (--no-index) and fail on --cached: ask first.
      await runGit(git, repo, ['rev-parse', '--git-dir']);
      const raw = await runGit(git, repo, [
        'diff',
        '--cached',
        '--raw',
        '-z',
        '--no-abbrev',
        '--no-renames',
        '--no-ext-diff',
        '--no-textconv',
        '--diff-filter=ACMT',
      ]);
      const staged = new Map<string, string>();
      const fields = raw.split('\0');
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const sha = (fields[i] ?? '').split(' ')[3];
        const path = fields[i + 1] ?? '';
        if (sha && !/^0+$/.test(sha) && !this.excludes.skip(path) && !staged.has(sha)) staged.set(sha, path);
      }
      await catBlobs(git, repo, [...staged.keys()], {
        start: () => this.newByteScan(),
        data: (scan, sha, bytes) => this.take(scan.write(bytes), staged.get(sha) ?? sha),
        end: (scan, sha) => this.finishSource(scan, staged.get(sha) ?? sha),
      });
    } catch (err) {
      this.fail(`git ${repoArg} (staged)`, reason(err));
    }
  }
}

/** `--since-commit` and `--log-opts`, checked. */
export interface GitRange {
  sinceCommit?: string;
  selection?: LogSelection;
}

/** `git log` arguments for a range: allowed options, then revisions after --end-of-options, then paths. */
function rangeArgs(range: GitRange): string[] {
  const sel = range.selection ?? { options: [], revisions: [], paths: [], refSets: false };
  const revisions = [...sel.revisions];
  if (revisions.length === 0 && !sel.refSets) revisions.push('HEAD');
  if (range.sinceCommit !== undefined) revisions.push(`^${range.sinceCommit}`);
  return [...sel.options, '--end-of-options', ...revisions, '--', ...sel.paths];
}

/** A short reason for stderr (errno codes in words; `instanceof Error` is not used: errors may cross realms). */
function reason(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  const message =
    typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
  return typeof message === 'string' ? message : String(err);
}

export class GitError extends Error {}

function runGit(git: string, repo: string, args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(git, ['-C', repo, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', (e) => reject(new GitError(`cannot run git: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolvePromise(Buffer.concat(out).toString('utf8'));
      else reject(new GitError(err.trim().split('\n')[0] || `git ${args[0]} exited with ${code}`));
    });
  });
}

/**
 * For each blob, the first commit (in `git log --all --reverse` order: oldest first) whose diff adds or changes
 * a path to that blob, and the path. Blobs that appear only through merges are absent (reported without commit).
 */
async function blobIntroductions(
  git: string,
  repo: string,
  selection: string[],
): Promise<Map<string, { commit: string; path: string }>> {
  // The selection goes last: it ends with --end-of-options and revisions when it comes from --log-opts.
  const log = await runGit(git, repo, [
    'log',
    '--no-ext-diff',
    '--no-textconv',
    '--reverse',
    '--root',
    '--raw',
    '--no-abbrev',
    '--no-renames',
    '--diff-filter=AMT',
    '--format=%x01%H',
    '-z',
    ...selection,
  ]);
  const map = new Map<string, { commit: string; path: string }>();
  let commit = '';
  // With -z: "\x01<sha>\n" then NUL-separated ":<modes> <old> <new> <status>" and path fields.
  const fields = log.split('\0');
  for (let i = 0; i < fields.length; i += 1) {
    let f = fields[i] ?? '';
    const marker = f.lastIndexOf('\x01');
    if (marker !== -1) {
      commit = f.slice(marker + 1, marker + 41);
      f = f.slice(marker + 42);
    }
    f = f.replace(/^\n+/, '');
    if (!f.startsWith(':')) continue;
    const parts = f.split(' ');
    const sha = parts[3];
    const path = fields[i + 1] ?? '';
    i += 1;
    if (sha && !map.has(sha)) map.set(sha, { commit, path });
  }
  return map;
}

interface BlobSink {
  start(): ByteLeakScanner;
  data(scan: ByteLeakScanner, sha: string, bytes: Buffer): void;
  end(scan: ByteLeakScanner, sha: string): void;
}

/** Streams the objects through `git cat-file --batch`, one blob at a time, in chunks as they arrive. */
function catBlobs(git: string, repo: string, shas: string[], sink: BlobSink): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(git, ['-C', repo, 'cat-file', '--batch'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let header = Buffer.alloc(0);
    let current: { sha: string; remaining: number; scan?: ByteLeakScanner } | undefined;
    let skipNewline = false;
    let err = '';
    let failed: unknown;
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', (e) => reject(new GitError(`cannot run git: ${e.message}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      try {
        let b = chunk;
        while (b.length > 0) {
          if (skipNewline) {
            b = b.subarray(1);
            skipNewline = false;
            continue;
          }
          if (current) {
            const take = Math.min(current.remaining, b.length);
            if (current.scan) sink.data(current.scan, current.sha, b.subarray(0, take));
            current.remaining -= take;
            b = b.subarray(take);
            if (current.remaining === 0) {
              if (current.scan) sink.end(current.scan, current.sha);
              current = undefined;
              skipNewline = true;
            }
            continue;
          }
          const nl = b.indexOf(10);
          if (nl === -1) {
            header = Buffer.concat([header, b]);
            break;
          }
          const line = Buffer.concat([header, b.subarray(0, nl)]).toString();
          header = Buffer.alloc(0);
          b = b.subarray(nl + 1);
          const [sha = '', type, size] = line.split(' ');
          if (type === 'missing' || size === undefined) continue;
          current = { sha, remaining: Number(size), ...(type === 'blob' ? { scan: sink.start() } : {}) };
          if (current.remaining === 0) {
            if (current.scan) sink.end(current.scan, sha);
            current = undefined;
            skipNewline = true;
          }
        }
      } catch (e) {
        failed = e;
        child.kill();
      }
    });
    child.on('close', (code) => {
      if (failed) reject(failed);
      else if (code === 0) resolvePromise();
      else reject(new GitError(err.trim().split('\n')[0] || `git cat-file exited with ${code}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(shas.length ? `${shas.join('\n')}\n` : '');
  });
}

/** A baseline of more than this is refused (a fingerprint is about 70 bytes: over 100,000 of them). */
export const MAX_BASELINE_BYTES = 8 * 1024 * 1024;

/** Reads a baseline: a JSON array of fingerprints (strings or objects with `fingerprint`), or JSON lines. */
export async function readBaseline(file: string): Promise<Set<string>> {
  const text = readSmallText(file, MAX_BASELINE_BYTES);
  if (text === undefined) throw Object.assign(new Error('no such file or directory'), { code: 'ENOENT' });
  return parseBaseline(text);
}

/**
 * The default baseline as it is at `rev`, at the top of the scanned repository: undefined when it has none, or
 * when `rev` is no commit (the scan itself reports that). The file is the repository's, so read as hostile: a
 * regular blob (not a symbolic link or a submodule) of at most MAX_BASELINE_BYTES.
 */
async function readBaselineAtRevision(
  git: string,
  repo: string,
  rev: string,
): Promise<Set<string> | undefined> {
  try {
    await runGit(git, repo, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
  } catch {
    return undefined;
  }
  const listing = await runGit(git, repo, ['ls-tree', '--full-tree', '-l', rev, '--', DEFAULT_BASELINE]);
  if (listing.trim() === '') return undefined;
  const entry = /^(\d+) (\w+) ([0-9a-f]+) +(\d+|-)\t/.exec(listing);
  if (entry?.[2] !== 'blob' || !['100644', '100755'].includes(entry[1] ?? ''))
    throw new SmallFileError('not a regular file: not read');
  const size = Number(entry[4]);
  if (size > MAX_BASELINE_BYTES)
    throw new SmallFileError(`${size} bytes; allowed: at most ${MAX_BASELINE_BYTES}`);
  return parseBaseline(await runGit(git, repo, ['cat-file', 'blob', entry[3] ?? '']));
}

/** A baseline's text: a JSON array of fingerprints (strings or objects with `fingerprint`), or JSON lines. */
function parseBaseline(text: string): Set<string> {
  const out = new Set<string>();
  const add = (v: unknown) => {
    if (typeof v === 'string') out.add(v);
    else if (v && typeof v === 'object' && typeof (v as { fingerprint?: unknown }).fingerprint === 'string')
      out.add((v as { fingerprint: string }).fingerprint);
    else throw new Error('each entry must be a fingerprint string or an object with "fingerprint"');
  };
  const trimmed = text.trim();
  if (trimmed === '') return out;
  if (trimmed.startsWith('[')) {
    const parsed: unknown = JSON.parse(trimmed);
    if (!Array.isArray(parsed)) throw new Error('not a JSON array');
    for (const v of parsed) add(v);
    return out;
  }
  for (const line of trimmed.split('\n')) {
    if (line.trim() !== '') add(JSON.parse(line));
  }
  return out;
}

const RULES: Record<LeakKind, { id: string; name: string; text: string; help: string }> = {
  LONG_TERM: {
    id: 'bedrock-long-term-api-key',
    name: 'BedrockLongTermApiKey',
    text: 'Amazon Bedrock long-term API key',
    help:
      'A long-term Bedrock API key (an IAM service-specific credential) is in this file. Deactivate it at once ' +
      '(aws iam update-service-specific-credential --status Inactive), then delete it and remove it from the ' +
      'file and its history.',
  },
  SHORT_TERM: {
    id: 'bedrock-short-term-api-key',
    name: 'BedrockShortTermApiKey',
    text: 'Amazon Bedrock short-term API key',
    help:
      'A short-term Bedrock API key (a presigned token, valid up to 12 hours) is in this file. If it has not ' +
      'expired, revoke the sessions of the principal that signed it, then remove it from the file.',
  },
};

function facts(f: LocatedFinding): LongTermFacts | ShortTermFacts | undefined {
  return f.longTerm ?? f.shortTerm;
}

function describe(f: LocatedFinding): string {
  if (f.longTerm)
    return `long-term key of IAM user ${f.longTerm.userName} in account ${f.longTerm.accountId}`;
  const s = f.shortTerm;
  if (!s) return 'key';
  const state = s.expired ? `expired ${s.expiresAt}` : `valid until ${s.expiresAt}`;
  return (
    `short-term key signed by ${s.accessKeyId} in ${s.region} at ${s.signedAt}, ${state}` +
    (s.hasSessionToken ? ' (temporary credentials)' : '')
  );
}

function where(f: LocatedFinding): string {
  return `${f.commit ? `${f.commit.slice(0, 12)}:` : ''}${f.path}:${f.line}:${f.column}`;
}

/** One finding line; the path and the facts decoded from the key (its user name) are shown through visible(). */
export function textLine(f: LocatedFinding): string {
  const by = f.postedBy ? ` posted by ${f.postedBy}` : '';
  return visible(`${where(f)}: ${f.kind} ${describe(f)} ${f.redacted} ${f.fingerprint}${by}`);
}

export function jsonLine(f: LocatedFinding): string {
  return JSON.stringify({
    path: f.path,
    line: f.line,
    column: f.column,
    kind: f.kind,
    facts: facts(f),
    redacted: f.redacted,
    fingerprint: f.fingerprint,
    ...(f.commit ? { commit: f.commit } : {}),
    ...(f.postedBy ? { postedBy: f.postedBy } : {}),
  });
}

export function sarifLog(findings: readonly LocatedFinding[], version: string): Record<string, unknown> {
  const kinds: LeakKind[] = ['LONG_TERM', 'SHORT_TERM'];
  return {
    version: '2.1.0',
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    runs: [
      {
        tool: {
          driver: {
            name: 'keyguard',
            version,
            informationUri: 'https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html',
            rules: kinds.map((k) => ({
              id: RULES[k].id,
              name: RULES[k].name,
              shortDescription: { text: RULES[k].text },
              fullDescription: { text: `${RULES[k].text} found in source or output` },
              help: { text: RULES[k].help },
              defaultConfiguration: { level: 'error' },
              properties: {
                tags: ['security', 'secret'],
                precision: 'very-high',
                'security-severity': '9.5',
              },
            })),
          },
        },
        results: findings.map((f) => ({
          ruleId: RULES[f.kind].id,
          ruleIndex: kinds.indexOf(f.kind),
          level: 'error',
          message: { text: `${RULES[f.kind].text}: ${describe(f)} (${f.redacted}, ${f.fingerprint})` },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: f.path === '-' ? 'stdin' : encodeURI(f.path) },
                region: { startLine: f.line, startColumn: f.column },
              },
            },
          ],
          partialFingerprints: { 'keyguardFingerprint/v1': f.fingerprint },
          properties: {
            kind: f.kind,
            ...(f.commit ? { commit: f.commit } : {}),
            ...(f.postedBy ? { postedBy: f.postedBy } : {}),
          },
        })),
      },
    ],
  };
}

/** Runs `keyguard scan`; returns the exit code (0 nothing found, 1 keys found, 2 usage or read errors). */
/**
 * With --since-commit, the working tree's .keyguard-baseline.json is not applied: says how many of its fingerprints
 * are not in the one at REV (those a change adds to silence its own findings). A working-tree file that cannot be
 * read is not worth a word: it is not used.
 */
function noteUnappliedBaseline(io: CliIO, applied: ReadonlySet<string>, rev: string): void {
  let local: Set<string>;
  try {
    local = parseBaseline(readSmallText(resolve(io.cwd, DEFAULT_BASELINE), MAX_BASELINE_BYTES) ?? '');
  } catch {
    return;
  }
  const extra = [...local].filter((f) => !applied.has(f)).length;
  if (extra === 0) return;
  io.stderr.write(
    `keyguard scan: ${extra} fingerprint${extra === 1 ? '' : 's'} of ./${DEFAULT_BASELINE} ` +
      `${extra === 1 ? 'is' : 'are'} not in the baseline at ${visible(rev)} and ${extra === 1 ? 'was' : 'were'} ` +
      'not applied: a change cannot allow-list its own findings (merge the baseline change first, or pass --baseline)\n',
  );
}

export async function runScan(
  paths: readonly string[],
  opts: ScanOptions,
  io: CliIO,
  deps: ScanDeps,
): Promise<number> {
  const format = opts.format ?? 'text';
  if (!['text', 'json', 'sarif'].includes(format)) {
    problem(io, 'scan', `unknown --format ${format} (text, json or sarif)`);
    return EXIT_INPUT;
  }
  const collaboration = opts.slack || opts.jira !== undefined || opts.confluence !== undefined;
  if (paths.length === 0 && !opts.git && !opts.staged && !collaboration) {
    problem(
      io,
      'scan',
      'give paths to scan, - for standard input, --git, --staged, --slack, --jira or --confluence',
    );
    return EXIT_INPUT;
  }
  // s3:// arguments: checked before anything is read; --profile and --region also pick their client.
  const s3 = new Map<string, S3Location>();
  let since: Date | undefined;
  try {
    for (const p of paths) {
      const loc = parseS3Url(p);
      if (loc) s3.set(p, loc);
    }
    if (opts.since !== undefined) {
      if (s3.size === 0 && !collaboration)
        throw new S3UrlError('--since needs --slack or an s3:// source (or --jira, --confluence)');
      since = parseSince(opts.since, deps.now());
    }
  } catch (err) {
    if (!(err instanceof S3UrlError)) throw err;
    problem(io, 'scan', err.message);
    return EXIT_INPUT;
  }
  if (opts.jira !== undefined && opts.jira.trim() === '') {
    problem(io, 'scan', '--jira needs a JQL query selecting the issues (e.g. "project = OPS")');
    return EXIT_INPUT;
  }
  const spaces = opts.confluence === undefined ? undefined : spaceKeys(opts.confluence);
  if (spaces !== undefined && spaces.length === 0) {
    problem(io, 'scan', '--confluence needs a space key (e.g. --confluence OPS, or OPS,ENG)');
    return EXIT_INPUT;
  }
  if (opts.channel !== undefined && !opts.slack) {
    problem(io, 'scan', '--channel needs --slack');
    return EXIT_INPUT;
  }
  if ((opts.sinceCommit !== undefined || opts.logOpts !== undefined) && !opts.git) {
    problem(io, 'scan', `${opts.sinceCommit !== undefined ? '--since-commit' : '--log-opts'} needs --git`);
    return EXIT_INPUT;
  }
  let range: GitRange | undefined;
  let excludes: Excludes;
  try {
    if (opts.sinceCommit !== undefined)
      range = { sinceCommit: checkRevision('--since-commit', opts.sinceCommit) };
    if (opts.logOpts !== undefined) range = { ...range, selection: parseLogOpts(opts.logOpts) };
    excludes = Excludes.load(io.cwd, opts);
  } catch (err) {
    if (!(err instanceof LogOptsError || err instanceof ExcludeError)) throw err;
    problem(io, 'scan', visible(err.message));
    return EXIT_INPUT;
  }
  const awsFlags =
    (s3.size === 0 && (opts.profile !== undefined || opts.region !== undefined)) || opts.stack !== undefined;
  if ((opts.bus !== undefined || awsFlags) && !opts.quarantine) {
    const needs =
      s3.size === 0
        ? '--profile, --region and --stack need --quarantine or an s3:// source'
        : '--stack needs --quarantine';
    problem(io, 'scan', opts.bus !== undefined ? '--bus needs --quarantine' : needs);
    return EXIT_INPUT;
  }
  if (opts.quarantine && opts.writeBaseline) {
    problem(
      io,
      'scan',
      '--quarantine and --write-baseline: a baseline run reports nothing; use one or the other',
    );
    return EXIT_INPUT;
  }
  const jobs = opts.jobs === undefined ? 1 : Number(opts.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 256) {
    problem(io, 'scan', `--jobs must be a whole number from 1 to 256, not ${visible(String(opts.jobs))}`);
    return EXIT_INPUT;
  }
  // --baseline FILE must exist; without it, .keyguard-baseline.json is read when there is one: with
  // --since-commit REV, as it is at REV, so a change cannot allow-list its own findings (its author edits the file).
  let baseline = new Set<string>();
  let baselineUsed: string | undefined;
  const sinceCommit = opts.baseline === undefined && opts.git ? range?.sinceCommit : undefined;
  if (sinceCommit !== undefined) {
    const repo = resolve(io.cwd, typeof opts.git === 'string' ? opts.git : '.');
    const shown = `${DEFAULT_BASELINE} at ${visible(sinceCommit)}`;
    try {
      const atRevision = await readBaselineAtRevision(deps.gitBinary, repo, sinceCommit);
      baseline = atRevision ?? baseline;
      baselineUsed = atRevision ? shown : `(none at ${visible(sinceCommit)})`;
    } catch (err) {
      problem(io, shown, `cannot read baseline: ${reason(err)}`);
      return EXIT_INPUT;
    }
    noteUnappliedBaseline(io, baseline, sinceCommit);
  } else {
    const baselineFile = opts.baseline ?? DEFAULT_BASELINE;
    try {
      baseline = await readBaseline(resolve(io.cwd, baselineFile));
      baselineUsed = visible(baselineFile);
    } catch (err) {
      const missing = (err as { code?: unknown }).code === 'ENOENT';
      if (opts.baseline !== undefined || !missing) {
        problem(io, baselineFile, `cannot read baseline: ${reason(err)}`);
        return EXIT_INPUT;
      }
    }
  }
  // --slack: the token is checked (auth.test) before anything is scanned.
  let slack: SlackSource | undefined;
  if (opts.slack) {
    try {
      slack = await SlackSource.open(deps.slack);
    } catch (err) {
      if (!(err instanceof SlackAuthError)) throw err;
      problem(io, 'scan', err.message);
      return EXIT_INPUT;
    }
  }
  // --jira: the credentials are checked (/myself) before anything is scanned.
  let jira: JiraSource | undefined;
  if (opts.jira !== undefined) {
    try {
      jira = await JiraSource.open(deps.atlassian);
    } catch (err) {
      if (!(err instanceof AtlassianAuthError)) throw err;
      problem(io, 'scan', err.message);
      return EXIT_INPUT;
    }
  }
  // --confluence: the credentials are checked, and the spaces found, before anything is scanned.
  let confluence: ConfluenceSource | undefined;
  if (spaces !== undefined) {
    try {
      confluence = await ConfluenceSource.open(spaces, deps.atlassian);
    } catch (err) {
      if (!(err instanceof AtlassianAuthError)) throw err;
      problem(io, 'scan', err.message);
      return EXIT_INPUT;
    }
  }
  // --quarantine: the bus is found before anything is scanned (no stack, no scan).
  const quarantineFlags: QuarantineFlags = {
    ...(opts.bus !== undefined ? { bus: opts.bus } : {}),
    ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
    ...(opts.region !== undefined ? { region: opts.region } : {}),
    ...(opts.stack !== undefined ? { stack: opts.stack } : {}),
  };
  const quarantine = opts.quarantine ? await openQuarantine(quarantineFlags, io, deps.quarantine) : undefined;
  if (opts.quarantine && !quarantine) return EXIT_INPUT;
  // --output: the findings are kept and written at the end, in one go (output-file.ts), instead of streamed.
  const kept: string[] = [];
  const write =
    opts.output === undefined ? (text: string) => io.stdout.write(text) : (text: string) => kept.push(text);
  const emit = (f: LocatedFinding) => {
    if (format === 'text') write(`${textLine(f)}\n`);
    else if (format === 'json') write(`${jsonLine(f)}\n`);
  };
  const run = new ScanRun(io, deps, baseline, emit, excludes);
  let s3Source: S3Source | undefined;
  const scanS3 = async (arg: string, loc: S3Location) => {
    if (!s3Source) {
      let target: AwsTarget;
      try {
        target = awsTarget({ ...quarantineFlags, stack: undefined }, process.env);
      } catch (err) {
        if (!(err instanceof StackLookupError)) throw err;
        run.fail(arg, err.message);
        return;
      }
      s3Source = new S3Source(target, io, deps.s3);
    }
    await s3Source.scan(arg, loc, run, { jobs, command: 'scan', ...(since ? { since } : {}) });
  };
  if (jobs === 1) {
    for (const p of paths) {
      const loc = s3.get(p);
      if (p === '-') await run.scanStdin();
      else if (loc) await scanS3(p, loc);
      else await run.scanPath(p);
    }
  } else {
    // The files are listed first (in the order they would be scanned), then spread over the workers.
    let files: Array<{ full: string; shown: string }> = [];
    const flush = async () => {
      // One file: no worker to start (a file is scanned by one thread whatever --jobs says).
      if (files.length === 1) for (const f of files) run.scanFile(f.full, f.shown);
      else if (files.length > 1) await run.scanFilesOnWorkers(files, jobs);
      files = [];
    };
    for (const p of paths) {
      const loc = s3.get(p);
      if (p === '-') {
        await flush();
        await run.scanStdin();
      } else if (loc) {
        await flush();
        await scanS3(p, loc);
      } else {
        await run.scanPath(p, (full, shown) => files.push({ full, shown }));
      }
    }
    await flush();
  }
  if (opts.staged) await run.scanStaged(typeof opts.git === 'string' ? opts.git : '.');
  if (opts.git) await run.scanGit(opts.git === true ? '.' : opts.git, jobs, range);
  if (slack) {
    await slack.scan(run.textSink(), {
      ...(opts.channel ? { channels: opts.channel } : {}),
      ...(since ? { since } : {}),
    });
    io.stderr.write(slackSummary(slack.stats));
  }
  if (jira && opts.jira !== undefined) {
    await jira.scan(run.textSink(), { jql: opts.jira, now: deps.now(), ...(since ? { since } : {}) });
    io.stderr.write(jiraSummary(jira.stats));
  }
  if (confluence) {
    await confluence.scan(run.textSink(), since ? { since } : {});
    io.stderr.write(confluenceSummary(confluence.stats));
  }
  if (format === 'sarif') write(`${JSON.stringify(sarifLog(run.reported, deps.version), null, 2)}\n`);
  let outputFailed = false;
  if (opts.output !== undefined) {
    try {
      writeOutputFile(resolve(io.cwd, opts.output), kept.join(''), {
        display: opts.output,
        forceOption: null,
      });
    } catch (err) {
      problem(io, opts.output, `cannot write --output: ${reason(err)}`);
      outputFailed = true;
    }
  }

  const counts = { LONG_TERM: 0, SHORT_TERM: 0 };
  for (const f of run.reported) counts[f.kind] += 1;
  io.stderr.write(
    `keyguard scan: ${run.reported.length} key${run.reported.length === 1 ? '' : 's'} found ` +
      `(${counts.LONG_TERM} long-term, ${counts.SHORT_TERM} short-term) in ${run.sources} source` +
      `${run.sources === 1 ? '' : 's'} scanned; ${run.binary} binary searched as bytes; ` +
      (run.utf16 > 0 ? `${run.utf16} UTF-16; ` : '') +
      (run.invalidUtf8 > 0
        ? `${run.invalidUtf8} invalid UTF-8 sequence${run.invalidUtf8 === 1 ? '' : 's'} read as U+FFFD in ` +
          `${run.invalidUtf8Sources} source${run.invalidUtf8Sources === 1 ? '' : 's'}; `
        : '') +
      run.excludes.summary() +
      'suppressed: ' +
      `${run.suppressedInline} by keyguard:allow, ${run.suppressedBaseline} by baseline` +
      (baselineUsed === undefined ? '; ' : ` ${baselineUsed}; `) +
      `${run.errors.length} error${run.errors.length === 1 ? '' : 's'}\n`,
  );

  if (opts.writeBaseline) {
    try {
      const all = [...new Set([...baseline, ...run.fingerprints])].sort();
      writeOutputFile(resolve(io.cwd, opts.writeBaseline), `${JSON.stringify(all, null, 2)}\n`, {
        display: opts.writeBaseline,
        forceOption: null,
      });
      io.stderr.write(
        `keyguard scan: baseline ${visible(opts.writeBaseline)} written with ${all.length} fingerprints\n`,
      );
    } catch (err) {
      problem(io, opts.writeBaseline, `cannot write baseline: ${reason(err)}`);
      return EXIT_INPUT;
    }
    return run.errors.length > 0 ? EXIT_INPUT : EXIT_OK;
  }
  // Reported even when some sources could not be read: what was found is a leak whatever else failed.
  const delivery = quarantine
    ? await quarantine.send(run.reported, { version: deps.version, scannedAt: deps.now().toISOString() })
    : null;
  if (delivery !== null) return delivery;
  if (run.errors.length > 0 || outputFailed) return EXIT_INPUT;
  return run.reported.length > 0 ? EXIT_FOUND : EXIT_OK;
}
