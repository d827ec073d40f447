import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import { main } from '../../bin/keyguard';
import { documentClient } from '../../lambda/adapters/document-client';
import {
  type ApprovalsDeps,
  defaultApprovalsDeps,
  runApprove,
  runListApprovals,
  runReview,
} from '../../lambda/cli/approvals';
import { type AuditDeps, defaultAuditDeps, runAudit } from '../../lambda/cli/audit';
import { runAuditVerify } from '../../lambda/cli/audit-verify';
import { EXIT_AWS, EXIT_CODES } from '../../lambda/cli/aws-errors';
import { defaultInventoryDeps, type InventoryDeps, runInventory } from '../../lambda/cli/inventory';
import type { CliIO } from '../../lambda/cli/io';
import { runPreview } from '../../lambda/cli/preview';
import { runReport } from '../../lambda/cli/report';
import { startTestDynamo, TABLES } from '../support/dynamo';
import { fakeHandler, jsonError, queryError, TEST_CREDENTIALS, withoutCredentials } from './aws-fakes';
import { captureIO, removeTempDirs, tempDir, writeFile } from './helpers';

/**
 * The same AWS failure gives the same kind of line and the same exit code in every command that talks to AWS
 * (lambda/cli/aws-errors.ts). Real SDK clients and the real credential chain; nothing leaves the machine (empty
 * config files, instance metadata disabled, fake HTTP handlers, a loopback URL that is never reached).
 */

afterAll(removeTempDirs);

type Run = (io: CliIO) => Promise<number>;

/** Never contacted: every case fails before a request is sent, or is answered by a fake handler. */
const URL_NEVER_REACHED = 'http://127.0.0.1:9/';
const TABLE = 'keyguard-decisions';
const KEYS = 'keyguard-keys';

function cwdWithConfig(): string {
  const dir = tempDir();
  writeFile(join(dir, 'new.json'), JSON.stringify({ mode: 'audit', maxAgeDays: 90 }));
  writeFile(join(dir, 'current.json'), JSON.stringify({ mode: 'audit' }));
  return dir;
}

/** Every command that talks to AWS, with the AWS access each one is given. */
function commands(aws: {
  inventory: () => InventoryDeps;
  audit: () => AuditDeps;
  approvals: () => ApprovalsDeps;
}): Record<string, Run> {
  const approval = { url: URL_NEVER_REACHED };
  return {
    inventory: (io) => runInventory({}, io, aws.inventory()),
    'audit --table': (io) => runAudit({ table: TABLE }, io, aws.audit()),
    'report --table': (io) =>
      runReport({ html: join(io.cwd, 'r.html'), table: TABLE, keysTable: KEYS }, io, aws.audit()),
    'preview --table': (io) =>
      runPreview(
        { config: 'new.json', current: 'current.json', table: TABLE, keysTable: KEYS },
        io,
        aws.audit(),
      ),
    approve: (io) =>
      runApprove(
        { ...approval, key: 'ACCAEXAMPLEKEY0000001', reason: 'needed', until: '2099-01-01' },
        io,
        aws.approvals(),
      ),
    'approvals list': (io) => runListApprovals(approval, io, aws.approvals()),
    review: (io) =>
      runReview({ ...approval, key: 'ACCAEXAMPLEKEY0000001', note: 'checked' }, io, aws.approvals()),
  };
}

async function runAll(
  runs: Record<string, Run>,
): Promise<Array<{ command: string; code: number; stderr: string; stdout: string }>> {
  const results = [];
  for (const [command, run] of Object.entries(runs)) {
    const out = captureIO(cwdWithConfig());
    const code = await run(out.io);
    results.push({ command, code, stderr: out.stderr(), stdout: out.stdout() });
  }
  return results;
}

function expectOneAwsLine(r: { command: string; stderr: string }, says: RegExp): void {
  const lines = r.stderr.split('\n');
  expect({ command: r.command, lines: lines.length }).toEqual({ command: r.command, lines: 2 });
  expect(lines[1]).toBe('');
  expect(r.stderr.startsWith(`keyguard: ${r.command.replace(/ --table$/, '')}: `)).toBe(true);
  expect(r.stderr).toMatch(says);
}

describe('the same AWS failure, the same line and exit code in every command', () => {
  it('no credentials (the real default chain over empty config files): one line each, exit 2 everywhere', async () => {
    // Prepare / Act
    const results = await withoutCredentials(() =>
      runAll(
        commands({
          inventory: () => defaultInventoryDeps(process.env),
          audit: () => defaultAuditDeps(process.env),
          approvals: () => defaultApprovalsDeps(process.env),
        }),
      ),
    );

    // Assess
    expect(results.map((r) => [r.command, r.code])).toEqual(results.map((r) => [r.command, EXIT_AWS]));
    for (const r of results) {
      expectOneAwsLine(
        r,
        /: (IAM|STS|DynamoDB|Lambda) [A-Za-z/]+ \(region us-east-1, default credential chain\): no AWS credentials found \(CredentialsProviderError: Could not load credentials from any providers\)\. Sign in as for the AWS CLI/,
      );
      expect(r.stdout).toBe('');
    }
  });

  it('an unknown profile (AWS_PROFILE not in the config files): said so in every command, exit 2 everywhere', async () => {
    // Prepare / Act
    const results = await withoutCredentials(async () => {
      process.env.AWS_PROFILE = 'secuirty';
      return runAll(
        commands({
          inventory: () => defaultInventoryDeps(process.env),
          audit: () => defaultAuditDeps(process.env),
          approvals: () => defaultApprovalsDeps(process.env),
        }),
      );
    }, '[profile security]\nregion = us-east-1\n');

    // Assess
    expect(new Set(results.map((r) => r.code))).toEqual(new Set([EXIT_AWS]));
    for (const r of results) {
      expectOneAwsLine(
        r,
        /\(region us-east-1, profile secuirty\): profile secuirty is not in the AWS config files .*aws configure list-profiles/,
      );
    }
  });

  it('access denied (IAM, DynamoDB and the function URL each answer as AWS does): exit 2 everywhere, the action named', async () => {
    // Prepare: real clients whose HTTP layer answers AccessDenied the way each service does.
    const iamDenied = {
      ...queryError(
        'AccessDenied',
        'User: arn:aws:iam::111122223333:user/bob is not authorized to perform: iam:X',
      ),
      status: 403,
    };
    const stsDenied = {
      ...queryError('AccessDenied', 'not authorized to perform: sts:GetCallerIdentity'),
      status: 403,
    };
    const ddbDenied = jsonError(
      400,
      'AccessDeniedException',
      'User: bob is not authorized to perform: dynamodb:Scan',
    );
    const client = { region: 'us-east-1', credentials: TEST_CREDENTIALS };
    const runs = commands({
      inventory: () => ({
        iam: new IAMClient({ ...client, requestHandler: fakeHandler(iamDenied) }),
        sts: new STSClient({ ...client, requestHandler: fakeHandler(stsDenied) }),
        doc: documentClient(new DynamoDBClient({ ...client, requestHandler: fakeHandler(ddbDenied) })),
        env: {},
      }),
      audit: () => ({
        doc: () => documentClient(new DynamoDBClient({ ...client, requestHandler: fakeHandler(ddbDenied) })),
        env: {},
      }),
      approvals: () => ({
        credentials: async () => TEST_CREDENTIALS,
        fetch: async () => new Response('{"Message":"Forbidden"}', { status: 403 }),
      }),
    });

    // Act
    const results = await runAll(runs);

    // Assess
    expect(new Set(results.map((r) => r.code))).toEqual(new Set([EXIT_AWS]));
    for (const r of results) {
      expectOneAwsLine(
        r,
        /: (IAM|STS|DynamoDB|Lambda) [A-Za-z]+ \(region us-east-1, default credential chain\): access denied \(Access[A-Za-z]*: [^\n]*\)\. Grant (iam|sts|dynamodb|lambda):[A-Za-z]+ to the caller/,
      );
      // The function URL's body is not shown.
      expect(r.stderr).not.toContain('{"Message"');
    }
  });
});

describe('one exit-code table (every command that prints one)', () => {
  it.each([
    ['inventory'],
    ['approve'],
    ['approvals', 'list'],
    ['approvals', 'revoke'],
    ['review'],
    ['audit'],
    ['audit', 'verify'],
    ['report'],
    ['preview'],
    ['replay'],
    ['policy'],
  ])(
    'keyguard %s %s --help gives the shared meaning of 0, 1 and 2 word for word',
    async (...command: string[]) => {
      // Act
      const out = captureIO(tempDir());
      const code = await main(['node', 'keyguard', ...command.filter(Boolean), '--help'], out.io);

      // Assess: the block's wrapped lines read as one text per code.
      expect(code).toBe(0);
      const block = out.stdout().slice(out.stdout().indexOf('Exit codes:'));
      const flat = block.replace(/\n {5}/g, ' ');
      for (const { code: c, meaning } of EXIT_CODES) expect(flat).toContain(`\n  ${c}  ${meaning}`);
    },
  );
});

describe('audit verify --archive-bucket', () => {
  it('S3 denying the archive is named as S3 and its operation, not the decisions table (exit 2, one line)', async () => {
    // Prepare: the decisions table in dynalite; S3 (AWS_ENDPOINT_URL_S3) a loopback server answering as S3 does.
    const s3: Server = createServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message>' +
          '<RequestId>r-1</RequestId></Error>',
      );
    });
    await new Promise<void>((resolve) => s3.listen(0, '127.0.0.1', resolve));
    const db = await startTestDynamo();
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(s3.address() as AddressInfo).port}`,
      AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
    });
    delete process.env.AWS_PROFILE;
    const out = captureIO(tempDir());
    let code: number;
    try {
      // Act
      code = await runAuditVerify(
        { table: TABLES.decisionsTable, archiveBucket: 'keyguard-archive' },
        out.io,
        {
          doc: () => db.doc,
          env: {},
          target: { region: 'us-east-1' },
        },
      );
    } finally {
      process.env = saved;
      await db.close();
      await new Promise<void>((resolve) => s3.close(() => resolve()));
    }

    // Assess
    expect(code).toBe(EXIT_AWS);
    expect(out.stderr()).toMatch(
      /^keyguard: audit verify: S3 ListObjectsV2 \(region us-east-1, default credential chain\): access denied \(AccessDenied: Access Denied\)\. Grant s3:ListBucket to the caller[^\n]*\.\n$/,
    );
  });
});

describe('through the command line, with the stack lookup first', () => {
  const lines: Record<string, string[]> = {
    inventory: ['inventory'],
    'audit --table': ['audit', '--table'],
    'audit verify': ['audit', 'verify', '--table'],
    'report --table': ['report', '--html', 'r.html', '--table'],
    'preview --table': ['preview', '--config', 'new.json', '--table'],
    approve: ['approve', '--key', 'ACCAEXAMPLEKEY0000001', '--reason', 'needed', '--until', '2099-01-01'],
    'approvals list': ['approvals', 'list'],
    review: ['review', '--key', 'ACCAEXAMPLEKEY0000001', '--note', 'checked'],
  };

  it.each([
    ['no credentials', '', /\(region us-east-1, default credential chain\): no AWS credentials found/],
    [
      'an unknown profile',
      'secuirty',
      /\(region us-east-1, profile secuirty\): profile secuirty is not in the AWS config files/,
    ],
  ])(
    '%s: one line (the first call, DescribeStacks, names it), exit 2, in every command',
    async (_what, profile, says) => {
      // Prepare / Act
      const results = await withoutCredentials(async () => {
        if (profile) process.env.AWS_PROFILE = profile;
        const out: Array<{ command: string; code: number; stderr: string }> = [];
        for (const [command, args] of Object.entries(lines)) {
          const io = captureIO(cwdWithConfig());
          const code = await main(['node', 'keyguard', ...args], io.io);
          out.push({ command, code, stderr: io.stderr() });
        }
        return out;
      });

      // Assess: not a note about the stack and then the same failure again.
      for (const r of results) {
        expect({ command: r.command, code: r.code, lines: r.stderr.split('\n').length }).toEqual({
          command: r.command,
          code: EXIT_AWS,
          lines: 2,
        });
        expect(r.stderr).toMatch(/^keyguard: CloudFormation DescribeStacks /);
        expect(r.stderr).toMatch(says);
      }
    },
  );
});
