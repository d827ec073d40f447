import { build, writeConfig } from './helpers';
import { HUB, ORG_CONFIG } from './org-support';

/**
 * Issue 12: the hub account of the management stacks comes from `organization.hubAccountId` in the config or from
 * `-c hubAccount=<id>`; both given and different is refused naming both, since the spokes would trust the wrong
 * account's roles.
 */

const OTHER = '555555555555';
const withHub = (hubAccountId: string) => ({
  ...ORG_CONFIG,
  organization: { ...ORG_CONFIG.organization, hubAccountId },
});

/** The hub account the spoke template names (its bus and the roles the member role trusts). */
function hubOfSpoke(context: Record<string, string>): string[] {
  const org = build({ context: { management: 'true', ...context } }).organization;
  if (!org) throw new Error('expected the organization stacks');
  const body = org.stackSet.spokes.templateBody;
  return [
    ...new Set([...body.matchAll(/:iam::(\d{12}):role\/BedrockKeyGuard-/g)].map((m) => m[1] as string)),
  ];
}

describe('hub account of the management stacks', () => {
  test('comes from organization.hubAccountId without -c hubAccount', () => {
    expect(hubOfSpoke({ config: writeConfig(withHub(HUB)) })).toEqual([HUB]);
  });

  test('comes from -c hubAccount without organization.hubAccountId (as before)', () => {
    expect(hubOfSpoke({ config: writeConfig(ORG_CONFIG), hubAccount: HUB })).toEqual([HUB]);
  });

  test('both given and equal: accepted', () => {
    expect(hubOfSpoke({ config: writeConfig(withHub(HUB)), hubAccount: HUB })).toEqual([HUB]);
  });

  test('both given and different: synth fails naming both values and the config file', () => {
    const file = writeConfig(withHub(HUB));
    expect(() => build({ context: { config: file, management: 'true', hubAccount: OTHER } })).toThrow(
      `context hubAccount: got "${OTHER}", but ${file}: organization.hubAccountId is "${HUB}"`,
    );
  });

  test('neither given: synth fails naming both ways to give it', () => {
    expect(() => build({ context: { config: writeConfig(ORG_CONFIG), management: 'true' } })).toThrow(
      /context hubAccount: got null; .*unless the config sets organization\.hubAccountId/,
    );
  });
});
