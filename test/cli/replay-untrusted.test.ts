import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { REPLAY_TABLES, runReplay, USAGE_MARK_SUBJECT } from '../../lambda/cli/replay';
import { scanAll } from '../support/dynamo';
import {
  ACCOUNT,
  captureIO,
  createKeyRecord,
  FULL_TAGS,
  jsonLines,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from './helpers';

/**
 * `keyguard replay` on records whose own claims cannot be believed: an event time far in the future (it would move
 * the store's usage mark there for ever), or an account that cannot be established. Such a record is reported
 * with its file and event, never acted on, and the rest of the input is replayed.
 */

type Json = Record<string, unknown>;

const USER = 'svc-chatbot';
const KEY = 'ACCAUNTRUSTEDKEY0001';
const FOREIGN = '999988887777';

function fixture(name: string): Json {
  return JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'cloudtrail', name), 'utf8')) as Json;
}

let n = 0;
function longTermUse(eventTime: string): Json {
  n += 1;
  return {
    ...fixture('bedrock-invoke-model-bearer-token.json'),
    eventTime,
    eventID: `f0000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  };
}

function logName(region: string, stamp: string): string {
  return `${ACCOUNT}_CloudTrail_${region}_${stamp}_Aaj0Vzf9VCKbVbPz.json.gz`;
}

function writeLog(root: string, region: string, stamp: string, records: Json[]): string {
  const [y, m, d] = [stamp.slice(0, 4), stamp.slice(4, 6), stamp.slice(6, 8)];
  return writeFile(
    join(root, 'AWSLogs', ACCOUNT, 'CloudTrail', region, y, m, d, logName(region, stamp)),
    gzipSync(JSON.stringify({ Records: records })),
  );
}

function configFile(): string {
  return writeFile(join(tempDir(), 'keyguard.config.json'), JSON.stringify({ mode: 'audit' }));
}

async function usageItems(store: string): Promise<Json[]> {
  const db = await startEmbeddedDynamo({ path: store });
  try {
    return await scanAll(db, REPLAY_TABLES.usageTable);
  } finally {
    await db.close();
  }
}

afterAll(removeTempDirs);

describe('keyguard replay: event times in the future', () => {
  it('refuses a bearer-token call dated 9999-12-31 (file and event named): later real calls still count', async () => {
    // Prepare: run 1 holds the key, a real call and a call dated 9999; run 2 a real call the next day
    const root = tempDir();
    writeLog(root, 'us-east-1', '20261120T0905Z', [
      tagUserRecord('2026-11-20T08:59:00Z', USER, FULL_TAGS),
      createKeyRecord('2026-11-20T09:00:00Z', USER, KEY, { ageDays: 30 }),
    ]);
    const forged = longTermUse('9999-12-31T00:00:00Z');
    const file = writeLog(root, 'eu-central-1', '20261120T1605Z', [
      longTermUse('2026-11-20T10:00:00Z'),
      forged,
    ]);
    const later = tempDir();
    writeLog(later, 'eu-central-1', '20261121T1005Z', [longTermUse('2026-11-21T10:00:00Z')]);
    const store = tempDir();
    const config = configFile();
    const first = captureIO(root);
    const second = captureIO(later);

    // Act
    const firstCode = await runReplay(['.'], { store, config, jobs: 1 }, first.io);
    const secondCode = await runReplay(['.'], { store, config, jobs: 1 }, second.io);

    // Assess: run 1 names the file (relative to the argument), the event and the time, and still replays the rest
    expect(firstCode).toBe(2);
    const shown = file.slice(root.length + 1);
    expect(first.stderr()).toContain(
      `keyguard: ${shown}: InvokeModel ${String(forged.eventID)}: eventTime 9999-12-31T00:00:00.000Z is after`,
    );
    expect(first.stderr()).toContain('implausibly far in the future');
    // the file was delivered 2026-11-20 16:05: a day after that is the latest time believed
    expect(first.stderr()).toContain('is after 2026-11-21T16:05:00.000Z');
    expect(secondCode).toBe(0);
    const items = await usageItems(store);
    expect(items.find((i) => i.subject === `key#${KEY}`)).toMatchObject({
      calls: 2,
      lastUsedAt: '2026-11-21T10:00:00.000Z',
    });
    expect(items.find((i) => i.subject === USAGE_MARK_SUBJECT)).toMatchObject({
      countedThrough: '2026-11-21T10:00:00.000Z',
    });
    expect(second.stdout()).not.toMatch(/replayed by an earlier run|counted earlier: [1-9]/);
  });

  it('refuses an IAM event dated 9999 and decides the rest', async () => {
    // Prepare
    const root = tempDir();
    const forged = createKeyRecord('9999-12-31T00:00:00Z', 'svc-forged', 'ACCAUNTRUSTEDKEY0002');
    writeLog(root, 'us-east-1', '20261120T0905Z', [
      tagUserRecord('2026-11-20T08:59:00Z', USER, FULL_TAGS),
      createKeyRecord('2026-11-20T09:00:00Z', USER, KEY, { ageDays: 30 }),
      forged,
    ]);
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { store: tempDir(), config: configFile(), json: true, jobs: 1 },
      out.io,
    );

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      `CreateServiceSpecificCredential ${String(forged.eventID)}: eventTime 9999-12-31T00:00:00.000Z is after`,
    );
    expect(jsonLines(out.stdout()).map((d) => d.keyId)).toEqual([KEY]);
  });
});

describe('keyguard replay: whose event it is', () => {
  const envelope = (detail: Json, account: string): Json => ({
    version: '0',
    id: `ev-${String(detail.eventID)}`,
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.iam',
    account,
    time: detail.eventTime,
    region: 'us-east-1',
    resources: [],
    detail,
  });

  it('decides an event without recipientAccountId as the envelope account, never as the account its caller claims', async () => {
    // Prepare: the caller's identity names ACCOUNT; the event was put on another account's bus
    const root = tempDir();
    const { recipientAccountId: _r, ...created } = createKeyRecord('2026-11-20T09:00:00Z', USER, KEY);
    writeFile(join(root, 'events', 'foreign.json'), JSON.stringify(envelope(created, FOREIGN)));
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { store: tempDir(), config: configFile(), json: true, jobs: 1 },
      out.io,
    );

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout()).map((d) => [d.accountId, d.keyId])).toEqual([[FOREIGN, KEY]]);
  });

  it('refuses an event whose recipientAccountId and envelope account disagree, naming the file', async () => {
    // Prepare
    const root = tempDir();
    const created = createKeyRecord('2026-11-20T09:00:00Z', USER, KEY);
    writeFile(join(root, 'events', 'mismatch.json'), JSON.stringify(envelope(created, FOREIGN)));
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { store: tempDir(), config: configFile(), json: true, jobs: 1 },
      out.io,
    );

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      `keyguard: ${join('events', 'mismatch.json')}: CreateServiceSpecificCredential ${String(created.eventID)}: ` +
        `recipientAccountId ${ACCOUNT} differs from the envelope account ${FOREIGN}; not replayed`,
    );
    expect(out.stdout()).toBe('');
  });
});

describe('keyguard replay: values over DynamoDB’s item limit', () => {
  it('replays a user tagged with 500,000-character values: decisions recorded with the values cut and hashed', async () => {
    // Prepare
    const root = tempDir();
    const huge = `alice-${'w'.repeat(499_994)}`;
    writeLog(root, 'us-east-1', '20261120T0905Z', [
      tagUserRecord('2026-11-20T08:59:00Z', USER, { ...FULL_TAGS, owner: huge, purpose: huge }),
      createKeyRecord('2026-11-20T09:00:00Z', USER, KEY, { ageDays: 30 }),
    ]);
    const store = tempDir();
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { store, config: configFile(), json: true, quiet: true, jobs: 1 },
      out.io,
    );
    const again = captureIO(root);
    const rerun = await runReplay(
      ['.'],
      { store, config: configFile(), json: true, quiet: true, jobs: 1 },
      again.io,
    );

    // Assess: decided and recorded (the store holds it), and a re-run finds the same decision on record
    expect(out.stderr()).toBe('');
    expect(code).toBe(0);
    const [decision] = jsonLines(out.stdout());
    expect(decision?.owner.value).toMatch(/^alice-w+…\[truncated 499,\d{3} chars, sha256:[0-9a-f]{16}\]$/);
    expect(rerun).toBe(0);
    expect(jsonLines(again.stdout()).map((d) => d.decisionId)).toEqual([decision?.decisionId]);
    const db = await startEmbeddedDynamo({ path: store });
    try {
      const stored = await scanAll(db, REPLAY_TABLES.decisionsTable);
      expect(stored.filter((i) => i.sk === decision?.decisionId)).toHaveLength(1);
    } finally {
      await db.close();
    }
  });

  it('refuses a record whose user name is longer than IAM allows, naming the field, and replays the rest', async () => {
    // Prepare
    const root = tempDir();
    const forged = createKeyRecord('2026-11-20T09:30:00Z', 'u'.repeat(500_000), 'ACCAUNTRUSTEDKEY0003');
    writeLog(root, 'us-east-1', '20261120T0905Z', [
      createKeyRecord('2026-11-20T09:00:00Z', USER, KEY, { ageDays: 30 }),
      forged,
    ]);
    const out = captureIO(root);

    // Act
    const code = await runReplay(
      ['.'],
      { store: tempDir(), config: configFile(), json: true, jobs: 1 },
      out.io,
    );

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      `CreateServiceSpecificCredential ${String(forged.eventID)}: missing or invalid requestParameters.userName (500000 characters, at most 128)`,
    );
    expect(out.stderr().length).toBeLessThan(2000);
    expect(jsonLines(out.stdout()).map((d) => d.keyId)).toEqual([KEY]);
  });
});
