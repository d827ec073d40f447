import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { buildProgram, main } from '../../bin/keyguard';
import { documentClient } from '../../lambda/adapters/document-client';
import { type ApprovalsDeps, defaultApprovalsDeps } from '../../lambda/cli/approvals';
import { defaultAuditDeps, openAuditSource } from '../../lambda/cli/audit';
import { runAuditVerify, type VerifyOptions } from '../../lambda/cli/audit-verify';
import { defaultInventoryDeps, type InventoryDeps, inventoryTables } from '../../lambda/cli/inventory';
import { EXIT_INPUT } from '../../lambda/cli/io';
import { type AwsRun, awsRun, type DeployedStack } from '../../lambda/cli/stack-outputs';
import { STACK_NAME } from '../../lambda/shared/stack';
import { STACK_NAME as APP_STACK_NAME } from '../../lib/app';
import { startTestDynamo, TABLES } from '../support/dynamo';
import { captureIO, removeTempDirs, tempDir, writeFile } from './helpers';

const cfn = mockClient(CloudFormationClient);

/** The outputs of a deployed BedrockKeyGuard stack (ids as in lib/keyguard-stack.ts). */
const OUTPUTS = {
  DecisionsTableName: 'BedrockKeyGuard-AuditTablesDecisions-1A2B',
  KeysTableName: 'BedrockKeyGuard-AuditTablesKeys-3C4D',
  ApprovalsTableName: 'BedrockKeyGuard-ApprovalsTable-5E6F',
  UsageTableName: 'BedrockKeyGuard-AuditTablesUsage-7G8H',
  ApprovalsUrl: 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/',
  AuditArchiveBucketName: 'bedrockkeyguard-auditintegrityarchive-9i0j',
};

function deployed(outputs: Record<string, string> = OUTPUTS): void {
  cfn.on(DescribeStacksCommand).resolves({
    Stacks: [
      {
        StackName: STACK_NAME,
        CreationTime: new Date('2026-11-01T00:00:00Z'),
        StackStatus: 'UPDATE_COMPLETE',
        Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  });
}

/** CloudFormation's answer for a stack that is not there. */
function notDeployed(): void {
  cfn.on(DescribeStacksCommand).callsFake((input: { StackName?: string }) => {
    throw Object.assign(new Error(`Stack with id ${input.StackName} does not exist`), {
      name: 'ValidationError',
      $metadata: { httpStatusCode: 400 },
    });
  });
}

const AWS_VARS = [
  'AWS_PROFILE',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'KEYGUARD_KEYS_TABLE',
  'KEYGUARD_APPROVALS_TABLE',
  'KEYGUARD_USAGE_TABLE',
  'KEYGUARD_DECISIONS_TABLE',
  'KEYGUARD_APPROVALS_URL',
  'KEYGUARD_ARCHIVE_BUCKET',
];
const saved: Record<string, string | undefined> = {};
/** Static keys of the profile `kg-audit` in a temporary credentials file: what --profile must sign with. */
const PROFILE_KEY = 'AKIAKGPROFILETEST0001';

beforeAll(() => {
  for (const v of AWS_VARS) saved[v] = process.env[v];
});
beforeEach(() => {
  cfn.reset();
  for (const v of AWS_VARS) delete process.env[v];
  // No profile or credential of this machine may take part: the profile's keys come from these files only.
  const dir = tempDir();
  process.env.AWS_SHARED_CREDENTIALS_FILE = writeFile(
    `${dir}/credentials`,
    `[kg-audit]\naws_access_key_id = ${PROFILE_KEY}\naws_secret_access_key = kgProfileTestSecretNotARealOne0000000000\n`,
  );
  process.env.AWS_CONFIG_FILE = writeFile(`${dir}/config`, '[profile kg-audit]\nregion = eu-west-1\n');
});
afterAll(() => {
  for (const v of AWS_VARS) {
    if (saved[v] === undefined) delete process.env[v];
    else process.env[v] = saved[v];
  }
  removeTempDirs();
});

function runOf(flags: { profile?: string; region?: string; stack?: string } = {}) {
  const out = captureIO(tempDir());
  return { out, aws: awsRun(flags, out.io, {}) };
}

/** Inventory deps whose IAM and DynamoDB are never reached by these tests (the tables are resolved first). */
function tablesDeps(stack: DeployedStack | undefined, env: NodeJS.ProcessEnv = {}): InventoryDeps {
  return { env, ...(stack ? { stack } : {}) } as InventoryDeps;
}

describe('the stack name', () => {
  it('is one constant shared by the CDK app and the CLI', () => {
    expect(APP_STACK_NAME).toBe(STACK_NAME);
    expect(STACK_NAME).toBe('BedrockKeyGuard');
  });
});

describe('tables from the deployed stack', () => {
  it('takes every table the flags and variables leave out from the outputs, with one DescribeStacks, and says so', async () => {
    // Prepare
    deployed();
    const { out, aws } = runOf();

    // Act
    const tables = await inventoryTables({}, tablesDeps(aws.stack));

    // Assess
    expect(tables).toEqual({
      keysTable: OUTPUTS.KeysTableName,
      approvalsTable: OUTPUTS.ApprovalsTableName,
      usageTable: OUTPUTS.UsageTableName,
    });
    expect(cfn).toHaveReceivedCommandTimes(DescribeStacksCommand, 1);
    expect(cfn).toHaveReceivedCommandWith(DescribeStacksCommand, { StackName: 'BedrockKeyGuard' });
    expect(out.stderr()).toBe(
      'keyguard: keys table, approvals table and usage table from stack BedrockKeyGuard (us-east-1)\n',
    );
  });

  it('lets a flag, then a KEYGUARD_* variable, win over the output', async () => {
    // Prepare
    deployed();
    const { out, aws } = runOf();
    const env = { KEYGUARD_APPROVALS_TABLE: 'from-env-approvals', KEYGUARD_KEYS_TABLE: 'from-env-keys' };

    // Act
    const tables = await inventoryTables({ keysTable: 'from-flag-keys' }, tablesDeps(aws.stack, env));

    // Assess
    expect(tables).toEqual({
      keysTable: 'from-flag-keys',
      approvalsTable: 'from-env-approvals',
      usageTable: OUTPUTS.UsageTableName,
    });
    expect(out.stderr()).toBe('keyguard: usage table from stack BedrockKeyGuard (us-east-1)\n');
  });

  it('does not read the stack when flags and variables name everything', async () => {
    // Prepare
    deployed();
    const { out, aws } = runOf();

    // Act
    const tables = await inventoryTables(
      { keysTable: 'k', approvalsTable: 'a' },
      tablesDeps(aws.stack, { KEYGUARD_USAGE_TABLE: 'u' }),
    );

    // Assess
    expect(tables).toEqual({ keysTable: 'k', approvalsTable: 'a', usageTable: 'u' });
    expect(cfn).toHaveReceivedCommandTimes(DescribeStacksCommand, 0);
    expect(out.stderr()).toBe('');
  });

  it('reads the stack once per run, however many values the run asks for', async () => {
    // Prepare
    deployed();
    const { aws } = runOf();

    // Act
    await inventoryTables({}, tablesDeps(aws.stack));
    const url = await aws.stack.value('approvalsUrl', { flag: '--url' });
    const bucket = await aws.stack.value('archiveBucket');

    // Assess
    expect([url, bucket]).toEqual([OUTPUTS.ApprovalsUrl, OUTPUTS.AuditArchiveBucketName]);
    expect(cfn).toHaveReceivedCommandTimes(DescribeStacksCommand, 1);
  });

  it('goes on without the default stack when it is not deployed, noting it once', async () => {
    // Prepare
    notDeployed();
    const { out, aws } = runOf();

    // Act
    const tables = await inventoryTables({}, tablesDeps(aws.stack));

    // Assess
    expect(tables).toEqual({ keysTable: null, approvalsTable: null, usageTable: null });
    expect(cfn).toHaveReceivedCommandTimes(DescribeStacksCommand, 1);
    expect(out.stderr()).toBe(
      'keyguard: stack BedrockKeyGuard (us-east-1) not found: going on without its outputs (name it with --stack, ' +
        '--region, --profile)\n',
    );
  });

  it('leaves out an output the stack does not have (usage tracking off): unknown, as without the stack', async () => {
    // Prepare
    const { UsageTableName: _, ...withoutUsage } = OUTPUTS;
    deployed(withoutUsage);
    const { aws } = runOf();

    // Act
    const tables = await inventoryTables({}, tablesDeps(aws.stack));

    // Assess
    expect(tables.usageTable).toBeNull();
    expect(tables.keysTable).toBe(OUTPUTS.KeysTableName);
  });
});

describe('a stack that must be there', () => {
  it('keyguard inventory --stack NAME: exit 2 naming the stack, region and profile and what to do', async () => {
    // Prepare
    notDeployed();
    const out = captureIO(tempDir());
    let code = -1;
    let run: AwsRun | undefined;
    const program = buildProgram(
      out.io,
      (c) => {
        code = c;
      },
      undefined,
      (aws) => {
        run = aws;
        return { ...defaultInventoryDeps({}, aws) };
      },
    );

    // Act
    await program.parseAsync([
      'node',
      'keyguard',
      'inventory',
      '--stack',
      'KeyGuardProd',
      '--profile',
      'kg-audit',
      '--region',
      'eu-west-1',
    ]);

    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(run?.target).toEqual({ region: 'eu-west-1', profile: 'kg-audit' });
    expect(cfn).toHaveReceivedCommandWith(DescribeStacksCommand, { StackName: 'KeyGuardProd' });
    const lines = out.stderr().trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    // Outside the app's region, the line says where the stack is deployed by default (aws-errors.ts, wrong region).
    expect(lines[0]).toMatch(
      /^keyguard: (inventory: )?CloudFormation DescribeStacks \(region eu-west-1, profile kg-audit\): stack KeyGuardProd not found in eu-west-1 \(ValidationError: Stack with id KeyGuardProd does not exist\)\. /,
    );
    expect(lines[0]).toContain('pass --region us-east-1');
  });

  it('keyguard approve without --url: the URL the default stack lacks is an error (exit 2), with the flags to use', async () => {
    // Prepare
    notDeployed();
    const out = captureIO(tempDir());
    const deps = (aws?: AwsRun): ApprovalsDeps => ({
      ...defaultApprovalsDeps({}, aws),
      fetch: () => Promise.reject(new Error('no request may be sent')),
    });

    // Act
    const code = await main(
      [
        'node',
        'keyguard',
        'approve',
        '--key',
        'ACCAEXAMPLE00000001',
        '--reason',
        'r',
        '--until',
        '2099-01-01',
      ],
      out.io,
      deps,
    );

    // Assess
    expect(code).toBe(EXIT_INPUT);
    const line = out.stderr();
    expect(line.split('\n')).toHaveLength(2);
    expect(line).toMatch(
      /CloudFormation DescribeStacks \(region us-east-1, default credential chain\)|default/,
    );
    expect(line).toContain('stack BedrockKeyGuard does not exist in us-east-1');
    expect(line).toContain('Or pass --url or set KEYGUARD_APPROVALS_URL.');
  });

  it('keyguard approve signs for the stack output ApprovalsUrl with the --profile credentials', async () => {
    // Prepare
    deployed();
    const out = captureIO(tempDir());
    const sent: Array<{ url: string; authorization: string }> = [];
    const deps = (aws?: AwsRun): ApprovalsDeps => ({
      ...defaultApprovalsDeps({}, aws),
      fetch: async (url, init) => {
        const headers = new Headers(init?.headers);
        sent.push({ url: String(url), authorization: headers.get('authorization') ?? '' });
        throw new Error('offline');
      },
    });

    // Act
    await main(
      [
        'node',
        'keyguard',
        'approve',
        '--profile',
        'kg-audit',
        '--key',
        'ACCAEXAMPLE00000001',
        '--reason',
        'r',
        '--until',
        '2099-01-01',
      ],
      out.io,
      deps,
    );

    // Assess
    expect(sent).toHaveLength(1);
    expect(sent[0]?.url).toBe(OUTPUTS.ApprovalsUrl);
    expect(sent[0]?.authorization).toContain(`Credential=${PROFILE_KEY}/`);
    expect(out.stderr()).toContain(
      'keyguard: approval function URL from stack BedrockKeyGuard (us-east-1, profile kg-audit)\n',
    );
  });

  it('refuses a bad --region, --profile or --stack before calling AWS (exit 2, naming the flag)', async () => {
    const cases = [
      ['--region', 'us-east'],
      ['--profile', ' '],
      ['--stack', 'no such/stack'],
    ];
    for (const [flag, value] of cases) {
      const out = captureIO(tempDir());
      const code = await main(
        ['node', 'keyguard', 'approvals', 'list', flag as string, value as string],
        out.io,
      );
      expect(code).toBe(EXIT_INPUT);
      expect(out.stderr()).toMatch(new RegExp(`^keyguard: ${flag}: `));
    }
    expect(cfn).toHaveReceivedCommandTimes(DescribeStacksCommand, 0);
  });
});

describe('the deployed audit tables', () => {
  // A real client: never sent anything here (openAuditSource only names the tables).
  const doc = () => documentClient(new DynamoDBClient({ region: 'us-east-1' }));

  it('a bare --table reads the decisions and keys tables named by the stack', async () => {
    // Prepare
    deployed();
    const { out, aws } = runOf();

    // Act
    const source = await openAuditSource({ table: true }, out.io, { doc, env: {}, stack: aws.stack }, true);

    // Assess
    expect(source.label).toBe(`table ${OUTPUTS.DecisionsTableName}`);
    expect(source.hasKeysTable).toBe(true);
    expect(out.stderr()).toBe(
      'keyguard: decisions table and keys table from stack BedrockKeyGuard (us-east-1)\n',
    );
  });

  it('--table NAME wins; the keys table a report needs still comes from the stack', async () => {
    // Prepare
    deployed();
    const { out, aws } = runOf();

    // Act
    const source = await openAuditSource({ table: 'mine' }, out.io, { doc, env: {}, stack: aws.stack }, true);

    // Assess
    expect(source.label).toBe('table mine');
    expect(source.notFound).toContain(OUTPUTS.KeysTableName);
  });

  it('without --table, --stack or KEYGUARD_DECISIONS_TABLE the local store is read, and the stack is not', async () => {
    // Prepare
    deployed();
    const { out, aws } = runOf();

    // Act
    const opened = openAuditSource({}, out.io, { doc, env: {}, stack: aws.stack }, true);

    // Assess
    await expect(opened).rejects.toThrow('no audit store at .keyguard');
    expect(cfn).toHaveReceivedCommandTimes(DescribeStacksCommand, 0);
  });

  it('--stack NAME selects the deployed tables; with --store it is refused', async () => {
    // Prepare
    deployed();
    const { out, aws } = runOf({ stack: 'BedrockKeyGuard' });

    // Act
    const source = await openAuditSource({}, out.io, { doc, env: {}, stack: aws.stack }, false);
    const both = openAuditSource({ store: '.keyguard' }, out.io, { doc, env: {}, stack: aws.stack }, false);

    // Assess
    expect(source.label).toBe(`table ${OUTPUTS.DecisionsTableName}`);
    await expect(both).rejects.toThrow('--store and --stack: choose one source');
  });

  it('a report without its keys table and without the stack: exit 2 naming the stack and the flag', async () => {
    // Prepare
    notDeployed();
    const { out, aws } = runOf();

    // Act
    const opened = openAuditSource(
      {},
      out.io,
      { doc, env: { KEYGUARD_DECISIONS_TABLE: 'decisions' }, stack: aws.stack },
      true,
    );

    // Assess
    await expect(opened).rejects.toThrow(
      /stack BedrockKeyGuard does not exist in us-east-1.*Or pass --keys-table or set KEYGUARD_KEYS_TABLE\./,
    );
  });
});

describe('audit verify of the deployed table', () => {
  it("checks the signed digests of the stack's archive bucket; --archive-bucket wins", async () => {
    // Prepare: the stack names a (empty) decisions table of an embedded DynamoDB, and its archive bucket.
    const db = await startTestDynamo();
    try {
      deployed({ ...OUTPUTS, DecisionsTableName: TABLES.decisionsTable, KeysTableName: TABLES.keysTable });
      const checked: string[] = [];
      const verifyWith = async (opts: VerifyOptions) => {
        const { out, aws } = runOf();
        const digests = async (bucket: string) => {
          checked.push(bucket);
          return { signed: null, problems: [], orphans: [] };
        };
        const code = await runAuditVerify(opts, out.io, {
          doc: () => db.doc,
          env: {},
          stack: aws.stack,
          digests,
        });
        return { code, stderr: out.stderr() };
      };

      // Act
      const fromStack = await verifyWith({ table: true });
      const named = await verifyWith({ table: true, archiveBucket: 'my-archive' });

      // Assess
      expect([fromStack.code, named.code]).toEqual([0, 0]);
      expect(checked).toEqual([OUTPUTS.AuditArchiveBucketName, 'my-archive']);
      expect(fromStack.stderr).toBe(
        'keyguard: decisions table and keys table from stack BedrockKeyGuard (us-east-1)\n' +
          'keyguard: audit archive bucket from stack BedrockKeyGuard (us-east-1)\n',
      );
      expect(cfn).toHaveReceivedCommandTimes(DescribeStacksCommand, 2);
    } finally {
      await db.close();
    }
  });
});

describe('--profile and --region reach every client', () => {
  it('inventory: IAM, STS, DynamoDB, Organizations (us-east-1) and the member-role IAM client', async () => {
    // Prepare
    const { aws } = runOf({ profile: 'kg-audit', region: 'eu-central-1' });

    // Act
    const deps = defaultInventoryDeps({}, aws);
    const clients = [deps.iam, deps.sts, deps.doc, deps.organizations];

    // Assess
    const regions = await Promise.all(clients.map((c) => c?.config.region()));
    expect(regions).toEqual(['eu-central-1', 'eu-central-1', 'eu-central-1', 'us-east-1']);
    for (const c of clients) {
      const creds = await c?.config.credentials();
      expect(creds?.accessKeyId).toBe(PROFILE_KEY);
    }
    const member = deps.iamWith?.({ accessKeyId: 'ASIAMEMBER', secretAccessKey: 's', sessionToken: 't' });
    expect((await member?.config.credentials())?.accessKeyId).toBe('ASIAMEMBER');
  });

  it('the stack lookup itself, and the audit tables, use the same region and profile', async () => {
    // Prepare
    deployed();
    const { aws } = runOf({ profile: 'kg-audit', region: 'eu-central-1' });

    // Act
    await aws.stack.value('decisionsTable');
    const doc = defaultAuditDeps({}, aws).doc();

    // Assess
    const lookup = cfn.call(0).thisValue as CloudFormationClient;
    expect(await lookup.config.region()).toBe('eu-central-1');
    expect((await lookup.config.credentials()).accessKeyId).toBe(PROFILE_KEY);
    expect(await doc.config.region()).toBe('eu-central-1');
    expect((await doc.config.credentials()).accessKeyId).toBe(PROFILE_KEY);
  });

  it('without flags: AWS_PROFILE and AWS_REGION, else us-east-1 (where the app deploys)', () => {
    expect(awsRun({}, captureIO('.').io, { AWS_PROFILE: 'p', AWS_REGION: 'ap-south-1' }).target).toEqual({
      region: 'ap-south-1',
      profile: 'p',
    });
    expect(awsRun({}, captureIO('.').io, {}).target).toEqual({ region: 'us-east-1' });
    // Only the flag is checked: the environment's region reaches the SDK as before (e.g. a local emulator's).
    expect(awsRun({}, captureIO('.').io, { AWS_REGION: 'local' }).target.region).toBe('local');
    expect(
      awsRun({ region: 'eu-west-3' }, captureIO('.').io, { AWS_REGION: 'ap-south-1' }).target.region,
    ).toBe('eu-west-3');
  });

  it('approvals: the signing credentials are the profile’s, and the region the run’s', async () => {
    // Prepare
    const { aws } = runOf({ profile: 'kg-audit', region: 'eu-central-1' });

    // Act
    const deps = defaultApprovalsDeps({}, aws);

    // Assess
    expect((await deps.credentials()).accessKeyId).toBe(PROFILE_KEY);
    expect(deps.fallbackRegion).toBe('eu-central-1');
    expect(deps.profile).toBe('kg-audit');
  });
});

describe('--help', () => {
  it('every command that reads AWS takes --profile, --region and --stack', async () => {
    const commands = [
      ['inventory'],
      ['approve'],
      ['approvals', 'list'],
      ['approvals', 'revoke'],
      ['review'],
      ['audit'],
      ['audit', 'verify'],
      ['report'],
      ['preview'],
    ];
    for (const c of commands) {
      const out = captureIO('.');
      expect(await main(['node', 'keyguard', ...c, '--help'], out.io)).toBe(0);
      for (const flag of ['--profile <name>', '--region <region>', '--stack <name>']) {
        expect(`${c.join(' ')}: ${out.stdout().includes(flag)}`).toBe(`${c.join(' ')}: true`);
      }
    }
  });
});
