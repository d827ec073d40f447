import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListServiceSpecificCredentialsCommand,
} from '@aws-sdk/client-iam';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { documentClient } from '../../lambda/adapters/document-client';
import { POLICY_PARAMETER_ENV } from '../../lambda/cli/deployed-policy';
import { type InventoryDeps, type InventoryOptions, runInventory } from '../../lambda/cli/inventory';
import { EXIT_INPUT, EXIT_OK } from '../../lambda/cli/io';
import { type ConfigInput, parseConfig, policyVersion } from '../../lambda/shared/config';
import { publishedPolicy } from '../../lambda/shared/effective-policy';
import { captureIO, removeTempDirs, tempDir, writeFile } from './helpers';

/**
 * `keyguard inventory` evaluates with the deployed stack's effective policy when one is named, says which policy it
 * used, and lets --config win. One key (a long-term key expiring in 56 days, fully tagged): compliant under the
 * defaults, LONG_TERM_NOT_ALLOWED under a deployed policy that forbids long-term keys.
 */

const iam = mockClient(IAMClient);
const sts = mockClient(STSClient);
const ssm = mockClient(SSMClient);
const ACCOUNT = '111122223333';
const NOW = new Date('2026-11-20T12:00:00Z');
const PARAMETER = '/BedrockKeyGuard/effective-policy/standard';
const DEPLOYED: ConfigInput = { mode: 'enforce', allowLongTermKeys: false };
const DEPLOYED_VERSION = policyVersion(parseConfig(DEPLOYED));
const DEFAULTS_VERSION = policyVersion(parseConfig({}));

/** The IAM credential report: svc-chatbot has no password and no access key. */
const REPORT_HEADER =
  'user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,' +
  'mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,' +
  'access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,' +
  'access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,' +
  'cert_2_last_rotated';
const REPORT_ROW = ['svc-chatbot', `arn:aws:iam::${ACCOUNT}:user/svc-chatbot`, 'N/A', 'false']
  .concat(Array(4).fill('N/A'), ['false'], Array(4).fill('N/A'), ['false'], Array(8).fill('N/A'))
  .join(',');

afterAll(removeTempDirs);

beforeEach(() => {
  iam.reset();
  sts.reset();
  ssm.reset();
  sts
    .on(GetCallerIdentityCommand)
    .resolves({ Account: ACCOUNT, Arn: `arn:aws:iam::${ACCOUNT}:user/auditor` });
  iam.on(ListServiceSpecificCredentialsCommand).resolves({
    ServiceSpecificCredentials: [
      {
        UserName: 'svc-chatbot',
        Status: 'Active',
        CreateDate: new Date('2026-11-01T00:00:00Z'),
        ExpirationDate: new Date('2027-01-15T00:00:00Z'),
        ServiceSpecificCredentialId: 'ACCAEXAMPLEKEYCHAT001',
        ServiceName: 'bedrock.amazonaws.com',
      },
    ],
    IsTruncated: false,
  });
  iam.on(GetAccountAuthorizationDetailsCommand).resolves({
    UserDetailList: [
      {
        UserName: 'svc-chatbot',
        UserId: 'AIDACHATBOT',
        Arn: `arn:aws:iam::${ACCOUNT}:user/svc-chatbot`,
        Path: '/',
        CreateDate: new Date('2026-01-01T00:00:00Z'),
        Tags: [
          { Key: 'owner', Value: 'team-chat@example.com' },
          { Key: 'purpose', Value: 'customer chatbot' },
          { Key: 'review-cadence', Value: '90d' },
        ],
        UserPolicyList: [],
        AttachedManagedPolicies: [],
        GroupList: [],
      },
    ],
    GroupDetailList: [],
    Policies: [],
    IsTruncated: false,
  });
  iam.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
  iam.on(GetCredentialReportCommand).resolves({
    Content: Buffer.from(`${REPORT_HEADER}\n${REPORT_ROW}`),
    ReportFormat: 'text/csv',
    GeneratedTime: NOW,
  });
});

function publish(input: ConfigInput): void {
  ssm
    .on(GetParameterCommand, { Name: PARAMETER })
    .resolves({ Parameter: { Name: PARAMETER, Value: publishedPolicy(parseConfig(input)).value } });
}

function deps(env: NodeJS.ProcessEnv): InventoryDeps {
  return {
    iam: new IAMClient({ region: 'us-east-1' }),
    sts: new STSClient({ region: 'us-east-1' }),
    ssm: new SSMClient({ region: 'us-east-1' }),
    // No table is named: never used.
    doc: documentClient(new DynamoDBClient({ region: 'us-east-1' })),
    env,
    now: () => NOW,
    snapshot: { sleep: async () => undefined },
  };
}

async function inventory(opts: InventoryOptions, env: NodeJS.ProcessEnv, local?: ConfigInput | string) {
  const dir = tempDir();
  if (local !== undefined)
    writeFile(join(dir, 'keyguard.config.json'), typeof local === 'string' ? local : JSON.stringify(local));
  const out = captureIO(dir);
  const code = await runInventory(opts, out.io, deps(env));
  return { code, stdout: out.stdout(), stderr: out.stderr(), dir };
}

const NAMED = { [POLICY_PARAMETER_ENV]: PARAMETER };

describe('keyguard inventory: which policy', () => {
  test('evaluates with the deployed policy named by KEYGUARD_POLICY_PARAMETER, and says so', async () => {
    // Prepare
    publish(DEPLOYED);
    // Act
    const { code, stdout, stderr } = await inventory({}, NAMED);
    // Assess
    expect(code).toBe(EXIT_OK);
    expect(stdout).toMatch(/ACCAEXAMPLEKEYCHAT001 .*LONG_TERM_NOT_ALLOWED/);
    expect(stdout).toContain(`Policy: ${DEPLOYED_VERSION} (deployed, SSM parameter ${PARAMETER}).\n`);
    expect(stderr).toBe('');
    expect(ssm).toHaveReceivedCommandWith(GetParameterCommand, { Name: PARAMETER });
  });

  test('--json: the rows on stdout, which policy on stderr', async () => {
    // Prepare
    publish(DEPLOYED);
    // Act
    const { code, stdout, stderr } = await inventory({ json: true }, NAMED);
    // Assess
    expect(code).toBe(EXIT_OK);
    expect(stdout).not.toContain('Policy:');
    const row = JSON.parse(stdout.trim()) as { violations: Array<{ code: string }> };
    expect(row.violations.map((v) => v.code)).toEqual(['LONG_TERM_NOT_ALLOWED']);
    expect(stderr).toContain(`Policy: ${DEPLOYED_VERSION} (deployed, SSM parameter ${PARAMETER}).\n`);
  });

  test('a local keyguard.config.json that differs: one line naming both versions; the deployed policy is used', async () => {
    // Prepare
    publish(DEPLOYED);
    // Act
    const { code, stdout, stderr } = await inventory({}, NAMED, {});
    // Assess
    expect(code).toBe(EXIT_OK);
    expect(stderr).toBe(
      `keyguard: ./keyguard.config.json (policy ${DEFAULTS_VERSION}) differs from the deployed policy ` +
        `${DEPLOYED_VERSION} (SSM parameter ${PARAMETER}): using the deployed policy; --config ` +
        'keyguard.config.json makes the local file win\n',
    );
    expect(stdout).toContain('LONG_TERM_NOT_ALLOWED');
  });

  test('--config makes the local file win: the deployed policy is not read', async () => {
    // Prepare
    publish(DEPLOYED);
    // Act
    const { code, stdout, stderr } = await inventory({ config: 'keyguard.config.json' }, NAMED, {});
    // Assess
    expect(code).toBe(EXIT_OK);
    expect(stdout).toMatch(/ACCAEXAMPLEKEYCHAT001 .* -\n/);
    expect(stdout).toContain(`Policy: ${DEFAULTS_VERSION} (keyguard.config.json).\n`);
    expect(stderr).toBe('');
    expect(ssm.calls()).toHaveLength(0);
  });

  test('no parameter named (no stack, local use): as before, the local file or the defaults; SSM is not called', async () => {
    // Act
    const { code, stdout, stderr } = await inventory({}, {});
    // Assess
    expect(code).toBe(EXIT_OK);
    expect(stdout).toContain(`Policy: ${DEFAULTS_VERSION} (built-in defaults).\n`);
    expect(stderr).toBe('');
    expect(ssm.calls()).toHaveLength(0);
  });

  test('a corrupt parameter: exit 2 naming the parameter and the field; IAM is not read', async () => {
    // Prepare
    const doc = JSON.parse(publishedPolicy(parseConfig(DEPLOYED)).value);
    doc.config.mode = 'destroy';
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: JSON.stringify(doc) } });
    // Act
    const { code, stdout, stderr } = await inventory({}, NAMED);
    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(stdout).toBe('');
    expect(stderr).toContain(
      `keyguard: invalid configuration\nSSM parameter ${PARAMETER}: config: mode: got "destroy"; allowed: "audit" | "enforce"`,
    );
    expect(iam.calls()).toHaveLength(0);
  });

  test('a named parameter that does not exist: exit 2 saying what to do', async () => {
    // Prepare
    ssm.on(GetParameterCommand).rejects(Object.assign(new Error('not found'), { name: 'ParameterNotFound' }));
    // Act
    const { code, stderr } = await inventory({}, NAMED, {});
    // Assess
    expect(code).toBe(EXIT_INPUT);
    expect(stderr).toBe(
      `keyguard: SSM parameter ${PARAMETER} (--policy-parameter or ${POLICY_PARAMETER_ENV}): not found in ` +
        "us-east-1 of the account of your credentials (the stack's account holds it). Deploy the stack (its " +
        'output EffectivePolicyParameterName names the parameter), use credentials of its account, or pass ' +
        '--config FILE to evaluate with a local policy\n',
    );
  });
});
