import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfluenceScheduleInputSchema } from '../../lambda/shared/config';
import { CollaborationScan, type CollaborationScanProps } from '../../lib/constructs/collaboration-scan';
import { actionsOf, build, NO_BUNDLING, resourcesOf, type Statement, writeConfig } from './helpers';

/**
 * `leakDetection.confluence` in the scheduled collaboration scan (issue 15 §3): its own empty secret (the Atlassian
 * e-mail and API token as JSON), a third schedule whose input carries the settings (not the function's environment),
 * and the same role reading only its secrets.
 */

function synth(props: Omit<CollaborationScanProps, 'bus'>) {
  const app = new App({ context: NO_BUNDLING });
  const stack = new Stack(app, 'Test', { env: { account: '111122223333', region: 'us-east-1' } });
  const bus = new events.EventBus(stack, 'Bus', { eventBusName: 'bedrock-key-guard-governance' });
  const scan = new CollaborationScan(stack, 'CollaborationScan', { bus, ...props });
  return { stack, scan, template: Template.fromStack(stack) };
}

const JIRA = {
  schedule: 'rate(30 minutes)',
  siteUrl: 'https://acme.atlassian.net',
  projects: ['OPS'],
  initialLookbackHours: 24,
};
const CONFLUENCE = {
  schedule: 'rate(20 minutes)',
  siteUrl: 'https://acme.atlassian.net/',
  spaces: ['ENG', 'SEC'],
  initialLookbackHours: 48,
};

// Prepare (shared): Jira and Confluence; Confluence alone.
const both = synth({ jira: JIRA, confluence: CONFLUENCE });
const alone = synth({ confluence: CONFLUENCE });

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

/** The Confluence schedule's input, with the secret's Ref resolved to an ARN as CloudFormation would. */
function confluenceInput(t: Template): unknown {
  const schedule = Object.values(resourcesOf(t, 'AWS::Scheduler::Schedule')).find((s) =>
    JSON.stringify(s.Properties.Target).includes('confluence'),
  );
  if (!schedule) throw new Error('no Confluence schedule');
  const input = (schedule.Properties.Target as { Input: unknown }).Input;
  const secret = idIn(t, 'AWS::SecretsManager::Secret', 'CollaborationScanConfluenceSecret');
  const arn = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:ConfluenceSecret-AbCdEf';
  const text =
    typeof input === 'string'
      ? input
      : (input as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1]
          .map((part) =>
            typeof part === 'string'
              ? part
              : JSON.stringify(part) === JSON.stringify({ Ref: secret })
                ? arn
                : '?',
          )
          .join('');
  return JSON.parse(text);
}

describe('CollaborationScan with confluence', () => {
  test('creates the Confluence secret empty, its own beside the Jira one', () => {
    // Act
    const secret = resourcesOf(both.template, 'AWS::SecretsManager::Secret')[
      idIn(both.template, 'AWS::SecretsManager::Secret', 'CollaborationScanConfluenceSecret')
    ];
    // Assess
    expect(secret?.Properties.SecretString).toBeUndefined();
    expect(secret?.Properties.GenerateSecretString).toBeUndefined();
    expect(secret?.DeletionPolicy).toBe('Delete');
    both.template.resourceCountIs('AWS::SecretsManager::Secret', 2);
  });

  test('Confluence alone: the role reads only its secret, and nothing more than Jira alone would', () => {
    // Act
    const statements = granted(alone.template);
    // Assess
    expect(statements.filter((s) => s.actions.includes('secretsmanager:GetSecretValue'))).toEqual([
      {
        actions: ['secretsmanager:GetSecretValue'],
        resource: {
          Ref: idIn(alone.template, 'AWS::SecretsManager::Secret', 'CollaborationScanConfluenceSecret'),
        },
      },
    ]);
    expect(statements).toHaveLength(6);
    expect(JSON.stringify(statements)).not.toContain('"*"');
    expect(granted(both.template)).toHaveLength(7);
  });

  test('no Confluence setting is in the environment: the environment is what Jira alone puts there', () => {
    // Act
    const env = envOf(both.template);
    // Assess
    expect(Object.keys(env).filter((k) => /CONFLUENCE/.test(k))).toEqual([]);
    expect(JSON.stringify(env)).not.toContain('ENG');
    expect(JSON.stringify(envOf(alone.template))).not.toContain('ConfluenceSecret');
  });

  test('its schedule carries the settings and the secret ARN, which the function accepts, and no token', () => {
    // Act
    const input = confluenceInput(both.template);
    // Assess
    expect(input).toEqual({
      source: 'confluence',
      siteUrl: 'https://acme.atlassian.net',
      spaces: ['ENG', 'SEC'],
      initialLookbackHours: 48,
      secretArn: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:ConfluenceSecret-AbCdEf',
    });
    expect(ConfluenceScheduleInputSchema.safeParse(input).success).toBe(true);
    const expressions = Object.values(resourcesOf(both.template, 'AWS::Scheduler::Schedule')).map(
      (s) => s.Properties.ScheduleExpression,
    );
    expect(expressions).toEqual(['rate(30 minutes)', 'rate(20 minutes)']);
  });

  test('passes cdk-nag AwsSolutions (the runtime is acknowledged by the stack, as for every function)', () => {
    // Act / Assess
    for (const { scan } of [both, alone]) {
      const report = new AwsSolutionsChecks().validateScope(scan);
      expect([...new Set(report.violations.map((v) => v.ruleName))]).toEqual(['AwsSolutions-L1']);
    }
  });
});

describe('the stack with leakDetection.confluence', () => {
  // Prepare (shared): the real composition.
  const withConfluence = build({
    context: {
      config: writeConfig({
        leakDetection: { confluence: { siteUrl: 'https://acme.atlassian.net', spaces: ['ENG'] } },
      }),
    },
  });

  test('deploys the scan, outputs its secret and no other, cdk-nag clean', () => {
    // Assess
    const outputs = withConfluence.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.ConfluenceSecretArn?.Value).toEqual({
      Ref: idIn(withConfluence.template, 'AWS::SecretsManager::Secret', 'CollaborationScanConfluenceSecret'),
    });
    expect(outputs.JiraSecretArn).toBeUndefined();
    expect(outputs.SlackTokenSecretArn).toBeUndefined();
    expect(confluenceInput(withConfluence.template)).toMatchObject({
      spaces: ['ENG'],
      initialLookbackHours: 24,
    });
    const report = new AwsSolutionsChecks().validateScope(
      withConfluence.stack.collaborationScan as CollaborationScan,
    );
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
  });
});
