import { Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import type { Config, OrganizationConfig } from '../lambda/shared/config';
import { ORG_READER_ROLE_NAME, readerTrustedRoleArns } from './constructs/org-roles';
import { trustOnly } from './constructs/org-spoke-parts';
import { OrgSpokeStackSet } from './constructs/org-spoke-stack-set';

/** The management account's stack (the Organizations reader role). */
export const MANAGEMENT_STACK_NAME = 'BedrockKeyGuardManagement';
/** The stack that holds the spokes' StackSet (management account, or a StackSets delegated administrator). */
export const SPOKE_STACK_SET_STACK_NAME = 'BedrockKeyGuardSpokeStackSet';

/** The read-only Organizations actions the hub uses to list governed accounts and their OU paths. */
export const ORG_READER_ACTIONS = [
  'organizations:ListAccounts',
  'organizations:ListAccountsForParent',
  'organizations:ListChildren',
  'organizations:ListParents',
  'organizations:DescribeAccount',
  'organizations:DescribeOrganization',
  'organizations:ListRoots',
] as const;

export interface OrgStackProps extends StackProps {
  readonly config: Config;
  readonly organization: OrganizationConfig;
  /** The hub's account id (its deciding roles have fixed names there: org-roles.ts). */
  readonly hubAccountId: string;
}

/**
 * Organization mode, management account: `BedrockKeyGuardOrgReader`, a read-only Organizations role (Organizations
 * answers only the management account and delegated administrators) trusted by the exact ARNs of the hub's deciding
 * roles and of the organization sweep's scheduler role, while they are principals of the organization. Deploy after the hub: IAM refuses a trust policy naming a
 * role that does not exist yet.
 */
export class ManagementStack extends Stack {
  public readonly readerRole: iam.Role;

  constructor(scope: Construct, id: string, props: OrgStackProps) {
    super(scope, id, {
      description: 'Bedrock Key Guard, management account: read-only Organizations role for the hub',
      ...props,
    });
    this.readerRole = new iam.Role(this, 'OrgReader', {
      roleName: ORG_READER_ROLE_NAME,
      description: 'Bedrock Key Guard hub: list the governed accounts and their OU paths (read-only)',
      // Replaced by trustOnly below (Role requires an assumedBy).
      assumedBy: new iam.AccountRootPrincipal(),
      inlinePolicies: {
        OrganizationsRead: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'ReadOrganization',
              actions: [...ORG_READER_ACTIONS],
              resources: ['*'],
            }),
          ],
        }),
      },
    });
    trustOnly(
      this.readerRole,
      readerTrustedRoleArns(this, props.config, props.hubAccountId),
      props.organization.id,
    );
    Validations.of(this.readerRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Read-only Organizations listing (ListAccounts, ListAccountsForParent, ListChildren, ListParents, ' +
        'DescribeAccount, DescribeOrganization, ListRoots) over the whole organization: the governed accounts and ' +
        'OUs change without a redeploy, ListAccounts and ListRoots have no resource type, and OUs/accounts join ' +
        'the targets at any time. No write, no policy or tag action.',
    });
  }
}

/** The spokes' StackSet, in a stack of its own so the management account or a delegated administrator can own it. */
export class SpokeStackSetStack extends Stack {
  public readonly spokes: OrgSpokeStackSet;

  constructor(scope: Construct, id: string, props: OrgStackProps) {
    super(scope, id, {
      description: 'Bedrock Key Guard: the spokes StackSet (every governed member account)',
      ...props,
    });
    this.spokes = new OrgSpokeStackSet(this, 'Spokes', props);
  }
}
