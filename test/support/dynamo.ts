import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { approvalsTableDefinition } from '../../lambda/adapters/approvals-store';
import { auditTableDefinitions } from '../../lambda/adapters/audit-store';
import {
  type EmbeddedDynamo,
  ensureTables,
  startEmbeddedDynamo,
} from '../../lambda/adapters/embedded-dynamodb';
import { usageTableDefinition } from '../../lambda/adapters/usage-store';

/** Table names used by tests; each test file gets its own in-memory dynalite. */
export const TABLES = {
  decisionsTable: 'test-decisions',
  keysTable: 'test-keys',
  idempotencyTable: 'test-idempotency',
  approvalsTable: 'test-approvals',
  usageTable: 'test-usage',
};

/**
 * The audit tables and the Powertools idempotency table (partition key `id`), under the given names, and the
 * approvals and usage tables when they are named.
 */
export async function createTestTables(
  db: EmbeddedDynamo,
  names: Omit<typeof TABLES, 'approvalsTable' | 'usageTable'> & {
    approvalsTable?: string;
    usageTable?: string;
  },
): Promise<void> {
  await ensureTables(db.client, [
    ...auditTableDefinitions(names),
    {
      TableName: names.idempotencyTable,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
    },
    ...(names.approvalsTable ? [approvalsTableDefinition(names.approvalsTable)] : []),
    ...(names.usageTable ? [usageTableDefinition(names.usageTable)] : []),
  ]);
}

/** Starts an in-memory dynalite with the audit, approvals, usage and Powertools idempotency tables. */
export async function startTestDynamo(): Promise<EmbeddedDynamo> {
  const db = await startEmbeddedDynamo();
  await createTestTables(db, TABLES);
  return db;
}

/** Every item of a table (all pages). */
export async function scanAll(db: EmbeddedDynamo, table: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const res = await db.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
    out.push(...(res.Items ?? []));
    start = res.LastEvaluatedKey;
  } while (start);
  return out;
}
