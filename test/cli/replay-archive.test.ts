import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseCounter } from '../../lambda/cli/archive-scan';
import { runReplay } from '../../lambda/cli/replay';
import {
  ACCOUNT,
  captureIO,
  createKeyRecord,
  FULL_TAGS,
  iamRecord,
  jsonLines,
  REPO,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from './helpers';

/**
 * `keyguard replay` over archives as CloudTrail delivers them to S3, CloudTrail Lake and LookupEvents exports,
 * with --since/--until, --jobs and the progress bar. Every archive is generated here, in a temp dir.
 */

const OTHER_ACCOUNT = '444455556666';
const ORG = 'o-a1b2c3d4e5';

type Json = Record<string, unknown>;

let noiseCount = 0;
/** A record that can never matter (S3 data event), with JSON-significant characters in its strings. */
function noise(eventTime: string, over: Json = {}): Json {
  noiseCount += 1;
  return {
    eventVersion: '1.09',
    userIdentity: {
      type: 'AssumedRole',
      accountId: ACCOUNT,
      arn: `arn:aws:sts::${ACCOUNT}:assumed-role/app/x`,
    },
    eventTime,
    eventSource: 's3.amazonaws.com',
    eventName: 'GetObject',
    awsRegion: 'eu-west-1',
    requestParameters: { bucketName: 'data', key: `a "quoted" {brace} [bracket] back\\slash ${noiseCount}` },
    responseElements: null,
    eventID: `n0000000-0000-4000-8000-${String(noiseCount).padStart(12, '0')}`,
    eventType: 'AwsApiCall',
    recipientAccountId: ACCOUNT,
    ...over,
  };
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * Writes one log file where CloudTrail puts it: `<root>/[prefix/]AWSLogs/[org/]<account>/CloudTrail/<region>/
 * <yyyy>/<mm>/<dd>/<account>_CloudTrail_<region>_<yyyymmddThhmmZ>_<unique>.json.gz`; `delivered` is the name
 * time. Returns the path below root.
 */
function writeLog(
  root: string,
  opts: {
    prefix?: string;
    org?: string;
    account?: string;
    region?: string;
    delivered: string;
    unique?: string;
  },
  records: Json[],
): string {
  const account = opts.account ?? ACCOUNT;
  const region = opts.region ?? 'us-east-1';
  const d = new Date(opts.delivered);
  const [y, m, day, h, min] = [
    d.getUTCFullYear(),
    pad2(d.getUTCMonth() + 1),
    pad2(d.getUTCDate()),
    pad2(d.getUTCHours()),
    pad2(d.getUTCMinutes()),
  ];
  const name = `${account}_CloudTrail_${region}_${y}${m}${day}T${h}${min}Z_${opts.unique ?? 'Aaj0Vzf9VCKbVbPz'}.json.gz`;
  const rel = join(
    ...(opts.prefix ? [opts.prefix] : []),
    'AWSLogs',
    ...(opts.org ? [opts.org] : []),
    account,
    'CloudTrail',
    region,
    String(y),
    m,
    day,
    name,
  );
  writeFile(join(root, rel), gzipSync(JSON.stringify({ Records: records })));
  return rel;
}

/** Several days, regions and accounts (one under an organization id), under a prefix, with noise and a digest. */
function s3Archive(): string {
  const root = tempDir();
  const prefix = 'trail-bucket';
  writeLog(root, { prefix, delivered: '2026-11-01T09:05:00Z' }, [
    noise('2026-11-01T09:00:01Z'),
    createKeyRecord('2026-11-01T09:01:00Z', 'svc-alpha', 'ACCAARCHIVEALPHA00001', { ageDays: 30 }),
    noise('2026-11-01T09:02:00Z'),
  ]);
  writeLog(root, { prefix, delivered: '2026-11-02T10:05:00Z' }, [
    tagUserRecord('2026-11-02T10:00:00Z', 'svc-alpha', FULL_TAGS),
    iamRecord('ListUsers', '2026-11-02T10:01:00Z', null),
  ]);
  writeLog(root, { prefix, region: 'eu-west-1', delivered: '2026-11-02T11:05:00Z' }, [
    noise('2026-11-02T11:00:00Z'),
    noise('2026-11-02T11:01:00Z'),
  ]);
  writeLog(root, { prefix, org: ORG, account: OTHER_ACCOUNT, delivered: '2026-11-03T08:05:00Z' }, [
    {
      ...createKeyRecord('2026-11-03T08:00:00Z', 'svc-beta', 'ACCAARCHIVEBETA000001'),
      recipientAccountId: OTHER_ACCOUNT,
    },
  ]);
  writeFile(
    join(root, prefix, 'AWSLogs', ACCOUNT, 'CloudTrail-Digest', 'us-east-1', '2026', '11', '01', 'x.json.gz'),
    gzipSync('{"digest": true}'),
  );
  return root;
}

afterAll(removeTempDirs);

describe('keyguard replay: the S3 layout of a CloudTrail bucket', () => {
  it('replays every account, region and day, in eventTime order, skipping digests and noise', async () => {
    // Prepare
    const root = s3Archive();
    const out = captureIO(root);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir(), jobs: 2 }, out.io);

    // Assess
    expect(out.stderr()).not.toMatch(/^keyguard:/m);
    expect(code).toBe(0);
    expect(
      jsonLines(out.stdout()).map((d) => [d.accountId, d.userName, d.trigger.eventName, d.action]),
    ).toEqual([
      [ACCOUNT, 'svc-alpha', 'CreateServiceSpecificCredential', 'NOTIFY'],
      [ACCOUNT, 'svc-alpha', 'TagUser', 'ALLOW'],
      [OTHER_ACCOUNT, 'svc-beta', 'CreateServiceSpecificCredential', 'DEACTIVATE'],
    ]);
    expect(out.stderr()).toContain('Files: 4 read, 0 with errors');
    expect(out.stderr()).toContain('Events: 8 read, 3 relevant');
    expect(out.stderr()).toMatch(/without a decision: not IAM 4, other IAM calls 1$/m);
  });

  it('reports a corrupt .gz in the middle by path and reason, replays the files around it, exits 2', async () => {
    // Prepare
    const root = s3Archive();
    const bad = join(
      'trail-bucket/AWSLogs',
      ACCOUNT,
      'CloudTrail/us-east-1/2026/11/01',
      `${ACCOUNT}_CloudTrail_us-east-1_20261101T2355Z_Corrupt000000000.json.gz`,
    );
    writeFile(
      join(root, bad),
      gzipSync(JSON.stringify({ Records: [noise('2026-11-01T23:50:00Z')] })).subarray(0, 20),
    );
    const out = captureIO(root);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir(), jobs: 2 }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(`keyguard: ${bad}: cannot decompress (gzip): unexpected end of file\n`);
    expect(out.stderr()).toContain('Files: 5 read, 1 with errors');
    expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-alpha', 'svc-alpha', 'svc-beta']);
  });

  it('gives the same output, problems included, for --jobs 1, 2 and 3', async () => {
    // Prepare
    const root = s3Archive();
    writeFile(join(root, 'trail-bucket', 'broken.json'), '{"Records": [');
    const runs = [1, 2, 3].map(() => captureIO(root));

    // Act
    const codes: number[] = [];
    for (const [i, jobs] of [1, 2, 3].entries()) {
      const run = runs[i] as ReturnType<typeof captureIO>;
      codes.push(await runReplay(['.'], { json: true, store: tempDir(), jobs }, run.io));
    }

    // Assess
    expect(codes).toEqual([2, 2, 2]);
    // Each run has its own store, which the last line names.
    const [one, two, three] = runs.map((r) => [r.stdout(), r.stderr().replace(/store \S+$/m, 'store <dir>')]);
    expect(jsonLines(one?.[0] ?? '')).toHaveLength(3);
    expect(two).toEqual(one);
    expect(three).toEqual(one);
  });
});

describe('keyguard replay --since/--until', () => {
  /** Key events at the edges of 2026-11-02T00:00Z..2026-11-03T00:00Z, and files either side. */
  function edgeArchive(): string {
    const root = tempDir();
    writeLog(root, { delivered: '2026-10-20T12:05:00Z' }, [
      createKeyRecord('2026-10-20T12:00:00Z', 'svc-old', 'ACCAEDGEOLD0000000001'),
    ]);
    writeLog(root, { delivered: '2026-11-01T23:55:00Z', unique: 'Before00000000000' }, [
      createKeyRecord('2026-11-01T23:59:59Z', 'svc-before', 'ACCAEDGEBEFORE0000001'),
    ]);
    // Named before --since, yet holding a record at exactly --since (clock skew): read, and the record kept.
    writeLog(root, { delivered: '2026-11-01T23:55:00Z', unique: 'Skewed00000000000' }, [
      createKeyRecord('2026-11-02T00:00:00Z', 'svc-since', 'ACCAEDGESINCE00000001', { ageDays: 30 }),
    ]);
    writeLog(root, { delivered: '2026-11-02T12:05:00Z' }, [
      createKeyRecord('2026-11-02T12:00:00Z', 'svc-middle', 'ACCAEDGEMIDDLE0000001', { ageDays: 30 }),
    ]);
    // Delivered after --until: holds one record before it (kept) and one at exactly --until (dropped).
    writeLog(root, { delivered: '2026-11-03T00:05:00Z' }, [
      createKeyRecord('2026-11-02T23:59:59.999Z', 'svc-late', 'ACCAEDGELATE000000001', { ageDays: 30 }),
      createKeyRecord('2026-11-03T00:00:00Z', 'svc-until', 'ACCAEDGEUNTIL00000001', { ageDays: 30 }),
    ]);
    writeLog(root, { delivered: '2026-11-20T08:05:00Z' }, [
      createKeyRecord('2026-11-20T08:00:00Z', 'svc-new', 'ACCAEDGENEW0000000001'),
    ]);
    return root;
  }

  it('keeps records from --since (inclusive) to --until (exclusive), by eventTime', async () => {
    // Prepare
    const root = edgeArchive();
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { json: true, store: tempDir(), since: '2026-11-02', until: '2026-11-03T00:00:00Z', jobs: 1 },
      out.io,
    );

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-since', 'svc-middle', 'svc-late']);
    expect(out.stderr()).toMatch(/outside --since\/--until 2/);
  });

  it('does not read date directories and log files whose path date is far outside the window', async () => {
    // Prepare
    const root = edgeArchive();
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { json: true, store: tempDir(), since: '2026-11-02', until: '2026-11-03', jobs: 1 },
      out.io,
    );

    // Assess: the 20 October and 20 November day directories are left out; the four files near the edges are read.
    expect(code).toBe(0);
    expect(out.stderr()).toContain(
      'Files: 4 read, 0 with errors, 2 files or date directories skipped by path date (outside --since/--until)',
    );
  });

  it('takes an ISO timestamp with an offset', async () => {
    // Prepare
    const root = edgeArchive();
    const out = captureIO(root);

    // Act: 2026-11-02T12:00:00Z expressed at +02:00.
    const code = await runReplay(
      ['.'],
      { json: true, store: tempDir(), since: '2026-11-02T14:00:00+02:00', until: '2026-11-02T12:00:01Z' },
      out.io,
    );

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-middle']);
  });

  it.each([
    ['--since', { since: '2026-13-01' }, '"2026-13-01"'],
    ['--until', { until: 'yesterday' }, '"yesterday"'],
    ['--since', { since: '2026-11-02T10:00:00' }, '"2026-11-02T10:00:00"'],
  ])('exits 2 naming %s and the bad value %#', async (option, window, shown) => {
    // Prepare
    const out = captureIO(tempDir());

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir(), ...window }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(`keyguard: ${option}: ${shown} is not a date`);
    expect(out.stdout()).toBe('');
  });

  it('exits 2 when --since is not before --until', async () => {
    // Prepare
    const out = captureIO(tempDir());

    // Act
    const code = await runReplay(
      ['.'],
      { store: tempDir(), since: '2026-11-03', until: '2026-11-02' },
      out.io,
    );

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(/--since "2026-11-03" is not before --until "2026-11-02"/);
  });
});

describe('keyguard replay: CloudTrail Lake and LookupEvents exports', () => {
  const created = createKeyRecord('2026-11-05T09:00:00Z', 'svc-lake', 'ACCALAKEEXPORT0000001', {
    ageDays: 30,
  });
  const tagged = tagUserRecord('2026-11-05T09:30:00Z', 'svc-lake', FULL_TAGS);
  const other = noise('2026-11-05T09:10:00Z');
  const expected = [
    ['CreateServiceSpecificCredential', 'NOTIFY'],
    ['TagUser', 'ALLOW'],
  ];

  async function replayOne(name: string, content: string | Buffer) {
    const dir = tempDir();
    writeFile(join(dir, name), content);
    const out = captureIO(dir);
    const code = await runReplay([name], { json: true, store: tempDir() }, out.io);
    return { code, out, decisions: jsonLines(out.stdout()).map((d) => [d.trigger.eventName, d.action]) };
  }

  it('reads get-query-results output (rows of one-column objects with eventJson)', async () => {
    // Prepare
    const results = {
      QueryStatus: 'FINISHED',
      QueryStatistics: { ResultsCount: 3, TotalResultsCount: 3, BytesScanned: 1024 },
      QueryResultRows: [created, other, tagged].map((r) => [
        { eventTime: String(r.eventTime) },
        { eventJson: JSON.stringify(r) },
      ]),
    };

    // Act
    const { code, out, decisions } = await replayOne('lake-results.json', JSON.stringify(results));

    // Assess
    expect(code).toBe(0);
    expect(decisions).toEqual(expected);
    expect(out.stderr()).toContain('Events: 3 read, 2 relevant');
  });

  it('reads Lake rows saved as gzipped JSON lines ({"eventJson": "..."}, any column case)', async () => {
    // Prepare
    const lines = [
      JSON.stringify({ eventjson: JSON.stringify(created) }),
      JSON.stringify({ eventJson: JSON.stringify(other), eventTime: other.eventTime }),
      JSON.stringify({ EventJson: JSON.stringify(tagged) }),
    ].join('\n');

    // Act
    const { code, decisions } = await replayOne('lake-rows.jsonl.gz', gzipSync(lines));

    // Assess
    expect(code).toBe(0);
    expect(decisions).toEqual(expected);
  });

  it('reads aws cloudtrail lookup-events output (CloudTrailEvent strings)', async () => {
    // Prepare
    const lookup = {
      Events: [tagged, other, created].map((r) => ({
        EventId: r.eventID,
        EventName: r.eventName,
        ReadOnly: 'false',
        EventTime: r.eventTime,
        EventSource: r.eventSource,
        Username: 'alice',
        Resources: [],
        CloudTrailEvent: JSON.stringify(r),
      })),
    };

    // Act: newest first, as LookupEvents returns them; replay orders them by eventTime.
    const { code, out, decisions } = await replayOne('lookup.json', JSON.stringify(lookup, null, 2));

    // Assess
    expect(code).toBe(0);
    expect(decisions).toEqual(expected);
    expect(out.stderr()).toContain('Events: 3 read, 2 relevant');
  });

  it('reports a Lake result without an eventJson column and exits 2', async () => {
    // Prepare
    const results = {
      QueryResultRows: [[{ eventTime: '2026-11-05 09:00:00.000' }, { eventName: 'TagUser' }]],
    };

    // Act
    const { code, out } = await replayOne('lake-names-only.json', JSON.stringify(results));

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      'keyguard: lake-names-only.json: QueryResultRows[0] has no eventJson column (query with SELECT eventJson)',
    );
  });
});

describe('keyguard replay: records that cannot matter are not parsed', () => {
  const N = 50_000;

  function bigNoise(): Json[] {
    const records: Json[] = [];
    for (let i = 0; i < N; i++) records.push(noise(`2026-11-06T${pad2(Math.floor(i / 3600) % 24)}:00:00Z`));
    records[N / 2] = createKeyRecord('2026-11-06T12:00:00Z', 'svc-needle', 'ACCANEEDLE00000000001', {
      ageDays: 30,
    });
    return records;
  }

  it.each([1, 2])(
    'parses only the candidate among 50k records of a CloudTrail file (--jobs %i)',
    async (jobs) => {
      // Prepare
      const root = tempDir();
      writeLog(root, { delivered: '2026-11-06T23:55:00Z' }, bigNoise());
      const out = captureIO(root);
      const before = parseCounter.records;

      // Act
      const code = await runReplay(['.'], { json: true, store: tempDir(), jobs }, out.io);

      // Assess
      expect(code).toBe(0);
      expect(parseCounter.records - before).toBe(1);
      expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-needle']);
      expect(out.stderr()).toContain(`Events: ${N} read, 1 relevant`);
    },
  );

  it('streams a 50k-line NDJSON file, parsing only the candidate line', async () => {
    // Prepare
    const root = tempDir();
    writeFile(
      join(root, 'events.ndjson.gz'),
      gzipSync(
        bigNoise()
          .map((r) => JSON.stringify(r))
          .join('\n'),
      ),
    );
    const out = captureIO(root);
    const before = parseCounter.records;

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir(), jobs: 1 }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(parseCounter.records - before).toBe(1);
    expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-needle']);
    expect(out.stderr()).toContain(`Events: ${N} read, 1 relevant`);
  });
});

describe('keyguard replay: progress and --quiet', () => {
  function ttyIO(cwd: string) {
    const out = captureIO(cwd);
    out.io.stderr.isTTY = true;
    return out;
  }

  it('draws a progress bar with bytes, MiB/s, ETA and files on a terminal', async () => {
    // Prepare
    const root = s3Archive();
    const out = ttyIO(root);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(out.stderr()).toMatch(
      /replay \[.*\] 100% \| [\d.]+\/[\d.]+ MiB \| [\d.]+ MiB\/s \| ETA \S+ \| files 4\/4/,
    );
    expect(jsonLines(out.stdout())).toHaveLength(3);
  });

  it('draws nothing when stderr is not a terminal', async () => {
    // Prepare
    const root = s3Archive();
    const out = captureIO(root);

    // Act
    await runReplay(['.'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(out.stderr()).not.toContain('MiB/s');
    expect(out.stderr()).not.toContain('\u001b');
  });

  it('--quiet draws no bar and prints no totals, on a terminal too, but still reports problems', async () => {
    // Prepare
    const root = s3Archive();
    writeFile(join(root, 'broken.json'), '{"Records": [');
    const out = ttyIO(root);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir(), quiet: true }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toBe('keyguard: broken.json: invalid JSON: unexpected end of input\n');
    expect(jsonLines(out.stdout())).toHaveLength(3);
  });

  it.each(['0', 'two', '1.5', '65'])('exits 2 on --jobs %s', async (jobs) => {
    // Prepare
    const out = captureIO(tempDir());

    // Act
    const code = await runReplay(['.'], { store: tempDir(), jobs }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(`keyguard: --jobs: "${jobs}" is not a whole number from 1 to 64`);
  });
});

describe('keyguard replay as a process (bin/keyguard.js, workers loaded through tsx)', () => {
  it('gives the same decisions with --jobs 2 as with --jobs 1, quietly', () => {
    // Prepare
    const root = s3Archive();
    const run = (jobs: string) =>
      spawnSync(
        process.execPath,
        [
          join(REPO, 'bin', 'keyguard.js'),
          'replay',
          '--json',
          '--quiet',
          '--jobs',
          jobs,
          '--store',
          tempDir(),
          root,
        ],
        { cwd: REPO, encoding: 'utf8', timeout: 60_000 },
      );

    // Act
    const one = run('1');
    const two = run('2');

    // Assess
    expect([one.status, two.status]).toEqual([0, 0]);
    expect(jsonLines(two.stdout).map((d) => d.userName)).toEqual(['svc-alpha', 'svc-alpha', 'svc-beta']);
    expect(two.stdout).toBe(one.stdout);
    expect(two.stderr).toBe('');
  });
});

describe('keyguard replay: command line', () => {
  // An extension-less import would find the executable shim bin/keyguard.js first: load the TypeScript directly.
  const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

  it('documents the archive inputs, --since/--until, --jobs and --quiet in replay --help', async () => {
    // Prepare
    const out = captureIO(REPO);

    // Act
    const code = await main(['node', 'keyguard', 'replay', '--help'], out.io);

    // Assess
    expect(code).toBe(0);
    const help = out.stdout();
    for (const option of ['--since <date>', '--until <date>', '-j, --jobs <n>', '-q, --quiet']) {
      expect(help).toContain(option);
    }
    expect(help).toContain('AWSLogs/[o-org-id/]<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/*.json.gz');
    expect(help).toContain('{"QueryResultRows": [...]}');
    expect(help).toContain('{"Events": [{"CloudTrailEvent": "..."}]}');
    expect(help).toMatch(/--quiet drops the progress bar and the totals/);
  });

  it('passes --since, --until, --jobs and --quiet through to replay', async () => {
    // Prepare
    const root = s3Archive();
    const out = captureIO(root);

    // Act
    const code = await main(
      [
        'node',
        'keyguard',
        'replay',
        '--json',
        '-q',
        '-j',
        '2',
        '--since',
        '2026-11-03',
        '--until',
        '2026-11-04',
        '-s',
        tempDir(),
        '.',
      ],
      out.io,
    );

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-beta']);
    // --since on an empty store: the one warning that state before the window is unknown (issue 14), nothing else.
    expect(out.stderr()).toMatch(
      /^keyguard: warning: --since 2026-11-03: state set before the window is unknown [^\n]*\n$/,
    );
  });

  it('exits 2 on a bad --since through the command line, naming it', async () => {
    // Prepare
    const out = captureIO(tempDir());

    // Act
    const code = await main(
      ['node', 'keyguard', 'replay', '--since', '11/02/2026', '-s', tempDir(), '.'],
      out.io,
    );

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain('keyguard: --since: "11/02/2026" is not a date');
  });
});
