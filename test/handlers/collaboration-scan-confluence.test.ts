import { EventBridgeClient, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { CollaborationScanState, LEASE_ID } from '../../lambda/adapters/collaboration-scan-state';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { type ScanReportDetail, ScanReportDetailSchema } from '../../lambda/domain/scan-report';
import {
  type ConfluenceScanRuntime,
  createConfluenceScanHandler,
} from '../../lambda/handlers/collaboration-scan-confluence';
import { jiraMarkOf, routeCollaborationScan } from '../../lambda/handlers/collaboration-scan-jira';
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
import { FakeConfluence, type FakeConfluencePage } from '../support/fake-confluence';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

/**
 * The scheduled Confluence scan (issue 15 §3, `leakDetection.confluence`) against a fake Confluence Cloud on loopback
 * (test/support/fake-confluence.ts), its state on dynalite, Secrets Manager and EventBridge mocked. Its settings come
 * in the schedule's input, checked by the config's schema; the https site is reached at the fake (connectTo).
 */

const NOW = new Date('2026-11-20T09:41:02.250Z');
const at = (minutesAgo: number) => new Date(NOW.getTime() - minutesAgo * 60_000).toISOString();
const EMAIL = 'scanner@example.com';
const API_TOKEN = 'ATATT3xFfGF0-fake-scheduled-confluence-api-token-0123456789';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:keyguard-confluence-AbCdEf';
const SITE = 'https://acme.atlassian.net';
const BUS = 'arn:aws:events:us-east-1:111122223333:event-bus/bedrock-key-guard-governance';
const TABLE = 'test-collaboration-state-confluence';
const LONG = fakeLongTermKey('confluence-scheduled-long');
const SHORT = fakeShortTermKey('confluence-scheduled-short');
const LATER = fakeLongTermKey('confluence-scheduled-later', '444455556666');
const OLD = fakeLongTermKey('confluence-scheduled-old');
const SECRETS = [LONG, SHORT, LATER, OLD, API_TOKEN];
const INPUT = {
  source: 'confluence',
  siteUrl: SITE,
  spaces: ['ENG', 'SEC'],
  initialLookbackHours: 24,
  secretArn: SECRET_ARN,
};

const confluence = new FakeConfluence(EMAIL, API_TOKEN);
const secrets = mockClient(SecretsManagerClient);
const eventBridge = mockClient(EventBridgeClient);
const db = useScanState(confluence, TABLE, startEmbeddedDynamo);
const out = captureEachTest();

function page(id: string, minutesAgo: number, storage: string, comment?: string): FakeConfluencePage {
  return {
    id,
    title: `page ${id}`,
    storage: `<p>${storage}</p>`,
    authorId: 'author-1',
    modifiedAt: at(minutesAgo),
    footer: comment ? [{ id: `c${id}`, storage: `<p>${comment}</p>`, createdAt: at(minutesAgo) }] : [],
  };
}

beforeEach(async () => {
  secrets.reset();
  eventBridge.reset();
  secrets
    .on(GetSecretValueCommand)
    .resolves({ ARN: SECRET_ARN, SecretString: JSON.stringify({ email: EMAIL, apiToken: API_TOKEN }) });
  acceptPutEvents(eventBridge);
  confluence.reset();
  confluence.spaces = [
    {
      id: '101',
      key: 'ENG',
      pages: [
        page('1', 120, `pasted ${LONG}`),
        page('2', 60, 'see the comment', `oops ${SHORT}`),
        // Before the first run's 24-hour lookback: never read.
        page('3', 30 * 60, `ancient ${OLD}`),
      ],
    },
    { id: '102', key: 'SEC', pages: [page('9', 180, 'nothing here')] },
  ];
  await clearScanState(db(), TABLE);
});

function runtime(over: Partial<ConfluenceScanRuntime> = {}): ConfluenceScanRuntime {
  return {
    ...scanRuntimeBase(db(), { table: TABLE, source: 'confluence', now: NOW, busArn: BUS }),
    publisher: { sleep: async () => undefined },
    connectTo: (site) => (site === SITE ? confluence.url : 'http://127.0.0.1:9'),
    ...over,
  };
}

const putEntries = (): PutEventsRequestEntry[] => busEntries(eventBridge);
const details = (): ScanReportDetail[] => busDetails(eventBridge);

async function marks(): Promise<Record<string, string>> {
  return Object.fromEntries(
    (await scanAll(db(), TABLE))
      .filter((i) => i.id !== LEASE_ID)
      .map((i) => [`${i.source}/${i.id}`, i.mark as string]),
  );
}

const metric = (name: string): number | undefined => emfMetric(out, name);

describe('scheduled Confluence scan', () => {
  it('reports what the lookback holds per space, with the page and comment links, then moves each mark', async () => {
    // Act
    const result = await createConfluenceScanHandler(runtime())(INPUT, scanContext());
    // Assess
    expect(result).toMatchObject({
      source: 'confluence',
      status: 'scanned',
      spaces: 2,
      pages: 3,
      keysReported: 2,
      marksMoved: 2,
      readFailures: 0,
    });
    for (const d of details()) expect(ScanReportDetailSchema.safeParse(d).success).toBe(true);
    expect(
      details()
        .flatMap((d) => d.locations.map((l) => l.path))
        .sort(),
    ).toEqual([
      `${confluence.url}/wiki/spaces/ENG/pages/1/page%2B1`,
      `${confluence.url}/wiki/spaces/ENG/pages/2/?focusedCommentId=c2#comment-c2`,
    ]);
    expect(details().map((d) => d.scanner.version)).toEqual(['scheduled', 'scheduled']);
    expect(leakedFragments(JSON.stringify(putEntries()), SECRETS)).toEqual([]);
    expect(leakedFragments(out.text(), SECRETS)).toEqual([]);
    // The newest current-version time of each space
    expect(await marks()).toEqual({
      'confluence/ENG': jiraMarkOf(Date.parse(at(60))),
      'confluence/SEC': jiraMarkOf(Date.parse(at(180))),
    });
    expect(metric('SpacesScanned')).toBe(2);
  });

  it('the next run reads from each mark: nothing new is reported but the mark page again, no mark moves; a later edit is reported and moves its mark', async () => {
    // Prepare
    await createConfluenceScanHandler(runtime())(INPUT, scanContext());
    eventBridge.resetHistory();
    // Act
    const again = await createConfluenceScanHandler(runtime())(INPUT, scanContext());
    // Assess: only page 2 (the mark's own page) is read again; the leak function records its key once
    expect(again).toMatchObject({ status: 'scanned', pages: 2, keysReported: 1, marksMoved: 0 });
    expect(details().map((d) => d.kind)).toEqual(['SHORT_TERM']);
    // Act: page 1 edited ten minutes ago
    eventBridge.resetHistory();
    const eng = confluence.spaces[0]?.pages as FakeConfluencePage[];
    (eng[0] as FakeConfluencePage).modifiedAt = at(10);
    (eng[0] as FakeConfluencePage).storage = `<p>again ${LATER}</p>`;
    const third = await createConfluenceScanHandler(runtime())(INPUT, scanContext());
    // Assess
    expect(third).toMatchObject({ marksMoved: 1 });
    expect(details().map((d) => d.longTerm?.accountId)).toContain('444455556666');
    expect((await marks())['confluence/ENG']).toBe(jiraMarkOf(Date.parse(at(10))));
    expect(leakedFragments(JSON.stringify(putEntries()), SECRETS)).toEqual([]);
  });

  it('stops between list pages when under 2 minutes are left: what was read is reported, the mark stays', async () => {
    // Prepare: 4 pages within the lookback, 2 per list page; time runs low after the first list page
    confluence.spaces = [
      {
        id: '101',
        key: 'ENG',
        pages: [page('1', 40, `a ${LONG}`), page('2', 30, 'b'), page('3', 20, 'c'), page('4', 10, 'd')],
      },
      { id: '102', key: 'SEC', pages: [page('9', 5, 'e')] },
    ];
    let calls = 0;
    // Act
    const result = await createConfluenceScanHandler(runtime())(
      INPUT,
      scanContext(() => (++calls > 2 ? 60_000 : 600_000)),
    );
    // Assess: newest first, pages 4 and 3 read; page 1 (the key) is not reached; SEC not started
    expect(result).toMatchObject({
      status: 'scanned',
      spaces: 1,
      pages: 2,
      stoppedEarly: true,
      marksMoved: 0,
    });
    expect(await marks()).toEqual({});
    expect(confluence.calls('/wiki/api/v2/spaces/102/pages')).toHaveLength(0);
  });

  it('a page whose comments cannot be read is logged, the rest of the space is reported, and the space keeps no new mark', async () => {
    // Prepare
    confluence.brokenComments = '2';
    // Act
    const result = await createConfluenceScanHandler(runtime())(INPUT, scanContext());
    // Assess: page 1's key is reported; ENG's mark does not move (read again next run), SEC's does
    expect(result).toMatchObject({ status: 'scanned', keysReported: 1, marksMoved: 1 });
    expect(result.readFailures).toBeGreaterThan(0);
    expect(out.lines().some((l) => l.message === 'a Confluence read failed' && l.space === 'ENG')).toBe(true);
    expect(await marks()).toEqual({ 'confluence/SEC': jiraMarkOf(Date.parse(at(180))) });
    expect(leakedFragments(out.text(), SECRETS)).toEqual([]);
  });

  it('a schedule input that does not match the config schema is refused before the secret is read', async () => {
    // Act / Assess
    await expect(
      createConfluenceScanHandler(runtime())(
        { ...INPUT, siteUrl: 'http://acme.atlassian.net' },
        scanContext(),
      ),
    ).rejects.toThrow('the Confluence schedule input: siteUrl: got "http://acme.atlassian.net"');
    await expect(
      createConfluenceScanHandler(runtime())({ ...INPUT, spaces: ['ENG', 'ENG'] }, scanContext()),
    ).rejects.toThrow('spaces.1: got "ENG"; listed twice');
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
    expect(confluence.requests).toHaveLength(0);
  });

  it.each([
    ['no value', () => secrets.on(GetSecretValueCommand).resolves({})],
    ['an empty value', () => secrets.on(GetSecretValueCommand).resolves({ SecretString: ' \n' })],
  ])(
    'a secret with %s is one logged error and the TokenNotSet metric, not a failure',
    async (_why, prepare) => {
      // Prepare
      prepare();
      // Act
      const result = await createConfluenceScanHandler(runtime())(INPUT, scanContext());
      // Assess
      expect(result.status).toBe('token-not-set');
      expect(confluence.requests).toHaveLength(0);
      const errors = out.lines().filter((l) => l.level === 'ERROR');
      expect(errors).toHaveLength(1);
      expect(errors[0]?.message).toBe('no Confluence credentials: nothing was scanned');
      expect(errors[0]?.reason).toContain(`aws secretsmanager put-secret-value --secret-id ${SECRET_ARN}`);
      expect(metric('TokenNotSet')).toBe(1);
      const state = new CollaborationScanState(db().doc, TABLE, 'confluence');
      expect(await state.acquire('next', NOW, new Date(NOW.getTime() + 1000))).toBe(true);
    },
  );

  it('credentials Confluence rejects are one logged error and the TokenRejected metric; the token is never logged', async () => {
    // Prepare
    confluence.rejectWith = 401;
    // Act
    const result = await createConfluenceScanHandler(runtime())(INPUT, scanContext());
    // Assess
    expect(result.status).toBe('token-rejected');
    const errors = out.lines().filter((l) => l.level === 'ERROR');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.reason).toContain('HTTP 401');
    expect(metric('TokenRejected')).toBe(1);
    expect(leakedFragments(out.text(), SECRETS)).toEqual([]);
    expect(await marks()).toEqual({});
  });

  it('an overlapping run finds the confluence lease held and does nothing', async () => {
    // Prepare
    const state = new CollaborationScanState(db().doc, TABLE, 'confluence');
    expect(await state.acquire('other-request', NOW, new Date(NOW.getTime() + 600_000))).toBe(true);
    // Act
    const locked = await createConfluenceScanHandler(runtime())(INPUT, scanContext());
    // Assess
    expect(locked.status).toBe('locked');
    expect(confluence.requests).toHaveLength(0);
  });

  it('the function routes {"source":"confluence", …} to the Confluence scan', async () => {
    // Prepare
    const route = routeCollaborationScan({
      jira: async () => 'jira',
      confluence: createConfluenceScanHandler(runtime()),
    });
    // Act
    const result = await route(INPUT, scanContext());
    // Assess
    expect(result).toMatchObject({ source: 'confluence', status: 'scanned' });
    expect(await route({ source: 'jira' }, scanContext())).toBe('jira');
  });
});
