import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  type ServiceSpecificCredentialMetadata,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { buildProgram } from '../../bin/keyguard';
import { DynamoApprovalsStore } from '../../lambda/adapters/approvals-store';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import { type EmbeddedDynamo, ensureTables } from '../../lambda/adapters/embedded-dynamodb';
import { DynamoUsageStore, usageTableDefinition } from '../../lambda/adapters/usage-store';
import { CSV_HEADER, csvField, type InventoryDeps, runInventory } from '../../lambda/cli/inventory';
import { EXIT_INPUT, EXIT_OK } from '../../lambda/cli/io';
import type { KnownKey } from '../../lambda/domain/pipeline';
import { EMPTY_HISTORY } from '../../lambda/domain/types';
import type { UsageAggregate } from '../../lambda/domain/usage-types';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { fakeLongTermKey } from '../support/secrets';
import { captureIO, removeTempDirs, tempDir, writeFile } from './helpers';

const iam = mockClient(IAMClient);
const sts = mockClient(STSClient);
const ACCOUNT = '111122223333';
const NOW = new Date('2026-11-20T12:00:00Z');

let db: EmbeddedDynamo;
beforeAll(async () => {
  db = await startTestDynamo();
});
afterAll(async () => {
  await db.close();
  removeTempDirs();
});

function key(id: string, user: string, over: Partial<ServiceSpecificCredentialMetadata> = {}) {
  return {
    UserName: user,
    Status: 'Active' as const,
    CreateDate: new Date('2026-11-01T00:00:00Z'),
    ServiceSpecificCredentialId: id,
    ServiceName: 'bedrock.amazonaws.com',
    ...over,
  };
}

const FULL_TAGS = [
  { Key: 'owner', Value: 'team-chat@example.com' },
  { Key: 'purpose', Value: 'customer chatbot' },
  { Key: 'review-cadence', Value: '90d' },
];

function user(
  name: string,
  tags: Array<{ Key: string; Value: string }>,
  extra: Record<string, unknown> = {},
) {
  return {
    UserName: name,
    UserId: `AIDA${name.toUpperCase().replace(/[^A-Z]/g, '')}`,
    Arn: `arn:aws:iam::${ACCOUNT}:user/${name}`,
    Path: '/',
    CreateDate: new Date('2026-01-01T00:00:00Z'),
    Tags: tags,
    UserPolicyList: [],
    AttachedManagedPolicies: [],
    GroupList: [],
    ...extra,
  };
}

const REPORT_HEADER =
  'user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,' +
  'mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,' +
  'access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,' +
  'access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,' +
  'cert_2_last_rotated';

function reportRow(name: string, password: boolean, key1: boolean): string {
  const f = Array(22).fill('N/A');
  f[0] = name;
  f[1] = `arn:aws:iam::${ACCOUNT}:user/${name}`;
  f[3] = String(password);
  f[8] = String(key1);
  f[13] = 'false';
  return f.join(',');
}

/**
 * A small account: svc-chatbot (compliant, 30-day key), svc-batch (never-expiring key, owner tag with a comma
 * and a quote, an access key and AdministratorAccess), svc-late (a user the snapshot does not know yet).
 */
function answerAccount(ownerOfBatch = 'Data, "Batch" team') {
  sts.on(GetCallerIdentityCommand).resolves({
    Account: ACCOUNT,
    Arn: `arn:aws:iam::${ACCOUNT}:user/auditor`,
    UserId: 'AIDAAUDITOR',
  });
  iam
    .on(ListServiceSpecificCredentialsCommand, { Marker: undefined })
    .resolves({
      ServiceSpecificCredentials: [
        key('ACCAEXAMPLEKEYCHAT001', 'svc-chatbot', { ExpirationDate: new Date('2027-01-15T00:00:00Z') }),
      ],
      IsTruncated: true,
      Marker: 'page-2',
    })
    .on(ListServiceSpecificCredentialsCommand, { Marker: 'page-2' })
    .resolves({
      ServiceSpecificCredentials: [
        key('ACCAEXAMPLEKEYBATCH01', 'svc-batch'),
        key('ACCAEXAMPLEKEYLATE001', 'svc-late', { ExpirationDate: new Date('2026-11-25T00:00:00Z') }),
      ],
      IsTruncated: false,
    });
  iam.on(GetAccountAuthorizationDetailsCommand).resolves({
    UserDetailList: [
      user('svc-chatbot', FULL_TAGS),
      user(
        'svc-batch',
        [
          { Key: 'owner', Value: ownerOfBatch },
          { Key: 'purpose', Value: 'nightly summaries' },
          { Key: 'review-cadence', Value: '30d' },
        ],
        {
          AttachedManagedPolicies: [
            { PolicyName: 'AdministratorAccess', PolicyArn: 'arn:aws:iam::aws:policy/AdministratorAccess' },
          ],
        },
      ),
    ],
    GroupDetailList: [],
    Policies: [],
    IsTruncated: false,
  });
  iam.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
  iam.on(GetCredentialReportCommand).resolves({
    Content: Buffer.from(
      [REPORT_HEADER, reportRow('svc-chatbot', false, false), reportRow('svc-batch', false, true)].join('\n'),
    ),
    ReportFormat: 'text/csv',
    GeneratedTime: new Date('2026-11-20T11:00:00Z'),
  });
  // Only svc-late (created after the snapshot) is read live.
  iam.on(ListUserTagsCommand, { UserName: 'svc-late' }).resolves({ Tags: FULL_TAGS, IsTruncated: false });
}

function deps(over: Partial<InventoryDeps> = {}): InventoryDeps {
  return {
    iam: new IAMClient({ region: 'us-east-1' }),
    sts: new STSClient({ region: 'us-east-1' }),
    doc: db.doc,
    env: {},
    now: () => NOW,
    snapshot: { sleep: async () => undefined },
    ...over,
  };
}

/** Every IAM operation the command called, by name. */
function iamOperations(): string[] {
  return [
    ...new Set(iam.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name)),
  ];
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += ch;
  }
  return rows;
}

beforeEach(() => {
  iam.reset();
  sts.reset();
});

describe('keyguard inventory', () => {
  it('prints every key of every page as a table, evaluated by the policy', async () => {
    // Prepare
    answerAccount();
    const { io, stdout, stderr } = captureIO(tempDir());

    // Act
    const code = await runInventory({}, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    const lines = stdout().split('\n');
    expect(lines[0]).toMatch(
      /^ACCOUNT\s+USER\s+KEY ID\s+OWNER \(SOURCE\)\s+STATUS\s+CREATED\s+EXPIRES\s+LAST REVIEW\s+LAST USED\s+VIOLATIONS$/,
    );
    const chat = lines.find((l) => l.includes('ACCAEXAMPLEKEYCHAT001')) ?? '';
    expect(chat).toMatch(
      /^111122223333\s+svc-chatbot\s+ACCAEXAMPLEKEYCHAT001\s+team-chat@example.com \(tag\)\s+Active\s+2026-11-01\s+2027-01-15\s+unknown\s+unknown\s+-$/,
    );
    const batch = lines.find((l) => l.includes('ACCAEXAMPLEKEYBATCH01')) ?? '';
    expect(batch).toContain('never');
    expect(batch).toMatch(/NEVER_EXPIRES,BROAD_PERMISSIONS,USER_HAS_OTHER_CREDENTIALS$/);
    const late = lines.find((l) => l.includes('ACCAEXAMPLEKEYLATE001')) ?? '';
    expect(late).toMatch(/team-chat@example.com \(tag\).*EXPIRING_SOON$/);
    expect(stdout()).toContain(
      'Keys: 3 (2 with violations). Read-only: nothing was changed, recorded or sent.',
    );
    expect(stdout()).toContain('REVIEW_OVERDUE is not shown');
    expect(stderr()).toBe('');
    expect(iam).toHaveReceivedCommandTimes(ListServiceSpecificCredentialsCommand, 2);
    expect(iam).toHaveReceivedCommandWith(ListServiceSpecificCredentialsCommand, {
      AllUsers: true,
      ServiceName: 'bedrock.amazonaws.com',
    });
  });

  it('is read-only: only List/Get IAM reads (and GenerateCredentialReport), no Update/Delete/Put/Create', async () => {
    // Prepare
    answerAccount();
    const { io } = captureIO(tempDir());

    // Act
    await runInventory({ json: true }, io, deps());

    // Assess
    const ops = iamOperations();
    expect(ops.length).toBeGreaterThan(0);
    expect(
      ops.filter((o) => !/^(List|Get)\w+Command$/.test(o) && o !== 'GenerateCredentialReportCommand'),
    ).toEqual([]);
    expect(ops.filter((o) => /^(Update|Delete|Put|Create|Attach|Detach|Tag|Untag|Reset)/.test(o))).toEqual(
      [],
    );
  });

  it('--json prints exactly one object per key and line; the summary goes to stderr', async () => {
    // Prepare
    answerAccount();
    const { io, stdout, stderr } = captureIO(tempDir());

    // Act
    const code = await runInventory({ json: true }, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    const lines = stdout().trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    const rows = lines.map((l) => JSON.parse(l));
    expect(rows.map((r) => r.keyId)).toEqual([
      'ACCAEXAMPLEKEYCHAT001',
      'ACCAEXAMPLEKEYBATCH01',
      'ACCAEXAMPLEKEYLATE001',
    ]);
    expect(rows[1]).toEqual({
      accountId: ACCOUNT,
      userName: 'svc-batch',
      keyId: 'ACCAEXAMPLEKEYBATCH01',
      owner: { value: 'Data, "Batch" team', source: 'tag' },
      status: 'Active',
      createdAt: '2026-11-01T00:00:00.000Z',
      expiresAt: null,
      neverExpires: true,
      lastReviewAt: 'unknown',
      lastUsedAt: 'unknown',
      violations: [
        expect.objectContaining({ code: 'NEVER_EXPIRES', severity: 'high' }),
        expect.objectContaining({ code: 'BROAD_PERMISSIONS', severity: 'high' }),
        expect.objectContaining({ code: 'USER_HAS_OTHER_CREDENTIALS', severity: 'high' }),
      ],
    });
    expect(stderr()).toBe(
      'Keys: 3 (2 with violations). Read-only: nothing was changed, recorded or sent.\n' +
        `Policy: ${policyVersion(parseConfig({}))} (built-in defaults).\n` +
        'Approvals are unknown without the approvals table (--approvals-table or KEYGUARD_APPROVALS_TABLE): approved violations are shown as violations.\n' +
        'Last reviews are unknown without the keys table (--keys-table or KEYGUARD_KEYS_TABLE): REVIEW_OVERDUE is not shown.\n',
    );
  });

  it('--csv is RFC 4180: a header, CRLF records, and quoted fields with doubled quotes', async () => {
    // Prepare
    answerAccount();
    const { io, stdout } = captureIO(tempDir());

    // Act
    const code = await runInventory({ csv: true }, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    const text = stdout();
    expect(text.endsWith('\r\n')).toBe(true);
    expect(text.replace(/\r\n/g, '')).not.toMatch(/\n/);
    expect(text).toContain('"Data, ""Batch"" team"');
    const [header, ...rows] = parseCsv(text);
    expect(header).toEqual([...CSV_HEADER]);
    expect(rows).toHaveLength(3);
    const batch = rows.find((r) => r[2] === 'ACCAEXAMPLEKEYBATCH01');
    expect(batch).toEqual([
      ACCOUNT,
      'svc-batch',
      'ACCAEXAMPLEKEYBATCH01',
      'Data, "Batch" team',
      'tag',
      'Active',
      '2026-11-01T00:00:00.000Z',
      'never',
      'true',
      'unknown',
      'unknown',
      'high',
      'NEVER_EXPIRES;BROAD_PERMISSIONS;USER_HAS_OTHER_CREDENTIALS',
    ]);
  });

  it('csvField quotes only what needs it and defuses spreadsheet formulas', () => {
    // Assess
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('=HYPERLINK("http://x")')).toBe('"\'=HYPERLINK(""http://x"")"');
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField('')).toBe('');
  });

  it('shows no progress when stderr is not a terminal, and a progress line when it is', async () => {
    // Prepare
    answerAccount();
    const plain = captureIO(tempDir());
    const tty = captureIO(tempDir());
    tty.io.stderr.isTTY = true;

    // Act
    await runInventory({ json: true }, plain.io, deps());
    await runInventory({ json: true }, tty.io, deps());

    // Assess
    expect(plain.stderr()).not.toContain('fetched');
    expect(plain.stderr()).not.toContain('\r');
    expect(tty.stderr()).toContain('\r\x1b[Kinventory: 2 page(s) fetched, 3 key(s) evaluated');
    expect(tty.stdout()).toBe(plain.stdout());
  });

  it('with a keys table: last review, known creator and REVIEW_OVERDUE, and the table is left as it was', async () => {
    // Prepare
    answerAccount();
    const audit = new DynamoAuditLog(db.doc, TABLES);
    const batchRecord: KnownKey = {
      accountId: ACCOUNT,
      keyId: 'ACCAEXAMPLEKEYBATCH01',
      userName: 'svc-batch',
      status: 'Active',
      createdAt: '2026-11-01T00:00:00.000Z',
      expiresAt: null,
      creator: `arn:aws:iam::${ACCOUNT}:user/bob`,
      owner: null,
      lastDecisionId: 'x',
      lastDecisionAt: '2026-11-01T00:00:00.000Z',
      history: { ...EMPTY_HISTORY, lastReviewAt: '2026-10-01T00:00:00.000Z' },
    };
    await audit.putKnownKey(batchRecord);
    const before = await scanAll(db, TABLES.keysTable);
    const { io, stdout } = captureIO(tempDir());

    // Act
    const code = await runInventory(
      { json: true },
      io,
      deps({ env: { KEYGUARD_KEYS_TABLE: TABLES.keysTable } }),
    );

    // Assess
    expect(code).toBe(EXIT_OK);
    const rows = stdout()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    const batch = rows.find((r) => r.keyId === 'ACCAEXAMPLEKEYBATCH01');
    expect(batch.lastReviewAt).toBe('2026-10-01T00:00:00.000Z');
    // The review-cadence tag is 30d: the last review (Oct 1) makes it overdue since Oct 31.
    expect(batch.violations.map((v: { code: string }) => v.code)).toContain('REVIEW_OVERDUE');
    const chat = rows.find((r) => r.keyId === 'ACCAEXAMPLEKEYCHAT001');
    expect(chat.lastReviewAt).toBeNull();
    expect(await scanAll(db, TABLES.keysTable)).toEqual(before);
  });

  it('with an approvals table: shows approved codes as waived, not as violations, and takes the latest review', async () => {
    // Prepare: svc-batch's never-expiring key is approved until December; a review on Nov 15.
    answerAccount();
    const approvals = new DynamoApprovalsStore(db.doc, TABLES.approvalsTable);
    await approvals.putApproval({
      approvalId: 'ap-inventory-1',
      accountId: ACCOUNT,
      keyId: 'ACCAEXAMPLEKEYBATCH01',
      covers: ['NEVER_EXPIRES'],
      reason: 'vendor cannot rotate before Q1',
      approver: `arn:aws:iam::${ACCOUNT}:user/ciso`,
      approvedAt: '2026-11-10T00:00:00.000Z',
      until: '2026-12-31T23:59:59.999Z',
      revokedAt: null,
      revokedBy: null,
    });
    await approvals.putReview({
      reviewId: 'rv-1',
      accountId: ACCOUNT,
      keyId: 'ACCAEXAMPLEKEYBATCH01',
      reviewer: `arn:aws:iam::${ACCOUNT}:user/ciso`,
      reviewedAt: '2026-11-15T00:00:00.000Z',
      note: 'still needed',
    });
    const { io, stdout } = captureIO(tempDir());

    // Act
    const code = await runInventory(
      { json: true, keysTable: TABLES.keysTable, approvalsTable: TABLES.approvalsTable },
      io,
      deps(),
    );

    // Assess
    expect(code).toBe(EXIT_OK);
    const batch = stdout()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((r) => r.keyId === 'ACCAEXAMPLEKEYBATCH01');
    const codes = batch.violations.map((v: { code: string }) => v.code);
    expect(codes).not.toContain('NEVER_EXPIRES');
    expect(codes).not.toContain('REVIEW_OVERDUE');
    expect(batch.waived).toEqual([
      expect.objectContaining({ code: 'NEVER_EXPIRES', approvalId: 'ap-inventory-1' }),
    ]);
    expect(batch.lastReviewAt).toBe('2026-11-15T00:00:00.000Z');
  });

  it('says approvals are unknown without the approvals table', async () => {
    answerAccount();
    const { io, stdout } = captureIO(tempDir());

    await runInventory({}, io, deps());

    expect(stdout()).toContain('Approvals are unknown without the approvals table');
  });

  it('shows the known creator as owner when the user has no owner tag', async () => {
    // Prepare
    answerAccount('   ');
    await new DynamoAuditLog(db.doc, TABLES).putKnownKey({
      accountId: ACCOUNT,
      keyId: 'ACCAEXAMPLEKEYBATCH01',
      userName: 'svc-batch',
      status: 'Active',
      createdAt: null,
      expiresAt: null,
      creator: `arn:aws:iam::${ACCOUNT}:user/bob`,
      owner: null,
      lastDecisionId: 'x',
      lastDecisionAt: '2026-11-01T00:00:00.000Z',
    });
    const { io, stdout } = captureIO(tempDir());

    // Act
    await runInventory({ keysTable: TABLES.keysTable }, io, deps());

    // Assess
    const batch = stdout()
      .split('\n')
      .find((l) => l.includes('ACCAEXAMPLEKEYBATCH01'));
    expect(batch).toContain(`arn:aws:iam::${ACCOUNT}:user/bob (creator)`);
    expect(batch).toContain('MISSING_OWNER');
  });

  it('never prints key material pasted into a tag: it is redacted in every format', async () => {
    // Prepare
    const secret = fakeLongTermKey('inventory-owner-tag');
    const outputs: string[] = [];

    // Act
    for (const format of [{}, { json: true }, { csv: true }]) {
      iam.reset();
      sts.reset();
      answerAccount(secret);
      const { io, stdout, stderr } = captureIO(tempDir());
      await runInventory(format, io, deps());
      outputs.push(stdout() + stderr());
    }

    // Assess
    for (const text of outputs) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.slice(4, 40));
      expect(text).toContain('ABSK…');
    }
  });

  it('exits 2 with a clear message when there are no AWS credentials', async () => {
    // Prepare
    const noCreds = Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
    });
    sts.on(GetCallerIdentityCommand).rejects(noCreds);
    const { io, stdout, stderr } = captureIO(tempDir());

    // Act
    const code = await runInventory({}, io, deps());

    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(stderr()).toMatch(
      /^keyguard: inventory: IAM ListServiceSpecificCredentials \(region us-east-1, default credential chain\): no AWS credentials found \(CredentialsProviderError: Could not load credentials[^\n]*aws sso login[^\n]*\.\n$/,
    );
    expect(stdout()).toBe('');
  });

  it('exits 2 naming the permissions when IAM denies access', async () => {
    // Prepare
    answerAccount();
    const denied = Object.assign(
      new Error(
        `User: arn:aws:iam::${ACCOUNT}:user/auditor is not authorized to perform: iam:ListServiceSpecificCredentials`,
      ),
      { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } },
    );
    iam.on(ListServiceSpecificCredentialsCommand).rejects(denied);
    const { io, stderr } = captureIO(tempDir());

    // Act
    const code = await runInventory({ csv: true }, io, deps());

    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(stderr()).toContain(
      'keyguard: inventory: IAM ListServiceSpecificCredentials (region us-east-1, default credential chain): access ' +
        'denied (AccessDenied: User: arn:aws:iam::111122223333:user/auditor',
    );
    expect(stderr()).toContain('Grant iam:ListServiceSpecificCredentials to the caller');
    expect(stderr()).toContain('iam:GetAccountAuthorizationDetails');
    expect(stderr().split('\n')).toHaveLength(2);
  });

  it('exits 2 on --json with --csv, and on a bad config file, before calling AWS', async () => {
    // Prepare
    const dir = tempDir();
    writeFile(`${dir}/bad.json`, JSON.stringify({ mode: 'enforced' }));
    const both = captureIO(dir);
    const bad = captureIO(dir);

    // Act
    const bothCode = await runInventory({ json: true, csv: true }, both.io, deps());
    const badCode = await runInventory({ config: 'bad.json' }, bad.io, deps());

    // Assess
    expect(bothCode).toBe(EXIT_INPUT);
    expect(both.stderr()).toBe('keyguard: --json and --csv: choose one output format\n');
    expect(badCode).toBe(EXIT_INPUT);
    expect(bad.stderr()).toContain('bad.json: mode: got "enforced"');
    expect(sts.calls()).toHaveLength(0);
    expect(iam.calls()).toHaveLength(0);
  });

  it('says so when the account has no Bedrock keys', async () => {
    // Prepare
    answerAccount();
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [], IsTruncated: false });
    const { io, stdout } = captureIO(tempDir());

    // Act
    const code = await runInventory({}, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    expect(stdout()).toContain('No Bedrock API keys in this account.');
    expect(stdout()).toContain('Keys: 0 (0 with violations)');
  });

  it('is wired as `keyguard inventory` with --json, --csv, --config and --keys-table', async () => {
    // Prepare
    answerAccount();
    const { io, stdout } = captureIO(tempDir());
    let exit = -1;
    const program = buildProgram(
      io,
      (c) => {
        exit = c;
      },
      undefined,
      () => deps(),
    );

    // Act
    await program.parseAsync(['node', 'keyguard', 'inventory', '--json', '--keys-table', TABLES.keysTable]);

    // Assess
    expect(exit).toBe(EXIT_OK);
    expect(stdout().trimEnd().split('\n')).toHaveLength(3);
  });
});

describe('keyguard inventory: last use (usage table)', () => {
  const TRACKED = { maxIdleDays: 10, usage: { regions: ['us-east-1'] } };
  let tables = 0;

  /** A fresh usage table; with `trackingSince`, a first use then (short-term, by a role): the tracking start. */
  async function usageTable(
    trackingSince: string | null,
  ): Promise<{ name: string; store: DynamoUsageStore }> {
    tables += 1;
    const name = `test-usage-inventory-${tables}`;
    await ensureTables(db.client, [usageTableDefinition(name)]);
    const store = new DynamoUsageStore(db.doc, name);
    if (trackingSince) {
      await store.recordUses([
        {
          ...use({ kind: 'principal', principalArn: `arn:aws:iam::${ACCOUNT}:role/app` }, trackingSince),
          keyType: 'SHORT_TERM',
        },
      ]);
      expect(await store.trackingSince(ACCOUNT)).toBe(trackingSince);
    }
    return { name, store };
  }

  function use(subject: UsageAggregate['subject'], lastUsedAt: string): UsageAggregate {
    return {
      accountId: ACCOUNT,
      subject,
      keyType: 'LONG_TERM',
      calls: 1,
      failedCalls: 0,
      firstUsedAt: lastUsedAt,
      lastUsedAt,
      lastAttemptAt: lastUsedAt,
      regions: ['us-east-1'],
      models: [],
      lastSourceIp: null,
      lastUserAgent: null,
    };
  }

  function configDir(config: unknown): string {
    const dir = tempDir();
    writeFile(`${dir}/keyguard.config.json`, JSON.stringify(config));
    return dir;
  }

  const rowsOf = (text: string) =>
    text
      .trimEnd()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            keyId: string;
            lastUsedAt: unknown;
            violations: Array<{ code: string; detail: string }>;
          },
      );

  it('shows each key’s last use (its own or its user’s) and UNUSED as the sweep decides it; the table is left as it was', async () => {
    // Prepare: tracking since Oct 1; chat used Nov 18, late's user Nov 5, batch never (created Nov 1)
    answerAccount();
    const { name, store } = await usageTable('2026-10-01T00:00:00.000Z');
    await store.recordUses([
      use(
        { kind: 'key', keyId: 'ACCAEXAMPLEKEYCHAT001', userName: 'svc-chatbot' },
        '2026-11-18T08:00:00.000Z',
      ),
      use({ kind: 'user', userName: 'svc-late' }, '2026-11-05T09:00:00.000Z'),
    ]);
    const before = await scanAll(db, name);
    const { io, stdout } = captureIO(configDir(TRACKED));

    // Act
    const code = await runInventory({ json: true, usageTable: name }, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    const rows = rowsOf(stdout());
    const byId = (id: string) => rows.find((r) => r.keyId === id);
    expect(byId('ACCAEXAMPLEKEYCHAT001')?.lastUsedAt).toBe('2026-11-18T08:00:00.000Z');
    expect(byId('ACCAEXAMPLEKEYCHAT001')?.violations.map((v) => v.code)).not.toContain('UNUSED');
    expect(byId('ACCAEXAMPLEKEYLATE001')?.lastUsedAt).toBe('2026-11-05T09:00:00.000Z');
    expect(byId('ACCAEXAMPLEKEYLATE001')?.violations.map((v) => v.code)).toContain('UNUSED');
    expect(byId('ACCAEXAMPLEKEYBATCH01')?.lastUsedAt).toBeNull();
    const unused = byId('ACCAEXAMPLEKEYBATCH01')?.violations.find((v) => v.code === 'UNUSED');
    expect(unused?.detail).toContain('never used since it was created 2026-11-01T00:00:00.000Z');
    expect(await scanAll(db, name)).toEqual(before);
  });

  it('reads the usage table named by KEYGUARD_USAGE_TABLE and shows the last use day in the table', async () => {
    // Prepare
    answerAccount();
    const { name, store } = await usageTable('2026-10-01T00:00:00.000Z');
    await store.recordUses([
      use(
        { kind: 'key', keyId: 'ACCAEXAMPLEKEYCHAT001', userName: 'svc-chatbot' },
        '2026-11-18T08:00:00.000Z',
      ),
    ]);
    const { io, stdout } = captureIO(configDir(TRACKED));

    // Act
    const code = await runInventory({}, io, deps({ env: { KEYGUARD_USAGE_TABLE: name } }));

    // Assess
    expect(code).toBe(EXIT_OK);
    const lines = stdout().split('\n');
    expect(lines.find((l) => l.includes('ACCAEXAMPLEKEYCHAT001'))).toMatch(/unknown\s+2026-11-18\s+-$/);
    expect(lines.find((l) => l.includes('ACCAEXAMPLEKEYBATCH01'))).toMatch(/unknown\s+never\s+\S*UNUSED/);
  });

  it('with no use ever recorded shows no UNUSED, says why, and records no tracking start', async () => {
    // Prepare: the usage table exists, but no use event has ever reached it (events may not be arriving)
    answerAccount();
    const { name } = await usageTable(null);
    const before = await scanAll(db, name);
    const { io, stdout, stderr } = captureIO(configDir(TRACKED));

    // Act
    const code = await runInventory({ json: true, usageTable: name }, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    const rows = rowsOf(stdout());
    expect(rows.map((r) => r.lastUsedAt)).toEqual([null, null, null]);
    expect(rows.flatMap((r) => r.violations.map((v) => v.code))).not.toContain('UNUSED');
    expect(stderr()).toContain(
      `UNUSED is not shown: no Bedrock API key use is recorded in ${name} yet (usage tracking starts with the first recorded use).`,
    );
    expect(await scanAll(db, name)).toEqual(before);
  });

  it('says UNUSED is not shown when the policy tracks usage but no usage table is named', async () => {
    // Prepare
    answerAccount();
    const { io, stdout, stderr } = captureIO(configDir(TRACKED));

    // Act
    const code = await runInventory({ json: true }, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    expect(rowsOf(stdout()).map((r) => r.lastUsedAt)).toEqual(['unknown', 'unknown', 'unknown']);
    expect(stderr()).toContain(
      'Last uses are unknown without the usage table (--usage-table or KEYGUARD_USAGE_TABLE): UNUSED is not shown.',
    );
  });

  it('with usage not tracked by the policy (no usage.regions) shows last uses but never UNUSED', async () => {
    // Prepare
    answerAccount();
    const { name } = await usageTable('2026-01-01T00:00:00.000Z');
    const { io, stdout } = captureIO(configDir({ maxIdleDays: 10 }));

    // Act
    const code = await runInventory({ json: true, usageTable: name }, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    const rows = rowsOf(stdout());
    expect(rows.map((r) => r.lastUsedAt)).toEqual([null, null, null]);
    expect(rows.flatMap((r) => r.violations.map((v) => v.code))).not.toContain('UNUSED');
  });
});

describe('keyguard inventory --fail-on', () => {
  /** One page of keys, every user fully tagged and without other credentials or broad grants. */
  function answerKeys(keys: ReturnType<typeof key>[]) {
    sts.on(GetCallerIdentityCommand).resolves({
      Account: ACCOUNT,
      Arn: `arn:aws:iam::${ACCOUNT}:user/auditor`,
      UserId: 'AIDAAUDITOR',
    });
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: keys,
      IsTruncated: false,
    });
    iam.on(GetAccountAuthorizationDetailsCommand).resolves({
      UserDetailList: [...new Set(keys.map((k) => k.UserName))].map((u) => user(u, FULL_TAGS)),
      GroupDetailList: [],
      Policies: [],
      IsTruncated: false,
    });
    iam.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
    iam.on(GetCredentialReportCommand).resolves({
      Content: Buffer.from(REPORT_HEADER),
      ReportFormat: 'text/csv',
      GeneratedTime: new Date('2026-11-20T11:00:00Z'),
    });
  }
  const compliant = key('ACCAEXAMPLEKEYCHAT001', 'svc-chatbot', {
    ExpirationDate: new Date('2027-01-15T00:00:00Z'),
  });

  it('exits 0 when no key has a violation, whatever the threshold', async () => {
    // Prepare
    answerKeys([compliant]);
    const { io, stdout, stderr } = captureIO(tempDir());

    // Act
    const code = await runInventory({ json: true, failOn: 'low' }, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
    expect(JSON.parse(stdout()).violations).toEqual([]);
    expect(stderr()).not.toContain('--fail-on');
  });

  it('exits 0 below the threshold and 1 at or above it, saying how many keys on stderr', async () => {
    // Prepare: svc-batch has high violations (NEVER_EXPIRES, ...), svc-late a low one (EXPIRING_SOON).
    const run = async (failOn: string) => {
      answerAccount();
      const { io, stdout, stderr } = captureIO(tempDir());
      const code = await runInventory({ failOn }, io, deps());
      iam.reset();
      sts.reset();
      return { code, stdout: stdout(), stderr: stderr() };
    };

    // Act
    const critical = await run('critical');
    const high = await run('HIGH');
    const low = await run('low');

    // Assess
    expect(critical.code).toBe(EXIT_OK);
    expect(critical.stderr).toBe('');
    expect(high.code).toBe(1);
    expect(high.stderr).toBe(
      'keyguard: --fail-on high: 1 key(s) with a current violation of severity high or above (keys as read now)\n',
    );
    expect(high.stdout).toContain('ACCAEXAMPLEKEYBATCH01');
    expect(low.code).toBe(1);
    expect(low.stderr).toContain('--fail-on low: 2 key(s)');
  });

  it('does not count an inactive or expired key: it cannot be used', async () => {
    // Prepare: never-expiring keys (high), neither of them Active.
    answerKeys([
      compliant,
      key('ACCAEXAMPLEKEYOFF0001', 'svc-off', { Status: 'Inactive' }),
      key('ACCAEXAMPLEKEYGONE001', 'svc-gone', { Status: 'Expired' }),
    ]);
    const { io, stdout } = captureIO(tempDir());

    // Act
    const code = await runInventory({ json: true, failOn: 'high' }, io, deps());

    // Assess: the violations are still shown
    expect(code).toBe(EXIT_OK);
    const rows = stdout()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { keyId: string; violations: Array<{ code: string }> });
    const off = rows.find((r) => r.keyId === 'ACCAEXAMPLEKEYOFF0001');
    expect(off?.violations.map((v) => v.code)).toContain('NEVER_EXPIRES');
  });

  it('without --fail-on, violations leave the exit code 0 as before', async () => {
    // Prepare
    answerAccount();
    const { io } = captureIO(tempDir());

    // Act
    const code = await runInventory({}, io, deps());

    // Assess
    expect(code).toBe(EXIT_OK);
  });

  it('exits 2 on a bad value, naming the flag and the value, before reading AWS', async () => {
    // Prepare
    answerAccount();
    const { io, stdout, stderr } = captureIO(tempDir());

    // Act
    const code = await runInventory({ failOn: 'severe' }, io, deps());

    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(stderr()).toBe('keyguard: --fail-on: got "severe"; allowed: low, medium, high, critical\n');
    expect(stdout()).toBe('');
    expect(iam.calls()).toHaveLength(0);
  });

  it('is wired on the command line', async () => {
    // Prepare
    answerAccount();
    const { io, stderr } = captureIO(tempDir());
    let code = -1;
    const program = buildProgram(
      io,
      (n) => {
        code = n;
      },
      undefined,
      () => deps(),
    );

    // Act
    await program.parseAsync(['node', 'keyguard', 'inventory', '--json', '--fail-on', 'medium']);

    // Assess
    expect(code).toBe(1);
    expect(stderr()).toContain('--fail-on medium: 1 key(s)');
  });
});
