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
import { createCollaborationScanHandler } from '../../lambda/handlers/collaboration-scan-handler';
import { createLeakHandler } from '../../lambda/handlers/leak-handler';
import { type Capture, captureOutput } from '../support/capture';
import { scanAll, startTestDynamo } from '../support/dynamo';
import { ACCOUNT, lambdaContext } from '../support/events';
import { FakeSlack } from '../support/fake-slack';
import { leakRuntime, longTermKeyOf, mockGovernedUser } from '../support/leak-harness';

/**
 * Issue 15 §3 end to end: a key pasted in Slack, found by the scheduled scan, put on the bus as scan reports are,
 * delivered to the real leak function (on dynalite) as the stack's rule delivers it: LEAKED, critical, the Slack
 * permalink as its location, one notice; the next scheduled run reports nothing, so nothing more is recorded.
 */

const NOW = new Date('2026-11-20T10:00:00Z'); // 1795168800
const TOKEN = 'xoxb-1212-3434-5656-fake-end-to-end-token';
const USER = 'svc-slack-leak';
const KEY_ID = 'ACCAEXAMPLESLACKLEAK1';
const KEY = longTermKeyOf(USER);
const TABLE = 'e2e-collaboration-state';

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const cloudtrail = mockClient(CloudTrailClient);
const secrets = mockClient(SecretsManagerClient);
const eventBridge = mockClient(EventBridgeClient);
const slack = new FakeSlack({ token: TOKEN });
let db: EmbeddedDynamo;
let out: Capture;

beforeAll(async () => {
  await slack.start();
  db = await startTestDynamo();
  await ensureTables(db.client, [collaborationScanStateTableDefinition(TABLE)]);
});
afterAll(async () => {
  await slack.stop();
  await db.close();
});
beforeEach(() => {
  out = captureOutput();
});
afterEach(() => out.restore());

it('a key pasted in Slack ends in one LEAKED decision at its permalink; the next run records nothing more', async () => {
  // Prepare
  mockGovernedUser({ iam, sns, cloudtrail }, { name: USER, keyId: KEY_ID });
  secrets.on(GetSecretValueCommand).resolves({ SecretString: TOKEN });
  eventBridge.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map((_, i) => ({ EventId: `evt-${i}` })),
  }));
  slack.channels = [
    {
      id: 'C0DEPLOY',
      name: 'deploys',
      messages: [{ ts: '1795160000.000100', text: `try this key: ${KEY}`, user: 'U0MALLORY' }],
    },
  ];
  const scan = createCollaborationScanHandler({
    secrets: new SecretsManagerClient({ region: 'us-east-1' }),
    slackSecretId: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:slack-AbCdEf',
    slack: { apiUrl: slack.url, initialLookbackHours: 24 },
    state: new CollaborationScanState(db.doc, TABLE, 'slack'),
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
        locations: [
          { path: 'https://acme.slack.com/archives/C0DEPLOY/p1795160000000100', line: 1, column: 15 },
        ],
      },
    },
  });
  expect(d?.violations.find((v) => v.code === 'LEAKED')?.severity).toBe('critical');
  expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
  expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);

  // Act: the next scheduled run
  await scan({}, context);
  // Assess: nothing new in Slack, nothing put, nothing recorded
  expect(await deliver()).toBe(0);
  expect(await decisions()).toHaveLength(1);
  expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
});
