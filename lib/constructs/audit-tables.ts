import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

/** Name of the decisions table's GSI that lists an owner's decisions by time. */
export const BY_OWNER_INDEX = 'byOwner';

/**
 * What every writer of the decisions table is granted (lambda/adapters/audit-store.ts `recordDecision`): GetItem
 * (the decision on record when one is redelivered), Query (the head of the key's hash chain; when a chain starts,
 * the ids already in the key's partition) and PutItem, always conditional on the item not existing (a decision, a
 * chain link). Never UpdateItem or DeleteItem.
 */
export const DECISIONS_APPEND_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'];

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
  /** Append-only record of every decision: pk = `<accountId>#<keyId>`, sk = decisionId. */
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
    });
    this.decisions.addGlobalSecondaryIndex({
      indexName: BY_OWNER_INDEX,
      partitionKey: { name: 'ownerKey', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'decidedAt', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
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
