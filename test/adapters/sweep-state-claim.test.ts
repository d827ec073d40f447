import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { claimPendingNotice, pendingNotices } from '../../lambda/adapters/sweep-state';
import { NEXT_DIGEST, type PendingNotice } from '../../lambda/domain/owner-digest';
import { startTestDynamo, TABLES } from '../support/dynamo';

/**
 * A notice an event left waiting for the owner's next digest is claimed by a sweep's digest only while it is still
 * the key's waiting notice: a newer one written between the digest's read and its claim is left for the next digest.
 */

const ACCOUNT = '111122223333';
const KEY = 'ACCAEXAMPLEKEYCLAIM01';
let db: EmbeddedDynamo;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});

const waiting = (decisionId: string): PendingNotice => ({
  digest: NEXT_DIGEST,
  decisionId,
  owner: 'team@example.com',
  kind: 'first',
  severity: 'low',
  deadline: null,
  action: 'NOTIFY',
});

async function putKey(keyId: string, pending: PendingNotice): Promise<void> {
  await db.doc.send(
    new PutCommand({
      TableName: TABLES.keysTable,
      Item: { accountId: ACCOUNT, keyId, userName: 'svc', violationCodes: [], pendingNotice: pending },
    }),
  );
}

async function pendingOf(keyId: string): Promise<PendingNotice | undefined> {
  const res = await db.doc.send(
    new GetCommand({ TableName: TABLES.keysTable, Key: { accountId: ACCOUNT, keyId } }),
  );
  return res.Item?.pendingNotice as PendingNotice | undefined;
}

describe('claimPendingNotice', () => {
  it('claims the waiting notice it read for the digest, once', async () => {
    // Prepare
    await putKey(KEY, waiting('2026-11-20T10:00:00.000Z/event/e-1'));
    const [read] = await pendingNotices(db.doc, TABLES.keysTable, ACCOUNT, NEXT_DIGEST);
    // Act
    const first = await claimPendingNotice(
      db.doc,
      TABLES.keysTable,
      { accountId: ACCOUNT, keyId: KEY },
      read?.pending as PendingNotice,
      'digest/sweep-1',
    );
    const again = await claimPendingNotice(
      db.doc,
      TABLES.keysTable,
      { accountId: ACCOUNT, keyId: KEY },
      read?.pending as PendingNotice,
      'digest/sweep-2',
    );
    // Assess
    expect([first, again]).toEqual([true, false]);
    expect(await pendingOf(KEY)).toEqual({
      ...waiting('2026-11-20T10:00:00.000Z/event/e-1'),
      digest: 'digest/sweep-1',
    });
    expect(await pendingNotices(db.doc, TABLES.keysTable, ACCOUNT, NEXT_DIGEST)).toEqual([]);
  });

  it('leaves a newer waiting notice, written after the digest read the older one, for the next digest', async () => {
    // Prepare: the digest read the key's waiting notice, then an event replaced it with a newer one
    const key = `${KEY}B`;
    await putKey(key, waiting('2026-11-20T10:00:00.000Z/event/e-1'));
    const [read] = (await pendingNotices(db.doc, TABLES.keysTable, ACCOUNT, NEXT_DIGEST)).filter(
      (k) => k.keyId === key,
    );
    await putKey(key, waiting('2026-11-20T10:05:00.000Z/event/e-2'));
    // Act
    const claimed = await claimPendingNotice(
      db.doc,
      TABLES.keysTable,
      { accountId: ACCOUNT, keyId: key },
      read?.pending as PendingNotice,
      'digest/sweep-1',
    );
    // Assess
    expect(claimed).toBe(false);
    expect(await pendingOf(key)).toEqual(waiting('2026-11-20T10:05:00.000Z/event/e-2'));
  });
});
