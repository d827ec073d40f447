import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { runScan, type ScanDeps, type ScanOptions } from '../../lambda/cli/scan';
import type { ScanReportDetail } from '../../lambda/domain/scan-report';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';
import { captureIO, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

/**
 * keyguard scan s3://bucket/prefix (issue 15 §2) against a fake S3 on loopback: ListObjectsV2 (path-style
 * GET /bucket?list-type=2, two keys a page, NextContinuationToken) and GetObject (GET /bucket/key), reached through
 * AWS_ENDPOINT_URL_S3 (the SDK reads it; a loopback IP endpoint is addressed path-style by the SDK's rules) with
 * static credentials from the environment. No network.
 */

const NOW = new Date('2026-11-20T09:41:02Z');
const LONG = fakeLongTermKey('s3-long');
const SHORT = fakeShortTermKey('s3-short');
const BOMB_KEY = fakeLongTermKey('s3-bomb-tail');
const SECRETS = [LONG, SHORT, BOMB_KEY];
const LIMIT = 64 * 1024;

interface FakeObject {
  body: Buffer;
  lastModified: string;
  status?: number;
}

const objects = new Map<string, FakeObject>();
/** The continuation token whose page the fake answers with 403 AccessDenied (a listing failing halfway). */
let deniedPage: string | undefined;
const requests: string[] = [];
let server: Server;
let endpoint: string;
const saved: NodeJS.ProcessEnv = {};
const ENV_NAMES = [
  'AWS_ENDPOINT_URL_S3',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_REGION',
  'AWS_PROFILE',
];

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function errorXml(
  res: ServerResponse,
  status: number,
  code: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/xml', ...headers });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`,
  );
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  requests.push(`${req.method} ${url.pathname}${url.search}`);
  const [, bucket = '', ...rest] = url.pathname.split('/');
  if (bucket === 'missing') {
    errorXml(res, 404, 'NoSuchBucket');
    return;
  }
  if (bucket === 'elsewhere') {
    errorXml(res, 301, 'PermanentRedirect', { 'x-amz-bucket-region': 'eu-west-1' });
    return;
  }
  if (bucket !== 'leaky') {
    errorXml(res, 404, 'NoSuchBucket');
    return;
  }
  if (rest.join('/') === '' && url.searchParams.get('list-type') === '2') {
    const prefix = url.searchParams.get('prefix') ?? '';
    const keys = [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    if (deniedPage !== undefined && url.searchParams.get('continuation-token') === deniedPage) {
      errorXml(res, 403, 'AccessDenied');
      return;
    }
    const from = Number(url.searchParams.get('continuation-token') ?? '0');
    const page = keys.slice(from, from + 2);
    const truncated = from + 2 < keys.length;
    res.writeHead(200, { 'content-type': 'application/xml' });
    res.end(
      '<?xml version="1.0" encoding="UTF-8"?>' +
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        `<Name>${bucket}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount>` +
        `<MaxKeys>1000</MaxKeys><IsTruncated>${truncated}</IsTruncated>` +
        (url.searchParams.has('continuation-token') ? `<ContinuationToken>${from}</ContinuationToken>` : '') +
        (truncated ? `<NextContinuationToken>${from + 2}</NextContinuationToken>` : '') +
        page
          .map((k) => {
            const o = objects.get(k) as FakeObject;
            return (
              `<Contents><Key>${xmlEscape(k)}</Key><LastModified>${o.lastModified}</LastModified>` +
              `<ETag>"0"</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`
            );
          })
          .join('') +
        '</ListBucketResult>',
    );
    return;
  }
  const key = decodeURIComponent(rest.join('/'));
  const o = objects.get(key);
  if (!o) {
    errorXml(res, 404, 'NoSuchKey');
    return;
  }
  if (o.status === 403) {
    errorXml(res, 403, 'AccessDenied');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(o.body.length) });
  res.end(o.body);
}

const OLD = '2026-01-01T00:00:00.000Z';
const RECENT = '2026-11-19T00:00:00.000Z';

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  for (const n of ENV_NAMES) saved[n] = process.env[n];
  process.env.AWS_ENDPOINT_URL_S3 = endpoint;
  process.env.AWS_ACCESS_KEY_ID = 'AKIAFAKEFORTESTS0000';
  process.env.AWS_SECRET_ACCESS_KEY = 'fake-secret-for-loopback-tests';
  process.env.AWS_REGION = 'us-east-1';
  delete process.env.AWS_PROFILE;
  const put = (key: string, body: string | Buffer, lastModified = RECENT, status?: number) =>
    objects.set(key, { body: Buffer.from(body), lastModified, ...(status ? { status } : {}) });
  put('logs/a.txt', `line one\nconfig: ${LONG}\n`);
  put('logs/b.log.gz', gzipSync(`first\nsecond\n  token=${SHORT}\n`));
  put('logs/c-bin.dat', Buffer.concat([Buffer.from([0, 1, 2, 0]), Buffer.from(`xx${LONG}yy`)]));
  put('logs/d-denied.txt', 'never read', RECENT, 403);
  put('logs/e-old.txt', `old ${SHORT}\n`, OLD);
  put('logs/f-bomb.gz', gzipSync(Buffer.concat([Buffer.alloc(LIMIT * 4, 0x61), Buffer.from(BOMB_KEY)])));
  put('logs/skip/g.txt', `skipped ${LONG}\n`);
  put('other/h.txt', `not under the prefix ${LONG}\n`);
  put(
    'broken/x.gz',
    Buffer.concat([gzipSync('start of a text').subarray(0, 12), Buffer.from('not deflate at all')]),
  );
  put('broken/y.txt', `after ${LONG}\n`);
});

afterAll(async () => {
  for (const n of ENV_NAMES) {
    if (saved[n] === undefined) delete process.env[n];
    else process.env[n] = saved[n];
  }
  await new Promise((ok) => server.close(ok));
  removeTempDirs();
});

beforeEach(() => {
  requests.length = 0;
});

function deps(over: Partial<ScanDeps> = {}): ScanDeps {
  return {
    now: () => NOW,
    chunkSize: 64 * 1024,
    gitBinary: 'git',
    version: '0.0.0-test',
    s3: { maxDecompressedBytes: LIMIT },
    ...over,
  };
}

async function scan(paths: string[], opts: ScanOptions = {}, over: Partial<ScanDeps> = {}) {
  const out = captureIO(tempDir());
  const code = await runScan(paths, { baseline: undefined, ...opts }, out.io, deps(over));
  const stdout = out.stdout();
  const stderr = out.stderr();
  expect(leakedFragments(stdout + stderr, SECRETS)).toEqual([]);
  return { code, stdout, stderr };
}

function findings(stdout: string): Array<{ path: string; line: number; column: number; kind: string }> {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

describe('keyguard scan s3://', () => {
  it('lists every page, streams each object (gzip, binary), names s3:// URLs and lines, reports the unreadable one', async () => {
    const { code, stdout, stderr } = await scan(['s3://leaky/logs/'], { format: 'json', jobs: 1 });

    const lists = requests.filter((r) => r.includes('list-type=2'));
    expect(lists).toHaveLength(4); // 7 keys under logs/, 2 a page
    expect(lists.slice(1).every((r) => r.includes('continuation-token='))).toBe(true);
    expect(findings(stdout).map((f) => [f.path, f.line, f.column, f.kind])).toEqual([
      ['s3://leaky/logs/a.txt', 2, 9, 'LONG_TERM'],
      ['s3://leaky/logs/b.log.gz', 3, 9, 'SHORT_TERM'],
      ['s3://leaky/logs/c-bin.dat', 1, expect.any(Number), 'LONG_TERM'],
      ['s3://leaky/logs/e-old.txt', 1, 5, 'SHORT_TERM'],
      ['s3://leaky/logs/skip/g.txt', 1, 9, 'LONG_TERM'],
    ]);
    expect(stderr).toContain('keyguard: s3://leaky/logs/d-denied.txt: S3 GetObject');
    expect(stderr).toMatch(/d-denied\.txt: .*access denied.*s3:GetObject/);
    expect(stderr).toContain(
      `keyguard: s3://leaky/logs/f-bomb.gz: more than ${LIMIT} bytes once decompressed`,
    );
    expect(stderr).toMatch(/in 5 sources scanned; 1 binary searched as bytes;/);
    expect(stderr).toMatch(/2 errors\n$/);
    expect(code).toBe(2);
  });

  it('--since skips older objects, --exclude matches keys relative to the prefix; the same output for any --jobs', async () => {
    const opts: ScanOptions = { format: 'text', since: '7d', exclude: ['skip/', '*-bomb.gz'] };
    const one = await scan(['s3://leaky/logs/'], { ...opts, jobs: 1 });
    const four = await scan(['s3://leaky/logs/'], { ...opts, jobs: 4 });

    expect(one.stdout).toBe(four.stdout);
    const paths = one.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split(':').slice(0, 4).join(':'));
    expect(paths).toEqual([
      's3://leaky/logs/a.txt:2:9',
      's3://leaky/logs/b.log.gz:3:9',
      's3://leaky/logs/c-bin.dat:1:7',
    ]);
    expect(one.stderr).toContain('1 object last modified before 2026-11-13T09:41:02.000Z skipped (--since)');
    expect(one.code).toBe(2); // the denied object still counts
  });

  it('a gzip object that does not inflate is named and the next object scanned', async () => {
    const { code, stdout, stderr } = await scan(['s3://leaky/broken/'], { format: 'json', jobs: 2 });
    expect(stderr).toMatch(/keyguard: s3:\/\/leaky\/broken\/x\.gz: cannot decompress \(gzip\): /);
    expect(findings(stdout).map((f) => f.path)).toEqual(['s3://leaky/broken/y.txt']);
    expect(code).toBe(2);
  });

  it('through the command line: s3:// arguments, --since, --exclude and --region reach the scan', async () => {
    const out = captureIO(tempDir());
    const code = await main(
      [
        'node',
        'keyguard',
        'scan',
        's3://leaky/logs/',
        '--since',
        '7d',
        '--exclude',
        'c-*',
        '--exclude',
        'skip/',
      ].concat(['--exclude', 'f-bomb.gz', '--region', 'us-east-1', '--format', 'json', '--jobs', '3']),
      out.io,
      undefined,
      () => deps(),
    );
    expect(findings(out.stdout()).map((f) => f.path)).toEqual([
      's3://leaky/logs/a.txt',
      's3://leaky/logs/b.log.gz',
    ]);
    expect(out.stderr()).toContain(
      '1 object last modified before 2026-11-13T09:41:02.000Z skipped (--since)',
    );
    expect(out.stderr()).toContain('s3://leaky/logs/d-denied.txt');
    expect(leakedFragments(out.stdout() + out.stderr(), SECRETS)).toEqual([]);
    expect(code).toBe(2);
  });

  it('a listing denied halfway: what was listed is scanned, then one line, exit 2', async () => {
    deniedPage = '4';
    try {
      const { code, stdout, stderr } = await scan(['s3://leaky/logs/'], { format: 'json', jobs: 3 });
      expect(findings(stdout).map((f) => f.path)).toEqual([
        's3://leaky/logs/a.txt',
        's3://leaky/logs/b.log.gz',
        's3://leaky/logs/c-bin.dat',
      ]);
      const lines = stderr.split('\n').filter((l) => l.startsWith('keyguard: scan:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/S3 ListObjectsV2 .*access denied.*Grant s3:ListBucket/);
      expect(code).toBe(2);
    } finally {
      deniedPage = undefined;
    }
  });

  it('mixes s3:// and local paths, in the order given', async () => {
    const dir = tempDir();
    writeFile(`${dir}/local.txt`, `k ${LONG}\n`);
    const out = captureIO(dir);
    const code = await runScan(
      ['local.txt', 's3://leaky/logs/a'],
      { format: 'json', jobs: 2 },
      out.io,
      deps(),
    );
    expect(findings(out.stdout()).map((f) => f.path)).toEqual(['local.txt', 's3://leaky/logs/a.txt']);
    expect(code).toBe(1);
  });

  it('a bucket that does not exist: one line, exit 2, the other arguments still scanned', async () => {
    const { code, stdout, stderr } = await scan(['s3://missing/x/', 's3://leaky/logs/a'], { format: 'json' });
    const lines = stderr.split('\n').filter((l) => l.startsWith('keyguard: scan:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /S3 ListObjectsV2 \(region us-east-1, default credential chain\): not found \(NoSuchBucket/,
    );
    expect(findings(stdout).map((f) => f.path)).toEqual(['s3://leaky/logs/a.txt']);
    expect(code).toBe(2);
  });

  it('a bucket in another region: the line says which --region to use', async () => {
    const { code, stderr } = await scan(['s3://elsewhere/'], {});
    expect(stderr).toMatch(
      /S3 ListObjectsV2 \(region us-east-1, .*\): bucket elsewhere is not in us-east-1: it is in eu-west-1.*Pass --region eu-west-1\./,
    );
    expect(code).toBe(2);
  });

  it('--region picks the client region; a malformed URL and --since without a source are refused before reading', async () => {
    const bad = await scan(['s3://Not_A_Bucket/x'], {});
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not an S3 bucket name');
    expect(requests).toEqual([]);
    const since = await scan(['.'], { since: '7d' });
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since needs --slack or an s3:// source');
    const region = await scan(['s3://elsewhere/'], { region: 'eu-west-2' });
    expect(region.stderr).toContain('(region eu-west-2,');
  });

  it('--quarantine carries the s3:// locations (never the key)', async () => {
    const eventBridge = mockClient(EventBridgeClient);
    eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
    const { code, stderr } = await scan(
      ['s3://leaky/logs/a'],
      { quarantine: true, bus: 'arn:aws:events:us-east-1:111122223333:event-bus/keyguard-governance' },
      { quarantine: { env: {} } },
    );
    const entries = eventBridge
      .commandCalls(PutEventsCommand)
      .flatMap((c) => c.args[0].input.Entries ?? []) as PutEventsRequestEntry[];
    expect(entries).toHaveLength(1);
    const detail = JSON.parse(entries[0]?.Detail as string) as ScanReportDetail;
    expect(detail.locations).toEqual([expect.objectContaining({ path: 's3://leaky/logs/a.txt', line: 2 })]);
    expect(leakedFragments(JSON.stringify(entries), SECRETS)).toEqual([]);
    expect(stderr).toContain('reported');
    expect(code).toBe(1);
    eventBridge.restore();
  });
});
