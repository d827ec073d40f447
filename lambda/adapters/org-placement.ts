import { DescribeAccountCommand, type OrganizationsClient } from '@aws-sdk/client-organizations';
import type { AccountPlacement } from '../domain/org-policy';
import type { OrganizationConfig } from '../shared/config';
import { sessionNameFor } from './member-access';
import { isActive, ORG_READER_ROLE_ENV, organizationsClient, ouPathOf } from './organizations';

/**
 * Where an account sits in the organization (issue 12): its OUs from the root down (Organizations ListParents,
 * repeated up to the root), its name and its lifecycle state (DescribeAccount). Organizations answers only the
 * management account or a delegated administrator: the hub reads it through the management stack's read-only role
 * (ORG_READER_ROLE_ARN, assumed with STS), or with its own credentials when it is the delegated administrator (the
 * variable absent). Answers are cached per account for the container's life, an hour at most, so a busy account
 * costs a few calls an hour; an account that is not a member is asked again after five minutes (it may be joining).
 */

export const ORG_READER_ENV = ORG_READER_ROLE_ENV;

/** How long an account's place is trusted; an account moved to another OU is decided by its new OU after that. */
export const PLACEMENT_TTL_MS = 3_600_000;
/** How long "not in the organization" is trusted. */
export const NOT_MEMBER_TTL_MS = 5 * 60_000;

/** Organizations' answer for one account. */
export interface AccountInOrganization extends AccountPlacement {
  /** The account's name; null when Organizations gives none. */
  name: string | null;
  /** Whether Organizations reports the account ACTIVE (organizations.ts isActive). */
  active: boolean;
}

export interface AccountLocator {
  /** The account's place in the organization, or null when it is not a member of it. */
  locate(accountId: string): Promise<AccountInOrganization | null>;
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'ChildNotFoundException' || name === 'AccountNotFoundException';
}

export interface OrgPlacementOptions {
  organizations: OrganizationsClient;
  /** @default PLACEMENT_TTL_MS */
  ttlMs?: number;
  now?: () => Date;
}

export class OrgPlacement implements AccountLocator {
  private readonly cache = new Map<
    string,
    { answer: Promise<AccountInOrganization | null>; until: number | null }
  >();
  private readonly ttlMs: number;
  private readonly now: () => Date;

  constructor(private readonly options: OrgPlacementOptions) {
    this.ttlMs = options.ttlMs ?? PLACEMENT_TTL_MS;
    this.now = options.now ?? (() => new Date());
  }

  locate(accountId: string): Promise<AccountInOrganization | null> {
    const cached = this.cache.get(accountId);
    if (cached && (cached.until === null || this.now().getTime() < cached.until)) return cached.answer;
    const answer = this.read(accountId);
    const entry: { answer: Promise<AccountInOrganization | null>; until: number | null } = {
      answer,
      until: null,
    };
    this.cache.set(accountId, entry);
    answer.then(
      (a) => {
        entry.until = this.now().getTime() + (a ? this.ttlMs : Math.min(this.ttlMs, NOT_MEMBER_TTL_MS));
      },
      () => {
        // A failure (access denied, throttled past retries) is not kept: the next event asks again.
        if (this.cache.get(accountId) === entry) this.cache.delete(accountId);
      },
    );
    return answer;
  }

  private async read(accountId: string): Promise<AccountInOrganization | null> {
    const org = this.options.organizations;
    try {
      // The same walk as the sweep's listing (organizations.ts), so both place an account alike.
      const ouPath = await ouPathOf(org, accountId);
      const { Account } = await org.send(new DescribeAccountCommand({ AccountId: accountId }));
      return {
        accountId,
        ouPath,
        name: Account?.Name ?? null,
        active: Account ? isActive(Account) : false,
      };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }
}

/**
 * Why an account is not governed, or null when it is: the hub's own account always is (as a single-account
 * deployment); any other must be a member of the organization under one of `targets`, ACTIVE, and not excluded.
 */
export function ungovernedReason(
  organization: OrganizationConfig,
  hubAccountId: string,
  accountId: string,
  found: AccountInOrganization | null,
): string | null {
  if (accountId === hubAccountId) return null;
  if (organization.excludeAccounts.includes(accountId)) return 'excluded (organization.excludeAccounts)';
  if (!found) return `not a member of organization ${organization.id}`;
  // An organization has one root: a root target covers every member.
  if (!organization.targets.some((t) => t.startsWith('r-') || found.ouPath.includes(t))) {
    return `not under organization.targets (its OU path: ${found.ouPath.join('/') || '(directly under the root)'})`;
  }
  if (!found.active) return 'not ACTIVE in Organizations';
  return null;
}

/** The placement reader of a hub function, from ORG_READER_ROLE_ARN (absent: the hub reads Organizations itself). */
export function orgPlacementFromEnv(env: NodeJS.ProcessEnv, functionName: string): OrgPlacement {
  return new OrgPlacement({ organizations: organizationsClient(env, sessionNameFor(functionName)) });
}
