import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { DynamoAuditLog } from '../adapters/audit-store';
import { documentClient } from '../adapters/document-client';
import { accountAccess, type GovernedAccounts } from '../adapters/governed-accounts';
import { type IamClientProvider, IamEnforcer, IamKeyDirectory } from '../adapters/iam';
import { IamUserFacts } from '../adapters/iam-user-facts';
import { MemberRoleError } from '../adapters/member-access';
import { SnsNotifier } from '../adapters/notifier';
import {
  classifyRecord,
  type EventBridgeEvent,
  EventBridgeEventSchema,
  latestPlausibleTime,
} from '../domain/cloudtrail';
import { type PipelineDeps, processKeyEvent } from '../domain/pipeline';
import type { UsageSource } from '../domain/usage-types';
import type { Policy } from '../shared/config';

/**
 * The credential-event function: EventBridge (IAM CloudTrail event) → validate → classify → pipeline.
 * Thin by design: parsing here, decisions in domain/, AWS in adapters/. Any failure is thrown, so that
 * Lambda retries the event and finally sends it to the failure destination; nothing is swallowed.
 */

export interface CredentialEventRuntime {
  config: Policy;
  policyVersion: string;
  decisionsTable: string;
  keysTable: string;
  /** Approvals and reviews, written by approvers; the function only reads them. */
  approvalsTable: string;
  idempotencyTable: string;
  topicArn: string;
  /**
   * The only account whose keys this function may read, decide on and change. An event from any other
   * account is ignored: acting on it against this account's IAM could touch a same-named user's keys.
   */
  governedAccountId: string;
  iamFor: IamClientProvider;
  /**
   * Organization mode (issue 12): the event's account (the forwarded event's envelope account) is the account
   * decided and acted in, through its member role, with its effective policy (overrides); an event from an account
   * that is not governed (excluded, not a member, not under the targets) is ignored and counted
   * (EventsFromUngovernedAccounts). `iamFor` and `governedAccountId` are then not used to pick the account.
   * @default none: only `governedAccountId` is governed, with `iamFor`
   */
  organization?: () => Promise<GovernedAccounts>;
  dynamo: DynamoDBClient;
  sns: SNSClient;
  logger: Logger;
  metrics: Metrics;
  /**
   * Last use per key (the usage table), so that UNUSED is evaluated here as the sweep evaluates it.
   * @default none: UNUSED is not evaluated by this function
   */
  usage?: UsageSource;
  now?: () => Date;
}

export class InvalidEventError extends Error {
  constructor(detail: string) {
    super(`event is not an EventBridge "AWS API Call via CloudTrail" event: ${detail}`);
    this.name = 'InvalidEventError';
  }
}

export type CredentialEventResult =
  | { status: 'ignored'; reason: string; eventId: string }
  | {
      status: 'decided';
      eventId: string;
      decisions: Array<{
        decisionId: string;
        keyId: string;
        action: string;
        applied: boolean;
        duplicate: boolean;
      }>;
    };

export function createCredentialEventHandler(rt: CredentialEventRuntime) {
  const { logger, metrics } = rt;
  const organization = rt.organization;
  // In organization mode IAM calls go to the key's account, through its member role.
  const { iamFor, notifierOptions } = accountAccess(organization, rt.iamFor);
  const directory = new IamKeyDirectory(iamFor);
  const deps: PipelineDeps = {
    directory,
    audit: new DynamoAuditLog(documentClient(rt.dynamo), {
      decisionsTable: rt.decisionsTable,
      keysTable: rt.keysTable,
    }),
    enforcer: new IamEnforcer(iamFor, directory),
    // Active approvals waive the codes they cover; the latest review restarts the review clock.
    approvals: new DynamoApprovalsStore(documentClient(rt.dynamo), rt.approvalsTable),
    notifier: new SnsNotifier(rt.sns, rt.topicArn, rt.config, notifierOptions),
    // Policies and other credentials of the key's user: BROAD_PERMISSIONS and USER_HAS_OTHER_CREDENTIALS.
    facts: new IamUserFacts(iamFor),
    // Without it a tag edit would drop UNUSED: a false "resolved" notice and the grace deadline cleared.
    ...(rt.usage ? { usage: rt.usage } : {}),
  };
  if (rt.config.usage.regions.length > 0 && !rt.usage) {
    // Not fatal: every other rule still applies. Loud, because the policy asks for UNUSED (the sweep's UNUSED
    // would be dropped by this function's decisions).
    logger.warn('usage.regions is set but this function has no usage table: UNUSED is not evaluated', {
      regions: rt.config.usage.regions,
    });
  }
  const now = rt.now ?? (() => new Date());
  // An override's notices quote its own settings (e.g. its maxAgeDays in the remedy): one notifier per policy.
  const depsByVersion = new Map<string, PipelineDeps>([[rt.policyVersion, deps]]);
  function depsFor(policy: Policy, version: string): PipelineDeps {
    let d = depsByVersion.get(version);
    if (!d) {
      d = { ...deps, notifier: new SnsNotifier(rt.sns, rt.topicArn, policy, notifierOptions) };
      depsByVersion.set(version, d);
    }
    return d;
  }

  /** The policy an event's account is decided with, or why the account is not governed. */
  async function policyOf(
    accountId: string,
  ): Promise<{ config: Policy; policyVersion: string } | { ungoverned: string }> {
    if (!organization) {
      return accountId === rt.governedAccountId
        ? { config: rt.config, policyVersion: rt.policyVersion }
        : { ungoverned: 'foreign-account' };
    }
    const accounts = await organization();
    const g = await accounts.check(accountId);
    if (!g.governed) return { ungoverned: g.reason };
    const effective = accounts.policyFor(rt.config, rt.policyVersion, g.placement);
    if (effective.appliedOverride) {
      logger.appendKeys({
        appliedOverride: effective.appliedOverride,
        policyVersion: effective.policyVersion,
      });
    }
    return { config: effective.policy, policyVersion: effective.policyVersion };
  }

  const ignored = (
    reason: string,
    eventId: string,
    eventName: string,
    detail?: string,
  ): CredentialEventResult => {
    // An event whose account or time cannot be believed is worth a look: a warning, with why.
    if (detail) logger.warn('event ignored', { reason, eventId, eventName, detail });
    else logger.info('event ignored', { reason, eventId, eventName });
    const m = metrics.singleMetric();
    m.addDimension('reason', reason);
    m.addMetric('IgnoredEvents', MetricUnit.Count, 1);
    return { status: 'ignored', reason, eventId };
  };

  function parse(raw: unknown): EventBridgeEvent {
    const parsed = EventBridgeEventSchema.safeParse(raw);
    if (!parsed.success) {
      // Only paths and expectations are reported: values could hold anything, including a secret.
      const detail = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      throw new InvalidEventError(detail);
    }
    return parsed.data;
  }

  async function process(event: EventBridgeEvent): Promise<CredentialEventResult> {
    const c = classifyRecord(event.detail, {
      envelopeAccount: event.account,
      notAfter: latestPlausibleTime(now()),
    });
    if (!c.relevant) return ignored(c.reason, c.eventId, c.eventName, c.detail);

    const keyEvent = c.event;
    const { accountId, eventId, eventName } = keyEvent.meta;
    const policy = await policyOf(accountId);
    if ('ungoverned' in policy) {
      if (!organization) return ignored('foreign-account', eventId, eventName);
      // Never acted on: not this deployment's account to change (a forwarded event cannot be forged by a member,
      // but the organization may hold accounts keyguard was told to leave alone).
      metrics.addMetric('EventsFromUngovernedAccounts', MetricUnit.Count, 1);
      return ignored('ungoverned-account', eventId, eventName, `account ${accountId}: ${policy.ungoverned}`);
    }
    logger.appendKeys({ eventId, eventName, accountId });
    const result = await processKeyEvent(keyEvent, depsFor(policy.config, policy.policyVersion), {
      config: policy.config,
      policyVersion: policy.policyVersion,
      now: now(),
      triggerKind: 'event',
    });
    if (result.ignored) return ignored(result.ignored, keyEvent.meta.eventId, keyEvent.meta.eventName);

    for (const { decision, duplicate, notified } of result.decisions) {
      logger.info('decision recorded', {
        decisionId: decision.decisionId,
        accountId: decision.accountId,
        userName: decision.userName,
        keyId: decision.keyId,
        action: decision.action,
        applied: decision.applied,
        policyVersion: decision.policyVersion,
        violations: decision.violations.map((v) => v.code),
        duplicate,
        notified,
      });
      const m = metrics.singleMetric();
      m.addDimension('action', decision.action);
      m.addMetric('Decisions', MetricUnit.Count, 1);
      if (decision.applied) metrics.addMetric('KeysDeactivated', MetricUnit.Count, 1);
    }
    return {
      status: 'decided',
      eventId: keyEvent.meta.eventId,
      decisions: result.decisions.map(({ decision, duplicate }) => ({
        decisionId: decision.decisionId,
        keyId: decision.keyId,
        action: decision.action,
        applied: decision.applied,
        duplicate,
      })),
    };
  }

  // A redelivered event (same CloudTrail eventID) that already completed returns the stored result: no
  // second decision, no second notice. A failed attempt leaves no record, so its retry runs again.
  const idempotencyConfig = new IdempotencyConfig({
    eventKeyJmesPath: 'detail.eventID',
    expiresAfterSeconds: 7 * 24 * 3600,
    throwOnNoIdempotencyKey: true,
  });
  const idempotent = makeIdempotent(process, {
    persistenceStore: new DynamoDBPersistenceLayer({
      tableName: rt.idempotencyTable,
      awsSdkV3Client: rt.dynamo,
    }),
    config: idempotencyConfig,
  });

  return async function handler(event: unknown, context: Context): Promise<CredentialEventResult> {
    idempotencyConfig.registerLambdaContext(context);
    const id = (event as { detail?: { eventID?: unknown } } | null)?.detail?.eventID;
    try {
      return await idempotent(parse(event));
    } catch (err) {
      if (err instanceof MemberRoleError) {
        // One account's role is unusable: only its events fail (and reach the failure destination); the account and
        // role are named so the spoke can be fixed, and the count alarms on it.
        metrics.addMetric('MemberRoleFailures', MetricUnit.Count, 1);
      }
      logger.error('credential event failed; Lambda retries it, then sends it to the failure destination', {
        eventId: typeof id === 'string' ? id : undefined,
        ...(err instanceof MemberRoleError
          ? { accountId: err.accountId, roleArn: err.roleArn, code: err.code }
          : {}),
        error: err as Error,
      });
      throw err;
    } finally {
      logger.resetKeys();
      metrics.publishStoredMetrics();
    }
  };
}
