import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { readSourceToken } from '../adapters/source-token';
import { SlackAuthError, type SlackChannelDone, SlackSource } from '../cli/scan-sources/slack';
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

/**
 * The scheduled collaboration scan (issue 15 §3, `leakDetection.slack`): every run reads what is new in the Slack
 * channels the token can read (or the configured ones) since that channel's high-water mark, with the same Slack
 * source as `keyguard scan --slack` (lambda/cli/scan-sources/slack.ts), and reports each key found to the
 * governance bus exactly as `keyguard scan --quarantine` does (source keyguard.scan, detail-type "Bedrock API Key
 * Found", never the key), where the leak function decides it.
 *
 * Order per channel: its keys are reported, THEN its mark moves (a conditional write that only moves forward). A
 * report PutEvents did not take leaves the mark where it was, so the next run reads and reports that channel again:
 * nothing is lost, and the leak function records a key found again at the same place once. A run holds the
 * source's lease (collaboration-scan-state.ts) so that the next schedule does not scan beside a slow run.
 *
 * A secret with no token, and a token Slack rejects, are a logged error and a metric (TokenNotSet, TokenRejected)
 * and the run ends normally: retrying cannot help before an operator acts, and throwing would only fill the failure
 * queue every run. Failures of AWS calls (state table, PutEvents) are thrown: Lambda retries, then the failure queue.
 */

export { SCHEDULED_SCANNER_VERSION } from './collaboration-scan-unit';

const SLACK: ScanSourceNames = { source: 'slack', name: 'Slack', unit: 'channel', secretHolds: 'token' };

export interface SlackScanSettings {
  /** SLACK_API_URL of a private or test deployment. @default https://slack.com/api */
  apiUrl?: string;
  /** Channel names or ids. @default every channel the token can read */
  channels?: readonly string[];
  /** How far back a channel with no mark yet is read. */
  initialLookbackHours: number;
}

export interface CollaborationScanRuntime extends ScanUnitRuntime {
  /** The Slack token's secret (ARN). */
  slackSecretId: string;
  slack: SlackScanSettings;
}

export type CollaborationScanStatus = 'scanned' | 'locked' | 'token-not-set' | 'token-rejected';

export interface CollaborationScanResult {
  status: CollaborationScanStatus;
  channels: number;
  messages: number;
  /** Keys reported (one event per key and channel). */
  keysReported: number;
  /** Keys PutEvents did not take after its retries: their channels' marks did not move. */
  keysUndelivered: number;
  marksMoved: number;
  /** Thread, file and channel reads that failed. */
  readFailures: number;
  /** Channels left for the next run (the invocation ran low on time). */
  stoppedEarly: boolean;
}

const EMPTY: Omit<CollaborationScanResult, 'status'> = {
  channels: 0,
  messages: 0,
  keysReported: 0,
  keysUndelivered: 0,
  marksMoved: 0,
  readFailures: 0,
  stoppedEarly: false,
};

export function createCollaborationScanHandler(
  rt: CollaborationScanRuntime,
): (event: unknown, context: Context) => Promise<CollaborationScanResult> {
  const now = rt.now ?? (() => new Date());
  const reserveMs = rt.reserveMs ?? 120_000;
  const { logger, metrics } = rt;

  async function scanSlack(token: string, context: Context): Promise<CollaborationScanResult> {
    const result: CollaborationScanResult = { status: 'scanned', ...EMPTY };
    let source: SlackSource;
    try {
      source = await SlackSource.open({
        env: { SLACK_TOKEN: token, ...(rt.slack.apiUrl ? { SLACK_API_URL: rt.slack.apiUrl } : {}) },
        ...(rt.sleep ? { sleep: rt.sleep } : {}),
      });
    } catch (err) {
      if (!(err instanceof SlackAuthError)) throw err;
      // The message names the Slack error (invalid_auth, token_revoked…).
      tokenRejected(rt, SLACK, rt.slackSecretId, err.message);
      return { ...result, status: 'token-rejected' };
    }

    const started = now();
    const marks = await rt.state.marks();
    const lookback = ((started.getTime() - rt.slack.initialLookbackHours * 3_600_000) / 1000).toFixed(6);
    const reporter = unitReporter(rt, SLACK, result);
    const { sink, take } = findingsSink(started, (where, reason) => {
      result.readFailures += 1;
      logger.warn('a Slack read failed', { source: 'slack', where, reason });
    });

    const onChannel = async (done: SlackChannelDone): Promise<void> => {
      const delivered = await reporter.report(done.id, take());
      if (!done.complete) return; // its history was not read to the end: the mark stays, the next run reads again
      if (!delivered || !done.newest) return;
      await reporter.advance(done.id, done.newest, done.name);
    };

    await source.scan(sink, {
      ...(rt.slack.channels && rt.slack.channels.length > 0 ? { channels: rt.slack.channels } : {}),
      oldestOf: (id) => marks.get(id)?.mark ?? lookback,
      onChannel,
      stop: () => {
        if (context.getRemainingTimeInMillis() >= reserveMs) return false;
        result.stoppedEarly = true;
        return true;
      },
    });
    result.channels = source.stats.channels;
    result.messages = source.stats.messages + source.stats.replies;
    metrics.addMetric('ChannelsScanned', MetricUnit.Count, result.channels);
    metrics.addMetric('MessagesScanned', MetricUnit.Count, result.messages);
    endRun(rt, SLACK, result, { source: 'slack', ...result }, source.stats);
    return result;
  }

  return (_event, context) =>
    withLease<CollaborationScanResult>(rt, SLACK, context, { status: 'locked', ...EMPTY }, async () => {
      const token = await readScanSecret(rt, SLACK, () => readSourceToken(rt.secrets, rt.slackSecretId));
      if (token === undefined) return { status: 'token-not-set', ...EMPTY };
      return await scanSlack(token, context);
    });
}
