// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { Template } from 'aws-cdk-lib/assertions';
import { HUB_ROLE_NAMES, HUB_SCHEDULER_ROLE_NAME } from '../../lib/constructs/org-roles';
import { build, resourcesOf, type Statement, writeConfig } from './helpers';
import { HUB, MANAGEMENT, MEMBER, ORG_CONFIG, ORG_ID, OUTSIDE } from './org-support';

/**
 * Issue 12, tests: iam-simulate on the synthesized policies of the hub, the spoke and the management stack. The
 * simulator does not derive aws:PrincipalArn, aws:PrincipalOrgID or aws:ResourceOrgID: they are passed as IAM would
 * set them for the caller and the resource.
 */

type Json = Record<string, unknown>;
type Doc = { Version: string; Statement: Statement[] };

const built = build({ context: { config: writeConfig(ORG_CONFIG), management: 'true', hubAccount: HUB } });
const org = built.organization;
if (!org) throw new Error('expected the organization stacks');
const hub = built.template;
const spoke = JSON.parse(org.stackSet.spokes.templateBody) as {
  Resources: Record<string, { Type: string; Properties: Json }>;
};
const management = Template.fromStack(org.management);

const OTHER_ORG = 'o-zzzzzzzzzz';
const hubRole = (name: string) => `arn:aws:iam::${HUB}:role/${name}`;
const SWEEP_ROLE = hubRole(HUB_ROLE_NAMES.sweep);
const MEMBER_ROLE = `arn:aws:iam::${MEMBER}:role/BedrockKeyGuardMember`;
const READER_ROLE = `arn:aws:iam::${MANAGEMENT}:role/BedrockKeyGuardOrgReader`;
const HUB_BUS = `arn:aws:events:us-east-1:${HUB}:event-bus/bedrock-key-guard-governance`;

/** The template's intrinsics resolved as a deployment in `account` would resolve them. */
function resolver(account: string, ids: Record<string, string> = {}) {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::AccountId': account,
    'AWS::Region': 'us-east-1',
  };
  const resolve = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolve);
    if (value === null || typeof value !== 'object') return value;
    const o = value as Json;
    if ('Fn::GetAtt' in o) {
      const [id] = o['Fn::GetAtt'] as [string, string];
      return ids[id] ?? `arn:aws:unknown:us-east-1:${account}:${id}`;
    }
    if ('Ref' in o) return pseudo[o.Ref as string] ?? ids[o.Ref as string] ?? `ref-${String(o.Ref)}`;
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => String(resolve(p))).join(sep);
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v)]));
  };
  return resolve;
}

async function simulate(p: {
  principal: string;
  action: string;
  resource: string;
  resourceAccount: string;
  identity: unknown;
  resourcePolicy?: unknown;
  context?: Record<string, string | string[]>;
}): Promise<string> {
  const result = await runSimulation(
    {
      request: {
        principal: p.principal,
        action: p.action,
        resource: { resource: p.resource, accountId: p.resourceAccount },
        contextVariables: { 'aws:PrincipalArn': p.principal, ...p.context },
      },
      identityPolicies: [{ name: 'identity', policy: p.identity as never }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(p.resourcePolicy ? { resourcePolicy: p.resourcePolicy as never } : {}),
    },
    {},
  );
  if (result.resultType !== 'single') throw new Error(`simulation did not run: ${JSON.stringify(result)}`);
  return result.overallResult;
}

const ALLOW_ALL = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

/** Every statement the hub attaches to the role of the function whose id starts with `prefix`. */
function hubRoleIdentity(prefix: string): Doc {
  const fn = Object.entries(resourcesOf(hub, 'AWS::Lambda::Function')).find(([id]) =>
    id.startsWith(prefix),
  )?.[1];
  const roleId = ((fn as { Properties: Json }).Properties.Role as { 'Fn::GetAtt': [string] })[
    'Fn::GetAtt'
  ][0];
  const statements = Object.values(resourcesOf(hub, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap((p) => (p.Properties.PolicyDocument as Doc).Statement);
  return resolver(HUB)({ Version: '2012-10-17', Statement: statements }) as Doc;
}

function spokeRole(name: string): { Properties: Json } {
  const role = Object.values(spoke.Resources).find((r) => r.Properties.RoleName === name);
  if (!role) throw new Error(`no role ${name} in the spoke`);
  return role;
}
const memberTrust = resolver(MEMBER)(spokeRole('BedrockKeyGuardMember').Properties.AssumeRolePolicyDocument);
const memberPermissions = resolver(MEMBER)(
  (spokeRole('BedrockKeyGuardMember').Properties.Policies as Array<{ PolicyDocument: unknown }>)[0]
    ?.PolicyDocument,
);

describe('member role (spoke)', () => {
  const assume = (principal: string, principalOrg: string, identity: unknown) =>
    simulate({
      principal,
      action: 'sts:AssumeRole',
      resource: MEMBER_ROLE,
      resourceAccount: MEMBER,
      identity,
      resourcePolicy: memberTrust,
      context: { 'aws:PrincipalOrgID': principalOrg, 'aws:ResourceOrgID': ORG_ID },
    });

  test('iam-simulate: the hub sweep role may assume it, with its own synthesized policy', async () => {
    expect(await assume(SWEEP_ROLE, ORG_ID, hubRoleIdentity('InventorySweep'))).toBe('Allowed');
  });

  test('iam-simulate: every hub deciding role may assume it (credential-event, leak, key-usage)', async () => {
    for (const [name, prefix] of [
      [HUB_ROLE_NAMES.credentialEvent, 'CredentialEventFunction'],
      [HUB_ROLE_NAMES.leak, 'LeakQuarantine'],
      [HUB_ROLE_NAMES.keyUsage, 'KeyUsageFunction'],
    ] as const) {
      expect([name, await assume(hubRole(name), ORG_ID, hubRoleIdentity(prefix))]).toEqual([name, 'Allowed']);
    }
  });

  test('iam-simulate: another principal of the organization may not, even an administrator of the hub account', async () => {
    expect(await assume(hubRole('Admin'), ORG_ID, ALLOW_ALL)).not.toBe('Allowed');
    expect(await assume(`arn:aws:iam::${HUB}:root`, ORG_ID, ALLOW_ALL)).not.toBe('Allowed');
    expect(await assume(`arn:aws:iam::${MEMBER}:role/Admin`, ORG_ID, ALLOW_ALL)).not.toBe('Allowed');
  });

  test('iam-simulate: a principal outside the organization may not, even with the sweep role name', async () => {
    expect(
      await assume(`arn:aws:iam::${OUTSIDE}:role/${HUB_ROLE_NAMES.sweep}`, OTHER_ORG, ALLOW_ALL),
    ).not.toBe('Allowed');
    // The hub role's ARN, but no longer a principal of the organization (the hub account left it).
    expect(await assume(SWEEP_ROLE, OTHER_ORG, hubRoleIdentity('InventorySweep'))).not.toBe('Allowed');
  });

  test("iam-simulate: the hub's own policy lets it assume member roles of the organization only", async () => {
    const result = await simulate({
      principal: SWEEP_ROLE,
      action: 'sts:AssumeRole',
      resource: `arn:aws:iam::${OUTSIDE}:role/BedrockKeyGuardMember`,
      resourceAccount: OUTSIDE,
      identity: hubRoleIdentity('InventorySweep'),
      resourcePolicy: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { AWS: SWEEP_ROLE }, Action: 'sts:AssumeRole' }],
      },
      context: { 'aws:PrincipalOrgID': ORG_ID, 'aws:ResourceOrgID': OTHER_ORG },
    });
    expect(result).not.toBe('Allowed');
  });

  const update = (serviceName: string) =>
    simulate({
      principal: MEMBER_ROLE,
      action: 'iam:UpdateServiceSpecificCredential',
      resource: `arn:aws:iam::${MEMBER}:user/alice`,
      resourceAccount: MEMBER,
      identity: memberPermissions,
      context: { 'iam:ServiceSpecificCredentialServiceName': serviceName },
    });

  test('iam-simulate: it can deactivate a Bedrock key but not a CodeCommit credential', async () => {
    expect(await update('bedrock.amazonaws.com')).toBe('Allowed');
    expect(await update('codecommit.amazonaws.com')).not.toBe('Allowed');
  });

  const cloudTrail = (action: string, resource: string) =>
    simulate({
      principal: MEMBER_ROLE,
      action,
      resource,
      resourceAccount: MEMBER,
      identity: memberPermissions,
    });

  test("iam-simulate: it can read the account's event history (a short-term key's signer), and change no trail", async () => {
    const TRAIL = `arn:aws:cloudtrail:us-east-1:${MEMBER}:trail/organization-trail`;
    expect(await cloudTrail('cloudtrail:LookupEvents', '*')).toBe('Allowed');
    for (const action of [
      'cloudtrail:StopLogging',
      'cloudtrail:DeleteTrail',
      'cloudtrail:UpdateTrail',
      'cloudtrail:PutEventSelectors',
    ]) {
      expect([action, await cloudTrail(action, TRAIL)]).toEqual([action, 'ImplicitlyDenied']);
    }
  });

  test('iam-simulate: it cannot create, reset or delete a key, nor change a user', async () => {
    for (const action of [
      'iam:CreateServiceSpecificCredential',
      'iam:ResetServiceSpecificCredential',
      'iam:DeleteServiceSpecificCredential',
      'iam:AttachUserPolicy',
      'iam:CreateAccessKey',
      'iam:DeleteUser',
    ]) {
      const result = await simulate({
        principal: MEMBER_ROLE,
        action,
        resource: `arn:aws:iam::${MEMBER}:user/alice`,
        resourceAccount: MEMBER,
        identity: memberPermissions,
        context: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' },
      });
      expect([action, result]).toEqual([action, 'ImplicitlyDenied']);
    }
  });
});

describe('hub governance bus', () => {
  const busPolicy = () => {
    const p = Object.values(resourcesOf(hub, 'AWS::Events::EventBusPolicy'))[0] as { Properties: Json };
    const busId = Object.keys(resourcesOf(hub, 'AWS::Events::EventBus'))[0] as string;
    return resolver(HUB, { [busId]: HUB_BUS })({
      Version: '2012-10-17',
      Statement: [p.Properties.Statement],
    });
  };
  const forwardingRole = () => {
    const roleId = Object.keys(spoke.Resources).find(
      (id) => id.startsWith('CredentialForwardingRole') && spoke.Resources[id]?.Type === 'AWS::IAM::Role',
    );
    const policy = Object.values(spoke.Resources).find(
      (r) =>
        r.Type === 'AWS::IAM::Policy' &&
        JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: roleId }]),
    ) as { Properties: Json };
    return resolver(MEMBER)(policy.Properties.PolicyDocument);
  };
  const put = (principal: string, account: string, principalOrg: string, identity: unknown) =>
    simulate({
      principal,
      action: 'events:PutEvents',
      resource: HUB_BUS,
      resourceAccount: HUB,
      identity,
      resourcePolicy: busPolicy(),
      context: { 'aws:PrincipalOrgID': principalOrg, 'aws:PrincipalAccount': account },
    });

  test("iam-simulate: a spoke's forwarding role (a principal of the organization) may put events on it", async () => {
    const role = `arn:aws:iam::${MEMBER}:role/BedrockKeyGuardSpoke-CredentialForwardingRole-ABC`;
    expect(await put(role, MEMBER, ORG_ID, forwardingRole())).toBe('Allowed');
  });

  test('iam-simulate: a principal outside the organization may not, even allowed everything at home', async () => {
    expect(await put(`arn:aws:iam::${OUTSIDE}:role/Forwarder`, OUTSIDE, OTHER_ORG, ALLOW_ALL)).not.toBe(
      'Allowed',
    );
  });

  test('iam-simulate: the forwarding role may put events on the hub bus only', async () => {
    const role = `arn:aws:iam::${MEMBER}:role/BedrockKeyGuardSpoke-CredentialForwardingRole-ABC`;
    const other = await simulate({
      principal: role,
      action: 'events:PutEvents',
      resource: `arn:aws:events:us-east-1:${MEMBER}:event-bus/default`,
      resourceAccount: MEMBER,
      identity: forwardingRole(),
    });
    expect(other).toBe('ImplicitlyDenied');
  });
});

describe('Organizations reader role (management stack)', () => {
  const role = Object.values(resourcesOf(management, 'AWS::IAM::Role'))[0] as { Properties: Json };
  const trust = resolver(MANAGEMENT)(role.Properties.AssumeRolePolicyDocument);
  const permissions = resolver(MANAGEMENT)(
    (role.Properties.Policies as Array<{ PolicyDocument: unknown }>)[0]?.PolicyDocument,
  );
  const assume = (principal: string, principalOrg: string, identity: unknown) =>
    simulate({
      principal,
      action: 'sts:AssumeRole',
      resource: READER_ROLE,
      resourceAccount: MANAGEMENT,
      identity,
      resourcePolicy: trust,
      context: { 'aws:PrincipalOrgID': principalOrg, 'aws:ResourceOrgID': ORG_ID },
    });

  test('iam-simulate: a hub role that reads the organization may assume it; the sweep (its messages carry the OU path), another principal of the organization or outside may not', async () => {
    expect(await assume(hubRole(HUB_ROLE_NAMES.credentialEvent), ORG_ID, ALLOW_ALL)).toBe('Allowed');
    // key-usage reads an account's place (excluded? under the targets? which OU override?) with its own policy.
    expect(await assume(hubRole(HUB_ROLE_NAMES.keyUsage), ORG_ID, hubRoleIdentity('KeyUsageFunction'))).toBe(
      'Allowed',
    );
    expect(await assume(SWEEP_ROLE, ORG_ID, ALLOW_ALL)).not.toBe('Allowed');
    expect(await assume(SWEEP_ROLE, ORG_ID, hubRoleIdentity('InventorySweep'))).not.toBe('Allowed');
    expect(await assume(hubRole('Admin'), ORG_ID, ALLOW_ALL)).not.toBe('Allowed');
    expect(
      await assume(`arn:aws:iam::${OUTSIDE}:role/${HUB_ROLE_NAMES.sweep}`, OTHER_ORG, ALLOW_ALL),
    ).not.toBe('Allowed');
  });

  test("iam-simulate: the organization sweep's scheduler role may assume it, and not the member role", async () => {
    const scheduler = hubRole(HUB_SCHEDULER_ROLE_NAME);
    const identity = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: [READER_ROLE, MEMBER_ROLE] }],
    };
    expect(await assume(scheduler, ORG_ID, identity)).toBe('Allowed');
    const member = await simulate({
      principal: scheduler,
      action: 'sts:AssumeRole',
      resource: MEMBER_ROLE,
      resourceAccount: MEMBER,
      identity,
      resourcePolicy: memberTrust,
      context: { 'aws:PrincipalOrgID': ORG_ID, 'aws:ResourceOrgID': ORG_ID },
    });
    expect(member).not.toBe('Allowed');
  });

  test('iam-simulate: it reads the organization and changes nothing', async () => {
    const OU = `arn:aws:organizations::${MANAGEMENT}:ou/${ORG_ID}/ou-ab12-cd34ef56`;
    const ACCOUNT = `arn:aws:organizations::${MANAGEMENT}:account/${ORG_ID}/${MEMBER}`;
    const run = (action: string, resource: string) =>
      simulate({
        principal: READER_ROLE,
        action,
        resource,
        resourceAccount: MANAGEMENT,
        identity: permissions,
      });
    expect(await run('organizations:ListAccountsForParent', OU)).toBe('Allowed');
    expect(await run('organizations:DescribeAccount', ACCOUNT)).toBe('Allowed');
    for (const [action, resource] of [
      ['organizations:MoveAccount', ACCOUNT],
      ['organizations:TagResource', ACCOUNT],
      ['organizations:DeleteOrganizationalUnit', OU],
    ] as const) {
      expect([action, await run(action, resource)]).toEqual([action, 'ImplicitlyDenied']);
    }
  });
});

describe('leak function role (hub)', () => {
  test('iam-simulate: it may ask STS which account an access key id belongs to (sts:GetAccessKeyInfo)', async () => {
    const result = await simulate({
      principal: hubRole(HUB_ROLE_NAMES.leak),
      action: 'sts:GetAccessKeyInfo',
      resource: '*',
      resourceAccount: HUB,
      identity: hubRoleIdentity('LeakQuarantine'),
    });
    expect(result).toBe('Allowed');
  });
});
