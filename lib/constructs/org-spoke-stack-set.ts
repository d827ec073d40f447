import { App, BootstraplessSynthesizer, CfnCondition, CfnStackSet, Fn, Stack } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import type { Config, OrganizationConfig } from '../../lambda/shared/config';
import { SpokeStack, spokeRegions } from '../spoke-stack';

/** The StackSet's name. */
export const SPOKE_STACK_SET_NAME = 'BedrockKeyGuardSpokes';

/** CloudFormation's limit on an inline TemplateBody, in bytes (CreateStackSet API reference). */
export const TEMPLATE_BODY_MAX_BYTES = 51_200;

/**
 * The spoke template as a StackSet's inline TemplateBody: a SpokeStack synthesized in an app of its own (so it is not
 * a stack of this app), with the BootstraplessSynthesizer (no bootstrap version rule and parameter, which member
 * accounts would not have; and it refuses assets) and without the CDK metadata resource. Minified JSON.
 */
export function spokeTemplateBody(
  config: Config,
  organization: OrganizationConfig,
  hubAccountId: string,
): string {
  const app = new App({ analyticsReporting: false });
  const spoke = new SpokeStack(app, 'Spoke', {
    config,
    organization,
    hubAccountId,
    synthesizer: new BootstraplessSynthesizer(),
  });
  const template: unknown = app.synth().getStackArtifact(spoke.artifactId).template;
  return JSON.stringify(template);
}

export interface OrgSpokeStackSetProps {
  readonly config: Config;
  readonly organization: OrganizationConfig;
  readonly hubAccountId: string;
  /**
   * Operation preferences of every create/update. @default 25% of accounts at a time, 10% may fail, regions in
   * parallel
   */
  readonly operationPreferences?: CfnStackSet.OperationPreferencesProperty;
}

/**
 * The spokes, as one service-managed StackSet (aws-cdk-lib CfnStackSet; see docs/deployment.md, "Organization mode"): automatic
 * deployment to `organization.targets` (an account that joins a target OU gets its spoke, one that leaves loses it),
 * minus `excludeAccounts` and the hub's own account (governed directly), in us-east-1 and every usage region.
 *
 * CallAs follows the account the stack is deployed in: SELF in the management account, DELEGATED_ADMIN anywhere else
 * (a registered StackSets delegated administrator, such as the hub account), so the same template serves both.
 */
export class OrgSpokeStackSet extends Construct {
  public readonly stackSet: CfnStackSet;
  /** The TemplateBody, kept for tests and the size check. */
  public readonly templateBody: string;

  constructor(scope: Construct, id: string, props: OrgSpokeStackSetProps) {
    super(scope, id);
    this.templateBody = spokeTemplateBody(props.config, props.organization, props.hubAccountId);
    const bytes = Buffer.byteLength(this.templateBody, 'utf8');
    if (bytes > TEMPLATE_BODY_MAX_BYTES) {
      throw new Error(
        `the spoke template is ${bytes} bytes; a StackSet's inline TemplateBody holds ${TEMPLATE_BODY_MAX_BYTES}`,
      );
    }
    const inManagementAccount = new CfnCondition(this, 'InManagementAccount', {
      expression: Fn.conditionEquals(Stack.of(this).account, props.organization.managementAccountId),
    });
    const excluded = [...new Set([...props.organization.excludeAccounts, props.hubAccountId])];

    this.stackSet = new CfnStackSet(this, 'StackSet', {
      stackSetName: SPOKE_STACK_SET_NAME,
      description: 'Bedrock Key Guard spokes: forward Bedrock API key events to the hub; the hub member role',
      permissionModel: 'SERVICE_MANAGED',
      autoDeployment: { enabled: true, retainStacksOnAccountRemoval: false },
      callAs: Fn.conditionIf(inManagementAccount.logicalId, 'SELF', 'DELEGATED_ADMIN').toString(),
      // The member role has a fixed name (organization.memberRoleName).
      capabilities: ['CAPABILITY_NAMED_IAM'],
      // StackSets queues operations instead of refusing one while another runs (automatic deployments included).
      managedExecution: { Active: true },
      operationPreferences: props.operationPreferences ?? {
        maxConcurrentPercentage: 25,
        failureTolerancePercentage: 10,
        regionConcurrencyType: 'PARALLEL',
      },
      stackInstancesGroup: [
        {
          deploymentTargets: {
            organizationalUnitIds: props.organization.targets,
            accountFilterType: 'DIFFERENCE',
            accounts: excluded,
          },
          regions: spokeRegions(props.config),
        },
      ],
      templateBody: this.templateBody,
    });
  }
}
