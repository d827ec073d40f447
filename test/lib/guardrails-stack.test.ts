import { App, CfnElement, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { guardrailPolicy } from '../../lambda/domain/guardrails';
import { type ConfigInput, parseConfig } from '../../lambda/shared/config';
import { GUARDRAIL_POLICY_NAME } from '../../lib/constructs/guardrail-policies';
import { GUARDRAILS_STACK_NAME, GuardrailsStack } from '../../lib/guardrails-stack';
import { resourcesOf } from './helpers';

const ENV = { account: '111122223333', region: 'us-east-1' };
const TARGETS = ['ou-ab12-cd34ef56', '444455556666'];

/** The stack as the app composes it (id and stack name BedrockKeyGuardGuardrails), from a raw config. */
function synth(raw: ConfigInput) {
  const config = parseConfig(raw);
  const app = new App();
  const stack = new GuardrailsStack(app, GUARDRAILS_STACK_NAME, {
    stackName: GUARDRAILS_STACK_NAME,
    env: ENV,
    config,
  });
  return { config, stack, template: Template.fromStack(stack) };
}

function nagFindings(stack: GuardrailsStack): string[] {
  const report = new AwsSolutionsChecks().validateScope(stack);
  return report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`);
}

const scp = synth({ maxAgeDays: 30, guardrails: { deploy: 'scp', scpTargetIds: TARGETS } });
const managed = synth({ allowLongTermKeys: false, guardrails: { deploy: 'managed-policy' } });

describe('GuardrailsStack, deploy = scp', () => {
  test('one Organizations SCP whose Content is exactly the scp document, attached to the configured targets', () => {
    // Assess
    scp.template.resourceCountIs('AWS::Organizations::Policy', 1);
    scp.template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    const [policy] = Object.values(resourcesOf(scp.template, 'AWS::Organizations::Policy'));
    expect(policy?.Properties).toEqual({
      Name: GUARDRAIL_POLICY_NAME,
      Description: expect.stringContaining('within 30 days'),
      Type: 'SERVICE_CONTROL_POLICY',
      Content: guardrailPolicy(scp.config, 'scp'),
      TargetIds: TARGETS,
    });
  });

  test('the whole template is the SCP and its outputs (nothing else to deploy in the management account)', () => {
    const resources = (scp.template.toJSON() as { Resources: Record<string, { Type: string }> }).Resources;
    expect(Object.values(resources).map((r) => r.Type)).toEqual(['AWS::Organizations::Policy']);
  });

  test('outputs the SCP id and ARN', () => {
    scp.template.hasOutput('GuardrailPolicyId', { Value: { 'Fn::GetAtt': [Match.anyValue(), 'Id'] } });
    scp.template.hasOutput('GuardrailPolicyArn', { Value: { 'Fn::GetAtt': [Match.anyValue(), 'Arn'] } });
  });

  test('stack name, account and region as given', () => {
    expect(scp.stack.stackName).toBe('BedrockKeyGuardGuardrails');
    expect(scp.stack.account).toBe(ENV.account);
    expect(scp.stack.region).toBe(ENV.region);
  });

  test('with no targets the SCP is created unattached, with a synth warning saying so', () => {
    // Act
    const { template, stack } = synth({ guardrails: { deploy: 'scp' } });
    // Assess
    const [policy] = Object.values(resourcesOf(template, 'AWS::Organizations::Policy'));
    expect(policy?.Properties.TargetIds).toBeUndefined();
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('scpTargetIds is empty'));
    expect(Annotations.fromStack(scp.stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  test('passes cdk-nag AwsSolutions with no finding', () => {
    expect(nagFindings(scp.stack)).toEqual([]);
  });
});

describe('GuardrailsStack, deploy = managed-policy', () => {
  test('one IAM managed policy whose document is exactly the identity document', () => {
    // Assess
    managed.template.resourceCountIs('AWS::IAM::ManagedPolicy', 1);
    managed.template.resourceCountIs('AWS::Organizations::Policy', 0);
    const [policy] = Object.values(resourcesOf(managed.template, 'AWS::IAM::ManagedPolicy'));
    expect(policy?.Properties).toEqual({
      ManagedPolicyName: GUARDRAIL_POLICY_NAME,
      Description: expect.stringContaining('no long-term keys'),
      Path: '/',
      PolicyDocument: guardrailPolicy(managed.config, 'identity'),
    });
  });

  test('is attached to nobody: attaching is the account administrators’ choice', () => {
    const [policy] = Object.values(resourcesOf(managed.template, 'AWS::IAM::ManagedPolicy'));
    for (const key of ['Users', 'Groups', 'Roles']) expect(policy?.Properties[key]).toBeUndefined();
  });

  test('outputs the policy ARN', () => {
    managed.template.hasOutput('GuardrailPolicyArn', { Value: { Ref: Match.anyValue() } });
    expect(Object.keys(managed.template.findOutputs('*'))).toEqual(['GuardrailPolicyArn']);
  });

  test('passes cdk-nag AwsSolutions with no unacknowledged finding', () => {
    expect(nagFindings(managed.stack)).toEqual([]);
  });

  test('needs no acknowledgement: nothing is suppressed (cdk-nag IAM5 looks at Allow statements, these are Deny)', () => {
    // Prepare: count acknowledgements made while the stack is built
    const acknowledge = jest.spyOn(Validations.prototype, 'acknowledge');
    try {
      // Act
      const { stack } = synth({ allowLongTermKeys: false, guardrails: { deploy: 'managed-policy' } });
      // Assess
      expect(acknowledge).not.toHaveBeenCalled();
      expect(nagFindings(stack)).toEqual([]);
    } finally {
      acknowledge.mockRestore();
    }
  });
});

describe('GuardrailsStack, deploy = none', () => {
  test('creates nothing: no resource, no output', () => {
    // Prepare
    const app = new App();
    // Act (not synthesized: an empty template is not deployable, and the app builds this stack only for scp or
    // managed-policy)
    const stack = new GuardrailsStack(app, GUARDRAILS_STACK_NAME, { env: ENV, config: parseConfig({}) });
    // Assess
    expect(stack.node.findAll().filter((c) => c instanceof CfnElement)).toEqual([]);
    expect(stack.guardrails.serviceControlPolicy).toBeUndefined();
    expect(stack.guardrails.managedPolicy).toBeUndefined();
  });
});
