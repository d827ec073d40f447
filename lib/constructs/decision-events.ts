import { Duration, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { FailureQueue } from './failure-queue';
import { KeyguardFunction } from './keyguard-function';

export interface DecisionEventsProps {
  /** The decisions table, with its NEW_IMAGE stream (AuditTables). */
  readonly decisionsTable: dynamodb.Table;
  /** The governance bus the events go to. */
  readonly bus: events.IEventBus;
}

/**
 * Decision events (issue 16 item 2): a function on the decisions table's stream puts every new decision on the
 * governance bus (source `keyguard.decisions`, detail-type `Bedrock API Key Decision`), so users route them with
 * ordinary EventBridge rules.
 *
 * Why the stream and not a PutEvents in every handler: every writer (credential events, sweep, leaks, key usage,
 * approvals) records through the audit store, and the stream sees each recorded decision exactly when it is on
 * record, whichever function wrote it; a handler's PutEvents would add a failure mode to every decision path
 * (event put but record failed, or the reverse). Why its own function and not the archive's: an EventBridge
 * failure must not hold up the archive (or the reverse); a table stream serves two consumers per shard without
 * throttling, and these are the two.
 *
 * Failures: the mapping retries a failed record (reported as a batch item failure, bisected on errors) for the
 * stream's 24 hours, then sends the record range to the failure queue (output DecisionEventsFailureQueueUrl).
 */
export class DecisionEvents extends Construct {
  public readonly function: lambda.IFunction;
  public readonly role: iam.IRole;
  public readonly failureQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: DecisionEventsProps) {
    super(scope, id);
    const failures = new FailureQueue(this, 'FailureQueue');
    this.failureQueue = failures.queue;

    const fn = new KeyguardFunction(this, 'Function', {
      entry: 'lambda/handlers/decision-events.ts',
      description: 'Puts every new decision on the governance bus (source keyguard.decisions)',
      environment: {
        POWERTOOLS_SERVICE_NAME: 'keyguard-decision-events',
        GOVERNANCE_BUS_ARN: props.bus.eventBusArn,
      },
    });
    this.function = fn.function;
    this.role = fn.role;
    fn.function.addEventSource(
      new DynamoEventSource(props.decisionsTable, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        bisectBatchOnError: true,
        reportBatchItemFailures: true,
        // Records stay in the stream for 24 h: keep retrying within that, then hand the range to the queue.
        retryAttempts: 50,
        maxRecordAge: Duration.hours(24),
        onFailure: failures.eventSourceDlq(),
      }),
    );
    fn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PutDecisionEvents',
        actions: ['events:PutEvents'],
        resources: [props.bus.eventBusArn],
      }),
    );

    const policy = fn.role.node.tryFindChild('DefaultPolicy');
    if (policy) {
      Validations.of(policy).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          "dynamodb:ListStreams, granted by CDK's DynamoEventSource, supports no resource-level permissions; the " +
          'stream reads themselves (DescribeStream, GetRecords, GetShardIterator) are scoped to the decisions ' +
          "table's stream.",
      });
    }
  }
}
