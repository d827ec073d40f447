import { join } from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { runScan, type ScanDeps, type ScanOptions } from '../../lambda/cli/scan';
import { DeployedStack } from '../../lambda/cli/stack-outputs';
import {
  buildScanReports,
  MAX_REPORT_LOCATIONS,
  PUT_EVENTS_MAX_BYTES,
  parseScanReportEvent,
  putEventsEntrySize,
  SCAN_REPORT_DETAIL_TYPE,
  SCAN_REPORT_SOURCE,
  type ScanReportDetail,
} from '../../lambda/domain/scan-report';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';
import { captureIO, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

/** keyguard scan --quarantine (issue 15): one event per key on the governance bus, never the key. */

const NOW = new Date('2026-11-20T09:41:02Z');
const BUS = 'arn:aws:events:us-east-1:111122223333:event-bus/bedrock-key-guard-governance';
const eventBridge = mockClient(EventBridgeClient);
const cloudFormation = mockClient(CloudFormationClient);

/** The publisher's waits between tries (no real sleeping). */
const slept: number[] = [];

afterAll(removeTempDirs);
beforeEach(() => {
  slept.length = 0;
  eventBridge.reset();
  cloudFormation.reset();
});

/** PutEvents accepting every entry, numbering the event ids. */
function acceptAll(): void {
  let n = 0;
  eventBridge.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map(() => ({ EventId: `event-${++n}` })),
  }));
}

function sentEntries(): PutEventsRequestEntry[] {
  return eventBridge.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
}

function details(entries = sentEntries()): ScanReportDetail[] {
  return entries.map((e) => JSON.parse(e.Detail as string) as ScanReportDetail);
}

function deps(env: NodeJS.ProcessEnv = {}): ScanDeps {
  return {
    now: () => NOW,
    chunkSize: 64 * 1024,
    gitBinary: 'git',
    version: '0.0.0-test',
    quarantine: {
      env,
      publisher: {
        sleep: async (ms) => {
          slept.push(ms);
        },
      },
      stack: (flags, target, io) =>
        DeployedStack.of(flags, target, io, () => new CloudFormationClient({ region: target.region })),
    },
  };
}

async function scan(cwd: string, paths: string[], opts: ScanOptions, env: NodeJS.ProcessEnv = {}) {
  const out = captureIO(cwd);
  const code = await runScan(paths, opts, out.io, deps(env));
  return { code, stdout: out.stdout(), stderr: out.stderr() };
}

const LONG = fakeLongTermKey('quarantine-long');
const SHORT = fakeShortTermKey('quarantine-short');

/** LONG in two files (three places), SHORT in one. */
function project(): string {
  const dir = tempDir('keyguard-quarantine-');
  writeFile(join(dir, 'a.env'), `TOKEN=${LONG}\n`);
  writeFile(join(dir, 'b.txt'), `first ${LONG}\nsecond ${LONG}\nshort ${SHORT}\n`);
  return dir;
}

describe('keyguard scan --quarantine', () => {
  it('sends one event per distinct key with every location, exits 1 and prints the event ids; never the key', async () => {
    // Prepare
    acceptAll();
    const dir = project();
    // Act
    const res = await scan(dir, ['.'], { quarantine: true, bus: BUS, format: 'json' });
    // Assess
    expect(res.code).toBe(1);
    const entries = sentEntries();
    expect(entries).toHaveLength(2);
    for (const e of entries) {
      expect(e).toMatchObject({
        EventBusName: BUS,
        Source: SCAN_REPORT_SOURCE,
        DetailType: SCAN_REPORT_DETAIL_TYPE,
      });
    }
    const [long, short] = details(entries);
    expect(long).toMatchObject({
      schemaVersion: 1,
      kind: 'LONG_TERM',
      locationCount: 3,
      locations: [
        { path: 'a.env', line: 1, column: 7 },
        { path: 'b.txt', line: 1, column: 7 },
        { path: 'b.txt', line: 2, column: 8 },
      ],
      scanner: { name: 'keyguard scan', version: '0.0.0-test' },
      scannedAt: NOW.toISOString(),
    });
    expect(long?.longTerm?.accountId).toBe('111122223333');
    expect(short).toMatchObject({
      kind: 'SHORT_TERM',
      locationCount: 1,
      locations: [{ path: 'b.txt', line: 3 }],
    });
    expect(short?.shortTerm?.region).toBe('us-east-1');
    // What the function accepts: the events parse as scan reports.
    for (const d of details(entries)) {
      expect(
        parseScanReportEvent({
          id: 'x',
          source: SCAN_REPORT_SOURCE,
          'detail-type': SCAN_REPORT_DETAIL_TYPE,
          account: '111122223333',
          time: NOW.toISOString(),
          detail: d,
        }).detail,
      ).toEqual(d);
    }
    expect(res.stderr).toContain(
      `reported ${long?.fingerprint} ${long?.redacted} (3 locations) as event event-1`,
    );
    expect(res.stderr).toContain(`2 of 2 keys reported to ${BUS} in 1 PutEvents request`);
    // Never the key: not in any request, nor in what was printed.
    const requests = JSON.stringify(eventBridge.commandCalls(PutEventsCommand).map((c) => c.args[0].input));
    expect(leakedFragments(requests + res.stdout + res.stderr, [LONG, SHORT])).toEqual([]);
  });

  it('cuts the reports into PutEvents requests of at most 10 entries', async () => {
    // Prepare: 23 distinct keys
    acceptAll();
    const dir = tempDir('keyguard-quarantine-many-');
    const keys = Array.from({ length: 23 }, (_, i) => fakeLongTermKey(`many-${i}`));
    writeFile(join(dir, 'keys.txt'), `${keys.join('\n')}\n`);
    // Act
    const res = await scan(dir, ['keys.txt'], { quarantine: true, bus: BUS });
    // Assess
    expect(res.code).toBe(1);
    const calls = eventBridge.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries?.length);
    expect(calls).toEqual([10, 10, 3]);
    expect(new Set(details().map((d) => d.fingerprint)).size).toBe(23);
    expect(res.stderr).toContain('23 of 23 keys reported');
  });

  it('bounds the locations of a key found in many places, so that its event stays under the size limit', async () => {
    // Prepare: one key on 500 lines
    acceptAll();
    const dir = tempDir('keyguard-quarantine-spread-');
    writeFile(join(dir, `${'d'.repeat(200)}.log`), `${Array.from({ length: 500 }, () => LONG).join('\n')}\n`);
    // Act
    const res = await scan(dir, ['.'], { quarantine: true, bus: BUS });
    // Assess
    expect(res.code).toBe(1);
    const [entry] = sentEntries();
    const [d] = details();
    expect(d?.locations).toHaveLength(MAX_REPORT_LOCATIONS);
    expect(d?.locationCount).toBe(500);
    expect(putEventsEntrySize(entry as Parameters<typeof putEventsEntrySize>[0])).toBeLessThan(
      PUT_EVENTS_MAX_BYTES,
    );
  });

  it('the largest report (most locations, longest paths and commits) stays under the PutEvents limit', () => {
    // Prepare: 1,000 places, paths of 5,000 characters (cut to MAX_LOCATION_PATH)
    const findings = Array.from({ length: 1000 }, (_, i) => ({
      kind: 'LONG_TERM' as const,
      fingerprint: 'sha256:0123456789abcdef',
      redacted: 'ABSK…abcd',
      longTerm: { alias: 'u-at-111122223333', userName: 'u', accountId: '111122223333' },
      path: `${'p'.repeat(5000)}${i}`,
      line: i + 1,
      column: 1,
      commit: 'f'.repeat(64),
    }));
    // Act
    const [report] = buildScanReports(findings, { version: '0.0.0-test', scannedAt: NOW.toISOString() });
    // Assess
    expect(report?.locations).toHaveLength(MAX_REPORT_LOCATIONS);
    expect(report?.locationCount).toBe(1000);
    const size = putEventsEntrySize({
      Source: SCAN_REPORT_SOURCE,
      DetailType: SCAN_REPORT_DETAIL_TYPE,
      Detail: JSON.stringify(report),
    });
    expect(size).toBeLessThan(PUT_EVENTS_MAX_BYTES);
  });

  it('puts rejected entries again with backoff, then reports what is still rejected and exits 2', async () => {
    // Prepare: the first key always rejected, the second rejected once (throttled), then accepted
    const dir = project();
    let call = 0;
    eventBridge.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => {
      call += 1;
      const entries = input.Entries.map((e) => {
        const d = JSON.parse(e.Detail as string) as ScanReportDetail;
        if (d.kind === 'LONG_TERM') return { ErrorCode: 'InternalFailure', ErrorMessage: 'try again' };
        if (call === 1) return { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' };
        return { EventId: `short-${call}` };
      });
      return { FailedEntryCount: entries.filter((e) => 'ErrorCode' in e).length, Entries: entries };
    });
    // Act
    const res = await scan(dir, ['.'], { quarantine: true, bus: BUS });
    // Assess: 4 tries of the long-term key; the short-term key delivered on its second
    expect(res.code).toBe(2);
    const perCall = eventBridge
      .commandCalls(PutEventsCommand)
      .map((c) => details(c.args[0].input.Entries).map((d) => d.kind));
    expect(perCall).toEqual([
      ['LONG_TERM', 'SHORT_TERM'],
      ['LONG_TERM', 'SHORT_TERM'],
      ['LONG_TERM'],
      ['LONG_TERM'],
    ]);
    expect(res.stderr).toMatch(
      /reported sha256:[0-9a-f]{16} bedrock-api-key-…\S* \(1 location\) as event short-2/,
    );
    expect(res.stderr).toMatch(
      /NOT delivered sha256:[0-9a-f]{16} ABSK…\S*: PutEvents rejected it \(InternalFailure: try again\)/,
    );
    expect(res.stderr).toContain('1 of 2 keys reported');
    expect(res.stderr).toContain('1 NOT delivered after retries');
    expect(slept).toEqual([500, 1000, 2000]);
  });

  it('a PutEvents call that fails outright is one AWS error line, exit 2', async () => {
    // Prepare
    const dir = project();
    eventBridge.on(PutEventsCommand).rejects(
      Object.assign(new Error('User is not authorized to perform: events:PutEvents'), {
        name: 'AccessDeniedException',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    // Act
    const res = await scan(dir, ['.'], { quarantine: true, bus: BUS });
    // Assess
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/keyguard: scan: EventBridge PutEvents .*access denied/);
    expect(res.stderr).toContain('2 keys NOT reported');
  });

  it('nothing found: nothing sent, exit 0', async () => {
    acceptAll();
    const dir = tempDir('keyguard-quarantine-clean-');
    writeFile(join(dir, 'clean.txt'), 'no key here\n');
    const res = await scan(dir, ['.'], { quarantine: true, bus: BUS });
    expect(res.code).toBe(0);
    expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(res.stderr).toContain('--quarantine: no key to report');
  });

  it('finds the bus in the deployed stack (GovernanceBusArn) when no --bus is given', async () => {
    // Prepare
    acceptAll();
    cloudFormation.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: 'Guard',
          CreationTime: NOW,
          StackStatus: 'UPDATE_COMPLETE',
          Outputs: [{ OutputKey: 'GovernanceBusArn', OutputValue: BUS }],
        },
      ],
    });
    const dir = project();
    // Act
    const res = await scan(dir, ['.'], { quarantine: true, stack: 'Guard', region: 'us-east-1' });
    // Assess
    expect(res.code).toBe(1);
    expect(cloudFormation.commandCalls(DescribeStacksCommand)[0]?.args[0].input).toEqual({
      StackName: 'Guard',
    });
    expect(sentEntries().every((e) => e.EventBusName === BUS)).toBe(true);
    expect(res.stderr).toContain('governance bus from stack Guard (us-east-1)');
  });

  it('without a stack or --bus, fails before scanning with a clear message', async () => {
    // Prepare: no stack deployed
    cloudFormation
      .on(DescribeStacksCommand)
      .rejects(
        Object.assign(new Error('Stack with id BedrockKeyGuard does not exist'), { name: 'ValidationError' }),
      );
    const dir = project();
    // Act
    const res = await scan(dir, ['.'], { quarantine: true, format: 'json' });
    // Assess: nothing scanned (no finding printed), nothing sent
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).not.toContain('keys found');
    expect(res.stderr).toMatch(
      /--quarantine needs the deployed stack's governance bus, and none was found: .*BedrockKeyGuard.*--bus.*Nothing was scanned\./,
    );
    expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(0);
  });

  it('refuses a --bus that is no bus ARN, and --bus without --quarantine', async () => {
    const dir = project();
    const bad = await scan(dir, ['.'], { quarantine: true, bus: 'my-bus' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--bus: "my-bus" is not an EventBridge bus ARN');
    const alone = await scan(dir, ['.'], { bus: BUS });
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--bus needs --quarantine');
    expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(0);
  });

  it('KEYGUARD_BUS stands for --bus', async () => {
    acceptAll();
    const dir = project();
    const res = await scan(dir, ['.'], { quarantine: true }, { KEYGUARD_BUS: BUS });
    expect(res.code).toBe(1);
    expect(cloudFormation.commandCalls(DescribeStacksCommand)).toHaveLength(0);
    expect(sentEntries()).toHaveLength(2);
  });

  it('through the command line: --quarantine with --stack, --region and --profile reads the bus from that stack', async () => {
    // Prepare
    acceptAll();
    cloudFormation.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: 'Guard',
          CreationTime: NOW,
          StackStatus: 'UPDATE_COMPLETE',
          Outputs: [{ OutputKey: 'GovernanceBusArn', OutputValue: BUS }],
        },
      ],
    });
    const dir = project();
    const out = captureIO(dir);
    // Act
    const code = await main(
      [
        'node',
        'keyguard',
        'scan',
        '.',
        '--quarantine',
        '--stack',
        'Guard',
        '--region',
        'eu-west-1',
        '--profile',
        'ci',
      ],
      out.io,
      undefined,
      () => deps(),
    );
    // Assess
    expect(code).toBe(1);
    expect(cloudFormation.commandCalls(DescribeStacksCommand)[0]?.args[0].input).toEqual({
      StackName: 'Guard',
    });
    expect(out.stderr()).toContain('governance bus from stack Guard (eu-west-1, profile ci)');
    expect(sentEntries()).toHaveLength(2);
  });
});
