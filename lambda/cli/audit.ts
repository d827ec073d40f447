import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type Command, Option } from 'commander';
import pkg from '../../package.json';
import { byDecidedAt, type DecisionQuery, DynamoAuditLog } from '../adapters/audit-store';
import { documentClient } from '../adapters/document-client';
import { type EmbeddedDynamo, startEmbeddedDynamo, storeFailure } from '../adapters/embedded-dynamodb';
import { UNOWNED } from '../domain/notice';
import { ocsfJson } from '../domain/ocsf';
import { type Action, type Decision, isViolationCode, VIOLATION_CODES } from '../domain/types';
import { parseTimeInput } from '../shared/time-input';
import { visible } from '../shared/visible-text';
import { AccountNamesError, accountLabel, accountNamesOption, readAccountNames } from './account-names';
import { TABLE_ENV } from './approvals';
import { awsWhere, exitCodesHelp, reportAwsFailure, tagAwsErrors } from './aws-errors';
import { csvRecord } from './csv';
import { countFailing, FailOnError, latestPerKey, parseFailOn, withPosture } from './fail-on';
import { actionLabel, decisionJson, renderTable, violationsCell } from './format';
import { messageOf } from './inputs';
import {
  type CliIO,
  EXIT_FAILURE,
  EXIT_INPUT,
  EXIT_OK,
  failure,
  problem,
  type TerminalFacts,
  writeStyled,
} from './io';
import { DEFAULT_STORE_DIR, REPLAY_TABLES } from './replay';
import {
  type AwsFlags,
  type AwsRun,
  addAwsOptions,
  awsRunOrFail,
  awsTarget,
  clientConfig,
  type DeployedStack,
  StackLookupError,
} from './stack-outputs';
import { lockStore } from './store-lock';

/**
 * `keyguard audit`: reads the decision record back, by key, owner, violation code, action and time, from the
 * embedded store that `keyguard replay` writes or from the deployed decisions table (standard SDK chain).
 * Read-only. What it prints is built from decision fields only: decisions never hold key material.
 */

export const DECISIONS_TABLE_ENV = TABLE_ENV.decisionsTable;
export const KEYS_TABLE_ENV = TABLE_ENV.keysTable;

/** Where decisions are read from: the embedded store (default) or deployed tables. */
export interface AuditSourceOptions {
  /** Embedded store directory; default `.keyguard` (as replay). */
  store?: string;
  /**
   * Deployed decisions table; default KEYGUARD_DECISIONS_TABLE unless --store is given. `true` (a bare --table):
   * the deployed one, named by the variable or the stack's output DecisionsTableName.
   */
  table?: string | true;
  /** Deployed keys table; default KEYGUARD_KEYS_TABLE. */
  keysTable?: string;
}

export interface AuditOptions extends AuditSourceOptions {
  key?: string;
  /** Repeatable: decisions about keys of any of these accounts. */
  account?: string[];
  owner?: string;
  code?: string;
  action?: string;
  since?: string;
  until?: string;
  limit?: string;
  json?: boolean;
  csv?: boolean;
  /** `table` (default), `json` (as --json), `csv` (as --csv) or `ocsf` (one OCSF Detection Finding per line). */
  format?: string;
  /** Names for account ids in the table and the totals (see account-names.ts). */
  accountNames?: string;
  /** Exit 1 when a key's latest decision in the window has a violation at or above this (fail-on.ts). */
  failOn?: string;
}

/** AWS access for deployed tables, injected so tests can point it at an embedded DynamoDB. */
export interface AuditDeps {
  /** Called only when a deployed table is read. */
  doc: () => DynamoDBDocumentClient;
  env?: NodeJS.ProcessEnv;
  /** The deployed stack, read for table names not given by a flag or variable; none: they must be given. */
  stack?: DeployedStack;
  /** keyguard's version, for `--format ocsf` (metadata.product.version); default: package.json's. */
  version?: string;
}

/**
 * DynamoDB through the standard SDK credential and endpoint chain, in the run's region with its profile
 * (--region, --profile; else AWS_REGION, AWS_PROFILE, us-east-1), and the run's deployed stack.
 */
export function defaultAuditDeps(env: NodeJS.ProcessEnv = process.env, aws?: AwsRun): AuditDeps {
  const config = clientConfig(aws?.target ?? awsTarget({}, env));
  return {
    doc: () => documentClient(new DynamoDBClient(config)),
    env,
    ...(aws ? { stack: aws.stack } : {}),
  };
}

/** Bad usage, or nothing to read: exit 2 with the message. */
export class AuditUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditUsageError';
  }
}

/** An open audit store. The embedded one is locked (LevelDB admits one process) until `close()`. */
export interface AuditSource {
  log: DynamoAuditLog;
  /** Whether a keys table can be read (always for the embedded store). */
  hasKeysTable: boolean;
  /** For messages: `store .keyguard` or `table <name>`. */
  label: string;
  /** What to say when DynamoDB has no such table. */
  notFound: string;
  /** Deployed tables (not the embedded store). */
  deployed: boolean;
  close(): Promise<void>;
}

function trimmed(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

/**
 * The deployed tables the options ask for (--table, bare or named, KEYGUARD_DECISIONS_TABLE, or an explicit
 * --stack), each from its flag, else its variable, else the stack's output; undefined: the embedded store.
 */
async function deployedTables(
  opts: AuditSourceOptions,
  deps: AuditDeps,
  store: string | undefined,
  keysTableRequired: boolean,
): Promise<{ table: string; keysTable: string | undefined } | undefined> {
  const env = deps.env ?? process.env;
  const named = opts.table === true ? undefined : trimmed(opts.table);
  const asked = opts.table === true || named !== undefined || deps.stack?.explicit === true;
  if (store && asked) {
    throw new AuditUsageError(
      `--store and ${named || opts.table === true ? '--table' : '--stack'}: choose one source`,
    );
  }
  if (store) return undefined;
  try {
    let fromStack = false;
    let table = named ?? trimmed(env[DECISIONS_TABLE_ENV]);
    if (!table && asked && deps.stack) {
      table = await deps.stack.value('decisionsTable', { flag: '--table NAME' });
      fromStack = true;
    }
    if (!table) {
      if (asked)
        throw new AuditUsageError(`--table: no table name; pass --table NAME or set ${DECISIONS_TABLE_ENV}`);
      return undefined;
    }
    let keysTable = trimmed(opts.keysTable) ?? trimmed(env[KEYS_TABLE_ENV]);
    // The keys table is read from the stack when it is required, or free (the stack was read already).
    if (!keysTable && deps.stack && (keysTableRequired || fromStack)) {
      keysTable = await deps.stack.value(
        'keysTable',
        keysTableRequired ? { flag: '--keys-table' } : undefined,
      );
    }
    deps.stack?.announce();
    return { table, keysTable };
  } catch (err) {
    if (err instanceof StackLookupError) throw new AuditUsageError(err.message);
    throw err;
  }
}

/**
 * Opens the source the options name. An explicit --store wins over KEYGUARD_DECISIONS_TABLE; --store and
 * --table (or --stack) together are refused. A store directory without a database is refused before anything is
 * created.
 */
export async function openAuditSource(
  opts: AuditSourceOptions,
  io: CliIO,
  deps: AuditDeps,
  keysTableRequired: boolean,
): Promise<AuditSource> {
  const store = trimmed(opts.store);
  const deployed = await deployedTables(opts, deps, store, keysTableRequired);
  if (deployed) {
    const { table, keysTable } = deployed;
    if (keysTableRequired && !keysTable) {
      throw new AuditUsageError(
        `--keys-table: no table name; pass --keys-table or set ${KEYS_TABLE_ENV} (stack output KeysTableName)`,
      );
    }
    return {
      log: new DynamoAuditLog(tagAwsErrors(deps.doc()), {
        decisionsTable: table,
        keysTable: keysTable ?? '',
      }),
      hasKeysTable: keysTable !== undefined,
      label: `table ${table}`,
      notFound: `table ${table} or ${keysTable ?? 'its keys table'} not found`,
      deployed: true,
      close: async () => {},
    };
  }
  const storeArg = store ?? DEFAULT_STORE_DIR;
  const dir = resolve(io.cwd, storeArg);
  const noStore = `no audit store at ${storeArg}: run keyguard replay first, or use --table`;
  const missing = new AuditUsageError(noStore);
  // dynalite would create an empty database anywhere: a store is a directory LevelDB has written.
  if (!existsSync(dir) || !statSync(dir).isDirectory() || !existsSync(join(dir, 'CURRENT'))) throw missing;
  let unlock: () => void;
  try {
    unlock = lockStore(dir);
  } catch (err) {
    throw new AuditUsageError(`store ${storeArg}: ${messageOf(err)}`);
  }
  let db: EmbeddedDynamo;
  try {
    db = await startEmbeddedDynamo({ path: dir });
  } catch (err) {
    unlock();
    throw new AuditUsageError(`store ${storeArg}: cannot open (${messageOf(err)})`);
  }
  return {
    log: new DynamoAuditLog(db.doc, REPLAY_TABLES),
    hasKeysTable: true,
    label: `store ${storeArg}`,
    notFound: noStore,
    deployed: false,
    close: async () => {
      try {
        await db.close();
      } finally {
        unlock();
      }
    },
  };
}

/**
 * `--since` (inclusive) and `--until` (exclusive), as in `keyguard replay`: `YYYY-MM-DD` is midnight UTC at the
 * start of that day, so `--since 2026-11-01 --until 2026-11-02` is the whole of 1 November and consecutive
 * windows neither overlap nor leave a gap. A timestamp must name its zone, so nobody's local clock moves the
 * window. Returns the instant itself (the caller makes `--until` exclusive).
 */
export function parseTimeBound(flag: '--since' | '--until', value: string): Date {
  const t = parseTimeInput(value);
  if (t.kind === 'date') return t.start;
  if (t.kind === 'instant') return t.at;
  if (t.kind === 'bad-date')
    throw new AuditUsageError(`${flag}: ${JSON.stringify(value)} is not a calendar date`);
  throw new AuditUsageError(
    `${flag}: got ${JSON.stringify(value)}; allowed: a date YYYY-MM-DD (UTC) or an ISO-8601 timestamp with a ` +
      'zone, e.g. 2026-11-20T09:00:00Z',
  );
}

const ACTIONS: readonly Action[] = ['ALLOW', 'NOTIFY', 'DEACTIVATE', 'DELETE'];
const ACCOUNT_ID = /^\d{12}$/;

/**
 * The accounts `--account` names (repeatable: any of them), each 12 digits; undefined when none is given. A bad
 * value is named exactly as typed (through `visible()`, so it cannot forge output on a terminal).
 */
export function auditAccounts(values: readonly string[] | undefined): Set<string> | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const accounts = new Set<string>();
  for (const value of values) {
    const account = value.trim();
    if (!ACCOUNT_ID.test(account)) {
      throw new AuditUsageError(
        `--account: got ${visible(JSON.stringify(value))}; allowed: an AWS account id of 12 digits`,
      );
    }
    accounts.add(account);
  }
  return accounts;
}

/** `--account-names FILE`, read before the store is opened; a bad file is bad usage. */
export function accountNames(file: string | undefined, cwd: string): Map<string, string> | undefined {
  try {
    return readAccountNames(file, cwd);
  } catch (err) {
    if (err instanceof AccountNamesError) throw new AuditUsageError(err.message);
    throw err;
  }
}

/** Commander's collector for a repeatable option. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The query the filter options describe, validated (without the key's account, resolved later). */
export function auditQuery(opts: AuditOptions): Omit<DecisionQuery, 'key'> & { limit?: number } {
  const q: Omit<DecisionQuery, 'key'> & { limit?: number } = {};
  const owner = trimmed(opts.owner);
  if (opts.owner !== undefined && owner === undefined)
    throw new AuditUsageError('--owner: must not be empty');
  if (owner !== undefined) q.owner = owner;
  if (opts.code !== undefined) {
    const code = opts.code.trim().toUpperCase();
    if (!isViolationCode(code)) {
      throw new AuditUsageError(
        `--code: unknown violation code ${JSON.stringify(opts.code)}; allowed: ${VIOLATION_CODES.join(', ')}`,
      );
    }
    q.code = code;
  }
  if (opts.action !== undefined) {
    const action = opts.action.trim().toUpperCase();
    const known = ACTIONS.find((a) => a === action);
    if (!known) {
      throw new AuditUsageError(
        `--action: unknown action ${JSON.stringify(opts.action)}; allowed: ${ACTIONS.join(', ')}`,
      );
    }
    q.action = known;
  }
  if (opts.since !== undefined) q.since = parseTimeBound('--since', opts.since);
  if (opts.until !== undefined) {
    const until = parseTimeBound('--until', opts.until);
    if (q.since && q.since.getTime() >= until.getTime()) {
      throw new AuditUsageError(
        `--since ${JSON.stringify(opts.since)} is not before --until ${JSON.stringify(opts.until)}: the window is empty`,
      );
    }
    // The store's bound is inclusive and decision times are whole milliseconds: before T is at or before T - 1 ms.
    q.until = new Date(until.getTime() - 1);
  }
  if (opts.limit !== undefined) {
    const n = Number(opts.limit);
    if (!/^\d+$/.test(opts.limit.trim()) || !Number.isSafeInteger(n) || n < 1) {
      throw new AuditUsageError(`--limit: got ${JSON.stringify(opts.limit)}; allowed: a whole number ≥ 1`);
    }
    q.limit = n;
  }
  return q;
}

/** `2026-11-20T09:31:02.000Z` → `2026-11-20 09:31:02Z`. */
function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function trigger(d: Decision): string {
  return d.trigger.eventName ? `${d.trigger.kind} ${d.trigger.eventName}` : d.trigger.kind;
}

export function auditTable(
  decisions: readonly Decision[],
  names?: ReadonlyMap<string, string>,
  terminal?: TerminalFacts,
): string {
  return renderTable(
    ['DECIDED AT', 'ACCOUNT', 'KEY ID', 'USER', 'OWNER', 'ACTION', 'VIOLATIONS', 'TRIGGER'],
    decisions.map((d) => [
      shortTime(d.decidedAt),
      accountLabel(d.accountId, names),
      d.keyId,
      d.userName,
      d.owner.value ?? '(none)',
      actionLabel(d),
      violationsCell(d.violations),
      trigger(d),
    ]),
    terminal,
  );
}

export const AUDIT_CSV_HEADER = [
  'decided_at',
  'decision_id',
  'account_id',
  'key_id',
  'user_name',
  'owner',
  'owner_source',
  'status',
  'action',
  'applied',
  'mode',
  'violations',
  'trigger_kind',
  'event_name',
  'event_id',
  'policy_version',
] as const;

export function auditCsvRow(d: Decision): string {
  return csvRecord([
    d.decidedAt,
    d.decisionId,
    d.accountId,
    d.keyId,
    d.userName,
    d.owner.value ?? '',
    d.owner.source,
    d.status,
    d.action,
    String(d.applied),
    d.mode,
    d.violations.map((v) => v.code).join(';'),
    d.trigger.kind,
    d.trigger.eventName ?? '',
    d.trigger.eventId ?? '',
    d.policyVersion,
  ]);
}

/**
 * `Accounts: 2 (111122223333: 3, 444455556666: 1)` when the decisions are about keys of more than one account
 * (organization mode), else nothing: a single account's listing reads as before.
 */
export function perAccountLine(decisions: readonly Decision[], names?: ReadonlyMap<string, string>): string {
  const counts = new Map<string, number>();
  for (const d of decisions) counts.set(d.accountId, (counts.get(d.accountId) ?? 0) + 1);
  if (counts.size < 2) return '';
  const parts = [...counts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([account, n]) => `${visible(accountLabel(account, names))}: ${n}`);
  return `Accounts: ${counts.size} (${parts.join(', ')})\n`;
}

/** A failure of the embedded store's DynamoDB (dynalite) that is none of the above, or null. */
function embeddedFailure(err: unknown): string | null {
  if ((err as { $metadata?: unknown } | null)?.$metadata === undefined) return null;
  return `AWS error ${String((err as { name?: unknown }).name)}: ${messageOf(err)}`;
}

/**
 * Reports a failed read of the audit source that has a known cause (bad usage, a missing store, the embedded
 * store's disk, an AWS failure of the deployed tables: one line naming service, operation, region and profile,
 * lambda/cli/aws-errors.ts) and returns true; false leaves an unknown failure to the caller.
 */
export async function knownSourceProblem(
  err: unknown,
  io: CliIO,
  command: string,
  source: AuditSource | undefined,
): Promise<boolean> {
  // A stack that could not be read was described already (its line names the call that failed).
  if (err instanceof AuditUsageError || err instanceof StackLookupError) {
    failure(io, err.message);
    return true;
  }
  // Deployed tables (or a failure before the source was opened): AWS answered, or could not be asked.
  if (source === undefined || source.label.startsWith('table ')) {
    const code = await reportAwsFailure(io, err, {
      command,
      service: 'DynamoDB',
      operation: 'Query/Scan',
      ...awsWhere(process.env),
      ...(source ? { resource: source.label } : {}),
    });
    if (code !== null) return true;
  }
  if ((err as { name?: unknown } | null)?.name === 'ResourceNotFoundException') {
    problem(io, command, source?.notFound ?? messageOf(err));
    return true;
  }
  // The embedded store's disk failed (full): named with the store; its lock is released by source.close().
  const disk = storeFailure(err);
  if (disk) {
    problem(io, source?.label ?? command, disk);
    return true;
  }
  const other = embeddedFailure(err);
  if (other) {
    problem(io, command, other);
    return true;
  }
  return false;
}

/**
 * The exit code (and stderr line) of a failed read of the decision record, shared by `audit`, `report` and
 * `preview`: bad usage, a missing store and AWS failures are 2 (EXIT_AWS), anything else 1.
 */
export async function sourceFailure(
  err: unknown,
  io: CliIO,
  command: string,
  source: AuditSource | undefined,
): Promise<number> {
  if (await knownSourceProblem(err, io, command, source)) return EXIT_INPUT;
  problem(io, `${command} failed`, messageOf(err));
  return EXIT_FAILURE;
}

export const AUDIT_FORMATS = ['table', 'json', 'csv', 'ocsf'] as const;
export type AuditFormat = (typeof AUDIT_FORMATS)[number];

/** The output format --format, --json and --csv name together (at most one of them). */
export function auditFormat(opts: Pick<AuditOptions, 'json' | 'csv' | 'format'>): AuditFormat {
  if (opts.json && opts.csv) throw new AuditUsageError('--json and --csv: choose one output format');
  if (opts.format === undefined) return opts.json ? 'json' : opts.csv ? 'csv' : 'table';
  const format = AUDIT_FORMATS.find((f) => f === opts.format?.trim().toLowerCase());
  if (!format) {
    throw new AuditUsageError(
      `--format: got ${visible(JSON.stringify(opts.format))}; allowed: ${AUDIT_FORMATS.join(', ')}`,
    );
  }
  if (opts.json || opts.csv)
    throw new AuditUsageError(`--format and ${opts.json ? '--json' : '--csv'}: choose one output format`);
  return format;
}

export async function runAudit(opts: AuditOptions, io: CliIO, deps: AuditDeps): Promise<number> {
  let source: AuditSource | undefined;
  try {
    const format = auditFormat(opts);
    const q = auditQuery(opts);
    const keyId = trimmed(opts.key);
    if (opts.key !== undefined && keyId === undefined) throw new AuditUsageError('--key: must not be empty');
    const accountFilter = auditAccounts(opts.account);
    const names = accountNames(opts.accountNames, io.cwd);
    let failOn: ReturnType<typeof parseFailOn>;
    try {
      failOn = parseFailOn(opts.failOn);
    } catch (err) {
      if (err instanceof FailOnError) throw new AuditUsageError(err.message);
      throw err;
    }
    const opened = await openAuditSource(opts, io, deps, false);
    source = opened;

    const read = async (query: typeof q): Promise<Decision[]> => {
      if (keyId !== undefined) {
        let accounts: string[];
        if (accountFilter !== undefined) accounts = [...accountFilter];
        else if (opened.hasKeysTable) accounts = await opened.log.accountsWithKey(keyId);
        else {
          throw new AuditUsageError(
            `--key: the key's account is unknown; pass --account, or --keys-table (or ${KEYS_TABLE_ENV}) to look it up`,
          );
        }
        const found: Decision[] = [];
        for (const accountId of accounts) {
          for (const d of await opened.log.findDecisions({ ...query, key: { accountId, keyId } }))
            found.push(d);
        }
        return found.sort(byDecidedAt);
      }
      // Filtered here, not in DynamoDB: a filter expression would not make the read (a Scan or the owner's
      // index Query) read fewer items.
      return (await opened.log.findDecisions(query)).filter(
        (d) => accountFilter === undefined || accountFilter.has(d.accountId),
      );
    };
    let decisions = await read(q);
    // --fail-on: each key's latest decision in the window and scope (--key, --account, --owner); --code, --action
    // and --limit choose rows to show, not the state: a key fixed later is not failing because --code hid the fix.
    let failing = 0;
    if (failOn !== undefined) {
      const { code: _code, action: _action, limit: _limit, ...scope } = q;
      const inScope = q.code !== undefined || q.action !== undefined ? await read(scope) : decisions;
      failing = countFailing(latestPerKey(inScope), failOn);
    }
    // --limit keeps the most recent ones, still printed oldest first.
    if (q.limit !== undefined && decisions.length > q.limit) decisions = decisions.slice(-q.limit);

    const summary =
      `Decisions: ${decisions.length} (${visible(source.label)}). Read-only: nothing was changed.\n` +
      perAccountLine(decisions, names);
    if (format === 'json') {
      for (const d of decisions) io.stdout.write(`${decisionJson(d)}\n`);
      io.stderr.write(summary);
    } else if (format === 'ocsf') {
      const version = deps.version ?? pkg.version;
      for (const d of decisions) io.stdout.write(`${ocsfJson(d, version)}\n`);
      io.stderr.write(summary);
    } else if (format === 'csv') {
      io.stdout.write(csvRecord(AUDIT_CSV_HEADER));
      for (const d of decisions) io.stdout.write(auditCsvRow(d));
      io.stderr.write(summary);
    } else {
      if (decisions.length > 0) writeStyled(io.stdout, `${auditTable(decisions, names, io.terminal)}\n\n`);
      else io.stdout.write('No decisions match.\n\n');
      io.stdout.write(summary);
    }
    return withPosture(EXIT_OK, failOn, failing, "each key's latest decision in the window", io);
  } catch (err) {
    return await sourceFailure(err, io, 'audit', source);
  } finally {
    await source?.close();
  }
}

const AUDIT_HELP = `
Source: the embedded store written by \`keyguard replay\` (--store, default ${DEFAULT_STORE_DIR}), or with --table
(or ${DECISIONS_TABLE_ENV}) the deployed decisions table, through the standard AWS SDK chain (AWS_PROFILE, SSO,
environment credentials, AWS_ENDPOINT_URL_*), region us-east-1 unless AWS_REGION says otherwise. Permissions:
dynamodb:Query and dynamodb:Scan on the decisions table and its byOwner index, dynamodb:Scan on the keys table.

Filters AND together; --account may be repeated (decisions about keys of any of those accounts). --key reads
the key's partition (in each --account, else in every account the keys table has it in) and --owner the byOwner
index; without either, the whole decisions table is scanned (filtered in DynamoDB, but every item is read and
paid for).
Keys without an owner are listed under the owner "${UNOWNED}". --since is inclusive and --until exclusive, as in keyguard replay:
a date YYYY-MM-DD is midnight UTC at its start, so --since 2026-11-21 --until 2026-11-22 is the whole of 21 November.

Output, sorted by decision time: a table (default), --json (one decision per line, as replay --json), --csv
(RFC 4180 with a header row) or --format ocsf (one OCSF 1.5.0 Detection Finding per line, for a SIEM or Amazon
Security Lake; docs/ocsf.md maps every field). Decisions never hold key material. Decisions about keys of several accounts
(organization mode) are also totalled per account. Decisions record account ids only: --account-names FILE
shows names beside them in the table and the totals (the output of keyguard inventory --org --json, or a JSON
object {"<account id>": "<name>"}); a name is shown escaped, as any recorded text.

${exitCodesHelp({
  0: 'the decisions were listed (possibly none)',
  1:
    'or, with --fail-on, a key whose latest decision in the window (--since/--until, --key, --account, --owner; not ' +
    '--code, --action or --limit) is about an Active key, not deactivated by it, with a violation of that severity ' +
    'or above (one line on stderr says how many keys)',
  2: 'e.g. an unknown code or action, a bad date, no audit store',
})}

Examples:
  $ keyguard audit --owner alice@example.com
  $ keyguard audit --account 111122223333 --account 444455556666 --code NEVER_EXPIRES
  $ keyguard audit --key ACCAGVIKUZQCWC4UQW63Y --since 2026-11-01 --json
  $ keyguard audit --table BedrockKeyGuard-AuditTablesDecisions-ABC123 --code NEVER_EXPIRES --csv > never.csv
  $ keyguard audit --since 2026-11-01 --format ocsf > decisions.ocsf.jsonl
`;

/** Where audit and report read from: the local store (default) or the deployed tables. */
export function storeOption(): Option {
  return new Option('-s, --store <dir>', `embedded audit store directory (default: ${DEFAULT_STORE_DIR})`);
}
export function decisionsTableOption(): Option {
  return new Option(
    '--table [name]',
    `read the deployed decisions table: this one, else $${DECISIONS_TABLE_ENV}, else the stack output ` +
      'DecisionsTableName',
  );
}
export function keysTableOption(why: string): Option {
  return new Option(
    '--keys-table <name>',
    `deployed keys table, ${why} (stack output KeysTableName; default: $${KEYS_TABLE_ENV})`,
  );
}

/** Adds `keyguard audit` to the program (the lead wires it into bin/keyguard.ts). */
export function registerAuditCommand(
  program: Command,
  io: CliIO,
  setExitCode: (n: number) => void,
  deps: (aws?: AwsRun) => AuditDeps = (aws) => defaultAuditDeps(process.env, aws),
): Command {
  const audit = program
    .command('audit')
    .summary('query the decision record by key, owner, violation code, action or time (read-only)')
    .description(
      'List recorded decisions from the local audit store (keyguard replay) or the deployed decisions table, ' +
        'filtered by key, owner, violation code, action and time range.',
    )
    .addOption(storeOption())
    .addOption(decisionsTableOption())
    .addOption(keysTableOption('to find the account of --key'))
    .option('--key <id>', 'only decisions about this key (ServiceSpecificCredentialId, ACCA…)')
    .option(
      '--account <id>',
      "only decisions about keys of this account (12 digits; repeat for several); with --key, the key's " +
        'account (default: looked up in the keys table)',
      collect,
    )
    .option('--owner <value>', `only decisions about keys of this owner ("${UNOWNED}" for none)`)
    .option('--code <CODE>', `only decisions with this violation (${VIOLATION_CODES.join(', ')})`)
    .option('--action <ACTION>', `only decisions with this action (${ACTIONS.join(', ')})`)
    .option('--since <date>', 'decided at or after (YYYY-MM-DD, UTC, or ISO-8601 with a zone)')
    .option(
      '--until <date>',
      'decided before this time (exclusive, as replay --until; YYYY-MM-DD is midnight UTC, or ISO-8601 with a zone)',
    )
    .option('--limit <n>', 'at most n decisions: the most recent ones')
    .option(
      '--fail-on <severity>',
      "exit 1 when a key's latest decision in the window has a violation of this severity or above " +
        '(low, medium, high, critical; inactive, expired and deleted keys do not count)',
    )
    .addOption(accountNamesOption())
    .option('--json', 'one decision JSON object per line on stdout; the summary goes to stderr')
    .option('--csv', 'CSV (RFC 4180, with a header row) on stdout; the summary goes to stderr')
    .option(
      '--format <format>',
      `output format: ${AUDIT_FORMATS.join(', ')} (ocsf: one OCSF 1.5.0 Detection Finding JSON object per line; ` +
        'json and csv as --json and --csv; the summary goes to stderr)',
    )
    .addHelpText('after', AUDIT_HELP);
  return addAwsOptions(audit).action(async (opts: AuditOptions & AwsFlags) => {
    const aws = awsRunOrFail(opts, io);
    setExitCode(aws ? await runAudit(opts, io, deps(aws)) : EXIT_INPUT);
  });
}
