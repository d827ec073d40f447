import { GetParameterCommand, SSMClient, SSMServiceException } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import {
  OrgSettingsLoader,
  orgSettingsLoaderFromEnv,
  parseOrgSettings,
  readOrgSettings,
} from '../../lambda/adapters/org-settings';
import { ConfigError, orgSettings, parseConfig } from '../../lambda/shared/config';

const ssm = mockClient(SSMClient);
const PARAM = '/keyguard/org-settings';

const config = parseConfig({
  organization: {
    id: 'o-a1b2c3d4e5',
    managementAccountId: '111111111111',
    targets: ['ou-ab12-cd34ef56'],
    excludeAccounts: ['222222222222'],
  },
  overrides: [{ ous: ['ou-ab12-sandbox1'], mode: 'enforce', maxAgeDays: 30 }],
});
const VALUE = JSON.stringify(orgSettings(config));

function throttled() {
  return new SSMServiceException({
    name: 'ThrottlingException',
    $fault: 'client',
    $metadata: {},
    message: 'Rate exceeded',
  });
}

beforeEach(() => ssm.reset());

describe('organization settings from SSM', () => {
  it('reads the parameter the stack wrote and parses it', async () => {
    // Prepare
    ssm.on(GetParameterCommand).resolves({ Parameter: { Name: PARAM, Value: VALUE } });

    // Act
    const settings = await readOrgSettings(new SSMClient({}), PARAM);

    // Assess
    expect(ssm).toHaveReceivedCommandWith(GetParameterCommand, { Name: PARAM });
    expect(settings).toEqual(orgSettings(config));
    expect(settings.organization.memberRoleName).toBe('BedrockKeyGuardMember');
  });

  it('names the parameter, the key and the value of a bad setting', () => {
    // Prepare
    const bad = JSON.parse(VALUE);
    bad.organization.sweepConcurrency = 0;

    // Act
    const failure = (() => {
      try {
        parseOrgSettings(JSON.stringify(bad), PARAM);
      } catch (e) {
        return e;
      }
      return null;
    })();

    // Assess
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toContain(
      `SSM parameter ${PARAM}: organization.sweepConcurrency: got 0; allowed: >= 2`,
    );
  });

  it('names the parameter of a value that is not JSON, and of a missing parameter', async () => {
    // Prepare
    ssm
      .on(GetParameterCommand)
      .rejectsOnce(
        new SSMServiceException({ name: 'ParameterNotFound', $fault: 'client', $metadata: {}, message: '' }),
      );

    // Act
    const notJson = (() => {
      try {
        parseOrgSettings('{organization', PARAM);
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    const missing = await readOrgSettings(new SSMClient({}), PARAM).catch((e: unknown) => e as Error);

    // Assess
    expect(notJson?.message).toMatch(new RegExp(`^SSM parameter ${PARAM}: not valid JSON`));
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as Error).message).toContain(`SSM parameter ${PARAM}: not found`);
  });

  it('reads once per container; a bad value keeps failing; an SSM failure is read again next time', async () => {
    // Prepare
    ssm
      .on(GetParameterCommand)
      .rejectsOnce(throttled())
      .resolves({ Parameter: { Name: PARAM, Value: VALUE } });
    const loader = new OrgSettingsLoader(new SSMClient({}), PARAM);
    const badLoader = new OrgSettingsLoader(new SSMClient({}), '/bad');

    // Act
    const first = await loader.get().catch((e: unknown) => e as Error);
    const second = await loader.get();
    const third = await loader.get();
    ssm.on(GetParameterCommand, { Name: '/bad' }).resolves({ Parameter: { Value: '{}' } });
    const bad1 = await badLoader.get().catch((e: unknown) => e as Error);
    const bad2 = await badLoader.get().catch((e: unknown) => e as Error);

    // Assess
    expect((first as Error).name).toBe('ThrottlingException');
    expect(third).toBe(second);
    expect(ssm.commandCalls(GetParameterCommand, { Name: PARAM })).toHaveLength(2);
    expect(bad1).toBeInstanceOf(ConfigError);
    expect(bad2).toBe(bad1);
    expect(ssm.commandCalls(GetParameterCommand, { Name: '/bad' })).toHaveLength(1);
  });

  it('is off without ORG_SETTINGS_PARAMETER (single-account mode)', () => {
    expect(orgSettingsLoaderFromEnv({})).toBeNull();
    expect(orgSettingsLoaderFromEnv({ ORG_SETTINGS_PARAMETER: ' ' })).toBeNull();
    expect(
      orgSettingsLoaderFromEnv({ ORG_SETTINGS_PARAMETER: PARAM }, new SSMClient({}))?.parameterName,
    ).toBe(PARAM);
  });
});
