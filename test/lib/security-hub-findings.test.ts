// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig } from '../../lambda/shared/config';
import { GovernanceBus } from '../../lib/constructs/governance-bus';
import { OwnerAlerts } from '../../lib/constructs/owner-alerts';
import { SECURITY_HUB_RULE_NAME, SecurityHubFindings } from '../../lib/constructs/security-hub-findings';
import { actionsOf, build, NO_BUNDLING, resourcesOf, type Statement, writeConfig } from './helpers';

/** SecurityHubFindings on the governance bus, synthesized once (no bundling). */
const app = new App({ context: NO_BUNDLING });
const stack = new Stack(app, 'Hub', { env: { account: '111122223333', region: 'us-east-1' } });
const bus = new GovernanceBus(stack, 'GovernanceBus', { usage: false });
const alerts = new OwnerAlerts(stack, 'OwnerAlerts', { subscriptions: [] });
const findings = new SecurityHubFindings(stack, 'SecurityHubFindings', { bus: bus.bus, topic: alerts.topic });
const template = Template.fromStack(stack);
const ref = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);

function roleStatements(): Statement[] {
  const roleId = ref(findings.role as never);
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(roleId))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

describe('SecurityHubFindings', () => {
  test('a rule on the governance bus matches the decision events of this account only, into the queue, with a DLQ', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      Name: SECURITY_HUB_RULE_NAME,
      EventBusName: { Ref: Match.stringLikeRegexp('GovernanceBus') },
      EventPattern: {
        source: ['keyguard.decisions'],
        'detail-type': ['Bedrock API Key Decision'],
        account: ['111122223333'],
      },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [ref(findings.queue), 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [ref(findings.ruleDeadLetterQueue), 'Arn'] } },
          RetryPolicy: { MaximumEventAgeInSeconds: 86400, MaximumRetryAttempts: 185 },
        }),
      ],
    });
  });

  test('only that rule may send to the queue; the queue is KMS-encrypted and redrives to the DLQ after 5 receives', () => {
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: ref(findings.queue) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'OnlyTheSecurityHubRuleDelivers',
            Principal: { Service: 'events.amazonaws.com' },
            Action: 'sqs:SendMessage',
            Condition: {
              ArnEquals: {
                'aws:SourceArn': {
                  'Fn::Join': [
                    '',
                    Match.arrayWith([
                      ':events:us-east-1:111122223333:rule/bedrock-key-guard-governance/bedrock-key-guard-security-hub',
                    ]),
                  ],
                },
              },
            },
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      KmsMasterKeyId: Match.anyValue(),
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [ref(findings.deadLetterQueue), 'Arn'] },
        maxReceiveCount: 5,
      },
    });
  });

  test('the function reads batches of 100 and reports batch item failures, two batches at a time', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [ref(findings.queue), 'Arn'] },
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 30,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
    });
  });

  test('least privilege: BatchImportFindings on this account and region’s default product, for this account only', () => {
    const statements = roleStatements();
    const hub = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('securityhub:')));
    expect(hub).toEqual([
      {
        Sid: 'ImportKeyFindings',
        Effect: 'Allow',
        Action: 'securityhub:BatchImportFindings',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':securityhub:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':product/',
              { Ref: 'AWS::AccountId' },
              '/default',
            ],
          ],
        },
        Condition: { StringEquals: { 'securityhub:TargetAccount': { Ref: 'AWS::AccountId' } } },
      },
    ]);
    const all = statements.flatMap(actionsOf).sort();
    expect(all).toEqual(
      [
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'kms:Decrypt',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'securityhub:BatchImportFindings',
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
      ].sort(),
    );
    const dynamo = statements.find((s) => actionsOf(s).includes('dynamodb:PutItem'));
    expect(dynamo?.Resource).toEqual(
      expect.arrayContaining([{ 'Fn::GetAtt': [ref(findings.stateTable), 'Arn'] }]),
    );
  });

  test.each([
    [
      'its own findings into its own default product',
      'product/111122223333/default',
      '111122223333',
      'Allowed',
    ],
    [
      'findings that name another account',
      'product/111122223333/default',
      '444455556666',
      'ImplicitlyDenied',
    ],
    ["another product's ARN", 'product/111122223333/other', '111122223333', 'ImplicitlyDenied'],
    ['into another account', 'product/444455556666/default', '111122223333', 'ImplicitlyDenied'],
  ])('IAM simulation: BatchImportFindings of %s is %s', async (_name, product, target, expected) => {
    // Prepare: the role's statements as a deployment in 111122223333 resolves them.
    const resolve = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(resolve);
      if (v === null || typeof v !== 'object') return v;
      const o = v as Record<string, unknown>;
      if ('Ref' in o)
        return (
          (
            {
              'AWS::Partition': 'aws',
              'AWS::Region': 'us-east-1',
              'AWS::AccountId': '111122223333',
            } as Record<string, string>
          )[o.Ref as string] ?? `ref-${String(o.Ref)}`
        );
      if ('Fn::GetAtt' in o)
        return `arn:aws:unknown:us-east-1:111122223333:${(o['Fn::GetAtt'] as string[])[0]}`;
      if ('Fn::Join' in o) {
        const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
        return parts.map((x) => String(resolve(x))).join(sep);
      }
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, resolve(x)]));
    };
    const identity = resolve({ Version: '2012-10-17', Statement: roleStatements() });
    const account = product.split('/')[1] ?? '';
    // Act
    const result = await runSimulation(
      {
        request: {
          principal: 'arn:aws:iam::111122223333:role/findings',
          action: 'securityhub:BatchImportFindings',
          resource: { resource: `arn:aws:securityhub:us-east-1:${account}:${product}`, accountId: account },
          contextVariables: { 'securityhub:TargetAccount': target },
        },
        identityPolicies: [{ name: 'identity', policy: identity as never }],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
      },
      {},
    );
    // Assess
    expect(result.resultType === 'single' ? result.overallResult : result.resultType).toBe(expected);
  });

  test('either dead-letter queue holding a message alarms on the owner-notice topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'Hub-security-hub-findings-undelivered',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: ref(alerts.topic as never) }],
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: 'dlq + ruledlq' }),
        Match.objectLike({ Id: 'dlq' }),
        Match.objectLike({ Id: 'ruledlq' }),
      ]),
    });
  });

  test('the state table: partition key id, point-in-time recovery, encrypted', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });

  test('cdk-nag: no violations (but AwsSolutions-L1, which KeyguardStack acknowledges for every function)', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.filter((v) => v.ruleName !== 'AwsSolutions-L1')).toEqual([]);
  });
});

describe('KeyguardStack with findings.securityHub', () => {
  // One synthesis of the whole stack with the setting on (the defaults, without it, are keyguard-stack.test.ts's).
  const built = build({ context: { config: writeConfig({ findings: { securityHub: true } }) } });

  test('deploys SecurityHubFindings with its dead-letter queues as outputs, and stays cdk-nag clean', () => {
    const shf = built.stack.securityHubFindings;
    expect(shf).toBeDefined();
    const outputs = built.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(Object.keys(outputs)).toEqual(
      expect.arrayContaining(['SecurityHubFindingsDeadLetterQueueUrl', 'SecurityHubRuleDeadLetterQueueUrl']),
    );
    built.template.hasResourceProperties('AWS::Events::Rule', { Name: SECURITY_HUB_RULE_NAME });
    expect(new AwsSolutionsChecks().validateScope(built.stack).violations).toEqual([]);
  });

  test('off by default: the setting parses to false', () => {
    expect(parseConfig({}).findings).toEqual({ securityHub: false });
    expect(() => parseConfig({ findings: { securityHub: 'yes' } })).toThrow(/findings\.securityHub/);
  });
});
