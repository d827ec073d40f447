import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { readAtlassianCredentials } from '../adapters/source-token';
import { AtlassianAuthError } from '../cli/scan-sources/atlassian';
import { ConfluenceSource } from '../cli/scan-sources/confluence';
import { type ConfluenceScheduleInput, ConfluenceScheduleInputSchema, formatIssues } from '../shared/config';
import type { CollaborationScanStatus } from './collaboration-scan-handler';
import { jiraMarkMs, jiraMarkOf } from './collaboration-scan-jira';
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

const CONFLUENCE: ScanSourceNames = {
  source: 'confluence',
  name: 'Confluence',
  unit: 'space',
  secretHolds: 'credentials',
};

/**
 * The scheduled Confluence scan (issue 15 §3, `leakDetection.confluence`): every run reads, in each space, the pages
 * and blog posts modified since the space's high-water mark (newest first) and their comments, with the same
 * Confluence source as `keyguard scan --confluence` (lambda/cli/scan-sources/confluence.ts), and reports each key
 * found to the governance bus as the Slack and Jira scans do: reports first, then the mark moves (conditional,
 * forward only), under the `confluence` source's own lease.
 *
 * Its settings are not in the function's environment (nearly filled by the largest Slack and Jira settings) but in
 * its schedule's input, `{"source": "confluence", "siteUrl", "spaces", "initialLookbackHours", "secretArn"}`, checked
 * at every run against the config's own schema: an input that does not match is an error (the run fails, the
 * schedule's retries and the failure queue keep it; the input holds no key and no token).
 *
 * The mark is the newest current-version time of the pages read in the space; the next run reads from the mark
 * itself (Confluence times are to the millisecond and compared here, so only the mark's own page is read again).
 * A space read only in part (stopped for time, a list or page that failed) keeps its mark: the list is newest first,
 * so what was not read is older than what was.
 *
 * A secret with no credentials, and credentials Confluence rejects, are a logged error and a metric (TokenNotSet,
 * TokenRejected) and the run ends normally, as for Slack and Jira.
 */

export interface ConfluenceScanRuntime extends ScanUnitRuntime {
  /** Where the (checked, https) site URL is reached: tests point it at a loopback fake. @default the URL itself */
  connectTo?: (siteUrl: string) => string;
  /** No space, and no further list page, is started with less than this left in the invocation. @default 120 000 ms */
  reserveMs?: number;
}

export interface ConfluenceScanResult {
  source: 'confluence';
  status: CollaborationScanStatus;
  spaces: number;
  pages: number;
  blogposts: number;
  comments: number;
  keysReported: number;
  keysUndelivered: number;
  marksMoved: number;
  /** Spaces, lists, pages and comments that could not be read. */
  readFailures: number;
  /** Spaces (or the rest of one) left for the next run (the invocation ran low on time). */
  stoppedEarly: boolean;
}

const EMPTY: Omit<ConfluenceScanResult, 'status'> = {
  source: 'confluence',
  spaces: 0,
  pages: 0,
  blogposts: 0,
  comments: 0,
  keysReported: 0,
  keysUndelivered: 0,
  marksMoved: 0,
  readFailures: 0,
  stoppedEarly: false,
};

/** The schedule input, checked; an Error naming the field and value otherwise. */
export function confluenceScheduleInput(event: unknown): ConfluenceScheduleInput {
  const parsed = ConfluenceScheduleInputSchema.safeParse(event);
  if (!parsed.success)
    throw new Error(formatIssues('the Confluence schedule input', event, parsed.error.issues));
  return parsed.data;
}

export function createConfluenceScanHandler(
  rt: ConfluenceScanRuntime,
): (event: unknown, context: Context) => Promise<ConfluenceScanResult> {
  const now = rt.now ?? (() => new Date());
  const reserveMs = rt.reserveMs ?? 120_000;
  const { logger, metrics } = rt;

  async function scanConfluence(
    input: ConfluenceScheduleInput,
    email: string,
    apiToken: string,
    context: Context,
  ): Promise<ConfluenceScanResult> {
    const result: ConfluenceScanResult = { status: 'scanned', ...EMPTY };
    const site = input.siteUrl.replace(/\/+$/, '');
    let source: ConfluenceSource;
    try {
      source = await ConfluenceSource.open(input.spaces, {
        env: {
          CONFLUENCE_URL: rt.connectTo ? rt.connectTo(site) : site,
          JIRA_EMAIL: email,
          JIRA_API_TOKEN: apiToken,
        },
        ...(rt.sleep ? { sleep: rt.sleep } : {}),
      });
    } catch (err) {
      if (!(err instanceof AtlassianAuthError)) throw err;
      // The message names Confluence's answer (HTTP 401, 403…).
      tokenRejected(rt, CONFLUENCE, input.secretArn, err.message);
      return { ...result, status: 'token-rejected' };
    }

    const started = now();
    const marks = await rt.state.marks();
    const lookback = started.getTime() - input.initialLookbackHours * 3_600_000;
    const reporter = unitReporter(rt, CONFLUENCE, result);
    let where = '';
    const { sink, take } = findingsSink(started, (at, reason) => {
      result.readFailures += 1;
      logger.warn('a Confluence read failed', { source: 'confluence', space: where, where: at, reason });
    });
    const low = () => context.getRemainingTimeInMillis() < reserveMs;

    for (const key of input.spaces) {
      if (low()) {
        result.stoppedEarly = true;
        break;
      }
      where = key;
      const mark = marks.get(key)?.mark;
      const markMs = mark === undefined ? Number.NaN : jiraMarkMs(mark);
      const since = Number.isFinite(markMs) ? markMs : lookback;
      const outcome = await source.scanSpace(sink, key, { since: new Date(since), stop: low });
      result.spaces += 1;
      if (outcome.stopped) result.stoppedEarly = true;

      const delivered = await reporter.report(key, take());
      // Newest first: a space not read to its end says nothing of the older pages, so its mark stays.
      if (outcome.complete && delivered && outcome.newestModified !== undefined) {
        if (!Number.isFinite(markMs) || outcome.newestModified > markMs) {
          await reporter.advance(key, jiraMarkOf(outcome.newestModified));
        }
      }
      if (outcome.stopped) break;
    }
    result.pages = source.stats.pages;
    result.blogposts = source.stats.blogposts;
    result.comments = source.stats.comments;
    metrics.addMetric('SpacesScanned', MetricUnit.Count, result.spaces);
    metrics.addMetric('PagesScanned', MetricUnit.Count, result.pages + result.blogposts);
    endRun(rt, CONFLUENCE, result, result, source.stats);
    return result;
  }

  return async (event, context) => {
    // Checked before anything else: a wrong input is the stack's error, not a run to retry quietly.
    const input = confluenceScheduleInput(event);
    return withLease<ConfluenceScanResult>(
      rt,
      CONFLUENCE,
      context,
      { status: 'locked', ...EMPTY },
      async () => {
        const credentials = await readScanSecret(rt, CONFLUENCE, () =>
          readAtlassianCredentials(rt.secrets, input.secretArn),
        );
        if (credentials === undefined) return { status: 'token-not-set', ...EMPTY };
        return await scanConfluence(input, credentials.email, credentials.apiToken, context);
      },
    );
  };
}
