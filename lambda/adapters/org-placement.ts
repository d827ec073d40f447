import {
  DescribeAccountCommand,
  ListParentsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { STSClient } from '@aws-sdk/client-sts';
import type { AccountPlacement } from '../domain/org-policy';
import type { OrganizationConfig } from '../shared/config';
import { IAM_REGION, SDK_MAX_ATTEMPTS } from './clients';
import { AssumedRoleCredentials, sessionNameFor } from './member-access';

/**
 * Where an account sits in the organization (issue 12): its OUs from the root down (Organizations ListParents,
 * repeated up to the root), its name and its lifecycle state (DescribeAccount). Organizations answers only the
 * management account or a delegated administrator: the hub reads it through the management stack's read-only role
 * (ORG_READER_ROLE_ARN, assumed with STS), or with its own credentials when it is the delegated administrator (the
 * variable absent). Answers are cached per account for the container's life, an hour at most, so a busy account
 * costs a few calls an hour; an account that is not a member is asked again after five minutes (it may be joining).
 */

export const ORG_READER_ENV = 'ORG_READER_ROLE_ARN';

/** How long an account's place is trusted; an account moved to another OU is decided by its new OU after that. */
export const PLACEMENT_TTL_MS = 3_600_000;
/** How long "not in the organization" is trusted. */
export const NOT_MEMBER_TTL_MS = 5 * 60_000;

/** Organizations' answer for one account. */
export interface AccountInOrganization extends AccountPlacement {
  /** The root (r-…) the path starts from. */
  rootId: string;
  /** The account's name; null when Organizations gives none. */
  name: string | null;
  /** ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED…; null when Organizations gives none. */
  state: string | null;
}

export interface AccountLocator {
  /** The account's place in the organization, or null when it is not a member of it. */
  locate(accountId: string): Promise<AccountInOrganization | null>;
}

/** OUs are nested at most five levels deep (Organizations quotas): a longer walk is a loop, not an organization. */
const MAX_DEPTH = 10;

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
    const ous: string[] = [];
    let child = accountId;
    let rootId: string | null = null;
    try {
      for (let depth = 0; depth < MAX_DEPTH && rootId === null; depth += 1) {
        const res = await org.send(new ListParentsCommand({ ChildId: child }));
        // An account and an OU have exactly one parent.
        const parent = res.Parents?.[0];
        if (!parent?.Id) throw new Error(`Organizations ListParents gave no parent for ${child}`);
        if (parent.Type === 'ROOT') rootId = parent.Id;
        else {
          ous.unshift(parent.Id);
          child = parent.Id;
        }
      }
      if (rootId === null) throw new Error(`account ${accountId}: OU path deeper than ${MAX_DEPTH} levels`);
      const { Account } = await org.send(new DescribeAccountCommand({ AccountId: accountId }));
      return {
        accountId,
        ouPath: ous,
        rootId,
        name: Account?.Name ?? null,
        state: Account?.State ?? null,
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
  const under = [found.rootId, ...found.ouPath];
  if (!organization.targets.some((t) => under.includes(t))) {
    return `not under organization.targets (its path: ${under.join('/')})`;
  }
  if (found.state !== null && found.state !== 'ACTIVE') return `account state ${found.state}, not ACTIVE`;
  return null;
}

/**
 * The Organizations client the hub reads with: through the reader role when one is given (session
 * `keyguard-<function>`, credentials cached until five minutes before expiry), else the function's own credentials.
 */
export function organizationsClient(
  readerRoleArn: string | null,
  functionName: string,
  sts: STSClient = new STSClient({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' }),
): OrganizationsClient {
  const base = { region: IAM_REGION, maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' } as const;
  if (!readerRoleArn) return new OrganizationsClient(base);
  const reader = new AssumedRoleCredentials(sts, readerRoleArn, sessionNameFor(functionName));
  return new OrganizationsClient({ ...base, credentials: () => reader.get() });
}

/** The placement reader of a hub function, from ORG_READER_ROLE_ARN (absent: the hub reads Organizations itself). */
export function orgPlacementFromEnv(env: NodeJS.ProcessEnv, functionName: string): OrgPlacement {
  const reader = env[ORG_READER_ENV]?.trim() || null;
  return new OrgPlacement({ organizations: organizationsClient(reader, functionName) });
}
