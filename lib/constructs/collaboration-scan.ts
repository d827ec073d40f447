import { type CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { COLLABORATION_STATE_ACTIONS } from '../../lambda/adapters/collaboration-scan-state';
import { SCAN_REPORT_SOURCE } from '../../lambda/domain/scan-report';
import { FailureQueue } from './failure-queue';
import { grantItemActions } from './governance-access';
import { KeyguardFunction } from './keyguard-function';

/** The function's timeout: a run stops starting channels 2 minutes before it and holds its lease 1 minute past it. */
export const COLLABORATION_SCAN_TIMEOUT = Duration.minutes(10);

export interface SlackScanProps {
  /** EventBridge Scheduler expression of the runs, e.g. `rate(15 minutes)`. */
  readonly schedule: string;
  /** Channel names or ids. @default - every channel the token can read */
  readonly channels?: readonly string[];
  /** The Slack Web API base URL (a private or test deployment). @default - https://slack.com/api */
  readonly apiUrl?: string;
  /** How far back the first run reads a channel it has no mark for. */
  readonly initialLookbackHours: number;
}

export interface CollaborationScanProps {
  /** The governance bus: reports go there with source `keyguard.scan`, as from `keyguard scan --quarantine`. */
  readonly bus: events.IEventBus;
  /** Scan Slack (`leakDetection.slack`). */
  readonly slack: SlackScanProps;
}

/**
 * Continuous collaboration scanning (issue 15 §3, off by default): an EventBridge Scheduler schedule runs the
 * `collaboration-scan` function, which reads what is new in Slack since each channel's high-water mark (kept in
 * `stateTable`) with the token an operator put in `slackTokenSecret`, and reports every key found on the governance
 * bus as `keyguard scan --quarantine` does; the leak function decides it from there (LeakQuarantine's rule).
 *
 * The stack creates the secret EMPTY (no value: the token never appears in the template, a parameter or the
 * function's environment); until an operator puts the token in (docs/deployment.md), each run logs one error and
 * the TokenNotSet metric and ends.
 *
 * The role: GetSecretValue on the secret, Query/PutItem/UpdateItem on the state table, PutEvents on the bus for source
 * `keyguard.scan` only, its own log group, and sending to its failure queue (Lambda's on-failure destination).
 * Failures: the schedule retries delivery, then the failure queue; a run that throws (an AWS call failed) is retried
 * by Lambda, then lands in the same queue (the request is the schedule's empty input: no key, no token).
 */
export class CollaborationScan extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.IRole;
  /** High-water marks per channel and the run's lease. */
  public readonly stateTable: dynamodb.Table;
  /** The Slack token's secret, created empty. */
  public readonly slackTokenSecret: secretsmanager.CfnSecret;
  /** Its ARN (the secret's Ref). */
  public readonly slackTokenSecretArn: string;
  /** Failed schedule deliveries and failed runs. */
  public readonly failureQueue: sqs.IQueue;
  public readonly schedule: scheduler.Schedule;
  /** The role EventBridge Scheduler assumes to invoke the function and write to the failure queue. */
  public readonly schedulerRole: iam.Role;

  constructor(scope: Construct, id: string, props: CollaborationScanProps) {
    super(scope, id);
    const stack = Stack.of(this);

    const failures = new FailureQueue(this, 'FailureQueue');
    this.failureQueue = failures.queue;

    this.stateTable = new dynamodb.Table(this, 'StateTable', {
      partitionKey: { name: 'source', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Only the marks: losing them makes the next run read the initial lookback again (keys found again are
      // recorded once by the leak function), nothing more.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // No SecretString and no GenerateSecretString: CloudFormation creates an empty secret (no version), so no value
    // is ever in the template. An operator puts the token in with `aws secretsmanager put-secret-value`.
    this.slackTokenSecret = new secretsmanager.CfnSecret(this, 'SlackTokenSecret', {
      description:
        'Bedrock Key Guard: the Slack token of the scheduled leak scan (created empty; put the token in with ' +
        'aws secretsmanager put-secret-value, see docs/deployment.md)',
    });
    // Deleting the stack schedules the secret's deletion (recoverable during the recovery window).
    this.slackTokenSecret.applyRemovalPolicy(RemovalPolicy.DESTROY);
    this.slackTokenSecretArn = this.slackTokenSecret.ref;
    Validations.of(this.slackTokenSecret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The secret holds a Slack token that Slack issues and revokes: Secrets Manager cannot rotate it (there is no ' +
        'rotation function for Slack). It is replaced by putting a new value; the function reads it at every run.',
    });

    const slack = props.slack;
    const fn = new KeyguardFunction(this, 'Handler', {
      entry: 'lambda/handlers/collaboration-scan.ts',
      description:
        'Scans what is new in Slack for Bedrock API keys and reports them to the governance bus (scheduled)',
      timeout: COLLABORATION_SCAN_TIMEOUT,
      environment: {
        SLACK_TOKEN_SECRET_ARN: this.slackTokenSecretArn,
        SLACK_INITIAL_LOOKBACK_HOURS: String(slack.initialLookbackHours),
        ...(slack.apiUrl ? { SLACK_API_URL: slack.apiUrl } : {}),
        ...(slack.channels && slack.channels.length > 0 ? { SLACK_CHANNELS: slack.channels.join(',') } : {}),
        COLLABORATION_STATE_TABLE_NAME: this.stateTable.tableName,
        GOVERNANCE_BUS_ARN: props.bus.eventBusArn,
        POWERTOOLS_SERVICE_NAME: 'keyguard-collaboration-scan',
        POWERTOOLS_METRICS_NAMESPACE: 'BedrockKeyGuard',
        POWERTOOLS_LOG_LEVEL: 'INFO',
      },
      onFailure: failures.destination(),
      retryAttempts: 2,
      // A run older than this is superseded by the next scheduled one.
      maxEventAge: Duration.hours(1),
    });
    this.function = fn.function;
    this.role = fn.role;

    // --- IAM: its secret, its state, reports on the bus; nothing else ----------------------------------------------
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadSlackToken',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.slackTokenSecretArn],
      }),
    );
    grantItemActions(this.role, this.stateTable, 'ScanState', [...COLLABORATION_STATE_ACTIONS]);
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PutScanReports',
        actions: ['events:PutEvents'],
        resources: [props.bus.eventBusArn],
        conditions: { StringEquals: { 'events:source': SCAN_REPORT_SOURCE } },
      }),
    );

    // --- Schedule --------------------------------------------------------------------------------------------------
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: `EventBridge Scheduler invoking ${this.node.path}`,
    });
    failures.encryptionKey.grant(this.schedulerRole, 'kms:GenerateDataKey', 'kms:Decrypt');
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Bedrock Key Guard: scan what is new in Slack for Bedrock API keys',
      schedule: scheduler.ScheduleExpression.expression(slack.schedule),
      target: new targets.LambdaInvoke(this.function, {
        role: this.schedulerRole,
        input: scheduler.ScheduleTargetInput.fromObject({}),
        deadLetterQueue: this.failureQueue,
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      }),
      timeWindow: scheduler.TimeWindow.off(),
    });
    const schedulerPolicy = this.schedulerRole.node.tryFindChild('DefaultPolicy');
    if (schedulerPolicy) {
      Validations.of(schedulerPolicy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(this.function.node.defaultChild as CfnElement)}.Arn>:*]`,
        reason:
          "lambda:InvokeFunction on the scan function's own versions and aliases (`<function ARN>:*`), as CDK's " +
          'LambdaInvoke target grants it; no other function can be invoked.',
      });
    }
  }
}
