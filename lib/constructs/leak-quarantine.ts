import { ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { LambdaDestination } from 'aws-cdk-lib/aws-logs-destinations';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { SCAN_REPORT_DETAIL_TYPE, SCAN_REPORT_SOURCE } from '../../lambda/domain/scan-report';
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
  usageReadAccess,
} from './governance-access';
import { KeyguardFunction } from './keyguard-function';
import { allowAlarmsToPublish } from './owner-alerts';
import { allowEventBridgeDeadLetterDelivery } from './usage-forwarding';

/**
 * Only lines that may hold a key reach the function: a regex filter pattern (`%…%`) matches substrings, so it
 * also passes a key glued to other text (`"apiKey":"ABSK…`, `Bearer bedrock-api-key-…`). Both prefixes are kept
 * in any escaping a log line gives a key (JSON and URL escapes only touch the base64 body).
 */
export const LEAK_FILTER_PATTERN = '%ABSK|bedrock-api-key-%';

export interface LeakQuarantineProps {
  /** The validated policy; passed to the function as JSON in `KEYGUARD_CONFIG`. */
  readonly config: Config;
  /** Names of the log groups to scan (in the stack's account and region). */
  readonly logGroupNames: readonly string[];
  /** Append-only decision log: GetItem and (conditional) PutItem only. */
  readonly decisionsTable: dynamodb.ITable;
  /** Current state per key. */
  readonly keysTable: dynamodb.ITable;
  /** Approvals (read-only): an approval naming LEAKED keeps a leaked key active. */
  readonly approvalsTable: dynamodb.ITable;
  /** Owner-notice topic. */
  readonly topic: sns.ITopic;
  /** Account whose Bedrock keys may be matched and deactivated. @default - the stack's account */
  readonly governedAccountId?: string;
  /**
   * The usage table, when usage is tracked: the function reads a key's last use so that its decisions keep
   * UNUSED exactly as the sweep decides it (an event must not clear it).
   * @default - usage not tracked: no USAGE_TABLE_NAME, no grant
   */
  readonly usageTable?: dynamodb.ITable;
  /**
   * The governance bus `keyguard scan --quarantine` reports leaks to (issue 15): a rule routes its reports (source
   * `keyguard.scan`) to this function, which decides them as leaks found in a log, never deactivating on a report alone.
   * @default - no rule: scan reports are not received
   */
  readonly scanReportBus?: events.IEventBus;
}

/** The function's variable holding the undecided-leaks queue's URL (lambda/handlers/leak.ts). */
export const UNDECIDED_LEAKS_QUEUE_ENV = 'UNDECIDED_LEAKS_QUEUE_URL';

/**
 * Log quarantine (issue 4): a subscription filter on each named log group feeds the `leak` function, which scans
 * each batch for Bedrock API keys; a leaked long-term key of the governed account is deactivated (enforce mode)
 * once Bedrock confirms it is a working key (issue 10: its alias is public, only its secret proves a leak), a live
 * short-term key is traced to its signer with CloudTrail, and each finding is recorded and notified.
 *
 * The confirmation is one HTTPS call to the public Bedrock endpoint (`bedrock.<region>.amazonaws.com`)
 * authenticated by the found key alone: the role needs no permission for it (and has none). The function is not
 * attached to a VPC; deployed into one, it needs outbound HTTPS (a NAT gateway, or an interface endpoint for
 * `com.amazonaws.<region>.bedrock`), else every check times out and leaks are only notified (UNVERIFIED).
 *
 * Failures (issue 11, item 11): the function has NO on-failure destination. Lambda's failure record of an
 * asynchronous invocation holds the whole request, i.e. the log lines with live keys, and would keep them for 14 days.
 * Instead the handler decides each finding on its own and sends what it could not decide to `undecidedQueue` as
 * redacted records (fingerprint, redacted form, what the key names, where it was seen, why); an invocation that
 * still fails (a crash, a time-out, the queue unreachable) is retried by Lambda and then dropped with nothing
 * stored, which `droppedEventsAlarm` reports on the owner-notice topic, as `undecidedAlarm` reports queued records.
 */
export class LeakQuarantine extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.IRole;
  /** Redacted records of findings the function could not decide (never a key, never a log line): read by an operator. */
  public readonly undecidedQueue: sqs.Queue;
  /** The customer-managed key encrypting `undecidedQueue`. */
  public readonly undecidedQueueKey: kms.Key;
  /** Invocations Lambda dropped after its retries (AWS/Lambda AsyncEventsDropped >= 1): their findings are lost. */
  public readonly droppedEventsAlarm: cloudwatch.Alarm;
  /** Records waiting in `undecidedQueue`. */
  public readonly undecidedAlarm: cloudwatch.Alarm;
  public readonly subscriptionFilters: logs.SubscriptionFilter[];
  /** The rule routing scan reports from the governance bus to the function (with `scanReportBus`). */
  public readonly scanReportRule?: events.Rule;
  /** Scan reports EventBridge could not deliver to the function (redacted reports: never a key). */
  public readonly scanReportDeadLetterQueue?: sqs.IQueue;
  /** Reports waiting in `scanReportDeadLetterQueue` (as `undecidedAlarm`, on the owner-notice topic). */
  public readonly scanReportDeadLetterAlarm?: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: LeakQuarantineProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const account = props.governedAccountId ?? stack.account;

    const fn = new KeyguardFunction(this, 'Handler', {
      entry: 'lambda/handlers/leak.ts',
      description: 'Scans subscribed log groups for Bedrock API keys and quarantines leaked ones',
      environment: pipelineEnvironment({ ...props, serviceName: 'keyguard-leak', account }),
      // No onFailure: the failure record would hold the request, i.e. the log lines with live keys (see above).
      // A crashed invocation is retried twice (decisions are idempotent), then dropped and alarmed.
      retryAttempts: 2,
    });
    this.function = fn.function;
    this.role = fn.role;

    // --- Undecided leaks: redacted records only; the function may send, nothing else ----------------------------
    this.undecidedQueueKey = new kms.Key(this, 'UndecidedLeaksKey', {
      enableKeyRotation: true,
      description: `Encrypts the SQS queue ${this.node.path}/UndecidedLeaks`,
    });
    this.undecidedQueue = new sqs.Queue(this, 'UndecidedLeaks', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.undecidedQueueKey,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.undecidedQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'Nothing consumes this queue: it holds redacted records of leak findings the function could not decide, for ' +
        'an operator to read (docs/operations.md, Log quarantine) until they expire after 14 days. A dead-letter queue needs a ' +
        'consumer whose failures it catches; there is none.',
    });
    this.role.attachInlinePolicy(
      new iam.Policy(this, 'UndecidedLeaksAccess', {
        statements: [
          new iam.PolicyStatement({
            sid: 'SendUndecidedLeaks',
            actions: ['sqs:SendMessage'],
            resources: [this.undecidedQueue.queueArn],
          }),
          // What SendMessage to a queue encrypted with a customer-managed key needs (no Encrypt, no ReEncrypt).
          new iam.PolicyStatement({
            sid: 'EncryptUndecidedLeaks',
            actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
            resources: [this.undecidedQueueKey.keyArn],
          }),
        ],
      }),
    );
    this.function.addEnvironment(UNDECIDED_LEAKS_QUEUE_ENV, this.undecidedQueue.queueUrl);
    for (const [name, value] of Object.entries(usageReadAccess(this.role, props.usageTable))) {
      this.function.addEnvironment(name, value);
    }

    // --- IAM: read a leaked key's user and keys; deactivate Bedrock keys only ----------------------------------
    const anyUser = anyIamResource(this, account, 'user');
    const policy = new iam.Policy(this, 'Access', {
      statements: [
        new iam.PolicyStatement({
          sid: 'ReadKeysAndOwnerTags',
          actions: ['iam:ListServiceSpecificCredentials', 'iam:ListUserTags'],
          resources: [anyUser],
        }),
        deactivateBedrockKeysStatement(anyUser),
        new iam.PolicyStatement({
          sid: 'FindShortTermKeySigner',
          actions: ['cloudtrail:LookupEvents'],
          resources: ['*'],
        }),
      ],
    });
    this.role.attachInlinePolicy(policy);
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyUser)}]`,
      reason:
        'A leaked long-term key names its IAM user, which can be any user of the governed account: IAM offers no ' +
        `narrower resource. The reads return metadata only (no secret). ${UPDATE_BEDROCK_KEYS_REASON}`,
    });
    Validations.of(policy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'cloudtrail:LookupEvents supports no resource-level permissions (Service Authorization Reference: ' +
        'resource types "*"). It is read-only: it finds the principal that signed a leaked short-term key.',
    });

    // --- DynamoDB: item-level actions only (the decisions table is append-only: no Update/Delete) -------------
    grantItemActions(this.role, props.decisionsTable, 'DecisionsTableAppendOnly', DECISIONS_APPEND_ACTIONS);
    grantItemActions(this.role, props.keysTable, 'KeysTableState', ['dynamodb:GetItem', 'dynamodb:PutItem']);
    grantItemActions(this.role, props.approvalsTable, 'ApprovalsReadOnly', [
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);

    props.topic.grantPublish(this.role);

    acknowledgeGeneratedKmsGrants(this.role);

    // --- Alarms on the owner-notice topic: dropped invocations, and records waiting in the undecided queue --------
    const alarmPrefix = `${stack.stackName}-leak-`;
    this.droppedEventsAlarm = new cloudwatch.Alarm(this, 'DroppedEventsAlarm', {
      alarmName: `${alarmPrefix}dropped-batches`,
      alarmDescription:
        'The leak function failed on a log batch after Lambda retried it twice (crash, time-out, or its undecided ' +
        'queue unreachable): the batch was dropped, storing nothing, and its findings are not decided. Read the ' +
        "function's logs for the error, then scan the log group for that time with keyguard scan.",
      metric: new cloudwatch.Metric({
        namespace: 'AWS/Lambda',
        metricName: 'AsyncEventsDropped',
        dimensionsMap: { FunctionName: this.function.functionName },
        statistic: cloudwatch.Stats.SUM,
        period: Duration.minutes(5),
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    /** An alarm on the owner-notice topic while a message is visible in `queue`. */
    const messagesWaiting = (alarmId: string, name: string, description: string, queue: sqs.IQueue) => {
      const alarm = new cloudwatch.Alarm(this, alarmId, {
        alarmName: `${alarmPrefix}${name}`,
        alarmDescription: description,
        metric: queue.metricApproximateNumberOfMessagesVisible({
          statistic: cloudwatch.Stats.MAXIMUM,
          period: Duration.minutes(5),
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(new cloudwatchActions.SnsAction(props.topic));
      return alarm;
    };
    this.undecidedAlarm = messagesWaiting(
      'UndecidedLeaksAlarm',
      'undecided-findings',
      'The leak function queued findings it could not decide (redacted records: fingerprint, where, why) in its ' +
        'undecided-leaks queue. Read them there (docs/operations.md, Log quarantine) and decide them by hand.',
      this.undecidedQueue,
    );
    this.droppedEventsAlarm.addAlarmAction(new cloudwatchActions.SnsAction(props.topic));
    allowAlarmsToPublish(props.topic, 'LeakAlarmsPublish', `${alarmPrefix}*`);

    // --- Scan reports (issue 15): keyguard scan --quarantine puts one event per key on the governance bus ---------
    // A report holds no key (fingerprint, redacted form, decoded facts, places), so unlike a log batch it may wait in a
    // dead-letter queue. Whoever may put events with this source could forge one: the handler never deactivates on a
    // report alone (lambda/domain/leak-verification.ts, SCAN_REPORT_CHECK).
    if (props.scanReportBus) {
      const undelivered = new FailureQueue(this, 'ScanReportDeadLetterQueue').queue;
      this.scanReportDeadLetterQueue = undelivered;
      allowEventBridgeDeadLetterDelivery(undelivered);
      // Alarmed as the undecided queue is, on the owner-notice topic; named with the alarm prefix above, so the
      // topic and key statements admit it.
      this.scanReportDeadLetterAlarm = messagesWaiting(
        'ScanReportDeadLetterAlarm',
        'undelivered-scan-reports',
        'EventBridge could not deliver keyguard scan reports to the leak function (4 retries over 2 hours): they ' +
          'wait in the scan-report dead-letter queue (output ScanReportDeadLetterQueueUrl; reports hold no key). ' +
          'Read them there (docs/operations.md, Scan reports), fix the cause, and run keyguard scan --quarantine again.',
        undelivered,
      );
      this.scanReportRule = new events.Rule(this, 'ScanReportRule', {
        description: 'Leaked Bedrock API keys reported by keyguard scan --quarantine, to the leak function',
        eventBus: props.scanReportBus,
        eventPattern: { source: [SCAN_REPORT_SOURCE], detailType: [SCAN_REPORT_DETAIL_TYPE] },
      });
      this.scanReportRule.addTarget(
        new targets.LambdaFunction(this.function, {
          deadLetterQueue: this.scanReportDeadLetterQueue,
          retryAttempts: 4,
          maxEventAge: Duration.hours(2),
        }),
      );
    }

    // --- One subscription filter per log group, one invoke permission for them all -------------------------------
    // LambdaDestination would add a permission per log group (its SourceArn), and each is a statement of the
    // function's resource-based policy, which Lambda caps at 20 KB: about 22 groups with long names. One statement
    // admits CloudWatch Logs for any log group of this account and region: a group subscribed by someone else only
    // adds lines to scan (a found key is still checked with Bedrock before anything is acted on).
    if (props.logGroupNames.length > 0) {
      this.function.addPermission('LogsInvoke', {
        principal: new iam.ServicePrincipal('logs.amazonaws.com'),
        action: 'lambda:InvokeFunction',
        sourceAccount: stack.account,
        sourceArn: stack.formatArn({
          service: 'logs',
          resource: 'log-group',
          resourceName: '*',
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      });
      const invoke = this.function.permissionsNode.findChild('LogsInvoke');
      const destination = new LambdaDestination(this.function, { addPermissions: false });
      this.subscriptionFilters = props.logGroupNames.map((name, i) => {
        const filter = new logs.SubscriptionFilter(this, `Subscription${i}`, {
          logGroup: logs.LogGroup.fromLogGroupName(this, `LogGroup${i}`, name),
          destination,
          filterPattern: logs.FilterPattern.literal(LEAK_FILTER_PATTERN),
          filterName: 'keyguard-bedrock-key-leaks',
        });
        // CloudWatch Logs tests delivery when the filter is created: the permission must exist first.
        filter.node.addDependency(invoke);
        return filter;
      });
    } else {
      this.subscriptionFilters = [];
    }
  }
}
