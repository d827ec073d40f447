import { IAMClient } from '@aws-sdk/client-iam';
import { AssumeRoleCommand, type AssumeRoleCommandOutput, STSClient } from '@aws-sdk/client-sts';
import type { OrganizationConfig } from '../shared/config';
import { IAM_REGION, iamClient, SDK_MAX_ATTEMPTS } from './clients';

/**
 * Which account, with which credentials (organization mode, issue 12): one IAM client per governed account. The
 * hub's own account is governed with the function's own credentials; every other governed account through the
 * member role its spoke stack created (`arn:<partition>:iam::<account>:role/<memberRoleName>`), assumed with STS
 * under the session name `keyguard-<function>` so the member's CloudTrail says which function acted. Credentials
 * are cached per account until five minutes before they expire, for at most MEMBER_ACCOUNTS_CACHED accounts (least
 * recently used evicted first). Throttling is retried by the SDK's standard retry
 * (STS and IAM alike); a role that is missing or does not trust the hub is a MemberRoleError naming the account and
 * the role, so that a caller can set that one account aside and carry on with the others.
 */

/** Credentials are renewed this long before they expire (the SDK's own refresh window is the same). */
export const CREDENTIAL_REFRESH_MS = 5 * 60_000;

/**
 * Member accounts whose IAM client and credentials a container keeps (least recently used first out). A client with
 * its credentials is about 22 KB, so an unbounded cache grows by about 22 MB per 1,000 accounts over a container's
 * life; 128 accounts (about 3 MB) is more than one container serves in a credential-event burst or a sweep (one
 * account per message). An evicted account costs one AssumeRole when it is next reached.
 */
export const MEMBER_ACCOUNTS_CACHED = 128;

/** STS errors that say "this account's role cannot be used" rather than "try again". */
const ROLE_UNUSABLE = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'NoSuchEntity',
  'NoSuchEntityException',
  'RegionDisabledException',
]);

/** The member role of an account cannot be assumed: missing, not trusting this function, or STS off there. */
export class MemberRoleError extends Error {
  constructor(
    readonly accountId: string,
    readonly roleArn: string,
    /** The STS error's name (e.g. AccessDenied). */
    readonly code: string,
    detail: string,
  ) {
    super(
      `account ${accountId}: cannot assume the role ${roleArn} (${code}: ${detail}); ` +
        'is the role deployed there (spoke stack, or management stack for the reader), and does it trust this function?',
    );
    this.name = 'MemberRoleError';
  }
}

/** An account keyguard does not govern (excluded, or not the hub's own account without an organization). */
export class UngovernedAccountError extends Error {
  constructor(
    readonly accountId: string,
    readonly why: string,
  ) {
    super(`account ${accountId} is not governed by keyguard: ${why}`);
    this.name = 'UngovernedAccountError';
  }
}

export interface MemberAccessOptions {
  /** The organization settings; null: the hub's own account only (single-account deployment). */
  organization: OrganizationConfig | null;
  /** The account the functions run in (GOVERNED_ACCOUNT_ID): governed with the function's own credentials. */
  hubAccountId: string;
  /** The function's short name (e.g. `credential-event`): the session name is `keyguard-<functionName>`. */
  functionName: string;
  /** @default an IAM client with the function's own credentials (iamClient()) */
  hubIam?: IAMClient;
  /** @default an STS client with the standard retry mode */
  sts?: STSClient;
  /** @default 'aws' (the hub runs in us-east-1 of the aws partition) */
  partition?: string;
  /** The clock credentials' expiry is compared with. @default the system clock */
  now?: () => Date;
  /** Member accounts kept (client and credentials), least recently used evicted first. @default MEMBER_ACCOUNTS_CACHED */
  maxAccounts?: number;
}

/** One member account's cached IAM client (made on first use) and role credentials. */
interface AccountEntry {
  role: AssumedRoleCredentials;
  client?: IAMClient;
}

/** Temporary credentials of a member role (the SDK's AwsCredentialIdentity shape). */
export interface MemberCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

const ACCOUNT_ID = /^\d{12}$/;

/** The session name STS records in the member account's CloudTrail: `keyguard-<function>`, within STS's rules. */
export function sessionNameFor(functionName: string): string {
  return `keyguard-${functionName}`.replace(/[^\w+=,.@-]/g, '-').slice(0, 64);
}

export class MemberAccess {
  private readonly hubIam: IAMClient;
  private readonly sts: STSClient;
  private readonly partition: string;
  private readonly now: () => Date;
  private readonly sessionName: string;
  private readonly excluded: ReadonlySet<string>;
  private readonly maxAccounts: number;
  /** Least recently used first (a Map keeps insertion order; a use moves the account to the end). */
  private readonly accounts = new Map<string, AccountEntry>();

  constructor(private readonly options: MemberAccessOptions) {
    this.hubIam = options.hubIam ?? iamClient();
    this.sts = options.sts ?? new STSClient({ maxAttempts: SDK_MAX_ATTEMPTS, retryMode: 'standard' });
    this.partition = options.partition ?? 'aws';
    this.now = options.now ?? (() => new Date());
    this.sessionName = sessionNameFor(options.functionName);
    this.excluded = new Set(options.organization?.excludeAccounts ?? []);
    this.maxAccounts = Math.max(1, options.maxAccounts ?? MEMBER_ACCOUNTS_CACHED);
  }

  /** The member accounts cached now, sorted (for tests and diagnostics). */
  cachedAccounts(): string[] {
    return [...this.accounts.keys()].sort();
  }

  /**
   * The account's entry, made most recently used; a new one may evict the least recently used account (its client is
   * not destroyed: a caller may still hold it, and it assumes the role again through credentialsFor when it signs).
   */
  private entryFor(accountId: string): AccountEntry {
    let entry = this.accounts.get(accountId);
    if (entry) {
      this.accounts.delete(accountId);
    } else {
      entry = {
        role: new AssumedRoleCredentials(this.sts, this.roleArnFor(accountId), this.sessionName, this.now),
      };
    }
    this.accounts.set(accountId, entry);
    for (const oldest of this.accounts.keys()) {
      if (this.accounts.size <= this.maxAccounts) break;
      this.accounts.delete(oldest);
    }
    return entry;
  }

  get hubAccountId(): string {
    return this.options.hubAccountId;
  }

  /** Why keyguard does not govern an account, or null when it may (membership of the organization aside). */
  ungovernedReason(accountId: string): string | null {
    if (!ACCOUNT_ID.test(accountId)) return 'not a 12-digit account id';
    if (accountId === this.options.hubAccountId) return null;
    if (!this.options.organization)
      return 'not the account keyguard is deployed in (no organization configured)';
    if (this.excluded.has(accountId)) return 'listed in organization.excludeAccounts';
    return null;
  }

  /** The member role keyguard assumes in an account. */
  roleArnFor(accountId: string): string {
    const role = this.options.organization?.memberRoleName ?? 'BedrockKeyGuardMember';
    return `arn:${this.partition}:iam::${accountId}:role/${role}`;
  }

  /**
   * An IAM client acting in `accountId` (an IamClientProvider). Throws UngovernedAccountError for an account that
   * is not governed; the member role's problems surface as MemberRoleError (here, for a fresh account, and on the
   * first call after a refresh fails).
   */
  readonly iamFor = async (accountId: string): Promise<IAMClient> => {
    const why = this.ungovernedReason(accountId);
    if (why) throw new UngovernedAccountError(accountId, why);
    if (accountId === this.options.hubAccountId) return this.hubIam;
    // Assumed now, so that a role that cannot be used is reported before any IAM call.
    await this.credentialsFor(accountId);
    const entry = this.entryFor(accountId);
    entry.client ??= new IAMClient({
      region: IAM_REGION,
      maxAttempts: SDK_MAX_ATTEMPTS,
      retryMode: 'standard',
      credentials: () => this.credentialsFor(accountId),
    });
    return entry.client;
  };

  /** The member role's credentials for an account: cached until five minutes before they expire. */
  credentialsFor(accountId: string): Promise<MemberCredentials> {
    return this.entryFor(accountId).role.get();
  }
}

/**
 * One role's temporary credentials, assumed with STS when first needed and again from five minutes before they
 * expire; concurrent callers share one AssumeRole. A failure is not kept: the next call assumes the role again.
 * Errors that say the role cannot be used (AccessDenied, NoSuchEntity, STS disabled in the region) become a
 * MemberRoleError naming the role's account and ARN; others (throttling past the SDK's retries) pass unchanged.
 */
export class AssumedRoleCredentials {
  private pending: Promise<MemberCredentials> | null = null;
  /** When the credentials must be renewed; null while the AssumeRole call is in flight. */
  private renewAt: number | null = null;

  constructor(
    private readonly sts: STSClient,
    readonly roleArn: string,
    private readonly sessionName: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  get(): Promise<MemberCredentials> {
    if (this.pending && (this.renewAt === null || this.now().getTime() < this.renewAt)) return this.pending;
    const p = this.assume();
    this.pending = p;
    this.renewAt = null;
    p.then(
      (c) => {
        // Without an expiry (STS always sends one) nothing is reused.
        if (this.pending === p)
          this.renewAt = c.expiration ? c.expiration.getTime() - CREDENTIAL_REFRESH_MS : 0;
      },
      () => {
        if (this.pending === p) this.pending = null;
      },
    );
    return p;
  }

  private async assume(): Promise<MemberCredentials> {
    const accountId = this.roleArn.split(':')[4] ?? '';
    let res: AssumeRoleCommandOutput;
    try {
      res = await this.sts.send(
        new AssumeRoleCommand({ RoleArn: this.roleArn, RoleSessionName: this.sessionName }),
      );
    } catch (err) {
      const name = (err as { name?: unknown } | null)?.name;
      if (typeof name === 'string' && ROLE_UNUSABLE.has(name)) {
        const message = err instanceof Error ? err.message.slice(0, 300) : String(err);
        throw new MemberRoleError(accountId, this.roleArn, name, message);
      }
      throw err;
    }
    const c = res.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) {
      throw new MemberRoleError(accountId, this.roleArn, 'NoCredentials', 'STS answered without credentials');
    }
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
      ...(c.Expiration ? { expiration: new Date(c.Expiration) } : {}),
    };
  }
}
