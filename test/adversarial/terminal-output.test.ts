import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListServiceSpecificCredentialsCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { CommanderError } from 'commander';
import { buildProgram } from '../../bin/keyguard';
import type { ApprovalsDeps } from '../../lambda/cli/approvals';
import type { InventoryDeps } from '../../lambda/cli/inventory';
import {
  ACCOUNT,
  captureIO,
  createKeyRecord,
  REPO,
  removeTempDirs,
  tagUserRecord,
  tempDir,
  writeFile,
} from '../cli/helpers';
import { fakeLongTermKey } from '../support/secrets';

/**
 * Issue 10, item 5: text output is read on a terminal. File names, user names and tag values come from other
 * people; printed raw, a newline forges a line (a finding, a decision), `ESC [2J` clears the screen, an OSC
 * retitles the window, U+202E makes a name read as another. These run the real CLI (bin/keyguard.js, a child
 * process with a time limit) on such inputs and read its output as a terminal would get it; inventory, which
 * needs AWS, runs in-process through the program with IAM mocked.
 */

const ESC = '\x1b';
const CLEAR = `${ESC}[2J${ESC}[H`;
const OSC_TITLE = `${ESC}]0;pwned\x07`;
const RLO = '\u202e';
const C1_CSI = '\x9b2J';
/** A finding line as `keyguard scan` prints one, to be smuggled in after a newline. */
const FORGED_FINDING =
  '.env:1:1: LONG_TERM long-term key of IAM user admin in account 111122223333 ABSK…AAAA sha256:0000000000000000';
/** A decision row as `keyguard replay` prints one. */
const FORGED_ROW = '2026-11-20 09:00:00Z  Create key  admin  ACCAFORGEDROW00000001  Active  ALLOW  -';

/** Anything that drives a terminal or reorders text: C0 (but the line feed and tab), DEL, C1, bidi controls. */
const RAW_CONTROL = /(?![\n\t])[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

function cli(args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'keyguard.js'), ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, AWS_REGION: 'us-east-1' },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.length > 0);
}

afterAll(removeTempDirs);

describe('keyguard scan: hostile file names', () => {
  let dir: string;
  let names: string[];
  let text: ReturnType<typeof cli>;
  let json: ReturnType<typeof cli>;

  beforeAll(() => {
    dir = tempDir();
    names = [
      `notes\n${FORGED_FINDING}`,
      `clear${CLEAR}${OSC_TITLE}.env`,
      `invoice-${RLO}fdp.exe`,
      `c1-${C1_CSI}.txt`,
    ];
    for (const [i, n] of names.entries()) writeFile(join(dir, n), `KEY=${fakeLongTermKey(`term-${i}`)}\n`);
    text = cli(['scan', '.'], dir);
    json = cli(['scan', '--format', 'json', '.'], dir);
  });

  it('prints one line per finding, the names escaped: no forged line, nothing for the terminal to obey', () => {
    // Assess
    expect(text.status).toBe(1);
    expect(text.stdout).not.toMatch(RAW_CONTROL);
    expect(text.stderr).not.toMatch(RAW_CONTROL);
    const out = lines(text.stdout);
    expect(out).toHaveLength(4);
    expect(out.filter((l) => l.startsWith('.env:1:1'))).toEqual([]);
    expect(out).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^notes\\n\.env:1:1: LONG_TERM long-term key of IAM user admin .*:1:5: LONG_TERM /,
        ),
        expect.stringMatching(/^clear\\x1b\[2J\\x1b\[H\\x1b\]0;pwned\\x07\.env:1:5: LONG_TERM /),
        expect.stringMatching(/^invoice-\\u202efdp\.exe:1:5: LONG_TERM /),
        expect.stringMatching(/^c1-\\x9b2J\.txt:1:5: LONG_TERM /),
      ]),
    );
  });

  it('keeps the exact names in --format json (the same JSON values once parsed), still terminal-safe', () => {
    // Assess
    expect(json.status).toBe(1);
    expect(json.stdout).not.toMatch(RAW_CONTROL);
    const paths = lines(json.stdout).map((l) => (JSON.parse(l) as { path: string }).path);
    expect(paths.sort()).toEqual([...names].sort());
  });

  it('shows a hostile path in a problem line on stderr as an escape, on one line', () => {
    // Act
    const r = cli(['scan', `missing\n${FORGED_FINDING}${CLEAR}`], dir);

    // Assess
    expect(r.status).toBe(2);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(lines(r.stderr)[0]).toMatch(/^keyguard: missing\\n\.env:1:1: .*\\x1b\[2J\\x1b\[H: /);
    expect(lines(r.stderr).filter((l) => l.startsWith('.env'))).toEqual([]);
  });
});

describe('keyguard replay, audit and report: hostile user names and tag values', () => {
  const user = `bob\n${FORGED_ROW}`;
  const owner = `team${CLEAR}${OSC_TITLE}@${RLO}moc.elpmaxe${C1_CSI}`;
  let dir: string;
  let store: string;
  let replay: ReturnType<typeof cli>;

  beforeAll(() => {
    dir = tempDir();
    store = join(dir, 'store');
    const records = [
      tagUserRecord('2026-11-20T08:00:00Z', user, {
        owner,
        purpose: `tests${RLO}`,
        'review-cadence': '90d',
      }),
      createKeyRecord('2026-11-20T09:00:00Z', user, 'ACCAEXAMPLEHOSTILE001', { ageDays: 30 }),
    ];
    writeFile(join(dir, 'in', 'trail.json'), JSON.stringify({ Records: records }));
    writeFile(join(dir, 'in', `broken\n${FORGED_ROW}${CLEAR}.json`), '{"Records": [oops');
    replay = cli(['replay', '--store', store, 'in'], dir);
  });

  it('replay: the decision row keeps the user and owner on its line, escaped; problem lines too', () => {
    // Assess
    expect(replay.status).toBe(2);
    expect(replay.stdout).not.toMatch(RAW_CONTROL);
    expect(replay.stderr).not.toMatch(RAW_CONTROL);
    const out = lines(replay.stdout);
    expect(out.filter((l) => l.startsWith('2026-11-20 09:00:00Z  Create key  admin'))).toEqual([]);
    const row = out.find((l) => l.includes('ACCAEXAMPLEHOSTILE001'));
    expect(row).toContain(`bob\\n${FORGED_ROW}`);
    expect(row).toContain('team\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07@\\u202emoc.elpmaxe\\x9b2J (tag)');
    expect(lines(replay.stderr)).toContainEqual(
      expect.stringMatching(
        /^keyguard: in\/broken\\n2026-11-20 09:00:00Z {2}Create key .*\\x1b\[2J\\x1b\[H\.json: /,
      ),
    );
  });

  it('replay --json keeps the exact values (same JSON once parsed) and stays terminal-safe', () => {
    // Act
    const r = cli(['replay', '--json', '--store', join(dir, 'store-json'), 'in/trail.json'], dir);

    // Assess
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const decisions = lines(r.stdout).map(
      (l) => JSON.parse(l) as { userName: string; owner: { value: string } },
    );
    expect(decisions.map((d) => [d.userName, d.owner.value])).toEqual([[user, owner]]);
  });

  it('audit: the table shows the values escaped, one line per decision', () => {
    // Act
    const r = cli(['audit', '--store', store], dir);

    // Assess
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const out = lines(r.stdout);
    expect(out.filter((l) => l.startsWith('2026-11-20 09:00:00Z  Create key  admin'))).toEqual([]);
    const row = out.find((l) => l.includes('ACCAEXAMPLEHOSTILE001'));
    expect(row).toContain(`bob\\n${FORGED_ROW}`);
    expect(row).toContain('team\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07@\\u202emoc.elpmaxe\\x9b2J');
  });

  it('audit --csv: control and bidi characters escaped, line breaks kept quoted (RFC 4180)', () => {
    // Act
    const r = cli(['audit', '--csv', '--store', store], dir);

    // Assess
    expect(r.status).toBe(0);
    expect(r.stdout.replace(/\r\n/g, '\n')).not.toMatch(RAW_CONTROL);
    expect(r.stdout).toContain(`"bob\n${FORGED_ROW}"`);
    expect(r.stdout).toContain(',team\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07@\\u202emoc.elpmaxe\\x9b2J,');
  });

  it('report --html: bidi and control characters shown as highlighted escapes, never raw', () => {
    // Act
    const r = cli(['report', '--store', store, '--html', 'report.html'], dir);

    // Assess
    expect(r.status).toBe(0);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).not.toMatch(RAW_CONTROL);
    expect(html).toContain(
      '>team<span class="ctl">\\x1b</span>[2J<span class="ctl">\\x1b</span>[H<span class="ctl">\\x1b</span>]0;pwned' +
        '<span class="ctl">\\x07</span>@<span class="ctl">\\u202e</span>moc.elpmaxe<span class="ctl">\\x9b</span>2J</td>',
    );
    expect(html).toContain(`<td class="free">bob<span class="ctl">\\n</span>${FORGED_ROW}</td>`);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });
});

describe('keyguard inventory and usage errors: hostile values', () => {
  const iam = mockClient(IAMClient);
  const sts = mockClient(STSClient);
  afterAll(() => {
    iam.restore();
    sts.restore();
  });

  async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out = captureIO(REPO);
    let code = 0;
    const inventoryDeps = (): InventoryDeps => ({
      iam: new IAMClient({ region: 'us-east-1' }),
      sts: new STSClient({ region: 'us-east-1' }),
      // No table is named: the document client is never used.
      doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
      env: {},
      now: () => new Date('2026-11-20T12:00:00Z'),
      snapshot: { sleep: async () => undefined },
    });
    // The raw program, without the terminal guard of main(): what is asserted is the printers' own work.
    const program = buildProgram(
      out.io,
      (c) => {
        code = c;
      },
      () => ({}) as ApprovalsDeps,
      inventoryDeps,
    );
    try {
      await program.parseAsync(['node', 'keyguard', ...args]);
    } catch (err) {
      if (!(err instanceof CommanderError)) throw err;
      code = err.exitCode === 0 ? 0 : 2;
    }
    return { code, stdout: out.stdout(), stderr: out.stderr() };
  }

  it('inventory: a user name and owner tag with a newline, escapes and U+202E stay in their cells', async () => {
    // Prepare
    const user = `svc${RLO}tab\n${FORGED_ROW}`;
    const owner = `ops${CLEAR}${OSC_TITLE}@example.com`;
    sts.on(GetCallerIdentityCommand).resolves({
      Account: ACCOUNT,
      Arn: `arn:aws:iam::${ACCOUNT}:user/auditor`,
      UserId: 'AIDAAUDITOR',
    });
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [
        {
          UserName: user,
          Status: 'Active',
          CreateDate: new Date('2026-11-01T00:00:00Z'),
          ExpirationDate: new Date('2026-12-01T00:00:00Z'),
          ServiceSpecificCredentialId: 'ACCAEXAMPLEHOSTILE002',
          ServiceName: 'bedrock.amazonaws.com',
        },
      ],
      IsTruncated: false,
    });
    iam.on(GetAccountAuthorizationDetailsCommand).resolves({
      UserDetailList: [
        {
          UserName: user,
          UserId: 'AIDAHOSTILE',
          Arn: `arn:aws:iam::${ACCOUNT}:user/hostile`,
          Path: '/',
          CreateDate: new Date('2026-01-01T00:00:00Z'),
          Tags: [
            { Key: 'owner', Value: owner },
            { Key: 'purpose', Value: 'p' },
            { Key: 'review-cadence', Value: '90d' },
          ],
        },
      ],
      GroupDetailList: [],
      Policies: [],
      IsTruncated: false,
    });
    iam.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
    iam.on(GetCredentialReportCommand).resolves({
      Content: Buffer.from(
        'user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,' +
          'password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,' +
          'access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,' +
          'access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,' +
          'access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,' +
          'cert_2_active,cert_2_last_rotated\n',
      ),
      ReportFormat: 'text/csv',
    });

    // Act
    const r = await run(['inventory']);
    const csv = await run(['inventory', '--csv']);

    // Assess
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const out = lines(r.stdout);
    expect(out.filter((l) => l.startsWith('2026-11-20 09:00:00Z'))).toEqual([]);
    const row = out.find((l) => l.includes('ACCAEXAMPLEHOSTILE002'));
    expect(row).toContain(`svc\\u202etab\\n${FORGED_ROW}`);
    expect(row).toContain('ops\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07@example.com (tag)');
    expect(csv.code).toBe(0);
    expect(csv.stdout.replace(/\r\n/g, '\n')).not.toMatch(RAW_CONTROL);
    expect(csv.stdout).toContain(`"svc\\u202etab\n${FORGED_ROW}"`);
  });

  it('a usage error quoting a hostile argument shows it escaped (commander and the commands)', async () => {
    // Act
    const unknown = cli(['scan', `--x${CLEAR}${RLO}`], REPO);
    const format = await run(['scan', '--format', `text${CLEAR}`, '.']);
    const kind = await run(['policy', '--kind', `iam${RLO}\n${FORGED_ROW}`]);
    const typo = await run(['scna']);

    // Assess
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).not.toMatch(RAW_CONTROL);
    expect(unknown.stderr).toContain("error: unknown option '--x\\x1b[2J\\x1b[H\\u202e'");
    expect(format.code).toBe(2);
    expect(format.stderr).not.toMatch(RAW_CONTROL);
    expect(format.stderr).toContain('text\\x1b[2J\\x1b[H');
    expect(kind.code).toBe(2);
    expect(kind.stderr).not.toMatch(RAW_CONTROL);
    expect(lines(kind.stderr)).toEqual([
      expect.stringMatching(
        /^error: option '-k, --kind <kind>' argument 'iam\\u202e\\n2026-11-20 .* is invalid\./,
      ),
      '(run with --help for usage)',
    ]);
    // commander's own suggestion line is kept.
    expect(lines(typo.stderr)).toEqual([
      "error: unknown command 'scna'",
      '(Did you mean scan?)',
      '(run with --help for usage)',
    ]);
  });
});

describe('the CDK app (bin/app.ts): a config error quoting a hostile value', () => {
  it('shows a bidi override in the echoed value as an escape, the message lines kept', () => {
    // Prepare
    const dir = tempDir();
    writeFile(join(dir, 'keyguard.config.json'), JSON.stringify({ mode: `enf${RLO}orce${CLEAR}` }));

    // Act
    const r = spawnSync(join(REPO, 'node_modules', '.bin', 'tsx'), [join(REPO, 'bin', 'app.ts')], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
    });

    // Assess
    expect(r.status).toBe(1);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(lines(r.stderr)).toEqual([
      'BedrockKeyGuard: invalid configuration',
      expect.stringContaining('keyguard.config.json: mode: got "enf\\u202eorce\\u001b[2J\\u001b[H"'),
    ]);
  });
});
