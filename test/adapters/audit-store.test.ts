import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { BY_OWNER_INDEX, DynamoAuditLog, UnprocessedWritesError } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { verifyKeyChain } from '../../lambda/domain/audit-chain';
import type { Decision } from '../../lambda/domain/types';
import { scanAll, startTestDynamo, TABLES } from '../support/dynamo';

const ACCOUNT = '111122223333';

function decision(over: Partial<Decision> & Pick<Decision, 'decisionId' | 'keyId'>): Decision {
  return {
    decidedAt: over.decisionId.slice(0, 24),
    userName: 'svc-chatbot',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: {
      kind: 'event',
      eventId: over.decisionId.split('/')[2],
      eventName: 'CreateServiceSpecificCredential',
    },
    createdAt: '2026-11-20T09:31:02.000Z',
    expiresAt: null,
    neverExpires: true,
    owner: { value: 'team-chat@example.com', source: 'tag' },
    violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'the key has no expiration date' }],
    action: 'DEACTIVATE',
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

describe('DynamoAuditLog against dynalite', () => {
  it('appends a decision and refuses to overwrite it: a duplicate returns the decision on record', async () => {
    const first = decision({
      decisionId: '2026-11-20T09:31:02.000Z/event/e-1',
      keyId: 'ACCAEXAMPLEKEYAUDIT01',
    });

    const a = await audit.recordDecision(first);
    const b = await audit.recordDecision({ ...first, action: 'ALLOW', violations: [] });

    expect(a).toEqual({ decision: first, duplicate: false });
    expect(b.duplicate).toBe(true);
    expect(b.decision).toEqual(first);
    const stored = (await scanAll(db, TABLES.decisionsTable)).filter(
      (i) => i.keyId === 'ACCAEXAMPLEKEYAUDIT01',
    );
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      action: 'DEACTIVATE',
      pk: `${ACCOUNT}#ACCAEXAMPLEKEYAUDIT01`,
      ownerKey: 'team-chat@example.com',
    });
  });

  it('returns a key’s decisions oldest first, across pages', async () => {
    const keyId = 'ACCAEXAMPLEKEYAUDIT02';
    const times = ['2026-11-22T00:00:00.000Z', '2026-11-20T00:00:00.000Z', '2026-11-21T00:00:00.000Z'];
    for (const [i, t] of times.entries()) {
      // A large detail makes dynalite page the query (1 MB pages), so pagination is exercised for real.
      const big = 'x'.repeat(390_000);
      await audit.recordDecision(
        decision({
          decisionId: `${t}/event/e-${i}`,
          keyId,
          decidedAt: t,
          violations: [{ code: 'MISSING_OWNER', severity: 'medium', detail: big }],
        }),
      );
    }

    const got = await audit.decisionsForKey(ACCOUNT, keyId);

    expect(got.map((d) => d.decidedAt)).toEqual([...times].sort());
    expect(Object.keys(got[0] ?? {})).not.toContain('pk');
  });

  it('finds decisions by owner through the byOwner index, and unowned keys under null', async () => {
    await audit.recordDecision(
      decision({
        decisionId: '2026-11-20T10:00:00.000Z/event/e-o1',
        keyId: 'ACCAEXAMPLEKEYOWNER01',
        owner: { value: 'data-team@example.com', source: 'tag' },
      }),
    );
    await audit.recordDecision(
      decision({
        decisionId: '2026-11-20T11:00:00.000Z/event/e-o2',
        keyId: 'ACCAEXAMPLEKEYOWNER02',
        owner: { value: null, source: 'fallback' },
      }),
    );

    const mine = await audit.decisionsForOwner('data-team@example.com');
    const unowned = await audit.decisionsForOwner(null);

    expect(mine.map((d) => d.keyId)).toEqual(['ACCAEXAMPLEKEYOWNER01']);
    expect(unowned.map((d) => d.keyId)).toEqual(['ACCAEXAMPLEKEYOWNER02']);
    expect(unowned[0]?.owner).toEqual({ value: null, source: 'fallback' });
  });

  it('reads back a decision by id and returns null for an unknown one', async () => {
    const d = decision({ decisionId: '2026-11-20T12:00:00.000Z/event/e-g', keyId: 'ACCAEXAMPLEKEYAUDIT03' });
    await audit.recordDecision(d);

    expect(await audit.getDecision(ACCOUNT, d.keyId, d.decisionId)).toEqual(d);
    expect(await audit.getDecision(ACCOUNT, d.keyId, '2026-11-20T12:00:00.000Z/event/other')).toBeNull();
  });

  it('keeps the current state of a key in the keys table (overwritten on each decision)', async () => {
    const known = {
      accountId: ACCOUNT,
      keyId: 'ACCAEXAMPLEKEYSTATE01',
      userName: 'svc-chatbot',
      status: 'Active' as const,
      createdAt: '2026-11-20T09:31:02.000Z',
      expiresAt: null,
      creator: 'arn:aws:iam::111122223333:user/alice-admin',
      owner: null,
      lastDecisionId: 'd-1',
      lastDecisionAt: '2026-11-20T09:31:05.000Z',
    };

    await audit.putKnownKey(known);
    await audit.putKnownKey({ ...known, status: 'Inactive', lastDecisionId: 'd-2' });

    expect(await audit.getKnownKey(ACCOUNT, known.keyId)).toEqual({
      ...known,
      status: 'Inactive',
      lastDecisionId: 'd-2',
    });
    expect(await audit.getKnownKey(ACCOUNT, 'ACCAEXAMPLEKEYNOTHERE')).toBeNull();
  });
});

describe('DynamoAuditLog.findDecisions: the reads of keyguard audit and report', () => {
  let own: EmbeddedDynamo;
  let log: DynamoAuditLog;
  const A = 'ACCAEXAMPLEFINDKEY01';
  const B = 'ACCAEXAMPLEFINDKEY02';
  const OTHER_ACCOUNT = '444455556666';

  beforeAll(async () => {
    own = await startTestDynamo();
    log = new DynamoAuditLog(own.doc, TABLES);
    const rows: Decision[] = [
      decision({ decisionId: '2026-11-20T09:00:00.000Z/event/f-1', keyId: A, action: 'NOTIFY' }),
      decision({
        decisionId: '2026-11-21T09:00:00.000Z/event/f-2',
        keyId: A,
        action: 'ALLOW',
        violations: [],
      }),
      decision({
        decisionId: '2026-11-22T09:00:00.000Z/event/f-3',
        keyId: A,
        // Decided a while after its trigger (an event delivered late): time filters go by decidedAt.
        decidedAt: '2026-11-23T00:00:00.000Z',
      }),
      decision({
        decisionId: '2026-11-20T12:00:00.000Z/event/f-4',
        keyId: B,
        owner: { value: null, source: 'fallback' },
        violations: [{ code: 'MISSING_OWNER', severity: 'medium', detail: 'no owner tag' }],
        action: 'NOTIFY',
      }),
      decision({
        decisionId: '2026-11-21T12:00:00.000Z/event/f-5',
        keyId: A,
        accountId: OTHER_ACCOUNT,
        owner: { value: 'other@example.com', source: 'tag' },
      }),
    ];
    // Recorded out of order: the result is sorted by decidedAt whatever the table order.
    for (const d of [...rows].reverse()) await log.recordDecision(d);
    await log.putKnownKey({
      accountId: ACCOUNT,
      keyId: A,
      userName: 'svc-chatbot',
      status: 'Active',
      createdAt: null,
      expiresAt: null,
      creator: null,
      owner: 'team-chat@example.com',
      lastDecisionId: 'x',
      lastDecisionAt: '2026-11-23T00:00:00.000Z',
    });
    await log.putKnownKey({
      accountId: OTHER_ACCOUNT,
      keyId: A,
      userName: 'svc-other',
      status: 'Active',
      createdAt: null,
      expiresAt: null,
      creator: null,
      owner: 'other@example.com',
      lastDecisionId: 'y',
      lastDecisionAt: '2026-11-21T12:00:00.000Z',
    });
  });
  afterAll(async () => own.close());

  const ids = (ds: Decision[]) => ds.map((d) => d.decisionId.split('/')[2]);

  it('with no filter scans every decision, sorted by decidedAt, without table attributes', async () => {
    // Act
    const all = await log.findDecisions({});

    // Assess
    expect(ids(all)).toEqual(['f-1', 'f-4', 'f-2', 'f-5', 'f-3']);
    expect(Object.keys(all[0] ?? {})).not.toContain('ownerKey');
  });

  it('by key reads only that key’s partition in that account', async () => {
    // Act
    const got = await log.findDecisions({ key: { accountId: ACCOUNT, keyId: A } });

    // Assess
    expect(ids(got)).toEqual(['f-1', 'f-2', 'f-3']);
  });

  it('by key and time range uses decidedAt, not the trigger time in the sort key (bounds inclusive)', async () => {
    // Act
    const late = await log.findDecisions({
      key: { accountId: ACCOUNT, keyId: A },
      since: new Date('2026-11-22T12:00:00.000Z'),
    });
    const upTo = await log.findDecisions({
      key: { accountId: ACCOUNT, keyId: A },
      until: new Date('2026-11-21T09:00:00.000Z'),
    });

    // Assess
    expect(ids(late)).toEqual(['f-3']);
    expect(ids(upTo)).toEqual(['f-1', 'f-2']);
  });

  it('by owner goes through byOwner; "unowned" finds keys without an owner', async () => {
    // Act
    const team = await log.findDecisions({ owner: 'team-chat@example.com' });
    const unowned = await log.findDecisions({ owner: 'unowned' });
    const teamLate = await log.findDecisions({
      owner: 'team-chat@example.com',
      since: new Date('2026-11-21T00:00:00.000Z'),
      until: new Date('2026-11-22T00:00:00.000Z'),
    });

    // Assess
    expect(ids(team)).toEqual(['f-1', 'f-2', 'f-3']);
    expect(ids(unowned)).toEqual(['f-4']);
    expect(ids(teamLate)).toEqual(['f-2']);
  });

  it('filters by action and violation code, ANDed with everything else', async () => {
    // Act
    const notify = await log.findDecisions({ action: 'NOTIFY' });
    const neverExpires = await log.findDecisions({ code: 'NEVER_EXPIRES' });
    const both = await log.findDecisions({
      code: 'NEVER_EXPIRES',
      action: 'NOTIFY',
      owner: 'team-chat@example.com',
    });
    const none = await log.findDecisions({ code: 'LEAKED' });

    // Assess
    expect(ids(notify)).toEqual(['f-1', 'f-4']);
    expect(ids(neverExpires)).toEqual(['f-1', 'f-5', 'f-3']);
    expect(ids(both)).toEqual(['f-1']);
    expect(none).toEqual([]);
  });

  it('by key and owner: the key’s decisions of that owner only', async () => {
    // Act
    const got = await log.findDecisions({
      key: { accountId: OTHER_ACCOUNT, keyId: A },
      owner: 'team-chat@example.com',
    });

    // Assess
    expect(got).toEqual([]);
  });

  it('names the accounts holding a key id (from the keys table)', async () => {
    // Act
    const accounts = await log.accountsWithKey(A);
    const none = await log.accountsWithKey('ACCAEXAMPLENOTAKEY00');

    // Assess
    expect(accounts).toEqual([OTHER_ACCOUNT, ACCOUNT].sort());
    expect(none).toEqual([]);
  });
});

describe('DynamoAuditLog.findDecisions: which DynamoDB read it makes', () => {
  // Only this instance is mocked: the dynalite tests above keep their real client.
  const doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }),
  );
  const ddb = mockClient(doc);
  const log = new DynamoAuditLog(doc, TABLES);

  beforeEach(() => {
    ddb.reset();
    ddb.on(QueryCommand).resolves({ Items: [] });
    ddb.on(ScanCommand).resolves({ Items: [] });
  });

  it('queries the key’s partition (never a scan), bounding the sort key by --until', async () => {
    // Act
    await log.findDecisions({
      key: { accountId: ACCOUNT, keyId: 'ACCAEXAMPLEKEYQUERY01' },
      until: new Date('2026-11-21T00:00:00.000Z'),
    });

    // Assess
    expect(ddb).toHaveReceivedCommandTimes(ScanCommand, 0);
    expect(ddb).toHaveReceivedCommandWith(QueryCommand, {
      TableName: TABLES.decisionsTable,
      KeyConditionExpression: '#pk = :pk AND #sk <= :skUntil',
      ExpressionAttributeValues: expect.objectContaining({
        ':pk': `${ACCOUNT}#ACCAEXAMPLEKEYQUERY01`,
        ':skUntil': '2026-11-21T00:00:01.000Z',
      }),
    });
  });

  it('queries byOwner with the time range on its range key', async () => {
    // Act
    await log.findDecisions({ owner: 'alice@example.com', since: new Date('2026-11-20T00:00:00.000Z') });

    // Assess
    expect(ddb).toHaveReceivedCommandTimes(ScanCommand, 0);
    expect(ddb).toHaveReceivedCommandWith(QueryCommand, {
      IndexName: BY_OWNER_INDEX,
      KeyConditionExpression: '#owner = :owner AND #at >= :since',
    });
  });

  it('scans the table, filtering in DynamoDB, when neither key nor owner is named', async () => {
    // Act
    await log.findDecisions({ action: 'DEACTIVATE', until: new Date('2026-11-21T00:00:00.000Z') });

    // Assess
    expect(ddb).toHaveReceivedCommandTimes(QueryCommand, 0);
    expect(ddb).toHaveReceivedCommandWith(ScanCommand, {
      TableName: TABLES.decisionsTable,
      FilterExpression: '#at <= :until AND #action = :action',
    });
  });
});

describe('DynamoAuditLog.soleWriter: the store of keyguard replay, written by one process under its lock', () => {
  /** The same writes through an ordinary log and through a sole-writer log, each on its own store. */
  async function twoStores(): Promise<{ plain: EmbeddedDynamo; sole: EmbeddedDynamo }> {
    return { plain: await startTestDynamo(), sole: await startTestDynamo() };
  }
  /** The commands a document client sends, by name. */
  function sent(doc: DynamoDBDocumentClient): string[] {
    const names: string[] = [];
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        names.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize' },
    );
    return names;
  }
  /** Items without the fields that hold the wall-clock time of chaining (and the hashes that cover it). */
  async function items(db: EmbeddedDynamo): Promise<Record<string, unknown>[]> {
    const all: Record<string, unknown>[] = [
      ...(await scanAll(db, TABLES.decisionsTable)),
      ...(await scanAll(db, TABLES.keysTable)).map((k) => ({ table: 'keys', ...k })),
    ];
    return all
      .map(({ chainedAt, hash, prevHash, chainHour, ...rest }) => rest)
      .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  }

  it('writes exactly what the ordinary log writes, and reads nothing per decision on a fresh store', async () => {
    const { plain, sole } = await twoStores();
    try {
      // An earlier run left a decision (chained) and the key's state in both stores.
      const earlier = decision({
        decisionId: '2026-11-20T09:31:02.000Z/event/e-1',
        keyId: 'ACCAEXAMPLEKEYSOLE001',
      });
      const state = {
        accountId: ACCOUNT,
        keyId: earlier.keyId,
        userName: 'svc-chatbot',
        status: 'Active' as const,
        createdAt: '2026-11-20T09:31:02.000Z',
        expiresAt: null,
        creator: null,
        owner: 'team-chat@example.com',
        lastDecisionId: earlier.decisionId,
        lastDecisionAt: earlier.decidedAt,
        lastAction: undefined,
      };
      for (const db of [plain, sole]) {
        const log = new DynamoAuditLog(db.doc, TABLES);
        await log.recordDecision(earlier);
        await log.putKnownKey(state);
      }

      const ordinary = new DynamoAuditLog(plain.doc, TABLES);
      const log = new DynamoAuditLog(sole.doc, TABLES);
      expect(await log.soleWriter()).toEqual(await ordinary.allKnownKeys());
      const requests = sent(sole.doc);
      const later = decision({ decisionId: '2026-11-21T09:31:02.000Z/event/e-2', keyId: earlier.keyId });
      const other = decision({
        decisionId: '2026-11-21T10:00:00.000Z/event/e-3',
        keyId: 'ACCAEXAMPLEKEYSOLE002',
      });
      for (const l of [ordinary, log]) {
        // What the pipeline asks per decision: the key's state, whether the decision is on record, then records.
        expect(await l.getKnownKey(ACCOUNT, earlier.keyId)).toEqual(
          Object.fromEntries(Object.entries(state).filter(([, v]) => v !== undefined)),
        );
        expect(await l.getKnownKey(ACCOUNT, other.keyId)).toBeNull();
        expect(await l.getDecision(ACCOUNT, later.keyId, later.decisionId)).toBeNull();
        expect(await l.getDecision(ACCOUNT, earlier.keyId, earlier.decisionId)).toEqual(earlier);
        expect(await l.recordDecision(later)).toEqual({ decision: later, duplicate: false });
        expect(await l.recordDecision(other)).toEqual({ decision: other, duplicate: false });
        expect(await l.recordDecision(later)).toEqual({ decision: later, duplicate: true });
        await l.putKnownKey({ ...state, keyId: other.keyId, lastDecisionId: other.decisionId });
        expect(await l.getKnownKey(ACCOUNT, other.keyId)).toMatchObject({ lastDecisionId: other.decisionId });
        expect(await l.getDecision(ACCOUNT, other.keyId, other.decisionId)).toEqual(other);
      }
      const during = [...requests];

      expect(await items(sole)).toEqual(await items(plain));
      for (const keyId of [earlier.keyId, other.keyId]) {
        const links = await log.chainLinks(ACCOUNT, keyId);
        expect(verifyKeyChain(links, await log.decisionItems(ACCOUNT, keyId)).problems).toEqual([]);
      }
      // Reads sent: the items of decisions on record, the head of the chain that existed before (once), and the
      // duplicate's chain lookup; every other read was answered from what soleWriter() read. Writes all went to
      // the store, conditions included (the duplicate's put was refused by its condition).
      expect(during.filter((n) => n !== 'PutItemCommand')).toEqual([
        'GetItemCommand',
        'QueryCommand',
        'GetItemCommand',
        'QueryCommand',
        'GetItemCommand',
      ]);
      expect(during.filter((n) => n === 'PutItemCommand')).toHaveLength(6);
    } finally {
      await plain.close();
      await sole.close();
    }
  });
});

describe('DynamoAuditLog.soleWriter({ writeBehind }): keyguard replay’s writes, batched', () => {
  /** Items without the fields that hold the wall-clock time of chaining (and the hashes that cover it). */
  async function items(db: EmbeddedDynamo): Promise<Record<string, unknown>[]> {
    const all: Record<string, unknown>[] = [
      ...(await scanAll(db, TABLES.decisionsTable)),
      ...(await scanAll(db, TABLES.keysTable)).map((k) => ({ table: 'keys', ...k })),
    ];
    return all
      .map(({ chainedAt, hash, prevHash, chainHour, ...rest }) => rest)
      .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  }
  const keyState = (keyId: string, lastDecisionId: string) => ({
    accountId: ACCOUNT,
    keyId,
    userName: 'svc-chatbot',
    status: 'Active' as const,
    createdAt: '2026-11-20T09:31:02.000Z',
    expiresAt: null,
    creator: null,
    owner: 'team-chat@example.com',
    lastDecisionId,
    lastDecisionAt: lastDecisionId.slice(0, 24),
  });
  /** 30 decisions over 3 keys (more than one batch), each followed by its key's state, as the pipeline writes. */
  async function writeSome(log: DynamoAuditLog): Promise<void> {
    for (let i = 0; i < 30; i++) {
      const keyId = `ACCAEXAMPLEKEYBATCH0${i % 3}`;
      const d = decision({
        decisionId: `2026-11-21T10:00:${String(i).padStart(2, '0')}.000Z/event/e-${i}`,
        keyId,
      });
      expect(await log.recordDecision(d)).toEqual({ decision: d, duplicate: false });
      await log.putKnownKey(keyState(keyId, d.decisionId));
    }
  }
  /** A document client whose BatchWriteItem calls go through `batch` (the real client otherwise). */
  function withBatch(
    db: EmbeddedDynamo,
    batch: (cmd: BatchWriteCommand) => Promise<unknown>,
  ): DynamoDBDocumentClient {
    return {
      send: (cmd: unknown) =>
        cmd instanceof BatchWriteCommand ? batch(cmd) : db.doc.send(cmd as QueryCommand),
    } as unknown as DynamoDBDocumentClient;
  }
  async function chainsIntact(log: DynamoAuditLog): Promise<void> {
    for (const k of ['ACCAEXAMPLEKEYBATCH00', 'ACCAEXAMPLEKEYBATCH01', 'ACCAEXAMPLEKEYBATCH02']) {
      const links = await log.chainLinks(ACCOUNT, k);
      expect(links).toHaveLength(10);
      expect(verifyKeyChain(links, await log.decisionItems(ACCOUNT, k)).problems).toEqual([]);
    }
  }

  it('writes nothing until flushed or read, then what the ordinary log writes, in batches of at most 25', async () => {
    const plain = await startTestDynamo();
    const sole = await startTestDynamo();
    try {
      const plainCommands: string[] = [];
      plain.doc.middlewareStack.add(
        (next, context) => async (args) => {
          plainCommands.push(String(context.commandName));
          return next(args);
        },
        { step: 'initialize' },
      );
      await writeSome(new DynamoAuditLog(plain.doc, TABLES));
      // Without writeBehind (the deployed functions: their decisions table denies BatchWriteItem), one put a write.
      expect(plainCommands).not.toContain('BatchWriteItemCommand');
      expect(plainCommands.filter((c) => c === 'PutItemCommand')).toHaveLength(90);
      const batches: number[] = [];
      const doc = withBatch(sole, async (cmd) => {
        batches.push(Object.values(cmd.input.RequestItems ?? {}).flat().length);
        return sole.doc.send(cmd);
      });
      const log = new DynamoAuditLog(doc, TABLES);
      await log.soleWriter({ writeBehind: true });
      await writeSome(log);
      expect(await items(sole)).toEqual([]);
      // A read first writes what is pending: it sees every decision.
      expect(await log.decisionsForKey(ACCOUNT, 'ACCAEXAMPLEKEYBATCH01')).toHaveLength(10);
      // 30 decisions, 30 links, 3 keys (the last state of each).
      expect(batches).toEqual([25, 5, 25, 5, 3]);
      await log.flush();
      expect(batches).toHaveLength(5);
      expect(await items(sole)).toEqual(await items(plain));
      await chainsIntact(log);
    } finally {
      await plain.close();
      await sole.close();
    }
  });

  it('retries the items a batch leaves unprocessed until they are written', async () => {
    const db = await startTestDynamo();
    try {
      const waits: number[] = [];
      let refusals = 2;
      const doc = withBatch(db, async (cmd) => {
        const [table, requests] = Object.entries(cmd.input.RequestItems ?? {})[0] ?? ['', []];
        if (refusals-- <= 0) return db.doc.send(cmd);
        // Throttled: writes the first item only and hands the rest back.
        await db.doc.send(new BatchWriteCommand({ RequestItems: { [table]: requests.slice(0, 1) } }));
        return { UnprocessedItems: { [table]: requests.slice(1) } };
      });
      const log = new DynamoAuditLog(doc, TABLES);
      await log.soleWriter({
        writeBehind: true,
        retryDelayMs: (attempt) => {
          waits.push(attempt);
          return 0;
        },
      });
      await writeSome(log);
      await log.flush();
      expect(waits).toEqual([0, 1]);
      expect(await scanAll(db, TABLES.decisionsTable)).toHaveLength(60);
      expect(await scanAll(db, TABLES.keysTable)).toHaveLength(3);
      await chainsIntact(log);
    } finally {
      await db.close();
    }
  });

  it('reports a batch that fails, or stays unprocessed, and keeps its items pending: nothing is dropped', async () => {
    const db = await startTestDynamo();
    try {
      let mode: 'fail' | 'unprocessed' | 'ok' = 'fail';
      const doc = withBatch(db, async (cmd) => {
        if (mode === 'fail') throw new Error('embedded store I/O error: No space left on device');
        if (mode === 'unprocessed') return { UnprocessedItems: cmd.input.RequestItems };
        return db.doc.send(cmd);
      });
      const log = new DynamoAuditLog(doc, TABLES);
      await log.soleWriter({ writeBehind: true, retryDelayMs: () => 0 });
      await writeSome(log);
      await expect(log.flush()).rejects.toThrow('No space left on device');
      // A read does not answer from a store that misses what was written.
      await expect(log.decisionsForKey(ACCOUNT, 'ACCAEXAMPLEKEYBATCH00')).rejects.toThrow('No space left');
      mode = 'unprocessed';
      await expect(log.flush()).rejects.toThrow(
        `${TABLES.decisionsTable}: 25 item(s) still unprocessed after 8 batch writes`,
      );
      await expect(log.flush()).rejects.toBeInstanceOf(UnprocessedWritesError);
      expect(await scanAll(db, TABLES.decisionsTable)).toEqual([]);
      mode = 'ok';
      await log.flush();
      expect(await scanAll(db, TABLES.decisionsTable)).toHaveLength(60);
      expect(await scanAll(db, TABLES.keysTable)).toHaveLength(3);
      await chainsIntact(log);
    } finally {
      await db.close();
    }
  });
});
