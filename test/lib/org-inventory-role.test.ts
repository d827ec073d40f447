// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CfnRole } from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ORG_INVENTORY_ROLE_NAME, parseConfig } from '../../lambda/shared/config';
import {
  INVENTORY_ACCOUNT_READS,
  INVENTORY_USER_READS,
  OrgInventoryRole,
} from '../../lib/constructs/org-spoke-parts';
import { spokeTemplateBody, TEMPLATE_BODY_MAX_BYTES } from '../../lib/constructs/org-spoke-stack-set';
import { build, type Statement, writeConfig } from './helpers';
import { HUB, largestOrgConfig, MANAGEMENT, MEMBER, ORG_CONFIG, ORG_ID, OUTSIDE } from './org-support';

/**
 * Issue 12: the read-only role `keyguard inventory --org` assumes in each member account (BedrockKeyGuardInventory),
 * in the spoke template (StackSet) and the management account's plain spoke. Trusted by principals of the management
 * and hub accounts within the organization only; exactly the IAM reads the inventory makes.
 */

type Json = Record<string, unknown>;
type Doc = { Version: string; Statement: Statement[] };
type Resource = { Type: string; Properties: Json; Condition?: string };

const built = build({ context: { config: writeConfig(ORG_CONFIG), management: 'true', hubAccount: HUB } });
const org = built.organization;
if (!org) throw new Error('expected the organization stacks');
const spokeBody = JSON.parse(org.stackSet.spokes.templateBody) as { Resources: Record<string, Resource> };

function inventoryRoleOf(resources: Record<string, Resource>): Resource {
  const roles = Object.values(resources).filter(
    (r) => r.Type === 'AWS::IAM::Role' && r.Properties.RoleName === ORG_INVENTORY_ROLE_NAME,
  );
  if (roles.length !== 1) throw new Error(`expected one ${ORG_INVENTORY_ROLE_NAME}, found ${roles.length}`);
  return roles[0] as Resource;
}

const stackSetRole = inventoryRoleOf(spokeBody.Resources);
const root = (account: string) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iam::${account}:root`]],
});

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
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => String(resolve(p))).join(sep);
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v)]));
  };
  return resolve;
}

const ROLE_ARN = `arn:aws:iam::${MEMBER}:role/${ORG_INVENTORY_ROLE_NAME}`;
const trust = resolver(MEMBER)(stackSetRole.Properties.AssumeRolePolicyDocument);
const permissions = resolver(MEMBER)(
  (stackSetRole.Properties.Policies as Array<{ PolicyDocument: unknown }>)[0]?.PolicyDocument,
);
const ALLOW_ASSUME = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: ROLE_ARN }],
};

async function simulate(p: {
  principal: string;
  action: string;
  resource: string;
  identity: unknown;
  resourcePolicy?: unknown;
  principalOrg?: string;
}): Promise<string> {
  const result = await runSimulation(
    {
      request: {
        principal: p.principal,
        action: p.action,
        resource: { resource: p.resource, accountId: MEMBER },
        contextVariables: {
          'aws:PrincipalArn': p.principal,
          ...(p.principalOrg ? { 'aws:PrincipalOrgID': p.principalOrg } : {}),
        },
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

describe('inventory role (spoke)', () => {
  test('is created once per account, in us-east-1 (GovernanceRegion), under its fixed name', () => {
    expect(stackSetRole.Condition).toBe('GovernanceRegion');
    expect(ORG_INVENTORY_ROLE_NAME).toBe('BedrockKeyGuardInventory');
  });

  test('trust: the management and hub accounts (their IAM decides who), principals of the organization only', () => {
    const doc = stackSetRole.Properties.AssumeRolePolicyDocument as Doc;
    expect(doc.Statement).toEqual([
      {
        Sid: 'ManagementAndHubPrincipalsOfTheOrganization',
        Effect: 'Allow',
        Action: 'sts:AssumeRole',
        Principal: { AWS: [root(MANAGEMENT), root(HUB)] },
        Condition: { StringEquals: { 'aws:PrincipalOrgID': ORG_ID } },
      },
    ]);
  });

  test('permissions: exactly the reads the inventory makes, nothing else', () => {
    const policies = stackSetRole.Properties.Policies as Array<{ PolicyName: string; PolicyDocument: Doc }>;
    expect(policies.map((p) => p.PolicyName)).toEqual(['BedrockKeyInventory']);
    expect(policies[0]?.PolicyDocument.Statement).toEqual([
      {
        Sid: 'InventoryAccountReads',
        Effect: 'Allow',
        Action: [...INVENTORY_ACCOUNT_READS],
        Resource: '*',
      },
      {
        Sid: 'ReadKeyUserTags',
        Effect: 'Allow',
        Action: INVENTORY_USER_READS[0],
        Resource: {
          'Fn::Join': [
            '',
            ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':user/*'],
          ],
        },
      },
    ]);
    expect(stackSetRole.Properties.ManagedPolicyArns).toBeUndefined();
    const actions = [...INVENTORY_ACCOUNT_READS, ...INVENTORY_USER_READS];
    expect(actions.every((a) => /^iam:(List|Get|GenerateCredentialReport$)/.test(a))).toBe(true);
  });

  test('the plain management-account spokes have the same role, created in us-east-1 only (GovernanceRegion)', () => {
    const [east, ...others] = org.spokes;
    const plain = inventoryRoleOf(
      Template.fromStack(east as NonNullable<typeof east>).toJSON().Resources as Record<string, Resource>,
    );
    expect(plain.Properties).toEqual(stackSetRole.Properties);
    expect(plain.Condition).toBe('GovernanceRegion');
    for (const s of others) {
      const role = inventoryRoleOf(Template.fromStack(s).toJSON().Resources as Record<string, Resource>);
      // The template is the same in every region; the condition keeps the role to us-east-1.
      expect(role.Condition).toBe('GovernanceRegion');
    }
  });

  test('the largest config with the role still fits the inline TemplateBody limit', () => {
    const c = parseConfig(largestOrgConfig());
    const body = spokeTemplateBody(c, c.organization as never, HUB);
    expect(body).toContain(ORG_INVENTORY_ROLE_NAME);
    expect(Buffer.byteLength(body, 'utf8')).toBeLessThanOrEqual(TEMPLATE_BODY_MAX_BYTES);
  });

  test('a hub in the management account is trusted once; no account to trust is refused', () => {
    const stack = new Stack(new App(), 'Probe');
    const { role } = new OrgInventoryRole(stack, 'Same', {
      roleName: ORG_INVENTORY_ROLE_NAME,
      trustedAccountIds: [MANAGEMENT, MANAGEMENT],
      organizationId: ORG_ID,
    });
    const trust = stack.resolve((role.node.defaultChild as CfnRole).assumeRolePolicyDocument);
    expect(JSON.stringify(trust).match(/:root/g)).toHaveLength(1);
    expect(
      () =>
        new OrgInventoryRole(stack, 'None', { roleName: 'X', trustedAccountIds: [], organizationId: ORG_ID }),
    ).toThrow('Probe/None: no account to trust');
  });

  test('cdk-nag: the StackSet stack and the plain spokes have no finding', () => {
    for (const scope of [org.stackSet, ...org.spokes]) {
      expect(new AwsSolutionsChecks().validateScope(scope).violations).toEqual([]);
    }
  });
});

describe('inventory role: iam-simulate on the synthesized policies', () => {
  const assume = (principal: string, principalOrg: string) =>
    simulate({
      principal,
      action: 'sts:AssumeRole',
      resource: ROLE_ARN,
      identity: ALLOW_ASSUME,
      resourcePolicy: trust,
      principalOrg,
    });

  test('a principal of the management account or the hub, allowed by its own account, may assume it', async () => {
    expect(
      await assume(
        `arn:aws:iam::${MANAGEMENT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_OrgAdmin_0123456789abcdef`,
        ORG_ID,
      ),
    ).toBe('Allowed');
    expect(await assume(`arn:aws:iam::${HUB}:role/SecurityAuditor`, ORG_ID)).toBe('Allowed');
  });

  test('a principal of another member account, or outside the organization, may not', async () => {
    expect(await assume(`arn:aws:iam::${MEMBER}:role/Admin`, ORG_ID)).not.toBe('Allowed');
    expect(await assume(`arn:aws:iam::${OUTSIDE}:role/Admin`, 'o-zzzzzzzzzz')).not.toBe('Allowed');
    // The management account's id, claimed from outside the organization (aws:PrincipalOrgID differs).
    expect(await assume(`arn:aws:iam::${MANAGEMENT}:role/Admin`, 'o-zzzzzzzzzz')).not.toBe('Allowed');
  });

  test('the role reads keys, the account snapshot and user tags; it cannot deactivate, delete or create anything', async () => {
    const run = (action: string, resource: string) =>
      simulate({ principal: ROLE_ARN, action, resource, identity: permissions });
    const user = `arn:aws:iam::${MEMBER}:user/svc-chatbot`;
    expect(await run('iam:ListServiceSpecificCredentials', user)).toBe('Allowed');
    expect(await run('iam:GetAccountAuthorizationDetails', '*')).toBe('Allowed');
    expect(await run('iam:GetCredentialReport', '*')).toBe('Allowed');
    expect(await run('iam:ListUserTags', user)).toBe('Allowed');
    for (const action of [
      'iam:UpdateServiceSpecificCredential',
      'iam:DeleteServiceSpecificCredential',
      'iam:CreateServiceSpecificCredential',
      'iam:ResetServiceSpecificCredential',
      'iam:CreateAccessKey',
      'iam:TagUser',
    ]) {
      expect([action, await run(action, user)]).toEqual([action, 'ImplicitlyDenied']);
    }
  });
});
