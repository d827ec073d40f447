import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { usageTableDefinition } from '../../lambda/adapters/usage-store';
import { UsageForwarding } from '../../lib/constructs/usage-forwarding';
import { UsageRegionError, UsageStack } from '../../lib/usage-stack';
import { build, NO_BUNDLING, resourcesOf, type Statement, writeConfig } from './helpers';

// Prepare (shared): the real composition, default config and usage in us-east-1 and eu-west-1.
const withUsage = build({
  context: { config: writeConfig({ usage: { regions: ['us-east-1', 'eu-west-1'] } }) },
});
const withoutUsage = build({ context: { config: writeConfig({}) } });
const main = withUsage.template;
const [euStack] = withUsage.usageStacks;
if (!euStack) throw new Error('expected a usage stack for eu-west-1');
const eu = Template.fromStack(euStack);

/** The governance bus ARN as a regional stack writes it (partition and account resolved at deploy time). */
const BUS_ARN = {
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':events:us-east-1:',
      { Ref: 'AWS::AccountId' },
      ':event-bus/bedrock-key-guard-governance',
    ],
  ],
};

const BEDROCK_PATTERN = {
  source: ['aws.bedrock'],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    eventSource: ['bedrock.amazonaws.com'],
    additionalEventData: { callWithBearerToken: [true, 'true'] },
  },
};
const MANTLE_PATTERN = {
  source: ['aws.bedrock', 'aws.bedrock-mantle'],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: {
    eventSource: ['bedrock-mantle.amazonaws.com'],
    requestParameters: { callWithBearerToken: [true, 'true'] },
  },
};

function onlyId(t: Template, type: string, prefix: string): string {
  const ids = Object.keys(resourcesOf(t, type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
}

function ruleWithPattern(t: Template, pattern: unknown) {
  const found = Object.entries(resourcesOf(t, 'AWS::Events::Rule')).filter(
    ([, r]) => JSON.stringify(r.Properties.EventPattern) === JSON.stringify(pattern),
  );
  if (found.length !== 1) throw new Error(`expected one rule with the pattern, found ${found.length}`);
  return found[0] as (typeof found)[number];
}

function statementsOfRole(t: Template, roleId: string): Statement[] {
  return Object.values(resourcesOf(t, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

function countsOf(t: Template): Record<string, number> {
  const resources = (t.toJSON() as { Resources: Record<string, { Type: string }> }).Resources;
  const counts: Record<string, number> = {};
  for (const r of Object.values(resources)) counts[r.Type] = (counts[r.Type] ?? 0) + 1;
  return counts;
}

/** One resource by logical id (fails the test when it is missing). */
function resourceOf(t: Template, type: string, id: string) {
  const found = resourcesOf(t, type)[id];
  if (!found) throw new Error(`no ${type} ${id}`);
  return found;
}

/** The statements of the queue policy of one queue. */
function queuePolicyStatements(t: Template, queueId: string): Statement[] {
  const policy = Object.values(resourcesOf(t, 'AWS::SQS::QueuePolicy')).find(
    (p) => JSON.stringify(p.Properties.Queues) === JSON.stringify([{ Ref: queueId }]),
  );
  if (!policy) throw new Error(`no queue policy for ${queueId}`);
  return (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
}

describe('buildApp: usage stacks', () => {
  test('the default config (no usage.regions) builds no usage stack and no usage resources', () => {
    // Assess
    expect(withoutUsage.usageStacks).toEqual([]);
    expect(withoutUsage.app.node.children.filter((c) => c instanceof Stack)).toEqual([withoutUsage.stack]);
    const body = JSON.stringify(withoutUsage.template.toJSON());
    for (const fragment of [
      'GovernanceBusUsage',
      // Not the bare word KeyUsage: the audit signing key's KMS KeyUsage (SIGN_VERIFY) is unrelated.
      'KeyUsageFunction',
      'UsageForwarding',
      'UsageTable',
      'USAGE_TABLE_NAME',
    ]) {
      expect(body).not.toContain(fragment);
    }
    // The governance bus itself is in every deployment (scan reports, issue 15), without its usage rule and queues.
    withoutUsage.template.resourceCountIs('AWS::Events::EventBus', 1);
    expect(withoutUsage.stack.governanceBus.usage).toBeUndefined();
  });

  test('[us-east-1, eu-west-1]: one usage stack, BedrockKeyGuardUsage-eu-west-1 in eu-west-1, after the main stack', () => {
    // Assess
    expect(withUsage.usageStacks.map((s) => [s.stackName, s.region])).toEqual([
      ['BedrockKeyGuardUsage-eu-west-1', 'eu-west-1'],
    ]);
    expect(euStack.dependencies).toEqual([withUsage.stack]);
    expect(withUsage.stack.usageForwarding).toBeInstanceOf(UsageForwarding);
  });

  test('a region listed twice gets one stack; the account is passed to every stack', () => {
    // Act
    const built = build({
      account: '123456789012',
      context: { config: writeConfig({ usage: { regions: ['eu-west-1', 'ap-northeast-1', 'eu-west-1'] } }) },
    });
    // Assess
    expect(built.usageStacks.map((s) => `${s.stackName}@${s.account}/${s.region}`)).toEqual([
      'BedrockKeyGuardUsage-eu-west-1@123456789012/eu-west-1',
      'BedrockKeyGuardUsage-ap-northeast-1@123456789012/ap-northeast-1',
    ]);
    // us-east-1 is not listed: the main stack has the bus but forwards nothing of its own.
    expect(built.stack.usageForwarding).toBeUndefined();
    expect(built.stack.governanceBus).toBeDefined();
    // The credential-event rule, the usage rule and the scan-report rule (issue 15).
    Template.fromStack(built.stack).resourceCountIs('AWS::Events::Rule', 3);
  });

  test('every stack of the app passes cdk-nag AwsSolutions with no unacknowledged finding', () => {
    // Act
    const report = new AwsSolutionsChecks().validateScope(withUsage.app);
    // Assess
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
    expect(report.success).toBe(true);
  });
});

describe('UsageStack (eu-west-1)', () => {
  test('refuses us-east-1, which the main stack forwards itself', () => {
    // Prepare
    const app = new App({ context: NO_BUNDLING });
    // Act
    const act = () => new UsageStack(app, 'Wrong', { env: { region: 'us-east-1' } });
    // Assess
    expect(act).toThrow(UsageRegionError);
    expect(act).toThrow(
      /us-east-1" is not allowed: us-east-1 is forwarded by the BedrockKeyGuard stack itself/,
    );
  });

  test('holds only the forwarding: two rules, one role and policy, one DLQ with its key and policy', () => {
    // Assess
    expect(countsOf(eu)).toEqual({
      'AWS::Events::Rule': 2,
      'AWS::IAM::Role': 1,
      'AWS::IAM::Policy': 1,
      'AWS::SQS::Queue': 1,
      'AWS::SQS::QueuePolicy': 1,
      'AWS::KMS::Key': 1,
    });
  });

  test('bedrock rule: bearer-token Bedrock management events, including read-only ones', () => {
    // Act
    const [, rule] = ruleWithPattern(eu, BEDROCK_PATTERN);
    // Assess
    expect(rule.Properties.State).toBe('ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS');
    expect(rule.Properties.EventBusName).toBeUndefined(); // the region's default bus
  });

  test('mantle rule: bearer-token bedrock-mantle data events under either source, same state', () => {
    // Act
    const [, rule] = ruleWithPattern(eu, MANTLE_PATTERN);
    // Assess
    expect(rule.Properties.State).toBe('ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS');
    expect(rule.Properties.EventBusName).toBeUndefined();
  });

  test('both rules target the us-east-1 governance bus by ARN, with the role and the DLQ, and no retry policy', () => {
    // Prepare
    const roleId = onlyId(eu, 'AWS::IAM::Role', 'UsageForwardingRole');
    const dlqId = onlyId(eu, 'AWS::SQS::Queue', 'UsageForwardingDeadLetterQueue');
    // Assess
    for (const rule of Object.values(resourcesOf(eu, 'AWS::Events::Rule'))) {
      expect(rule.Properties.Targets).toEqual([
        {
          Id: 'Target0',
          Arn: BUS_ARN,
          RoleArn: { 'Fn::GetAtt': [roleId, 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [dlqId, 'Arn'] } },
        },
      ]);
    }
  });

  test('the role is assumable by EventBridge of this account only, and may only put events on the governance bus', () => {
    // Prepare
    const roleId = onlyId(eu, 'AWS::IAM::Role', 'UsageForwardingRole');
    const role = resourceOf(eu, 'AWS::IAM::Role', roleId);
    // Assess
    expect(role.Properties.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 'sts:AssumeRole',
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
        },
      ],
    });
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(statementsOfRole(eu, roleId)).toEqual([
      { Effect: 'Allow', Action: 'events:PutEvents', Resource: BUS_ARN },
    ]);
  });

  test('the DLQ is KMS-encrypted (rotating key), TLS-only, 14 days, and only these rules may send to it', () => {
    // Prepare
    const dlqId = onlyId(eu, 'AWS::SQS::Queue', 'UsageForwardingDeadLetterQueue');
    const keyId = onlyId(eu, 'AWS::KMS::Key', 'UsageForwardingDeadLetterQueueKey');
    const ruleIds = Object.keys(resourcesOf(eu, 'AWS::Events::Rule')).sort();
    const statements = queuePolicyStatements(eu, dlqId);
    // Assess
    eu.hasResourceProperties('AWS::SQS::Queue', {
      KmsMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] },
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    eu.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    eu.resourceCountIs('AWS::SQS::QueuePolicy', 1);
    expect(statements.find((s) => s.Effect === 'Deny')).toMatchObject({
      Action: 'sqs:*',
      Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    });
    const senders = statements.filter((s) => s.Effect === 'Allow');
    expect(senders.map((s) => [s.Action, s.Principal, s.Condition])).toEqual(
      ruleIds.map((id) => [
        'sqs:SendMessage',
        { Service: 'events.amazonaws.com' },
        { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [id, 'Arn'] } } },
      ]),
    );
  });

  test("the DLQ's key lets EventBridge rules of this account and region (only) encrypt for it", () => {
    // Assess
    eu.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([
          {
            Sid: 'AllowEventBridgeRuleDeadLetterDelivery',
            Effect: 'Allow',
            Principal: { Service: 'events.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
            Resource: '*',
            Condition: {
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
              ArnLike: {
                'aws:SourceArn': {
                  'Fn::Join': [
                    '',
                    [
                      'arn:',
                      { Ref: 'AWS::Partition' },
                      ':events:eu-west-1:',
                      { Ref: 'AWS::AccountId' },
                      ':rule/*',
                    ],
                  ],
                },
              },
            },
          },
        ]),
      },
    });
  });

  test('outputs the DLQ URL', () => {
    // Assess
    expect(Object.keys(eu.findOutputs('*'))).toEqual(['UsageForwardingDeadLetterQueueUrl']);
    eu.hasOutput('UsageForwardingDeadLetterQueueUrl', {
      Value: { Ref: onlyId(eu, 'AWS::SQS::Queue', 'UsageForwardingDeadLetterQueue') },
    });
  });
});

describe('main stack: usage in us-east-1', () => {
  test('us-east-1 forwards to its own governance bus with the same two rules, role and DLQ', () => {
    // Prepare
    const busId = onlyId(main, 'AWS::Events::EventBus', 'GovernanceBus');
    const roleId = onlyId(main, 'AWS::IAM::Role', 'UsageForwardingRole');
    const dlqId = onlyId(main, 'AWS::SQS::Queue', 'UsageForwardingDeadLetterQueue');
    const busArn = { 'Fn::GetAtt': [busId, 'Arn'] };
    // Assess
    for (const pattern of [BEDROCK_PATTERN, MANTLE_PATTERN]) {
      const [, rule] = ruleWithPattern(main, pattern);
      expect(rule.Properties.State).toBe('ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS');
      expect(rule.Properties.EventBusName).toBeUndefined();
      expect(rule.Properties.Targets).toEqual([
        {
          Id: 'Target0',
          Arn: busArn,
          RoleArn: { 'Fn::GetAtt': [roleId, 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [dlqId, 'Arn'] } },
        },
      ]);
    }
    expect(statementsOfRole(main, roleId)).toEqual([
      { Effect: 'Allow', Action: 'events:PutEvents', Resource: busArn },
    ]);
  });

  test('the governance bus has the fixed name the regional stacks address', () => {
    // Assess
    main.hasResourceProperties('AWS::Events::EventBus', { Name: 'bedrock-key-guard-governance' });
    main.resourceCountIs('AWS::Events::EventBus', 1);
    main.resourceCountIs('AWS::Events::EventBusPolicy', 0); // same account: no resource policy needed
  });

  test('the usage rule on the governance bus matches both kinds of forwarded event, read-only included', () => {
    // Prepare
    const busId = onlyId(main, 'AWS::Events::EventBus', 'GovernanceBus');
    const ruleId = onlyId(main, 'AWS::Events::Rule', 'GovernanceBusUsageRule');
    const rule = resourceOf(main, 'AWS::Events::Rule', ruleId);
    // Assess
    expect(rule.Properties.EventBusName).toEqual({ Ref: busId });
    expect(rule.Properties.State).toBe('ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS');
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.bedrock', 'aws.bedrock-mantle'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: { $or: [BEDROCK_PATTERN.detail, MANTLE_PATTERN.detail] },
    });
  });

  test('the usage rule queues events with 4 retries within 2 hours, then its own DLQ', () => {
    // Prepare
    const queueId = onlyId(main, 'AWS::SQS::Queue', 'GovernanceBusUsageQueue');
    const dlqId = onlyId(main, 'AWS::SQS::Queue', 'GovernanceBusRuleDeadLetterQueue');
    const rule = resourceOf(
      main,
      'AWS::Events::Rule',
      onlyId(main, 'AWS::Events::Rule', 'GovernanceBusUsageRule'),
    );
    // Assess
    expect(rule.Properties.Targets).toEqual([
      {
        Id: 'Target0',
        Arn: { 'Fn::GetAtt': [queueId, 'Arn'] },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [dlqId, 'Arn'] } },
        RetryPolicy: { MaximumRetryAttempts: 4, MaximumEventAgeInSeconds: 7200 },
      },
    ]);
  });

  test('EventBridge of this account only may send to the usage queue and use its key', () => {
    // Prepare
    const queueId = onlyId(main, 'AWS::SQS::Queue', 'GovernanceBusUsageQueue');
    const keyId = onlyId(main, 'AWS::KMS::Key', 'GovernanceBusUsageQueueKey');
    const thisAccount = { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } };
    const allows = queuePolicyStatements(main, queueId).filter((s) => s.Effect === 'Allow');
    const keyAllows = (
      resourceOf(main, 'AWS::KMS::Key', keyId).Properties.KeyPolicy as { Statement: Statement[] }
    ).Statement.filter(
      (s) => s.Effect === 'Allow' && JSON.stringify(s.Principal).includes('events.amazonaws.com'),
    );
    // Assess
    expect(allows.map((s) => [s.Principal, s.Condition])).toEqual([
      [{ Service: 'events.amazonaws.com' }, thisAccount],
    ]);
    expect(keyAllows.map((s) => s.Condition)).toEqual([thisAccount]);
  });

  test("only the usage rule's EventBridge deliveries reach the usage queue (another rule is denied)", () => {
    // Prepare: a rule anyone in the account could create must not feed forged uses to the key-usage function
    const queueId = onlyId(main, 'AWS::SQS::Queue', 'GovernanceBusUsageQueue');
    const rule = resourceOf(
      main,
      'AWS::Events::Rule',
      onlyId(main, 'AWS::Events::Rule', 'GovernanceBusUsageRule'),
    );
    const ruleArn = {
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':events:us-east-1:',
          { Ref: 'AWS::AccountId' },
          `:rule/bedrock-key-guard-governance/${rule.Properties.Name}`,
        ],
      ],
    };
    const onlyThisRule = { ArnNotEquals: { 'aws:SourceArn': ruleArn } };
    const queueDenies = queuePolicyStatements(main, queueId).filter((s) => s.Effect === 'Deny');
    // Assess
    expect(queueDenies).toContainEqual(
      expect.objectContaining({
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Condition: onlyThisRule,
      }),
    );
  });

  test('outputs the bus ARN, the usage table, both usage DLQs and the us-east-1 forwarding DLQ', () => {
    // Assess
    const outputs = main.findOutputs('*');
    expect(outputs.GovernanceBusArn?.Value).toEqual({
      'Fn::GetAtt': [onlyId(main, 'AWS::Events::EventBus', 'GovernanceBus'), 'Arn'],
    });
    expect(outputs.UsageTableName?.Value).toEqual({
      Ref: onlyId(main, 'AWS::DynamoDB::Table', 'AuditTablesUsageTable'),
    });
    expect(outputs.UsageDeadLetterQueueUrl?.Value).toEqual({
      Ref: onlyId(main, 'AWS::SQS::Queue', 'GovernanceBusUsageDeadLetterQueue'),
    });
    expect(outputs.UsageRuleDeadLetterQueueUrl?.Value).toEqual({
      Ref: onlyId(main, 'AWS::SQS::Queue', 'GovernanceBusRuleDeadLetterQueue'),
    });
    expect(outputs.UsageForwardingDeadLetterQueueUrl?.Value).toEqual({
      Ref: onlyId(main, 'AWS::SQS::Queue', 'UsageForwardingDeadLetterQueue'),
    });
    expect(
      Object.keys(withoutUsage.template.findOutputs('*')).filter((k) => /Usage|Governance/.test(k)),
    ).toEqual(['GovernanceBusArn']);
  });
});

describe('usage table', () => {
  test("the adapter's schema (accountId/subject), on-demand, PITR, AWS managed KMS key, retained, protected", () => {
    // Prepare
    const id = onlyId(main, 'AWS::DynamoDB::Table', 'AuditTablesUsageTable');
    const table = (main.toJSON() as { Resources: Record<string, Record<string, unknown>> }).Resources[id] as {
      Properties: Record<string, unknown>;
      DeletionPolicy: string;
      UpdateReplacePolicy: string;
    };
    const definition = usageTableDefinition('x');
    // Assess
    expect(table.Properties.KeySchema).toEqual(definition.KeySchema);
    expect(table.Properties.AttributeDefinitions).toEqual(definition.AttributeDefinitions);
    expect(table.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      DeletionProtectionEnabled: true,
    });
    expect((table.Properties.SSESpecification as Record<string, unknown>).KMSMasterKeyId).toBeUndefined();
    expect(table.DeletionPolicy).toBe('Retain');
    expect(table.UpdateReplacePolicy).toBe('Retain');
  });

  test('only with usage tracking: the default stack keeps its five tables', () => {
    // Assess
    withoutUsage.template.resourceCountIs('AWS::DynamoDB::Table', 5);
    main.resourceCountIs('AWS::DynamoDB::Table', 6);
    expect(withoutUsage.stack.tables.usage).toBeUndefined();
  });
});
