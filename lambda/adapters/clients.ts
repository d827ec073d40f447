import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';

/**
 * SDK clients with one retry policy: the SDK's standard retry mode retries throttling and transient
 * errors with exponential backoff and jitter. Past that, the error propagates so that Lambda's own
 * retries, and then the failure destination, take over.
 */
export const SDK_MAX_ATTEMPTS = 6;

/** The retry settings every client below is built with, for a client built elsewhere (loaded on first use). */
export const RETRY_POLICY = { maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' } as const;

/** IAM is global; its endpoint is in us-east-1. */
export const IAM_REGION = 'us-east-1';

export function iamClient(): IAMClient {
  return new IAMClient({ region: IAM_REGION, maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' });
}

/** CloudTrail event history of IAM calls: IAM events are recorded in us-east-1 only. */
export function cloudTrailClient(): CloudTrailClient {
  return new CloudTrailClient({ region: IAM_REGION, maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' });
}

export function snsClient(): SNSClient {
  return new SNSClient({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' });
}

export function dynamoClient(): DynamoDBClient {
  return new DynamoDBClient({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' });
}

export function sqsClient(): SQSClient {
  return new SQSClient({ ...RETRY_POLICY });
}
