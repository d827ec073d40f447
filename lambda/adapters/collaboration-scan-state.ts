import { ConditionalCheckFailedException, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';

/**
 * The scheduled collaboration scan's state (issue 15 §3), one table: partition key `source` (`slack`), sort key
 * `id`. Per channel (or project, or space) one item holds its high-water mark, the newest message already scanned
 * and reported; the item `#lease` is the run's lease, so two runs (a slow one and the next schedule) never scan the
 * same source at once.
 *
 * Marks only move forward: every write is conditional on the stored mark being older (`markKey < :new`), so a run
 * that started from an older state can neither move a mark back nor, having lost the race, report what another run
 * already reported past it. The lease makes that race rare: it is held for the invocation's whole time (Lambda
 * ends it at its timeout) and taken over only once expired, or by a retry of the same request.
 */

/** The item id of a source's lease (channel, project and space ids never start with `#`). */
export const LEASE_ID = '#lease';

export function collaborationScanStateTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'source', AttributeType: 'S' },
      { AttributeName: 'id', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'source', KeyType: 'HASH' },
      { AttributeName: 'id', KeyType: 'RANGE' },
    ],
  };
}

/** The DynamoDB item actions the adapter calls (the function's grant lists exactly these). */
export const COLLABORATION_STATE_ACTIONS = ['dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];

export interface HighWaterMark {
  /** Channel (project, space) id. */
  id: string;
  /** The newest message ts (or update time) scanned and reported. */
  mark: string;
  /** When it was last moved (ISO). */
  updatedAt: string;
}

/**
 * A Slack ts ("1712345678.000100") as a string whose order is the ts order: seconds padded to 12 digits, micros to 6.
 * Stored beside the mark, so the conditional write compares strings.
 */
export function markKeyOf(ts: string): string {
  const [seconds = '0', micros = ''] = ts.split('.');
  return `${seconds.padStart(12, '0')}.${micros.padEnd(6, '0').slice(0, 6)}`;
}

function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException'
  );
}

export class CollaborationScanState {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    /** `slack` (later `jira`, `confluence`). */
    private readonly source: string,
  ) {}

  /**
   * Takes the source's lease for `holder` (the Lambda request id) until `expiresAt`, unless another holder's lease
   * is still running: then false. A retry of the same request takes its own lease again.
   */
  async acquire(holder: string, now: Date, expiresAt: Date): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            source: this.source,
            id: LEASE_ID,
            holder,
            acquiredAt: now.toISOString(),
            expiresAt: expiresAt.getTime(),
          },
          ConditionExpression: 'attribute_not_exists(id) OR expiresAt < :now OR holder = :holder',
          ExpressionAttributeValues: { ':now': now.getTime(), ':holder': holder },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Ends `holder`'s lease (nothing if another holder took it over). */
  async release(holder: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { source: this.source, id: LEASE_ID },
          UpdateExpression: 'SET expiresAt = :zero',
          ConditionExpression: 'holder = :holder',
          ExpressionAttributeValues: { ':zero': 0, ':holder': holder },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /** Every high-water mark of the source, by id. */
  async marks(): Promise<Map<string, HighWaterMark>> {
    const out = new Map<string, HighWaterMark>();
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#source = :source',
          ExpressionAttributeNames: { '#source': 'source' },
          ExpressionAttributeValues: { ':source': this.source },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) {
        if (item.id === LEASE_ID || typeof item.mark !== 'string') continue;
        out.set(String(item.id), {
          id: String(item.id),
          mark: item.mark,
          updatedAt: String(item.updatedAt),
        });
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /**
   * Moves `id`'s mark forward to `mark`; false (nothing written) when the stored mark is already at or past it,
   * i.e. another run got there first.
   */
  async advance(id: string, mark: string, now: Date, name?: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { source: this.source, id },
          UpdateExpression: `SET mark = :mark, markKey = :key, updatedAt = :now${name ? ', #name = :name' : ''}`,
          ConditionExpression: 'attribute_not_exists(markKey) OR markKey < :key',
          ExpressionAttributeValues: {
            ':mark': mark,
            ':key': markKeyOf(mark),
            ':now': now.toISOString(),
            ...(name ? { ':name': name } : {}),
          },
          ...(name ? { ExpressionAttributeNames: { '#name': 'name' } } : {}),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }
}
