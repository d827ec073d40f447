import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import {
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { GovernedAccount } from '../adapters/organizations';
import type { SweepMessage } from './sweep-queue-handler';

/**
 * The organization sweep (issue 12, behaviour 2), scheduler side: on the sweep schedule, list the governed accounts
 * from Organizations and put ONE message per account on the sweep queue (SendMessageBatch, 10 entries per call, the
 * SQS maximum). The sweep function consumes the queue, one account per message, at most
 * `organization.sweepConcurrency` at once (the event source mapping's maximum concurrency).
 *
 * Entries SQS refuses in a batch (its per-entry failures) are sent again, up to `attempts` times in all; the ones
 * still refused, or a batch call that fails past the SDK's retries, are logged with their accounts and the
 * `SweepMessagesNotSent` metric, and the invocation then throws (after every other batch was sent), so the
 * schedule's retries and failure queue see it. A retried round re-sends every account: an account already swept
 * since the round started is not swept again (the message's `round`).
 */

/** SendMessageBatch takes at most 10 entries. */
export const SQS_BATCH_MAX = 10;

export interface OrgSweepSchedulerRuntime {
  /** The governed accounts (listGovernedAccounts through the reader role). */
  listAccounts: () => Promise<GovernedAccount[]>;
  sqs: SQSClient;
  queueUrl: string;
  logger: Logger;
  metrics: Metrics;
  /** Sends of one batch's refused entries, the first included. @default 3 */
  attempts?: number;
  /** Wait before re-sending refused entries (doubled each time). @default 200 ms */
  backoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => Date;
}

export class SweepMessagesNotSentError extends Error {
  constructor(readonly accounts: readonly string[]) {
    super(
      `${accounts.length} governed account(s) could not be put on the sweep queue: ${accounts.slice(0, 20).join(', ')}` +
        (accounts.length > 20 ? ', …' : ''),
    );
    this.name = 'SweepMessagesNotSentError';
  }
}

export interface OrgSweepRound {
  round: string;
  accounts: number;
  sent: number;
  batches: number;
}

export function createOrgSweepScheduler(rt: OrgSweepSchedulerRuntime) {
  const { logger, metrics } = rt;
  const attempts = rt.attempts ?? 3;
  const backoff = rt.backoffMs ?? 200;
  const sleep = rt.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const clock = rt.now ?? (() => new Date());

  /** Sends one batch; returns the account ids still refused after every attempt. */
  async function sendBatch(entries: SendMessageBatchRequestEntry[]): Promise<string[]> {
    let pending = entries;
    for (let attempt = 1; ; attempt += 1) {
      const res = await rt.sqs.send(new SendMessageBatchCommand({ QueueUrl: rt.queueUrl, Entries: pending }));
      const failed = new Set((res.Failed ?? []).map((f) => f.Id));
      if (failed.size > 0) {
        logger.warn('sweep queue refused some messages', {
          attempt,
          failed: (res.Failed ?? []).map((f) => ({
            account: f.Id,
            code: f.Code,
            senderFault: f.SenderFault,
          })),
        });
      }
      pending = pending.filter((e) => failed.has(e.Id));
      if (pending.length === 0 || attempt >= attempts) return pending.map((e) => e.Id as string);
      await sleep(backoff * 2 ** (attempt - 1));
    }
  }

  return async function handler(): Promise<OrgSweepRound> {
    try {
      const round = clock().toISOString();
      const accounts = await rt.listAccounts();
      logger.info('organization sweep round started', { round, accounts: accounts.length });
      const notSent: string[] = [];
      let batches = 0;
      for (let i = 0; i < accounts.length; i += SQS_BATCH_MAX) {
        const entries = accounts.slice(i, i + SQS_BATCH_MAX).map((a): SendMessageBatchRequestEntry => {
          const message: SweepMessage = { accountId: a.accountId, name: a.name, ouPath: a.ouPath, round };
          // The account id is unique in the round and a valid batch entry id (digits).
          return { Id: a.accountId, MessageBody: JSON.stringify(message) };
        });
        batches += 1;
        try {
          notSent.push(...(await sendBatch(entries)));
        } catch (err) {
          logger.error('sweep queue batch failed after the SDK retries', {
            accounts: entries.map((e) => e.Id),
            error: err as Error,
          });
          notSent.push(...entries.map((e) => e.Id as string));
        }
      }
      const sent = accounts.length - notSent.length;
      metrics.addMetric('GovernedAccounts', MetricUnit.Count, accounts.length);
      metrics.addMetric('SweepMessagesSent', MetricUnit.Count, sent);
      metrics.addMetric('SweepMessagesNotSent', MetricUnit.Count, notSent.length);
      if (notSent.length > 0) {
        logger.error('accounts not put on the sweep queue: not swept this round', { accounts: notSent });
        throw new SweepMessagesNotSentError(notSent);
      }
      logger.info('organization sweep round queued', { round, accounts: accounts.length, sent, batches });
      return { round, accounts: accounts.length, sent, batches };
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}
