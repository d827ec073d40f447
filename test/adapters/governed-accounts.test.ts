import { IAMClient } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import { GovernedAccounts } from '../../lambda/adapters/governed-accounts';
import { MemberAccess } from '../../lambda/adapters/member-access';
import type { AccountInOrganization, AccountLocator } from '../../lambda/adapters/org-placement';
import { overrideVersion } from '../../lambda/domain/org-policy';
import { type OrgSettings, OrgSettingsSchema, parseConfig, policyVersion } from '../../lambda/shared/config';

const HUB = '999999999999';
const MEMBER = '333333333333';
const OU = 'ou-ab12-workload';
const OU_SANDBOX = 'ou-ab12-sandbox1';

/** A locator answering from a table, counting the questions; `fail` makes it throw (reader unavailable). */
class FakeLocator implements AccountLocator {
  asked: string[] = [];
  fail = false;
  constructor(private readonly known: Record<string, AccountInOrganization>) {}
  async locate(accountId: string): Promise<AccountInOrganization | null> {
    this.asked.push(accountId);
    if (this.fail) throw Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
    return this.known[accountId] ?? null;
  }
}

function settingsWith(overrides: unknown[]): OrgSettings {
  return OrgSettingsSchema.parse({
    organization: { id: 'o-a1b2c3d4e5', managementAccountId: '111111111111', targets: [OU] },
    overrides,
  });
}

function accountsWith(settings: OrgSettings, locator: AccountLocator): GovernedAccounts {
  const access = new MemberAccess({
    organization: settings.organization,
    hubAccountId: HUB,
    functionName: 'credential-event',
    hubIam: new IAMClient({ region: 'us-east-1' }),
    sts: new STSClient({ region: 'us-east-1' }),
  });
  return new GovernedAccounts(settings, access, locator);
}

const placed = (accountId: string, ouPath: string[]): AccountInOrganization => ({
  accountId,
  ouPath,
  name: `name-${accountId}`,
  active: true,
});

describe('GovernedAccounts', () => {
  it('governs a member under the targets, with its OU path and name, and picks its override', async () => {
    // Prepare
    const settings = settingsWith([{ ous: [OU_SANDBOX], mode: 'enforce' }]);
    const accounts = accountsWith(settings, new FakeLocator({ [MEMBER]: placed(MEMBER, [OU, OU_SANDBOX]) }));
    const base = parseConfig({});

    // Act
    const g = await accounts.check(MEMBER);
    const policy = g.governed ? accounts.policyFor(base, policyVersion(base), g.placement) : null;

    // Assess
    expect(g).toEqual({
      governed: true,
      accountId: MEMBER,
      name: `name-${MEMBER}`,
      placement: { accountId: MEMBER, ouPath: [OU, OU_SANDBOX] },
    });
    expect(policy?.policy.mode).toBe('enforce');
    expect(policy?.policyVersion).toBe(
      overrideVersion(policyVersion(base), settings.overrides[0] as OrgSettings['overrides'][0]),
    );
  });

  it('governs the hub without asking Organizations when no OU override could apply to it', async () => {
    // Prepare
    const locator = new FakeLocator({});
    locator.fail = true;
    const accounts = accountsWith(settingsWith([{ accounts: [MEMBER], mode: 'enforce' }]), locator);

    // Act
    const g = await accounts.check(HUB);

    // Assess
    expect(g).toMatchObject({ governed: true, placement: { accountId: HUB, ouPath: [] } });
    expect(locator.asked).toEqual([]);
  });

  it("asks Organizations for the hub's OU path when an OU override exists, and fails when it cannot be read", async () => {
    // Prepare
    const locator = new FakeLocator({ [HUB]: placed(HUB, [OU_SANDBOX]) });
    const accounts = accountsWith(settingsWith([{ ous: [OU_SANDBOX], mode: 'enforce' }]), locator);

    // Act
    const g = await accounts.check(HUB);
    locator.fail = true;
    const failure = await accounts.check(HUB).catch((e: unknown) => e as Error);

    // Assess
    expect(g).toMatchObject({ governed: true, placement: { ouPath: [OU_SANDBOX] } });
    expect((failure as Error).name).toBe('AccessDeniedException');
  });

  it('refuses excluded and malformed accounts before asking Organizations; the name lookup never throws', async () => {
    // Prepare
    const settings = OrgSettingsSchema.parse({
      organization: {
        id: 'o-a1b2c3d4e5',
        managementAccountId: '111111111111',
        targets: [OU],
        excludeAccounts: [MEMBER],
      },
      overrides: [],
    });
    const locator = new FakeLocator({});
    const accounts = accountsWith(settings, locator);

    // Act
    const excluded = await accounts.check(MEMBER);
    const malformed = await accounts.check('not-an-account');
    locator.fail = true;
    const name = await accounts.accountName('444444444444');

    // Assess
    expect(excluded).toMatchObject({ governed: false, reason: 'listed in organization.excludeAccounts' });
    expect(malformed).toMatchObject({ governed: false, reason: 'not a 12-digit account id' });
    expect(locator.asked).toEqual(['444444444444']);
    expect(name).toBeNull();
  });
});
