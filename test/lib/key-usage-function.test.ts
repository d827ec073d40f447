// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { Validations } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONFIG_ENV, functionPolicy, parseConfig, policyVersion } from '../../lambda/shared/config';
import { KEY_USAGE_TABLE_ACTIONS } from '../../lib/constructs/key-usage-function';
import { PROJECT_ROOT } from '../../lib/constructs/keyguard-function';
import { actionsOf, build, resourcesOf, resourcesOfStatement, type Statement, writeConfig } from './helpers';

const CONFIG_INPUT = { mode: 'enforce', usage: { regions: ['eu-west-1'] } };
const CONFIG = parseConfig(CONFIG_INPUT);

// Prepare (shared): the real composition with usage tracking (eu-west-1 only), and without.
const withUsage = build({ context: { config: writeConfig(CONFIG_INPUT) } });
const withoutUsage = build({ context: { config: writeConfig({ mode: 'enforce' }) } });
const template = withUsage.template;

function onlyId(t: Template, type: string, prefix: string): string {
  const ids = Object.keys(resourcesOf(t, type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
}

const FUNCTION = onlyId(template, 'AWS::Lambda::Function', 'KeyUsageFunction');
const ROLE = onlyId(template, 'AWS::IAM::Role', 'KeyUsageFunction');
const QUEUE = onlyId(template, 'AWS::SQS::Queue', 'GovernanceBusUsageQueue');
const QUEUE_KEY = onlyId(template, 'AWS::KMS::Key', 'GovernanceBusUsageQueueKey');
const USAGE_DLQ = onlyId(template, 'AWS::SQS::Queue', 'GovernanceBusUsageDeadLetterQueue');
const USAGE_TABLE = onlyId(template, 'AWS::DynamoDB::Table', 'AuditTablesUsageTable');
const arnOf = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
const ANY_USER = {
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':user/*']],
};

function roleStatements(): Statement[] {
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${ROLE}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

function statementsOn(resource: unknown): Statement[] {
  return roleStatements().filter(
    (s) => JSON.stringify(resourcesOfStatement(s)) === JSON.stringify([resource]),
  );
}

/** The DynamoDB calls lambda/adapters/usage-store.ts makes, read from its lib-dynamodb command imports. */
function usageStoreCalls(): string[] {
  const source = readFileSync(join(PROJECT_ROOT, 'lambda/adapters/usage-store.ts'), 'utf8');
  const imports = /import\s*{([^}]*)}\s*from\s*'@aws-sdk\/lib-dynamodb'/.exec(source)?.[1] ?? '';
  const commands = imports
    .split(',')
    .map((name) => name.trim())
    .filter((name) => /^[A-Z]\w*Command$/.test(name));
  const action: Record<string, string> = {
    GetCommand: 'dynamodb:GetItem',
    PutCommand: 'dynamodb:PutItem',
    UpdateCommand: 'dynamodb:UpdateItem',
    DeleteCommand: 'dynamodb:DeleteItem',
    QueryCommand: 'dynamodb:Query',
    BatchGetCommand: 'dynamodb:BatchGetItem',
    BatchWriteCommand: 'dynamodb:BatchWriteItem',
  };
  return commands.map((c) => action[c] ?? `unknown ${c}`).sort();
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

describe('KeyUsageFunction', () => {
  test('is absent without usage.regions', () => {
    // Assess
    expect(withoutUsage.stack.keyUsage).toBeUndefined();
    // Only the decisions table stream's mappings (audit archive, decision events); the credential-event, sweep,
    // approval, leak, decision events and the two audit functions.
    withoutUsage.template.resourceCountIs('AWS::Lambda::EventSourceMapping', 2);
    withoutUsage.template.resourceCountIs('AWS::Lambda::Function', 7);
    expect(JSON.stringify(withoutUsage.template.toJSON())).not.toContain('KeyUsageFunction');
  });

  test('runs Node.js 22 on ARM64 with 512 MB, 60 s and its own retained 1-year log group', () => {
    // Prepare
    const fn = resourceOf(template, 'AWS::Lambda::Function', FUNCTION);
    const logGroup = onlyId(template, 'AWS::Logs::LogGroup', 'KeyUsageFunction');
    // Assess
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      MemorySize: 512,
      Timeout: 60,
      Handler: 'index.handler',
      LoggingConfig: { LogGroup: { Ref: logGroup } },
      Role: arnOf(ROLE),
    });
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: { RetentionInDays: 365 },
      DeletionPolicy: 'Retain',
    });
    expect(Object.keys(resourcesOf(template, 'AWS::Logs::LogGroup'))).toContain(logGroup);
  });

  test('receives the pipeline environment plus the usage table name', () => {
    // Prepare
    const fn = resourceOf(template, 'AWS::Lambda::Function', FUNCTION);
    const env = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    // Assess
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
        'USAGE_TABLE_NAME',
      ].sort(),
    );
    expect(env.USAGE_TABLE_NAME).toEqual({ Ref: USAGE_TABLE });
    expect(env.DECISIONS_TABLE_NAME).toEqual({
      Ref: onlyId(template, 'AWS::DynamoDB::Table', 'AuditTablesDecisions'),
    });
    expect(env.GOVERNED_ACCOUNT_ID).toEqual({ Ref: 'AWS::AccountId' });
    expect(JSON.parse(env[CONFIG_ENV] as string)).toEqual(functionPolicy(CONFIG));
    expect(env.POLICY_VERSION).toBe(policyVersion(CONFIG));
    expect(env.POWERTOOLS_SERVICE_NAME).toBe('keyguard-key-usage');
  });

  test('reads the usage queue in batches of up to 100, waiting up to 30 s to fill one', () => {
    // Assess
    const [mapping, ...others] = Object.entries(resourcesOf(template, 'AWS::Lambda::EventSourceMapping'))
      .filter(([id]) => id.startsWith('KeyUsageFunction'))
      .map(([, m]) => m);
    expect(others).toEqual([]);
    expect(mapping?.Properties).toEqual({
      FunctionName: { Ref: FUNCTION },
      EventSourceArn: arnOf(QUEUE),
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 30,
    });
  });
});

describe('usage queue', () => {
  test('is KMS-encrypted with a rotating customer-managed key, TLS-only, and redrives after 5 receives', () => {
    // Prepare
    const queue = resourceOf(template, 'AWS::SQS::Queue', QUEUE);
    // Assess
    expect(queue.Properties.KmsMasterKeyId).toEqual(arnOf(QUEUE_KEY));
    expect(resourceOf(template, 'AWS::KMS::Key', QUEUE_KEY).Properties.EnableKeyRotation).toBe(true);
    expect(queue.Properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: arnOf(USAGE_DLQ),
      maxReceiveCount: 5,
    });
    expect(queuePolicyStatements(template, QUEUE)).toContainEqual({
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'sqs:*',
      Resource: arnOf(QUEUE),
      Condition: { Bool: { 'aws:SecureTransport': 'false' } },
    });
  });

  test('hides a received batch for six function timeouts (at least timeout + batching window)', () => {
    // Prepare
    const fn = resourceOf(template, 'AWS::Lambda::Function', FUNCTION);
    // Assess
    expect(resourceOf(template, 'AWS::SQS::Queue', QUEUE).Properties.VisibilityTimeout).toBe(
      6 * (fn.Properties.Timeout as number),
    );
  });

  test('its DLQ is encrypted with its own rotating key and keeps messages 14 days', () => {
    // Prepare
    const dlq = resourceOf(template, 'AWS::SQS::Queue', USAGE_DLQ);
    const key = onlyId(template, 'AWS::KMS::Key', 'GovernanceBusUsageDeadLetterQueueKey');
    // Assess
    expect(dlq.Properties.KmsMasterKeyId).toEqual(arnOf(key));
    expect(dlq.Properties.MessageRetentionPeriod).toBe(14 * 24 * 3600);
    expect(resourceOf(template, 'AWS::KMS::Key', key).Properties.EnableKeyRotation).toBe(true);
  });
});

describe('usage queue: EventBridge is a producer only (issue 11 item 13)', () => {
  test("the key policy gives events.amazonaws.com exactly GenerateDataKey + Decrypt, for this account's rules", () => {
    // Act
    const forEvents = (
      resourceOf(template, 'AWS::KMS::Key', QUEUE_KEY).Properties.KeyPolicy as { Statement: Statement[] }
    ).Statement.filter((s) => JSON.stringify(s.Principal).includes('events.amazonaws.com'));
    // Assess: no kms:Encrypt, kms:ReEncrypt* or GenerateDataKey* variants (SQS: a producer needs these two)
    expect(forEvents.map((s) => [s.Effect, [...actionsOf(s)].sort(), s.Condition])).toEqual([
      [
        'Allow',
        ['kms:Decrypt', 'kms:GenerateDataKey'],
        { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      ],
    ]);
  });

  test('the queue policy allows EventBridge SendMessage only (no GetQueueAttributes / GetQueueUrl)', () => {
    // Act
    const allows = queuePolicyStatements(template, QUEUE).filter(
      (s) => s.Effect === 'Allow' && JSON.stringify(s.Principal).includes('events.amazonaws.com'),
    );
    // Assess
    expect(allows.map((s) => [s.Principal, actionsOf(s), s.Condition])).toEqual([
      [
        { Service: 'events.amazonaws.com' },
        ['sqs:SendMessage'],
        { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      ],
    ]);
  });

  test('iam-simulate: EventBridge of this account may send to the queue and use the key to send; nothing else', async () => {
    // Prepare
    const account = '111122223333';
    const queueArn = `arn:aws:sqs:us-east-1:${account}:usage`;
    const keyArn = `arn:aws:kms:us-east-1:${account}:key/usage`;
    const usageRule = `arn:aws:events:us-east-1:${account}:rule/bedrock-key-guard-governance/bedrock-key-guard-usage`;
    const resolve = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(resolve);
      if (v === null || typeof v !== 'object') return v;
      const o = v as Record<string, unknown>;
      if ('Ref' in o)
        return ({ 'AWS::Partition': 'aws', 'AWS::AccountId': account } as Record<string, string>)[
          o.Ref as string
        ];
      if ('Fn::GetAtt' in o) return queueArn;
      if ('Fn::Join' in o) {
        const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
        return parts.map(resolve).join(sep);
      }
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, resolve(x)]));
    };
    const keyPolicy = resolve(resourceOf(template, 'AWS::KMS::Key', QUEUE_KEY).Properties.KeyPolicy);
    const queuePolicy = resolve({ Version: '2012-10-17', Statement: queuePolicyStatements(template, QUEUE) });
    const eventBridge = async (action: string, sourceAccount = account) => {
      const onKey = action.startsWith('kms:');
      const result = await runSimulation(
        {
          request: {
            principal: 'events.amazonaws.com',
            action,
            resource: { resource: onKey ? keyArn : queueArn, accountId: account },
            contextVariables: {
              'aws:SourceAccount': sourceAccount,
              'aws:SourceArn': usageRule,
              'aws:SecureTransport': 'true',
            },
          },
          identityPolicies: [],
          serviceControlPolicies: [],
          resourceControlPolicies: [],
          resourcePolicy: (onKey ? keyPolicy : queuePolicy) as never,
        },
        {},
      );
      if (result.resultType !== 'single')
        throw new Error(`simulation did not run: ${JSON.stringify(result)}`);
      return `${action} ${result.overallResult}`;
    };
    const needed = ['sqs:SendMessage', 'kms:GenerateDataKey', 'kms:Decrypt'];
    const unneeded = [
      'sqs:GetQueueAttributes',
      'sqs:GetQueueUrl',
      'kms:Encrypt',
      'kms:ReEncryptFrom',
      'kms:ReEncryptTo',
      'kms:GenerateDataKeyWithoutPlaintext',
    ];
    // Act
    const allowed = await Promise.all(needed.map((a) => eventBridge(a)));
    const refused = await Promise.all(unneeded.map((a) => eventBridge(a)));
    const otherAccount = await Promise.all(needed.map((a) => eventBridge(a, '444455556666')));
    // Assess
    expect(allowed).toEqual(needed.map((a) => `${a} Allowed`));
    expect(refused.filter((r) => r.endsWith(' Allowed'))).toEqual([]);
    expect(otherAccount.filter((r) => r.endsWith(' Allowed'))).toEqual([]);
  });

  test('the usage rule still targets the usage queue, with its retries and dead-letter queue', () => {
    // Act
    const rule = resourceOf(
      template,
      'AWS::Events::Rule',
      onlyId(template, 'AWS::Events::Rule', 'GovernanceBusUsageRule'),
    );
    // Assess
    expect(rule.Properties.Targets).toEqual([
      {
        Id: 'Target0',
        Arn: arnOf(QUEUE),
        DeadLetterConfig: {
          Arn: arnOf(onlyId(template, 'AWS::SQS::Queue', 'GovernanceBusRuleDeadLetterQueue')),
        },
        RetryPolicy: { MaximumRetryAttempts: 4, MaximumEventAgeInSeconds: 7200 },
      },
    ]);
  });
});

describe('KeyUsageFunction: the role', () => {
  test('has exactly the actions the flow needs', () => {
    // Act
    const actions = [...new Set(roleStatements().flatMap(actionsOf))].sort();
    // Assess
    expect(actions).toEqual(
      [
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'sqs:ReceiveMessage',
        'sqs:ChangeMessageVisibility',
        'sqs:GetQueueUrl',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'kms:Decrypt',
        'kms:GenerateDataKey*',
        'iam:ListServiceSpecificCredentials',
        'iam:ListUserTags',
        'iam:ListAttachedUserPolicies',
        'iam:ListUserPolicies',
        'iam:GetUserPolicy',
        'iam:ListGroupsForUser',
        'iam:ListAccessKeys',
        'iam:GetLoginProfile',
        'iam:ListAttachedGroupPolicies',
        'iam:ListGroupPolicies',
        'iam:GetGroupPolicy',
        'iam:GetPolicy',
        'iam:GetPolicyVersion',
        'iam:UpdateServiceSpecificCredential',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
        'dynamodb:BatchGetItem',
        'sns:Publish',
      ].sort(),
    );
  });

  test('consumes only the usage queue and decrypts only with its key', () => {
    // Assess
    expect(statementsOn(arnOf(QUEUE)).flatMap(actionsOf).sort()).toEqual(
      [
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
      ].sort(),
    );
    expect(statementsOn(arnOf(QUEUE_KEY)).flatMap(actionsOf)).toEqual(['kms:Decrypt']);
    expect(roleStatements().flatMap(actionsOf)).not.toContain('sqs:SendMessage');
  });

  test("reads keys, tags and the key user's facts on this account's users, groups and policies; deactivates Bedrock keys only", () => {
    // Prepare
    const anyOf = (resource: string) => ({
      'Fn::Join': [
        '',
        ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, `:${resource}/*`],
      ],
    });
    // Assess
    expect(statementsOn(ANY_USER).map((s) => [s.Sid, actionsOf(s).sort(), s.Condition])).toEqual([
      ['ReadKeysAndOwnerTags', ['iam:ListServiceSpecificCredentials', 'iam:ListUserTags'], undefined],
      [
        'ReadKeyUserPoliciesAndCredentials',
        [
          'iam:GetLoginProfile',
          'iam:GetUserPolicy',
          'iam:ListAccessKeys',
          'iam:ListAttachedUserPolicies',
          'iam:ListGroupsForUser',
          'iam:ListUserPolicies',
        ],
        undefined,
      ],
      [
        'DeactivateBedrockKeysOnly',
        ['iam:UpdateServiceSpecificCredential'],
        { StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' } },
      ],
    ]);
    expect(statementsOn(anyOf('group')).flatMap(actionsOf).sort()).toEqual([
      'iam:GetGroupPolicy',
      'iam:ListAttachedGroupPolicies',
      'iam:ListGroupPolicies',
    ]);
    expect(statementsOn(anyOf('policy')).flatMap(actionsOf).sort()).toEqual([
      'iam:GetPolicy',
      'iam:GetPolicyVersion',
    ]);
  });

  test('usage table: UpdateItem (recordUses) and the reads of a deciding function, calls the store really makes', () => {
    // Assess
    expect(statementsOn(arnOf(USAGE_TABLE))).toEqual([
      {
        Sid: 'UsageRecords',
        Effect: 'Allow',
        Action: ['dynamodb:UpdateItem', 'dynamodb:GetItem', 'dynamodb:BatchGetItem'],
        Resource: arnOf(USAGE_TABLE),
      },
    ]);
    expect(usageStoreCalls()).toEqual(expect.arrayContaining(KEY_USAGE_TABLE_ACTIONS));
  });

  test('decisions: GetItem/PutItem/Query (append-only, chained); keys: GetItem/PutItem; approvals: read only', () => {
    // Prepare
    const table = (prefix: string) => arnOf(onlyId(template, 'AWS::DynamoDB::Table', prefix));
    // Assess
    expect(statementsOn(table('AuditTablesDecisions')).flatMap(actionsOf)).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
    ]);
    expect(statementsOn(table('AuditTablesKeys')).flatMap(actionsOf)).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
    ]);
    expect(statementsOn(table('Approvals')).flatMap(actionsOf)).toEqual([
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);
  });

  test('publishes only to the owner-notice topic; no managed policies; no `*` resource', () => {
    // Prepare
    const topic = onlyId(template, 'AWS::SNS::Topic', 'OwnerAlerts');
    const role = resourceOf(template, 'AWS::IAM::Role', ROLE);
    // Assess
    expect(statementsOn({ Ref: topic }).flatMap(actionsOf)).toEqual(['sns:Publish']);
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(roleStatements().filter((s) => resourcesOfStatement(s).includes('*'))).toEqual([]);
  });
});

describe('KeyUsageFunction: stack', () => {
  test('usage tracking adds its rule on the governance bus, queues, the function and the table, and nothing else', () => {
    // Prepare
    const count = (t: Template, type: string) => Object.keys(resourcesOf(t, type)).length;
    const added = (type: string) => count(template, type) - count(withoutUsage.template, type);
    // Assess (eu-west-1 only: no forwarding in the main stack)
    expect({
      buses: added('AWS::Events::EventBus'),
      rules: added('AWS::Events::Rule'),
      queues: added('AWS::SQS::Queue'),
      keys: added('AWS::KMS::Key'),
      functions: added('AWS::Lambda::Function'),
      mappings: added('AWS::Lambda::EventSourceMapping'),
      roles: added('AWS::IAM::Role'),
      logGroups: added('AWS::Logs::LogGroup'),
      tables: added('AWS::DynamoDB::Table'),
      topics: added('AWS::SNS::Topic'),
      schedules: added('AWS::Scheduler::Schedule'),
    }).toEqual({
      buses: 0, // the governance bus is in every deployment (scan reports, issue 15)
      rules: 1,
      queues: 3, // usage queue, its DLQ, the usage rule's DLQ
      keys: 3,
      functions: 1,
      mappings: 1,
      roles: 1,
      logGroups: 1,
      tables: 1,
      topics: 0,
      schedules: 0,
    });
  });

  test('passes cdk-nag AwsSolutions, and its acknowledgements are load-bearing', () => {
    // Act
    const clean = new AwsSolutionsChecks().validateScope(withUsage.stack);
    const acknowledge = jest.spyOn(Validations.prototype, 'acknowledge').mockImplementation(() => undefined);
    let bare: ReturnType<AwsSolutionsChecks['validateScope']>;
    try {
      bare = new AwsSolutionsChecks().validateScope(
        build({ context: { config: writeConfig(CONFIG_INPUT) } }).stack,
      );
    } finally {
      acknowledge.mockRestore();
    }
    // Assess
    expect(clean.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
    const keyUsageFindings = bare.violations
      .filter((v) => v.violatingResources.some((r) => r.constructPath?.includes('KeyUsageFunction')))
      .map((v) => v.ruleName);
    expect([...new Set(keyUsageFindings)].sort()).toEqual(
      [
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:group/*]',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:policy/*]',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*]',
        'AwsSolutions-L1',
      ].sort(),
    );
  });
});
