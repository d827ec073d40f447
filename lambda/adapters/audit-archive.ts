import { createHash } from 'node:crypto';
import { GetPublicKeyCommand, type KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { canonicalJson } from '../domain/audit-chain';
import {
  DIGEST_VERSION,
  type DigestDocument,
  digestBytes,
  SIGNING_ALGORITHM,
  type SignedDigest,
} from '../domain/audit-digest';
import * as z from '../shared/zod';

/**
 * The audit archive: an S3 bucket with Object Lock in compliance mode, where every decision, chain link and
 * signed digest is written once and cannot be deleted or overwritten by anyone (the account root included)
 * until its retention ends. And the KMS asymmetric key that signs the digests.
 *
 * Object keys:
 *   decisions/<accountId>/<keyId>/<decisionId, URI-encoded>.json   the decision item as stored
 *   chains/<accountId>/<keyId>/<seq, 12 digits>.json                the chain link as stored
 *   digests/<time>.json                                             a SignedDigest
 */

export const DIGEST_PREFIX = 'digests/';

export function decisionObjectKey(accountId: string, keyId: string, decisionId: string): string {
  return `decisions/${accountId}/${keyId}/${encodeURIComponent(decisionId)}.json`;
}

export function chainObjectKey(accountId: string, keyId: string, seq: number): string {
  return `chains/${accountId}/${keyId}/${String(seq).padStart(12, '0')}.json`;
}

export function digestObjectKey(time: string): string {
  return `${DIGEST_PREFIX}${time}.json`;
}

/** S3 refused a write because the object already exists (a redelivery): the archived copy stands. */
function isAlreadyThere(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | null;
  return e?.name === 'PreconditionFailed' || e?.$metadata?.httpStatusCode === 412;
}

export class S3AuditArchive {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly retentionDays: number,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Writes one object, locked in COMPLIANCE mode for the retention period, only if it does not exist yet
   * (`If-None-Match: *`): an archived record is never replaced, and a redelivered one is not written twice.
   * Returns false when it already existed.
   */
  async putOnce(key: string, body: unknown): Promise<boolean> {
    const text = canonicalJson(body);
    const retainUntil = new Date(this.now().getTime() + this.retentionDays * 86_400_000);
    try {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: text,
          ContentType: 'application/json',
          IfNoneMatch: '*',
          ObjectLockMode: 'COMPLIANCE',
          ObjectLockRetainUntilDate: retainUntil,
          ChecksumSHA256: createHash('sha256').update(text, 'utf8').digest('base64'),
        }),
      );
      return true;
    } catch (err) {
      if (isAlreadyThere(err)) return false;
      throw err;
    }
  }

  /**
   * Every signed digest in the archive (all pages), and every object under `digests/` that is not one: too large
   * to be a digest, not JSON, or not shaped as a SignedDigest. Those are named, never parsed into the check (an
   * object planted there is itself tamper evidence).
   */
  async listDigests(): Promise<{ digests: SignedDigest[]; unreadable: UnreadableDigest[] }> {
    const objects: Array<{ key: string; size: number | undefined }> = [];
    let token: string | undefined;
    do {
      const res = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: DIGEST_PREFIX, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? []) if (o.Key) objects.push({ key: o.Key, size: o.Size });
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const digests: SignedDigest[] = [];
    const unreadable: UnreadableDigest[] = [];
    const tooLarge = `larger than ${MAX_DIGEST_BYTES} bytes, more than any digest holds: not read`;
    for (const { key, size } of objects) {
      if (size !== undefined && size > MAX_DIGEST_BYTES) {
        unreadable.push({ key, reason: tooLarge });
        continue;
      }
      const res = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const text = (await res.Body?.transformToString('utf8')) ?? '';
      if (text.length > MAX_DIGEST_BYTES) {
        unreadable.push({ key, reason: tooLarge });
        continue;
      }
      const read = parseSignedDigest(text);
      if ('digest' in read) digests.push(read.digest);
      else unreadable.push({ key, reason: read.reason });
    }
    return { digests, unreadable };
  }
}

/** An object under `digests/` that is not a signed digest, and why. */
export interface UnreadableDigest {
  key: string;
  reason: string;
}

/** A digest lists at most one head per key: 64 MiB is far beyond any account's keys. */
export const MAX_DIGEST_BYTES = 64 * 1024 * 1024;

const SignedHeadSchema = z.strictObject({
  accountId: z.string(),
  keyId: z.string(),
  seq: z.number().check(z.int(), z.nonnegative()),
  hash: z.string(),
});

/** Loose objects: unknown fields are kept, so the signature is checked over the document exactly as stored. */
const SignedDigestSchema = z.looseObject({
  digest: z.looseObject({
    version: z.literal(DIGEST_VERSION),
    time: z.string(),
    windowStart: z.nullable(z.string()),
    windowEnd: z.string(),
    previousDigestHash: z.nullable(z.string()),
    heads: z.array(SignedHeadSchema),
  }),
  signingKeyId: z.string(),
  algorithm: z.literal(SIGNING_ALGORITHM),
  signature: z.string(),
});

/** One digest object's text as a SignedDigest, or why it is not one. */
function parseSignedDigest(text: string): { digest: SignedDigest } | { reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { reason: `not a signed digest: not valid JSON (${err instanceof Error ? err.name : 'error'})` };
  }
  const parsed = SignedDigestSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? first.path.join('.') : '(root)';
    return { reason: `not a signed digest: ${where}: ${first?.message ?? 'invalid'}` };
  }
  return { digest: parsed.data as SignedDigest };
}

/** Signs digest documents with the KMS asymmetric key (RSA_2048, SIGN_VERIFY). */
export class KmsDigestSigner {
  constructor(
    private readonly kms: KMSClient,
    private readonly keyId: string,
  ) {}

  /** kms:Sign over SHA-256 of the document's canonical JSON (MessageType DIGEST: any size). */
  async sign(doc: DigestDocument): Promise<SignedDigest> {
    const digest = createHash('sha256').update(digestBytes(doc)).digest();
    const res = await this.kms.send(
      new SignCommand({
        KeyId: this.keyId,
        Message: digest,
        MessageType: 'DIGEST',
        SigningAlgorithm: SIGNING_ALGORITHM,
      }),
    );
    if (!res.Signature) throw new Error(`kms:Sign with ${this.keyId} returned no signature`);
    return {
      digest: doc,
      signingKeyId: res.KeyId ?? this.keyId,
      algorithm: SIGNING_ALGORITHM,
      signature: Buffer.from(res.Signature).toString('base64'),
    };
  }
}

/** The public half of a signing key (DER SubjectPublicKeyInfo), for local verification by `audit verify`. */
export async function signingPublicKey(kms: KMSClient, keyId: string): Promise<Uint8Array> {
  const res = await kms.send(new GetPublicKeyCommand({ KeyId: keyId }));
  if (!res.PublicKey) throw new Error(`kms:GetPublicKey ${keyId} returned no key`);
  return res.PublicKey;
}
