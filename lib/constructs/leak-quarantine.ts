import { Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { LambdaDestination } from 'aws-cdk-lib/aws-logs-destinations';
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
  usageReadAccess,
} from './governance-access';
import { KeyguardFunction } from './keyguard-function';

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
  /** Destination of batches that still fail after the retries. @default - a new FailureQueue */
  readonly failureQueue?: sqs.IQueue;
}

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
 */
export class LeakQuarantine extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.IRole;
  public readonly failureQueue: sqs.IQueue;
  public readonly subscriptionFilters: logs.SubscriptionFilter[];

  constructor(scope: Construct, id: string, props: LeakQuarantineProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const account = props.governedAccountId ?? stack.account;

    this.failureQueue = props.failureQueue ?? new FailureQueue(this, 'FailureQueue').queue;
    const fn = new KeyguardFunction(this, 'Handler', {
      entry: 'lambda/handlers/leak.ts',
      description: 'Scans subscribed log groups for Bedrock API keys and quarantines leaked ones',
      environment: pipelineEnvironment({ ...props, serviceName: 'keyguard-leak', account }),
      onFailure: new SqsDestination(this.failureQueue),
      retryAttempts: 2,
    });
    this.function = fn.function;
    this.role = fn.role;
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
        'narrower resource. The reads return metadata only (no secret); UpdateServiceSpecificCredential is ' +
        'condition-scoped to iam:ServiceSpecificCredentialServiceName = bedrock.amazonaws.com; nothing is created, ' +
        'reset or deleted.',
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

    // --- One subscription filter per log group (LambdaDestination adds logs.amazonaws.com's invoke permission) --
    const destination = new LambdaDestination(this.function);
    this.subscriptionFilters = props.logGroupNames.map(
      (name, i) =>
        new logs.SubscriptionFilter(this, `Subscription${i}`, {
          logGroup: logs.LogGroup.fromLogGroupName(this, `LogGroup${i}`, name),
          destination,
          filterPattern: logs.FilterPattern.literal(LEAK_FILTER_PATTERN),
          filterName: 'keyguard-bedrock-key-leaks',
        }),
    );
  }
}
