import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  type Tag,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { BedrockKeyProbe, type FetchLike } from '../../lambda/adapters/bedrock-key-probe';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import type { LeakRuntime } from '../../lambda/handlers/leak-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { createTestTables, TABLES } from './dynamo';
import { ACCOUNT } from './events';
import { RecordedUndecidedLeaks } from './undecided-leaks';

/**
 * The real leak handler, end to end, for the adversarial tests: one governed user with one Bedrock key (IAM, SNS
 * and CloudTrail mocked with aws-sdk-client-mock), fresh dynalite tables per runtime, the real BedrockKeyProbe
 * over a simulated Bedrock (an injected fetch), and batches as CloudWatch Logs delivers them.
 */

/** The subscribed log group the batches come from. */
export const LEAK_LOG_GROUP = '/aws/apigateway/public-api';

/** A long-term key string for `user` of the governed account: `ABSK` + base64("<user>-at-<account>:<secret>"). */
export function longTermKeyOf(user: string, secret = randomBytes(45).toString('base64')): string {
  return `ABSK${Buffer.from(`${user}-at-${ACCOUNT}:${secret}`).toString('base64')}`;
}

/**
 * Resets the mocks, then programs the governed account: `user` holds the Active Bedrock key `keyId` (created
 * 2026-10-01, expiring 2026-12-30) with `tags`; deactivation, notices and LookupEvents succeed.
 */
export function mockGovernedUser(
  // Each test file owns its mocks (mockClient at module level); the harness only programs them.
  mocks: {
    iam: AwsClientStub<IAMClient>;
    sns: AwsClientStub<SNSClient>;
    cloudtrail: AwsClientStub<CloudTrailClient>;
  },
  user: { name: string; keyId: string; tags?: Tag[] },
): void {
  const { iam, sns, cloudtrail } = mocks;
  iam.reset();
  sns.reset();
  cloudtrail.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  iam.on(ListServiceSpecificCredentialsCommand).resolves({
    ServiceSpecificCredentials: [
      {
        UserName: user.name,
        Status: 'Active',
        ServiceCredentialAlias: `${user.name}-at-${ACCOUNT}`,
        CreateDate: new Date('2026-10-01T00:00:00Z'),
        ExpirationDate: new Date('2026-12-30T00:00:00Z'),
        ServiceSpecificCredentialId: user.keyId,
        ServiceName: 'bedrock.amazonaws.com',
      },
    ],
  });
  iam
    .on(ListUserTagsCommand)
    .resolves({ Tags: user.tags ?? [{ Key: 'owner', Value: 'team@example.com' }], IsTruncated: false });
  iam.on(UpdateServiceSpecificCredentialCommand).resolves({});
  cloudtrail.on(LookupEventsCommand).resolves({ Events: [] });
}

let tableSet = 0;

/** A leak runtime in `enforce` mode on fresh tables, verifying keys through `fetch` (a simulated Bedrock). */
export async function leakRuntime(
  db: EmbeddedDynamo,
  opts: { fetch: FetchLike; now: Date; probeTimeoutMs: number; leakDetection?: Record<string, unknown> },
): Promise<LeakRuntime> {
  tableSet += 1;
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-leak-${tableSet}`,
    keysTable: `${TABLES.keysTable}-leak-${tableSet}`,
    idempotencyTable: `${TABLES.idempotencyTable}-leak-${tableSet}`,
    approvalsTable: `${TABLES.approvalsTable}-leak-${tableSet}`,
  };
  await createTestTables(db, names);
  const config = parseConfig({
    mode: 'enforce',
    leakDetection: { logGroups: [LEAK_LOG_GROUP], ...opts.leakDetection },
  });
  const now = () => opts.now;
  return {
    config,
    policyVersion: policyVersion(config),
    decisionsTable: names.decisionsTable,
    keysTable: names.keysTable,
    approvalsTable: names.approvalsTable,
    topicArn: `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`,
    governedAccountId: ACCOUNT,
    iamFor: () => new IAMClient({ region: 'us-east-1' }),
    cloudTrailFor: (region) => new CloudTrailClient({ region }),
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-leak' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-leak' }),
    verifier: new BedrockKeyProbe({
      region: 'us-east-1',
      fetch: opts.fetch,
      timeoutMs: opts.probeTimeoutMs,
      now,
    }),
    // Findings not decided stay in memory here (the SQS adapter has its own tests: test/handlers/leak.test.ts).
    undecided: new RecordedUndecidedLeaks(),
    now,
  };
}

/** Where a subscription delivery comes from: the log group's account and name. */
export interface SubscriptionSource {
  owner?: string;
  logGroup?: string;
}

/** The JSON a subscription filter delivers (before gzip and base64), one log event per message. */
export function subscriptionPayload(messages: string[], from: SubscriptionSource = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      messageType: 'DATA_MESSAGE',
      owner: from.owner ?? ACCOUNT,
      logGroup: from.logGroup ?? LEAK_LOG_GROUP,
      logStream: '2026/11/20/access',
      subscriptionFilters: ['keyguard-bedrock-key-leaks'],
      logEvents: messages.map((message, i) => ({
        id: `3784121057423184628901435679843725498326472193471987${String(i).padStart(4, '0')}`,
        timestamp: Date.parse('2026-11-20T09:40:00Z'),
        message,
      })),
    }),
  );
}

/** A subscription delivery as the function receives it: base64(gzip(JSON)). */
export function subscriptionBatch(
  messages: string[],
  from: SubscriptionSource = {},
): { awslogs: { data: string } } {
  return { awslogs: { data: gzipSync(subscriptionPayload(messages, from)).toString('base64') } };
}
