import { ORG_EXCLUDED_MAX, ORG_TARGETS_MAX } from '../../lambda/shared/config';
import { largestConfig } from '../support/largest-config';

/** Accounts and ids of the organization the organization-mode tests deploy to. */
export const ORG_ID = 'o-a1b2c3d4e5';
export const MANAGEMENT = '111111111111';
export const HUB = '222222222222';
export const EXCLUDED = '333333333333';
export const MEMBER = '444444444444';
export const OUTSIDE = '999999999999';
export const TARGETS = ['ou-ab12-cd34ef56', 'r-ab12'];

/** A config in organization mode, with usage in us-east-1 and eu-west-1 and a scanned log group (every decider). */
export const ORG_CONFIG = {
  mode: 'enforce',
  usage: { regions: ['us-east-1', 'eu-west-1'] },
  leakDetection: { logGroups: ['/aws/app/one'] },
  organization: {
    id: ORG_ID,
    managementAccountId: MANAGEMENT,
    targets: TARGETS,
    excludeAccounts: [EXCLUDED],
    memberRoleName: 'BedrockKeyGuardMember',
    sweepConcurrency: 5,
  },
  overrides: [{ ous: ['ou-ab12-sandbox01'], mode: 'enforce', maxAgeDays: 30 }],
};

/** The largest config the schema accepts, in organization mode with every organization list and name at its longest. */
export function largestOrgConfig(): Record<string, unknown> {
  const digits = (i: number) => String(100000000000 + i);
  return {
    ...largestConfig(),
    organization: {
      id: `o-${'a'.repeat(32)}`,
      managementAccountId: MANAGEMENT,
      targets: Array.from(
        { length: ORG_TARGETS_MAX },
        (_v, i) => `ou-${`${i}`.padEnd(32, 'a')}-${'b'.repeat(32)}`,
      ),
      excludeAccounts: Array.from({ length: ORG_EXCLUDED_MAX }, (_v, i) => digits(i)),
      memberRoleName: 'M'.repeat(64),
      sweepConcurrency: 1000,
    },
  };
}
