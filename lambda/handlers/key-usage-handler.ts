import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { DynamoAuditLog } from '../adapters/audit-store';
import { documentClient } from '../adapters/document-client';
import { accountAccess, type GovernedAccounts } from '../adapters/governed-accounts';
import { type IamClientProvider, IamEnforcer, IamKeyDirectory } from '../adapters/iam';
import { IamUserFacts } from '../adapters/iam-user-facts';
import { MemberRoleError } from '../adapters/member-access';
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
import * as z from '../shared/zod';

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
 *
 * Organization mode (issue 12): the spokes forward their accounts' usage to the hub bus. The uses of a batch are
 * taken account by account: each governed account's uses are attributed and decided in that account (IAM through its
 * member role) with its effective policy (overrides; the decision records that policy's version), uses of accounts
 * keyguard does not govern are skipped (`ungovernedAccount`, logged with why, EventsFromUngovernedAccounts). One
 * account's failure (its member role unusable, IAM throttled past retries) fails only its messages: they are
 * reported as batch item failures (the event source mapping reports them in organization mode), retried, and
 * finally dead-lettered, while the other accounts' uses are recorded.
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
  /** The only account whose use is tracked and whose keys may be decided on (organization mode: the hub's own). */
  governedAccountId: string;
  iamFor: IamClientProvider;
  /**
   * Organization mode: a use is decided in the account that made it, through its member role, with its effective
   * policy; uses of accounts keyguard does not govern are skipped. Failures are then per account (batch item
   * failures) instead of failing the batch.
   * @default none: only `governedAccountId` is governed, with `iamFor`
   */
  organization?: () => Promise<GovernedAccounts>;
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
  Records: z.array(z.looseObject({ messageId: z.string().check(z.minLength(1)), body: z.string() })),
});

/** `not-aws-source`: an event whose `source` is not Bedrock's, i.e. put by a custom rule or PutEvents (forged use). */
export type UsageSkipReason =
  | UsageIgnoreReason
  | 'foreign-account'
  | 'ungoverned-account'
  | 'not-an-event'
  | 'not-aws-source';

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
  /**
   * Organization mode: the messages of accounts whose uses could not be processed (SQS partial batch response:
   * only these are retried). Absent in single-account mode, where any failure fails the whole batch.
   */
  batchItemFailures?: Array<{ itemIdentifier: string }>;
}

/** Only paths and expectations are reported: values could hold anything. */
function issuesOf(error: z.core.$ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

export function createKeyUsageHandler(rt: KeyUsageRuntime) {
  const { logger, metrics } = rt;
  const organization = rt.organization;
  // In organization mode IAM calls go to the key's account, through its member role.
  const { iamFor, notifierOptions } = accountAccess(organization, rt.iamFor);
  const doc = documentClient(rt.dynamo);
  const directory = new IamKeyDirectory(iamFor);
  const audit = new DynamoAuditLog(doc, { decisionsTable: rt.decisionsTable, keysTable: rt.keysTable });
  const deps: PipelineDeps = {
    directory,
    audit,
    enforcer: new IamEnforcer(iamFor, directory),
    notifier: new SnsNotifier(rt.sns, rt.topicArn, rt.config, notifierOptions),
    approvals: new DynamoApprovalsStore(doc, rt.approvalsTable),
    // The same user facts as the event and sweep paths: otherwise a usage decision would differ from theirs
    // in BROAD_PERMISSIONS / USER_HAS_OTHER_CREDENTIALS only, and look like a change.
    facts: new IamUserFacts(iamFor),
  };
  const store = new DynamoUsageStore(doc, rt.usageTable);
  // A usage decision about an Active key evaluates UNUSED from the same table (just written: never idle).
  deps.usage = store;
  const now = rt.now ?? (() => new Date());

  /** The policy an account's uses are decided with (its notifier quotes that policy). */
  interface AccountPolicy {
    config: Policy;
    policyVersion: string;
    deps: PipelineDeps;
  }
  const byVersion = new Map<string, AccountPolicy>([
    [rt.policyVersion, { config: rt.config, policyVersion: rt.policyVersion, deps }],
  ]);
  /** Organization mode: the effective policy of a governed account, or why the account is not governed. */
  async function policyOf(
    accounts: GovernedAccounts,
    accountId: string,
  ): Promise<AccountPolicy | { ungoverned: string }> {
    const g = await accounts.check(accountId);
    if (!g.governed) return { ungoverned: g.reason };
    const effective = accounts.policyFor(rt.config, rt.policyVersion, g.placement);
    let p = byVersion.get(effective.policyVersion);
    if (!p) {
      p = {
        config: effective.policy,
        policyVersion: effective.policyVersion,
        deps: { ...deps, notifier: new SnsNotifier(rt.sns, rt.topicArn, effective.policy, notifierOptions) },
      };
      byVersion.set(effective.policyVersion, p);
    }
    return p;
  }

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
        policyVersion: d.policyVersion,
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
    const uses: Array<{ messageId: string; use: BearerUse }> = [];
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
      if (!organization && c.use.accountId !== rt.governedAccountId) {
        skip('foreign-account');
        continue;
      }
      uses.push({ messageId: r.messageId, use: c.use });
    }
    for (const [reason, n] of Object.entries(skipped)) count('SkippedUsageRecords', n, ['reason', reason]);
    if (Object.keys(skipped).length > 0) logger.info('usage records skipped', { skipped });

    const at = now();
    let recorded = 0;
    let subjects = 0;
    const decisions: UsageDecisionResult[] = [];
    const failed: string[] = [];
    /** One account's uses through flow 3 with its policy. */
    const run = async (batch: BearerUse[], policy: AccountPolicy): Promise<void> => {
      const outcome = await processUses(
        batch,
        { directory, recorder: store, deps: policy.deps },
        { config: policy.config, policyVersion: policy.policyVersion, now: at, triggerKind: 'usage' },
      );
      recorded += batch.length;
      subjects += outcome.subjects.length;
      decisions.push(...outcome.decisions.map((d) => report(d.result, d.cause)));
    };
    if (!organization) {
      await run(
        uses.map((u) => u.use),
        byVersion.get(rt.policyVersion) as AccountPolicy,
      );
    } else {
      const accounts = await organization();
      const byAccount = new Map<string, Array<{ messageId: string; use: BearerUse }>>();
      for (const u of uses) {
        const list = byAccount.get(u.use.accountId);
        if (list) list.push(u);
        else byAccount.set(u.use.accountId, [u]);
      }
      for (const [accountId, entries] of byAccount) {
        try {
          const policy = await policyOf(accounts, accountId);
          if ('ungoverned' in policy) {
            // Never acted on: not this deployment's account (excluded, not a member, outside the targets).
            logger.info('usage of an ungoverned account ignored', {
              accountId,
              reason: policy.ungoverned,
              uses: entries.length,
            });
            for (const _ of entries) skip('ungoverned-account');
            count('SkippedUsageRecords', entries.length, ['reason', 'ungoverned-account']);
            count('EventsFromUngovernedAccounts', entries.length);
            continue;
          }
          await run(
            entries.map((e) => e.use),
            policy,
          );
        } catch (err) {
          // Only this account's messages are retried (and finally dead-lettered); the others are done.
          if (err instanceof MemberRoleError) count('MemberRoleFailures', 1);
          logger.error('usage of one account failed; its messages are retried, then dead-lettered', {
            accountId,
            messages: entries.length,
            ...(err instanceof MemberRoleError ? { roleArn: err.roleArn, code: err.code } : {}),
            error: err as Error,
          });
          failed.push(...new Set(entries.map((e) => e.messageId)));
        }
      }
    }
    count('BearerTokenCalls', recorded);
    count('UsageSubjects', subjects);
    logger.info('usage batch recorded', {
      messages: records.length,
      uses: recorded,
      subjects,
      decisions: decisions.filter((d) => d.recorded).length,
      ...(failed.length > 0 ? { failedMessages: failed.length } : {}),
    });
    return {
      messages: records.length,
      uses: recorded,
      skipped,
      subjects,
      decisions,
      ...(organization ? { batchItemFailures: failed.map((itemIdentifier) => ({ itemIdentifier })) } : {}),
    };
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
