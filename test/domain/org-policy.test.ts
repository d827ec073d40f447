import { effectivePolicy, overrideVersion } from '../../lambda/domain/org-policy';
import { functionPolicy, type Override, parseConfig, policyVersion } from '../../lambda/shared/config';

const config = parseConfig({
  mode: 'audit',
  maxAgeDays: 90,
  organization: { id: 'o-a1b2c3d4e5', managementAccountId: '111111111111', targets: ['r-ab12'] },
  overrides: [
    { ous: ['ou-ab12-sandbox1'], mode: 'enforce', maxAgeDays: 30 },
    { ous: ['ou-ab12-workload'], maxAgeDays: 60 },
    { accounts: ['333333333333'], allowLongTermKeys: false },
  ],
});
const base = functionPolicy(config);
const version = policyVersion(config);
const [sandbox, workloads, account] = config.overrides as [Override, Override, Override];

describe('effectivePolicy: account over OU over the base policy, nearest OU first', () => {
  it.each([
    ['an account in no overridden OU', { accountId: '444444444444', ouPath: ['ou-ab12-other001'] }, null, {}],
    [
      'an account directly in the sandbox OU',
      { accountId: '444444444444', ouPath: ['ou-ab12-sandbox1'] },
      'ou:ou-ab12-sandbox1',
      { mode: 'enforce', maxAgeDays: 30 },
    ],
    [
      'an account in a sandbox OU nested under workloads (the nearer OU wins)',
      { accountId: '444444444444', ouPath: ['ou-ab12-workload', 'ou-ab12-sandbox1'] },
      'ou:ou-ab12-sandbox1',
      { mode: 'enforce', maxAgeDays: 30 },
    ],
    [
      'an account named by an override inside an overridden OU (the account wins)',
      { accountId: '333333333333', ouPath: ['ou-ab12-sandbox1'] },
      'account:333333333333',
      { allowLongTermKeys: false, mode: 'audit', maxAgeDays: 90 },
    ],
  ])('%s', (_what, placement, applied, changed) => {
    const result = effectivePolicy(base, version, config.overrides, placement);
    expect(result.appliedOverride).toBe(applied);
    expect(result.policy).toEqual({ ...base, ...changed });
    expect(result.policyVersion === version).toBe(applied === null);
  });

  it('gives each override its own stable version, which changes with the base policy', () => {
    expect(overrideVersion(version, sandbox)).toMatch(/^p-[0-9a-f]{12}$/);
    expect(overrideVersion(version, sandbox)).toBe(overrideVersion(version, { ...sandbox }));
    expect(
      new Set([
        overrideVersion(version, sandbox),
        overrideVersion(version, workloads),
        overrideVersion(version, account),
      ]).size,
    ).toBe(3);
    expect(overrideVersion('p-000000000000', sandbox)).not.toBe(overrideVersion(version, sandbox));
    // The OUs or accounts an override names are where it applies, not what it decides: same settings, same version.
    expect(overrideVersion(version, { ...sandbox, ous: ['ou-ab12-elsewhere'] })).toBe(
      overrideVersion(version, sandbox),
    );
  });
});
