import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import type { ApprovalPolicy } from '../../lambda/handlers/approval-service';
import { type Config, policyVersion } from '../../lambda/shared/config';
import { DECISIONS_APPEND_ACTIONS } from './audit-tables';
import { grantItemActions } from './governance-access';
import { KeyguardFunction } from './keyguard-function';
import { HUB_APPROVAL_ROLE_NAME } from './org-roles';

/** Name of the approvals table's sparse GSI: approvals (not reviews) by account and approval id. */
export const APPROVALS_BY_ACCOUNT_INDEX = 'byAccount';

/**
 * Item-level writes on the approvals table. Denied by its resource policy to every principal but the approval
 * function. BatchWriteItem and the PartiQL statements are their own IAM actions, so each is named.
 */
export const APPROVAL_WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:PartiQLInsert',
  'dynamodb:PartiQLUpdate',
] as const;
/** Denied to everyone, the approval function included: approvals are revoked (kept on record), never deleted. */
export const APPROVAL_DELETE_ACTIONS = [
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PartiQLDelete',
] as const;
/** Changing or removing the table's resource policy: only CloudFormation may (a stack update, on record). */
export const RESOURCE_POLICY_ACTIONS = [
  'dynamodb:PutResourcePolicy',
  'dynamodb:DeleteResourcePolicy',
] as const;
/**
 * The CloudFormation execution role `cdk bootstrap` creates (any qualifier): the principal a `cdk deploy` changes
 * the table's resource policy as. A deployment without it (no service role) goes through CloudFormation's forward
 * access session, which `aws:CalledVia` names.
 */
export const CDK_EXECUTION_ROLE_PATTERN = 'arn:*:iam::*:role/cdk-*-cfn-exec-role-*';

/** What an approver's own policy needs: both actions on this function, only through an IAM-authenticated URL. */
export function approverStatements(functionArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'CallTheApprovalFunctionUrl',
      actions: ['lambda:InvokeFunctionUrl'],
      resources: [functionArn],
      conditions: { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } },
    }),
    // Since October 2025 a function URL call also needs lambda:InvokeFunction; only through the URL.
    new iam.PolicyStatement({
      sid: 'InvokeOnlyThroughTheUrl',
      actions: ['lambda:InvokeFunction'],
      resources: [functionArn],
      conditions: { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } },
    }),
  ];
}

export interface ApprovalsProps {
  /** The validated policy: approvers, maxApprovalDays, mode, fallbackOwner and its version. */
  readonly config: Config;
  /** The keys table: the function reads a key's owner and creator from it (GetItem only). */
  readonly keysTable: dynamodb.ITable;
  /** The decisions table: every approval, revocation and review is appended to it. */
  readonly decisionsTable: dynamodb.ITable;
  /** Account whose keys may be approved. @default - the stack's account */
  readonly governedAccountId?: string;
}

/**
 * Flow 5 of design.md: the approvals table (explicit, expiring exceptions and reviews) and the approval function
 * that writes it, behind a function URL with AWS_IAM authentication. `keyguard approve | review | approvals` sign
 * their requests with the caller's own credentials; Lambda authenticates the caller and gives the function its
 * identity, which is the approver of record. The function enforces the rules (listed approvers, never one's own
 * key, at most maxApprovalDays); the table's resource policy lets no other principal write an item (an
 * administrator's `dynamodb:*` included), nobody delete one, and only CloudFormation change the policy itself.
 * Who may call the URL is IAM's decision: the ApproverPolicy managed policy grants exactly that, to attach to
 * approvers' roles (it is attached to nothing here); config `approvers` narrows it further in the function.
 *
 * Construct ids are part of logical ids: renaming `Table` replaces (and, with RETAIN, orphans) the table.
 */
export class Approvals extends Construct {
  /** pk = `<accountId>#<keyId>`, sk = `APPROVAL#<id>` | `REVIEW#<reviewedAt>#<id>`; GSI byAccount. */
  public readonly table: dynamodb.Table;
  /** The approval function (the only writer of the table). */
  public readonly function: NodejsFunction;
  /** Its IAM-authenticated URL, the one the CLI calls. */
  public readonly url: lambda.FunctionUrl;
  /** Attach to approvers: lambda:InvokeFunctionUrl and lambda:InvokeFunction (through the URL) on the function. */
  public readonly approverPolicy: iam.ManagedPolicy;
  /** The function's execution role. */
  public readonly role: iam.IRole;

  constructor(scope: Construct, id: string, props: ApprovalsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const account = props.governedAccountId ?? stack.account;

    const policy: ApprovalPolicy = {
      mode: props.config.mode,
      maxApprovalDays: props.config.maxApprovalDays,
      fallbackOwner: props.config.fallbackOwner,
      approvers: props.config.approvers,
    };
    const fn = new KeyguardFunction(this, 'Handler', {
      entry: 'lambda/handlers/approval.ts',
      description:
        'Records approvals, revocations and reviews for the IAM-authenticated caller (keyguard approve)',
      // Called synchronously through the URL: an asynchronous invocation carries no caller and is refused anyway.
      retryAttempts: 0,
    });
    this.function = fn.function;
    this.role = fn.role;

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // As the audit tables: the AWS managed key, so readers and writers need only DynamoDB permissions.
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
      deletionProtection: true,
      // `Resource: *` means this table: a resource policy cannot name its own table's ARN (circular reference).
      resourcePolicy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'OnlyTheApprovalFunctionWrites',
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: [...APPROVAL_WRITE_ACTIONS],
            resources: ['*'],
            conditions: { ArnNotEquals: { 'aws:PrincipalArn': fn.role.roleArn } },
          }),
          new iam.PolicyStatement({
            sid: 'NobodyDeletesApprovals',
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: [...APPROVAL_DELETE_ACTIONS],
            resources: ['*'],
          }),
          new iam.PolicyStatement({
            sid: 'PolicyChangesOnlyThroughCloudFormation',
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: [...RESOURCE_POLICY_ACTIONS],
            resources: ['*'],
            // Denied unless CloudFormation makes the call: as the cdk execution role, or on the caller's behalf.
            conditions: {
              ArnNotLike: { 'aws:PrincipalArn': CDK_EXECUTION_ROLE_PATTERN },
              'ForAllValues:StringNotEquals': { 'aws:CalledVia': 'cloudformation.amazonaws.com' },
            },
          }),
        ],
      }),
    });
    this.table.addGlobalSecondaryIndex({
      indexName: APPROVALS_BY_ACCOUNT_INDEX,
      partitionKey: { name: 'approvalAccount', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'approvalId', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    // Only what the function uses (approvals-store.ts, audit-store.ts): no Scan, no DeleteItem, nothing on the keys
    // table but GetItem, on the decisions table only what appending a decision to its hash chain needs.
    grantItemActions(fn.role, this.table, 'WriteAndReadApprovals', [
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    ]);
    fn.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'FindApprovalsByAccount',
        actions: ['dynamodb:Query'],
        resources: [`${this.table.tableArn}/index/${APPROVALS_BY_ACCOUNT_INDEX}`],
      }),
    );
    grantItemActions(fn.role, props.keysTable, 'ReadKeyOwnerAndCreator', ['dynamodb:GetItem']);
    grantItemActions(fn.role, props.decisionsTable, 'AppendAuditDecisions', DECISIONS_APPEND_ACTIONS);

    this.function.addEnvironment('APPROVAL_POLICY', JSON.stringify(policy));
    this.function.addEnvironment('POLICY_VERSION', policyVersion(props.config));
    this.function.addEnvironment('GOVERNED_ACCOUNT_ID', account);
    this.function.addEnvironment('APPROVALS_TABLE_NAME', this.table.tableName);
    this.function.addEnvironment('KEYS_TABLE_NAME', props.keysTable.tableName);
    this.function.addEnvironment('DECISIONS_TABLE_NAME', props.decisionsTable.tableName);
    this.function.addEnvironment('POWERTOOLS_SERVICE_NAME', 'keyguard-approval');
    this.function.addEnvironment('POWERTOOLS_LOG_LEVEL', 'INFO');

    this.url = this.function.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM });

    this.approverPolicy = new iam.ManagedPolicy(this, 'ApproverPolicy', {
      description:
        'Bedrock Key Guard approvers: call the approval function URL (keyguard approve / review / approvals). ' +
        'Attach to the roles or users of the people who approve; config "approvers" may narrow it further.',
      statements: approverStatements(this.function.functionArn),
    });
  }

  /**
   * Organization mode: keys of the governed member accounts may be approved too. The function checks that a key's
   * account is governed as credential-event does (governed-accounts.ts), so it gets the organization settings
   * (ORG_SETTINGS_PARAMETER, ssm:GetParameter on that parameter only) and the management account's Organizations
   * reader role (ORG_READER_ROLE_ARN, sts:AssumeRole on that role only), and its role a fixed name, the one the reader
   * role trusts (org-roles.ts readerTrustedRoleArns). No member role: the function never calls IAM. Callers are still
   * principals of this (the hub's) account only.
   */
  public governOrganization(props: {
    readonly settings: ssm.IStringParameter;
    readonly readerRoleArn: string;
  }): void {
    if (!(this.role instanceof iam.Role)) {
      throw new Error('Approvals: the approval function role must be an iam.Role created by the stack');
    }
    (this.role.node.defaultChild as iam.CfnRole).roleName = HUB_APPROVAL_ROLE_NAME;
    this.function.addEnvironment('ORG_SETTINGS_PARAMETER', props.settings.parameterName);
    this.function.addEnvironment('ORG_READER_ROLE_ARN', props.readerRoleArn);
    this.role.attachInlinePolicy(
      new iam.Policy(this, 'OrganizationAccess', {
        statements: [
          new iam.PolicyStatement({
            sid: 'ReadOrganizationSettings',
            actions: ['ssm:GetParameter'],
            resources: [props.settings.parameterArn],
          }),
          new iam.PolicyStatement({
            sid: 'AssumeOrganizationsReader',
            actions: ['sts:AssumeRole'],
            resources: [props.readerRoleArn],
          }),
        ],
      }),
    );
  }
}
