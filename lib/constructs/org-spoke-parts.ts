import type { CfnCondition } from 'aws-cdk-lib';
import { CfnResource, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import { nagResourceId } from '../nag-finding';
import { CREDENTIAL_EVENT_PATTERN } from './credential-event-rule';
import { anyIamResource, BEDROCK_SERVICE_NAME, UPDATE_BEDROCK_KEYS_REASON } from './governance-access';

/**
 * The parts of a spoke (lib/spoke-stack.ts): code-free, asset-free, and cheap per account and region (a spoke exists
 * in every governed account and usage region, so no customer-managed KMS key: its queues use SSE-SQS).
 */

/** Creates every CloudFormation resource under `scope` only when `condition` holds (one template, every region). */
export function onlyWhen(scope: IConstruct, condition: CfnCondition): void {
  for (const child of scope.node.findAll()) {
    if (child instanceof CfnResource) child.cfnOptions.condition = condition;
  }
}

/**
 * A rule-target dead-letter queue for a spoke: SQS-managed encryption (EventBridge may write to it with no key policy,
 * and there is no KMS key to pay for in each account and region), TLS only, 14 days.
 */
export function spokeDeadLetterQueue(scope: Construct, id: string): sqs.Queue {
  const queue = new sqs.Queue(scope, id, {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  Validations.of(queue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      'This queue is itself a dead-letter queue (of an EventBridge rule target, which cdk-nag does not recognise as ' +
      'one): events that could not be forwarded to the hub bus wait here for an operator; nothing consumes it.',
  });
  return queue;
}

export interface OrgCredentialForwardingProps {
  /** The hub's governance bus, by ARN (another account). */
  readonly hubBus: events.IEventBus;
}

/**
 * Flow 1 in a member account (us-east-1): IAM's credential events, matched with the hub's own pattern
 * (CREDENTIAL_EVENT_PATTERN), are put on the hub's governance bus through a role that may call events:PutEvents on
 * that bus only (EventBridge requires a role on a cross-account bus target admitted by aws:PrincipalOrgID).
 */
export class OrgCredentialForwarding extends Construct {
  public readonly rule: events.Rule;
  /** The role the rule puts events on the hub bus with. */
  public readonly role: iam.Role;
  /** Events EventBridge could not put on the hub bus. */
  public readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: OrgCredentialForwardingProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.deadLetterQueue = spokeDeadLetterQueue(this, 'DeadLetterQueue');
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: 'EventBridge forwarding Bedrock API key IAM events to the Bedrock Key Guard hub bus',
    });
    this.rule = new events.Rule(this, 'Rule', {
      description:
        'Bedrock API key and key-user access changes (IAM, CloudTrail), to the Bedrock Key Guard hub',
      eventPattern: {
        source: CREDENTIAL_EVENT_PATTERN.source,
        detailType: CREDENTIAL_EVENT_PATTERN['detail-type'],
        detail: CREDENTIAL_EVENT_PATTERN.detail,
      },
      // Event-bus targets take no retry policy: EventBridge retries with its own, then the DLQ.
      targets: [
        new targets.EventBus(props.hubBus, { role: this.role, deadLetterQueue: this.deadLetterQueue }),
      ],
    });
  }
}

/** Every IAM action the hub's deciding functions call in a governed account, by resource (see OrgMemberRole). */
export const MEMBER_USER_READS = [
  'iam:ListServiceSpecificCredentials',
  'iam:ListUserTags',
  'iam:ListAttachedUserPolicies',
  'iam:ListUserPolicies',
  'iam:GetUserPolicy',
  'iam:ListGroupsForUser',
  'iam:ListAccessKeys',
  'iam:GetLoginProfile',
] as const;
export const MEMBER_GROUP_READS = [
  'iam:ListAttachedGroupPolicies',
  'iam:ListGroupPolicies',
  'iam:GetGroupPolicy',
] as const;
export const MEMBER_POLICY_READS = ['iam:GetPolicy', 'iam:GetPolicyVersion'] as const;
export const MEMBER_ACCOUNT_READS = [
  'iam:ListServiceSpecificCredentials',
  'iam:GetAccountAuthorizationDetails',
  'iam:GenerateCredentialReport',
  'iam:GetCredentialReport',
] as const;

/**
 * Replaces a role's trust policy with one statement: sts:AssumeRole by exactly `roleArns` (never an account root),
 * and only while the caller is a principal of the organization. Written on the CfnRole: CompositePrincipal would
 * render one statement per role and takes no condition.
 */
export function trustOnly(role: iam.Role, roleArns: string[], organizationId: string): void {
  if (roleArns.length === 0) throw new Error(`${role.node.path}: no role to trust`);
  (role.node.defaultChild as iam.CfnRole).assumeRolePolicyDocument = new iam.PolicyDocument({
    statements: [
      new iam.PolicyStatement({
        sid: 'HubRolesOfTheOrganization',
        actions: ['sts:AssumeRole'],
        principals: roleArns.map((arn) => new iam.ArnPrincipal(arn)),
        conditions: { StringEquals: { 'aws:PrincipalOrgID': organizationId } },
      }),
    ],
  });
}

export interface OrgMemberRoleProps {
  /** `organization.memberRoleName`. */
  readonly roleName: string;
  /** The exact ARNs of the hub's deciding function roles (lib/constructs/org-roles.ts hubRoleArns). */
  readonly trustedRoleArns: string[];
  /** `organization.id`: the caller must also be a principal of this organization. */
  readonly organizationId: string;
  /**
   * Whether the hub's leak function traces short-term keys signed in this account (it exists: leakDetection.logGroups
   * names log groups): cloudtrail:LookupEvents, the one call it makes here besides IAM's.
   * @default false
   */
  readonly lookUpShortTermSigners?: boolean;
}

/** What the leak function calls in a member account's event history to find a short-term key's signer. */
export const MEMBER_SIGNER_LOOKUPS = ['cloudtrail:LookupEvents'] as const;

/**
 * The member role: what the hub's deciding functions (credential-event, sweep, leak, key-usage) do in this account,
 * and nothing else. The union of their single-account grants against IAM (governance-access.ts keyUserAccessPolicy,
 * inventory-sweep.ts, leak-quarantine.ts): reads of keys, key users and their groups and customer-managed policies,
 * the account-wide reads of the sweep, iam:UpdateServiceSpecificCredential for Bedrock credentials only and, when the
 * hub has a leak function, cloudtrail:LookupEvents (a leaked short-term key's signer is traced in the account that
 * signed it). Not granted: the single-account sweep's creator attribution (CloudTrail, not done in member accounts),
 * DynamoDB, SNS: those stay in the hub. Trusted by the exact hub role ARNs (not the hub account root), and only while
 * the caller is a principal of the organization.
 */
export class OrgMemberRole extends Construct {
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: OrgMemberRoleProps) {
    super(scope, id);
    const account = Stack.of(this).account;
    const anyUser = anyIamResource(this, account, 'user');
    const anyGroup = anyIamResource(this, account, 'group');
    const anyPolicy = anyIamResource(this, account, 'policy');

    this.role = new iam.Role(this, 'Role', {
      roleName: props.roleName,
      description:
        'Bedrock Key Guard hub functions: read Bedrock API keys and their users, deactivate Bedrock keys',
      // Replaced by trustOnly below (Role requires an assumedBy).
      assumedBy: new iam.AccountRootPrincipal(),
      inlinePolicies: {
        BedrockKeyGovernance: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'ReadKeyUsers',
              actions: [...MEMBER_USER_READS],
              resources: [anyUser],
            }),
            new iam.PolicyStatement({
              sid: 'ReadKeyUserGroupPolicies',
              actions: [...MEMBER_GROUP_READS],
              resources: [anyGroup],
            }),
            new iam.PolicyStatement({
              sid: 'ReadCustomerManagedPolicies',
              actions: [...MEMBER_POLICY_READS],
              resources: [anyPolicy],
            }),
            new iam.PolicyStatement({
              sid: 'SweepAccountReads',
              actions: [...MEMBER_ACCOUNT_READS],
              resources: ['*'],
            }),
            new iam.PolicyStatement({
              sid: 'DeactivateBedrockKeysOnly',
              actions: ['iam:UpdateServiceSpecificCredential'],
              resources: [anyUser],
              conditions: {
                StringEquals: { 'iam:ServiceSpecificCredentialServiceName': BEDROCK_SERVICE_NAME },
              },
            }),
            ...(props.lookUpShortTermSigners
              ? [
                  new iam.PolicyStatement({
                    sid: 'LookUpShortTermKeySigners',
                    actions: [...MEMBER_SIGNER_LOOKUPS],
                    resources: ['*'],
                  }),
                ]
              : []),
          ],
        }),
      },
    });
    trustOnly(this.role, props.trustedRoleArns, props.organizationId);

    Validations.of(this.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyUser)}]`,
      reason:
        'A Bedrock key may sit on any IAM user of this account, so no resource narrower than user/* exists for ' +
        "reading a key's user (keys, tags, policies, access key metadata, login profile: none returns a secret). " +
        UPDATE_BEDROCK_KEYS_REASON,
    });
    Validations.of(this.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyGroup)}]`,
      reason:
        "Read-only (ListAttachedGroupPolicies, ListGroupPolicies, GetGroupPolicy) on the groups of a key's user, " +
        'which can be any group of this account: IAM authorizes them on the group resource.',
    });
    Validations.of(this.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyPolicy)}]`,
      reason:
        "Read-only (GetPolicy, GetPolicyVersion) on this account's customer-managed policies, any of which may be " +
        'attached to a key user. AWS managed policies are recognised by ARN and never read.',
    });
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The sweep reads the whole account: ListServiceSpecificCredentials with AllUsers names no user, and ' +
        'GetAccountAuthorizationDetails, GenerateCredentialReport and GetCredentialReport are account-level IAM ' +
        'actions with no resource type (Service Authorization Reference). All four are reads that return no secret.' +
        (props.lookUpShortTermSigners
          ? ' cloudtrail:LookupEvents (the leak function finding the signer of a leaked short-term key by its access ' +
            'key id) supports no resource-level permissions: CloudTrail authorizes it on "*" only. It reads event ' +
            'history and changes nothing.'
          : ''),
    });
  }
}

/**
 * What `keyguard inventory --org` reads in a member account, by resource (lambda/cli/inventory.ts readAccount,
 * lambda/adapters/iam-inventory.ts): pages of ListServiceSpecificCredentials(AllUsers), the AccountSnapshot
 * (GetAccountAuthorizationDetails, the credential report), and a key user's tags when the snapshot lacks them
 * (adapters/iam.ts getUserTags). Nothing else: no policy or group reads one by one, no write.
 */
export const INVENTORY_ACCOUNT_READS = [
  'iam:ListServiceSpecificCredentials',
  'iam:GetAccountAuthorizationDetails',
  'iam:GenerateCredentialReport',
  'iam:GetCredentialReport',
] as const;
export const INVENTORY_USER_READS = ['iam:ListUserTags'] as const;

export interface OrgInventoryRoleProps {
  /** The role's name (`ORG_INVENTORY_ROLE_NAME`, the CLI's default `--role-name`). */
  readonly roleName: string;
  /**
   * The accounts whose principals may assume it: the management account, where `inventory --org` lists the
   * organization, and the hub (often the delegated administrator). Duplicates are dropped.
   */
  readonly trustedAccountIds: string[];
  /** `organization.id`: the caller must also be a principal of this organization. */
  readonly organizationId: string;
}

/**
 * The role `keyguard inventory --org` assumes in each member account: the inventory's reads and nothing else (no
 * deactivation, unlike the member role). The people who run it are not known when the spoke is synthesized (their
 * SSO role ARNs are generated per account), so the trust names the management and hub accounts (their roots:
 * delegated to each account's IAM, so only a principal that its own account lets call sts:AssumeRole on this role
 * may), and only while the caller is a principal of the organization. Principals of any other member account, and
 * the hub's functions (they use the member role), are not trusted.
 */
export class OrgInventoryRole extends Construct {
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: OrgInventoryRoleProps) {
    super(scope, id);
    const account = Stack.of(this).account;
    const anyUser = anyIamResource(this, account, 'user');
    const trusted = [...new Set(props.trustedAccountIds)];
    if (trusted.length === 0) throw new Error(`${this.node.path}: no account to trust`);

    this.role = new iam.Role(this, 'Role', {
      roleName: props.roleName,
      description:
        'Bedrock Key Guard inventory (keyguard inventory --org): read Bedrock API keys and their users, read-only',
      // Replaced below (Role requires an assumedBy).
      assumedBy: new iam.AccountRootPrincipal(),
      inlinePolicies: {
        BedrockKeyInventory: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'InventoryAccountReads',
              actions: [...INVENTORY_ACCOUNT_READS],
              resources: ['*'],
            }),
            new iam.PolicyStatement({
              sid: 'ReadKeyUserTags',
              actions: [...INVENTORY_USER_READS],
              resources: [anyUser],
            }),
          ],
        }),
      },
    });
    (this.role.node.defaultChild as iam.CfnRole).assumeRolePolicyDocument = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'ManagementAndHubPrincipalsOfTheOrganization',
          actions: ['sts:AssumeRole'],
          principals: trusted.map((a) => new iam.AccountPrincipal(a)),
          conditions: { StringEquals: { 'aws:PrincipalOrgID': props.organizationId } },
        }),
      ],
    });

    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The inventory reads the whole account: ListServiceSpecificCredentials with AllUsers names no user, and ' +
        'GetAccountAuthorizationDetails, GenerateCredentialReport and GetCredentialReport are account-level IAM ' +
        'actions with no resource type (Service Authorization Reference). All four are reads that return no secret.',
    });
    Validations.of(this.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResourceId(this, anyUser)}]`,
      reason:
        "ListUserTags (read-only) on a key's user, which can be any IAM user of this account: the owner and purpose " +
        'tags the inventory evaluates, when the authorization details lack them.',
    });
  }
}
