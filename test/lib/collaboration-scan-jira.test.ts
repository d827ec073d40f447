import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CollaborationScan, type CollaborationScanProps } from '../../lib/constructs/collaboration-scan';
import { actionsOf, build, NO_BUNDLING, resourcesOf, type Statement, writeConfig } from './helpers';

/**
 * `leakDetection.jira` in the scheduled collaboration scan (issue 15 §3): a second empty secret (the Atlassian
 * e-mail and API token as JSON), a second schedule naming the source, and the same role reading only its secrets.
 */

function synth(props: Omit<CollaborationScanProps, 'bus'>) {
  const app = new App({ context: NO_BUNDLING });
  const stack = new Stack(app, 'Test', { env: { account: '111122223333', region: 'us-east-1' } });
  const bus = new events.EventBus(stack, 'Bus', { eventBusName: 'bedrock-key-guard-governance' });
  const scan = new CollaborationScan(stack, 'CollaborationScan', { bus, ...props });
  return { stack, scan, template: Template.fromStack(stack) };
}

const SLACK = { schedule: 'rate(15 minutes)', initialLookbackHours: 24 };
const JIRA = {
  schedule: 'rate(30 minutes)',
  siteUrl: 'https://acme.atlassian.net/',
  projects: ['OPS', 'SEC'],
  initialLookbackHours: 48,
};

// Prepare (shared): Slack and Jira; Jira alone with a JQL query.
const both = synth({ slack: SLACK, jira: JIRA });
const jiraOnly = synth({ jira: { ...JIRA, projects: [], jql: 'labels = public' } });

function idIn(t: Template, type: string, prefix: string): string {
  const ids = Object.keys(resourcesOf(t, type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} under ${prefix}, found ${ids.join(', ')}`);
  return ids[0] as string;
}

function granted(t: Template): Array<{ actions: string[]; resource: unknown }> {
  const role = idIn(t, 'AWS::IAM::Role', 'CollaborationScanHandlerRole');
  return Object.values(resourcesOf(t, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${role}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
    .map((s) => ({ actions: actionsOf(s).sort(), resource: s.Resource }));
}

function envOf(t: Template): Record<string, unknown> {
  const fn = resourcesOf(t, 'AWS::Lambda::Function')[
    idIn(t, 'AWS::Lambda::Function', 'CollaborationScanHandler')
  ];
  return (fn?.Properties.Environment as { Variables: Record<string, unknown> } | undefined)?.Variables ?? {};
}

describe('CollaborationScan with jira', () => {
  test('creates the Jira secret empty, beside the Slack one', () => {
    // Act
    const secret = resourcesOf(both.template, 'AWS::SecretsManager::Secret')[
      idIn(both.template, 'AWS::SecretsManager::Secret', 'CollaborationScanJiraSecret')
    ];
    // Assess
    expect(secret?.Properties.SecretString).toBeUndefined();
    expect(secret?.Properties.GenerateSecretString).toBeUndefined();
    expect(secret?.DeletionPolicy).toBe('Delete');
    both.template.resourceCountIs('AWS::SecretsManager::Secret', 2);
  });

  test('the role may read both secrets (each by its ARN) and nothing more than with Slack alone', () => {
    // Act
    const statements = granted(both.template);
    const secretReads = statements.filter((s) => s.actions.includes('secretsmanager:GetSecretValue'));
    // Assess
    expect(secretReads).toEqual([
      {
        actions: ['secretsmanager:GetSecretValue'],
        resource: {
          Ref: idIn(both.template, 'AWS::SecretsManager::Secret', 'CollaborationScanSlackTokenSecret'),
        },
      },
      {
        actions: ['secretsmanager:GetSecretValue'],
        resource: { Ref: idIn(both.template, 'AWS::SecretsManager::Secret', 'CollaborationScanJiraSecret') },
      },
    ]);
    expect(statements).toHaveLength(7);
    expect(JSON.stringify(statements)).not.toContain('"*"');
  });

  test('Jira alone: only its secret is read, no Slack setting is in the environment', () => {
    // Act
    const statements = granted(jiraOnly.template);
    const env = envOf(jiraOnly.template);
    // Assess
    expect(statements.filter((s) => s.actions.includes('secretsmanager:GetSecretValue'))).toEqual([
      {
        actions: ['secretsmanager:GetSecretValue'],
        resource: {
          Ref: idIn(jiraOnly.template, 'AWS::SecretsManager::Secret', 'CollaborationScanJiraSecret'),
        },
      },
    ]);
    expect(statements).toHaveLength(6);
    jiraOnly.template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    expect(Object.keys(env).filter((k) => k.startsWith('SLACK_'))).toEqual([]);
    expect(env).toMatchObject({ JIRA_JQL: 'labels = public' });
    expect(env.JIRA_PROJECTS).toBeUndefined();
    expect(jiraOnly.scan.slackTokenSecretArn).toBeUndefined();
  });

  test("the function's environment names the secret, the site, the projects and the lookback, never a token", () => {
    // Act
    const env = envOf(both.template);
    // Assess
    expect(env).toMatchObject({
      JIRA_SECRET_ARN: {
        Ref: idIn(both.template, 'AWS::SecretsManager::Secret', 'CollaborationScanJiraSecret'),
      },
      JIRA_SITE_URL: 'https://acme.atlassian.net',
      JIRA_PROJECTS: 'OPS,SEC',
      JIRA_INITIAL_LOOKBACK_HOURS: '48',
      SLACK_INITIAL_LOOKBACK_HOURS: '24',
    });
    expect(env.JIRA_JQL).toBeUndefined();
    expect(Object.keys(env).filter((k) => /TOKEN(?!_SECRET_ARN)|EMAIL/.test(k))).toEqual([]);
  });

  test('each source has its schedule: Slack with input {}, Jira with {"source":"jira"}, both to the failure queue', () => {
    // Act
    const schedules = Object.values(resourcesOf(both.template, 'AWS::Scheduler::Schedule')).map((s) => ({
      expression: s.Properties.ScheduleExpression,
      input: (s.Properties.Target as { Input: string }).Input,
      deadLetter: (s.Properties.Target as { DeadLetterConfig: unknown }).DeadLetterConfig,
    }));
    const queue = {
      Arn: { 'Fn::GetAtt': [idIn(both.template, 'AWS::SQS::Queue', 'CollaborationScanFailureQueue'), 'Arn'] },
    };
    // Assess
    expect(schedules).toEqual([
      { expression: 'rate(15 minutes)', input: '{}', deadLetter: queue },
      { expression: 'rate(30 minutes)', input: '{"source":"jira"}', deadLetter: queue },
    ]);
  });

  test('passes cdk-nag AwsSolutions (the runtime is acknowledged by the stack, as for every function)', () => {
    // Act / Assess
    for (const { scan } of [both, jiraOnly]) {
      const report = new AwsSolutionsChecks().validateScope(scan);
      expect([...new Set(report.violations.map((v) => v.ruleName))]).toEqual(['AwsSolutions-L1']);
    }
  });

  test('refuses to be created with neither slack nor jira', () => {
    // Act / Assess
    expect(() => synth({})).toThrow('CollaborationScan needs slack, jira or confluence');
  });
});

describe('the stack with leakDetection.jira', () => {
  // Prepare (shared): the real composition.
  const withJira = build({
    context: {
      config: writeConfig({
        leakDetection: { jira: { siteUrl: 'https://acme.atlassian.net', projects: ['OPS'] } },
      }),
    },
  });

  test('deploys the scan with the Jira settings, outputs its secret and no Slack secret, cdk-nag clean', () => {
    // Assess
    const outputs = withJira.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.JiraSecretArn?.Value).toEqual({
      Ref: idIn(withJira.template, 'AWS::SecretsManager::Secret', 'CollaborationScanJiraSecret'),
    });
    expect(outputs.SlackTokenSecretArn).toBeUndefined();
    expect(outputs.CollaborationScanFailureQueueUrl).toBeDefined();
    withJira.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { JIRA_PROJECTS: 'OPS', JIRA_SITE_URL: 'https://acme.atlassian.net' } },
    });
    const report = new AwsSolutionsChecks().validateScope(
      withJira.stack.collaborationScan as CollaborationScan,
    );
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
  });
});
