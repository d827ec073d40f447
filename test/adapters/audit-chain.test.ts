import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { chainPk, DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { chainHash, GENESIS_HASH, verifyKeyChain } from '../../lambda/domain/audit-chain';
import type { Decision } from '../../lambda/domain/types';
import { startTestDynamo, TABLES } from '../support/dynamo';

const ACCOUNT = '111122223333';

function decision(keyId: string, n: number, over: Partial<Decision> = {}): Decision {
  const at = new Date(Date.UTC(2026, 10, 20, 9, 0, n)).toISOString();
  return {
    decisionId: `${at}/event/e-${keyId}-${n}`,
    decidedAt: at,
    keyId,
    userName: 'svc-chatbot',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: { kind: 'event', eventId: `e-${keyId}-${n}`, eventName: 'CreateServiceSpecificCredential' },
    createdAt: '2026-11-20T09:00:00.000Z',
    expiresAt: null,
    neverExpires: true,
    owner: { value: 'team-chat@example.com', source: 'tag' },
    violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'the key has no expiration date' }],
    action: 'NOTIFY',
    applied: false,
    mode: 'audit',
    deadline: null,
    policyVersion: 'p-000000000000',
    ...over,
  };
}

let db: EmbeddedDynamo;
let audit: DynamoAuditLog;

beforeAll(async () => {
  db = await startTestDynamo();
  audit = new DynamoAuditLog(db.doc, TABLES);
});
afterAll(async () => db.close());

describe('DynamoAuditLog: the hash chain per key', () => {
  it('links each decision to the previous one of its key; the hashes recompute from the items as read back', async () => {
    const keyId = 'ACCACHAINKEY000000001';
    for (let n = 0; n < 3; n++) await audit.recordDecision(decision(keyId, n));

    const links = await audit.chainLinks(ACCOUNT, keyId);
    const items = await audit.decisionItems(ACCOUNT, keyId);

    expect(links.map((l) => l.seq)).toEqual([1, 2, 3]);
    expect(links[0]?.prevHash).toBe(GENESIS_HASH);
    expect(links[1]?.prevHash).toBe(links[0]?.hash);
    expect(links[2]?.prevHash).toBe(links[1]?.hash);
    const first = items.find((i) => i.sk === links[0]?.decisionId);
    expect(first).toBeDefined();
    expect(links[0]?.legacy).toEqual([]);
    expect(chainHash(1, String(links[0]?.decisionId), GENESIS_HASH, first ?? { sk: '' }, [])).toBe(
      links[0]?.hash,
    );
    expect(verifyKeyChain(links, items).problems).toEqual([]);
  });

  it('a redelivered decision is neither stored nor chained twice', async () => {
    const keyId = 'ACCACHAINKEY000000002';
    const d = decision(keyId, 0);

    await audit.recordDecision(d);
    const again = await audit.recordDecision({ ...d, action: 'DEACTIVATE' });

    expect(again).toEqual({ decision: d, duplicate: true });
    expect(await audit.chainLinks(ACCOUNT, keyId)).toHaveLength(1);
  });

  it('concurrent writers of one key each get their own sequence number, with no gap and no fork', async () => {
    const keyId = 'ACCACHAINKEY000000003';
    const ds = Array.from({ length: 12 }, (_, n) => decision(keyId, n));

    await Promise.all(ds.map((d) => audit.recordDecision(d)));

    const links = await audit.chainLinks(ACCOUNT, keyId);
    expect(links.map((l) => l.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(new Set(links.map((l) => l.decisionId)).size).toBe(12);
    const report = verifyKeyChain(links, await audit.decisionItems(ACCOUNT, keyId));
    expect(report.problems).toEqual([]);
  });

  it('concurrent deliveries of the same decision leave one decision and a chain that verifies', async () => {
    const keyId = 'ACCACHAINKEY000000004';
    const d = decision(keyId, 0);

    const results = await Promise.all(Array.from({ length: 6 }, () => audit.recordDecision(d)));

    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    const links = await audit.chainLinks(ACCOUNT, keyId);
    expect(links.length).toBeGreaterThanOrEqual(1);
    const report = verifyKeyChain(links, await audit.decisionItems(ACCOUNT, keyId));
    expect(report.problems).toEqual([]);
  });

  it('a decision stored by an attempt that stopped before chaining it is chained on redelivery', async () => {
    const keyId = 'ACCACHAINKEY000000005';
    await audit.recordDecision(decision(keyId, 0));
    const stranded = decision(keyId, 1);
    // As recordDecision's first write would have left it, had the process died before the link.
    await db.doc.send(
      new PutCommand({
        TableName: TABLES.decisionsTable,
        Item: {
          pk: `${ACCOUNT}#${keyId}`,
          sk: stranded.decisionId,
          ownerKey: 'team-chat@example.com',
          ...stranded,
        },
      }),
    );
    const before = verifyKeyChain(
      await audit.chainLinks(ACCOUNT, keyId),
      await audit.decisionItems(ACCOUNT, keyId),
    );
    expect(before.problems.map((p) => p.kind)).toEqual(['unchained']);

    const again = await audit.recordDecision(stranded);

    expect(again.duplicate).toBe(true);
    const links = await audit.chainLinks(ACCOUNT, keyId);
    expect(links.map((l) => l.decisionId)).toEqual([decision(keyId, 0).decisionId, stranded.decisionId]);
    expect(verifyKeyChain(links, await audit.decisionItems(ACCOUNT, keyId)).problems).toEqual([]);
  });

  it('keeps links out of every decision read: by key, by owner, and the whole-table scan', async () => {
    const keyId = 'ACCACHAINKEY000000006';
    await audit.recordDecision(decision(keyId, 0));
    await audit.recordDecision(decision(keyId, 1));

    const byKey = await audit.decisionsForKey(ACCOUNT, keyId);
    const found = await audit.findDecisions({ key: { accountId: ACCOUNT, keyId } });
    const all = await audit.findDecisions({});

    expect(byKey).toHaveLength(2);
    expect(found).toHaveLength(2);
    expect(all.every((d) => typeof d.keyId === 'string' && d.trigger !== undefined)).toBe(true);
    expect(all.filter((d) => d.keyId === keyId)).toHaveLength(2);
  });

  it('lists every key on record once, including one whose decisions were all deleted but whose chain remains', async () => {
    const keyId = 'ACCACHAINKEY000000007';
    const d = decision(keyId, 0);
    await audit.recordDecision(d);
    await db.doc.send(
      new DeleteCommand({
        TableName: TABLES.decisionsTable,
        Key: { pk: `${ACCOUNT}#${keyId}`, sk: d.decisionId },
      }),
    );

    const keys = await audit.keysOnRecord();

    expect(keys.filter((k) => k.keyId === keyId)).toEqual([{ accountId: ACCOUNT, keyId }]);
    expect(chainPk(ACCOUNT, keyId)).toBe(`chain#${ACCOUNT}#${keyId}`);
  });
});
