import type { ICfnConditionExpression } from 'aws-cdk-lib';
import { Aws, CfnCondition, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import type { Construct } from 'constructs';
import { type Config, ORG_INVENTORY_ROLE_NAME, type OrganizationConfig } from '../lambda/shared/config';
import { GOVERNANCE_BUS_NAME, GOVERNANCE_BUS_REGION } from './constructs/governance-bus';
import { hubDeciders, hubRoleArns } from './constructs/org-roles';
import {
  OrgCredentialForwarding,
  OrgInventoryRole,
  OrgMemberRole,
  onlyWhen,
  spokeDeadLetterQueue,
} from './constructs/org-spoke-parts';
import { UsageForwarding } from './constructs/usage-forwarding';

/** The plain spoke stack's name (the management account's spoke, which StackSets never deploy): see lib/app.ts. */
export const SPOKE_STACK_NAME = 'BedrockKeyGuardSpoke';

/** The plain spoke stack of a usage region other than us-east-1. */
export function spokeStackName(region: string): string {
  return region === GOVERNANCE_BUS_REGION ? SPOKE_STACK_NAME : `${SPOKE_STACK_NAME}-${region}`;
}

/** The regions a spoke is deployed to: us-east-1 (IAM) first, then every usage region, once each. */
export function spokeRegions(config: Config): string[] {
  return [...new Set([GOVERNANCE_BUS_REGION, ...config.usage.regions])];
}

export interface SpokeStackProps extends StackProps {
  readonly config: Config;
  /** The organization settings (`config.organization`, required in organization mode). */
  readonly organization: OrganizationConfig;
  /** The hub's account id: its governance bus and deciding roles are addressed by fixed names in it. */
  readonly hubAccountId: string;
}

/** `Fn::Or` takes 2 to 10 conditions: larger lists nest. */
function anyOf(conditions: ICfnConditionExpression[]): ICfnConditionExpression {
  if (conditions.length === 1) return conditions[0] as ICfnConditionExpression;
  if (conditions.length <= 10) return Fn.conditionOr(...conditions);
  const groups: ICfnConditionExpression[] = [];
  for (let i = 0; i < conditions.length; i += 10) groups.push(anyOf(conditions.slice(i, i + 10)));
  return anyOf(groups);
}

/**
 * A governed member account's part of organization mode: NO code and NO assets, so the synthesized template is a
 * StackSet's inline TemplateBody (lib/spoke-stack-set.ts) and also deployable as a plain stack (the management
 * account's, which StackSets never reach).
 *
 * One template serves every region of the StackSet (us-east-1 plus `usage.regions`), with CloudFormation Conditions on
 * AWS::Region rather than two StackSets (one StackSet: one set of targets, one automatic deployment, one operation
 * queue):
 * - `GovernanceRegion` (us-east-1): the IAM credential-event rule forwarding to the hub bus (IAM's CloudTrail events
 *   reach only the us-east-1 default bus), the member role and the read-only inventory role (IAM is global: created
 *   once per account);
 * - `UsageRegion` (one of `usage.regions`): the usage forwarding rules (usage-forwarding.ts), to the hub bus.
 * The hub's bus and deciding roles are named literally (fixed names in the hub account, org-roles.ts): the template
 * has no Parameters, so a StackSet instance needs nothing but the template.
 */
export class SpokeStack extends Stack {
  public readonly credentialForwarding: OrgCredentialForwarding;
  public readonly memberRole: OrgMemberRole;
  /** The read-only role of `keyguard inventory --org` (ORG_INVENTORY_ROLE_NAME). */
  public readonly inventoryRole: OrgInventoryRole;
  /** Present when `usage.regions` lists regions. */
  public readonly usageForwarding?: UsageForwarding;
  public readonly governanceRegion: CfnCondition;
  public readonly usageRegion?: CfnCondition;

  constructor(scope: Construct, id: string, props: SpokeStackProps) {
    super(scope, id, {
      description: 'Bedrock Key Guard spoke: forwards Bedrock API key events to the hub; the hub member role',
      ...props,
    });
    const hubBusArn = `arn:${Aws.PARTITION}:events:${GOVERNANCE_BUS_REGION}:${props.hubAccountId}:event-bus/${GOVERNANCE_BUS_NAME}`;
    const hubBus = events.EventBus.fromEventBusArn(this, 'HubBus', hubBusArn);

    this.governanceRegion = new CfnCondition(this, 'GovernanceRegion', {
      expression: Fn.conditionEquals(Aws.REGION, GOVERNANCE_BUS_REGION),
    });
    this.credentialForwarding = new OrgCredentialForwarding(this, 'CredentialForwarding', { hubBus });
    onlyWhen(this.credentialForwarding, this.governanceRegion);
    this.memberRole = new OrgMemberRole(this, 'MemberRole', {
      roleName: props.organization.memberRoleName,
      trustedRoleArns: hubRoleArns(this, props.config, props.hubAccountId),
      organizationId: props.organization.id,
      lookUpShortTermSigners: hubDeciders(props.config).includes('leak'),
    });
    onlyWhen(this.memberRole, this.governanceRegion);
    this.inventoryRole = new OrgInventoryRole(this, 'InventoryRole', {
      roleName: ORG_INVENTORY_ROLE_NAME,
      trustedAccountIds: [props.organization.managementAccountId, props.hubAccountId],
      organizationId: props.organization.id,
    });
    onlyWhen(this.inventoryRole, this.governanceRegion);

    const usageRegions = [...new Set(props.config.usage.regions)];
    if (usageRegions.length > 0) {
      this.usageRegion = new CfnCondition(this, 'UsageRegion', {
        expression: anyOf(usageRegions.map((r) => Fn.conditionEquals(Aws.REGION, r))),
      });
      const usage = new UsageForwarding(this, 'UsageForwarding', {
        governanceBus: hubBus,
        deadLetterQueue: spokeDeadLetterQueue(this, 'UsageDeadLetterQueue'),
      });
      this.usageForwarding = usage;
      onlyWhen(usage, this.usageRegion);
      onlyWhen(usage.deadLetterQueue, this.usageRegion);
    }
  }
}
