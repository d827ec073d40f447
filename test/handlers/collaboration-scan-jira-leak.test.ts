import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IAMClient, UpdateServiceSpecificCredentialCommand } from '@aws-sdk/client-iam';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { createJiraScanHandler } from '../../lambda/handlers/collaboration-scan-jira';
import {
  acceptPutEvents,
  captureEachTest,
  leakOverTheBus,
  scanContext,
  scanRuntimeBase,
  useScanState,
} from '../support/collaboration-scan-harness';
import { startTestDynamo } from '../support/dynamo';
import { adf, FakeJira } from '../support/fake-jira';
import { longTermKeyOf, mockGovernedUser } from '../support/leak-harness';
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
const db = useScanState(jira, TABLE, startTestDynamo);
const out = captureEachTest();

it('a key pasted in a Jira comment ends in one LEAKED decision at its link; the next run reports it again and nothing more is recorded', async () => {
  // Prepare
  mockGovernedUser({ iam, sns, cloudtrail }, { name: USER, keyId: KEY_ID });
  secrets
    .on(GetSecretValueCommand)
    .resolves({ SecretString: JSON.stringify({ email: EMAIL, apiToken: API_TOKEN }) });
  acceptPutEvents(eventBridge);
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
    ...scanRuntimeBase(db(), { table: TABLE, source: 'jira', now: NOW }),
    jiraSecretId: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:jira-AbCdEf',
    jira: { site: jira.url, projects: ['OPS'], initialLookbackHours: 24 },
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
