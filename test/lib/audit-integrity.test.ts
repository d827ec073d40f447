// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DECISIONS_APPEND_ACTIONS, DECISIONS_DENIED_ACTIONS } from '../../lib/constructs/audit-tables';
import { actionsOf, build, resourcesOf, resourcesOfStatement, type Statement, writeConfig } from './helpers';

const { template, stack } = build();
const tables = resourcesOf(template, 'AWS::DynamoDB::Table');
const [decisionsId, decisions] = (() => {
  const found = Object.entries(tables).filter(([id]) => id.startsWith('AuditTablesDecisions'));
  if (found.length !== 1) throw new Error('expected one decisions table');
  return found[0] as [string, (typeof tables)[string]];
})();

const ACCOUNT = '111122223333';
const TABLE_ARN = `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/Decisions`;

/** The decisions table's resource policy, `Resource: *` meaning the table (as DynamoDB reads it). */
function decisionsPolicy(): { Version?: string; Statement: Statement[] } {
  const props = decisions.Properties as { ResourcePolicy?: { PolicyDocument: { Statement: Statement[] } } };
  if (!props.ResourcePolicy) throw new Error('the decisions table has no resource policy');
  return props.ResourcePolicy.PolicyDocument;
}

/** An administrator allowed everything by IAM, against the table's resource policy (iam-simulate). */
async function adminMay(action: string): Promise<string> {
  const doc = decisionsPolicy();
  const resourcePolicy = {
    Version: '2012-10-17',
    Statement: doc.Statement.map((s) => ({ ...s, Resource: TABLE_ARN })),
  };
  const result = await runSimulation(
    {
      request: {
        principal: `arn:aws:iam::${ACCOUNT}:role/AccountAdmin`,
        action,
        resource: { resource: TABLE_ARN, accountId: ACCOUNT },
        contextVariables: {},
      },
      identityPolicies: [
        {
          name: 'AdministratorAccess',
          policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
        },
      ],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy,
    },
    {},
  );
  if (result.resultType !== 'single') throw new Error(`simulation did not run: ${JSON.stringify(result)}`);
  return result.overallResult;
}

describe('decisions table: append-only by resource policy (issue 10 item 6)', () => {
  test('denies item updates, deletes and batch writes to every principal; nothing else', () => {
    // Assess
    expect(decisionsPolicy().Statement).toEqual([
      {
        Sid: 'NobodyUpdatesOrDeletesDecisions',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: [
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:PartiQLUpdate',
          'dynamodb:PartiQLDelete',
        ],
        Resource: '*',
      },
    ]);
    // DeleteTable stays with deletion protection (and RETAIN), so CloudFormation can still manage the table.
    expect(decisions.Properties.DeletionProtectionEnabled).toBe(true);
    expect(decisions.DeletionPolicy).toBe('Retain');
  });

  test.each(DECISIONS_DENIED_ACTIONS)('an administrator allowed dynamodb:* is denied %s', async (action) => {
    // Act
    const outcome = await adminMay(action);
    // Assess
    expect(outcome).toBe('ExplicitlyDenied');
  });

  test.each(DECISIONS_APPEND_ACTIONS)('%s (what appending needs) stays allowed', async (action) => {
    // Act
    const outcome = await adminMay(action);
    // Assess
    expect(outcome).toBe('Allowed');
  });

  test('no role of the stack is granted an update or delete on the decisions table', () => {
    // Act
    const onDecisions = Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
      .filter((s) => JSON.stringify(s.Resource).includes(`"${decisionsId}"`))
      .flatMap(actionsOf);
    // Assess
    expect(onDecisions.length).toBeGreaterThan(0);
    expect(onDecisions.filter((a) => DECISIONS_DENIED_ACTIONS.includes(a) || a === 'dynamodb:*')).toEqual([]);
  });
});

/** Logical id of the one resource of `type` under `prefix`. */
function idOf(type: string, prefix: string): string {
  const ids = Object.keys(resourcesOf(template, type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
}

function roleStatements(rolePrefix: string): Statement[] {
  const roleId = idOf('AWS::IAM::Role', rolePrefix);
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

describe('AuditIntegrity: Object Lock archive, signing key, digest and archive functions', () => {
  test('the archive bucket: Object Lock COMPLIANCE for audit.retentionDays, versioned, encrypted, private, TLS only, retained', () => {
    // Act
    const [, bucket] = Object.entries(resourcesOf(template, 'AWS::S3::Bucket')).find(([id]) =>
      id.startsWith('AuditIntegrityArchive'),
    ) ?? ['', { Properties: {} as Record<string, unknown>, DeletionPolicy: undefined }];
    // Assess
    expect(bucket.Properties).toMatchObject({
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 365 } },
      },
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    });
    expect(bucket.DeletionPolicy).toBe('Retain');
    const policy = Object.values(resourcesOf(template, 'AWS::S3::BucketPolicy'))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
      .find((st) => st.Condition?.Bool?.['aws:SecureTransport'] === 'false');
    expect(policy?.Effect).toBe('Deny');
    const noDelete = Object.values(resourcesOf(template, 'AWS::S3::BucketPolicy'))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
      .find((st) => st.Sid === 'NobodyDeletesArchivedRecords');
    expect(noDelete).toMatchObject({
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
    });
  });

  test('retention follows audit.retentionDays', () => {
    // Prepare
    const file = writeConfig({ audit: { retentionDays: 2555 } });
    // Act
    const t = build({ context: { config: file } }).template;
    // Assess
    t.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 2555 } } },
    });
  });

  test('the signing key: RSA_2048 SIGN_VERIFY, retained; its policy denies kms:Sign to all but the digest role', () => {
    // Prepare
    const keyId = idOf('AWS::KMS::Key', 'AuditIntegritySigningKey');
    const key = resourcesOf(template, 'AWS::KMS::Key')[keyId];
    const digestRoleId = idOf('AWS::IAM::Role', 'AuditIntegrityDigestFunction');
    // Assess
    expect(key?.Properties).toMatchObject({ KeySpec: 'RSA_2048', KeyUsage: 'SIGN_VERIFY' });
    expect(key?.DeletionPolicy).toBe('Retain');
    const statements = (key?.Properties.KeyPolicy as { Statement: Statement[] } | undefined)?.Statement;
    expect(statements).toContainEqual({
      Sid: 'OnlyTheDigestFunctionSigns',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 'kms:Sign',
      Resource: '*',
      Condition: { ArnNotEquals: { 'aws:PrincipalArn': { 'Fn::GetAtt': [digestRoleId, 'Arn'] } } },
    });
  });

  test('only the digest function is granted kms:Sign, on that key only', () => {
    // Prepare
    const keyId = idOf('AWS::KMS::Key', 'AuditIntegritySigningKey');
    // Act
    const signers = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).filter((p) =>
      (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.some((st) =>
        actionsOf(st).some((a) => a === 'kms:Sign' || a === 'kms:*'),
      ),
    );
    // Assess
    expect(signers).toHaveLength(1);
    const digest = roleStatements('AuditIntegrityDigestFunction');
    const sign = digest.filter((st) => actionsOf(st).includes('kms:Sign'));
    expect(sign.map((st) => resourcesOfStatement(st))).toEqual([[{ 'Fn::GetAtt': [keyId, 'Arn'] }]]);
  });

  test('the digest function: decisions Query/Scan/PutItem (table and byChainHour), PutObject(+Retention) under digests/', () => {
    // Act
    const actions = roleStatements('AuditIntegrityDigestFunction').flatMap(actionsOf).sort();
    // Assess
    expect([...new Set(actions)]).toEqual(
      [
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:Scan',
        'kms:Decrypt',
        'kms:GenerateDataKey',
        'kms:Sign',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        's3:PutObject',
        's3:PutObjectRetention',
        'sqs:SendMessage',
      ].sort(),
    );
    expect(actions.some((a) => a === 'dynamodb:UpdateItem' || a === 'dynamodb:DeleteItem')).toBe(false);
  });

  test('the archive function reads the decisions stream and may only put objects (never delete)', () => {
    // Act
    const actions = [...new Set(roleStatements('AuditIntegrityArchiveFunction').flatMap(actionsOf))];
    // Assess
    expect(actions.filter((a) => a.startsWith('s3:')).sort()).toEqual([
      's3:PutObject',
      's3:PutObjectRetention',
    ]);
    expect(actions.filter((a) => a.startsWith('dynamodb:')).sort()).toEqual([
      'dynamodb:DescribeStream',
      'dynamodb:GetRecords',
      'dynamodb:GetShardIterator',
      'dynamodb:ListStreams',
    ]);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      StartingPosition: 'TRIM_HORIZON',
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  test('the digest runs on audit.digestSchedule, with a dead-letter queue', () => {
    // Prepare
    const digestFnId = idOf('AWS::Lambda::Function', 'AuditIntegrityDigestFunction');
    // Act
    const schedules = Object.values(resourcesOf(template, 'AWS::Scheduler::Schedule')).filter((r) =>
      JSON.stringify(r.Properties.Target).includes(`"${digestFnId}"`),
    );
    // Assess
    expect(schedules).toHaveLength(1);
    expect(schedules[0]?.Properties).toMatchObject({ ScheduleExpression: 'rate(1 hour)' });
    expect(
      (schedules[0]?.Properties.Target as { DeadLetterConfig?: unknown } | undefined)?.DeadLetterConfig,
    ).toBeDefined();
  });

  test('is cdk-nag clean (acknowledgements beside the resources)', () => {
    // Act
    const report = new AwsSolutionsChecks().validateScope(stack);
    // Assess
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  });
});
