import { join } from 'node:path';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { runScan, type ScanDeps, type ScanOptions } from '../../lambda/cli/scan';
import { storageToText } from '../../lambda/cli/scan-sources/atlassian-text';
import type { ScanReportDetail } from '../../lambda/domain/scan-report';
import {
  FakeConfluence,
  type FakeConfluencePage,
  type FakeConfluenceSpace,
} from '../support/fake-confluence';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';
import { captureIO, REPO, removeTempDirs, tempDir } from './helpers';

const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

/**
 * keyguard scan --confluence (issue 15 §2) against a fake Confluence Cloud site on loopback
 * (test/support/fake-confluence.ts): spaces by key, cursor pages by `_links.next`, footer and inline comments and
 * their replies, 429, rejected credentials, malformed pages and items, a next link to another origin, hostile
 * storage format.
 */

const NOW = new Date('2026-11-20T09:41:02Z');
const EMAIL = 'scanner@example.com';
const TOKEN = 'ATATT3xFfGF0-fake-confluence-api-token-for-tests-987654';
const BASIC = Buffer.from(`${EMAIL}:${TOKEN}`).toString('base64');
const PAGE_KEY = fakeLongTermKey('confluence-page');
const COMMENT_KEY = fakeShortTermKey('confluence-comment');
const REPLY_KEY = fakeLongTermKey('confluence-reply', '444455556666');
const LINK_KEY = fakeLongTermKey('confluence-link', '777788889999');
const SECRETS = [PAGE_KEY, COMMENT_KEY, REPLY_KEY, LINK_KEY, TOKEN, BASIC];

const confluence = new FakeConfluence(EMAIL, TOKEN);
const slept: number[] = [];
const eventBridge = mockClient(EventBridgeClient);
let cwd = '';

beforeAll(async () => {
  await confluence.start();
  cwd = tempDir('keyguard-confluence-');
});
afterAll(async () => {
  removeTempDirs();
  await confluence.stop();
});

const hours = (h: number) => new Date(NOW.getTime() - h * 3_600_000).toISOString();
/** The key with its + and / written as character references, as an editor may store them. */
const entityEncoded = (key: string) => key.replace(/\+/g, '&#43;').replace(/\//g, '&#x2F;');

/**
 * OPS: Runbook (a key in a code macro), Team (a key in a footer comment, another in a reply to a comment without
 * one), Old (an inline comment). ENG: one page with a key in a link's href.
 */
function spaces(): FakeConfluenceSpace[] {
  return [
    {
      id: '98001',
      key: 'OPS',
      pages: [
        {
          id: '1003',
          title: 'Old',
          storage: '<p>archived notes</p>',
          authorId: 'acc-old',
          modifiedAt: hours(200),
          inline: [{ id: '3001', storage: '<p>typo?</p>', authorId: 'acc-bob', createdAt: hours(199) }],
        },
        {
          id: '1001',
          title: 'Runbook',
          storage:
            '<h1>Deploy</h1><ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>' +
            `<ac:plain-text-body><![CDATA[export KEY=${PAGE_KEY}]]></ac:plain-text-body></ac:structured-macro>`,
          authorId: 'acc-alice',
          modifiedAt: hours(2),
        },
        {
          id: '1002',
          title: 'Team',
          storage: '<p>Who is on call?</p>',
          authorId: 'acc-carol',
          modifiedAt: hours(50),
          footer: [
            {
              id: '2001',
              storage: '<p>me</p>',
              authorId: 'acc-bob',
              createdAt: hours(100),
              replies: [
                {
                  id: '2003',
                  storage: `<p>use <code>${REPLY_KEY}</code></p>`,
                  authorId: 'acc-eve',
                  createdAt: hours(1),
                },
              ],
            },
            {
              id: '2002',
              storage: `<p>token:<br/>${entityEncoded(COMMENT_KEY)}</p>`,
              authorId: 'acc-dave',
              createdAt: hours(60),
            },
          ],
        },
      ],
    },
    {
      id: '98002',
      key: 'ENG',
      pages: [
        {
          id: '1101',
          title: 'Links',
          storage: `<p><a href="https://bedrock.example/?key=${LINK_KEY}&amp;x=1">console</a></p>`,
          authorId: 'acc-frank',
          modifiedAt: hours(5),
        },
      ],
      blogposts: [
        {
          id: '1201',
          title: 'Setup',
          storage: `<p>We set up Bedrock with <strong>${entityEncoded(PAGE_KEY)}</strong></p>`,
          authorId: 'acc-gina',
          modifiedAt: hours(10),
          footer: [{ id: '2201', storage: '<p>nice</p>', authorId: 'acc-bob', createdAt: hours(9) }],
        },
      ],
    },
  ];
}

beforeEach(() => {
  slept.length = 0;
  confluence.reset();
  confluence.spaces = spaces();
  eventBridge.reset();
});

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { CONFLUENCE_URL: `${confluence.url}/wiki/`, JIRA_EMAIL: EMAIL, JIRA_API_TOKEN: TOKEN, ...extra };
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
  const code = await runScan([], { confluence: ['OPS,ENG'], ...opts }, out.io, deps(e));
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

const wiki = () => `${confluence.url}/wiki`;

describe('keyguard scan --confluence', () => {
  it('reads every page of each space and every comment and reply, to the last cursor; locates each key by web link', async () => {
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(res.code).toBe(1);
    expect(findings(res.stdout).map((f) => [f.path, f.line, f.kind, f.postedBy])).toEqual([
      [`${wiki()}/spaces/OPS/pages/1001/Runbook`, 7, 'LONG_TERM', 'acc-alice'],
      [`${wiki()}/spaces/OPS/pages/1002/?focusedCommentId=2002#comment-2002`, 3, 'SHORT_TERM', 'acc-dave'],
      [`${wiki()}/spaces/OPS/pages/1002/?focusedCommentId=2003#comment-2003`, 2, 'LONG_TERM', 'acc-eve'],
      [`${wiki()}/spaces/ENG/pages/1101/Links`, 5, 'LONG_TERM', 'acc-frank'],
      [`${wiki()}/spaces/ENG/blog/2026/11/20/1201/Setup`, 3, 'LONG_TERM', 'acc-gina'],
    ]);
    // The spaces by key; OPS's pages over two cursor pages, current versions, storage bodies, newest first.
    expect(confluence.calls('/wiki/api/v2/spaces')[0]?.params.get('keys')).toBe('OPS,ENG');
    const lists = confluence.calls('/wiki/api/v2/spaces/98001/pages');
    expect(lists.map((r) => r.params.get('cursor'))).toEqual([null, '2']);
    expect(Object.fromEntries(lists[0]?.params ?? [])).toMatchObject({
      'body-format': 'storage',
      status: 'current',
      sort: '-modified-date',
    });
    expect(confluence.calls(/^\/wiki\/api\/v2\/footer-comments\/\d+\/children$/).map((r) => r.path)).toEqual([
      '/wiki/api/v2/footer-comments/2001/children',
      '/wiki/api/v2/footer-comments/2002/children',
      '/wiki/api/v2/footer-comments/2003/children',
      '/wiki/api/v2/footer-comments/2201/children',
    ]);
    expect(confluence.calls('/wiki/api/v2/pages/1003/inline-comments')).toHaveLength(1);
    expect(confluence.calls('/wiki/api/v2/spaces/98002/blogposts')[0]?.params.get('body-format')).toBe(
      'storage',
    );
    expect(confluence.requests.every((r) => r.auth === `Basic ${BASIC}`)).toBe(true);
    expect(res.stderr).toContain(
      'keyguard scan: Confluence: 2 spaces, 4 pages, 1 blog post, 5 comments scanned; 21 API calls, 0 rate-limited ' +
        '(waited 0 s)',
    );
  });

  it('--since (repeatable --confluence) stops a space at its first older page and skips older comments', async () => {
    // Act: through the command line; CONFLUENCE_URL not set: JIRA_URL is the site.
    const out = captureIO(cwd);
    const e = env({ CONFLUENCE_URL: undefined, JIRA_URL: confluence.url });
    const code = await main(
      [
        'node',
        'keyguard',
        'scan',
        '--confluence',
        'OPS',
        '--confluence',
        'ENG',
        '--since',
        '3d',
        '--format',
        'json',
      ],
      out.io,
      undefined,
      () => deps(e),
    );
    // Assess: Old (200 h) and its comments not read; comment 2001 (100 h) not scanned, its reply (1 h) is.
    expect(findings(out.stdout()).map((f) => f.path)).toHaveLength(5);
    expect(confluence.calls('/wiki/api/v2/pages/1003/inline-comments')).toEqual([]);
    expect(out.stderr()).toContain('Confluence: 2 spaces, 3 pages, 1 blog post, 3 comments scanned');
    expect(code).toBe(1);
    expect(leakedFragments(out.stdout() + out.stderr(), SECRETS)).toEqual([]);
  });

  it('waits out a 429 as Retry-After asks (injected sleep) and counts the wait', async () => {
    confluence.rateLimitOnce = { path: '/wiki/api/v2/spaces/98001/pages', headers: { 'retry-after': '4' } };
    const res = await scan({ format: 'json' });
    expect(slept).toEqual([4000]);
    expect(findings(res.stdout)).toHaveLength(5);
    expect(res.stderr).toContain('1 rate-limited (waited 4 s)');
  });

  it('missing or rejected credentials (401, 403): one line, exit 2, nothing scanned; an unknown space is named', async () => {
    const missing = await scan({}, { JIRA_EMAIL: EMAIL, JIRA_API_TOKEN: TOKEN });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('CONFLUENCE_URL or JIRA_URL is not set; nothing was scanned');
    expect(confluence.requests).toEqual([]);
    const wrong = await scan({}, env({ JIRA_EMAIL: 'someone@example.com' }));
    expect(wrong.stderr).toBe(
      'keyguard: scan: Confluence GET /wiki/api/v2/spaces: JIRA_EMAIL and JIRA_API_TOKEN were rejected (HTTP 401: ' +
        'wrong e-mail, or a revoked or expired token); nothing was scanned\n',
    );
    expect(wrong.code).toBe(2);
    confluence.rejectWith = 403;
    const refused = await scan({});
    expect(refused.stderr).toMatch(
      /^keyguard: scan: Confluence GET \/wiki\/api\/v2\/spaces: the account was refused \(HTTP 403/,
    );
    expect(confluence.requests.map((r) => r.path)).toEqual(['/wiki/api/v2/spaces', '/wiki/api/v2/spaces']);
    confluence.rejectWith = undefined;
    const unknown = await scan({ format: 'json', confluence: ['NOPE', 'ENG'] });
    expect(unknown.stderr).toContain(
      'keyguard: Confluence space NOPE: no such space among those the account can see',
    );
    expect(findings(unknown.stdout)).toHaveLength(2);
    expect(unknown.code).toBe(2);
    const empty = await scan({ confluence: [' , '] });
    expect(empty.stderr).toBe(
      'keyguard: scan: --confluence needs a space key (e.g. --confluence OPS, or OPS,ENG)\n',
    );
  });

  it('a malformed list is reported naming Confluence, never the credentials it echoes; the other spaces are scanned', async () => {
    (confluence.spaces[0] as FakeConfluenceSpace).malformed = true;
    const res = await scan({ format: 'json' });
    expect(res.stderr).toContain(
      'keyguard: Confluence space OPS: Confluence GET /wiki/api/v2/spaces/{id}/pages: malformed answer (not JSON',
    );
    expect(res.stderr).toContain('[token]');
    expect(findings(res.stdout).map((f) => f.path)).toEqual([
      `${wiki()}/spaces/ENG/pages/1101/Links`,
      `${wiki()}/spaces/ENG/blog/2026/11/20/1201/Setup`,
    ]);
    expect(res.code).toBe(2);
  });

  it('a malformed page item or comments that fail are reported, and the rest is scanned', async () => {
    // Prepare
    const ops = confluence.spaces[0] as FakeConfluenceSpace;
    ops.pages.push({
      ...(ops.pages[0] as FakeConfluencePage),
      id: '1004',
      raw: { title: 'no id' },
      modifiedAt: hours(1),
    });
    confluence.brokenComments = '1002';
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(res.stderr).toContain('keyguard: Confluence space OPS: item 1 of a pages list: malformed (id: ');
    expect(res.stderr).toContain(
      `keyguard: Confluence ${wiki()}/spaces/OPS/pages/1002/Team: Confluence GET /wiki/api/v2/pages/{id}/footer-comments: HTTP 500 Internal Server Error; the page and its other comments are scanned`,
    );
    expect(findings(res.stdout).map((f) => f.path)).toEqual([
      `${wiki()}/spaces/OPS/pages/1001/Runbook`,
      `${wiki()}/spaces/ENG/pages/1101/Links`,
      `${wiki()}/spaces/ENG/blog/2026/11/20/1201/Setup`,
    ]);
    expect(res.code).toBe(2);
  });

  it('a next link to another origin is not followed (the credentials go only to the site)', async () => {
    (confluence.spaces[0] as FakeConfluenceSpace).foreignNext = 'http://127.0.0.2:9';
    const res = await scan({ format: 'json' });
    expect(res.stderr).toContain(
      'keyguard: Confluence space OPS: Confluence GET /wiki/api/v2/spaces/{id}/pages: a next link to another origin ' +
        '(http://127.0.0.2:9) was not followed',
    );
    expect(findings(res.stdout)).toHaveLength(2);
    expect(res.code).toBe(2);
  });

  it('hostile storage: deep nesting, control characters, a huge body and an unclosed CDATA are read in one pass', async () => {
    // Prepare
    const deep = `${'<div>'.repeat(200_000)}${PAGE_KEY}${'</div>'.repeat(200_000)}`;
    confluence.spaces = [
      {
        id: '98003',
        key: 'EVIL',
        pages: [
          { id: '1', title: 'deep', storage: deep, authorId: 'acc-x', modifiedAt: hours(1) },
          {
            id: '2',
            title: 'evil \u001b]0;pwned\u0007 title',
            storage: `<p>${'x'.repeat(5 * 1024 * 1024)}</p><p>${COMMENT_KEY}</p>`,
            authorId: 'acc-\u001b[31my',
            modifiedAt: hours(2),
          },
          { id: '3', title: 'cdata', storage: `<![CDATA[${REPLY_KEY}`, modifiedAt: hours(3) },
        ],
      },
    ];
    // Act
    const res = await scan({ format: 'text', confluence: ['EVIL'] });
    // Assess
    const lines = res.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(3);
    expect(res.stdout).toContain('posted by acc-\\x1b[31my');
    expect(res.stdout + res.stderr).not.toContain('\u001b');
    expect(res.stdout + res.stderr).not.toContain('\u0007');
    expect(res.code).toBe(1);
  });

  it('--quarantine reports Confluence findings with the web links as their locations, never the key', async () => {
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
    expect(details.flatMap((d) => d.locations.map((l) => l.path)).sort()).toEqual(
      [
        `${wiki()}/spaces/ENG/pages/1101/Links`,
        `${wiki()}/spaces/ENG/blog/2026/11/20/1201/Setup`,
        `${wiki()}/spaces/OPS/pages/1001/Runbook`,
        `${wiki()}/spaces/OPS/pages/1002/?focusedCommentId=2002#comment-2002`,
        `${wiki()}/spaces/OPS/pages/1002/?focusedCommentId=2003#comment-2003`,
      ].sort(),
    );
    expect(leakedFragments(JSON.stringify(entries), SECRETS)).toEqual([]);
  });
});

describe('storageToText', () => {
  it('keeps character data, CDATA and link addresses; decodes references; ends lines at blocks', () => {
    expect(
      storageToText(
        '<p>a &amp; b&#43;c&#x2F;d &bogus;</p><!-- hidden --><ac:structured-macro ac:name="code">' +
          '<ac:plain-text-body><![CDATA[x<y>]]></ac:plain-text-body></ac:structured-macro>' +
          '<a href=\'https://h/?q=1&amp;r=2\' title="t">link</a><ri:page ri:content-title="P" ri:value="v"/>',
      ),
    ).toBe('\na & b+c/d &bogus;\n\nx<y>\n\nlink\ncode\nhttps://h/?q=1&r=2\nt\nv');
  });
});
