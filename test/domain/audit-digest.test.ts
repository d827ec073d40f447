import { createHash } from 'node:crypto';
import {
  buildDigest,
  checkDigests,
  type DigestDocument,
  digestBytes,
  digestHash,
  SIGNING_ALGORITHM,
  type SignedDigest,
} from '../../lambda/domain/audit-digest';
import { testSigningKey } from '../support/kms-signing';

const KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const key = testSigningKey();
const keys = new Map([[KEY_ARN, key.publicKeyDer]]);

function sign(doc: DigestDocument): SignedDigest {
  const digest = createHash('sha256').update(digestBytes(doc)).digest();
  return {
    digest: doc,
    signingKeyId: KEY_ARN,
    algorithm: SIGNING_ALGORITHM,
    signature: Buffer.from(key.signDigest(digest)).toString('base64'),
  };
}

const head = (keyId: string, seq: number) => ({
  accountId: '111122223333',
  keyId,
  seq,
  hash: `${keyId}-${seq}`,
});

/** Three digests, each chained to the one before. */
function threeDigests(): SignedDigest[] {
  const d1 = buildDigest(
    [head('K1', 1), head('K1', 2)],
    { start: null, end: '2026-12-07T10:58:00.000Z' },
    null,
    new Date('2026-12-07T11:00:00Z'),
  );
  const d2 = buildDigest(
    [head('K2', 1)],
    { start: d1.windowEnd, end: '2026-12-07T11:58:00.000Z' },
    digestHash(d1),
    new Date('2026-12-07T12:00:00Z'),
  );
  const d3 = buildDigest(
    [head('K1', 3)],
    { start: d2.windowEnd, end: '2026-12-07T12:58:00.000Z' },
    digestHash(d2),
    new Date('2026-12-07T13:00:00Z'),
  );
  return [d1, d2, d3].map(sign);
}

describe('signed digests of chain heads', () => {
  it('keeps the newest head per key, sorted', () => {
    const d = buildDigest(
      [head('K2', 1), head('K1', 2), head('K1', 1)],
      { start: null, end: 'e' },
      null,
      new Date(0),
    );

    expect(d.heads).toEqual([head('K1', 2), head('K2', 1)]);
  });

  it('a chain of validly signed digests vouches for every head it signed', () => {
    const check = checkDigests(threeDigests(), keys);

    expect(check.problems).toEqual([]);
    expect(check.orphans).toEqual([]);
    expect(check.signed?.digests).toBe(3);
    expect(check.signed?.heads).toEqual([head('K1', 2), head('K2', 1), head('K1', 3)]);
  });

  it('names a digest whose content was changed after signing', () => {
    const digests = threeDigests();
    const second = digests[1] as SignedDigest;
    second.digest = { ...second.digest, heads: [head('K2', 7)] };

    const check = checkDigests(digests, keys);

    expect(check.problems).toEqual(
      expect.arrayContaining([
        {
          digestTime: '2026-12-07T12:00:00.000Z',
          detail: expect.stringContaining('signature does not match'),
        },
      ]),
    );
    // Its heads are not trusted.
    expect(check.signed?.heads).not.toContainEqual(head('K2', 7));
  });

  it('names a digest signed by another key', () => {
    const other = testSigningKey();
    const digests = threeDigests();
    const forged = digests[2] as SignedDigest;
    const digest = createHash('sha256').update(digestBytes(forged.digest)).digest();
    forged.signature = Buffer.from(other.signDigest(digest)).toString('base64');

    const check = checkDigests(digests, keys);

    expect(check.problems).toEqual([
      { digestTime: '2026-12-07T13:00:00.000Z', detail: expect.stringContaining('signature does not match') },
    ]);
  });

  it('names the digest whose predecessor was removed from the archive', () => {
    const [d1, , d3] = threeDigests();

    const check = checkDigests([d1 as SignedDigest, d3 as SignedDigest], keys);

    expect(check.problems).toEqual([
      { digestTime: '2026-12-07T13:00:00.000Z', detail: expect.stringContaining('is not in the archive') },
    ]);
  });

  it('notes a signed digest no later one chains to (a run that stopped early) without failing', () => {
    const digests = threeDigests();
    const d2 = (digests[1] as SignedDigest).digest;
    const stray = sign(
      buildDigest(
        [],
        { start: d2.windowEnd, end: d2.windowEnd },
        digestHash(d2),
        new Date('2026-12-07T12:30:00Z'),
      ),
    );

    const check = checkDigests([...digests, stray], keys);

    expect(check.problems).toEqual([]);
    expect(check.orphans).toEqual(['2026-12-07T12:30:00.000Z']);
  });
});
