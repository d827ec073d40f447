import { Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { Config } from '../../lambda/shared/config';
import { nagResourceId } from '../nag-finding';
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
      onFailure: new SqsDestination(this.failureQueue),
      retryAttempts: 2,
    });
    this.function = this.keyguardFunction.function;
    this.role = this.keyguardFunction.role;
    for (const [name, value] of Object.entries(usageReadAccess(this.role, props.usageTable))) {
      this.function.addEnvironment(name, value);
    }

    // --- IAM: read keys and user tags; deactivate Bedrock keys only -------------------------------------------
    // IAM has no resource finer than a user for these actions, and the users that may hold a Bedrock key are
    // not known in advance (console keys create `BedrockAPIKey-xxxx` users, API keys may sit on any user).
    const anyUser = anyIamResource(this, account, 'user');
    // A key user's facts (BROAD_PERMISSIONS, USER_HAS_OTHER_CREDENTIALS): its policies, directly and through
    // its groups, and its other credentials. Read-only; the groups and customer-managed policies are whichever
    // the key's user happens to hold, so they are not known in advance either. AWS managed policies
    // (arn:aws:iam::aws:policy/...) are recognised by ARN and never read, so only this account's policies are.
    const anyGroup = anyIamResource(this, account, 'group');
    const anyPolicy = anyIamResource(this, account, 'policy');
    const policy = new iam.Policy(this, 'IamAccess', {
      statements: [
        new iam.PolicyStatement({
          sid: 'ReadKeysAndOwnerTags',
          actions: ['iam:ListServiceSpecificCredentials', 'iam:ListUserTags'],
          resources: [anyUser],
        }),
        new iam.PolicyStatement({
          sid: 'ReadKeyUserPoliciesAndCredentials',
          actions: [
            'iam:ListAttachedUserPolicies',
            'iam:ListUserPolicies',
            'iam:GetUserPolicy',
            'iam:ListGroupsForUser',
            'iam:ListAccessKeys',
            'iam:GetLoginProfile',
          ],
          resources: [anyUser],
        }),
        new iam.PolicyStatement({
          sid: 'ReadKeyUserGroupPolicies',
          actions: ['iam:ListAttachedGroupPolicies', 'iam:ListGroupPolicies', 'iam:GetGroupPolicy'],
          resources: [anyGroup],
        }),
        new iam.PolicyStatement({
          sid: 'ReadCustomerManagedPolicies',
          actions: ['iam:GetPolicy', 'iam:GetPolicyVersion'],
          resources: [anyPolicy],
        }),
        deactivateBedrockKeysStatement(anyUser),
      ],
    });
    this.role.attachInlinePolicy(policy);
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyUser)}]`,
      reason:
        'IAM offers no resource narrower than user/* for "any user that may hold a Bedrock API key" (keys can ' +
        'be created on any user; ListServiceSpecificCredentials with AllUsers=true is authorized on user/*). ' +
        "The actions are reads (keys, tags, the user's policies, access key metadata and login profile: no " +
        'secret is ever returned by them) and UpdateServiceSpecificCredential, which is condition-scoped to ' +
        'iam:ServiceSpecificCredentialServiceName = bedrock.amazonaws.com; no create/delete/reset action is granted.',
    });
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyGroup)}]`,
      reason:
        'Read-only (ListAttachedGroupPolicies, ListGroupPolicies, GetGroupPolicy): a key user may be in any group ' +
        'of the account, and IAM authorizes these actions on the group resource (group*), so the groups a key ' +
        "user belongs to cannot be named in advance. Only this account's groups are covered.",
    });
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyPolicy)}]`,
      reason:
        "Read-only (GetPolicy, GetPolicyVersion) on this account's customer-managed policies: any of them may be " +
        'attached to a key user, and IAM authorizes these actions on the policy resource (policy*). AWS managed ' +
        'policies are recognised by ARN and never read, so no arn:aws:iam::aws:policy/* grant is needed.',
    });

    // --- DynamoDB: item-level actions on the tables only (never DeleteItem on the append-only decisions) ---------
    grantItemActions(this.role, props.decisionsTable, 'DecisionsTableAppendOnly', [
      'dynamodb:GetItem',
      'dynamodb:PutItem',
    ]);
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

    // --- Findings on CDK-generated grants (SqsDestination -> grantSendMessages, grantPublish) ------------------
    acknowledgeGeneratedKmsGrants(this.role);
  }
}
