import { Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { FailureQueue } from './failure-queue';

/** IAM events that change a service-specific credential or the tags that carry its metadata. */
export const CREDENTIAL_CHANGE_EVENTS = [
  'UpdateServiceSpecificCredential',
  'ResetServiceSpecificCredential',
  'DeleteServiceSpecificCredential',
  'TagUser',
  'UntagUser',
] as const;

/**
 * IAM events that give a user more access: another credential (an escalation path beside a Bedrock key) or
 * more permissions. The function re-evaluates the user's Bedrock keys and ignores users that have none.
 * `UpdateAccessKey` is matched separately, only when it activates a key.
 */
export const USER_ACCESS_EVENTS = [
  'CreateAccessKey',
  'CreateLoginProfile',
  'AttachUserPolicy',
  'PutUserPolicy',
  'AddUserToGroup',
] as const;

/**
 * The exact EventBridge pattern: successful IAM calls that create a Bedrock key, that change any
 * service-specific credential / user tags, or that give a user more access. Update/Reset/Delete carry only the
 * credential id, not the service name, so they cannot be narrowed to Bedrock here: the function re-reads the
 * key and ignores other services. Access events cannot be narrowed to key users either (the pattern cannot
 * know who holds keys): the function ignores users without Bedrock keys.
 */
export const CREDENTIAL_EVENT_PATTERN = {
  source: ['aws.iam'],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    eventSource: ['iam.amazonaws.com'],
    errorCode: [{ exists: false }],
    $or: [
      {
        eventName: ['CreateServiceSpecificCredential'],
        requestParameters: { serviceName: ['bedrock.amazonaws.com'] },
      },
      { eventName: [...CREDENTIAL_CHANGE_EVENTS] },
      { eventName: [...USER_ACCESS_EVENTS] },
      { eventName: ['UpdateAccessKey'], requestParameters: { status: ['Active'] } },
    ],
  },
};

export interface CredentialEventRuleProps {
  /** The function that handles credential events. */
  readonly target: lambda.IFunction;
  /**
   * Bus to match on. IAM's CloudTrail events arrive only on the us-east-1 default bus.
   * @default - the account's default event bus
   */
  readonly eventBus?: events.IEventBus;
  /**
   * Where events go that could not be delivered to the function after all retries. If the queue is
   * encrypted with a customer-managed key, that key's policy is extended so EventBridge can use it.
   * @default - a new FailureQueue
   */
  readonly deadLetterQueue?: sqs.IQueue;
  /** Delivery retries before an event goes to the DLQ. @default 4 */
  readonly retryAttempts?: number;
  /** Longest EventBridge keeps retrying an event. @default Duration.hours(2) */
  readonly maxEventAge?: Duration;
}

/** Routes IAM credential events from CloudTrail to the credential-event function, with a DLQ and retries. */
export class CredentialEventRule extends Construct {
  /** The rule. */
  public readonly rule: events.Rule;
  /** The rule target's dead-letter queue. */
  public readonly deadLetterQueue: sqs.IQueue;

  constructor(scope: Construct, id: string, props: CredentialEventRuleProps) {
    super(scope, id);
    this.deadLetterQueue = props.deadLetterQueue ?? new FailureQueue(this, 'DeadLetterQueue').queue;

    this.rule = new events.Rule(this, 'Rule', {
      description:
        'Bedrock API key (IAM service-specific credential) and key-user access changes, from CloudTrail',
      eventBus: props.eventBus,
      eventPattern: {
        source: CREDENTIAL_EVENT_PATTERN.source,
        detailType: CREDENTIAL_EVENT_PATTERN['detail-type'],
        detail: CREDENTIAL_EVENT_PATTERN.detail,
      },
    });
    this.rule.addTarget(
      new targets.LambdaFunction(props.target, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: props.retryAttempts ?? 4,
        maxEventAge: props.maxEventAge ?? Duration.hours(2),
      }),
    );

    // EventBridge writes to an SSE-KMS queue only if the key policy lets events.amazonaws.com use the key.
    // Scoped to this account's rules: naming this rule's ARN would create a key -> rule -> queue -> key cycle.
    const key = this.deadLetterQueue.encryptionMasterKey;
    if (key) {
      const stack = Stack.of(this);
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
  }
}
