import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { PROJECT_ROOT } from '../../lib/constructs/keyguard-function';
import { LEAK_FILTER_PATTERN, UNDECIDED_LEAKS_QUEUE_ENV } from '../../lib/constructs/leak-quarantine';
import { actionsOf, build, resourcesOf, resourcesOfStatement, type Statement, writeConfig } from './helpers';

const LOG_GROUPS = ['/aws/lambda/chatbot', 'ci/build-logs'];

// Prepare (shared): the real composition with and without leak detection configured.
const withLeaks = build({
  context: { config: writeConfig({ mode: 'enforce', leakDetection: { logGroups: LOG_GROUPS } }) },
});
const withoutLeaks = build({ context: { config: writeConfig({ mode: 'enforce' }) } });
const template = withLeaks.template;
const resources = (template.toJSON() as { Resources: Record<string, { Type: string }> }).Resources;

function onlyId(type: string, prefix: string): string {
  const ids = Object.keys(resources).filter((id) => resources[id]?.Type === type && id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
}

const functionId = onlyId('AWS::Lambda::Function', 'LeakQuarantine');
const roleId = onlyId('AWS::IAM::Role', 'LeakQuarantine');
const queueId = onlyId('AWS::SQS::Queue', 'LeakQuarantineUndecidedLeaks');
const queueKeyId = onlyId('AWS::KMS::Key', 'LeakQuarantineUndecidedLeaksKey');

function leakRoleStatements(): Statement[] {
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(roleId))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

/** The permissions that let CloudWatch Logs invoke a function. */
function logsPermissions(t: Template) {
  return Object.values(resourcesOf(t, 'AWS::Lambda::Permission')).filter(
    (p) => p.Properties.Principal === 'logs.amazonaws.com',
  );
}

describe('LeakQuarantine', () => {
  test('without log groups the leak function is still deployed (it decides keyguard scan reports), with no subscription', () => {
    const t = withoutLeaks.template;
    // The credential-event, sweep, approval, audit archive, digest and decision events functions, and the leak
    // function (issue 15).
    t.resourceCountIs('AWS::Lambda::Function', 7);
    t.resourceCountIs('AWS::Logs::SubscriptionFilter', 0);
    expect(logsPermissions(t)).toEqual([]);
    expect(withoutLeaks.stack.leakQuarantine.subscriptionFilters).toEqual([]);
    expect(withoutLeaks.stack.leakQuarantine.scanReportRule).toBeDefined();
  });

  test('log groups add one subscription per log group and one invoke permission for CloudWatch Logs, nothing else', () => {
    const count = (t: Template, type: string) => Object.keys(resourcesOf(t, type)).length;
    const added = (type: string) => count(template, type) - count(withoutLeaks.template, type);
    expect({
      functions: added('AWS::Lambda::Function'),
      logGroups: added('AWS::Logs::LogGroup'),
      roles: added('AWS::IAM::Role'),
      queues: added('AWS::SQS::Queue'),
      keys: added('AWS::KMS::Key'),
      subscriptions: added('AWS::Logs::SubscriptionFilter'),
      permissions: added('AWS::Lambda::Permission'),
      tables: added('AWS::DynamoDB::Table'),
      topics: added('AWS::SNS::Topic'),
      alarms: added('AWS::CloudWatch::Alarm'),
    }).toEqual({
      functions: 0,
      logGroups: 0,
      roles: 0,
      queues: 0,
      keys: 0,
      subscriptions: LOG_GROUPS.length,
      permissions: 1,
      tables: 0,
      topics: 0,
      alarms: 0,
    });
  });

  test('scan reports (issue 15): a rule on the governance bus routes source keyguard.scan to the function, with retries and a DLQ', () => {
    // Prepare
    const ruleId = onlyId('AWS::Events::Rule', 'LeakQuarantineScanReportRule');
    const dlqId = onlyId('AWS::SQS::Queue', 'LeakQuarantineScanReportDeadLetterQueue');
    const busId = onlyId('AWS::Events::EventBus', 'GovernanceBus');
    // Assess
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: busId },
      EventPattern: { source: ['keyguard.scan'], 'detail-type': ['Bedrock API Key Found'] },
      Targets: [
        {
          Arn: { 'Fn::GetAtt': [functionId, 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [dlqId, 'Arn'] } },
          RetryPolicy: { MaximumRetryAttempts: 4, MaximumEventAgeInSeconds: 7200 },
        },
      ],
    });
    const invokers = Object.values(resourcesOf(template, 'AWS::Lambda::Permission')).filter(
      (p) =>
        p.Properties.Principal === 'events.amazonaws.com' &&
        JSON.stringify(p.Properties.FunctionName).includes(functionId),
    );
    expect(invokers.map((p) => [p.Properties.FunctionName, p.Properties.SourceArn])).toEqual([
      [{ 'Fn::GetAtt': [functionId, 'Arn'] }, { 'Fn::GetAtt': [ruleId, 'Arn'] }],
    ]);
    // No other rule targets the leak function.
    const targeting = Object.values(resourcesOf(template, 'AWS::Events::Rule')).filter((r) =>
      JSON.stringify(r.Properties.Targets).includes(functionId),
    );
    expect(targeting).toHaveLength(1);
  });

  test.each(LOG_GROUPS)(
    'subscribes %s with the candidate-line pattern, delivering to the leak function',
    (name) => {
      template.hasResourceProperties('AWS::Logs::SubscriptionFilter', {
        LogGroupName: name,
        FilterPattern: LEAK_FILTER_PATTERN,
        DestinationArn: { 'Fn::GetAtt': [functionId, 'Arn'] },
      });
    },
  );

  test('passes only lines with a key prefix, as a substring regex', () => {
    expect(LEAK_FILTER_PATTERN).toBe('%ABSK|bedrock-api-key-%');
  });

  test('lets CloudWatch Logs of this account and region invoke the function, in one statement however many groups (issue 11: 20 KB resource policy)', () => {
    const permissions = logsPermissions(template);
    expect(permissions).toHaveLength(1);
    expect(permissions[0]?.Properties).toEqual({
      Action: 'lambda:InvokeFunction',
      Principal: 'logs.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [functionId, 'Arn'] },
      SourceAccount: { Ref: 'AWS::AccountId' },
      SourceArn: {
        'Fn::Join': [
          '',
          ['arn:', { Ref: 'AWS::Partition' }, ':logs:us-east-1:', { Ref: 'AWS::AccountId' }, ':log-group:*'],
        ],
      },
    });
    // Every subscription filter is created after it (CloudWatch Logs tests delivery when a filter is created).
    const [permissionId] = Object.entries(resourcesOf(template, 'AWS::Lambda::Permission')).find(
      ([, p]) => p.Properties.Principal === 'logs.amazonaws.com',
    ) ?? [''];
    const filters = Object.values(
      template.toJSON().Resources as Record<string, { Type: string; DependsOn?: string[] }>,
    ).filter((r) => r.Type === 'AWS::Logs::SubscriptionFilter');
    expect(filters).toHaveLength(LOG_GROUPS.length);
    for (const f of filters) expect(f.DependsOn).toContain(permissionId);
  });

  test('has no failure destination or dead-letter queue: their record would hold the request, i.e. the log lines with keys (issue 11 item 11)', () => {
    // Lambda's on-failure record of an asynchronous invocation carries the whole request (awslogs.data).
    const configs = Object.values(resourcesOf(template, 'AWS::Lambda::EventInvokeConfig')).filter(
      (c) => JSON.stringify(c.Properties.FunctionName) === JSON.stringify({ Ref: functionId }),
    );
    expect(configs).toHaveLength(1);
    expect(configs[0]?.Properties).toEqual({
      FunctionName: { Ref: functionId },
      Qualifier: '$LATEST',
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 6 * 3600,
    });
    const fn = resourcesOf(template, 'AWS::Lambda::Function')[functionId];
    expect(fn?.Properties.DeadLetterConfig).toBeUndefined();
    // Nothing anywhere names the function as the source of a destination (no EventBridge/SQS/SNS/Lambda target).
    for (const c of Object.values(resourcesOf(template, 'AWS::Lambda::EventInvokeConfig'))) {
      if (c.Properties.DestinationConfig)
        expect(JSON.stringify(c.Properties.FunctionName)).not.toContain(functionId);
    }
  });

  test('queues undecided findings in a queue of its own: KMS with its own rotated key, TLS only, 14 days', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      KmsMasterKeyId: { 'Fn::GetAtt': [queueKeyId, 'Arn'] },
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    expect(resourcesOf(template, 'AWS::KMS::Key')[queueKeyId]?.Properties.EnableKeyRotation).toBe(true);
    const policies = Object.values(resourcesOf(template, 'AWS::SQS::QueuePolicy')).filter((p) =>
      JSON.stringify(p.Properties.Queues).includes(queueId),
    );
    expect(policies).toHaveLength(1);
    expect(policies[0]?.Properties.PolicyDocument).toMatchObject({
      Statement: [
        {
          Effect: 'Deny',
          Action: 'sqs:*',
          Principal: { AWS: '*' },
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        },
      ],
    });
  });

  test('alarms on the owner-notice topic when Lambda drops an invocation (AsyncEventsDropped) or findings wait undecided', () => {
    const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const topic = onlyId('AWS::SNS::Topic', 'OwnerAlerts');
    expect(alarms).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Namespace: 'AWS/Lambda',
          MetricName: 'AsyncEventsDropped',
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId } }],
          Statistic: 'Sum',
          Period: 300,
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
          AlarmActions: [{ Ref: topic }],
        }),
        expect.objectContaining({
          Namespace: 'AWS/SQS',
          MetricName: 'ApproximateNumberOfMessagesVisible',
          Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          AlarmActions: [{ Ref: topic }],
        }),
      ]),
    );
    // CloudWatch may publish (and use the topic's key) on behalf of these alarms only (the decision events alarm
    // has statements of its own, for its name only: keyguard-stack.test.ts).
    const cloudWatch = (doc: unknown) =>
      (doc as { Statement: Statement[] }).Statement.filter(
        (st) =>
          JSON.stringify(st.Principal) === JSON.stringify({ Service: 'cloudwatch.amazonaws.com' }) &&
          !st.Sid?.startsWith('DecisionEventsAlarm'),
      );
    const topicPolicy = Object.values(resourcesOf(template, 'AWS::SNS::TopicPolicy')).flatMap((p) =>
      cloudWatch(p.Properties.PolicyDocument),
    );
    const topicKey = Object.values(resourcesOf(template, 'AWS::KMS::Key')).flatMap((k) =>
      cloudWatch(k.Properties.KeyPolicy),
    );
    for (const [statements, actions] of [
      [topicPolicy, ['sns:Publish']],
      [topicKey, ['kms:GenerateDataKey*', 'kms:Decrypt']],
    ] as const) {
      expect(statements).toHaveLength(1);
      expect(actionsOf(statements[0] as Statement)).toEqual(actions);
      expect(JSON.stringify(statements[0]?.Condition)).toContain(
        `:alarm:${withLeaks.stack.stackName}-leak-*`,
      );
      expect(statements[0]?.Condition).toMatchObject({
        StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
      });
    }
    const names = alarms.map((a) => a.AlarmName).sort();
    expect(names).toEqual([
      `${withLeaks.stack.stackName}-decision-events-undelivered`,
      ...['dropped-batches', 'undecided-findings', 'undelivered-scan-reports'].map(
        (n) => `${withLeaks.stack.stackName}-leak-${n}`,
      ),
    ]);
  });

  test('alarms on the owner-notice topic when a scan report waits in its dead-letter queue, as for the undecided queue', () => {
    // Prepare
    const dlqId = onlyId('AWS::SQS::Queue', 'LeakQuarantineScanReportDeadLetterQueue');
    const topic = onlyId('AWS::SNS::Topic', 'OwnerAlerts');
    // Assess: the same metric, statistic, period and threshold as the undecided-leaks alarm, on the DLQ
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: `${withLeaks.stack.stackName}-leak-undelivered-scan-reports`,
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlqId, 'QueueName'] } }],
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: topic }],
    });
    // Without log groups too: the scan-report rule and its DLQ are in every deployment.
    withoutLeaks.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: `${withoutLeaks.stack.stackName}-leak-undelivered-scan-reports`,
      MetricName: 'ApproximateNumberOfMessagesVisible',
    });
    expect(withLeaks.stack.leakQuarantine.scanReportDeadLetterAlarm).toBeDefined();
  });

  test('passes the function what it needs', () => {
    const fn = resourcesOf(template, 'AWS::Lambda::Function')[functionId];
    if (!fn) throw new Error('no leak function');
    const env = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(Object.keys(env).sort()).toEqual(
      [
        'APPROVALS_TABLE_NAME',
        'DECISIONS_TABLE_NAME',
        'GOVERNED_ACCOUNT_ID',
        'KEYGUARD_CONFIG',
        'KEYS_TABLE_NAME',
        'NODE_OPTIONS',
        'POLICY_VERSION',
        'POWERTOOLS_LOG_LEVEL',
        'POWERTOOLS_METRICS_NAMESPACE',
        'POWERTOOLS_SERVICE_NAME',
        'TOPIC_ARN',
        UNDECIDED_LEAKS_QUEUE_ENV,
      ].sort(),
    );
    expect(env[UNDECIDED_LEAKS_QUEUE_ENV]).toEqual({ Ref: queueId });
  });
});

describe('IAM: the leak function role', () => {
  test('has exactly the actions the flow needs', () => {
    const actions = new Set(leakRoleStatements().flatMap(actionsOf));
    expect([...actions].sort()).toEqual(
      [
        'cloudtrail:LookupEvents',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'iam:ListServiceSpecificCredentials',
        'iam:ListUserTags',
        'iam:UpdateServiceSpecificCredential',
        'kms:Decrypt',
        'kms:GenerateDataKey',
        'kms:GenerateDataKey*',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'sns:Publish',
        'sqs:SendMessage',
      ].sort(),
    );
  });

  test('may only send to its undecided-leaks queue (no receive, no delete) and use its key for that alone', () => {
    const onQueue = leakRoleStatements().filter((s) => JSON.stringify(s).includes(queueId));
    const onKey = leakRoleStatements().filter((s) => JSON.stringify(s).includes(queueKeyId));
    expect(onQueue.map((s) => [actionsOf(s), resourcesOfStatement(s)])).toEqual([
      [['sqs:SendMessage'], [{ 'Fn::GetAtt': [queueId, 'Arn'] }]],
    ]);
    expect(onKey.map((s) => [[...actionsOf(s)].sort(), resourcesOfStatement(s)])).toEqual([
      [['kms:Decrypt', 'kms:GenerateDataKey'], [{ 'Fn::GetAtt': [queueKeyId, 'Arn'] }]],
    ]);
    // No SQS action on any other queue.
    const sqsStatements = leakRoleStatements().filter((s) => actionsOf(s).some((a) => a.startsWith('sqs:')));
    expect(sqsStatements).toEqual(onQueue);
  });

  test('changes only Bedrock keys, on users of the governed account', () => {
    const update = leakRoleStatements().filter((s) =>
      actionsOf(s).includes('iam:UpdateServiceSpecificCredential'),
    );
    expect(update).toHaveLength(1);
    expect(actionsOf(update[0] as Statement)).toEqual(['iam:UpdateServiceSpecificCredential']);
    expect(update[0]?.Condition).toEqual({
      StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' },
    });
    expect(JSON.stringify(resourcesOfStatement(update[0] as Statement))).toContain(':user/*');
  });

  test('never deletes, updates or scans audit items, and never creates, resets or deletes credentials', () => {
    const actions = leakRoleStatements().flatMap(actionsOf);
    for (const forbidden of [
      'dynamodb:DeleteItem',
      'dynamodb:UpdateItem',
      'dynamodb:Scan',
      'iam:DeleteServiceSpecificCredential',
      'iam:ResetServiceSpecificCredential',
      'iam:CreateServiceSpecificCredential',
    ]) {
      expect(actions).not.toContain(forbidden);
    }
  });

  test('needs no permission to verify a found key: the call is authenticated by the key, not by this role', () => {
    // The probe (BedrockKeyProbe) sends only the found key; the role must not be able to call Bedrock itself,
    // so a check can never succeed as the function (a false VERIFIED) and the role gains nothing to abuse.
    const actions = leakRoleStatements().flatMap(actionsOf);
    expect(actions.filter((a) => /^(bedrock|bedrock-mantle|sts):/i.test(a) || a === '*')).toEqual([]);
  });

  test('runs outside a VPC, so the verification call reaches the public Bedrock endpoint (a VPC needs egress)', () => {
    const fn = resourcesOf(template, 'AWS::Lambda::Function')[functionId];
    expect(fn?.Properties.VpcConfig).toBeUndefined();
  });

  test('has the only wildcard resource on cloudtrail:LookupEvents', () => {
    const star = leakRoleStatements().filter((s) => resourcesOfStatement(s).includes('*'));
    expect(star.flatMap(actionsOf)).toEqual(['cloudtrail:LookupEvents']);
  });
});

describe('SelftestPolicy: keyguard selftest --leak', () => {
  const statementsOf = (t: Template) => {
    const [managed] = Object.entries(resourcesOf(t, 'AWS::IAM::ManagedPolicy')).filter(([id]) =>
      id.startsWith('SelftestPolicy'),
    );
    return ((managed?.[1].Properties.PolicyDocument ?? { Statement: [] }) as { Statement: Statement[] })
      .Statement;
  };
  const arn = (rest: string) => ({
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        ':logs:us-east-1:',
        { Ref: 'AWS::AccountId' },
        `:log-group:${rest}`,
      ],
    ],
  });

  test('may create a stream in each subscribed log group and write and delete only keyguard-selftest-* streams', () => {
    // Act
    const logs = statementsOf(template).filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
    // Assess
    expect(logs.map((s) => [s.Sid, [...actionsOf(s)].sort(), resourcesOfStatement(s)])).toEqual([
      ['LeakTestStream', ['logs:CreateLogStream'], LOG_GROUPS.map((g) => arn(`${g}:*`))],
      [
        'LeakTestLine',
        ['logs:DeleteLogStream', 'logs:PutLogEvents'],
        LOG_GROUPS.map((g) => arn(`${g}:log-stream:keyguard-selftest-*`)),
      ],
    ]);
  });

  test('without leak detection it has no logs permission at all', () => {
    // Assess
    const actions = statementsOf(withoutLeaks.template).flatMap(actionsOf);
    expect(actions).toContain('iam:CreateServiceSpecificCredential');
    expect(actions.filter((a) => a.startsWith('logs:'))).toEqual([]);
  });
});

describe('cdk-nag', () => {
  test('the stack with leak detection passes AwsSolutions with no unacknowledged finding', () => {
    const report = new AwsSolutionsChecks().validateScope(withLeaks.stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
  });

  test('the template is stable to synthesize from the same config', () => {
    const again = build({
      context: { config: writeConfig({ mode: 'enforce', leakDetection: { logGroups: LOG_GROUPS } }) },
    });
    expect(Template.fromStack(again.stack).toJSON()).toEqual(template.toJSON());
  });
});

describe('bundling', () => {
  test('the leak handler bundles with esbuild as deployed (node22, CJS, nothing external)', () => {
    const { buildSync } = require('esbuild') as typeof import('esbuild');
    const result = buildSync({
      entryPoints: [join(PROJECT_ROOT, 'lambda/handlers/leak.ts')],
      bundle: true,
      platform: 'node',
      target: 'node22',
      format: 'cjs',
      minify: true,
      write: false,
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    expect(result.outputFiles[0]?.text.length).toBeGreaterThan(0);
  });
});
