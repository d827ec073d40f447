import { Annotations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as organizations from 'aws-cdk-lib/aws-organizations';
import { Construct } from 'constructs';
import { guardrailPolicy } from '../../lambda/domain/guardrails';
import type { Config } from '../../lambda/shared/config';

/** Name of the SCP and of the managed policy, so that people and attach commands can find them. */
export const GUARDRAIL_POLICY_NAME = 'BedrockKeyGuardrails';

export interface GuardrailPoliciesProps {
  /** The validated config: `guardrails.deploy` picks what is created, the rest shapes the document. */
  readonly config: Config;
}

/**
 * Deploys the preventive guardrails (`keyguard policy`) from the same domain function the CLI prints, so the
 * reviewed document is the deployed one:
 * - `guardrails.deploy = scp`: an Organizations service control policy attached to `guardrails.scpTargetIds`
 *   (the stack must be deployed with management-account, or delegated-administrator, credentials);
 * - `managed-policy`: an IAM customer managed policy (identity kind) in this account, for the account's
 *   administrators to attach to the users, groups and roles to restrain (attaching is left to them: which
 *   principals hold iam:CreateServiceSpecificCredential is theirs to know);
 * - `none`: nothing.
 */
export class GuardrailPolicies extends Construct {
  /** The SCP, when `guardrails.deploy` is `scp`. */
  public readonly serviceControlPolicy?: organizations.CfnPolicy;
  /** The managed policy, when `guardrails.deploy` is `managed-policy`. */
  public readonly managedPolicy?: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: GuardrailPoliciesProps) {
    super(scope, id);
    const { config } = props;
    const description =
      `Bedrock API key guardrails (bedrock-key-guard): keys must expire within ${config.maxAgeDays} days` +
      `${config.allowLongTermKeys ? '' : ', no long-term keys'}; no other credentials on BedrockAPIKey-* users. ` +
      `Exempt: principals tagged ${config.guardrails.exemptTag.key}.`;

    if (config.guardrails.deploy === 'scp') {
      const targets = config.guardrails.scpTargetIds;
      this.serviceControlPolicy = new organizations.CfnPolicy(this, 'ServiceControlPolicy', {
        name: GUARDRAIL_POLICY_NAME,
        description,
        type: 'SERVICE_CONTROL_POLICY',
        content: guardrailPolicy(config, 'scp'),
        targetIds: targets.length > 0 ? [...targets] : undefined,
      });
      if (targets.length === 0) {
        Annotations.of(this).addWarningV2(
          'keyguard:scp-unattached',
          'guardrails.deploy is scp but guardrails.scpTargetIds is empty: the SCP is created attached to nothing ' +
            'and denies nothing until it is attached.',
        );
      }
    } else if (config.guardrails.deploy === 'managed-policy') {
      this.managedPolicy = new iam.ManagedPolicy(this, 'ManagedPolicy', {
        managedPolicyName: GUARDRAIL_POLICY_NAME,
        description,
        document: iam.PolicyDocument.fromJson(guardrailPolicy(config, 'identity')),
      });
      // No cdk-nag acknowledgement is needed: AwsSolutions-IAM5 flags wildcards in Allow statements only, and
      // every statement here is a Deny (a wildcard resource in a Deny grants nothing).
    }
  }
}
