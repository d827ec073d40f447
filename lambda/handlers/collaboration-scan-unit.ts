import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import type { CollaborationScanState } from '../adapters/collaboration-scan-state';
import { type PublisherOptions, ScanReportPublisher } from '../adapters/scan-report-publisher';
import { SourceTokenNotSetError } from '../adapters/source-token';
import type { TextSink } from '../cli/scan-sources/slack';
import { ByteLeakScanner } from '../domain/leak-bytes';
import { buildScanReports, type ReportableFinding } from '../domain/scan-report';

/**
 * What the scheduled scans of Slack, Jira and Confluence (collaboration-scan-handler.ts, -jira.ts, -confluence.ts)
 * do alike: the run under the source's lease, the secret read, the keys of one unit (channel, project, space)
 * reported before its mark moves, and the run's closing metrics and log line. Each source keeps its own reading.
 */

/** The version reports carry in `scanner.version` (their `scanner.name` is that of the CLI). */
export const SCHEDULED_SCANNER_VERSION = 'scheduled';

/** How a source is named in its logs: `source` field, name in messages, the unit a mark covers (its log field). */
export interface ScanSourceNames {
  source: 'slack' | 'jira' | 'confluence';
  name: 'Slack' | 'Jira' | 'Confluence';
  unit: 'channel' | 'project' | 'space';
  /** What its secret holds, in messages. */
  secretHolds: 'token' | 'credentials';
}

/** What every scheduled scan's runtime has. */
export interface ScanUnitRuntime {
  secrets: SecretsManagerClient;
  /** The source's state. */
  state: CollaborationScanState;
  eventBridge: EventBridgeClient;
  busArn: string;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  metrics: Pick<Metrics, 'addMetric' | 'publishStoredMetrics'>;
  now?: () => Date;
  /** Waits on Retry-After (tests: none). */
  sleep?: (ms: number) => Promise<void>;
  publisher?: PublisherOptions;
  /** No unit (channel, project, space) is started with less than this left in the invocation. @default 120 000 ms */
  reserveMs?: number;
  /** The lease outlives the invocation's deadline by this much. @default 60 000 ms */
  leaseMarginMs?: number;
}

/** The counts every scheduled scan's result has. */
export interface ScanUnitCounts {
  keysReported: number;
  keysUndelivered: number;
  marksMoved: number;
  readFailures: number;
}

/**
 * The run under the source's lease: `locked` when another run holds it (logged, ScanLocked), else `run`, the lease
 * released after it; the stored metrics are published in every case.
 */
export async function withLease<R>(
  rt: ScanUnitRuntime,
  names: ScanSourceNames,
  context: Context,
  locked: R,
  run: () => Promise<R>,
): Promise<R> {
  const now = rt.now ?? (() => new Date());
  const holder = context.awsRequestId;
  const start = now();
  const expires = new Date(
    start.getTime() + context.getRemainingTimeInMillis() + (rt.leaseMarginMs ?? 60_000),
  );
  try {
    if (!(await rt.state.acquire(holder, start, expires))) {
      rt.logger.warn(`another run is scanning ${names.name}: this run does nothing`, {
        source: names.source,
      });
      rt.metrics.addMetric('ScanLocked', MetricUnit.Count, 1);
      return locked;
    }
    try {
      return await run();
    } finally {
      await rt.state.release(holder);
    }
  } finally {
    rt.metrics.publishStoredMetrics();
  }
}

/** The secret read by `read`; undefined (logged, TokenNotSet) when it holds no token or credentials. */
export async function readScanSecret<T>(
  rt: ScanUnitRuntime,
  names: ScanSourceNames,
  read: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (!(err instanceof SourceTokenNotSetError)) throw err;
    rt.logger.error(`no ${names.name} ${names.secretHolds}: nothing was scanned`, {
      source: names.source,
      reason: err.message,
    });
    rt.metrics.addMetric('TokenNotSet', MetricUnit.Count, 1);
    return undefined;
  }
}

/** Logs (and counts, TokenRejected) a token or credentials the source did not accept. */
export function tokenRejected(
  rt: ScanUnitRuntime,
  names: ScanSourceNames,
  secret: string,
  reason: string,
): void {
  // The reason names the source's answer, never the token (SourceHttp redacts it).
  rt.logger.error(
    `${names.name} did not accept the ${names.secretHolds} in its secret: nothing was scanned`,
    {
      source: names.source,
      secret,
      reason,
    },
  );
  rt.metrics.addMetric('TokenRejected', MetricUnit.Count, 1);
}

/** A sink collecting the keys found (lines marked keyguard:allow left out, as in keyguard scan) until taken. */
export function findingsSink(
  started: Date,
  fail: TextSink['fail'],
): { sink: TextSink; take: () => ReportableFinding[] } {
  let found: ReportableFinding[] = [];
  const sink: TextSink = {
    scan: (text) => {
      const scan = new ByteLeakScanner({ now: started });
      const bytes = typeof text === 'string' ? Buffer.from(text) : text;
      const findings = [...scan.write(bytes), ...scan.end()].filter((f) => !f.allowed);
      return {
        found: findings.length > 0,
        take: (path) => {
          for (const f of findings) found.push({ ...f, path });
        },
      };
    },
    fail,
  };
  const take = () => {
    const taken = found;
    found = [];
    return taken;
  };
  return { sink, take };
}

/** One run's reporting: the keys of each unit to the governance bus, then (when delivered) the unit's mark. */
export function unitReporter(rt: ScanUnitRuntime, names: ScanSourceNames, result: ScanUnitCounts) {
  const now = rt.now ?? (() => new Date());
  const publisher = new ScanReportPublisher(rt.eventBridge, rt.busArn, rt.publisher);
  const { logger } = rt;
  return {
    /** Reports the unit's keys; false when PutEvents did not take some (the unit's mark must stay). */
    async report(id: string, findings: ReportableFinding[]): Promise<boolean> {
      const reports = buildScanReports(findings, {
        version: SCHEDULED_SCANNER_VERSION,
        scannedAt: now().toISOString(),
      });
      if (reports.length === 0) return true;
      const published = await publisher.publish(reports);
      result.keysReported += published.sent.length;
      result.keysUndelivered += published.undelivered.length;
      for (const s of published.sent) {
        const r = reports.find((x) => x.fingerprint === s.fingerprint);
        logger.info(`key found in ${names.name} reported to the governance bus`, {
          source: names.source,
          [names.unit]: id,
          fingerprint: s.fingerprint,
          redacted: r?.redacted,
          locations: r?.locationCount,
          eventId: s.eventId,
        });
      }
      if (published.undelivered.length === 0) return true;
      logger.error(
        `keys found in ${names.name} NOT delivered to the governance bus: the ${names.unit} is read again next run`,
        { source: names.source, [names.unit]: id, undelivered: published.undelivered },
      );
      return false;
    },
    /** Moves the unit's mark forward (a conditional write); another run already past it is logged. */
    async advance(id: string, mark: string, ...name: [name?: string]): Promise<void> {
      if (await rt.state.advance(id, mark, now(), ...name)) result.marksMoved += 1;
      else
        logger.warn(`a high-water mark was already past this run (another run scanned the ${names.unit})`, {
          source: names.source,
          [names.unit]: id,
        });
    },
  };
}

/** The metrics every scan ends with (after its own), and its closing log line. */
export function endRun(
  rt: ScanUnitRuntime,
  names: ScanSourceNames,
  result: ScanUnitCounts,
  logged: object,
  stats: { calls: number; rateLimited: number; waitedMs: number },
): void {
  rt.metrics.addMetric('KeysReported', MetricUnit.Count, result.keysReported);
  rt.metrics.addMetric('KeysUndelivered', MetricUnit.Count, result.keysUndelivered);
  rt.metrics.addMetric('ReadFailures', MetricUnit.Count, result.readFailures);
  rt.metrics.addMetric('RateLimitWait', MetricUnit.Seconds, Math.round(stats.waitedMs / 1000));
  rt.logger.info(`${names.name} scanned`, {
    ...logged,
    apiCalls: stats.calls,
    rateLimited: stats.rateLimited,
    waitedMs: stats.waitedMs,
  });
}
