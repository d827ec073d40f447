import { KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { chainPk, DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { checkDigests, type SignedDigest } from '../../lambda/domain/audit-digest';
import { verifyRecord } from '../../lambda/domain/audit-verify';
import type { Decision } from '../../lambda/domain/types';
import { createAuditDigestHandler } from '../../lambda/handlers/audit-digest-handler';
import { startTestDynamo, TABLES } from '../support/dynamo';
import { testSigningKey } from '../support/kms-signing';

const ACCOUNT = '111122223333';
const KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const BUCKET = 'keyguard-audit-archive';

function decision(keyId: string, n: number): Decision {
  const at = new Date(Date.UTC(2026, 11, 7, 9, 0, n)).toISOString();
  return {
    decisionId: `${at}/event/e-${keyId.slice(-2)}-${n}`,
    decidedAt: at,
    keyId,
    userName: 'svc-chatbot',
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: { kind: 'event', eventId: `e-${n}`, eventName: 'CreateServiceSpecificCredential' },
    createdAt: '2026-12-01T00:00:00.000Z',
    expiresAt: null,
    neverExpires: true,
    owner: { value: 'team-chat@example.com', source: 'tag' },
    violations: [],
    action: 'ALLOW',
    applied: false,
    mode: 'audit',
    deadline: null,
    policyVersion: 'p-000000000000',
  };
}

const signingKey = testSigningKey();
const s3 = mockClient(S3Client);
const kms = mockClient(KMSClient);
let db: EmbeddedDynamo;
let log: DynamoAuditLog;
/** What the archive received, by object key. */
const archived = new Map<string, unknown>();
const logger = { info: jest.fn() };

beforeAll(async () => {
  db = await startTestDynamo();
  log = new DynamoAuditLog(db.doc, TABLES);
});
afterAll(async () => db.close());
beforeEach(() => {
  s3.reset();
  kms.reset();
  s3.on(PutObjectCommand).callsFake((input: { Key: string; Body: string }) => {
    archived.set(input.Key, JSON.parse(input.Body));
    return {};
  });
  kms.on(SignCommand).callsFake((input: { Message: Uint8Array }) => ({
    KeyId: KEY_ARN,
    Signature: signingKey.signDigest(input.Message),
    SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256',
  }));
});

function handler(now: Date) {
  return createAuditDigestHandler({
    decisionsTable: TABLES.decisionsTable,
    archiveBucket: BUCKET,
    signingKeyId: KEY_ARN,
    retentionDays: 365,
    doc: db.doc,
    s3: s3 as unknown as S3Client,
    kms: kms as unknown as KMSClient,
    logger,
    now: () => now,
  });
}

const digests = () =>
  [...archived.entries()].filter(([k]) => k.startsWith('digests/')).map(([, v]) => v as SignedDigest);

describe('audit digest function', () => {
  let t0: Date;

  it('signs the heads of every chain with KMS and locks the digest in the archive (COMPLIANCE, retention days)', async () => {
    // Prepare
    for (const keyId of ['ACCADIGESTKEY0000001', 'ACCADIGESTKEY0000002']) {
      for (let n = 0; n < 2; n++) await log.recordDecision(decision(keyId, n));
    }
    t0 = new Date();
    // Act
    const result = await handler(t0)();
    // Assess
    expect(kms).toHaveReceivedCommandWith(SignCommand, {
      KeyId: KEY_ARN,
      MessageType: 'DIGEST',
      SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256',
    });
    const put = s3.commandCalls(PutObjectCommand)[0]?.args[0].input;
    expect(put).toMatchObject({
      Bucket: BUCKET,
      Key: `digests/${t0.toISOString()}.json`,
      ObjectLockMode: 'COMPLIANCE',
      IfNoneMatch: '*',
    });
    expect(put?.ObjectLockRetainUntilDate).toEqual(new Date(t0.getTime() + 365 * 86_400_000));
    expect(result).toMatchObject({ heads: 2, previousDigestHash: null });
    const [digest] = digests();
    expect(digest?.digest.heads.map((h) => [h.keyId, h.seq])).toEqual([
      ['ACCADIGESTKEY0000001', 2],
      ['ACCADIGESTKEY0000002', 2],
    ]);
    expect(await log.latestDigest()).toMatchObject({ time: t0.toISOString(), objectKey: put?.Key });
  });

  it('the next digest lists only the chains that grew since, and names the previous digest', async () => {
    // Prepare
    await log.recordDecision(decision('ACCADIGESTKEY0000001', 2));
    const t1 = new Date(t0.getTime() + 10 * 60_000);
    // Act
    const result = await handler(t1)();
    // Assess
    expect(result.previousDigestHash).toMatch(/^[0-9a-f]{64}$/);
    const second = digests().find((d) => d.digest.time === t1.toISOString());
    expect(second?.digest.heads.map((h) => [h.keyId, h.seq])).toEqual([['ACCADIGESTKEY0000001', 3]]);
    const check = checkDigests(digests(), new Map([[KEY_ARN, signingKey.publicKeyDer]]));
    expect(check.problems).toEqual([]);
    expect((await verifyRecord(log, check.signed)).problems).toEqual([]);
  });

  it('verification names a chain cut short after it was signed (newest decisions deleted with their links)', async () => {
    // Prepare: delete key 1's newest link and decision, as someone past the resource policy could.
    const keyId = 'ACCADIGESTKEY0000001';
    await db.doc.send(
      new DeleteCommand({
        TableName: TABLES.decisionsTable,
        Key: { pk: chainPk(ACCOUNT, keyId), sk: '000000000003' },
      }),
    );
    await db.doc.send(
      new DeleteCommand({
        TableName: TABLES.decisionsTable,
        Key: { pk: `${ACCOUNT}#${keyId}`, sk: decision(keyId, 2).decisionId },
      }),
    );
    const check = checkDigests(digests(), new Map([[KEY_ARN, signingKey.publicKeyDer]]));
    // Act
    const result = await verifyRecord(log, check.signed);
    // Assess: the chain alone looks whole; only the signed head shows the loss.
    expect(result.problems).toEqual([
      expect.objectContaining({
        kind: 'behind-digest',
        keyId,
        seq: 3,
        detail: expect.stringContaining('ends at seq 2'),
      }),
    ]);
  });
});
