import { Logger } from '@aws-lambda-powertools/logger';
import { S3Client } from '@aws-sdk/client-s3';
import { SDK_MAX_ATTEMPTS } from '../adapters/clients';
import { requireEnv } from '../shared/env';
import { createAuditArchiveHandler } from './audit-archive-handler';

/** Lambda entry point of the audit archive export (decisions table stream). A bad environment fails the cold start. */

const env = process.env;
const retentionDays = Number(requireEnv(env, 'ARCHIVE_RETENTION_DAYS'));
if (!Number.isSafeInteger(retentionDays) || retentionDays < 1) {
  throw new Error(
    `ARCHIVE_RETENTION_DAYS: got ${JSON.stringify(env.ARCHIVE_RETENTION_DAYS)}; allowed: a whole number >= 1`,
  );
}

export const handler = createAuditArchiveHandler({
  archiveBucket: requireEnv(env, 'ARCHIVE_BUCKET_NAME'),
  retentionDays,
  s3: new S3Client({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' }),
  logger: new Logger(),
});
