import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IAMClient, UpdateServiceSpecificCredentialCommand } from '@aws-sdk/client-iam';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { createConfluenceScanHandler } from '../../lambda/handlers/collaboration-scan-confluence';
import {
  acceptPutEvents,
  captureEachTest,
  leakOverTheBus,
  scanContext,
  scanRuntimeBase,
  useScanState,
} from '../support/collaboration-scan-harness';
import { startTestDynamo } from '../support/dynamo';
import { FakeConfluence } from '../support/fake-confluence';
import { longTermKeyOf, mockGovernedUser } from '../support/leak-harness';
import { leakedFragments } from '../support/secrets';

/**
 * Issue 15 §3 end to end for Confluence: a key pasted in a Confluence page, found by the scheduled scan (settings in
 * its schedule's input), put on the bus as scan reports are, delivered to the real leak function (on dynalite) as the
 * stack's rule delivers it: LEAKED, critical, the page link as its location, one notice. The next run reads from the
 * mark, the page's own modification time, reports the same key at the same place again: nothing more is recorded.
 */

const NOW = new Date('2026-11-20T10:00:00Z');
const EMAIL = 'scanner@example.com';
const API_TOKEN = 'ATATT3xFfGF0-fake-end-to-end-confluence-api-token-9876543210';
const USER = 'svc-confluence-leak';
const KEY_ID = 'ACCAEXAMPLECONFLEAK01';
const KEY = longTermKeyOf(USER);
const TABLE = 'e2e-collaboration-state-confluence';
const SITE = 'https://acme.atlassian.net';

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const cloudtrail = mockClient(CloudTrailClient);
const secrets = mockClient(SecretsManagerClient);
const eventBridge = mockClient(EventBridgeClient);
const confluence = new FakeConfluence(EMAIL, API_TOKEN);
const db = useScanState(confluence, TABLE, startTestDynamo);
const out = captureEachTest();

it('a key pasted in a Confluence page ends in one LEAKED decision at its link; the next run reports it again and nothing more is recorded', async () => {
  // Prepare
  mockGovernedUser({ iam, sns, cloudtrail }, { name: USER, keyId: KEY_ID });
  secrets
    .on(GetSecretValueCommand)
    .resolves({ SecretString: JSON.stringify({ email: EMAIL, apiToken: API_TOKEN }) });
  acceptPutEvents(eventBridge);
  const posted = new Date(NOW.getTime() - 30 * 60_000).toISOString();
  confluence.spaces = [
    {
      id: '201',
      key: 'ENG',
      pages: [
        { id: '77', title: 'deploy notes', storage: `<p>try this key: ${KEY}</p>`, modifiedAt: posted },
      ],
    },
  ];
  const scan = createConfluenceScanHandler({
    ...scanRuntimeBase(db(), { table: TABLE, source: 'confluence', now: NOW }),
    connectTo: () => confluence.url,
  });
  const context = scanContext();
  const input = {
    source: 'confluence',
    siteUrl: SITE,
    spaces: ['ENG'],
    initialLookbackHours: 24,
    secretArn: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:confluence-AbCdEf',
  };
  const { deliver, decisions } = await leakOverTheBus(db(), eventBridge, NOW);

  // Act: a scheduled run, its reports delivered
  await scan(input, context);
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
          { path: `${confluence.url}/wiki/spaces/ENG/pages/77/deploy%2Bnotes`, line: 3, column: 15 },
        ],
      },
    },
  });
  expect(d?.violations.find((v) => v.code === 'LEAKED')?.severity).toBe('critical');
  expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
  expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);

  // Act: the next scheduled run reads from the mark, page 77's own modification time: page 77 again
  const again = await scan(input, context);
  // Assess: the same key at the same place reported again, delivered, and recorded once: no decision, no notice
  expect(again).toMatchObject({ keysReported: 1, marksMoved: 0 });
  expect(await deliver()).toBe(1);
  expect(await decisions()).toHaveLength(1);
  expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
  expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
  expect(leakedFragments(out.text(), [KEY, API_TOKEN])).toEqual([]);
});
