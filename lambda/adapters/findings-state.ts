import { ConditionalCheckFailedException, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { FindingState, RecordState } from '../domain/security-hub';

/**
 * The findings state table (Security Hub findings, issue 16 item 1): one item per finding (`id` = the finding's `Id`)
 * with its `CreatedAt`, the latest decision imported and its record state. BatchImportFindings returns nothing about
 * a finding it holds, so this is how a later decision keeps `CreatedAt` and how an older decision delivered late is
 * told apart from a newer one. Only GetItem and a conditional PutItem: never a scan, never a delete.
 */
export interface FindingsStateStore {
  /** The state of each finding id that has one. */
  get(ids: readonly string[]): Promise<Map<string, FindingState>>;
  /**
   * Records an imported finding. Written only when no newer decision is on record (a concurrent batch may have
   * imported one): returns false then, and the item is left as it is.
   */
  put(state: FindingState): Promise<boolean>;
}

/** The findings state table: partition key `id` (the finding's `Id`), nothing else (the CDK table is the same). */
export function findingsStateTableDefinition(name: string): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
  };
}

export class DynamoFindingsState implements FindingsStateStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(ids: readonly string[]): Promise<Map<string, FindingState>> {
    const out = new Map<string, FindingState>();
    await Promise.all(
      [...new Set(ids)].map(async (id) => {
        const r = await this.doc.send(
          new GetCommand({ TableName: this.tableName, Key: { id }, ConsistentRead: true }),
        );
        const item = r.Item;
        if (
          item &&
          typeof item.createdAt === 'string' &&
          typeof item.updatedAt === 'string' &&
          typeof item.decisionId === 'string'
        ) {
          out.set(id, {
            id,
            createdAt: item.createdAt,
            updatedAt: item.updatedAt,
            decisionId: item.decisionId,
            recordState: (item.recordState === 'ARCHIVED' ? 'ARCHIVED' : 'ACTIVE') as RecordState,
          });
        }
      }),
    );
    return out;
  }

  async put(state: FindingState): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...state },
          ConditionExpression: 'attribute_not_exists(id) OR updatedAt <= :t',
          ExpressionAttributeValues: { ':t': state.updatedAt },
        }),
      );
      return true;
    } catch (err) {
      if (
        err instanceof ConditionalCheckFailedException ||
        (err as Error).name === 'ConditionalCheckFailedException'
      )
        return false;
      throw err;
    }
  }
}
