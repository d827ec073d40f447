import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { parseApprovalsUrl, regionOf } from '../../lambda/adapters/approval-client';
import { DynamoApprovalsStore } from '../../lambda/adapters/approvals-store';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import {
  type ApprovalsDeps,
  runApprove,
  runListApprovals,
  runReview,
  runRevoke,
} from '../../lambda/cli/approvals';
import {
  decideKey,
  type Enforcer,
  type KeyDirectory,
  type KeyStep,
  type KnownKey,
  type Notifier,
  type PipelineDeps,
} from '../../lambda/domain/pipeline';
import type { Decision } from '../../lambda/domain/types';
import { createApprovalHandler } from '../../lambda/handlers/approval-handler';
import type { ApprovalPolicy } from '../../lambda/handlers/approval-service';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { createTestTables, startTestDynamo, TABLES } from '../support/dynamo';
import {
  type FunctionUrlEmulator,
  signedPost,
  startFunctionUrlEmulator,
  type TestIdentity,
} from '../support/function-url-emulator';
import { fakeLongTermKey, leakedFragments } from '../support/secrets';
import { withoutCredentials } from './aws-fakes';
import { captureIO, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

// Load the TypeScript CLI itself (an extension-less import would find the bin/keyguard.js shim).
const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

/*
 * The approval commands run for real against the real approval function (createApprovalHandler, on dynalite
 * tables) behind a loopback emulator of an AWS_IAM function URL that verifies each request's SigV4 signature: the
 * approver of record is the identity whose secret signed the request, exactly as Lambda would report it.
 */

const ACCOUNT = '111122223333';
const NOW = new Date('2026-11-20T10:00:00.000Z');
const KEY = 'ACCAEXAMPLEKEYAPPROVE';
const USER = 'svc-batch-summarizer';
/** A security engineer's SSO session: neither owner nor creator of KEY. */
const CAROL = `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/carol@example.com`;

let db: EmbeddedDynamo;
let n = 0;
let keyCounter = 0;
/** Every principal a test signs as, by ARN; the emulator knows them all. */
const identities = new Map<string, TestIdentity>();
/** Whose credentials the CLI's credential provider returns. */
let caller = CAROL;
const open: Array<{ close(): Promise<void> }> = [];

function identityOf(arn: string): TestIdentity {
  let id = identities.get(arn);
  if (!id) {
    keyCounter += 1;
    const temporary = arn.includes(':assumed-role/');
    id = {
      accessKeyId: `${temporary ? 'ASIA' : 'AKIA'}TESTKEY${String(keyCounter).padStart(8, '0')}`,
      secretAccessKey: `test-secret-${keyCounter}-${'s'.repeat(24)}`,
      ...(temporary ? { sessionToken: `test-session-token-${keyCounter}` } : {}),
      userArn: arn,
      accountId: arn.split(':')[4] as string,
    };
    identities.set(arn, id);
  }
  return id;
}

function callerIs(arn: string): void {
  identityOf(arn);
  caller = arn;
}

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
  removeTempDirs();
});
beforeEach(() => {
  callerIs(CAROL);
});
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

interface World {
  tables: { approvalsTable: string; keysTable: string; decisionsTable: string };
  deps: ApprovalsDeps;
  audit: DynamoAuditLog;
  store: DynamoApprovalsStore;
  fn: FunctionUrlEmulator;
  /** The function URL, as --url. */
  url: string;
  cwd: string;
}

interface WorldOptions {
  known?: Partial<KnownKey>;
  now?: Date;
  policy?: Partial<ApprovalPolicy>;
  /** Table names the function is given but that do not exist (its writes fail). */
  missingTables?: boolean;
}

/** Fresh tables per test (no shared state), a key the keys table knows, and the approval function in front. */
async function world(options: WorldOptions = {}): Promise<World> {
  n += 1;
  const now = options.now ?? NOW;
  const tables = {
    approvalsTable: `test-approvals-cli-${n}`,
    keysTable: `${TABLES.keysTable}-cli-${n}`,
    decisionsTable: `${TABLES.decisionsTable}-cli-${n}`,
  };
  await createTestTables(db, { ...tables, idempotencyTable: `${TABLES.idempotencyTable}-cli-${n}` });
  const audit = new DynamoAuditLog(db.doc, tables);
  await audit.putKnownKey({
    accountId: ACCOUNT,
    keyId: KEY,
    userName: USER,
    status: 'Active',
    createdAt: '2026-01-10T09:00:00.000Z',
    expiresAt: null,
    creator: `arn:aws:iam::${ACCOUNT}:user/bob`,
    owner: 'alice@example.com',
    lastDecisionId: '2026-01-10T09:00:00.000Z/event/e-1',
    lastDecisionAt: '2026-01-10T09:00:05.000Z',
    ...options.known,
  });
  let id = 0;
  const fnTables = options.missingTables
    ? {
        approvalsTable: 'no-such-approvals',
        keysTable: tables.keysTable,
        decisionsTable: 'no-such-decisions',
      }
    : tables;
  const handler = createApprovalHandler({
    policy: { mode: 'enforce', maxApprovalDays: 365, fallbackOwner: null, approvers: [], ...options.policy },
    policyVersion: 'test-policy',
    governedAccountId: ACCOUNT,
    ...fnTables,
    doc: db.doc,
    logger: new Logger({ serviceName: 'keyguard-approval', logLevel: 'SILENT' }),
    now: () => now,
    newId: () => `id-${n}-${++id}`,
  });
  const fn = await startFunctionUrlEmulator({ identities: [...identities.values()], handler });
  open.push(fn);
  const deps: ApprovalsDeps = {
    credentials: async () => {
      const { accessKeyId, secretAccessKey, sessionToken } = identityOf(caller);
      return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
    },
    now: () => now,
  };
  return {
    tables,
    deps,
    audit,
    store: new DynamoApprovalsStore(db.doc, tables.approvalsTable),
    fn,
    url: fn.url,
    cwd: tempDir(),
  };
}

function approveArgs(w: World, over: Record<string, string | undefined> = {}) {
  return {
    url: w.url,
    key: KEY,
    reason: 'batch summarizer is migrating to short-term keys; SEC-481',
    until: '2027-01-31',
    covers: 'NEVER_EXPIRES',
    ...over,
  };
}

// Identities used in the tests below, known to every emulator (which copies the table when it starts).
for (const arn of [
  CAROL,
  `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice@example.com`,
  `arn:aws:sts::${ACCOUNT}:assumed-role/Deployer/ci-run-4242`,
  `arn:aws:iam::${ACCOUNT}:user/bob`,
  `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/dana@example.com`,
  `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_PlatformAdmin_0123456789abcdef/carol@example.com`,
  `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/carol@example.com`,
  `arn:aws:sts::${ACCOUNT}:assumed-role/KeyApprovers/erin@example.com`,
  `arn:aws:iam::${ACCOUNT}:user/dave`,
  `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_SecurityAudit_0123456789abcdef/carol@example.com`,
  `arn:aws:iam::444455556666:user/mallory`,
]) {
  identityOf(arn);
}

describe('keyguard approve', () => {
  it('records the approval and an audit decision, attributed to the identity that signed the request', async () => {
    // Prepare
    const w = await world();
    const out = captureIO(w.cwd);

    // Act
    const code = await runApprove(approveArgs(w), out.io, w.deps);

    // Assess
    expect(out.stderr()).toBe('');
    expect(code).toBe(0);
    const [approval, ...more] = await w.store.listApprovals(ACCOUNT, KEY);
    expect(more).toHaveLength(0);
    expect(approval).toEqual({
      approvalId: `id-${n}-1`,
      accountId: ACCOUNT,
      keyId: KEY,
      covers: ['NEVER_EXPIRES'],
      reason: 'batch summarizer is migrating to short-term keys; SEC-481',
      approver: CAROL,
      approvedAt: NOW.toISOString(),
      until: '2027-01-31T23:59:59.999Z',
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
    });
    const [decision] = await w.audit.decisionsForKey(ACCOUNT, KEY);
    expect(decision).toMatchObject({
      decisionId: `${NOW.toISOString()}/approval/id-${n}-1`,
      decidedAt: NOW.toISOString(),
      keyId: KEY,
      userName: USER,
      accountId: ACCOUNT,
      status: 'Active',
      trigger: { kind: 'approval', eventId: `id-${n}-1`, eventName: 'Approve', eventTime: NOW.toISOString() },
      createdAt: '2026-01-10T09:00:00.000Z',
      expiresAt: null,
      neverExpires: true,
      owner: { value: 'alice@example.com', source: 'tag' },
      violations: [],
      action: 'ALLOW',
      applied: false,
      policyVersion: 'test-policy',
    });
    expect(decision?.reason).toBe(
      `approval id-${n}-1 by ${CAROL} waives NEVER_EXPIRES until 2027-01-31T23:59:59.999Z: ` +
        'batch summarizer is migrating to short-term keys; SEC-481',
    );
    expect(out.stdout()).toBe(
      `Approved key ${KEY} (user ${USER}, account ${ACCOUNT}): NEVER_EXPIRES until 2027-01-31T23:59:59.999Z\n` +
        `  approval id-${n}-1, approver ${CAROL}\n` +
        `  audit decision ${NOW.toISOString()}/approval/id-${n}-1, deployed policy test-policy, mode enforce\n`,
    );
    // What went over the wire: a signed POST naming no approver, with the user's --until as typed.
    expect(w.fn.events).toHaveLength(1);
    const event = w.fn.events[0];
    expect(event?.requestContext.http.method).toBe('POST');
    expect(event?.isBase64Encoded).toBe(false);
    expect(JSON.parse(event?.body ?? '')).toEqual({
      action: 'approve',
      keyId: KEY,
      reason: 'batch summarizer is migrating to short-term keys; SEC-481',
      until: '2027-01-31',
      covers: ['NEVER_EXPIRES'],
    });
    expect(event?.headers.authorization).toMatch(
      new RegExp(`^AWS4-HMAC-SHA256 Credential=${identityOf(CAROL).accessKeyId}/\\d{8}/us-east-1/lambda/`),
    );
  });

  it('covers every code when --covers is omitted, and accepts several codes in any case', async () => {
    const w = await world();

    const all = await runApprove(approveArgs(w, { covers: undefined }), captureIO(w.cwd).io, w.deps);
    const some = await runApprove(
      approveArgs(w, { covers: 'never_expires, MISSING_PURPOSE' }),
      captureIO(w.cwd).io,
      w.deps,
    );

    expect([all, some]).toEqual([0, 0]);
    expect((await w.store.listApprovals(ACCOUNT, KEY)).map((a) => a.covers)).toEqual([
      'ALL',
      ['NEVER_EXPIRES', 'MISSING_PURPOSE'],
    ]);
  });

  it.each([
    [
      'the owner, by email, through an SSO session named after it',
      { owner: 'Alice@Example.com' },
      `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice@example.com`,
      /you \(.*alice@example.com\) are the owner of key ACCAEXAMPLEKEYAPPROVE \(owner Alice@Example.com\)/,
    ],
    [
      'the creator, named as a role (with a path), through a session of that role',
      { creator: `arn:aws:iam::${ACCOUNT}:role/pipelines/Deployer` },
      `arn:aws:sts::${ACCOUNT}:assumed-role/Deployer/ci-run-4242`,
      /are the creator of key .* \(creator arn:aws:iam::111122223333:role\/pipelines\/Deployer\)/,
    ],
    ['the creator, as an IAM user', {}, `arn:aws:iam::${ACCOUNT}:user/bob`, /are the creator of key/],
    [
      'the creator session, from another role (same session name)',
      { creator: `arn:aws:sts::${ACCOUNT}:assumed-role/Developer/dana@example.com` },
      `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/dana@example.com`,
      /are the creator of key/,
    ],
    [
      'another session of the (non-Identity-Center) role that created it: the session name is the assumer’s choice',
      { creator: `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/bob@example.com` },
      `arn:aws:sts::${ACCOUNT}:assumed-role/PlatformAdmin/carol@example.com`,
      /are the creator of key .* \(creator arn:aws:sts::111122223333:assumed-role\/PlatformAdmin\/bob@example.com\)/,
    ],
  ])('refuses approval by %s (exit 2, nothing written)', async (_what, known, by, message) => {
    // Prepare
    const w = await world({ known });
    callerIs(by);
    const out = captureIO(w.cwd);

    // Act
    const code = await runApprove(approveArgs(w), out.io, w.deps);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(message);
    expect(out.stderr()).toContain('ask another approver');
    expect(out.stderr().trimEnd().split('\n')).toHaveLength(1);
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
    expect(await w.audit.decisionsForKey(ACCOUNT, KEY)).toEqual([]);
  });

  it('accepts a colleague in the same IAM Identity Center role as the creator (AWS names those sessions)', async () => {
    const colleague = `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_PlatformAdmin_0123456789abcdef/carol@example.com`;
    const w = await world({
      known: {
        creator: `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_PlatformAdmin_0123456789abcdef/bob@example.com`,
      },
    });
    callerIs(colleague);

    const code = await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);

    expect(code).toBe(0);
    expect((await w.store.listApprovals(ACCOUNT, KEY))[0]?.approver).toBe(colleague);
  });

  it('refuses a caller that config "approvers" does not list, and accepts a session of a listed role', async () => {
    // Prepare
    const approvers = [`arn:aws:iam::${ACCOUNT}:role/KeyApprovers`];
    const w = await world({ policy: { approvers } });
    const refused = captureIO(w.cwd);
    const accepted = captureIO(w.cwd);
    const erin = `arn:aws:sts::${ACCOUNT}:assumed-role/KeyApprovers/erin@example.com`;

    // Act
    const codes = [await runApprove(approveArgs(w), refused.io, w.deps)];
    callerIs(erin);
    codes.push(await runApprove(approveArgs(w), accepted.io, w.deps));

    // Assess
    expect(codes).toEqual([2, 0]);
    expect(refused.stderr()).toBe(
      `keyguard: refused: ${CAROL} is not an approver (config "approvers" lists 1 principal(s))\n`,
    );
    expect((await w.store.listApprovals(ACCOUNT, KEY)).map((a) => a.approver)).toEqual([erin]);
  });

  it('refuses a principal of another account (exit 2)', async () => {
    const w = await world();
    callerIs(`arn:aws:iam::444455556666:user/mallory`);
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { account: ACCOUNT }), out.io, w.deps);

    expect(code).toBe(2);
    expect(out.stderr()).toContain('is not a principal of the governed account 111122223333');
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
  });

  it('refuses a key the keys table does not know, naming key and account (exit 2)', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { key: 'ACCAEXAMPLEKEYUNKNOWN' }), out.io, w.deps);

    expect(code).toBe(2);
    expect(out.stderr()).toContain(`key ACCAEXAMPLEKEYUNKNOWN is not known in account ${ACCOUNT}`);
  });

  it.each([
    ['a past date', '2026-11-19', /--until: 2026-11-19T23:59:59.999Z is not in the future/],
    ['now', NOW.toISOString(), /is not in the future/],
    [
      'more than maxApprovalDays (365) away',
      '2027-11-21',
      /more than maxApprovalDays \(365\) away; the latest allowed is 2027-11-20T10:00:00.000Z/,
    ],
    [
      'a timestamp without a zone',
      '2027-01-31T17:00:00',
      /allowed: a date YYYY-MM-DD .* or an ISO-8601 timestamp with a zone/,
    ],
    ['a non-date', 'next friday', /--until: got "next friday"/],
    ['an impossible date', '2027-02-30', /is not a calendar date/],
  ])('refuses --until that is %s (the function decides, exit 2)', async (_what, until, message) => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { until }), out.io, w.deps);

    expect(code).toBe(2);
    expect(out.stderr()).toMatch(message);
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
  });

  it("takes maxApprovalDays from the deployed function's policy", async () => {
    const w = await world({ policy: { maxApprovalDays: 30 } });
    const tooLong = captureIO(w.cwd);
    const fine = captureIO(w.cwd);

    const refused = await runApprove(approveArgs(w, { until: '2026-12-21' }), tooLong.io, w.deps);
    const accepted = await runApprove(
      approveArgs(w, { until: '2026-12-19T18:00:00+01:00' }),
      fine.io,
      w.deps,
    );

    expect([refused, accepted]).toEqual([2, 0]);
    expect(tooLong.stderr()).toContain('more than maxApprovalDays (30) away');
    expect((await w.store.listApprovals(ACCOUNT, KEY))[0]?.until).toBe('2026-12-19T17:00:00.000Z');
  });

  it('refuses an unknown violation code, listing the allowed ones, without calling the function', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { covers: 'NEVER_EXPIRES,EVERYTHING' }), out.io, w.deps);

    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      '--covers: unknown violation code(s) EVERYTHING; allowed: NEVER_EXPIRES, EXCEEDS_MAX_AGE,',
    );
    expect(out.stderr()).toContain('LONG_TERM_NOT_ALLOWED');
    expect([w.fn.events.length, w.fn.forbidden]).toEqual([0, 0]);
  });

  it('refuses an empty or blank --reason without calling the function', async () => {
    const w = await world();
    const empty = captureIO(w.cwd);
    const blank = captureIO(w.cwd);

    const codes = [
      await runApprove(approveArgs(w, { reason: '' }), empty.io, w.deps),
      await runApprove(approveArgs(w, { reason: '   ' }), blank.io, w.deps),
    ];

    expect(codes).toEqual([2, 2]);
    expect(empty.stderr()).toContain('--reason: must not be empty');
    expect(w.fn.events).toHaveLength(0);
  });

  it('never stores or prints key material pasted into --reason, nor sends it', async () => {
    const w = await world();
    const secret = fakeLongTermKey('approve-reason');
    const out = captureIO(w.cwd);
    const list = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { reason: `rotating ${secret} soon` }), out.io, w.deps);
    await runListApprovals({ url: w.url, json: true }, list.io, w.deps);

    expect(code).toBe(0);
    const stored = JSON.stringify([
      await w.store.listApprovals(ACCOUNT, KEY),
      await w.audit.decisionsForKey(ACCOUNT, KEY),
    ]);
    const sent = JSON.stringify(w.fn.events.map((e) => e.body));
    expect(leakedFragments(stored + sent + out.stdout() + out.stderr() + list.stdout(), [secret])).toEqual(
      [],
    );
    expect(stored).toContain('ABSK…');
    expect(list.stdout()).toContain('ABSK…');
  });
});

describe('the approval function behind its IAM-authenticated URL (raw requests, not the CLI)', () => {
  it('refuses a request body that names an approver (400, unknown key), and records nothing', async () => {
    // Prepare
    const w = await world();
    const body = JSON.stringify({
      action: 'approve',
      keyId: KEY,
      reason: 'trust me',
      until: '2027-01-31',
      covers: 'ALL',
      approver: `arn:aws:iam::${ACCOUNT}:user/the-ciso`,
    });

    // Act
    const res = await signedPost(w.url, body, identityOf(CAROL));

    // Assess
    expect(res.status).toBe(400);
    expect(res.json).toEqual({
      error: 'invalid',
      message: expect.stringContaining('unknown key(s) "approver"'),
    });
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
    expect(await w.audit.decisionsForKey(ACCOUNT, KEY)).toEqual([]);
  });

  it('redacts key material of a request that did not come from the CLI', async () => {
    const w = await world();
    const secret = fakeLongTermKey('raw-reason');
    const body = JSON.stringify({
      action: 'approve',
      keyId: KEY,
      reason: `see ${secret}`,
      until: '2027-01-31',
      covers: 'ALL',
    });

    const res = await signedPost(w.url, body, identityOf(CAROL));

    expect(res.status).toBe(200);
    const stored = JSON.stringify([
      await w.store.listApprovals(ACCOUNT, KEY),
      await w.audit.decisionsForKey(ACCOUNT, KEY),
      res.json,
    ]);
    expect(leakedFragments(stored, [secret])).toEqual([]);
    expect(stored).toContain('ABSK…');
  });

  it('answers Lambda’s 403 to an unsigned request, a wrong secret and an unknown key id, before the function runs', async () => {
    // Prepare
    const w = await world();
    const body = JSON.stringify({ action: 'list' });
    const carol = identityOf(CAROL);

    // Act
    const unsigned = await fetch(w.url, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    const wrongSecret = await signedPost(w.url, body, { ...carol, secretAccessKey: 'not-the-secret' });
    const unknownKey = await signedPost(w.url, body, {
      accessKeyId: 'AKIANOTKNOWNTOAWS000',
      secretAccessKey: 'whatever',
    });
    const good = await signedPost(w.url, body, carol);

    // Assess
    expect([unsigned.status, await unsigned.json()]).toEqual([403, { Message: 'Forbidden' }]);
    expect(wrongSecret).toEqual({ status: 403, json: { Message: 'Forbidden' } });
    expect(unknownKey).toEqual({ status: 403, json: { Message: 'Forbidden' } });
    expect(good.status).toBe(200);
    expect(w.fn.forbidden).toBe(3);
    expect(w.fn.events).toHaveLength(1);
  });
});

describe('keyguard approve: reaching the function', () => {
  it('a request AWS does not accept (wrong secret): exit 2, naming the URL and the ApproverPolicy output, never the credentials', async () => {
    // Prepare
    const w = await world();
    const carol = identityOf(CAROL);
    const out = captureIO(w.cwd);
    const deps: ApprovalsDeps = {
      ...w.deps,
      credentials: async () => ({ ...carol, secretAccessKey: 'wrong-secret-wrong-secret' }),
    };

    // Act
    const code = await runApprove(approveArgs(w), out.io, deps);

    // Assess
    expect(code).toBe(2);
    const err = out.stderr();
    expect(err.trimEnd().split('\n')).toHaveLength(1);
    expect(err).toContain(
      'keyguard: approve: Lambda InvokeFunctionUrl (region us-east-1, default credential chain): access denied ' +
        '(AccessDenied: HTTP 403 Forbidden',
    );
    expect(err).toContain('lambda:InvokeFunctionUrl and lambda:InvokeFunction on the approval function');
    expect(err).toContain("stack's managed policy ApproverPolicy (stack output ApproverPolicyArn)");
    for (const s of [
      'wrong-secret',
      carol.accessKeyId,
      carol.sessionToken ?? '?',
      'AWS4-HMAC',
      'Signature=',
    ]) {
      expect(err + out.stdout()).not.toContain(s);
    }
    expect(w.fn.events).toHaveLength(0);
    expect(await w.store.listApprovals(ACCOUNT, KEY)).toEqual([]);
  });

  it('no --url and no KEYGUARD_APPROVALS_URL: exit 2 with the hint', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { url: undefined }), out.io, w.deps);

    expect(code).toBe(2);
    expect(out.stderr()).toBe(
      'keyguard: --url: no approval function URL; pass --url or set KEYGUARD_APPROVALS_URL to the stack output ' +
        'ApprovalsUrl\n',
    );
  });

  it('refuses a plain-http URL that is not a loopback address, before signing anything (exit 2)', async () => {
    const w = await world();
    const out = captureIO(w.cwd);
    let signedOrSent = 0;
    const deps: ApprovalsDeps = {
      credentials: async () => {
        signedOrSent += 1;
        return identityOf(CAROL);
      },
      fetch: async () => {
        signedOrSent += 1;
        return new Response('{}');
      },
    };

    const code = await runApprove(
      approveArgs(w, { url: 'http://abc123.lambda-url.us-east-1.on.aws/' }),
      out.io,
      deps,
    );

    expect(code).toBe(2);
    expect(out.stderr()).toContain('--url: "http://abc123.lambda-url.us-east-1.on.aws" is not https');
    expect(signedOrSent).toBe(0);
  });

  it('signs for the region of a Lambda function URL, else the fallback; accepts loopback http only', () => {
    expect(regionOf(parseApprovalsUrl('https://abc123def.lambda-url.eu-west-3.on.aws/'), 'us-east-1')).toBe(
      'eu-west-3',
    );
    expect(regionOf(parseApprovalsUrl('https://approvals.example.com/'), 'ap-south-1')).toBe('ap-south-1');
    expect(parseApprovalsUrl('http://127.0.0.1:8080/').port).toBe('8080');
    expect(parseApprovalsUrl('http://[::1]:8080/').hostname).toBe('[::1]');
    expect(() => parseApprovalsUrl('http://10.0.0.1/')).toThrow(/is not https/);
    expect(() => parseApprovalsUrl('https://user:pw@example.com/')).toThrow(/user name or password/);
    expect(() => parseApprovalsUrl('not a url')).toThrow(/is not a URL/);
  });

  it('no AWS credentials: exit 2, one line naming the call, region and profile', async () => {
    const w = await world();
    const out = captureIO(w.cwd);
    const deps: ApprovalsDeps = {
      profile: 'security-approver',
      credentials: async () => {
        const err = new Error('Could not load credentials from any providers');
        err.name = 'CredentialsProviderError';
        throw err;
      },
    };

    // The profile exists (in the config file), without credentials.
    const code = await withoutCredentials(
      () => runApprove(approveArgs(w), out.io, deps),
      '[profile security-approver]\nregion = us-east-1\n',
    );

    expect(code).toBe(2);
    expect(out.stderr()).toMatch(
      /^keyguard: approve: Lambda InvokeFunctionUrl \(region us-east-1, profile security-approver\): no AWS credentials found \(CredentialsProviderError: Could not load credentials from any providers\)\. /,
    );
    expect(out.stderr().trimEnd().split('\n')).toHaveLength(1);
    expect(w.fn.events).toHaveLength(0);
  });

  it('nothing listening at the URL: exit 2 (an AWS failure, as in every command) naming the URL', async () => {
    const w = await world();
    const closed = w.url;
    await w.fn.close();
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w, { url: closed }), out.io, w.deps);

    expect(code).toBe(2);
    const port = new URL(closed).port;
    expect(out.stderr()).toMatch(
      new RegExp(
        `^keyguard: approve: Lambda InvokeFunctionUrl \\(region us-east-1, default credential chain\\): could not reach 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED[^\\n]*\\)\\. Check the network[^\\n]*\\.\\n$`,
      ),
    );
  });

  it('a function that does not answer in time: exit 2 naming the URL (no hang)', async () => {
    // Prepare: a server that reads the request and never answers.
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    open.push({
      close: () =>
        new Promise<void>((resolve) => {
          silent.closeAllConnections();
          silent.close(() => resolve());
        }),
    });
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`;
    const w = await world();
    const out = captureIO(w.cwd);

    // Act
    const code = await runApprove(approveArgs(w, { url }), out.io, { ...w.deps, timeoutMs: 300 });

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(
      new RegExp(
        `^keyguard: approve: Lambda InvokeFunctionUrl \\(region us-east-1, default credential chain\\): could not reach ${url.replace(/\/$/, '').replace(/\./g, '\\.')} \\(TimeoutError[^\\n]*\\n$`,
      ),
    );
  });

  it('an answer longer than Lambda allows is not read to the end: exit 1', async () => {
    const w = await world();
    const out = captureIO(w.cwd);
    const huge = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(1024 * 1024).fill(0x20));
      },
    });
    const deps: ApprovalsDeps = { ...w.deps, fetch: async () => new Response(huge, { status: 200 }) };

    const code = await runApprove(approveArgs(w), out.io, deps);

    expect(code).toBe(1);
    expect(out.stderr()).toContain('the answer is longer than 6,291,456 bytes');
  });

  it('an answer that is not the protocol (HTTP 502): exit 1, its body never shown', async () => {
    const w = await world();
    const out = captureIO(w.cwd);
    const body = '{"Message":"Bad gateway","detail":"\u001b[2J forged ABSK-looking text"}';
    const deps: ApprovalsDeps = { ...w.deps, fetch: async () => new Response(body, { status: 502 }) };

    const code = await runApprove(approveArgs(w), out.io, deps);

    expect(code).toBe(1);
    expect(out.stderr()).toBe(
      `keyguard: the approval function at ${w.url.replace(/\/$/, '')} answered HTTP 502\n`,
    );
  });

  it('the function URL throttled (HTTP 429): exit 2, one throttling line as in every command', async () => {
    const w = await world();
    const out = captureIO(w.cwd);
    const deps: ApprovalsDeps = {
      ...w.deps,
      fetch: async () => new Response('{"Message":"Rate Exceeded."}', { status: 429 }),
    };

    const code = await runApprove(approveArgs(w), out.io, deps);

    expect(code).toBe(2);
    expect(out.stderr()).toMatch(
      /^keyguard: approve: Lambda InvokeFunctionUrl \(region us-east-1, default credential chain\): throttled by AWS \(TooManyRequestsException: HTTP 429 Too Many Requests\)\. Wait a minute and retry[^\n]*\n$/,
    );
  });

  it("the function's internal failure: exit 1 with its request id", async () => {
    const w = await world({ missingTables: true });
    const out = captureIO(w.cwd);

    const code = await runApprove(approveArgs(w), out.io, w.deps);

    expect(code).toBe(1);
    expect(out.stderr()).toMatch(
      /^keyguard: the approval function failed \(request id [0-9a-f-]{36}\): see its log group for that request\n$/,
    );
  });
});

describe('keyguard approvals revoke', () => {
  it('revokes once, with an audit decision; a second revocation is refused (exit 2, conflict)', async () => {
    // Prepare
    const w = await world();
    await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);
    const dave = `arn:aws:iam::${ACCOUNT}:user/dave`;
    callerIs(dave);
    const first = captureIO(w.cwd);
    const second = captureIO(w.cwd);
    const revokeArgs = { url: w.url, approval: `id-${n}-1`, reason: 'replacement key is live' };

    // Act
    const codes = [
      await runRevoke(revokeArgs, first.io, w.deps),
      await runRevoke(revokeArgs, second.io, w.deps),
    ];

    // Assess
    expect(codes).toEqual([0, 2]);
    expect(first.stdout()).toBe(
      `Revoked approval id-${n}-1 of key ${KEY} (account ${ACCOUNT}); its violations apply again\n` +
        `  audit decision ${NOW.toISOString()}/approval/id-${n}-1.revoked, deployed policy test-policy, mode enforce\n`,
    );
    expect(second.stderr()).toBe(
      `keyguard: approval id-${n}-1 was already revoked at ${NOW.toISOString()} by ${dave}\n`,
    );
    const [approval] = await w.store.listApprovals(ACCOUNT, KEY);
    expect(approval).toMatchObject({
      revokedAt: NOW.toISOString(),
      revokedBy: dave,
      revokeReason: 'replacement key is live',
    });
    const decisions = await w.audit.decisionsForKey(ACCOUNT, KEY);
    expect(decisions.map((d) => [d.trigger.kind, d.trigger.eventName, d.action])).toEqual([
      ['approval', 'Approve', 'ALLOW'],
      ['approval', 'RevokeApproval', 'ALLOW'],
    ]);
    expect(decisions[1]?.reason).toBe(
      `approval id-${n}-1 (NEVER_EXPIRES until 2027-01-31T23:59:59.999Z, by ${CAROL}) revoked by ${dave}: replacement key is live`,
    );
  });

  it('refuses an unknown approval id and an empty reason (exit 2)', async () => {
    const w = await world();
    const unknown = captureIO(w.cwd);
    const noReason = captureIO(w.cwd);

    const codes = [
      await runRevoke({ url: w.url, approval: 'nope', reason: 'x' }, unknown.io, w.deps),
      await runRevoke({ url: w.url, approval: 'nope', reason: '' }, noReason.io, w.deps),
    ];

    expect(codes).toEqual([2, 2]);
    expect(unknown.stderr()).toContain('approval nope not found');
    expect(noReason.stderr()).toContain('--reason: must not be empty');
  });
});

describe('keyguard approvals list', () => {
  it('fits the table to a terminal of 100 columns: the approver and reason are cut with …, the ids stay whole', async () => {
    // Prepare
    const w = await world();
    await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);
    const out = captureIO(w.cwd);

    // Act
    const code = await runListApprovals(
      { url: w.url },
      { ...out.io, terminal: { columns: 100, color: false } },
      w.deps,
    );

    // Assess
    expect(code).toBe(0);
    const lines = out.stdout().trimEnd().split('\n');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(100);
    expect(lines[1]).toMatch(new RegExp(`^id-${n}-1\\s+${KEY}\\s+active\\s+`));
    expect(lines[1]).toContain('…');
    expect(lines[1]).not.toContain(CAROL);
  });

  it('prints the account approvals as a table, or one JSON object per line, with their state', async () => {
    // Prepare: one active, one revoked.
    const w = await world();
    await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);
    await runApprove(approveArgs(w, { covers: undefined, until: '2026-12-01' }), captureIO(w.cwd).io, w.deps);
    await runRevoke({ url: w.url, approval: `id-${n}-2`, reason: 'too broad' }, captureIO(w.cwd).io, w.deps);
    const table = captureIO(w.cwd);
    const json = captureIO(w.cwd);

    // Act
    const codes = [
      await runListApprovals({ url: w.url }, table.io, w.deps),
      await runListApprovals({ url: w.url, key: KEY, json: true }, json.io, w.deps),
    ];

    // Assess
    expect(codes).toEqual([0, 0]);
    const lines = table.stdout().trimEnd().split('\n');
    expect(lines[0]).toMatch(/^APPROVAL\s+KEY ID\s+STATE\s+COVERS\s+UNTIL\s+APPROVER\s+REASON$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^id-${n}-1\\s+${KEY}\\s+active\\s+NEVER_EXPIRES\\s+2027-01-31T23:59:59.999Z\\s+${CAROL}\\s+`,
      ),
    );
    expect(lines[2]).toMatch(new RegExp(`^id-${n}-2\\s+${KEY}\\s+revoked\\s+ALL\\s+`));
    expect(lines[2]).toContain(`too broad`);
    expect(lines[2]).toContain(`(revoked by ${CAROL}: too broad)`);
    const objects = json
      .stdout()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(objects.map((o) => [o.approvalId, o.state, o.covers, o.approver])).toEqual([
      [`id-${n}-1`, 'active', ['NEVER_EXPIRES'], CAROL],
      [`id-${n}-2`, 'revoked', 'ALL', CAROL],
    ]);
    expect(Object.keys(objects[0] ?? {})).toEqual([
      'approvalId',
      'accountId',
      'keyId',
      'state',
      'covers',
      'reason',
      'approver',
      'approvedAt',
      'until',
      'revokedAt',
      'revokedBy',
      'revokeReason',
    ]);
  });

  it('shows control and bidi characters of a reason and a user name as escapes (issue 10, item 5)', async () => {
    // Prepare: a user name and an approval reason that try to forge a row, clear the screen and reverse text.
    const w = await world({ known: { userName: `svc\u202eyrots\n${'id-0-9'}  ${KEY}  active  ALL` } });
    const forged = `ok\nid-0-9  ${KEY}  active  ALL  2099-01-01  arn:aws:iam::${ACCOUNT}:user/x  fine\x1b[2J\u202e`;
    const approve = captureIO(w.cwd);
    const review = captureIO(w.cwd);
    const table = captureIO(w.cwd);

    // Act
    const codes = [
      await runApprove(approveArgs(w, { reason: forged }), approve.io, w.deps),
      await runReview({ url: w.url, key: KEY, note: 'n' }, review.io, w.deps),
      await runListApprovals({ url: w.url }, table.io, w.deps),
    ];

    // Assess
    expect(codes).toEqual([0, 0, 0]);
    const raw = /(?!\n)[\p{Cc}\u202a-\u202e\u2066-\u2069]/u;
    for (const out of [approve, review, table]) expect(out.stdout()).not.toMatch(raw);
    const rows = table.stdout().trimEnd().split('\n');
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain(`ok\\nid-0-9  ${KEY}  active  ALL  2099-01-01`);
    expect(rows[1]).toMatch(/fine\\x1b\[2J\\u202e$/);
    expect(approve.stdout()).toContain(`(user svc\\u202eyrots\\nid-0-9  ${KEY}  active  ALL, account`);
    expect(review.stdout().split('\n')[0]).toContain(
      `user svc\\u202eyrots\\nid-0-9  ${KEY}  active  ALL, account`,
    );
  });

  it('says so when there are none', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runListApprovals({ url: w.url }, out.io, w.deps);

    expect(code).toBe(0);
    expect(out.stdout()).toBe(`No approvals in account ${ACCOUNT}.\n`);
  });
});

describe('keyguard review', () => {
  it('records a review and an audit decision, attributed to the signer', async () => {
    const w = await world();
    const out = captureIO(w.cwd);

    const code = await runReview(
      { url: w.url, key: KEY, note: 'still used by the nightly batch' },
      out.io,
      w.deps,
    );

    expect(code).toBe(0);
    expect(await w.store.recordsFor(ACCOUNT, KEY)).toEqual({
      approvals: [],
      lastReviewAt: NOW.toISOString(),
    });
    const [decision] = await w.audit.decisionsForKey(ACCOUNT, KEY);
    expect(decision).toMatchObject({
      decisionId: `${NOW.toISOString()}/review/id-${n}-1`,
      trigger: { kind: 'review', eventName: 'Review', eventId: `id-${n}-1` },
      action: 'ALLOW',
      violations: [],
    });
    expect(decision?.reason).toContain(`reviewed by ${CAROL}`);
    expect(decision?.reason).toContain('still used by the nightly batch');
    expect(out.stdout()).toBe(
      `Reviewed key ${KEY} (user ${USER}, account ${ACCOUNT}) at ${NOW.toISOString()}; reviewer ${CAROL}\n` +
        `  audit decision ${NOW.toISOString()}/review/id-${n}-1, deployed policy test-policy, mode enforce\n`,
    );
  });

  it('refuses a review by the key owner and an empty note (exit 2)', async () => {
    const w = await world({ known: { owner: 'carol@example.com' } });
    const self = captureIO(w.cwd);
    const empty = captureIO(w.cwd);

    const codes = [
      await runReview({ url: w.url, key: KEY, note: 'fine' }, self.io, w.deps),
      await runReview({ url: w.url, key: KEY, note: ' ' }, empty.io, w.deps),
    ];

    expect(codes).toEqual([2, 2]);
    expect(self.stderr()).toContain('are the owner of key');
    expect(self.stderr()).toContain('nobody may review a key they own or created');
    expect(empty.stderr()).toContain('--note: must not be empty');
    expect(await w.store.recordsFor(ACCOUNT, KEY)).toEqual({ approvals: [], lastReviewAt: null });
  });
});

describe('evaluation honours approvals and reviews (decideKey with the approvals store)', () => {
  const config = parseConfig({ mode: 'enforce' });
  const TAGS = { owner: 'alice@example.com', purpose: 'nightly summaries', 'review-cadence': '90d' };

  class RecordingEnforcer implements Enforcer {
    readonly calls: string[] = [];
    async deactivate(_a: string, _u: string, keyId: string): Promise<boolean> {
      this.calls.push(keyId);
      return true;
    }
  }
  const silent: Notifier = { notify: async () => undefined };
  const directory: KeyDirectory = {
    getKey: async () => null,
    listUserKeys: async () => [],
    getUserTags: async () => TAGS,
  };

  function pipeline(w: World): { deps: PipelineDeps; enforcer: RecordingEnforcer } {
    const enforcer = new RecordingEnforcer();
    return { deps: { directory, audit: w.audit, enforcer, notifier: silent, approvals: w.store }, enforcer };
  }

  async function sweepAt(w: World, at: Date, expiresAt: string | null = null): Promise<Decision> {
    const step: KeyStep = {
      accountId: ACCOUNT,
      keyId: KEY,
      userName: USER,
      meta: {
        keyId: KEY,
        userName: USER,
        status: 'Active',
        createdAt: '2026-11-01T00:00:00.000Z',
        expiresAt,
      },
      trigger: { kind: 'sweep', eventTime: at.toISOString() },
      decisionId: `${at.toISOString()}/sweep/s-${at.getTime()}`,
      record: 'always',
    };
    const result = await decideKey(step, pipeline(w).deps, {
      config,
      policyVersion: policyVersion(config),
      now: at,
    });
    if (!result) throw new Error('no decision');
    return result.decision;
  }

  it('an active approval covering NEVER_EXPIRES waives it; once expired or revoked the key is deactivated', async () => {
    // Prepare: approved until the end of 2026-11-30.
    const w = await world();
    expect(await runApprove(approveArgs(w, { until: '2026-11-30' }), captureIO(w.cwd).io, w.deps)).toBe(0);
    const { deps, enforcer } = pipeline(w);
    const at = (iso: string) => new Date(iso);

    // Act + Assess: while active
    const during = await decideKey(
      {
        accountId: ACCOUNT,
        keyId: KEY,
        userName: USER,
        meta: {
          keyId: KEY,
          userName: USER,
          status: 'Active',
          createdAt: '2026-11-01T00:00:00.000Z',
          expiresAt: null,
        },
        trigger: { kind: 'sweep' },
        decisionId: '2026-11-25T00:00:00.000Z/sweep/s-1',
        record: 'always',
      },
      deps,
      { config, policyVersion: policyVersion(config), now: at('2026-11-25T00:00:00.000Z') },
    );
    expect(during?.decision).toMatchObject({ action: 'ALLOW', violations: [], applied: false });
    expect(during?.decision.waived).toEqual([
      expect.objectContaining({ code: 'NEVER_EXPIRES', approvalId: `id-${n}-1` }),
    ]);
    expect(enforcer.calls).toEqual([]);

    // ... and after it expired
    const after = await sweepAt(w, at('2026-12-01T00:00:00.000Z'));
    expect(after).toMatchObject({ action: 'DEACTIVATE', applied: true });
    expect(after.violations.map((v) => v.code)).toEqual(['NEVER_EXPIRES']);
    expect(after.waived).toBeUndefined();
  });

  it('a revoked approval no longer waives anything', async () => {
    const w = await world();
    await runApprove(approveArgs(w), captureIO(w.cwd).io, w.deps);
    const before = await sweepAt(w, new Date('2026-11-20T11:00:00.000Z'));
    await runRevoke(
      { url: w.url, approval: `id-${n}-1`, reason: 'no longer needed' },
      captureIO(w.cwd).io,
      w.deps,
    );

    const after = await sweepAt(w, new Date('2026-11-20T12:00:00.000Z'));

    expect(before.action).toBe('ALLOW');
    expect(after).toMatchObject({ action: 'DEACTIVATE', applied: true });
  });

  it('an approval covering another code does not waive NEVER_EXPIRES', async () => {
    const w = await world();
    await runApprove(approveArgs(w, { covers: 'MISSING_PURPOSE' }), captureIO(w.cwd).io, w.deps);

    const d = await sweepAt(w, new Date('2026-11-20T11:00:00.000Z'));

    expect(d.action).toBe('DEACTIVATE');
  });

  it('a review resets the review clock: REVIEW_OVERDUE goes away', async () => {
    // Prepare: created 2026-11-01 with a 90-day cadence and an expiry in range, so review is the only issue.
    const w = await world({ now: new Date('2027-02-05T09:00:00.000Z') });
    const expiresAt = '2027-02-20T00:00:00.000Z';
    const overdue = await sweepAt(w, new Date('2027-02-05T08:00:00.000Z'), expiresAt);

    // Act
    const code = await runReview(
      { url: w.url, key: KEY, note: 'checked with the team' },
      captureIO(w.cwd).io,
      w.deps,
    );
    const reviewed = await sweepAt(w, new Date('2027-02-05T10:00:00.000Z'), expiresAt);

    // Assess
    expect(code).toBe(0);
    expect(overdue.violations.map((v) => v.code)).toContain('REVIEW_OVERDUE');
    expect(reviewed.violations.map((v) => v.code)).not.toContain('REVIEW_OVERDUE');
  });
});

describe('keyguard CLI wiring', () => {
  it('runs approve from argv with the URL from KEYGUARD_APPROVALS_URL and credentials from the environment', async () => {
    // Prepare: a role session's temporary credentials, through the SDK's own credential chain (no deps given).
    const w = await world();
    const erin = identityOf(`arn:aws:sts::${ACCOUNT}:assumed-role/KeyApprovers/erin@example.com`);
    const saved = { ...process.env };
    for (const v of ['AWS_PROFILE', 'AWS_REGION', 'AWS_DEFAULT_REGION']) delete process.env[v];
    process.env.KEYGUARD_APPROVALS_URL = w.url;
    process.env.AWS_ACCESS_KEY_ID = erin.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = erin.secretAccessKey;
    process.env.AWS_SESSION_TOKEN = erin.sessionToken;
    const out = captureIO(w.cwd);
    let code: number;

    // Act
    try {
      code = await main(
        [
          'node',
          'keyguard',
          'approve',
          '--key',
          KEY,
          '--reason',
          'SEC-481',
          '--until',
          '2027-01-31',
          '--covers',
          'NEVER_EXPIRES',
        ],
        out.io,
      );
    } finally {
      process.env = saved;
    }

    // Assess
    expect(out.stderr()).toBe('');
    expect(code).toBe(0);
    expect((await w.store.listApprovals(ACCOUNT, KEY)).map((a) => a.approver)).toEqual([erin.userArn]);
  });

  it('AWS_PROFILE naming a profile that is not in the config files: exit 2, one line saying so, nothing sent', async () => {
    // Prepare: the SDK's own chain, with empty config files and no instance or container metadata to ask.
    const w = await world();
    const dir = tempDir();
    const saved = { ...process.env };
    for (const v of [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
      'AWS_CONTAINER_CREDENTIALS_FULL_URI',
    ]) {
      delete process.env[v];
    }
    Object.assign(process.env, {
      AWS_PROFILE: 'keyguard-approver',
      AWS_CONFIG_FILE: writeFile(join(dir, 'config'), ''),
      AWS_SHARED_CREDENTIALS_FILE: writeFile(join(dir, 'credentials'), ''),
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    const out = captureIO(w.cwd);
    let code: number;

    // Act
    try {
      code = await main(['node', 'keyguard', 'approvals', 'list', '--url', w.url], out.io);
    } finally {
      process.env = saved;
    }

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(
      /^keyguard: approvals list: Lambda InvokeFunctionUrl \(region us-east-1, profile keyguard-approver\): profile keyguard-approver is not in the AWS config files \(CredentialsProviderError: [^\n]+aws configure list-profiles[^\n]+\n$/,
    );
    expect(w.fn.events.length + w.fn.forbidden).toBe(0);
  });

  it('--url on the command line, and the table and config options are gone', async () => {
    const w = await world();
    const list = captureIO(w.cwd);
    const oldFlag = captureIO(w.cwd);
    const help = captureIO(w.cwd);

    const codes = [
      await main(['node', 'keyguard', 'approvals', 'list', '--url', w.url], list.io, () => w.deps),
      await main(
        ['node', 'keyguard', 'approvals', 'list', '--url', w.url, '--approvals-table', 't'],
        oldFlag.io,
        () => w.deps,
      ),
      await main(['node', 'keyguard', 'approve', '--help'], help.io),
    ];

    expect(codes).toEqual([0, 2, 0]);
    expect(list.stdout()).toBe(`No approvals in account ${ACCOUNT}.\n`);
    expect(oldFlag.stderr()).toContain("unknown option '--approvals-table'");
    expect(help.stdout()).toContain('--url <url>');
    expect(help.stdout()).toContain('ApprovalsUrl');
    expect(help.stdout()).toContain('ApproverPolicy');
    expect(help.stdout()).not.toMatch(/--config|--keys-table|--decisions-table|--approvals-table/);
  });

  it('lists approve, approvals and review in --help, and exits 2 when a required option is missing', async () => {
    const help = captureIO(REPO);
    const missing = captureIO(REPO);

    const codes = [
      await main(['node', 'keyguard', '--help'], help.io),
      await main(['node', 'keyguard', 'approve', '--key', KEY], missing.io),
    ];

    expect(codes).toEqual([0, 2]);
    expect(help.stdout()).toMatch(/approve \[options\]\s+approve a key/);
    expect(help.stdout()).toMatch(/approvals\s+list or revoke approvals/);
    expect(help.stdout()).toMatch(/review \[options\]\s+record a review/);
    expect(missing.stderr()).toContain("required option '--reason <text>' not specified");
  });
});
