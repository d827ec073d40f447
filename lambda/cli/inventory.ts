import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient, type IAMClientConfig } from '@aws-sdk/client-iam';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { DynamoAuditLog } from '../adapters/audit-store';
import { IAM_REGION } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
import { IamKeyDirectory } from '../adapters/iam';
import {
  AccountSnapshot,
  CredentialReportUnavailableError,
  listBedrockKeysPage,
  type SnapshotOptions,
} from '../adapters/iam-inventory';
import { DynamoUsageStore } from '../adapters/usage-store';
import { evaluate } from '../domain/evaluate';
import type { KeyMetadata, KnownKey } from '../domain/pipeline';
import {
  EMPTY_HISTORY,
  type Owner,
  topSeverity,
  type Violation,
  type WaivedViolation,
} from '../domain/types';
import { type Config, ConfigError, policyVersion } from '../shared/config';
import { visible } from '../shared/visible-text';
import { awsWhere, DENIED, NO_CREDENTIALS, REJECTED, reportAwsFailure, tagAwsErrors } from './aws-errors';
import { csvRecord } from './csv';
import { type ChosenPolicy, choosePolicy, DeployedPolicyError, policyLine } from './deployed-policy';
import { countFailing, FailOnError, parseFailOn, withPosture } from './fail-on';
import { renderTable, violationsCell } from './format';
import { messageOf } from './inputs';
import {
  type CliIO,
  EXIT_FAILURE,
  EXIT_INPUT,
  EXIT_OK,
  failure,
  problem,
  type TerminalFacts,
  writeControl,
  writeStyled,
} from './io';
import {
  type AwsRun,
  awsTarget,
  clientConfig,
  type DeployedStack,
  StackLookupError,
  stackValue,
} from './stack-outputs';

/**
 * `keyguard inventory`: every Bedrock key of the live account, read-only, through the same code as the sweep
 * (`listBedrockKeysPage` pages of `ListServiceSpecificCredentials(AllUsers)`, the bulk `AccountSnapshot` of
 * users' tags, policies and other credentials) and the same `evaluate()`. Nothing is written anywhere, nothing is
 * enforced, no notice is sent: it shows what the policy says about each key now.
 *
 * AWS access goes through the standard SDK credential and endpoint chain (profiles, SSO, environment,
 * `AWS_ENDPOINT_URL_*`). The IAM calls are reads; `GenerateCredentialReport` only (re)builds IAM's credential
 * report, which IAM reuses for 4 hours. With a keys table (`--keys-table` or KEYGUARD_KEYS_TABLE) each key's
 * record is read (GetItem) for its last review, known creator and history. With a usage table (`--usage-table` or
 * KEYGUARD_USAGE_TABLE) each key's last use is read (BatchGetItem, one per page) and, when the policy tracks
 * usage and a use was ever recorded (the tracking start, read with GetItem), UNUSED is evaluated as the sweep does.
 */

/** Environment variable naming the keys table (the stack output KeysTableName). */
export const KEYS_TABLE_ENV = 'KEYGUARD_KEYS_TABLE';

export interface InventoryOptions {
  json?: boolean;
  csv?: boolean;
  /**
   * Policy config file, which wins over the deployed policy; default the deployed stack's effective policy when a
   * parameter names it (lambda/cli/deployed-policy.ts), else `keyguard.config.json` in cwd when present, else the
   * built-in defaults.
   */
  config?: string;
  /** SSM parameter of the deployed effective policy; default KEYGUARD_POLICY_PARAMETER, else the stack output. */
  policyParameter?: string;
  /** Keys table to read last reviews from; default KEYGUARD_KEYS_TABLE, else none ("unknown"). */
  keysTable?: string;
  /** Approvals table: approved codes show as waived, and reviews count; default KEYGUARD_APPROVALS_TABLE. */
  approvalsTable?: string;
  /** Usage table: last use per key, and UNUSED; default KEYGUARD_USAGE_TABLE, else none ("unknown"). */
  usageTable?: string;
  /** Every governed account of the organization (`keyguard inventory --org`, lambda/cli/inventory-org.ts). */
  org?: boolean;
  /** --org only: the member role to assume; default organization.memberRoleName. */
  roleName?: string;
  /** --org only: accounts under these OUs (or the root) only. */
  ou?: string[];
  /** --org only: these accounts only. */
  account?: string[];
  /** --org only: accounts read at once (1..50, default 5), as given on the command line. */
  concurrency?: string;
  /** Exit 1 when a live key has a violation at or above this severity (lambda/cli/fail-on.ts). */
  failOn?: string;
}

export const APPROVALS_TABLE_ENV = 'KEYGUARD_APPROVALS_TABLE';

/** Environment variable naming the usage table (flow 3's last use per key). */
export const USAGE_TABLE_ENV = 'KEYGUARD_USAGE_TABLE';

/** AWS access, injected so that tests can use mocked clients and an embedded DynamoDB. */
export interface InventoryDeps {
  iam: IAMClient;
  sts: STSClient;
  /** Read only when a keys, approvals or usage table is named. */
  doc: DynamoDBDocumentClient;
  /** Read only when the deployed policy's parameter is named (GetParameter). */
  ssm?: SSMClient;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  snapshot?: SnapshotOptions;
  /** --org only: Organizations through the standard chain (management account or delegated administrator). */
  organizations?: OrganizationsClient;
  /** --org only: an IAM client acting with a member role's credentials, through the same endpoint chain. */
  iamWith?: (credentials: MemberCredentials) => IAMClient;
  /** The deployed stack, read for the tables not named by a flag or variable; none: they stay unknown. */
  stack?: DeployedStack;
}

/** Credentials an IAM client is given (a member role's, refreshed before they expire). */
export type MemberCredentials = NonNullable<IAMClientConfig['credentials']>;

/**
 * Clients through the standard SDK credential and endpoint chain, in the run's region and with its profile
 * (--region, --profile; else AWS_REGION, AWS_PROFILE, us-east-1), and the deployed stack of the run.
 */
export function defaultInventoryDeps(env: NodeJS.ProcessEnv = process.env, aws?: AwsRun): InventoryDeps {
  const target = aws?.target ?? awsTarget({}, env);
  const config = clientConfig(target);
  return {
    iam: new IAMClient(config),
    sts: new STSClient(config),
    doc: documentClient(new DynamoDBClient(config)),
    ssm: new SSMClient(config),
    env,
    // Organizations and IAM are global services with their endpoints in us-east-1.
    organizations: new OrganizationsClient(clientConfig(target, IAM_REGION)),
    // A member role's credentials replace the profile's; the profile still chooses the endpoint settings.
    iamWith: (credentials) => new IAMClient({ ...config, credentials }),
    ...(aws ? { stack: aws.stack } : {}),
  };
}

/**
 * The tables of a run: each from its flag (or variable, which commander reads into the flag), else its variable,
 * else the deployed stack's output (announced on stderr); none of them is required. An explicit --stack that
 * cannot be read is a UsageError.
 */
export async function inventoryTables(opts: InventoryOptions, deps: InventoryDeps): Promise<Tables> {
  const env = deps.env ?? process.env;
  try {
    const keysTable = await stackValue('keysTable', opts.keysTable, env, deps.stack);
    const approvalsTable = await stackValue('approvalsTable', opts.approvalsTable, env, deps.stack);
    const usageTable = await stackValue('usageTable', opts.usageTable, env, deps.stack);
    deps.stack?.announce();
    return {
      keysTable: keysTable ?? null,
      approvalsTable: approvalsTable ?? null,
      usageTable: usageTable ?? null,
    };
  } catch (err) {
    if (err instanceof StackLookupError) throw new UsageError(err.message);
    throw err;
  }
}

/** One key as the inventory shows it (the `--json` line). */
export interface InventoryRow {
  accountId: string;
  userName: string;
  keyId: string;
  owner: Owner;
  status: KeyMetadata['status'];
  createdAt: string | null;
  expiresAt: string | null;
  neverExpires: boolean;
  /** ISO time of the last review; null when the keys table has none; "unknown" without a keys table. */
  lastReviewAt: string | null | 'unknown';
  /** ISO time of the last use that could have been this key; null when none is on record; "unknown" without a usage table. */
  lastUsedAt: string | null | 'unknown';
  violations: Violation[];
  /** Violations an active approval covers (only known with the approvals table). */
  waived?: WaivedViolation[];
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Keys-table reads per page run this many at a time. */
const KEY_READS_IN_FLIGHT = 16;

export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export { csvField } from './csv';

export const CSV_HEADER = [
  'account_id',
  'user_name',
  'key_id',
  'owner',
  'owner_source',
  'status',
  'created_at',
  'expires_at',
  'never_expires',
  'last_review_at',
  'last_used_at',
  'top_severity',
  'violations',
] as const;

export function csvRow(r: InventoryRow): string {
  return csvRecord(csvFields(r));
}

export function csvFields(r: InventoryRow): string[] {
  return [
    r.accountId,
    r.userName,
    r.keyId,
    r.owner.value ?? '',
    r.owner.source,
    r.status,
    r.createdAt ?? '',
    r.neverExpires ? 'never' : (r.expiresAt ?? ''),
    String(r.neverExpires),
    r.lastReviewAt ?? '',
    r.lastUsedAt ?? '',
    topSeverity(r.violations),
    r.violations.map((v) => v.code).join(';'),
  ];
}

function day(iso: string | null): string {
  return iso ? iso.slice(0, 10) : '-';
}

export function inventoryTable(rows: readonly InventoryRow[], terminal?: TerminalFacts): string {
  const header = [
    'ACCOUNT',
    'USER',
    'KEY ID',
    'OWNER (SOURCE)',
    'STATUS',
    'CREATED',
    'EXPIRES',
    'LAST REVIEW',
    'LAST USED',
    'VIOLATIONS',
  ];
  const body = rows.map((r) => [
    r.accountId,
    r.userName,
    r.keyId,
    `${r.owner.value ?? '(none)'} (${r.owner.source})`,
    r.status,
    day(r.createdAt),
    r.neverExpires ? 'never' : day(r.expiresAt),
    r.lastReviewAt === 'unknown' ? 'unknown' : r.lastReviewAt === null ? 'never' : day(r.lastReviewAt),
    r.lastUsedAt === 'unknown' ? 'unknown' : r.lastUsedAt === null ? 'never' : day(r.lastUsedAt),
    violationsCell(r.violations),
  ]);
  return renderTable(header, body, terminal);
}

/** Progress on a terminal only: one line, rewritten in place, cleared at the end. */
class Progress {
  private shown = false;
  constructor(private readonly io: CliIO) {}
  update(pages: number, keys: number): void {
    if (!this.io.stderr.isTTY) return;
    writeControl(this.io.stderr, `\r\x1b[Kinventory: ${pages} page(s) fetched, ${keys} key(s) evaluated`);
    this.shown = true;
  }
  done(): void {
    if (this.shown) writeControl(this.io.stderr, '\r\x1b[K');
    this.shown = false;
  }
}

/** What `inventory` reads, named after the denied action when AWS denies one. */
export const INVENTORY_PERMISSIONS =
  'iam:ListServiceSpecificCredentials, iam:GetAccountAuthorizationDetails, iam:GenerateCredentialReport, ' +
  'iam:GetCredentialReport, iam:ListUserTags, sts:GetCallerIdentity, and dynamodb:GetItem on the keys table, ' +
  'dynamodb:Query on the approvals table, dynamodb:GetItem and BatchGetItem on the usage table when named';

/** Every AWS failure of the run names the call that failed (lambda/cli/aws-errors.ts). */
export function tagInventoryClients(deps: InventoryDeps): void {
  for (const client of [deps.iam, deps.sts, deps.doc, deps.organizations, deps.ssm])
    if (client) tagAwsErrors(client);
}

/**
 * A sentence for what stopped reading one account of `inventory --org` (its line names the account), or null
 * when it is not an AWS access problem. A whole command's AWS failure is reported by `reportAwsFailure`.
 */
export function awsProblem(err: unknown): string | null {
  const name = (err as { name?: unknown } | null)?.name;
  const message = messageOf(err);
  if (typeof name !== 'string') return null;
  if (NO_CREDENTIALS.has(name) || /could not load credentials/i.test(message)) {
    return (
      `no AWS credentials found (${message}). Configure them as for the AWS CLI: a profile ` +
      '(AWS_PROFILE), SSO (aws sso login), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY'
    );
  }
  if (REJECTED.has(name)) return `AWS rejected the credentials (${name}: ${message})`;
  if (DENIED.has(name)) {
    return (
      `access denied (${message}). The inventory needs iam:ListServiceSpecificCredentials, ` +
      'iam:GetAccountAuthorizationDetails, iam:GenerateCredentialReport, iam:GetCredentialReport, ' +
      'iam:ListUserTags, sts:GetCallerIdentity, dynamodb:GetItem on the keys table, dynamodb:Query on the approvals table ' +
      'and dynamodb:GetItem and dynamodb:BatchGetItem on the usage table if named'
    );
  }
  if (err instanceof CredentialReportUnavailableError) return message;
  if ((err as { $metadata?: unknown }).$metadata !== undefined) return `AWS error ${name}: ${message}`;
  return null;
}

/** The --fail-on severity, or undefined; a bad value is bad usage. */
export function failOnFlag(opts: InventoryOptions): ReturnType<typeof parseFailOn> {
  try {
    return parseFailOn(opts.failOn);
  } catch (err) {
    if (err instanceof FailOnError) throw new UsageError(err.message);
    throw err;
  }
}

/** --role-name, --ou, --account and --concurrency only mean something with --org. */
export function refuseOrgOnlyFlags(opts: InventoryOptions): void {
  if (opts.org) return;
  const given = [
    opts.roleName !== undefined ? '--role-name' : null,
    opts.ou && opts.ou.length > 0 ? '--ou' : null,
    opts.account && opts.account.length > 0 ? '--account' : null,
    opts.concurrency !== undefined ? '--concurrency' : null,
  ].filter((f): f is string => f !== null);
  if (given.length > 0) throw new UsageError(`${given.join(', ')}: only with --org`);
}

interface Listing {
  rows: InventoryRow[];
  /** REVIEW_OVERDUE was left out: without the keys table the last review is unknown. */
  reviewsUnknown: boolean;
  /** No approvals table: approved violations show as violations. */
  approvalsUnknown: boolean;
  /** Why UNUSED is not shown although the policy asks for it; null when it is shown or not asked for. */
  unusedNotShown: string | null;
}

/**
 * The policy an inventory evaluates with (lambda/cli/deployed-policy.ts): --config, else the deployed stack's
 * effective policy, else the local file or the defaults. A bad file or an unusable parameter is a UsageError.
 */
export async function inventoryPolicy(
  opts: InventoryOptions,
  io: CliIO,
  deps: InventoryDeps,
): Promise<ChosenPolicy> {
  const { ssm, stack } = deps;
  try {
    return await choosePolicy(opts, io, {
      env: deps.env ?? process.env,
      ...(ssm ? { ssm: () => ssm } : {}),
      ...(stack ? { stackParameter: () => stack.value('policyParameter') } : {}),
    });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof DeployedPolicyError) throw new UsageError(err.message);
    throw err;
  }
}

/** Runs `keyguard inventory`; returns the exit code. Never calls process.exit. */
export async function runInventory(opts: InventoryOptions, io: CliIO, deps: InventoryDeps): Promise<number> {
  const progress = new Progress(io);
  tagInventoryClients(deps);
  try {
    if (opts.json && opts.csv) throw new UsageError('--json and --csv: choose one output format');
    refuseOrgOnlyFlags(opts);
    const failOn = failOnFlag(opts);
    const policy = await inventoryPolicy(opts, io, deps);
    const config = policy.config;
    const tables = await inventoryTables(opts, deps);
    const { rows, reviewsUnknown, approvalsUnknown, unusedNotShown } = await listKeys(
      opts,
      config,
      tables,
      io,
      deps,
      progress,
    );
    progress.done();

    const withViolations = rows.filter((r) => r.violations.length > 0).length;
    const lines = [
      `Keys: ${rows.length} (${withViolations} with violations). Read-only: nothing was changed, recorded or sent.`,
      policyLine(policy),
    ];
    if (approvalsUnknown) {
      lines.push(
        `Approvals are unknown without the approvals table (--approvals-table or ${APPROVALS_TABLE_ENV}): approved violations are shown as violations.`,
      );
    }
    if (reviewsUnknown) {
      lines.push(
        `Last reviews are unknown without the keys table (--keys-table or ${KEYS_TABLE_ENV}): REVIEW_OVERDUE is not shown.`,
      );
    }
    if (unusedNotShown) lines.push(unusedNotShown);
    const summary = `${lines.join('\n')}\n`;
    if (opts.json || opts.csv) {
      io.stderr.write(summary);
    } else {
      if (rows.length > 0) writeStyled(io.stdout, `${inventoryTable(rows, io.terminal)}\n\n`);
      else io.stdout.write('No Bedrock API keys in this account.\n\n');
      io.stdout.write(summary);
    }
    return withPosture(EXIT_OK, failOn, failOn ? countFailing(rows, failOn) : 0, 'keys as read now', io);
  } catch (err) {
    progress.done();
    if (err instanceof UsageError || err instanceof StackLookupError) {
      failure(io, err.message);
      return EXIT_INPUT;
    }
    const code = await reportAwsFailure(io, err, {
      command: 'inventory',
      service: 'IAM',
      operation: 'ListServiceSpecificCredentials',
      ...awsWhere(deps.env ?? process.env),
      permissions: INVENTORY_PERMISSIONS,
    });
    if (code !== null) return code;
    const aws = awsProblem(err);
    if (aws) {
      problem(io, 'inventory', aws);
      return EXIT_INPUT;
    }
    problem(io, 'inventory failed', messageOf(err));
    return EXIT_FAILURE;
  }
}

export interface Tables {
  keysTable: string | null;
  approvalsTable: string | null;
  usageTable: string | null;
}

/** The tables' readers (each only when its table is named); shared by every account of one run. */
export interface AccountStores {
  /** Only getKnownKey (GetItem on the keys table) is ever called: the decisions table is never touched. */
  known: DynamoAuditLog | null;
  /** Only recordsFor (Query on the approvals table) is ever called. */
  approvals: DynamoApprovalsStore | null;
  /** Only lastUsedFor (BatchGetItem) and the tracking start (GetItem) are read from the usage table. */
  usage: DynamoUsageStore | null;
  usageTable: string | null;
}

export function openStores(doc: DynamoDBDocumentClient, tables: Tables): AccountStores {
  return {
    known: tables.keysTable
      ? new DynamoAuditLog(doc, { decisionsTable: '', keysTable: tables.keysTable })
      : null,
    approvals: tables.approvalsTable ? new DynamoApprovalsStore(doc, tables.approvalsTable) : null,
    usage: tables.usageTable ? new DynamoUsageStore(doc, tables.usageTable) : null,
    usageTable: tables.usageTable,
  };
}

/** One account to read: its IAM client (the caller's own, or the member role's) and the policy it is decided by. */
export interface AccountRead {
  iam: IAMClient;
  accountId: string;
  config: Config;
  policyVersion: string;
  stores: AccountStores;
  now: Date;
  snapshot?: SnapshotOptions;
  /** Called with each row as soon as it is evaluated (for --json/--csv streaming). */
  onRow?: (row: InventoryRow) => void;
  /** Called after each page with the pages fetched and keys evaluated so far in this account. */
  onPage?: (pages: number, keys: number) => void;
}

export interface AccountListing {
  rows: InventoryRow[];
  /** Why UNUSED is not shown although the policy asks for it; null when it is shown or not asked for. */
  unusedNotShown: string | null;
}

/** Lists and evaluates every key of one account; returns every row. */
async function listKeys(
  opts: InventoryOptions,
  config: Config,
  tables: Tables,
  io: CliIO,
  deps: InventoryDeps,
  progress: Progress,
): Promise<Listing> {
  const now = (deps.now ?? (() => new Date()))();
  const caller = await deps.sts.send(new GetCallerIdentityCommand({}));
  const accountId = caller.Account;
  if (!accountId) throw new Error('STS GetCallerIdentity returned no account');
  const stores = openStores(deps.doc, tables);
  if (opts.csv) io.stdout.write(csvRecord(CSV_HEADER));
  progress.update(0, 0);
  const { rows, unusedNotShown } = await readAccount({
    iam: deps.iam,
    accountId,
    config,
    policyVersion: policyVersion(config),
    stores,
    now,
    ...(deps.snapshot ? { snapshot: deps.snapshot } : {}),
    onRow: (row) => {
      if (opts.json) io.stdout.write(`${JSON.stringify(row)}\n`);
      else if (opts.csv) io.stdout.write(csvRow(row));
    },
    onPage: (pages, keys) => progress.update(pages, keys),
  });
  return {
    rows,
    reviewsUnknown: stores.known === null && stores.approvals === null,
    approvalsUnknown: stores.approvals === null,
    unusedNotShown,
  };
}

/**
 * Reads one account's keys through the sweep's code (pages of ListServiceSpecificCredentials(AllUsers), the bulk
 * AccountSnapshot) and evaluates each with `evaluate()`. The same for `keyguard inventory` (the caller's account)
 * and `keyguard inventory --org` (each member account, through its member role's IAM client).
 */
export async function readAccount(read: AccountRead): Promise<AccountListing> {
  const { iam, accountId, config, stores, now } = read;
  const version = read.policyVersion;
  const directory = new IamKeyDirectory(() => iam);
  const { known, approvals: approvalSource, usage: usageStore, usageTable } = stores;
  // Read-only, as the sweep: tracking starts with the first use the key-usage function recorded.
  const trackingSince = usageStore ? await usageStore.trackingSince(accountId) : null;
  // As the sweep: UNUSED only when the policy tracks usage and some use was ever recorded (otherwise "unused"
  // cannot be told from "not tracked"), and never measured from before tracking started.
  const policyAsksUnused = config.usage.regions.length > 0 && config.maxIdleDays !== null;
  const evaluatesUnused = policyAsksUnused && trackingSince !== null;
  let unusedNotShown: string | null = null;
  if (policyAsksUnused && !usageTable) {
    unusedNotShown = `Last uses are unknown without the usage table (--usage-table or ${USAGE_TABLE_ENV}): UNUSED is not shown.`;
  } else if (policyAsksUnused && !evaluatesUnused) {
    unusedNotShown = `UNUSED is not shown: no Bedrock API key use is recorded in ${visible(usageTable ?? '')} yet (usage tracking starts with the first recorded use).`;
  }

  // The snapshot (authorization details, credential report) loads while the first key page is fetched.
  const snapshotLoading = AccountSnapshot.load(iam, accountId, read.snapshot);
  snapshotLoading.catch(() => undefined);
  const rows: InventoryRow[] = [];
  let pages = 0;
  let marker: string | null = null;
  do {
    const page = await listBedrockKeysPage(iam, marker);
    pages += 1;
    read.onPage?.(pages, rows.length);
    const snapshot = await snapshotLoading;
    const records = await mapLimit(page.keys, KEY_READS_IN_FLIGHT, (k) =>
      known ? known.getKnownKey(accountId, k.keyId) : Promise.resolve<KnownKey | null>(null),
    );
    const approvalRecords = await mapLimit(page.keys, KEY_READS_IN_FLIGHT, (k) =>
      approvalSource ? approvalSource.recordsFor(accountId, k.keyId) : Promise.resolve(null),
    );
    const lastUses =
      usageStore && page.keys.length > 0 ? await usageStore.lastUsedFor(accountId, page.keys) : null;
    for (const [i, meta] of page.keys.entries()) {
      const record = records[i] ?? null;
      const userTags =
        snapshot.userTags(accountId, meta.userName) ??
        (await directory.getUserTags(accountId, meta.userName));
      const facts = await snapshot.userFacts(accountId, meta.userName);
      const approved = approvalRecords[i] ?? null;
      let history = record?.history ?? EMPTY_HISTORY;
      // As the pipeline does: the latest review recorded by an approver resets the review clock.
      if (
        approved?.lastReviewAt &&
        (history.lastReviewAt === null || approved.lastReviewAt > history.lastReviewAt)
      ) {
        history = { ...history, lastReviewAt: approved.lastReviewAt };
      }
      const reviewKnown = known !== null || approved !== null;
      const lastUsedAt = lastUses ? (lastUses.get(meta.keyId) ?? null) : null;
      const d = evaluate(
        {
          ...meta,
          accountId,
          userTags,
          creator: record?.creator ?? null,
          permissions: facts.permissions,
          otherCredentials: facts.otherCredentials,
        },
        {
          config,
          policyVersion: version,
          now,
          trigger: { kind: 'sweep' },
          decisionId: `${now.toISOString()}/inventory/${meta.keyId}`,
          history,
          approvals: approved?.approvals ?? [],
          usage: evaluatesUnused && trackingSince ? { lastUsedAt, trackingSince } : null,
        },
      );
      const row: InventoryRow = {
        accountId,
        userName: meta.userName,
        keyId: meta.keyId,
        owner: d.owner,
        status: meta.status,
        createdAt: meta.createdAt,
        expiresAt: meta.expiresAt,
        neverExpires: d.neverExpires,
        lastReviewAt: reviewKnown ? (history.lastReviewAt ?? null) : 'unknown',
        lastUsedAt: usageStore ? lastUsedAt : 'unknown',
        // Without the keys table the last review is unknown: "overdue" would only be a guess.
        violations: reviewKnown ? d.violations : d.violations.filter((v) => v.code !== 'REVIEW_OVERDUE'),
        ...(d.waived ? { waived: d.waived } : {}),
      };
      rows.push(row);
      read.onRow?.(row);
    }
    read.onPage?.(pages, rows.length);
    marker = page.nextMarker;
  } while (marker);
  return { rows, unusedNotShown };
}
