// @cloud-copilot/iam-simulate is AGPL: a devDependency imported only by tests.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { FailureQueue } from '../../lib/constructs/failure-queue';
import { actionsOf, build, resourcesOf, resourcesOfStatement, type Statement, writeConfig } from './helpers';

const ACCOUNT = '111122223333';
const REGION = 'us-east-1';

/** What sending to an SSE-KMS queue needs (SQS Developer Guide, "Amazon SQS Key management"). */
const SEND = ['sqs:SendMessage'];
const SEND_KEY = ['kms:Decrypt', 'kms:GenerateDataKey'];
/** What CDK's grantSendMessages adds and sending never uses. */
const NEVER = [
  'sqs:GetQueueAttributes',
  'sqs:GetQueueUrl',
  'kms:Encrypt',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:GenerateDataKeyPair',
];

type Json = unknown;

/** Every statement of the IAM policies attached to one role, in a template. */
function roleStatements(template: Template, roleId: string): Statement[] {
  return Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

/** The actions a role's statements allow on exactly one resource (by logical id, `Fn::GetAtt [id, Arn]`). */
function actionsOn(statements: Statement[], resourceId: string): string[] {
  const ref = JSON.stringify({ 'Fn::GetAtt': [resourceId, 'Arn'] });
  return [
    ...new Set(
      statements
        .filter((s) => s.Effect === 'Allow' && resourcesOfStatement(s).some((r) => JSON.stringify(r) === ref))
        .flatMap(actionsOf),
    ),
  ].sort();
}

function idOf(stack: Stack, element: unknown): string {
  return stack.getLogicalId(element as CfnElement);
}

describe("FailureQueue: senders get sqs:SendMessage and the key's GenerateDataKey + Decrypt only (issue 11 item 13)", () => {
  // Prepare (shared): a bare stack with one function per way of sending.
  const stack = new Stack(new App(), 'Bare', { env: { account: ACCOUNT, region: REGION } });
  const failures = new FailureQueue(stack, 'Failures');
  const code = lambda.Code.fromInline('exports.handler = async () => {}');
  const fnProps = { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code };
  const asDestination = new lambda.Function(stack, 'AsDestination', {
    ...fnProps,
    onFailure: failures.destination(),
  });
  const granted = new lambda.Function(stack, 'Granted', fnProps);
  failures.grantSend(granted);
  const template = Template.fromStack(stack);
  const queueId = idOf(stack, failures.queue.node.defaultChild);
  const keyId = idOf(stack, failures.encryptionKey.node.defaultChild);

  test.each([
    ['destination()', asDestination],
    ['grantSend()', granted],
  ])('%s: exactly SendMessage on the queue and GenerateDataKey + Decrypt on its key', (_how, fn) => {
    // Act
    const statements = roleStatements(template, idOf(stack, fn.role?.node.defaultChild));
    // Assess
    expect(actionsOn(statements, queueId)).toEqual(SEND);
    expect(actionsOn(statements, keyId)).toEqual(SEND_KEY);
    expect(statements.flatMap(actionsOf).filter((a) => NEVER.includes(a) || a.endsWith('*'))).toEqual([]);
  });

  test('destination() is the on-failure destination of asynchronous invocations', () => {
    // Assess
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: idOf(stack, asDestination.node.defaultChild) },
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queueId, 'Arn'] } } },
    });
  });

  test('the key policy is not widened for senders (the grants are identity policies)', () => {
    // Act
    const keyPolicy = resourcesOf(template, 'AWS::KMS::Key')[keyId]?.Properties.KeyPolicy as {
      Statement: Statement[];
    };
    // Assess: only the account statement CDK writes for every key
    expect(keyPolicy.Statement).toHaveLength(1);
  });
});

// --- The real composition: every role that touches a failure queue --------------------------------------------

// Prepare (shared): the app with usage tracked, so every FailureQueue but the leak function's is built.
const composed = build({
  context: { config: writeConfig({ usage: { regions: ['us-east-1', 'eu-west-1'] } }) },
});
const main = composed.template;
const mainStack = composed.stack;
const failureQueues = mainStack.node
  .findAll()
  .filter((c): c is FailureQueue => c instanceof FailureQueue)
  .map((q) => ({
    path: q.node.path,
    queueId: idOf(mainStack, q.queue.node.defaultChild),
    keyId: idOf(mainStack, q.encryptionKey.node.defaultChild),
  }));

/** Resolves the intrinsics of a policy as CloudFormation would in account ACCOUNT, us-east-1. */
function resolve(value: Json, arnOf: (id: string) => string): Json {
  if (Array.isArray(value)) return value.map((v) => resolve(v, arnOf));
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, Json>;
  if ('Ref' in obj) {
    const refs: Record<string, string> = {
      'AWS::Partition': 'aws',
      'AWS::AccountId': ACCOUNT,
      'AWS::Region': REGION,
      'AWS::URLSuffix': 'amazonaws.com',
    };
    return refs[obj.Ref as string] ?? arnOf(obj.Ref as string);
  }
  if ('Fn::GetAtt' in obj) return arnOf((obj['Fn::GetAtt'] as [string, string])[0]);
  if ('Fn::Join' in obj) {
    const [sep, parts] = obj['Fn::Join'] as [string, Json[]];
    return parts.map((p) => resolve(p, arnOf)).join(sep);
  }
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, resolve(v, arnOf)]));
}

/** A deployed-looking ARN per logical id, by resource type. */
function arnOf(id: string): string {
  const type = (main.toJSON() as { Resources: Record<string, { Type: string }> }).Resources[id]?.Type;
  switch (type) {
    case 'AWS::SQS::Queue':
      return `arn:aws:sqs:${REGION}:${ACCOUNT}:${id}`;
    case 'AWS::KMS::Key':
      return `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`;
    case 'AWS::IAM::Role':
      return `arn:aws:iam::${ACCOUNT}:role/${id}`;
    default:
      return `arn:aws:cloudformation:${REGION}:${ACCOUNT}:resource/${id}`;
  }
}

/** Functions whose failures go to a failure queue: [function id, role id, queue]. */
function senders(): Array<{ fnId: string; roleId: string; queue: (typeof failureQueues)[number] }> {
  const functions = resourcesOf(main, 'AWS::Lambda::Function');
  const destinations: Array<[Json, Json]> = [
    ...Object.values(resourcesOf(main, 'AWS::Lambda::EventInvokeConfig')).map(
      (c) => [c.Properties.FunctionName, c.Properties.DestinationConfig] as [Json, Json],
    ),
    ...Object.values(resourcesOf(main, 'AWS::Lambda::EventSourceMapping'))
      .filter((m) => m.Properties.DestinationConfig)
      .map((m) => [m.Properties.FunctionName, m.Properties.DestinationConfig] as [Json, Json]),
  ];
  return destinations.flatMap(([fnRef, config]) => {
    const fnId = (fnRef as { Ref: string }).Ref;
    const dest = JSON.stringify(
      (config as { OnFailure?: { Destination?: Json } } | undefined)?.OnFailure?.Destination,
    );
    const queue = failureQueues.find((q) => dest === JSON.stringify({ 'Fn::GetAtt': [q.queueId, 'Arn'] }));
    const role = functions[fnId]?.Properties.Role as { 'Fn::GetAtt': [string, string] };
    return queue ? [{ fnId, roleId: role['Fn::GetAtt'][0], queue }] : [];
  });
}

async function simulate(
  roleId: string,
  action: string,
  resourceArn: string,
  resourcePolicy: Json,
): Promise<string> {
  const identityPolicies = Object.entries(resourcesOf(main, 'AWS::IAM::Policy'))
    .filter(([, p]) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
    .map(([name, p]) => ({ name, policy: resolve(p.Properties.PolicyDocument, arnOf) as object }));
  const result = await runSimulation(
    {
      request: {
        principal: arnOf(roleId),
        action,
        resource: { resource: resourceArn, accountId: ACCOUNT },
        contextVariables: { 'aws:SecureTransport': 'true' },
      },
      identityPolicies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: resolve(resourcePolicy, arnOf) as never,
    },
    {},
  );
  if (result.resultType !== 'single') throw new Error(`simulation did not run: ${JSON.stringify(result)}`);
  return result.overallResult;
}

function keyPolicyOf(keyId: string): Json {
  return resourcesOf(main, 'AWS::KMS::Key')[keyId]?.Properties.KeyPolicy;
}

function queuePolicyOf(queueId: string): Json {
  const policy = Object.values(resourcesOf(main, 'AWS::SQS::QueuePolicy')).find(
    (p) => JSON.stringify(p.Properties.Queues) === JSON.stringify([{ Ref: queueId }]),
  );
  const doc = policy?.Properties.PolicyDocument as { Statement: Statement[] } | undefined;
  // The queue policy's resources are the queue's ARN already; keep its statements as they are.
  return doc ?? { Version: '2012-10-17', Statement: [] };
}

describe('the composed stack: failure-queue grants (issue 11 item 13)', () => {
  test('the composition has the failure queues this test is about, and functions that send to them', () => {
    // Assess: credential events, sweep, audit (digest + archive stream), decision events (stream), and the
    // EventBridge DLQs
    expect(failureQueues.length).toBeGreaterThanOrEqual(7);
    expect(
      senders()
        .map((s) => s.queue.path)
        .sort(),
    ).toEqual(
      [
        'Keyguard/AuditIntegrity/FailureQueue',
        'Keyguard/AuditIntegrity/FailureQueue',
        'Keyguard/CredentialEventFunction/FailureQueue',
        'Keyguard/DecisionEvents/FailureQueue',
        'Keyguard/InventorySweep/FailureQueue',
      ].map((p) => p.replace('Keyguard', mainStack.node.path)),
    );
  });

  test('no role is granted more than SendMessage on a failure queue, or more than GenerateDataKey + Decrypt on its key', () => {
    // Act
    const roles = Object.keys(resourcesOf(main, 'AWS::IAM::Role'));
    const excess = roles.flatMap((roleId) => {
      const statements = roleStatements(main, roleId);
      return failureQueues.flatMap((q) => [
        ...actionsOn(statements, q.queueId)
          .filter((a) => !SEND.includes(a))
          .map((a) => `${roleId} ${a} on ${q.path}`),
        ...actionsOn(statements, q.keyId)
          .filter((a) => !SEND_KEY.includes(a))
          .map((a) => `${roleId} ${a} on ${q.path}/Key`),
      ]);
    });
    // Assess
    expect(excess).toEqual([]);
  });

  test('every function that sends its failures to a failure queue has exactly SendMessage + GenerateDataKey + Decrypt', () => {
    // Act
    const grants = senders().map(({ roleId, queue }) => {
      const statements = roleStatements(main, roleId);
      return [actionsOn(statements, queue.queueId), actionsOn(statements, queue.keyId)];
    });
    // Assess
    expect(grants.length).toBe(5);
    for (const grant of grants) expect(grant).toEqual([SEND, SEND_KEY]);
  });

  test('iam-simulate: each sender may still SendMessage and use the key to send; nothing else', async () => {
    for (const { roleId, queue } of senders()) {
      // Prepare
      const queueArn = arnOf(queue.queueId);
      const keyArn = arnOf(queue.keyId);
      const onQueue = (action: string) => simulate(roleId, action, queueArn, queuePolicyOf(queue.queueId));
      const onKey = (action: string) => simulate(roleId, action, keyArn, keyPolicyOf(queue.keyId));
      // Act
      const allowed = await Promise.all([onQueue('sqs:SendMessage'), ...SEND_KEY.map(onKey)]);
      const refused = await Promise.all(
        NEVER.map((a) => (a.startsWith('sqs:') ? onQueue(a) : onKey(a)).then((r) => `${a} ${r}`)),
      );
      // Assess
      expect(allowed).toEqual(['Allowed', 'Allowed', 'Allowed']);
      expect(refused.filter((r) => r.endsWith(' Allowed'))).toEqual([]);
    }
  });
});
