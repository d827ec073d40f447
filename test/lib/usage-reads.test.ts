import type { Template } from 'aws-cdk-lib/assertions';
import { build, resourcesOf, resourcesOfStatement, type Statement, writeConfig } from './helpers';

/**
 * With usage tracked, every function that decides on keys reads a key's last use (events must keep UNUSED
 * as the sweep decides it): USAGE_TABLE_NAME and GetItem/BatchGetItem on the usage table, nothing more.
 */

const LOG_GROUPS = { leakDetection: { logGroups: ['/app/chat'] } };
const tracked = build({
  context: { config: writeConfig({ ...LOG_GROUPS, usage: { regions: ['us-west-2'] } }) },
});
const untracked = build({ context: { config: writeConfig(LOG_GROUPS) } });

function onlyId(t: Template, type: string, prefix: string): string | undefined {
  const ids = Object.keys(resourcesOf(t, type)).filter((id) => id.startsWith(prefix));
  if (ids.length > 1)
    throw new Error(`expected at most one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0];
}

function envOf(t: Template, fnPrefix: string): Record<string, unknown> {
  const id = onlyId(t, 'AWS::Lambda::Function', fnPrefix);
  if (!id) throw new Error(`no function ${fnPrefix}`);
  const fn = resourcesOf(t, 'AWS::Lambda::Function')[id];
  if (!fn) throw new Error(`no function ${id}`);
  return (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
}

function statementsOf(t: Template, rolePrefix: string): Statement[] {
  const role = onlyId(t, 'AWS::IAM::Role', rolePrefix);
  return Object.values(resourcesOf(t, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${role}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

describe.each([
  ['credential-event', 'CredentialEventFunction'],
  ['leak', 'LeakQuarantine'],
])('the %s function and the usage table', (_name, prefix) => {
  test('usage tracked: USAGE_TABLE_NAME and GetItem/BatchGetItem on exactly that table', () => {
    // Prepare
    const table = onlyId(tracked.template, 'AWS::DynamoDB::Table', 'AuditTablesUsageTable');
    const arn = { 'Fn::GetAtt': [table, 'Arn'] };
    // Act
    const env = envOf(tracked.template, prefix);
    const onTable = statementsOf(tracked.template, prefix).filter(
      (s) => JSON.stringify(resourcesOfStatement(s)) === JSON.stringify([arn]),
    );
    // Assess
    expect(env.USAGE_TABLE_NAME).toEqual({ Ref: table });
    expect(onTable).toEqual([
      {
        Sid: 'UsageReads',
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:BatchGetItem'],
        Resource: arn,
      },
    ]);
  });

  test('usage not tracked: no USAGE_TABLE_NAME, no usage table', () => {
    // Act
    const env = envOf(untracked.template, prefix);
    // Assess
    expect(env).not.toHaveProperty('USAGE_TABLE_NAME');
    expect(onlyId(untracked.template, 'AWS::DynamoDB::Table', 'AuditTablesUsageTable')).toBeUndefined();
  });
});
