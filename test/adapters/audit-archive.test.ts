import { createHash } from 'node:crypto';
import { GetPublicKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { archiveDigests } from '../../lambda/cli/audit-verify';
import {
  buildDigest,
  digestBytes,
  digestHash,
  SIGNING_ALGORITHM,
  type SignedDigest,
} from '../../lambda/domain/audit-digest';
import { testSigningKey } from '../support/kms-signing';

const KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const key = testSigningKey();
const s3 = mockClient(S3Client);
const kms = mockClient(KMSClient);

function signed(heads: number, previous: string | null, time: string): SignedDigest {
  const doc = buildDigest(
    Array.from({ length: heads }, (_, i) => ({
      accountId: '111122223333',
      keyId: `K${i}`,
      seq: 1,
      hash: `h${i}`,
    })),
    { start: null, end: time },
    previous,
    new Date(time),
  );
  const digest = createHash('sha256').update(digestBytes(doc)).digest();
  return {
    digest: doc,
    signingKeyId: KEY_ARN,
    algorithm: SIGNING_ALGORITHM,
    signature: Buffer.from(key.signDigest(digest)).toString('base64'),
  };
}

/** An S3 object body as the SDK hands it over (only what the reader uses). */
const body = (value: unknown) => ({ transformToString: async () => JSON.stringify(value) }) as never;

beforeEach(() => {
  s3.reset();
  kms.reset();
});

describe('archiveDigests: what audit verify --archive-bucket reads', () => {
  it('reads every digest across list pages, checks each with kms:GetPublicKey once per key, locally', async () => {
    // Prepare
    const d1 = signed(2, null, '2026-12-07T10:00:00.000Z');
    const d2 = signed(1, digestHash(d1.digest), '2026-12-07T11:00:00.000Z');
    s3.on(ListObjectsV2Command, { ContinuationToken: undefined }).resolves({
      Contents: [{ Key: 'digests/2026-12-07T10:00:00.000Z.json' }],
      IsTruncated: true,
      NextContinuationToken: 'page-2',
    });
    s3.on(ListObjectsV2Command, { ContinuationToken: 'page-2' }).resolves({
      Contents: [{ Key: 'digests/2026-12-07T11:00:00.000Z.json' }],
      IsTruncated: false,
    });
    s3.on(GetObjectCommand, { Key: 'digests/2026-12-07T10:00:00.000Z.json' }).callsFake(() => ({
      Body: body(d1),
    }));
    s3.on(GetObjectCommand, { Key: 'digests/2026-12-07T11:00:00.000Z.json' }).callsFake(() => ({
      Body: body(d2),
    }));
    kms.on(GetPublicKeyCommand).resolves({ KeyId: KEY_ARN, PublicKey: key.publicKeyDer });
    // Act
    const check = await archiveDigests('archive', { AWS_REGION: 'us-east-1' });
    // Assess
    expect(s3).toHaveReceivedCommandWith(ListObjectsV2Command, { Bucket: 'archive', Prefix: 'digests/' });
    expect(kms).toHaveReceivedCommandTimes(GetPublicKeyCommand, 1);
    expect(kms).toHaveReceivedCommandWith(GetPublicKeyCommand, { KeyId: KEY_ARN });
    expect(check.problems).toEqual([]);
    expect(check.signed).toMatchObject({ time: '2026-12-07T11:00:00.000Z', digests: 2 });
    expect(check.signed?.heads).toHaveLength(3);
  });
});

describe('archiveDigests: objects planted under digests/ that are not digests', () => {
  it.each([
    ['not JSON', '{"digest": ', 'not valid JSON'],
    ['JSON null', 'null', 'not a signed digest'],
    ['a wrong shape', JSON.stringify({ digest: { time: 5 }, signature: 7 }), 'not a signed digest'],
    ['deeply nested', `${'['.repeat(100_000)}${']'.repeat(100_000)}`, 'not a signed digest'],
  ])(
    'a digest object that is %s is named as tamper evidence; the real digests are still checked',
    async (_l, text, why) => {
      // Prepare: one real digest and, beside it, an object someone wrote under digests/
      const real = signed(1, null, '2026-12-07T10:00:00.000Z');
      s3.on(ListObjectsV2Command).resolves({
        Contents: [
          { Key: 'digests/2026-12-07T10:00:00.000Z.json' },
          { Key: 'digests/2026-12-07T10:30:00.000Z.json' },
        ],
        IsTruncated: false,
      });
      s3.on(GetObjectCommand, { Key: 'digests/2026-12-07T10:00:00.000Z.json' }).callsFake(() => ({
        Body: body(real),
      }));
      s3.on(GetObjectCommand, { Key: 'digests/2026-12-07T10:30:00.000Z.json' }).callsFake(() => ({
        Body: { transformToString: async () => text } as never,
        ContentLength: text.length,
      }));
      kms.on(GetPublicKeyCommand).resolves({ KeyId: KEY_ARN, PublicKey: key.publicKeyDer });
      // Act
      const check = await archiveDigests('archive', { AWS_REGION: 'us-east-1' });
      // Assess
      expect(check.problems).toEqual([
        { digestTime: 'digests/2026-12-07T10:30:00.000Z.json', detail: expect.stringContaining(why) },
      ]);
      expect(check.signed).toMatchObject({ time: '2026-12-07T10:00:00.000Z', digests: 1 });
    },
  );

  it('does not read an object larger than any digest can be; it is named instead', async () => {
    s3.on(ListObjectsV2Command).resolves({
      Contents: [{ Key: 'digests/huge.json', Size: 2 * 1024 ** 3 }],
      IsTruncated: false,
    });
    kms.on(GetPublicKeyCommand).resolves({ KeyId: KEY_ARN, PublicKey: key.publicKeyDer });

    const check = await archiveDigests('archive', { AWS_REGION: 'us-east-1' });

    expect(s3).toHaveReceivedCommandTimes(GetObjectCommand, 0);
    expect(check.problems).toEqual([
      { digestTime: 'digests/huge.json', detail: expect.stringContaining('larger than') },
    ]);
  });
});
