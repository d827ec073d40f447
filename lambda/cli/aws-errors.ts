import { loadSharedConfigFiles } from '@smithy/core/config';
import { redactSecrets } from '../shared/redact';
import { visible } from '../shared/visible-text';
import { EXIT_FAILURE, EXIT_INPUT, EXIT_OK } from './io';

/**
 * How every command that talks to AWS reports a failure of AWS (`inventory`, `inventory --org`, `approve`,
 * `approvals`, `review`, `audit --table`, `audit verify`, `report --table`, `preview --table`, and the stack
 * lookup): ONE line on stderr naming the service, the operation, the region and the profile (or "default
 * credential chain"), what went wrong and what to do, and the same exit code (`EXIT_AWS`) for every kind in every
 * command. The SDK's own message is shown (shortened, redacted, through `visible()`), never a raw response body
 * and never credentials.
 *
 * The operation comes from the error itself when the client was tagged (`tagAwsErrors`: the SDK's middleware
 * context names the client and the command), else from the caller's context.
 */

/**
 * Exit code of every AWS failure, in every command: 2, as `inventory`, `audit`, `report`, `audit verify` and
 * `preview` have always used for "no credentials, access denied or another AWS error" (scripts keep working).
 * Not 1: 1 is what `scan` (keys found), `audit verify` (tamper evidence) and `--fail-on` (posture) report, so a
 * pipeline gating on 1 must never read an expired token or an unreachable endpoint as a finding.
 */
export const EXIT_AWS = EXIT_INPUT;

/** The region the stack (and its tables, function URL and stack outputs) is deployed in unless told otherwise. */
export const DEPLOY_REGION = 'us-east-1';

export type AwsFailureKind =
  | 'no-credentials'
  | 'unknown-profile'
  | 'access-denied'
  | 'rejected-credentials'
  | 'stack-not-found'
  | 'table-not-found'
  | 'wrong-region'
  | 'not-found'
  | 'throttled'
  | 'network'
  | 'aws-error';

/** Where the failing call was made: named on the line. */
export interface AwsCallContext {
  /** The command, e.g. `inventory`; the line starts `keyguard: inventory: `. */
  command?: string;
  /** e.g. `IAM`, `DynamoDB`, `CloudFormation`, `Lambda function URL` (overridden by a tagged error's client). */
  service: string;
  /** e.g. `ListServiceSpecificCredentials` (overridden by a tagged error's command). */
  operation: string;
  region: string;
  /** The named profile (--profile or AWS_PROFILE); absent: the default credential chain. */
  profile?: string | undefined;
  /** What was asked for, e.g. `table keyguard-decisions`, `stack BedrockKeyGuard`. */
  resource?: string;
  /** The endpoint, when the error does not name it (e.g. the approvals function URL's origin). */
  endpoint?: string;
  /** Every permission the command needs, named after the denied action on access denied. */
  permissions?: string;
  /** The stack's region; a resource missing from another region suggests --region. @default DEPLOY_REGION */
  deployRegion?: string;
  /** Whether `profile` is in the config files (see `profileExists`); false turns a missing-credentials error into unknown-profile. */
  profileKnown?: boolean;
}

export interface AwsFailure {
  /** One line, ending in a newline, ready for stderr. */
  line: string;
  exitCode: number;
  kind: AwsFailureKind;
}

/** What `tagAwsErrors` writes on an error: the client and command the SDK was running, and its endpoint. */
interface OperationTag {
  service: string;
  operation: string;
  endpoint?: string;
  /** The client's own region and profile: the call that failed, whatever the command's defaults. */
  region?: string;
  profile?: string;
  /** `table NAME` or `stack NAME`, from the request (AWS's not-found messages do not name it). */
  resource?: string;
}
const TAG = Symbol.for('keyguard.awsOperation');

/** SDK client names (`IAMClient`) → the service named on the line and the IAM action prefix. */
const SERVICES: Record<string, { name: string; prefix: string }> = {
  IAMClient: { name: 'IAM', prefix: 'iam' },
  STSClient: { name: 'STS', prefix: 'sts' },
  DynamoDBClient: { name: 'DynamoDB', prefix: 'dynamodb' },
  OrganizationsClient: { name: 'Organizations', prefix: 'organizations' },
  CloudFormationClient: { name: 'CloudFormation', prefix: 'cloudformation' },
  S3Client: { name: 'S3', prefix: 's3' },
  KMSClient: { name: 'KMS', prefix: 'kms' },
  SSMClient: { name: 'SSM', prefix: 'ssm' },
  LambdaClient: { name: 'Lambda', prefix: 'lambda' },
  EventBridgeClient: { name: 'EventBridge', prefix: 'events' },
};
const PREFIXES: Record<string, string> = Object.fromEntries(
  Object.values(SERVICES).map((s) => [s.name, s.prefix]),
);
PREFIXES['Lambda function URL'] = 'lambda';
/** Operations whose IAM action has another name. */
const ACTIONS: Record<string, string> = {
  'S3 ListObjectsV2': 's3:ListBucket',
  'S3 ListObjects': 's3:ListBucket',
  'S3 HeadBucket': 's3:ListBucket',
  'S3 HeadObject': 's3:GetObject',
};

/** A client of the SDK (v3): its middleware stack (methods are compared bivariantly, so every client fits). */
interface MiddlewareClient {
  middlewareStack: { add(middleware: unknown, options: unknown): unknown };
  config?: unknown;
}

type Next = (args: unknown) => Promise<unknown>;
interface MiddlewareContext {
  clientName?: string;
  commandName?: string;
  endpointV2?: { url?: URL };
}

/**
 * Marks every error a client's call throws with the service, operation and endpoint the SDK was running (its
 * middleware context), so the line names the call that failed even when a command makes many. Returns the client.
 */
export function tagAwsErrors<C extends MiddlewareClient>(client: C): C {
  client.middlewareStack.add(
    (next: Next, context: MiddlewareContext) => async (args: unknown) => {
      try {
        return await next(args);
      } catch (err) {
        if (err !== null && typeof err === 'object' && !(TAG in err)) {
          const service =
            SERVICES[context.clientName ?? '']?.name ?? context.clientName?.replace(/Client$/, '');
          const operation = context.commandName?.replace(/Command$/, '');
          const host = context.endpointV2?.url?.host;
          const { region, profile } = await clientWhere(client);
          const resource = resourceOf(field(args, 'input'));
          if (service && operation) {
            const tag: OperationTag = {
              service,
              operation,
              ...(host ? { endpoint: host } : {}),
              ...(region ? { region } : {}),
              ...(profile ? { profile } : {}),
              ...(resource ? { resource } : {}),
            };
            Object.defineProperty(err, TAG, { value: tag, enumerable: false });
          }
        }
        throw err;
      }
    },
    { step: 'initialize', name: 'keyguardAwsErrorTag', override: true },
  );
  return client;
}

/** The table or stack a request names (DynamoDB's TableName or RequestItems, CloudFormation's StackName). */
function resourceOf(input: unknown): string | undefined {
  const table = str(field(input, 'TableName'));
  if (table) return `table ${table}`;
  const items = field(input, 'RequestItems');
  if (items !== null && typeof items === 'object') {
    const names = Object.keys(items);
    if (names.length > 0) return `table ${names.join(', ')}`;
  }
  const stack = str(field(input, 'StackName'));
  return stack ? `stack ${stack}` : undefined;
}

/** A client's configured region (resolved) and profile, from its config; absent when it cannot say. */
async function clientWhere(client: MiddlewareClient): Promise<{ region?: string; profile?: string }> {
  let region: unknown = field(client.config, 'region');
  try {
    if (typeof region === 'function') region = await (region as () => Promise<unknown>)();
  } catch {
    region = undefined;
  }
  const profile = field(client.config, 'profile');
  return {
    ...(typeof region === 'string' && region ? { region } : {}),
    ...(typeof profile === 'string' && profile ? { profile } : {}),
  };
}

function field(value: unknown, name: string): unknown {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[name] : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** The error and its causes, outermost first (at most 5 deep). */
function chain(err: unknown): unknown[] {
  const out: unknown[] = [];
  let e: unknown = err;
  while (e !== null && typeof e === 'object' && out.length < 5 && !out.includes(e)) {
    out.push(e);
    e = field(e, 'cause');
  }
  return out;
}

/** Error names of a missing credential (the SDK's providers); also read by inventory's per-account reasons. */
export const NO_CREDENTIALS = new Set([
  'CredentialsProviderError',
  'ProviderError',
  'TokenProviderError',
  'MissingCredentialsError',
]);
/** Error names of credentials AWS rejected (expired, unknown, badly signed). */
export const REJECTED = new Set([
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'InvalidSignatureException',
  'InvalidAccessKeyId',
  'InvalidToken',
]);
/** Error names of a denied call. */
export const DENIED = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'AuthorizationError',
  'ApprovalForbiddenError',
]);
const THROTTLED = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'ProvisionedThroughputExceededException',
  'SlowDown',
]);
const NETWORK_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);
const NETWORK_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'AbortError']);
const STACK_MISSING = /Stack with id (\S+) does not exist/;
const PROFILE_MISSING =
  /(?:Could not resolve credentials using profile: \[([^\]]+)\]|Profile (\S+) could not be found)/;

/** The SDK's message, one line, at most 300 characters, key material redacted. */
function shortMessage(err: unknown): string {
  const m = str(field(err, 'message')) ?? '';
  const one = redactSecrets(m).replace(/\s+/g, ' ').trim().replace(/\.+$/, '');
  return one.length > 300 ? `${one.slice(0, 300)}…` : one;
}

/** The region S3 names in a redirect (header x-amz-bucket-region of the error's response), if it looks like one. */
function bucketRegionOf(err: unknown): string | undefined {
  const headers = field(field(err, '$response'), 'headers');
  const value = str(field(headers, 'x-amz-bucket-region')) ?? str(field(err, 'BucketRegion'));
  return value && /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(value) ? value : undefined;
}

function attempts(err: unknown): number | undefined {
  const n = field(field(err, '$metadata'), 'attempts');
  return typeof n === 'number' ? n : undefined;
}

function httpStatus(err: unknown): number | undefined {
  const n = field(field(err, '$metadata'), 'httpStatusCode');
  return typeof n === 'number' ? n : undefined;
}

/** The network error in the chain (a Node system error, or fetch's cause), if any. */
function networkError(errors: unknown[]): { code: string; host?: string } | undefined {
  for (const e of errors) {
    const code = str(field(e, 'code'));
    if (code && NETWORK_CODES.has(code)) {
      const host = str(field(e, 'hostname')) ?? str(field(e, 'host')) ?? str(field(e, 'address'));
      const port = field(e, 'port');
      return { code, ...(host ? { host: typeof port === 'number' ? `${host}:${port}` : host } : {}) };
    }
    const name = str(field(e, 'name'));
    if (name && NETWORK_NAMES.has(name) && field(e, '$fault') === undefined) return { code: name };
  }
  return undefined;
}

function kindOf(
  errors: unknown[],
  ctx: AwsCallContext,
  region: string,
  profile: string | undefined,
): { kind: AwsFailureKind; source: unknown } | null {
  const deployRegion = ctx.deployRegion ?? DEPLOY_REGION;
  const notFound = (source: unknown, kind: AwsFailureKind) => ({
    kind: region !== deployRegion ? ('wrong-region' as const) : kind,
    source,
  });
  // Innermost first: a wrapper's message (e.g. the approvals client's) repeats advice; the cause says what AWS said.
  for (const e of [...errors].reverse()) {
    const name = str(field(e, 'name')) ?? '';
    const message = str(field(e, 'message')) ?? '';
    // A plain Error or the SDK's provider errors: a message of the CLI's own (e.g. a failure already described,
    // quoted in a usage error) is never read as one.
    const provider = NO_CREDENTIALS.has(name) || name === 'Error';
    if (provider && PROFILE_MISSING.test(message)) return { kind: 'unknown-profile', source: e };
    if (NO_CREDENTIALS.has(name) || (provider && /could not load credentials/i.test(message))) {
      if (/\bsso\b/i.test(message) && /expired|invalid|refresh/i.test(message)) {
        return { kind: 'rejected-credentials', source: e };
      }
      return {
        kind: profile && ctx.profileKnown === false ? 'unknown-profile' : 'no-credentials',
        source: e,
      };
    }
    if (REJECTED.has(name)) return { kind: 'rejected-credentials', source: e };
    if (DENIED.has(name)) return { kind: 'access-denied', source: e };
    if (THROTTLED.has(name) || httpStatus(e) === 429) return { kind: 'throttled', source: e };
    // S3 answers a bucket of another region with 301 PermanentRedirect (its region in x-amz-bucket-region).
    if (name === 'PermanentRedirect' || httpStatus(e) === 301) return { kind: 'wrong-region', source: e };
    if (STACK_MISSING.test(message) || name === 'StackNotFoundException')
      return notFound(e, 'stack-not-found');
    if (name === 'ResourceNotFoundException' || name === 'TableNotFoundException') {
      return notFound(e, 'table-not-found');
    }
    if (/NotFound(?:Exception)?$|^NoSuch/.test(name) && field(e, '$metadata') !== undefined) {
      return { kind: 'not-found', source: e };
    }
  }
  if (networkError(errors)) return { kind: 'network', source: errors[0] };
  for (const e of errors) {
    if (httpStatus(e) === 403) return { kind: 'access-denied', source: e };
  }
  for (const e of errors) {
    if (field(e, '$metadata') !== undefined && field(e, '$fault') !== undefined) {
      return { kind: 'aws-error', source: e };
    }
  }
  return null;
}

function tagOf(errors: unknown[]): OperationTag | undefined {
  for (const e of errors) {
    const tag = (e as { [TAG]?: OperationTag })[TAG];
    if (tag) return tag;
  }
  return undefined;
}

function whoText(profile: string | undefined): string {
  return profile ? `profile ${profile}` : 'default credential chain';
}

/**
 * One AWS failure as the CLI reports it: the line (service, operation, region, profile, what went wrong, what to
 * do), the exit code (`EXIT_AWS`) and the kind; null when `err` is not a failure of AWS (a bug: the caller
 * reports it as an unexpected failure, exit 1).
 */
export function describeAwsFailure(err: unknown, ctx: AwsCallContext): AwsFailure | null {
  const errors = chain(err);
  const tag = tagOf(errors);
  const region = tag?.region ?? ctx.region;
  const profile = tag?.profile ?? (ctx.profile || undefined);
  const found = kindOf(errors, ctx, region, profile);
  if (!found) return null;
  const { kind, source } = found;
  const service = tag?.service ?? ctx.service;
  const operation = tag?.operation ?? ctx.operation;
  const who = whoText(profile);
  const name = str(field(source, 'name')) ?? 'Error';
  const message = shortMessage(source);
  const said = message ? ` (${name}: ${message})` : ` (${name})`;
  const action =
    ACTIONS[`${service} ${operation}`] ?? `${PREFIXES[service] ?? service.toLowerCase()}:${operation}`;
  const what = tag?.resource ?? ctx.resource ?? `the ${service} resource`;
  const deployRegion = ctx.deployRegion ?? DEPLOY_REGION;
  let why: string;
  let todo: string;
  switch (kind) {
    case 'no-credentials':
      why = `no AWS credentials found${said}`;
      todo =
        'Sign in as for the AWS CLI: --profile NAME or AWS_PROFILE (aws sso login --profile NAME for SSO), or ' +
        'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY';
      break;
    case 'unknown-profile':
      why = `profile ${profile ?? '(unnamed)'} is not in the AWS config files${said}`;
      todo =
        'Check the name (aws configure list-profiles; AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE if set) or ' +
        `create it (aws configure sso --profile ${profile ?? 'NAME'})`;
      break;
    case 'access-denied':
      why = `access denied${said}`;
      todo =
        `Grant ${action} to the caller, or use a profile that has it` +
        (ctx.permissions ? ` (${ctx.command ?? 'the command'} needs ${ctx.permissions})` : '');
      break;
    case 'rejected-credentials':
      why = `AWS rejected the credentials: expired or invalid${said}`;
      todo = profile
        ? `Refresh them (aws sso login --profile ${profile}, or new keys in the profile) and retry`
        : 'Refresh them (aws sso login, or new temporary credentials in the environment) and retry';
      break;
    case 'stack-not-found':
      why = `${what} does not exist in ${region}${said}`;
      todo =
        'Deploy it (npx cdk deploy), or name the deployed stack with --stack NAME; if it was deployed in another ' +
        'region, pass --region';
      break;
    case 'table-not-found':
      why = `${what} does not exist in ${region}${said}`;
      todo =
        "Check the name (the stack's outputs name its tables) and that the credentials are for the stack's account; " +
        'if it was deployed in another region, pass --region';
      break;
    case 'wrong-region': {
      const bucketRegion = bucketRegionOf(source);
      if (name === 'PermanentRedirect' || httpStatus(source) === 301) {
        why = `${what} is not in ${region}${bucketRegion ? `: it is in ${bucketRegion}` : ''}${said}`;
        todo = bucketRegion
          ? `Pass --region ${bucketRegion}`
          : "Pass --region with the bucket's region (aws s3api get-bucket-location --bucket NAME)";
        break;
      }
      why = `${what} not found in ${region}${said}`;
      todo = `The stack and its tables live in the region it was deployed to (${deployRegion} by default): pass --region ${deployRegion} (or the stack's region)`;
      break;
    }
    case 'not-found':
      why = `not found${said}`;
      todo =
        'Check the name or id given (an --ou, --account, bucket or key), and the account (--profile) and region (--region)';
      break;
    case 'throttled': {
      const n = attempts(source);
      why = `throttled by AWS${n ? ` after ${n} attempts` : ''}${said}`;
      todo = 'Wait a minute and retry, or run fewer reads at once (e.g. a lower --concurrency)';
      break;
    }
    case 'network': {
      const net = networkError(errors);
      const endpoint = net?.host ?? tag?.endpoint ?? ctx.endpoint ?? `the ${service} endpoint of ${region}`;
      why = `could not reach ${endpoint} (${net?.code ?? name}${message ? `: ${message}` : ''})`;
      todo =
        'Check the network, proxy and DNS, the region (--region), and any AWS_ENDPOINT_URL_* override, then retry';
      break;
    }
    default: {
      const status = httpStatus(source);
      why = `AWS answered ${name}${status ? ` (HTTP ${status})` : ''}${message ? `: ${message}` : ''}`;
      todo = 'See the AWS message; retry if it is transient';
    }
  }
  const head = `${service} ${operation} (region ${region}, ${who})`;
  const line = `keyguard: ${ctx.command ? `${visible(ctx.command)}: ` : ''}${visible(head)}: ${visible(why)}. ${visible(todo)}.\n`;
  return { line, exitCode: EXIT_AWS, kind };
}

/**
 * Whether `profile` is defined in the shared config or credentials file (AWS_CONFIG_FILE,
 * AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/config and ~/.aws/credentials): the SDK's default chain reports an
 * unknown profile as "Could not load credentials from any providers", which would send the user looking for
 * credentials instead of a typo. Local files only; undefined when they cannot be read.
 */
export async function profileExists(profile: string): Promise<boolean | undefined> {
  try {
    const files = await loadSharedConfigFiles({ ignoreCache: true });
    return profile in files.configFile || profile in files.credentialsFile;
  } catch {
    return undefined;
  }
}

/**
 * `describeAwsFailure` after checking, for a credentials failure with a named profile, whether that profile
 * exists (an unknown profile is then said to be one).
 */
export async function explainAwsFailure(err: unknown, ctx: AwsCallContext): Promise<AwsFailure | null> {
  const first = describeAwsFailure(err, ctx);
  const profile = tagOf(chain(err))?.profile ?? ctx.profile;
  if (first?.kind !== 'no-credentials' || !profile || ctx.profileKnown !== undefined) return first;
  const known = await profileExists(profile);
  return known === false ? describeAwsFailure(err, { ...ctx, profileKnown: false }) : first;
}

/**
 * Reports `err` when it is a failure of AWS: its line on stderr, and its exit code returned; null (nothing
 * written) for anything else, which the caller reports as before.
 */
export async function reportAwsFailure(
  io: { stderr: { write(chunk: string): unknown } },
  err: unknown,
  ctx: AwsCallContext,
): Promise<number | null> {
  const failure = await explainAwsFailure(err, ctx);
  if (!failure) return null;
  io.stderr.write(failure.line);
  return failure.exitCode;
}

/** The region and profile of the standard SDK chain as the commands resolve them (flags, when given, win). */
export function awsWhere(
  env: NodeJS.ProcessEnv,
  flags: { region?: string | undefined; profile?: string | undefined } = {},
): { region: string; profile?: string } {
  const region = flags.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || DEPLOY_REGION;
  const profile = flags.profile || env.AWS_PROFILE || undefined;
  return { region, ...(profile ? { profile } : {}) };
}

/**
 * The exit codes of the CLI: one meaning per code, the same in every command's --help and in the docs. A command
 * adds what the code means for it (scan: 1 = keys found), never a different meaning.
 */
export const EXIT_CODES: readonly { code: number; meaning: string }[] = [
  { code: EXIT_OK, meaning: 'success' },
  {
    code: EXIT_FAILURE,
    meaning: 'unexpected failure (a bug, or a function of the stack failed), reported on stderr',
  },
  {
    code: EXIT_AWS,
    meaning:
      'bad usage or config, input that could not be read, or an AWS failure (no credentials, unknown profile, ' +
      'access denied, expired or invalid credentials, missing stack or table, wrong region, throttled, network ' +
      'unreachable): one line on stderr naming the service, operation, region and profile, and what to do',
  },
];

/** Command-specific meanings added to the shared ones (and code 3 of `inventory --org`). */
export type ExitCodeExtras = Partial<Record<0 | 1 | 2 | 3, string>>;

const HELP_WIDTH = 110;
const INDENT = '     ';

function wrap(text: string, first: string): string[] {
  const lines: string[] = [];
  let line = first;
  for (const word of text.split(' ')) {
    if (line.length + 1 + word.length > HELP_WIDTH && line.trim().length > first.trim().length) {
      lines.push(line);
      line = `${INDENT}${word}`;
    } else {
      line = line.endsWith(' ') || line === '' ? `${line}${word}` : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines;
}

/**
 * The "Exit codes:" block of a command's --help: the shared meaning of 0, 1 and 2 (`EXIT_CODES`), each followed
 * by what it also means for this command, then the command's own codes (3).
 */
export function exitCodesHelp(extras: ExitCodeExtras = {}): string {
  const out = ['Exit codes:'];
  for (const { code, meaning } of EXIT_CODES) {
    const extra = extras[code as 0 | 1 | 2];
    out.push(...wrap(extra ? `${meaning}${code === EXIT_OK ? ':' : ';'} ${extra}` : meaning, `  ${code}  `));
  }
  if (extras[3]) out.push(...wrap(extras[3], '  3  '));
  return out.join('\n');
}
