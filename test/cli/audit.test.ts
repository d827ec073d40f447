import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import { type EmbeddedDynamo, startEmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { type AuditDeps, registerAuditCommand } from '../../lambda/cli/audit';
import type { CliIO } from '../../lambda/cli/io';
import { runReplay } from '../../lambda/cli/replay';
import { type Decision, VIOLATION_CODES } from '../../lambda/domain/types';
import { startTestDynamo, TABLES } from '../support/dynamo';
import { ocsfProblems } from '../support/ocsf';
import {
  ACCOUNT,
  captureIO,
  createKeyRecord,
  iamRecord,
  jsonLines,
  REPO,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from './helpers';
import { inAccount, MANAGEMENT, MEMBER_A, MEMBER_B, orgArchive } from './org-archive';

/** A fresh program configured like bin/keyguard.ts's, with only `audit` registered. */
async function audit(
  args: string[],
  opts: { cwd?: string; deps?: AuditDeps } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = captureIO(opts.cwd ?? REPO);
  let code = 0;
  const program = new Command()
    .name('keyguard')
    .configureOutput({ writeOut: (s) => out.io.stdout.write(s), writeErr: (s) => out.io.stderr.write(s) })
    .exitOverride();
  registerAuditCommand(
    program,
    out.io as CliIO,
    (n) => {
      code = n;
    },
    opts.deps ? () => opts.deps as AuditDeps : undefined,
  );
  try {
    await program.parseAsync(['node', 'keyguard', 'audit', ...args]);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    code = err.exitCode === 0 ? 0 : 2;
  }
  return { code, stdout: out.stdout(), stderr: out.stderr() };
}

/** Deps that fail the test if a deployed table is touched. */
const NO_AWS: AuditDeps = {
  doc: () => {
    throw new Error('no AWS in this test');
  },
  env: {},
};

/** Parses RFC 4180 text (quoted fields, doubled quotes, CRLF records). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  return rows;
}

let store: string;
/** The decisions as replay printed them (its --json): the ground truth audit reads back. */
let replayed: Decision[];
let replayedLines: string[];

beforeAll(async () => {
  store = join(tempDir(), 'store');
  const out = captureIO(REPO);
  const code = await runReplay(['examples/cloudtrail'], { json: true, store }, out.io);
  expect(out.stderr()).not.toContain('keyguard:');
  expect(code).toBe(0);
  replayedLines = out.stdout().split('\n').filter(Boolean);
  replayed = jsonLines(out.stdout());
});
afterAll(removeTempDirs);

describe('keyguard audit over the embedded store written by replay', () => {
  it('--json prints every decision exactly as replay --json did, sorted by decidedAt', async () => {
    // Act
    const r = await audit(['--store', store, '--json'], { deps: NO_AWS });

    // Assess
    expect(r.code).toBe(0);
    const sorted = [...replayedLines].sort(
      (a, b) =>
        (JSON.parse(a) as Decision).decidedAt.localeCompare((JSON.parse(b) as Decision).decidedAt) ||
        a.localeCompare(b),
    );
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(sorted);
    expect(replayed.length).toBeGreaterThan(5);
    expect(r.stderr).toContain(`Decisions: ${replayed.length} (store ${store})`);
  });

  it('prints a compact table by default: one row per decision, with the action applied/planned', async () => {
    // Act
    const r = await audit(['--store', store], { deps: NO_AWS });

    // Assess
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(
      /^DECIDED AT\s+ACCOUNT\s+KEY ID\s+USER\s+OWNER\s+ACTION\s+VIOLATIONS\s+TRIGGER$/,
    );
    const rows = lines.slice(1, 1 + replayed.length);
    expect(rows).toHaveLength(replayed.length);
    const deactivations = replayed.filter((d) => d.action === 'DEACTIVATE').length;
    expect(rows.filter((l) => l.includes('DEACTIVATE (planned)'))).toHaveLength(deactivations);
    expect(r.stdout).toContain(`Decisions: ${replayed.length}`);
  });

  it('--key lists that key’s decisions only (its account found in the keys table)', async () => {
    // Prepare
    const keyId = replayed[0]?.keyId as string;
    const expected = replayed.filter((d) => d.keyId === keyId).map((d) => d.decisionId);

    // Act
    const r = await audit(['--store', store, '--key', keyId, '--json'], { deps: NO_AWS });
    const withAccount = await audit(['--store', store, '--key', keyId, '--account', ACCOUNT, '--json'], {
      deps: NO_AWS,
    });
    const otherAccount = await audit(
      ['--store', store, '--key', keyId, '--account', '999999999999', '--json'],
      {
        deps: NO_AWS,
      },
    );

    // Assess
    expect(r.code).toBe(0);
    expect(expected.length).toBeGreaterThan(1);
    expect(jsonLines(r.stdout).map((d) => d.decisionId)).toEqual(expected);
    expect(jsonLines(withAccount.stdout).map((d) => d.decisionId)).toEqual(expected);
    expect(jsonLines(otherAccount.stdout)).toEqual([]);
  });

  it('--owner, --code, --action and a time window AND together', async () => {
    // Prepare
    const owner = 'dana@example.com';
    const byOwner = replayed.filter((d) => d.owner.value === owner);
    const neverExpires = replayed.filter((d) => d.violations.some((v) => v.code === 'NEVER_EXPIRES'));
    const day21 = replayed.filter((d) => d.decidedAt.startsWith('2026-11-21'));
    const notifyOnDay22 = replayed.filter(
      (d) => d.action === 'NOTIFY' && d.decidedAt >= '2026-11-22T00:00:00.000Z',
    );

    // Act
    const o = await audit(['--store', store, '--owner', owner, '--json'], { deps: NO_AWS });
    const c = await audit(['--store', store, '--code', 'never_expires', '--json'], { deps: NO_AWS });
    const t = await audit(['--store', store, '--since', '2026-11-21', '--until', '2026-11-22', '--json'], {
      deps: NO_AWS,
    });
    const a = await audit(
      ['--store', store, '--action', 'NOTIFY', '--since', '2026-11-22T00:00:00Z', '--json'],
      {
        deps: NO_AWS,
      },
    );

    // Assess
    expect(byOwner.length).toBeGreaterThan(0);
    expect(jsonLines(o.stdout).map((d) => d.decisionId)).toEqual(byOwner.map((d) => d.decisionId));
    expect(jsonLines(c.stdout).map((d) => d.decisionId)).toEqual(neverExpires.map((d) => d.decisionId));
    expect(day21.length).toBeGreaterThan(0);
    expect(jsonLines(t.stdout).map((d) => d.decisionId)).toEqual(day21.map((d) => d.decisionId));
    expect(notifyOnDay22.length).toBeGreaterThan(0);
    expect(jsonLines(a.stdout).map((d) => d.decisionId)).toEqual(notifyOnDay22.map((d) => d.decisionId));
  });

  it('--limit keeps the most recent decisions', async () => {
    // Act
    const r = await audit(['--store', store, '--limit', '2', '--json'], { deps: NO_AWS });

    // Assess
    expect(jsonLines(r.stdout).map((d) => d.decisionId)).toEqual(replayed.slice(-2).map((d) => d.decisionId));
  });

  it('--csv writes RFC 4180 with a header row and one record per decision', async () => {
    // Act
    const r = await audit(['--store', store, '--csv'], { deps: NO_AWS });

    // Assess
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\r\n')).toBe(true);
    const rows = parseCsv(r.stdout);
    expect(rows[0]?.slice(0, 5)).toEqual(['decided_at', 'decision_id', 'account_id', 'key_id', 'user_name']);
    expect(rows).toHaveLength(replayed.length + 1);
    const header = rows[0] as string[];
    const first = Object.fromEntries(header.map((h, i) => [h, rows[1]?.[i]]));
    const d = replayed[0] as Decision;
    expect(first).toMatchObject({
      decision_id: d.decisionId,
      key_id: d.keyId,
      action: d.action,
      violations: d.violations.map((v) => v.code).join(';'),
    });
  });

  it('--format ocsf prints one OCSF 1.5.0 Detection Finding per decision, each valid against the pinned schema', async () => {
    // Act
    const r = await audit(['--store', store, '--format', 'ocsf'], { deps: NO_AWS });
    const asJson = await audit(['--store', store, '--format', 'json'], { deps: NO_AWS });

    // Assess: every decision of the quick start's replay (each action and trigger it makes) maps to a valid event.
    expect(r.code).toBe(0);
    const events = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(events).toHaveLength(replayed.length);
    for (const e of events) expect(ocsfProblems(e)).toEqual([]);
    expect(new Set(replayed.map((d) => d.action)).size).toBeGreaterThan(1);
    expect(events.map((e) => e.unmapped.keyguard)).toEqual(jsonLines(asJson.stdout));
    expect(events[0]).toMatchObject({ class_uid: 2004, metadata: { version: '1.5.0' } });
    expect(r.stderr).toContain(`Decisions: ${replayed.length} (store ${store})`);
    // --format json is --json; table and csv are the other names.
    const json = await audit(['--store', store, '--json'], { deps: NO_AWS });
    expect(asJson.stdout).toBe(json.stdout);
  });

  it('refuses an unknown --format and a --format beside --json or --csv (exit 2)', async () => {
    // Act
    const unknown = await audit(['--store', store, '--format', 'asff'], { deps: NO_AWS });
    const both = await audit(['--store', store, '--format', 'ocsf', '--json'], { deps: NO_AWS });

    // Assess
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--format: got "asff"; allowed: table, json, csv, ocsf');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--format and --json: choose one output format');
    expect(unknown.stdout).toBe('');
  });

  it('refuses an unknown violation code with exit 2 and lists the allowed ones', async () => {
    // Act
    const r = await audit(['--store', store, '--code', 'NOPE'], { deps: NO_AWS });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('--code: unknown violation code "NOPE"');
    for (const code of VIOLATION_CODES) expect(r.stderr).toContain(code);
  });

  it.each([
    [['--since', '2026-13-01'], '--since'],
    [['--until', '2026-11-20T10:00:00'], '--until'],
    [['--since', '2026-11-22', '--until', '2026-11-21'], 'is not before --until'],
    [['--action', 'PAUSE'], '--action: unknown action'],
    [['--limit', '0'], '--limit'],
    [['--json', '--csv'], 'choose one'],
    [['--account', '123'], '--account: got "123"; allowed: an AWS account id of 12 digits'],
    [['--account', '111122223333', '--account', 'o-a1b2c3d4e5'], '--account: got "o-a1b2c3d4e5"'],
  ])('refuses bad usage %j with exit 2', async (args, message) => {
    // Act
    const r = await audit(['--store', store, ...args], { deps: NO_AWS });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('says there is no audit store (exit 2) and creates nothing', async () => {
    // Prepare
    const cwd = tempDir();
    const empty = join(cwd, 'empty');
    mkdirSync(empty);

    // Act
    const missing = await audit([], { cwd, deps: NO_AWS });
    const notAStore = await audit(['--store', 'empty'], { cwd, deps: NO_AWS });

    // Assess
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(
      'no audit store at .keyguard: run keyguard replay first, or use --table',
    );
    expect(notAStore.code).toBe(2);
    expect(notAStore.stderr).toContain('no audit store at empty');
    expect(existsSync(join(cwd, '.keyguard'))).toBe(false);
  });

  it('says there is no audit store when the directory holds a database without the audit tables', async () => {
    // Prepare
    const cwd = tempDir();
    const db = await startEmbeddedDynamo({ path: join(cwd, 'other') });
    await db.close();

    // Act
    const r = await audit(['--store', 'other'], { cwd, deps: NO_AWS });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('keyguard: audit: no audit store at other: run keyguard replay first');
  });

  it('help names the source, that a filterless query scans the table, exit codes and examples', async () => {
    // Act
    const r = await audit(['--help']);

    // Assess
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--table [name]');
    expect(r.stdout).toContain('whole decisions table is scanned');
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toContain('$ keyguard audit --owner');
  });
});

describe('keyguard audit against a deployed decisions table (dynalite standing in for DynamoDB)', () => {
  let db: EmbeddedDynamo;
  let deps: AuditDeps;
  const KEY = 'ACCAEXAMPLEAUDITCSV01';

  beforeAll(async () => {
    db = await startTestDynamo();
    deps = { doc: () => db.doc, env: {} };
    const log = new DynamoAuditLog(db.doc, TABLES);
    const base = replayed[1] as Decision;
    await log.recordDecision({
      ...base,
      decisionId: '2026-11-24T08:00:00.000Z/sweep/s-1',
      decidedAt: '2026-11-24T08:00:00.000Z',
      keyId: KEY,
      trigger: { kind: 'sweep', eventId: 's-1' },
      // An owner tag value a spreadsheet would run as a formula, with a comma and quotes.
      owner: { value: '=HYPERLINK("x"),team', source: 'tag' },
    });
    await log.putKnownKey({
      accountId: base.accountId,
      keyId: KEY,
      userName: base.userName,
      status: 'Active',
      createdAt: null,
      expiresAt: null,
      creator: null,
      owner: null,
      lastDecisionId: 'x',
      lastDecisionAt: '2026-11-24T08:00:00.000Z',
    });
  });
  afterAll(async () => db.close());

  it('--table reads the named table; CSV fields are quoted and formula-guarded', async () => {
    // Act
    const r = await audit(['--table', TABLES.decisionsTable, '--csv'], { deps });

    // Assess
    expect(r.code).toBe(0);
    const rows = parseCsv(r.stdout);
    expect(rows).toHaveLength(2);
    const header = rows[0] as string[];
    expect(rows[1]?.[header.indexOf('owner')]).toBe(`'=HYPERLINK("x"),team`);
    expect(rows[1]?.[header.indexOf('trigger_kind')]).toBe('sweep');
    expect(r.stderr).toContain(`table ${TABLES.decisionsTable}`);
  });

  it('takes the table from KEYGUARD_DECISIONS_TABLE, unless --store is given', async () => {
    // Act
    const fromEnv = await audit(['--json'], {
      deps: { ...deps, env: { KEYGUARD_DECISIONS_TABLE: TABLES.decisionsTable } },
    });
    const storeWins = await audit(['--store', store, '--json'], {
      deps: { ...deps, env: { KEYGUARD_DECISIONS_TABLE: TABLES.decisionsTable } },
    });

    // Assess
    expect(jsonLines(fromEnv.stdout).map((d) => d.keyId)).toEqual([KEY]);
    expect(jsonLines(storeWins.stdout)).toHaveLength(replayed.length);
  });

  it('--key needs the key’s account: --account, or the keys table to look it up', async () => {
    // Act
    const noWay = await audit(['--table', TABLES.decisionsTable, '--key', KEY], { deps });
    const viaKeys = await audit(
      ['--table', TABLES.decisionsTable, '--keys-table', TABLES.keysTable, '--key', KEY, '--json'],
      { deps },
    );

    // Assess
    expect(noWay.code).toBe(2);
    expect(noWay.stderr).toContain('--account');
    expect(viaKeys.code).toBe(0);
    expect(jsonLines(viaKeys.stdout).map((d) => d.keyId)).toEqual([KEY]);
  });

  it('refuses --store with --table, and reports a missing table as exit 2', async () => {
    // Act
    const both = await audit(['--store', store, '--table', TABLES.decisionsTable], { deps });
    const missing = await audit(['--table', 'no-such-table'], { deps });

    // Assess
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('choose one source');
    expect(missing.code).toBe(2);
    // One line naming service, operation, region and profile (lambda/cli/aws-errors.ts), and what to do.
    expect(missing.stderr).toMatch(
      /^keyguard: audit: DynamoDB Scan \(region [a-z0-9-]+, default credential chain\): table no-such-table does not exist in [a-z0-9-]+ \(ResourceNotFoundException: [^\n]*\)\. Check the name[^\n]*--region\.\n$/,
    );
  });
});

describe('keyguard audit --account over an organization trail replayed into one store', () => {
  let orgStore: string;
  let all: Decision[];

  beforeAll(async () => {
    const { root } = orgArchive();
    orgStore = join(tempDir(), 'store');
    const out = captureIO(root);
    const code = await runReplay(['org-trail-bucket'], { json: true, store: orgStore, jobs: 1 }, out.io);
    expect(code).toBe(0);
    all = jsonLines(out.stdout());
  });

  it('lists only the decisions about keys of that account', async () => {
    // Act
    const r = await audit(['--store', orgStore, '--account', MEMBER_A, '--json'], { deps: NO_AWS });

    // Assess
    expect(r.code).toBe(0);
    const got = jsonLines(r.stdout);
    expect(got.map((d) => [d.accountId, d.keyId])).toEqual([
      [MEMBER_A, 'ACCAORGMEMBERA000001'],
      [MEMBER_A, 'ACCAORGMEMBERA000002'],
    ]);
    expect(r.stderr).toContain('Decisions: 2 (');
    expect(r.stderr).not.toContain('Accounts:');
  });

  it('takes --account several times (any of them) and totals the decisions per account', async () => {
    // Act
    const r = await audit(['--store', orgStore, '--account', MEMBER_B, '--account', MEMBER_A], {
      deps: NO_AWS,
    });
    const everything = await audit(['--store', orgStore], { deps: NO_AWS });

    // Assess
    expect(r.code).toBe(0);
    const rows = r.stdout.split('\n').slice(1, 5);
    expect(rows.map((l) => l.split(/\s{2,}/)[1])).toEqual([MEMBER_A, MEMBER_A, MEMBER_B, MEMBER_B]);
    expect(r.stdout).toContain(`Decisions: 4 (store ${orgStore})`);
    expect(r.stdout).toContain(`Accounts: 2 (${MEMBER_A}: 2, ${MEMBER_B}: 2)`);
    expect(everything.stdout).toContain(`Accounts: 3 (${MANAGEMENT}: 2, ${MEMBER_A}: 2, ${MEMBER_B}: 2)`);
    expect(all).toHaveLength(6);
  });

  it('with --key, reads the key in the named accounts only', async () => {
    // Act
    const right = await audit(
      ['--store', orgStore, '--key', 'ACCAORGMEMBERB000001', '--account', MEMBER_B, '--json'],
      {
        deps: NO_AWS,
      },
    );
    const wrong = await audit(
      ['--store', orgStore, '--key', 'ACCAORGMEMBERB000001', '--account', MEMBER_A, '--json'],
      {
        deps: NO_AWS,
      },
    );
    const lookedUp = await audit(['--store', orgStore, '--key', 'ACCAORGMEMBERB000001', '--json'], {
      deps: NO_AWS,
    });

    // Assess
    expect(jsonLines(right.stdout).map((d) => d.trigger.eventName)).toEqual([
      'CreateServiceSpecificCredential',
      'TagUser',
    ]);
    expect(jsonLines(wrong.stdout)).toEqual([]);
    expect(jsonLines(lookedUp.stdout).map((d) => d.decisionId)).toEqual(
      jsonLines(right.stdout).map((d) => d.decisionId),
    );
  });

  it('--account-names shows each account’s name (chosen by its administrator) escaped; JSON is unchanged', async () => {
    // Prepare
    const cwd = tempDir();
    writeFile(
      join(cwd, 'names.json'),
      JSON.stringify({ [MEMBER_A]: 'prod\u202e\u001b[2J<b>', [MEMBER_B]: 'sandbox' }),
    );

    // Act
    const table = await audit(['--store', orgStore, '--account-names', 'names.json'], { cwd, deps: NO_AWS });
    const json = await audit(['--store', orgStore, '--account-names', 'names.json', '--json'], {
      cwd,
      deps: NO_AWS,
    });
    const bad = await audit(['--store', orgStore, '--account-names', 'missing.json'], { cwd, deps: NO_AWS });

    // Assess
    expect(table.code).toBe(0);
    const shownA = `${MEMBER_A} (prod\\u202e\\x1b[2J<b>)`;
    expect(table.stdout.split('\n').filter((l) => l.includes(`  ${shownA}  ACCA`))).toHaveLength(2);
    expect(table.stdout).toContain(`${MEMBER_B} (sandbox)`);
    expect(table.stdout).toContain(`Accounts: 3 (${MANAGEMENT}: 2, ${shownA}: 2, ${MEMBER_B} (sandbox): 2)`);
    for (const raw of ['\u202e', '\u001b']) expect(table.stdout).not.toContain(raw);
    expect(json.stdout).not.toContain('prod');
    expect(jsonLines(json.stdout)).toEqual(
      all.slice().sort((a, b) => a.decidedAt.localeCompare(b.decidedAt)),
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--account-names missing.json: cannot read');
  });

  it('names a hostile --account value without letting it drive the terminal', async () => {
    // Act
    const r = await audit(['--store', orgStore, '--account', '\u202e333322221111\u001b[2J'], {
      deps: NO_AWS,
    });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--account: got "\\u202e333322221111\\u001b[2J"');
    expect(r.stderr).not.toContain('\u202e');
    expect(r.stderr).not.toContain('\u001b');
  });

  it('shows an account id an archive made up (any text) escaped in the table and the totals', async () => {
    // Prepare: replay trusts recipientAccountId as text; a crafted file can put anything there.
    const root = tempDir();
    const hostile = '\u202e999988887777\u001b]0;owned\u0007';
    writeFile(
      join(root, 'crafted.json'),
      JSON.stringify({
        Records: [
          inAccount(
            createKeyRecord('2026-11-05T10:00:00Z', 'svc-x', 'ACCAHOSTILEACCOUNT01', { ageDays: 5 }),
            hostile,
          ),
          createKeyRecord('2026-11-05T11:00:00Z', 'svc-y', 'ACCAPLAINACCOUNT0001', { ageDays: 5 }),
        ],
      }),
    );
    const hostileStore = join(tempDir(), 'store');
    expect(await runReplay(['crafted.json'], { json: true, store: hostileStore }, captureIO(root).io)).toBe(
      0,
    );

    // Act
    const r = await audit(['--store', hostileStore], { deps: NO_AWS });

    // Assess
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('\\u202e999988887777\\x1b]0;owned\\x07');
    expect(r.stdout).toContain(`Accounts: 2 (${ACCOUNT}: 1, \\u202e999988887777\\x1b]0;owned\\x07: 1)`);
    for (const raw of ['\u202e', '\u001b', '\u0007']) expect(r.stdout).not.toContain(raw);
  });
});

describe('keyguard audit --fail-on', () => {
  const KEY_DELETED = 'ACCAFAILONKEYDELETED1';
  const KEY_CLEAN = 'ACCAFAILONKEYCLEAN001';
  const KEY_LOW = 'ACCAFAILONKEYLOW00001';
  let failStore: string;

  beforeAll(async () => {
    // svc-never: a never-expiring key (NEVER_EXPIRES, high), deleted on 2026-11-22; svc-clean: a 60-day key, fully
    // tagged (no violation); svc-low: a 60-day key whose user has no purpose tag (MISSING_PURPOSE, low).
    const dir = tempDir();
    const full = { owner: 'team@example.com', purpose: 'tests', 'review-cadence': '90d' };
    const records = [
      tagUserRecord('2026-11-20T08:00:00Z', 'svc-never', full),
      tagUserRecord('2026-11-20T08:00:01Z', 'svc-clean', full),
      tagUserRecord('2026-11-20T08:00:02Z', 'svc-low', {
        owner: 'team@example.com',
        'review-cadence': '90d',
      }),
      createKeyRecord('2026-11-20T09:00:00Z', 'svc-never', KEY_DELETED),
      createKeyRecord('2026-11-20T09:00:01Z', 'svc-clean', KEY_CLEAN, { ageDays: 60 }),
      createKeyRecord('2026-11-20T09:00:02Z', 'svc-low', KEY_LOW, { ageDays: 60 }),
      iamRecord('DeleteServiceSpecificCredential', '2026-11-22T10:00:00Z', {
        userName: 'svc-never',
        serviceSpecificCredentialId: KEY_DELETED,
      }),
    ];
    writeFile(join(dir, 'trail.json'), JSON.stringify({ Records: records }));
    failStore = join(dir, 'store');
    const out = captureIO(dir);
    expect(
      await runReplay([join(dir, 'trail.json')], { json: true, store: failStore, jobs: 1 }, out.io),
    ).toBe(0);
  });

  const run = (...args: string[]) => audit(['--store', failStore, '--json', ...args], { deps: NO_AWS });

  it('exits 1 when a key’s latest decision in the window is at or above the threshold, 0 below it', async () => {
    // Act: the window ends before the never-expiring key was deleted
    const at = await run('--until', '2026-11-21', '--fail-on', 'high');
    const below = await run('--until', '2026-11-21', '--fail-on', 'critical');

    // Assess
    expect(jsonLines(at.stdout).find((d) => d.keyId === KEY_DELETED)?.violations).toEqual([
      expect.objectContaining({ code: 'NEVER_EXPIRES', severity: 'high' }),
    ]);
    expect(at.code).toBe(1);
    expect(at.stderr).toContain(
      "keyguard: --fail-on high: 1 key(s) with a current violation of severity high or above (each key's latest decision in the window)\n",
    );
    expect(below.code).toBe(0);
    expect(below.stderr).not.toContain('--fail-on');
  });

  it('a key deleted later in the window no longer counts, even when --code shows only its earlier decision', async () => {
    // Act
    const all = await run('--fail-on', 'high');
    const byCode = await run('--code', 'NEVER_EXPIRES', '--fail-on', 'high');
    const low = await run('--fail-on', 'low');

    // Assess
    expect(all.code).toBe(0);
    expect(jsonLines(byCode.stdout).map((d) => d.keyId)).toEqual([KEY_DELETED]);
    expect(byCode.code).toBe(0);
    expect(low.code).toBe(1);
    expect(low.stderr).toContain('--fail-on low: 1 key(s)');
  });

  it('exits 0 when the keys selected have no violation; without --fail-on violations leave it 0', async () => {
    // Act
    const clean = await run('--key', KEY_CLEAN, '--account', ACCOUNT, '--fail-on', 'low');
    const absent = await run('--until', '2026-11-21');

    // Assess
    expect(jsonLines(clean.stdout).flatMap((d) => d.violations)).toEqual([]);
    expect(jsonLines(clean.stdout).length).toBeGreaterThan(0);
    expect(clean.code).toBe(0);
    expect(jsonLines(absent.stdout).some((d) => d.violations.length > 0)).toBe(true);
    expect(absent.code).toBe(0);
  });

  it('exits 2 on a bad value, naming the flag and the value', async () => {
    // Act
    const r = await run('--fail-on', 'urgent');

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('keyguard: --fail-on: got "urgent"; allowed: low, medium, high, critical\n');
    expect(r.stdout).toBe('');
  });
});

describe('keyguard audit --until means what replay --until means: the end of the window, exclusive', () => {
  it('a date is midnight UTC at its start, excluded: --since D --until D+1 is the whole of D', async () => {
    // Prepare
    const before21 = replayed.filter((d) => d.decidedAt < '2026-11-21T00:00:00.000Z');
    const day21 = replayed.filter((d) => d.decidedAt.startsWith('2026-11-21'));

    // Act
    const until = await audit(['--store', store, '--until', '2026-11-21', '--json'], { deps: NO_AWS });
    const day = await audit(['--store', store, '--since', '2026-11-21', '--until', '2026-11-22', '--json'], {
      deps: NO_AWS,
    });

    // Assess
    expect(before21.length).toBeGreaterThan(0);
    expect(jsonLines(until.stdout).map((d) => d.decisionId)).toEqual(before21.map((d) => d.decisionId));
    expect(day21.length).toBeGreaterThan(0);
    expect(jsonLines(day.stdout).map((d) => d.decisionId)).toEqual(day21.map((d) => d.decisionId));
  });

  it('an instant is excluded: a decision made exactly at --until is left out', async () => {
    // Prepare
    const last = replayed.at(-1) as Decision;
    const earlier = replayed.filter((d) => d.decidedAt < last.decidedAt);

    // Act
    const r = await audit(['--store', store, '--until', last.decidedAt, '--json'], { deps: NO_AWS });

    // Assess
    expect(jsonLines(r.stdout).map((d) => d.decisionId)).toEqual(earlier.map((d) => d.decisionId));
  });

  it('refuses an empty window (--since not before --until) with exit 2, as replay does', async () => {
    // Act
    const r = await audit(['--store', store, '--since', '2026-11-21', '--until', '2026-11-21'], {
      deps: NO_AWS,
    });

    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'keyguard: --since "2026-11-21" is not before --until "2026-11-21": the window is empty\n',
    );
  });
});
