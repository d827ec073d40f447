import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { STSClient } from '@aws-sdk/client-sts';
import { defaultInventoryDeps } from '../../lambda/cli/inventory';
import { ORG_CSV_HEADER, type OrgInventoryRow, runOrgInventory } from '../../lambda/cli/inventory-org';
import { overrideVersion } from '../../lambda/domain/org-policy';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { FakeIamAccount } from '../support/fake-iam-account';
import { FakeOrganization, type RecordedRequest } from '../support/fake-org-endpoints';
import { captureIO, REPO, removeTempDirs, tempDir, writeFile } from './helpers';

// An extension-less import would find the executable shim bin/keyguard.js first: load the TypeScript directly.
const { main } = require(join(REPO, 'bin', 'keyguard.ts')) as typeof import('../../bin/keyguard');

/**
 * `keyguard inventory --org` run as the CLI runs (its own SDK clients, the standard credential and endpoint
 * chain) against a fake organization on loopback: Organizations, STS and each member account's IAM over HTTP.
 */

const MANAGEMENT = '111111111111';
const PROD = '222222222222';
const TEAM = '333333333333';
const SANDBOX = '444444444444';
const EXCLUDED = '555555555555';
const SUSPENDED = '666666666666';
const OU_PROD = 'ou-ab12-prod0001';
const OU_TEAM = 'ou-ab12-teamaaaa';
const OU_SANDBOX = 'ou-ab12-sandbox1';

const BASE = {
  mode: 'audit',
  fallbackOwner: 'security@example.com',
  maxAgeDays: 90,
};
const OVERRIDES = [
  { ous: [OU_SANDBOX], mode: 'enforce', maxAgeDays: 30 },
  { accounts: [TEAM], allowLongTermKeys: false },
];
const ORG_CONFIG = {
  ...BASE,
  organization: {
    id: 'o-a1b2c3d4e5',
    managementAccountId: MANAGEMENT,
    targets: [OU_PROD, OU_SANDBOX],
    excludeAccounts: [EXCLUDED],
  },
  overrides: OVERRIDES,
};

/**
 * Root ─┬─ management (not under the targets)
 *       ├─ ou prod ─┬─ PROD (2 keys, one never expires)      ├─ SUSPENDED
 *       │           └─ ou team ── TEAM (1 key; account override: no long-term keys)
 *       └─ ou sandbox ─┬─ SANDBOX (its member role does not trust the caller)
 *                      └─ EXCLUDED (organization.excludeAccounts)
 */
function organization(): FakeOrganization {
  const org = new FakeOrganization(MANAGEMENT).ou(OU_PROD).ou(OU_TEAM, OU_PROD).ou(OU_SANDBOX);
  // One item per page: every listing is paginated.
  org.pageSize = 1;
  org.managementIam.key({
    keyId: 'ACCAMANAGEMENTKEY0001',
    userName: 'svc-mgmt',
    createdAt: '2026-11-01T00:00:00Z',
  });
  org.member({
    accountId: PROD,
    name: 'prod-api',
    parent: OU_PROD,
    iam: new FakeIamAccount(PROD)
      .key({
        keyId: 'ACCAPRODKEYCHAT00001',
        userName: 'svc-chat',
        createdAt: '2026-11-01T00:00:00Z',
        expiresAt: '2027-01-15T00:00:00Z',
      })
      .key({ keyId: 'ACCAPRODKEYBATCH0001', userName: 'svc-batch', createdAt: '2026-10-01T00:00:00Z' }),
  });
  org.member({
    accountId: TEAM,
    name: 'team-a',
    parent: OU_TEAM,
    iam: new FakeIamAccount(TEAM).key({
      keyId: 'ACCATEAMKEY000000001',
      userName: 'svc-team',
      createdAt: '2026-11-10T00:00:00Z',
      expiresAt: '2026-12-10T00:00:00Z',
    }),
  });
  org.member({
    accountId: SANDBOX,
    name: 'sandbox',
    parent: OU_SANDBOX,
    denyAssumeRole: true,
    iam: new FakeIamAccount(SANDBOX).key({
      keyId: 'ACCASANDBOXKEY000001',
      userName: 'svc-try',
      createdAt: '2026-11-01T00:00:00Z',
    }),
  });
  org.member({
    accountId: EXCLUDED,
    name: 'legacy',
    parent: OU_SANDBOX,
    iam: new FakeIamAccount(EXCLUDED).key({
      keyId: 'ACCAEXCLUDEDKEY00001',
      userName: 'svc-old',
      createdAt: '2026-11-01T00:00:00Z',
    }),
  });
  org.member({
    accountId: SUSPENDED,
    name: 'closed',
    parent: OU_PROD,
    state: 'SUSPENDED',
    iam: new FakeIamAccount(SUSPENDED),
  });
  return org;
}

const ENV_KEYS = [
  'AWS_ENDPOINT_URL',
  'AWS_ENDPOINT_URL_ORGANIZATIONS',
  'AWS_ENDPOINT_URL_STS',
  'AWS_ENDPOINT_URL_IAM',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_PROFILE',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'KEYGUARD_KEYS_TABLE',
  'KEYGUARD_APPROVALS_TABLE',
  'KEYGUARD_USAGE_TABLE',
];
const saved: Record<string, string | undefined> = {};
let org: FakeOrganization;
let endpoint: string;
let dir: string;

function awsEnv(): Record<string, string> {
  return {
    ...org.env(endpoint),
    // No profile or config file of this machine may take part.
    AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
  };
}

async function startOrg(build: () => FakeOrganization = organization): Promise<void> {
  await org?.close();
  org = build();
  endpoint = await org.start();
  for (const k of ENV_KEYS) delete process.env[k];
  Object.assign(process.env, awsEnv());
}

beforeAll(() => {
  for (const k of ENV_KEYS) saved[k] = process.env[k];
});
beforeEach(async () => {
  dir = tempDir();
  writeFile(join(dir, 'keyguard.config.json'), JSON.stringify(ORG_CONFIG));
  await startOrg();
});
afterEach(async () => {
  await org.close();
});
afterAll(() => {
  for (const k of ENV_KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  removeTempDirs();
});

/** This organization has no BedrockKeyGuard stack (the fake answers DescribeStacks so): each run notes it once. */
const NO_STACK_NOTE =
  'keyguard: stack BedrockKeyGuard (us-east-1) not found: going on without its outputs (name it with --stack, ' +
  '--region, --profile)\n';

async function inventory(...args: string[]) {
  const out = captureIO(dir);
  const code = await main(['node', 'keyguard', 'inventory', '--org', ...args], out.io);
  const stderr = out.stderr();
  expect(stderr.split(NO_STACK_NOTE).length).toBeLessThanOrEqual(2);
  return { code, stdout: out.stdout(), stderr: stderr.replace(NO_STACK_NOTE, '') };
}

function jsonRows(text: string): OrgInventoryRow[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as OrgInventoryRow);
}

function expectNoCredentials(text: string): void {
  for (const secret of org.secrets()) expect(text).not.toContain(secret);
  expect(text).not.toMatch(/ASIA\d{12}/);
}

/** The most accounts whose requests (AssumeRole of its role, then IAM with its credentials) overlapped. */
function accountsInFlight(requests: readonly RecordedRequest[]): number {
  const span = new Map<string, [number, number]>();
  requests.forEach((r, i) => {
    const account =
      r.service === 'sts' && r.action === 'AssumeRole'
        ? (/::(\d{12}):/.exec(r.params.RoleArn ?? '')?.[1] ?? null)
        : r.service === 'iam'
          ? r.callerAccount
          : null;
    if (!account) return;
    const s = span.get(account);
    span.set(account, s ? [s[0], i] : [i, i]);
  });
  let most = 0;
  for (const [, [start]] of span) {
    const open = [...span.values()].filter(([a, b]) => a <= start && start <= b).length;
    most = Math.max(most, open);
  }
  return most;
}

const baseVersion = policyVersion(parseConfig(ORG_CONFIG));

describe('keyguard inventory --org', () => {
  it('reads every governed account through its member role, names the one it could not read, and exits 3', async () => {
    // Act
    const { code, stdout, stderr } = await inventory();

    // Assess: keys of PROD and TEAM (the nested OU) with their account; none of the excluded, suspended or
    // management accounts, nor of the account whose role could not be assumed.
    expect(code).toBe(3);
    const table = stdout.split('\n\n')[0] ?? '';
    expect(table.split('\n')[0]).toMatch(/^ACCOUNT\s+USER\s+KEY ID/);
    const keyLines = table.split('\n').slice(1);
    expect(keyLines.map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual([
      `${PROD} svc-chat ACCAPRODKEYCHAT00001`,
      `${PROD} svc-batch ACCAPRODKEYBATCH0001`,
      `${TEAM} svc-team ACCATEAMKEY000000001`,
    ]);
    // The per-account summary: keys, violations, ok / error, and the policy that applied.
    const teamVersion = overrideVersion(baseVersion, OVERRIDES[1] as never);
    const sandboxVersion = overrideVersion(baseVersion, OVERRIDES[0] as never);
    expect(stdout).toMatch(/ACCOUNT\s+NAME\s+POLICY\s+KEYS\s+VIOLATIONS\s+RESULT/);
    expect(stdout).toMatch(new RegExp(`${PROD}\\s+prod-api\\s+${baseVersion} \\(base\\)\\s+2\\s+1\\s+ok`));
    expect(stdout).toMatch(
      new RegExp(`${TEAM}\\s+team-a\\s+${teamVersion} \\(account:${TEAM}\\)\\s+1\\s+1\\s+ok`),
    );
    expect(stdout).toMatch(
      new RegExp(
        `${SANDBOX}\\s+sandbox\\s+${sandboxVersion} \\(ou:${OU_SANDBOX}\\)\\s+-\\s+-\\s+error: cannot assume`,
      ),
    );
    expect(stdout).toContain('Accounts: 3 (2 read, 1 not read); 1 left out by organization.excludeAccounts.');
    expect(stdout).toContain('Keys: 3 (2 with violations)');
    // The unreadable account is named on stderr with its reason.
    expect(stderr).toBe(
      `keyguard: account ${SANDBOX} (sandbox): cannot assume arn:aws:iam::${SANDBOX}:role/BedrockKeyGuardInventory ` +
        `(AccessDenied: User: arn:aws:iam::${MANAGEMENT}:user/org-admin is not authorized to perform: sts:AssumeRole ` +
        `on resource: arn:aws:iam::${SANDBOX}:role/BedrockKeyGuardInventory): the role is missing there or does not ` +
        "trust these credentials (the spoke stack's BedrockKeyGuardInventory role trusts principals of the " +
        'management and hub accounts that their own IAM policies let assume it; else name a role you may assume ' +
        'with --role-name)\n',
    );
    expectNoCredentials(stdout + stderr);
  });

  it('shows an account name holding terminal escapes and bidi controls escaped, in the table, summary and stderr', async () => {
    // Prepare: a member account's administrator chooses its name (account:PutAccountName), so it is untrusted text.
    const hostile = 'prod\x1b[2J\x1b]8;;https://evil.example\x07x\u202eipa';
    await startOrg(() => {
      const o = organization();
      for (const m of o.members.values()) if (m.name === 'prod-api' || m.name === 'sandbox') m.name = hostile;
      return o;
    });
    // Act
    const { stdout, stderr } = await inventory();
    // Assess: the names are there, but no byte of them can move the cursor, clear the screen or reorder text
    expect(stdout + stderr).toContain('prod');
    for (const raw of ['\x1b', '\x07', '\u202e']) expect(stdout + stderr).not.toContain(raw);
    expect(stdout).toContain('prod\\x1b[2J');
  });

  it('assumes only the governed accounts’ member roles, as keyguard-inventory, and reads each account with its own credentials', async () => {
    // Act
    await inventory();

    // Assess
    const assumed = org.calls('sts', 'AssumeRole');
    expect(assumed.map((r) => r.params.RoleArn).sort()).toEqual(
      [PROD, TEAM, SANDBOX].map((a) => `arn:aws:iam::${a}:role/BedrockKeyGuardInventory`),
    );
    expect(new Set(assumed.map((r) => r.params.RoleSessionName))).toEqual(new Set(['keyguard-inventory']));
    expect(new Set(assumed.map((r) => r.callerAccount))).toEqual(new Set([MANAGEMENT]));
    const iamCallers = new Set(org.calls('iam').map((r) => r.callerAccount));
    expect(iamCallers).toEqual(new Set([PROD, TEAM]));
    // Read-only in every account.
    expect(org.calls('iam').filter((r) => !/^(List|Get|GenerateCredentialReport)/.test(r.action))).toEqual(
      [],
    );
    // Organizations was read with the caller's own credentials, every page of it.
    expect(new Set(org.calls('organizations').map((r) => r.callerAccount))).toEqual(new Set([MANAGEMENT]));
    expect(org.calls('organizations', 'ListAccountsForParent').some((r) => r.params.NextToken)).toBe(true);
  });

  it('--json: one object per key with accountId, account name and the policy version that applied; the summary on stderr', async () => {
    // Act
    const { code, stdout, stderr } = await inventory('--json');

    // Assess
    expect(code).toBe(3);
    const rows = jsonRows(stdout);
    expect(rows.map((r) => [r.accountId, r.keyId]).sort()).toEqual([
      [PROD, 'ACCAPRODKEYBATCH0001'],
      [PROD, 'ACCAPRODKEYCHAT00001'],
      [TEAM, 'ACCATEAMKEY000000001'],
    ]);
    const team = rows.find((r) => r.accountId === TEAM);
    expect(team).toMatchObject({
      accountName: 'team-a',
      userName: 'svc-team',
      policyVersion: overrideVersion(baseVersion, OVERRIDES[1] as never),
      policyOverride: `account:${TEAM}`,
    });
    // The account override forbids long-term keys there, and only there.
    expect(team?.violations.map((v) => v.code)).toContain('LONG_TERM_NOT_ALLOWED');
    const batch = rows.find((r) => r.keyId === 'ACCAPRODKEYBATCH0001');
    expect(batch).toMatchObject({
      accountName: 'prod-api',
      policyVersion: baseVersion,
      policyOverride: null,
    });
    expect(batch?.violations.map((v) => v.code)).toContain('NEVER_EXPIRES');
    expect(batch?.violations.map((v) => v.code)).not.toContain('LONG_TERM_NOT_ALLOWED');
    expect(stderr).toMatch(
      new RegExp(`${SANDBOX}\\s+sandbox\\s+\\S+ \\(ou:${OU_SANDBOX}\\)\\s+-\\s+-\\s+error:`),
    );
    expect(stderr).toContain(`keyguard: account ${SANDBOX} (sandbox): cannot assume`);
    expectNoCredentials(stdout + stderr);
  });

  it('--csv: the inventory columns, then account name, policy version and override; one record per key', async () => {
    // Act
    const { code, stdout } = await inventory('--csv');

    // Assess
    expect(code).toBe(3);
    const records = stdout.split('\r\n').filter((l) => l.length > 0);
    expect(records[0]).toBe(ORG_CSV_HEADER.join(','));
    expect(ORG_CSV_HEADER.slice(0, 2)).toEqual(['account_id', 'user_name']);
    expect(records).toHaveLength(4);
    const team = records.find((r) => r.startsWith(`${TEAM},`))?.split(',');
    expect(team?.slice(-3)).toEqual([
      'team-a',
      overrideVersion(baseVersion, OVERRIDES[1] as never),
      `account:${TEAM}`,
    ]);
    const prod = records.filter((r) => r.startsWith(`${PROD},`)).map((r) => r.split(',').slice(-3));
    expect(prod).toEqual([
      ['prod-api', baseVersion, ''],
      ['prod-api', baseVersion, ''],
    ]);
  });

  it('--account narrows to the named accounts; exit 0 when each was read', async () => {
    // Act
    const { code, stdout, stderr } = await inventory('--json', '--account', TEAM);

    // Assess
    expect(code).toBe(0);
    expect(jsonRows(stdout).map((r) => r.accountId)).toEqual([TEAM]);
    expect(org.calls('sts', 'AssumeRole').map((r) => r.params.RoleArn)).toEqual([
      `arn:aws:iam::${TEAM}:role/BedrockKeyGuardInventory`,
    ]);
    expect(stderr).toContain('Accounts: 1 (1 read, 0 not read)');
    expect(stderr).not.toContain('keyguard:');
  });

  it('--account naming an excluded, a suspended or a foreign account: not read, each named with why, exit 3', async () => {
    // Act
    const { code, stderr } = await inventory(
      '--json',
      '--account',
      EXCLUDED,
      '--account',
      SUSPENDED,
      '--account',
      '999999999999',
      '--account',
      PROD,
    );

    // Assess
    expect(code).toBe(3);
    expect(stderr).toContain(
      `keyguard: account ${EXCLUDED}: not read: listed in organization.excludeAccounts\n`,
    );
    expect(stderr).toContain(
      `keyguard: account ${SUSPENDED}: not read: not ACTIVE in the organization (SUSPENDED)\n`,
    );
    expect(stderr).toContain(
      'keyguard: account 999999999999: not read: not an account of this organization\n',
    );
    expect(stderr).toMatch(new RegExp(`${PROD}\\s+prod-api\\s+\\S+ \\(base\\)\\s+2\\s+1\\s+ok`));
    expect(org.calls('sts', 'AssumeRole').map((r) => r.params.RoleArn)).toEqual([
      `arn:aws:iam::${PROD}:role/BedrockKeyGuardInventory`,
    ]);
  });

  it('--ou narrows to the accounts under that OU (nested ones included)', async () => {
    // Act
    const nested = await inventory('--json', '--ou', OU_TEAM);
    const prod = await inventory('--json', '--ou', OU_PROD);

    // Assess
    expect(nested.code).toBe(0);
    expect(jsonRows(nested.stdout).map((r) => r.accountId)).toEqual([TEAM]);
    expect(prod.code).toBe(0);
    expect([...new Set(jsonRows(prod.stdout).map((r) => r.accountId))].sort()).toEqual([PROD, TEAM]);
  });

  it('without organization settings, --ou alone says where to read (no exclusions, base policy)', async () => {
    // Prepare
    writeFile(join(dir, 'keyguard.config.json'), JSON.stringify(BASE));

    // Act
    const { code, stdout } = await inventory('--json', '--ou', OU_SANDBOX);

    // Assess: the excluded account is only excluded by the config that says so.
    expect(code).toBe(3);
    const rows = jsonRows(stdout);
    expect(rows.map((r) => r.accountId)).toEqual([EXCLUDED]);
    expect(rows[0]?.policyVersion).toBe(policyVersion(parseConfig(BASE)));
  });

  it('--role-name assumes that role instead of BedrockKeyGuardInventory', async () => {
    // Prepare
    await startOrg(() => {
      const o = organization();
      for (const m of o.members.values()) m.roleName = 'OrgKeyAuditor';
      return o;
    });

    // Act
    const byConfig = await inventory('--json', '--account', PROD);
    const byFlag = await inventory('--json', '--account', PROD, '--role-name', 'OrgKeyAuditor');

    // Assess
    expect(byConfig.code).toBe(3);
    expect(byConfig.stderr).toContain(
      `cannot assume arn:aws:iam::${PROD}:role/BedrockKeyGuardInventory (AccessDenied`,
    );
    expect(byFlag.code).toBe(0);
    expect(jsonRows(byFlag.stdout)).toHaveLength(2);
  });

  it("assumes the spoke's inventory role without --role-name, never organization.memberRoleName (it trusts only the hub's functions)", async () => {
    // Prepare: the config names another member role; the accounts hold the spoke's inventory role
    await startOrg(organization);
    writeFile(
      join(dir, 'keyguard.config.json'),
      JSON.stringify({
        ...ORG_CONFIG,
        organization: { ...ORG_CONFIG.organization, memberRoleName: 'OrgKeyAuditor' },
      }),
    );

    // Act
    const { code, stdout } = await inventory('--json', '--account', PROD);

    // Assess
    expect(code).toBe(0);
    expect(jsonRows(stdout)).toHaveLength(2);
    expect(org.calls('sts', 'AssumeRole').map((r) => r.params.RoleArn)).toEqual([
      `arn:aws:iam::${PROD}:role/BedrockKeyGuardInventory`,
    ]);
  });

  it('retries a throttled AssumeRole with the SDK’s backoff and reads the account', async () => {
    // Prepare
    await startOrg(() => {
      const o = organization();
      const prod = o.members.get(PROD);
      if (prod) prod.throttleAssumeRole = 2;
      return o;
    });

    // Act
    const { code, stdout } = await inventory('--json', '--account', PROD);

    // Assess
    expect(code).toBe(0);
    expect(jsonRows(stdout)).toHaveLength(2);
    expect(org.calls('sts', 'AssumeRole')).toHaveLength(3);
  });

  it('reads the caller’s own account with the caller’s credentials when it is governed (no member role there)', async () => {
    // Prepare: the whole organization (the root) is governed, the management account included.
    writeFile(
      join(dir, 'keyguard.config.json'),
      JSON.stringify({ ...ORG_CONFIG, organization: { ...ORG_CONFIG.organization, targets: ['r-ab12'] } }),
    );

    // Act
    const { code, stdout } = await inventory('--json');

    // Assess
    expect(code).toBe(3);
    expect(jsonRows(stdout).find((r) => r.accountId === MANAGEMENT)?.keyId).toBe('ACCAMANAGEMENTKEY0001');
    expect(org.calls('sts', 'AssumeRole').map((r) => r.params.RoleArn)).not.toContain(
      `arn:aws:iam::${MANAGEMENT}:role/BedrockKeyGuardInventory`,
    );
    expect(new Set(org.calls('iam').map((r) => r.callerAccount))).toEqual(new Set([MANAGEMENT, PROD, TEAM]));
  });

  it('an account whose member role may not read IAM is named with the reason; the others are read', async () => {
    // Prepare
    await startOrg(() => {
      const o = organization();
      const team = o.members.get(TEAM);
      if (team) team.denyIam = true;
      return o;
    });

    // Act
    const { code, stdout, stderr } = await inventory('--json');

    // Assess
    expect(code).toBe(3);
    expect([...new Set(jsonRows(stdout).map((r) => r.accountId))]).toEqual([PROD]);
    expect(stderr).toMatch(
      new RegExp(`\\nkeyguard: account ${TEAM} \\(team-a\\): access denied \\(User: .*iam:`),
    );
    expect(stderr).toContain(`keyguard: account ${SANDBOX} (sandbox): cannot assume`);
    expect(stderr).toMatch(new RegExp(`${PROD}\\s+prod-api\\s+\\S+ \\(base\\)\\s+2\\s+1\\s+ok`));
  });

  it('an AssumeRole throttled past the SDK’s retries is named as such; the others are read', async () => {
    // Prepare: STS with 2 attempts (the CLI's client has 6: the same path, shorter backoff).
    await startOrg(() => {
      const o = organization();
      const prod = o.members.get(PROD);
      if (prod) prod.throttleAssumeRole = 1000;
      return o;
    });
    const out = captureIO(dir);
    const deps = {
      ...defaultInventoryDeps(),
      sts: new STSClient({ region: 'us-east-1', maxAttempts: 2, retryMode: 'standard' }),
    };

    // Act
    const code = await runOrgInventory({ org: true, json: true }, out.io, deps);

    // Assess
    expect(code).toBe(3);
    expect(out.stderr()).toContain(
      `keyguard: account ${PROD} (prod-api): sts:AssumeRole of arn:aws:iam::${PROD}:role/BedrockKeyGuardInventory ` +
        "throttled past the SDK's retries (Throttling, 2 attempts)\n",
    );
    expect(jsonRows(out.stdout()).map((r) => r.accountId)).toEqual([TEAM]);
  });

  it('--concurrency 1 reads one account at a time; 1..50 are accepted, with the same rows', async () => {
    // Act
    const one = await inventory('--json', '--concurrency', '1');
    const requestsOfOne = org.requests.length;
    const fifty = await inventory('--json', '--concurrency', '50');

    // Assess: with 1, each account's requests (its AssumeRole to its last IAM read) end before the next one's begin.
    expect(accountsInFlight(org.requests.slice(0, requestsOfOne))).toBe(1);
    // The same rows whatever the concurrency.
    expect(one.code).toBe(3);
    expect(fifty.code).toBe(3);
    const keys = (t: string) =>
      jsonRows(t)
        .map((r) => r.keyId)
        .sort();
    expect(keys(one.stdout)).toEqual(keys(fifty.stdout));
    expect(keys(one.stdout)).toHaveLength(3);
  });

  it.each([
    [
      ['--ou', 'prod'],
      '--ou prod: not an organizational unit id (ou-…-…, e.g. ou-ab12-cd34ef56) or the root (r-…)',
    ],
    [['--account', '12345'], '--account 12345: not a 12-digit account id'],
    [['--concurrency', '0'], '--concurrency 0: must be a whole number from 1 to 50'],
    [['--concurrency', '51'], '--concurrency 51: must be a whole number from 1 to 50'],
    [['--concurrency', 'many'], '--concurrency many: must be a whole number from 1 to 50'],
    [
      ['--role-name', 'no spaces'],
      '--role-name no spaces: not an IAM role name (1-64 of a-z A-Z 0-9 _+=,.@-)',
    ],
    [['--json', '--csv'], '--json and --csv: choose one output format'],
  ])('exits 2 on bad usage %j, naming the flag and value, before calling AWS', async (args, message) => {
    // Act
    const { code, stdout, stderr } = await inventory(...args);

    // Assess
    expect(code).toBe(2);
    expect(stderr).toBe(`keyguard: ${message}\n`);
    expect(stdout).toBe('');
    expect(org.requests).toEqual([]);
  });

  it('exits 2 on --org without organization settings and without --ou/--account', async () => {
    // Prepare
    writeFile(join(dir, 'keyguard.config.json'), JSON.stringify(BASE));

    // Act
    const { code, stderr } = await inventory();

    // Assess
    expect(code).toBe(2);
    expect(stderr).toBe(
      `keyguard: --org: ${join(dir, 'keyguard.config.json')} has no "organization" settings: configure ` +
        'organization.targets, or name the accounts with --ou and/or --account\n',
    );
    // Only the stack is read (its output may name the deployed policy, which would be the config); nothing else.
    expect(org.requests.filter((r) => r.service !== 'cloudformation')).toEqual([]);
  });

  it('exits 2 on --ou, --account, --role-name or --concurrency without --org', async () => {
    // Act
    const out = captureIO(dir);
    const code = await main(['node', 'keyguard', 'inventory', '--ou', OU_PROD, '--concurrency', '3'], out.io);

    // Assess
    expect(code).toBe(2);
    expect(out.stderr()).toBe('keyguard: --ou, --concurrency: only with --org\n');
    expect(org.requests).toEqual([]);
  });

  it('exits 2 on an OU Organizations does not know: one line naming the call, region, profile and the OU', async () => {
    // Prepare: an OU that does not exist.
    // Act
    const { code, stderr } = await inventory('--ou', 'ou-ab12-missing1');

    // Assess
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /^keyguard: inventory --org: Organizations ListParents \(region us-east-1, default credential chain\): not found \(ChildNotFoundException: We can't find ou-ab12-missing1\)\. Check the name or id given[^\n]*\.\n$/,
    );
  });

  it('shows accounts read so far on a terminal only, and clears the line before the summary', async () => {
    // Prepare
    let terminal = '';
    const piped = captureIO(dir);
    const tty = captureIO(dir);
    const ttyIO = { ...tty.io, stderr: { write: (t: string) => (terminal += t), isTTY: true } };

    // Act
    await main(['node', 'keyguard', 'inventory', '--org', '--json'], piped.io);
    await main(['node', 'keyguard', 'inventory', '--org', '--json'], ttyIO);

    // Assess
    expect(piped.stderr()).not.toContain('account(s) read');
    expect(terminal).toContain('\r\x1b[Kinventory: 0/3 account(s) read, 0 key(s)');
    expect(terminal).toContain('\r\x1b[Kinventory: 3/3 account(s) read, 3 key(s)\r\x1b[K');
    expect(terminal.slice(terminal.lastIndexOf('\r\x1b[K') + 4)).toMatch(/^ACCOUNT\s+NAME\s+POLICY/);
  });

  it('documents --org and exit code 3 in --help', async () => {
    // Act
    const out = captureIO(dir);
    const code = await main(['node', 'keyguard', 'inventory', '--help'], out.io);

    // Assess
    expect(code).toBe(0);
    for (const option of [
      '--org',
      '--role-name <name>',
      '--ou <id>',
      '--account <id>',
      '--concurrency <n>',
    ]) {
      expect(out.stdout()).toContain(option);
    }
    expect(out.stdout()).toMatch(/\n\s+3\s+--org: some accounts could not be read/);
  });

  it('runs as a process through the SDK chain: exit 3, the unreadable account on stderr, no credentials printed', async () => {
    // Act: the executable, with only the environment to find AWS (a child process of its own).
    const env = { ...awsEnv(), PATH: process.env.PATH ?? '', HOME: dir };
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [join(REPO, 'bin', 'keyguard.js'), 'inventory', '--org', '--json', '--concurrency', '2'],
        { cwd: dir, env, timeout: 60_000 },
        (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
      );
    });

    // Assess
    expect(result.code).toBe(3);
    expect(
      jsonRows(result.stdout)
        .map((r) => r.accountId)
        .sort(),
    ).toEqual([PROD, PROD, TEAM]);
    expect(result.stderr).toContain(`keyguard: account ${SANDBOX} (sandbox): cannot assume`);
    expectNoCredentials(result.stdout + result.stderr);
  });
});

describe('keyguard inventory --org --fail-on', () => {
  it('exits 1 at or above the threshold when every account was read, 0 below it', async () => {
    // Act
    const at = await inventory('--json', '--account', TEAM, '--fail-on', 'low');
    const below = await inventory('--json', '--account', TEAM, '--fail-on', 'critical');

    // Assess
    const top = jsonRows(at.stdout).flatMap((r) => r.violations.map((v) => v.severity));
    expect(top.length).toBeGreaterThan(0);
    expect(top).not.toContain('critical');
    expect(at.code).toBe(1);
    expect(at.stderr).toContain(
      'keyguard: --fail-on low: 1 key(s) with a current violation of severity low or above (keys as read now, in the accounts read)\n',
    );
    expect(below.code).toBe(0);
    expect(below.stderr).not.toContain('--fail-on');
  });

  it('does not mask exit 3: an unread account wins over the posture, which is still said', async () => {
    // Act
    const { code, stderr } = await inventory('--json', '--fail-on', 'low');

    // Assess
    expect(code).toBe(3);
    expect(stderr).toContain(`keyguard: account ${SANDBOX} (sandbox): cannot assume`);
    expect(stderr).toContain('keyguard: --fail-on low: 2 key(s)');
  });

  it('exits 2 on a bad value, before Organizations is asked', async () => {
    // Act
    const { code, stderr } = await inventory('--fail-on', 'none');

    // Assess
    expect(code).toBe(2);
    expect(stderr).toBe('keyguard: --fail-on: got "none"; allowed: low, medium, high, critical\n');
    expect(org.calls('organizations', 'ListChildren')).toEqual([]);
  });
});
