import { Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Config } from '../../lambda/shared/config';
import { DECISIONS_APPEND_ACTIONS } from './audit-tables';
import { FailureQueue, sendOnlyDestination } from './failure-queue';
import {
  acknowledgeGeneratedKmsGrants,
  grantItemActions,
  keyUserAccessPolicy,
  pipelineEnvironment,
  usageReadAccess,
} from './governance-access';
import { KeyguardFunction } from './keyguard-function';

export { BEDROCK_SERVICE_NAME } from './governance-access';

export interface CredentialEventFunctionProps {
  /** The validated policy; passed to the function as JSON in `KEYGUARD_CONFIG`. */
  readonly config: Config;
  /** Append-only decision log: the function may only get and (conditionally) put items. */
  readonly decisionsTable: dynamodb.ITable;
  /** Current state per key. */
  readonly keysTable: dynamodb.ITable;
  /** Approvals and reviews, written by approvers: the function may only read them (GetItem, Query). */
  readonly approvalsTable: dynamodb.ITable;
  /** Powertools idempotency persistence. */
  readonly idempotencyTable: dynamodb.ITable;
  /** Owner-notice topic. */
  readonly topic: sns.ITopic;
  /**
   * Account whose IAM users the function reads and whose Bedrock keys it may deactivate. A prop (not the
   * hard-wired stack account) so organization mode can govern member accounts without a rewrite.
   * @default - the stack's account
   */
  readonly governedAccountId?: string;
  /**
   * Destination of asynchronous invocations that still fail after the retries.
   * @default - a new FailureQueue
   */
  readonly failureQueue?: sqs.IQueue;
  /**
   * The usage table, when usage is tracked: the function reads a key's last use so that its decisions keep
   * UNUSED exactly as the sweep decides it (an event must not clear it).
   * @default - usage not tracked: no USAGE_TABLE_NAME, no grant
   */
  readonly usageTable?: dynamodb.ITable;
  /** Handler file relative to the repository root. @default 'lambda/handlers/credential-event.ts' */
  readonly entry?: string;
}

/**
 * The `credential-event` function (flow 1): re-reads a key from IAM, evaluates it, records the decision,
 * notifies the owner and, in enforce mode, deactivates the key. Its role is written out action by action:
 * no AWS managed policies, no iam:Create* / iam:Delete*, and key changes only for bedrock.amazonaws.com.
 */
export class CredentialEventFunction extends Construct {
  /** The function. */
  public readonly function: NodejsFunction;
  /** Its execution role. */
  public readonly role: iam.IRole;
  /** Where failed asynchronous invocations land. */
  public readonly failureQueue: sqs.IQueue;
  /** The function wrapper (log group and defaults). */
  public readonly keyguardFunction: KeyguardFunction;

  constructor(scope: Construct, id: string, props: CredentialEventFunctionProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const account = props.governedAccountId ?? stack.account;

    this.failureQueue = props.failureQueue ?? new FailureQueue(this, 'FailureQueue').queue;

    this.keyguardFunction = new KeyguardFunction(this, 'Handler', {
      entry: props.entry ?? 'lambda/handlers/credential-event.ts',
      description: 'Evaluates a Bedrock API key after an IAM credential event',
      environment: {
        ...pipelineEnvironment({ ...props, serviceName: 'keyguard-credential-event', account }),
        IDEMPOTENCY_TABLE_NAME: props.idempotencyTable.tableName,
      },
      // Send only (sqs:SendMessage, the key's GenerateDataKey + Decrypt): not CDK's SqsDestination grant.
      onFailure: sendOnlyDestination(this.failureQueue),
      retryAttempts: 2,
    });
    this.function = this.keyguardFunction.function;
    this.role = this.keyguardFunction.role;
    for (const [name, value] of Object.entries(usageReadAccess(this.role, props.usageTable))) {
      this.function.addEnvironment(name, value);
    }

    // --- IAM: read keys, user tags and facts; deactivate Bedrock keys only -------------------------------------
    this.role.attachInlinePolicy(
      keyUserAccessPolicy(
        this,
        account,
        'The users that may hold a Bedrock API key are not known in advance (console keys create ' +
          '`BedrockAPIKey-xxxx` users, API keys may sit on any user; ListServiceSpecificCredentials with ' +
          'AllUsers=true is authorized on user/*).',
      ),
    );

    // --- DynamoDB: item-level actions on the tables only (never DeleteItem on the append-only decisions) ---------
    grantItemActions(this.role, props.decisionsTable, 'DecisionsTableAppendOnly', DECISIONS_APPEND_ACTIONS);
    grantItemActions(this.role, props.keysTable, 'KeysTableState', ['dynamodb:GetItem', 'dynamodb:PutItem']);
    // Read-only: only approvers write approvals (the table's resource policy denies everyone else anyway).
    grantItemActions(this.role, props.approvalsTable, 'ApprovalsReadOnly', [
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);
    grantItemActions(this.role, props.idempotencyTable, 'IdempotencyRecords', [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
    ]);

    // --- SNS: publish owner notices (grantPublish also grants the topic key's Decrypt/GenerateDataKey*) --------
    props.topic.grantPublish(this.role);

    // --- Findings on CDK-generated grants (grantPublish) ---------------------------------------------------------
    acknowledgeGeneratedKmsGrants(this.role);
  }
}
