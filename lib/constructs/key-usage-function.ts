import { Duration, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Config } from '../../lambda/shared/config';
import { DECISIONS_APPEND_ACTIONS } from './audit-tables';
import {
  acknowledgeGeneratedKmsGrants,
  grantItemActions,
  keyUserAccessPolicy,
  pipelineEnvironment,
  USAGE_READ_ACTIONS,
} from './governance-access';
import { KeyguardFunction } from './keyguard-function';

/** Usage events per invocation: with the batching window, a busy key is one usage-table write per batch. */
export const USAGE_BATCH_SIZE = 100;
/** Longest the event source waits to fill a batch. */
export const USAGE_BATCHING_WINDOW = Duration.seconds(30);

/**
 * The usage table actions of the key-usage function (lambda/adapters/usage-store.ts): UpdateItem (recordUses:
 * counters added, the "last" fields moved forward by a conditional update, the tracking start set once), and the
 * reads every deciding function makes so a decision on use keeps UNUSED like the sweep's.
 */
export const KEY_USAGE_TABLE_ACTIONS = ['dynamodb:UpdateItem', ...USAGE_READ_ACTIONS];

export interface KeyUsageFunctionProps {
  /** The validated policy; passed to the function as JSON in `KEYGUARD_CONFIG`. */
  readonly config: Config;
  /** Usage events (one EventBridge event per message), from the governance bus. */
  readonly queue: sqs.IQueue;
  /** Last use per key / user / principal. */
  readonly usageTable: dynamodb.ITable;
  /** Append-only decision log: GetItem and (conditional) PutItem only. */
  readonly decisionsTable: dynamodb.ITable;
  /** Current state per key. */
  readonly keysTable: dynamodb.ITable;
  /** Approvals: read only (a forbidden key's use may be approved). */
  readonly approvalsTable: dynamodb.ITable;
  /** Owner-notice topic. */
  readonly topic: sns.ITopic;
  /** Account whose IAM users are read and whose Bedrock keys may be deactivated. @default - the stack's account */
  readonly governedAccountId?: string;
  /** Handler file relative to the repository root. @default 'lambda/handlers/key-usage.ts' */
  readonly entry?: string;
  /**
   * Organization mode: the handler returns the messages of accounts it could not process (batch item failures), so
   * that one member account's failure does not retry or dead-letter the others' messages.
   * @default false (any failure fails the whole batch)
   */
  readonly reportBatchItemFailures?: boolean;
}

/**
 * The `key-usage` function (flow 3): consumes batches of bearer-token events from the usage queue, attributes
 * each use to a key, a user or a short-term key's principal, records the last use, and decides on use of keys
 * the policy forbids (deactivating in enforce mode). Invoked synchronously by the SQS event source, so its
 * failure path is the queue's redrive policy (maxReceiveCount, then the usage DLQ), not an on-failure destination.
 */
export class KeyUsageFunction extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.IRole;
  public readonly keyguardFunction: KeyguardFunction;
  public readonly eventSource: SqsEventSource;

  constructor(scope: Construct, id: string, props: KeyUsageFunctionProps) {
    super(scope, id);
    const account = props.governedAccountId ?? Stack.of(this).account;

    this.keyguardFunction = new KeyguardFunction(this, 'Handler', {
      entry: props.entry ?? 'lambda/handlers/key-usage.ts',
      description: 'Records Bedrock API key use (from every usage region) and decides on forbidden use',
      environment: {
        ...pipelineEnvironment({ ...props, serviceName: 'keyguard-key-usage', account }),
        USAGE_TABLE_NAME: props.usageTable.tableName,
      },
    });
    this.function = this.keyguardFunction.function;
    this.role = this.keyguardFunction.role;

    this.eventSource = new SqsEventSource(props.queue, {
      batchSize: USAGE_BATCH_SIZE,
      maxBatchingWindow: USAGE_BATCHING_WINDOW,
      ...(props.reportBatchItemFailures ? { reportBatchItemFailures: true } : {}),
    });
    this.function.addEventSource(this.eventSource);

    // --- IAM: a long-term key user's keys, tags and facts; deactivate Bedrock keys only -----------------------
    // The same access as the credential-event function: a usage decision must see the same BROAD_PERMISSIONS /
    // USER_HAS_OTHER_CREDENTIALS as the event and sweep paths, or it looks like a change.
    this.role.attachInlinePolicy(
      keyUserAccessPolicy(
        this,
        account,
        'A bearer-token call names the IAM user of a long-term key, which can be any user of the governed account.',
      ),
    );

    // --- DynamoDB: item-level actions, written out ------------------------------------------------------------
    grantItemActions(this.role, props.usageTable, 'UsageRecords', KEY_USAGE_TABLE_ACTIONS);
    grantItemActions(this.role, props.decisionsTable, 'DecisionsTableAppendOnly', DECISIONS_APPEND_ACTIONS);
    grantItemActions(this.role, props.keysTable, 'KeysTableState', ['dynamodb:GetItem', 'dynamodb:PutItem']);
    grantItemActions(this.role, props.approvalsTable, 'ApprovalsReadOnly', [
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);

    props.topic.grantPublish(this.role);

    acknowledgeGeneratedKmsGrants(this.role);
  }
}
