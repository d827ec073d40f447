import { ConditionalCheckFailedException, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';
import { UNOWNED } from '../domain/notice';
import type { AuditLog, KnownKey } from '../domain/pipeline';
import { canonicalDecision, type Decision } from '../domain/types';

/**
 * The audit store: an append-only decisions table and a keys table (current state per key), used by the
 * deployed functions and, against an embedded DynamoDB, by `keyguard replay`.
 *
 * decisions: pk = "<accountId>#<keyId>", sk = decisionId (time-prefixed, so a key's decisions sort
 *   chronologically); GSI byOwner: ownerKey (owner or "unowned") + decidedAt.
 * keys: accountId + keyId.
 */

export interface AuditTableNames {
  decisionsTable: string;
  keysTable: string;
}

export const BY_OWNER_INDEX = 'byOwner';

/** CreateTable inputs matching the deployed tables (the CDK tests check the two agree). */
export function auditTableDefinitions(names: AuditTableNames): CreateTableCommandInput[] {
  return [
    {
      TableName: names.decisionsTable,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'ownerKey', AttributeType: 'S' },
        { AttributeName: 'decidedAt', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: BY_OWNER_INDEX,
          KeySchema: [
            { AttributeName: 'ownerKey', KeyType: 'HASH' },
            { AttributeName: 'decidedAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    },
    {
      TableName: names.keysTable,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'accountId', AttributeType: 'S' },
        { AttributeName: 'keyId', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'accountId', KeyType: 'HASH' },
        { AttributeName: 'keyId', KeyType: 'RANGE' },
      ],
    },
  ];
}

/** A stored item back as a decision (table keys and index attributes dropped). */
function toDecision(item: Record<string, unknown>): Decision {
  return canonicalDecision(item as unknown as Decision);
}

function decisionPk(accountId: string, keyId: string): string {
  return `${accountId}#${keyId}`;
}

export class DynamoAuditLog implements AuditLog {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly names: AuditTableNames,
  ) {}

  async getDecision(accountId: string, keyId: string, decisionId: string): Promise<Decision | null> {
    const res = await this.doc.send(
      new GetCommand({
        TableName: this.names.decisionsTable,
        Key: { pk: decisionPk(accountId, keyId), sk: decisionId },
        ConsistentRead: true,
      }),
    );
    return res.Item ? toDecision(res.Item) : null;
  }

  async recordDecision(decision: Decision): Promise<{ decision: Decision; duplicate: boolean }> {
    const item = {
      pk: decisionPk(decision.accountId, decision.keyId),
      sk: decision.decisionId,
      ownerKey: decision.owner.value ?? UNOWNED,
      ...decision,
    };
    try {
      // Append-only: never overwrite a decision already on record.
      await this.doc.send(
        new PutCommand({
          TableName: this.names.decisionsTable,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return { decision, duplicate: false };
    } catch (err) {
      if (
        !(err instanceof ConditionalCheckFailedException) &&
        (err as { name?: string }).name !== 'ConditionalCheckFailedException'
      ) {
        throw err;
      }
      const existing = await this.getDecision(decision.accountId, decision.keyId, decision.decisionId);
      if (!existing) throw err;
      return { decision: existing, duplicate: true };
    }
  }

  async getKnownKey(accountId: string, keyId: string): Promise<KnownKey | null> {
    const res = await this.doc.send(
      new GetCommand({ TableName: this.names.keysTable, Key: { accountId, keyId }, ConsistentRead: true }),
    );
    return res.Item ? (res.Item as KnownKey) : null;
  }

  async putKnownKey(key: KnownKey): Promise<void> {
    await this.doc.send(new PutCommand({ TableName: this.names.keysTable, Item: { ...key } }));
  }

  /** Every key the store knows (all pages). For the embedded store of `keyguard replay`; a full scan. */
  async allKnownKeys(): Promise<KnownKey[]> {
    const out: KnownKey[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await this.doc.send(
        new ScanCommand({ TableName: this.names.keysTable, ExclusiveStartKey: start, ConsistentRead: true }),
      );
      for (const item of res.Items ?? []) out.push(item as KnownKey);
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /** Every decision about one key, oldest first (all pages). */
  async decisionsForKey(accountId: string, keyId: string): Promise<Decision[]> {
    return this.queryAll({
      TableName: this.names.decisionsTable,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': decisionPk(accountId, keyId) },
    });
  }

  /** Every decision about keys of one owner (`null` for unowned keys), oldest first. */
  async decisionsForOwner(owner: string | null): Promise<Decision[]> {
    return this.queryAll({
      TableName: this.names.decisionsTable,
      IndexName: BY_OWNER_INDEX,
      KeyConditionExpression: 'ownerKey = :o',
      ExpressionAttributeValues: { ':o': owner ?? UNOWNED },
    });
  }

  private async queryAll(input: ConstructorParameters<typeof QueryCommand>[0]): Promise<Decision[]> {
    const out: Decision[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await this.doc.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      for (const item of res.Items ?? []) out.push(toDecision(item));
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }
}
