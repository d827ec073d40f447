import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import { z } from 'zod';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { DynamoAuditLog } from '../adapters/audit-store';
import { documentClient } from '../adapters/document-client';
import { type IamClientProvider, IamEnforcer, IamKeyDirectory } from '../adapters/iam';
import { IamUserFacts } from '../adapters/iam-user-facts';
import { SnsNotifier } from '../adapters/notifier';
import { DynamoUsageStore } from '../adapters/usage-store';
import { type EventBridgeEvent, EventBridgeEventSchema, latestPlausibleTime } from '../domain/cloudtrail';
import type { KeyStepResult, PipelineDeps } from '../domain/pipeline';
import type { ViolationCode } from '../domain/types';
import { describeUsage, isBedrockEventSource, type UsageIgnoreReason } from '../domain/usage';
import { processUses, type UsageCause } from '../domain/usage-pipeline';
import type { BearerUse } from '../domain/usage-types';
import type { Policy } from '../shared/config';
import { redactSecrets } from '../shared/redact';

/**
 * The key-usage function (flow 3): SQS batches of EventBridge events (each `detail` a CloudTrail record of a
 * Bedrock call, forwarded from every usage region to the governance bus) → bearer-token uses → attributed to a
 * key, a user or a principal → aggregated per subject → one usage-store write per subject per batch (never one per
 * call) → decisions only where a use matters to policy:
 * - a long-term key used while `allowLongTermKeys` is false (LONG_TERM_NOT_ALLOWED, recorded on change only);
 * - a key keyguard deactivated that is still being tried (one decision and notice per key per UTC day), or that
 *   works again (REACTIVATED_WITHOUT_APPROVAL, from IAM's live state).
 * Records that are not bearer-token calls of the governed account are counted and skipped. A message that is not
 * an event is logged by messageId and skipped: it can never succeed, and throwing would block the batch forever.
 * Store, IAM and SNS failures are thrown, so the batch is retried and finally goes to the queue's DLQ. A retried
 * batch is counted again (call counts are at-least-once); last-used times and decisions are not affected (times
 * only move forward, decision ids are deterministic).
 * CloudTrail never logs the key itself; nothing here logs a message body.
 */

export interface KeyUsageRuntime {
  config: Policy;
  policyVersion: string;
  decisionsTable: string;
  keysTable: string;
  /** Approvals (read-only). */
  approvalsTable: string;
  usageTable: string;
  topicArn: string;
  /** The only account whose use is tracked and whose keys may be decided on. */
  governedAccountId: string;
  iamFor: IamClientProvider;
  dynamo: DynamoDBClient;
  sns: SNSClient;
  logger: Logger;
  metrics: Metrics;
  now?: () => Date;
}

export class InvalidSqsEventError extends Error {
  constructor(detail: string) {
    super(`event is not an SQS batch: ${detail}`);
    this.name = 'InvalidSqsEventError';
  }
}

const SqsEventSchema = z.object({
  Records: z.array(z.looseObject({ messageId: z.string().min(1), body: z.string() })),
});

/** `not-aws-source`: an event whose `source` is not Bedrock's, i.e. put by a custom rule or PutEvents (forged use). */
export type UsageSkipReason = UsageIgnoreReason | 'foreign-account' | 'not-an-event' | 'not-aws-source';

export interface UsageDecisionResult {
  decisionId: string;
  keyId: string;
  action: string;
  applied: boolean;
  violations: ViolationCode[];
  /** Why usage led to this decision. */
  cause: UsageCause;
  recorded: boolean;
  duplicate: boolean;
  notified: boolean;
}

export interface KeyUsageResult {
  messages: number;
  uses: number;
  skipped: Partial<Record<UsageSkipReason, number>>;
  /** Store writes: one per subject. */
  subjects: number;
  decisions: UsageDecisionResult[];
}

/** Only paths and expectations are reported: values could hold anything. */
function issuesOf(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

export function createKeyUsageHandler(rt: KeyUsageRuntime) {
  const { logger, metrics } = rt;
  const doc = documentClient(rt.dynamo);
  const directory = new IamKeyDirectory(rt.iamFor);
  const audit = new DynamoAuditLog(doc, { decisionsTable: rt.decisionsTable, keysTable: rt.keysTable });
  const deps: PipelineDeps = {
    directory,
    audit,
    enforcer: new IamEnforcer(rt.iamFor, directory),
    notifier: new SnsNotifier(rt.sns, rt.topicArn, rt.config),
    approvals: new DynamoApprovalsStore(doc, rt.approvalsTable),
    // The same user facts as the event and sweep paths: otherwise a usage decision would differ from theirs
    // in BROAD_PERMISSIONS / USER_HAS_OTHER_CREDENTIALS only, and look like a change.
    facts: new IamUserFacts(rt.iamFor),
  };
  const store = new DynamoUsageStore(doc, rt.usageTable);
  // A usage decision about an Active key evaluates UNUSED from the same table (just written: never idle).
  deps.usage = store;
  const now = rt.now ?? (() => new Date());

  function count(name: string, value: number, dimension: [string, string] | null = null): void {
    if (value === 0) return;
    const m = metrics.singleMetric();
    if (dimension) m.addDimension(dimension[0], dimension[1]);
    m.addMetric(name, MetricUnit.Count, value);
  }

  /** The event in one message body, or null (logged by messageId) when the body is not one. */
  function parseBody(messageId: string, body: string): EventBridgeEvent | null {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      logger.error('message skipped: body is not JSON (it is not retried)', { messageId });
      return null;
    }
    const parsed = EventBridgeEventSchema.safeParse(json);
    if (!parsed.success) {
      logger.error('message skipped: body is not a CloudTrail event (it is not retried)', {
        messageId,
        issues: issuesOf(parsed.error),
      });
      return null;
    }
    return parsed.data;
  }

  function report(step: KeyStepResult, cause: UsageCause): UsageDecisionResult {
    const d = step.decision;
    const out: UsageDecisionResult = {
      decisionId: d.decisionId,
      keyId: d.keyId,
      action: d.action,
      applied: d.applied,
      violations: d.violations.map((v) => v.code),
      cause,
      recorded: step.recorded,
      duplicate: step.duplicate,
      notified: step.notified,
    };
    if (step.recorded) {
      logger.info('usage decision recorded', {
        ...out,
        accountId: d.accountId,
        userName: d.userName,
        eventId: d.trigger.eventId,
      });
      count('Decisions', 1, ['action', d.action]);
      if (d.applied) count('KeysDeactivated', 1);
      if (cause !== 'long-term-not-allowed') count('DeactivatedKeyInUse', 1);
    }
    return out;
  }

  async function processBatch(records: Array<{ messageId: string; body: string }>): Promise<KeyUsageResult> {
    const skipped: Partial<Record<UsageSkipReason, number>> = {};
    const skip = (reason: UsageSkipReason) => {
      skipped[reason] = (skipped[reason] ?? 0) + 1;
    };
    const uses: BearerUse[] = [];
    const notAfter = latestPlausibleTime(now());
    for (const r of records) {
      const event = parseBody(r.messageId, r.body);
      if (!event) {
        skip('not-an-event');
        continue;
      }
      if (!isBedrockEventSource(event.source)) {
        logger.warn('usage event not from Bedrock skipped', {
          messageId: r.messageId,
          source: redactSecrets(event.source).slice(0, 64),
        });
        skip('not-aws-source');
        continue;
      }
      const c = describeUsage(event.detail, { envelopeAccount: event.account, notAfter });
      if (c.unknownTokenType) {
        logger.warn('unknown bearerTokenType: the key type is decided from the identity', {
          messageId: r.messageId,
          eventId: event.detail.eventID,
          bearerTokenType: redactSecrets(c.unknownTokenType).slice(0, 64),
        });
      }
      if (!c.use) {
        // A call dated in the future or of an account that cannot be established is not counted: say why.
        if (c.detail) {
          logger.warn('usage record skipped', {
            messageId: r.messageId,
            eventId: event.detail.eventID,
            reason: c.ignored,
            detail: c.detail,
          });
        }
        skip(c.ignored ?? 'not-bearer-token');
        continue;
      }
      if (c.use.accountId !== rt.governedAccountId) {
        skip('foreign-account');
        continue;
      }
      uses.push(c.use);
    }
    for (const [reason, n] of Object.entries(skipped)) count('SkippedUsageRecords', n, ['reason', reason]);
    if (Object.keys(skipped).length > 0) logger.info('usage records skipped', { skipped });

    const outcome = await processUses(
      uses,
      { directory, recorder: store, deps },
      {
        config: rt.config,
        policyVersion: rt.policyVersion,
        now: now(),
        triggerKind: 'usage',
      },
    );
    const subjects = outcome.subjects;
    count('BearerTokenCalls', uses.length);
    count('UsageSubjects', subjects.length);
    const decisions = outcome.decisions.map((d) => report(d.result, d.cause));
    logger.info('usage batch recorded', {
      messages: records.length,
      uses: uses.length,
      subjects: subjects.length,
      decisions: decisions.filter((d) => d.recorded).length,
    });
    return { messages: records.length, uses: uses.length, skipped, subjects: subjects.length, decisions };
  }

  return async function handler(event: unknown): Promise<KeyUsageResult> {
    try {
      const parsed = SqsEventSchema.safeParse(event);
      if (!parsed.success) throw new InvalidSqsEventError(issuesOf(parsed.error));
      return await processBatch(parsed.data.Records);
    } catch (err) {
      logger.error('usage batch failed; SQS redelivers it, then moves it to the dead-letter queue', {
        error: err as Error,
      });
      throw err;
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}
