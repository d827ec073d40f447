import { PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import {
  ApprovalAlreadyRevokedError,
  ApprovalExistsError,
  ApprovalNotFoundError,
  approvalsTableDefinition,
  DynamoApprovalsStore,
} from '../../lambda/adapters/approvals-store';
import {
  type EmbeddedDynamo,
  ensureTables,
  startEmbeddedDynamo,
} from '../../lambda/adapters/embedded-dynamodb';
import type { Approval } from '../../lambda/domain/types';
import { scanAll } from '../support/dynamo';

const ACCOUNT = '111122223333';
const OTHER_ACCOUNT = '444455556666';
const APPROVER = 'arn:aws:sts::111122223333:assumed-role/KeyguardApprover/carol@example.com';

let db: EmbeddedDynamo;
let tableNo = 0;

beforeAll(async () => {
  db = await startEmbeddedDynamo();
});
afterAll(async () => db.close());

/** A fresh approvals table per test: no state shared between tests. */
async function freshStore(): Promise<{ store: DynamoApprovalsStore; table: string }> {
  tableNo += 1;
  const table = `test-approvals-${tableNo}`;
  await ensureTables(db.client, [approvalsTableDefinition(table)]);
  return { store: new DynamoApprovalsStore(db.doc, table), table };
}

function approval(over: Partial<Approval> & Pick<Approval, 'approvalId'>): Approval {
  return {
    accountId: ACCOUNT,
    keyId: 'ACCAEXAMPLEKEYAPPROV1',
    covers: ['NEVER_EXPIRES'],
    reason: 'legacy integration; replacement tracked in SEC-123',
    approver: APPROVER,
    approvedAt: '2026-11-20T10:00:00.000Z',
    until: '2027-02-20T23:59:59.999Z',
    revokedAt: null,
    revokedBy: null,
    ...over,
  };
}

describe('DynamoApprovalsStore against dynalite', () => {
  it('stores an approval under pk "<account>#<key>" / sk APPROVAL#<id> and reads it back as an Approval', async () => {
    // Prepare
    const { store, table } = await freshStore();
    const a = approval({ approvalId: 'apv-1' });

    // Act
    await store.putApproval(a);
    const records = await store.recordsFor(ACCOUNT, a.keyId);

    // Assess
    expect(records).toEqual({ approvals: [a], lastReviewAt: null });
    const [item] = await scanAll(db, table);
    expect(item).toMatchObject({
      pk: `${ACCOUNT}#${a.keyId}`,
      sk: 'APPROVAL#apv-1',
      approvalAccount: ACCOUNT,
    });
  });

  it('never overwrites an approval (conditional put)', async () => {
    const { store, table } = await freshStore();
    await store.putApproval(approval({ approvalId: 'apv-1' }));

    await expect(store.putApproval(approval({ approvalId: 'apv-1', covers: 'ALL' }))).rejects.toThrow(
      ApprovalExistsError,
    );

    expect(await scanAll(db, table)).toHaveLength(1);
    expect((await store.recordsFor(ACCOUNT, 'ACCAEXAMPLEKEYAPPROV1')).approvals[0]?.covers).toEqual([
      'NEVER_EXPIRES',
    ]);
  });

  it('revokes once: sets revokedAt/revokedBy/revokeReason; a second revocation and an unknown id are refused', async () => {
    // Prepare
    const { store } = await freshStore();
    await store.putApproval(approval({ approvalId: 'apv-1' }));
    const by = {
      revokedAt: '2026-12-01T08:00:00.000Z',
      revokedBy: 'arn:aws:iam::111122223333:user/dave',
      reason: 'replacement key is live',
    };

    // Act
    const revoked = await store.revokeApproval(ACCOUNT, 'apv-1', by);
    const again = store.revokeApproval(ACCOUNT, 'apv-1', { ...by, revokedAt: '2026-12-02T08:00:00.000Z' });

    // Assess
    expect(revoked).toMatchObject({
      approvalId: 'apv-1',
      revokedAt: by.revokedAt,
      revokedBy: by.revokedBy,
      revokeReason: by.reason,
    });
    await expect(again).rejects.toThrow(ApprovalAlreadyRevokedError);
    await expect(again).rejects.toThrow(
      /already revoked at 2026-12-01T08:00:00.000Z by arn:aws:iam::111122223333:user\/dave/,
    );
    await expect(store.revokeApproval(ACCOUNT, 'apv-404', by)).rejects.toThrow(ApprovalNotFoundError);
    // The approval is still on record, revoked (evaluation sees it, and it waives nothing).
    const [kept] = (await store.recordsFor(ACCOUNT, 'ACCAEXAMPLEKEYAPPROV1')).approvals;
    expect(kept).toMatchObject({ revokedAt: by.revokedAt, revokedBy: by.revokedBy });
  });

  it('finds an approval to revoke only in its own account', async () => {
    const { store } = await freshStore();
    await store.putApproval(approval({ approvalId: 'apv-1' }));

    await expect(
      store.revokeApproval(OTHER_ACCOUNT, 'apv-1', { revokedAt: 'x', revokedBy: 'y', reason: 'z' }),
    ).rejects.toThrow(ApprovalNotFoundError);
  });

  it('yields the newest review as lastReviewAt, reading every page of a large key', async () => {
    // Prepare: ~1.5 MB of reviews, more than one Query page (1 MB), the newest written first.
    const { store } = await freshStore();
    const keyId = 'ACCAEXAMPLEKEYREVIEW1';
    const note = 'n'.repeat(50_000);
    for (let i = 0; i < 30; i++) {
      const day = String(30 - i).padStart(2, '0');
      await store.putReview({
        reviewId: `rev-${i}`,
        accountId: ACCOUNT,
        keyId,
        reviewer: APPROVER,
        reviewedAt: `2026-11-${day}T12:00:00.000Z`,
        note,
      });
    }
    await store.putApproval(approval({ approvalId: 'apv-1', keyId }));

    const send = jest.spyOn(db.doc, 'send');

    // Act
    const records = await store.recordsFor(ACCOUNT, keyId);
    const queries = send.mock.calls.filter(([c]) => c instanceof QueryCommand).length;
    send.mockRestore();
    const all = await store.recordsOfKey(ACCOUNT, keyId);

    // Assess
    expect(records.lastReviewAt).toBe('2026-11-30T12:00:00.000Z');
    expect(records.approvals.map((a) => a.approvalId)).toEqual(['apv-1']);
    expect(all.reviews).toHaveLength(30);
    expect(queries).toBeGreaterThan(1);
  });

  it('ignores malformed items and codes it does not know: an approval never covers more than it names', async () => {
    // Prepare
    const { store, table } = await freshStore();
    const pk = `${ACCOUNT}#ACCAEXAMPLEKEYAPPROV1`;
    await db.doc.send(
      new PutCommand({
        TableName: table,
        Item: { pk, sk: 'APPROVAL#broken', approvalId: 'broken', covers: 'ALL' },
      }),
    );
    await db.doc.send(
      new PutCommand({
        TableName: table,
        Item: {
          pk,
          sk: 'APPROVAL#apv-2',
          ...approval({ approvalId: 'apv-2' }),
          covers: ['NEVER_EXPIRES', 'EVERYTHING'],
        },
      }),
    );

    // Act
    const { approvals } = await store.recordsFor(ACCOUNT, 'ACCAEXAMPLEKEYAPPROV1');

    // Assess
    expect(approvals.map((a) => [a.approvalId, a.covers])).toEqual([['apv-2', ['NEVER_EXPIRES']]]);
  });

  it('lists approvals of a key, of an account (byAccount index) and of every account, oldest first, never reviews', async () => {
    // Prepare
    const { store } = await freshStore();
    await store.putApproval(approval({ approvalId: 'b', approvedAt: '2026-11-22T00:00:00.000Z' }));
    await store.putApproval(
      approval({ approvalId: 'a', keyId: 'ACCAEXAMPLEKEYOTHER01', approvedAt: '2026-11-21T00:00:00.000Z' }),
    );
    await store.putApproval(approval({ approvalId: 'c', accountId: OTHER_ACCOUNT }));
    await store.putReview({
      reviewId: 'r',
      accountId: ACCOUNT,
      keyId: 'ACCAEXAMPLEKEYAPPROV1',
      reviewer: APPROVER,
      reviewedAt: '2026-11-23T00:00:00.000Z',
      note: 'still needed',
    });

    // Act
    const ofKey = await store.listApprovals(ACCOUNT, 'ACCAEXAMPLEKEYAPPROV1');
    const ofAccount = await store.listApprovals(ACCOUNT);
    const everywhere = await store.listApprovals();

    // Assess
    expect(ofKey.map((a) => a.approvalId)).toEqual(['b']);
    expect(ofAccount.map((a) => a.approvalId)).toEqual(['a', 'b']);
    expect(everywhere.map((a) => a.approvalId).sort()).toEqual(['a', 'b', 'c']);
  });
});
