import { randomBytes } from 'node:crypto';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import { BedrockKeyProbe, type FetchLike } from '../../lambda/adapters/bedrock-key-probe';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { MAX_GROUPS, MAX_SAMPLE } from '../../lambda/domain/leak-plan';
import type { Decision } from '../../lambda/domain/types';
import { createLeakHandler, type LeakRuntime } from '../../lambda/handlers/leak-handler';
import { fingerprint } from '../../lambda/shared/redact';
import { type Capture, captureOutput } from '../support/capture';
import { scanAll, startTestDynamo } from '../support/dynamo';
import { ACCOUNT } from '../support/events';
import { leakRuntime, longTermKeyOf, mockGovernedUser, subscriptionBatch } from '../support/leak-harness';
import { leakedFragments } from '../support/secrets';

/**
 * Issue 10, item 2, the leak function's side: a batch full of DIFFERENT forged keys (hundreds of distinct
 * `ABSK` strings naming one real user; a 256 KiB log message holds about 2,000) used to cost the whole pipeline
 * (IAM, DynamoDB, SNS) per string, one after another: past the function's 60 s timeout in AWS, so that a REAL key
 * in the same batch went to the failure queue undecided. Anyone who can write to a subscribed log group can do
 * this (docs/threat-model.md).
 *
 * The real handler runs on such batches (real BedrockKeyProbe over a simulated Bedrock, IAM/SNS mocked, tables in
 * dynalite). The work is COUNTED (IAM, DynamoDB and SNS calls), not timed: it must not grow with the number of
 * forged strings, and the real key must be deactivated. The jest timeout only proves "no hang".
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const cloudtrail = mockClient(CloudTrailClient);
const NOW = new Date('2026-11-20T10:00:00Z');
const USER = 'svc-flooded';
const KEY_ID = 'ACCAEXAMPLEFLOODKEY01';
const REAL_KEY = longTermKeyOf(USER);
const LIMIT_MS = 120_000;

function forgedKeys(n: number): string[] {
  return Array.from({ length: n }, () => longTermKeyOf(USER));
}

/** Bedrock over HTTPS, simulated: only the real key authenticates. `onReal` runs when the real key is checked. */
function simulatedBedrock(onReal: () => void = () => undefined) {
  const asked: string[] = [];
  const fetch: FetchLike = async (_url, init) => {
    const auth = new Headers(init.headers).get('authorization') ?? '';
    asked.push(auth);
    if (auth === `Bearer ${REAL_KEY}`) {
      onReal();
      return new Response('{"modelSummaries":[]}', { status: 200 });
    }
    return new Response('{"Message":"Authentication failed: Please make sure your API Key is valid."}', {
      status: 403,
    });
  };
  return { fetch, asked };
}

let db: EmbeddedDynamo;
let out: Capture;
/** DynamoDB requests by command name (every request the function's tables receive). */
let dynamoCalls: string[] = [];

beforeAll(async () => {
  db = await startTestDynamo();
  db.client.middlewareStack.add(
    (next, context) => async (args) => {
      dynamoCalls.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: 'countDynamoCalls' },
  );
});
afterAll(async () => {
  await db.close();
});
beforeEach(() => {
  mockGovernedUser({ iam, sns, cloudtrail }, { name: USER, keyId: KEY_ID });
  out = captureOutput();
});
afterEach(() => out.restore());

function runtime(fetch: FetchLike): Promise<LeakRuntime> {
  return leakRuntime(db, { fetch, now: NOW, probeTimeoutMs: 500 });
}

const batch = subscriptionBatch;

/** `n` distinct forged keys, `perLine` to a logged request line, then the real key in the last line. */
function floodMessages(forged: string[], perLine: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < forged.length; i += perLine) {
    lines.push(`GET /search?q=${forged.slice(i, i + perLine).join('+')} 200`);
  }
  lines.push(`DEBUG client {"apiKey":"${REAL_KEY}"}`);
  return lines;
}

interface Work {
  iam: number;
  dynamo: number;
  sns: number;
}

function work(): Work {
  return { iam: iam.calls().length, dynamo: dynamoCalls.length, sns: sns.calls().length };
}

async function decisionsOnKey(rt: LeakRuntime): Promise<Decision[]> {
  return new DynamoAuditLog(db.doc, rt).decisionsForKey(ACCOUNT, KEY_ID);
}

/** Runs one flood through a fresh handler and returns the work it took and what it decided. */
async function flood(n: number, perLine: number) {
  const bedrock = simulatedBedrock();
  const rt = await runtime(bedrock.fetch);
  const forged = forgedKeys(n);
  const event = batch(floodMessages(forged, perLine));
  dynamoCalls = [];
  const result = await createLeakHandler(rt)(event);
  return { rt, forged, event, result, work: work(), asked: bedrock.asked.length };
}

describe('leak function on a flood of distinct forged keys', () => {
  it(
    'deactivates the real key, and the work (IAM, DynamoDB, SNS calls) does not grow with the forged strings',
    async () => {
      // Act: 500 distinct forged keys (10 per line, ~66 KB), then 2,000 (one 256 KiB line) in a second batch
      const small = await flood(500, 10);
      iam.resetHistory();
      sns.resetHistory();
      const large = await flood(2000, 2000);

      // Assess: every distinct string was checked once, the real key is deactivated in both batches...
      expect(small.asked).toBe(501);
      expect(large.asked).toBe(2001);
      for (const run of [small, large]) {
        const findings = run.result.status === 'scanned' ? run.result.findings : [];
        const real = findings.filter((f) => f.fingerprint === fingerprint(REAL_KEY));
        expect(real).toEqual([expect.objectContaining({ outcome: 'deactivated', keyIds: [KEY_ID] })]);
        expect(findings.filter((f) => f.outcome === 'rejected')).toHaveLength(run.forged.length);
      }
      expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 1);
      // ...and the work of 2,000 forged strings is the work of 500: a handful of calls, whatever their number
      expect(large.work).toEqual(small.work);
      expect(small.work.iam).toBeLessThanOrEqual(5);
      expect(small.work.sns).toBeLessThanOrEqual(2);
      expect(small.work.dynamo).toBeLessThanOrEqual(30);
    },
    LIMIT_MS,
  );

  it(
    'records the forged strings as one rejected decision per user: counts and a bounded sample of fingerprints',
    async () => {
      // Act
      const { rt, forged } = await flood(500, 10);

      // Assess: two decisions on the key: the real leak (deactivated), and the forged strings together
      const decisions = await decisionsOnKey(rt);
      expect(decisions).toHaveLength(2);
      const real = decisions.find((d) => d.leak?.fingerprint === fingerprint(REAL_KEY));
      expect(real).toMatchObject({
        action: 'DEACTIVATE',
        applied: true,
        leak: { verification: { result: 'VERIFIED' } },
      });
      const group = decisions.find((d) => d !== real);
      expect(group).toMatchObject({
        action: 'NOTIFY',
        applied: false,
        notice: 'first',
        leak: {
          verification: { result: 'REJECTED' },
          sightings: { strings: 500, logEvents: 50 },
        },
      });
      expect(group?.leak?.sightings?.fingerprints).toEqual(forged.slice(0, MAX_SAMPLE).map(fingerprint));
      expect(group?.leak?.sightings?.logEventIds).toHaveLength(MAX_SAMPLE);
      expect(group?.violations).toEqual([expect.objectContaining({ code: 'LEAKED', severity: 'medium' })]);
      expect(group?.violations[0]?.detail).toContain('500 distinct strings');
      expect(group?.violations[0]?.detail).toContain('nothing was deactivated');
      // One medium notice for all forged strings, one critical for the real key
      const severities = sns
        .commandCalls(PublishCommand)
        .map((c) => c.args[0].input.MessageAttributes?.severity?.StringValue);
      expect(severities.sort()).toEqual(['critical', 'medium']);
      // Nothing of any key anywhere it wrote
      const written = [
        out.text(),
        JSON.stringify(sns.commandCalls(PublishCommand).map((c) => c.args[0].input)),
        JSON.stringify(await scanAll(db, rt.decisionsTable)),
        JSON.stringify(await scanAll(db, rt.keysTable)),
      ].join('\n');
      expect(leakedFragments(written, [REAL_KEY, ...forged.slice(0, 50)])).toEqual([]);
    },
    LIMIT_MS,
  );

  it(
    'a redelivered flood records nothing, notifies nobody and changes nothing again',
    async () => {
      // Prepare: the first delivery; IAM then shows the key Inactive (a new check of it would be rejected)
      const first = await flood(500, 10);
      iam.on(ListServiceSpecificCredentialsCommand).resolves({
        ServiceSpecificCredentials: [
          {
            UserName: USER,
            Status: 'Inactive',
            ServiceCredentialAlias: `${USER}-at-${ACCOUNT}`,
            CreateDate: new Date('2026-10-01T00:00:00Z'),
            ExpirationDate: new Date('2026-12-30T00:00:00Z'),
            ServiceSpecificCredentialId: KEY_ID,
            ServiceName: 'bedrock.amazonaws.com',
          },
        ],
      });
      const before = (await scanAll(db, first.rt.decisionsTable)).length;
      iam.resetHistory();
      sns.resetHistory();

      // Bedrock now rejects every string, the real key included (keyguard deactivated it)
      const rejectAll: FetchLike = async () =>
        new Response('{"Message":"Authentication failed: Please make sure your API Key is valid."}', {
          status: 403,
        });
      const verifier = new BedrockKeyProbe({
        region: 'us-east-1',
        fetch: rejectAll,
        timeoutMs: 500,
        now: () => NOW,
      });

      // Act
      const again = await createLeakHandler({ ...first.rt, verifier })(first.event);

      // Assess
      expect((await scanAll(db, first.rt.decisionsTable)).length).toBe(before);
      expect(sns).toHaveReceivedCommandTimes(PublishCommand, 0);
      expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
      const findings = again.status === 'scanned' ? again.findings : [];
      expect(new Set(findings.map((f) => f.outcome))).toEqual(new Set(['duplicate']));
      expect(findings.find((f) => f.fingerprint === fingerprint(REAL_KEY))?.verification).toBe('VERIFIED');
    },
    LIMIT_MS,
  );

  it(
    'when time runs short, decides the verified key and only logs and counts the forged strings, without failing',
    async () => {
      // Prepare: the Lambda context says the checks used up the time: 4 s are left once the real key is checked
      let remainingMs = 50_000;
      const bedrock = simulatedBedrock(() => {
        remainingMs = 4_000;
      });
      const rt = await runtime(bedrock.fetch);
      const forged = forgedKeys(500);
      const context = { getRemainingTimeInMillis: () => remainingMs };

      // Act
      const result = await createLeakHandler(rt)(batch(floodMessages(forged, 10)), context);

      // Assess: the real key is deactivated; the forged strings are not decided, but logged with counts and
      // a sample of fingerprints, and counted in a metric: nothing silently dropped
      const findings = result.status === 'scanned' ? result.findings : [];
      expect(findings.find((f) => f.fingerprint === fingerprint(REAL_KEY))?.outcome).toBe('deactivated');
      expect(findings.filter((f) => f.outcome === 'not-decided')).toHaveLength(500);
      const decisions = await decisionsOnKey(rt);
      expect(decisions.map((d) => d.action)).toEqual(['DEACTIVATE']);
      const logged = out.lines().find((l) => l.message === 'leak findings not decided in this batch');
      expect(logged).toMatchObject({
        reason: 'deadline',
        strings: 500,
        findings: 500,
        byResult: { REJECTED: 500 },
      });
      expect(logged?.fingerprints).toEqual(forged.slice(0, MAX_SAMPLE).map(fingerprint));
      expect(out.text()).toContain('"LeaksNotDecided"');
    },
    LIMIT_MS,
  );
  it(
    'when no string can be verified, the real key among them gets a critical notice and nothing is deactivated',
    async () => {
      // Prepare: Bedrock answers 503 to everything (no telling answer), 500 forged strings and the real key
      const unavailable: FetchLike = async () =>
        new Response('{"message":"Service Unavailable"}', { status: 503 });
      const rt = await runtime(unavailable);
      const forged = forgedKeys(500);
      dynamoCalls = [];

      // Act
      const result = await createLeakHandler(rt)(batch(floodMessages(forged, 10)));

      // Assess: nothing deactivated; the real key is in the user's unverified group, whose notice is critical
      expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
      const findings = result.status === 'scanned' ? result.findings : [];
      expect(findings.find((f) => f.fingerprint === fingerprint(REAL_KEY))).toMatchObject({
        outcome: 'unverified',
        verification: 'UNVERIFIED',
      });
      const decisions = await decisionsOnKey(rt);
      const group = decisions.find((d) => (d.leak?.sightings?.strings ?? 0) > 1);
      expect(group).toMatchObject({
        action: 'NOTIFY',
        applied: false,
        leak: { sightings: { strings: 498 }, verification: { result: 'UNVERIFIED' } },
      });
      expect(group?.violations[0]?.severity).toBe('critical');
      // Three strings one by one, then the group: a bounded number of decisions and calls
      expect(decisions).toHaveLength(4);
      expect(work().iam).toBeLessThanOrEqual(6);
      expect(work().sns).toBeLessThanOrEqual(4);
      expect(dynamoCalls.length).toBeLessThanOrEqual(60);
      const severities = sns
        .commandCalls(PublishCommand)
        .map((c) => c.args[0].input.MessageAttributes?.severity?.StringValue);
      expect(severities).toContain('critical');
      // Every string checked is logged with its fingerprint (the real one too): a person can find it
      const checked = out
        .lines()
        .filter((l) => l.message === 'found key checked')
        .map((l) => l.fingerprint);
      expect(checked).toContain(fingerprint(REAL_KEY));
      expect(checked).toHaveLength(501);
    },
    LIMIT_MS,
  );

  it(
    'strings naming many users: at most MAX_GROUPS group decisions, the rest logged and counted, the real key decided',
    async () => {
      // Prepare: 5 forged strings for each of 30 users that all have a key, then the real key of USER
      iam.on(ListServiceSpecificCredentialsCommand).callsFake((input: { UserName?: string }) => ({
        ServiceSpecificCredentials: [
          {
            UserName: input.UserName,
            Status: 'Active',
            ServiceCredentialAlias: `${input.UserName}-at-${ACCOUNT}`,
            CreateDate: new Date('2026-10-01T00:00:00Z'),
            ExpirationDate: new Date('2026-12-30T00:00:00Z'),
            ServiceSpecificCredentialId:
              input.UserName === USER
                ? KEY_ID
                : `ACCA${String(input.UserName).toUpperCase().replace(/-/g, '')}`,
            ServiceName: 'bedrock.amazonaws.com',
          },
        ],
      }));
      const rt = await runtime(simulatedBedrock().fetch);
      const users = Array.from({ length: 30 }, (_v, i) => `team-${i}`);
      const lines = users.map(
        (u) =>
          `GET /q=${Array.from({ length: 5 }, () => `ABSK${Buffer.from(`${u}-at-${ACCOUNT}:${randomBytes(45).toString('base64')}`).toString('base64')}`).join(' ')}`,
      );
      lines.push(`token=${REAL_KEY}`);

      // Act
      const result = await createLeakHandler(rt)(batch(lines));

      // Assess
      const findings = result.status === 'scanned' ? result.findings : [];
      expect(findings.find((f) => f.fingerprint === fingerprint(REAL_KEY))?.outcome).toBe('deactivated');
      expect(findings.filter((f) => f.outcome === 'rejected')).toHaveLength(MAX_GROUPS * 5);
      expect(findings.filter((f) => f.outcome === 'not-decided')).toHaveLength((30 - MAX_GROUPS) * 5);
      const logged = out.lines().find((l) => l.message === 'leak findings not decided in this batch');
      expect(logged).toMatchObject({
        reason: 'bound',
        strings: 100,
        subjects: 20,
        byResult: { REJECTED: 100 },
      });
      // IAM: one listing and one tag read per group and for the real key, and its deactivation (re-read, update)
      expect(iam.calls().length).toBeLessThanOrEqual(2 * (MAX_GROUPS + 1) + 2);
      expect(sns.calls().length).toBe(MAX_GROUPS + 1);
    },
    LIMIT_MS,
  );
});
