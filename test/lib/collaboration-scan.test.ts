import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CollaborationScan, type CollaborationScanProps } from '../../lib/constructs/collaboration-scan';
import { actionsOf, build, NO_BUNDLING, resourcesOf, type Statement, writeConfig } from './helpers';

/**
 * The scheduled collaboration scan's infrastructure (issue 15 §3): an empty secret for the token, the state table,
 * the schedule with its failure path, and a role that may read its secret, read and write its state and put scan
 * reports (source keyguard.scan only) on the governance bus: nothing else.
 */

function synth(props: Partial<CollaborationScanProps['slack']> = {}) {
  const app = new App({ context: NO_BUNDLING });
  const stack = new Stack(app, 'Test', { env: { account: '111122223333', region: 'us-east-1' } });
  const bus = new events.EventBus(stack, 'Bus', { eventBusName: 'bedrock-key-guard-governance' });
  const scan = new CollaborationScan(stack, 'CollaborationScan', {
    bus,
    slack: { schedule: 'rate(15 minutes)', initialLookbackHours: 24, ...props },
  });
  return { stack, scan, template: Template.fromStack(stack) };
}

// Prepare (shared): one synthesis.
const { stack, scan, template } = synth({ channels: ['general', 'C0OPS'] });
const json = template.toJSON() as {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
};
const idOf = (type: string, prefix: string): string => {
  const ids = Object.entries(json.Resources)
    .filter(([id, r]) => r.Type === type && id.startsWith(prefix))
    .map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
};
const FUNCTION = idOf('AWS::Lambda::Function', 'CollaborationScanHandler');
const ROLE = idOf('AWS::IAM::Role', 'CollaborationScanHandlerRole');
const SECRET = idOf('AWS::SecretsManager::Secret', 'CollaborationScanSlackTokenSecret');
const TABLE = idOf('AWS::DynamoDB::Table', 'CollaborationScanStateTable');
const QUEUE = idOf('AWS::SQS::Queue', 'CollaborationScanFailureQueue');
const QUEUE_KEY = idOf('AWS::KMS::Key', 'CollaborationScanFailureQueueKey');
const LOG_GROUP = idOf('AWS::Logs::LogGroup', 'CollaborationScanHandlerLogGroup');
const BUS = idOf('AWS::Events::EventBus', 'Bus');
const arnOf = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });

function statementsOf(roleId: string): Statement[] {
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

describe('CollaborationScan: the function role', () => {
  test('may read its secret, read and write its state, put keyguard.scan reports on the bus: nothing else', () => {
    // Act
    const granted = statementsOf(ROLE).map((s) => ({
      actions: actionsOf(s).sort(),
      resource: s.Resource,
      ...(s.Condition ? { condition: s.Condition } : {}),
    }));
    // Assess: besides these, only its own log group and its failure queue (Lambda's on-failure destination)
    expect(granted).toEqual(
      expect.arrayContaining([
        { actions: ['secretsmanager:GetSecretValue'], resource: { Ref: SECRET } },
        { actions: ['dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'], resource: arnOf(TABLE) },
        {
          actions: ['events:PutEvents'],
          resource: arnOf(BUS),
          condition: { StringEquals: { 'events:source': 'keyguard.scan' } },
        },
        { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resource: arnOf(LOG_GROUP) },
        { actions: ['sqs:SendMessage'], resource: arnOf(QUEUE) },
        { actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resource: arnOf(QUEUE_KEY) },
      ]),
    );
    expect(granted).toHaveLength(6);
    expect(JSON.stringify(granted)).not.toContain('"*"');
  });

  test('has no managed policy and no other inline policy', () => {
    // Assess
    expect(resourcesOf(template, 'AWS::IAM::Role')[ROLE]?.Properties.ManagedPolicyArns).toBeUndefined();
    expect(resourcesOf(template, 'AWS::IAM::Role')[ROLE]?.Properties.Policies).toBeUndefined();
  });
});

describe('CollaborationScan: the token secret', () => {
  test('is created empty: no value, generated or given, in the template', () => {
    // Act
    const secret = resourcesOf(template, 'AWS::SecretsManager::Secret')[SECRET];
    // Assess
    expect(secret?.Properties.SecretString).toBeUndefined();
    expect(secret?.Properties.GenerateSecretString).toBeUndefined();
    expect(secret?.DeletionPolicy).toBe('Delete');
  });

  test("the function's environment names the secret, never a token, and the channels and lookback", () => {
    // Act
    const fn = resourcesOf(template, 'AWS::Lambda::Function')[FUNCTION];
    const env =
      (fn?.Properties.Environment as { Variables: Record<string, unknown> } | undefined)?.Variables ?? {};
    // Assess
    expect(env).toMatchObject({
      SLACK_TOKEN_SECRET_ARN: { Ref: SECRET },
      SLACK_CHANNELS: 'general,C0OPS',
      SLACK_INITIAL_LOOKBACK_HOURS: '24',
      COLLABORATION_STATE_TABLE_NAME: { Ref: TABLE },
      GOVERNANCE_BUS_ARN: arnOf(BUS),
    });
    expect(Object.keys(env).filter((k) => /TOKEN(?!_SECRET_ARN)/.test(k))).toEqual([]);
    expect(env.SLACK_API_URL).toBeUndefined();
  });
});

describe('CollaborationScan: schedule, state and failures', () => {
  test('runs on the configured schedule with no flexible window, 2 retries, the failure queue as dead-letter queue', () => {
    // Act
    const [schedule] = Object.values(resourcesOf(template, 'AWS::Scheduler::Schedule'));
    // Assess
    expect(schedule?.Properties).toMatchObject({
      ScheduleExpression: 'rate(15 minutes)',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        Arn: arnOf(FUNCTION),
        Input: '{}',
        DeadLetterConfig: { Arn: arnOf(QUEUE) },
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600 },
      },
    });
  });

  test('a failed run goes to the failure queue after 2 retries; the function has 10 minutes', () => {
    // Assess
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: FUNCTION },
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: arnOf(QUEUE) } },
    });
    expect(resourcesOf(template, 'AWS::Lambda::Function')[FUNCTION]?.Properties.Timeout).toBe(600);
  });

  test('the state table is keyed by source and id, encrypted, with point-in-time recovery', () => {
    // Assess
    expect(resourcesOf(template, 'AWS::DynamoDB::Table')[TABLE]?.Properties).toMatchObject({
      KeySchema: [
        { AttributeName: 'source', KeyType: 'HASH' },
        { AttributeName: 'id', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });

  test('a private Slack API URL is passed to the function', () => {
    // Act
    const other = synth({ apiUrl: 'https://slack.internal.example.com/api' });
    // Assess
    other.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { SLACK_API_URL: 'https://slack.internal.example.com/api' } },
    });
  });
});

describe('CollaborationScan: cdk-nag', () => {
  test('passes AwsSolutions (the runtime is acknowledged by the stack, as for every function), and its acknowledgements are load-bearing', () => {
    // Act
    const report = new AwsSolutionsChecks().validateScope(scan);
    // Assess
    const named = (r: typeof report) => [...new Set(r.violations.map((v) => v.ruleName))].sort();
    expect(named(report)).toEqual(['AwsSolutions-L1']);

    // Prepare: the same construct with acknowledge() as a no-op
    const acknowledge = jest.spyOn(Validations.prototype, 'acknowledge').mockImplementation(() => undefined);
    let bare: typeof report;
    try {
      bare = new AwsSolutionsChecks().validateScope(synth().scan);
    } finally {
      acknowledge.mockRestore();
    }
    expect(named(bare)).toEqual(
      [
        'AwsSolutions-L1',
        'AwsSolutions-SMG4',
        'AwsSolutions-SQS3',
        `AwsSolutions-IAM5[Resource::<${FUNCTION}.Arn>:*]`,
      ].sort(),
    );
    expect(stack.resolve(scan.slackTokenSecretArn)).toEqual({ Ref: SECRET });
  });
});

describe('the stack with leakDetection.slack', () => {
  // Prepare (shared): the real composition, with and without the setting.
  const withSlack = build({
    context: {
      config: writeConfig({
        leakDetection: { slack: { channels: ['general'], schedule: 'rate(30 minutes)' } },
      }),
    },
  });
  const withoutSlack = build();

  test('deploys the scan with the configured settings and outputs its secret and failure queue', () => {
    // Assess
    const outputs = withSlack.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.SlackTokenSecretArn?.Value).toEqual({
      Ref: idOfIn(withSlack.template, 'AWS::SecretsManager::Secret', 'CollaborationScanSlackTokenSecret'),
    });
    expect(outputs.CollaborationScanFailureQueueUrl).toBeDefined();
    withSlack.template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(30 minutes)',
    });
    withSlack.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: {
          SLACK_CHANNELS: 'general',
          GOVERNANCE_BUS_ARN: {
            'Fn::GetAtt': [idOfIn(withSlack.template, 'AWS::Events::EventBus', 'GovernanceBus'), 'Arn'],
          },
        },
      },
    });
  });

  test('is off by default: no secret, no scan function, no output', () => {
    // Assess
    withoutSlack.template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    expect(Object.keys(withoutSlack.template.toJSON().Outputs)).not.toContain('SlackTokenSecretArn');
    expect(withoutSlack.stack.collaborationScan).toBeUndefined();
  });

  test('passes cdk-nag AwsSolutions in the stack (the runtime acknowledged with every function)', () => {
    // Act
    const report = new AwsSolutionsChecks().validateScope(
      withSlack.stack.collaborationScan as CollaborationScan,
    );
    // Assess
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
  });
});

/** The logical id of the one resource of a type whose id starts with `prefix`. */
function idOfIn(t: Template, type: string, prefix: string): string {
  const ids = Object.keys(resourcesOf(t, type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
}
