import {
  ChildNotFoundException,
  DescribeAccountCommand,
  ListParentsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import {
  NOT_MEMBER_TTL_MS,
  OrgPlacement,
  orgPlacementFromEnv,
  PLACEMENT_TTL_MS,
  ungovernedReason,
} from '../../lambda/adapters/org-placement';
import { OrganizationSchema } from '../../lambda/shared/config';

const orgs = mockClient(OrganizationsClient);
const sts = mockClient(STSClient);
const ROOT = 'r-ab12';
const OU_TOP = 'ou-ab12-top00001';
const OU_SANDBOX = 'ou-ab12-sandbox1';
const ACCOUNT = '333333333333';
const T0 = new Date('2026-11-20T09:00:00Z');

const organization = OrganizationSchema.parse({
  id: 'o-a1b2c3d4e5',
  managementAccountId: '111111111111',
  targets: [OU_TOP],
  excludeAccounts: ['222222222222'],
});

/** ACCOUNT sits in root / OU_TOP / OU_SANDBOX; any other child is unknown to the organization. */
function answerOrganization(failFirst?: Error) {
  let calls = 0;
  orgs.on(ListParentsCommand).callsFake((input: { ChildId: string }) => {
    calls += 1;
    if (failFirst && calls === 1) throw failFirst;
    const parents: Record<string, { Id: string; Type: string }> = {
      [ACCOUNT]: { Id: OU_SANDBOX, Type: 'ORGANIZATIONAL_UNIT' },
      [OU_SANDBOX]: { Id: OU_TOP, Type: 'ORGANIZATIONAL_UNIT' },
      [OU_TOP]: { Id: ROOT, Type: 'ROOT' },
    };
    const p = parents[input.ChildId];
    if (!p) throw new ChildNotFoundException({ message: 'not found', $metadata: {} });
    return { Parents: [p] };
  });
  orgs
    .on(DescribeAccountCommand)
    .resolves({ Account: { Id: ACCOUNT, Name: 'sandbox-team-a', State: 'ACTIVE' } });
}

beforeEach(() => {
  orgs.reset();
  sts.reset();
});

describe('OrgPlacement', () => {
  it("walks ListParents to the root: the account's OU path root first, its name and state", async () => {
    // Prepare
    answerOrganization();
    const placement = new OrgPlacement({ organizations: new OrganizationsClient({}) });

    // Act
    const found = await placement.locate(ACCOUNT);

    // Assess
    expect(found).toEqual({
      accountId: ACCOUNT,
      ouPath: [OU_TOP, OU_SANDBOX],
      name: 'sandbox-team-a',
      active: true,
    });
    expect(orgs.commandCalls(ListParentsCommand).map((c) => c.args[0].input.ChildId)).toEqual([
      ACCOUNT,
      OU_SANDBOX,
      OU_TOP,
    ]);
  });

  it('caches per account for an hour, a non-member for five minutes', async () => {
    // Prepare
    answerOrganization();
    let now = T0;
    const placement = new OrgPlacement({ organizations: new OrganizationsClient({}), now: () => now });

    // Act
    await placement.locate(ACCOUNT);
    const stranger = await placement.locate('555555555555');
    now = new Date(T0.getTime() + NOT_MEMBER_TTL_MS - 1);
    await placement.locate(ACCOUNT);
    await placement.locate('555555555555');
    const callsWithinTtl = orgs.commandCalls(ListParentsCommand).length;
    now = new Date(T0.getTime() + NOT_MEMBER_TTL_MS + 1);
    await placement.locate('555555555555');
    now = new Date(T0.getTime() + PLACEMENT_TTL_MS + 1);
    await placement.locate(ACCOUNT);

    // Assess
    expect(stranger).toBeNull();
    expect(callsWithinTtl).toBe(4);
    expect(orgs.commandCalls(ListParentsCommand)).toHaveLength(4 + 1 + 3);
  });

  it('does not keep a failure: the next call asks again', async () => {
    // Prepare
    answerOrganization(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    const placement = new OrgPlacement({ organizations: new OrganizationsClient({}) });

    // Act
    const failure = await placement.locate(ACCOUNT).catch((e: unknown) => e as Error);
    const found = await placement.locate(ACCOUNT);

    // Assess
    expect((failure as Error).name).toBe('AccessDeniedException');
    expect(found?.ouPath).toEqual([OU_TOP, OU_SANDBOX]);
  });

  it('reads through the management reader role when one is given, with the function session name', async () => {
    // Prepare
    answerOrganization();
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIAREADER',
        SecretAccessKey: 's',
        SessionToken: 't',
        Expiration: new Date(Date.now() + 3_600_000),
      },
    });
    const reader = 'arn:aws:iam::111111111111:role/BedrockKeyGuardOrgReader';
    const placement = orgPlacementFromEnv({ ORG_READER_ROLE_ARN: reader }, 'credential-event');

    // Act
    await placement.locate(ACCOUNT);
    const client = orgs.commandCalls(ListParentsCommand)[0]?.thisValue as OrganizationsClient;
    const creds = await (client.config.credentials as () => Promise<{ accessKeyId: string }>)();

    // Assess
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: reader,
      RoleSessionName: 'keyguard-credential-event',
    });
    expect(creds.accessKeyId).toBe('ASIAREADER');
    expect(await client.config.region()).toBe('us-east-1');
  });
});

describe('ungovernedReason', () => {
  const under = { accountId: ACCOUNT, ouPath: [OU_TOP, OU_SANDBOX], name: null, active: true };

  it('governs an ACTIVE member under a target (nested OUs included) and the hub always', () => {
    expect(ungovernedReason(organization, '999999999999', ACCOUNT, under)).toBeNull();
    expect(ungovernedReason(organization, '999999999999', '999999999999', null)).toBeNull();
  });

  it('governs every ACTIVE member, even one directly under the root, when a target is the root', () => {
    const wholeOrg = { ...organization, targets: [ROOT] };
    expect(ungovernedReason(wholeOrg, '9', ACCOUNT, { ...under, ouPath: [] })).toBeNull();
    expect(ungovernedReason(wholeOrg, '9', ACCOUNT, null)).toBe('not a member of organization o-a1b2c3d4e5');
  });

  it('refuses excluded accounts, non-members, accounts outside the targets and accounts not ACTIVE', () => {
    expect(
      ungovernedReason(organization, '9', '222222222222', { ...under, accountId: '222222222222' }),
    ).toContain('excludeAccounts');
    expect(ungovernedReason(organization, '9', ACCOUNT, null)).toBe(
      'not a member of organization o-a1b2c3d4e5',
    );
    expect(
      ungovernedReason(organization, '9', ACCOUNT, { ...under, ouPath: ['ou-ab12-elsewhere'] }),
    ).toContain('not under organization.targets');
    expect(ungovernedReason(organization, '9', ACCOUNT, { ...under, active: false })).toBe(
      'not ACTIVE in Organizations',
    );
  });
});
