import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import type { CollaborationScanState } from '../adapters/collaboration-scan-state';
import { type PublisherOptions, ScanReportPublisher } from '../adapters/scan-report-publisher';
import { readSourceToken, SourceTokenNotSetError } from '../adapters/source-token';
import { SlackAuthError, type SlackChannelDone, SlackSource, type TextSink } from '../cli/scan-sources/slack';
import { ByteLeakScanner } from '../domain/leak-bytes';
import { buildScanReports, type ReportableFinding } from '../domain/scan-report';

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

/** The version reports carry in `scanner.version` (their `scanner.name` is that of the CLI). */
export const SCHEDULED_SCANNER_VERSION = 'scheduled';

export interface SlackScanSettings {
  /** SLACK_API_URL of a private or test deployment. @default https://slack.com/api */
  apiUrl?: string;
  /** Channel names or ids. @default every channel the token can read */
  channels?: readonly string[];
  /** How far back a channel with no mark yet is read. */
  initialLookbackHours: number;
}

export interface CollaborationScanRuntime {
  secrets: SecretsManagerClient;
  /** The Slack token's secret (ARN). */
  slackSecretId: string;
  slack: SlackScanSettings;
  state: CollaborationScanState;
  eventBridge: EventBridgeClient;
  busArn: string;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  metrics: Pick<Metrics, 'addMetric' | 'publishStoredMetrics'>;
  now?: () => Date;
  /** Waits on Retry-After (tests: none). */
  sleep?: (ms: number) => Promise<void>;
  publisher?: PublisherOptions;
  /** No channel is started with less than this left in the invocation. @default 120 000 ms */
  reserveMs?: number;
  /** The lease outlives the invocation's deadline by this much. @default 60 000 ms */
  leaseMarginMs?: number;
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
  const leaseMarginMs = rt.leaseMarginMs ?? 60_000;
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
      // The message names the Slack error (invalid_auth, token_revoked…), never the token (SourceHttp redacts it).
      logger.error('Slack did not accept the token in its secret: nothing was scanned', {
        source: 'slack',
        secret: rt.slackSecretId,
        reason: err.message,
      });
      metrics.addMetric('TokenRejected', MetricUnit.Count, 1);
      return { ...result, status: 'token-rejected' };
    }

    const started = now();
    const marks = await rt.state.marks();
    const lookback = ((started.getTime() - rt.slack.initialLookbackHours * 3_600_000) / 1000).toFixed(6);
    const publisher = new ScanReportPublisher(rt.eventBridge, rt.busArn, rt.publisher);
    let found: ReportableFinding[] = [];
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
      fail: (where, reason) => {
        result.readFailures += 1;
        logger.warn('a Slack read failed', { source: 'slack', where, reason });
      },
    };

    const onChannel = async (done: SlackChannelDone): Promise<void> => {
      const findings = found;
      found = [];
      const reports = buildScanReports(findings, {
        version: SCHEDULED_SCANNER_VERSION,
        scannedAt: now().toISOString(),
      });
      let delivered = true;
      if (reports.length > 0) {
        const published = await publisher.publish(reports);
        result.keysReported += published.sent.length;
        result.keysUndelivered += published.undelivered.length;
        for (const s of published.sent) {
          const r = reports.find((x) => x.fingerprint === s.fingerprint);
          logger.info('key found in Slack reported to the governance bus', {
            source: 'slack',
            channel: done.id,
            fingerprint: s.fingerprint,
            redacted: r?.redacted,
            locations: r?.locationCount,
            eventId: s.eventId,
          });
        }
        if (published.undelivered.length > 0) {
          delivered = false;
          logger.error(
            'keys found in Slack NOT delivered to the governance bus: the channel is read again next run',
            {
              source: 'slack',
              channel: done.id,
              undelivered: published.undelivered,
            },
          );
        }
      }
      if (!done.complete) return; // its history was not read to the end: the mark stays, the next run reads again
      if (!delivered || !done.newest) return;
      if (await rt.state.advance(done.id, done.newest, now(), done.name)) result.marksMoved += 1;
      else
        logger.warn('a high-water mark was already past this run (another run scanned the channel)', {
          source: 'slack',
          channel: done.id,
        });
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
    metrics.addMetric('KeysReported', MetricUnit.Count, result.keysReported);
    metrics.addMetric('KeysUndelivered', MetricUnit.Count, result.keysUndelivered);
    metrics.addMetric('ReadFailures', MetricUnit.Count, result.readFailures);
    metrics.addMetric('RateLimitWait', MetricUnit.Seconds, Math.round(source.stats.waitedMs / 1000));
    logger.info('Slack scanned', {
      source: 'slack',
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
        logger.warn('another run is scanning Slack: this run does nothing', { source: 'slack' });
        metrics.addMetric('ScanLocked', MetricUnit.Count, 1);
        return { status: 'locked', ...EMPTY };
      }
      try {
        let token: string;
        try {
          token = await readSourceToken(rt.secrets, rt.slackSecretId);
        } catch (err) {
          if (!(err instanceof SourceTokenNotSetError)) throw err;
          logger.error('no Slack token: nothing was scanned', { source: 'slack', reason: err.message });
          metrics.addMetric('TokenNotSet', MetricUnit.Count, 1);
          return { status: 'token-not-set', ...EMPTY };
        }
        return await scanSlack(token, context);
      } finally {
        await rt.state.release(holder);
      }
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}
