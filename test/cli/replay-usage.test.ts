import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { parseCounter, scanCounter, scanFile } from '../../lambda/cli/archive-scan';
import { REPLAY_FILTER, REPLAY_TABLES, runReplay } from '../../lambda/cli/replay';
import { scanAll } from '../support/dynamo';
import {
  ACCOUNT,
  captureIO,
  createKeyRecord,
  FULL_TAGS,
  iamRecord,
  jsonLines,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from './helpers';

/**
 * `keyguard replay` and flow 3: Bedrock calls made with API keys, read from CloudTrail archives and run through
 * the key-usage function's code (usage-pipeline.ts) in time order with the IAM events.
 */

type Json = Record<string, unknown>;

const USER = 'svc-chatbot';
const KEY = 'ACCAREPLAYUSAGEKEY001';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/ChatbotRuntime`;
const USER_ARN = `arn:aws:iam::${ACCOUNT}:user/${USER}`;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'cloudtrail', name), 'utf8')) as Json;
}

let n = 0;
function call(name: string, eventTime: string, over: Json = {}): Json {
  n += 1;
  return {
    ...fixture(name),
    eventTime,
    eventID: `u0000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    ...over,
  };
}

const longTermUse = (t: string, over: Json = {}) => call('bedrock-invoke-model-bearer-token.json', t, over);
const mantleUse = (t: string) => call('bedrock-mantle-chat-completion-absk.json', t);
const shortTermUse = (t: string) => call('bedrock-converse-stream-short-term-assumed-role.json', t);
const sigv4Call = (t: string) => call('bedrock-invoke-model-sigv4.json', t);

function writeLog(root: string, region: string, stamp: string, records: Json[]): void {
  const [y, m, d] = [stamp.slice(0, 4), stamp.slice(4, 6), stamp.slice(6, 8)];
  const name = `${ACCOUNT}_CloudTrail_${region}_${stamp}_Aaj0Vzf9VCKbVbPz.json.gz`;
  writeFile(
    join(root, 'AWSLogs', ACCOUNT, 'CloudTrail', region, y, m, d, name),
    gzipSync(JSON.stringify({ Records: records })),
  );
}

/** svc-chatbot, tagged, gets a key at 09:00. */
function writeKeyCreation(root: string): void {
  writeLog(root, 'us-east-1', '20261120T0905Z', [
    tagUserRecord('2026-11-20T08:59:00Z', USER, FULL_TAGS),
    createKeyRecord('2026-11-20T09:00:00Z', USER, KEY, { ageDays: 30 }),
  ]);
}

/**
 * The key is used from 10:00 (long-term, runtime and mantle), a role uses short-term keys, some calls are
 * SigV4; the key is deleted at 15:00 and the user tries again at 16:00. The Bedrock calls are in a region file
 * listed before the IAM event they partly follow in time.
 */
function writeUseAndDeletion(root: string): void {
  writeLog(root, 'us-east-1', '20261120T1505Z', [
    iamRecord('DeleteServiceSpecificCredential', '2026-11-20T15:00:00Z', {
      userName: USER,
      serviceSpecificCredentialId: KEY,
    }),
  ]);
  writeLog(root, 'eu-central-1', '20261120T1605Z', [
    longTermUse('2026-11-20T10:00:05Z'),
    sigv4Call('2026-11-20T10:01:00Z'),
    shortTermUse('2026-11-20T10:30:00Z'),
    longTermUse('2026-11-20T11:10:00Z', { awsRegion: 'eu-west-1' }),
    mantleUse('2026-11-20T11:20:00Z'),
    longTermUse('2026-11-20T11:30:00Z', { errorCode: 'ThrottlingException' }),
    shortTermUse('2026-11-20T12:00:00Z'),
    shortTermUse('2026-11-20T12:05:00Z'),
    sigv4Call('2026-11-20T12:10:00Z'),
    longTermUse('2026-11-20T16:00:00Z', { errorCode: 'AccessDeniedException' }),
  ]);
}

function usageArchive(): string {
  const root = tempDir();
  writeKeyCreation(root);
  writeUseAndDeletion(root);
  return root;
}

/**
 * A policy change: the key was replayed while long-term keys were allowed (run 1), its use is replayed after
 * they were forbidden (run 2, the returned output).
 */
function policyArchives(): { before: string; after: string } {
  const before = tempDir();
  writeKeyCreation(before);
  const after = tempDir();
  writeUseAndDeletion(after);
  return { before, after };
}

async function policyChange(
  jobs: number,
  archives = policyArchives(),
): Promise<{
  code: number;
  out: ReturnType<typeof captureIO>;
  store: string;
  after: string;
  config: string;
}> {
  const { before, after } = archives;
  const store = tempDir();
  await runReplay(
    ['.'],
    { store, config: configFile(before, true), jobs, quiet: true },
    captureIO(before).io,
  );
  const out = captureIO(after);
  const config = configFile(after, false);
  const code = await runReplay(['.'], { store, config, json: true, jobs }, out.io);
  return { code, out, store, after, config };
}

/** Outside the replayed directory: a .json file there would be read as an input. */
function configFile(_replayed: string, allowLongTermKeys: boolean): string {
  return writeFile(
    join(tempDir(), 'keyguard.config.json'),
    JSON.stringify({ mode: 'audit', allowLongTermKeys }),
  );
}

async function usageItems(store: string): Promise<Json[]> {
  const db = await startEmbeddedDynamo({ path: store });
  try {
    const items = await scanAll(db, REPLAY_TABLES.usageTable);
    return items.sort((a, b) => String(a.subject).localeCompare(String(b.subject)));
  } finally {
    await db.close();
  }
}

afterAll(removeTempDirs);

describe('keyguard replay: key usage (flow 3)', () => {
  it('records usage per key and per principal, with the key as it was at each call', async () => {
    // Prepare
    const root = usageArchive();
    const store = tempDir();
    const out = captureIO(root);

    // Act
    const code = await runReplay(['.'], { store, config: configFile(root, true), jobs: 1 }, out.io);

    // Assess
    expect(code).toBe(0);
    const items = await usageItems(store);
    expect(items.map((i) => i.subject)).toEqual([
      `key#${KEY}`,
      'meta#replay-counted-through',
      'meta#tracking',
      `principal#${ROLE_ARN}`,
      // After the delete the user holds no Bedrock key: the call is not credited to the deleted key.
      `principal#${USER_ARN}`,
    ]);
    expect(items[0]).toMatchObject({
      keyId: KEY,
      userName: USER,
      keyType: 'LONG_TERM',
      calls: 4,
      failedCalls: 1,
      firstUsedAt: '2026-11-20T10:00:05.000Z',
      lastUsedAt: '2026-11-20T11:20:00.000Z',
      lastAttemptAt: '2026-11-20T11:30:00.000Z',
    });
    expect(new Set(items[0]?.regions as Iterable<string>)).toEqual(
      new Set(['eu-central-1', 'eu-west-1', 'us-east-1']),
    );
    expect(items[1]).toMatchObject({ countedThrough: '2026-11-20T16:00:00.000Z' });
    expect(items[2]).toMatchObject({ trackingSince: '2026-11-20T10:00:05.000Z' });
    expect(items[3]).toMatchObject({
      keyType: 'SHORT_TERM',
      calls: 3,
      lastAttemptAt: '2026-11-20T12:05:00.000Z',
    });
    expect(items[4]).toMatchObject({ calls: 1, failedCalls: 1, lastAttemptAt: '2026-11-20T16:00:00.000Z' });
    const text = out.stdout();
    expect(text).toContain(
      'Usage: 8 bearer-token calls (4 long-term on 1 key, 4 short-term by 2 principals), 2 skipped (SigV4 or unusable)',
    );
    expect(text).toContain('Bedrock calls signed with SigV4 (not API keys) 2');
    // Long-term keys are allowed here: usage alone decides nothing.
    expect(text).not.toMatch(/InvokeModel|CreateChatCompletion/);
  });

  it('with long-term keys forbidden, decides LONG_TERM_NOT_ALLOWED once, at the first use, with DEACTIVATE planned', async () => {
    // Act
    const { code, out } = await policyChange(1);

    // Assess
    expect(code).toBe(0);
    const decisions = jsonLines(out.stdout());
    const fromUse = decisions.filter((d) => d.trigger.eventName !== 'DeleteServiceSpecificCredential');
    expect(fromUse).toHaveLength(1);
    expect(fromUse[0]).toMatchObject({
      keyId: KEY,
      keyType: 'LONG_TERM',
      status: 'Active',
      action: 'DEACTIVATE',
      applied: false,
      trigger: { kind: 'replay', eventName: 'InvokeModel', eventTime: '2026-11-20T10:00:05.000Z' },
    });
    // (The user's tags are not carried from run 1 to run 2: replay seeds keys, not tags, from the store.)
    expect(fromUse[0]?.violations.map((v) => v.code)).toContain('LONG_TERM_NOT_ALLOWED');
    expect(decisions.map((d) => d.trigger.eventName)).toEqual([
      'InvokeModel',
      'DeleteServiceSpecificCredential',
    ]);
    expect(out.stderr()).toContain('Usage: 8 bearer-token calls');
  });

  it('prints the same decisions and totals, and records the same usage, with --jobs 1 and --jobs 2', async () => {
    // Act
    const archives = policyArchives();
    const one = await policyChange(1, archives);
    const two = await policyChange(2, archives);

    // Assess
    const decisions = one.out.stdout();
    expect(jsonLines(decisions)).toHaveLength(2);
    expect(two.out.stdout()).toBe(decisions);
    const totals = (o: ReturnType<typeof captureIO>) => o.stderr().replace(/ Policy .*$/m, '');
    expect(totals(two.out)).toBe(totals(one.out));
    const plain = (items: Json[]) => JSON.stringify(items, (_k, v) => (v instanceof Set ? [...v].sort() : v));
    expect(plain(await usageItems(two.store))).toBe(plain(await usageItems(one.store)));
  });

  it('a re-run on the same store records no decision twice and counts no call twice', async () => {
    // Prepare
    const run = await policyChange(1);
    const before = await usageItems(run.store);
    const again = captureIO(run.after);

    // Act
    const code = await runReplay(
      ['.'],
      { store: run.store, config: run.config, json: true, jobs: 1 },
      again.io,
    );

    // Assess
    expect(code).toBe(0);
    expect(await usageItems(run.store)).toEqual(before);
    // The calls were replayed by the first run: its usage decision is on record, and is not made again.
    const deletion = jsonLines(run.out.stdout()).filter(
      (d) => d.trigger.eventName === 'DeleteServiceSpecificCredential',
    );
    expect(jsonLines(again.stdout())).toEqual(deletion);
    expect(again.stderr()).toContain(
      'Usage: 0 bearer-token calls (0 long-term on 0 keys, 0 short-term by 0 principals), 8 already replayed by an earlier run (not counted again), 2 skipped (SigV4 or unusable)',
    );
    expect(again.stderr()).toContain('Decisions: 1 (0 new, 1 already on record)');
  });

  it('a later archive on the same store adds only its own calls', async () => {
    // Prepare
    const root = usageArchive();
    const store = tempDir();
    const config = configFile(root, true);
    await runReplay(['.'], { store, config, jobs: 1, quiet: true }, captureIO(root).io);
    const later = tempDir();
    writeLog(later, 'eu-central-1', '20261121T0905Z', [
      createKeyRecord('2026-11-21T08:00:00Z', USER, 'ACCAREPLAYUSAGEKEY002', { ageDays: 30 }),
      longTermUse('2026-11-21T09:00:00Z'),
      shortTermUse('2026-11-21T09:01:00Z'),
    ]);

    // Act
    const code = await runReplay(
      ['.'],
      { store, config: configFile(later, true), jobs: 1, quiet: true },
      captureIO(later).io,
    );

    // Assess
    expect(code).toBe(0);
    const items = await usageItems(store);
    expect(items.find((i) => i.subject === 'key#ACCAREPLAYUSAGEKEY002')).toMatchObject({ calls: 1 });
    expect(items.find((i) => i.subject === `principal#${ROLE_ARN}`)).toMatchObject({
      calls: 4,
      lastAttemptAt: '2026-11-21T09:01:00.000Z',
    });
  });

  it('folds thousands of calls of one key into one item (uses are buffered and merged, never all kept)', async () => {
    // Prepare
    const root = tempDir();
    writeLog(root, 'us-east-1', '20261120T0905Z', [
      createKeyRecord('2026-11-20T09:00:00Z', USER, KEY, { ageDays: 30 }),
    ]);
    const uses: Json[] = [];
    for (let i = 0; i < 6500; i++) {
      uses.push(longTermUse(new Date(Date.parse('2026-11-20T10:00:00Z') + i * 1000).toISOString()));
    }
    writeLog(root, 'eu-central-1', '20261120T1205Z', uses);
    const store = tempDir();

    // Act
    const code = await runReplay(
      ['.'],
      { store, config: configFile(root, true), jobs: 1, quiet: true },
      captureIO(root).io,
    );

    // Assess
    expect(code).toBe(0);
    const items = await usageItems(store);
    expect(items.find((i) => i.subject === `key#${KEY}`)).toMatchObject({
      calls: 6500,
      firstUsedAt: '2026-11-20T10:00:00.000Z',
      lastUsedAt: new Date(Date.parse('2026-11-20T10:00:00Z') + 6499 * 1000).toISOString(),
    });
  });
});

describe('keyguard replay: key usage in one pass', () => {
  it.each([1, 2])('reads each input file once, bearer-token calls included (--jobs %i)', async (jobs) => {
    // Prepare
    const root = usageArchive();
    const store = tempDir();
    const out = captureIO(root);
    const scannedBefore = scanCounter.files;

    // Act
    const code = await runReplay(['.'], { store, config: configFile(root, true), jobs, quiet: true }, out.io);

    // Assess
    expect(code).toBe(0);
    // Three log files (key creation, deletion, the calls): each is read and decompressed exactly once.
    expect(scanCounter.files - scannedBefore).toBe(3);
    const items = await usageItems(store);
    expect(items.find((i) => i.subject === `key#${KEY}`)).toMatchObject({ calls: 4 });
  });

  it("places the calls of a minute holding an IAM event of the caller by the minute's first call", async () => {
    // Prepare: the key is created at 09:00:30; the user calls at 09:00:10 (no key yet), 09:00:50 (same minute,
    // after the creation) and 09:01:10 (a later minute).
    const root = tempDir();
    writeLog(root, 'us-east-1', '20261120T0905Z', [
      tagUserRecord('2026-11-20T08:59:00Z', USER, FULL_TAGS),
      createKeyRecord('2026-11-20T09:00:30Z', USER, KEY, { ageDays: 30 }),
    ]);
    writeLog(root, 'eu-central-1', '20261120T0910Z', [
      longTermUse('2026-11-20T09:00:10Z'),
      longTermUse('2026-11-20T09:00:50Z'),
      longTermUse('2026-11-20T09:01:10Z'),
    ]);
    const store = tempDir();

    // Act
    const code = await runReplay(
      ['.'],
      { store, config: configFile(root, true), jobs: 1, quiet: true },
      captureIO(root).io,
    );

    // Assess
    expect(code).toBe(0);
    const items = await usageItems(store);
    // The documented approximation: 09:00:50 goes with 09:00:10, before the key existed.
    expect(items.find((i) => i.subject === `principal#${USER_ARN}`)).toMatchObject({
      calls: 2,
      firstUsedAt: '2026-11-20T09:00:10.000Z',
      lastAttemptAt: '2026-11-20T09:00:50.000Z',
    });
    expect(items.find((i) => i.subject === `key#${KEY}`)).toMatchObject({
      calls: 1,
      firstUsedAt: '2026-11-20T09:01:10.000Z',
    });
  });

  it("a call after the earlier run's mark counts even in the minute of the mark", async () => {
    // Prepare: run 1 replays a call at 10:00:20; run 2 sees it again with a new call at 10:00:40.
    const first = tempDir();
    writeKeyCreation(first);
    writeLog(first, 'eu-central-1', '20261120T1005Z', [longTermUse('2026-11-20T10:00:20Z')]);
    const store = tempDir();
    const config = configFile(first, true);
    await runReplay(['.'], { store, config, jobs: 1, quiet: true }, captureIO(first).io);
    const second = tempDir();
    const again = longTermUse('2026-11-20T10:00:20Z');
    writeLog(second, 'eu-central-1', '20261120T1005Z', [again, longTermUse('2026-11-20T10:00:40Z')]);
    const out = captureIO(second);

    // Act
    const code = await runReplay(['.'], { store, config, jobs: 1 }, out.io);

    // Assess
    expect(code).toBe(0);
    const items = await usageItems(store);
    expect(items.find((i) => i.subject === `key#${KEY}`)).toMatchObject({
      calls: 2,
      lastAttemptAt: '2026-11-20T10:00:40.000Z',
    });
    expect(items.find((i) => i.subject === 'meta#replay-counted-through')).toMatchObject({
      countedThrough: '2026-11-20T10:00:40.000Z',
    });
    expect(out.stdout()).toContain('1 already replayed by an earlier run');
  });
});

describe('keyguard replay: key usage from other inputs', () => {
  it('reads bearer-token calls from EventBridge events and JSON lines, and keeps --since/--until', async () => {
    // Prepare
    const root = tempDir();
    writeKeyCreation(root);
    const event = (record: Json) => ({
      version: '0',
      id: `ev-${String(record.eventID)}`,
      'detail-type': 'AWS API Call via CloudTrail',
      source: 'aws.bedrock',
      account: ACCOUNT,
      time: record.eventTime,
      region: 'eu-central-1',
      resources: [],
      detail: record,
    });
    writeFile(
      join(root, 'events', 'one-call.json'),
      JSON.stringify(event(longTermUse('2026-11-20T10:00:00Z'))),
    );
    writeFile(
      join(root, 'events', 'calls.jsonl'),
      [
        event(longTermUse('2026-11-20T11:00:00Z')),
        event(sigv4Call('2026-11-20T11:30:00Z')),
        event(shortTermUse('2026-11-21T10:00:00Z')),
      ]
        .map((e) => JSON.stringify(e))
        .join('\n'),
    );
    const store = tempDir();
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { store, config: configFile(root, true), jobs: 1, until: '2026-11-21' },
      out.io,
    );

    // Assess
    expect(code).toBe(0);
    const items = await usageItems(store);
    expect(items.find((i) => i.subject === `key#${KEY}`)).toMatchObject({
      calls: 2,
      lastUsedAt: '2026-11-20T11:00:00.000Z',
    });
    expect(items.some((i) => String(i.subject).startsWith('principal#'))).toBe(false);
    expect(out.stdout()).toContain(
      'Usage: 2 bearer-token calls (2 long-term on 1 key, 0 short-term by 0 principals), 1 skipped (SigV4 or unusable)',
    );
    expect(out.stdout()).toMatch(/outside --since\/--until 1/);
  });
});

describe('replay scan: Bedrock calls', () => {
  function bedrockFile(records: Json[]): { display: string; absolute: string; bytes: number } {
    const dir = tempDir();
    const content = JSON.stringify({ Records: records });
    const path = writeFile(join(dir, 'bedrock.json'), content);
    return { display: 'bedrock.json', absolute: path, bytes: content.length };
  }

  it('parses the bearer-token calls and counts SigV4 calls without parsing them', async () => {
    // Prepare
    const file = bedrockFile([
      longTermUse('2026-11-20T10:00:00Z'),
      mantleUse('2026-11-20T10:01:00Z'),
      sigv4Call('2026-11-20T10:02:00Z'),
    ]);
    const parsedBefore = parseCounter.records;

    // Act
    const scan = await scanFile(file, REPLAY_FILTER);

    // Assess
    expect(scan.entries.map((e) => e.value.eventName)).toEqual(['InvokeModel', 'CreateChatCompletion']);
    expect(scan.skipped).toEqual({ 'not-iam': 0, 'unsupported-event': 0, 'not-bearer-token': 1 });
    expect(parseCounter.records - parsedBefore).toBe(2);
  });

  it('parses only the IAM candidates and the bearer-token calls, in CloudTrail files and in JSON lines', async () => {
    // Prepare
    const records = [
      sigv4Call('2026-11-20T10:02:00Z'),
      longTermUse('2026-11-20T10:00:00Z'),
      createKeyRecord('2026-11-20T09:00:00Z', USER, KEY),
      iamRecord('ListUsers', '2026-11-20T09:00:00Z', {}),
    ];
    const file = bedrockFile(records);
    const dir = tempDir();
    const lines = records.map((r) => JSON.stringify(r)).join('\n');
    const ndjson = {
      display: 'b.jsonl',
      absolute: writeFile(join(dir, 'b.jsonl'), lines),
      bytes: lines.length,
    };

    // Act
    const scans = [await scanFile(file, REPLAY_FILTER), await scanFile(ndjson, REPLAY_FILTER)];

    // Assess
    for (const scan of scans) {
      expect(scan.entries.map((e) => e.value.eventName)).toEqual([
        'InvokeModel',
        'CreateServiceSpecificCredential',
      ]);
      expect(scan.parsed).toBe(2);
      expect(scan.skipped).toMatchObject({ 'not-bearer-token': 1, 'unsupported-event': 1 });
    }
  });
});
