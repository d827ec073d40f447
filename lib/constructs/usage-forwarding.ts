import { Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { BEDROCK_EVENT_SOURCES } from '../../lambda/domain/usage';
import { FailureQueue } from './failure-queue';

/**
 * Rule state that also delivers read-only CloudTrail management events. Whether Bedrock's InvokeModel / Converse
 * events are read-only is not settled (bedrock-api-keys.md): a rule in plain `ENABLED` state would silently miss
 * every use if they are. The L2 `Rule` only knows ENABLED/DISABLED, so the state is set on the CfnRule.
 */
export const ALL_MANAGEMENT_EVENTS_STATE = 'ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS';

/** `callWithBearerToken` as CloudTrail may render it: a JSON boolean or its string form. */
const BEARER_TOKEN_VALUES = [true, 'true'];

/**
 * Bedrock runtime calls made with an API key: management events of `bedrock.amazonaws.com` whose
 * `additionalEventData.callWithBearerToken` is true. Failed calls are kept (a deactivated key that is still tried
 * is worth knowing), so there is no `errorCode` filter.
 */
export const BEDROCK_BEARER_TOKEN_PATTERN = {
  source: ['aws.bedrock'],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    eventSource: ['bedrock.amazonaws.com'],
    additionalEventData: { callWithBearerToken: BEARER_TOKEN_VALUES },
  },
};

/**
 * bedrock-mantle inference made with an API key: data events of `bedrock-mantle.amazonaws.com` carrying
 * `requestParameters.callWithBearerToken`. Which `source` EventBridge gives mantle data events is unverified
 * (the CloudTrail convention would be `aws.bedrock-mantle`, but mantle is part of Bedrock and may be published as
 * `aws.bedrock`): both are accepted, and `eventSource` keeps the match exact.
 */
export const MANTLE_BEARER_TOKEN_PATTERN = {
  source: [...BEDROCK_EVENT_SOURCES],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    eventSource: ['bedrock-mantle.amazonaws.com'],
    requestParameters: { callWithBearerToken: BEARER_TOKEN_VALUES },
  },
};

/** The L2 `EventPattern` form of one of the patterns above. */
export function eventPatternOf(pattern: {
  source: string[];
  'detail-type': string[];
  detail: Record<string, unknown>;
}): events.EventPattern {
  return { source: pattern.source, detailType: pattern['detail-type'], detail: pattern.detail };
}

/** Sets a rule's state to {@link ALL_MANAGEMENT_EVENTS_STATE} (escape hatch: the L2 Rule cannot). */
export function receiveAllManagementEvents(rule: events.Rule): void {
  (rule.node.defaultChild as events.CfnRule).addPropertyOverride('State', ALL_MANAGEMENT_EVENTS_STATE);
}

/**
 * Lets EventBridge rules of the queue's account and region write to a rule-target DLQ encrypted with a
 * customer-managed key (only a customer-managed key's policy can allow `events.amazonaws.com`). Scoped by account
 * and by rule ARN pattern, not by one rule's ARN: naming the rule would create a key -> rule -> queue -> key cycle.
 */
export function allowEventBridgeDeadLetterDelivery(queue: sqs.IQueue): void {
  const key = queue.encryptionMasterKey;
  if (!key) return;
  const stack = Stack.of(queue);
  key.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'AllowEventBridgeRuleDeadLetterDelivery',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: ['*'],
      conditions: {
        StringEquals: { 'aws:SourceAccount': stack.account },
        ArnLike: {
          'aws:SourceArn': stack.formatArn({ service: 'events', resource: 'rule', resourceName: '*' }),
        },
      },
    }),
  );
}

export interface UsageForwardingProps {
  /**
   * The governance bus in us-east-1. In another region, pass `events.EventBus.fromEventBusArn` with
   * {@link governanceBusArn} (lib/constructs/governance-bus.ts): a fixed name, so no cross-region reference.
   */
  readonly governanceBus: events.IEventBus;
  /**
   * Where events go that EventBridge could not put on the governance bus. Must be in the rules' region.
   * @default - a new FailureQueue
   */
  readonly deadLetterQueue?: sqs.IQueue;
}

/**
 * Flow 3, one region: two rules on the region's default bus (Bedrock management events and bedrock-mantle data
 * events, both only for calls made with an API key) forward to the governance bus in us-east-1, with one
 * encrypted dead-letter queue in this region and a role that may put events on exactly that bus.
 *
 * Event-bus targets take no retry policy (aws-events-targets: "Retry policy is not supported for Event bus
 * targets"): EventBridge retries delivery with its own policy, and what still fails goes to the DLQ.
 */
export class UsageForwarding extends Construct {
  /** Bedrock runtime management events with `additionalEventData.callWithBearerToken`. */
  public readonly bedrockRule: events.Rule;
  /** bedrock-mantle data events with `requestParameters.callWithBearerToken`. */
  public readonly mantleRule: events.Rule;
  /** Events that could not be put on the governance bus. */
  public readonly deadLetterQueue: sqs.IQueue;
  /** The role both rules use to put events on the governance bus. */
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: UsageForwardingProps) {
    super(scope, id);
    const stack = Stack.of(this);

    this.deadLetterQueue = props.deadLetterQueue ?? new FailureQueue(this, 'DeadLetterQueue').queue;
    allowEventBridgeDeadLetterDelivery(this.deadLetterQueue);

    // A target bus in another region needs a role; one role, written out, serves both rules (and the same-region
    // case, which keeps the two paths identical).
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: `EventBridge forwarding Bedrock API key use from ${stack.region} to the governance bus`,
    });
    const target = new targets.EventBus(props.governanceBus, {
      role: this.role,
      deadLetterQueue: this.deadLetterQueue,
    });

    this.bedrockRule = new events.Rule(this, 'BedrockRule', {
      description: 'Bedrock calls made with an API key (CloudTrail management events), to the governance bus',
      eventPattern: eventPatternOf(BEDROCK_BEARER_TOKEN_PATTERN),
      targets: [target],
    });
    receiveAllManagementEvents(this.bedrockRule);

    // Data events need no special state, but the state is valid on any default-bus rule and only widens delivery
    // to read-only management events: should mantle ever log a call as one, it is still forwarded.
    this.mantleRule = new events.Rule(this, 'MantleRule', {
      description:
        'bedrock-mantle calls made with an API key (CloudTrail data events), to the governance bus',
      eventPattern: eventPatternOf(MANTLE_BEARER_TOKEN_PATTERN),
      targets: [target],
    });
    receiveAllManagementEvents(this.mantleRule);
  }
}
