import {
  ChildNotFoundException,
  DescribeAccountCommand,
  ListParentsCommand,
  type OrganizationsClient,
} from '@aws-sdk/client-organizations';
import type { AwsClientStub } from 'aws-sdk-client-mock';

/** A child's parent in Organizations: an OU or the root. */
export interface OrgParent {
  Id: string;
  Type: 'ORGANIZATIONAL_UNIT' | 'ROOT';
}

/**
 * Organizations answering from a tree of parents (accounts and OUs to their parent): ListParents (ChildNotFound for
 * a child not in the tree) and DescribeAccount (every account ACTIVE and named `team-<first 3 digits>`, unless
 * `suspended` names it).
 */
export function answerOrganizationTree(
  orgs: AwsClientStub<OrganizationsClient>,
  parents: Record<string, OrgParent>,
  suspended: ReadonlySet<string> = new Set(),
): void {
  orgs.on(ListParentsCommand).callsFake((input: { ChildId: string }) => {
    const p = parents[input.ChildId];
    if (!p) throw new ChildNotFoundException({ message: 'child not found', $metadata: {} });
    return { Parents: [p] };
  });
  orgs.on(DescribeAccountCommand).callsFake((input: { AccountId: string }) => ({
    Account: {
      Id: input.AccountId,
      Name: `team-${input.AccountId.slice(0, 3)}`,
      State: suspended.has(input.AccountId) ? 'SUSPENDED' : 'ACTIVE',
    },
  }));
}
