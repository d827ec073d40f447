import { join } from 'node:path';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import type { FetchLike } from '../../lambda/adapters/bedrock-key-probe';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { runScan } from '../../lambda/cli/scan';
import { findLeaks } from '../../lambda/domain/leaks';
import {
  buildScanReports,
  InvalidScanReportError,
  parseScanReportEvent,
  type ReportLocation,
  SCAN_REPORT_DETAIL_TYPE,
  SCAN_REPORT_SOURCE,
} from '../../lambda/domain/scan-report';
import type { Decision } from '../../lambda/domain/types';
import { createLeakHandler, type LeakRuntime } from '../../lambda/handlers/leak-handler';
import { captureIO, removeTempDirs, tempDir, writeFile } from '../cli/helpers';
import { type Capture, captureOutput } from '../support/capture';
import { scanAll, startTestDynamo } from '../support/dynamo';
import { ACCOUNT } from '../support/events';
import { leakRuntime, longTermKeyOf, mockGovernedUser } from '../support/leak-harness';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';
import { RecordedUndecidedLeaks } from '../support/undecided-leaks';

/**
 * Issue 15: a key reported by `keyguard scan --quarantine` is decided by the leak function as a key found in a log,
 * through the same path, on dynalite; the report never carries the key, so it is never checked with Bedrock and
 * never deactivates a key by itself (an attacker allowed to put reports could name any user).
 */

const iam = mockClient(IAMClient);
const sns = mockClient(SNSClient);
const cloudtrail = mockClient(CloudTrailClient);
const eventBridge = mockClient(EventBridgeClient);
const NOW = new Date('2026-11-20T10:00:00Z');
const USER = 'svc-reported';
const KEY_ID = 'ACCAEXAMPLEREPORTED01';
const KEY = longTermKeyOf(USER);
const SHORT = fakeShortTermKey('reported-short');
let probed = 0;
/** Bedrock, simulated: counts calls (a report must cause none). */
const fetch: FetchLike = async () => {
  probed += 1;
  return new Response('{"modelSummaries":[]}', { status: 200 });
};

let db: EmbeddedDynamo;
let out: Capture;

beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
  removeTempDirs();
});
beforeEach(() => {
  probed = 0;
  mockGovernedUser({ iam, sns, cloudtrail }, { name: USER, keyId: KEY_ID });
  out = captureOutput();
});
afterEach(() => out.restore());

function runtime(leakDetection: Record<string, unknown> = {}): Promise<LeakRuntime> {
  return leakRuntime(db, { fetch, now: NOW, probeTimeoutMs: 500, leakDetection });
}

/** The EventBridge event the rule delivers for `key` found at `places`, built by the CLI's own code. */
function reportEvent(key: string, places: ReportLocation[], eventId = 'evt-1') {
  const [found] = findLeaks(key, { now: NOW });
  if (!found) throw new Error('not a key');
  const [detail] = buildScanReports(
    places.map((p) => ({ ...found, ...p })),
    { version: '1.2.3', scannedAt: '2026-11-20T09:59:00.000Z' },
  );
  return {
    version: '0',
    id: eventId,
    source: SCAN_REPORT_SOURCE,
    'detail-type': SCAN_REPORT_DETAIL_TYPE,
    account: ACCOUNT,
    time: '2026-11-20T09:59:01Z',
    region: 'us-east-1',
    resources: [],
    detail,
  };
}

const HERE: ReportLocation[] = [
  { path: 'deploy/.env', line: 3, column: 7 },
  { path: 'src/app.ts', line: 10, column: 1, commit: 'a'.repeat(40) },
];

async function decisions(rt: LeakRuntime): Promise<Decision[]> {
  const items = await scanAll(db, rt.decisionsTable);
  return items.filter((i) => !String(i.pk).startsWith('chain#')) as unknown as Decision[];
}

describe('leak function: keys reported by keyguard scan --quarantine', () => {
  it('LEAKED (critical), one notice, never deactivated in enforce mode, never checked with Bedrock; every place recorded', async () => {
    // Prepare
    const rt = await runtime();
    const handler = createLeakHandler(rt);
    // Act
    const result = await handler(reportEvent(KEY, HERE));
    // Assess
    expect(result).toMatchObject({
      status: 'reported',
      eventId: 'evt-1',
      findings: [{ kind: 'LONG_TERM', outcome: 'unverified', keyIds: [KEY_ID], verification: 'UNVERIFIED' }],
    });
    expect(probed).toBe(0);
    expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    const [d] = await decisions(rt);
    expect(d).toMatchObject({
      keyId: KEY_ID,
      applied: false,
      mode: 'enforce',
      trigger: { kind: 'leak', eventId: 'evt-1' },
      leak: {
        location: { file: { path: 'deploy/.env' }, line: 3, column: 7 },
        verification: { result: 'UNVERIFIED', method: 'scan-report' },
        report: { by: 'keyguard scan', locationCount: 2, locations: HERE },
      },
    });
    expect(d?.action).not.toBe('DEACTIVATE');
    const leaked = d?.violations.find((v) => v.code === 'LEAKED');
    expect(leaked?.severity).toBe('critical');
    expect(leaked?.detail).toContain(
      'file deploy/.env (line 3, column 7) and 1 more place, reported by keyguard scan',
    );
    expect(leaked?.detail).toContain('a report alone never deactivates a key');
    const notice = String(sns.commandCalls(PublishCommand)[0]?.args[0].input.Message);
    expect(notice).toContain('deploy/.env');
  });

  it('a report never deactivates, even with leakDetection.deactivateUnverified (a forged report names any user)', async () => {
    // Prepare: the policy deactivates unverified log leaks
    const rt = await runtime({ deactivateUnverified: true });
    // Act
    await createLeakHandler(rt)(reportEvent(KEY, HERE));
    // Assess
    expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
    const [d] = await decisions(rt);
    expect(d?.applied).toBe(false);
    expect(d?.action).not.toBe('DEACTIVATE');
  });

  it('redelivery and the same scan again record nothing twice; a new place is a new decision with every place (the owner, told once, is not told again)', async () => {
    // Prepare
    const rt = await runtime();
    const handler = createLeakHandler(rt);
    await handler(reportEvent(KEY, HERE, 'evt-1'));
    // Act: the same event again, the same scan again (a new event), then the key found in a third place too
    const redelivered = await handler(reportEvent(KEY, HERE, 'evt-1'));
    const rescanned = await handler(reportEvent(KEY, [...HERE].reverse(), 'evt-2'));
    const moved = await handler(
      reportEvent(KEY, [...HERE, { path: 'ci/job.log', line: 1, column: 1 }], 'evt-3'),
    );
    // Assess
    expect(redelivered).toMatchObject({ findings: [{ outcome: 'duplicate' }] });
    expect(rescanned).toMatchObject({ findings: [{ outcome: 'duplicate' }] });
    expect(moved).toMatchObject({ findings: [{ outcome: 'unverified' }] });
    const all = await decisions(rt);
    expect(all).toHaveLength(2);
    expect(all.map((d) => d.leak?.report?.locationCount).sort()).toEqual([2, 3]);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  it('several keys of the user: neither is named as the leaked one (candidates), nothing deactivated', async () => {
    // Prepare
    const rt = await runtime();
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: ['ACCAEXAMPLEREPORTED01', 'ACCAEXAMPLEREPORTED02'].map((id) => ({
        UserName: USER,
        Status: 'Active',
        ServiceCredentialAlias: `${USER}-at-${ACCOUNT}`,
        CreateDate: new Date('2026-10-01T00:00:00Z'),
        // An expiry: a never-expiring key is deactivated by the policy whatever triggered its evaluation.
        ExpirationDate: new Date('2026-12-30T00:00:00Z'),
        ServiceSpecificCredentialId: id,
        ServiceName: 'bedrock.amazonaws.com',
      })),
    });
    // Act
    const result = await createLeakHandler(rt)(reportEvent(KEY, HERE));
    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'ambiguous' }] });
    expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
    const all = await decisions(rt);
    expect(all).toHaveLength(2);
    for (const d of all)
      expect(d.leak?.candidates).toEqual(['ACCAEXAMPLEREPORTED01', 'ACCAEXAMPLEREPORTED02']);
  });

  it('a short-term key is traced to its signer with CloudTrail and notified; an expired one only counted', async () => {
    // Prepare
    const rt = await runtime();
    const handler = createLeakHandler(rt);
    const live = reportEvent(SHORT, HERE);
    // Act: the fake key was signed 2026-11-20T09:31:02Z for 12 h
    const result = await handler(live);
    const expired = await createLeakHandler({ ...rt, now: () => new Date('2026-11-21T10:00:00Z') })(
      reportEvent(SHORT, HERE, 'evt-later'),
    );
    // Assess
    expect(result).toMatchObject({ findings: [{ kind: 'SHORT_TERM', outcome: 'notified' }] });
    expect(cloudtrail).toHaveReceivedCommandTimes(LookupEventsCommand, 1);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(expired).toMatchObject({ findings: [{ outcome: 'expired' }] });
    expect(probed).toBe(0);
  });

  it("a key of another account is not acted on, without reading that account's IAM", async () => {
    // Prepare
    const rt = await runtime();
    // Act
    const result = await createLeakHandler(rt)(reportEvent(fakeLongTermKey('other', '444455556666'), HERE));
    // Assess
    expect(result).toMatchObject({ findings: [{ outcome: 'foreign-account' }] });
    expect(iam).not.toHaveReceivedCommand(ListServiceSpecificCredentialsCommand);
    expect(await decisions(rt)).toEqual([]);
  });

  it('skips a malformed or forged report without throwing (a retry never helps): logged naming only its fields, counted, nothing recorded', async () => {
    // Prepare: a key in a field, an alias not matching the user, an unknown field holding the key
    const rt = await runtime();
    const handler = createLeakHandler(rt);
    const withKey = reportEvent(KEY, HERE, 'evt-bad-1');
    (withKey.detail as unknown as Record<string, unknown>).redacted = KEY;
    const mismatched = reportEvent(KEY, HERE, 'evt-bad-2');
    (mismatched.detail as unknown as { longTerm: { userName: string } }).longTerm.userName = 'someone-else';
    const extra = reportEvent(KEY, HERE, 'evt-bad-3');
    (extra.detail as unknown as Record<string, unknown>).key = KEY;
    // Act
    const results = [];
    for (const bad of [withKey, mismatched, extra]) results.push(await handler(bad));
    // Assess: refused with the fields named, never their values
    expect(results).toEqual([
      { status: 'refused', reason: 'malformed-report', eventId: 'evt-bad-1', fields: ['detail.redacted'] },
      {
        status: 'refused',
        reason: 'malformed-report',
        eventId: 'evt-bad-2',
        fields: ['detail.longTerm.alias'],
      },
      { status: 'refused', reason: 'malformed-report', eventId: 'evt-bad-3', fields: ['detail'] },
    ]);
    const refusals = out.lines().filter((l) => l.message === 'scan report refused: malformed, skipped');
    expect(refusals.map((l) => [l.level, l.eventId, l.fields])).toEqual([
      ['WARN', 'evt-bad-1', ['detail.redacted']],
      ['WARN', 'evt-bad-2', ['detail.longTerm.alias']],
      ['WARN', 'evt-bad-3', ['detail']],
    ]);
    const counted = out.lines().filter((l) => 'ScanReportsRefused' in l);
    expect(counted.map((l) => [l.ScanReportsRefused, l.reason])).toEqual([
      [1, 'malformed'],
      [1, 'malformed'],
      [1, 'malformed'],
    ]);
    expect(leakedFragments(out.text() + JSON.stringify(results), [KEY])).toEqual([]);
    expect(await decisions(rt)).toEqual([]);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    expect(iam).not.toHaveReceivedCommand(ListServiceSpecificCredentialsCommand);
  });

  it('an event from keyguard.scan that is no report at all (no detail, an id that is not one) is skipped the same way', async () => {
    // Prepare
    const rt = await runtime();
    // Act
    const result = await createLeakHandler(rt)({ source: SCAN_REPORT_SOURCE, id: KEY });
    // Assess: the id is not echoed (it could be anything), the missing fields are named
    expect(result).toEqual({
      status: 'refused',
      reason: 'malformed-report',
      fields: ['detail-type', 'account', 'time', 'detail'],
    });
    expect(leakedFragments(out.text(), [KEY])).toEqual([]);
  });

  it('a transient failure still throws so Lambda retries it: IAM throttled past the retries and the undecided queue failing', async () => {
    // Prepare: IAM throttles every call; the undecided-leaks queue cannot be written either
    const rt = await runtime();
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'Throttling' });
    iam.on(ListServiceSpecificCredentialsCommand).rejects(throttled);
    const queueDown = Object.assign(new Error('SQS unavailable'), { name: 'ServiceUnavailable' });
    const handler = createLeakHandler({
      ...rt,
      decisionAttempts: 2,
      decisionRetryDelayMs: 0,
      undecided: { record: () => Promise.reject(queueDown) },
    });
    // Act
    const err = await handler(reportEvent(KEY, HERE)).then(
      () => null,
      (e: unknown) => e,
    );
    // Assess: thrown (retried by Lambda), never counted as a malformed report
    expect(err).toBe(queueDown);
    expect(iam).toHaveReceivedCommandTimes(ListServiceSpecificCredentialsCommand, 2);
    expect(out.text()).not.toContain('ScanReportsRefused');
  });

  it('a DynamoDB failure past the retries is queued as undecided (redacted), and throws when that queue fails too', async () => {
    // Prepare: a decisions table that does not exist
    const rt = { ...(await runtime()), decisionsTable: 'no-such-table', decisionAttempts: 1 };
    const undecided = new RecordedUndecidedLeaks();
    // Act
    const queued = await createLeakHandler({ ...rt, undecided })(reportEvent(KEY, HERE));
    const thrown = await createLeakHandler({
      ...rt,
      undecided: { record: () => Promise.reject(new Error('SQS unavailable')) },
    })(reportEvent(KEY, HERE)).then(
      () => null,
      (e: unknown) => e,
    );
    // Assess
    expect(queued).toMatchObject({ status: 'reported', findings: [{ outcome: 'failed' }] });
    expect(undecided.batches).toMatchObject([{ logGroup: 'keyguard scan', leaks: [{ reason: 'error' }] }]);
    expect(thrown).toBeInstanceOf(Error);
    expect(out.text()).not.toContain('ScanReportsRefused');
  });

  it('parseScanReportEvent names only the fields of a malformed report (InvalidScanReportError)', () => {
    const withKey = reportEvent(KEY, HERE);
    (withKey.detail as unknown as Record<string, unknown>).redacted = KEY;
    let err: unknown;
    try {
      parseScanReportEvent(withKey);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidScanReportError);
    expect((err as InvalidScanReportError).fields).toEqual(['detail.redacted']);
    expect(leakedFragments(String((err as Error).message), [KEY])).toEqual([]);
  });

  it('writes no fragment of the key to logs, notices, IAM/CloudTrail calls, tables or results', async () => {
    // Prepare
    const rt = await runtime();
    // Act
    const results = [
      await createLeakHandler(rt)(reportEvent(KEY, HERE)),
      await createLeakHandler(rt)(reportEvent(SHORT, HERE)),
    ];
    // Assess
    const everything = [
      out.text(),
      JSON.stringify(results),
      JSON.stringify(sns.calls().map((c) => c.args[0].input)),
      JSON.stringify(iam.calls().map((c) => c.args[0].input)),
      JSON.stringify(cloudtrail.calls().map((c) => c.args[0].input)),
      JSON.stringify(await scanAll(db, rt.decisionsTable)),
      JSON.stringify(await scanAll(db, rt.keysTable)),
    ].join('\n');
    expect(leakedFragments(everything, [KEY, SHORT])).toEqual([]);
  });
});

describe('the quarantine path end to end: keyguard scan --quarantine -> PutEvents -> the leak function on dynalite', () => {
  it('a key in two files of a folder: one event with both places and no key, one LEAKED decision naming them', async () => {
    // Prepare: a project with the key in two files; PutEvents accepting everything
    const dir = tempDir('keyguard-e2e-');
    writeFile(join(dir, 'deploy', '.env'), `BEDROCK_KEY=${KEY}\n`);
    writeFile(join(dir, 'notes.md'), `old key: ${KEY}\n`);
    eventBridge.reset();
    eventBridge.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
      FailedEntryCount: 0,
      Entries: input.Entries.map((_, i) => ({ EventId: `e2e-${i}` })),
    }));
    const io = captureIO(dir);
    const rt = await runtime();
    const handler = createLeakHandler(rt);
    // Act: the scan, then each entry delivered as the rule delivers it
    const code = await runScan(
      ['.'],
      {
        quarantine: true,
        bus: 'arn:aws:events:us-east-1:111122223333:event-bus/bedrock-key-guard-governance',
      },
      io.io,
      { now: () => NOW, chunkSize: 64 * 1024, gitBinary: 'git', version: '9.9.9', quarantine: { env: {} } },
    );
    const entries = eventBridge.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    const results = [];
    for (const [i, e] of entries.entries()) {
      results.push(
        await handler({
          id: `e2e-${i}`,
          source: e.Source,
          'detail-type': e.DetailType,
          account: ACCOUNT,
          time: NOW.toISOString(),
          detail: JSON.parse(e.Detail as string),
        }),
      );
    }
    // Assess
    expect(code).toBe(1);
    expect(entries).toHaveLength(1);
    expect(leakedFragments(JSON.stringify(entries) + io.stdout() + io.stderr(), [KEY])).toEqual([]);
    expect(results).toMatchObject([
      { status: 'reported', findings: [{ outcome: 'unverified', keyIds: [KEY_ID] }] },
    ]);
    const [d] = await decisions(rt);
    expect(d?.leak?.report?.locations.map((l) => l.path).sort()).toEqual(['deploy/.env', 'notes.md']);
    expect(d?.violations.find((v) => v.code === 'LEAKED')?.severity).toBe('critical');
    expect(iam).not.toHaveReceivedCommand(UpdateServiceSpecificCredentialCommand);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
  });
});
