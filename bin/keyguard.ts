import { Command, CommanderError, Option } from 'commander';
import {
  APPROVALS_URL_ENV,
  type ApprovalsDeps,
  defaultApprovalsDeps,
  runApprove,
  runListApprovals,
  runReview,
  runRevoke,
} from '../lambda/cli/approvals';
import { registerAuditCommand } from '../lambda/cli/audit';
import { registerAuditVerifyCommand } from '../lambda/cli/audit-verify';
import { exitCodesHelp } from '../lambda/cli/aws-errors';
import { POLICY_PARAMETER_ENV } from '../lambda/cli/deployed-policy';
import {
  APPROVALS_TABLE_ENV,
  defaultInventoryDeps,
  type InventoryDeps,
  type InventoryOptions,
  KEYS_TABLE_ENV,
  runInventory,
  USAGE_TABLE_ENV,
} from '../lambda/cli/inventory';
import { DEFAULT_CONCURRENCY, MAX_CONCURRENCY, runOrgInventory } from '../lambda/cli/inventory-org';
import { type CliIO, EXIT_FAILURE, EXIT_INPUT, EXIT_OK, guardedIO, terminalOf } from '../lambda/cli/io';
import { registerPolicyCommand } from '../lambda/cli/policy';
import { registerPreviewCommand } from '../lambda/cli/preview';
import { DEFAULT_STORE_DIR, type ReplayOptions, runReplay } from '../lambda/cli/replay';
import { registerReportCommand } from '../lambda/cli/report';
import {
  defaultScanDeps,
  defaultScanJobs,
  runScan,
  type ScanDeps,
  type ScanOptions,
} from '../lambda/cli/scan';
import { DEFAULT_EXCLUDED_FOLDERS } from '../lambda/cli/scan-exclude';
import { registerSelftestCommand } from '../lambda/cli/selftest';
import { type AwsFlags, type AwsRun, addAwsOptions, awsRunOrFail } from '../lambda/cli/stack-outputs';
import { DEFAULT_CONFIG_FILE } from '../lambda/shared/config';
import { STACK_NAME, STACK_REGION } from '../lambda/shared/stack';
import { visible, visibleLines } from '../lambda/shared/visible-text';
import pkg from '../package.json';

/** The `keyguard` CLI: commander wiring only; each command lives in lambda/cli/. */

const REPLAY_HELP = `
Inputs (files, or directories searched recursively for .json, .jsonl, .ndjson and their .gz):
  - CloudTrail log files as delivered to S3 ({"Records": [...]}, usually .json.gz), also a whole bucket
    copy: AWSLogs/[o-org-id/]<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/*.json.gz, under any prefix
  - a single EventBridge event ("AWS API Call via CloudTrail") or a single CloudTrail record
  - newline-delimited JSON of either, one per line (.jsonl/.ndjson are streamed line by line)
  - CloudTrail Lake query results with an eventJson column: get-query-results output
    ({"QueryResultRows": [...]}), or rows as JSON objects / JSON lines ({"eventJson": "..."})
  - aws cloudtrail lookup-events output ({"Events": [{"CloudTrailEvent": "..."}]}), or its events one per line

Records are replayed in eventTime order across all files. Users' tags and keys are rebuilt from the
events (CreateUser, TagUser, UntagUser, Create/Update/Reset/DeleteServiceSpecificCredential); each key
event is evaluated against the policy as of its own time. Nothing is changed in AWS and no notice is
sent: deactivations are planned, notices are counted. Decisions are appended to an embedded DynamoDB
in the store directory; replaying the same events again does not record them twice.

Key usage (flow 3): Bedrock calls made with an API key (callWithBearerToken, or a bearerTokenType) are run
through the key-usage function's code: attributed to a key (as the events show the user's keys at that time),
a user or the principal of a short-term key, counted in the store's keyguard-usage table (last use, calls,
regions, models), and decided where policy cares (a long-term key used while allowLongTermKeys is false, a
deactivated key still in use), in time order with the key events. SigV4 Bedrock calls are skipped unparsed.
The calls are read in the same single pass as the key events and folded per caller and UTC minute, then per
caller and UTC hour, so memory does not grow with them (a decision names its key's latest call of that hour).
A minute is placed by its first call: a call in the same minute as a key event of its user, but after it, is
replayed as if made before it. Re-runs: the store
remembers, per account, the latest call it replayed; calls at or before it are reported as already replayed
and are neither counted nor decided again (replay an account's logs in time order). A record CloudTrail
delivered twice is counted twice, as in the deployed function.

Large archives: files are decompressed and scanned on --jobs worker threads (default: one per core) and
streamed, so memory does not grow with the archive. A record whose text does not mention
iam.amazonaws.com and a followed event name (or a Bedrock source and a bearer token) is counted without
being parsed. The output is the same for any --jobs.

Bad input never stops the run: a file that cannot be read is reported with its path and the reason, and the
others are replayed (exit 2). Limits, so that no input can exhaust memory or hang the run: a file is read up to
--max-file-size MiB once decompressed (default 512: a gzip bomb is cut off there); a record or JSON line longer
than --max-record-size MiB (default 32), or JSON nested deeper than 64 levels, is reported and skipped; a file
making no progress for --stall-timeout seconds (default 120) is reported and given up on. Only regular files
are read: a FIFO, socket or device is reported and skipped, as is a directory that cannot be read (its
siblings are still searched). Invalid UTF-8 is read as U+FFFD and counted in a warning per file (not an
error). An eventID read twice with different content (corruption or forgery) is an error: the first copy, in
input order, is replayed.

Time window: --since (inclusive) and --until (exclusive) take YYYY-MM-DD (midnight UTC) or an ISO-8601
timestamp with a zone; records are kept by eventTime. In the S3 layout, date directories and log files
whose path date is clearly outside the window are not read (with margins: a log file's name is its delivery
time, its records are earlier). State before --since comes from the store (earlier runs), not from the
records left out.

Output: decisions on stdout (a table, or with --json one JSON object per line); problems on stderr. The
totals follow the table on stdout, or go to stderr with --json. A progress bar (bytes, MiB/s, ETA, files)
is drawn on stderr when it is a terminal. --quiet drops the progress bar and the totals; problems are
still reported.

Posture gate: --fail-on low|medium|high|critical exits 1 when, at the end of the run, a key of the store
(this run's and earlier runs') is Active and its last decision has a violation of that severity or above.
A key deactivated (an applied decision), expired or deleted does not count; a planned deactivation does.
It never hides exit 2: an unreadable input still exits 2 (the --fail-on line is still printed).

${exitCodesHelp({
  0: 'every input was read',
  1: 'or --fail-on: a key at or above the severity (one line on stderr says how many)',
  2:
    'e.g. a bad --since, --until, --jobs or --fail-on value, or some input could not be read (reported on stderr ' +
    'with its path and the reason; the rest was replayed)',
})}

Examples:
  $ keyguard replay examples/cloudtrail
  $ keyguard replay --json ~/trail-logs/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11 > decisions.jsonl
  $ keyguard replay --since 2026-11-01 --until 2026-11-08 s3-copy/    # the first week of November
  $ keyguard replay --json --quiet --jobs 4 s3-copy/AWSLogs > decisions.jsonl
  $ aws cloudtrail lookup-events --lookup-attributes AttributeKey=EventSource,AttributeValue=iam.amazonaws.com \\
      --region us-east-1 > history.json && keyguard replay history.json
  $ keyguard replay --config examples/keyguard.config.json --store /tmp/kg examples/events
`;

const APPROVALS_HELP = `
How it works: the command sends its request to the stack's approval function (a Lambda function URL with
AWS_IAM authentication: --url, else ${APPROVALS_URL_ENV}, else the output ApprovalsUrl of the deployed stack
--stack, default ${STACK_NAME} in ${STACK_REGION}, read with cloudformation:DescribeStacks), signed with your
own AWS credentials (--profile, else the standard SDK chain: AWS_PROFILE, SSO, environment variables). The
function applies the rules and writes the records; nobody else may write the approvals table.

Who may run it: a principal with lambda:InvokeFunctionUrl and lambda:InvokeFunction on the approval
function (attach the stack's managed policy ApproverPolicy, output ApproverPolicyArn), and, when "approvers"
is set in the stack's config, one of the principals listed there. The approver of record is the identity
AWS authenticated for the request. Nobody may approve or review a key they own or created (owner tag, creator
ARN, role, user name, or SSO session name/email), nor through a session of the role that created it,
unless that role is an IAM Identity Center role (AWSReservedSSO_*), whose sessions are distinct people.
maxApprovalDays and the other rules are the deployed function's.

${exitCodesHelp({
  0: 'done',
  1: 'here: the approval function failed (its request id on stderr)',
  2:
    'or refused by the function (self-approval, not an approver, unknown key or approval, already revoked, --until ' +
    'out of range, unknown code, empty reason), or no URL; the function URL unreachable or not answering in time ' +
    'is a network failure',
})}
`;

const SCAN_HELP = `
Output (never the key: a redacted form with at most the last 4 characters, and a fingerprint):
  text   path:line:column: KIND facts redacted fingerprint (git: commit:path:line:column)
  json   one JSON object per line: path, line, column, kind, facts, redacted, fingerprint (and commit)
  sarif  SARIF 2.1.0 for GitHub code scanning
A summary goes to stderr. Binary files (a NUL byte in the first 8 KB) are searched as bytes, UTF-16 files
with a byte order mark are decoded.

Excludes (.gitignore syntax): --exclude PATTERN and the lines of .keyguardignore in the current directory,
matched against paths relative to it (and paths inside the repository for --git and --staged); a file or
folder named on the command line is always scanned. By default these folders are skipped, and the summary counts them:
  ${DEFAULT_EXCLUDED_FOLDERS.join(', ')}
--no-default-excludes scans them; a !pattern re-includes one (e.g. !vendor/).

Git: --git scans every blob of every ref; --since-commit REV and --log-opts "..." scan only the blobs the
selected commits add or change. --log-opts accepts revisions, -- paths and options that select commits
(--all --branches --tags --remotes --since= --until= --author= --max-count= -n N --no-merges --first-parent
…); anything else (--output, --ext-diff, -p, --format, -c…) is refused. --staged scans what the next commit
would hold (whole staged files, not the working tree): pre-commit hook "keyguard" in .pre-commit-hooks.yaml.

Files are scanned on --jobs worker threads (default: one per core); the output is the same for any --jobs.

Allow-listing: a line containing keyguard:allow is not reported; --baseline FILE ignores known fingerprints
(a JSON array of fingerprint strings, or the lines of --format json output). Without --baseline,
.keyguard-baseline.json in the current directory is read when it exists (the summary names it); a --baseline
given that does not exist is an error. With --since-commit REV it is the repository's .keyguard-baseline.json as
it is at REV: a change cannot allow-list its own findings by adding their fingerprints (a note says how many it
added); a new fingerprint takes effect once the change to the baseline is merged.

Slack: --slack reads the channels the token in SLACK_TOKEN can read (API base SLACK_API_URL, default
https://slack.com/api): messages, thread replies and text files up to 1 MiB; --channel NAME (repeatable) selects
channels, --since DATE|DURATION only what was posted after it. A finding's place is the message permalink and it
names the poster's user id. A missing or rejected token: exit 2 before scanning; a channel that cannot be read is
reported and the others scanned. Rate limits (HTTP 429) are waited out as Retry-After asks.

Jira: --jira JQL reads the issues the query selects on the Jira Cloud site JIRA_URL (REST API v3, enhanced
search /rest/api/3/search/jql), as the account JIRA_EMAIL with the API token JIRA_API_TOKEN (HTTP Basic; never
flags): summaries, descriptions and comments (Atlassian Document Format read as text). --since adds
updated >= to the query. A finding's place is JIRA_URL/browse/KEY-1 (a comment: ?focusedCommentId=ID) and it names
the reporter's or commenter's account ID. Missing or rejected credentials: exit 2 before scanning; an issue that
cannot be read is reported and the others scanned. HTTP 429 is waited out (Retry-After, X-RateLimit-Reset).

Confluence: --confluence KEY (repeatable, or KEY,KEY) reads the current pages and blog posts of those spaces and
their footer and inline comments and replies (REST API v2) on the site CONFLUENCE_URL (default: JIRA_URL), with
the same JIRA_EMAIL and JIRA_API_TOKEN. Bodies (storage format) are read as text; --since skips pages, blog posts
and comments last modified before it. A finding's place is the page's (or comment's) web link. Missing or rejected
credentials: exit 2 before scanning; a space or page that cannot be read is reported and the others scanned.

S3: s3://BUCKET/PREFIX (any number, mixed with paths) scans every object under the prefix (ListObjectsV2, then
GetObject streamed; gzip decompressed, at most 512 MiB an object), findings at s3://BUCKET/KEY:line:column, with
--profile and --region (AWS_ENDPOINT_URL_S3 for another endpoint); --exclude matches keys relative to the prefix,
--since skips objects last modified before it. Needs s3:ListBucket, s3:GetObject (and kms:Decrypt for SSE-KMS).

Quarantine: --quarantine sends one event per distinct key (fingerprint, redacted form, decoded facts and
every location; never the key) to the deployed stack's governance bus, found before scanning from --bus,
KEYGUARD_BUS or the output GovernanceBusArn of --stack (--region, --profile); the stack's leak function records
LEAKED and notifies. Needs only events:PutEvents on the bus (the stack's managed policy ScanReporterPolicy).
Keys found and every one reported: exit 1; a report not delivered (retried, then named on stderr): exit 2.

${exitCodesHelp({
  0: 'no key found (or --write-baseline written)',
  1: 'or keys found',
  2:
    'e.g. a file, directory, repository, S3 bucket or object could not be read (reported on stderr; the rest was scanned), or ' +
    '--quarantine found no bus or could not deliver every report (retried, then each one named on stderr), or ' +
    '--slack had no token or Slack refused it (nothing scanned), or a Slack channel could not be read, or ' +
    '--jira had no credentials or Jira refused them (nothing scanned), or the search or an issue could not be read, ' +
    'or --confluence had no credentials or Confluence refused them (nothing scanned), or a space or page could not be read',
})}

Examples:
  $ keyguard scan .
  $ kubectl logs deploy/app | keyguard scan -
  $ keyguard scan --git --format sarif > keyguard.sarif
  $ keyguard scan --git --since-commit origin/main --format sarif --output keyguard.sarif
  $ keyguard scan --staged
  $ keyguard scan . --exclude 'test/fixtures/' --exclude '*.snap'
  $ keyguard scan --git --quarantine
  $ SLACK_TOKEN=xoxp-… keyguard scan --slack --channel deploys --since 7d
  $ JIRA_URL=https://acme.atlassian.net JIRA_EMAIL=… JIRA_API_TOKEN=… keyguard scan --jira 'project = OPS' --since 30d
  $ JIRA_URL=https://acme.atlassian.net JIRA_EMAIL=… JIRA_API_TOKEN=… keyguard scan --confluence OPS,ENG
  $ gh run view 123456789 --log | keyguard scan -
`;

/** Adds --url (defaulting to KEYGUARD_APPROVALS_URL), --account, --profile, --region and --stack to an approvals command. */
function approvalOptions(cmd: Command): Command {
  return addAwsOptions(
    cmd
      .addOption(
        new Option(
          '--url <url>',
          'approval function URL (default: $KEYGUARD_APPROVALS_URL, else the stack output ApprovalsUrl)',
        ).env(APPROVALS_URL_ENV),
      )
      .addOption(new Option('--account <id>', "the key's account (default: the caller's account)")),
  );
}

const INVENTORY_HELP = `
AWS access: --profile and --region as in the AWS CLI, else the standard AWS SDK credential and endpoint chain
(AWS_PROFILE, SSO, environment variables, AWS_ENDPOINT_URL_*); the region defaults to us-east-1. Each table is
--keys-table (etc.), else its KEYGUARD_* variable, else the output of the deployed stack (--stack, default
${STACK_NAME}; cloudformation:DescribeStacks); a default stack that is not there is noted and left out.
Permissions needed: iam:ListServiceSpecificCredentials, iam:GetAccountAuthorizationDetails,
iam:GenerateCredentialReport, iam:GetCredentialReport, iam:ListUserTags, sts:GetCallerIdentity (and
dynamodb:GetItem on the keys table, dynamodb:GetItem and BatchGetItem on the usage table, when they are named).

Without a keys table the last review is "unknown" and REVIEW_OVERDUE is not evaluated; without the usage table
the last use is "unknown" and UNUSED is not evaluated. A progress line is
shown on stderr when it is a terminal.

Policy: --config FILE, else the deployed stack's effective policy (SSM parameter named by --policy-parameter,
${POLICY_PARAMETER_ENV} or the stack output EffectivePolicyParameterName; ssm:GetParameter), else
./${DEFAULT_CONFIG_FILE}, else the built-in defaults. The summary names the one used (stderr with --json/--csv);
a local ./${DEFAULT_CONFIG_FILE} that differs from the deployed policy is noted on stderr.

Organization (--org): run with credentials of the management account or of the delegated administrator. The
governed accounts (ACTIVE accounts under organization.targets, nested OUs included, minus
organization.excludeAccounts; --ou and --account narrow them) are read from Organizations, the spoke's read-only
role (--role-name, default BedrockKeyGuardInventory) is assumed in each with session name keyguard-inventory, and
each account is read as above and decided by the policy that applies to it (account override, else nearest OU
override, else the base policy). Every row names its account and policy version; a per-account summary ends the
output. The account of your credentials is read with them directly. Needs organizations:ListChildren,
ListAccountsForParent, ListParents, DescribeAccount, sts:AssumeRole of arn:aws:iam::*:role/BedrockKeyGuardInventory.
The spoke stack's BedrockKeyGuardInventory role (IAM reads only) trusts principals of the management account and
the hub account within the organization; to use another role you may assume there, name it with --role-name.

Posture gate: --fail-on low|medium|high|critical exits 1 when an Active key, as read now, has a violation of
that severity or above (waived violations and inactive or expired keys do not count). It never hides the
other codes: when several apply, 2 wins over 3, and 3 over 1 (the --fail-on line is still printed).

${exitCodesHelp({
  0: 'the whole inventory was listed (with --org: every account was read)',
  1: 'or --fail-on: a key at or above the severity (one line on stderr says how many)',
  2: 'e.g. a bad --fail-on value',
  3: '--org: some accounts could not be read (each named on stderr with its reason); the others were listed',
})}

Examples:
  $ AWS_PROFILE=security keyguard inventory
  $ AWS_PROFILE=org-admin keyguard inventory --org --csv > org-keys.csv
  $ keyguard inventory --csv --keys-table BedrockKeyGuard-AuditTablesKeys-ABC123 > keys.csv
  $ keyguard inventory --json | jq -c 'select(.violations | length > 0)'
`;

/** A repeatable option's values, in order. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * A commander usage error quotes the argument it rejects, which may hold anything: the message is one line,
 * shown through visible() (a newline in the argument cannot start a line of its own), then commander's own
 * suggestion line, if any (it names a known option or command, never the argument).
 */
function usageErrorText(message: string): string {
  const body = message.replace(/\n$/, '');
  const suggestion = /\n\(Did you mean [^\n]*\?\)$/.exec(body);
  const own = suggestion ? body.slice(0, suggestion.index) : body;
  return `${visible(own)}${suggestion ? suggestion[0] : ''}\n`;
}

/**
 * Builds the program with its output going to `io`; commander never exits the process. `approvalsDeps` gives
 * the AWS clients of the approval commands (created only when one runs).
 */
export function buildProgram(
  io: CliIO,
  setExitCode: (code: number) => void,
  approvalsDeps: (aws?: AwsRun) => ApprovalsDeps = (aws) => defaultApprovalsDeps(process.env, aws),
  inventoryDeps: (aws?: AwsRun) => InventoryDeps = (aws) => defaultInventoryDeps(process.env, aws),
  scanDeps: () => ScanDeps = () => defaultScanDeps(pkg.version),
): Command {
  const program = new Command()
    .name('keyguard')
    .description(
      'Governs Amazon Bedrock API keys as non-human identities: find each key, attribute it to an owner, ' +
        'hold it to a lifetime and tagging policy, and keep an audit record of every decision.',
    )
    .version(pkg.version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(usageErrorText(s)),
    })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('replay')
    .summary('replay CloudTrail logs and EventBridge events offline, with decisions in a local audit store')
    .description(
      'Replay IAM CloudTrail events about Bedrock API keys, and Bedrock calls made with them, through the key ' +
        'policy, offline: no AWS account or network needed. Prints one decision per key event (and per use ' +
        'that policy cares about), then totals.',
    )
    .argument('<paths...>', 'CloudTrail log files, EventBridge event files, NDJSON files or directories')
    .option(
      '-c, --config <file>',
      `policy config file (default: ./${DEFAULT_CONFIG_FILE} if present, else the built-in defaults)`,
    )
    .addOption(
      new Option('-s, --store <dir>', 'audit store directory (embedded DynamoDB)').default(DEFAULT_STORE_DIR),
    )
    .option(
      '--json',
      'print exactly one decision JSON object per line on stdout; totals and errors go to stderr',
    )
    .option('--since <date>', 'only records at or after this time (YYYY-MM-DD or ISO-8601 with a zone)')
    .option('--until <date>', 'only records before this time (exclusive; YYYY-MM-DD or ISO-8601 with a zone)')
    .option('-j, --jobs <n>', 'files scanned in parallel, on worker threads; 1 = in-process (default: cores)')
    .option('-q, --quiet', 'no progress bar and no totals: only decisions and problems')
    .option(
      '--fail-on <severity>',
      'exit 1 when a live key ends the run with a violation of this severity or above (low, medium, high, critical)',
    )
    .option('--max-file-size <MiB>', 'read at most this much of one file, decompressed (default: 512)')
    .option(
      '--max-record-size <MiB>',
      'skip, and report, any record or JSON line longer than this (default: 32)',
    )
    .option(
      '--stall-timeout <seconds>',
      'give up on, and report, a file making no progress this long (default: 120)',
    )
    .addHelpText('after', REPLAY_HELP)
    .action(async (paths: string[], opts: ReplayOptions) => {
      setExitCode(await runReplay(paths, opts, io));
    });

  approvalOptions(
    program
      .command('approve')
      .summary('approve a key as an explicit, expiring exception (never your own key)')
      .description(
        'Record an approval: the violations it covers are waived for this key until --until. The approval ' +
          'function records it in the approvals table and appends it to the audit as a decision.',
      )
      .requiredOption('--key <id>', 'the key id (ServiceSpecificCredentialId, ACCA…)')
      .requiredOption('--reason <text>', 'why the key may live (recorded in the audit)')
      .requiredOption(
        '--until <date>',
        'last day (YYYY-MM-DD, through its end UTC) or ISO timestamp with a zone; at most maxApprovalDays ahead',
      )
      .option(
        '--covers <codes>',
        'comma-separated violation codes it waives (default: every code except LEAKED)',
      ),
  )
    .addHelpText('after', APPROVALS_HELP)
    .action(async (opts: Parameters<typeof runApprove>[0] & AwsFlags) => {
      const aws = awsRunOrFail(opts, io);
      setExitCode(aws ? await runApprove(opts, io, approvalsDeps(aws)) : EXIT_INPUT);
    });

  const approvals = program
    .command('approvals')
    .summary('list or revoke approvals')
    .description('List or revoke approvals recorded with `keyguard approve`.');
  approvalOptions(
    approvals
      .command('list')
      .description('List the approvals of the account (or of one key), with their state.')
      .option('--key <id>', 'only the approvals of this key')
      .option('--json', 'one approval JSON object per line'),
  )
    .addHelpText('after', APPROVALS_HELP)
    .action(async (opts: Parameters<typeof runListApprovals>[0] & AwsFlags) => {
      const aws = awsRunOrFail(opts, io);
      setExitCode(aws ? await runListApprovals(opts, io, approvalsDeps(aws)) : EXIT_INPUT);
    });
  approvalOptions(
    approvals
      .command('revoke')
      .description('Revoke an approval: the violations it covered apply again at the next evaluation.')
      .requiredOption('--approval <id>', 'the approval id (see `keyguard approvals list`)')
      .requiredOption('--reason <text>', 'why it is revoked (recorded in the audit)'),
  )
    .addHelpText('after', APPROVALS_HELP)
    .action(async (opts: Parameters<typeof runRevoke>[0] & AwsFlags) => {
      const aws = awsRunOrFail(opts, io);
      setExitCode(aws ? await runRevoke(opts, io, approvalsDeps(aws)) : EXIT_INPUT);
    });

  approvalOptions(
    program
      .command('review')
      .summary('record a review of a key (resets its review clock; never your own key)')
      .description(
        'Record that the key was reviewed and is still needed: REVIEW_OVERDUE is measured from the latest review.',
      )
      .requiredOption('--key <id>', 'the key id (ServiceSpecificCredentialId, ACCA…)')
      .requiredOption('--note <text>', 'what was checked (recorded in the audit)'),
  )
    .addHelpText('after', APPROVALS_HELP)
    .action(async (opts: Parameters<typeof runReview>[0] & AwsFlags) => {
      const aws = awsRunOrFail(opts, io);
      setExitCode(aws ? await runReview(opts, io, approvalsDeps(aws)) : EXIT_INPUT);
    });

  const inventory = program
    .command('inventory')
    .summary('list the Bedrock API keys of the live account and what the policy says about each (read-only)')
    .description(
      'List every Bedrock API key of the account your AWS credentials belong to, with owner, status, dates, ' +
        'last review and violations, evaluated exactly as the sweep does. Read-only: nothing is changed in IAM, ' +
        'nothing is recorded, no notice is sent.',
    )
    .option('--json', 'one key JSON object per line on stdout; the summary goes to stderr')
    .option('--csv', 'CSV (RFC 4180, with a header row) on stdout; the summary goes to stderr')
    .option(
      '-c, --config <file>',
      `policy config file, which wins over the deployed policy (default: the deployed stack's effective policy, ` +
        `else ./${DEFAULT_CONFIG_FILE} if present, else the built-in defaults)`,
    )
    .addOption(
      new Option(
        '--policy-parameter <name>',
        'SSM parameter of the deployed effective policy (stack output EffectivePolicyParameterName)',
      ).env(POLICY_PARAMETER_ENV),
    )
    .addOption(
      new Option(
        '--keys-table <name>',
        'keys table to read last reviews and known creators from (stack output KeysTableName)',
      ).env(KEYS_TABLE_ENV),
    )
    .addOption(
      new Option(
        '--approvals-table <name>',
        'approvals table: approved violations are shown as waived (stack output ApprovalsTableName)',
      ).env(APPROVALS_TABLE_ENV),
    )
    .addOption(
      new Option(
        '--usage-table <name>',
        'usage table: last use of each key, and UNUSED (stack output UsageTableName)',
      ).env(USAGE_TABLE_ENV),
    )
    .option(
      '--org',
      'every governed account of the organization (management or delegated administrator credentials)',
    )
    .option('--role-name <name>', '--org: role to assume in each account (default: BedrockKeyGuardInventory)')
    .option('--ou <id>', '--org: only accounts under this OU or root (repeatable)', collect)
    .option('--account <id>', '--org: only this account (repeatable)', collect)
    .option(
      '--concurrency <n>',
      `--org: accounts read at once, 1 to ${MAX_CONCURRENCY} (default: ${DEFAULT_CONCURRENCY})`,
    )
    .option(
      '--fail-on <severity>',
      'exit 1 when an Active key has a violation of this severity or above (low, medium, high, critical)',
    )
    .addHelpText('after', INVENTORY_HELP);
  addAwsOptions(inventory).action(async (opts: InventoryOptions & AwsFlags) => {
    const run = opts.org ? runOrgInventory : runInventory;
    const aws = awsRunOrFail(opts, io);
    setExitCode(aws ? await run(opts, io, inventoryDeps(aws)) : EXIT_INPUT);
  });

  addAwsOptions(
    program
      .command('scan')
      .summary('find Bedrock API keys in files, folders, standard input or git history (offline)')
      .description(
        'Find Amazon Bedrock API keys (long-term ABSK… and short-term bedrock-api-key-…) in files and folders ' +
          '(recursively), standard input (-) or every blob of a git repository. Each candidate is decoded and ' +
          'checked for structure; the key itself is never printed, only a redacted form and a fingerprint.',
      )
      .argument('[paths...]', 'files or directories to scan; s3://bucket/prefix; - for standard input')
      .addOption(
        new Option('-f, --format <format>', 'output format')
          .choices(['text', 'json', 'sarif'])
          .default('text'),
      )
      .option('--git [repo]', 'also scan every blob reachable from any ref of this repository (default: .)')
      .option('--since-commit <rev>', 'with --git: only the commits after this one (up to HEAD)')
      .option(
        '--log-opts <options>',
        'with --git: git log options selecting the commits (an allow-list, see below)',
      )
      .option('--staged', "scan the index's staged content (git diff --cached), for a pre-commit hook")
      .option(
        '--exclude <pattern>',
        'leave out paths matching this .gitignore-style pattern (repeatable)',
        (value: string, previous: string[] = []) => [...previous, value],
      )
      .option(
        '--no-default-excludes',
        'also scan .git, node_modules, vendor and the other default-excluded folders',
      )
      .option('-o, --output <file>', 'write the findings to this file instead of standard output')
      .option('--baseline <file>', 'ignore the findings whose fingerprints are in this file')
      .option('--write-baseline <file>', "write every finding's fingerprint to this file (exit 0)")
      .option(
        '-j, --jobs <n>',
        'files scanned in parallel, on worker threads; 1 = in-process (default: cores)',
      )
      .option(
        '--slack',
        'also scan the Slack channels the token in $SLACK_TOKEN can read (messages, threads, files)',
      )
      .option(
        '--channel <name>',
        'with --slack: only this channel, by name or ID (repeatable)',
        (value: string, previous: string[] = []) => [...previous, value],
      )
      .option(
        '--jira <jql>',
        'also scan the summaries, descriptions and comments of the Jira Cloud issues this JQL selects ($JIRA_URL)',
      )
      .option(
        '--confluence <space>',
        'also scan the current pages, blog posts and comments of this Confluence Cloud space, by key (repeatable, or OPS,ENG)',
        (value: string, previous: string[] = []) => [...previous, value],
      )
      .option(
        '--since <when>',
        'with --slack, --jira, --confluence or s3://: only what was posted or modified after this date or duration (2026-11-01, 7d, 12h)',
      )
      .option(
        '--quarantine',
        "also report every key found to the deployed stack's governance bus (never the key), where it is decided",
      )
      .option(
        '--bus <arn>',
        'with --quarantine: the governance bus (default: $KEYGUARD_BUS, else the stack output GovernanceBusArn)',
      ),
  )
    .addHelpText('after', SCAN_HELP)
    .action(async (paths: string[], opts: ScanOptions) => {
      setExitCode(await runScan(paths, { ...opts, jobs: opts.jobs ?? defaultScanJobs() }, io, scanDeps()));
    });

  registerPolicyCommand(program, io, setExitCode);
  registerAuditVerifyCommand(registerAuditCommand(program, io, setExitCode), io, setExitCode);
  registerReportCommand(program, io, setExitCode);
  registerPreviewCommand(program, io, setExitCode);
  registerSelftestCommand(program, io, setExitCode);

  return program;
}

/** Parses `argv` (as process.argv: node, script, args…) and runs the command; returns the exit code. */
export async function main(
  argv: readonly string[],
  rawIO: CliIO,
  approvalsDeps?: (aws?: AwsRun) => ApprovalsDeps,
  scanDeps?: () => ScanDeps,
): Promise<number> {
  let code = EXIT_OK;
  // Every command's output passes the terminal guard (shared/visible-text.ts), whatever its printers did.
  const io = guardedIO(rawIO);
  const program = buildProgram(
    io,
    (c) => {
      code = c;
    },
    approvalsDeps,
    undefined,
    scanDeps,
  );
  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through here with exit code 0; every usage error is a 2.
      return err.exitCode === 0 ? EXIT_OK : EXIT_INPUT;
    }
    io.stderr.write(`keyguard: ${visibleLines(err instanceof Error ? err.message : String(err))}\n`);
    return EXIT_FAILURE;
  }
}

/** Runs as the process's CLI (from bin/keyguard.js, or `tsx bin/keyguard.ts`). */
export function runAsProcess(): void {
  // `keyguard replay --json | head` closes stdout early: that is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT_OK);
    throw err;
  });
  const terminal = terminalOf(process.stdout, process.env);
  main(process.argv, {
    stdout: process.stdout,
    stderr: process.stderr,
    cwd: process.cwd(),
    ...(terminal ? { terminal } : {}),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`keyguard: ${visibleLines(err instanceof Error ? err.message : String(err))}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}

if (require.main === module) runAsProcess();
