import { Command, CommanderError, Option } from 'commander';
import { type CliIO, EXIT_FAILURE, EXIT_INPUT, EXIT_OK } from '../lambda/cli/io';
import { DEFAULT_STORE_DIR, runReplay } from '../lambda/cli/replay';
import { DEFAULT_CONFIG_FILE } from '../lambda/shared/config';
import pkg from '../package.json';

/** The `keyguard` CLI: commander wiring only; each command lives in lambda/cli/. */

const REPLAY_HELP = `
Inputs (files, or directories searched recursively for .json, .jsonl, .ndjson and their .gz):
  - CloudTrail log files as delivered to S3 ({"Records": [...]}, usually .json.gz)
  - a single EventBridge event ("AWS API Call via CloudTrail") or a single CloudTrail record
  - newline-delimited JSON of either, one per line

Records are replayed in eventTime order across all files. Users' tags and keys are rebuilt from the
events (CreateUser, TagUser, UntagUser, Create/Update/Reset/DeleteServiceSpecificCredential); each key
event is evaluated against the policy as of its own time. Nothing is changed in AWS and no notice is
sent: deactivations are planned, notices are counted. Decisions are appended to an embedded DynamoDB
in the store directory; replaying the same events again does not record them twice.

Exit codes:
  0  every input was read
  1  unexpected failure
  2  bad usage or config, or some input could not be read (reported on stderr; the rest was replayed)

Examples:
  $ keyguard replay examples/cloudtrail
  $ keyguard replay --json ~/trail-logs/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11 > decisions.jsonl
  $ keyguard replay --config examples/keyguard.config.json --store /tmp/kg examples/events
`;

/** Builds the program with its output going to `io`; commander never exits the process. */
export function buildProgram(io: CliIO, setExitCode: (code: number) => void): Command {
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
    })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('replay')
    .summary('replay CloudTrail logs and EventBridge events offline, with decisions in a local audit store')
    .description(
      'Replay IAM CloudTrail events about Bedrock API keys through the key policy, offline: no AWS account ' +
        'or network needed. Prints one decision per key event, then totals.',
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
    .addHelpText('after', REPLAY_HELP)
    .action(async (paths: string[], opts: { config?: string; store?: string; json?: boolean }) => {
      setExitCode(await runReplay(paths, opts, io));
    });

  return program;
}

/** Parses `argv` (as process.argv: node, script, args…) and runs the command; returns the exit code. */
export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through here with exit code 0; every usage error is a 2.
      return err.exitCode === 0 ? EXIT_OK : EXIT_INPUT;
    }
    io.stderr.write(`keyguard: ${err instanceof Error ? err.message : String(err)}\n`);
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
  main(process.argv, { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`keyguard: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}

if (require.main === module) runAsProcess();
