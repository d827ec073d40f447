// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { DECISIONS_APPEND_ACTIONS, DECISIONS_DENIED_ACTIONS } from '../../lib/constructs/audit-tables';
import { actionsOf, build, resourcesOf, type Statement } from './helpers';

const { template } = build();
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
