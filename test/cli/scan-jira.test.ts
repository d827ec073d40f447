import { join } from 'node:path';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { runScan, type ScanDeps, type ScanOptions } from '../../lambda/cli/scan';
import { ADF_MAX_DEPTH, adfToText } from '../../lambda/cli/scan-sources/atlassian-text';
import { SourceHttp } from '../../lambda/cli/scan-sources/http';
import { jqlSince, splitOrderBy } from '../../lambda/cli/scan-sources/jira';
import type { ScanReportDetail } from '../../lambda/domain/scan-report';
import { adf, FakeJira, type FakeJiraIssue } from '../support/fake-jira';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';
import { captureIO, REPO, removeTempDirs, tempDir } from './helpers';

const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

/**
 * keyguard scan --jira (issue 15 §2) against a fake Jira Cloud site on loopback (test/support/fake-jira.ts): the
 * enhanced search's nextPageToken pages, comments beyond those embedded paged by startAt, 429 with Retry-After or
 * X-RateLimit-Reset, rejected credentials, malformed pages and issues, hostile ADF.
 */

const NOW = new Date('2026-11-20T09:41:02Z');
const EMAIL = 'scanner@example.com';
const TOKEN = 'ATATT3xFfGF0-fake-jira-api-token-for-tests-0123456789';
const BASIC = Buffer.from(`${EMAIL}:${TOKEN}`).toString('base64');
const DESC_KEY = fakeLongTermKey('jira-description');
const COMMENT_KEY = fakeShortTermKey('jira-comment');
const LATE_KEY = fakeLongTermKey('jira-late-comment', '444455556666');
const SECRETS = [DESC_KEY, COMMENT_KEY, LATE_KEY, TOKEN, BASIC];

const jira = new FakeJira(EMAIL, TOKEN, NOW);
const slept: number[] = [];
const eventBridge = mockClient(EventBridgeClient);
let cwd = '';

beforeAll(async () => {
  await jira.start();
  cwd = tempDir('keyguard-jira-');
});
afterAll(async () => {
  removeTempDirs();
  await jira.stop();
});

const hours = (h: number) => new Date(NOW.getTime() - h * 3_600_000).toISOString();

/** OPS-1: a key in its description; OPS-2: 5 comments (2 embedded, 3 paged), a key in the 2nd and 5th; OPS-3: none. */
function issues(): FakeJiraIssue[] {
  return [
    {
      id: '10001',
      key: 'OPS-1',
      summary: 'Deploy fails',
      description: adf('The pipeline uses', `BEDROCK_KEY=${DESC_KEY}`),
      reporter: { accountId: '557058:alice', displayName: 'Alice' },
      updated: hours(100),
      comments: [],
    },
    {
      id: '10002',
      key: 'OPS-2',
      summary: 'Model access',
      description: null,
      reporter: { accountId: '557058:bob' },
      updated: hours(2),
      comments: [
        { id: '20001', author: { accountId: '557058:bob' }, body: adf('any news?'), created: hours(90) },
        {
          id: '20002',
          author: { accountId: '557058:carol' },
          body: {
            type: 'doc',
            version: 1,
            content: [
              {
                type: 'codeBlock',
                attrs: { language: 'shell' },
                content: [{ type: 'text', text: `export TOKEN=\n  ${COMMENT_KEY}` }],
              },
            ],
          },
          created: hours(80),
        },
        { id: '20003', author: { accountId: '557058:bob' }, body: adf('thanks'), created: hours(70) },
        { id: '20004', author: { accountId: '557058:dave' }, body: adf('rotated'), created: hours(60) },
        {
          id: '20005',
          author: { accountId: '557058:eve' },
          body: adf(`new one ${LATE_KEY}`),
          created: hours(1),
        },
      ],
    },
    {
      id: '10003',
      key: 'OPS-3',
      summary: 'Nothing to see',
      description: adf('plain text'),
      updated: hours(3),
      comments: [],
    },
  ];
}

beforeEach(() => {
  slept.length = 0;
  jira.reset();
  jira.issues = issues();
  eventBridge.reset();
});

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { JIRA_URL: jira.url, JIRA_EMAIL: EMAIL, JIRA_API_TOKEN: TOKEN, ...extra };
}

function deps(e: NodeJS.ProcessEnv = env()): ScanDeps {
  return {
    now: () => NOW,
    chunkSize: 64 * 1024,
    gitBinary: 'git',
    version: '0.0.0-test',
    atlassian: {
      env: e,
      now: () => NOW.getTime(),
      sleep: async (ms) => {
        slept.push(ms);
      },
    },
    quarantine: { env: {}, publisher: { sleep: async () => undefined } },
  };
}

async function scan(opts: Partial<ScanOptions>, e?: NodeJS.ProcessEnv) {
  const out = captureIO(cwd);
  const code = await runScan([], { jira: 'project = OPS', ...opts }, out.io, deps(e));
  const stdout = out.stdout();
  const stderr = out.stderr();
  // Never a key fragment, the token or the Basic credentials, whatever happened.
  expect(leakedFragments(stdout + stderr, SECRETS)).toEqual([]);
  return { code, stdout, stderr };
}

function findings(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('keyguard scan --jira', () => {
  it('reads every search page and every comment page; locates each key by issue or comment link and author', async () => {
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(res.code).toBe(1);
    expect(findings(res.stdout).map((f) => [f.path, f.line, f.column, f.kind, f.postedBy])).toEqual([
      [`${jira.url}/browse/OPS-1`, 3, 13, 'LONG_TERM', '557058:alice'],
      [`${jira.url}/browse/OPS-2?focusedCommentId=20002`, 2, 3, 'SHORT_TERM', '557058:carol'],
      [`${jira.url}/browse/OPS-2?focusedCommentId=20005`, 1, 9, 'LONG_TERM', '557058:eve'],
    ]);
    // Two search pages (nextPageToken, then isLast), the JQL and fields as sent; OPS-2's comments 3 to 5 paged.
    const searches = jira.calls('/rest/api/3/search/jql');
    expect(searches.map((r) => r.params.get('nextPageToken'))).toEqual([
      null,
      Buffer.from('page-2').toString('base64url'),
    ]);
    expect(searches[0]?.params.get('jql')).toBe('project = OPS');
    expect(searches[0]?.params.get('fields')?.split(',')).toEqual(
      expect.arrayContaining(['summary', 'description', 'comment', 'reporter']),
    );
    expect(jira.calls('/rest/api/3/issue/OPS-2/comment').map((r) => r.params.get('startAt'))).toEqual([
      '2',
      '4',
    ]);
    expect(jira.requests.every((r) => r.auth === `Basic ${BASIC}`)).toBe(true);
    expect(jira.requests[0]?.path).toBe('/rest/api/3/myself');
    expect(res.stderr).toContain(
      'keyguard scan: Jira: 3 issues, 5 comments scanned; 5 API calls, 0 rate-limited',
    );
  });

  it('names the author in text output and locates by link in SARIF', async () => {
    const text = await scan({ format: 'text', jira: 'key = OPS-1' });
    expect(text.stdout).toContain(`${jira.url}/browse/OPS-1:3:13: LONG_TERM`);
    expect(text.stdout).toContain('posted by 557058:alice\n');
    const sarif = await scan({ format: 'sarif' });
    const results = JSON.parse(sarif.stdout).runs[0].results;
    expect(results[1].locations[0].physicalLocation.artifactLocation.uri).toBe(
      `${jira.url}/browse/OPS-2?focusedCommentId=20002`,
    );
    expect(results[1].properties.postedBy).toBe('557058:carol');
  });

  it('--since adds updated >= to the JQL (before its ORDER BY) and skips older comments', async () => {
    // Act: through the command line.
    const out = captureIO(cwd);
    const code = await main(
      [
        'node',
        'keyguard',
        'scan',
        '--jira',
        'project = OPS ORDER BY updated DESC',
        '--since',
        '1d',
        '--format',
        'json',
      ],
      out.io,
      undefined,
      () => deps(),
    );
    // Assess: OPS-1 (updated 100 h ago) not selected; of OPS-2's comments only the one of 1 h ago scanned.
    expect(jira.calls('/rest/api/3/search/jql')[0]?.params.get('jql')).toBe(
      '(project = OPS) AND updated >= "-1440m" ORDER BY updated DESC',
    );
    expect(findings(out.stdout()).map((f) => f.path)).toEqual([
      `${jira.url}/browse/OPS-2?focusedCommentId=20005`,
    ]);
    expect(out.stderr()).toContain('Jira: 2 issues, 1 comment scanned');
    expect(code).toBe(1);
    expect(leakedFragments(out.stdout() + out.stderr(), SECRETS)).toEqual([]);
  });

  it('waits out a 429 as Retry-After asks, or until X-RateLimit-Reset when there is no Retry-After', async () => {
    jira.rateLimitOnce = { path: '/rest/api/3/search/jql', headers: { 'retry-after': '7' } };
    const first = await scan({ format: 'json' });
    expect(slept).toEqual([7000]);
    expect(findings(first.stdout)).toHaveLength(3);
    expect(first.stderr).toContain('1 rate-limited (waited 7 s)');
    slept.length = 0;
    const reset = new Date(NOW.getTime() + 12_000).toISOString();
    jira.rateLimitOnce = {
      path: '/rest/api/3/issue/OPS-2/comment',
      headers: { 'x-ratelimit-reset': reset, 'ratelimit-reason': 'jira-burst-based' },
    };
    const second = await scan({ format: 'json' });
    expect(slept).toEqual([12_000]);
    expect(findings(second.stdout)).toHaveLength(3);
  });

  it('missing credentials, or credentials Jira rejects (401, 403): one line, exit 2, nothing scanned', async () => {
    const missing = await scan({}, { JIRA_URL: jira.url, JIRA_EMAIL: EMAIL });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      "keyguard: scan: --jira needs the site URL and an Atlassian account's e-mail and API token in the environment " +
        '(never flags): JIRA_API_TOKEN is not set; nothing was scanned\n',
    );
    expect(jira.requests).toEqual([]);
    const wrong = await scan({}, env({ JIRA_API_TOKEN: 'ATATT-wrong-token-value' }));
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toBe(
      'keyguard: scan: Jira GET /rest/api/3/myself: JIRA_EMAIL and JIRA_API_TOKEN were rejected (HTTP 401: wrong ' +
        'e-mail, or a revoked or expired token); nothing was scanned\n',
    );
    jira.rejectWith = 403;
    const refused = await scan({});
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /^keyguard: scan: Jira GET \/rest\/api\/3\/myself: the account was refused \(HTTP 403/,
    );
    expect(jira.requests.map((r) => r.path)).toEqual(['/rest/api/3/myself', '/rest/api/3/myself']);
    const badUrl = await scan({}, env({ JIRA_URL: 'acme.atlassian.net' }));
    expect(badUrl.stderr).toContain('JIRA_URL "acme.atlassian.net" is not an http(s) site URL');
  });

  it("a JQL Jira refuses is reported in Jira's words, exit 2", async () => {
    jira.jqlError = "Error in the JQL Query: Expecting operator but got 'OPS'. (line 1, character 9)";
    const res = await scan({ jira: 'project OPS' });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(
      "keyguard: Jira: Jira GET /rest/api/3/search/jql: HTTP 400 Error in the JQL Query: Expecting operator but got 'OPS'.",
    );
    const empty = await scan({ jira: '  ' });
    expect(empty.stderr).toBe(
      'keyguard: scan: --jira needs a JQL query selecting the issues (e.g. "project = OPS")\n',
    );
  });

  it('a malformed search page is reported naming Jira, never the credentials it echoes; what came before is scanned', async () => {
    // Prepare: the second page is not JSON.
    jira.malformedSearch = Buffer.from('page-2').toString('base64url');
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(res.stderr).toContain(
      'keyguard: Jira: Jira GET /rest/api/3/search/jql: malformed answer (not JSON',
    );
    expect(res.stderr).toContain('[token]');
    expect(findings(res.stdout)).toHaveLength(3);
    expect(res.code).toBe(2);
  });

  it('a malformed issue or a comment page that fails is reported, and the other issues are scanned', async () => {
    // Prepare
    jira.issues.unshift({ ...(jira.issues[2] as FakeJiraIssue), raw: { id: '9', key: 'OPS-\u001b[2J9' } });
    jira.brokenComments = 'OPS-2';
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(res.stderr).toContain('keyguard: Jira OPS-\\x1b[2J9: malformed issue (key: not an issue key)');
    expect(res.stderr).not.toContain('\u001b');
    expect(res.stderr).toContain(
      'keyguard: Jira OPS-2: Jira GET /rest/api/3/issue/{key}/comment: HTTP 500 Internal server error; its comments from 3 on were not scanned',
    );
    // OPS-1's description and OPS-2's two embedded comments were still scanned.
    expect(findings(res.stdout).map((f) => f.path)).toEqual([
      `${jira.url}/browse/OPS-1`,
      `${jira.url}/browse/OPS-2?focusedCommentId=20002`,
    ]);
    expect(res.code).toBe(2);
  });

  it('hostile content: deep ADF is cut (and said), unknown nodes and link addresses kept, control characters shown escaped', async () => {
    // Prepare: a description nested far deeper than any editor makes, with a key above the cut and one below it.
    let deep: Record<string, unknown> = {
      type: 'paragraph',
      content: [{ type: 'text', text: `deep ${COMMENT_KEY}` }],
    };
    for (let i = 0; i < 2_000; i += 1) deep = { type: 'blockquote', content: [deep] };
    const ops3 = jira.issues[2] as FakeJiraIssue;
    ops3.summary = 'evil \u001b]0;pwned\u0007 \r\nsummary';
    ops3.reporter = { accountId: '557058:\u001b[31mmallory' };
    ops3.description = {
      type: 'doc',
      content: [
        { type: 'futureNode', content: [{ type: 'text', text: `kept ${LATE_KEY}` }] },
        {
          type: 'paragraph',
          content: [
            {
              type: 'text',
              text: 'link',
              marks: [{ type: 'link', attrs: { href: `https://x/?k=${DESC_KEY}` } }],
            },
          ],
        },
        { type: 'inlineCard', attrs: { url: 'https://example.com' } },
        'not a node',
        42,
        null,
        deep,
        { type: 'paragraph', content: [{ type: 'text', text: 'x'.repeat(5 * 1024 * 1024) }] },
      ],
    };
    jira.issues = [ops3];
    // Act
    const res = await scan({ format: 'text' });
    // Assess
    const lines = res.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.startsWith(`${jira.url}/browse/OPS-3:`))).toBe(true);
    expect(res.stdout).toContain('LONG_TERM long-term key of IAM user BedrockAPIKey-');
    expect(res.stdout).toContain('posted by 557058:\\x1b[31mmallory');
    expect(res.stdout + res.stderr).not.toContain('\u001b');
    expect(res.stdout + res.stderr).not.toContain('\u0007');
    expect(res.stderr).toContain('keyguard: Jira OPS-3: the description is nested too deep or too large');
    expect(res.stderr).toContain('Jira: 1 issue, 0 comments scanned (1 cut: nested too deep or too large)');
    expect(res.code).toBe(2);
  });

  it('--quarantine reports Jira findings with the issue and comment links as their locations, never the key', async () => {
    // Prepare
    eventBridge.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
      FailedEntryCount: 0,
      Entries: input.Entries.map((_, i) => ({ EventId: `e-${i}` })),
    }));
    const bus = 'arn:aws:events:us-east-1:111122223333:event-bus/bedrock-key-guard-governance';
    // Act
    const res = await scan({ quarantine: true, bus, format: 'json' });
    // Assess
    expect(res.code).toBe(1);
    const entries = eventBridge.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    const details = entries.map((e) => JSON.parse(e.Detail as string) as ScanReportDetail);
    expect(details.flatMap((d) => d.locations.map((l) => l.path)).sort()).toEqual([
      `${jira.url}/browse/OPS-1`,
      `${jira.url}/browse/OPS-2?focusedCommentId=20002`,
      `${jira.url}/browse/OPS-2?focusedCommentId=20005`,
    ]);
    expect(leakedFragments(JSON.stringify(entries), SECRETS)).toEqual([]);
  });
});

describe('JQL and ADF helpers', () => {
  it('splits a trailing ORDER BY outside quotes only', () => {
    expect(splitOrderBy('summary ~ "order by" ORDER BY key')).toEqual({
      where: 'summary ~ "order by" ',
      orderBy: 'ORDER BY key',
    });
    expect(splitOrderBy('project = OPS')).toEqual({ where: 'project = OPS', orderBy: '' });
    expect(jqlSince('order by created', new Date(NOW.getTime() - 90_500), NOW)).toBe(
      'updated >= "-2m" order by created',
    );
  });

  it('walks ADF iteratively: arrays, strings and unknown nodes kept, depth bounded', () => {
    let deep: unknown = { type: 'text', text: 'bottom' };
    for (let i = 0; i < ADF_MAX_DEPTH + 5; i += 1) deep = { type: 'x', content: [deep] };
    expect(adfToText(deep)).toEqual({ text: '', truncated: true });
    expect(
      adfToText({
        type: 'doc',
        content: [
          { type: 'mention', attrs: { text: '@bob' } },
          { type: 'hardBreak' },
          { type: 'emoji', attrs: { shortName: ':key:' } },
        ],
      }).text,
    ).toBe('@bob\n:key:');
  });
});

describe('SourceHttp: Atlassian rate-limit headers and error bodies', () => {
  /** A client whose answers are `responses` in turn, recording its waits. */
  function client(responses: Response[], waits: number[]): SourceHttp {
    return new SourceHttp({
      source: 'Jira',
      token: TOKEN,
      authorization: `Basic ${BASIC}`,
      secrets: [BASIC],
      now: () => NOW.getTime(),
      sleep: async (ms) => {
        waits.push(ms);
      },
      errorDetail: () => {
        throw new Error('a broken parser never hides the answer');
      },
      fetch: async () => responses.shift() ?? new Response('{}'),
    });
  }

  it('reads Retry-After as an HTTP-date, and waits 1 s when neither header can be read', async () => {
    // Prepare
    const waits: number[] = [];
    const at = new Date(NOW.getTime() + 30_000).toUTCString();
    const http = client(
      [
        new Response('', { status: 429, headers: { 'retry-after': at } }),
        new Response('', { status: 429, headers: { 'retry-after': 'soon', 'x-ratelimit-reset': 'later' } }),
        new Response('{"ok":1}'),
      ],
      waits,
    );
    // Act
    const body = await http.json('GET /rest/api/3/myself', 'https://acme.example/rest/api/3/myself');
    // Assess
    expect(body).toEqual({ ok: 1 });
    expect(waits).toEqual([30_000, 1000]);
  });

  it('an error body whose parser throws is shown as its first line, the Basic credentials redacted', async () => {
    const http = client([new Response(`denied for Basic ${BASIC}`, { status: 403 })], []);
    const err = await http.json('GET /x', 'https://acme.example/x').then(
      () => new Error('no error'),
      (e: unknown) => e as Error,
    );
    expect(err.message).toBe('Jira GET /x: HTTP 403 denied for [token]');
  });
});
