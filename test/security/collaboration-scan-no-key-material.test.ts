import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import type { ScanReportDetail } from '../../lambda/domain/scan-report';
import { createCollaborationScanHandler } from '../../lambda/handlers/collaboration-scan-handler';
import { containsKeyMaterial } from '../../lambda/shared/redact';
import { captureOutput } from '../support/capture';
import {
  acceptPutEvents,
  busEntries,
  scanContext,
  scanRuntimeBase,
  useScanState,
} from '../support/collaboration-scan-harness';
import { scanAll } from '../support/dynamo';
import { FakeSlack } from '../support/fake-slack';
import { escapeRichLongTermKey, KEY_ENCODINGS } from '../support/key-encodings';
import { fakeShortTermKey, leakedFragments } from '../support/secrets';

/**
 * The scheduled collaboration scan (issue 15 §3) reads chat messages where people paste keys in every form; what it
 * writes (its logs and metrics, the events it puts on the bus, its state table) never repeats a key or its token.
 */

const NOW = new Date('2026-11-20T09:41:02Z');
const TOKEN = 'xoxb-7777-8888-9999-fake-token-never-logged';
const TABLE = 'security-collaboration-state';
const LONG = escapeRichLongTermKey('collab-security');
const SHORT = fakeShortTermKey('collab-security-short');
const SECRETS = [LONG, SHORT, TOKEN];

const slack = new FakeSlack({ token: TOKEN });
const secrets = mockClient(SecretsManagerClient);
const eventBridge = mockClient(EventBridgeClient);
const db = useScanState(slack, TABLE, startEmbeddedDynamo);

describe('no key material from the scheduled Slack scan', () => {
  it('reports keys pasted in every encoding, in messages, thread replies, attachments and files, without a fragment of them', async () => {
    // Prepare: one message per encoding of each key, a thread reply, a bot attachment and a file snippet
    const messages = KEY_ENCODINGS.flatMap(([name, encode], i) => [
      { ts: `1795160000.${String(i * 2).padStart(6, '0')}`, text: `${name}: ${encode(LONG)}`, user: 'U0A' },
      {
        ts: `1795160000.${String(i * 2 + 1).padStart(6, '0')}`,
        text: `${name}: ${encode(SHORT)}`,
        user: 'U0B',
      },
    ]);
    messages.push(
      {
        ts: '1795160100.000000',
        text: 'thread',
        user: 'U0C',
        thread_ts: '1795160100.000000',
        reply_count: 1,
      } as (typeof messages)[number],
      {
        ts: '1795160200.000000',
        text: '',
        bot_id: 'B0CI',
        attachments: [{ text: `ci log: ${LONG}` }],
        files: [
          {
            id: 'F001',
            name: 'env.txt',
            mode: 'snippet',
            size: 400,
            url_private_download: `${slack.url}/files/F001/env.txt`,
          },
        ],
      } as unknown as (typeof messages)[number],
    );
    slack.channels = [{ id: 'C0SEC', name: 'security', messages }];
    slack.threads = new Map([
      [
        'C0SEC:1795160100.000000',
        [
          { ts: '1795160100.000000', text: 'thread', user: 'U0C' },
          { ts: '1795160150.000000', text: `reply ${SHORT}`, user: 'U0D' },
        ],
      ],
    ]);
    slack.files = new Map([['files/F001/env.txt', `AWS_BEARER_TOKEN_BEDROCK=${LONG}\n`]]);
    secrets.on(GetSecretValueCommand).resolves({ SecretString: TOKEN });
    acceptPutEvents(eventBridge);
    const out = captureOutput();
    let result: Awaited<ReturnType<ReturnType<typeof createCollaborationScanHandler>>>;
    try {
      // Act
      result = await createCollaborationScanHandler({
        ...scanRuntimeBase(db(), { table: TABLE, source: 'slack', now: NOW }),
        slackSecretId: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:slack-AbCdEf',
        slack: { apiUrl: slack.url, initialLookbackHours: 24 },
      })({}, scanContext());
    } finally {
      out.restore();
    }
    // Assess: both keys reported, every place found, nothing of them anywhere
    expect(result.keysReported).toBe(2);
    const entries = busEntries(eventBridge);
    const details = entries.map((e) => JSON.parse(e.Detail ?? '{}') as ScanReportDetail);
    expect(details.map((d) => d.kind).sort()).toEqual(['LONG_TERM', 'SHORT_TERM']);
    expect(details.find((d) => d.kind === 'LONG_TERM')?.locationCount).toBe(KEY_ENCODINGS.length + 2);
    expect(details.find((d) => d.kind === 'SHORT_TERM')?.locationCount).toBe(KEY_ENCODINGS.length + 1);
    const written = [out.text(), JSON.stringify(entries), JSON.stringify(await scanAll(db(), TABLE))].join(
      '\n',
    );
    expect(leakedFragments(written, SECRETS)).toEqual([]);
    expect(containsKeyMaterial(written)).toBe(false);
  });
});
