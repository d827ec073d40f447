import { Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { CONFIG_ENV, type Config, functionPolicy, policyVersion } from '../../lambda/shared/config';
import { nagResourceId } from '../nag-finding';

/**
 * What every keyguard function that decides on keys shares: the ARNs of the governed account's IAM resources,
 * the one IAM write it may make (deactivating a Bedrock key), item-level table grants and the environment the
 * pipeline reads. One place, so the functions cannot drift apart in what they may do.
 */

/** The only service whose service-specific credentials keyguard may change. */
export const BEDROCK_SERVICE_NAME = 'bedrock.amazonaws.com';

/** `arn:<partition>:iam::<account>:<resource>/*` for the governed account (IAM ARNs have no region). */
export function anyIamResource(
  scope: Construct,
  account: string,
  resource: 'user' | 'group' | 'policy',
): string {
  return Stack.of(scope).formatArn({ service: 'iam', region: '', account, resource, resourceName: '*' });
}

/**
 * What every acknowledgement covering {@link deactivateBedrockKeysStatement} says about it. The grant cannot be
 * limited to deactivation: the Service Authorization Reference lists only iam:ServiceSpecificCredentialServiceName
 * as a condition key of UpdateServiceSpecificCredential, none for the requested status. What watches a
 * reactivation is the credential-event flow (credential-event-rule.ts matches UpdateServiceSpecificCredential;
 * evaluate() raises REACTIVATED_WITHOUT_APPROVAL) and the sweep, whatever principal made the call.
 */
export const UPDATE_BEDROCK_KEYS_REASON =
  'UpdateServiceSpecificCredential is condition-scoped to iam:ServiceSpecificCredentialServiceName = ' +
  'bedrock.amazonaws.com. It also allows reactivation (Status=Active): IAM has no condition key for the requested ' +
  'status (the only one for this action is the service name), so it cannot be limited to Inactive. keyguard only ' +
  'ever sends Status=Inactive (IamEnforcer), and a reactivation by any principal, this role included, is watched: ' +
  'it is an UpdateServiceSpecificCredential CloudTrail event that the credential-event rule routes to the ' +
  'credential-event function, which re-reads the key from IAM; a key keyguard deactivated that is Active again ' +
  'without an approval is REACTIVATED_WITHOUT_APPROVAL (critical: recorded, notified, deactivated again in ' +
  'enforce mode), and the sweep finds the same when the event is lost. The caller is in the CloudTrail record. ' +
  'No create, delete or reset action is granted.';

/**
 * UpdateServiceSpecificCredential, only for Bedrock credentials (CodeCommit, Keyspaces... are out of reach). It
 * allows Status=Active too (no condition key restricts the status): see {@link UPDATE_BEDROCK_KEYS_REASON}.
 */
export function deactivateBedrockKeysStatement(anyUser: string): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'DeactivateBedrockKeysOnly',
    actions: ['iam:UpdateServiceSpecificCredential'],
    resources: [anyUser],
    conditions: { StringEquals: { 'iam:ServiceSpecificCredentialServiceName': BEDROCK_SERVICE_NAME } },
  });
}

/**
 * The IAM access of a function that decides on one key at a time (credential-event, key-usage): the key user's
 * Bedrock keys and tags (IamKeyDirectory), its facts (IamUserFacts: BROAD_PERMISSIONS, USER_HAS_OTHER_CREDENTIALS),
 * and deactivating Bedrock keys. One policy so the functions decide on the same facts, with the acknowledgement of
 * each unavoidable wildcard beside it. `whyAnyUser` says why this function must reach any user.
 */
export function keyUserAccessPolicy(scope: Construct, account: string, whyAnyUser: string): iam.Policy {
  const anyUser = anyIamResource(scope, account, 'user');
  // The groups and customer-managed policies are whichever the key's user happens to hold, so they are not known
  // in advance either. AWS managed policies (arn:aws:iam::aws:policy/...) are recognised by ARN and never read.
  const anyGroup = anyIamResource(scope, account, 'group');
  const anyPolicy = anyIamResource(scope, account, 'policy');
  const policy = new iam.Policy(scope, 'IamAccess', {
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
  Validations.of(policy).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagResourceId(scope, anyUser)}]`,
    reason:
      `${whyAnyUser} IAM offers no resource narrower than user/* for that. The actions are reads (keys, tags, the ` +
      "user's policies, access key metadata and login profile: none returns a secret) and " +
      UPDATE_BEDROCK_KEYS_REASON,
  });
  Validations.of(policy).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagResourceId(scope, anyGroup)}]`,
    reason:
      'Read-only (ListAttachedGroupPolicies, ListGroupPolicies, GetGroupPolicy): a key user may be in any group ' +
      'of the account, and IAM authorizes these actions on the group resource (group*), so the groups a key ' +
      "user belongs to cannot be named in advance. Only this account's groups are covered.",
  });
  Validations.of(policy).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagResourceId(scope, anyPolicy)}]`,
    reason:
      "Read-only (GetPolicy, GetPolicyVersion) on this account's customer-managed policies: any of them may be " +
      'attached to a key user, and IAM authorizes these actions on the policy resource (policy*). AWS managed ' +
      'policies are recognised by ARN and never read, so no arn:aws:iam::aws:policy/* grant is needed.',
  });
  return policy;
}

/**
 * Item-level actions on one table, written out rather than table.grant(): grant() also adds `<table>/index/*`
 * for a GSI that GetItem and PutItem never touch, and grantReadWriteData includes DeleteItem (the decisions
 * table is append-only). A table with a customer-managed key also needs the key.
 */
export function grantItemActions(
  role: iam.IRole,
  table: dynamodb.ITable,
  sid: string,
  actions: string[],
): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ sid, actions, resources: [table.tableArn] }));
  table.encryptionKey?.grantEncryptDecrypt(role);
}

/**
 * Acknowledges the KMS wildcard actions that CDK's generated grants put in a role's default policy, and only those
 * the policy holds when called (call it after the grants): kms:GenerateDataKey* from grantPublish (the topic's
 * key); kms:ReEncrypt* (and GenerateDataKey*) only from CDK's grantSendMessages, i.e. a queue still bound through
 * SqsDestination / SqsDlq. FailureQueue.destination() / eventSourceDlq() / grantSend() grant neither.
 */
export function acknowledgeGeneratedKmsGrants(role: iam.IRole): void {
  const defaultPolicy = role.node.tryFindChild('DefaultPolicy');
  if (!(defaultPolicy instanceof iam.Policy)) return;
  const rendered = defaultPolicy.document.toJSON() as { Statement?: Array<{ Action: string | string[] }> };
  const granted = new Set((rendered?.Statement ?? []).flatMap((s) => [s.Action].flat()));
  for (const action of ['kms:GenerateDataKey*', 'kms:ReEncrypt*'].filter((a) => granted.has(a))) {
    Validations.of(defaultPolicy).acknowledge({
      id: `AwsSolutions-IAM5[Action::${action}]`,
      reason:
        `${action} comes from CDK's grantPublish (the owner-notice topic) or grantSendMessages (a queue bound ` +
        "through SqsDestination) and is limited to the resources of those grants: the topic's and that queue's " +
        'own customer-managed keys.',
    });
  }
}

/**
 * What a deciding function reads from the usage table (lambda/adapters/usage-store.ts): GetItem (`trackingSince`,
 * the account's first recorded use) and BatchGetItem (`lastUsedFor`, a key and its user), so that every path
 * decides UNUSED the same way as the sweep.
 */
export const USAGE_READ_ACTIONS = ['dynamodb:GetItem', 'dynamodb:BatchGetItem'];

/** `USAGE_TABLE_NAME` and the usage reads, for a function deciding on keys while usage is tracked. */
export function usageReadAccess(
  role: iam.IRole,
  usageTable: dynamodb.ITable | undefined,
): Record<string, string> {
  if (!usageTable) return {};
  grantItemActions(role, usageTable, 'UsageReads', USAGE_READ_ACTIONS);
  return { USAGE_TABLE_NAME: usageTable.tableName };
}

export interface PipelineEnvironmentProps {
  readonly config: Config;
  /** Powertools service name, e.g. `keyguard-sweep`. */
  readonly serviceName: string;
  readonly account: string;
  readonly decisionsTable: dynamodb.ITable;
  readonly keysTable: dynamodb.ITable;
  readonly approvalsTable: dynamodb.ITable;
  readonly topic: sns.ITopic;
}

/**
 * The environment every pipeline function reads (lambda/handlers/*: requireEnv). The policy is the part of the
 * config that decisions depend on (functionPolicy), not the whole config: Lambda allows 4 KB of environment per
 * function, and the approvers, subscriptions and scanned log groups of a large config are several times that.
 * POLICY_VERSION is still the whole config's version, the one the CLI computes from the same file.
 */
export function pipelineEnvironment(p: PipelineEnvironmentProps): Record<string, string> {
  return {
    DECISIONS_TABLE_NAME: p.decisionsTable.tableName,
    KEYS_TABLE_NAME: p.keysTable.tableName,
    APPROVALS_TABLE_NAME: p.approvalsTable.tableName,
    TOPIC_ARN: p.topic.topicArn,
    GOVERNED_ACCOUNT_ID: p.account,
    [CONFIG_ENV]: JSON.stringify(functionPolicy(p.config)),
    POLICY_VERSION: policyVersion(p.config),
    POWERTOOLS_SERVICE_NAME: p.serviceName,
    POWERTOOLS_METRICS_NAMESPACE: 'BedrockKeyGuard',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
}
