import { type Command, Option } from 'commander';
import {
  GUARDRAIL_KINDS,
  type GuardrailKind,
  GuardrailPolicyTooLargeError,
  guardrailPolicy,
} from '../domain/guardrails';
import { type Config, ConfigError, DEFAULT_CONFIG_FILE, loadConfig } from '../shared/config';
import { exitCodesHelp } from './aws-errors';
import { type CliIO, EXIT_INPUT, EXIT_OK, failure } from './io';

/**
 * `keyguard policy --kind scp|boundary|identity`: prints the preventive guardrail policy derived from the config,
 * the same document the GuardrailPolicies construct deploys. Offline: no AWS call, nothing written. The
 * document goes to stdout alone (pretty JSON), so it can be piped or saved and given to the AWS CLI as is.
 */

export interface PolicyOptions {
  kind: string;
  /** Policy config file; default `keyguard.config.json` in cwd when present, else the built-in defaults. */
  config?: string;
}

function isKind(kind: string): kind is GuardrailKind {
  return (GUARDRAIL_KINDS as readonly string[]).includes(kind);
}

export async function runPolicy(opts: PolicyOptions, io: CliIO): Promise<number> {
  if (!isKind(opts.kind)) {
    failure(io, `--kind: got ${JSON.stringify(opts.kind)}; allowed: ${GUARDRAIL_KINDS.join(' | ')}`);
    return EXIT_INPUT;
  }
  let config: Config;
  try {
    config = loadConfig(opts.config, io.cwd).config;
  } catch (err) {
    if (err instanceof ConfigError) {
      failure(io, err.message);
      return EXIT_INPUT;
    }
    throw err;
  }
  try {
    io.stdout.write(`${JSON.stringify(guardrailPolicy(config, opts.kind), null, 2)}\n`);
  } catch (err) {
    // Only a config beyond the schema's limits can make a document too large; it is still the config's fault.
    if (err instanceof GuardrailPolicyTooLargeError) {
      failure(io, err.message);
      return EXIT_INPUT;
    }
    throw err;
  }
  return EXIT_OK;
}

const POLICY_HELP = `
Kinds (every Deny is waived for principals tagged with guardrails.exemptTag, default
keyguard:guardrail-exempt = true, and only such principals may set or remove that tag):
  scp       Organizations service control policy, deny-only (at most 5,120 characters). From the
            management account:
              $ keyguard policy --kind scp > guardrails-scp.json
              $ aws organizations create-policy --type SERVICE_CONTROL_POLICY --name BedrockKeyGuardrails \\
                  --description "Bedrock API key guardrails" --content file://guardrails-scp.json
              $ aws organizations attach-policy --policy-id p-… --target-id ou-…
  boundary  permissions boundary: the denies plus one Allow * on * (a boundary caps what identity policies
            grant, so a boundary of denies alone would allow nothing):
              $ keyguard policy --kind boundary > guardrails-boundary.json
              $ aws iam create-policy --policy-name BedrockKeyGuardrailsBoundary \\
                  --policy-document file://guardrails-boundary.json
              $ aws iam put-user-permissions-boundary --user-name alice \\
                  --permissions-boundary arn:aws:iam::111122223333:policy/BedrockKeyGuardrailsBoundary
              (put-role-permissions-boundary for roles)
  identity  customer managed policy, deny-only, attached to the users, groups or roles to restrain:
              $ keyguard policy --kind identity > guardrails-identity.json
              $ aws iam create-policy --policy-name BedrockKeyGuardrails \\
                  --policy-document file://guardrails-identity.json
              $ aws iam attach-role-policy --role-name ml-team \\
                  --policy-arn arn:aws:iam::111122223333:policy/BedrockKeyGuardrails

What is denied: creating a Bedrock API key without an expiry or for longer than maxAgeDays (every Bedrock
key when allowLongTermKeys is false, and then also LONG_TERM bearer-token use on bedrock and bedrock-mantle);
access keys, passwords, signing certificates and SSH keys on BedrockAPIKey-* users. The stack can deploy the
scp or identity kind itself: guardrails.deploy in the config.

${exitCodesHelp({ 0: 'the policy was printed' })}
`;

/** Adds `keyguard policy` to the program (bin/keyguard.ts), with its output going to `io`. */
export function registerPolicyCommand(
  program: Command,
  io: CliIO,
  setExitCode: (code: number) => void,
): void {
  program
    .command('policy')
    .summary('print the preventive guardrail policy (SCP, permissions boundary or identity policy) as JSON')
    .description(
      'Print the IAM policy that stops non-compliant Bedrock API keys before they exist, derived from the ' +
        'config: an Organizations SCP, a permissions boundary or an identity policy. Offline: nothing is sent ' +
        'to AWS.',
    )
    .addOption(
      new Option('-k, --kind <kind>', 'which policy to print')
        .choices([...GUARDRAIL_KINDS])
        .makeOptionMandatory(),
    )
    .option(
      '-c, --config <file>',
      `policy config file (default: ./${DEFAULT_CONFIG_FILE} if present, else the built-in defaults)`,
    )
    .addHelpText('after', POLICY_HELP)
    .action(async (opts: PolicyOptions) => {
      setExitCode(await runPolicy(opts, io));
    });
}
