import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONFIG_ENV, functionPolicy, parseConfig, policyVersion } from '../../lambda/shared/config';
import { KeyguardStack } from '../../lib/keyguard-stack';
import {
  actionsOf,
  build,
  NO_BUNDLING,
  resourcesOf,
  resourcesOfStatement,
  type Statement,
  writeConfig,
} from './helpers';

const CONFIG_INPUT = { mode: 'enforce', sweep: { schedule: 'rate(2 hours)' } };
const CONFIG = parseConfig(CONFIG_INPUT);

// Prepare (shared): one synthesis of the real composition.
const { stack, template } = build({ context: { config: writeConfig(CONFIG_INPUT) } });
const json = template.toJSON() as {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
};

function idOf(type: string, prefix: string): string {
  const ids = Object.entries(json.Resources)
    .filter(([id, r]) => r.Type === type && id.startsWith(prefix))
    .map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
}

const FUNCTION = idOf('AWS::Lambda::Function', 'InventorySweepHandler');
const ROLE = idOf('AWS::IAM::Role', 'InventorySweepHandlerRole');
const QUEUE = idOf('AWS::SQS::Queue', 'InventorySweepFailureQueue');
const STATE = idOf('AWS::DynamoDB::Table', 'InventorySweepStateTable');
const SCHEDULER_ROLE = idOf('AWS::IAM::Role', 'InventorySweepSchedulerRole');
const arnOf = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });

/** Every statement of the IAM policies attached to a role. */
function statementsOf(roleId: string): Statement[] {
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

/** One resource by logical id (fails the test when it is missing). */
function resourceOf(t: Template, type: string, id: string) {
  const found = resourcesOf(t, type)[id];
  if (!found) throw new Error(`no ${type} ${id}`);
  return found;
}

describe('InventorySweep: schedules', () => {
  // The sweep's schedules (the audit digest has its own, in AuditIntegrity).
  const schedules = () =>
    Object.entries(resourcesOf(template, 'AWS::Scheduler::Schedule'))
      .filter(([id]) => id.startsWith('InventorySweep'))
      .map(([, s]) => s.Properties);

  test('runs the sweep on config.sweep.schedule, and a 5-minute continuation, both with no flexible window', () => {
    // Act
    const all = schedules();
    // Assess
    expect(
      all.map((s) => [s.ScheduleExpression, JSON.parse((s.Target as { Input: string }).Input)]).sort(),
    ).toEqual([
      ['rate(2 hours)', {}],
      ['rate(5 minutes)', { continue: true }],
    ]);
    for (const s of all) {
      expect(s.FlexibleTimeWindow).toEqual({ Mode: 'OFF' });
      expect(s.State).toBe('ENABLED');
    }
  });

  test('targets the sweep function with 2 retries within 1 hour and the failure queue as dead-letter queue', () => {
    // Assess
    for (const s of schedules()) {
      expect(s.Target).toMatchObject({
        Arn: arnOf(FUNCTION),
        RoleArn: arnOf(SCHEDULER_ROLE),
        DeadLetterConfig: { Arn: arnOf(QUEUE) },
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600 },
      });
    }
  });

  test('the scheduler role may only invoke the sweep function and write to its encrypted dead-letter queue', () => {
    // Prepare
    const [, role] =
      Object.entries(resourcesOf(template, 'AWS::IAM::Role')).find(([id]) => id === SCHEDULER_ROLE) ?? [];
    const statements = statementsOf(SCHEDULER_ROLE);
    // Assess
    expect(JSON.stringify(role?.Properties.AssumeRolePolicyDocument)).toContain('scheduler.amazonaws.com');
    expect(JSON.stringify(role?.Properties.AssumeRolePolicyDocument)).toContain('aws:SourceAccount');
    expect(statements.flatMap(actionsOf).sort()).toEqual(
      ['kms:Decrypt', 'kms:GenerateDataKey', 'lambda:InvokeFunction', 'sqs:SendMessage'].sort(),
    );
    const invoke = statements.find((s) => actionsOf(s).includes('lambda:InvokeFunction'));
    expect(JSON.stringify(invoke?.Resource)).toContain(FUNCTION);
    expect(JSON.stringify(invoke?.Resource)).not.toContain('CredentialEvent');
  });
});

describe('InventorySweep: function', () => {
  const fn = () => resourceOf(template, 'AWS::Lambda::Function', FUNCTION).Properties ?? {};

  test('runs up to 15 minutes with 1024 MB, and sends failed invocations to the failure queue', () => {
    // Assess
    expect(fn()).toMatchObject({
      Timeout: 900,
      MemorySize: 1024,
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: FUNCTION },
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 3600,
      DestinationConfig: { OnFailure: { Destination: arnOf(QUEUE) } },
    });
  });

  test('receives the credential-event environment plus the sweep state table', () => {
    // Prepare
    const env = (fn().Environment as { Variables: Record<string, unknown> }).Variables;
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
        'SWEEP_STATE_TABLE_NAME',
        'TOPIC_ARN',
      ].sort(),
    );
    expect(env.SWEEP_STATE_TABLE_NAME).toEqual({ Ref: STATE });
    expect(env.KEYS_TABLE_NAME).toEqual({ Ref: idOf('AWS::DynamoDB::Table', 'AuditTablesKeys') });
    expect(JSON.parse(env[CONFIG_ENV] as string)).toEqual(functionPolicy(CONFIG));
    expect(env.POLICY_VERSION).toBe(policyVersion(CONFIG));
    expect(env.POWERTOOLS_SERVICE_NAME).toBe('keyguard-sweep');
  });

  test('keeps its state in an on-demand, encrypted, point-in-time-recoverable table keyed by account', () => {
    // Prepare
    const table = resourcesOf(template, 'AWS::DynamoDB::Table')[STATE];
    // Assess
    expect(table?.Properties).toMatchObject({
      KeySchema: [{ AttributeName: 'accountId', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
    expect(table?.DeletionPolicy).toBe('Delete');
  });
});

describe('InventorySweep: the function role', () => {
  const statements = () => statementsOf(ROLE);
  const byAction = (action: string) => statements().filter((s) => actionsOf(s).includes(action));
  const anyUser = {
    'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':user/*']],
  };

  test('has exactly the actions the sweep needs', () => {
    // Assess
    expect([...new Set(statements().flatMap(actionsOf))].sort()).toEqual(
      [
        'cloudtrail:LookupEvents',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'iam:GenerateCredentialReport',
        'iam:GetAccountAuthorizationDetails',
        'iam:GetCredentialReport',
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

  test('lists every key with AllUsers on * (IAM does not document which resource it checks when no user is named); account-level reads and LookupEvents on *', () => {
    // Act
    const list = byAction('iam:ListServiceSpecificCredentials');
    const [tags] = byAction('iam:ListUserTags');
    const [reads] = byAction('iam:GetAccountAuthorizationDetails');
    const [lookup] = byAction('cloudtrail:LookupEvents');
    // Assess: one statement grants the listing on *, which holds user/* too; tags stay on the account's users
    expect(list).toHaveLength(1);
    expect(actionsOf(list[0] as Statement)).toEqual(['iam:ListServiceSpecificCredentials']);
    expect(list[0]?.Resource).toBe('*');
    expect(actionsOf(tags as Statement)).toEqual(['iam:ListUserTags']);
    expect(tags?.Resource).toEqual(anyUser);
    expect(actionsOf(reads as Statement).sort()).toEqual([
      'iam:GenerateCredentialReport',
      'iam:GetAccountAuthorizationDetails',
      'iam:GetCredentialReport',
    ]);
    expect(reads?.Resource).toBe('*');
    expect(actionsOf(lookup as Statement)).toEqual(['cloudtrail:LookupEvents']);
    expect(lookup?.Resource).toBe('*');
  });

  test('may change a credential only when it belongs to bedrock.amazonaws.com; no create/delete/reset anywhere', () => {
    // Act
    const update = byAction('iam:UpdateServiceSpecificCredential');
    const actions = statements().flatMap(actionsOf);
    // Assess
    expect(update).toHaveLength(1);
    expect(actionsOf(update[0] as Statement)).toEqual(['iam:UpdateServiceSpecificCredential']);
    expect(update[0]?.Resource).toEqual(anyUser);
    expect(update[0]?.Condition).toEqual({
      StringEquals: { 'iam:ServiceSpecificCredentialServiceName': 'bedrock.amazonaws.com' },
    });
    expect(actions.filter((a) => /^iam:(Create|Delete|Reset|Put|Attach|Tag|Untag|Pass)/.test(a))).toEqual([]);
    expect(actions.filter((a) => a === '*' || a.endsWith(':*'))).toEqual([]);
  });

  test('decisions: GetItem/PutItem only; keys: plus Query; approvals: read only; sweep state: GetItem/PutItem', () => {
    // Prepare
    const on = (tableId: string) =>
      statements()
        .filter((s) =>
          resourcesOfStatement(s).some((r) => JSON.stringify(r) === JSON.stringify(arnOf(tableId))),
        )
        .flatMap(actionsOf)
        .sort();
    // Assess
    expect(on(idOf('AWS::DynamoDB::Table', 'AuditTablesDecisions'))).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
    ]);
    expect(on(idOf('AWS::DynamoDB::Table', 'AuditTablesKeys'))).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
    ]);
    expect(on(idOf('AWS::DynamoDB::Table', 'ApprovalsTable'))).toEqual([
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);
    expect(on(STATE)).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem']);
  });

  test('has no managed policies and no reserved concurrency (the DynamoDB lease keeps one sweep at a time)', () => {
    // Assess
    const role = resourcesOf(template, 'AWS::IAM::Role')[ROLE];
    expect(role?.Properties.ManagedPolicyArns).toBeUndefined();
    expect(
      resourceOf(template, 'AWS::Lambda::Function', FUNCTION).Properties.ReservedConcurrentExecutions,
    ).toBe(undefined);
  });
});

describe('InventorySweep: stack', () => {
  test('outputs the sweep function name and its failure queue', () => {
    // Act
    const outputs = template.findOutputs('*');
    // Assess
    expect(outputs.SweepFunctionName?.Value).toEqual({ Ref: FUNCTION });
    expect(outputs.SweepFailureQueueUrl?.Value).toEqual({ Ref: QUEUE });
  });

  test('adds one function, one table, one queue (and its key), two schedules and two roles', () => {
    // Assess
    expect(
      Object.keys(resourcesOf(template, 'AWS::Scheduler::Schedule')).filter((id) =>
        id.startsWith('InventorySweep'),
      ),
    ).toHaveLength(2);
    expect(
      Object.keys(resourcesOf(template, 'AWS::Lambda::Function')).filter((id) =>
        id.startsWith('InventorySweep'),
      ),
    ).toEqual([FUNCTION]);
    expect(
      Object.keys(resourcesOf(template, 'AWS::IAM::Role'))
        .filter((id) => id.startsWith('InventorySweep'))
        .sort(),
    ).toEqual([ROLE, SCHEDULER_ROLE].sort());
    expect(
      Object.keys(resourcesOf(template, 'AWS::SQS::Queue')).filter((id) => id.startsWith('InventorySweep')),
    ).toEqual([QUEUE]);
    expect(
      Object.keys(resourcesOf(template, 'AWS::KMS::Key')).filter((id) => id.startsWith('InventorySweep')),
    ).toHaveLength(1);
    expect(
      Object.keys(resourcesOf(template, 'AWS::DynamoDB::Table')).filter((id) =>
        id.startsWith('InventorySweep'),
      ),
    ).toEqual([STATE]);
  });

  test('passes cdk-nag AwsSolutions, and its acknowledgements are load-bearing', () => {
    // Act
    const report = new AwsSolutionsChecks().validateScope(stack.sweep);
    // Assess
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );

    // Prepare: the same composition with acknowledge() as a no-op
    const acknowledge = jest.spyOn(Validations.prototype, 'acknowledge').mockImplementation(() => undefined);
    let bare: ReturnType<AwsSolutionsChecks['validateScope']>;
    try {
      bare = new AwsSolutionsChecks().validateScope(build().stack.sweep);
    } finally {
      acknowledge.mockRestore();
    }
    expect([...new Set(bare.violations.map((v) => v.ruleName))].sort()).toEqual(
      [
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
        `AwsSolutions-IAM5[Resource::<${FUNCTION}.Arn>:*]`,
        'AwsSolutions-IAM5[Resource::*]',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*]',
        'AwsSolutions-L1',
        'AwsSolutions-SQS3',
      ].sort(),
    );
  });

  test('organization mode: governedAccountId scopes the sweep to that account', () => {
    // Act
    const member = new KeyguardStack(new App({ context: NO_BUNDLING }), 'Member', {
      env: { account: '111111111111', region: 'us-east-1' },
      config: CONFIG,
      governedAccountId: '222222222222',
    });
    const t = Template.fromStack(member);
    const fn = Object.entries(resourcesOf(t, 'AWS::Lambda::Function')).find(([id]) =>
      id.startsWith('InventorySweep'),
    )?.[1];
    if (!fn) throw new Error('no sweep function in the member stack');
    // Assess
    const env = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.GOVERNED_ACCOUNT_ID).toBe('222222222222');
    expect(JSON.stringify(t.toJSON())).toContain(':iam::222222222222:user/*');
    expect(new AwsSolutionsChecks().validateScope(member.sweep).violations).toEqual([]);
  });
});

describe('InventorySweep: usage tracking', () => {
  // Prepare (shared): the same composition with usage tracking on (usage.regions not empty).
  const tracked = build({
    context: { config: writeConfig({ ...CONFIG_INPUT, usage: { regions: ['eu-west-1'] } }) },
  }).template;
  const trackedJson = tracked.toJSON() as { Resources: Record<string, { Type: string }> };
  const trackedId = (type: string, prefix: string) => {
    const ids = Object.keys(trackedJson.Resources).filter(
      (id) => trackedJson.Resources[id]?.Type === type && id.startsWith(prefix),
    );
    if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
    return ids[0] as string;
  };
  const envOf = (t: Template, fnId: string) =>
    (
      resourceOf(t, 'AWS::Lambda::Function', fnId).Properties.Environment as {
        Variables: Record<string, unknown>;
      }
    ).Variables;
  const statementsIn = (t: Template, roleId: string) =>
    Object.values(resourcesOf(t, 'AWS::IAM::Policy'))
      .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);

  test('without it, the sweep has no USAGE_TABLE_NAME and no usage grant', () => {
    // Assess
    expect(envOf(template, FUNCTION)).not.toHaveProperty('USAGE_TABLE_NAME');
    expect(statementsOf(ROLE).filter((s) => s.Sid?.startsWith('Usage'))).toEqual([]);
  });

  test('with it, the sweep gets USAGE_TABLE_NAME', () => {
    // Prepare
    const fnId = trackedId('AWS::Lambda::Function', 'InventorySweepHandler');
    const table = trackedId('AWS::DynamoDB::Table', 'AuditTablesUsageTable');
    // Assess
    expect(envOf(tracked, fnId).USAGE_TABLE_NAME).toEqual({ Ref: table });
  });

  test('with it, the sweep may GetItem (tracking start) and BatchGetItem (last use) on the usage table only', () => {
    // Prepare
    const roleId = trackedId('AWS::IAM::Role', 'InventorySweepHandlerRole');
    const table = arnOf(trackedId('AWS::DynamoDB::Table', 'AuditTablesUsageTable'));
    // Act
    const onUsage = statementsIn(tracked, roleId).filter(
      (s) => JSON.stringify(resourcesOfStatement(s)) === JSON.stringify([table]),
    );
    // Assess
    expect(onUsage).toEqual([
      {
        Sid: 'UsageReads',
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:BatchGetItem'],
        Resource: table,
      },
    ]);
    // Nothing else changes for the sweep: the same actions plus the two reads on the usage table.
    const actions = (t: Template, id: string) => [...new Set(statementsIn(t, id).flatMap(actionsOf))].sort();
    expect(actions(tracked, roleId)).toEqual(
      [...new Set([...actions(template, ROLE), 'dynamodb:BatchGetItem', 'dynamodb:GetItem'])].sort(),
    );
  });
});
