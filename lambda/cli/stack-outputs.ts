import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { type Command, Option } from 'commander';
import { RETRY_POLICY } from '../adapters/clients';
import { STACK_NAME, STACK_REGION } from '../shared/stack';
import { visible } from '../shared/visible-text';
import { explainAwsFailure } from './aws-errors';
import { messageOf } from './inputs';
import { type CliIO, failure } from './io';

/**
 * Where the CLI's AWS commands find what they read: `--profile` and `--region` as in the AWS CLI (else the standard
 * SDK chain), and every table name, URL and bucket from the deployed stack's outputs (CloudFormation
 * DescribeStacks of `--stack`, default BedrockKeyGuard in us-east-1), so nobody copies names by hand.
 * Precedence for each value: an explicit flag, then its KEYGUARD_* variable, then the stack's output. The stack is
 * read only when a value the command needs is given by neither, and at most once per run.
 */

/** Which account and region the clients of one run talk to, and with which profile. */
export interface AwsTarget {
  /** --region, else AWS_REGION / AWS_DEFAULT_REGION, else the stack's region (us-east-1). */
  region: string;
  /** --profile, else AWS_PROFILE; undefined: the SDK's default chain (environment, SSO, instance role…). */
  profile?: string;
}

/** The flags every AWS-reading command takes (see {@link addAwsOptions}). */
export interface AwsFlags {
  profile?: string;
  region?: string;
  stack?: string;
}

/**
 * Each stack output the CLI uses, with the KEYGUARD_* variable that stands for it and a noun for messages.
 * `policyParameter` is the SSM parameter holding the deployed policy (read by the policy code through this table).
 */
export const STACK_OUTPUTS = {
  decisionsTable: { output: 'DecisionsTableName', env: 'KEYGUARD_DECISIONS_TABLE', noun: 'decisions table' },
  keysTable: { output: 'KeysTableName', env: 'KEYGUARD_KEYS_TABLE', noun: 'keys table' },
  approvalsTable: { output: 'ApprovalsTableName', env: 'KEYGUARD_APPROVALS_TABLE', noun: 'approvals table' },
  usageTable: { output: 'UsageTableName', env: 'KEYGUARD_USAGE_TABLE', noun: 'usage table' },
  approvalsUrl: { output: 'ApprovalsUrl', env: 'KEYGUARD_APPROVALS_URL', noun: 'approval function URL' },
  archiveBucket: {
    output: 'AuditArchiveBucketName',
    env: 'KEYGUARD_ARCHIVE_BUCKET',
    noun: 'audit archive bucket',
  },
  governanceBus: { output: 'GovernanceBusArn', env: 'KEYGUARD_BUS', noun: 'governance bus' },
  policyParameter: {
    output: 'EffectivePolicyParameterName',
    env: 'KEYGUARD_POLICY_PARAMETER',
    noun: 'effective policy parameter',
  },
} as const;

export type StackValue = keyof typeof STACK_OUTPUTS;

/** The stack could not be read, or lacks a value the command cannot work without: exit 2 with this line. */
export class StackLookupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StackLookupError';
  }
}

const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const STACK = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;
const STACK_ARN = /^arn:aws[a-z-]*:cloudformation:[a-z0-9-]+:\d{12}:stack\/[A-Za-z][A-Za-z0-9-]*\/[\w-]+$/;

/** --profile, --region and --stack; added to every command that reads AWS. */
export function addAwsOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--profile <name>',
        'AWS profile to use, as in the AWS CLI (default: AWS_PROFILE, else the SDK chain)',
      ),
    )
    .addOption(
      new Option(
        '--region <region>',
        `region of the stack and its tables (default: AWS_REGION, else ${STACK_REGION}, where the app deploys)`,
      ),
    )
    .addOption(
      new Option(
        '--stack <name>',
        `deployed stack whose outputs name the tables and URLs (default: ${STACK_NAME})`,
      ),
    );
}

/** The region and profile of a run: flags first, then the environment, then us-east-1. Bad flags are refused. */
export function awsTarget(flags: AwsFlags, env: NodeJS.ProcessEnv = process.env): AwsTarget {
  const flag = given(flags.region, '--region');
  // The flag is checked; the environment's region is the SDK's business, as before (a local emulator may use any).
  if (flag !== undefined && !REGION.test(flag)) {
    throw new StackLookupError(
      `--region: ${JSON.stringify(flag)} is not an AWS region (e.g. ${STACK_REGION})`,
    );
  }
  const region = flag ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || STACK_REGION);
  const profile = given(flags.profile, '--profile') ?? (env.AWS_PROFILE || undefined);
  return profile ? { region, profile } : { region };
}

function given(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v.length === 0) throw new StackLookupError(`${flag}: must not be empty`);
  return v;
}

/**
 * Client configuration for the run's target: its region, its profile (the SDK reads credentials, SSO and
 * credential_process of that profile, as the AWS CLI does) and the CLI's retry policy.
 */
export function clientConfig(
  target: AwsTarget,
  region: string = target.region,
): { region: string; profile?: string; maxAttempts: number; retryMode: 'standard' } {
  return { region, ...(target.profile ? { profile: target.profile } : {}), ...RETRY_POLICY };
}

/** "(us-east-1, profile prod)" or "(us-east-1)": where the stack was looked for. */
function whereText(target: AwsTarget): string {
  return `(${target.region}${target.profile ? `, profile ${visible(target.profile)}` : ''})`;
}

type Outputs = ReadonlyMap<string, string>;
/** Failures of the credentials themselves: no later AWS call of the run can succeed. */
const CREDENTIAL_KINDS: ReadonlySet<string> = new Set([
  'no-credentials',
  'unknown-profile',
  'rejected-credentials',
]);

type Lookup =
  | { found: true; outputs: Outputs }
  | { found: false; why: string; missing: boolean; error: unknown };

/**
 * The deployed stack of one run: read with one DescribeStacks, the first time a value is asked for (cached
 * after, found or not). A stack named with --stack must exist; the default one may be missing, when the
 * command can do without the value (a note on stderr says so, once).
 */
export class DeployedStack {
  private lookup: Promise<Lookup> | undefined;
  private noted = false;
  private readonly used = new Set<StackValue>();
  private announced = 0;

  constructor(
    readonly name: string,
    /** True when --stack named it: a missing stack is then an error, whatever the command needs. */
    readonly explicit: boolean,
    readonly target: AwsTarget,
    private readonly io: CliIO,
    private readonly client: () => CloudFormationClient = () =>
      new CloudFormationClient(clientConfig(target)),
  ) {}

  /** The stack of --stack (or the default), read in the run's region with its profile. */
  static of(
    flags: AwsFlags,
    target: AwsTarget,
    io: CliIO,
    client?: () => CloudFormationClient,
  ): DeployedStack {
    const named = given(flags.stack, '--stack');
    if (named !== undefined && !STACK.test(named) && !STACK_ARN.test(named)) {
      throw new StackLookupError(
        `--stack: ${JSON.stringify(named)} is not a stack name (letters, digits and hyphens, starting with a letter) ` +
          'or stack ARN',
      );
    }
    return new DeployedStack(named ?? STACK_NAME, named !== undefined, target, io, client);
  }

  /**
   * The value of one output, or undefined when the default stack is missing (noted on stderr) or has no such
   * output. `required`: what to say when the command cannot do without it (then a missing stack or output throws).
   */
  async value(key: StackValue, required?: { flag: string }): Promise<string | undefined> {
    const what = STACK_OUTPUTS[key];
    const lookup = await this.read();
    const stack = `stack ${visible(this.name)} ${whereText(this.target)}`;
    if (!lookup.found) {
      // The one line every command gives for a failed AWS call (aws-errors.ts): service, operation, region,
      // profile, what went wrong and what to do (an unknown profile said to be one).
      const failed = await explainAwsFailure(lookup.error, {
        service: 'CloudFormation',
        operation: 'DescribeStacks',
        region: this.target.region,
        profile: this.target.profile,
        resource: `stack ${this.name}`,
        permissions: `cloudformation:DescribeStacks on stack ${this.name}`,
      });
      // No credentials, an unknown profile or rejected credentials fail every later call too: said once, here,
      // instead of a note and then the same failure of the command's own first call (one line, exit 2).
      const unusable = CREDENTIAL_KINDS.has(failed?.kind ?? '');
      if (this.explicit || required || unusable) {
        const hint = required ? ` Or pass ${required.flag} or set ${what.env}.` : '';
        const line = failed?.line;
        const said = line
          ? line.replace(/^keyguard: /, '').replace(/\n$/, '')
          : `${stack}: ${lookup.why}. Deploy it, or name the deployed stack with --stack, --region and --profile.`;
        throw new StackLookupError(`${said}${hint}`);
      }
      if (!this.noted) {
        this.noted = true;
        this.io.stderr.write(
          lookup.missing
            ? `keyguard: ${stack} not found: going on without its outputs (name it with --stack, --region, --profile)\n`
            : `keyguard: cannot read ${stack} (${lookup.why}): going on without its outputs\n`,
        );
      }
      return undefined;
    }
    const value = lookup.outputs.get(what.output);
    if (value === undefined) {
      if (required) {
        throw new StackLookupError(
          `${stack} has no output ${what.output} (${what.noun}): update the stack, or pass ${required.flag} or ` +
            `set ${what.env}`,
        );
      }
      return undefined;
    }
    this.used.add(key);
    return value;
  }

  /**
   * One line on stderr naming the values taken from the stack since the last call, e.g.
   * "keyguard: keys table and usage table from stack BedrockKeyGuard (us-east-1)"; nothing when none was.
   */
  announce(): void {
    const keys = [...this.used];
    if (keys.length <= this.announced) return;
    const nouns = keys.slice(this.announced).map((k) => STACK_OUTPUTS[k].noun);
    this.announced = keys.length;
    const list =
      nouns.length === 1 ? nouns[0] : `${nouns.slice(0, -1).join(', ')} and ${nouns[nouns.length - 1]}`;
    this.io.stderr.write(`keyguard: ${list} from stack ${visible(this.name)} ${whereText(this.target)}\n`);
  }

  private read(): Promise<Lookup> {
    this.lookup ??= this.describe();
    return this.lookup;
  }

  private async describe(): Promise<Lookup> {
    try {
      const res = await this.client().send(new DescribeStacksCommand({ StackName: this.name }));
      const stack = res.Stacks?.[0];
      if (!stack) {
        const error = Object.assign(new Error(`Stack with id ${this.name} does not exist`), {
          name: 'ValidationError',
        });
        return { found: false, why: 'no such stack', missing: true, error };
      }
      const outputs = new Map<string, string>();
      for (const o of stack.Outputs ?? []) {
        if (o.OutputKey && o.OutputValue !== undefined) outputs.set(o.OutputKey, o.OutputValue);
      }
      return { found: true, outputs };
    } catch (err) {
      const name = (err as { name?: unknown } | null)?.name;
      // CloudFormation answers a missing stack with ValidationError "Stack with id X does not exist".
      if (name === 'ValidationError' && /does not exist/i.test(messageOf(err))) {
        return { found: false, why: 'no such stack', missing: true, error: err };
      }
      return {
        found: false,
        why: `${typeof name === 'string' ? `${name}: ` : ''}${messageOf(err).replace(/\.+$/, '')}`,
        missing: false,
        error: err,
      };
    }
  }
}

/** One run's AWS access: the target its clients use and its deployed stack. */
export interface AwsRun {
  target: AwsTarget;
  stack: DeployedStack;
}

/** The run's target and stack from the command's --profile, --region and --stack (and the environment). */
export function awsRun(flags: AwsFlags, io: CliIO, env: NodeJS.ProcessEnv = process.env): AwsRun {
  const target = awsTarget(flags, env);
  return { target, stack: DeployedStack.of(flags, target, io) };
}

/** {@link awsRun}, or undefined after a one-line error on stderr (a bad --region, --profile or --stack: exit 2). */
export function awsRunOrFail(
  flags: AwsFlags,
  io: CliIO,
  env: NodeJS.ProcessEnv = process.env,
): AwsRun | undefined {
  try {
    return awsRun(flags, io, env);
  } catch (err) {
    if (!(err instanceof StackLookupError)) throw err;
    failure(io, err.message);
    return undefined;
  }
}

/**
 * A value by precedence: `flag` (the option, which commander may already have filled from its variable), then
 * the variable, then the stack (when there is one to read). Empty strings count as not given.
 */
export async function stackValue(
  key: StackValue,
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  stack: DeployedStack | undefined,
  required?: { flag: string },
): Promise<string | undefined> {
  const explicit = flag?.trim() || env[STACK_OUTPUTS[key].env]?.trim();
  if (explicit) return explicit;
  return stack?.value(key, required);
}
