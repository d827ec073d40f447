import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Config } from '../../lambda/shared/config';
import { nagResourceId } from '../nag-finding';
import { DECISIONS_APPEND_ACTIONS } from './audit-tables';
import { FailureQueue } from './failure-queue';
import {
  acknowledgeGeneratedKmsGrants,
  anyIamResource,
  deactivateBedrockKeysStatement,
  grantItemActions,
  pipelineEnvironment,
  UPDATE_BEDROCK_KEYS_REASON,
  USAGE_READ_ACTIONS,
} from './governance-access';
import { KeyguardFunction } from './keyguard-function';

/** How often a sweep that ran out of time in one invocation is continued from its saved marker. */
export const SWEEP_CONTINUATION_SCHEDULE = 'rate(5 minutes)';

/**
 * The sweep's usage table actions, as lambda/adapters/usage-store.ts calls them: read only (the key-usage
 * function records uses and the tracking start).
 */
export const SWEEP_USAGE_TABLE_ACTIONS = USAGE_READ_ACTIONS;

export interface InventorySweepProps {
  /** The validated policy: `sweep.schedule` sets the schedule; passed to the function as JSON. */
  readonly config: Config;
  /** Append-only decision log: GetItem and (conditional) PutItem only. */
  readonly decisionsTable: dynamodb.ITable;
  /** Current state per key: the sweep also queries it (keys gone from IAM). */
  readonly keysTable: dynamodb.ITable;
  /** Approvals and reviews: read only. */
  readonly approvalsTable: dynamodb.ITable;
  /** Owner-notice topic. */
  readonly topic: sns.ITopic;
  /**
   * Account whose Bedrock keys are swept and may be deactivated.
   * @default - the stack's account
   */
  readonly governedAccountId?: string;
  /**
   * The usage table, when usage tracking is on: the sweep reads last use per key (UNUSED) and records when
   * tracking started for the account (`meta#tracking`, set once).
   * @default - no usage tracking: no USAGE_TABLE_NAME, no grant
   */
  readonly usageTable?: dynamodb.ITable;
  /** Handler file relative to the repository root. @default 'lambda/handlers/sweep.ts' */
  readonly entry?: string;
  /**
   * Whether the schedules invoke the function. False in organization mode: the function then consumes the sweep
   * queue (OrgSweep), whose scheduler function runs on `sweep.schedule`, and a paused sweep re-enqueues its account.
   * @default true
   */
  readonly scheduled?: boolean;
}

/**
 * The inventory sweep (flow 2): an EventBridge Scheduler schedule (`config.sweep.schedule`) runs the `sweep`
 * function, which lists every Bedrock key of the account (ListServiceSpecificCredentials, AllUsers, paginated),
 * evaluates each with the account's bulk IAM facts, and records keys gone from IAM. A sweep that does not fit in
 * one 15-minute invocation saves its marker in the SweepState table; a second schedule every 5 minutes sends
 * `{"continue": true}`, which continues an unfinished sweep and does nothing otherwise (the function has no
 * lambda:InvokeFunction on itself, and no other queue is needed).
 *
 * Failures: each schedule retries delivery and then sends to the failure queue (dead-letter queue); a sweep
 * that throws is retried by Lambda and then lands in the same queue (on-failure destination).
 */
export class InventorySweep extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.IRole;
  /** State and lease of the running sweep, one item per account. */
  public readonly stateTable: dynamodb.Table;
  /** Failed deliveries of both schedules and failed asynchronous invocations of the function. */
  public readonly failureQueue: sqs.IQueue;
  /** The configured sweep schedule (absent in organization mode). */
  public readonly schedule?: scheduler.Schedule;
  /** The 5-minute continuation schedule (absent in organization mode). */
  public readonly continuation?: scheduler.Schedule;
  /** The role EventBridge Scheduler assumes to invoke the function and write to the dead-letter queue. */
  public readonly schedulerRole?: iam.Role;
  public readonly keyguardFunction: KeyguardFunction;

  constructor(scope: Construct, id: string, props: InventorySweepProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const account = props.governedAccountId ?? stack.account;

    const failures = new FailureQueue(this, 'FailureQueue');
    this.failureQueue = failures.queue;

    this.stateTable = new dynamodb.Table(this, 'StateTable', {
      partitionKey: { name: 'accountId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Only the progress of the running sweep: losing it restarts a sweep, nothing more.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.keyguardFunction = new KeyguardFunction(this, 'Handler', {
      entry: props.entry ?? 'lambda/handlers/sweep.ts',
      description: 'Sweeps every Bedrock API key of the account (scheduled)',
      timeout: Duration.minutes(15),
      memorySize: 1024,
      environment: {
        ...pipelineEnvironment({ ...props, serviceName: 'keyguard-sweep', account }),
        SWEEP_STATE_TABLE_NAME: this.stateTable.tableName,
        ...(props.usageTable ? { USAGE_TABLE_NAME: props.usageTable.tableName } : {}),
      },
      onFailure: failures.destination(),
      retryAttempts: 2,
      // A sweep request older than this is superseded by the next scheduled one.
      maxEventAge: Duration.hours(1),
    });
    this.function = this.keyguardFunction.function;
    this.role = this.keyguardFunction.role;

    // --- IAM ---------------------------------------------------------------------------------------------------
    const anyUser = anyIamResource(this, account, 'user');
    const policy = new iam.Policy(this, 'IamAccess', {
      statements: [
        // ListServiceSpecificCredentials with AllUsers names no user, and AWS does not document which resource
        // IAM then authorizes (user/* or *): granted on *, which holds both, so the first page cannot be denied.
        new iam.PolicyStatement({
          sid: 'ListAllBedrockKeys',
          actions: ['iam:ListServiceSpecificCredentials'],
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          sid: 'LateUserTags',
          actions: ['iam:ListUserTags'],
          resources: [anyUser],
        }),
        new iam.PolicyStatement({
          sid: 'AccountWideIamReads',
          actions: [
            'iam:GetAccountAuthorizationDetails',
            'iam:GenerateCredentialReport',
            'iam:GetCredentialReport',
          ],
          resources: ['*'],
        }),
        deactivateBedrockKeysStatement(anyUser),
        new iam.PolicyStatement({
          sid: 'CreatorAttribution',
          actions: ['cloudtrail:LookupEvents'],
          resources: ['*'],
        }),
      ],
    });
    this.role.attachInlinePolicy(policy);
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyUser)}]`,
      reason:
        'Keys may sit on any IAM user, so no narrower resource than user/* exists for reading a ' +
        `late user's tags, or deactivating a key. ${UPDATE_BEDROCK_KEYS_REASON}`,
    });
    Validations.of(policy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'GetAccountAuthorizationDetails, GenerateCredentialReport and GetCredentialReport are account-level IAM ' +
        'reads that name no resource (their Service Authorization Reference rows list no resource type), ' +
        'cloudtrail:LookupEvents supports no resource-level permissions, and ListServiceSpecificCredentials ' +
        'with AllUsers=true names no user: AWS does not document whether IAM then checks user/* or *, so it is ' +
        'granted on * (which covers both). All five are read-only and return no secret.',
    });

    // --- DynamoDB: item actions, written out (grant*() would add index ARNs and DeleteItem) -----------------------
    grantItemActions(this.role, props.decisionsTable, 'DecisionsTableAppendOnly', DECISIONS_APPEND_ACTIONS);
    grantItemActions(this.role, props.keysTable, 'KeysTableState', [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
    ]);
    grantItemActions(this.role, props.approvalsTable, 'ApprovalsReadOnly', [
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);
    grantItemActions(this.role, this.stateTable, 'SweepStateLease', ['dynamodb:GetItem', 'dynamodb:PutItem']);
    if (props.usageTable) {
      grantItemActions(this.role, props.usageTable, 'UsageReads', SWEEP_USAGE_TABLE_ACTIONS);
    }

    props.topic.grantPublish(this.role);

    acknowledgeGeneratedKmsGrants(this.role);

    // --- Schedules -----------------------------------------------------------------------------------------------
    if (props.scheduled === false) return;
    const schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: `EventBridge Scheduler invoking ${this.node.path}`,
    });
    // The dead-letter queue is KMS-encrypted: Scheduler writes to it with this role.
    this.schedulerRole = schedulerRole;
    failures.encryptionKey.grant(schedulerRole, 'kms:GenerateDataKey', 'kms:Decrypt');
    const target = (input: Record<string, unknown>) =>
      new targets.LambdaInvoke(this.function, {
        role: schedulerRole,
        input: scheduler.ScheduleTargetInput.fromObject(input),
        deadLetterQueue: this.failureQueue,
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      });
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Bedrock Key Guard inventory sweep',
      schedule: scheduler.ScheduleExpression.expression(props.config.sweep.schedule),
      target: target({}),
      timeWindow: scheduler.TimeWindow.off(),
    });
    this.continuation = new scheduler.Schedule(this, 'ContinuationSchedule', {
      description: 'Continues an inventory sweep that did not finish in one invocation (no-op otherwise)',
      schedule: scheduler.ScheduleExpression.expression(SWEEP_CONTINUATION_SCHEDULE),
      target: target({ continue: true }),
      timeWindow: scheduler.TimeWindow.off(),
    });
    const schedulerPolicy = schedulerRole.node.tryFindChild('DefaultPolicy');
    if (schedulerPolicy) {
      Validations.of(schedulerPolicy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(
          this.function.node.defaultChild as import('aws-cdk-lib').CfnElement,
        )}.Arn>:*]`,
        reason:
          "lambda:InvokeFunction on the sweep function's own versions and aliases (`<function ARN>:*`), as CDK's " +
          'LambdaInvoke target grants it; no other function can be invoked.',
      });
    }
  }
}
