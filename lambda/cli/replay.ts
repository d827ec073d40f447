import { basename, resolve } from 'node:path';
import { ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { auditTableDefinitions, DynamoAuditLog } from '../adapters/audit-store';
import {
  type EmbeddedDynamo,
  ensureTables,
  startEmbeddedDynamo,
  storeFailure,
} from '../adapters/embedded-dynamodb';
import { DynamoUsageStore, usageTableDefinition } from '../adapters/usage-store';
import {
  type CloudTrailRecord,
  CloudTrailRecordSchema,
  CREDENTIAL_EVENTS,
  classifyRecord,
  EventBridgeEventSchema,
  EventShapeError,
  type KeyEvent,
  latestPlausibleTime,
  USER_LIFECYCLE_EVENTS,
  USER_TAG_EVENTS,
} from '../domain/cloudtrail';
import { buildNotice, type Notice } from '../domain/notice';
import { type Enforcer, type Notifier, processKeyEvent } from '../domain/pipeline';
import { ReplayDirectory } from '../domain/replay-directory';
import type { Decision } from '../domain/types';
import {
  BEDROCK_SOURCES,
  describeUsage,
  mergeAggregates,
  type SubjectUsage,
  subjectId,
} from '../domain/usage';
import {
  groupUses,
  identityOf,
  mergeUsage,
  processUsageGroups,
  type UsageRecorder,
} from '../domain/usage-pipeline';
import type { BearerUse, UsageAggregate, UsageSource } from '../domain/usage-types';
import { type Config, ConfigError, loadConfig, policyVersion } from '../shared/config';
import { DEFAULT_STALL_MS, defaultJobs, type ScannedFile, scanFiles } from './archive-pool';
import type { ScanFilter } from './archive-scan';
import { inWindow, logFileTime, parseWindow, type ReplayWindow, ReplayWindowError } from './archive-window';
import { FailOnError, parseFailOn, storeFailing, withPosture } from './fail-on';
import {
  type DecisionRow,
  decisionJson,
  decisionTable,
  type ReplayTotals,
  summaryText,
  type UsageTotals,
} from './format';
import {
  DEFAULT_READ_LIMITS,
  discoverInputs,
  type Entry,
  type InputProblem,
  MiB,
  messageOf,
  type ReadLimits,
} from './inputs';
import { type CliIO, EXIT_FAILURE, EXIT_INPUT, EXIT_OK, failure, problem, writeStyled } from './io';
import { startProgress } from './replay-progress';
import { lockStore } from './store-lock';

/**
 * `keyguard replay`: flows 1 (key events) and 3 (key usage) of design.md over CloudTrail log files, offline.
 * State is rebuilt from the events (ReplayDirectory), decisions go to an embedded DynamoDB, enforcement is
 * planned and never applied, notices are counted and never sent.
 *
 * One pass over the inputs keeps the IAM events (few) and folds the Bedrock calls made with an API key, as they
 * come, into aggregates per (UTC minute, caller identity, replayed by an earlier run or not): memory grows with
 * callers and their active minutes, never with calls or bytes. Once every IAM event time is known, the minute
 * aggregates are folded into aggregates per (IAM event interval, UTC hour, caller identity), which go through
 * the key-usage function's own code (usage-pipeline.ts) in time order, between the IAM events they fall
 * between, so attribution sees the keys as they were when the calls were made. A minute is placed by its
 * first call: calls made in the same minute as an IAM event but after it are replayed as if made before it
 * (the one approximation; a second read of the inputs would cost more than it is worth).
 */

export interface ReplayOptions {
  /** Policy config file; default `keyguard.config.json` in cwd when present, else the built-in defaults. */
  config?: string;
  /** Audit store directory; default `.keyguard` in cwd. */
  store?: string;
  /** One decision JSON per line on stdout, everything else on stderr. */
  json?: boolean;
  /** Only records with eventTime at or after this (YYYY-MM-DD or ISO with a zone). */
  since?: string;
  /** Only records with eventTime before this (exclusive). */
  until?: string;
  /** Files scanned in parallel (worker threads); 1 scans in-process. Default: the available cores. */
  jobs?: number | string;
  /** No progress bar and no totals: only decisions (stdout) and problems (stderr). */
  quiet?: boolean;
  /** MiB read from one file at most, decompressed (a larger file is reported, not read). Default 512. */
  maxFileSize?: number | string;
  /** MiB of one record or JSON line at most (a longer one is reported and skipped). Default 32. */
  maxRecordSize?: number | string;
  /** Seconds a file may make no progress before it is reported and given up on. Default 120. */
  stallTimeout?: number | string;
  /** Exit 1 when a live key of the store ends the run with a violation at or above this (fail-on.ts). */
  failOn?: string;
}

export const DEFAULT_STORE_DIR = '.keyguard';
export const REPLAY_TABLES = {
  decisionsTable: 'keyguard-decisions',
  keysTable: 'keyguard-keys',
  usageTable: 'keyguard-usage',
} as const;

const RELEVANT_EVENTS: ReadonlySet<string> = new Set<string>([
  ...CREDENTIAL_EVENTS,
  ...USER_TAG_EVENTS,
  ...USER_LIFECYCLE_EVENTS,
]);
const IAM_SOURCE = 'iam.amazonaws.com';
/**
 * What a record must mention to be parsed at all (see archive-scan.ts): the followed IAM events and the Bedrock
 * calls made with an API key (SigV4 Bedrock calls are only counted).
 */
export const REPLAY_FILTER: ScanFilter = {
  source: IAM_SOURCE,
  eventNames: [...RELEVANT_EVENTS],
  usage: 'keep',
};
/** Uses buffered before they are folded into their minute aggregates. */
export const USAGE_FLUSH_USES = 5000;
/** The usage item where the store remembers, per account, the latest call earlier runs replayed. */
export const USAGE_MARK_SUBJECT = 'meta#replay-counted-through';
/** More workers than this only adds start-up time and memory. */
const MAX_JOBS = 64;

/** A bad --jobs value. */
export class ReplayUsageError extends Error {}

/** A whole number from 1 to max, or undefined when absent; the error names the option and the unit. */
function wholeNumber(
  option: string,
  value: number | string | undefined,
  unit: string,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new ReplayUsageError(
      `${option}: ${JSON.stringify(String(value))} is not a whole number of ${unit} from 1 to ${max}`,
    );
  }
  return n;
}

/**
 * `--max-file-size`, `--max-record-size` (MiB) and `--stall-timeout` (seconds). The upper bounds are what Node
 * can hold: a file read whole is one Buffer (4 GiB at most), a record one string (512 MiB at most).
 */
export function parseReadBounds(options: ReplayOptions): { limits: ReadLimits; stallMs: number } {
  const file = wholeNumber('--max-file-size', options.maxFileSize, 'MiB', 4096);
  const record = wholeNumber('--max-record-size', options.maxRecordSize, 'MiB', 256);
  const stall = wholeNumber('--stall-timeout', options.stallTimeout, 'seconds', 86_400);
  return {
    limits: {
      maxFileBytes: file === undefined ? DEFAULT_READ_LIMITS.maxFileBytes : file * MiB,
      maxRecordBytes: record === undefined ? DEFAULT_READ_LIMITS.maxRecordBytes : record * MiB,
    },
    stallMs: stall === undefined ? DEFAULT_STALL_MS : stall * 1000,
  };
}

/** `--jobs`: a whole number from 1 to MAX_JOBS; absent means one per available core. */
export function parseJobs(value: number | string | undefined): number {
  if (value === undefined) return Math.min(MAX_JOBS, defaultJobs());
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_JOBS) {
    throw new ReplayUsageError(
      `--jobs: ${JSON.stringify(String(value))} is not a whole number from 1 to ${MAX_JOBS}`,
    );
  }
  return n;
}

/** Replay never touches IAM: a deactivation is planned, and the decision says so (`applied: false`). */
export class PlannedEnforcer implements Enforcer {
  readonly planned: Array<{ accountId: string; userName: string; keyId: string }> = [];
  async deactivate(accountId: string, userName: string, keyId: string): Promise<boolean> {
    this.planned.push({ accountId, userName, keyId });
    return false;
  }
}

/** Collects the notices the live pipeline would publish; sends nothing. */
export class CollectingNotifier implements Notifier {
  readonly notices: Notice[] = [];
  constructor(private readonly config: Config) {}
  async notify(decision: Decision): Promise<void> {
    this.notices.push(buildNotice(decision, this.config));
  }
}

interface SourcedEvent {
  event: KeyEvent;
  /** Input order, to keep ties in eventTime stable. */
  seq: number;
}

function where(p: InputProblem | { path: string; line: number | null }): string {
  return p.line === null ? p.path : `${p.path}:${p.line}`;
}

function bump(m: Map<string, number>, key: string, by = 1): void {
  m.set(key, (m.get(key) ?? 0) + by);
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

function zodReason(kind: string, issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  const first = issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`)
    .join('; ');
  return `invalid ${kind} (${first})`;
}

interface Collected {
  events: SourcedEvent[];
  totals: Pick<
    ReplayTotals,
    'filesRead' | 'filesWithErrors' | 'filesSkipped' | 'eventsRead' | 'relevant' | 'rejected' | 'ignored'
  >;
  problems: number;
  /** Records that look like Bedrock calls made with an API key. */
  bearerCandidates: number;
  /** Their uses, folded per minute and caller. */
  usage: UsageFolder;
  /** Bearer-token candidates that showed no usable use (incomplete, or not a bearer-token call after all). */
  unusable: number;
}

interface CollectOptions {
  window: ReplayWindow;
  jobs: number;
  /** What one file and one record may hold, and how long a file may make no progress. */
  bounds: { limits: ReadLimits; stallMs: number };
  quiet: boolean;
  /** Per account: uses at or before this time were replayed by an earlier run on this store. */
  countedThrough: ReadonlyMap<string, string>;
  /** When the run started: records dated well after it (or after their file's delivery) are refused. */
  now: Date;
}

/**
 * Reads every input and keeps the relevant records as normalised events: only these (small, rare) are held
 * for the time-ordered pass; files are streamed one by one (several at once with workers). Records that cannot
 * matter are counted from their raw text without being parsed (archive-scan.ts); candidates are validated here.
 * Bearer-token calls are folded at once into per-minute aggregates (UsageFolder), never kept one by one.
 */
/** The inputs found, and their scan already begun. */
interface StartedScan {
  discovered: Awaited<ReturnType<typeof discoverInputs>>;
  results: AsyncGenerator<ScannedFile>;
  /** The first result, asked for at once: that starts the workers (and the first reads). */
  first: Promise<IteratorResult<ScannedFile>>;
}

/**
 * Finds the inputs and starts scanning them before the store is opened: the workers start, and read and
 * decompress the first files, while this thread loads and opens the embedded store (most of replay's fixed
 * cost). Nothing is reported yet: collect() reports in input order once the store is open.
 */
async function startScan(
  paths: readonly string[],
  io: CliIO,
  options: Pick<CollectOptions, 'window' | 'jobs' | 'bounds'>,
): Promise<StartedScan> {
  const discovered = await discoverInputs(paths, io.cwd, options.window);
  const results = scanFiles(discovered.files, REPLAY_FILTER, options.jobs, options.bounds);
  const first = results.next();
  // Awaited by collect(), or dropped by stopScan() when the store cannot be opened.
  first.catch(() => {});
  return { discovered, results, first };
}

/** Stops a scan that will not be collected (its workers are terminated). */
async function stopScan(started: StartedScan | null): Promise<void> {
  if (started === null) return;
  try {
    await started.results.return(undefined);
  } catch {
    // Nothing of it is reported: the run is already failing for another reason.
  }
}

async function collect(started: StartedScan, io: CliIO, options: CollectOptions): Promise<Collected> {
  const totals: Collected['totals'] = {
    filesRead: 0,
    filesWithErrors: 0,
    filesSkipped: 0,
    eventsRead: 0,
    relevant: 0,
    rejected: 0,
    ignored: new Map(),
  };
  let problems = 0;
  const report = (p: InputProblem) => {
    problems += 1;
    problem(io, where(p), p.reason);
  };

  const { files, problems: missing, skippedByDate } = started.discovered;
  for (const p of missing) report(p);
  totals.filesWithErrors += missing.length;
  totals.filesSkipped = skippedByDate;

  const progress = startProgress(io.stderr, {
    quiet: options.quiet,
    totalBytes: files.reduce((a, f) => a + f.bytes, 0),
    totalFiles: files.length,
  });
  const events: SourcedEvent[] = [];
  /** eventID → where it was first read and its normalised content, to tell a copy from a conflicting one. */
  const seenEventIds = new Map<string, { at: string; content: string }>();
  let seq = 0;
  let bearerCandidates = 0;
  let unusable = 0;
  const usage = new UsageFolder(options.countedThrough);
  try {
    const { results } = started;
    for (let next = await started.first; !next.done; next = await results.next()) {
      const { file, scan } = next.value;
      progress.fileDone(file.bytes);
      totals.filesRead += 1;
      if (scan.problems.length > 0) totals.filesWithErrors += 1;
      for (const p of scan.problems) report(p);
      // Not a failure: the file is replayed as decoded (JSON's structure is ASCII, so the damage is inside
      // strings), but CloudTrail writes valid UTF-8 only: the file was damaged or made by something else.
      if (scan.invalidUtf8 > 0) {
        const n = scan.invalidUtf8;
        const what =
          n === 1 ? '1 invalid UTF-8 sequence, read as' : `${n} invalid UTF-8 sequences, each read as`;
        problem(io, `warning: ${file.display}`, `${what} U+FFFD`);
      }
      totals.eventsRead += scan.records;
      // A record dated after its log file was delivered (or well after this run) is not believed.
      const delivered = logFileTime(basename(file.absolute));
      const notAfter = latestPlausibleTime(options.now, delivered === null ? null : new Date(delivered));
      for (const [reason, n] of Object.entries(scan.skipped)) if (n > 0) bump(totals.ignored, reason, n);
      for (const entry of scan.entries) {
        const bedrock = bedrockCall(entry);
        if (bedrock === 'bearer') {
          bearerCandidates += 1;
          const use = useOf(entry, notAfter);
          if (typeof use === 'string') {
            totals.rejected += 1;
            report({ path: file.display, line: entry.line, reason: use });
          } else if (use === null) unusable += 1;
          else if (!inWindow(options.window, use.eventTime)) bump(totals.ignored, 'outside-window');
          else usage.add(use);
          continue;
        }
        if (bedrock === 'sigv4') {
          bump(totals.ignored, 'not-bearer-token');
          continue;
        }
        const one = classifyEntry(entry, notAfter);
        if (one.kind === 'ignored') {
          bump(totals.ignored, one.reason);
          continue;
        }
        if (one.kind === 'invalid') {
          totals.relevant += 1;
          totals.rejected += 1;
          report({ path: file.display, line: entry.line, reason: one.reason });
          continue;
        }
        if (!inWindow(options.window, one.event.meta.eventTime)) {
          bump(totals.ignored, 'outside-window');
          continue;
        }
        totals.relevant += 1;
        // CloudTrail may deliver a record twice, and the same event can arrive both in a log file and as an
        // EventBridge event: replay each eventID once.
        // A copy with other content is corruption or forgery, and replay cannot tell which copy is true: the
        // first read (input order, so the same for any --jobs) is replayed, and the conflict is reported.
        const content = JSON.stringify(one.event);
        const first = seenEventIds.get(one.event.meta.eventId);
        if (first) {
          bump(totals.ignored, 'duplicate-record');
          if (first.content !== content) {
            report({
              path: file.display,
              line: entry.line,
              reason:
                `event ${one.event.meta.eventId} was already read from ${first.at} with different content ` +
                '(corruption or forgery): the first copy is replayed, this one is not',
            });
          }
          continue;
        }
        seenEventIds.set(one.event.meta.eventId, {
          at: where({ path: file.display, line: entry.line }),
          content,
        });
        events.push({ event: one.event, seq: seq++ });
      }
    }
  } finally {
    progress.stop();
    // A throw above leaves the scan unfinished: its workers are stopped (a finished scan ignores this).
    await stopScan(started);
  }
  return { events, totals, problems, bearerCandidates, usage, unusable };
}

function detailOf(entry: Entry): Record<string, unknown> {
  const detail = entry.envelope === 'eventbridge' ? entry.value.detail : entry.value;
  return detail !== null && typeof detail === 'object' ? (detail as Record<string, unknown>) : {};
}

/**
 * A parsed entry that is a Bedrock call (entries of event files and single records arrive parsed, without the
 * cheap test): with an API key (`bearer`), without (`sigv4`), or not Bedrock (null).
 */
function bedrockCall(entry: Entry): 'bearer' | 'sigv4' | null {
  const raw = detailOf(entry);
  if (!(BEDROCK_SOURCES as readonly unknown[]).includes(raw.eventSource)) return null;
  const text = JSON.stringify(raw);
  return text.includes('callWithBearerToken') || text.includes('bearerTokenType') ? 'bearer' : 'sigv4';
}

/**
 * The use a bearer-token entry shows; null when it shows none (a broken record, or not a use after all); a
 * message when it must not be counted and someone should know (a time or an account that cannot be believed).
 */
function useOf(entry: Entry, notAfter: Date): BearerUse | string | null {
  let record: CloudTrailRecord;
  let envelopeAccount: string | null = null;
  if (entry.envelope === 'eventbridge') {
    const parsed = EventBridgeEventSchema.safeParse(entry.value);
    if (!parsed.success) return null;
    record = parsed.data.detail;
    envelopeAccount = parsed.data.account;
  } else {
    const parsed = CloudTrailRecordSchema.safeParse(entry.value);
    if (!parsed.success) return null;
    record = parsed.data;
  }
  const c = describeUsage(record, { envelopeAccount, notAfter });
  if (c.detail) return `${record.eventName} ${record.eventID}: ${c.detail}; not replayed`;
  return c.use ?? null;
}

/** One step of the usage replay: aggregates of one IAM event interval and UTC hour. */
interface UsageChunk {
  /** How many IAM events (in replay order) come before these uses. */
  epoch: number;
  /** Replayed by an earlier run on this store: neither counted nor decided again. */
  counted: boolean;
  groups: SubjectUsage[];
}

/** A caller's uses in one UTC minute, on one side of its account's counted-through mark. */
interface MinuteUsage {
  counted: boolean;
  g: SubjectUsage;
}

/**
 * Folds uses, as the single pass reads them, into aggregates per (UTC minute, counted, caller identity) with
 * bounded memory: uses are buffered and grouped every USAGE_FLUSH_USES. A caller's identity is everything
 * attribution reads, so its uses can be aggregated before the directory is asked whose key it was
 * (processUsageGroups). The IAM event times are not known until the pass ends, so the fold is by minute: a
 * busy key's thousands of calls an hour make at most 60 aggregates, and `chunks` can still place each minute
 * between the IAM events around it. Whether a use was replayed by an earlier run is known during the pass (the
 * store's marks are read first), so the per-account mark splits a minute exactly.
 */
class UsageFolder {
  private readonly minutes = new Map<string, MinuteUsage>();
  private readonly buffer = new Map<string, { counted: boolean; uses: BearerUse[] }>();
  private buffered = 0;

  constructor(
    /** Per account: uses at or before this time were replayed by an earlier run. */
    private readonly countedThrough: ReadonlyMap<string, string>,
  ) {}

  add(use: BearerUse): void {
    const mark = this.countedThrough.get(use.accountId);
    const counted = mark !== undefined && use.eventTime <= mark;
    const id = `${use.eventTime.slice(0, 16)}|${counted ? 'a' : 'b'}|${identityOf(use)}`;
    let slot = this.buffer.get(id);
    if (!slot) {
      slot = { counted, uses: [] };
      this.buffer.set(id, slot);
    }
    slot.uses.push(use);
    this.buffered += 1;
    if (this.buffered >= USAGE_FLUSH_USES) this.flush();
  }

  private flush(): void {
    for (const [id, slot] of this.buffer) {
      for (const g of groupUses(slot.uses)) merge(this.minutes, id, slot.counted, g);
    }
    this.buffer.clear();
    this.buffered = 0;
  }

  /**
   * The usage replay's steps in time order: the minute aggregates folded per (epoch, UTC hour, counted, caller
   * identity), identities in a stable order within each. A minute's epoch is that of its first use (`firstUsedAt`
   * is the earliest attempt): the only difference from placing every use by its own time.
   */
  chunks(eventTimes: readonly string[]): UsageChunk[] {
    this.flush();
    const hours = new Map<string, MinuteUsage & { chunk: string; epoch: number }>();
    for (const [id, { counted, g }] of this.minutes) {
      const epoch = upperBound(eventTimes, g.aggregate.firstUsedAt);
      const chunk = `${String(epoch).padStart(10, '0')}|${id.slice(0, 13)}|${counted ? 'a' : 'b'}`;
      const key = `${chunk}|${id.slice(19)}`;
      const current = hours.get(key);
      const { subject, keyType } = g.aggregate;
      hours.set(key, {
        chunk,
        epoch,
        counted,
        g: current ? mergeUsage(current.g, g, { subject, keyType }) : g,
      });
    }
    const out: Array<UsageChunk & { chunk: string }> = [];
    for (const key of [...hours.keys()].sort()) {
      const one = hours.get(key);
      if (!one) continue;
      const last = out[out.length - 1];
      if (last && last.chunk === one.chunk) last.groups.push(one.g);
      else out.push({ chunk: one.chunk, epoch: one.epoch, counted: one.counted, groups: [one.g] });
    }
    return out;
  }
}

/** Adds a group to the aggregate held under this id (the same caller: merged as aggregateUses would). */
function merge(into: Map<string, MinuteUsage>, id: string, counted: boolean, g: SubjectUsage): void {
  const current = into.get(id);
  const { subject, keyType } = g.aggregate;
  into.set(id, { counted, g: current ? mergeUsage(current.g, g, { subject, keyType }) : g });
}

/** The number of sorted times at or before t. */
function upperBound(sorted: readonly string[], t: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as string) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

type Classified =
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; reason: string }
  | { kind: 'event'; event: KeyEvent };

function classifyEntry(entry: Entry, notAfter: Date): Classified {
  const envelope = entry.value;
  const detail = entry.envelope === 'eventbridge' ? envelope.detail : envelope;
  const raw = detail !== null && typeof detail === 'object' ? (detail as Record<string, unknown>) : {};
  if (raw.eventSource !== IAM_SOURCE) return { kind: 'ignored', reason: 'not-iam' };
  if (typeof raw.eventName !== 'string' || !RELEVANT_EVENTS.has(raw.eventName)) {
    return { kind: 'ignored', reason: 'unsupported-event' };
  }

  const eventId = str(raw.eventID) ?? str(envelope.id) ?? '(no eventID)';
  let record: CloudTrailRecord;
  let envelopeAccount: string | null = null;
  if (entry.envelope === 'eventbridge') {
    const parsed = EventBridgeEventSchema.safeParse(envelope);
    if (!parsed.success) {
      return {
        kind: 'invalid',
        reason: `event ${eventId}: ${zodReason('EventBridge event', parsed.error.issues)}`,
      };
    }
    record = parsed.data.detail;
    envelopeAccount = parsed.data.account;
  } else {
    const parsed = CloudTrailRecordSchema.safeParse(envelope);
    if (!parsed.success) {
      return {
        kind: 'invalid',
        reason: `event ${eventId}: ${zodReason('CloudTrail record', parsed.error.issues)}`,
      };
    }
    record = parsed.data;
  }

  try {
    const c = classifyRecord(record, { envelopeAccount, notAfter });
    if (c.relevant) return { kind: 'event', event: c.event };
    // An account or a time that cannot be believed: reported (the record is refused, never acted on).
    if (c.detail)
      return { kind: 'invalid', reason: `${c.eventName} ${c.eventId}: ${c.detail}; not replayed` };
    return { kind: 'ignored', reason: c.reason };
  } catch (err) {
    if (err instanceof EventShapeError) return { kind: 'invalid', reason: err.message };
    throw err;
  }
}

/**
 * The usage store as the usage replay writes it: each replay step's aggregates are merged in memory per
 * subject and written once, when something is about to read the store (a usage decision evaluating UNUSED)
 * and at the end. A year of hourly steps thus costs one write per subject between two reads instead of one
 * per subject and hour (the embedded store's writes, not the reading of the archive, were most of the usage
 * replay's time). Memory grows with subjects, not with steps.
 */
export class PendingUsage implements UsageRecorder, UsageSource {
  private readonly pending = new Map<string, UsageAggregate>();

  constructor(private readonly store: UsageRecorder & UsageSource) {}

  async recordUses(aggregates: ReadonlyArray<UsageAggregate>): Promise<void> {
    for (const a of aggregates) {
      const ref = subjectId(a.accountId, a.subject);
      const current = this.pending.get(ref);
      this.pending.set(ref, current ? mergeAggregates(current, a) : a);
    }
  }

  /** Writes what is pending (nothing when nothing is). */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const aggregates = [...this.pending.values()];
    this.pending.clear();
    await this.store.recordUses(aggregates);
  }

  async lastUsedFor(
    accountId: string,
    keys: ReadonlyArray<{ keyId: string; userName: string }>,
  ): Promise<Map<string, string | null>> {
    await this.flush();
    return this.store.lastUsedFor(accountId, keys);
  }

  async trackingSince(accountId: string): Promise<string | null> {
    await this.flush();
    return this.store.trackingSince(accountId);
  }
}

/** What the usage replay saw, for the totals. */
class UsageTally {
  private calls = 0;
  private longTerm = 0;
  private shortTerm = 0;
  private earlier = 0;
  private readonly keys = new Set<string>();
  /** Users holding two keys: their calls cannot be credited to one. */
  private readonly users = new Set<string>();
  /** Users none of whose keys this store knows (created before the replayed logs, or elsewhere). */
  private readonly unknownKeys = new Set<string>();
  private readonly principals = new Set<string>();
  /** Per account, the latest call this run counted (the store's mark moves to it). */
  readonly latestCounted = new Map<string, string>();

  /** `keysUnknown`: the users (`<account>|<user>`) of these subjects none of whose keys the directory knows. */
  add(subjects: readonly SubjectUsage[], keysUnknown: ReadonlySet<string> = new Set()): void {
    for (const { aggregate: a } of subjects) {
      this.calls += a.calls;
      const mark = this.latestCounted.get(a.accountId);
      if (mark === undefined || a.lastAttemptAt > mark) this.latestCounted.set(a.accountId, a.lastAttemptAt);
      const s = a.subject;
      if (s.kind === 'principal') {
        this.shortTerm += a.calls;
        this.principals.add(`${a.accountId}|${s.principalArn}`);
      } else {
        this.longTerm += a.calls;
        if (s.kind === 'key') this.keys.add(`${a.accountId}|${s.keyId}`);
        else {
          const user = `${a.accountId}|${s.userName}`;
          (keysUnknown.has(user) ? this.unknownKeys : this.users).add(user);
        }
      }
    }
  }

  earlierRun(groups: readonly SubjectUsage[]): void {
    for (const g of groups) this.earlier += g.aggregate.calls;
  }

  totals(skipped: number): UsageTotals {
    return {
      calls: this.calls,
      longTermCalls: this.longTerm,
      keys: this.keys.size,
      usersWithSeveralKeys: this.users.size,
      usersWithUnknownKeys: this.unknownKeys.size,
      shortTermCalls: this.shortTerm,
      principals: this.principals.size,
      countedEarlier: this.earlier,
      skipped,
    };
  }
}

/** Per account, the latest call an earlier run on this store replayed (none: a fresh store). */
async function usageCountedThrough(store: EmbeddedDynamo): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let start: Record<string, unknown> | undefined;
  do {
    const res = await store.doc.send(
      new ScanCommand({
        TableName: REPLAY_TABLES.usageTable,
        FilterExpression: 'subject = :s',
        ExpressionAttributeValues: { ':s': USAGE_MARK_SUBJECT },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of res.Items ?? []) {
      if (typeof item.accountId === 'string' && typeof item.countedThrough === 'string')
        out.set(item.accountId, item.countedThrough);
    }
    start = res.LastEvaluatedKey;
  } while (start);
  return out;
}

/** Moves each account's usage mark forward (never back). */
async function recordUsageCountedThrough(
  store: EmbeddedDynamo,
  marks: ReadonlyMap<string, string>,
): Promise<void> {
  for (const [accountId, at] of marks) {
    try {
      await store.doc.send(
        new UpdateCommand({
          TableName: REPLAY_TABLES.usageTable,
          Key: { accountId, subject: USAGE_MARK_SUBJECT },
          UpdateExpression: 'SET countedThrough = :t',
          ConditionExpression: 'attribute_not_exists(countedThrough) OR countedThrough < :t',
          ExpressionAttributeValues: { ':t': at },
        }),
      );
    } catch (err) {
      if ((err as { name?: string } | null)?.name !== 'ConditionalCheckFailedException') throw err;
    }
  }
}

/** Runs `keyguard replay`; returns the exit code. Never calls process.exit. */
export async function runReplay(
  paths: readonly string[],
  options: ReplayOptions,
  io: CliIO,
): Promise<number> {
  let config: Config;
  let configSource: string;
  try {
    const loaded = loadConfig(options.config, io.cwd);
    config = loaded.config;
    configSource = loaded.source === 'defaults' ? 'built-in defaults' : loaded.source;
  } catch (err) {
    if (err instanceof ConfigError) {
      failure(io, err.message);
      return EXIT_INPUT;
    }
    throw err;
  }
  const version = policyVersion(config);
  let window: ReplayWindow;
  let jobs: number;
  let bounds: ReturnType<typeof parseReadBounds>;
  let failOn: ReturnType<typeof parseFailOn>;
  try {
    window = parseWindow(options.since, options.until);
    jobs = parseJobs(options.jobs);
    bounds = parseReadBounds(options);
    failOn = parseFailOn(options.failOn);
  } catch (err) {
    if (err instanceof ReplayWindowError || err instanceof ReplayUsageError || err instanceof FailOnError) {
      failure(io, err.message);
      return EXIT_INPUT;
    }
    throw err;
  }

  const storeArg = options.store ?? DEFAULT_STORE_DIR;
  const storeDir = resolve(io.cwd, storeArg);
  let unlock: () => void;
  let store: EmbeddedDynamo;
  try {
    unlock = lockStore(storeDir);
  } catch (err) {
    problem(io, `store ${storeArg}`, messageOf(err));
    return EXIT_INPUT;
  }
  let started: StartedScan;
  try {
    started = await startScan(paths, io, { window, jobs, bounds });
  } catch (err) {
    unlock();
    failure(io, `replay failed: ${messageOf(err)}`);
    return EXIT_FAILURE;
  }
  try {
    store = await startEmbeddedDynamo({ path: storeDir });
  } catch (err) {
    await stopScan(started);
    unlock();
    problem(io, `store ${storeArg}`, `cannot open (${messageOf(err)})`);
    return EXIT_INPUT;
  }

  try {
    await ensureTables(store.client, [
      ...auditTableDefinitions(REPLAY_TABLES),
      usageTableDefinition(REPLAY_TABLES.usageTable),
    ]);
    const countedThrough = await usageCountedThrough(store);
    const collected = await collect(started, io, {
      window,
      jobs,
      bounds,
      quiet: options.quiet === true,
      countedThrough,
      now: new Date(),
    });

    // State is rebuilt in order: by eventTime across all files, input order for ties (sort is stable).
    const ordered = collected.events.sort((a, b) =>
      a.event.meta.eventTime < b.event.meta.eventTime
        ? -1
        : a.event.meta.eventTime > b.event.meta.eventTime
          ? 1
          : a.seq - b.seq,
    );

    const directory = new ReplayDirectory();
    const audit = new DynamoAuditLog(store.doc, REPLAY_TABLES);
    // Continue from an earlier run on this store: its keys exist unless these logs say otherwise. The store is
    // this run's alone (locked), so the audit log reads what it holds once and answers the per-decision reads
    // (known key, decision on record, chain head) from memory. Its writes (a decision, its link, the key: 3 puts a
    // decision) wait in memory and go in batches of 25 before anything reads the store, and at the end.
    let earlierKeys = 0;
    for (const known of await audit.soleWriter({ writeBehind: true })) {
      earlierKeys++;
      if (known.status === 'Deleted') continue;
      const { keyId, userName, status, createdAt, expiresAt } = known;
      directory.seed(known.accountId, { keyId, userName, status, createdAt, expiresAt });
    }
    const notifier = new CollectingNotifier(config);
    const deps = {
      directory,
      audit,
      enforcer: new PlannedEnforcer(),
      notifier,
    };
    const rows: DecisionRow[] = [];
    const ignored = collected.totals.ignored;

    const usage = { chunks: collected.usage.chunks(ordered.map((e) => e.event.meta.eventTime)) };
    const usageStore = new PendingUsage(new DynamoUsageStore(store.doc, REPLAY_TABLES.usageTable));
    // As in the key-usage function: a usage decision evaluates UNUSED from the usage just recorded.
    const usageDeps = { ...deps, usage: usageStore };
    const tally = new UsageTally();
    /** Users already warned about (one warning per user, whatever the number of calls). */
    const warned = new Set<string>();
    /**
     * The users of these subjects whose calls were credited to no key because the store knows none of their keys;
     * with long-term keys forbidden, each is warned about once: no decision can name the key.
     */
    const unknownKeyUsers = async (subjects: readonly SubjectUsage[]): Promise<Set<string>> => {
      const out = new Set<string>();
      for (const { aggregate: a } of subjects) {
        if (a.keyType !== 'LONG_TERM' || a.subject.kind !== 'user') continue;
        const { userName } = a.subject;
        if ((await directory.listUserKeys(a.accountId, userName)).length > 0) continue;
        const user = `${a.accountId}|${userName}`;
        out.add(user);
        if (config.allowLongTermKeys || warned.has(user)) continue;
        warned.add(user);
        io.stderr.write(
          `keyguard: warning: user ${userName} in account ${a.accountId} made long-term bearer-token calls ` +
            `(from ${a.firstUsedAt}) with a key this store does not know; allowLongTermKeys is false, but no ` +
            'decision can name the key: replay the logs of its creation, or look the user up in IAM\n',
        );
      }
      return out;
    };
    let next = 0;
    /** The usage chunks that come before the IAM event at this index (all that are left, at the end). */
    const usageBefore = async (epoch: number) => {
      for (; next < usage.chunks.length && (usage.chunks[next] as UsageChunk).epoch <= epoch; next++) {
        const chunk = usage.chunks[next] as UsageChunk;
        if (chunk.counted) {
          // Replayed by an earlier run: its counters and decisions are on record (deciding again against the
          // store's later state would not be idempotent).
          tally.earlierRun(chunk.groups);
          continue;
        }
        const latest = chunk.groups
          .map((g) => g.latest.eventTime)
          .sort()
          .at(-1) as string;
        directory.advanceTo(latest);
        const outcome = await processUsageGroups(
          chunk.groups,
          { directory, recorder: usageStore, deps: usageDeps },
          { config, policyVersion: version, now: new Date(latest), triggerKind: 'replay' },
        );
        tally.add(outcome.subjects, await unknownKeyUsers(outcome.subjects));
        for (const { result } of outcome.decisions) {
          // A usage decision is recorded only when it is news (or was on an earlier run).
          if (!result.recorded && !result.duplicate) continue;
          rows.push({ decision: result.decision, duplicate: result.duplicate });
          if (options.json) io.stdout.write(`${decisionJson(result.decision)}\n`);
        }
      }
    };

    for (const [index, { event }] of ordered.entries()) {
      await usageBefore(index);
      directory.apply(event);
      const result = await processKeyEvent(event, deps, {
        config,
        policyVersion: version,
        now: new Date(event.meta.eventTime),
        triggerKind: 'replay',
      });
      if (result.ignored) bump(ignored, result.ignored);
      for (const d of result.decisions) {
        rows.push({ decision: d.decision, duplicate: d.duplicate });
        if (options.json) io.stdout.write(`${decisionJson(d.decision)}\n`);
      }
    }
    await usageBefore(Number.POSITIVE_INFINITY);
    await audit.flush();
    await usageStore.flush();
    await recordUsageCountedThrough(store, tally.latestCounted);

    const byAction = new Map<string, number>();
    for (const r of rows) bump(byAction, r.decision.action);
    // A decision on record stays what the policy that made it decided: one made under another policy is shown as
    // such, never as this policy's (`keyguard preview` shows what this policy would change).
    const otherPolicies = new Map<string, number>();
    for (const r of rows)
      if (r.decision.policyVersion !== version) bump(otherPolicies, r.decision.policyVersion);
    const other = [...otherPolicies.values()].reduce((a, b) => a + b, 0);
    // --since: state set before the window (tags, earlier keys) is unknown. A user none of whose CreateUser was
    // replayed may have had its tags all along: its MISSING_* are marked unknown, never reported as established.
    let tagsUnknown = 0;
    if (window.since !== null) {
      const created = new Set<string>();
      for (const { event: e } of ordered)
        if (e.kind === 'user-tags' && e.action === 'CreateUser')
          created.add(`${e.meta.accountId}|${e.userName}`);
      for (const r of rows) {
        const d = r.decision;
        if (created.has(`${d.accountId}|${d.userName}`)) continue;
        if (!d.violations.some((v) => v.code.startsWith('MISSING_'))) continue;
        r.tagsUnknown = true;
        tagsUnknown++;
      }
      const why =
        earlierKeys === 0
          ? 'the store is empty: no tags and no earlier keys'
          : 'tags are not kept in the store';
      const marked =
        tagsUnknown === 0
          ? ''
          : `; ${tagsUnknown} decision${tagsUnknown === 1 ? ' reports' : 's report'} MISSING_* for users whose tags ` +
            'may have been set before it (marked ? in the table: unknown before window)';
      io.stderr.write(
        `keyguard: warning: --since ${options.since}: state set before the window is unknown (${why})${marked}\n`,
      );
    }
    if (other > 0) {
      io.stderr.write(
        `keyguard: warning: ${other} decision${other === 1 ? '' : 's'} shown ${other === 1 ? 'was' : 'were'} made earlier ` +
          `under another policy (${[...otherPolicies.keys()].join(', ')}), not under ${version}: replay does not ` +
          'decide again what is on record; to see what this policy would change, run keyguard preview --config ' +
          'with it, or replay into a new --store\n',
      );
    }
    const totals: ReplayTotals = {
      ...collected.totals,
      decisionsByAction: byAction,
      newDecisions: rows.filter((r) => !r.duplicate).length,
      earlierDecisions: rows.filter((r) => r.duplicate).length,
      notices: notifier.notices.length,
      owners: new Set(notifier.notices.map((n) => n.attributes.owner)).size,
      mode: config.mode,
      policyVersion: version,
      otherPolicies,
      tagsUnknownBeforeWindow: tagsUnknown,
      configSource,
      store: storeArg,
      usage:
        collected.bearerCandidates > 0 || (ignored.get('not-bearer-token') ?? 0) > 0
          ? tally.totals(collected.unusable + (ignored.get('not-bearer-token') ?? 0))
          : null,
    };
    const summary = summaryText(totals);
    if (options.json) {
      if (!options.quiet) io.stderr.write(`${summary}\n`);
    } else {
      if (rows.length > 0) writeStyled(io.stdout, `${decisionTable(rows, version, io.terminal)}\n\n`);
      else io.stdout.write('No decisions: the inputs hold no events about Bedrock API keys.\n\n');
      if (!options.quiet) io.stdout.write(`${summary}\n`);
    }
    const failing = failOn ? await storeFailing(audit, failOn) : 0;
    const where = 'the keys of the store at the end of the replay';
    return withPosture(collected.problems > 0 ? EXIT_INPUT : EXIT_OK, failOn, failing, where, io);
  } catch (err) {
    // A full (or failing) disk: named, with the store, as bad input is; the lock is released below and what was
    // written before stays (LevelDB writes whole batches): a re-run completes once there is room.
    const disk = storeFailure(err);
    if (disk !== null) {
      problem(io, `store ${storeArg}`, disk);
      return EXIT_INPUT;
    }
    failure(io, `replay failed: ${messageOf(err)}`);
    return EXIT_FAILURE;
  } finally {
    await stopScan(started);
    await closeStore(store, unlock, io, storeArg);
  }
}

/** Closes the embedded store and always releases the lock, even when closing fails (reported, not thrown). */
async function closeStore(
  store: EmbeddedDynamo,
  unlock: () => void,
  io: CliIO,
  storeArg: string,
): Promise<void> {
  try {
    await store.close();
  } catch (err) {
    problem(io, `store ${storeArg}`, `not closed cleanly (${storeFailure(err) ?? messageOf(err)})`);
  } finally {
    unlock();
  }
}
