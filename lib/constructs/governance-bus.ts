import { Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { FailureQueue, SEND_KEY_ACTIONS, SEND_QUEUE_ACTIONS } from './failure-queue';
import {
  allowEventBridgeDeadLetterDelivery,
  BEDROCK_BEARER_TOKEN_PATTERN,
  MANTLE_BEARER_TOKEN_PATTERN,
  receiveAllManagementEvents,
} from './usage-forwarding';

/**
 * The governance bus's name. Fixed, so a usage stack in any region can address the bus by ARN
 * ({@link governanceBusArn}) without a cross-region reference or a custom resource.
 */
export const GOVERNANCE_BUS_NAME = 'bedrock-key-guard-governance';

/** The region of the governance bus (and of the main stack). */
export const GOVERNANCE_BUS_REGION = 'us-east-1';

/** `arn:<partition>:events:us-east-1:<account>:event-bus/bedrock-key-guard-governance`, from any stack. */
export function governanceBusArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'events',
    region: GOVERNANCE_BUS_REGION,
    resource: 'event-bus',
    resourceName: GOVERNANCE_BUS_NAME,
  });
}

/** The usage rule's name on the governance bus (its ARN is `rule/<bus>/<name>`). */
export const USAGE_RULE_NAME = 'bedrock-key-guard-usage';

/**
 * What the governance bus passes to the usage queue: the union of the two forwarding patterns (usage-forwarding.ts).
 * Forwarded events keep their source, detail-type and detail, so the same fields match here.
 */
export const USAGE_EVENT_PATTERN = {
  source: [...new Set([...BEDROCK_BEARER_TOKEN_PATTERN.source, ...MANTLE_BEARER_TOKEN_PATTERN.source])],
  'detail-type': BEDROCK_BEARER_TOKEN_PATTERN['detail-type'],
  detail: {
    $or: [BEDROCK_BEARER_TOKEN_PATTERN.detail, MANTLE_BEARER_TOKEN_PATTERN.detail],
  },
};

export interface GovernanceBusProps {
  /**
   * How long a received batch stays invisible to other consumers: at least the key-usage function's timeout plus
   * the batching window (AWS recommends six times the function timeout).
   * @default Duration.minutes(6)
   */
  readonly visibilityTimeout?: Duration;
  /** Receives of a message before it moves to the usage dead-letter queue. @default 5 */
  readonly maxReceiveCount?: number;
  /**
   * Whether the usage rule and queues exist (usage tracking). Organization mode needs the bus without them when
   * `usage.regions` is empty.
   * @default true
   */
  readonly usage?: boolean;
  /**
   * Organization mode: the organization whose principals may put events on the bus (spokes forward IAM and usage
   * events to it). Without it the bus has no resource policy and only this account puts events on it.
   * @default - no resource policy
   */
  readonly organizationId?: string;
}

/** The usage part of the governance bus (flow 3). */
export interface UsageQueues {
  /** The rule on the governance bus that queues usage events. */
  readonly rule: events.Rule;
  /** Usage events waiting for the key-usage function. */
  readonly queue: sqs.Queue;
  /** Usage events the key-usage function failed on `maxReceiveCount` times. */
  readonly deadLetterQueue: sqs.IQueue;
  /** Usage events EventBridge could not put on the usage queue. */
  readonly ruleDeadLetterQueue: sqs.IQueue;
}

/**
 * An SQS rule target like aws-events-targets' SqsQueue, without the grant its bind() makes (grantSendMessages to
 * events.amazonaws.com: sqs:GetQueueAttributes/GetQueueUrl and kms:Encrypt/ReEncrypt* beyond what delivery
 * needs). The caller writes the queue and key policies; the DLQ's queue policy is added as SqsQueue adds it.
 */
export class QueueTargetWithoutGrant implements events.IRuleTarget {
  constructor(
    private readonly queue: sqs.IQueue,
    private readonly props: targets.TargetBaseProps,
  ) {}

  bind(rule: events.IRule): events.RuleTargetConfig {
    if (this.props.deadLetterQueue)
      targets.addToDeadLetterQueueResourcePolicy(rule, this.props.deadLetterQueue);
    return {
      ...targets.bindBaseTargetConfig(this.props),
      arn: this.queue.queueArn,
      targetResource: this.queue,
    };
  }
}

/**
 * Flow 3, us-east-1: the custom `bedrock-key-guard-governance` bus, in every deployment: `keyguard scan --quarantine`
 * puts its leak reports on it (routed by LeakQuarantine), DecisionEvents every decision recorded, every region's
 * UsageForwarding its bearer-token events, and in organization mode the spokes their IAM credential events. Here:
 * the bus, and a rule that queues the usage events (SQS, KMS-encrypted, with a redrive DLQ) for the key-usage
 * function. The queue turns one event per call into batches: a busy key costs one write per batch.
 *
 * Failures: EventBridge -> queue has a rule-target DLQ (4 retries, 2 hours); a message the function fails on
 * `maxReceiveCount` times moves to the usage DLQ.
 */
export class GovernanceBus extends Construct {
  /**
   * The governance bus. Without `organizationId`, no resource policy: only this account's rules put events on it;
   * with it, principals of the organization may put events (EventBridge sets each event's `account` to the sender).
   */
  public readonly bus: events.EventBus;
  /** The usage rule and queues, unless `usage` is false. */
  public readonly usage?: UsageQueues;

  constructor(scope: Construct, id: string, props: GovernanceBusProps = {}) {
    super(scope, id);
    this.bus = new events.EventBus(this, 'Bus', {
      eventBusName: GOVERNANCE_BUS_NAME,
      // What this deployment puts on it (as the stack output GovernanceBusArn says).
      description:
        'Bedrock Key Guard: leaks reported by keyguard scan --quarantine; every decision recorded (DecisionEvents)' +
        (props.usage === false ? '' : '; Bedrock API key use forwarded from every usage region') +
        (props.organizationId ? '; IAM credential events forwarded by the spokes' : ''),
    });
    if (props.organizationId) {
      // PutEvents only, by principals of the organization only (a spoke's forwarding role). Events of aws.* sources
      // cannot be put by anyone (PutEvents refuses them): forwarded IAM and Bedrock events cannot be forged.
      this.bus.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'OrganizationPrincipalsPutEvents',
          principals: [new iam.AnyPrincipal()],
          actions: ['events:PutEvents'],
          resources: [this.bus.eventBusArn],
          conditions: { StringEquals: { 'aws:PrincipalOrgID': props.organizationId } },
        }),
      );
    }
    if (props.usage === false) return;

    const usageDeadLetterQueue = new FailureQueue(this, 'UsageDeadLetterQueue').queue;
    const key = new kms.Key(this, 'UsageQueueKey', {
      enableKeyRotation: true,
      description: `Encrypts the SQS queue ${this.node.path}/UsageQueue`,
    });
    const usageQueue = new sqs.Queue(this, 'UsageQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      visibilityTimeout: props.visibilityTimeout ?? Duration.minutes(6),
      deadLetterQueue: { queue: usageDeadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });

    const ruleDeadLetterQueue = new FailureQueue(this, 'RuleDeadLetterQueue').queue;
    allowEventBridgeDeadLetterDelivery(ruleDeadLetterQueue);

    const usageRule = new events.Rule(this, 'UsageRule', {
      // A fixed name: the queue's policy names the rule by ARN, which CloudFormation could not resolve from the rule
      // itself (queue -> rule -> queue would be a cycle).
      ruleName: USAGE_RULE_NAME,
      description: 'Bedrock API key use forwarded to the governance bus, queued for the key-usage function',
      eventBus: this.bus,
      eventPattern: {
        source: USAGE_EVENT_PATTERN.source,
        detailType: USAGE_EVENT_PATTERN['detail-type'],
        detail: USAGE_EVENT_PATTERN.detail,
      },
    });
    // Rule states apply on custom buses too: a forwarded read-only management event would not match a plain
    // ENABLED rule here even though the regional rule let it through.
    receiveAllManagementEvents(usageRule);
    usageRule.addTarget(
      new QueueTargetWithoutGrant(usageQueue, {
        deadLetterQueue: ruleDeadLetterQueue,
        retryAttempts: 4,
        maxEventAge: Duration.hours(2),
      }),
    );
    // What EventBridge needs as a producer, written out: sqs:SendMessage on the queue, kms:GenerateDataKey +
    // kms:Decrypt on its key (SQS Developer Guide, "Amazon SQS Key management", AWS services as event sources).
    // CDK's SqsQueue target would also give it sqs:GetQueueAttributes/GetQueueUrl and kms:Encrypt/ReEncrypt*/
    // GenerateDataKey*. Both for this account's rules only, as CDK's EVENTS_TARGET_QUEUE_SAME_ACCOUNT does.
    const thisAccount = { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } };
    usageQueue.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: [...SEND_QUEUE_ACTIONS],
        resources: [usageQueue.queueArn],
        conditions: thisAccount,
      }),
    );
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: [...SEND_KEY_ACTIONS],
        resources: ['*'],
        conditions: thisAccount,
      }),
    );
    // The grants above admit EventBridge deliveries of any rule of this account (aws:SourceAccount): anyone who can
    // create a rule could feed forged uses to the key-usage function and hide UNUSED. Only this rule may deliver
    // (the queue-policy condition EventBridge documents for SQS targets). The key keeps aws:SourceAccount only:
    // whether EventBridge's KMS calls carry aws:SourceArn is not documented, a deny on a missing key would stop
    // every delivery, and the key alone lets no other rule put a message on the queue.
    const usageRuleArn = Stack.of(this).formatArn({
      service: 'events',
      resource: 'rule',
      resourceName: `${GOVERNANCE_BUS_NAME}/${USAGE_RULE_NAME}`,
    });
    const notThisRule = { ArnNotEquals: { 'aws:SourceArn': usageRuleArn } };
    const eventBridge = new iam.ServicePrincipal('events.amazonaws.com');
    usageQueue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyTheUsageRuleDelivers',
        effect: iam.Effect.DENY,
        principals: [eventBridge],
        actions: ['sqs:SendMessage'],
        resources: [usageQueue.queueArn],
        conditions: notThisRule,
      }),
    );
    this.usage = {
      rule: usageRule,
      queue: usageQueue,
      deadLetterQueue: usageDeadLetterQueue,
      ruleDeadLetterQueue,
    };
  }
}
