import {
  type Account,
  DescribeAccountCommand,
  ListAccountsForParentCommand,
  ListChildrenCommand,
  ListParentsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { SDK_MAX_ATTEMPTS } from '../../lambda/adapters/clients';
import {
  assumedRoleCredentials,
  listGovernedAccounts,
  organizationsClient,
} from '../../lambda/adapters/organizations';

const org = mockClient(OrganizationsClient);
const sts = mockClient(STSClient);

/**
 * A fake organization: root r-root > ou-a (accounts 1, 2 suspended) > ou-a-b (accounts 3, 4) > ou-a-b-c (5);
 * root > ou-z (6); root > 7 (the hub). Answers paginated by one item per page, as Organizations may.
 */
const PARENT: Record<string, string> = {
  'ou-a': 'r-root',
  'ou-a-b': 'ou-a',
  'ou-a-b-c': 'ou-a-b',
  'ou-z': 'r-root',
  '111111111111': 'ou-a',
  '222222222222': 'ou-a',
  '333333333333': 'ou-a-b',
  '444444444444': 'ou-a-b',
  '555555555555': 'ou-a-b-c',
  '666666666666': 'ou-z',
  '777777777777': 'r-root',
};
const SUSPENDED = new Set(['222222222222']);

function account(id: string): Account {
  return { Id: id, Name: `acct-${id.slice(0, 3)}`, State: SUSPENDED.has(id) ? 'SUSPENDED' : 'ACTIVE' };
}

function install(): void {
  org.on(ListParentsCommand).callsFake(({ ChildId }: { ChildId: string }) => {
    const p = PARENT[ChildId];
    return { Parents: p ? [{ Id: p, Type: p.startsWith('r-') ? 'ROOT' : 'ORGANIZATIONAL_UNIT' }] : [] };
  });
  const paged = <T>(items: T[], token: string | undefined) => {
    const i = token ? Number(token) : 0;
    return { items: items.slice(i, i + 1), next: i + 1 < items.length ? String(i + 1) : undefined };
  };
  org.on(ListAccountsForParentCommand).callsFake(({ ParentId, NextToken }) => {
    const ids = Object.keys(PARENT).filter((k) => /^\d{12}$/.test(k) && PARENT[k] === ParentId);
    const page = paged(ids, NextToken);
    return { Accounts: page.items.map(account), NextToken: page.next };
  });
  org.on(ListChildrenCommand).callsFake(({ ParentId, NextToken }) => {
    const ids = Object.keys(PARENT).filter((k) => k.startsWith('ou-') && PARENT[k] === ParentId);
    const page = paged(ids, NextToken);
    return { Children: page.items.map((Id) => ({ Id, Type: 'ORGANIZATIONAL_UNIT' })), NextToken: page.next };
  });
  org.on(DescribeAccountCommand).callsFake(({ AccountId }) => ({ Account: account(AccountId) }));
}

beforeEach(() => {
  org.reset();
  sts.reset();
  install();
});

const client = () => new OrganizationsClient({ region: 'us-east-1' });

describe('listGovernedAccounts', () => {
  it('lists ACTIVE accounts under an OU, nested OUs included, with OU paths from the root down and names', async () => {
    const got = await listGovernedAccounts(client(), {
      targets: ['ou-a'],
      excludeAccounts: [],
      hubAccountId: '777777777777',
    });
    expect(got).toEqual([
      { accountId: '111111111111', name: 'acct-111', ouPath: ['ou-a'] },
      { accountId: '333333333333', name: 'acct-333', ouPath: ['ou-a', 'ou-a-b'] },
      { accountId: '444444444444', name: 'acct-444', ouPath: ['ou-a', 'ou-a-b'] },
      { accountId: '555555555555', name: 'acct-555', ouPath: ['ou-a', 'ou-a-b', 'ou-a-b-c'] },
      // The hub is outside the target: added, with its own placement (directly under the root).
      { accountId: '777777777777', name: 'acct-777', ouPath: [] },
    ]);
    // Suspended account 2 skipped; ou-z never read.
    expect(org.commandCalls(ListAccountsForParentCommand).map((c) => c.args[0].input.ParentId)).not.toContain(
      'ou-z',
    );
  });

  it('reads a nested target placed under its ancestors, and follows every page', async () => {
    const got = await listGovernedAccounts(client(), {
      targets: ['ou-a-b'],
      excludeAccounts: [],
      hubAccountId: '777777777777',
    });
    expect(got.map((a) => [a.accountId, a.ouPath])).toEqual([
      ['333333333333', ['ou-a', 'ou-a-b']],
      ['444444444444', ['ou-a', 'ou-a-b']],
      ['555555555555', ['ou-a', 'ou-a-b', 'ou-a-b-c']],
      ['777777777777', []],
    ]);
    // Two accounts under ou-a-b, one per page: two calls for that parent.
    const forB = org
      .commandCalls(ListAccountsForParentCommand)
      .filter((c) => c.args[0].input.ParentId === 'ou-a-b');
    expect(forB).toHaveLength(2);
  });

  it('the root covers every ACTIVE account once (overlapping targets too), minus exclusions; the hub stays', async () => {
    const got = await listGovernedAccounts(client(), {
      targets: ['r-root', 'ou-a-b'],
      excludeAccounts: ['444444444444', '777777777777'],
      hubAccountId: '777777777777',
    });
    expect(got.map((a) => a.accountId)).toEqual([
      '111111111111',
      '333333333333',
      '555555555555',
      '666666666666',
      '777777777777',
    ]);
    expect(got.find((a) => a.accountId === '666666666666')?.ouPath).toEqual(['ou-z']);
    expect(org.commandCalls(DescribeAccountCommand)).toHaveLength(0);
  });

  it('fails the whole listing, naming the target, when Organizations refuses (never a partial list)', async () => {
    org
      .on(ListChildrenCommand, { ParentId: 'ou-a-b' })
      .rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    await expect(
      listGovernedAccounts(client(), {
        targets: ['ou-a'],
        excludeAccounts: [],
        hubAccountId: '777777777777',
      }),
    ).rejects.toThrow('Organizations: reading target ou-a: not authorized');
  });
});

describe('organizationsClient and assumedRoleCredentials', () => {
  it('reads through the reader role when ORG_READER_ROLE_ARN is set, with the given session name', async () => {
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIAEXAMPLE',
        SecretAccessKey: 'secret',
        SessionToken: 'token',
        Expiration: new Date(Date.now() + 3600_000),
      },
    });
    const c = organizationsClient(
      { ORG_READER_ROLE_ARN: 'arn:aws:iam::999999999999:role/BedrockKeyGuardOrgReader' },
      'keyguard-org-sweep',
      new STSClient({ region: 'us-east-1' }),
    );
    // aws-sdk-client-mock replaces send(): the credentials are what the client's signer would resolve.
    const credentials = c.config.credentials as () => Promise<{ accessKeyId: string }>;
    expect((await credentials()).accessKeyId).toBe('ASIAEXAMPLE');
    expect((await credentials()).accessKeyId).toBe('ASIAEXAMPLE');
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: 'arn:aws:iam::999999999999:role/BedrockKeyGuardOrgReader',
      RoleSessionName: 'keyguard-org-sweep',
    });
    // Cached: one AssumeRole for both.
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(1);
  });

  it('retries throttling with the SDK standard retry mode, as every keyguard client', async () => {
    const c = organizationsClient({}, 'keyguard-org-sweep');
    expect(await c.config.maxAttempts()).toBe(SDK_MAX_ATTEMPTS);
    expect(c.config.retryMode).toBe('standard');
    expect(await c.config.region()).toBe('us-east-1');
  });

  it('uses the caller own credentials when no reader role is configured', async () => {
    const c = organizationsClient({ ORG_READER_ROLE_ARN: ' ' }, 'keyguard-org-sweep');
    // The SDK's default chain, not the assume-role provider: resolving it asks STS nothing.
    await (c.config.credentials as () => Promise<unknown>)().catch(() => undefined);
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(0);
  });

  it('renews credentials 5 minutes before they expire', async () => {
    let now = Date.parse('2026-12-01T00:00:00Z');
    let n = 0;
    sts.on(AssumeRoleCommand).callsFake(() => {
      n += 1;
      return {
        Credentials: {
          AccessKeyId: `ASIA${n}`,
          SecretAccessKey: 's',
          SessionToken: 't',
          Expiration: new Date(now + 3600_000),
        },
      };
    });
    const get = assumedRoleCredentials(
      'arn:aws:iam::999999999999:role/R',
      'keyguard-x',
      new STSClient({ region: 'us-east-1' }),
      () => now,
    );
    expect((await get()).accessKeyId).toBe('ASIA1');
    now += 54 * 60_000;
    expect((await get()).accessKeyId).toBe('ASIA1');
    now += 2 * 60_000;
    expect((await get()).accessKeyId).toBe('ASIA2');
  });
});
