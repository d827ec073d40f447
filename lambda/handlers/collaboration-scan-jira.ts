import { createHash } from 'node:crypto';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { readAtlassianCredentials } from '../adapters/source-token';
import { AtlassianAuthError } from '../cli/scan-sources/atlassian';
import { JiraSource, splitOrderBy } from '../cli/scan-sources/jira';
import type { CollaborationScanStatus } from './collaboration-scan-handler';
import {
  endRun,
  findingsSink,
  readScanSecret,
  type ScanSourceNames,
  type ScanUnitRuntime,
  tokenRejected,
  unitReporter,
  withLease,
} from './collaboration-scan-unit';

const JIRA: ScanSourceNames = { source: 'jira', name: 'Jira', unit: 'project', secretHolds: 'credentials' };

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

export interface JiraScanRuntime extends ScanUnitRuntime {
  /** The secret holding {"email", "apiToken"} (ARN). */
  jiraSecretId: string;
  jira: JiraScanSettings;
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
      // The message names Jira's answer (HTTP 401, 403…).
      tokenRejected(rt, JIRA, rt.jiraSecretId, err.message);
      return { ...result, status: 'token-rejected' };
    }

    const started = now();
    const marks = await rt.state.marks();
    const lookback = started.getTime() - rt.jira.initialLookbackHours * 3_600_000;
    const reporter = unitReporter(rt, JIRA, result);
    let where = '';
    const { sink, take } = findingsSink(started, (at, reason) => {
      result.readFailures += 1;
      logger.warn('a Jira read failed', { source: 'jira', project: where, where: at, reason });
    });

    for (const target of jiraTargets(rt.jira)) {
      if (context.getRemainingTimeInMillis() < reserveMs) {
        result.stoppedEarly = true;
        break;
      }
      where = target.id;
      const mark = marks.get(target.id)?.mark;
      const markMs = mark === undefined ? Number.NaN : jiraMarkMs(mark);
      const since = Number.isFinite(markMs) ? markMs - JIRA_MARK_OVERLAP_MS : lookback;
      const outcome = await source.scan(sink, {
        jql: target.jql,
        since: new Date(since),
        now: started,
        stop: () => context.getRemainingTimeInMillis() < reserveMs,
      });
      result.projects += 1;
      if (outcome.stopped) result.stoppedEarly = true;

      const delivered = await reporter.report(target.id, take());
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
      await reporter.advance(target.id, jiraMarkOf(outcome.newestUpdated));
      if (outcome.stopped) break;
    }
    result.issues = source.stats.issues;
    result.comments = source.stats.comments;
    metrics.addMetric('ProjectsScanned', MetricUnit.Count, result.projects);
    metrics.addMetric('IssuesScanned', MetricUnit.Count, result.issues);
    endRun(rt, JIRA, result, result, source.stats);
    return result;
  }

  return async (_event, context) => {
    return withLease<JiraScanResult>(rt, JIRA, context, { status: 'locked', ...EMPTY }, async () => {
      const credentials = await readScanSecret(rt, JIRA, () =>
        readAtlassianCredentials(rt.secrets, rt.jiraSecretId),
      );
      if (credentials === undefined) return { status: 'token-not-set', ...EMPTY };
      return await scanJira(credentials.email, credentials.apiToken, context);
    });
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
