import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { AwsSolutionsChecks } from 'cdk-nag';
import { SelftestPolicy } from '../../lib/constructs/selftest-policy';
import { actionsOf, resourcesOf, resourcesOfStatement, type Statement } from './helpers';

/** The construct alone on a bare stack (no functions to bundle): the --leak statements for short and long lists. */
function synth(leakLogGroups: string[]): { statements: Statement[]; stack: Stack; size: number } {
  const stack = new Stack(new App(), 'Selftest', { env: { region: 'us-east-1' } });
  const table = new dynamodb.Table(stack, 'Decisions', {
    partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
  });
  new SelftestPolicy(stack, 'SelftestPolicy', { decisionsTable: table, leakLogGroups });
  const [policy] = Object.values(resourcesOf(Template.fromStack(stack), 'AWS::IAM::ManagedPolicy'));
  const document = policy?.Properties.PolicyDocument as { Statement: Statement[] };
  const size = JSON.stringify(stack.resolve(document)).replace(/\s/g, '').length;
  return { statements: document.Statement, stack, size };
}

function logsResources(statements: Statement[]): string[] {
  return statements
    .filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')))
    .flatMap((s) => resourcesOfStatement(s).map((r) => JSON.stringify(r)));
}

describe('SelftestPolicy --leak statements', () => {
  test('names each subscribed group when they fit', () => {
    // Act
    const { statements } = synth(['/aws/lambda/chatbot']);
    // Assess
    expect(logsResources(statements)).toEqual([
      expect.stringContaining(':log-group:/aws/lambda/chatbot:*'),
      expect.stringContaining(':log-group:/aws/lambda/chatbot:log-stream:keyguard-selftest-*'),
    ]);
  });

  test('50 groups of 512 characters: any group, keyguard-selftest-* streams only, within 6,144 characters and nag-clean', () => {
    // Prepare
    const groups = Array.from({ length: 50 }, (_, i) => `/${String(i).padStart(2, '0')}${'g'.repeat(509)}`);
    // Act
    const { statements, stack, size } = synth(groups);
    // Assess
    expect(logsResources(statements)).toEqual([
      expect.stringContaining(':log-group:*:*'),
      expect.stringContaining(':log-group:*:log-stream:keyguard-selftest-*'),
    ]);
    expect(size).toBeLessThanOrEqual(6144);
    const findings = new AwsSolutionsChecks()
      .validateScope(stack)
      .violations.filter((v) =>
        v.violatingResources.some((r) => r.constructPath?.includes('SelftestPolicy')),
      );
    expect(findings.map((v) => v.ruleName)).toEqual([]);
  });
});
