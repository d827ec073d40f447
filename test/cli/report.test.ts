import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import type { CliIO } from '../../lambda/cli/io';
import { runReplay } from '../../lambda/cli/replay';
import { type ReportDeps, registerReportCommand } from '../../lambda/cli/report';
import { buildReportData, chartedAccounts, MAX_ACCOUNT_BARS, MAX_OWNERS } from '../../lambda/cli/report-data';
import { renderReportHtml } from '../../lambda/cli/report-html';
import type { KnownKey } from '../../lambda/domain/pipeline';
import type { Decision } from '../../lambda/domain/types';
import { startTestDynamo, TABLES } from '../support/dynamo';
import { ACCOUNT, captureIO, jsonLines, REPO, removeTempDirs, tempDir } from './helpers';
import { MANAGEMENT, MEMBER_A, MEMBER_B, orgArchive } from './org-archive';

const NOW = new Date('2026-11-23T12:00:00.000Z');

/** A fresh program configured like bin/keyguard.ts's, with only `report` registered. */
async function report(
  args: string[],
  opts: { cwd?: string; deps?: ReportDeps } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = captureIO(opts.cwd ?? REPO);
  let code = 0;
  const program = new Command()
    .name('keyguard')
    .configureOutput({ writeOut: (s) => out.io.stdout.write(s), writeErr: (s) => out.io.stderr.write(s) })
    .exitOverride();
  const deps: ReportDeps = opts.deps ?? {
    doc: () => {
      throw new Error('no AWS in this test');
    },
    env: {},
    now: () => NOW,
  };
  registerReportCommand(
    program,
    out.io as CliIO,
    (n) => {
      code = n;
    },
    () => deps,
  );
  try {
    await program.parseAsync(['node', 'keyguard', 'report', ...args]);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    code = err.exitCode === 0 ? 0 : 2;
  }
  return { code, stdout: out.stdout(), stderr: out.stderr() };
}

function known(over: Partial<KnownKey> & Pick<KnownKey, 'keyId'>): KnownKey {
  return {
    accountId: ACCOUNT,
    userName: `user-${over.keyId}`,
    status: 'Active',
    createdAt: '2026-11-01T00:00:00.000Z',
    expiresAt: null,
    creator: null,
    owner: 'team@example.com',
    lastDecisionId: 'd',
    lastDecisionAt: '2026-11-01T00:00:00.000Z',
    ...over,
  };
}

function decision(over: Partial<Decision> & Pick<Decision, 'keyId' | 'decidedAt'>): Decision {
  return {
    decisionId: `${over.decidedAt}/sweep/${over.keyId}`,
    userName: `user-${over.keyId}`,
    accountId: ACCOUNT,
    keyType: 'LONG_TERM',
    status: 'Active',
    trigger: { kind: 'sweep' },
    createdAt: null,
    expiresAt: null,
    neverExpires: false,
    owner: { value: 'team@example.com', source: 'tag' },
    violations: [],
    action: 'ALLOW',
    applied: false,
    mode: 'audit',
    deadline: null,
    policyVersion: 'p-1',
    ...over,
  };
}

const bars = (bs: ReadonlyArray<{ label: string; value: number }>) =>
  Object.fromEntries(bs.map((b) => [b.label, b.value]));

describe('report data (pure)', () => {
  const created = '2026-01-01T00:00:00.000Z';
  const plusDays = (days: number) => new Date(Date.parse(created) + days * 86_400_000).toISOString();

  it('buckets lifetimes; both shapes of "never expires" count as never; Deleted keys are not charted', () => {
    // Prepare
    const keys = [
      known({ keyId: 'K1', createdAt: created, expiresAt: plusDays(7) }),
      known({ keyId: 'K2', createdAt: created, expiresAt: plusDays(30) }),
      known({ keyId: 'K3', createdAt: created, expiresAt: plusDays(31) }),
      known({ keyId: 'K4', createdAt: created, expiresAt: plusDays(365) }),
      known({ keyId: 'K5', createdAt: created, expiresAt: plusDays(400) }),
      known({ keyId: 'K6', createdAt: created, expiresAt: null }),
      known({ keyId: 'K7', createdAt: created, expiresAt: '2125-11-20T14:22:10.000Z' }),
      known({ keyId: 'K8', createdAt: null, expiresAt: plusDays(10) }),
      known({ keyId: 'K9', createdAt: created, expiresAt: null, status: 'Deleted' }),
    ];

    // Act
    const data = buildReportData(keys, [], NOW);

    // Assess
    expect(bars(data.lifetime)).toEqual({
      '≤ 7 days': 1,
      '≤ 30 days': 1,
      '≤ 90 days': 1,
      '≤ 365 days': 1,
      '> 365 days': 1,
      never: 2,
      unknown: 1,
    });
    expect(data.keys).toHaveLength(9);
    expect(data.liveKeys).toBe(8);
    expect(data.keys.find((k) => k.keyId === 'K7')?.neverExpires).toBe(true);
    expect(data.keys.find((k) => k.keyId === 'K3')?.lifetimeDays).toBe(31);
  });

  it('places expiries: overdue, the 12 months from now’s (UTC), later; never-expiring keys are off it', () => {
    // Prepare
    const keys = [
      known({ keyId: 'E1', expiresAt: '2026-11-23T11:59:59.000Z' }),
      known({ keyId: 'E2', expiresAt: '2026-11-30T23:59:59.000Z' }),
      known({ keyId: 'E3', expiresAt: '2026-12-01T00:00:00.000Z' }),
      known({ keyId: 'E4', expiresAt: '2027-10-31T23:59:59.999Z' }),
      known({ keyId: 'E5', expiresAt: '2027-11-01T00:00:00.000Z' }),
      known({ keyId: 'E6', expiresAt: null }),
    ];

    // Act
    const data = buildReportData(keys, [], NOW);

    // Assess
    expect(data.expiry.map((b) => b.label)).toEqual([
      'overdue',
      '2026-11',
      '2026-12',
      '2027-01',
      '2027-02',
      '2027-03',
      '2027-04',
      '2027-05',
      '2027-06',
      '2027-07',
      '2027-08',
      '2027-09',
      '2027-10',
      'later',
    ]);
    expect(bars(data.expiry)).toMatchObject({
      overdue: 1,
      '2026-11': 1,
      '2026-12': 1,
      '2027-10': 1,
      later: 1,
    });
    expect(data.expiry.reduce((a, b) => a + b.value, 0)).toBe(5);
  });

  it('counts keys per owner (most first; beyond the limit summed as others)', () => {
    // Prepare
    const keys = [
      ...Array.from({ length: 3 }, (_, i) => known({ keyId: `A${i}`, owner: 'alice@example.com' })),
      known({ keyId: 'N1', owner: null }),
      ...Array.from({ length: MAX_OWNERS + 2 }, (_, i) =>
        known({ keyId: `O${i}`, owner: `owner-${String(i).padStart(2, '0')}@example.com` }),
      ),
    ];

    // Act
    const data = buildReportData(keys, [], NOW);

    // Assess
    expect(data.owners).toHaveLength(MAX_OWNERS);
    expect(data.owners[0]).toEqual({ label: 'alice@example.com', value: 3 });
    expect(data.owners[data.owners.length - 1]?.label).toMatch(/^others \(\d+\)$/);
    expect(data.owners.reduce((a, b) => a + b.value, 0)).toBe(keys.length);
  });

  it('counts violations from each key’s latest decision, and decisions per day stacked by action', () => {
    // Prepare
    const keys = [known({ keyId: 'V1' }), known({ keyId: 'V2' })];
    const never = { code: 'NEVER_EXPIRES' as const, severity: 'high' as const, detail: 'd' };
    const owner = { code: 'MISSING_OWNER' as const, severity: 'medium' as const, detail: 'd' };
    const decisions = [
      // Newest first: the order of the input does not matter.
      decision({ keyId: 'V1', decidedAt: '2026-11-22T08:00:00.000Z', violations: [owner], action: 'NOTIFY' }),
      decision({
        keyId: 'V1',
        decidedAt: '2026-11-20T08:00:00.000Z',
        violations: [never],
        action: 'DEACTIVATE',
      }),
      decision({
        keyId: 'V2',
        decidedAt: '2026-11-20T09:00:00.000Z',
        violations: [never, owner],
        action: 'NOTIFY',
      }),
    ];

    // Act
    const data = buildReportData(keys, decisions, NOW);

    // Assess
    expect(bars(data.violations)).toEqual({ MISSING_OWNER: 2, NEVER_EXPIRES: 1 });
    expect(data.days.map((d) => [d.day, d.total, d.byAction.NOTIFY, d.byAction.DEACTIVATE])).toEqual([
      ['2026-11-20', 2, 1, 1],
      ['2026-11-21', 0, 0, 0],
      ['2026-11-22', 1, 1, 0],
    ]);
    expect(data.keys.find((k) => k.keyId === 'V1')).toMatchObject({
      codes: ['MISSING_OWNER'],
      lastAction: 'NOTIFY',
    });
  });
});

describe('keyguard report --html over the replay store of examples/cloudtrail', () => {
  let store: string;
  let replayed: Decision[];
  let dir: string;

  beforeAll(async () => {
    store = join(tempDir(), 'store');
    const out = captureIO(REPO);
    expect(await runReplay(['examples/cloudtrail'], { json: true, store }, out.io)).toBe(0);
    replayed = jsonLines(out.stdout());
    dir = tempDir();
  });
  afterAll(removeTempDirs);

  it('writes one self-contained page and prints its path and counts on stderr', async () => {
    // Prepare
    const keys = new Set(replayed.map((d) => d.keyId));

    // Act
    const r = await report(['--html', join(dir, 'report.html'), '--store', store]);

    // Assess
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`Report: ${join(dir, 'report.html')} (${keys.size} keys`);
    expect(r.stderr).toContain(`${replayed.length} decisions`);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/\ssrc\s*=/i);
    expect(html).not.toMatch(/<link|@import|url\(/i);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none';`);
    for (const id of [
      'chart-lifetime',
      'chart-expiry',
      'chart-owners',
      'chart-violations',
      'chart-decisions',
    ]) {
      expect(html).toContain(`<figure id="${id}"`);
    }
    expect(html.match(/<tr data-key=/g)).toHaveLength(keys.size);
    // Decisions hold no key material, and neither does the report.
    expect(html).not.toMatch(/ABSK[A-Za-z0-9+/]{20}|bedrock-api-key-/);
  });

  it('is deterministic for a fixed clock: the same store gives the same bytes', async () => {
    // Act
    await report(['--html', join(dir, 'a.html'), '--store', store]);
    await report(['--html', join(dir, 'b.html'), '--store', store]);

    // Assess
    expect(readFileSync(join(dir, 'a.html'), 'utf8')).toBe(readFileSync(join(dir, 'b.html'), 'utf8'));
  });

  it('refuses to write over a directory or into a missing one (exit 2)', async () => {
    // Prepare
    mkdirSync(join(dir, 'taken'));

    // Act
    const onDir = await report(['--html', join(dir, 'taken'), '--store', store]);
    const noParent = await report(['--html', join(dir, 'nope', 'r.html'), '--store', store]);

    // Assess
    expect(onDir.code).toBe(2);
    expect(onDir.stderr).toContain('is a directory');
    expect(noParent.code).toBe(2);
    expect(noParent.stderr).toContain('does not exist');
    expect(existsSync(join(dir, 'nope'))).toBe(false);
  });

  it('needs --html, an audit store, and with --table the keys table (exit 2)', async () => {
    // Prepare
    const cwd = tempDir();

    // Act
    const noHtml = await report(['--store', store]);
    const noStore = await report(['--html', 'r.html'], { cwd });
    const noKeysTable = await report(['--html', 'r.html', '--table', 'decisions'], { cwd });

    // Assess
    expect(noHtml.code).toBe(2);
    expect(noHtml.stderr).toContain('--html');
    expect(noStore.code).toBe(2);
    expect(noStore.stderr).toContain(
      'no audit store at .keyguard: run keyguard replay first, or use --table',
    );
    expect(noKeysTable.code).toBe(2);
    expect(noKeysTable.stderr).toContain('--keys-table');
    expect(existsSync(join(cwd, 'r.html'))).toBe(false);
  });

  it('help has the source, that it loads nothing from the network, exit codes and examples', async () => {
    // Act
    const r = await report(['--help']);

    // Assess
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--html <file>');
    expect(r.stdout).toContain('loads nothing');
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toContain('$ keyguard report --html');
  });
});

describe('keyguard report --html from deployed tables (dynalite standing in for DynamoDB)', () => {
  let db: EmbeddedDynamo;
  const EVIL = '<img src=x onerror=alert(1)>';

  beforeAll(async () => {
    db = await startTestDynamo();
    const log = new DynamoAuditLog(db.doc, TABLES);
    await log.putKnownKey(
      known({ keyId: 'ACCAEXAMPLEEVILKEY001', userName: EVIL, owner: `"><script>alert(2)</script>` }),
    );
    await log.recordDecision(
      decision({
        keyId: 'ACCAEXAMPLEEVILKEY001',
        userName: EVIL,
        decidedAt: '2026-11-22T10:00:00.000Z',
        owner: { value: `"><script>alert(2)</script>`, source: 'tag' },
      }),
    );
  });
  afterAll(async () => db.close());

  it('escapes every value: a user named like an HTML tag is text', async () => {
    // Prepare
    const out = join(tempDir(), 'evil.html');

    // Act
    const r = await report(
      ['--html', out, '--table', TABLES.decisionsTable, '--keys-table', TABLES.keysTable],
      { deps: { doc: () => db.doc, env: {}, now: () => NOW } },
    );

    // Assess
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`table ${TABLES.decisionsTable}`);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<script>alert');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html.match(/<script>/g)).toHaveLength(1);
  });
});

describe('report per account (organization mode)', () => {
  const OTHER = '444455556666';
  const HOSTILE = '<svg onload=alert(3)>\u202e7777\u001b[2J';

  it('counts existing keys, keys with violations and decisions per account, every account by id', () => {
    // Prepare
    const keys = [
      known({ keyId: 'K1', accountId: OTHER }),
      known({ keyId: 'K2', accountId: OTHER, status: 'Deleted' }),
      known({ keyId: 'K3' }),
      known({ keyId: 'K4' }),
    ];
    const decisions = [
      decision({ keyId: 'K1', accountId: OTHER, decidedAt: '2026-11-20T10:00:00.000Z' }),
      decision({
        keyId: 'K1',
        accountId: OTHER,
        decidedAt: '2026-11-21T10:00:00.000Z',
        violations: [{ code: 'NEVER_EXPIRES', severity: 'high', detail: 'd' }],
      }),
      decision({ keyId: 'K2', accountId: OTHER, decidedAt: '2026-11-21T11:00:00.000Z' }),
      decision({ keyId: 'K3', decidedAt: '2026-11-21T12:00:00.000Z' }),
      // A decision about a key the keys table does not hold still counts for its account.
      decision({ keyId: 'K9', accountId: '999999999999', decidedAt: '2026-11-21T12:00:00.000Z' }),
    ];

    // Act
    const data = buildReportData(keys, decisions, NOW);

    // Assess
    expect(data.accounts).toEqual([
      { accountId: ACCOUNT, accountName: null, keys: 2, withViolations: 0, decisions: 1 },
      { accountId: OTHER, accountName: null, keys: 1, withViolations: 1, decisions: 3 },
      { accountId: '999999999999', accountName: null, keys: 0, withViolations: 0, decisions: 1 },
    ]);
  });

  it(`charts at most ${MAX_ACCOUNT_BARS} accounts: those with the most keys, the rest summed as others`, () => {
    // Prepare
    const accounts = Array.from({ length: MAX_ACCOUNT_BARS + 5 }, (_, i) => ({
      accountId: String(100000000000 + i),
      accountName: null,
      keys: i,
      withViolations: 1,
      decisions: 2,
    }));

    // Act
    const charted = chartedAccounts(accounts);

    // Assess
    expect(charted).toHaveLength(MAX_ACCOUNT_BARS);
    expect(charted[0]?.keys).toBe(MAX_ACCOUNT_BARS + 4);
    expect(charted[MAX_ACCOUNT_BARS - 1]).toEqual({
      accountId: 'others (6)',
      accountName: null,
      keys: 0 + 1 + 2 + 3 + 4 + 5,
      withViolations: 6,
      decisions: 12,
    });
    expect(chartedAccounts(accounts.slice(0, 3))).toEqual(accounts.slice(0, 3));
  });

  it('draws the account chart and the account filter only for two or more accounts', () => {
    // Prepare
    const one = buildReportData([known({ keyId: 'K1' })], [], NOW);
    const two = buildReportData([known({ keyId: 'K1' }), known({ keyId: 'K2', accountId: OTHER })], [], NOW);

    // Act
    const single = renderReportHtml(one, { source: 'store .keyguard' });
    const multi = renderReportHtml(two, { source: 'store .keyguard' });

    // Assess
    expect(single).not.toContain('id="chart-accounts"');
    expect(single).not.toContain('id="account-filter"');
    expect(single).not.toContain('count-accounts');
    expect(single).toContain('<button type="button">Account</button>');
    expect(multi).toContain('id="chart-accounts"');
    expect(multi).toContain('<option value="">All 2 accounts</option>');
    expect(multi).toContain(`<option value="1">${OTHER} (1 key)</option>`);
    expect(multi).toContain('data-key="K2" data-account="1"');
    expect(multi).toMatch(/<g class="account" data-label="444455556666" data-keys="1" data-violations="0"/);
  });

  it('escapes an account id that is markup, bidi and escape sequences in the chart, the filter and the table', () => {
    // Prepare: replay takes the account id from the log record, so a crafted archive chooses it.
    const data = buildReportData(
      [known({ keyId: 'K1' }), known({ keyId: 'K2', accountId: HOSTILE })],
      [decision({ keyId: 'K2', accountId: HOSTILE, decidedAt: '2026-11-21T12:00:00.000Z' })],
      NOW,
    );

    // Act
    const html = renderReportHtml(data, { source: 'store .keyguard' });

    // Assess
    expect(html).not.toContain('<svg onload');
    for (const raw of ['\u202e', '\u001b']) expect(html).not.toContain(raw);
    const shown = '&lt;svg onload=alert(3)&gt;\\u202e7777\\x1b[2J';
    expect(html).toContain(`<option value="1">${shown} (1 key)</option>`);
    expect(html).toContain(`data-label="${shown}"`);
    expect(html).toContain(
      `<td class="word" data-sort="${shown}">&lt;svg onload=alert(3)&gt;<span class="ctl">\\u202e</span>7777<span class="ctl">\\x1b</span>[2J</td>`,
    );
  });

  it('keyguard report over an organization trail replayed into one store: per-account numbers and counts', async () => {
    // Prepare
    const { root } = orgArchive();
    const store = join(tempDir(), 'store');
    expect(await runReplay(['org-trail-bucket'], { store, jobs: 1, quiet: true }, captureIO(root).io)).toBe(
      0,
    );
    const out = join(tempDir(), 'org.html');

    // Act
    const r = await report(['--html', out, '--store', store]);

    // Assess
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('(4 keys, 4 existing, 2 with violations, 6 decisions, 3 accounts;');
    const html = readFileSync(out, 'utf8');
    const groups = [
      ...html.matchAll(
        /<g class="account" data-label="(\d+)" data-keys="(\d+)" data-violations="(\d+)" data-decisions="(\d+)"/g,
      ),
    ].map((m) => m.slice(1).join(' '));
    // MANAGEMENT's key is tagged (no violation left), MEMBER_A's two keys are untagged, MEMBER_B's tagged.
    expect(groups).toEqual([`${MANAGEMENT} 1 0 2`, `${MEMBER_A} 2 2 2`, `${MEMBER_B} 1 0 2`]);
    expect(html).toContain('across <span id="count-accounts">3</span> accounts');

    // Act: names from a file (a member's administrator chose MEMBER_A's)
    const names = join(tempDir(), 'names.jsonl');
    writeFileSync(
      names,
      `${JSON.stringify({ accountId: MEMBER_A, accountName: '<script>alert(5)</script>\u202e' })}\n` +
        `${JSON.stringify({ accountId: MEMBER_B, accountName: 'sandbox' })}\n`,
    );
    const named = join(tempDir(), 'named.html');
    const n = await report(['--html', named, '--store', store, '--account-names', names]);
    const badNames = await report(['--html', named, '--store', store, '--account-names', out]);

    // Assess
    expect(n.code).toBe(0);
    const namedHtml = readFileSync(named, 'utf8');
    const shownA = `${MEMBER_A} (&lt;script&gt;alert(5)&lt;/script&gt;\\u202e)`;
    expect(namedHtml).toContain(`data-label="${shownA}"`);
    expect(namedHtml).toContain(`<option value="1">${shownA} (2 keys)</option>`);
    expect(namedHtml).toContain(`<option value="2">${MEMBER_B} (sandbox) (1 key)</option>`);
    expect(namedHtml).toContain(
      `${MEMBER_A} (&lt;script&gt;alert(5)&lt;/script&gt;<span class="ctl">\\u202e</span>)</td>`,
    );
    expect(namedHtml).not.toContain('<script>alert');
    expect(namedHtml).not.toContain('\u202e');
    expect(badNames.code).toBe(2);
    expect(badNames.stderr).toContain('line 1: not JSON');
  });

  it('--account writes a report of those accounts only: nothing of the others is in the page', async () => {
    // Prepare
    const { root } = orgArchive();
    const store = join(tempDir(), 'store');
    expect(await runReplay(['org-trail-bucket'], { store, jobs: 1, quiet: true }, captureIO(root).io)).toBe(
      0,
    );
    const out = join(tempDir(), 'member-b.html');

    // Act
    const r = await report(['--html', out, '--store', store, '--account', MEMBER_B]);
    const bad = await report(['--html', out, '--store', store, '--account', 'all']);

    // Assess
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('(1 keys, 1 existing, 0 with violations, 2 decisions;');
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('ACCAORGMEMBERB000001');
    for (const other of [MANAGEMENT, MEMBER_A, 'ACCAORGMEMBERA000001', 'svc-shared']) {
      expect(html).not.toContain(other);
    }
    expect(html).not.toContain('id="chart-accounts"');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--account: got "all"; allowed: an AWS account id of 12 digits');
  });
});
