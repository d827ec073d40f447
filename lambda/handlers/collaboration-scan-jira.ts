import { createHash } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import type { CollaborationScanState } from '../adapters/collaboration-scan-state';
import { type PublisherOptions, ScanReportPublisher } from '../adapters/scan-report-publisher';
import { readAtlassianCredentials, SourceTokenNotSetError } from '../adapters/source-token';
import { AtlassianAuthError } from '../cli/scan-sources/atlassian';
import { JiraSource, splitOrderBy } from '../cli/scan-sources/jira';
import type { TextSink } from '../cli/scan-sources/slack';
import { ByteLeakScanner } from '../domain/leak-bytes';
import { buildScanReports, type ReportableFinding } from '../domain/scan-report';
import { type CollaborationScanStatus, SCHEDULED_SCANNER_VERSION } from './collaboration-scan-handler';

/**
 * The scheduled Jira scan (issue 15 §3, `leakDetection.jira`): every run reads the issues updated since each
 * project's high-water mark (with `jql`: the query's one mark), with the same Jira source as `keyguard scan --jira`
 * (lambda/cli/scan-sources/jira.ts), and reports each key found to the governance bus exactly as the Slack scan does
 * (collaboration-scan-handler.ts): reports first, then the mark moves (conditional, forward only), under the `jira`
 * source's own lease.
 *
 * The mark is the newest `updated` of the issues read. JQL compares times to the minute only, so each run asks for
 * the issues updated since the mark MINUS ONE MINUTE: the issues of the mark's own minute (and of a small clock skew
 * between Jira and AWS) are read again, and a key in them is reported again; the leak function records a key found
 * again at the same place once (repeat reports cost a PutEvents entry, nothing else).
 *
 * A secret with no credentials, and credentials Jira rejects, are a logged error and a metric (TokenNotSet,
 * TokenRejected) and the run ends normally, as for Slack.
 */

/** JQL times have minute resolution: each run re-reads the minute before its mark. */
export const JIRA_MARK_OVERLAP_MS = 60_000;

export interface JiraScanSettings {
  /** The site URL (https://acme.atlassian.net). */
  site: string;
  /** Project keys, each with its own mark. */
  projects?: readonly string[];
  /** A JQL query: alone, one mark for the query; with `projects`, it narrows each project's search. */
  jql?: string;
  /** How far back a project with no mark yet is read. */
  initialLookbackHours: number;
}

export interface JiraScanRuntime {
  secrets: SecretsManagerClient;
  /** The secret holding {"email", "apiToken"} (ARN). */
  jiraSecretId: string;
  jira: JiraScanSettings;
  /** The `jira` source's state. */
  state: CollaborationScanState;
  eventBridge: EventBridgeClient;
  busArn: string;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  metrics: Pick<Metrics, 'addMetric' | 'publishStoredMetrics'>;
  now?: () => Date;
  /** Waits on Retry-After (tests: none). */
  sleep?: (ms: number) => Promise<void>;
  publisher?: PublisherOptions;
  /** No project is started with less than this left in the invocation. @default 120 000 ms */
  reserveMs?: number;
  /** The lease outlives the invocation's deadline by this much. @default 60 000 ms */
  leaseMarginMs?: number;
}

export interface JiraScanResult {
  source: 'jira';
  status: CollaborationScanStatus;
  /** Projects (or the one query) searched. */
  projects: number;
  issues: number;
  comments: number;
  keysReported: number;
  keysUndelivered: number;
  marksMoved: number;
  /** Searches, comment pages and issues that could not be read. */
  readFailures: number;
  /** Projects left for the next run (the invocation ran low on time). */
  stoppedEarly: boolean;
}

const EMPTY: Omit<JiraScanResult, 'status'> = {
  source: 'jira',
  projects: 0,
  issues: 0,
  comments: 0,
  keysReported: 0,
  keysUndelivered: 0,
  marksMoved: 0,
  readFailures: 0,
  stoppedEarly: false,
};

/** What one mark covers: a project, or the configured query. */
export interface JiraTarget {
  /**
   * The state item id: the project key; with a query, `jql:` + a hash of it (a project narrowed by it: the key, `:`
   * and the hash). A changed query starts afresh from the initial lookback.
   */
  id: string;
  jql: string;
  /** Ordered by `updated` ascending (the default): the issues read before a stop are all those up to the newest. */
  byUpdated: boolean;
}

/**
 * The searches of the settings: one per project (narrowed by the query when there is one), or the query alone;
 * ordered by `updated` unless the query says otherwise.
 */
export function jiraTargets(settings: Pick<JiraScanSettings, 'projects' | 'jql'>): JiraTarget[] {
  const jql = (settings.jql ?? '').trim();
  const hash = jql ? `jql:${createHash('sha256').update(jql).digest('hex').slice(0, 16)}` : '';
  const { where, orderBy } = splitOrderBy(jql);
  const order = orderBy || 'ORDER BY updated ASC';
  const byUpdated = /^order\s+by\s+updated(\s+asc)?$/i.test(order);
  if (settings.projects && settings.projects.length > 0)
    return settings.projects.map((key) => ({
      id: hash ? `${key}:${hash}` : key,
      jql: `project = "${key}"${where.trim() ? ` AND (${where.trim()})` : ''} ${order}`,
      byUpdated,
    }));
  if (!jql) return [];
  return [{ id: hash, jql: `${where.trim()} ${order}`, byUpdated }];
}

/** An `updated` instant (epoch ms) as a mark: "seconds.millis", ordered by markKeyOf like a Slack ts. */
export function jiraMarkOf(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** A mark back to epoch ms (NaN when it is not one). */
export function jiraMarkMs(mark: string): number {
  return /^\d+(\.\d+)?$/.test(mark) ? Math.round(Number(mark) * 1000) : Number.NaN;
}

export function createJiraScanHandler(
  rt: JiraScanRuntime,
): (event: unknown, context: Context) => Promise<JiraScanResult> {
  const now = rt.now ?? (() => new Date());
  const reserveMs = rt.reserveMs ?? 120_000;
  const leaseMarginMs = rt.leaseMarginMs ?? 60_000;
  const { logger, metrics } = rt;

  async function scanJira(email: string, apiToken: string, context: Context): Promise<JiraScanResult> {
    const result: JiraScanResult = { status: 'scanned', ...EMPTY };
    let source: JiraSource;
    try {
      source = await JiraSource.open({
        env: { JIRA_URL: rt.jira.site, JIRA_EMAIL: email, JIRA_API_TOKEN: apiToken },
        ...(rt.sleep ? { sleep: rt.sleep } : {}),
      });
    } catch (err) {
      if (!(err instanceof AtlassianAuthError)) throw err;
      // The message names Jira's answer (HTTP 401, 403…), never the token (SourceHttp redacts it).
      logger.error('Jira did not accept the credentials in its secret: nothing was scanned', {
        source: 'jira',
        secret: rt.jiraSecretId,
        reason: err.message,
      });
      metrics.addMetric('TokenRejected', MetricUnit.Count, 1);
      return { ...result, status: 'token-rejected' };
    }

    const started = now();
    const marks = await rt.state.marks();
    const lookback = started.getTime() - rt.jira.initialLookbackHours * 3_600_000;
    const publisher = new ScanReportPublisher(rt.eventBridge, rt.busArn, rt.publisher);
    let found: ReportableFinding[] = [];
    let where = '';
    const sink: TextSink = {
      scan: (text) => {
        const scan = new ByteLeakScanner({ now: started });
        const bytes = typeof text === 'string' ? Buffer.from(text) : text;
        // A line marked keyguard:allow is not reported, as in keyguard scan.
        const findings = [...scan.write(bytes), ...scan.end()].filter((f) => !f.allowed);
        return {
          found: findings.length > 0,
          take: (path) => {
            for (const f of findings) found.push({ ...f, path });
          },
        };
      },
      fail: (at, reason) => {
        result.readFailures += 1;
        logger.warn('a Jira read failed', { source: 'jira', project: where, where: at, reason });
      },
    };

    for (const target of jiraTargets(rt.jira)) {
      if (context.getRemainingTimeInMillis() < reserveMs) {
        result.stoppedEarly = true;
        break;
      }
      where = target.id;
      const mark = marks.get(target.id)?.mark;
      const markMs = mark === undefined ? Number.NaN : jiraMarkMs(mark);
      const since = Number.isFinite(markMs) ? markMs - JIRA_MARK_OVERLAP_MS : lookback;
      found = [];
      const outcome = await source.scan(sink, {
        jql: target.jql,
        since: new Date(since),
        now: started,
        stop: () => context.getRemainingTimeInMillis() < reserveMs,
      });
      result.projects += 1;
      if (outcome.stopped) result.stoppedEarly = true;

      const reports = buildScanReports(found, {
        version: SCHEDULED_SCANNER_VERSION,
        scannedAt: now().toISOString(),
      });
      found = [];
      let delivered = true;
      if (reports.length > 0) {
        const published = await publisher.publish(reports);
        result.keysReported += published.sent.length;
        result.keysUndelivered += published.undelivered.length;
        for (const s of published.sent) {
          const r = reports.find((x) => x.fingerprint === s.fingerprint);
          logger.info('key found in Jira reported to the governance bus', {
            source: 'jira',
            project: target.id,
            fingerprint: s.fingerprint,
            redacted: r?.redacted,
            locations: r?.locationCount,
            eventId: s.eventId,
          });
        }
        if (published.undelivered.length > 0) {
          delivered = false;
          logger.error(
            'keys found in Jira NOT delivered to the governance bus: the project is read again next run',
            { source: 'jira', project: target.id, undelivered: published.undelivered },
          );
        }
      }
      // A search not read to its end says nothing of the issues after it: the mark stays, the next run reads again.
      // Except one stopped for time in `updated` order: every issue up to the newest read was read, so the mark moves
      // there and the next run goes on from it.
      const partial = outcome.stopped === true && target.byUpdated;
      if ((!outcome.complete && !partial) || !delivered || outcome.newestUpdated === undefined) {
        if (outcome.stopped) break;
        continue;
      }
      // Re-reading the mark's minute finds the mark's own issue again: only a newer `updated` moves it.
      if (Number.isFinite(markMs) && outcome.newestUpdated <= markMs) continue;
      if (await rt.state.advance(target.id, jiraMarkOf(outcome.newestUpdated), now())) result.marksMoved += 1;
      else
        logger.warn('a high-water mark was already past this run (another run scanned the project)', {
          source: 'jira',
          project: target.id,
        });
      if (outcome.stopped) break;
    }
    result.issues = source.stats.issues;
    result.comments = source.stats.comments;
    metrics.addMetric('ProjectsScanned', MetricUnit.Count, result.projects);
    metrics.addMetric('IssuesScanned', MetricUnit.Count, result.issues);
    metrics.addMetric('KeysReported', MetricUnit.Count, result.keysReported);
    metrics.addMetric('KeysUndelivered', MetricUnit.Count, result.keysUndelivered);
    metrics.addMetric('ReadFailures', MetricUnit.Count, result.readFailures);
    metrics.addMetric('RateLimitWait', MetricUnit.Seconds, Math.round(source.stats.waitedMs / 1000));
    logger.info('Jira scanned', {
      ...result,
      apiCalls: source.stats.calls,
      rateLimited: source.stats.rateLimited,
      waitedMs: source.stats.waitedMs,
    });
    return result;
  }

  return async (_event, context) => {
    const holder = context.awsRequestId;
    const start = now();
    const expires = new Date(start.getTime() + context.getRemainingTimeInMillis() + leaseMarginMs);
    try {
      if (!(await rt.state.acquire(holder, start, expires))) {
        logger.warn('another run is scanning Jira: this run does nothing', { source: 'jira' });
        metrics.addMetric('ScanLocked', MetricUnit.Count, 1);
        return { status: 'locked', ...EMPTY };
      }
      try {
        let credentials: { email: string; apiToken: string };
        try {
          credentials = await readAtlassianCredentials(rt.secrets, rt.jiraSecretId);
        } catch (err) {
          if (!(err instanceof SourceTokenNotSetError)) throw err;
          logger.error('no Jira credentials: nothing was scanned', { source: 'jira', reason: err.message });
          metrics.addMetric('TokenNotSet', MetricUnit.Count, 1);
          return { status: 'token-not-set', ...EMPTY };
        }
        return await scanJira(credentials.email, credentials.apiToken, context);
      } finally {
        await rt.state.release(holder);
      }
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}

/** The schedule input naming the source a run scans (the Slack schedule's input is `{}`). */
export interface CollaborationScanEvent {
  source?: 'slack' | 'jira' | 'confluence';
}

/**
 * The function's handler: the run scans the source its schedule names (`{"source": "jira"}`,
 * `{"source": "confluence", …}`); `{}` (the Slack schedule's input) scans Slack, or Jira when Slack is not configured.
 */
export function routeCollaborationScan<S, J, C = never>(handlers: {
  slack?: (event: unknown, context: Context) => Promise<S>;
  jira?: (event: unknown, context: Context) => Promise<J>;
  confluence?: (event: unknown, context: Context) => Promise<C>;
}): (event: unknown, context: Context) => Promise<S | J | C> {
  return async (event, context) => {
    const named = (event as CollaborationScanEvent | null)?.source;
    const chosen =
      named === 'confluence'
        ? handlers.confluence
        : named === 'jira'
          ? handlers.jira
          : named === 'slack'
            ? handlers.slack
            : (handlers.slack ?? handlers.jira);
    if (!chosen)
      throw new Error(`the scheduled scan of ${named ?? 'Slack'} is not configured in this function`);
    return chosen(event, context);
  };
}
