import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { orgSettings, parseConfig } from '../../lambda/shared/config';
import { CREDENTIAL_EVENT_PATTERN } from '../../lib/constructs/credential-event-rule';
import { GOVERNANCE_BUS_NAME } from '../../lib/constructs/governance-bus';
import { ORG_SETTINGS_PARAMETER_NAME } from '../../lib/constructs/org-hub';
import {
  HUB_APPROVAL_ROLE_NAME,
  HUB_ROLE_NAMES,
  HUB_SCHEDULER_ROLE_NAME,
} from '../../lib/constructs/org-roles';
import {
  MEMBER_ACCOUNT_READS,
  MEMBER_GROUP_READS,
  MEMBER_POLICY_READS,
  MEMBER_USER_READS,
} from '../../lib/constructs/org-spoke-parts';
import {
  SPOKE_STACK_SET_NAME,
  spokeTemplateBody,
  TEMPLATE_BODY_MAX_BYTES,
} from '../../lib/constructs/org-spoke-stack-set';
import { ORG_READER_ACTIONS } from '../../lib/management-stack';
import { build, resourcesOf, type Statement, writeConfig } from './helpers';
import { EXCLUDED, HUB, largestOrgConfig, MANAGEMENT, ORG_CONFIG, ORG_ID, TARGETS } from './org-support';

/** Issue 12, topology: the hub's organization additions, the spoke template, the StackSet and the management stack. */

type Json = Record<string, unknown>;

const built = build({ context: { config: writeConfig(ORG_CONFIG), management: 'true', hubAccount: HUB } });
const org = built.organization;
if (!org) throw new Error('expected the organization stacks with -c management=true');
const hub = built.template;
const management = Template.fromStack(org.management);
const stackSetTemplate = Template.fromStack(org.stackSet);
const spokeBody = JSON.parse(org.stackSet.spokes.templateBody) as {
  Resources: Record<string, { Type: string; Properties: Json; Condition?: string }>;
  Conditions: Json;
  Parameters?: Json;
  Rules?: Json;
};
const spokeResources = Object.entries(spokeBody.Resources);
const config = parseConfig(ORG_CONFIG);

function spokeOfType(type: string): Array<[string, { Type: string; Properties: Json; Condition?: string }]> {
  return spokeResources.filter(([, r]) => r.Type === type);
}
const partitionArn = (rest: string) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, rest]] });
const HUB_BUS = partitionArn(`:events:us-east-1:${HUB}:event-bus/${GOVERNANCE_BUS_NAME}`);

describe('single-account templates', () => {
  const base = {
    mode: 'enforce',
    usage: { regions: ['us-east-1', 'eu-west-1'] },
    leakDetection: { logGroups: ['/x'] },
  };
  test.each([
    ['the defaults', {}],
    ['usage and log quarantine', base],
  ])(
    '%s: organization absent and organization null give the same templates, and no organization resource',
    (_n, input) => {
      const absent = build({ context: { config: writeConfig(input) } });
      const nulled = build({ context: { config: writeConfig({ ...input, organization: null }) } });
      expect(JSON.stringify(nulled.template.toJSON())).toBe(JSON.stringify(absent.template.toJSON()));
      expect(nulled.usageStacks.map((s) => JSON.stringify(Template.fromStack(s).toJSON()))).toEqual(
        absent.usageStacks.map((s) => JSON.stringify(Template.fromStack(s).toJSON())),
      );
      expect(absent.organization).toBeUndefined();
      const resources = JSON.stringify(absent.template.toJSON().Resources);
      expect(resourcesOf(absent.template, 'AWS::Events::EventBusPolicy')).toEqual({});
      // The one parameter is the effective policy (every stack publishes it), not organization settings.
      expect(
        Object.values(resourcesOf(absent.template, 'AWS::SSM::Parameter')).map((p) => p.Properties.Name),
      ).toEqual(['/BedrockKeyGuard/effective-policy/standard']);
      for (const absentThing of [
        'ORG_SETTINGS_PARAMETER',
        'ORG_READER_ROLE_ARN',
        '"RoleName"',
        'sts:AssumeRole"]',
      ])
        expect(resources).not.toContain(absentThing);
    },
  );

  test('-c management=true without organization, or without a valid hubAccount, is refused naming the key', () => {
    expect(() => build({ context: { management: 'true', hubAccount: HUB } })).toThrow(
      /organization.*got null/,
    );
    expect(() => build({ context: { config: writeConfig(ORG_CONFIG), management: 'true' } })).toThrow(
      /context hubAccount: got null/,
    );
    expect(() =>
      build({ context: { config: writeConfig(ORG_CONFIG), management: 'true', hubAccount: '12345' } }),
    ).toThrow(/context hubAccount: got "12345"/);
  });

  test('organization mode without the flag builds the hub (and its usage stacks) only', () => {
    const only = build({ context: { config: writeConfig(ORG_CONFIG) } });
    expect(only.organization).toBeUndefined();
    expect(
      only.app.node.children
        .filter((c) => c instanceof Stack)
        .map((c) => c.node.id)
        .sort(),
    ).toEqual(['BedrockKeyGuard', 'BedrockKeyGuardUsage-eu-west-1']);
  });
});

describe('hub in organization mode', () => {
  test('the governance bus admits events:PutEvents from principals of the organization only', () => {
    const policies = resourcesOf(hub, 'AWS::Events::EventBusPolicy');
    expect(Object.values(policies)).toHaveLength(1);
    const p = Object.values(policies)[0]?.Properties as Json;
    const busId = Object.keys(resourcesOf(hub, 'AWS::Events::EventBus'))[0];
    expect(p.EventBusName).toEqual({ Ref: busId });
    expect(p.Statement).toEqual({
      Sid: 'cdk-OrganizationPrincipalsPutEvents',
      Effect: 'Allow',
      Principal: { AWS: '*' },
      Action: 'events:PutEvents',
      Resource: { 'Fn::GetAtt': [busId, 'Arn'] },
      Condition: { StringEquals: { 'aws:PrincipalOrgID': ORG_ID } },
    });
  });

  test('a rule on the governance bus passes forwarded IAM credential events (source aws.iam, same pattern) to the credential-event function, with a DLQ', () => {
    const busId = Object.keys(resourcesOf(hub, 'AWS::Events::EventBus'))[0];
    const rules = Object.values(resourcesOf(hub, 'AWS::Events::Rule')).filter(
      (r) => JSON.stringify(r.Properties.EventBusName) === JSON.stringify({ Ref: busId }),
    );
    const forwarded = rules.filter((r) => JSON.stringify(r.Properties.EventPattern).includes('aws.iam'));
    expect(forwarded).toHaveLength(1);
    const rule = forwarded[0] as { Properties: Json };
    expect(rule.Properties.EventPattern).toEqual(CREDENTIAL_EVENT_PATTERN);
    const [target] = rule.Properties.Targets as Json[];
    const fnId = Object.keys(resourcesOf(hub, 'AWS::Lambda::Function')).find((id) =>
      id.startsWith('CredentialEventFunction'),
    );
    expect(target?.Arn).toEqual({ 'Fn::GetAtt': [fnId, 'Arn'] });
    expect(target?.DeadLetterConfig).toBeDefined();
    expect(target?.RetryPolicy).toEqual({ MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 4 });
  });

  test('the SSM parameter holds orgSettings(config), Intelligent-Tiering', () => {
    // The other parameter is the effective policy (test/lib/effective-policy.test.ts).
    const params = Object.values(resourcesOf(hub, 'AWS::SSM::Parameter')).filter(
      (p) => p.Properties.Name === ORG_SETTINGS_PARAMETER_NAME,
    );
    expect(params).toHaveLength(1);
    expect(params[0]?.Properties).toMatchObject({
      Name: ORG_SETTINGS_PARAMETER_NAME,
      Type: 'String',
      Tier: 'Intelligent-Tiering',
      Value: JSON.stringify(orgSettings(config)),
    });
  });

  const functions = resourcesOf(hub, 'AWS::Lambda::Function');
  const roles = resourcesOf(hub, 'AWS::IAM::Role');
  const deciders = [
    ['credentialEvent', 'CredentialEventFunction'],
    ['sweep', 'InventorySweep'],
    ['leak', 'LeakQuarantine'],
    ['keyUsage', 'KeyUsageFunction'],
  ] as const;

  test.each(deciders)(
    '%s: fixed role name, ORG_SETTINGS_PARAMETER, ORG_READER_ROLE_ARN (not the sweep), and exactly its organization access',
    (kind, prefix) => {
      const [fnId, fn] = Object.entries(functions).find(([id]) => id.startsWith(prefix)) ?? [];
      expect(fnId).toBeDefined();
      const env = ((fn as { Properties: Json }).Properties.Environment as { Variables: Json }).Variables;
      const settingsId = Object.entries(resourcesOf(hub, 'AWS::SSM::Parameter')).find(
        ([, p]) => p.Properties.Name === ORG_SETTINGS_PARAMETER_NAME,
      )?.[0];
      expect(env.ORG_SETTINGS_PARAMETER).toEqual({ Ref: settingsId });
      // The sweep never reads Organizations: its queue message carries the account's OU path.
      expect(env.ORG_READER_ROLE_ARN).toEqual(
        kind === 'sweep' ? undefined : partitionArn(`:iam::${MANAGEMENT}:role/BedrockKeyGuardOrgReader`),
      );
      const roleId = ((fn as { Properties: Json }).Properties.Role as { 'Fn::GetAtt': [string, string] })[
        'Fn::GetAtt'
      ][0];
      expect(roles[roleId]?.Properties.RoleName).toBe(HUB_ROLE_NAMES[kind]);
      const policy = Object.entries(resourcesOf(hub, 'AWS::IAM::Policy')).find(([id]) =>
        id.startsWith(`OrganizationHub${kind}Access`),
      )?.[1];
      expect(policy?.Properties.Roles).toEqual([{ Ref: roleId }]);
      const statements = (
        (policy as { Properties: Json }).Properties.PolicyDocument as { Statement: Statement[] }
      ).Statement;
      expect(statements).toEqual([
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
          Sid: 'AssumeMemberRolesOfTheOrganization',
          Effect: 'Allow',
          Action: 'sts:AssumeRole',
          Resource: partitionArn(':iam::*:role/BedrockKeyGuardMember'),
          Condition: { StringEquals: { 'aws:ResourceOrgID': ORG_ID } },
        },
        ...(kind === 'sweep'
          ? []
          : [
              {
                Sid: 'AssumeOrganizationsReader',
                Effect: 'Allow',
                Action: 'sts:AssumeRole',
                Resource: partitionArn(`:iam::${MANAGEMENT}:role/BedrockKeyGuardOrgReader`),
              },
            ]),
        // The leak function tells a short-term key's account from its access key id (STS, no resource type).
        ...(kind === 'leak'
          ? [
              {
                Sid: 'AccountOfShortTermKeySigners',
                Effect: 'Allow',
                Action: 'sts:GetAccessKeyInfo',
                Resource: '*',
              },
            ]
          : []),
      ]);
    },
  );

  test('no other function gets organization settings or a fixed role name (beyond the org sweep scheduler and the approval function)', () => {
    // The deciding roles, the organization sweep's scheduler role (named by OrgHub.addOrganizationsReader) and the
    // approval function's (Approvals.governOrganization: it checks a key's account is governed, acts in none).
    const readers = [HUB_SCHEDULER_ROLE_NAME, HUB_APPROVAL_ROLE_NAME];
    expect(Object.values(roles).map((r) => r.Properties.RoleName)).toEqual(expect.arrayContaining(readers));
    const named = Object.values(roles)
      .map((r) => r.Properties.RoleName)
      .filter((n) => n !== undefined && !readers.includes(n as string));
    expect(named.sort()).toEqual(Object.values(HUB_ROLE_NAMES).sort());
    const withOrgEnv = Object.keys(functions).filter(
      (id) =>
        JSON.stringify(functions[id]?.Properties.Environment ?? {}).includes('ORG_SETTINGS_PARAMETER') &&
        !id.startsWith('OrganizationSweep') &&
        !id.startsWith('ApprovalsHandler'),
    );
    expect(withOrgEnv.map((id) => deciders.find(([, prefix]) => id.startsWith(prefix))?.[0]).sort()).toEqual([
      'credentialEvent',
      'keyUsage',
      'leak',
      'sweep',
    ]);
  });

  test("key-usage reports batch item failures (one member account's failure retries only its messages)", () => {
    const mappings = Object.entries(resourcesOf(hub, 'AWS::Lambda::EventSourceMapping')).filter(([id]) =>
      id.startsWith('KeyUsageFunction'),
    );
    expect(mappings).toHaveLength(1);
    expect(mappings[0]?.[1].Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
  });

  test('cdk-nag: the hub in organization mode has no unacknowledged finding', () => {
    expect(new AwsSolutionsChecks().validateScope(built.stack).violations).toEqual([]);
  });
});

describe('spoke template', () => {
  test('has no code, no assets, no parameters and no bootstrap rule (usable as an inline StackSet template)', () => {
    const types = new Set(spokeResources.map(([, r]) => r.Type));
    expect([...types].sort()).toEqual([
      'AWS::Events::Rule',
      'AWS::IAM::Policy',
      'AWS::IAM::Role',
      'AWS::SQS::Queue',
      'AWS::SQS::QueuePolicy',
    ]);
    expect(spokeBody.Parameters).toBeUndefined();
    expect(spokeBody.Rules).toBeUndefined();
    expect(org.stackSet.spokes.templateBody).not.toMatch(/cdk-hnb659fds|assets|Lambda/);
  });

  test('one template for every region: IAM forwarding and the member role in us-east-1, usage forwarding in each usage region', () => {
    expect(spokeBody.Conditions).toEqual({
      GovernanceRegion: { 'Fn::Equals': [{ Ref: 'AWS::Region' }, 'us-east-1'] },
      UsageRegion: {
        'Fn::Or': [
          { 'Fn::Equals': [{ Ref: 'AWS::Region' }, 'us-east-1'] },
          { 'Fn::Equals': [{ Ref: 'AWS::Region' }, 'eu-west-1'] },
        ],
      },
    });
    for (const [id, r] of spokeResources) {
      expect([id, r.Condition]).toEqual([id, id.startsWith('Usage') ? 'UsageRegion' : 'GovernanceRegion']);
    }
  });

  test('more than ten usage regions nest Fn::Or (at most ten conditions each)', () => {
    const regions = [
      'eu-west-1',
      'eu-west-2',
      'eu-west-3',
      'eu-central-1',
      'eu-north-1',
      'us-east-2',
      'us-west-1',
      'us-west-2',
      'ap-south-1',
      'ap-northeast-1',
      'ap-northeast-2',
      'sa-east-1',
    ];
    const c = parseConfig({ ...ORG_CONFIG, usage: { regions } });
    const body = JSON.parse(spokeTemplateBody(c, c.organization as never, HUB)) as { Conditions: Json };
    const or = (body.Conditions.UsageRegion as { 'Fn::Or': Array<{ 'Fn::Or': unknown[] }> })['Fn::Or'];
    expect(or.map((g) => g['Fn::Or'].length)).toEqual([10, 2]);
    expect(JSON.stringify(or).match(/Fn::Equals/g)).toHaveLength(12);
  });

  test('the IAM rule has the hub pattern and targets the hub bus through its role, with an encrypted, TLS-only DLQ', () => {
    const rules = spokeOfType('AWS::Events::Rule').filter(([id]) => id.startsWith('CredentialForwarding'));
    expect(rules).toHaveLength(1);
    const rule = rules[0]?.[1] as { Properties: Json };
    expect(rule.Properties.EventPattern).toEqual(CREDENTIAL_EVENT_PATTERN);
    expect(rule.Properties.EventBusName).toBeUndefined(); // the default bus
    const [target] = rule.Properties.Targets as Json[];
    const roleId = spokeOfType('AWS::IAM::Role').find(([id]) =>
      id.startsWith('CredentialForwardingRole'),
    )?.[0];
    const queueId = spokeOfType('AWS::SQS::Queue').find(([id]) => id.startsWith('CredentialForwarding'))?.[0];
    expect(target).toEqual({
      Arn: HUB_BUS,
      Id: 'Target0',
      RoleArn: { 'Fn::GetAtt': [roleId, 'Arn'] },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } },
    });
    const queue = spokeBody.Resources[queueId as string] as { Properties: Json };
    expect(queue.Properties).toEqual({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
    const queuePolicy = spokeOfType('AWS::SQS::QueuePolicy').find(([id]) =>
      id.startsWith('CredentialForwarding'),
    )?.[1];
    const qs = ((queuePolicy as { Properties: Json }).Properties.PolicyDocument as { Statement: Statement[] })
      .Statement;
    expect(qs).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
    expect(qs).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Action: 'sqs:SendMessage',
        Principal: { Service: 'events.amazonaws.com' },
        Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [rules[0]?.[0], 'Arn'] } } },
      }),
    );
  });

  test('the forwarding roles are EventBridge of this account only, allowed events:PutEvents on the hub bus only', () => {
    for (const prefix of ['CredentialForwardingRole', 'UsageForwardingRole']) {
      const [roleId, role] = spokeOfType('AWS::IAM::Role').find(([id]) => id.startsWith(prefix)) ?? [];
      expect(
        ((role as { Properties: Json }).Properties.AssumeRolePolicyDocument as { Statement: Statement[] })
          .Statement,
      ).toEqual([
        {
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
        },
      ]);
      const policies = spokeOfType('AWS::IAM::Policy').filter(
        ([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]),
      );
      expect(
        policies.flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement),
      ).toEqual([{ Action: 'events:PutEvents', Effect: 'Allow', Resource: HUB_BUS }]);
    }
  });

  test('the usage rules (reused from usage-forwarding.ts) target the hub bus', () => {
    const usageRules = spokeOfType('AWS::Events::Rule').filter(([id]) => id.startsWith('UsageForwarding'));
    expect(usageRules).toHaveLength(2);
    for (const [, r] of usageRules) {
      expect((r.Properties.Targets as Json[])[0]?.Arn).toEqual(HUB_BUS);
      expect(r.Properties.State).toBe('ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS');
    }
  });

  test('the member role: trusted by the exact hub role ARNs within the organization, exact actions and conditions', () => {
    const [, role] = spokeOfType('AWS::IAM::Role').find(([id]) => id.startsWith('MemberRole')) ?? [];
    expect(role?.Properties.RoleName).toBe('BedrockKeyGuardMember');
    expect(role?.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role?.Properties.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'HubRolesOfTheOrganization',
          Effect: 'Allow',
          Action: 'sts:AssumeRole',
          Principal: {
            AWS: [
              HUB_ROLE_NAMES.credentialEvent,
              HUB_ROLE_NAMES.sweep,
              HUB_ROLE_NAMES.leak,
              HUB_ROLE_NAMES.keyUsage,
            ].map((n) => partitionArn(`:iam::${HUB}:role/${n}`)),
          },
          Condition: { StringEquals: { 'aws:PrincipalOrgID': ORG_ID } },
        },
      ],
    });
    const policies = role?.Properties.Policies as Array<{ PolicyDocument: { Statement: Statement[] } }>;
    expect(policies).toHaveLength(1);
    const iamArn = (r: string) => ({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, `:${r}/*`]],
    });
    expect(policies[0]?.PolicyDocument.Statement).toEqual([
      { Sid: 'ReadKeyUsers', Effect: 'Allow', Action: [...MEMBER_USER_READS], Resource: iamArn('user') },
      {
        Sid: 'ReadKeyUserGroupPolicies',
        Effect: 'Allow',
        Action: [...MEMBER_GROUP_READS],
        Resource: iamArn('group'),
      },
      {
        Sid: 'ReadCustomerManagedPolicies',
        Effect: 'Allow',
        Action: [...MEMBER_POLICY_READS],
        Resource: iamArn('policy'),
      },
      { Sid: 'SweepAccountReads', Effect: 'Allow', Action: [...MEMBER_ACCOUNT_READS], Resource: '*' },
      {
        Sid: 'DeactivateBedrockKeysOnly',
        Effect: 'Allow',
        Action: 'iam:UpdateServiceSpecificCredential',
        Resource: iamArn('user'),
        Condition: { StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' } },
      },
      // The hub has a leak function: a short-term key's signer is traced in the account that signed it.
      { Sid: 'LookUpShortTermKeySigners', Effect: 'Allow', Action: 'cloudtrail:LookupEvents', Resource: '*' },
    ]);
    // Nothing but IAM reads, the one conditioned write and the event history read.
    const actions = policies[0]?.PolicyDocument.Statement.flatMap((s) => [s.Action].flat()) ?? [];
    expect(actions.filter((a) => !/^iam:(List|Get|Generate)/.test(a))).toEqual([
      'iam:UpdateServiceSpecificCredential',
      'cloudtrail:LookupEvents',
    ]);
  });

  test('without usage or log groups, only credential-event and sweep roles are trusted and no usage rule exists', () => {
    const c = parseConfig({ organization: ORG_CONFIG.organization });
    const body = JSON.parse(spokeTemplateBody(c, c.organization as never, HUB)) as typeof spokeBody;
    const member = Object.values(body.Resources).find(
      (r) => r.Properties.RoleName === 'BedrockKeyGuardMember',
    );
    expect(JSON.stringify(member?.Properties.AssumeRolePolicyDocument)).not.toMatch(/Leak|KeyUsage/);
    // No leak function: no event history read either.
    expect(JSON.stringify(member?.Properties.Policies)).not.toContain('cloudtrail:');
    expect(body.Conditions.UsageRegion).toBeUndefined();
    expect(Object.keys(body.Resources).filter((id) => id.startsWith('Usage'))).toEqual([]);
  });

  test('the largest config still fits the inline TemplateBody limit (51,200 bytes)', () => {
    const c = parseConfig(largestOrgConfig());
    const body = spokeTemplateBody(c, c.organization as never, HUB);
    const bytes = Buffer.byteLength(body, 'utf8');
    // Reported for the README's figures.
    console.info(
      `spoke TemplateBody: largest config ${bytes} bytes; test config ${Buffer.byteLength(org.stackSet.spokes.templateBody)} bytes`,
    );
    expect(bytes).toBeLessThanOrEqual(TEMPLATE_BODY_MAX_BYTES);
    expect(JSON.parse(body).Conditions.UsageRegion).toBeDefined();
  });

  test('the plain spoke stacks (management account) have the same resources, one per region, and are cdk-nag clean', () => {
    expect(org.spokes.map((s) => [s.stackName, s.region])).toEqual([
      ['BedrockKeyGuardSpoke', 'us-east-1'],
      ['BedrockKeyGuardSpoke-eu-west-1', 'eu-west-1'],
    ]);
    for (const s of org.spokes) {
      // Same resources and conditions; only names derived from the stack name (queue policy Sids) and region (a
      // description) differ.
      const plain = Template.fromStack(s).toJSON() as typeof spokeBody;
      expect(
        Object.fromEntries(Object.entries(plain.Resources).map(([id, r]) => [id, [r.Type, r.Condition]])),
      ).toEqual(Object.fromEntries(spokeResources.map(([id, r]) => [id, [r.Type, r.Condition]])));
      expect(plain.Conditions).toEqual(spokeBody.Conditions);
      expect(new AwsSolutionsChecks().validateScope(s).violations).toEqual([]);
    }
  });
});

describe('StackSet', () => {
  test('service-managed, automatic deployment, targets minus excluded accounts and the hub, us-east-1 + usage regions, inline spoke', () => {
    const sets = Object.values(resourcesOf(stackSetTemplate, 'AWS::CloudFormation::StackSet'));
    expect(sets).toHaveLength(1);
    const p = sets[0]?.Properties as Json;
    const conditions = stackSetTemplate.toJSON().Conditions as Json;
    const conditionId = Object.keys(conditions).find((id) => id.startsWith('SpokesInManagementAccount'));
    expect(conditions[conditionId as string]).toEqual({
      'Fn::Equals': [{ Ref: 'AWS::AccountId' }, MANAGEMENT],
    });
    expect(p).toMatchObject({
      StackSetName: SPOKE_STACK_SET_NAME,
      PermissionModel: 'SERVICE_MANAGED',
      AutoDeployment: { Enabled: true, RetainStacksOnAccountRemoval: false },
      CallAs: { 'Fn::If': [conditionId, 'SELF', 'DELEGATED_ADMIN'] },
      Capabilities: ['CAPABILITY_NAMED_IAM'],
      ManagedExecution: { Active: true },
      StackInstancesGroup: [
        {
          DeploymentTargets: {
            OrganizationalUnitIds: TARGETS,
            AccountFilterType: 'DIFFERENCE',
            Accounts: [EXCLUDED, HUB],
          },
          Regions: ['us-east-1', 'eu-west-1'],
        },
      ],
    });
    expect(p.TemplateBody).toBe(org.stackSet.spokes.templateBody);
    expect(p.Parameters).toBeUndefined();
  });

  test('cdk-nag: the StackSet stack has no finding', () => {
    expect(new AwsSolutionsChecks().validateScope(org.stackSet).violations).toEqual([]);
  });
});

describe('management stack', () => {
  test('BedrockKeyGuardOrgReader: read-only Organizations, trusted by the exact hub role ARNs within the organization', () => {
    const roles = Object.values(resourcesOf(management, 'AWS::IAM::Role'));
    expect(roles).toHaveLength(1);
    const role = roles[0] as { Properties: Json };
    expect(role.Properties.RoleName).toBe('BedrockKeyGuardOrgReader');
    const trust = role.Properties.AssumeRolePolicyDocument as { Statement: Statement[] };
    expect(trust.Statement).toHaveLength(1);
    expect(trust.Statement[0]?.Condition).toEqual({ StringEquals: { 'aws:PrincipalOrgID': ORG_ID } });
    expect(JSON.stringify(trust.Statement[0]?.Principal)).not.toMatch(/:root/);
    expect(((trust.Statement[0] as Statement).Principal as { AWS: unknown[] }).AWS).toEqual(
      // The deciding roles that read the organization (not the sweep: its messages carry OU paths), the scheduler and
      // the approval function.
      [
        HUB_ROLE_NAMES.credentialEvent,
        HUB_ROLE_NAMES.leak,
        HUB_ROLE_NAMES.keyUsage,
        HUB_SCHEDULER_ROLE_NAME,
        HUB_APPROVAL_ROLE_NAME,
      ].map((n) => partitionArn(`:iam::${HUB}:role/${n}`)),
    );
    expect(role.Properties.Policies).toEqual([
      {
        PolicyName: 'OrganizationsRead',
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            { Sid: 'ReadOrganization', Effect: 'Allow', Action: [...ORG_READER_ACTIONS], Resource: '*' },
          ],
        },
      },
    ]);
    expect(ORG_READER_ACTIONS.every((a) => /^organizations:(List|Describe)/.test(a))).toBe(true);
  });

  test('cdk-nag: the management stack has no unacknowledged finding', () => {
    expect(new AwsSolutionsChecks().validateScope(org.management).violations).toEqual([]);
  });
});
