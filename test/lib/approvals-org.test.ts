// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ORG_SETTINGS_PARAMETER_NAME } from '../../lib/constructs/org-hub';
import { HUB_APPROVAL_ROLE_NAME } from '../../lib/constructs/org-roles';
import { build, resourcesOf, type Statement, writeConfig } from './helpers';
import { HUB, MANAGEMENT, MEMBER, ORG_CONFIG, ORG_ID } from './org-support';

/**
 * Issue 12: the approval function in organization mode checks that a key's account is governed (the organization
 * settings, and Organizations through the management account's reader role), so its role gets exactly that and a
 * fixed name the reader role trusts; never a member role. Single-account templates are unchanged (org-topology).
 */

type Json = Record<string, unknown>;
type Doc = { Version: string; Statement: Statement[] };

const built = build({ context: { config: writeConfig(ORG_CONFIG), management: 'true', hubAccount: HUB } });
const org = built.organization;
if (!org) throw new Error('expected the organization stacks');
const hub = built.template;
const management = Template.fromStack(org.management);

const [, fn] = Object.entries(resourcesOf(hub, 'AWS::Lambda::Function')).find(([id]) =>
  id.startsWith('ApprovalsHandler'),
) as [string, { Properties: Json }];
const roleId = (fn.Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
const role = resourcesOf(hub, 'AWS::IAM::Role')[roleId] as { Properties: Json };
const policies = Object.values(resourcesOf(hub, 'AWS::IAM::Policy')).filter(
  (p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]),
);
const settingsId = Object.entries(resourcesOf(hub, 'AWS::SSM::Parameter')).find(
  ([, p]) => p.Properties.Name === ORG_SETTINGS_PARAMETER_NAME,
)?.[0] as string;

const partitionArn = (rest: string) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, rest]] });
const READER_ROLE = `arn:aws:iam::${MANAGEMENT}:role/BedrockKeyGuardOrgReader`;
const APPROVAL_ROLE = `arn:aws:iam::${HUB}:role/${HUB_APPROVAL_ROLE_NAME}`;

/** Intrinsics resolved as a deployment in `account` would resolve them. */
function resolver(account: string) {
  const resolve = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolve);
    if (value === null || typeof value !== 'object') return value;
    const o = value as Json;
    if ('Ref' in o) {
      const pseudo: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::AccountId': account };
      return pseudo[o.Ref as string] ?? `ref-${String(o.Ref)}`;
    }
    if ('Fn::GetAtt' in o) return `arn:aws:unknown:us-east-1:${account}:${(o['Fn::GetAtt'] as string[])[0]}`;
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => String(resolve(p))).join(sep);
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v)]));
  };
  return resolve;
}

const readerRole = Object.values(resourcesOf(management, 'AWS::IAM::Role'))[0] as { Properties: Json };
const readerTrust = resolver(MANAGEMENT)(readerRole.Properties.AssumeRolePolicyDocument);

async function assumeReader(principal: string, identity: unknown, principalOrg = ORG_ID): Promise<string> {
  const result = await runSimulation(
    {
      request: {
        principal,
        action: 'sts:AssumeRole',
        resource: { resource: READER_ROLE, accountId: MANAGEMENT },
        contextVariables: { 'aws:PrincipalArn': principal, 'aws:PrincipalOrgID': principalOrg },
      },
      identityPolicies: [{ name: 'identity', policy: identity as never }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: readerTrust as never,
    },
    {},
  );
  if (result.resultType !== 'single') throw new Error(`simulation did not run: ${JSON.stringify(result)}`);
  return result.overallResult;
}

describe('approval function in organization mode', () => {
  test('its role has the fixed name the reader role trusts', () => {
    expect(role.Properties.RoleName).toBe(HUB_APPROVAL_ROLE_NAME);
  });

  test('environment: the organization settings parameter and the reader role, besides the hub account', () => {
    const env = (fn.Properties.Environment as { Variables: Json }).Variables;
    expect(env.ORG_SETTINGS_PARAMETER).toEqual({ Ref: settingsId });
    expect(env.ORG_READER_ROLE_ARN).toEqual(
      partitionArn(`:iam::${MANAGEMENT}:role/BedrockKeyGuardOrgReader`),
    );
    expect(env.GOVERNED_ACCOUNT_ID).toEqual({ Ref: 'AWS::AccountId' });
  });

  test('role: ssm:GetParameter on the settings and sts:AssumeRole on the reader role, nothing else beyond single-account mode', () => {
    const org = policies.find((p) =>
      JSON.stringify(p.Properties.PolicyName).includes('OrganizationAccess'),
    ) as { Properties: Json };
    expect((org.Properties.PolicyDocument as Doc).Statement).toEqual([
      {
        Sid: 'ReadOrganizationSettings',
        Effect: 'Allow',
        Action: 'ssm:GetParameter',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':ssm:us-east-1:',
              { Ref: 'AWS::AccountId' },
              ':parameter',
              { Ref: settingsId },
            ],
          ],
        },
      },
      {
        Sid: 'AssumeOrganizationsReader',
        Effect: 'Allow',
        Action: 'sts:AssumeRole',
        Resource: partitionArn(`:iam::${MANAGEMENT}:role/BedrockKeyGuardOrgReader`),
      },
    ]);
    // No member role, no IAM, no Organizations call of its own (it reads through the reader role).
    const actions = policies.flatMap((p) =>
      (p.Properties.PolicyDocument as Doc).Statement.flatMap((s) => [s.Action].flat()),
    );
    expect(
      actions.filter((a) => !String(a).startsWith('dynamodb:') && !String(a).startsWith('logs:')),
    ).toEqual(['ssm:GetParameter', 'sts:AssumeRole']);
    expect(JSON.stringify(policies)).not.toContain('BedrockKeyGuardMember');
  });

  test('the reader role trusts the approval role by its exact ARN', () => {
    const principals = JSON.stringify(readerTrust);
    expect(principals).toContain(APPROVAL_ROLE);
  });

  test('iam-simulate: the approval role may assume the reader role with its own policy; a same-named role outside the organization, or another hub role, may not', async () => {
    const identity = resolver(HUB)({
      Version: '2012-10-17',
      Statement: policies.flatMap((p) => (p.Properties.PolicyDocument as Doc).Statement),
    });
    const allowAll = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };
    expect(await assumeReader(APPROVAL_ROLE, identity)).toBe('Allowed');
    expect(await assumeReader(APPROVAL_ROLE, allowAll, 'o-zzzzzzzzzz')).not.toBe('Allowed');
    expect(await assumeReader(`arn:aws:iam::${HUB}:role/Admin`, allowAll)).not.toBe('Allowed');
    expect(await assumeReader(`arn:aws:iam::${MEMBER}:role/${HUB_APPROVAL_ROLE_NAME}`, allowAll)).not.toBe(
      'Allowed',
    );
  });

  test('cdk-nag: the hub stack has no finding', () => {
    expect(new AwsSolutionsChecks().validateScope(built.stack).violations).toEqual([]);
  });
});
