import type { AddressInfo } from 'node:net';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ensureTables } from '../../lambda/adapters/embedded-dynamodb';
import { usageTableDefinition } from '../../lambda/adapters/usage-store';

interface Server {
  listen(port: number, host: string, cb: () => void): void;
  close(cb: () => void): void;
  address(): AddressInfo;
}
// dynalite ships no types (as in lambda/adapters/embedded-dynamodb.ts).
const dynalite = require('dynalite') as (o: Record<string, unknown>) => Server;

describe('ensureTables', () => {
  it('returns only once every table is ACTIVE (dynalite creates tables asynchronously)', async () => {
    // Prepare: a dynalite that keeps new tables CREATING for 300 ms, as DynamoDB does for longer
    const server = dynalite({ createTableMs: 300 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const { port } = server.address();
    const client = new DynamoDBClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    try {
      // Act
      await ensureTables(client, [usageTableDefinition('t-usage')]);
      const status = (await client.send(new DescribeTableCommand({ TableName: 't-usage' }))).Table
        ?.TableStatus;
      // Act again: an existing table is kept (a persisted store is reused) and still awaited
      await ensureTables(client, [usageTableDefinition('t-usage')]);

      // Assess
      expect(status).toBe('ACTIVE');
    } finally {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
