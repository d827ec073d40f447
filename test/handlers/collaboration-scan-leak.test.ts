import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IAMClient, UpdateServiceSpecificCredentialCommand } from '@aws-sdk/client-iam';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { createCollaborationScanHandler } from '../../lambda/handlers/collaboration-scan-handler';
import {
  acceptPutEvents,
  captureEachTest,
  leakOverTheBus,
  scanContext,
  scanRuntimeBase,
  useScanState,
} from '../support/collaboration-scan-harness';
import { startTestDynamo } from '../support/dynamo';
import { FakeSlack } from '../support/fake-slack';
import { longTermKeyOf, mockGovernedUser } from '../support/leak-harness';

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
const db = useScanState(slack, TABLE, startTestDynamo);
captureEachTest();

it('a key pasted in Slack ends in one LEAKED decision at its permalink; the next run records nothing more', async () => {
  // Prepare
  mockGovernedUser({ iam, sns, cloudtrail }, { name: USER, keyId: KEY_ID });
  secrets.on(GetSecretValueCommand).resolves({ SecretString: TOKEN });
  acceptPutEvents(eventBridge);
  slack.channels = [
    {
      id: 'C0DEPLOY',
      name: 'deploys',
      messages: [{ ts: '1795160000.000100', text: `try this key: ${KEY}`, user: 'U0MALLORY' }],
    },
  ];
  const scan = createCollaborationScanHandler({
    ...scanRuntimeBase(db(), { table: TABLE, source: 'slack', now: NOW }),
    slackSecretId: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:slack-AbCdEf',
    slack: { apiUrl: slack.url, initialLookbackHours: 24 },
  });
  const context = scanContext();
  const { deliver, decisions } = await leakOverTheBus(db(), eventBridge, NOW);

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
