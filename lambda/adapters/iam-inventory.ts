import {
  CredentialReportExpiredException,
  CredentialReportNotPresentException,
  CredentialReportNotReadyException,
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  type GetAccountAuthorizationDetailsResponse,
  GetCredentialReportCommand,
  type IAMClient,
  ListServiceSpecificCredentialsCommand,
} from '@aws-sdk/client-iam';
import {
  type AttachedPolicy,
  assessPermissions,
  type InlinePolicy,
  type PolicyDocument,
  parsePolicyDocument,
} from '../domain/permissions';
import type { KeyDirectory, KeyMetadata, UserFactsSource } from '../domain/pipeline';
import { BEDROCK_SERVICE, type OtherCredentials, type PermissionFinding } from '../domain/types';
import { toMetadata } from './iam';

/**
 * The account-wide IAM reads of the inventory sweep: O(pages) calls for the whole account, never a call per
 * user. Keys come from one paginated `ListServiceSpecificCredentials(AllUsers)`; users' tags and policies from
 * `GetAccountAuthorizationDetails`; access keys and console passwords from the IAM credential report (which
 * does not list service-specific credentials, so it is never used to find keys).
 */

/** IAM's largest page for ListServiceSpecificCredentials. */
export const KEYS_PAGE_SIZE = 1000;

export interface KeysPage {
  /** Bedrock keys only (re-checked here, whatever IAM returned). */
  keys: KeyMetadata[];
  /** Where the next page starts, or null after the last page. */
  nextMarker: string | null;
}

/** ONE page of every Bedrock key in the account (all users), starting at `marker`. */
export async function listBedrockKeysPage(iam: IAMClient, marker?: string | null): Promise<KeysPage> {
  const res = await iam.send(
    new ListServiceSpecificCredentialsCommand({
      AllUsers: true,
      ServiceName: BEDROCK_SERVICE,
      MaxItems: KEYS_PAGE_SIZE,
      Marker: marker ?? undefined,
    }),
  );
  const keys: KeyMetadata[] = [];
  for (const c of res.ServiceSpecificCredentials ?? []) {
    const m = toMetadata(c);
    if (m) keys.push(m);
  }
  return { keys, nextMarker: res.IsTruncated && res.Marker ? res.Marker : null };
}

/** What the snapshot knows about one IAM user. */
interface UserRecord {
  tags: Record<string, string>;
  inline: Array<{ name: string; document: PolicyDocument | null }>;
  attached: Array<{ name: string; arn: string }>;
  groups: string[];
}

interface GroupRecord {
  inline: Array<{ name: string; document: PolicyDocument | null }>;
  attached: Array<{ name: string; arn: string }>;
}

/** One user's row of the credential report (only the columns the sweep uses). */
export interface CredentialReportRow {
  user: string;
  passwordEnabled: boolean;
  activeAccessKeys: number;
}

export class CredentialReportUnavailableError extends Error {
  constructor(waitedMs: number) {
    super(
      `the IAM credential report was not ready after ${Math.round(waitedMs / 1000)} s of GenerateCredentialReport polling`,
    );
    this.name = 'CredentialReportUnavailableError';
  }
}

export class CredentialReportFormatError extends Error {
  constructor(detail: string) {
    super(`the IAM credential report is not the expected CSV: ${detail}`);
    this.name = 'CredentialReportFormatError';
  }
}

export class SnapshotAccountError extends Error {
  constructor(snapshotAccount: string, asked: string) {
    super(`the IAM snapshot is of account ${snapshotAccount}; it cannot answer for account ${asked}`);
    this.name = 'SnapshotAccountError';
  }
}

/** Splits CSV text into rows of fields (RFC 4180 quoting; IAM's report normally has none). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let field = '';
  let row: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i += 1;
      row.push(field);
      field = '';
      if (row.some((f) => f !== '')) rows.push(row);
      row = [];
    } else field += ch;
  }
  row.push(field);
  if (row.some((f) => f !== '')) rows.push(row);
  return rows;
}

/**
 * The columns of IAM's credential report the sweep reads. Values other than `true` (`false`, `N/A`,
 * `not_supported` for the root user's password) mean "no". The root account row (`<root_account>`) is kept
 * under that name: no IAM user can be called that.
 */
export function parseCredentialReport(csv: string): Map<string, CredentialReportRow> {
  const [header, ...rows] = parseCsv(csv);
  if (!header) throw new CredentialReportFormatError('it is empty');
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new CredentialReportFormatError(`column ${name} is missing`);
    return i;
  };
  const user = col('user');
  const password = col('password_enabled');
  const key1 = col('access_key_1_active');
  const key2 = col('access_key_2_active');
  const out = new Map<string, CredentialReportRow>();
  for (const r of rows) {
    const name = r[user];
    if (!name) continue;
    const yes = (i: number) => (r[i] ?? '').trim().toLowerCase() === 'true';
    out.set(name, {
      user: name,
      passwordEnabled: yes(password),
      activeAccessKeys: (yes(key1) ? 1 : 0) + (yes(key2) ? 1 : 0),
    });
  }
  return out;
}

export interface SnapshotOptions {
  /** Waits between GenerateCredentialReport polls. @default real timers */
  sleep?: (ms: number) => Promise<void>;
  /** First wait between polls; doubles up to `maxPollDelayMs`. @default 2000 */
  firstPollDelayMs?: number;
  /** @default 10000 */
  maxPollDelayMs?: number;
  /** Give up (CredentialReportUnavailableError) after waiting this long in total. @default 180000 */
  maxReportWaitMs?: number;
  /** Page size of GetAccountAuthorizationDetails (IAM allows 1..1000). @default 1000 */
  detailsPageSize?: number;
}

/** IAM calls made while loading the snapshot, by operation. */
export interface SnapshotCalls {
  GetAccountAuthorizationDetails: number;
  GenerateCredentialReport: number;
  GetCredentialReport: number;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isNamed(err: unknown, ...names: string[]): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' && names.includes(name);
}

/**
 * Bulk IAM facts about every user of one account, loaded once per sweep invocation and reused for every key:
 * tags, inline and attached policies (directly and through groups) with customer-managed policies' default
 * documents, and access keys / console passwords from the credential report.
 *
 * The credential report can be up to 4 hours old (IAM regenerates it at most every 4 hours): an access key or
 * password added since is not seen here. The credential-event path handles CreateAccessKey/CreateLoginProfile
 * as they happen. A user created after the snapshot was loaded is unknown to it: its facts are `null` (not
 * checked) and its tags are read live through `fallbackTags`.
 */
export class AccountSnapshot implements UserFactsSource {
  private readonly findings = new Map<string, PermissionFinding[]>();

  private constructor(
    readonly accountId: string,
    private readonly users: Map<string, UserRecord>,
    private readonly groups: Map<string, GroupRecord>,
    /** Default-version documents of customer-managed policies, by ARN. */
    private readonly localPolicies: Map<string, PolicyDocument | null>,
    private readonly report: Map<string, CredentialReportRow>,
    /** When IAM generated the credential report. */
    readonly credentialReportGeneratedAt: string | null,
    readonly calls: SnapshotCalls,
  ) {}

  static async load(iam: IAMClient, accountId: string, opts: SnapshotOptions = {}): Promise<AccountSnapshot> {
    const calls: SnapshotCalls = {
      GetAccountAuthorizationDetails: 0,
      GenerateCredentialReport: 0,
      GetCredentialReport: 0,
    };
    const [details, report] = await Promise.all([
      loadAuthorizationDetails(iam, opts, calls),
      loadCredentialReport(iam, opts, calls),
    ]);
    return new AccountSnapshot(
      accountId,
      details.users,
      details.groups,
      details.policies,
      report.rows,
      report.generatedAt,
      calls,
    );
  }

  /** Users the snapshot knows. */
  get userCount(): number {
    return this.users.size;
  }

  hasUser(userName: string): boolean {
    return this.users.has(userName);
  }

  /** The user's tags, or null when the snapshot does not know the user. */
  userTags(accountId: string, userName: string): Record<string, string> | null {
    this.checkAccount(accountId);
    const u = this.users.get(userName);
    return u ? { ...u.tags } : null;
  }

  async userFacts(
    accountId: string,
    userName: string,
  ): Promise<{ permissions: PermissionFinding[] | null; otherCredentials: OtherCredentials | null }> {
    this.checkAccount(accountId);
    const row = this.report.get(userName);
    const otherCredentials: OtherCredentials | null = row
      ? { activeAccessKeys: row.activeAccessKeys, consolePassword: row.passwordEnabled }
      : null;
    return { permissions: this.permissionsOf(userName), otherCredentials };
  }

  private permissionsOf(userName: string): PermissionFinding[] | null {
    const cached = this.findings.get(userName);
    if (cached) return cached;
    const u = this.users.get(userName);
    if (!u) return null;
    const attached: AttachedPolicy[] = [];
    const inline: InlinePolicy[] = [];
    const add = (
      via: string,
      a: ReadonlyArray<{ name: string; arn: string }>,
      i: ReadonlyArray<{ name: string; document: PolicyDocument | null }>,
    ) => {
      for (const p of a) {
        attached.push({ name: p.name, arn: p.arn, document: this.localPolicies.get(p.arn) ?? null, via });
      }
      for (const p of i) if (p.document) inline.push({ name: p.name, document: p.document, via });
    };
    add('user', u.attached, u.inline);
    for (const g of u.groups) {
      const group = this.groups.get(g);
      if (group) add(`group:${g}`, group.attached, group.inline);
    }
    const found = assessPermissions({ attached, inline });
    this.findings.set(userName, found);
    return found;
  }

  private checkAccount(accountId: string): void {
    if (accountId !== this.accountId) throw new SnapshotAccountError(this.accountId, accountId);
  }
}

function inlineOf(list: ReadonlyArray<{ PolicyName?: string; PolicyDocument?: string }> | undefined) {
  return (list ?? [])
    .filter((p) => p.PolicyName)
    .map((p) => ({ name: p.PolicyName as string, document: parsePolicyDocument(p.PolicyDocument) }));
}

function attachedOf(list: ReadonlyArray<{ PolicyName?: string; PolicyArn?: string }> | undefined) {
  return (list ?? [])
    .filter((p) => p.PolicyName && p.PolicyArn)
    .map((p) => ({ name: p.PolicyName as string, arn: p.PolicyArn as string }));
}

async function loadAuthorizationDetails(
  iam: IAMClient,
  opts: SnapshotOptions,
  calls: SnapshotCalls,
): Promise<{
  users: Map<string, UserRecord>;
  groups: Map<string, GroupRecord>;
  policies: Map<string, PolicyDocument | null>;
}> {
  const users = new Map<string, UserRecord>();
  const groups = new Map<string, GroupRecord>();
  const policies = new Map<string, PolicyDocument | null>();
  let marker: string | undefined;
  do {
    const res: GetAccountAuthorizationDetailsResponse = await iam.send(
      new GetAccountAuthorizationDetailsCommand({
        // AWS managed policies are recognised by ARN (permissions.ts): their documents are not needed.
        Filter: ['User', 'Group', 'LocalManagedPolicy'],
        MaxItems: opts.detailsPageSize ?? 1000,
        Marker: marker,
      }),
    );
    calls.GetAccountAuthorizationDetails += 1;
    for (const u of res.UserDetailList ?? []) {
      if (!u.UserName) continue;
      const tags: Record<string, string> = {};
      for (const t of u.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? '';
      users.set(u.UserName, {
        tags,
        inline: inlineOf(u.UserPolicyList),
        attached: attachedOf(u.AttachedManagedPolicies),
        groups: [...(u.GroupList ?? [])],
      });
    }
    for (const g of res.GroupDetailList ?? []) {
      if (!g.GroupName) continue;
      groups.set(g.GroupName, {
        inline: inlineOf(g.GroupPolicyList),
        attached: attachedOf(g.AttachedManagedPolicies),
      });
    }
    for (const p of res.Policies ?? []) {
      if (!p.Arn) continue;
      const version =
        p.PolicyVersionList?.find((v) => v.IsDefaultVersion) ??
        p.PolicyVersionList?.find((v) => v.VersionId === p.DefaultVersionId);
      policies.set(p.Arn, parsePolicyDocument(version?.Document));
    }
    marker = res.IsTruncated ? res.Marker : undefined;
  } while (marker);
  return { users, groups, policies };
}

/**
 * GenerateCredentialReport until COMPLETE (IAM reuses a report younger than 4 hours, so this is usually
 * immediate), with growing waits, then GetCredentialReport. A report that IAM says is not ready, expired or
 * missing when fetched is generated again within the same wait budget.
 */
async function loadCredentialReport(
  iam: IAMClient,
  opts: SnapshotOptions,
  calls: SnapshotCalls,
): Promise<{ rows: Map<string, CredentialReportRow>; generatedAt: string | null }> {
  const sleep = opts.sleep ?? realSleep;
  const maxWait = opts.maxReportWaitMs ?? 180_000;
  let delay = opts.firstPollDelayMs ?? 2000;
  let waited = 0;
  const pause = async () => {
    if (waited >= maxWait) throw new CredentialReportUnavailableError(waited);
    const ms = Math.min(delay, maxWait - waited);
    await sleep(ms);
    waited += ms;
    delay = Math.min(delay * 2, opts.maxPollDelayMs ?? 10_000);
  };
  for (;;) {
    const gen = await iam.send(new GenerateCredentialReportCommand({}));
    calls.GenerateCredentialReport += 1;
    if (gen.State !== 'COMPLETE') {
      await pause();
      continue;
    }
    try {
      const res = await iam.send(new GetCredentialReportCommand({}));
      calls.GetCredentialReport += 1;
      const text = res.Content ? Buffer.from(res.Content).toString('utf8') : '';
      return { rows: parseCredentialReport(text), generatedAt: res.GeneratedTime?.toISOString() ?? null };
    } catch (err) {
      calls.GetCredentialReport += 1;
      const retryable =
        err instanceof CredentialReportNotReadyException ||
        err instanceof CredentialReportExpiredException ||
        err instanceof CredentialReportNotPresentException ||
        isNamed(
          err,
          'CredentialReportNotReadyException',
          'CredentialReportExpiredException',
          'CredentialReportNotPresentException',
          'ReportInProgress',
          'ReportExpired',
          'ReportNotPresent',
        );
      if (!retryable) throw err;
      await pause();
    }
  }
}

/**
 * The sweep's KeyDirectory: tags from the snapshot, keys from the page being swept. Whatever they do not know
 * (a user created after the snapshot, a key not on the current page) is read live from `live`, so a gap in the
 * bulk data costs a call instead of a wrong decision (a missing owner tag that is really there).
 */
export class SnapshotKeyDirectory implements KeyDirectory {
  private page = new Map<string, KeyMetadata>();
  /** Live reads made because the bulk data did not know the answer. */
  liveReads = 0;

  constructor(
    private readonly snapshot: AccountSnapshot,
    private readonly live: KeyDirectory,
  ) {}

  /** The keys of the page being swept (replaces the previous page). */
  usePage(keys: readonly KeyMetadata[]): void {
    this.page = new Map(keys.map((k) => [`${k.userName}/${k.keyId}`, k]));
  }

  async getKey(accountId: string, userName: string, keyId: string): Promise<KeyMetadata | null> {
    const hit = this.page.get(`${userName}/${keyId}`);
    if (hit) return hit;
    this.liveReads += 1;
    return this.live.getKey(accountId, userName, keyId);
  }

  async listUserKeys(accountId: string, userName: string): Promise<KeyMetadata[]> {
    this.liveReads += 1;
    return this.live.listUserKeys(accountId, userName);
  }

  async getUserTags(accountId: string, userName: string): Promise<Record<string, string>> {
    const tags = this.snapshot.userTags(accountId, userName);
    if (tags) return tags;
    this.liveReads += 1;
    return this.live.getUserTags(accountId, userName);
  }
}
