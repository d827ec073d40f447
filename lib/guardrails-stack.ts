import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { Config } from '../lambda/shared/config';
import { GuardrailPolicies } from './constructs/guardrail-policies';

/** The guardrails stack's name (and id) in every environment. */
export const GUARDRAILS_STACK_NAME = 'BedrockKeyGuardGuardrails';

export interface GuardrailsStackProps extends StackProps {
  /** The validated config; `guardrails.deploy` must not be `none` for the stack to hold anything. */
  readonly config: Config;
}

/**
 * The preventive guardrails, in a stack of their own: an SCP must be deployed with management-account
 * credentials, which the governance stack never needs, and a managed policy may belong to another account
 * than the governance one. Built by the app only on request (`-c guardrails=true`, with `guardrails.deploy` not
 * `none`), so that `cdk deploy --all` never deploys it with the governed account's credentials: see lib/app.ts.
 */
export class GuardrailsStack extends Stack {
  public readonly guardrails: GuardrailPolicies;

  constructor(scope: Construct, id: string, props: GuardrailsStackProps) {
    super(scope, id, props);
    this.guardrails = new GuardrailPolicies(this, 'Guardrails', { config: props.config });

    const scp = this.guardrails.serviceControlPolicy;
    if (scp) {
      new CfnOutput(this, 'GuardrailPolicyId', {
        description: 'Id of the guardrail SCP (aws organizations attach-policy --policy-id)',
        value: scp.attrId,
      });
      new CfnOutput(this, 'GuardrailPolicyArn', {
        description: 'ARN of the guardrail SCP',
        value: scp.attrArn,
      });
    }
    const managed = this.guardrails.managedPolicy;
    if (managed) {
      new CfnOutput(this, 'GuardrailPolicyArn', {
        description:
          'ARN of the guardrail managed policy, to attach to the users, groups or roles to restrain',
        value: managed.managedPolicyArn,
      });
    }
  }
}
