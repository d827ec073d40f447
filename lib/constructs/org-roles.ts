import { Stack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { Config } from '../../lambda/shared/config';

/**
 * Names that tie the hub, the management account and the spokes together in organization mode. A spoke is an inline
 * StackSet template deployed in other accounts, and the management stack is deployed in another account too: neither
 * can resolve a reference to a hub resource, so what they must name (the hub's deciding roles, its bus) has a fixed
 * name, set by the hub in organization mode only (a single-account template keeps CloudFormation-generated names).
 */

/** The management account's read-only Organizations role (lib/management-stack.ts). */
export const ORG_READER_ROLE_NAME = 'BedrockKeyGuardOrgReader';

/** The hub function roles that act in member accounts, by the function they run. */
export const HUB_ROLE_NAMES = {
  credentialEvent: 'BedrockKeyGuard-CredentialEvent',
  sweep: 'BedrockKeyGuard-Sweep',
  leak: 'BedrockKeyGuard-Leak',
  keyUsage: 'BedrockKeyGuard-KeyUsage',
} as const;

export type HubDecider = keyof typeof HUB_ROLE_NAMES;

/**
 * The hub role that reads Organizations but never acts in a member account: the organization sweep's scheduler
 * function (lists the governed accounts, queues one message each). Trusted by the reader role, not the member role.
 */
export const HUB_SCHEDULER_ROLE_NAME = 'BedrockKeyGuard-SweepScheduler';

/**
 * The approval function's role in organization mode: it reads the organization (is a key's account governed?) but
 * never acts in a member account. Trusted by the reader role, not the member role.
 */
export const HUB_APPROVAL_ROLE_NAME = 'BedrockKeyGuard-Approval';

/**
 * The hub functions that call IAM in a governed account, hence assume the member role and read the organization:
 * credential-event and sweep always, the leak function when `leakDetection.logGroups` names log groups, key-usage
 * when `usage.regions` lists regions (it decides member accounts' forwarded usage in their account); the hub stack
 * creates those functions under the same conditions. The approval and audit functions never call IAM.
 */
export function hubDeciders(config: Config): HubDecider[] {
  const deciders: HubDecider[] = ['credentialEvent', 'sweep'];
  if (config.leakDetection.logGroups.length > 0) deciders.push('leak');
  if (config.usage.regions.length > 0) deciders.push('keyUsage');
  return deciders;
}

/** `arn:<partition>:iam::<account>:role/<name>` (IAM ARNs have no region). */
export function roleArn(scope: Construct, account: string, name: string): string {
  return Stack.of(scope).formatArn({
    service: 'iam',
    region: '',
    account,
    resource: 'role',
    resourceName: name,
  });
}

/** The exact ARNs of the hub's deciding roles, for the trust policies of the member and reader roles. */
export function hubRoleArns(scope: Construct, config: Config, hubAccountId: string): string[] {
  return hubDeciders(config).map((d) => roleArn(scope, hubAccountId, HUB_ROLE_NAMES[d]));
}

/**
 * The deciding functions that read the organization themselves (an account's OU path, for its overrides): all but
 * the sweep, whose queue message carries the account's OU path from the scheduler's listing.
 */
export function organizationReaders(config: Config): HubDecider[] {
  return hubDeciders(config).filter((d) => d !== 'sweep');
}

/**
 * The exact ARNs the management account's reader role trusts: the deciding roles that read the organization
 * (organizationReaders), the organization sweep's scheduler role (org-hub.ts OrgHub.addOrganizationsReader names
 * it) and the approval function's role (approvals.ts Approvals.governOrganization names it).
 */
export function readerTrustedRoleArns(scope: Construct, config: Config, hubAccountId: string): string[] {
  return [
    ...organizationReaders(config).map((d) => roleArn(scope, hubAccountId, HUB_ROLE_NAMES[d])),
    roleArn(scope, hubAccountId, HUB_SCHEDULER_ROLE_NAME),
    roleArn(scope, hubAccountId, HUB_APPROVAL_ROLE_NAME),
  ];
}
