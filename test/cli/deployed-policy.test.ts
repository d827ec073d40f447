import { join } from 'node:path';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import {
  choosePolicy,
  DeployedPolicyError,
  POLICY_PARAMETER_ENV,
  policyLine,
} from '../../lambda/cli/deployed-policy';
import { type ConfigInput, orgSettings, parseConfig, policyVersion } from '../../lambda/shared/config';
import { publishedPolicy } from '../../lambda/shared/effective-policy';
import { largestConfig } from '../support/largest-config';
import { captureIO, removeTempDirs, tempDir, writeFile } from './helpers';

const ssm = mockClient(SSMClient);
const PARAMETER = '/BedrockKeyGuard/effective-policy/standard';
const ORG_PARAMETER = '/bedrock-key-guard/organization-settings';
const DEPLOYED: ConfigInput = { mode: 'enforce', maxAgeDays: 30 };
const DEPLOYED_VERSION = policyVersion(parseConfig(DEPLOYED));

afterAll(removeTempDirs);
beforeEach(() => ssm.reset());

function publish(input: ConfigInput, name = PARAMETER): void {
  ssm
    .on(GetParameterCommand, { Name: name })
    .resolves({ Parameter: { Name: name, Value: publishedPolicy(parseConfig(input)).value } });
}

function deps(env: NodeJS.ProcessEnv = { [POLICY_PARAMETER_ENV]: PARAMETER }) {
  return { ssm: () => new SSMClient({ region: 'us-east-1' }), env };
}

/** A working directory, with ./keyguard.config.json when `local` is given. */
function cwd(local?: ConfigInput | string): string {
  const dir = tempDir();
  if (local !== undefined)
    writeFile(join(dir, 'keyguard.config.json'), typeof local === 'string' ? local : JSON.stringify(local));
  return dir;
}

describe('choosePolicy', () => {
  test('no parameter named: the local file, else the built-in defaults, as without a stack; SSM is not called', async () => {
    // Prepare
    const withFile = captureIO(cwd({ maxAgeDays: 7 }));
    const bare = captureIO(cwd());
    // Act
    const fromFile = await choosePolicy({}, withFile.io, deps({}));
    const defaults = await choosePolicy({}, bare.io, deps({}));
    // Assess
    expect(fromFile).toMatchObject({
      source: 'file',
      policyVersion: policyVersion(parseConfig({ maxAgeDays: 7 })),
    });
    expect(fromFile.label).toMatch(/keyguard\.config\.json$/);
    expect(defaults).toMatchObject({ source: 'defaults', label: 'built-in defaults' });
    expect(ssm.calls()).toHaveLength(0);
    expect(withFile.stderr() + bare.stderr()).toBe('');
  });

  test('a parameter named (variable or option): the deployed policy, validated, with its version', async () => {
    // Prepare
    publish(DEPLOYED);
    const { io, stderr } = captureIO(cwd());
    // Act
    const byEnv = await choosePolicy({}, io, deps());
    const byFlag = await choosePolicy({ policyParameter: PARAMETER }, io, deps({}));
    // Assess
    for (const chosen of [byEnv, byFlag]) {
      expect(chosen).toMatchObject({
        source: 'deployed',
        policyVersion: DEPLOYED_VERSION,
        label: `deployed, SSM parameter ${PARAMETER}`,
      });
      expect(chosen.config).toEqual(parseConfig(DEPLOYED));
    }
    expect(ssm).toHaveReceivedCommandWith(GetParameterCommand, { Name: PARAMETER });
    expect(policyLine(byEnv)).toBe(`Policy: ${DEPLOYED_VERSION} (deployed, SSM parameter ${PARAMETER}).`);
    expect(stderr()).toBe('');
  });

  test('the stack output names the parameter when neither the option nor the variable does', async () => {
    // Prepare
    publish(DEPLOYED);
    const { io } = captureIO(cwd());
    // Act
    const chosen = await choosePolicy({}, io, { ...deps({}), stackParameter: async () => PARAMETER });
    // Assess
    expect(chosen).toMatchObject({ source: 'deployed', policyVersion: DEPLOYED_VERSION });
  });

  test('a named parameter is never skipped for want of an SSM client (no silent fall back to the local file)', async () => {
    // Prepare
    const { io } = captureIO(cwd({ maxAgeDays: 7 }));
    // Act
    const chosen = choosePolicy({}, io, { env: { [POLICY_PARAMETER_ENV]: PARAMETER } });
    // Assess
    await expect(chosen).rejects.toThrow(
      `no SSM client to read the deployed policy (SSM parameter ${PARAMETER})`,
    );
  });

  test('--config FILE wins: the deployed policy is not read', async () => {
    // Prepare
    publish(DEPLOYED);
    const dir = cwd();
    const file = writeFile(join(dir, 'strict.json'), JSON.stringify({ maxAgeDays: 7 }));
    const { io, stderr } = captureIO(dir);
    // Act
    const chosen = await choosePolicy({ config: file }, io, deps());
    // Assess
    expect(chosen).toMatchObject({ source: 'file', label: file });
    expect(chosen.config.maxAgeDays).toBe(7);
    expect(ssm.calls()).toHaveLength(0);
    expect(stderr()).toBe('');
  });

  test('a local keyguard.config.json that differs: one stderr line naming both versions and --config', async () => {
    // Prepare
    publish(DEPLOYED);
    const local = { mode: 'audit' as const, maxAgeDays: 30 };
    const { io, stderr } = captureIO(cwd(local));
    // Act
    const chosen = await choosePolicy({}, io, deps());
    // Assess
    expect(chosen.source).toBe('deployed');
    expect(stderr()).toBe(
      `keyguard: ./keyguard.config.json (policy ${policyVersion(parseConfig(local))}) differs from the deployed ` +
        `policy ${DEPLOYED_VERSION} (SSM parameter ${PARAMETER}): using the deployed policy; --config ` +
        'keyguard.config.json makes the local file win\n',
    );
  });

  test('a local keyguard.config.json that is the deployed policy: no line', async () => {
    // Prepare
    publish(DEPLOYED);
    const { io, stderr } = captureIO(cwd(DEPLOYED));
    // Act
    await choosePolicy({}, io, deps());
    // Assess
    expect(stderr()).toBe('');
  });

  test('a local file differing only in lists the compact form leaves out is not reported', async () => {
    // Prepare: the deployed config is too large for the whole form, so its subscriptions are not published.
    const big: ConfigInput = {
      notifications: {
        subscriptions: Array.from({ length: 50 }, (_v, i) => ({
          email: `n${i}@${'x'.repeat(150)}.example.com`,
        })),
      },
    };
    publish(big);
    const { io, stderr } = captureIO(cwd(big));
    // Act
    const chosen = await choosePolicy({}, io, deps());
    // Assess
    expect(chosen.config.notifications.subscriptions).toEqual([]);
    expect(stderr()).toBe('');
  });

  test('organization form: the organization and overrides come from their own parameter', async () => {
    // Prepare
    const config = parseConfig(largestConfig());
    const published = publishedPolicy(config, ORG_PARAMETER);
    ssm
      .on(GetParameterCommand, { Name: PARAMETER })
      .resolves({ Parameter: { Value: published.value } })
      .on(GetParameterCommand, { Name: ORG_PARAMETER })
      .resolves({ Parameter: { Value: JSON.stringify(orgSettings(config)) } });
    const { io } = captureIO(cwd());
    // Act
    const chosen = await choosePolicy({}, io, deps());
    // Assess
    expect(published.document.organizationSettingsParameter).toBe(ORG_PARAMETER);
    expect(chosen.config.overrides).toEqual(config.overrides);
    expect(chosen.config.organization).toEqual(config.organization);
    expect(chosen.policyVersion).toBe(policyVersion(config));
  });

  test.each([
    [
      'not JSON',
      '{"format": 1,',
      /^SSM parameter \/BedrockKeyGuard\/effective-policy\/standard: not valid JSON/,
    ],
    [
      'a bad setting',
      () => {
        const doc = JSON.parse(publishedPolicy(parseConfig(DEPLOYED)).value);
        doc.config.maxAgeDays = 0;
        return JSON.stringify(doc);
      },
      /SSM parameter \/BedrockKeyGuard\/effective-policy\/standard: config: maxAgeDays: got 0; allowed: >= 1/,
    ],
    [
      'a version that is not its config’s',
      () => {
        const doc = JSON.parse(publishedPolicy(parseConfig(DEPLOYED)).value);
        doc.config.maxAgeDays = 31;
        return JSON.stringify(doc);
      },
      new RegExp(
        `standard: policyVersion: got "${DEPLOYED_VERSION}"; the config it holds has version p-[0-9a-f]{12} \\(the parameter was changed outside the stack`,
      ),
    ],
    ['another format', JSON.stringify({ format: 2 }), /standard: format: got 2; allowed: 1/],
  ])(
    'a corrupt parameter (%s) is an error naming the parameter and the field',
    async (_what, value, message) => {
      // Prepare
      ssm
        .on(GetParameterCommand)
        .resolves({ Parameter: { Value: typeof value === 'string' ? value : value() } });
      const { io } = captureIO(cwd());
      // Act
      const chosen = choosePolicy({}, io, deps());
      // Assess
      await expect(chosen).rejects.toThrow(DeployedPolicyError);
      await expect(chosen).rejects.toThrow(message);
    },
  );

  test('a named parameter that does not exist is an error saying what to do, never a silent fall back', async () => {
    // Prepare
    ssm.on(GetParameterCommand).rejects(Object.assign(new Error('not found'), { name: 'ParameterNotFound' }));
    const { io } = captureIO(cwd({ maxAgeDays: 7 }));
    // Act
    const chosen = choosePolicy({}, io, deps());
    // Assess
    await expect(chosen).rejects.toThrow(
      new DeployedPolicyError(
        `SSM parameter ${PARAMETER} (--policy-parameter or ${POLICY_PARAMETER_ENV}): not found in us-east-1 of ` +
          "the account of your credentials (the stack's account holds it). Deploy the stack (its output " +
          'EffectivePolicyParameterName names the parameter), use credentials of its account, or pass --config ' +
          'FILE to evaluate with a local policy',
      ),
    );
  });

  test('access denied names the permission it needs', async () => {
    // Prepare
    ssm
      .on(GetParameterCommand)
      .rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
    const { io } = captureIO(cwd());
    // Act
    const chosen = choosePolicy({}, io, deps());
    // Assess
    await expect(chosen).rejects.toThrow(
      /^SSM GetParameter \/BedrockKeyGuard\/effective-policy\/standard \(--policy-parameter or KEYGUARD_POLICY_PARAMETER\) in us-east-1: access denied \(User is not authorized\)\. Reading the deployed policy needs ssm:GetParameter on that parameter/,
    );
  });
});
