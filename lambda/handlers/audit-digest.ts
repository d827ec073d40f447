import { Logger } from '@aws-lambda-powertools/logger';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { dynamoClient, SDK_MAX_ATTEMPTS } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
import { requireEnv } from '../shared/env';
import { createAuditDigestHandler } from './audit-digest-handler';

/** Lambda entry point of the scheduled audit digest. A bad environment fails the cold start. */

const env = process.env;
const retentionDays = Number(requireEnv(env, 'ARCHIVE_RETENTION_DAYS'));
if (!Number.isSafeInteger(retentionDays) || retentionDays < 1) {
  throw new Error(
    `ARCHIVE_RETENTION_DAYS: got ${JSON.stringify(env.ARCHIVE_RETENTION_DAYS)}; allowed: a whole number >= 1`,
  );
}

export const handler = createAuditDigestHandler({
  decisionsTable: requireEnv(env, 'DECISIONS_TABLE_NAME'),
  archiveBucket: requireEnv(env, 'ARCHIVE_BUCKET_NAME'),
  signingKeyId: requireEnv(env, 'SIGNING_KEY_ID'),
  retentionDays,
  doc: documentClient(dynamoClient()),
  s3: new S3Client({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' }),
  kms: new KMSClient({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' }),
  logger: new Logger(),
});
