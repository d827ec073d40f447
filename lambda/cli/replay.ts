import { resolve } from 'node:path';
import { auditTableDefinitions, DynamoAuditLog } from '../adapters/audit-store';
import { type EmbeddedDynamo, ensureTables, startEmbeddedDynamo } from '../adapters/embedded-dynamodb';
import {
  type CloudTrailRecord,
  CloudTrailRecordSchema,
  CREDENTIAL_EVENTS,
  classifyRecord,
  EventBridgeEventSchema,
  EventShapeError,
  type KeyEvent,
  USER_LIFECYCLE_EVENTS,
  USER_TAG_EVENTS,
} from '../domain/cloudtrail';
import { buildNotice, type Notice } from '../domain/notice';
import { type Enforcer, type Notifier, processKeyEvent } from '../domain/pipeline';
import { ReplayDirectory } from '../domain/replay-directory';
import type { Decision } from '../domain/types';
import { type Config, ConfigError, loadConfig, policyVersion } from '../shared/config';
import { defaultJobs, scanFiles } from './archive-pool';
import type { ScanFilter } from './archive-scan';
import { inWindow, parseWindow, type ReplayWindow, ReplayWindowError } from './archive-window';
import { type DecisionRow, decisionJson, decisionTable, type ReplayTotals, summaryText } from './format';
import { discoverInputs, type Entry, type InputProblem, messageOf } from './inputs';
import { type CliIO, EXIT_FAILURE, EXIT_INPUT, EXIT_OK, problem } from './io';
import { startProgress } from './replay-progress';
import { lockStore } from './store-lock';

/**
 * `keyguard replay`: flow 1 of design.md over CloudTrail log files, offline. State is rebuilt from the events
 * (ReplayDirectory), decisions go to an embedded DynamoDB, enforcement is planned and never applied, notices
 * are counted and never sent.
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
}

export const DEFAULT_STORE_DIR = '.keyguard';
export const REPLAY_TABLES = { decisionsTable: 'keyguard-decisions', keysTable: 'keyguard-keys' } as const;

const RELEVANT_EVENTS: ReadonlySet<string> = new Set<string>([
  ...CREDENTIAL_EVENTS,
  ...USER_TAG_EVENTS,
  ...USER_LIFECYCLE_EVENTS,
]);
const IAM_SOURCE = 'iam.amazonaws.com';
/** What a record must mention to be parsed at all (see archive-scan.ts). */
export const REPLAY_FILTER: ScanFilter = { source: IAM_SOURCE, eventNames: [...RELEVANT_EVENTS] };
/** More workers than this only adds start-up time and memory. */
const MAX_JOBS = 64;

/** A bad --jobs value. */
export class ReplayUsageError extends Error {}

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
}

interface CollectOptions {
  window: ReplayWindow;
  jobs: number;
  quiet: boolean;
}

/**
 * Reads every input and keeps the relevant records as normalised events: only these (small, rare) are held
 * for the time-ordered pass; files are streamed one by one (several at once with workers). Records that cannot
 * matter are counted from their raw text without being parsed (archive-scan.ts); candidates are validated here.
 */
async function collect(paths: readonly string[], io: CliIO, options: CollectOptions): Promise<Collected> {
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

  const { files, problems: missing, skippedByDate } = await discoverInputs(paths, io.cwd, options.window);
  for (const p of missing) report(p);
  totals.filesWithErrors += missing.length;
  totals.filesSkipped = skippedByDate;

  const progress = startProgress(io.stderr, {
    quiet: options.quiet,
    totalBytes: files.reduce((a, f) => a + f.bytes, 0),
    totalFiles: files.length,
  });
  const events: SourcedEvent[] = [];
  const seenEventIds = new Set<string>();
  let seq = 0;
  try {
    for await (const { file, scan } of scanFiles(files, REPLAY_FILTER, options.jobs)) {
      progress.fileDone(file.bytes);
      totals.filesRead += 1;
      if (scan.problems.length > 0) totals.filesWithErrors += 1;
      for (const p of scan.problems) report(p);
      totals.eventsRead += scan.records;
      for (const [reason, n] of Object.entries(scan.skipped)) if (n > 0) bump(totals.ignored, reason, n);
      for (const entry of scan.entries) {
        const one = classifyEntry(entry);
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
        if (seenEventIds.has(one.event.meta.eventId)) {
          bump(totals.ignored, 'duplicate-record');
          continue;
        }
        seenEventIds.add(one.event.meta.eventId);
        events.push({ event: one.event, seq: seq++ });
      }
    }
  } finally {
    progress.stop();
  }
  return { events, totals, problems };
}

type Classified =
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; reason: string }
  | { kind: 'event'; event: KeyEvent };

function classifyEntry(entry: Entry): Classified {
  const envelope = entry.value;
  const detail = entry.envelope === 'eventbridge' ? envelope.detail : envelope;
  const raw = detail !== null && typeof detail === 'object' ? (detail as Record<string, unknown>) : {};
  if (raw.eventSource !== IAM_SOURCE) return { kind: 'ignored', reason: 'not-iam' };
  if (typeof raw.eventName !== 'string' || !RELEVANT_EVENTS.has(raw.eventName)) {
    return { kind: 'ignored', reason: 'unsupported-event' };
  }

  const eventId = str(raw.eventID) ?? str(envelope.id) ?? '(no eventID)';
  let record: CloudTrailRecord;
  let fallbackAccount: string | null = null;
  if (entry.envelope === 'eventbridge') {
    const parsed = EventBridgeEventSchema.safeParse(envelope);
    if (!parsed.success) {
      return {
        kind: 'invalid',
        reason: `event ${eventId}: ${zodReason('EventBridge event', parsed.error.issues)}`,
      };
    }
    record = parsed.data.detail;
    fallbackAccount = parsed.data.account;
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
    const c = classifyRecord(record, fallbackAccount);
    return c.relevant ? { kind: 'event', event: c.event } : { kind: 'ignored', reason: c.reason };
  } catch (err) {
    if (err instanceof EventShapeError) return { kind: 'invalid', reason: err.message };
    throw err;
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
      io.stderr.write(`keyguard: ${err.message}\n`);
      return EXIT_INPUT;
    }
    throw err;
  }
  const version = policyVersion(config);
  let window: ReplayWindow;
  let jobs: number;
  try {
    window = parseWindow(options.since, options.until);
    jobs = parseJobs(options.jobs);
  } catch (err) {
    if (err instanceof ReplayWindowError || err instanceof ReplayUsageError) {
      io.stderr.write(`keyguard: ${err.message}\n`);
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
  try {
    store = await startEmbeddedDynamo({ path: storeDir });
  } catch (err) {
    unlock();
    problem(io, `store ${storeArg}`, `cannot open (${messageOf(err)})`);
    return EXIT_INPUT;
  }

  try {
    await ensureTables(store.client, auditTableDefinitions(REPLAY_TABLES));
    const collected = await collect(paths, io, { window, jobs, quiet: options.quiet === true });

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
    // Continue from an earlier run on this store: its keys exist unless these logs say otherwise.
    for (const known of await audit.allKnownKeys()) {
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
    for (const { event } of ordered) {
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

    const byAction = new Map<string, number>();
    for (const r of rows) bump(byAction, r.decision.action);
    const totals: ReplayTotals = {
      ...collected.totals,
      decisionsByAction: byAction,
      newDecisions: rows.filter((r) => !r.duplicate).length,
      earlierDecisions: rows.filter((r) => r.duplicate).length,
      notices: notifier.notices.length,
      owners: new Set(notifier.notices.map((n) => n.attributes.owner)).size,
      mode: config.mode,
      policyVersion: version,
      configSource,
      store: storeArg,
    };
    const summary = summaryText(totals);
    if (options.json) {
      if (!options.quiet) io.stderr.write(`${summary}\n`);
    } else {
      if (rows.length > 0) io.stdout.write(`${decisionTable(rows)}\n\n`);
      else io.stdout.write('No decisions: the inputs hold no events about Bedrock API keys.\n\n');
      if (!options.quiet) io.stdout.write(`${summary}\n`);
    }
    return collected.problems > 0 ? EXIT_INPUT : EXIT_OK;
  } catch (err) {
    io.stderr.write(`keyguard: replay failed: ${messageOf(err)}\n`);
    return EXIT_FAILURE;
  } finally {
    await store.close();
    unlock();
  }
}
