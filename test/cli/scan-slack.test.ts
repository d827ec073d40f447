import { join } from 'node:path';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { runScan, type ScanDeps, type ScanOptions } from '../../lambda/cli/scan';
import { SourceHttp } from '../../lambda/cli/scan-sources/http';
import type { ScanReportDetail } from '../../lambda/domain/scan-report';
import { FakeSlack, type FakeSlackChannel } from '../support/fake-slack';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';
import { captureIO, REPO, removeTempDirs, tempDir } from './helpers';

const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

/**
 * keyguard scan --slack (issue 15 §2) against a fake Slack Web API on loopback (test/support/fake-slack.ts: the
 * documented shapes, cursor pages, 429 with Retry-After, malformed pages).
 */

const NOW = new Date('2026-11-20T09:41:02Z');
const TOKEN = 'xoxp-1111-2222-3333-fake-slack-token-for-tests';
const LONG = fakeLongTermKey('slack-long');
const SHORT = fakeShortTermKey('slack-short');
const FILE_KEY = fakeLongTermKey('slack-file', '444455556666');
const SECRETS = [LONG, SHORT, FILE_KEY, TOKEN];

const slack = new FakeSlack({ token: TOKEN });
const slept: number[] = [];
const eventBridge = mockClient(EventBridgeClient);

beforeAll(() => slack.start());
afterAll(async () => {
  removeTempDirs();
  await slack.stop();
});

/** An empty working directory: no .keyguard-baseline.json. */
let cwd = '';
beforeAll(() => {
  cwd = tempDir('keyguard-slack-');
});

/** general: 5 messages over 3 history pages (the key in the oldest), a thread with 2 replies, a file snippet. */
beforeEach(() => {
  slept.length = 0;
  slack.requests.length = 0;
  slack.authError = undefined;
  slack.rateLimitOnce = undefined;
  slack.channels = [
    {
      id: 'C001',
      name: 'general',
      messages: [
        { ts: '1763500000.000100', text: `here it is ${LONG}`, user: 'U0ALICE' },
        {
          ts: '1763500100.000200',
          text: 'deploy thread',
          user: 'U0BOB',
          thread_ts: '1763500100.000200',
          reply_count: 2,
        },
        {
          ts: '1763500200.000300',
          text: 'see the file',
          user: 'U0CAROL',
          files: [
            {
              id: 'F001',
              name: 'env.txt',
              mimetype: 'text/plain',
              filetype: 'text',
              size: 200,
              mode: 'snippet',
              url_private_download: `${slack.url}/files/F001/env.txt`,
              permalink: 'https://acme.slack.com/files/U0CAROL/F001/env.txt',
              user: 'U0CAROL',
            },
            {
              id: 'F002',
              name: 'photo.png',
              mimetype: 'image/png',
              filetype: 'png',
              size: 9000,
              url_private_download: `${slack.url}/files/F002/photo.png`,
            },
          ],
        },
        { ts: '1763500300.000400', text: 'nothing here', user: 'U0BOB' },
        { ts: '1763500400.000500', text: 'ok', user: 'U0ALICE' },
      ],
    },
    { id: 'C002', name: 'random', messages: [{ ts: '1763500500.000600', text: 'lunch?', user: 'U0BOB' }] },
    {
      id: 'G003',
      name: 'secret-ops',
      messages: [{ ts: '1763500600.000700', text: `ops ${LONG}`, user: 'U0DAVE' }],
    },
  ];
  slack.threads = new Map([
    [
      'C001:1763500100.000200',
      [
        { ts: '1763500100.000200', text: 'deploy thread', user: 'U0BOB', thread_ts: '1763500100.000200' },
        { ts: '1763500150.000210', text: 'fine', user: 'U0ALICE', thread_ts: '1763500100.000200' },
        {
          ts: '1763500160.000220',
          text: `token:\n  ${SHORT}`,
          user: 'U0EVE',
          thread_ts: '1763500100.000200',
        },
      ],
    ],
  ]);
  slack.files = new Map([['files/F001/env.txt', `# env\nBEDROCK_KEY=${FILE_KEY}\n`]]);
  eventBridge.reset();
});

function deps(env: NodeJS.ProcessEnv = { SLACK_TOKEN: TOKEN, SLACK_API_URL: slack.url }): ScanDeps {
  return {
    now: () => NOW,
    chunkSize: 64 * 1024,
    gitBinary: 'git',
    version: '0.0.0-test',
    slack: {
      env,
      sleep: async (ms) => {
        slept.push(ms);
      },
    },
    quarantine: { env: {}, publisher: { sleep: async () => undefined } },
  };
}

async function scan(opts: ScanOptions, env?: NodeJS.ProcessEnv) {
  const out = captureIO(cwd);
  const code = await runScan([], { slack: true, ...opts }, out.io, deps(env));
  const stdout = out.stdout();
  const stderr = out.stderr();
  // Never a key fragment nor the token, whatever happened.
  expect(leakedFragments(stdout + stderr, SECRETS)).toEqual([]);
  return { code, stdout, stderr };
}

function findings(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('keyguard scan --slack', () => {
  it('reads every channel page, every history page, thread replies and text files; locates each key by permalink and poster', async () => {
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(res.code).toBe(1);
    const found = findings(res.stdout);
    expect(found.map((f) => [f.path, f.line, f.column, f.kind, f.postedBy])).toEqual([
      ['https://acme.slack.com/files/U0CAROL/F001/env.txt', 2, 13, 'LONG_TERM', 'U0CAROL'],
      ['https://acme.slack.com/archives/C001/p1763500160000220', 2, 3, 'SHORT_TERM', 'U0EVE'],
      ['https://acme.slack.com/archives/C001/p1763500000000100', 1, 12, 'LONG_TERM', 'U0ALICE'],
      ['https://acme.slack.com/archives/G003/p1763500600000700', 1, 5, 'LONG_TERM', 'U0DAVE'],
    ]);
    // Pagination to the end: 2 channel pages, 3 + 1 + 1 history pages, 3 reply pages (1 per page).
    expect(slack.calls('conversations.list').map((r) => r.params.get('cursor'))).toEqual([null, '2']);
    expect(slack.calls('conversations.list')[0]?.params.get('exclude_archived')).toBe('true');
    expect(slack.calls('conversations.list')[0]?.params.get('types')).toBe('public_channel,private_channel');
    expect(
      slack.calls('conversations.history').map((r) => [r.params.get('channel'), r.params.get('cursor')]),
    ).toEqual([
      ['C001', null],
      ['C001', '2'],
      ['C001', '4'],
      ['C002', null],
      ['G003', null],
    ]);
    expect(slack.calls('conversations.replies').map((r) => r.params.get('cursor'))).toEqual([null, '1', '2']);
    // Permalinks asked only for the messages holding keys (the file has its own permalink); the image not fetched.
    expect(slack.calls('chat.getPermalink')).toHaveLength(3);
    expect(slack.requests.filter((r) => r.method.startsWith('files/')).map((r) => r.method)).toEqual([
      'files/F001/env.txt',
    ]);
    expect(slack.requests.every((r) => r.auth === `Bearer ${TOKEN}`)).toBe(true);
    expect(res.stderr).toContain(
      'Slack: 3 channels, 7 messages, 2 thread replies, 1 file scanned (1 skipped: not text, over 1 MiB or not on Slack)',
    );
  });

  it('names the poster in text output and locates by permalink in SARIF', async () => {
    const text = await scan({ format: 'text', channel: ['secret-ops'] });
    expect(text.stdout).toMatch(
      /^https:\/\/acme\.slack\.com\/archives\/G003\/p1763500600000700:1:5: LONG_TERM .* posted by U0DAVE\n$/,
    );
    const sarif = await scan({ format: 'sarif', channel: ['secret-ops'] });
    const result = JSON.parse(sarif.stdout).runs[0].results[0];
    expect(result.locations[0].physicalLocation.artifactLocation.uri).toBe(
      'https://acme.slack.com/archives/G003/p1763500600000700',
    );
    expect(result.properties.postedBy).toBe('U0DAVE');
  });

  it("scans a bot message's attachment texts, each once, located by the message permalink", async () => {
    // Prepare
    const random = slack.channels[1] as FakeSlackChannel;
    random.messages = [
      {
        ts: '1763500500.000600',
        text: 'CI failed',
        bot_id: 'B0CI',
        attachments: [{ text: `log:\n${SHORT}`, fallback: `log:\n${SHORT}` }],
      },
    ];
    // Act
    const res = await scan({ format: 'json', channel: ['random'] });
    // Assess
    expect(findings(res.stdout).map((f) => [f.path, f.line, f.column, f.postedBy])).toEqual([
      ['https://acme.slack.com/archives/C002/p1763500500000600', 2, 1, 'B0CI'],
    ]);
    expect(res.code).toBe(1);
  });

  it('a message line with keyguard:allow is not reported, and counted as the summary says', async () => {
    // Prepare
    const random = slack.channels[1] as FakeSlackChannel;
    random.messages = [
      { ts: '1763500500.000600', text: `test fixture ${SHORT} keyguard:allow`, user: 'U0BOB' },
    ];
    // Act
    const res = await scan({ format: 'json', channel: ['random'] });
    // Assess
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('suppressed: 1 by keyguard:allow');
    expect(res.code).toBe(0);
  });

  it('waits out a 429 as Retry-After asks (injected sleep) and counts the wait', async () => {
    // Prepare
    slack.rateLimitOnce = { method: 'conversations.history', retryAfter: '7' };
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(slept).toEqual([7000]);
    expect(findings(res.stdout)).toHaveLength(4);
    expect(res.stderr).toContain('1 rate-limited (waited 7 s)');
    expect(res.code).toBe(1);
  });

  it('a rejected token (invalid_auth) or none: one line, exit 2, nothing scanned', async () => {
    slack.authError = 'invalid_auth';
    const rejected = await scan({});
    expect(rejected.code).toBe(2);
    expect(rejected.stderr).toBe(
      'keyguard: scan: Slack auth.test: the token in SLACK_TOKEN was rejected (invalid_auth); nothing was scanned\n',
    );
    expect(slack.requests.map((r) => r.method)).toEqual(['auth.test']);
    slack.requests.length = 0;
    const missing = await scan({}, { SLACK_API_URL: slack.url });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^keyguard: scan: --slack needs a Slack token in .*SLACK_TOKEN.*\n$/);
    expect(slack.requests).toEqual([]);
  });

  it('a channel the token cannot read (missing_scope) is reported and the others scanned', async () => {
    // Prepare
    const ops = slack.channels[2] as FakeSlackChannel;
    ops.error = 'missing_scope';
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(res.stderr).toContain(
      'keyguard: Slack #secret-ops: Slack conversations.history: missing_scope (the token needs groups:history)',
    );
    expect(findings(res.stdout)).toHaveLength(3);
    expect(res.code).toBe(2);
  });

  it('a malformed page is reported naming Slack and the method, never the token it echoes; the rest is scanned', async () => {
    // Prepare
    const general = slack.channels[0] as FakeSlackChannel;
    general.malformed = true;
    // Act
    const res = await scan({ format: 'json' });
    // Assess
    expect(res.stderr).toContain(
      'keyguard: Slack #general: Slack conversations.history: malformed answer (not JSON',
    );
    expect(res.stderr).toContain('[token]');
    expect(findings(res.stdout).map((f) => f.path)).toEqual([
      'https://acme.slack.com/archives/G003/p1763500600000700',
    ]);
    expect(res.code).toBe(2);
  });

  it('--since passes oldest to history and replies; --channel (repeatable, name or ID) selects channels', async () => {
    // Act: through the command line.
    const out = captureIO(cwd);
    const code = await main(
      [
        'node',
        'keyguard',
        'scan',
        '--slack',
        '--channel',
        '#general',
        '--channel',
        'G003',
        '--channel',
        'nope',
        '--since',
        '2025-11-18T21:00:00Z',
        '--format',
        'json',
      ],
      out.io,
      undefined,
      () => deps(),
    );
    // Assess
    const oldest = String(Date.parse('2025-11-18T21:00:00Z') / 1000);
    expect(slack.calls('conversations.history').map((r) => r.params.get('channel'))).toEqual([
      'C001',
      'C001',
      'C001',
      'G003',
    ]);
    for (const r of slack.calls('conversations.history'))
      expect(Number(r.params.get('oldest'))).toBe(Number(oldest));
    for (const r of slack.calls('conversations.replies'))
      expect(Number(r.params.get('oldest'))).toBe(Number(oldest));
    expect(out.stderr()).toContain('keyguard: Slack #nope: no such channel among those the token can read');
    expect(findings(out.stdout())).toHaveLength(4);
    expect(code).toBe(2);
    expect(leakedFragments(out.stdout() + out.stderr(), SECRETS)).toEqual([]);
  });

  it('--since accepts a duration and refuses anything else; --channel and --since need --slack', async () => {
    await scan({ format: 'json', since: '2d', channel: ['random'] });
    expect(Number(slack.calls('conversations.history')[0]?.params.get('oldest'))).toBe(
      (NOW.getTime() - 2 * 86_400_000) / 1000,
    );
    const bad = await scan({ since: 'last tuesday' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since: got "last tuesday"; allowed: a date');
    const out = captureIO(cwd);
    expect(await runScan(['.'], { channel: ['x'] }, out.io, deps())).toBe(2);
    expect(out.stderr()).toBe('keyguard: scan: --channel needs --slack\n');
  });

  it('--quarantine reports Slack findings with the permalink as their location, never the key', async () => {
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
    const long = details.find((d) => d.locations.some((l) => l.path.includes('p1763500000000100')));
    expect(long?.locations.map((l) => l.path)).toEqual([
      'https://acme.slack.com/archives/C001/p1763500000000100',
      'https://acme.slack.com/archives/G003/p1763500600000700',
    ]);
    expect(leakedFragments(JSON.stringify(entries), SECRETS)).toEqual([]);
  });
});

describe('SourceHttp', () => {
  it('gives up after the bounded retries on 429, naming the source and method, and redacts the token', async () => {
    // Prepare
    const waits: number[] = [];
    const http = new SourceHttp({
      source: 'Slack',
      token: TOKEN,
      maxRetries: 2,
      sleep: async (ms) => {
        waits.push(ms);
      },
      fetch: async () => new Response('slow down', { status: 429, headers: { 'retry-after': '3' } }),
    });
    // Act
    const err = await http.json('conversations.list', `https://example.invalid/?t=${TOKEN}`).then(
      () => new Error('no error'),
      (e: unknown) => e as Error,
    );
    // Assess
    expect(err.message).toBe('Slack conversations.list: rate limited (HTTP 429) 3 times in a row: gave up');
    expect(waits).toEqual([3000, 3000]);
    expect(http.waitedMs).toBe(6000);
    expect(http.calls).toBe(3);
    const echoed = new SourceHttp({
      source: 'Slack',
      token: TOKEN,
      fetch: async () => new Response(`bad token ${TOKEN}`, { status: 500 }),
    });
    const e2 = await echoed.json('auth.test', 'https://example.invalid/').then(
      () => new Error('no error'),
      (e: unknown) => e as Error,
    );
    expect(e2.message).toBe('Slack auth.test: HTTP 500 bad token [token]');
  });
});
