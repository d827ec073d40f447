// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { approvalsTableDefinition } from '../../lambda/adapters/approvals-store';
import { ApprovalPolicySchema } from '../../lambda/handlers/approval-handler';
import { parseConfig, policyVersion } from '../../lambda/shared/config';
import { actionsOf, build, resourcesOf, type Statement, writeConfig } from './helpers';

/**
 * Issue 11 items 2, 8, 9 and 13: who may approve is established by AWS. Approvals are written only by the approval
 * function (table resource policy), whose URL authenticates callers with IAM; no role of the stack may be assumed to
 * write approvals; nothing but the functions appends to the decisions table.
 */

const ACCOUNT = '111122223333';
const APPROVER_USER = `arn:aws:iam::${ACCOUNT}:user/security/carol`;
const APPROVER_ROLE = `arn:aws:iam::${ACCOUNT}:role/SecurityLead`;
const CONFIG_INPUT = { mode: 'enforce', maxApprovalDays: 90, approvers: [APPROVER_USER, APPROVER_ROLE] };

const { stack, template } = build({ context: { config: writeConfig(CONFIG_INPUT) } });
const defaults = build();

type Json = Record<string, unknown>;

function onlyId(t: Template, type: string, prefix: string): string {
  const ids = Object.keys(resourcesOf(t, type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} starting ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
}

const tableId = onlyId(template, 'AWS::DynamoDB::Table', 'ApprovalsTable');
const functionId = onlyId(template, 'AWS::Lambda::Function', 'ApprovalsHandler');
const roleId = onlyId(template, 'AWS::IAM::Role', 'ApprovalsHandler');
const table = resourcesOf(template, 'AWS::DynamoDB::Table')[tableId] as {
  Properties: Json;
  DeletionPolicy?: string;
};
const fn = resourcesOf(template, 'AWS::Lambda::Function')[functionId] as { Properties: Json };

/** Concrete ARNs for the template's references, as a deployment would resolve them. */
const TABLE_ARN = `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/BedrockKeyGuard-ApprovalsTable-1ABC`;
const FUNCTION_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/BedrockKeyGuard-ApprovalsHandlerRole-1ABC`;
const FUNCTION_ARN = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:BedrockKeyGuard-ApprovalsHandler-1ABC`;

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::AccountId': ACCOUNT,
  'AWS::Region': 'us-east-1',
};

/** The template's intrinsic functions resolved to what a deployment would give (for iam-simulate). */
function resolve(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolve);
  if (value === null || typeof value !== 'object') return value;
  const o = value as Json;
  if ('Fn::GetAtt' in o) {
    const [id] = o['Fn::GetAtt'] as [string, string];
    if (id === roleId) return FUNCTION_ROLE_ARN;
    if (id === tableId) return TABLE_ARN;
    if (id === functionId) return FUNCTION_ARN;
    return `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/${id}`;
  }
  if ('Ref' in o) return PSEUDO[o.Ref as string] ?? `ref-${String(o.Ref)}`;
  if ('Fn::Join' in o) {
    const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => String(resolve(p))).join(sep);
  }
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v)]));
}

function tablePolicy(): { Version: string; Statement: Statement[] } {
  const doc = (table.Properties.ResourcePolicy as { PolicyDocument: { Statement: Statement[] } })
    .PolicyDocument;
  return resolve({
    Version: '2012-10-17',
    Statement: doc.Statement.map((s) => ({ ...s, Resource: TABLE_ARN })),
  }) as {
    Version: string;
    Statement: Statement[];
  };
}

/** Every statement of the inline policies attached to a role. */
function statementsOf(t: Template, role: string): Statement[] {
  return Object.values(resourcesOf(t, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${role}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

const ALLOW_ALL = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] };

async function simulate(
  principal: string,
  action: string,
  resource: string,
  identity: unknown,
  resourcePolicy?: unknown,
  context: Record<string, string | string[]> = {},
): Promise<string> {
  const result = await runSimulation(
    {
      request: {
        principal,
        action,
        resource: { resource, accountId: ACCOUNT },
        // The simulator does not derive aws:PrincipalArn; IAM sets it to the role (or user) of the caller.
        contextVariables: { 'aws:PrincipalArn': principal, ...context },
      },
      identityPolicies: [{ name: 'identity', policy: identity as never }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy ? { resourcePolicy: resourcePolicy as never } : {}),
    },
    {},
  );
  if (result.resultType !== 'single') throw new Error(`simulation did not run: ${JSON.stringify(result)}`);
  return result.overallResult;
}

describe('approvals table', () => {
  test("has the adapter's schema (pk/sk, sparse byAccount index), on-demand, PITR, AWS managed key, retained, protected", () => {
    const definition = approvalsTableDefinition('x');
    expect(table.Properties.KeySchema).toEqual(definition.KeySchema);
    expect(table.Properties.AttributeDefinitions).toEqual(
      expect.arrayContaining(definition.AttributeDefinitions ?? []),
    );
    expect(table.Properties.GlobalSecondaryIndexes).toEqual(definition.GlobalSecondaryIndexes);
    expect(table.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      DeletionProtectionEnabled: true,
    });
    expect(table.DeletionPolicy).toBe('Retain');
  });

  test('resource policy: item writes only by the approval function, deletes by nobody, policy changes only by CloudFormation', () => {
    expect(tablePolicy().Statement.map((s) => [s.Sid, s.Effect, actionsOf(s)])).toEqual([
      [
        'OnlyTheApprovalFunctionWrites',
        'Deny',
        ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:PartiQLInsert', 'dynamodb:PartiQLUpdate'],
      ],
      [
        'NobodyDeletesApprovals',
        'Deny',
        ['dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:PartiQLDelete'],
      ],
      [
        'PolicyChangesOnlyThroughCloudFormation',
        'Deny',
        ['dynamodb:PutResourcePolicy', 'dynamodb:DeleteResourcePolicy'],
      ],
    ]);
    // The config approvers are not writers: they call the function like everyone else.
    expect(JSON.stringify(tablePolicy())).not.toContain(APPROVER_USER);
  });

  test.each([
    ['an administrator (Allow *)', `arn:aws:iam::${ACCOUNT}:role/AccountAdmin`],
    ['a configured approver', APPROVER_ROLE],
    ['an approver user', APPROVER_USER],
  ])(
    'iam-simulate: %s cannot put, update or insert an approval item, nor delete one',
    async (_who, principal) => {
      for (const action of [
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:PartiQLInsert',
        'dynamodb:DeleteItem',
        'dynamodb:BatchWriteItem',
      ]) {
        expect([action, await simulate(principal, action, TABLE_ARN, ALLOW_ALL, tablePolicy())]).toEqual([
          action,
          'ExplicitlyDenied',
        ]);
      }
    },
  );

  test('iam-simulate: the approval function role may put and update approvals with its own policy, never delete them', async () => {
    const identity = resolve({ Version: '2012-10-17', Statement: statementsOf(template, roleId) });
    expect(await simulate(FUNCTION_ROLE_ARN, 'dynamodb:PutItem', TABLE_ARN, identity, tablePolicy())).toBe(
      'Allowed',
    );
    expect(await simulate(FUNCTION_ROLE_ARN, 'dynamodb:UpdateItem', TABLE_ARN, identity, tablePolicy())).toBe(
      'Allowed',
    );
    expect(
      await simulate(FUNCTION_ROLE_ARN, 'dynamodb:DeleteItem', TABLE_ARN, ALLOW_ALL, tablePolicy()),
    ).toBe('ExplicitlyDenied');
  });

  test('iam-simulate: an administrator cannot replace or delete the resource policy; CloudFormation can', async () => {
    const admin = `arn:aws:iam::${ACCOUNT}:role/AccountAdmin`;
    const cdkExec = `arn:aws:iam::${ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role-${ACCOUNT}-us-east-1`;
    for (const action of ['dynamodb:PutResourcePolicy', 'dynamodb:DeleteResourcePolicy']) {
      expect(await simulate(admin, action, TABLE_ARN, ALLOW_ALL, tablePolicy())).toBe('ExplicitlyDenied');
      expect(await simulate(cdkExec, action, TABLE_ARN, ALLOW_ALL, tablePolicy())).toBe('Allowed');
      expect(
        await simulate(admin, action, TABLE_ARN, ALLOW_ALL, tablePolicy(), {
          'aws:CalledVia': ['cloudformation.amazonaws.com'],
        }),
      ).toBe('Allowed');
    }
  });
});

describe('approval function', () => {
  test('is the only principal of the stack granted writes on the approvals table; no role is assumable to write', () => {
    const writers = Object.entries(resourcesOf(template, 'AWS::IAM::Role')).filter(([id]) =>
      statementsOf(template, id).some(
        (s) =>
          JSON.stringify(s.Resource).includes(`"${tableId}"`) &&
          actionsOf(s).some((a) => /Put|Update|Delete|Write/.test(a)),
      ),
    );
    expect(writers.map(([id]) => id)).toEqual([roleId]);
    // No role trusts anything but an AWS service: nobody assumes a role to approve (issue 11 item 2).
    for (const [, role] of Object.entries(resourcesOf(template, 'AWS::IAM::Role'))) {
      const trust = (role.Properties.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement;
      for (const s of trust) expect(Object.keys(s.Principal as Json)).toEqual(['Service']);
    }
  });

  test('role: exactly the item actions it uses (approvals, its index, keys GetItem, decisions append)', () => {
    const grants = statementsOf(template, roleId)
      .filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')))
      .map((s) => ({ actions: actionsOf(s).sort(), resource: s.Resource }));
    const keysId = onlyId(template, 'AWS::DynamoDB::Table', 'AuditTablesKeys');
    const decisionsId = onlyId(template, 'AWS::DynamoDB::Table', 'AuditTablesDecisions');
    expect(grants).toEqual([
      {
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
        resource: { 'Fn::GetAtt': [tableId, 'Arn'] },
      },
      {
        actions: ['dynamodb:Query'],
        resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [tableId, 'Arn'] }, '/index/byAccount']] },
      },
      { actions: ['dynamodb:GetItem'], resource: { 'Fn::GetAtt': [keysId, 'Arn'] } },
      {
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
        resource: { 'Fn::GetAtt': [decisionsId, 'Arn'] },
      },
    ]);
  });

  test('is reached through a function URL with AWS_IAM authentication only, and no resource policy opens it', () => {
    const urls = Object.values(resourcesOf(template, 'AWS::Lambda::Url'));
    expect(urls).toHaveLength(1);
    expect(urls[0]?.Properties).toMatchObject({
      AuthType: 'AWS_IAM',
      TargetFunctionArn: { 'Fn::GetAtt': [functionId, 'Arn'] },
    });
    const permissions = Object.values(resourcesOf(template, 'AWS::Lambda::Permission')).filter((p) =>
      JSON.stringify(p.Properties.FunctionName).includes(`"${functionId}"`),
    );
    expect(permissions).toEqual([]);
  });

  test('environment: the approval policy (approvers, maxApprovalDays, mode, fallbackOwner), its version and the tables', () => {
    const env = (fn.Properties.Environment as { Variables: Json }).Variables;
    const config = parseConfig(CONFIG_INPUT);
    expect(ApprovalPolicySchema.parse(JSON.parse(env.APPROVAL_POLICY as string))).toEqual({
      mode: 'enforce',
      maxApprovalDays: 90,
      fallbackOwner: null,
      approvers: [APPROVER_USER, APPROVER_ROLE],
    });
    expect(env.POLICY_VERSION).toBe(policyVersion(config));
    expect(env.APPROVALS_TABLE_NAME).toEqual({ Ref: tableId });
    expect(env.GOVERNED_ACCOUNT_ID).toEqual({ Ref: 'AWS::AccountId' });
  });
});

describe('ApproverPolicy (what an approver is granted)', () => {
  const [policyId, managed] = Object.entries(resourcesOf(template, 'AWS::IAM::ManagedPolicy')).find(([id]) =>
    id.startsWith('ApprovalsApproverPolicy'),
  ) ?? ['', { Properties: {} as Json }];
  const document = () => resolve(managed.Properties.PolicyDocument);

  test('grants only InvokeFunctionUrl (AWS_IAM URLs) and InvokeFunction through the URL, on the approval function; attached to nothing', () => {
    const statements = (document() as { Statement: Statement[] }).Statement;
    expect(statements.map((s) => [actionsOf(s), s.Resource, s.Condition])).toEqual([
      [
        ['lambda:InvokeFunctionUrl'],
        FUNCTION_ARN,
        { StringEquals: { 'lambda:FunctionUrlAuthType': 'AWS_IAM' } },
      ],
      [['lambda:InvokeFunction'], FUNCTION_ARN, { Bool: { 'lambda:InvokedViaFunctionUrl': 'true' } }],
    ]);
    expect(managed.Properties.Roles ?? managed.Properties.Users ?? managed.Properties.Groups).toBeUndefined();
    expect(template.findOutputs('ApproverPolicyArn').ApproverPolicyArn?.Value).toEqual({ Ref: policyId });
  });

  test('iam-simulate: an approver can call the URL, cannot invoke the function directly, and cannot write any table', async () => {
    const approver = APPROVER_ROLE;
    expect(
      await simulate(approver, 'lambda:InvokeFunctionUrl', FUNCTION_ARN, document(), undefined, {
        'lambda:FunctionUrlAuthType': 'AWS_IAM',
      }),
    ).toBe('Allowed');
    expect(
      await simulate(approver, 'lambda:InvokeFunction', FUNCTION_ARN, document(), undefined, {
        'lambda:InvokedViaFunctionUrl': 'true',
      }),
    ).toBe('Allowed');
    expect(await simulate(approver, 'lambda:InvokeFunction', FUNCTION_ARN, document())).toBe(
      'ImplicitlyDenied',
    );
    expect(await simulate(approver, 'dynamodb:PutItem', TABLE_ARN, document(), tablePolicy())).not.toBe(
      'Allowed',
    );
  });
});

describe('decisions table: only the functions append (issue 11 item 9)', () => {
  test('every role granted PutItem on the decisions table is a Lambda function role', () => {
    const decisionsId = onlyId(template, 'AWS::DynamoDB::Table', 'AuditTablesDecisions');
    const functionRoles = new Set(
      Object.values(resourcesOf(template, 'AWS::Lambda::Function')).map((f) =>
        JSON.stringify(f.Properties.Role),
      ),
    );
    const appenders = Object.keys(resourcesOf(template, 'AWS::IAM::Role')).filter((id) =>
      statementsOf(template, id).some(
        (s) =>
          JSON.stringify(s.Resource).includes(`"${decisionsId}"`) &&
          actionsOf(s).includes('dynamodb:PutItem'),
      ),
    );
    expect(appenders.length).toBeGreaterThan(0);
    for (const id of appenders)
      expect(functionRoles.has(JSON.stringify({ 'Fn::GetAtt': [id, 'Arn'] }))).toBe(true);
  });
});

describe('outputs and checks', () => {
  test('outputs the URL, the approver policy and the table; no approver role any more', () => {
    const outputs = template.findOutputs('*');
    expect(outputs.ApprovalsUrl?.Value).toEqual({
      'Fn::GetAtt': [onlyId(template, 'AWS::Lambda::Url', 'ApprovalsHandler'), 'FunctionUrl'],
    });
    expect(outputs.ApprovalsTableName?.Value).toEqual({ Ref: tableId });
    expect(outputs.ApproverRoleArn).toBeUndefined();
  });

  test.each([
    ['with approvers', stack],
    ['with the defaults', defaults.stack],
  ])('the stack %s is cdk-nag clean', (_name, s) => {
    expect(new AwsSolutionsChecks().validateScope(s).violations).toEqual([]);
  });
});
