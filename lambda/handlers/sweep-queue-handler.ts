import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { IAMClient } from '@aws-sdk/client-iam';
import { PublishCommand } from '@aws-sdk/client-sns';
import { ChangeMessageVisibilityCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { failureReason } from '../adapters/sweep-state';
import { accountFindingNotice } from '../domain/account-finding';
import { UNOWNED } from '../domain/notice';
import { effectivePolicy } from '../domain/org-policy';
import type { OrgSettings } from '../shared/config';
import * as z from '../shared/zod';
import {
  type CreatorSource,
  createAccountSweeper,
  type SweeperRuntime,
  type SweepResult,
  type SweepTarget,
} from './sweep-handler';

/**
 * The organization sweep (issue 12, behaviour 2), consumer side: the sweep function reads the sweep queue through
 * an SQS event source mapping (batch size 1, maximum concurrency = organization.sweepConcurrency), one governed
 * account per message, and sweeps it exactly as the single-account sweep does (same per-account lease and marker,
 * same pipeline), acting in the account through its member role (the hub's own account with the function's own
 * credentials) and deciding with the account's effective policy (account override > nearest OU > base).
 *
 * A message whose account fails (member role missing or not trusting the hub, access denied, throttled past the
 * SDK's retries) is reported as a batch item failure: SQS delivers it again, and after `maxReceiveCount` deliveries
 * moves it to the dead-letter queue. Before reporting it, the handler shortens the failed message's visibility
 * (ChangeMessageVisibility, as AWS documents for SQS event sources) to FAILED_ACCOUNT_RETRY_SECONDS, so that a failing
 * account is retried, and dead-lettered, within minutes rather than after the queue's 90-minute visibility timeout
 * per delivery (which a working sweep of a large account needs). On that last delivery the failure is also
 * recorded as an account-level finding: an error log, the `AccountsNotSwept` metric and one notice to the fallback
 * owner. The account's coverage record (sweep state item) keeps the last failure's reason. Other accounts' messages
 * are independent: they complete whatever one account does.
 *
 * A sweep that runs low on time saves its marker (as today) and puts a continuation message for its account on the
 * queue, so a large account spans several invocations without the 5-minute continuation schedule.
 */

/**
 * How long a failed delivery stays invisible before SQS delivers it again, by delivery (1st, 2nd, ...): growing, so a
 * throttled account gets some rest, and short, so that a failing account reaches the dead-letter queue about six
 * minutes after its first failure. The last delivery keeps the queue's own timeout (the redrive policy moves it).
 */
export const FAILED_ACCOUNT_RETRY_SECONDS: readonly number[] = [120, 240];

function retryDelaySeconds(attempt: number): number {
  const delays = FAILED_ACCOUNT_RETRY_SECONDS;
  return delays[Math.min(attempt, delays.length) - 1] ?? (delays[delays.length - 1] as number);
}

/** One account to sweep, as the scheduler puts it on the queue. */
export const SweepMessageSchema = z.strictObject({
  accountId: z.string().check(z.regex(/^\d{12}$/, 'must be a 12-digit account id')),
  /** The account's name in Organizations ('' when unknown). */
  name: z.string().check(z.maxLength(200)),
  /** OU ids from the root down to the account's parent (root excluded). */
  ouPath: z.array(z.string().check(z.maxLength(100))).check(z.maxLength(10)),
  /** When the scheduler started this round (ISO): an account already swept since is not swept again. */
  round: z.iso.datetime(),
  /** A continuation of a paused sweep (put by the sweep function itself). */
  continue: z.optional(z.boolean()),
  sweepId: z.optional(z.string().check(z.minLength(1), z.maxLength(200))),
});
export type SweepMessage = z.infer<typeof SweepMessageSchema>;

export class InvalidSweepMessageError extends Error {
  constructor(messageId: string, detail: string) {
    super(`sweep queue message ${messageId} is not a sweep request: ${detail}`);
    this.name = 'InvalidSweepMessageError';
  }
}

/** What the organization sweep needs per container: the settings, and an IAM client per governed account. */
export interface OrganizationAccess {
  settings: OrgSettings;
  /** An IAM client acting in the account (MemberAccess.iamFor). */
  iamFor(accountId: string): Promise<IAMClient>;
}

export interface QueueSweepRuntime extends SweeperRuntime {
  /** The base policy's version (each override's is derived from it). */
  policyVersion: string;
  /** The account the functions run in: governed with their own credentials, and the only one with creators. */
  hubAccountId: string;
  /** The organization settings and member access, loaded once per container. */
  organization: () => Promise<OrganizationAccess>;
  /** Continuations of paused sweeps are put on this queue (the sweep queue). */
  sqs: SQSClient;
  queueUrl: string;
  /** The queue's redrive maxReceiveCount: the delivery that records the account-level finding. */
  maxReceiveCount: number;
  /** CloudTrail creator attribution, for the hub's own account only (member events are not in its history). */
  creators?: CreatorSource;
}

function attemptOf(record: SQSRecord): number {
  const n = Number(record.attributes?.ApproximateReceiveCount ?? '1');
  return Number.isFinite(n) && n >= 1 ? n : 1;
}

function parseMessage(record: SQSRecord): SweepMessage {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch {
    throw new InvalidSweepMessageError(record.messageId, 'body is not JSON');
  }
  const parsed = SweepMessageSchema.safeParse(body);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new InvalidSweepMessageError(record.messageId, detail);
  }
  return parsed.data;
}

export function createQueueSweepHandler(rt: QueueSweepRuntime) {
  const { logger, metrics } = rt;
  const sweep = createAccountSweeper(rt);

  async function sweepOne(message: SweepMessage, context: Context): Promise<SweepResult> {
    const org = await rt.organization();
    const placed = effectivePolicy(rt.config, rt.policyVersion, org.settings.overrides, {
      accountId: message.accountId,
      ouPath: message.ouPath,
    });
    const target: SweepTarget = {
      accountId: message.accountId,
      iam: () => org.iamFor(message.accountId),
      config: placed.policy,
      policyVersion: placed.policyVersion,
      ...(rt.creators && message.accountId === rt.hubAccountId ? { creators: rt.creators } : {}),
    };
    logger.info('account sweep requested', {
      accountName: message.name,
      ouPath: message.ouPath,
      round: message.round,
      policyVersion: placed.policyVersion,
      appliedOverride: placed.appliedOverride,
    });
    const result = await sweep(
      {
        round: message.round,
        ...(message.continue ? { continue: true } : {}),
        ...(message.sweepId ? { sweepId: message.sweepId } : {}),
      },
      target,
      context,
    );
    if (result.status === 'paused' && result.sweepId) {
      const next: SweepMessage = { ...message, continue: true, sweepId: result.sweepId };
      await rt.sqs.send(new SendMessageCommand({ QueueUrl: rt.queueUrl, MessageBody: JSON.stringify(next) }));
      logger.info('account sweep continues in a new message', { sweepId: result.sweepId });
    }
    return result;
  }

  /** The last delivery failed: the message goes to the dead-letter queue; say so once, loudly. */
  async function recordFinding(
    record: SQSRecord,
    message: SweepMessage | null,
    err: unknown,
    attempts: number,
  ) {
    const reason = failureReason(err);
    const accountId = message?.accountId ?? 'unknown';
    logger.error('account not swept after every retry: its message goes to the dead-letter queue', {
      accountId,
      accountName: message?.name ?? null,
      messageId: record.messageId,
      attempts,
      reason,
    });
    metrics.addMetric('AccountsNotSwept', MetricUnit.Count, 1);
    const notice = accountFindingNotice(
      {
        accountId,
        accountName: message?.name ?? '',
        ouPath: message?.ouPath ?? [],
        reason,
        attempts,
        round: message?.round ?? 'unknown',
      },
      rt.config.fallbackOwner ?? UNOWNED,
    );
    try {
      await rt.sns.send(
        new PublishCommand({
          TopicArn: rt.topicArn,
          Subject: notice.subject,
          Message: notice.body,
          MessageAttributes: Object.fromEntries(
            Object.entries(notice.attributes).map(([k, v]) => [k, { DataType: 'String', StringValue: v }]),
          ),
        }),
      );
    } catch (publishErr) {
      // The dead-letter queue, the log line and the metric still record the finding.
      logger.error('could not send the account-level notice', { accountId, error: publishErr as Error });
    }
  }

  /**
   * Makes a failed message visible again after retryDelaySeconds instead of the queue's visibility timeout. If SQS
   * refuses (an expired receipt handle), the message still fails and returns after the queue's timeout: only later.
   */
  async function retrySoon(record: SQSRecord, attempts: number) {
    const delay = retryDelaySeconds(attempts);
    try {
      await rt.sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: rt.queueUrl,
          ReceiptHandle: record.receiptHandle,
          VisibilityTimeout: delay,
        }),
      );
    } catch (err) {
      logger.warn("could not shorten the failed message's visibility", {
        messageId: record.messageId,
        visibilityTimeout: delay,
        error: err as Error,
      });
    }
  }

  return async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
    const failures: SQSBatchResponse['batchItemFailures'] = [];
    try {
      for (const record of event.Records ?? []) {
        const attempts = attemptOf(record);
        let message: SweepMessage | null = null;
        try {
          message = parseMessage(record);
          logger.appendKeys({ accountId: message.accountId });
          const result = await sweepOne(message, context);
          logger.info('account sweep invocation ended', {
            status: result.status,
            sweepId: result.sweepId,
            counters: result.counters,
          });
        } catch (err) {
          failures.push({ itemIdentifier: record.messageId });
          metrics.addMetric('AccountSweepFailures', MetricUnit.Count, 1);
          logger.warn('account sweep failed; SQS delivers the message again until maxReceiveCount', {
            messageId: record.messageId,
            attempts,
            maxReceiveCount: rt.maxReceiveCount,
            error: err as Error,
          });
          if (attempts >= rt.maxReceiveCount) await recordFinding(record, message, err, attempts);
          else await retrySoon(record, attempts);
        } finally {
          logger.resetKeys();
        }
      }
      return { batchItemFailures: failures };
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}
