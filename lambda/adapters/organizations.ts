import {
  type Account,
  ChildType,
  DescribeAccountCommand,
  ListParentsCommand,
  OrganizationsClient,
  paginateListAccountsForParent,
  paginateListChildren,
} from '@aws-sdk/client-organizations';
import { STSClient } from '@aws-sdk/client-sts';
import { SDK_MAX_ATTEMPTS } from './clients';
import { AssumedRoleCredentials, type MemberCredentials } from './member-access';

/**
 * The governed accounts of an organization (issue 12), read from AWS Organizations: the ACTIVE accounts under the
 * configured targets (the root or OUs, nested OUs included), minus the excluded accounts, plus the hub's own
 * account. Used by the hub's sweep scheduler (one SQS message per account) and by `keyguard inventory --org`.
 *
 * Organizations is read with management-account credentials through the narrow reader role
 * (`BedrockKeyGuardOrgReader`, env `ORG_READER_ROLE_ARN`), or directly when the caller is the management account
 * or the delegated administrator. Every call goes through the SDK's standard retry mode (exponential backoff with
 * jitter on throttling: Organizations allows only a few requests per second per account); past its retries the
 * error propagates and the whole listing fails, so a partial list is never mistaken for the organization.
 */

/** One governed account. */
export interface GovernedAccount {
  accountId: string;
  /** The account's name in Organizations. */
  name: string;
  /**
   * OU ids from the root down to the account's parent, the root id itself not included (empty: directly under the
   * root), as `AccountPlacement.ouPath` of lambda/domain/org-policy.ts expects.
   */
  ouPath: string[];
}

/** Which accounts are governed: the `organization` settings that matter here, and the hub's account. */
export interface GovernedScope {
  /** The root (`r-…`) or OUs (`ou-…`) whose accounts are governed. */
  targets: readonly string[];
  /** Accounts under the targets that are not governed. */
  excludeAccounts: readonly string[];
  /** The hub's own account: always governed (directly, with the functions' own credentials), even if excluded. */
  hubAccountId: string;
}

/** Environment variable naming the management account's Organizations reader role. */
export const ORG_READER_ROLE_ENV = 'ORG_READER_ROLE_ARN';

/** Organizations is a global service with its endpoint in us-east-1. */
const ORGANIZATIONS_REGION = 'us-east-1';

/**
 * Credentials of `roleArn` through STS AssumeRole, cached until 5 minutes before they expire, as an SDK credential
 * provider: member-access.ts AssumedRoleCredentials (the one cache of assumed credentials, shared with the member
 * roles). STS calls use the SDK's standard retry (STS throttles too).
 */
export function assumedRoleCredentials(
  roleArn: string,
  sessionName: string,
  sts: STSClient = new STSClient({
    region: ORGANIZATIONS_REGION,
    maxAttempts: SDK_MAX_ATTEMPTS,
    retryMode: 'standard',
  }),
  now: () => number = Date.now,
): () => Promise<MemberCredentials> {
  const role = new AssumedRoleCredentials(sts, roleArn, sessionName, () => new Date(now()));
  return () => role.get();
}

/**
 * The Organizations client the listing uses: through the reader role when `ORG_READER_ROLE_ARN` is set (session
 * name `sessionName`), else with the caller's own credentials (management account or delegated administrator).
 */
export function organizationsClient(
  env: NodeJS.ProcessEnv,
  sessionName: string,
  sts?: STSClient,
): OrganizationsClient {
  const roleArn = env[ORG_READER_ROLE_ENV]?.trim();
  return new OrganizationsClient({
    region: ORGANIZATIONS_REGION,
    maxAttempts: SDK_MAX_ATTEMPTS,
    retryMode: 'standard',
    ...(roleArn ? { credentials: assumedRoleCredentials(roleArn, sessionName, sts) } : {}),
  });
}

/** Whether Organizations reports the account ACTIVE (`State`; `Status` for answers that predate it). */
export function isActive(account: Account): boolean {
  return (account.State ?? account.Status) === 'ACTIVE';
}

/** The OU ids above `id` (an OU or an account), root down to its parent, root excluded. */
export async function ouPathOf(org: OrganizationsClient, id: string): Promise<string[]> {
  const path: string[] = [];
  let child = id;
  // An organization is at most 5 OU levels deep under the root; the bound only guards against a bad answer.
  for (let depth = 0; depth < 10; depth += 1) {
    const res = await org.send(new ListParentsCommand({ ChildId: child }));
    const parent = res.Parents?.[0];
    if (!parent?.Id || parent.Type === 'ROOT') return path;
    path.unshift(parent.Id);
    child = parent.Id;
  }
  throw new Error(`Organizations: parents of ${id} go deeper than an organization can`);
}

/**
 * Every governed account, sorted by account id, each once (targets may overlap). Throws on any Organizations error
 * left after the SDK's retries, naming the target being read.
 */
export async function listGovernedAccounts(
  org: OrganizationsClient,
  scope: GovernedScope,
): Promise<GovernedAccount[]> {
  const excluded = new Set(scope.excludeAccounts);
  const found = new Map<string, GovernedAccount>();
  const visited = new Set<string>();
  for (const target of scope.targets) {
    try {
      const base = target.startsWith('r-') ? [] : [...(await ouPathOf(org, target)), target];
      await walk(target, base);
    } catch (err) {
      (err as Error).message = `Organizations: reading target ${target}: ${(err as Error).message}`;
      throw err;
    }
  }
  if (!found.has(scope.hubAccountId)) {
    const res = await org.send(new DescribeAccountCommand({ AccountId: scope.hubAccountId }));
    found.set(scope.hubAccountId, {
      accountId: scope.hubAccountId,
      name: res.Account?.Name ?? '',
      ouPath: await ouPathOf(org, scope.hubAccountId),
    });
  }
  return [...found.values()].sort((a, b) => a.accountId.localeCompare(b.accountId));

  async function walk(parentId: string, ouPath: string[]): Promise<void> {
    if (visited.has(parentId)) return;
    visited.add(parentId);
    for await (const page of paginateListAccountsForParent({ client: org }, { ParentId: parentId })) {
      for (const a of page.Accounts ?? []) {
        if (!a.Id || !isActive(a)) continue;
        if (excluded.has(a.Id) && a.Id !== scope.hubAccountId) continue;
        found.set(a.Id, { accountId: a.Id, name: a.Name ?? '', ouPath });
      }
    }
    const children: string[] = [];
    for await (const page of paginateListChildren(
      { client: org },
      { ParentId: parentId, ChildType: ChildType.ORGANIZATIONAL_UNIT },
    )) {
      for (const c of page.Children ?? []) if (c.Id) children.push(c.Id);
    }
    for (const ou of children) await walk(ou, [...ouPath, ou]);
  }
}
