import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
} from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { documentClient } from './document-client';

/**
 * An in-process DynamoDB (dynalite) on loopback, for `keyguard replay` and for tests that need real
 * DynamoDB semantics (conditional writes, GSIs). Never used by the deployed functions.
 * dynalite has no transactions, TTL or streams; nothing here relies on them.
 */

export interface EmbeddedDynamo {
  endpoint: string;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  close(): Promise<void>;
}

interface DynaliteServer {
  listen(port: number, host: string, cb: (err?: Error) => void): void;
  close(cb: (err?: Error) => void): void;
  address(): AddressInfo | string | null;
}

/**
 * dynalite answers a DynamoDB request from the callback of a LevelDB call and throws any error that carries no
 * HTTP status (index.js: `if (err) throw err`): a full disk (`LEVEL_IO_ERROR ... No space left on device`) then
 * kills the process with a stack trace and leaves the store's lock behind. Giving LevelDB's errors a status makes
 * dynalite answer the request with a 500 whose message is LevelDB's, prefixed STORE_IO_PREFIX: the request fails,
 * the caller's error handling runs (the lock is released) and `storeFailure` turns it into a message.
 */
export const STORE_IO_PREFIX = 'embedded store I/O error: ';
const PATCHED = Symbol.for('keyguard.embedded-dynamodb.level-errors');

function withStatus(err: unknown): unknown {
  const e = err as { code?: unknown; message?: unknown; statusCode?: unknown } | null;
  if (e === null || typeof e !== 'object' || e.statusCode !== undefined) return err;
  if (typeof e.code !== 'string' || !e.code.startsWith('LEVEL_')) return err;
  return Object.assign(e, {
    statusCode: 500,
    body: {
      __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
      message: `${STORE_IO_PREFIX}${String(e.message)}`,
    },
  });
}

/** Wraps LevelDB's write and read calls (once per process) so that their errors carry an HTTP status. */
function giveLevelErrorsAStatus(): void {
  // The `level` dynalite itself loads (its dependency), so the class patched is the one it uses.
  const level = require.resolve('level', { paths: [dirname(require.resolve('dynalite'))] });
  const { Level } = require(level) as { Level: { prototype: Record<PropertyKey, unknown> } };
  const proto = Level.prototype;
  if (proto[PATCHED]) return;
  proto[PATCHED] = true;
  for (const name of ['put', 'del', 'get', 'batch'] as const) {
    const original = proto[name] as (...args: unknown[]) => unknown;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      // batch() without arguments is the chained form: synchronous, nothing written yet.
      if (name === 'batch' && args.length === 0) return original.apply(this, args);
      return (original.apply(this, args) as Promise<unknown>).catch((err: unknown) => {
        throw withStatus(err);
      });
    };
  }
}

/**
 * What went wrong when a request failed because the store's disk did (full, read-only, gone): a message naming
 * the cause ("no space left on device"), or null for any other error.
 */
export function storeFailure(err: unknown): string | null {
  const message = (err as { message?: unknown } | null)?.message;
  if (typeof message !== 'string' || !message.includes(STORE_IO_PREFIX)) return null;
  const cause = message.slice(message.indexOf(STORE_IO_PREFIX) + STORE_IO_PREFIX.length);
  if (/ENOSPC|no space left/i.test(cause)) {
    return `no space left on device (${cause}); free some space and run again: what was written before is kept`;
  }
  return `the store's files could not be read or written (${cause})`;
}

/**
 * Starts dynalite on 127.0.0.1 (random port). With `path`, data persists in that folder (LevelDB);
 * without it, data lives in memory.
 */
export async function startEmbeddedDynamo(opts: { path?: string } = {}): Promise<EmbeddedDynamo> {
  // dynalite ships no types; it is loaded lazily so nothing else pays for it.
  const dynalite = require('dynalite') as (o: Record<string, unknown>) => DynaliteServer;
  giveLevelErrorsAStatus();
  if (opts.path) mkdirSync(opts.path, { recursive: true });
  const server = dynalite({ path: opts.path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) =>
    server.listen(0, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
  );
  const addr = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${addr.port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    // dynalite accepts any credentials; fixed ones keep the SDK from searching the machine for real ones.
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
  });
  return {
    endpoint,
    client,
    doc: documentClient(client),
    close: async () => {
      client.destroy();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

/** How long a table just created in the embedded store may take to become ACTIVE (dynalite: a few ms). */
const TABLE_ACTIVE_WAIT_MS = 10_000;

/** A table of the embedded store did not become ACTIVE in time. */
export class EmbeddedTableError extends Error {}

/**
 * Creates the tables unless they already exist (a persisted store is reused across runs), and returns once each
 * is ACTIVE: dynalite creates tables asynchronously even with createTableMs 0, and a read in that window fails
 * with ResourceNotFoundException.
 */
export async function ensureTables(client: DynamoDBClient, tables: CreateTableCommandInput[]): Promise<void> {
  for (const t of tables) {
    try {
      await client.send(new CreateTableCommand(t));
    } catch (err) {
      if (
        !(err instanceof ResourceInUseException) &&
        (err as { name?: string }).name !== 'ResourceInUseException'
      )
        throw err;
    }
  }
  for (const t of tables) await tableActive(client, t.TableName as string);
}

async function tableActive(client: DynamoDBClient, tableName: string): Promise<void> {
  const deadline = Date.now() + TABLE_ACTIVE_WAIT_MS;
  for (;;) {
    const res = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (res.Table?.TableStatus === 'ACTIVE') return;
    if (Date.now() > deadline) {
      throw new EmbeddedTableError(
        `embedded store: table ${tableName} is not ACTIVE after ${TABLE_ACTIVE_WAIT_MS} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}
