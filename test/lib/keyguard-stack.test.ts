import { App, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONFIG_ENV, functionPolicy, parseConfig, policyVersion } from '../../lambda/shared/config';
import { GOVERNANCE_REGION, KeyguardStack, RegionError } from '../../lib/keyguard-stack';
import {
  actionsOf,
  build,
  NO_BUNDLING,
  onlyResource,
  resourcesOf,
  resourcesOfStatement,
  type Statement,
  writeConfig,
} from './helpers';

const CONFIG_INPUT = {
  mode: 'enforce',
  maxAgeDays: 30,
  notifications: {
    subscriptions: [
      { email: 'security@example.com' },
      { email: 'platform-leads@example.com', owners: ['team-a', 'team-b'] },
    ],
  },
};
const CONFIG = parseConfig(CONFIG_INPUT);

// Prepare (shared): one synthesis of the real composition, with a config that has subscriptions.
const { stack, template } = build({ context: { config: writeConfig(CONFIG_INPUT) } });
const templateJson = template.toJSON() as { Resources: Record<string, { Type: string; Properties: never }> };

function logicalIdOf(type: string, pathFragment: string): string {
  const ids = Object.entries(templateJson.Resources)
    .filter(([id, r]) => r.Type === type && id.startsWith(pathFragment))
    .map(([id]) => id);
  if (ids.length !== 1)
    throw new Error(`expected one ${type} under ${pathFragment}, found ${ids.join(', ')}`);
  return ids[0] as string;
}

/** The credential-event function (the stack also has the inventory sweep's). */
function credentialEventFunction(t: Template) {
  const found = Object.entries(resourcesOf(t, 'AWS::Lambda::Function')).filter(([id]) =>
    id.startsWith('CredentialEventFunction'),
  );
  if (found.length !== 1) throw new Error(`expected one credential-event function, found ${found.length}`);
  return found[0] as (typeof found)[number];
}

/** Every statement of every IAM policy attached to the function's role. */
function roleStatements(): Statement[] {
  const roleId = logicalIdOf('AWS::IAM::Role', 'CredentialEventFunction');
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(roleId))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

describe('KeyguardStack: region', () => {
  test('is pinned to us-east-1', () => {
    // Assess
    expect(stack.region).toBe(GOVERNANCE_REGION);
    expect(stack.stackName).toBe('BedrockKeyGuard');
  });

  test('refuses any other region, explaining why', () => {
    // Prepare
    const app = new App({ context: NO_BUNDLING });
    // Act
    let error: unknown;
    try {
      new KeyguardStack(app, 'Elsewhere', { env: { region: 'eu-west-1' }, config: CONFIG });
    } catch (err) {
      error = err;
    }
    // Assess
    expect(error).toBeInstanceOf(RegionError);
    expect((error as Error).message).toMatch(
      /IAM .*CloudTrail events reach EventBridge only on the us-east-1 default event bus/,
    );
  });
});

describe('CredentialEventRule', () => {
  test('matches exactly the Bedrock key events, successful calls only', () => {
    // Assess
    const [, rule] = onlyEntry('AWS::Events::Rule', 'CredentialEventRule');
    expect(rule.Properties.EventPattern).toStrictEqual({
      source: ['aws.iam'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: {
        eventSource: ['iam.amazonaws.com'],
        errorCode: [{ exists: false }],
        $or: [
          {
            eventName: ['CreateServiceSpecificCredential'],
            requestParameters: { serviceName: ['bedrock.amazonaws.com'] },
          },
          {
            eventName: [
              'UpdateServiceSpecificCredential',
              'ResetServiceSpecificCredential',
              'DeleteServiceSpecificCredential',
              'TagUser',
              'UntagUser',
            ],
          },
          {
            eventName: [
              'CreateAccessKey',
              'CreateLoginProfile',
              'AttachUserPolicy',
              'PutUserPolicy',
              'AddUserToGroup',
            ],
          },
          { eventName: ['UpdateAccessKey'], requestParameters: { status: ['Active'] } },
        ],
      },
    });
    expect(rule.Properties.EventBusName).toBeUndefined(); // default bus
    expect(rule.Properties.State).toBe('ENABLED');
  });

  test('targets the function with a DLQ, 4 retries and a 2-hour maximum event age', () => {
    // Prepare
    const functionId = logicalIdOf('AWS::Lambda::Function', 'CredentialEventFunction');
    const dlqId = logicalIdOf('AWS::SQS::Queue', 'CredentialEventRuleDeadLetterQueue');
    // Assess
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [
        {
          Arn: { 'Fn::GetAtt': [functionId, 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [dlqId, 'Arn'] } },
          RetryPolicy: { MaximumRetryAttempts: 4, MaximumEventAgeInSeconds: 7200 },
        },
      ],
    });
  });

  test('lets EventBridge (and only this account) send to the DLQ and use its key', () => {
    // Prepare
    const dlqId = logicalIdOf('AWS::SQS::Queue', 'CredentialEventRuleDeadLetterQueue');
    const keyId = logicalIdOf('AWS::KMS::Key', 'CredentialEventRuleDeadLetterQueueKey');
    const ruleId = onlyEntry('AWS::Events::Rule', 'CredentialEventRule')[0];
    // Assess
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: dlqId }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Action: 'sqs:SendMessage',
            Principal: { Service: 'events.amazonaws.com' },
            Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [ruleId, 'Arn'] } } },
          }),
        ]),
      },
    });
    const keyPolicy = resourcesOf(template, 'AWS::KMS::Key')[keyId]?.Properties.KeyPolicy;
    const statements = (keyPolicy as { Statement: Statement[] } | undefined)?.Statement ?? [];
    const forEvents = statements.find((s) => JSON.stringify(s.Principal).includes('events.amazonaws.com'));
    expect(forEvents && actionsOf(forEvents).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expect(forEvents?.Condition?.StringEquals).toEqual({ 'aws:SourceAccount': { Ref: 'AWS::AccountId' } });
  });
});

describe('CredentialEventFunction', () => {
  test('runs Node.js 22 on ARM64 with 512 MB, 60 s and its own retained 1-year log group', () => {
    // Prepare
    const logGroupId = logicalIdOf('AWS::Logs::LogGroup', 'CredentialEventFunction');
    // Assess
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      MemorySize: 512,
      Timeout: 60,
      Handler: 'index.handler',
      LoggingConfig: { LogGroup: { Ref: logGroupId } },
    });
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: { RetentionInDays: 365 },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('receives every environment variable the handler reads', () => {
    // Prepare
    const [, fn] = credentialEventFunction(template);
    const env = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    // Assess
    expect(Object.keys(env).sort()).toEqual(
      [
        'APPROVALS_TABLE_NAME',
        'DECISIONS_TABLE_NAME',
        'GOVERNED_ACCOUNT_ID',
        'IDEMPOTENCY_TABLE_NAME',
        'KEYGUARD_CONFIG',
        'KEYS_TABLE_NAME',
        'NODE_OPTIONS',
        'POLICY_VERSION',
        'POWERTOOLS_LOG_LEVEL',
        'POWERTOOLS_METRICS_NAMESPACE',
        'POWERTOOLS_SERVICE_NAME',
        'TOPIC_ARN',
      ].sort(),
    );
    expect(env.DECISIONS_TABLE_NAME).toEqual({
      Ref: logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesDecisions'),
    });
    expect(env.KEYS_TABLE_NAME).toEqual({ Ref: logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesKeys') });
    expect(env.IDEMPOTENCY_TABLE_NAME).toEqual({
      Ref: logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesIdempotency'),
    });
    expect(env.TOPIC_ARN).toEqual({ Ref: logicalIdOf('AWS::SNS::Topic', 'OwnerAlerts') });
    expect(env.GOVERNED_ACCOUNT_ID).toEqual({ Ref: 'AWS::AccountId' });
    expect(JSON.parse(env[CONFIG_ENV] as string)).toEqual(functionPolicy(CONFIG));
    expect(env.POLICY_VERSION).toBe(policyVersion(CONFIG));
    expect(env.NODE_OPTIONS).toBe('--enable-source-maps');
    expect(env.POWERTOOLS_SERVICE_NAME).toBe('keyguard-credential-event');
    expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe('BedrockKeyGuard');
    expect(env.POWERTOOLS_LOG_LEVEL).toBe('INFO');
  });

  test('is given the policy its decisions depend on, not the subscriptions', () => {
    // Prepare
    const [, fn] = credentialEventFunction(template);
    const env = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    // Act
    const policy = JSON.parse(env[CONFIG_ENV] as string) as Record<string, unknown>;
    // Assess: the decision settings are there, what only the stack uses is not (Lambda: 4 KB of environment)
    expect(policy).toMatchObject({ mode: 'enforce', maxAgeDays: 30 });
    expect(policy).not.toHaveProperty('notifications');
    expect(policy).not.toHaveProperty('approvers');
    expect(JSON.stringify(env)).not.toContain('platform-leads@example.com');
  });

  test('sends failed async invocations to its failure queue after 2 retries within 6 hours', () => {
    // Prepare
    const failureQueueId = logicalIdOf('AWS::SQS::Queue', 'CredentialEventFunctionFailureQueue');
    // Assess
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 21600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [failureQueueId, 'Arn'] } } },
    });
  });
});

describe('queues', () => {
  test('are KMS-encrypted with rotating customer-managed keys, TLS-only, and keep messages 14 days', () => {
    // Prepare
    const queues = resourcesOf(template, 'AWS::SQS::Queue');
    const keys = resourcesOf(template, 'AWS::KMS::Key');
    // Assess
    // With the leak function's undecided-leaks queue and its scan-report rule's dead-letter queue (issue 15), and
    // the decision events' failure queue (issue 16).
    expect(Object.keys(queues)).toHaveLength(8);
    for (const [queueId, queue] of Object.entries(queues)) {
      const keyRef = queue.Properties.KmsMasterKeyId as { 'Fn::GetAtt': [string, string] };
      expect(keys[keyRef['Fn::GetAtt'][0]]?.Properties.EnableKeyRotation).toBe(true);
      expect(queue.Properties.MessageRetentionPeriod).toBe(14 * 24 * 3600);
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: queueId }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 'sqs:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });
});

describe('AuditTables', () => {
  const tables = () => resourcesOf(template, 'AWS::DynamoDB::Table');
  const table = (prefix: string) => {
    const id = logicalIdOf('AWS::DynamoDB::Table', prefix);
    return tables()[id] as { Properties: Record<string, unknown>; DeletionPolicy?: string };
  };

  test('decisions: pk/sk strings, byOwner GSI (ownerKey, decidedAt, ALL), retained and protected', () => {
    // Act
    const decisions = table('AuditTablesDecisions');
    // Assess
    expect(decisions.Properties.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(decisions.Properties.AttributeDefinitions).toEqual(
      expect.arrayContaining([
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'ownerKey', AttributeType: 'S' },
        { AttributeName: 'decidedAt', AttributeType: 'S' },
      ]),
    );
    expect(decisions.Properties.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: 'byOwner',
        KeySchema: [
          { AttributeName: 'ownerKey', KeyType: 'HASH' },
          { AttributeName: 'decidedAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: 'byChainHour',
        KeySchema: [
          { AttributeName: 'chainHour', KeyType: 'HASH' },
          { AttributeName: 'chainedAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['seq', 'hash', 'decisionId'] },
      },
    ]);
    // Every new item is exported to the Object Lock archive from the stream.
    expect(decisions.Properties.StreamSpecification).toEqual({ StreamViewType: 'NEW_IMAGE' });
    expect(decisions.DeletionPolicy).toBe('Retain');
    expect(decisions.Properties.DeletionProtectionEnabled).toBe(true);
  });

  test('keys: accountId/keyId strings, retained and protected', () => {
    // Act
    const keys = table('AuditTablesKeys');
    // Assess
    expect(keys.Properties.KeySchema).toEqual([
      { AttributeName: 'accountId', KeyType: 'HASH' },
      { AttributeName: 'keyId', KeyType: 'RANGE' },
    ]);
    expect(keys.DeletionPolicy).toBe('Retain');
    expect(keys.Properties.DeletionProtectionEnabled).toBe(true);
  });

  test('idempotency: id partition key and `expiration` TTL', () => {
    // Act
    const idempotency = table('AuditTablesIdempotency');
    // Assess
    expect(idempotency.Properties.KeySchema).toEqual([{ AttributeName: 'id', KeyType: 'HASH' }]);
    expect(idempotency.Properties.TimeToLiveSpecification).toEqual({
      AttributeName: 'expiration',
      Enabled: true,
    });
  });

  test('all (and the approvals table): on-demand, point-in-time recovery, KMS encryption (AWS managed key)', () => {
    // Assess
    expect(Object.keys(tables())).toHaveLength(5);
    for (const t of Object.values(tables())) {
      expect(t.Properties).toMatchObject({
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      });
      expect(
        (t.Properties as { SSESpecification: Record<string, unknown> }).SSESpecification.KMSMasterKeyId,
      ).toBe(undefined);
    }
  });
});

describe('OwnerAlerts', () => {
  test('topic is encrypted with a rotating customer-managed key and refuses non-TLS publishing', () => {
    // Prepare
    const [topicId, topic] = onlyResource(template, 'AWS::SNS::Topic');
    const keyRef = topic.Properties.KmsMasterKeyId as { 'Fn::GetAtt': [string, string] };
    // Assess
    expect(
      resourcesOf(template, 'AWS::KMS::Key')[keyRef['Fn::GetAtt'][0]]?.Properties.EnableKeyRotation,
    ).toBe(true);
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: topicId }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 'sns:Publish',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  test('subscribes the configured emails, filtering on the owner attribute when owners are given', () => {
    // Prepare
    const subs = Object.values(resourcesOf(template, 'AWS::SNS::Subscription')).map((s) => s.Properties);
    // Assess
    expect(subs).toHaveLength(2);
    const everything = subs.find((s) => s.Endpoint === 'security@example.com');
    const filtered = subs.find((s) => s.Endpoint === 'platform-leads@example.com');
    expect(everything).toMatchObject({ Protocol: 'email' });
    expect(everything?.FilterPolicy).toBeUndefined();
    expect(filtered).toMatchObject({ Protocol: 'email', FilterPolicy: { owner: ['team-a', 'team-b'] } });
  });

  test('synth warns, naming the setting, when no subscription would receive the notices; not with one', () => {
    // Prepare: the built-in defaults (no subscription) and an explicit empty list
    const defaults = build();
    const emptyList = build({ context: { config: writeConfig({ notifications: { subscriptions: [] } }) } });
    // Assess: one warning on the owner-notice construct, saying what to add and what happens without it
    for (const built of [defaults, emptyList]) {
      const warnings = Annotations.fromStack(built.stack).findWarning(
        '/BedrockKeyGuard/OwnerAlerts',
        Match.stringLikeRegexp('notifications\\.subscriptions.*reach nobody'),
      );
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.entry.data).toContain('[ack: keyguard:no-subscriptions]');
    }
    // ... and none when the config subscribes someone
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('subscriptions'))).toEqual(
      [],
    );
  });

  test('redrives undeliverable notices to an encrypted queue SNS may use for this topic only', () => {
    // Prepare
    const dlqId = logicalIdOf('AWS::SQS::Queue', 'OwnerAlertsDeliveryFailures');
    const topicId = logicalIdOf('AWS::SNS::Topic', 'OwnerAlertsTopic');
    const subs = Object.values(resourcesOf(template, 'AWS::SNS::Subscription')).map((s) => s.Properties);
    const queue = resourcesOf(template, 'AWS::SQS::Queue')[dlqId];
    if (!queue) throw new Error('no delivery-failure queue');
    const keyId = (queue.Properties.KmsMasterKeyId as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    // Assess: every subscription has the redrive policy ...
    for (const sub of subs) {
      expect(sub.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] } });
    }
    // ... SNS may send to the queue, and use its key, only for this topic.
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: dlqId }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Action: 'sqs:SendMessage',
            Principal: { Service: 'sns.amazonaws.com' },
            Condition: { ArnEquals: { 'aws:SourceArn': { Ref: topicId } } },
          }),
        ]),
      },
    });
    const keyPolicy = resourcesOf(template, 'AWS::KMS::Key')[keyId]?.Properties.KeyPolicy as {
      Statement: Array<Record<string, unknown>>;
    };
    expect(keyPolicy.Statement).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Principal: { Service: 'sns.amazonaws.com' },
        Action: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        Condition: { ArnEquals: { 'aws:SourceArn': { Ref: topicId } } },
      }),
    );
  });
});

describe('outputs', () => {
  test('name the audit tables, the topic and both failure queues', () => {
    // Act
    const outputs = template.findOutputs('*');
    // Assess
    expect(Object.keys(outputs).sort()).toEqual([
      'ApprovalsTableName',
      'ApprovalsUrl',
      'ApproverPolicyArn',
      'AuditArchiveBucketName',
      'AuditFailureQueueUrl',
      'AuditSigningKeyArn',
      'DecisionEventsFailureQueueUrl',
      'DecisionsTableName',
      'EffectivePolicyParameterName',
      'EventDeadLetterQueueUrl',
      'EventFailureQueueUrl',
      'GovernanceBusArn',
      'KeysTableName',
      'LeakUndecidedQueueUrl',
      'OwnerNoticeTopicArn',
      'ScanReportDeadLetterQueueUrl',
      'ScanReporterPolicyArn',
      'SelftestPolicyArn',
      'SweepFailureQueueUrl',
      'SweepFunctionName',
    ]);
    expect(outputs.DecisionsTableName?.Value).toEqual({
      Ref: logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesDecisions'),
    });
  });
});

describe('EffectivePolicy', () => {
  test('publishes the config with the policyVersion and mode every function runs with, named in an output', () => {
    // Prepare
    const [id, parameter] = onlyResource(template, 'AWS::SSM::Parameter');
    const functions = Object.values(resourcesOf(template, 'AWS::Lambda::Function'));
    // The deciding functions and the approval function (the audit archive and digest functions decide nothing).
    const versions = functions
      .map(
        (f) => (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables.POLICY_VERSION,
      )
      .filter((v) => v !== undefined);
    // Act
    const doc = JSON.parse(parameter.Properties.Value as string) as Record<string, unknown>;
    // Assess
    expect(versions).toHaveLength(4);
    expect(new Set(versions)).toEqual(new Set([policyVersion(CONFIG)]));
    expect(doc).toMatchObject({ policyVersion: policyVersion(CONFIG), mode: 'enforce', omitted: [] });
    expect(doc.config).toEqual(JSON.parse(JSON.stringify(CONFIG)));
    expect(parameter.Properties).toMatchObject({ Type: 'String', Tier: 'Standard' });
    expect(template.findOutputs('EffectivePolicyParameterName').EffectivePolicyParameterName?.Value).toEqual({
      Ref: id,
    });
  });
});

describe('ScanReporterPolicy (what a CI job running keyguard scan --quarantine is granted)', () => {
  test('events:PutEvents on the governance bus only, for source keyguard.scan only; attached to nothing; in the outputs', () => {
    // Prepare
    const [policyId, managed] = onlyEntry('AWS::IAM::ManagedPolicy', 'ScanReporterPolicy');
    const [busId] = onlyResource(template, 'AWS::Events::EventBus');
    // Act
    const statements = (managed.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
    // Assess
    expect(statements).toEqual([
      {
        Sid: 'PutScanReports',
        Effect: 'Allow',
        Action: 'events:PutEvents',
        Resource: { 'Fn::GetAtt': [busId, 'Arn'] },
        Condition: { StringEquals: { 'events:source': 'keyguard.scan' } },
      },
    ]);
    expect(managed.Properties.Roles ?? managed.Properties.Users ?? managed.Properties.Groups).toBeUndefined();
    expect(template.findOutputs('ScanReporterPolicyArn').ScanReporterPolicyArn?.Value).toEqual({
      Ref: policyId,
    });
    expect(template.findOutputs('GovernanceBusArn').GovernanceBusArn?.Value).toEqual({
      'Fn::GetAtt': [busId, 'Arn'],
    });
  });

  test("no role of the stack may put events on the bus but the decision events function's (and the policy's holder)", () => {
    // Prepare
    const [busId] = onlyResource(template, 'AWS::Events::EventBus');
    const decisionEventsRole = logicalIdOf('AWS::IAM::Role', 'DecisionEventsFunction');
    // Act
    const granted = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).flatMap((p) =>
      (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.filter((s) =>
        actionsOf(s).some((a) => a.startsWith('events:')),
      ).map((s) => ({ roles: p.Properties.Roles, statement: s })),
    );
    // Assess
    expect(granted).toEqual([
      {
        roles: [{ Ref: decisionEventsRole }],
        statement: {
          Sid: 'PutDecisionEvents',
          Effect: 'Allow',
          Action: 'events:PutEvents',
          Resource: { 'Fn::GetAtt': [busId, 'Arn'] },
        },
      },
    ]);
  });
});

describe('SelftestPolicy (what keyguard selftest is granted)', () => {
  const [policyId, managed] = onlyEntry('AWS::IAM::ManagedPolicy', 'SelftestPolicy');
  const statements = (managed.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
  const selftestUsers = {
    'Fn::Join': [
      '',
      ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':user/keyguard-selftest-*'],
    ],
  };

  test('IAM writes on keyguard-selftest-* users only, Bedrock keys only; reads of the decisions table, this stack and the effective policy', () => {
    // Assess
    expect(
      statements.map((s) => [s.Sid, s.Effect, [...actionsOf(s)].sort(), s.Resource, s.Condition]),
    ).toEqual([
      [
        'SelftestUsers',
        'Allow',
        [
          'iam:CreateUser',
          'iam:DeleteUser',
          'iam:ListServiceSpecificCredentials',
          'iam:ListUserTags',
          'iam:TagUser',
        ],
        selftestUsers,
        undefined,
      ],
      [
        'SelftestBedrockKeys',
        'Allow',
        ['iam:CreateServiceSpecificCredential', 'iam:DeleteServiceSpecificCredential'],
        selftestUsers,
        { StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' } },
      ],
      ['FindLeftoverUsers', 'Allow', ['iam:ListUsers'], '*', undefined],
      [
        'ReadDecisions',
        'Allow',
        ['dynamodb:Query'],
        { 'Fn::GetAtt': [logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesDecisions'), 'Arn'] },
        undefined,
      ],
      ['ReadStackOutputs', 'Allow', ['cloudformation:DescribeStacks'], { Ref: 'AWS::StackId' }, undefined],
      [
        'ReadEffectivePolicy',
        'Allow',
        ['ssm:GetParameter'],
        expect.objectContaining({ 'Fn::Join': expect.anything() }),
        undefined,
      ],
    ]);
    expect(JSON.stringify(statements[5]?.Resource)).toContain(
      onlyResource(template, 'AWS::SSM::Parameter')[0],
    );
    expect(template.findOutputs('SelftestPolicyArn').SelftestPolicyArn?.Value).toEqual({ Ref: policyId });
  });

  test("the stack's own roles gain nothing: no role or role policy names it or any of its IAM writes", () => {
    // Prepare
    const rolePolicies = Object.values(resourcesOf(template, 'AWS::IAM::Policy'));
    const roles = Object.values(resourcesOf(template, 'AWS::IAM::Role'));
    // Act
    const granted = rolePolicies
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
      .flatMap(actionsOf);
    // Assess
    expect(JSON.stringify(roles)).not.toContain(policyId);
    expect(JSON.stringify(rolePolicies)).not.toContain(policyId);
    expect(
      granted.filter((a) => /^iam:(CreateUser|DeleteUser|TagUser|ListUsers|Create|Delete)/.test(a)),
    ).toEqual([]);
  });
});

function onlyEntry(type: string, prefix: string): [string, ReturnType<typeof onlyResource>[1]] {
  const found = Object.entries(resourcesOf(template, type)).filter(([id]) => id.startsWith(prefix));
  if (found.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${found.length}`);
  return found[0] as [string, ReturnType<typeof onlyResource>[1]];
}

describe('IAM: the function role', () => {
  test('has exactly the actions the flow needs', () => {
    // Act
    const actions = new Set(roleStatements().flatMap(actionsOf));
    // Assess
    expect([...actions].sort()).toEqual(
      [
        'dynamodb:DeleteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
        'iam:GetGroupPolicy',
        'iam:GetLoginProfile',
        'iam:GetPolicy',
        'iam:GetPolicyVersion',
        'iam:GetUserPolicy',
        'iam:ListAccessKeys',
        'iam:ListAttachedGroupPolicies',
        'iam:ListAttachedUserPolicies',
        'iam:ListGroupPolicies',
        'iam:ListGroupsForUser',
        'iam:ListServiceSpecificCredentials',
        'iam:ListUserPolicies',
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

  test('reads keys and tags on users of the governed account only', () => {
    // Act
    const read = roleStatements().find((s) => actionsOf(s).includes('iam:ListServiceSpecificCredentials'));
    // Assess
    expect(read && actionsOf(read).sort()).toEqual([
      'iam:ListServiceSpecificCredentials',
      'iam:ListUserTags',
    ]);
    expect(read?.Resource).toEqual({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':user/*']],
    });
    expect(read?.Condition).toBeUndefined();
  });

  test("reads a key user's policies, groups and other credentials, on this account's users, groups and policies only", () => {
    // Prepare
    const arn = (resource: string) => ({
      'Fn::Join': [
        '',
        ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, `:${resource}/*`],
      ],
    });
    const statement = (action: string) => roleStatements().filter((s) => actionsOf(s).includes(action));
    // Act
    const [user] = statement('iam:ListAccessKeys');
    const [group] = statement('iam:GetGroupPolicy');
    const [policy] = statement('iam:GetPolicyVersion');
    // Assess
    expect(user && actionsOf(user).sort()).toEqual([
      'iam:GetLoginProfile',
      'iam:GetUserPolicy',
      'iam:ListAccessKeys',
      'iam:ListAttachedUserPolicies',
      'iam:ListGroupsForUser',
      'iam:ListUserPolicies',
    ]);
    expect(user?.Resource).toEqual(arn('user'));
    expect(group && actionsOf(group).sort()).toEqual([
      'iam:GetGroupPolicy',
      'iam:ListAttachedGroupPolicies',
      'iam:ListGroupPolicies',
    ]);
    expect(group?.Resource).toEqual(arn('group'));
    expect(policy && actionsOf(policy).sort()).toEqual(['iam:GetPolicy', 'iam:GetPolicyVersion']);
    expect(policy?.Resource).toEqual(arn('policy'));
    for (const s of [user, group, policy]) expect(s?.Condition).toBeUndefined();
  });

  test('may change a service-specific credential only when it belongs to bedrock.amazonaws.com', () => {
    // Act
    const update = roleStatements().filter((s) =>
      actionsOf(s).includes('iam:UpdateServiceSpecificCredential'),
    );
    // Assess
    expect(update).toHaveLength(1);
    expect(actionsOf(update[0] as Statement)).toEqual(['iam:UpdateServiceSpecificCredential']);
    expect(update[0]?.Condition).toEqual({
      StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' },
    });
  });

  test('no statement anywhere grants iam:Create*, iam:Delete*, a `*` action, or a `*` resource beyond the sweep’s account-level reads', () => {
    // Prepare
    const all = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).flatMap(
      (p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
    );
    // Act
    const actions = all.filter((s) => s.Effect === 'Allow').flatMap(actionsOf);
    const resources = all.filter((s) => s.Effect === 'Allow').flatMap(resourcesOfStatement);
    // Assess
    expect(all.length).toBeGreaterThan(0);
    expect(actions.filter((a) => /^iam:(Create|Delete|Reset|Put|Attach|Tag|Untag|Pass)/.test(a))).toEqual([]);
    expect(actions.filter((a) => a === '*' || a.endsWith(':*'))).toEqual([]);
    // Only the inventory sweep's reads that name no resource (acknowledged beside them in inventory-sweep.ts: the
    // account-level reads, LookupEvents, and ListServiceSpecificCredentials with AllUsers), and the audit archive
    // function's and the decision events function's dynamodb:ListStreams (acknowledged in audit-integrity.ts and
    // decision-events.ts), and the leak function's cloudtrail:LookupEvents (acknowledged in leak-quarantine.ts).
    expect(resources.filter((r) => r === '*')).toHaveLength(6);
    expect(
      all
        .filter((s) => s.Effect === 'Allow' && resourcesOfStatement(s).includes('*'))
        .flatMap(actionsOf)
        .sort(),
    ).toEqual([
      'cloudtrail:LookupEvents',
      'cloudtrail:LookupEvents',
      'dynamodb:ListStreams',
      'dynamodb:ListStreams',
      'iam:GenerateCredentialReport',
      'iam:GetAccountAuthorizationDetails',
      'iam:GetCredentialReport',
      'iam:ListServiceSpecificCredentials',
    ]);
  });

  test('has no managed policies; the two managed policies (approvers, self-test) are attached to nothing', () => {
    // Assess
    const roles = Object.values(resourcesOf(template, 'AWS::IAM::Role'));
    expect(roles).toHaveLength(9);
    for (const role of roles) expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const managed = Object.entries(resourcesOf(template, 'AWS::IAM::ManagedPolicy'));
    expect(managed.map(([id]) => id).sort()).toEqual([
      expect.stringMatching(/^ApprovalsApproverPolicy/),
      expect.stringMatching(/^ScanReporterPolicy/),
      expect.stringMatching(/^SelftestPolicy/),
    ]);
    for (const [, policy] of managed) {
      expect(policy.Properties.Roles ?? policy.Properties.Users ?? policy.Properties.Groups).toBeUndefined();
    }
  });

  test('decisions table is append-only: GetItem, Query (the chain head) and PutItem, never UpdateItem or DeleteItem', () => {
    // Prepare
    const decisionsId = logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesDecisions');
    // Act
    const onDecisions = roleStatements()
      .filter((s) => JSON.stringify(s.Resource).includes(`"${decisionsId}"`))
      .flatMap(actionsOf);
    // Assess
    expect(onDecisions.sort()).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query']);
  });

  test('writes logs only to its own log group', () => {
    // Prepare
    const logGroupId = logicalIdOf('AWS::Logs::LogGroup', 'CredentialEventFunction');
    // Act
    const logs = roleStatements().filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
    // Assess
    expect(logs).toHaveLength(1);
    expect(logs[0]?.Resource).toEqual({ 'Fn::GetAtt': [logGroupId, 'Arn'] });
  });
});

describe('the whole stack', () => {
  test('has the expected resources', () => {
    // Assess
    // AuditIntegrity: archive and digest functions (their roles and log groups), the archive bucket, the
    // signing key, a failure queue (and its key), the digest schedule (and its role), the stream mapping.
    // Approvals: the approval function (its role and log group) and its URL.
    // The leak function is in every deployment (issue 15: it decides keyguard scan --quarantine reports).
    // DecisionEvents (issue 16): its function (role, log group), stream mapping and failure queue (and its key).
    template.resourceCountIs('AWS::Lambda::Function', 7);
    template.resourceCountIs('AWS::Lambda::Url', 1);
    template.resourceCountIs('AWS::DynamoDB::Table', 5);
    template.resourceCountIs('AWS::SQS::Queue', 8);
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.resourceCountIs('AWS::SNS::Subscription', 2);
    template.resourceCountIs('AWS::Events::Rule', 2);
    template.resourceCountIs('AWS::KMS::Key', 10);
    template.resourceCountIs('AWS::IAM::Role', 9);
    template.resourceCountIs('AWS::Logs::LogGroup', 7);
    template.resourceCountIs('AWS::Scheduler::Schedule', 3);
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 2);
  });

  test('without usage.regions has no usage tracking: the governance bus alone (for scan reports), no usage queue, function or table', () => {
    // Assess
    template.resourceCountIs('AWS::Events::EventBus', 1);
    expect(stack.governanceBus.usage).toBeUndefined();
    // The two event source mappings are the audit archive's and the decision events' (decisions table stream),
    // not a usage queue.
    const mappings = Object.values(resourcesOf(template, 'AWS::Lambda::EventSourceMapping'));
    expect(mappings.map((m) => m.Properties.EventSourceArn)).toEqual([
      { 'Fn::GetAtt': [logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesDecisions'), 'StreamArn'] },
      { 'Fn::GetAtt': [logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesDecisions'), 'StreamArn'] },
    ]);
    expect(stack.keyUsage).toBeUndefined();
    expect(stack.usageForwarding).toBeUndefined();
    expect(stack.tables.usage).toBeUndefined();
  });

  test('passes the cdk-nag AwsSolutions pack with no unacknowledged finding', () => {
    // Act
    const report = new AwsSolutionsChecks().validateScope(stack);
    // Assess
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
    expect(report.success).toBe(true);
  });

  test('every acknowledgement is load-bearing: without them cdk-nag reports findings', () => {
    // Prepare: the same composition, with acknowledge() turned into a no-op.
    const acknowledge = jest.spyOn(Validations.prototype, 'acknowledge').mockImplementation(() => undefined);
    let report: ReturnType<AwsSolutionsChecks['validateScope']>;
    try {
      const { stack: bare } = build();
      // Act
      report = new AwsSolutionsChecks().validateScope(bare);
    } finally {
      acknowledge.mockRestore();
    }
    // Assess
    // One entry per finding kind (both functions have the runtime and the failure-queue findings).
    expect([...new Set(report.violations.map((v) => v.ruleName))].sort()).toEqual(
      [
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:group/*]',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:policy/*]',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*]',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/keyguard-selftest-*]',
        'AwsSolutions-IAM5[Resource::*]',
        `AwsSolutions-IAM5[Resource::<${logicalIdOf('AWS::Lambda::Function', 'InventorySweep')}.Arn>:*]`,
        `AwsSolutions-IAM5[Resource::<${logicalIdOf('AWS::Lambda::Function', 'AuditIntegrityDigestFunction')}.Arn>:*]`,
        ...['decisions', 'chains', 'anomalies', 'digests'].map(
          (prefix) =>
            `AwsSolutions-IAM5[Resource::<${logicalIdOf('AWS::S3::Bucket', 'AuditIntegrityArchive')}.Arn>/${prefix}/*]`,
        ),
        'AwsSolutions-L1',
        'AwsSolutions-S1',
        'AwsSolutions-SQS3',
      ].sort(),
    );
  });
});

describe('organization mode seam', () => {
  test('governedAccountId scopes the IAM statements to that account, still nag-clean', () => {
    // Prepare
    const app = new App({ context: NO_BUNDLING });
    // Act
    const member = new KeyguardStack(app, 'Member', {
      env: { account: '111111111111', region: 'us-east-1' },
      config: CONFIG,
      governedAccountId: '222222222222',
    });
    const t = Template.fromStack(member);
    // Assess
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'iam:UpdateServiceSpecificCredential',
            Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::222222222222:user/*']] },
          }),
        ]),
      },
    });
    const [, fn] = credentialEventFunction(t);
    expect(
      (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables.GOVERNED_ACCOUNT_ID,
    ).toBe('222222222222');
    expect(new AwsSolutionsChecks().validateScope(member).violations).toEqual([]);
  });
});

// The approvals table, the approval function and who may call it: test/lib/approvals.test.ts.

describe('DecisionEvents (issue 16: every decision on the governance bus)', () => {
  const decisionsId = () => logicalIdOf('AWS::DynamoDB::Table', 'AuditTablesDecisions');
  const functionId = () => logicalIdOf('AWS::Lambda::Function', 'DecisionEventsFunction');
  const queueId = () => logicalIdOf('AWS::SQS::Queue', 'DecisionEventsFailureQueue');

  test('a mapping on the decisions table stream (NEW_IMAGE) that reports batch item failures, bisects, and ends in its failure queue', () => {
    // Prepare
    const table = resourcesOf(template, 'AWS::DynamoDB::Table')[decisionsId()];
    const mapping = Object.values(resourcesOf(template, 'AWS::Lambda::EventSourceMapping')).find(
      (m) => JSON.stringify(m.Properties.FunctionName) === JSON.stringify({ Ref: functionId() }),
    );
    // Assess
    expect(table?.Properties.StreamSpecification).toEqual({ StreamViewType: 'NEW_IMAGE' });
    expect(mapping?.Properties).toEqual({
      FunctionName: { Ref: functionId() },
      EventSourceArn: { 'Fn::GetAtt': [decisionsId(), 'StreamArn'] },
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRetryAttempts: 50,
      MaximumRecordAgeInSeconds: 86_400,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queueId(), 'Arn'] } } },
    });
    expect(
      template.findOutputs('DecisionEventsFailureQueueUrl').DecisionEventsFailureQueueUrl?.Value,
    ).toEqual({
      Ref: queueId(),
    });
  });

  test('the function knows the bus by ARN; its role may put events on that bus, read the stream, log, and send to its queue: nothing else', () => {
    // Prepare
    const [busId] = onlyResource(template, 'AWS::Events::EventBus');
    const roleId = logicalIdOf('AWS::IAM::Role', 'DecisionEventsFunction');
    const fn = resourcesOf(template, 'AWS::Lambda::Function')[functionId()];
    // Act
    const statements = Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
    const byAction = Object.fromEntries(
      statements.flatMap((s) => actionsOf(s).map((a) => [a, resourcesOfStatement(s)])),
    );
    // Assess
    expect(fn?.Properties.Environment).toMatchObject({
      Variables: {
        GOVERNANCE_BUS_ARN: { 'Fn::GetAtt': [busId, 'Arn'] },
        DECISION_EVENTS_OCSF: 'false',
      },
    });
    expect(Object.keys(byAction).sort()).toEqual([
      'dynamodb:DescribeStream',
      'dynamodb:GetRecords',
      'dynamodb:GetShardIterator',
      'dynamodb:ListStreams',
      'events:PutEvents',
      'kms:Decrypt',
      'kms:GenerateDataKey',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'sqs:SendMessage',
    ]);
    expect(byAction['events:PutEvents']).toEqual([{ 'Fn::GetAtt': [busId, 'Arn'] }]);
    expect(byAction['dynamodb:GetRecords']).toEqual([{ 'Fn::GetAtt': [decisionsId(), 'StreamArn'] }]);
    expect(byAction['dynamodb:ListStreams']).toEqual(['*']);
    expect(byAction['sqs:SendMessage']).toEqual([{ 'Fn::GetAtt': [queueId(), 'Arn'] }]);
  });
});

describe('DecisionEvents: undelivered decisions alarm on the owner-notice topic', () => {
  test('an alarm while a record range waits in its failure queue, and CloudWatch may publish for that alarm only', () => {
    // Prepare
    const [topicId, topic] = onlyResource(template, 'AWS::SNS::Topic');
    const keyId = (topic.Properties.KmsMasterKeyId as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    const queueId = logicalIdOf('AWS::SQS::Queue', 'DecisionEventsFailureQueue');
    const alarmName = `${stack.stackName}-decision-events-undelivered`;
    const fromThisAlarm = {
      ArnEquals: {
        'aws:SourceArn': {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':cloudwatch:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              `:alarm:${alarmName}`,
            ],
          ],
        },
      },
      StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
    };
    // Assess: the same metric, statistic, period and threshold as the stack's other queue alarms.
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: alarmName,
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: topicId }],
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: topicId }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Sid: 'DecisionEventsAlarmPublish',
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Resource: { Ref: topicId },
            Condition: fromThisAlarm,
          },
        ]),
      },
    });
    const keyPolicy = resourcesOf(template, 'AWS::KMS::Key')[keyId]?.Properties.KeyPolicy as
      | { Statement: Statement[] }
      | undefined;
    const keyStatements = keyPolicy?.Statement ?? [];
    expect(keyStatements.filter((s) => s.Sid === 'DecisionEventsAlarmPublishEncrypted')).toEqual([
      {
        Sid: 'DecisionEventsAlarmPublishEncrypted',
        Effect: 'Allow',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Action: ['kms:GenerateDataKey*', 'kms:Decrypt'],
        Resource: '*',
        Condition: fromThisAlarm,
      },
    ]);
  });
});
