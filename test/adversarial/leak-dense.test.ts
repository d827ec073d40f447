import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { BedrockKeyProbe, type FetchLike } from '../../lambda/adapters/bedrock-key-probe';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { MAX_BATCH_BYTES } from '../../lambda/domain/leak-batch';
import {
  createLeakHandler,
  InvalidLogEventError,
  type LeakRuntime,
} from '../../lambda/handlers/leak-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { fingerprint } from '../../lambda/shared/redact';
import { type Capture, captureOutput } from '../support/capture';
import { createTestTables, startTestDynamo, TABLES } from '../support/dynamo';
import { ACCOUNT } from '../support/events';

/**
 * Issue 10, item 2, in the leak function: a few 256 KiB log messages dense with key prefixes used to push a
 * batch past the function's timeout, sending a batch with a real leak in it to the failure queue. The real
 * handler runs on such batches with a time limit (the jest timeout, far below what the quadratic scan took) and
 * must decide the real key; a payload no CloudWatch delivery can reach is refused with a message naming the bound.
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const cloudtrail = mockClient(CloudTrailClient);
const NOW = new Date('2026-11-20T10:00:00Z');
const USER = 'svc-dense';
const KEY_ID = 'ACCAEXAMPLEDENSEKEY01';
const LOG_GROUP = '/aws/apigateway/public-api';
const REAL_KEY = `ABSK${Buffer.from(`${USER}-at-${ACCOUNT}:${randomBytes(45).toString('base64')}`).toString('base64')}`;
const LIMIT_MS = 60_000;
const KiB = 1024;

/** Bedrock over HTTPS, simulated: only the real key authenticates. */
const fetch: FetchLike = async (_url, init) =>
  new Headers(init.headers).get('authorization') === `Bearer ${REAL_KEY}`
    ? new Response('{"modelSummaries":[]}', { status: 200 })
    : new Response('{"Message":"Authentication failed"}', { status: 403 });

let db: EmbeddedDynamo;
let out: Capture;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});
beforeEach(() => {
  iam.reset();
  sns.reset();
  cloudtrail.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  iam.on(ListServiceSpecificCredentialsCommand).resolves({
    ServiceSpecificCredentials: [
      {
        UserName: USER,
        Status: 'Active',
        ServiceCredentialAlias: `${USER}-at-${ACCOUNT}`,
        CreateDate: new Date('2026-10-01T00:00:00Z'),
        ExpirationDate: new Date('2026-12-30T00:00:00Z'),
        ServiceSpecificCredentialId: KEY_ID,
        ServiceName: 'bedrock.amazonaws.com',
      },
    ],
  });
  iam
    .on(ListUserTagsCommand)
    .resolves({ Tags: [{ Key: 'owner', Value: 'team@example.com' }], IsTruncated: false });
  iam.on(UpdateServiceSpecificCredentialCommand).resolves({});
  cloudtrail.on(LookupEventsCommand).resolves({ Events: [] });
  out = captureOutput();
});
afterEach(() => out.restore());

async function runtime(): Promise<LeakRuntime> {
  const names = {
    decisionsTable: `${TABLES.decisionsTable}-dense`,
    keysTable: `${TABLES.keysTable}-dense`,
    idempotencyTable: `${TABLES.idempotencyTable}-dense`,
    approvalsTable: `${TABLES.approvalsTable}-dense`,
  };
  await createTestTables(db, names);
  const config = parseConfig({ mode: 'enforce', leakDetection: { logGroups: [LOG_GROUP] } });
  return {
    config,
    policyVersion: policyVersion(config),
    ...names,
    topicArn: `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`,
    governedAccountId: ACCOUNT,
    iamFor: () => new IAMClient({ region: 'us-east-1' }),
    cloudTrailFor: (region) => new CloudTrailClient({ region }),
    dynamo: db.client,
    sns: new SNSClient({ region: 'us-east-1' }),
    logger: new Logger({ serviceName: 'keyguard-leak' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-leak' }),
    verifier: new BedrockKeyProbe({ region: 'us-east-1', fetch, timeoutMs: 500, now: () => NOW }),
    now: () => NOW,
  };
}

function payload(messages: string[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      messageType: 'DATA_MESSAGE',
      owner: ACCOUNT,
      logGroup: LOG_GROUP,
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

function fill(unit: string, size: number): string {
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('leak function on prefix-dense batches', () => {
  it(
    'decides the real key in a batch of 256 KiB prefix-dense messages',
    async () => {
      // Prepare: eight messages of the kinds that were slowest, the real key in the middle and at the end.
      const dense = [
        fill('ABSK', 256 * KiB),
        fill(`ABSK${b64(`${USER}-at-${ACCOUNT}:${'x'.repeat(59)}`)}`, 256 * KiB),
        fill('ABSK%2BABSK\\u002BABSK\\\\\\/', 256 * KiB),
        fill(`bedrock-api-key-${b64('bedrock.amazonaws.com/?')}ABSK`, 256 * KiB),
      ];
      const messages = [
        ...dense,
        `GET /chat?token=${encodeURIComponent(REAL_KEY)} 200`,
        ...dense,
        `${fill('ABSK', 200 * KiB)} ${REAL_KEY}`,
      ];
      const handler = createLeakHandler(await runtime());

      // Act
      const result = await handler({ awslogs: { data: gzipSync(payload(messages)).toString('base64') } });

      // Assess: the real key is found in both messages and decided (deactivated); the forged look-alikes
      // the dense messages hold (the user's public alias, any secret) are decided too, each once per message
      // however often repeated there, and rejected by Bedrock.
      expect(result.status).toBe('scanned');
      const findings = result.status === 'scanned' ? result.findings : [];
      const real = findings.filter((f) => f.fingerprint === fingerprint(REAL_KEY));
      expect(real.map((f) => f.logEventId.slice(-4))).toEqual(['0004', '0009']);
      expect(real[0]).toMatchObject({ outcome: 'deactivated', keyIds: [KEY_ID] });
      const forged = findings.filter((f) => f.fingerprint !== fingerprint(REAL_KEY));
      expect(forged.length).toBeLessThanOrEqual(4);
      expect(new Set(forged.map((f) => f.outcome))).toEqual(new Set(['rejected']));
      const updates = iam.commandCalls(UpdateServiceSpecificCredentialCommand).map((c) => c.args[0].input);
      expect(updates.length).toBeGreaterThanOrEqual(1);
      for (const u of updates)
        expect(u).toMatchObject({ ServiceSpecificCredentialId: KEY_ID, Status: 'Inactive' });
    },
    LIMIT_MS,
  );

  it(
    'refuses a payload that decompresses past the bound, naming it, without decompressing it whole',
    async () => {
      // Prepare: a gzip bomb (a few tens of KiB expanding past MAX_BATCH_BYTES).
      const bomb = gzipSync(payload([fill('ABSK', MAX_BATCH_BYTES + KiB)]));
      const handler = createLeakHandler(await runtime());

      // Act / Assess
      expect(bomb.length).toBeLessThan(MAX_BATCH_BYTES / 100);
      const run = handler({ awslogs: { data: bomb.toString('base64') } });
      await expect(run).rejects.toThrow(InvalidLogEventError);
      await expect(run).rejects.toThrow(`decompresses to more than ${MAX_BATCH_BYTES} bytes`);
    },
    LIMIT_MS,
  );
});
