import { Logger } from '@aws-lambda-powertools/logger';
import type { LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { DynamoApprovalsStore } from '../../lambda/adapters/approvals-store';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import type { KnownKey } from '../../lambda/domain/pipeline';
import { createApprovalHandler, REQUEST_MAX_BYTES } from '../../lambda/handlers/approval-handler';
import type { ApprovalPolicy } from '../../lambda/handlers/approval-service';
import { createTestTables, scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { fakeLongTermKey, leakedFragments } from '../support/secrets';

/**
 * The approval function (issue 11, item 8): the approver of record is the identity Lambda authenticated, never a
 * value of the request; nobody approves or reviews a key they own or created; listed approvers only.
 */

const ACCOUNT = '111122223333';
const NOW = new Date('2026-11-20T10:00:00.000Z');
const KEY = 'ACCAEXAMPLEKEYAPPROVE';
const USER = 'svc-batch-summarizer';
const CAROL = `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/carol@example.com`;
const BOB_USER = `arn:aws:iam::${ACCOUNT}:user/bob`;

let db: EmbeddedDynamo;
let n = 0;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});

interface World {
  handler: ReturnType<typeof createApprovalHandler>;
  tables: { approvalsTable: string; keysTable: string; decisionsTable: string };
  store: DynamoApprovalsStore;
}

async function world(known: Partial<KnownKey> = {}, policy: Partial<ApprovalPolicy> = {}): Promise<World> {
  n += 1;
  const tables = {
    approvalsTable: `test-approvals-fn-${n}`,
    keysTable: `${TABLES.keysTable}-fn-${n}`,
    decisionsTable: `${TABLES.decisionsTable}-fn-${n}`,
  };
  await createTestTables(db, { ...tables, idempotencyTable: `${TABLES.idempotencyTable}-fn-${n}` });
  await new DynamoAuditLog(db.doc, tables).putKnownKey({
    accountId: ACCOUNT,
    keyId: KEY,
    userName: USER,
    status: 'Active',
    createdAt: '2026-01-10T09:00:00.000Z',
    expiresAt: null,
    creator: BOB_USER,
    owner: 'alice@example.com',
    lastDecisionId: '2026-01-10T09:00:00.000Z/event/e-1',
    lastDecisionAt: '2026-01-10T09:00:05.000Z',
    ...known,
  });
  let id = 0;
  const handler = createApprovalHandler({
    policy: { mode: 'enforce', maxApprovalDays: 365, fallbackOwner: null, approvers: [], ...policy },
    policyVersion: 'p-test',
    governedAccountId: ACCOUNT,
    ...tables,
    doc: db.doc,
    logger: new Logger({ logLevel: 'SILENT' }),
    now: () => NOW,
    newId: () => `id-${n}-${++id}`,
  });
  return { handler, tables, store: new DynamoApprovalsStore(db.doc, tables.approvalsTable) };
}

/** A function URL request as Lambda delivers it, from `caller` (null: no IAM identity). */
function request(body: unknown, caller: string | null, method = 'POST'): LambdaFunctionURLEvent {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/',
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    isBase64Encoded: false,
    body: text,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abc123',
      domainName: 'abc123.lambda-url.us-east-1.on.aws',
      domainPrefix: 'abc123',
      http: { method, path: '/', protocol: 'HTTP/1.1', sourceIp: '203.0.113.9', userAgent: 'keyguard' },
      requestId: 'req-1',
      routeKey: '$default',
      stage: '$default',
      time: '20/Nov/2026:10:00:00 +0000',
      timeEpoch: NOW.getTime(),
      ...(caller
        ? {
            authorizer: {
              iam: {
                accessKey: 'ASIAEXAMPLE',
                accountId: caller.split(':')[4] as string,
                callerId: 'AROAEXAMPLE:session',
                cognitoIdentity: null,
                principalOrgId: 'o-example',
                userArn: caller,
                userId: 'AROAEXAMPLE:session',
              },
            },
          }
        : {}),
    },
  } as LambdaFunctionURLEvent;
}

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

async function call(w: World, body: unknown, caller: string | null = CAROL, method = 'POST'): Promise<Reply> {
  const res = (await w.handler(request(body, caller, method))) as Exclude<LambdaFunctionURLResult, string>;
  return { status: res.statusCode ?? 0, body: JSON.parse(res.body ?? '{}') as Record<string, unknown> };
}

const approve = (over: Record<string, unknown> = {}) => ({
  action: 'approve',
  keyId: KEY,
  reason: 'batch summarizer is migrating to short-term keys; SEC-481',
  until: '2027-01-31',
  covers: ['NEVER_EXPIRES'],
  ...over,
});

describe('approval function: the approver is the authenticated caller', () => {
  it('records the approval and its audit decision under the identity Lambda authenticated', async () => {
    // Prepare
    const w = await world();
    // Act
    const reply = await call(w, approve());
    // Assess
    expect(reply.status).toBe(200);
    const [stored] = await w.store.listApprovals(ACCOUNT, KEY);
    expect(stored).toMatchObject({
      approver: CAROL,
      covers: ['NEVER_EXPIRES'],
      until: '2027-01-31T23:59:59.999Z',
    });
    const decisions = await scanAll(db, w.tables.decisionsTable);
    expect(decisions.some((d) => String(d.reason).includes(`by ${CAROL} waives NEVER_EXPIRES`))).toBe(true);
  });

  it.each([
    ['approver', { approver: 'arn:aws:iam::111122223333:user/someone-else' }],
    ['approvedAt', { approvedAt: '2020-01-01T00:00:00Z' }],
    ['approvalId', { approvalId: 'chosen-id' }],
  ])('refuses a request that names its own %s (400): nothing is written', async (field, extra) => {
    // Prepare
    const w = await world();
    // Act
    const reply = await call(w, approve(extra));
    // Assess
    expect(reply.status).toBe(400);
    expect(reply.body.message).toContain(`unknown key(s) "${field}"`);
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
  });

  it('refuses a request without an IAM identity (a URL without AWS_IAM auth) (403)', async () => {
    const w = await world();
    const reply = await call(w, approve(), null);
    expect(reply).toMatchObject({ status: 403, body: { error: 'refused' } });
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
  });

  it('refuses a caller of another account (403)', async () => {
    const w = await world();
    const reply = await call(w, approve(), 'arn:aws:iam::444455556666:user/mallory');
    expect(reply.status).toBe(403);
    expect(reply.body.message).toContain('not a principal of the governed account 111122223333');
  });

  it('refuses keys of an account the stack does not govern (404)', async () => {
    const w = await world();
    const reply = await call(w, approve({ accountId: '444455556666' }));
    expect(reply).toMatchObject({ status: 404, body: { error: 'not-found' } });
  });
});

describe('approval function: nobody approves or reviews a key they own or created', () => {
  it.each([
    ['the creator (IAM user)', BOB_USER, 'creator'],
    ["the key's own IAM user", `arn:aws:iam::${ACCOUNT}:user/${USER}`, 'IAM user'],
    [
      'the owner (SSO session named as the owner tag)',
      `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_Dev_0123/alice@example.com`,
      'owner',
    ],
  ])('refuses %s (403), for approve and review', async (_who, caller, role) => {
    // Prepare
    const w = await world();
    // Act
    const approved = await call(w, approve(), caller);
    const reviewed = await call(w, { action: 'review', keyId: KEY, note: 'still needed' }, caller);
    // Assess
    for (const reply of [approved, reviewed]) {
      expect(reply.status).toBe(403);
      expect(reply.body.message).toContain(`are the ${role} of key ${KEY}`);
    }
    expect(await w.store.recordsOfKey(ACCOUNT, KEY)).toEqual({ approvals: [], reviews: [] });
  });

  it('refuses a session of the role that created the key under another session name (names are the assumer’s choice)', async () => {
    // Prepare: created by a session of a plain role; the approver assumes the same role as someone else
    const w = await world({ creator: `arn:aws:sts::${ACCOUNT}:assumed-role/Deployer/bob` });
    // Act
    const reply = await call(w, approve(), `arn:aws:sts::${ACCOUNT}:assumed-role/Deployer/not-bob`);
    // Assess
    expect(reply.status).toBe(403);
    expect(reply.body.message).toContain('are the creator');
  });

  it('accepts a colleague in the same IAM Identity Center role (AWS sets those session names)', async () => {
    const w = await world({
      creator: `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/bob@example.com`,
    });
    const reply = await call(w, approve());
    expect(reply.status).toBe(200);
  });
});

describe('approval function: listed approvers', () => {
  const LISTED = `arn:aws:iam::${ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_SecurityAudit_0123456789abcdef`;

  it('admits a session of a listed role (its path dropped, as in a session ARN)', async () => {
    const w = await world({}, { approvers: [LISTED] });
    expect((await call(w, approve())).status).toBe(200);
  });

  it.each([
    ['a principal not listed', `arn:aws:iam::${ACCOUNT}:user/dave`],
    [
      'a user whose name is the listed role’s',
      `arn:aws:iam::${ACCOUNT}:user/AWSReservedSSO_SecurityAudit_0123456789abcdef`,
    ],
    [
      'a session named like the listed role',
      `arn:aws:sts::${ACCOUNT}:assumed-role/Other/AWSReservedSSO_SecurityAudit_0123456789abcdef`,
    ],
  ])('refuses %s (403), for every action', async (_who, caller) => {
    const w = await world({}, { approvers: [LISTED] });
    for (const body of [approve(), { action: 'list' }, { action: 'revoke', approvalId: 'x', reason: 'r' }]) {
      const reply = await call(w, body, caller);
      expect(reply.status).toBe(403);
      expect(reply.body.message).toContain('is not an approver');
    }
  });
});

describe('approval function: revoke, review, list', () => {
  it('revokes once (an audit decision), refuses a second revocation (409) and an unknown id (404)', async () => {
    // Prepare
    const w = await world();
    const first = await call(w, approve());
    const approvalId = (first.body.approval as { approvalId: string }).approvalId;
    // Act
    const revoked = await call(w, { action: 'revoke', approvalId, reason: 'migration done' });
    const again = await call(w, { action: 'revoke', approvalId, reason: 'again' });
    const unknown = await call(w, { action: 'revoke', approvalId: 'nope', reason: 'x' });
    // Assess
    expect(revoked.status).toBe(200);
    expect(revoked.body.approval).toMatchObject({ revokedBy: CAROL, revokeReason: 'migration done' });
    expect(again).toMatchObject({ status: 409, body: { error: 'conflict' } });
    expect(unknown).toMatchObject({ status: 404, body: { error: 'not-found' } });
  });

  it('records a review by the caller and lists approvals with every field', async () => {
    const w = await world();
    await call(w, approve());
    const review = await call(w, { action: 'review', keyId: KEY, note: 'still needed by batch' });
    const list = await call(w, { action: 'list', keyId: KEY });
    expect(review.body).toMatchObject({ action: 'review', reviewer: CAROL, keyId: KEY, userName: USER });
    expect(list.body).toMatchObject({ action: 'list', accountId: ACCOUNT });
    expect(list.body.approvals).toEqual([expect.objectContaining({ approver: CAROL, revokedAt: null })]);
  });
});

describe('approval function: hostile and malformed requests', () => {
  it.each([
    ['not JSON', '{"action":', 'not valid JSON'],
    ['an unknown action', { action: 'delete', keyId: KEY }, 'action'],
    ['an unknown violation code', approve({ covers: ['DROP_TABLE'] }), 'must be a violation code'],
    ['an empty reason', approve({ reason: '   ' }), 'reason: got "   "; allowed: at least 1 character'],
    ['an until beyond maxApprovalDays', approve({ until: '2030-01-01' }), 'more than maxApprovalDays (365)'],
    ['an until without a zone', approve({ until: '2027-01-01T10:00:00' }), 'with a zone'],
    ['a bad account id', approve({ accountId: '12' }), '12-digit account id'],
  ])('answers 400 to %s, naming what is wrong', async (_what, body, expected) => {
    const w = await world();
    const reply = await call(w, body);
    expect(reply.status).toBe(400);
    expect(reply.body.error).toBe('invalid');
    expect(String(reply.body.message)).toContain(expected);
  });

  it('answers 400 to a GET and to a body over the size limit, without parsing it', async () => {
    const w = await world();
    expect((await call(w, approve(), CAROL, 'GET')).status).toBe(400);
    const huge = await call(w, approve({ reason: 'x'.repeat(REQUEST_MAX_BYTES + 1) }));
    expect(huge.status).toBe(400);
    expect(String(huge.body.message)).toContain('allowed: at most 65,536');
  });

  it('stores and answers a reason holding key material only redacted', async () => {
    // Prepare
    const w = await world();
    const key = fakeLongTermKey('approval-reason');
    // Act
    const reply = await call(w, approve({ reason: `pasted by mistake: ${key}` }));
    // Assess
    expect(reply.status).toBe(200);
    const stored = JSON.stringify(await scanAll(db, w.tables.approvalsTable));
    const audit = JSON.stringify(await scanAll(db, w.tables.decisionsTable));
    for (const text of [stored, audit, JSON.stringify(reply.body)]) {
      expect(leakedFragments(text, [key])).toEqual([]);
    }
  });
});
