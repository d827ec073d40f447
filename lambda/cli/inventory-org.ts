import {
  ChildType,
  DescribeAccountCommand,
  type OrganizationsClient,
  paginateListAccountsForParent,
  paginateListChildren,
} from '@aws-sdk/client-organizations';
import {
  AssumeRoleCommand,
  type AssumeRoleCommandOutput,
  GetCallerIdentityCommand,
  type STSClient,
} from '@aws-sdk/client-sts';
import { isActive, ouPathOf } from '../adapters/organizations';
import { effectivePolicy } from '../domain/org-policy';
import { type Config, ORG_INVENTORY_ROLE_NAME, policyVersion } from '../shared/config';
import { visible } from '../shared/visible-text';
import { awsWhere, reportAwsFailure } from './aws-errors';
import { csvRecord } from './csv';
import { policyLine } from './deployed-policy';
import { countFailing, withPosture } from './fail-on';
import { renderTable } from './format';
import { messageOf } from './inputs';
import {
  APPROVALS_TABLE_ENV,
  awsProblem,
  CSV_HEADER,
  csvFields,
  failOnFlag,
  INVENTORY_PERMISSIONS,
  type InventoryDeps,
  type InventoryOptions,
  type InventoryRow,
  inventoryPolicy,
  inventoryTable,
  inventoryTables,
  KEYS_TABLE_ENV,
  type MemberCredentials,
  mapLimit,
  openStores,
  readAccount,
  tagInventoryClients,
  UsageError,
} from './inventory';
import {
  type CliIO,
  EXIT_FAILURE,
  EXIT_INPUT,
  EXIT_OK,
  failure,
  problem,
  type TerminalFacts,
  writeControl,
} from './io';
import { StackLookupError } from './stack-outputs';

/**
 * `keyguard inventory --org`: every governed account of an AWS Organization, read-only. Run with credentials of
 * the management account or of the delegated administrator: the governed accounts (the ACTIVE accounts under
 * `organization.targets`, nested OUs included, minus `organization.excludeAccounts`; `--ou` and `--account`
 * narrow them) are read from Organizations with their OU paths, the member role is assumed in each (STS
 * AssumeRole, session name `keyguard-inventory`, a bounded number of accounts at once) and each account is read
 * by `readAccount`, the code of `keyguard inventory`, and decided by the policy that applies to it (an override
 * for the account, else for its nearest OU, else the base policy: lambda/domain/org-policy.ts).
 *
 * An account that cannot be read (the role is missing or does not trust the caller, access denied, throttled past
 * the SDK's retries) is named on stderr with its reason and every other account is still read: exit code 3.
 */

/** Some accounts could not be read (each is named on stderr); every other account was. */
export const EXIT_ACCOUNTS_UNREAD = 3;

/** The session name the member accounts' CloudTrail records for the inventory. */
export const INVENTORY_SESSION_NAME = 'keyguard-inventory';

/**
 * The role assumed in each member account without --role-name: the spoke's read-only inventory role, which trusts
 * principals of the management and hub accounts (the member role trusts only the hub's functions).
 */
export const DEFAULT_ROLE_NAME = ORG_INVENTORY_ROLE_NAME;
export const DEFAULT_CONCURRENCY = 5;
export const MAX_CONCURRENCY = 50;

/** Member credentials are renewed this long before they expire (a large account can take a while). */
const REFRESH_BEFORE_MS = 5 * 60_000;

const OU_OR_ROOT = /^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$/;
const ACCOUNT_ID = /^\d{12}$/;
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;

/** One governed account, where it sits, and the policy it is decided by. */
export interface OrgAccount {
  accountId: string;
  name: string;
  /** OU ids from the root down to the account's parent (root not included). */
  ouPath: string[];
}

/** One `--json` line in organization mode: the row of `keyguard inventory`, with the account and its policy. */
export interface OrgInventoryRow extends InventoryRow {
  accountName: string;
  /** The version of the policy the key was decided by (the base policy's, or an override's). */
  policyVersion: string;
  /** `account:<id>` or `ou:<id>` of the override that applied; null for the base policy. */
  policyOverride: string | null;
}

export const ORG_CSV_HEADER = [...CSV_HEADER, 'account_name', 'policy_version', 'policy_override'] as const;

/** How one account went. */
export interface AccountOutcome {
  accountId: string;
  name: string;
  policyVersion: string | null;
  policyOverride: string | null;
  keys: number;
  withViolations: number;
  /** null: read completely. */
  error: string | null;
}

/** What listing the organization needs, named after the denied action when Organizations denies one. */
const ORG_LISTING_PERMISSIONS =
  'organizations:ListChildren, organizations:ListAccountsForParent, organizations:ListParents and ' +
  'organizations:DescribeAccount (the management account or the delegated administrator)';

/** What stopped reading the organization itself (before any account): exit 2, as AWS problems are today. */
class OrgListingError extends Error {
  constructor(
    readonly where: string,
    readonly cause: unknown,
  ) {
    super(`${where}: ${messageOf(cause)}`);
    this.name = 'OrgListingError';
  }
}

interface OrgFlags {
  roleName: string | null;
  ous: string[];
  accounts: string[];
  concurrency: number;
}

/** Checks the --org flags' formats before anything is read; a bad one is a UsageError naming flag and value. */
export function parseOrgFlags(opts: InventoryOptions): OrgFlags {
  const ous = opts.ou ?? [];
  const accounts = opts.account ?? [];
  for (const ou of ous) {
    if (!OU_OR_ROOT.test(ou)) {
      throw new UsageError(
        `--ou ${visible(ou)}: not an organizational unit id (ou-…-…, e.g. ou-ab12-cd34ef56) or the root (r-…)`,
      );
    }
  }
  for (const account of accounts) {
    if (!ACCOUNT_ID.test(account))
      throw new UsageError(`--account ${visible(account)}: not a 12-digit account id`);
  }
  if (opts.roleName !== undefined && !ROLE_NAME.test(opts.roleName)) {
    throw new UsageError(
      `--role-name ${visible(opts.roleName)}: not an IAM role name (1-64 of a-z A-Z 0-9 _+=,.@-)`,
    );
  }
  let concurrency = DEFAULT_CONCURRENCY;
  if (opts.concurrency !== undefined) {
    const n = /^\d{1,3}$/.test(opts.concurrency) ? Number(opts.concurrency) : Number.NaN;
    if (!(n >= 1 && n <= MAX_CONCURRENCY)) {
      throw new UsageError(
        `--concurrency ${visible(opts.concurrency)}: must be a whole number from 1 to ${MAX_CONCURRENCY}`,
      );
    }
    concurrency = n;
  }
  return {
    roleName: opts.roleName ?? null,
    ous: [...new Set(ous)],
    accounts: [...new Set(accounts)],
    concurrency,
  };
}

/** Whether an account at `ouPath` is under one of `scopes` (the root, or an OU on its path). */
function under(ouPath: readonly string[], scopes: readonly string[]): boolean {
  return scopes.some((s) => s.startsWith('r-') || ouPath.includes(s));
}

export interface AccountSelection {
  governed: OrgAccount[];
  /** Accounts named with --account that are not governed or not readable, and why. */
  refused: Array<{ accountId: string; reason: string }>;
  /** ACTIVE accounts found under the listed OUs but left out by organization.excludeAccounts. */
  excluded: number;
}

/**
 * The accounts to read (with the Organizations adapter's `ouPathOf`/`isActive`; not its `listGovernedAccounts`,
 * which always adds the hub's account, whereas the CLI's caller may be the management account outside the targets,
 * and which does not narrow an --ou to the targets). Without --account: every ACTIVE account under --ou (default organization.targets), nested
 * OUs included, that is under organization.targets (when configured) and not excluded. With --account: each named
 * account, described and placed (ListParents), or refused with the reason.
 */
export async function selectAccounts(
  org: OrganizationsClient,
  organization: Config['organization'],
  flags: Pick<OrgFlags, 'ous' | 'accounts'>,
): Promise<AccountSelection> {
  const targets = organization?.targets ?? null;
  const excludedIds = new Set(organization?.excludeAccounts ?? []);
  const refused: AccountSelection['refused'] = [];
  const governed: OrgAccount[] = [];
  let excluded = 0;

  if (flags.accounts.length > 0) {
    for (const accountId of flags.accounts) {
      let name = '';
      let ouPath: string[];
      try {
        const res = await org.send(new DescribeAccountCommand({ AccountId: accountId }));
        const state = res.Account?.State ?? res.Account?.Status;
        name = res.Account?.Name ?? '';
        if (!res.Account || !isActive(res.Account)) {
          refused.push({ accountId, reason: `not ACTIVE in the organization (${state ?? 'no state'})` });
          continue;
        }
        ouPath = await ouPathOf(org, accountId);
      } catch (err) {
        if ((err as { name?: unknown }).name === 'AccountNotFoundException') {
          refused.push({ accountId, reason: 'not an account of this organization' });
          continue;
        }
        throw new OrgListingError(`reading account ${accountId} from Organizations`, err);
      }
      if (excludedIds.has(accountId)) {
        refused.push({ accountId, reason: 'listed in organization.excludeAccounts' });
      } else if (targets && !under(ouPath, targets)) {
        refused.push({ accountId, reason: `not under organization.targets (${targets.join(', ')})` });
      } else if (flags.ous.length > 0 && !under(ouPath, flags.ous)) {
        refused.push({ accountId, reason: `not under --ou ${flags.ous.join(', ')}` });
      } else {
        governed.push({ accountId, name, ouPath });
      }
    }
    return { governed, refused, excluded };
  }

  const starts = flags.ous.length > 0 ? flags.ous : (targets ?? []);
  const found = new Map<string, OrgAccount>();
  const visited = new Set<string>();
  const walk = async (parentId: string, ouPath: string[]): Promise<void> => {
    if (visited.has(parentId)) return;
    visited.add(parentId);
    for await (const page of paginateListAccountsForParent({ client: org }, { ParentId: parentId })) {
      for (const a of page.Accounts ?? []) {
        if (!a.Id || !isActive(a)) continue;
        if (targets && !under(ouPath, targets)) continue;
        if (excludedIds.has(a.Id)) {
          excluded += 1;
          continue;
        }
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
  };
  for (const start of starts) {
    try {
      const base = start.startsWith('r-') ? [] : [...(await ouPathOf(org, start)), start];
      await walk(start, base);
    } catch (err) {
      throw new OrgListingError(`reading ${start} from Organizations`, err);
    }
  }
  governed.push(...[...found.values()].sort((a, b) => a.accountId.localeCompare(b.accountId)));
  return { governed, refused, excluded };
}

const ROLE_UNUSABLE = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'NoSuchEntity',
  'RegionDisabledException',
]);
const THROTTLED = new Set([
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'SlowDown',
]);

/** Why an account could not be read, in one sentence (never credentials: only the error's name and message). */
class AccountReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccountReadError';
  }
}

function errorName(err: unknown): string {
  const name = (err as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : 'Error';
}

function attemptsOf(err: unknown): number | null {
  const n = (err as { $metadata?: { attempts?: unknown } } | null)?.$metadata?.attempts;
  return typeof n === 'number' ? n : null;
}

/**
 * The member role's credentials, assumed now (so that a role that cannot be used is reported before any IAM call)
 * and again five minutes before they expire.
 */
async function memberCredentials(sts: STSClient, roleArn: string): Promise<MemberCredentials> {
  const assume = async () => {
    let res: AssumeRoleCommandOutput;
    try {
      res = await sts.send(
        new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: INVENTORY_SESSION_NAME }),
      );
    } catch (err) {
      const name = errorName(err);
      if (ROLE_UNUSABLE.has(name)) {
        throw new AccountReadError(
          `cannot assume ${roleArn} (${name}: ${messageOf(err)}): the role is missing there or does not trust ` +
            `these credentials (the spoke stack's ${DEFAULT_ROLE_NAME} role trusts principals of the management and ` +
            'hub accounts that their own IAM policies let assume it; else name a role you may assume with --role-name)',
        );
      }
      if (THROTTLED.has(name)) {
        const attempts = attemptsOf(err);
        throw new AccountReadError(
          `sts:AssumeRole of ${roleArn} throttled past the SDK's retries (${name}${attempts ? `, ${attempts} attempts` : ''})`,
        );
      }
      throw err;
    }
    const c = res.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) {
      throw new AccountReadError(`sts:AssumeRole of ${roleArn} answered without credentials`);
    }
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
      ...(c.Expiration ? { expiration: c.Expiration } : {}),
    };
  };
  let current = await assume();
  let renewing: Promise<typeof current> | null = null;
  return async () => {
    const expiry = current.expiration?.getTime();
    if (expiry === undefined || expiry - REFRESH_BEFORE_MS > Date.now()) return current;
    renewing ??= assume().finally(() => {
      renewing = null;
    });
    current = await renewing;
    return current;
  };
}

/** The reason an account's read failed, for the summary and stderr. */
function readFailure(err: unknown): string {
  if (err instanceof AccountReadError) return err.message;
  const name = errorName(err);
  if (THROTTLED.has(name)) {
    const attempts = attemptsOf(err);
    return `IAM throttled past the SDK's retries (${name}${attempts ? `, ${attempts} attempts` : ''})`;
  }
  const aws = awsProblem(err);
  if (aws) return aws;
  return `${name}: ${messageOf(err)}`;
}

/** Progress on a terminal only: accounts read so far, rewritten in place, cleared at the end. */
class OrgProgress {
  private shown = false;
  constructor(
    private readonly io: CliIO,
    private readonly total: number,
  ) {}
  update(done: number, keys: number): void {
    if (!this.io.stderr.isTTY) return;
    writeControl(this.io.stderr, `\r\x1b[Kinventory: ${done}/${this.total} account(s) read, ${keys} key(s)`);
    this.shown = true;
  }
  done(): void {
    if (this.shown) writeControl(this.io.stderr, '\r\x1b[K');
    this.shown = false;
  }
}

function summaryTable(outcomes: readonly AccountOutcome[], terminal?: TerminalFacts): string {
  const header = ['ACCOUNT', 'NAME', 'POLICY', 'KEYS', 'VIOLATIONS', 'RESULT'];
  const body = outcomes.map((o) => [
    o.accountId,
    o.name || '-',
    o.policyVersion ? `${o.policyVersion} (${o.policyOverride ?? 'base'})` : '-',
    o.error === null ? String(o.keys) : '-',
    o.error === null ? String(o.withViolations) : '-',
    o.error === null ? 'ok' : `error: ${o.error}`,
  ]);
  return renderTable(header, body, terminal);
}

/** Runs `keyguard inventory --org`; returns the exit code. Never calls process.exit. */
export async function runOrgInventory(
  opts: InventoryOptions,
  io: CliIO,
  deps: InventoryDeps,
): Promise<number> {
  let progress: OrgProgress | null = null;
  tagInventoryClients(deps);
  try {
    if (opts.json && opts.csv) throw new UsageError('--json and --csv: choose one output format');
    const flags = parseOrgFlags(opts);
    const failOn = failOnFlag(opts);
    const policy = await inventoryPolicy(opts, io, deps);
    const { config } = policy;
    if (!config.organization && flags.ous.length === 0 && flags.accounts.length === 0) {
      throw new UsageError(
        `--org: ${visible(policy.source === 'defaults' ? 'defaults' : policy.label)} has no "organization" settings: configure organization.targets, or name the ` +
          'accounts with --ou and/or --account',
      );
    }
    const { organizations, iamWith } = deps;
    if (!organizations || !iamWith)
      throw new Error('inventory --org needs the Organizations and IAM client factories');
    const roleName = flags.roleName ?? DEFAULT_ROLE_NAME;
    const stores = openStores(deps.doc, await inventoryTables(opts, deps));
    const now = (deps.now ?? (() => new Date()))();

    const caller = await deps.sts.send(new GetCallerIdentityCommand({}));
    if (!caller.Account || !caller.Arn) throw new Error('STS GetCallerIdentity returned no account');
    const partition = caller.Arn.split(':')[1] || 'aws';
    const selection = await selectAccounts(organizations, config.organization, flags);

    const baseVersion = policyVersion(config);
    const outcomes: AccountOutcome[] = selection.refused.map((r) => ({
      accountId: r.accountId,
      name: '',
      policyVersion: null,
      policyOverride: null,
      keys: 0,
      withViolations: 0,
      error: `not read: ${r.reason}`,
    }));
    const rows: OrgInventoryRow[] = [];
    if (opts.csv) io.stdout.write(csvRecord(ORG_CSV_HEADER));
    const notes = new Set<string>();
    progress = new OrgProgress(io, selection.governed.length);
    let done = 0;
    progress.update(0, 0);
    const read = await mapLimit(selection.governed, flags.concurrency, async (account) => {
      const applied = effectivePolicy(config, baseVersion, config.overrides, account);
      const outcome: AccountOutcome = {
        accountId: account.accountId,
        name: account.name,
        policyVersion: applied.policyVersion,
        policyOverride: applied.appliedOverride,
        keys: 0,
        withViolations: 0,
        error: null,
      };
      try {
        // The caller's own account is read with the caller's credentials, as `keyguard inventory` does (the hub's
        // account has no member role: the hub governs it directly).
        const iam =
          account.accountId === caller.Account
            ? deps.iam
            : iamWith(
                await memberCredentials(
                  deps.sts,
                  `arn:${partition}:iam::${account.accountId}:role/${roleName}`,
                ),
              );
        const listing = await readAccount({
          iam,
          accountId: account.accountId,
          config: applied.policy,
          policyVersion: applied.policyVersion,
          stores,
          now,
          ...(deps.snapshot ? { snapshot: deps.snapshot } : {}),
          onRow: (row) => {
            const full: OrgInventoryRow = {
              ...row,
              accountName: account.name,
              policyVersion: applied.policyVersion,
              policyOverride: applied.appliedOverride,
            };
            rows.push(full);
            outcome.keys += 1;
            if (row.violations.length > 0) outcome.withViolations += 1;
            if (opts.json) io.stdout.write(`${JSON.stringify(full)}\n`);
            else if (opts.csv) {
              io.stdout.write(
                csvRecord([
                  ...csvFields(full),
                  full.accountName,
                  full.policyVersion,
                  full.policyOverride ?? '',
                ]),
              );
            }
          },
        });
        if (listing.unusedNotShown) notes.add(listing.unusedNotShown);
      } catch (err) {
        outcome.error = readFailure(err);
      }
      done += 1;
      progress?.update(done, rows.length);
      return outcome;
    });
    progress.done();
    outcomes.push(...read);
    outcomes.sort((a, b) => a.accountId.localeCompare(b.accountId));

    const failed = outcomes.filter((o) => o.error !== null);
    const withViolations = rows.filter((r) => r.violations.length > 0).length;
    const lines = [
      `Accounts: ${outcomes.length} (${outcomes.length - failed.length} read, ${failed.length} not read)` +
        `${selection.excluded > 0 ? `; ${selection.excluded} left out by organization.excludeAccounts` : ''}. ` +
        `Keys: ${rows.length} (${withViolations} with violations). Read-only: nothing was changed, recorded or sent.`,
      // The base policy; each account's own (an override's) is in its POLICY column.
      policyLine(policy),
    ];
    if (stores.approvals === null) {
      lines.push(
        `Approvals are unknown without the approvals table (--approvals-table or ${APPROVALS_TABLE_ENV}): approved violations are shown as violations.`,
      );
    }
    if (stores.known === null && stores.approvals === null) {
      lines.push(
        `Last reviews are unknown without the keys table (--keys-table or ${KEYS_TABLE_ENV}): REVIEW_OVERDUE is not shown.`,
      );
    }
    lines.push(...notes);
    const table =
      outcomes.length > 0
        ? // The facts are stdout's: with --json/--csv this summary goes to stderr, full width.
          `${summaryTable(outcomes, opts.json || opts.csv ? undefined : io.terminal)}\n\n`
        : 'No governed account matched.\n\n';
    const summary = `${table}${lines.join('\n')}\n`;
    if (opts.json || opts.csv) {
      io.stderr.write(summary);
    } else {
      rows.sort((a, b) => a.accountId.localeCompare(b.accountId));
      if (rows.length > 0) io.stdout.write(`${inventoryTable(rows, io.terminal)}\n\n`);
      else io.stdout.write('No Bedrock API keys in the accounts read.\n\n');
      io.stdout.write(summary);
    }
    for (const f of failed)
      problem(io, `account ${f.accountId}${f.name ? ` (${f.name})` : ''}`, f.error ?? '');
    return withPosture(
      failed.length > 0 ? EXIT_ACCOUNTS_UNREAD : EXIT_OK,
      failOn,
      failOn ? countFailing(rows, failOn) : 0,
      'keys as read now, in the accounts read',
      io,
    );
  } catch (err) {
    progress?.done();
    if (err instanceof UsageError || err instanceof StackLookupError) {
      failure(io, err.message);
      return EXIT_INPUT;
    }
    // One line naming the call, region and profile that failed, and what to do (lambda/cli/aws-errors.ts).
    const listing = err instanceof OrgListingError;
    const code = await reportAwsFailure(io, listing ? err.cause : err, {
      command: 'inventory --org',
      ...(listing
        ? {
            service: 'Organizations',
            operation: 'ListAccountsForParent',
            permissions: ORG_LISTING_PERMISSIONS,
          }
        : {
            service: 'IAM',
            operation: 'ListServiceSpecificCredentials',
            permissions: INVENTORY_PERMISSIONS,
          }),
      ...awsWhere(deps.env ?? process.env),
    });
    if (code !== null) return code;
    if (err instanceof OrgListingError) {
      // Not an AWS failure (no answer from AWS): named with what was being read.
      const answered = (err.cause as { $metadata?: unknown } | null)?.$metadata !== undefined;
      const reason = answered ? null : awsProblem(err.cause);
      problem(
        io,
        `inventory --org: ${err.where}`,
        `${reason ?? `${errorName(err.cause)}: ${messageOf(err.cause).replace(/\.+$/, '')}`}. Listing the organization needs organizations:ListChildren, ` +
          'organizations:ListAccountsForParent, organizations:ListParents and organizations:DescribeAccount (the ' +
          'management account or the delegated administrator)',
      );
      return EXIT_INPUT;
    }
    const aws = awsProblem(err);
    if (aws) {
      problem(io, 'inventory --org', aws);
      return EXIT_INPUT;
    }
    problem(io, 'inventory --org failed', messageOf(err));
    return EXIT_FAILURE;
  }
}
