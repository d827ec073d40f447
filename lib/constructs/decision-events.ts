import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { decisionsStreamSource } from './audit-integrity';
import { FailureQueue } from './failure-queue';
import { KeyguardFunction } from './keyguard-function';
import { allowAlarmsToPublish } from './owner-alerts';

export interface DecisionEventsProps {
  /** The decisions table, with its NEW_IMAGE stream (AuditTables). */
  readonly decisionsTable: dynamodb.Table;
  /** The governance bus the events go to. */
  readonly bus: events.IEventBus;
  /** The owner-notice topic: the failure queue's alarm publishes to it. */
  readonly topic: sns.ITopic;
  /**
   * Also put each decision as an OCSF 1.5.0 Detection Finding (detail-type `Bedrock API Key Decision (OCSF)`),
   * beside its keyguard event (config `decisionEvents.ocsf`; docs/ocsf.md).
   * @default false
   */
  readonly ocsf?: boolean;
}

/**
 * Decision events (issue 16 item 2): a function on the decisions table's stream puts every new decision on the
 * governance bus (source `keyguard.decisions`, detail-type `Bedrock API Key Decision`), so users route them with
 * ordinary EventBridge rules; with `ocsf`, also as OCSF Detection Findings (detail-type
 * `Bedrock API Key Decision (OCSF)`, issue 16 item 3).
 *
 * Why the stream and not a PutEvents in every handler: every writer (credential events, sweep, leaks, key usage,
 * approvals) records through the audit store, and the stream sees each recorded decision exactly when it is on
 * record, whichever function wrote it; a handler's PutEvents would add a failure mode to every decision path
 * (event put but record failed, or the reverse). Why its own function and not the archive's: an EventBridge
 * failure must not hold up the archive (or the reverse); a table stream serves two consumers per shard without
 * throttling, and these are the two.
 *
 * Failures: the mapping retries a failed record (reported as a batch item failure, bisected on errors) for the
 * stream's 24 hours, then sends the record range to the failure queue (output DecisionEventsFailureQueueUrl),
 * and the alarm `<stack>-decision-events-undelivered` tells the owner-notice topic, as for the scan-report DLQ.
 */
export class DecisionEvents extends Construct {
  public readonly function: lambda.IFunction;
  public readonly role: iam.IRole;
  public readonly failureQueue: sqs.Queue;
  /** A record range waiting in `failureQueue`: decisions that are not on the bus. */
  public readonly undeliveredAlarm: cloudwatch.Alarm;

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
        DECISION_EVENTS_OCSF: props.ocsf ? 'true' : 'false',
      },
    });
    this.function = fn.function;
    this.role = fn.role;
    fn.function.addEventSource(decisionsStreamSource(props.decisionsTable, failures));
    fn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PutDecisionEvents',
        actions: ['events:PutEvents'],
        resources: [props.bus.eventBusArn],
      }),
    );

    // --- Alarm on the owner-notice topic while a record range waits in the failure queue ---------------------------
    const alarmName = `${Stack.of(this).stackName}-decision-events-undelivered`;
    this.undeliveredAlarm = new cloudwatch.Alarm(this, 'UndeliveredAlarm', {
      alarmName,
      alarmDescription:
        'Decision events could not be put on the governance bus for 24 hours: the decisions table stream record ' +
        'range is in the decision events failure queue. Those decisions are recorded (keyguard audit) but were not ' +
        "sent: read the function's logs for the cause (docs/operations.md, Decision events).",
      metric: this.failureQueue.metricApproximateNumberOfMessagesVisible({
        statistic: cloudwatch.Stats.MAXIMUM,
        period: Duration.minutes(5),
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.undeliveredAlarm.addAlarmAction(new cloudwatchActions.SnsAction(props.topic));
    allowAlarmsToPublish(props.topic, 'DecisionEventsAlarmPublish', alarmName);

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
