import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { DECISIONS_APPEND_ACTIONS } from './audit-tables';

/** Name of the approvals table's sparse GSI: approvals (not reviews) by account and approval id. */
export const APPROVALS_BY_ACCOUNT_INDEX = 'byAccount';

/**
 * Item-level writes on the approvals table. Denied by its resource policy to every principal but the approvers.
 * BatchWriteItem and the PartiQL statements are their own IAM actions, so each is named.
 */
export const APPROVAL_WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:PartiQLInsert',
  'dynamodb:PartiQLUpdate',
] as const;
/** Denied to everyone, approvers included: approvals are revoked (kept on record), never deleted. */
export const APPROVAL_DELETE_ACTIONS = [
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PartiQLDelete',
] as const;

export interface ApprovalsProps {
  /**
   * IAM principals (role or user ARNs, from config `approvers`) that may write approvals besides the approver
   * role, and that may assume the approver role. Empty: the role is assumable by the account (its admins grant
   * sts:AssumeRole to whom they choose).
   */
  readonly approvers: readonly string[];
  /** The keys table: the approver reads a key's owner and creator from it (GetItem only). */
  readonly keysTable: dynamodb.ITable;
  /** The decisions table: every approval, revocation and review is appended to it (PutItem only). */
  readonly decisionsTable: dynamodb.ITable;
}

/**
 * Flow 5 of design.md: the approvals table (explicit, expiring exceptions and reviews) and the approver role
 * that `keyguard approve|review|approvals` run under. Writes are restricted twice: by IAM (only the approver
 * role is granted them here) and by the table's resource policy, which denies item writes to any principal that
 * is neither the approver role nor a configured approver, whatever their IAM policies say (an administrator's
 * `dynamodb:*` included). Nobody may delete an item. The resource policy denies only item-level actions, so
 * CloudFormation (and the table's owners) can still manage the table and its policy.
 *
 * Construct ids are part of logical ids: renaming `Table` replaces (and, with RETAIN, orphans) the table.
 */
export class Approvals extends Construct {
  /** pk = `<accountId>#<keyId>`, sk = `APPROVAL#<id>` | `REVIEW#<reviewedAt>#<id>`; GSI byAccount. */
  public readonly table: dynamodb.Table;
  /** The role approvers assume to run the approval commands. */
  public readonly approverRole: iam.Role;

  constructor(scope: Construct, id: string, props: ApprovalsProps) {
    super(scope, id);

    // The CLI identifies an approver through the role session's name (what it compares with a key's owner and
    // creator to refuse self-approval), so the session name must not be the caller's choice: only an IAM user may
    // assume the role, and only under its own user name. (Principals without a user name, such as IAM Identity
    // Center sessions, are listed in `approvers` and write directly: their session name is set by AWS.)
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, resolved by IAM, not by JavaScript
    const ownName = { StringEquals: { 'sts:RoleSessionName': '${aws:username}' } };
    const [first, ...rest] = props.approvers;
    this.approverRole = new iam.Role(this, 'ApproverRole', {
      assumedBy: (first ? new iam.ArnPrincipal(first) : new iam.AccountRootPrincipal()).withConditions(
        ownName,
      ),
      description:
        'Bedrock Key Guard approvers: keyguard approve / review / approvals (write approvals, append audit decisions)',
    });
    for (const arn of rest) {
      this.approverRole.assumeRolePolicy?.addStatements(
        new iam.PolicyStatement({
          actions: ['sts:AssumeRole'],
          principals: [new iam.ArnPrincipal(arn)],
          conditions: ownName,
        }),
      );
    }

    const allowedWriters = [this.approverRole.roleArn, ...props.approvers];
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
            sid: 'OnlyApproversWriteApprovals',
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: [...APPROVAL_WRITE_ACTIONS],
            resources: ['*'],
            conditions: { ArnNotEquals: { 'aws:PrincipalArn': allowedWriters } },
          }),
          new iam.PolicyStatement({
            sid: 'NobodyDeletesApprovals',
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: [...APPROVAL_DELETE_ACTIONS],
            resources: ['*'],
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

    // The approver's permissions, action by action (sts:GetCallerIdentity needs no permission). No Scan, no
    // DeleteItem, nothing on the keys table but GetItem, on the decisions table only what appending
    // a decision to its hash chain needs (DECISIONS_APPEND_ACTIONS).
    const indexArn = `${this.table.tableArn}/index/${APPROVALS_BY_ACCOUNT_INDEX}`;
    this.approverRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteAndReadApprovals',
        actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        resources: [this.table.tableArn],
      }),
    );
    this.approverRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'FindApprovalsByAccount',
        actions: ['dynamodb:Query'],
        resources: [indexArn],
      }),
    );
    this.approverRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadKeyOwnerAndCreator',
        actions: ['dynamodb:GetItem'],
        resources: [props.keysTable.tableArn],
      }),
    );
    this.approverRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'AppendAuditDecisions',
        // As every writer of the decisions table: conditional puts of a decision and its chain link, after reading
        // the chain's head (Query) and, for a redelivered decision, the one on record (GetItem).
        actions: DECISIONS_APPEND_ACTIONS,
        resources: [props.decisionsTable.tableArn],
      }),
    );
  }
}
