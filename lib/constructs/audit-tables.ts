import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** Name of the decisions table's GSI that lists an owner's decisions by time. */
export const BY_OWNER_INDEX = 'byOwner';
/** Sparse GSI over chain links (lambda/adapters/audit-store.ts): what the digest function reads. */
export const BY_CHAIN_HOUR_INDEX = 'byChainHour';

/**
 * What every writer of the decisions table is granted (lambda/adapters/audit-store.ts `recordDecision`): GetItem
 * (the decision on record when one is redelivered), Query (the head of the key's hash chain; when a chain starts,
 * the ids already in the key's partition) and PutItem, always conditional on the item not existing (a decision, a
 * chain link). Never UpdateItem or DeleteItem.
 */
export const DECISIONS_APPEND_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'];

/**
 * Item-level actions the decisions table's resource policy denies to every principal, the product's own roles and
 * the account's administrators included: nothing updates or deletes a decision or a chain link.
 * - UpdateItem, DeleteItem and their PartiQL forms change or remove an item in place.
 * - BatchWriteItem carries puts and deletes in one IAM action, with no condition key telling them apart, so it
 *   is denied whole: the product never batch-writes this table (every write is a single conditional PutItem).
 * PutItem cannot be denied "unless conditional": IAM has no condition key for a ConditionExpression. Every writer
 * here sends `attribute_not_exists(pk)`; an unconditional overwrite by someone else's PutItem is what the hash
 * chain (and the signed digests) detect. DeleteTable is stopped by deletion protection, not by this policy, so
 * CloudFormation keeps managing the table.
 */
export const DECISIONS_DENIED_ACTIONS = [
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PartiQLUpdate',
  'dynamodb:PartiQLDelete',
];

export interface AuditTablesProps {
  /**
   * Removal policy of the idempotency table. It only holds short-lived in-flight records (TTL `expiration`),
   * so it may be destroyed with the stack; the audit tables are always retained.
   * @default RemovalPolicy.DESTROY
   */
  readonly idempotencyRemovalPolicy?: RemovalPolicy;
  /**
   * Whether key usage is tracked (`usage.regions` is not empty): only then is the usage table created, so a
   * stack without usage tracking keeps exactly its previous resources.
   * @default false
   */
  readonly usageTracking?: boolean;
}

/**
 * The audit store: an append-only decisions table, the current state per key, the Powertools idempotency
 * table and, with usage tracking, the usage table. All on-demand, point-in-time recovery on, encrypted with the AWS managed key for DynamoDB
 * (`aws/dynamodb`: every caller needs only DynamoDB permissions, no key grants).
 *
 * Construct ids are part of the tables' logical ids: renaming one replaces (and, with RETAIN, orphans) a table.
 */
export class AuditTables extends Construct {
  /**
   * Append-only record of every decision: pk = `<accountId>#<keyId>`, sk = decisionId; and each key's hash chain:
   * pk = `chain#<accountId>#<keyId>`, sk = sequence number. Its resource policy denies DECISIONS_DENIED_ACTIONS
   * to everyone.
   */
  public readonly decisions: dynamodb.Table;
  /** Current state per key: pk = accountId, sk = keyId. */
  public readonly keys: dynamodb.Table;
  /** Powertools idempotency persistence: pk = id, TTL attribute `expiration`. */
  public readonly idempotency: dynamodb.Table;
  /**
   * Last use per subject (flow 3), only with usage tracking: pk = accountId, sk = subject
   * (`key#<keyId>` | `user#<userName>` | `principal#<arn>` | `meta#tracking`; lambda/adapters/usage-store.ts).
   * Retained and protected: it is the evidence behind UNUSED, and its `meta#tracking` item dates the start of
   * tracking, so losing it would restart every key's idle clock.
   */
  public readonly usage?: dynamodb.Table;

  constructor(scope: Construct, id: string, props: AuditTablesProps = {}) {
    super(scope, id);

    const common = {
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
    } as const;

    this.decisions = new dynamodb.Table(this, 'DecisionsTable', {
      ...common,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      removalPolicy: RemovalPolicy.RETAIN,
      deletionProtection: true,
      // Every new decision and chain link is exported to the Object Lock archive (AuditIntegrity).
      stream: dynamodb.StreamViewType.NEW_IMAGE,
      // `Resource: *` means this table: a resource policy cannot name its own table's ARN (circular reference).
      resourcePolicy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'NobodyUpdatesOrDeletesDecisions',
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: DECISIONS_DENIED_ACTIONS,
            resources: ['*'],
          }),
        ],
      }),
    });
    this.decisions.addGlobalSecondaryIndex({
      indexName: BY_OWNER_INDEX,
      partitionKey: { name: 'ownerKey', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'decidedAt', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    this.decisions.addGlobalSecondaryIndex({
      indexName: BY_CHAIN_HOUR_INDEX,
      partitionKey: { name: 'chainHour', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'chainedAt', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: ['seq', 'hash', 'decisionId'],
    });

    this.keys = new dynamodb.Table(this, 'KeysTable', {
      ...common,
      partitionKey: { name: 'accountId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'keyId', type: dynamodb.AttributeType.STRING },
      removalPolicy: RemovalPolicy.RETAIN,
      deletionProtection: true,
    });

    const idempotencyRemoval = props.idempotencyRemovalPolicy ?? RemovalPolicy.DESTROY;
    this.idempotency = new dynamodb.Table(this, 'IdempotencyTable', {
      ...common,
      partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: 'expiration',
      removalPolicy: idempotencyRemoval,
      // Deletion protection would make DESTROY fail; keep it on whenever the table is meant to survive.
      deletionProtection: idempotencyRemoval !== RemovalPolicy.DESTROY,
    });

    if (props.usageTracking) {
      this.usage = new dynamodb.Table(this, 'UsageTable', {
        ...common,
        partitionKey: { name: 'accountId', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'subject', type: dynamodb.AttributeType.STRING },
        removalPolicy: RemovalPolicy.RETAIN,
        deletionProtection: true,
      });
    }
  }
}
