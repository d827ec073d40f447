import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, CfnResource, Stack } from 'aws-cdk-lib';
import { buildApp } from '../../lib/app';
import { emptyDir, NO_BUNDLING, writeConfig } from './helpers';
import { HUB, largestOrgConfig } from './org-support';

/**
 * CDK's built-in CloudFormation validation (a WASM rules engine aws-cdk-lib runs at every `cdk synth`, unless
 * CDK_VALIDATION=false) reports nothing for the apps we deploy: the default config, and the largest organization
 * config with the management account's stacks, every usage region and the guardrails. `cdk synth` only warns about
 * what it finds (errors are downgraded to warnings), so this file is what turns a finding into a failure.
 *
 * Every other test file synthesizes with the validation off (test/support/setup-env.ts): it never changes a
 * template, and starting its engine costs seconds of CPU in each test file that synthesizes.
 */

// Synthesizing the largest config with the validation on takes tens of seconds on a loaded machine: a generous limit
// against a hang, not a performance assertion.
jest.setTimeout(300_000);

const saved = process.env.CDK_VALIDATION;
beforeAll(() => {
  delete process.env.CDK_VALIDATION;
});
afterAll(() => {
  if (saved === undefined) delete process.env.CDK_VALIDATION;
  else process.env.CDK_VALIDATION = saved;
});

interface ValidationReport {
  title: string;
  pluginReports: Array<{ pluginName: string; violations: Array<{ ruleName: string }> }>;
}

/** Synthesizes an app and returns the validation report CDK wrote into the cloud assembly. */
function reportOf(app: App): ValidationReport {
  const assembly = app.synth();
  return JSON.parse(readFileSync(join(assembly.directory, 'validation-report.json'), 'utf8'));
}

describe("CDK's built-in CloudFormation validation", () => {
  test('finds a property CloudFormation does not have (the check is live)', () => {
    // Prepare: a queue with a misspelt property
    const app = new App({ outdir: emptyDir() });
    const stack = new Stack(app, 'Broken', { env: { account: '123456789012', region: 'us-east-1' } });
    new CfnResource(stack, 'Queue', { type: 'AWS::SQS::Queue', properties: { VisibilityTimout: 30 } });
    const printed = jest.spyOn(console, 'error').mockImplementation(() => undefined);

    // Act
    let report: ValidationReport;
    let output: string;
    try {
      report = reportOf(app);
    } finally {
      output = printed.mock.calls.flat().join('\n');
      printed.mockRestore();
    }

    // Assess: found and reported, but synth only warned
    expect(report.pluginReports.flatMap((r) => r.violations).length).toBeGreaterThan(0);
    expect(output).toContain('VisibilityTimout');
  });

  test('reports nothing for the default app', () => {
    // Act
    const { app } = buildApp({ cwd: emptyDir(), outdir: emptyDir(), context: NO_BUNDLING });

    // Assess
    expect(reportOf(app)).toEqual({
      version: expect.any(String),
      title: 'Validation Report',
      pluginReports: [],
    });
  });

  test('reports nothing for the largest organization config with the management stacks and the guardrails', () => {
    // Prepare
    const config = writeConfig(largestOrgConfig());

    // Act
    const { app, organization, guardrails, usageStacks } = buildApp({
      cwd: emptyDir(),
      outdir: emptyDir(),
      context: { ...NO_BUNDLING, config, management: 'true', hubAccount: HUB, guardrails: 'true' },
    });

    // Assess: every kind of stack is there, and none has a finding
    expect(organization).toBeDefined();
    expect(guardrails).toBeDefined();
    expect(usageStacks.length).toBeGreaterThan(0);
    expect(reportOf(app)).toEqual({
      version: expect.any(String),
      title: 'Validation Report',
      pluginReports: [],
    });
  });
});
