import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { CollaborationScanState, LEASE_ID } from '../../lambda/adapters/collaboration-scan-state';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import {
  SCAN_REPORT_DETAIL_TYPE,
  SCAN_REPORT_SOURCE,
  type ScanReportDetail,
  ScanReportDetailSchema,
} from '../../lambda/domain/scan-report';
import {
  createJiraScanHandler,
  type JiraScanRuntime,
  jiraMarkOf,
  jiraTargets,
  routeCollaborationScan,
} from '../../lambda/handlers/collaboration-scan-jira';
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
import { adf, FakeJira, type FakeJiraIssue } from '../support/fake-jira';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

/**
 * The scheduled Jira scan (issue 15 §3, `leakDetection.jira`) against a fake Jira Cloud on loopback
 * (test/support/fake-jira.ts, which compares `updated >= "-Nm"` to the minute as Jira does), its state on dynalite,
 * Secrets Manager and EventBridge mocked: what was updated since each project's high-water mark (minus the one
 * minute JQL cannot tell apart) is reported on the governance bus, and never the key or the API token.
 */

const NOW = new Date('2026-11-20T09:41:02Z');
const at = (minutesAgo: number) => new Date(NOW.getTime() - minutesAgo * 60_000).toISOString();
const EMAIL = 'scanner@example.com';
const API_TOKEN = 'ATATT3xFfGF0-fake-scheduled-jira-api-token-0123456789';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:keyguard-jira-AbCdEf';
const BUS = 'arn:aws:events:us-east-1:111122223333:event-bus/bedrock-key-guard-governance';
const TABLE = 'test-collaboration-state-jira';
const LONG = fakeLongTermKey('jira-scheduled-long');
const SHORT = fakeShortTermKey('jira-scheduled-short');
const LATER = fakeLongTermKey('jira-scheduled-later', '444455556666');
const OLD = fakeLongTermKey('jira-scheduled-old');
const SECRETS = [LONG, SHORT, LATER, OLD, API_TOKEN];

const jira = new FakeJira(EMAIL, API_TOKEN, NOW);
const secrets = mockClient(SecretsManagerClient);
const eventBridge = mockClient(EventBridgeClient);
const db = useScanState(jira, TABLE, startEmbeddedDynamo);
const out = captureEachTest();

function issue(key: string, minutesAgo: number, description: string, comment?: string): FakeJiraIssue {
  return {
    id: String(10_000 + jira.issues.length),
    key,
    summary: `${key} summary`,
    description: adf(description),
    reporter: { accountId: '557058:reporter' },
    updated: at(minutesAgo),
    comments: comment
      ? [
          {
            id: '900',
            author: { accountId: '557058:commenter' },
            body: adf(comment),
            created: at(minutesAgo),
          },
        ]
      : [],
  };
}

beforeEach(async () => {
  secrets.reset();
  eventBridge.reset();
  secrets
    .on(GetSecretValueCommand)
    .resolves({ ARN: SECRET_ARN, SecretString: JSON.stringify({ email: EMAIL, apiToken: API_TOKEN }) });
  acceptPutEvents(eventBridge);
  jira.reset();
  jira.issues = [];
  jira.issues = [
    issue('OPS-1', 120, `pasted ${LONG}`),
    // Before the first run's 24-hour lookback: never read.
    issue('OPS-2', 30 * 60, `ancient ${OLD}`),
    issue('OPS-3', 60, 'see comment', `oops ${SHORT}`),
    issue('SEC-1', 180, 'nothing here'),
  ];
  await clearScanState(db(), TABLE);
});

function runtime(over: Partial<JiraScanRuntime> = {}): JiraScanRuntime {
  return {
    ...scanRuntimeBase(db(), { table: TABLE, source: 'jira', now: NOW, busArn: BUS }),
    jiraSecretId: SECRET_ARN,
    jira: { site: jira.url, projects: ['OPS', 'SEC'], initialLookbackHours: 24 },
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
      .map((i) => [`${i.source}/${i.id}`, i.mark as string]),
  );
}

const metric = (name: string): number | undefined => emfMetric(out, name);

function searches(): string[] {
  return jira.calls('/rest/api/3/search/jql').map((r) => r.params.get('jql') ?? '');
}

describe('scheduled Jira scan', () => {
  it('reports what the lookback holds per project, once, with the issue and comment links, and moves each mark', async () => {
    // Act
    const result = await createJiraScanHandler(runtime())({}, scanContext());
    // Assess
    expect(result).toMatchObject({
      source: 'jira',
      status: 'scanned',
      projects: 2,
      keysReported: 2,
      marksMoved: 2,
    });
    expect(searches()).toEqual([
      '(project = "OPS") AND updated >= "-1440m" ORDER BY updated ASC',
      '(project = "SEC") AND updated >= "-1440m" ORDER BY updated ASC',
    ]);
    const entries = putEntries();
    expect(entries.map((e) => [e.EventBusName, e.Source, e.DetailType])).toEqual([
      [BUS, SCAN_REPORT_SOURCE, SCAN_REPORT_DETAIL_TYPE],
      [BUS, SCAN_REPORT_SOURCE, SCAN_REPORT_DETAIL_TYPE],
    ]);
    for (const d of details()) expect(ScanReportDetailSchema.safeParse(d).success).toBe(true);
    expect(details().flatMap((d) => d.locations.map((l) => l.path))).toEqual([
      `${jira.url}/browse/OPS-1`,
      `${jira.url}/browse/OPS-3?focusedCommentId=900`,
    ]);
    expect(details().map((d) => d.scanner.version)).toEqual(['scheduled', 'scheduled']);
    expect(leakedFragments(JSON.stringify(entries), SECRETS)).toEqual([]);
    // The newest `updated` of each project, as "seconds.millis"
    expect(await marks()).toEqual({
      'jira/OPS': jiraMarkOf(Date.parse(at(60))),
      'jira/SEC': jiraMarkOf(Date.parse(at(180))),
    });
    expect(metric('IssuesScanned')).toBe(3);
  });

  it('the next run reads from each mark minus one minute: only the mark minute is reported again, marks stay; a later update is reported and moves its mark', async () => {
    // Prepare
    await createJiraScanHandler(runtime())({}, scanContext());
    eventBridge.resetHistory();
    jira.requests.length = 0;
    // Act
    const again = await createJiraScanHandler(runtime())({}, scanContext());
    // Assess: OPS's mark is 60 minutes old, read from 61; SEC's 180, from 181
    expect(searches()).toEqual([
      '(project = "OPS") AND updated >= "-61m" ORDER BY updated ASC',
      '(project = "SEC") AND updated >= "-181m" ORDER BY updated ASC',
    ]);
    // OPS-3 (the mark's issue) is read again and its key reported again: the leak function records it once
    expect(again).toMatchObject({ status: 'scanned', issues: 2, keysReported: 1, marksMoved: 0 });
    expect(details().map((d) => d.kind)).toEqual(['SHORT_TERM']);
    // Act: a new comment on OPS-1 ten minutes ago
    eventBridge.resetHistory();
    const ops1 = jira.issues[0] as FakeJiraIssue;
    ops1.updated = at(10);
    ops1.comments.push({ id: '901', body: adf(`again ${LATER}`), created: at(10) });
    const third = await createJiraScanHandler(runtime())({}, scanContext());
    // Assess: the new comment's key is reported (with what the re-read issues still hold) and OPS's mark moves
    expect(third).toMatchObject({ marksMoved: 1 });
    expect(details().map((d) => d.longTerm?.accountId)).toContain('444455556666');
    expect((await marks())['jira/OPS']).toBe(jiraMarkOf(Date.parse(at(10))));
    expect(leakedFragments(JSON.stringify(putEntries()), SECRETS)).toEqual([]);
  });

  it('with a JQL query, one mark for the query (keyed by its hash), ordered by updated unless it says otherwise', async () => {
    // Act
    const result = await createJiraScanHandler(
      runtime({ jira: { site: jira.url, jql: 'labels = public', initialLookbackHours: 2 } }),
    )({}, scanContext());
    // Assess
    expect(searches()).toEqual(['(labels = public) AND updated >= "-120m" ORDER BY updated ASC']);
    expect(result).toMatchObject({ projects: 1, keysReported: 2, marksMoved: 1 });
    const [target] = jiraTargets({ jql: 'labels = public' });
    expect(Object.keys(await marks())).toEqual([`jira/${target?.id}`]);
    expect(target?.id).toMatch(/^jql:[0-9a-f]{16}$/);
    expect(jiraTargets({ jql: 'project = OPS ORDER BY created DESC' })[0]?.jql).toBe(
      'project = OPS ORDER BY created DESC',
    );
  });

  it('with projects and a JQL query, the query narrows each project, which keeps its own mark', async () => {
    // Prepare: only OPS-1 is labelled public (the fake selects by project; the label is Jira's part)
    const targets = jiraTargets({ projects: ['OPS', 'SEC'], jql: 'labels = public ORDER BY key ASC' });
    // Assess
    expect(targets.map((t) => t.jql)).toEqual([
      'project = "OPS" AND (labels = public) ORDER BY key ASC',
      'project = "SEC" AND (labels = public) ORDER BY key ASC',
    ]);
    expect(targets.map((t) => t.id)).toEqual([
      expect.stringMatching(/^OPS:jql:[0-9a-f]{16}$/),
      expect.stringMatching(/^SEC:jql:[0-9a-f]{16}$/),
    ]);
    // Act
    const result = await createJiraScanHandler(
      runtime({
        jira: { site: jira.url, projects: ['OPS', 'SEC'], jql: 'labels = public', initialLookbackHours: 24 },
      }),
    )({}, scanContext());
    // Assess
    expect(searches()[0]).toBe(
      '(project = "OPS" AND (labels = public)) AND updated >= "-1440m" ORDER BY updated ASC',
    );
    expect(result).toMatchObject({ projects: 2, marksMoved: 2 });
    const ids = jiraTargets({ projects: ['OPS', 'SEC'], jql: 'labels = public' }).map((t) => `jira/${t.id}`);
    expect(Object.keys(await marks()).sort()).toEqual(ids);
  });

  it('a search that fails half way keeps its project mark (the keys read are still reported); the others move on', async () => {
    // Prepare: one issue per page; OPS's second page is not JSON (and echoes the credentials)
    jira.searchPage = 1;
    jira.malformedSearch = Buffer.from('page-1').toString('base64url');
    // Act
    const result = await createJiraScanHandler(runtime())({}, scanContext());
    // Assess
    expect(result).toMatchObject({ status: 'scanned', readFailures: 1, marksMoved: 1, keysReported: 1 });
    expect(await marks()).toEqual({ 'jira/SEC': jiraMarkOf(Date.parse(at(180))) });
    expect(out.lines().find((l) => l.message === 'a Jira read failed')).toMatchObject({ project: 'OPS' });
    expect(leakedFragments(out.text(), SECRETS)).toEqual([]);
    expect(out.text()).not.toContain(Buffer.from(`${EMAIL}:${API_TOKEN}`).toString('base64'));
  });

  it('keys PutEvents keeps rejecting leave the project mark in place', async () => {
    // Prepare
    eventBridge.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }],
    });
    // Act
    const result = await createJiraScanHandler(runtime())({}, scanContext());
    // Assess
    expect(result).toMatchObject({ keysUndelivered: 2, marksMoved: 1 });
    expect(await marks()).toEqual({ 'jira/SEC': jiraMarkOf(Date.parse(at(180))) });
    expect(metric('KeysUndelivered')).toBe(2);
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
    ['an empty value', () => secrets.on(GetSecretValueCommand).resolves({ SecretString: ' \n' })],
    ['the bare API token', () => secrets.on(GetSecretValueCommand).resolves({ SecretString: API_TOKEN })],
    [
      'JSON without the e-mail',
      () =>
        secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ apiToken: API_TOKEN }) }),
    ],
  ])(
    'a secret with %s is one logged error and the TokenNotSet metric, not a failure',
    async (_why, prepare) => {
      // Prepare
      prepare();
      // Act
      const result = await createJiraScanHandler(runtime())({}, scanContext());
      // Assess
      expect(result.status).toBe('token-not-set');
      expect(jira.requests).toHaveLength(0);
      const errors = out.lines().filter((l) => l.level === 'ERROR');
      expect(errors).toHaveLength(1);
      expect(errors[0]?.message).toBe('no Jira credentials: nothing was scanned');
      expect(errors[0]?.reason).toContain(
        `aws secretsmanager put-secret-value --secret-id ${SECRET_ARN} --secret-string '{"email":"<e-mail>","apiToken":"<API token>"}'`,
      );
      expect(metric('TokenNotSet')).toBe(1);
      expect(out.text()).not.toContain(API_TOKEN);
      const state = new CollaborationScanState(db().doc, TABLE, 'jira');
      expect(await state.acquire('next', NOW, new Date(NOW.getTime() + 1000))).toBe(true);
    },
  );

  it('credentials Jira rejects are one logged error and the TokenRejected metric; the token is never logged', async () => {
    // Prepare
    jira.rejectWith = 401;
    // Act
    const result = await createJiraScanHandler(runtime())({}, scanContext());
    // Assess
    expect(result.status).toBe('token-rejected');
    const errors = out.lines().filter((l) => l.level === 'ERROR');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.reason).toContain('HTTP 401');
    expect(metric('TokenRejected')).toBe(1);
    expect(out.text()).not.toContain(API_TOKEN);
    expect(await marks()).toEqual({});
  });

  it('an overlapping run finds the jira lease held and does nothing (the slack lease is another)', async () => {
    // Prepare
    const state = new CollaborationScanState(db().doc, TABLE, 'jira');
    expect(await state.acquire('other-request', NOW, new Date(NOW.getTime() + 600_000))).toBe(true);
    const slackState = new CollaborationScanState(db().doc, TABLE, 'slack');
    expect(await slackState.acquire('slack-run', NOW, new Date(NOW.getTime() + 600_000))).toBe(true);
    // Act
    const locked = await createJiraScanHandler(runtime())({}, scanContext());
    // Assess
    expect(locked.status).toBe('locked');
    expect(jira.requests).toHaveLength(0);
    expect(metric('ScanLocked')).toBe(1);
    await state.release('other-request');
    expect((await createJiraScanHandler(runtime())({}, scanContext())).status).toBe('scanned');
  });

  it('a search stopped for time in updated order moves its mark to the newest issue read; the next run goes on from there', async () => {
    // Prepare: one issue a page; time runs low after the first page of OPS (the lease and the project check come first)
    jira.searchPage = 1;
    let asked = 0;
    const running: Context = {
      ...scanContext(),
      getRemainingTimeInMillis: () => (++asked <= 2 ? 600_000 : 60_000),
    };
    // Act
    const result = await createJiraScanHandler(runtime())({}, running);
    // Assess: OPS-1 read and reported, OPS-3 not yet, SEC not started
    expect(result).toMatchObject({
      projects: 1,
      issues: 1,
      keysReported: 1,
      marksMoved: 1,
      stoppedEarly: true,
    });
    expect(await marks()).toEqual({ 'jira/OPS': jiraMarkOf(Date.parse(at(120))) });
    // Act: the next run has time
    eventBridge.resetHistory();
    const next = await createJiraScanHandler(runtime())({}, scanContext());
    // Assess: OPS from its mark minus a minute (OPS-1 again, then OPS-3), then SEC
    expect(next).toMatchObject({ projects: 2, marksMoved: 2, stoppedEarly: false });
    expect(details().map((d) => d.kind)).toEqual(['LONG_TERM', 'SHORT_TERM']);
    expect(await marks()).toEqual({
      'jira/OPS': jiraMarkOf(Date.parse(at(60))),
      'jira/SEC': jiraMarkOf(Date.parse(at(180))),
    });
  });

  it('a search in another order stopped for time keeps its mark', async () => {
    // Prepare
    jira.searchPage = 1;
    let asked = 0;
    const running: Context = {
      ...scanContext(),
      getRemainingTimeInMillis: () => (++asked <= 2 ? 600_000 : 60_000),
    };
    // Act
    const result = await createJiraScanHandler(
      runtime({
        jira: { site: jira.url, projects: ['OPS'], jql: 'ORDER BY key ASC', initialLookbackHours: 24 },
      }),
    )({}, running);
    // Assess
    expect(result).toMatchObject({ issues: 1, marksMoved: 0, stoppedEarly: true });
    expect(await marks()).toEqual({});
  });

  it('with too little time left, no project is started', async () => {
    // Act
    const result = await createJiraScanHandler(runtime())({}, scanContext(60_000));
    // Assess
    expect(result).toMatchObject({ status: 'scanned', projects: 0, stoppedEarly: true, marksMoved: 0 });
    expect(searches()).toHaveLength(0);
  });

  it('no log line holds a key or the API token', async () => {
    // Act
    await createJiraScanHandler(runtime())({}, scanContext());
    // Assess
    expect(out.lines().some((l) => l.message === 'key found in Jira reported to the governance bus')).toBe(
      true,
    );
    expect(leakedFragments(out.text(), SECRETS)).toEqual([]);
    expect(containsKeyMaterial(out.text())).toBe(false);
  });
});

describe('routeCollaborationScan', () => {
  const slack = async () => 'slack';
  const jiraRun = async () => 'jira';

  it('runs the source the schedule names; {} is Slack, or Jira when only Jira is configured', async () => {
    // Act / Assess
    const both = routeCollaborationScan({ slack, jira: jiraRun });
    expect(await both({ source: 'jira' }, scanContext())).toBe('jira');
    expect(await both({}, scanContext())).toBe('slack');
    expect(await both({ source: 'slack' }, scanContext())).toBe('slack');
    expect(await routeCollaborationScan({ jira: jiraRun })({}, scanContext())).toBe('jira');
    await expect(routeCollaborationScan({ slack })({ source: 'jira' }, scanContext())).rejects.toThrow(
      'the scheduled scan of jira is not configured in this function',
    );
  });
});
