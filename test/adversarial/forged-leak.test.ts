import { randomBytes } from 'node:crypto';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { IAMClient, UpdateServiceSpecificCredentialCommand } from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { FetchLike } from '../../lambda/adapters/bedrock-key-probe';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import type { Decision } from '../../lambda/domain/types';
import { createLeakHandler, type LeakRuntime } from '../../lambda/handlers/leak-handler';
import { fingerprint } from '../../lambda/shared/redact';
import { type Capture, captureOutput } from '../support/capture';
import { scanAll, startTestDynamo } from '../support/dynamo';
import { ACCOUNT } from '../support/events';
import { leakRuntime, longTermKeyOf, mockGovernedUser, subscriptionBatch } from '../support/leak-harness';
import { fakeShortTermKey, leakedFragments } from '../support/secrets';

/**
 * Issue 10, item 1: a forged leak must never deactivate a real key. The alias a long-term key decodes to
 * (`<user>-at-<account>`) is public; anyone who can write a line into a subscribed log group can put
 * `ABSK` + base64("<real user>-at-<account>:<anything>") there. Only the secret proves a leak, so the function
 * asks Bedrock (one read-only ListFoundationModels call authenticated by the found key) before it acts.
 *
 * These run the real leak handler and the real BedrockKeyProbe; only the network is simulated (an injected
 * fetch answering as Bedrock does), IAM/SNS/CloudTrail are aws-sdk-client-mock and the tables are dynalite.
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const cloudtrail = mockClient(CloudTrailClient);
const NOW = new Date('2026-11-20T10:00:00Z');
const USER = 'svc-chatbot';
const KEY_ID = 'ACCAEXAMPLEREALKEY001';
/** The one secret Bedrock accepts for the user's real key (never written by the attacker). */
const REAL_SECRET = randomBytes(45).toString('base64');
const REAL_KEY = longTermKeyOf(USER, REAL_SECRET);

/** What an attacker can write: the real user's public alias and a secret of their choosing. */
function forgedKey(): string {
  return longTermKeyOf(USER);
}

type Endpoint = (authorization: string) => { status: number; body: string; errorType?: string } | 'hang';

/** Bedrock as seen over HTTPS: only the real key authenticates; every request is recorded (never printed). */
function simulatedBedrock(answer?: Endpoint) {
  const requests: Array<{ url: string; authorization: string; method: string }> = [];
  const realAnswer: Endpoint = (authorization) =>
    authorization === `Bearer ${REAL_KEY}`
      ? { status: 200, body: '{"modelSummaries":[]}' }
      : {
          status: 403,
          body: '{"Message":"Authentication failed: Please make sure your API Key is valid."}',
        };
  const fetch: FetchLike = async (url, init) => {
    const authorization = new Headers(init.headers).get('authorization') ?? '';
    requests.push({ url: String(url), authorization, method: init.method ?? 'GET' });
    const a = (answer ?? realAnswer)(authorization);
    if (a === 'hang') {
      return new Promise((_resolve, reject) => {
        init.signal?.addEventListener('abort', () =>
          reject(
            Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' }),
          ),
        );
      });
    }
    return new Response(a.body, {
      status: a.status,
      headers: a.errorType ? { 'x-amzn-ErrorType': a.errorType } : {},
    });
  };
  return { fetch, requests };
}

let db: EmbeddedDynamo;
let out: Capture;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
});

beforeEach(() => {
  mockGovernedUser(
    { iam, sns, cloudtrail },
    {
      name: USER,
      keyId: KEY_ID,
      tags: [
        { Key: 'owner', Value: 'team-chat@example.com' },
        { Key: 'purpose', Value: 'customer chatbot' },
        { Key: 'review-cadence', Value: '90d' },
      ],
    },
  );
  out = captureOutput();
});
afterEach(() => out.restore());

function runtime(fetch: FetchLike, leakDetection: Record<string, unknown> = {}): Promise<LeakRuntime> {
  return leakRuntime(db, { fetch, now: NOW, probeTimeoutMs: 200, leakDetection });
}

/** A batch as CloudWatch Logs delivers it, the attacker's text in each line (e.g. a logged query string). */
const batch = subscriptionBatch;

async function decisions(rt: LeakRuntime): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY_ID);
}

describe('adversarial: a forged leak of a real user', () => {
  it('deactivates nothing when the string is not a working key, and records it as forged or inactive', async () => {
    // Prepare: an attacker writes forged keys for the real user into a public API's access log
    const bedrock = simulatedBedrock();
    const rt = await runtime(bedrock.fetch);
    const forged = [forgedKey(), forgedKey()];
    const handler = createLeakHandler(rt);

    // Act
    const result = await handler(batch([`GET /search?q=${forged[0]} 200`, `User-Agent: ${forged[1]}`]));

    // Assess: no IAM change, one verification call per distinct key, each rejected, recorded together (one
    // decision per user and batch, with the count and fingerprints of the strings) and notified once
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    expect(bedrock.requests).toHaveLength(2);
    expect(result).toMatchObject({
      findings: [
        { outcome: 'rejected', verification: 'REJECTED', keyIds: [KEY_ID] },
        { outcome: 'rejected', verification: 'REJECTED', keyIds: [KEY_ID] },
      ],
    });
    const recorded = await decisions(rt);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]?.leak?.sightings).toEqual({
      strings: 2,
      logEvents: 2,
      fingerprints: forged.map(fingerprint),
      logEventIds: [expect.stringMatching(/0$/), expect.stringMatching(/1$/)],
    });
    expect(recorded[0]?.violations[0]?.detail).toContain('2 distinct strings');
    for (const d of recorded) {
      expect(d).toMatchObject({ action: 'NOTIFY', applied: false, status: 'Active' });
      expect(d.leak?.verification).toMatchObject({ result: 'REJECTED', checkedAt: NOW.toISOString() });
      expect(d.violations).toHaveLength(1);
      expect(d.violations[0]).toMatchObject({ code: 'LEAKED', severity: 'medium' });
      expect(d.violations[0]?.detail).toContain('none is a working key');
      expect(d.violations[0]?.detail).toContain('nothing was deactivated');
    }
    const notices = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(notices).toHaveLength(1);
    for (const n of notices) {
      expect(n.MessageAttributes?.severity?.StringValue).toBe('medium');
      expect(n.Message).toContain('forged');
    }
    // The key's state is untouched: a later sweep does not inherit a leak
    const keyItems = await scanAll(db, rt.keysTable);
    expect(JSON.stringify(keyItems)).not.toContain('"leak"');
    // And the forged strings are nowhere in what the function wrote
    const written = [
      out.text(),
      JSON.stringify(notices),
      JSON.stringify(await scanAll(db, rt.decisionsTable)),
    ];
    expect(leakedFragments(written.join('\n'), forged)).toEqual([]);
  });

  it('deactivates the key when the string is the working key (Bedrock authenticates it)', async () => {
    // Prepare
    const bedrock = simulatedBedrock();
    const rt = await runtime(bedrock.fetch);

    // Act
    const result = await createLeakHandler(rt)(batch([`DEBUG client {"apiKey":"${REAL_KEY}"}`]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'deactivated', verification: 'VERIFIED' }] });
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      UserName: USER,
      ServiceSpecificCredentialId: KEY_ID,
      Status: 'Inactive',
    });
    const [d] = await decisions(rt);
    expect(d).toMatchObject({
      action: 'DEACTIVATE',
      applied: true,
      leak: { verification: { result: 'VERIFIED' } },
    });
    expect(leakedFragments(out.text(), [REAL_KEY])).toEqual([]);
  });

  it('does not hang and does not deactivate when Bedrock does not answer: a critical UNVERIFIED notice', async () => {
    // Prepare: the endpoint never answers (the probe's own timeout ends the wait)
    const bedrock = simulatedBedrock(() => 'hang');
    const rt = await runtime(bedrock.fetch);

    // Act
    const result = await createLeakHandler(rt)(batch([`token=${REAL_KEY}`]));

    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'unverified', verification: 'UNVERIFIED' }] });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    const [d] = await decisions(rt);
    expect(d).toMatchObject({
      action: 'NOTIFY',
      applied: false,
      leak: { verification: { result: 'UNVERIFIED' } },
    });
    expect(d?.violations.find((v) => v.code === 'LEAKED')?.severity).toBe('critical');
    const [n] = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(n?.MessageAttributes?.severity?.StringValue).toBe('critical');
    expect(n?.Message).toContain('could not be verified');
  }, 10_000);

  it('does not deactivate a forged key even when unverified leaks are set to deactivate, if Bedrock rejects it', async () => {
    // Prepare: the opt-in changes only what an UNVERIFIED leak does; a REJECTED one never acts
    const bedrock = simulatedBedrock();
    const rt = await runtime(bedrock.fetch, { deactivateUnverified: true });

    // Act
    await createLeakHandler(rt)(batch([forgedKey()]));

    // Assess
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    const [d] = await decisions(rt);
    expect(d?.leak?.verification?.result).toBe('REJECTED');
  });

  it('a forged short-term key naming a real access key id gets no revocation advice, only a medium notice', async () => {
    // Prepare: a presigned-URL-shaped string with a random signature (the signer's access key id is not secret)
    const bedrock = simulatedBedrock();
    const rt = await runtime(bedrock.fetch);
    const forged = fakeShortTermKey(`forged-${randomBytes(4).toString('hex')}`);

    // Act
    const result = await createLeakHandler(rt)(batch([`Authorization: Bearer ${forged}`]));

    // Assess: checked in the key's own region, rejected, told as such
    expect(bedrock.requests.map((r) => r.url)).toEqual([
      'https://bedrock.us-east-1.amazonaws.com/foundation-models',
    ]);
    expect(result).toMatchObject({
      findings: [{ kind: 'SHORT_TERM', outcome: 'rejected', verification: 'REJECTED' }],
    });
    const [n] = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(n?.MessageAttributes?.severity?.StringValue).toBe('medium');
    expect(n?.Message).toContain('Nothing needs revoking');
    expect(n?.Message).not.toContain('Revoke active sessions');
    expect(leakedFragments(`${out.text()}\n${JSON.stringify(n)}`, [forged])).toEqual([]);
  });

  it('asks Bedrock once per distinct key in a batch and notifies it once, however often the key is repeated', async () => {
    // Prepare: the same forged key in 20 lines
    const bedrock = simulatedBedrock();
    const rt = await runtime(bedrock.fetch);
    const forged = forgedKey();

    // Act
    await createLeakHandler(rt)(batch(Array.from({ length: 20 }, (_v, i) => `line ${i} ${forged}`)));

    // Assess
    expect(bedrock.requests).toHaveLength(1);
    expect(bedrock.requests[0]).toMatchObject({
      method: 'GET',
      url: 'https://bedrock.us-east-1.amazonaws.com/foundation-models',
    });
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
    // One decision counting the twenty lines (and naming them, up to 20); its owner hears once
    const [d, ...more] = await decisions(rt);
    expect(more).toEqual([]);
    expect(d?.leak?.sightings).toMatchObject({
      strings: 1,
      logEvents: 20,
      fingerprints: [fingerprint(forged)],
    });
    expect(d?.leak?.sightings?.logEventIds).toHaveLength(20);
    expect(d?.violations[0]?.detail).toContain('and in 19 other log events');
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
  });
});
