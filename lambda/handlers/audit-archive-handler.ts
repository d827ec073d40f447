import type { Logger } from '@aws-lambda-powertools/logger';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { chainObjectKey, decisionObjectKey, S3AuditArchive } from '../adapters/audit-archive';
import { CHAIN_PK_PREFIX, DIGEST_PK } from '../adapters/audit-store';

/**
 * Exports the decision record to the Object Lock archive as it is written: the decisions table's stream
 * (NEW_IMAGE) → one object per new decision and per new chain link, each locked in compliance mode. Items are
 * never modified or removed (the table's resource policy denies it); if one is anyway (the policy removed by
 * an administrator), the event itself is archived under `anomalies/`, so the change is on record where it
 * cannot be undone. Failures are reported per record (partial batch response), so the stream retries from
 * the first failed record and nothing is skipped.
 */

export interface AuditArchiveRuntime {
  archiveBucket: string;
  retentionDays: number;
  s3: S3Client;
  logger: Pick<Logger, 'info' | 'warn'>;
  now?: () => Date;
}

type StreamRecord = DynamoDBStreamEvent['Records'][number];

function image(r: StreamRecord, which: 'NewImage' | 'Keys'): Record<string, unknown> {
  const raw = r.dynamodb?.[which];
  return raw ? unmarshall(raw as Record<string, AttributeValue>) : {};
}

/** Where one stream record goes in the archive (null: nothing to archive). */
export function archiveTarget(r: StreamRecord): { key: string; body: unknown } | null {
  if (r.eventName !== 'INSERT') {
    const keys = image(r, 'Keys');
    const stamp = r.dynamodb?.ApproximateCreationDateTime ?? 0;
    return {
      key: `anomalies/${new Date(stamp * 1000).toISOString()}-${r.eventID ?? 'unknown'}.json`,
      body: {
        eventName: r.eventName ?? null,
        eventID: r.eventID ?? null,
        keys,
        newImage: image(r, 'NewImage'),
      },
    };
  }
  const item = image(r, 'NewImage');
  const pk = String(item.pk ?? '');
  if (pk === DIGEST_PK) return null; // the digest itself is archived by the digest function
  if (pk.startsWith(CHAIN_PK_PREFIX)) {
    const rest = pk.slice(CHAIN_PK_PREFIX.length);
    const at = rest.indexOf('#');
    return { key: chainObjectKey(rest.slice(0, at), rest.slice(at + 1), Number(item.seq)), body: item };
  }
  return { key: decisionObjectKey(String(item.accountId), String(item.keyId), String(item.sk)), body: item };
}

export function createAuditArchiveHandler(
  rt: AuditArchiveRuntime,
): (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse> {
  const archive = new S3AuditArchive(rt.s3, rt.archiveBucket, rt.retentionDays, rt.now);
  return async (event) => {
    for (const r of event.Records) {
      try {
        const target = archiveTarget(r);
        if (!target) continue;
        if (r.eventName !== 'INSERT') {
          rt.logger.warn('decisions table item changed or removed: archived as an anomaly', {
            key: target.key,
          });
        }
        await archive.putOnce(target.key, target.body);
      } catch (err) {
        rt.logger.warn('archive write failed', { eventID: r.eventID, error: (err as Error).name });
        // Stop here: the stream retries from this record (records of a shard are ordered).
        return { batchItemFailures: [{ itemIdentifier: r.dynamodb?.SequenceNumber ?? '' }] };
      }
    }
    return { batchItemFailures: [] };
  };
}
