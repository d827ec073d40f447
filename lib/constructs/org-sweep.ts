import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import type { Config, OrganizationConfig } from '../../lambda/shared/config';
import { FailureQueue, grantSendOnly } from './failure-queue';
import type { InventorySweep } from './inventory-sweep';
import { KeyguardFunction } from './keyguard-function';
import { ORG_READER_ROLE_NAME } from './org-roles';

/** Deliveries of an account's message before it moves to the dead-letter queue (and is reported). */
export const SWEEP_MAX_RECEIVE_COUNT = 3;

/**
 * The sweep function's timeout is 15 minutes; Lambda's guidance for SQS event sources is a visibility timeout of at
 * least six times the function timeout, so that a message is not delivered again while an invocation (or Lambda's
 * own retry of a throttled one) may still be working on it.
 */
export const SWEEP_QUEUE_VISIBILITY = Duration.minutes(90);

/**
 * What the sweep function needs on the sweep queue: the event source mapping's three, SendMessage (continuations) and
 * ChangeMessageVisibility (a failed account's message returns in minutes: sweep-queue-handler.ts
 * FAILED_ACCOUNT_RETRY_SECONDS, instead of after SWEEP_QUEUE_VISIBILITY per delivery).
 */
export const SWEEP_QUEUE_CONSUMER_ACTIONS = [
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:GetQueueAttributes',
  'sqs:SendMessage',
  'sqs:ChangeMessageVisibility',
] as const;

/** On the queue's key: Decrypt to receive (SQS "Key management"), GenerateDataKey + Decrypt to send. */
export const SWEEP_QUEUE_KEY_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey'] as const;

export interface OrgSweepProps {
  /** The validated config; `organization` must be set. `sweep.schedule` runs the scheduler function. */
  readonly config: Config;
  /** The inventory sweep, created with `scheduled: false`: its function consumes the sweep queue. */
  readonly sweep: InventorySweep;
  /** The SSM parameter holding the organization settings (ORG_SETTINGS_PARAMETER). */
  readonly orgSettingsParameter: ssm.IStringParameter;
  /**
   * The account the hub runs in (governed with the functions' own credentials).
   * @default - the stack's account
   */
  readonly hubAccountId?: string;
  /**
   * Role the scheduler assumes to read Organizations.
   * @default - `BedrockKeyGuardOrgReader` in `organization.managementAccountId`
   */
  readonly orgReaderRoleArn?: string;
  /** Handler file of the scheduler function. @default 'lambda/handlers/org-sweep.ts' */
  readonly entry?: string;
}

/**
 * The organization sweep (issue 12, behaviour 2), on AWS's own fan-out: an EventBridge Scheduler schedule
 * (`sweep.schedule`) runs the scheduler function, which lists the governed accounts from Organizations (through the
 * management account's reader role) and puts one message per account on the sweep queue; the sweep function reads
 * the queue through an event source mapping (batch size 1, maximum concurrency = `organization.sweepConcurrency`,
 * partial batch responses) and sweeps one account per message through its member role.
 *
 * Failures: an account's message that fails `SWEEP_MAX_RECEIVE_COUNT` times moves to the dead-letter queue (and the
 * sweep function reports it as an account-level finding on that last delivery); the function shortens a failed
 * message's visibility so that this takes minutes, not the queue's 90-minute timeout per delivery; the schedule retries delivery to the
 * scheduler function and then writes to the scheduler failure queue, which is also the function's on-failure
 * destination. Both queues and the sweep queue are SSE-KMS (customer-managed keys) and TLS-only.
 */
export class OrgSweep extends Construct {
  /** One message per governed account and round. */
  public readonly queue: sqs.Queue;
  public readonly queueKey: kms.Key;
  /** Accounts whose sweep failed on every delivery. */
  public readonly deadLetterQueue: sqs.Queue;
  /** The scheduler function. */
  public readonly schedulerFunction: NodejsFunction;
  public readonly schedulerFunctionRole: iam.IRole;
  /** Failed schedule deliveries and failed scheduler invocations. */
  public readonly schedulerFailureQueue: sqs.Queue;
  public readonly schedule: scheduler.Schedule;
  /** The sweep function's event source mapping on the queue. */
  public readonly mapping: lambda.EventSourceMapping;

  constructor(scope: Construct, id: string, props: OrgSweepProps) {
    super(scope, id);
    const organization: OrganizationConfig | null = props.config.organization;
    if (!organization) throw new Error('OrgSweep needs config.organization');
    const stack = Stack.of(this);
    const hubAccountId = props.hubAccountId ?? stack.account;
    const readerRoleArn =
      props.orgReaderRoleArn ??
      `arn:${stack.partition}:iam::${organization.managementAccountId}:role/${ORG_READER_ROLE_NAME}`;

    // --- Queues ------------------------------------------------------------------------------------------------
    this.deadLetterQueue = new FailureQueue(this, 'DeadLetterQueue').queue;
    this.queueKey = new kms.Key(this, 'QueueKey', {
      enableKeyRotation: true,
      description: `Encrypts the SQS queue ${this.node.path}/Queue`,
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.queueKey,
      enforceSSL: true,
      visibilityTimeout: SWEEP_QUEUE_VISIBILITY,
      // A round's messages are read within the schedule interval; a day covers a backlog after an outage.
      retentionPeriod: Duration.days(1),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: SWEEP_MAX_RECEIVE_COUNT },
    });

    // --- The sweep function consumes the queue ---------------------------------------------------------------
    const sweepFn = props.sweep.function;
    const sweepRole = props.sweep.role;
    // Written out: SqsEventSource's bind() would grant grantConsumeMessages (GetQueueUrl as well).
    this.mapping = new lambda.EventSourceMapping(this, 'SweepMapping', {
      target: sweepFn,
      eventSourceArn: this.queue.queueArn,
      batchSize: 1,
      maxConcurrency: organization.sweepConcurrency,
      reportBatchItemFailures: true,
    });
    this.queue.grant(sweepRole, ...SWEEP_QUEUE_CONSUMER_ACTIONS);
    this.queueKey.grant(sweepRole, ...SWEEP_QUEUE_KEY_ACTIONS);
    sweepFn.addEnvironment('SWEEP_QUEUE_URL', this.queue.queueUrl);
    sweepFn.addEnvironment('SWEEP_MAX_RECEIVE_COUNT', String(SWEEP_MAX_RECEIVE_COUNT));
    // ORG_SETTINGS_PARAMETER, ssm:GetParameter and sts:AssumeRole on the member roles: OrgHub, as for every
    // hub function that acts in member accounts.

    // --- The scheduler function ------------------------------------------------------------------------------
    const failures = new FailureQueue(this, 'SchedulerFailureQueue');
    this.schedulerFailureQueue = failures.queue;
    const fn = new KeyguardFunction(this, 'Scheduler', {
      entry: props.entry ?? 'lambda/handlers/org-sweep.ts',
      description: 'Puts one sweep message per governed account of the organization on the sweep queue',
      timeout: Duration.minutes(5),
      environment: {
        GOVERNED_ACCOUNT_ID: hubAccountId,
        ORG_SETTINGS_PARAMETER: props.orgSettingsParameter.parameterName,
        ORG_READER_ROLE_ARN: readerRoleArn,
        SWEEP_QUEUE_URL: this.queue.queueUrl,
        POWERTOOLS_SERVICE_NAME: 'keyguard-org-sweep',
        POWERTOOLS_METRICS_NAMESPACE: 'BedrockKeyGuard',
        POWERTOOLS_LOG_LEVEL: 'INFO',
      },
      onFailure: failures.destination(),
      retryAttempts: 2,
      // A round older than this is superseded by the next scheduled one.
      maxEventAge: Duration.hours(1),
    });
    this.schedulerFunction = fn.function;
    this.schedulerFunctionRole = fn.role;
    // Its name is fixed by the hub (OrgHub.addOrganizationsReader): the reader role trusts it by its exact ARN.
    grantSendOnly(this.queue, fn.role);
    fn.role.attachInlinePolicy(
      new iam.Policy(this, 'SchedulerAccess', {
        statements: [
          new iam.PolicyStatement({
            sid: 'ReadOrganizationThroughReaderRole',
            actions: ['sts:AssumeRole'],
            resources: [readerRoleArn],
          }),
          new iam.PolicyStatement({
            sid: 'ReadOrgSettings',
            actions: ['ssm:GetParameter'],
            resources: [props.orgSettingsParameter.parameterArn],
          }),
        ],
      }),
    );

    // --- The schedule ----------------------------------------------------------------------------------------
    const scheduleRole = new iam.Role(this, 'ScheduleRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: `EventBridge Scheduler invoking ${this.node.path}/Scheduler`,
    });
    failures.encryptionKey.grant(scheduleRole, 'kms:GenerateDataKey', 'kms:Decrypt');
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Bedrock Key Guard organization sweep: one message per governed account',
      schedule: scheduler.ScheduleExpression.expression(props.config.sweep.schedule),
      target: new targets.LambdaInvoke(this.schedulerFunction, {
        role: scheduleRole,
        input: scheduler.ScheduleTargetInput.fromObject({}),
        deadLetterQueue: this.schedulerFailureQueue,
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      }),
      timeWindow: scheduler.TimeWindow.off(),
    });
    const schedulePolicy = scheduleRole.node.tryFindChild('DefaultPolicy');
    if (schedulePolicy) {
      Validations.of(schedulePolicy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(
          this.schedulerFunction.node.defaultChild as import('aws-cdk-lib').CfnElement,
        )}.Arn>:*]`,
        reason:
          "lambda:InvokeFunction on the scheduler function's own versions and aliases (`<function ARN>:*`), as " +
          "CDK's LambdaInvoke target grants it; no other function can be invoked.",
      });
    }
  }
}
