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
import { type EventBridgeEvent, EventBridgeEventSchema } from '../domain/cloudtrail';
import {
  decideKey,
  decisionIdFor,
  type KeyMetadata,
  type KeyStep,
  type KeyStepResult,
  type PipelineDeps,
} from '../domain/pipeline';
import type { ViolationCode } from '../domain/types';
import {
  aggregateUses,
  attributeUse,
  deactivatedUseReason,
  describeUsage,
  type SubjectUsage,
  type UsageIgnoreReason,
  utcDay,
} from '../domain/usage';
import type { BearerUse } from '../domain/usage-types';
import type { Config } from '../shared/config';
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
  config: Config;
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

export type UsageSkipReason = UsageIgnoreReason | 'foreign-account' | 'not-an-event';

export interface UsageDecisionResult {
  decisionId: string;
  keyId: string;
  action: string;
  applied: boolean;
  violations: ViolationCode[];
  /** Why usage led to this decision. */
  cause: 'long-term-not-allowed' | 'deactivated-key-in-use' | 'reactivated-key-in-use';
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

  /** The Bedrock keys of each IAM user whose uses may be long-term (one IAM listing per user per batch). */
  async function keysOfCallers(uses: BearerUse[]): Promise<Map<string, KeyMetadata[]>> {
    const users = new Set<string>();
    for (const u of uses) {
      if (u.principal.type === 'IAMUser' && u.principal.userName && u.declaredKeyType !== 'SHORT_TERM') {
        users.add(u.principal.userName);
      }
    }
    const out = new Map<string, KeyMetadata[]>();
    for (const userName of users)
      out.set(userName, await directory.listUserKeys(rt.governedAccountId, userName));
    return out;
  }

  function trigger(s: SubjectUsage): KeyStep['trigger'] {
    return {
      kind: 'usage',
      eventId: s.latest.eventId,
      eventName: s.latest.eventName,
      eventTime: s.latest.eventTime,
    };
  }

  /** The decision steps a long-term subject's use calls for (none for most batches). */
  async function stepsFor(
    s: SubjectUsage,
    keys: KeyMetadata[],
  ): Promise<Array<[KeyStep, UsageDecisionResult['cause']]>> {
    const subject = s.aggregate.subject;
    if (subject.kind === 'principal') return [];
    const used = subject.kind === 'key' ? keys.filter((k) => k.keyId === subject.keyId) : keys;
    // A refused call credited to the user's only Active key may have been made with a sibling keyguard turned off.
    const maybeTried =
      s.deniedCalls > 0 ? keys.filter((k) => k.status !== 'Active' && !used.includes(k)) : [];
    const perEvent = decisionIdFor('usage', s.latest.eventTime, s.latest.eventId);
    const steps: Array<[KeyStep, UsageDecisionResult['cause']]> = [];
    for (const meta of [...used, ...maybeTried]) {
      const base = {
        accountId: s.aggregate.accountId,
        keyId: meta.keyId,
        userName: meta.userName,
        meta,
        trigger: trigger(s),
      };
      const known = await audit.getKnownKey(base.accountId, meta.keyId);
      const deactivatedByUs = known?.history?.deactivatedByUs === true && known.status === 'Inactive';
      if (deactivatedByUs) {
        const reason = deactivatedUseReason(s);
        if (meta.status === 'Active') {
          // It works again: evaluate() raises REACTIVATED_WITHOUT_APPROVAL; decided per event, never folded into a day.
          steps.push([
            { ...base, decisionId: perEvent, record: 'always', alert: { reason } },
            'reactivated-key-in-use',
          ]);
        } else {
          // Still Inactive and still tried: one decision (and notice) per key per UTC day, whatever the batches.
          // The key's history remembers the day of its latest alert once the notice is sent; a batch of a day
          // already alerted (or older: a late or redelivered batch) decides nothing. The id is the latest
          // attempt's, time-ordered like every other decision of the key.
          const day = utcDay(s.latest.eventTime);
          if ((known.history?.inUseAlertDay ?? '') >= day) continue;
          steps.push([
            { ...base, decisionId: perEvent, record: 'always', alert: { reason, day } },
            'deactivated-key-in-use',
          ]);
        }
      } else if (!rt.config.allowLongTermKeys && used.includes(meta)) {
        // evaluate() raises LONG_TERM_NOT_ALLOWED; recorded only when it is news for this key.
        steps.push([{ ...base, decisionId: perEvent, record: 'on-change' }, 'long-term-not-allowed']);
      }
    }
    return steps;
  }

  function report(step: KeyStepResult, cause: UsageDecisionResult['cause']): UsageDecisionResult {
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
    for (const r of records) {
      const event = parseBody(r.messageId, r.body);
      if (!event) {
        skip('not-an-event');
        continue;
      }
      const c = describeUsage(event.detail, event.account);
      if (c.unknownTokenType) {
        logger.warn('unknown bearerTokenType: the key type is decided from the identity', {
          messageId: r.messageId,
          eventId: event.detail.eventID,
          bearerTokenType: redactSecrets(c.unknownTokenType).slice(0, 64),
        });
      }
      if (!c.use) {
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

    const keysByUser = await keysOfCallers(uses);
    const subjects = aggregateUses(uses, (u) =>
      attributeUse(u, u.principal.userName ? (keysByUser.get(u.principal.userName) ?? null) : null),
    );
    await store.recordUses(subjects.map((s) => s.aggregate));
    count('BearerTokenCalls', uses.length);
    count('UsageSubjects', subjects.length);

    const decisions: UsageDecisionResult[] = [];
    for (const s of subjects) {
      if (s.aggregate.keyType !== 'LONG_TERM' || s.aggregate.subject.kind === 'principal') continue;
      const keys = keysByUser.get(s.aggregate.subject.userName) ?? [];
      for (const [step, cause] of await stepsFor(s, keys)) {
        const r = await decideKey(step, deps, {
          config: rt.config,
          policyVersion: rt.policyVersion,
          now: now(),
        });
        if (r) decisions.push(report(r, cause));
      }
    }
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
