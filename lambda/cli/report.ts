import { resolve } from 'node:path';
import type { Command } from 'commander';
import { visible } from '../shared/visible-text';
import { accountNamesOption } from './account-names';
import {
  type AuditDeps,
  type AuditSource,
  AuditUsageError,
  accountNames,
  auditAccounts,
  DECISIONS_TABLE_ENV,
  decisionsTableOption,
  defaultAuditDeps,
  KEYS_TABLE_ENV,
  keysTableOption,
  openAuditSource,
  sourceFailure,
  storeOption,
} from './audit';
import { exitCodesHelp } from './aws-errors';
import { type CliIO, EXIT_INPUT, EXIT_OK } from './io';
import { checkOutputTarget, OutputFileError, type OutputFileOptions, writeOutputFile } from './output-file';
import { DEFAULT_STORE_DIR } from './replay';
import { buildReportData, MAX_ACCOUNT_BARS } from './report-data';
import { renderReportHtml } from './report-html';
import { type AwsFlags, type AwsRun, addAwsOptions, awsRunOrFail } from './stack-outputs';

/**
 * `keyguard report --html FILE`: one self-contained HTML page (inventory, lifetime distribution, expiry
 * timeline, keys per owner, violations by code, decisions over time, a sortable key table) from the keys
 * table and the decisions, of the embedded store or the deployed tables. Read-only.
 */

export interface ReportOptions {
  html?: string;
  store?: string;
  table?: string | true;
  keysTable?: string;
  /** Replace a symbolic link at the --html path by the report (the link's target is never written). */
  force?: boolean;
  /** Names for account ids (see account-names.ts). */
  accountNames?: string;
  /** Repeatable: only the keys and decisions of these accounts (the page then holds nothing of the others). */
  account?: string[];
}

export interface ReportDeps extends AuditDeps {
  /** The report's clock (expiry timeline, overdue keys). @default the wall clock */
  now?: () => Date;
}

export function defaultReportDeps(env: NodeJS.ProcessEnv = process.env, aws?: AwsRun): ReportDeps {
  return defaultAuditDeps(env, aws);
}

/** A refused output path is bad usage (exit 2), named with the option. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof OutputFileError) throw new AuditUsageError(`--html: ${err.message}`);
    throw err;
  }
}

/** Runs `keyguard report`; returns the exit code. Never calls process.exit. */
export async function runReport(opts: ReportOptions, io: CliIO, deps: ReportDeps): Promise<number> {
  let source: AuditSource | undefined;
  try {
    const file = opts.html?.trim();
    if (!file) throw new AuditUsageError('--html <file>: required (the report is an HTML file)');
    const path = resolve(io.cwd, file);
    const output: OutputFileOptions = { display: file, replaceLink: opts.force === true };
    // Before reading the whole audit: a path that will be refused is refused first.
    asUsage(() => checkOutputTarget(path, output));
    const names = accountNames(opts.accountNames, io.cwd);
    const only = auditAccounts(opts.account);
    source = await openAuditSource(opts, io, deps, true);
    const keys = (await source.log.allKnownKeys()).filter((k) => only === undefined || only.has(k.accountId));
    const decisions = (await source.log.findDecisions({})).filter(
      (d) => only === undefined || only.has(d.accountId),
    );
    const now = (deps.now ?? (() => new Date()))();
    const data = buildReportData(keys, decisions, now, names);
    const html = renderReportHtml(data, { source: source.label });
    asUsage(() => writeOutputFile(path, html, output));
    const withViolations = data.keys.filter((k) => k.status !== 'Deleted' && k.codes.length > 0).length;
    io.stderr.write(
      `Report: ${visible(file)} (${data.keys.length} keys, ${data.liveKeys} existing, ${withViolations} with violations, ` +
        `${data.decisions} decisions${data.accounts.length > 1 ? `, ${data.accounts.length} accounts` : ''}; ` +
        `${visible(source.label)}). Read-only: nothing was changed.\n`,
    );
    return EXIT_OK;
  } catch (err) {
    return await sourceFailure(err, io, 'report', source);
  } finally {
    await source?.close();
  }
}

const REPORT_HELP = `
Source: the embedded store written by \`keyguard replay\` (--store, default ${DEFAULT_STORE_DIR}), or the deployed
tables: --table (or ${DECISIONS_TABLE_ENV}) and --keys-table (or ${KEYS_TABLE_ENV}), read through the standard AWS
SDK chain (AWS_PROFILE, SSO, environment credentials), region us-east-1 unless AWS_REGION says otherwise.
Both tables are scanned in full (dynamodb:Scan).

The page is one self-contained file: inline SVG charts (lifetime distribution, expiry timeline, keys per owner,
violations by code, decisions per day by action) and a key table sortable by any column. When the keys and
decisions span two or more accounts (an organization), it adds a chart of keys, keys with violations and
decisions per account (the ${MAX_ACCOUNT_BARS - 1} with the most keys and the rest summed, past ${MAX_ACCOUNT_BARS}) and an account filter above
the key table; a single account's report has neither (its Account column stays). Decisions record account ids
only: --account-names FILE (the output of keyguard inventory --org --json, or {"<account id>": "<name>"}) shows
each account's name beside its id; names are chosen by each account's administrator and are escaped as any
recorded text. --account ID (repeatable) writes a report of those accounts only, e.g. for a member account's
team: the page then holds nothing about the other accounts. It loads nothing from the network (its Content-Security-Policy forbids it) and holds no key
material.

Writing FILE: its directory must exist. The page is written to a new temporary file beside it (created
exclusively, never through a link, random name) and renamed over FILE, so a reader never sees half a report.
An existing regular file is replaced and keeps its permissions; a new file is private (mode 0600). FILE is
refused when it is a symbolic link (its target is never written; --force replaces the link itself with a
regular file), a directory, a FIFO, a device or a socket.

${exitCodesHelp({
  0: 'the report was written (its path and counts on stderr)',
  2:
    'e.g. no --html; FILE is a directory, a symbolic link without --force, a FIFO or a device; its directory does ' +
    'not exist; no audit store',
})}

Examples:
  $ keyguard replay examples/cloudtrail && keyguard report --html report.html
  $ keyguard report --html /tmp/keys.html --table BedrockKeyGuard-AuditTablesDecisions-ABC123 \\
      --keys-table BedrockKeyGuard-AuditTablesKeys-ABC123
`;

/** Adds `keyguard report` to the program (the lead wires it into bin/keyguard.ts). */
export function registerReportCommand(
  program: Command,
  io: CliIO,
  setExitCode: (n: number) => void,
  deps: (aws?: AwsRun) => ReportDeps = (aws) => defaultReportDeps(process.env, aws),
): Command {
  const report = program
    .command('report')
    .summary('write a self-contained HTML report of the keys and decisions (charts, sortable table)')
    .description(
      'Write one HTML file with the key inventory, key lifetime distribution, expiry timeline, keys per owner, ' +
        'violations by code and decisions over time, from the local audit store or the deployed tables.',
    )
    .requiredOption('--html <file>', 'the HTML file to write')
    .option('--force', 'replace a symbolic link at FILE with the report (the link target is never written)')
    .addOption(storeOption())
    .addOption(decisionsTableOption())
    .addOption(keysTableOption('required with --table'))
    .addOption(accountNamesOption())
    .option(
      '--account <id>',
      'only the keys and decisions of this account (12 digits; repeat for several): the page holds nothing of ' +
        'the other accounts',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .addHelpText('after', REPORT_HELP);
  return addAwsOptions(report).action(async (opts: ReportOptions & AwsFlags) => {
    const aws = awsRunOrFail(opts, io);
    setExitCode(aws ? await runReport(opts, io, deps(aws)) : EXIT_INPUT);
  });
}
