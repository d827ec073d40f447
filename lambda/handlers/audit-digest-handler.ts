import type { Logger } from '@aws-lambda-powertools/logger';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { digestObjectKey, KmsDigestSigner, S3AuditArchive } from '../adapters/audit-archive';
import { DynamoAuditLog } from '../adapters/audit-store';
import { buildDigest, digestHash } from '../domain/audit-digest';

/**
 * The scheduled digest of chain heads (domain/audit-digest.ts): reads the links chained since the previous
 * digest (the byChainHour index; the very first digest scans the links once), signs the document with the KMS
 * key, writes it to the Object Lock archive, then appends it to the digest log in the decisions table, which the
 * next run chains to. A run that stops after the archive write leaves an orphan digest that verification notes
 * (signed, not chained to) and the next run simply chains to the previous one.
 */

/** Links chained this close to "now" may not be in the (eventually consistent) index yet: next window. */
export const INDEX_MARGIN_MS = 2 * 60_000;

export interface AuditDigestRuntime {
  decisionsTable: string;
  archiveBucket: string;
  signingKeyId: string;
  retentionDays: number;
  doc: DynamoDBDocumentClient;
  s3: S3Client;
  kms: KMSClient;
  logger: Pick<Logger, 'info'>;
  now?: () => Date;
}

export interface AuditDigestResult {
  time: string;
  heads: number;
  objectKey: string;
  previousDigestHash: string | null;
}

export function createAuditDigestHandler(rt: AuditDigestRuntime): () => Promise<AuditDigestResult> {
  const store = new DynamoAuditLog(rt.doc, { decisionsTable: rt.decisionsTable, keysTable: '' });
  const now = rt.now ?? (() => new Date());
  const archive = new S3AuditArchive(rt.s3, rt.archiveBucket, rt.retentionDays, now);
  const signer = new KmsDigestSigner(rt.kms, rt.signingKeyId);
  return async () => {
    const at = now();
    const previous = await store.latestDigest();
    const end = new Date(at.getTime() - INDEX_MARGIN_MS);
    const start = previous ? new Date(previous.windowEnd) : null;
    const links = start
      ? start.getTime() < end.getTime()
        ? await store.linksChainedBetween(start, end)
        : []
      : await store.allLinks();
    // The first digest scans the table (consistently) after `at`: it covers everything chained before `at`.
    const windowEnd = !start ? at : start.getTime() > end.getTime() ? start : end;
    const doc = buildDigest(
      links,
      { start: previous?.windowEnd ?? null, end: windowEnd.toISOString() },
      previous?.digestHash ?? null,
      at,
    );
    const signed = await signer.sign(doc);
    const objectKey = digestObjectKey(doc.time);
    await archive.putOnce(objectKey, signed);
    await store.recordDigest({
      time: doc.time,
      digestHash: digestHash(doc),
      windowEnd: doc.windowEnd,
      objectKey,
    });
    rt.logger.info('audit digest signed', { time: doc.time, heads: doc.heads.length, objectKey });
    return { time: doc.time, heads: doc.heads.length, objectKey, previousDigestHash: doc.previousDigestHash };
  };
}
