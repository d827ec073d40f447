import { spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { runReplay } from '../../lambda/cli/replay';
import { LOCK_FILE } from '../../lambda/cli/store-lock';
import {
  ACCOUNT,
  captureIO,
  createKeyRecord,
  EXAMPLES,
  FULL_TAGS,
  iamRecord,
  jsonLines,
  REPO,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from './helpers';

/** Shaped like a real long-term key (ABSK + base64 of "<alias>:<secret>"), never valid anywhere. */
const FAKE_SECRET = `ABSK${Buffer.from(`svc-leaky-at-${ACCOUNT}:${'Q7wZ'.repeat(15)}`).toString('base64')}`;

const DAY20 = join(EXAMPLES, 'cloudtrail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/20');

function firstExampleFile(): string {
  const name = readdirSync(DAY20).sort()[0];
  if (!name) throw new Error('examples are missing');
  return join(DAY20, name);
}

afterAll(removeTempDirs);

describe('keyguard replay: unreadable inputs', () => {
  it('reports a corrupt file and bad gzip by path and reason, still replays the rest, exits 2', async () => {
    // Prepare
    const dir = tempDir();
    copyFileSync(firstExampleFile(), join(dir, 'a-good.json.gz'));
    writeFile(
      join(dir, 'b-corrupt.json'),
      `{"Records": [{"eventName": "CreateServiceSpecificCredential", "secret": "${FAKE_SECRET}" oops`,
    );
    writeFile(join(dir, 'c-truncated.json.gz'), gzipSync(JSON.stringify({ Records: [] })).subarray(0, 12));
    writeFile(join(dir, 'd-not-gzip.json.gz'), '{"Records": []}');
    writeFile(join(dir, 'e-unknown-shape.json'), '{"hello": "world"}');
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(2);
    const err = out.stderr();
    expect(err).toMatch(/^keyguard: b-corrupt\.json: invalid JSON at line 1, column \d+$/m);
    expect(err).toMatch(
      /^keyguard: c-truncated\.json\.gz: cannot decompress \(gzip\): unexpected end of file$/m,
    );
    expect(err).toMatch(/^keyguard: d-not-gzip\.json\.gz: cannot decompress \(gzip\): not in gzip format$/m);
    expect(err).toMatch(/^keyguard: e-unknown-shape\.json: not a CloudTrail log file/m);
    expect(err).toContain('Files: 5 read, 4 with errors');
    expect(err).not.toContain(FAKE_SECRET);
    expect(out.stdout()).not.toContain(FAKE_SECRET);
    expect(jsonLines(out.stdout()).map((d) => d.userName)).toEqual(['svc-chatbot']);
  });

  it('reports a path that does not exist and exits 2', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(
      join(dir, 'ok.json'),
      JSON.stringify(createKeyRecord('2026-11-20T09:00:00Z', 'svc-a', 'ACCAEXAMPLEMISSING001')),
    );
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['no-such-dir', 'ok.json'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(/^keyguard: no-such-dir: no such file or directory$/m);
    expect(jsonLines(out.stdout())).toHaveLength(1);
  });

  it('reports a relevant record that lacks a field by path and event id, and carries on', async () => {
    // Prepare
    const dir = tempDir();
    const broken = createKeyRecord('2026-11-20T09:00:00Z', 'svc-a', 'ACCAEXAMPLEBROKEN0001');
    delete (broken.responseElements as { serviceSpecificCredential: Record<string, unknown> })
      .serviceSpecificCredential.serviceSpecificCredentialId;
    const good = createKeyRecord('2026-11-20T09:05:00Z', 'svc-b', 'ACCAEXAMPLEGOOD000001');
    writeFile(join(dir, 'trail.json'), JSON.stringify({ Records: [broken, good] }));
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['trail.json'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain(
      `keyguard: trail.json: CreateServiceSpecificCredential ${String(broken.eventID)}: missing or invalid responseElements.serviceSpecificCredential.serviceSpecificCredentialId`,
    );
    expect(out.stderr()).toContain('1 rejected');
    expect(jsonLines(out.stdout()).map((d) => d.keyId)).toEqual(['ACCAEXAMPLEGOOD000001']);
  });

  it('rejects a relevant record that fails schema validation, naming the field but not its value', async () => {
    // Prepare
    const dir = tempDir();
    const bad: Record<string, unknown> = createKeyRecord(
      '2026-11-20T09:00:00Z',
      'svc-a',
      'ACCAEXAMPLEBADTIME001',
    );
    bad.eventTime = 42;
    writeFile(join(dir, 'one.json'), JSON.stringify(bad));
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['one.json'], { store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(
      new RegExp(
        `^keyguard: one\\.json: event ${String(bad.eventID)}: invalid CloudTrail record \\(eventTime: `,
        'm',
      ),
    );
  });
});

describe('keyguard replay: input shapes', () => {
  it('reads a single EventBridge event and an NDJSON file of events and records', async () => {
    // Prepare
    const out = captureIO(REPO);

    // Act
    const code = await runReplay(['examples/events'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(0);
    const decisions = jsonLines(out.stdout());
    expect(decisions.map((d) => [d.userName, d.trigger.eventName, d.action, d.status])).toEqual([
      ['svc-translate', 'CreateServiceSpecificCredential', 'NOTIFY', 'Active'],
      ['svc-voice-bot', 'CreateServiceSpecificCredential', 'DEACTIVATE', 'Active'],
      ['svc-voice-bot', 'UpdateServiceSpecificCredential', 'ALLOW', 'Inactive'],
    ]);
    expect(new Set(decisions.map((d) => d.accountId))).toEqual(new Set(['444455556666']));
    expect(decisions[1]?.owner).toEqual({ value: 'frank@example.com', source: 'tag' });
    expect(out.stderr()).toContain('Events: 5 read');
  });

  it('takes the account from the EventBridge envelope when the record has none', async () => {
    // Prepare
    const dir = tempDir();
    const detail = createKeyRecord('2026-11-20T09:00:00Z', 'svc-a', 'ACCAEXAMPLEENVELOPE01', { ageDays: 30 });
    delete detail.recipientAccountId;
    delete (detail.userIdentity as Record<string, unknown>).accountId;
    const event = {
      version: '0',
      id: 'f0000000-0000-4000-8000-000000000001',
      'detail-type': 'AWS API Call via CloudTrail',
      source: 'aws.iam',
      account: '999988887777',
      time: '2026-11-20T09:00:00Z',
      region: 'us-east-1',
      resources: [],
      detail,
    };
    writeFile(join(dir, 'event.json'), JSON.stringify(event));
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['event.json'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout())[0]?.accountId).toBe('999988887777');
  });

  it('reports a bad NDJSON line with its line number and replays the other lines', async () => {
    // Prepare
    const dir = tempDir();
    const lines = [
      JSON.stringify(
        createKeyRecord('2026-11-20T09:00:00Z', 'svc-a', 'ACCAEXAMPLENDJSON0001', { ageDays: 30 }),
      ),
      `{"eventName": "TagUser", "note": "${FAKE_SECRET}"`,
      '',
      JSON.stringify(tagUserRecord('2026-11-20T09:10:00Z', 'svc-a', FULL_TAGS)),
      '"just a string"',
    ];
    writeFile(join(dir, 'events.jsonl.gz'), gzipSync(lines.join('\n')));
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(/^keyguard: events\.jsonl\.gz:2: invalid JSON/m);
    expect(out.stderr()).toMatch(/^keyguard: events\.jsonl\.gz:5: not a CloudTrail log file/m);
    expect(out.stderr()).not.toContain(FAKE_SECRET);
    expect(jsonLines(out.stdout()).map((d) => [d.trigger.eventName, d.action])).toEqual([
      ['CreateServiceSpecificCredential', 'NOTIFY'],
      ['TagUser', 'ALLOW'],
    ]);
  });

  it('orders records by eventTime across files, whatever the file order', async () => {
    // Prepare: the later TagUser is in the file that sorts first.
    const dir = tempDir();
    writeFile(
      join(dir, 'a.json'),
      JSON.stringify({ Records: [tagUserRecord('2026-11-20T12:00:00Z', 'svc-a', FULL_TAGS)] }),
    );
    writeFile(
      join(dir, 'b.json'),
      JSON.stringify({
        Records: [createKeyRecord('2026-11-20T11:00:00Z', 'svc-a', 'ACCAEXAMPLEORDER00001', { ageDays: 30 })],
      }),
    );
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout()).map((d) => [d.trigger.eventName, d.action])).toEqual([
      ['CreateServiceSpecificCredential', 'NOTIFY'],
      ['TagUser', 'ALLOW'],
    ]);
  });

  it('replays an event once when it arrives twice (log file and EventBridge)', async () => {
    // Prepare
    const dir = tempDir();
    const record = createKeyRecord('2026-11-20T09:00:00Z', 'svc-a', 'ACCAEXAMPLEDUPLICATE1', { ageDays: 30 });
    writeFile(join(dir, 'trail.json'), JSON.stringify({ Records: [record] }));
    writeFile(
      join(dir, 'event.json'),
      JSON.stringify({
        id: 'x',
        'detail-type': 'AWS API Call via CloudTrail',
        source: 'aws.iam',
        account: ACCOUNT,
        detail: record,
      }),
    );
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['.'], { json: true, store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout())).toHaveLength(1);
    expect(out.stderr()).toContain('seen twice (same eventID) 1');
  });

  it('never prints a secret from a record, in the table or as JSON', async () => {
    // Prepare
    const dir = tempDir();
    const record = createKeyRecord('2026-11-20T09:00:00Z', 'svc-leaky', 'ACCAEXAMPLESECRET0001', {
      secret: FAKE_SECRET,
    });
    writeFile(join(dir, 'trail.json'), JSON.stringify({ Records: [record] }));
    const table = captureIO(dir);
    const json = captureIO(dir);

    // Act
    await runReplay(['trail.json'], { store: tempDir() }, table.io);
    await runReplay(['trail.json'], { store: tempDir(), json: true }, json.io);

    // Assess
    expect(jsonLines(json.stdout())).toHaveLength(1);
    expect(table.stdout()).toContain('ACCAEXAMPLESECRET0001');
    for (const text of [table.stdout(), table.stderr(), json.stdout(), json.stderr()]) {
      expect(text).not.toContain(FAKE_SECRET);
      expect(text).not.toContain(FAKE_SECRET.slice(4, 40));
    }
  });
});

describe('keyguard replay: configuration', () => {
  it('exits 2 with the setting named when the config is invalid, and touches no store', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'keyguard.config.json'), JSON.stringify({ mode: 'audit', maxAgeDays: 0 }));
    const store = join(dir, 'store');
    const out = captureIO(dir);

    // Act
    const code = await runReplay([join(EXAMPLES, 'events')], { json: true, store }, out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(/^keyguard: invalid configuration$/m);
    expect(out.stderr()).toMatch(/keyguard\.config\.json: maxAgeDays: got 0; allowed: >= 1/);
    expect(out.stdout()).toBe('');
    expect(readdirSync(dir)).toEqual(['keyguard.config.json']);
  });

  it('exits 2 when the --config file does not exist', async () => {
    // Prepare
    const dir = tempDir();
    const out = captureIO(dir);

    // Act
    const code = await runReplay(
      [join(EXAMPLES, 'events')],
      { config: 'missing.json', store: tempDir() },
      out.io,
    );

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toMatch(/^keyguard: missing\.json: config file not found$/m);
  });

  it('names an unknown key in the config file', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'policy.json'), JSON.stringify({ maxAgeDay: 30 }));
    const out = captureIO(dir);

    // Act
    const code = await runReplay(
      [join(EXAMPLES, 'events')],
      { config: 'policy.json', store: tempDir() },
      out.io,
    );

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toContain('unknown key(s) "maxAgeDay"');
  });
});

describe('keyguard replay: a single plain record', () => {
  it('reads a bare CloudTrail record and ignores an IAM event keyguard does not follow', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(
      join(dir, 'r.json'),
      JSON.stringify([
        iamRecord('ListUsers', '2026-11-20T09:00:00Z', null),
        createKeyRecord('2026-11-20T09:01:00Z', 'svc-a', 'ACCAEXAMPLEBARE00001'),
      ]),
    );
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['r.json'], { store: tempDir() }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(out.stdout()).toMatch(/ACCAEXAMPLEBARE00001\s+Active\s+DEACTIVATE \(planned\)\s+NEVER_EXPIRES/);
    expect(out.stdout()).toContain('other IAM calls 1');
  });
});

describe('keyguard replay: logs replayed in several runs onto one store', () => {
  it('continues from the keys the store knows: a later Update or TagUser is decided, not taken for a deletion', async () => {
    // Prepare: day one creates the key (never-expiring); day two's logs only update and re-tag it.
    const dir = tempDir();
    const store = tempDir();
    const keyId = 'ACCAEXAMPLECONTINUE01';
    writeFile(
      join(dir, 'day1.json'),
      JSON.stringify({ Records: [createKeyRecord('2026-11-20T09:00:00Z', 'svc-later', keyId)] }),
    );
    writeFile(
      join(dir, 'day2.json'),
      JSON.stringify({
        Records: [
          tagUserRecord('2026-11-21T09:00:00Z', 'svc-later', FULL_TAGS),
          iamRecord('UpdateServiceSpecificCredential', '2026-11-21T10:00:00Z', {
            userName: 'svc-later',
            serviceSpecificCredentialId: keyId,
            status: 'Inactive',
          }),
        ],
      }),
    );
    expect(await runReplay(['day1.json'], { json: true, store }, captureIO(dir).io)).toBe(0);
    const out = captureIO(dir);

    // Act
    const code = await runReplay(['day2.json'], { json: true, store }, out.io);

    // Assess
    expect(code).toBe(0);
    expect(jsonLines(out.stdout()).map((d) => [d.trigger.eventName, d.keyId, d.status, d.action])).toEqual([
      ['TagUser', keyId, 'Active', 'DEACTIVATE'],
      ['UpdateServiceSpecificCredential', keyId, 'Inactive', 'ALLOW'],
    ]);
  });
});

describe('keyguard replay: the store', () => {
  it('refuses a store another running process holds, and takes over a stale lock', async () => {
    // Prepare
    const busyStore = tempDir();
    const staleStore = tempDir();
    writeFile(join(busyStore, LOCK_FILE), String(process.pid));
    const finished = spawnSync(process.execPath, ['-e', '']);
    writeFile(join(staleStore, LOCK_FILE), String(finished.pid));
    const busy = captureIO(REPO);
    const stale = captureIO(REPO);

    // Act
    const busyCode = await runReplay(['examples/events'], { json: true, store: busyStore }, busy.io);
    const staleCode = await runReplay(['examples/events'], { json: true, store: staleStore }, stale.io);

    // Assess
    expect(busyCode).toBe(2);
    expect(busy.stderr()).toContain(`keyguard: store ${busyStore}: in use by process ${process.pid}`);
    expect(busy.stdout()).toBe('');
    expect(staleCode).toBe(0);
    expect(jsonLines(stale.stdout())).toHaveLength(3);
    expect(readdirSync(staleStore)).not.toContain(LOCK_FILE);
  });
});
