import { createHash } from 'node:crypto';
import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { Command, CommanderError } from 'commander';
import { auditTableDefinitions, chainPk, DynamoAuditLog } from '../../lambda/adapters/audit-store';
import {
  type EmbeddedDynamo,
  ensureTables,
  startEmbeddedDynamo,
} from '../../lambda/adapters/embedded-dynamodb';
import { registerAuditCommand } from '../../lambda/cli/audit';
import { registerAuditVerifyCommand, type VerifyDeps } from '../../lambda/cli/audit-verify';
import { REPLAY_TABLES } from '../../lambda/cli/replay';
import { nextLink } from '../../lambda/domain/audit-chain';
import {
  buildDigest,
  checkDigests,
  digestBytes,
  SIGNING_ALGORITHM,
  type SignedDigest,
} from '../../lambda/domain/audit-digest';
import type { Decision } from '../../lambda/domain/types';
import { startTestDynamo, TABLES } from '../support/dynamo';
import { testSigningKey } from '../support/kms-signing';
import { ACCOUNT, captureIO, removeTempDirs, tempDir } from './helpers';

/** `keyguard audit verify …` through commander, as bin/keyguard.ts wires it. */
async function verify(
  args: string[],
  deps: VerifyDeps = NO_AWS,
  cwd = '/',
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = captureIO(cwd);
  let code = 0;
  const setCode = (n: number) => {
    code = n;
  };
  const program = new Command()
    .name('keyguard')
    .configureOutput({ writeOut: (s) => out.io.stdout.write(s), writeErr: (s) => out.io.stderr.write(s) })
    .exitOverride();
  const audit = registerAuditCommand(program, out.io, setCode, () => deps);
  registerAuditVerifyCommand(audit, out.io, setCode, () => deps);
  try {
    await program.parseAsync(['node', 'keyguard', 'audit', 'verify', ...args]);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    code = err.exitCode === 0 ? 0 : 2;
  }
  return { code, stdout: out.stdout(), stderr: out.stderr() };
}

const NO_AWS: VerifyDeps = {
  doc: () => {
    throw new Error('no AWS in this test');
  },
  env: {},
};

function decision(keyId: string, n: number, over: Partial<Decision> = {}): Decision {
  const at = new Date(Date.UTC(2026, 10, 20, 9, 0, n)).toISOString();
  return {
    decisionId: `${at}/event/e-${keyId.slice(-4)}-${n}`,
    decidedAt: at,
    keyId,
    userName: 'svc-chatbot',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: { kind: 'event', eventId: `e-${n}`, eventName: 'CreateServiceSpecificCredential' },
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

const KEY_A = 'ACCAVERIFYKEY00000001';
const KEY_B = 'ACCAVERIFYKEY00000002';

/** A store directory as replay leaves it: two keys, three decisions each, chained. */
async function makeStore(): Promise<string> {
  const dir = tempDir('keyguard-verify-');
  const db = await startEmbeddedDynamo({ path: dir });
  try {
    await ensureTables(db.client, auditTableDefinitions(REPLAY_TABLES));
    const log = new DynamoAuditLog(db.doc, REPLAY_TABLES);
    for (const keyId of [KEY_A, KEY_B])
      for (let n = 0; n < 3; n++) await log.recordDecision(decision(keyId, n));
  } finally {
    await db.close();
  }
  return dir;
}

/** Opens the store directly (as an attacker with write access to it would) and runs `change` on it. */
async function tamper(dir: string, change: (db: EmbeddedDynamo) => Promise<void>): Promise<void> {
  const db = await startEmbeddedDynamo({ path: dir });
  try {
    await change(db);
  } finally {
    await db.close();
  }
}

const T = REPLAY_TABLES.decisionsTable;
const pkOf = (keyId: string) => `${ACCOUNT}#${keyId}`;

afterAll(() => removeTempDirs());

describe('keyguard audit verify on the embedded store', () => {
  it('an untouched store verifies: exit 0, every chained decision counted', async () => {
    const dir = await makeStore();

    const r = await verify(['--store', dir]);

    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Checked: 2 key(s), 6 chained decision(s)');
    expect(r.stdout).toContain('Intact');
  });

  it('a field edited in place is named: key, seq, decision id and the field', async () => {
    const dir = await makeStore();
    const target = decision(KEY_A, 1);
    await tamper(dir, async (db) => {
      await db.doc.send(
        new PutCommand({
          TableName: T,
          Item: {
            pk: pkOf(KEY_A),
            sk: target.decisionId,
            ownerKey: 'team-chat@example.com',
            ...target,
            action: 'ALLOW',
          },
        }),
      );
    });

    const r = await verify(['--store', dir]);

    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`ALTERED: key ${ACCOUNT}/${KEY_A} seq 2 decision ${target.decisionId}`);
    expect(r.stdout).toContain('changed: action');
    expect(r.stdout).toContain(`the first: key ${ACCOUNT}/${KEY_A} seq 2`);
  });

  it('a deleted decision is named as missing, and a deleted link as a gap in the sequence', async () => {
    const dir = await makeStore();
    const gone = decision(KEY_A, 0);
    await tamper(dir, async (db) => {
      await db.doc.send(new DeleteCommand({ TableName: T, Key: { pk: pkOf(KEY_A), sk: gone.decisionId } }));
      await db.doc.send(
        new DeleteCommand({ TableName: T, Key: { pk: chainPk(ACCOUNT, KEY_B), sk: '000000000002' } }),
      );
    });

    const r = await verify(['--store', dir, '--json']);

    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { intact: boolean; problems: Record<string, unknown>[] };
    expect(out.intact).toBe(false);
    expect(out.problems).toEqual([
      expect.objectContaining({ kind: 'missing', keyId: KEY_A, seq: 1, decisionId: gone.decisionId }),
      expect.objectContaining({ kind: 'gap', keyId: KEY_B, seq: 2 }),
      // The decision its link sealed is still there, now outside the chain.
      expect.objectContaining({ kind: 'unchained', keyId: KEY_B, decisionId: decision(KEY_B, 1).decisionId }),
    ]);
  });

  it('a decision appended around the store (no link) is named', async () => {
    const dir = await makeStore();
    const forged = decision(KEY_B, 9, { action: 'ALLOW', violations: [] });
    await tamper(dir, async (db) => {
      await db.doc.send(
        new PutCommand({
          TableName: T,
          Item: { pk: pkOf(KEY_B), sk: forged.decisionId, ownerKey: 'team-chat@example.com', ...forged },
        }),
      );
    });

    const r = await verify(['--store', dir]);

    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`UNCHAINED: key ${ACCOUNT}/${KEY_B} decision ${forged.decisionId}`);
  });

  it('a decision rewritten together with its link (hash recomputed) breaks the next link', async () => {
    const dir = await makeStore();
    const target = decision(KEY_A, 1);
    await tamper(dir, async (db) => {
      const log = new DynamoAuditLog(db.doc, REPLAY_TABLES);
      const links = await log.chainLinks(ACCOUNT, KEY_A);
      const item = {
        pk: pkOf(KEY_A),
        sk: target.decisionId,
        ownerKey: 'team-chat@example.com',
        ...target,
        action: 'ALLOW',
      };
      const forged = nextLink(links[0] ?? null, target.decisionId, item, new Date());
      await db.doc.send(new PutCommand({ TableName: T, Item: item }));
      await db.doc.send(
        new PutCommand({
          TableName: T,
          Item: { pk: chainPk(ACCOUNT, KEY_A), sk: '000000000002', ...forged },
        }),
      );
    });

    const r = await verify(['--store', dir]);

    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`LINK-ALTERED: key ${ACCOUNT}/${KEY_A} seq 3`);
  });

  it('legacy decisions (recorded before chaining) are listed as not covered, and the store still verifies', async () => {
    const dir = tempDir('keyguard-verify-');
    const keyId = 'ACCAVERIFYKEY00000003';
    await tamper(dir, async (db) => {
      await ensureTables(db.client, auditTableDefinitions(REPLAY_TABLES));
      // Written as the store did before chaining existed.
      for (const n of [0, 1]) {
        const d = decision(keyId, n);
        await db.doc.send(
          new PutCommand({ TableName: T, Item: { pk: pkOf(keyId), sk: d.decisionId, ownerKey: 'x', ...d } }),
        );
      }
      await new DynamoAuditLog(db.doc, REPLAY_TABLES).recordDecision(decision(keyId, 2));
    });

    const r = await verify(['--store', dir]);

    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Legacy, not covered: 2 decision(s) of 1 key(s)');
  });

  it('reads the deployed table with --table (same checks through the SDK)', async () => {
    const db = await startTestDynamo();
    try {
      const log = new DynamoAuditLog(db.doc, TABLES);
      for (let n = 0; n < 2; n++) await log.recordDecision(decision(KEY_A, n));
      const ok = await verify(['--table', TABLES.decisionsTable], { doc: () => db.doc, env: {} });
      await db.doc.send(
        new DeleteCommand({
          TableName: TABLES.decisionsTable,
          Key: { pk: pkOf(KEY_A), sk: decision(KEY_A, 1).decisionId },
        }),
      );
      const bad = await verify(['--table', TABLES.decisionsTable], { doc: () => db.doc, env: {} });

      expect(ok.code).toBe(0);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain(
        `MISSING: key ${ACCOUNT}/${KEY_A} seq 2 decision ${decision(KEY_A, 1).decisionId}`,
      );
    } finally {
      await db.close();
    }
  });

  it('with --archive-bucket checks the signed digests: a digest altered after signing is named, exit 1', async () => {
    const db = await startTestDynamo();
    try {
      const log = new DynamoAuditLog(db.doc, TABLES);
      for (let n = 0; n < 2; n++) await log.recordDecision(decision(KEY_B, n));
      const key = testSigningKey();
      const doc = buildDigest(
        await log.allLinks(),
        { start: null, end: '2026-12-07T12:00:00.000Z' },
        null,
        new Date('2026-12-07T12:00:00Z'),
      );
      const signed: SignedDigest = {
        digest: doc,
        signingKeyId: 'arn:aws:kms:us-east-1:111122223333:key/k',
        algorithm: SIGNING_ALGORITHM,
        signature: Buffer.from(
          key.signDigest(createHash('sha256').update(digestBytes(doc)).digest()),
        ).toString('base64'),
      };
      const keys = new Map([[signed.signingKeyId, key.publicKeyDer]]);
      const buckets: string[] = [];
      const deps = (digests: SignedDigest[]): VerifyDeps => ({
        doc: () => db.doc,
        env: {},
        digests: async (bucket) => {
          buckets.push(bucket);
          return checkDigests(digests, keys);
        },
      });

      const ok = await verify(
        ['--table', TABLES.decisionsTable, '--archive-bucket', 'archive'],
        deps([signed]),
      );
      const altered = { ...signed, digest: { ...doc, heads: doc.heads.map((h) => ({ ...h, seq: 1 })) } };
      const bad = await verify(
        ['--table', TABLES.decisionsTable, '--archive-bucket', 'archive'],
        deps([altered]),
      );

      expect(buckets).toEqual(['archive', 'archive']);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain(
        'Signed digests: 1, the latest 2026-12-07T12:00:00.000Z; 1 signed head(s) checked',
      );
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain(
        'DIGEST: digest of 2026-12-07T12:00:00.000Z: its signature does not match its content',
      );
    } finally {
      await db.close();
    }
  });

  it('refuses --archive-bucket with the embedded store (it has no digests): exit 2', async () => {
    const dir = await makeStore();

    const r = await verify(['--store', dir, '--archive-bucket', 'archive']);
    // The environment's bucket belongs to the deployed table: --store ignores it.
    const withEnv = await verify(['--store', dir], {
      ...NO_AWS,
      env: { KEYGUARD_ARCHIVE_BUCKET: 'archive' },
    });

    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--archive-bucket');
    expect(withEnv.code).toBe(0);
  });

  it('cannot verify without a store: exit 2, never 0 or 1', async () => {
    const dir = tempDir('keyguard-verify-');

    const r = await verify(['--store', `${dir}/none`]);

    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no audit store');
  });
});
