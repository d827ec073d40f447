import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { IAMClient, UpdateServiceSpecificCredentialCommand } from '@aws-sdk/client-iam';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CollaborationScanState,
  collaborationScanStateTableDefinition,
} from '../../lambda/adapters/collaboration-scan-state';
import { type EmbeddedDynamo, ensureTables } from '../../lambda/adapters/embedded-dynamodb';
import type { Decision } from '../../lambda/domain/types';
import { createJiraScanHandler } from '../../lambda/handlers/collaboration-scan-jira';
import { createLeakHandler } from '../../lambda/handlers/leak-handler';
import { type Capture, captureOutput } from '../support/capture';
import { scanAll, startTestDynamo } from '../support/dynamo';
import { ACCOUNT, lambdaContext } from '../support/events';
import { adf, FakeJira } from '../support/fake-jira';
import { leakRuntime, longTermKeyOf, mockGovernedUser } from '../support/leak-harness';
import { leakedFragments } from '../support/secrets';

/**
 * Issue 15 §3 end to end for Jira: a key pasted in a Jira comment, found by the scheduled scan, put on the bus as
 * scan reports are, delivered to the real leak function (on dynalite) as the stack's rule delivers it: LEAKED,
 * critical, the comment link as its location, one notice. The next run reads the mark's minute again (JQL compares
 * to the minute) and reports the same key at the same place again: the leak function records nothing more.
 */

const NOW = new Date('2026-11-20T10:00:00Z');
const EMAIL = 'scanner@example.com';
const API_TOKEN = 'ATATT3xFfGF0-fake-end-to-end-jira-api-token-9876543210';
const USER = 'svc-jira-leak';
const KEY_ID = 'ACCAEXAMPLEJIRALEAK01';
const KEY = longTermKeyOf(USER);
const TABLE = 'e2e-collaboration-state-jira';

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const cloudtrail = mockClient(CloudTrailClient);
const secrets = mockClient(SecretsManagerClient);
const eventBridge = mockClient(EventBridgeClient);
const jira = new FakeJira(EMAIL, API_TOKEN, NOW);
let db: EmbeddedDynamo;
let out: Capture;

beforeAll(async () => {
  await jira.start();
  db = await startTestDynamo();
  await ensureTables(db.client, [collaborationScanStateTableDefinition(TABLE)]);
});
afterAll(async () => {
  await jira.stop();
  await db.close();
});
beforeEach(() => {
  out = captureOutput();
});
afterEach(() => out.restore());

it('a key pasted in a Jira comment ends in one LEAKED decision at its link; the next run reports it again and nothing more is recorded', async () => {
  // Prepare
  mockGovernedUser({ iam, sns, cloudtrail }, { name: USER, keyId: KEY_ID });
  secrets
    .on(GetSecretValueCommand)
    .resolves({ SecretString: JSON.stringify({ email: EMAIL, apiToken: API_TOKEN }) });
  eventBridge.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map((_, i) => ({ EventId: `evt-${i}` })),
  }));
  const posted = new Date(NOW.getTime() - 30 * 60_000).toISOString();
  jira.issues = [
    {
      id: '10001',
      key: 'OPS-7',
      summary: 'deploy fails',
      description: adf('see the comments'),
      updated: posted,
      comments: [
        {
          id: '555',
          author: { accountId: '557058:mallory' },
          body: adf(`try this key: ${KEY}`),
          created: posted,
        },
      ],
    },
  ];
  const scan = createJiraScanHandler({
    secrets: new SecretsManagerClient({ region: 'us-east-1' }),
    jiraSecretId: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:jira-AbCdEf',
    jira: { site: jira.url, projects: ['OPS'], initialLookbackHours: 24 },
    state: new CollaborationScanState(db.doc, TABLE, 'jira'),
    eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
    busArn: `arn:aws:events:us-east-1:${ACCOUNT}:event-bus/bedrock-key-guard-governance`,
    logger: new Logger({ serviceName: 'keyguard-collaboration-scan' }),
    metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-collaboration-scan' }),
    now: () => NOW,
    sleep: async () => undefined,
  });
  const context = { ...lambdaContext(), getRemainingTimeInMillis: () => 600_000 };
  const rt = await leakRuntime(db, {
    fetch: async () => new Response('{}', { status: 200 }),
    now: NOW,
    probeTimeoutMs: 500,
  });
  const leak = createLeakHandler(rt);
  /** Each entry put so far, delivered to the leak function as the rule delivers it. */
  const deliver = async () => {
    const entries = eventBridge.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    eventBridge.resetHistory();
    for (const [i, e] of entries.entries())
      await leak({
        id: `delivery-${i}-${e.Detail?.length}`,
        source: e.Source,
        'detail-type': e.DetailType,
        account: ACCOUNT,
        time: NOW.toISOString(),
        detail: JSON.parse(e.Detail as string),
      });
    return entries.length;
  };
  const decisions = async () =>
    (await scanAll(db, rt.decisionsTable)).filter(
      (i) => !String(i.pk).startsWith('chain#'),
    ) as unknown as Decision[];

  // Act: a scheduled run, its reports delivered
  await scan({}, context);
  const delivered = await deliver();
  // Assess
  expect(delivered).toBe(1);
  const [d, ...more] = await decisions();
  expect(more).toEqual([]);
  expect(d).toMatchObject({
    keyId: KEY_ID,
    trigger: { kind: 'leak' },
    leak: {
      verification: { method: 'scan-report' },
      report: {
        by: 'keyguard scan',
        locations: [{ path: `${jira.url}/browse/OPS-7?focusedCommentId=555`, line: 1, column: 15 }],
      },
    },
  });
  expect(d?.violations.find((v) => v.code === 'LEAKED')?.severity).toBe('critical');
  expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
  expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);

  // Act: the next scheduled run reads from the mark minus one minute: OPS-7 again
  const again = await scan({}, context);
  // Assess: the same key at the same place reported again, delivered, and recorded once: no decision, no notice
  expect(again).toMatchObject({ keysReported: 1, marksMoved: 0 });
  expect(await deliver()).toBe(1);
  expect(await decisions()).toHaveLength(1);
  expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
  expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
  expect(leakedFragments(out.text(), [KEY, API_TOKEN])).toEqual([]);
});
