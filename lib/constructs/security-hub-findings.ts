import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DECISION_EVENT_DETAIL_TYPE, DECISION_EVENT_SOURCE } from '../../lambda/domain/decision-events';
import { IMPORT_MAX_FINDINGS } from '../../lambda/domain/security-hub';
import { FailureQueue, SEND_KEY_ACTIONS, SEND_QUEUE_ACTIONS } from './failure-queue';
import { GOVERNANCE_BUS_NAME, QueueTargetWithoutGrant } from './governance-bus';
import { KeyguardFunction } from './keyguard-function';
import { allowAlarmsToPublish } from './owner-alerts';
import { allowEventBridgeDeadLetterDelivery } from './usage-forwarding';

/** The rule on the governance bus that queues decision events for Security Hub (its ARN is `rule/<bus>/<name>`). */
export const SECURITY_HUB_RULE_NAME = 'bedrock-key-guard-security-hub';

/** What BatchImportFindings is called with: the findings of one SQS batch (at most one request of 100). */
export const SECURITY_HUB_BATCH_SIZE = IMPORT_MAX_FINDINGS;

export interface SecurityHubFindingsProps {
  /** The governance bus DecisionEvents puts every decision on. */
  readonly bus: events.IEventBus;
  /** The owner-notice topic: the undelivered alarm publishes to it. */
  readonly topic: sns.ITopic;
  /** Receives of a message before it moves to the dead-letter queue. @default 5 */
  readonly maxReceiveCount?: number;
}

/**
 * Security Hub findings (issue 16 item 1, `findings.securityHub`): a rule on the governance bus matches the decision
 * events (source `keyguard.decisions`, put by DecisionEvents, of this account only) and queues them (SQS, KMS), and a
 * function imports one ASFF finding per key into Security Hub with BatchImportFindings
 * (lambda/handlers/security-hub-findings-handler.ts), through the custom-integration product of this account and
 * region. A rule on the bus rather than a third reader of the decisions table's stream: the stream has its two
 * readers (archive, decision events), and the bus already carries every decision.
 *
 * Failures, none silent: EventBridge → queue has a rule-target DLQ (retries for 24 hours); a message the function
 * fails on (a finding Security Hub keeps refusing, a call that fails) is reported as a batch item failure, received
 * again, and after `maxReceiveCount` receives moves to the dead-letter queue. The alarm
 * `<stack>-security-hub-findings-undelivered` tells the owner-notice topic when either queue holds a message.
 *
 * Least privilege: securityhub:BatchImportFindings on this account's default product ARN only, for findings of this
 * account only (securityhub:TargetAccount); GetItem and PutItem on the findings state table; the queue's consumer
 * actions; its logs.
 */
export class SecurityHubFindings extends Construct {
  public readonly function: lambda.IFunction;
  public readonly role: iam.IRole;
  /** Decision events waiting for the function. */
  public readonly queue: sqs.Queue;
  /** Decision events the function failed on `maxReceiveCount` times. */
  public readonly deadLetterQueue: sqs.Queue;
  /** Decision events EventBridge could not put on the queue. */
  public readonly ruleDeadLetterQueue: sqs.Queue;
  /** The rule on the governance bus. */
  public readonly rule: events.Rule;
  /** Per finding: CreatedAt and the latest decision imported (pk `id`). Derived state, destroyed with the stack. */
  public readonly stateTable: dynamodb.Table;
  /** A message waiting in either dead-letter queue: a decision not (or not yet) in Security Hub. */
  public readonly undeliveredAlarm: cloudwatch.Alarm;
  /** `arn:<partition>:securityhub:<region>:<account>:product/<account>/default`. */
  public readonly productArn: string;

  constructor(scope: Construct, id: string, props: SecurityHubFindingsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.productArn = `arn:${Aws.PARTITION}:securityhub:${Aws.REGION}:${Aws.ACCOUNT_ID}:product/${Aws.ACCOUNT_ID}/default`;

    this.stateTable = new dynamodb.Table(this, 'StateTable', {
      partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Derived from the decisions (the source of truth): losing it only restarts findings' CreatedAt.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.deadLetterQueue = new FailureQueue(this, 'DeadLetterQueue').queue;
    const key = new kms.Key(this, 'QueueKey', {
      enableKeyRotation: true,
      description: `Encrypts the SQS queue ${this.node.path}/Queue`,
    });
    const fn = new KeyguardFunction(this, 'Function', {
      entry: 'lambda/handlers/security-hub-findings.ts',
      description:
        'Imports one Security Hub finding (ASFF) per Bedrock API key with violations, from decision events',
      environment: {
        POWERTOOLS_SERVICE_NAME: 'keyguard-security-hub-findings',
        POWERTOOLS_METRICS_NAMESPACE: 'BedrockKeyGuard',
        FINDINGS_STATE_TABLE_NAME: this.stateTable.tableName,
        SECURITY_HUB_PARTITION: Aws.PARTITION,
        SECURITY_HUB_ACCOUNT_ID: Aws.ACCOUNT_ID,
      },
    });
    this.function = fn.function;
    this.role = fn.role;
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      // Six times the function's timeout plus the batching window, as AWS recommends for SQS event sources.
      visibilityTimeout: Duration.minutes(7),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });

    this.ruleDeadLetterQueue = new FailureQueue(this, 'RuleDeadLetterQueue').queue;
    allowEventBridgeDeadLetterDelivery(this.ruleDeadLetterQueue);
    this.rule = new events.Rule(this, 'Rule', {
      ruleName: SECURITY_HUB_RULE_NAME,
      description: 'Decision events queued for the Security Hub findings function',
      eventBus: props.bus,
      // `account`: only the decisions this deployment's DecisionEvents put (in organization mode the bus admits the
      // organization's principals, who could put events of any custom source).
      eventPattern: {
        source: [DECISION_EVENT_SOURCE],
        detailType: [DECISION_EVENT_DETAIL_TYPE],
        account: [stack.account],
      },
    });
    this.rule.addTarget(
      new QueueTargetWithoutGrant(this.queue, {
        deadLetterQueue: this.ruleDeadLetterQueue,
        retryAttempts: 185,
        maxEventAge: Duration.hours(24),
      }),
    );
    // EventBridge as a producer, this rule only: sqs:SendMessage on the queue, GenerateDataKey + Decrypt on its key.
    const ruleArn = stack.formatArn({
      service: 'events',
      resource: 'rule',
      resourceName: `${GOVERNANCE_BUS_NAME}/${SECURITY_HUB_RULE_NAME}`,
    });
    const eventBridge = new iam.ServicePrincipal('events.amazonaws.com');
    this.queue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyTheSecurityHubRuleDelivers',
        principals: [eventBridge],
        actions: [...SEND_QUEUE_ACTIONS],
        resources: [this.queue.queueArn],
        conditions: { ArnEquals: { 'aws:SourceArn': ruleArn } },
      }),
    );
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [eventBridge],
        actions: [...SEND_KEY_ACTIONS],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    );

    fn.function.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: SECURITY_HUB_BATCH_SIZE,
        maxBatchingWindow: Duration.seconds(30),
        reportBatchItemFailures: true,
        // Security Hub's BatchImportFindings rate is 10 per second per account and region: two batches at a time.
        maxConcurrency: 2,
      }),
    );
    this.stateTable.grant(fn.role, 'dynamodb:GetItem', 'dynamodb:PutItem');
    fn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ImportKeyFindings',
        actions: ['securityhub:BatchImportFindings'],
        resources: [this.productArn],
        conditions: { StringEquals: { 'securityhub:TargetAccount': Aws.ACCOUNT_ID } },
      }),
    );

    // --- Alarm on the owner-notice topic while either dead-letter queue holds a message ---------------------------
    const alarmName = `${stack.stackName}-security-hub-findings-undelivered`;
    const visible = (q: sqs.IQueue) =>
      q.metricApproximateNumberOfMessagesVisible({
        statistic: cloudwatch.Stats.MAXIMUM,
        period: Duration.minutes(5),
      });
    this.undeliveredAlarm = new cloudwatch.Alarm(this, 'UndeliveredAlarm', {
      alarmName,
      alarmDescription:
        'Decisions that are not in Security Hub: a decision event the findings function failed on 5 times, or ' +
        'that EventBridge could not queue for 24 hours, is in a Security Hub dead-letter queue. The decisions are ' +
        "recorded (keyguard audit); read the function's logs (FindingsNotImported) for the cause " +
        '(docs/operations.md, Security Hub).',
      metric: new cloudwatch.MathExpression({
        expression: 'dlq + ruledlq',
        usingMetrics: { dlq: visible(this.deadLetterQueue), ruledlq: visible(this.ruleDeadLetterQueue) },
        period: Duration.minutes(5),
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.undeliveredAlarm.addAlarmAction(new cloudwatchActions.SnsAction(props.topic));
    allowAlarmsToPublish(props.topic, 'SecurityHubFindingsAlarmPublish', alarmName);
  }
}
