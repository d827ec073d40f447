import { gzipSync } from 'node:zlib';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { IAMClient, UpdateServiceSpecificCredentialCommand } from '@aws-sdk/client-iam';
import { SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import type { FetchLike } from '../../lambda/adapters/bedrock-key-probe';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { MAX_BATCH_BYTES } from '../../lambda/domain/leak-batch';
import {
  createLeakHandler,
  InvalidLogEventError,
  type LeakRuntime,
} from '../../lambda/handlers/leak-handler';
import { fingerprint } from '../../lambda/shared/redact';
import { type Capture, captureOutput } from '../support/capture';
import { startTestDynamo } from '../support/dynamo';
import { ACCOUNT } from '../support/events';
import { leakRuntime, longTermKeyOf, mockGovernedUser, subscriptionPayload } from '../support/leak-harness';

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
const REAL_KEY = longTermKeyOf(USER);
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
  mockGovernedUser({ iam, sns, cloudtrail }, { name: USER, keyId: KEY_ID });
  out = captureOutput();
});
afterEach(() => out.restore());

function runtime(): Promise<LeakRuntime> {
  return leakRuntime(db, { fetch, now: NOW, probeTimeoutMs: 500 });
}

const payload = subscriptionPayload;

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
