import { Stack } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import type { Config } from '../../lambda/shared/config';
import { type PublishedPolicy, publishedPolicy } from '../../lambda/shared/effective-policy';

export interface EffectivePolicyProps {
  /** The validated config the stack's functions run with. */
  readonly config: Config;
  /**
   * Organization mode: the name (a literal, not a token: the value's size is measured at synth) of the hub's
   * organization settings parameter, which the published policy may name instead of repeating the organization and
   * its overrides when the whole does not fit.
   * @default - none (single-account mode)
   */
  readonly organizationSettingsParameterName?: string;
}

/**
 * The effective policy the stack runs with, published for the CLI (`keyguard inventory`, `preview`): one SSM String
 * parameter, `/<stack name>/effective-policy/<tier>`, holding lambda/shared/effective-policy.ts's document (the
 * validated config, its policyVersion and mode). Plain String, not SecureString: the config holds no secret, so
 * readers need ssm:GetParameter only (no kms:Decrypt). Nothing in the stack reads it: the functions keep their
 * policy in their environment.
 *
 * The tier is chosen at synth time by the value's size (Standard up to 4 KB, free; Advanced up to 8 KB, charged per
 * month). The tier is part of the parameter's name and construct id: AWS never turns an Advanced parameter back into
 * a Standard one, so a config that shrinks below 4 KB replaces the parameter (a new name, the old one deleted)
 * instead of failing the deployment. A config too large for any form fails synth (EffectivePolicyTooLargeError).
 */
export class EffectivePolicy extends Construct {
  public readonly parameter: ssm.StringParameter;
  /** What is published: the document, its value, size and tier. */
  public readonly published: PublishedPolicy;

  constructor(scope: Construct, id: string, props: EffectivePolicyProps) {
    super(scope, id);
    this.published = publishedPolicy(props.config, props.organizationSettingsParameterName);
    const tier = this.published.tier;
    this.parameter = new ssm.StringParameter(this, tier === 'Standard' ? 'Parameter' : 'AdvancedParameter', {
      parameterName: `/${Stack.of(this).stackName}/effective-policy/${tier.toLowerCase()}`,
      description: `Bedrock Key Guard effective policy ${this.published.document.policyVersion} (read by the keyguard CLI)`,
      stringValue: this.published.value,
      tier: tier === 'Standard' ? ssm.ParameterTier.STANDARD : ssm.ParameterTier.ADVANCED,
    });
  }
}
