import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { CollaborationScanState, LEASE_ID, markKeyOf } from '../../lambda/adapters/collaboration-scan-state';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import {
  SCAN_REPORT_DETAIL_TYPE,
  SCAN_REPORT_SOURCE,
  type ScanReportDetail,
  ScanReportDetailSchema,
} from '../../lambda/domain/scan-report';
import {
  type CollaborationScanRuntime,
  createCollaborationScanHandler,
} from '../../lambda/handlers/collaboration-scan-handler';
import { containsKeyMaterial } from '../../lambda/shared/redact';
import {
  acceptPutEvents,
  busDetails,
  busEntries,
  captureEachTest,
  clearScanState,
  emfMetric,
  scanContext,
  scanRuntimeBase,
  useScanState,
} from '../support/collaboration-scan-harness';
import { scanAll } from '../support/dynamo';
import { FakeSlack, type FakeSlackChannel, type FakeSlackMessage } from '../support/fake-slack';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

/**
 * The scheduled collaboration scan (issue 15 §3) against a fake Slack on loopback (test/support/fake-slack.ts), its
 * state on dynalite, Secrets Manager and EventBridge mocked: what is new since each channel's high-water mark is
 * reported once, on the governance bus, as `keyguard scan --quarantine` reports it, and never the key or the token.
 */

const NOW = new Date('2026-11-20T09:41:02Z'); // 1795167662
const TOKEN = 'xoxb-4444-5555-6666-fake-scheduled-slack-token';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:keyguard-slack-token-AbCdEf';
const BUS = 'arn:aws:events:us-east-1:111122223333:event-bus/bedrock-key-guard-governance';
const TABLE = 'test-collaboration-state';
const LONG = fakeLongTermKey('scheduled-long');
const SHORT = fakeShortTermKey('scheduled-short');
const LATER = fakeLongTermKey('scheduled-later', '444455556666');
const OLD = fakeLongTermKey('scheduled-old');
const SECRETS = [LONG, SHORT, LATER, OLD, TOKEN];

const slack = new FakeSlack({ token: TOKEN });
const secrets = mockClient(SecretsManagerClient);
const eventBridge = mockClient(EventBridgeClient);
const db = useScanState(slack, TABLE, startEmbeddedDynamo);
const out = captureEachTest();

function general(): FakeSlackChannel {
  return {
    id: 'C001',
    name: 'general',
    messages: [
      // Before the first run's 24-hour lookback: never read.
      { ts: '1794900000.000100', text: `ancient ${OLD}`, user: 'U0OLD' },
      { ts: '1795100000.000100', text: `here it is ${LONG}`, user: 'U0ALICE' },
      {
        ts: '1795100100.000200',
        text: 'deploy thread',
        user: 'U0BOB',
        thread_ts: '1795100100.000200',
        reply_count: 1,
      },
      { ts: '1795100200.000300', text: 'nothing here', user: 'U0BOB' },
    ],
  };
}

function ops(): FakeSlackChannel {
  return {
    id: 'C002',
    name: 'ops',
    messages: [{ ts: '1795110000.000001', text: `short one ${SHORT}`, user: 'U0CAROL' }],
  };
}

beforeEach(async () => {
  secrets.reset();
  eventBridge.reset();
  secrets.on(GetSecretValueCommand).resolves({ ARN: SECRET_ARN, SecretString: `${TOKEN}\n` });
  acceptPutEvents(eventBridge);
  slack.requests.length = 0;
  slack.authError = undefined;
  slack.channels = [general(), ops()];
  slack.threads = new Map([
    [
      'C001:1795100100.000200',
      [
        { ts: '1795100100.000200', text: 'deploy thread', user: 'U0BOB' },
        { ts: '1795100150.000000', text: `oops ${LONG}`, user: 'U0DAVE' },
      ],
    ],
  ]);
  await clearScanState(db(), TABLE);
});

function runtime(over: Partial<CollaborationScanRuntime> = {}): CollaborationScanRuntime {
  return {
    ...scanRuntimeBase(db(), { table: TABLE, source: 'slack', now: NOW, busArn: BUS }),
    slackSecretId: SECRET_ARN,
    slack: { apiUrl: slack.url, initialLookbackHours: 24 },
    publisher: { sleep: async () => undefined },
    ...over,
  };
}

const putEntries = (): PutEventsRequestEntry[] => busEntries(eventBridge);
const details = (): ScanReportDetail[] => busDetails(eventBridge);

async function marks(): Promise<Record<string, string>> {
  return Object.fromEntries(
    (await scanAll(db(), TABLE))
      .filter((i) => i.id !== LEASE_ID)
      .map((i) => [i.id as string, i.mark as string]),
  );
}

const metric = (name: string): number | undefined => emfMetric(out, name);

describe('collaboration scan: Slack', () => {
  it('reports each key found since the lookback once, as keyguard scan --quarantine does, and moves the marks', async () => {
    // Act
    const result = await createCollaborationScanHandler(runtime())({}, scanContext());
    // Assess: the history was read from 24 hours back, the thread's reply too; the ancient key was not read
    expect(result).toMatchObject({ status: 'scanned', channels: 2, keysReported: 2, marksMoved: 2 });
    expect(slack.calls('conversations.history').map((r) => r.params.get('oldest'))).toContain(
      '1795081262.000000',
    );
    const entries = putEntries();
    expect(entries.map((e) => [e.EventBusName, e.Source, e.DetailType])).toEqual([
      [BUS, SCAN_REPORT_SOURCE, SCAN_REPORT_DETAIL_TYPE],
      [BUS, SCAN_REPORT_SOURCE, SCAN_REPORT_DETAIL_TYPE],
    ]);
    const [general, ops] = details();
    expect(general).toMatchObject({
      kind: 'LONG_TERM',
      longTerm: { accountId: '111122223333' },
      locationCount: 2,
      scanner: { name: 'keyguard scan', version: 'scheduled' },
      scannedAt: NOW.toISOString(),
    });
    expect(general?.locations.map((l) => l.path).sort()).toEqual([
      'https://acme.slack.com/archives/C001/p1795100000000100',
      'https://acme.slack.com/archives/C001/p1795100150000000',
    ]);
    expect(ops).toMatchObject({
      kind: 'SHORT_TERM',
      locations: [{ path: expect.stringContaining('/C002/') }],
    });
    // What the leak function accepts from the bus (lambda/domain/scan-report.ts), as from keyguard scan --quarantine
    for (const d of details()) expect(ScanReportDetailSchema.safeParse(d).success).toBe(true);
    expect(JSON.stringify(entries)).not.toContain('ancient');
    expect(leakedFragments(JSON.stringify(entries), SECRETS)).toEqual([]);
    expect(containsKeyMaterial(JSON.stringify(entries))).toBe(false);
    // The newest top-level message of each channel (not the thread reply, not the ancient one)
    expect(await marks()).toEqual({ C001: '1795100200.000300', C002: '1795110000.000001' });
    expect(metric('KeysReported')).toBe(2);
  });

  it('a second run reads only after the marks and reports nothing twice; a new message is reported alone', async () => {
    // Prepare
    const handler = createCollaborationScanHandler(runtime());
    await handler({}, scanContext());
    eventBridge.resetHistory();
    slack.requests.length = 0;
    // Act: nothing new
    const again = await handler({}, scanContext());
    // Assess
    expect(again).toMatchObject({ status: 'scanned', keysReported: 0, marksMoved: 0 });
    expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(
      Object.fromEntries(
        slack.calls('conversations.history').map((r) => [r.params.get('channel'), r.params.get('oldest')]),
      ),
    ).toEqual({ C001: '1795100200.000300', C002: '1795110000.000001' });
    // Act: a new message in ops
    const channel = slack.channels[1] as FakeSlackChannel;
    channel.messages = [
      ...(channel.messages as FakeSlackMessage[]),
      { ts: '1795120000.000009', text: `new ${LATER}`, user: 'U0EVE' },
    ];
    const third = await handler({}, scanContext());
    // Assess
    expect(third).toMatchObject({ keysReported: 1, marksMoved: 1 });
    expect(details().map((d) => d.longTerm?.accountId)).toEqual(['444455556666']);
    expect((await marks()).C002).toBe('1795120000.000009');
  });

  it('an overlapping run finds the lease held and does nothing; a retry of the same request takes its own lease', async () => {
    // Prepare: another invocation holds the lease for 10 more minutes
    const state = new CollaborationScanState(db().doc, TABLE, 'slack');
    expect(await state.acquire('other-request', NOW, new Date(NOW.getTime() + 600_000))).toBe(true);
    // Act
    const locked = await createCollaborationScanHandler(runtime())({}, scanContext());
    // Assess
    expect(locked.status).toBe('locked');
    expect(slack.requests).toHaveLength(0);
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
    expect(metric('ScanLocked')).toBe(1);
    // Act: the holder's retry (same request id) runs, and releases the lease after
    const retry = await createCollaborationScanHandler(runtime())(
      {},
      {
        ...scanContext(),
        awsRequestId: 'other-request',
      },
    );
    expect(retry.status).toBe('scanned');
    expect(await state.acquire('third', NOW, new Date(NOW.getTime() + 1000))).toBe(true);
  });

  it('a lease past its expiry (a killed run) is taken over', async () => {
    // Prepare
    const state = new CollaborationScanState(db().doc, TABLE, 'slack');
    await state.acquire('killed', new Date(NOW.getTime() - 900_000), new Date(NOW.getTime() - 1));
    // Act
    const result = await createCollaborationScanHandler(runtime())({}, scanContext());
    // Assess
    expect(result.status).toBe('scanned');
  });

  it('marks never move back: a run behind another one writes nothing', async () => {
    // Prepare
    const state = new CollaborationScanState(db().doc, TABLE, 'slack');
    expect(await state.advance('C001', '1795100200.000300', NOW)).toBe(true);
    // Act / Assess: an older mark, the same mark, then a newer one (with a shorter micros part)
    expect(await state.advance('C001', '1795100100.000200', NOW)).toBe(false);
    expect(await state.advance('C001', '1795100200.000300', NOW)).toBe(false);
    expect(await state.advance('C001', '1795100200.0004', NOW)).toBe(true);
    expect((await marks()).C001).toBe('1795100200.0004');
    expect(markKeyOf('999999999.5') < markKeyOf('1795100200.000300')).toBe(true);
  });

  it.each([
    [
      'no value yet (the stack created the secret empty)',
      () => {
        const err = new Error(
          "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
        );
        err.name = 'ResourceNotFoundException';
        secrets.on(GetSecretValueCommand).rejects(err);
      },
    ],
    ['an empty value', () => secrets.on(GetSecretValueCommand).resolves({ SecretString: '  \n' })],
  ])(
    'a secret with %s is one logged error and the TokenNotSet metric, not a failure',
    async (_why, prepare) => {
      // Prepare
      prepare();
      // Act
      const result = await createCollaborationScanHandler(runtime())({}, scanContext());
      // Assess
      expect(result.status).toBe('token-not-set');
      expect(slack.requests).toHaveLength(0);
      const error = out.lines().find((l) => l.level === 'ERROR');
      expect(error?.message).toBe('no Slack token: nothing was scanned');
      expect(error?.reason).toContain(
        `aws secretsmanager put-secret-value --secret-id ${SECRET_ARN} --secret-string <token>`,
      );
      expect(metric('TokenNotSet')).toBe(1);
      // The lease was released: the next run is not locked out
      const state = new CollaborationScanState(db().doc, TABLE, 'slack');
      expect(await state.acquire('next', NOW, new Date(NOW.getTime() + 1000))).toBe(true);
    },
  );

  it('a token Slack rejects is one logged error and the TokenRejected metric; the token is never logged', async () => {
    // Prepare
    slack.authError = 'token_revoked';
    // Act
    const result = await createCollaborationScanHandler(runtime())({}, scanContext());
    // Assess
    expect(result.status).toBe('token-rejected');
    expect(out.lines().find((l) => l.level === 'ERROR')?.reason).toContain('token_revoked');
    expect(metric('TokenRejected')).toBe(1);
    expect(out.text()).not.toContain(TOKEN);
  });

  it('keys PutEvents keeps rejecting leave the channel mark in place: the next run reports them again', async () => {
    // Prepare: ops's report is rejected at every try
    eventBridge.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => {
      const rejected = input.Entries.some((e) => (e.Detail ?? '').includes('SHORT_TERM'));
      return rejected
        ? { FailedEntryCount: 1, Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }] }
        : { FailedEntryCount: 0, Entries: input.Entries.map((_, i) => ({ EventId: `evt-${i}` })) };
    });
    // Act
    const result = await createCollaborationScanHandler(runtime())({}, scanContext());
    // Assess
    expect(result).toMatchObject({ keysReported: 1, keysUndelivered: 1, marksMoved: 1 });
    expect(await marks()).toEqual({ C001: '1795100200.000300' });
    expect(metric('KeysUndelivered')).toBe(1);
    // Act: delivery works again
    eventBridge.reset();
    eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'evt-again' }] });
    const next = await createCollaborationScanHandler(runtime())({}, scanContext());
    // Assess
    expect(next).toMatchObject({ keysReported: 1, marksMoved: 1 });
    expect(details().map((d) => d.kind)).toEqual(['SHORT_TERM']);
  });

  it('a channel whose history cannot be read keeps its mark and is logged; the other channels move on', async () => {
    // Prepare
    (slack.channels[0] as FakeSlackChannel).malformed = true;
    // Act
    const result = await createCollaborationScanHandler(runtime())({}, scanContext());
    // Assess
    expect(result).toMatchObject({ status: 'scanned', readFailures: 1, marksMoved: 1 });
    expect(await marks()).toEqual({ C002: '1795110000.000001' });
    const warning = out.lines().find((l) => l.message === 'a Slack read failed');
    expect(warning).toMatchObject({ where: 'Slack #general' });
    expect(out.text()).not.toContain(TOKEN);
    expect(metric('ReadFailures')).toBe(1);
  });

  it('with too little time left, no channel is started: they are read by the next run', async () => {
    // Act
    const result = await createCollaborationScanHandler(runtime())({}, scanContext(60_000));
    // Assess
    expect(result).toMatchObject({ status: 'scanned', channels: 0, stoppedEarly: true, marksMoved: 0 });
    expect(slack.calls('conversations.history')).toHaveLength(0);
  });

  it('only the configured channels are read', async () => {
    // Act
    const result = await createCollaborationScanHandler(
      runtime({ slack: { apiUrl: slack.url, initialLookbackHours: 24, channels: ['ops'] } }),
    )({}, scanContext());
    // Assess
    expect(result.channels).toBe(1);
    expect(await marks()).toEqual({ C002: '1795110000.000001' });
  });

  it('no log line holds a key or the token', async () => {
    // Act
    await createCollaborationScanHandler(runtime())({}, scanContext());
    // Assess
    expect(out.lines().some((l) => l.message === 'key found in Slack reported to the governance bus')).toBe(
      true,
    );
    expect(leakedFragments(out.text(), SECRETS)).toEqual([]);
    expect(containsKeyMaterial(out.text())).toBe(false);
  });
});
