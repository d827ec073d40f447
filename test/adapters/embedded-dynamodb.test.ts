import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { ensureTables, startEmbeddedDynamo, storeFailure } from '../../lambda/adapters/embedded-dynamodb';
import { usageTableDefinition } from '../../lambda/adapters/usage-store';

const { injectEnospc } = require('../support/level-faults') as {
  injectEnospc: (after: number) => () => void;
};

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

describe('startEmbeddedDynamo: a full disk', () => {
  it('fails the request with a message saying no space is left (no uncaught error), and keeps what was written', async () => {
    // Prepare: a persisted store, one item written, then the disk is full
    const dir = mkdtempSync(join(tmpdir(), 'keyguard-enospc-'));
    const db = await startEmbeddedDynamo({ path: dir });
    let restore = () => {};
    try {
      await ensureTables(db.client, [usageTableDefinition('t-usage')]);
      await db.doc.send(new PutCommand({ TableName: 't-usage', Item: { accountId: 'a', subject: 'kept' } }));
      restore = injectEnospc(0);

      // Act
      const err = await db.doc
        .send(new PutCommand({ TableName: 't-usage', Item: { accountId: 'a', subject: 'lost' } }))
        .then(
          () => null,
          (e: unknown) => e,
        );
      restore();
      const again = await db.doc.send(
        new PutCommand({ TableName: 't-usage', Item: { accountId: 'a', subject: 'after' } }),
      );

      // Assess
      expect(storeFailure(err)).toMatch(
        /^no space left on device \(IO error: .*000003\.log: No space left on device\); free some space/,
      );
      expect(storeFailure(new Error('something else'))).toBeNull();
      expect(again.$metadata.httpStatusCode).toBe(200);
    } finally {
      restore();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
