/**
 * What a synthesized template's values become at deploy time, for tests that measure them against AWS's limits or
 * hand them to a Lambda entry point as its environment: every intrinsic function (Ref, Fn::GetAtt, Fn::Join,
 * Fn::Sub, Fn::Select, Fn::Split) is replaced by the LONGEST value CloudFormation can give it for this stack.
 *
 * Worst-case lengths (documented so that a reader can check them):
 * - account id: 12 digits (`123456789012`); partition `aws`; the stack's own region.
 * - a name CloudFormation generates (no name property in the template): `<stack name>-<logical id>-<13 characters>`,
 *   the form CloudFormation uses ("CloudFormation might name an Amazon S3 bucket ... MyStack-MyBucket-abcdefghijk1",
 *   CloudFormation resource custom naming, Template Reference), with the longer 13-character suffix seen on
 *   generated DynamoDB table and Lambda function names, then cut to the service's own maximum (CloudFormation
 *   shortens the stack name and logical id to fit): DynamoDB table 255, SQS queue 80, Lambda function 64, S3 bucket
 *   63 (lower case), SNS topic 256, IAM role 64, log group 512, event bus / rule 64.
 * - a name given in the template (TableName, QueueName...) is used as given.
 * - ARNs and URLs are built from those names as each service documents them; a KMS key id is a 36-character UUID.
 * An attribute or a resource type not known here throws, naming it, so that a new one is added deliberately
 * rather than measured as something shorter.
 */

export type CfnTemplate = {
  Resources?: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  Outputs?: Record<string, unknown>;
  Parameters?: Record<string, unknown>;
};

export interface ResolveContext {
  readonly template: CfnTemplate;
  readonly stackName: string;
  readonly region: string;
  readonly account?: string;
}

export const FAKE_ACCOUNT = '123456789012';
/** CloudFormation's random suffix of a generated name, at its longest. */
const GENERATED_SUFFIX = 'A1B2C3D4E5F6G';
const KMS_KEY_ID = '1234abcd-12ab-34cd-56ef-1234567890ab';

/** Longest name a service accepts for a resource CloudFormation names. */
const NAME_MAX: Record<string, number> = {
  'AWS::DynamoDB::Table': 255,
  'AWS::SQS::Queue': 80,
  'AWS::Lambda::Function': 64,
  'AWS::S3::Bucket': 63,
  'AWS::SNS::Topic': 256,
  'AWS::IAM::Role': 64,
  'AWS::IAM::ManagedPolicy': 128,
  'AWS::Logs::LogGroup': 512,
  'AWS::Events::EventBus': 256,
  'AWS::Events::Rule': 64,
  'AWS::Scheduler::Schedule': 64,
  'AWS::Scheduler::ScheduleGroup': 64,
  // Secrets Manager: a secret name has at most 512 characters (CreateSecret API reference).
  'AWS::SecretsManager::Secret': 512,
  // CloudFormation names a parameter CFN-<logical id>-<random>; SSM allows 1011 characters, ARN included.
  'AWS::SSM::Parameter': 1011 - 'arn:aws:ssm:us-east-1:123456789012:parameter/'.length,
};

/** The property that names a resource of each type, when the template names it. */
const NAME_PROPERTY: Record<string, string> = {
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::SQS::Queue': 'QueueName',
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::S3::Bucket': 'BucketName',
  'AWS::SNS::Topic': 'TopicName',
  'AWS::IAM::Role': 'RoleName',
  'AWS::IAM::ManagedPolicy': 'ManagedPolicyName',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::Events::EventBus': 'Name',
  'AWS::Events::Rule': 'Name',
  'AWS::Scheduler::Schedule': 'Name',
  'AWS::Scheduler::ScheduleGroup': 'Name',
  'AWS::SSM::Parameter': 'Name',
};

function resourceOf(
  ctx: ResolveContext,
  logicalId: string,
): { Type: string; Properties?: Record<string, unknown> } {
  const r = ctx.template.Resources?.[logicalId];
  if (!r) throw new Error(`Ref/GetAtt to ${logicalId}: no such resource in the template`);
  return r;
}

/** The physical name of a resource: the one the template gives, or the longest CloudFormation can generate. */
export function physicalName(ctx: ResolveContext, logicalId: string): string {
  const r = resourceOf(ctx, logicalId);
  const prop = NAME_PROPERTY[r.Type];
  const given = prop ? r.Properties?.[prop] : undefined;
  if (given !== undefined) return String(resolveValue(ctx, given));
  const max = NAME_MAX[r.Type];
  if (max === undefined) throw new Error(`no worst-case name length known for ${r.Type} (${logicalId})`);
  let name = `${ctx.stackName}-${logicalId}-${GENERATED_SUFFIX}`;
  if (r.Type === 'AWS::SQS::Queue' && r.Properties?.FifoQueue === true)
    name = `${name.slice(0, max - 5)}.fifo`;
  name = name.slice(0, max);
  return r.Type === 'AWS::S3::Bucket' ? name.toLowerCase() : name;
}

function account(ctx: ResolveContext): string {
  return ctx.account ?? FAKE_ACCOUNT;
}

function arnOf(ctx: ResolveContext, logicalId: string): string {
  const r = resourceOf(ctx, logicalId);
  const a = account(ctx);
  const reg = ctx.region;
  switch (r.Type) {
    case 'AWS::DynamoDB::Table':
      return `arn:aws:dynamodb:${reg}:${a}:table/${physicalName(ctx, logicalId)}`;
    case 'AWS::SQS::Queue':
      return `arn:aws:sqs:${reg}:${a}:${physicalName(ctx, logicalId)}`;
    case 'AWS::SNS::Topic':
      return `arn:aws:sns:${reg}:${a}:${physicalName(ctx, logicalId)}`;
    case 'AWS::KMS::Key':
      return `arn:aws:kms:${reg}:${a}:key/${KMS_KEY_ID}`;
    case 'AWS::S3::Bucket':
      return `arn:aws:s3:::${physicalName(ctx, logicalId)}`;
    case 'AWS::Lambda::Function':
      return `arn:aws:lambda:${reg}:${a}:function:${physicalName(ctx, logicalId)}`;
    case 'AWS::IAM::Role':
      return `arn:aws:iam::${a}:role/${physicalName(ctx, logicalId)}`;
    case 'AWS::IAM::ManagedPolicy':
      return `arn:aws:iam::${a}:policy/${physicalName(ctx, logicalId)}`;
    case 'AWS::Logs::LogGroup':
      return `arn:aws:logs:${reg}:${a}:log-group:${physicalName(ctx, logicalId)}:*`;
    case 'AWS::Events::EventBus':
      return `arn:aws:events:${reg}:${a}:event-bus/${physicalName(ctx, logicalId)}`;
    case 'AWS::Events::Rule':
      return `arn:aws:events:${reg}:${a}:rule/${physicalName(ctx, logicalId)}`;
    case 'AWS::Scheduler::Schedule':
      return `arn:aws:scheduler:${reg}:${a}:schedule/default/${physicalName(ctx, logicalId)}`;
    case 'AWS::SecretsManager::Secret':
      // Secrets Manager appends a hyphen and six random characters to the name.
      return `arn:aws:secretsmanager:${reg}:${a}:secret:${physicalName(ctx, logicalId)}-AbCdEf`;
    case 'AWS::SSM::Parameter': {
      const name = physicalName(ctx, logicalId);
      return `arn:aws:ssm:${reg}:${a}:parameter${name.startsWith('/') ? '' : '/'}${name}`;
    }
    default:
      throw new Error(`no worst-case ARN known for ${r.Type} (${logicalId})`);
  }
}

function refOf(ctx: ResolveContext, name: string): string {
  switch (name) {
    case 'AWS::AccountId':
      return account(ctx);
    case 'AWS::Region':
      return ctx.region;
    case 'AWS::Partition':
      return 'aws';
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    case 'AWS::StackName':
      return ctx.stackName;
    case 'AWS::StackId':
      return `arn:aws:cloudformation:${ctx.region}:${account(ctx)}:stack/${ctx.stackName}/${KMS_KEY_ID}`;
    case 'AWS::NoValue':
      return '';
  }
  const param = ctx.template.Parameters?.[name] as { Default?: unknown } | undefined;
  if (param) {
    if (param.Default === undefined) throw new Error(`parameter ${name} has no default to measure`);
    return String(param.Default);
  }
  const r = resourceOf(ctx, name);
  switch (r.Type) {
    case 'AWS::SNS::Topic':
      return arnOf(ctx, name);
    case 'AWS::SQS::Queue':
      return `https://sqs.${ctx.region}.amazonaws.com/${account(ctx)}/${physicalName(ctx, name)}`;
    case 'AWS::KMS::Key':
      return KMS_KEY_ID;
    case 'AWS::IAM::ManagedPolicy':
    case 'AWS::SecretsManager::Secret':
      return arnOf(ctx, name);
    default:
      return physicalName(ctx, name);
  }
}

function getAtt(ctx: ResolveContext, logicalId: string, attribute: string): string {
  const r = resourceOf(ctx, logicalId);
  switch (attribute) {
    case 'Arn':
      return arnOf(ctx, logicalId);
    case 'TopicArn':
      return arnOf(ctx, logicalId);
    case 'TopicName':
    case 'QueueName':
      return physicalName(ctx, logicalId);
    case 'QueueUrl':
      return refOf(ctx, logicalId);
    case 'KeyId':
      return KMS_KEY_ID;
    case 'StreamArn':
      return `${arnOf(ctx, logicalId)}/stream/2026-12-07T16:00:00.000`;
    case 'RoleId':
      return 'AROA0123456789EXAMPLE';
  }
  throw new Error(`no worst-case value known for Fn::GetAtt ${logicalId}.${attribute} (${r.Type})`);
}

function sub(ctx: ResolveContext, text: string, vars: Record<string, unknown>): string {
  return text.replace(/\$\{([^}!]+)\}/g, (_m, name: string) => {
    if (name in vars) return String(resolveValue(ctx, vars[name]));
    const dot = name.indexOf('.');
    if (dot > 0 && !name.startsWith('AWS::')) return getAtt(ctx, name.slice(0, dot), name.slice(dot + 1));
    return refOf(ctx, name);
  });
}

/** The value with every intrinsic function replaced by its longest resolution (see the file comment). */
export function resolveValue(ctx: ResolveContext, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveValue(ctx, v));
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 1) {
    const [fn] = keys as [string];
    const arg = obj[fn];
    switch (fn) {
      case 'Ref':
        return refOf(ctx, String(arg));
      case 'Fn::GetAtt': {
        const [id, attr] = Array.isArray(arg) ? arg : String(arg).split('.');
        return getAtt(ctx, String(id), String(attr));
      }
      case 'Fn::Join': {
        const [sep, parts] = arg as [string, unknown[]];
        return (resolveValue(ctx, parts) as unknown[]).map(String).join(sep);
      }
      case 'Fn::Sub':
        return Array.isArray(arg)
          ? sub(ctx, String(arg[0]), (arg[1] ?? {}) as Record<string, unknown>)
          : sub(ctx, String(arg), {});
      case 'Fn::Select': {
        const [index, list] = arg as [unknown, unknown];
        return (resolveValue(ctx, list) as unknown[])[Number(resolveValue(ctx, index))];
      }
      case 'Fn::Split': {
        const [sep, text] = arg as [string, unknown];
        return String(resolveValue(ctx, text)).split(sep);
      }
    }
    if (fn.startsWith('Fn::'))
      throw new Error(`intrinsic ${fn} is not resolved by test/support/cfn-values.ts`);
  }
  return Object.fromEntries(keys.map((k) => [k, resolveValue(ctx, obj[k])]));
}

/** Size in bytes of a document as the service receives it (minified JSON, UTF-8): whitespace between tokens excluded. */
export function jsonBytes(document: unknown): number {
  return Buffer.byteLength(typeof document === 'string' ? document : JSON.stringify(document), 'utf8');
}

/**
 * Size of an IAM policy as IAM counts it against its quotas: characters, white space not counted (IAM and AWS STS
 * quotas: "IAM doesn't count white space when calculating the size of a policy against these quotas").
 */
export function iamPolicyChars(document: unknown): number {
  const text = typeof document === 'string' ? document : JSON.stringify(document);
  return text.replace(/\s/g, '').length;
}

/**
 * Size of a Lambda function's environment as Lambda measures it against its 4 KB quota: Lambda's error shows the
 * string it measured, the JSON of the variables map (`... exceeded the 4KB limit. String measured:
 * {"KEY":"value",...}`), so keys, values, quotes, separators and JSON escapes all count; in UTF-8 bytes.
 */
export function lambdaEnvironmentBytes(variables: Record<string, string>): number {
  return jsonBytes(variables);
}
