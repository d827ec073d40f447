import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import {
  putEventsBatches,
  SCAN_REPORT_DETAIL_TYPE,
  SCAN_REPORT_SOURCE,
  type ScanReportDetail,
} from '../domain/scan-report';

/**
 * Puts scan reports on the governance bus (PutEvents): at most 10 entries and under 256 KB per request. Entries
 * PutEvents rejects one by one (FailedEntryCount, Entries[i].ErrorCode: throttling, an internal failure) are put
 * again, with backoff, up to `attempts` times in all; what is still rejected is returned with its error code,
 * never dropped. A failure of the whole call (credentials, access denied, no such bus) is thrown: the SDK has
 * already retried what it retries.
 */

export interface SentReport {
  fingerprint: string;
  eventId: string;
}

export interface UndeliveredReport {
  fingerprint: string;
  errorCode: string;
  errorMessage: string;
}

export interface PublishResult {
  sent: SentReport[];
  undelivered: UndeliveredReport[];
  /** PutEvents calls made. */
  requests: number;
}

export interface PublisherOptions {
  /** Tries per entry (the first one included). @default 4 */
  attempts?: number;
  /** Wait before the second try (ms), doubled each further try. @default 500 */
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export const DEFAULT_PUT_ATTEMPTS = 4;
export const DEFAULT_PUT_DELAY_MS = 500;

export class ScanReportPublisher {
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly client: EventBridgeClient,
    /** The bus's ARN (a bus of another account is named by ARN; the bus policy must admit the caller). */
    private readonly busArn: string,
    options: PublisherOptions = {},
  ) {
    this.attempts = Math.max(1, options.attempts ?? DEFAULT_PUT_ATTEMPTS);
    this.baseDelayMs = options.baseDelayMs ?? DEFAULT_PUT_DELAY_MS;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async publish(reports: readonly ScanReportDetail[]): Promise<PublishResult> {
    const result: PublishResult = { sent: [], undelivered: [], requests: 0 };
    let pending = reports.map((r) => ({ fingerprint: r.fingerprint, entry: this.entryOf(r) }));
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) await this.sleep(this.baseDelayMs * 2 ** (attempt - 2));
      const rejected: Array<(typeof pending)[number] & { errorCode: string; errorMessage: string }> = [];
      for (const batch of putEventsBatches(pending.map((p) => ({ ...p.entry, report: p })))) {
        result.requests += 1;
        const out = await this.client.send(
          new PutEventsCommand({ Entries: batch.map(({ report: _r, ...entry }) => entry) }),
        );
        batch.forEach((b, i) => {
          const answer = out.Entries?.[i];
          if (answer?.EventId && !answer.ErrorCode) {
            result.sent.push({ fingerprint: b.report.fingerprint, eventId: answer.EventId });
          } else {
            rejected.push({
              ...b.report,
              errorCode: answer?.ErrorCode ?? 'NoEventId',
              errorMessage: answer?.ErrorMessage ?? 'PutEvents returned no event id for this entry',
            });
          }
        });
      }
      if (attempt >= this.attempts) {
        for (const r of rejected) {
          result.undelivered.push({
            fingerprint: r.fingerprint,
            errorCode: r.errorCode,
            errorMessage: r.errorMessage,
          });
        }
        break;
      }
      pending = rejected;
    }
    return result;
  }

  private entryOf(report: ScanReportDetail): PutEventsRequestEntry & {
    Source: string;
    DetailType: string;
    Detail: string;
  } {
    return {
      EventBusName: this.busArn,
      Source: SCAN_REPORT_SOURCE,
      DetailType: SCAN_REPORT_DETAIL_TYPE,
      Detail: JSON.stringify(report),
    };
  }
}
