import { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import {
  CloudWatchLogsClient,
  CreateLogStreamCommand,
  DeleteLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { IAMClient } from '@aws-sdk/client-iam';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { main } from '../../bin/keyguard';
import { DynamoAuditLog } from '../../lambda/adapters/audit-store';
import { BedrockKeyProbe, type FetchLike } from '../../lambda/adapters/bedrock-key-probe';
import type { EmbeddedDynamo } from '../../lambda/adapters/embedded-dynamodb';
import { tagAwsErrors } from '../../lambda/cli/aws-errors';
import type { CliIO } from '../../lambda/cli/io';
import {
  isSelftestUser,
  runSelftest,
  SELFTEST_TAG,
  type SelftestDeps,
  type SelftestOptions,
  withInterrupt,
} from '../../lambda/cli/selftest';
import { DeployedStack } from '../../lambda/cli/stack-outputs';
import { createCredentialEventHandler } from '../../lambda/handlers/credential-event-handler';
import { createLeakHandler } from '../../lambda/handlers/leak-handler';
import { type Config, parseConfig, policyVersion } from '../../lambda/shared/config';
import { publishedPolicy } from '../../lambda/shared/effective-policy';
import { type Capture, captureOutput } from '../support/capture';
import { scanAll, startTestDynamo, TABLES } from '../support/dynamo';
import { ACCOUNT, createCredentialRecord, eventBridgeEvent, lambdaContext } from '../support/events';
import { FakeOrganization } from '../support/fake-org-endpoints';
import { subscriptionBatch } from '../support/leak-harness';
import { leakedFragments } from '../support/secrets';
import { RecordedUndecidedLeaks } from '../support/undecided-leaks';

/**
 * `keyguard selftest` end to end on loopback: the CLI's real IAM and STS clients talk to the fake account over
 * HTTP, the decisions table is dynalite, and the decision the self-test waits for is made by the real
 * credential-event handler code, fed the CloudTrail record of the key's creation (or nothing, for the timeout), with
 * its IAM client on the same fake account. Time is an injected clock: no test waits for real.
 */

const cfn = mockClient(CloudFormationClient);
const ssm = mockClient(SSMClient);
const sns = mockClient(SNSClient);
const logs = mockClient(CloudWatchLogsClient);
const cloudtrail = mockClient(CloudTrailClient);
const LEAK_GROUP = '/aws/lambda/chatbot';
const PARAMETER = '/BedrockKeyGuard/effective-policy/standard';
const CALLER_ARN = `arn:aws:iam::${ACCOUNT}:user/org-admin`;

let db: EmbeddedDynamo;
let org: FakeOrganization;
let endpoint: string;
let cwd: string;
let capture: Capture;
/** Every byte the CLI wrote, across the file's runs (checked for the keys' secrets at the end). */
const allOutput: string[] = [];

beforeAll(async () => {
  db = await startTestDynamo();
  org = new FakeOrganization(ACCOUNT);
  endpoint = await org.start();
  cwd = mkdtempSync(join(tmpdir(), 'kg-selftest-'));
});
afterAll(async () => {
  await org.close();
  await db.close();
  rmSync(cwd, { recursive: true, force: true });
});

beforeEach(() => {
  cfn.reset();
  ssm.reset();
  sns.reset();
  logs.reset();
  cloudtrail.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  cloudtrail.on(LookupEventsCommand).resolves({ Events: [] });
  cfn.on(DescribeStacksCommand).resolves({
    Stacks: [
      {
        StackName: 'BedrockKeyGuard',
        CreationTime: new Date('2026-11-01T00:00:00Z'),
        StackStatus: 'CREATE_COMPLETE',
        Outputs: [
          { OutputKey: 'DecisionsTableName', OutputValue: TABLES.decisionsTable },
          { OutputKey: 'EffectivePolicyParameterName', OutputValue: PARAMETER },
        ],
      },
    ],
  });
  org.onIamCall = null;
  capture = captureOutput();
});
afterEach(() => {
  // Every test's function logs and notices are checked for the keys' secrets by the last test.
  allOutput.push(
    capture.text(),
    ...sns.commandCalls(PublishCommand).map((c) => JSON.stringify(c.args[0].input)),
  );
  capture.restore();
});

function deployedPolicy(mode: 'audit' | 'enforce', extra: Record<string, unknown> = {}): Config {
  const config = parseConfig({ mode, fallbackOwner: 'security@example.com', ...extra });
  ssm.on(GetParameterCommand, { Name: PARAMETER }).resolves({
    Parameter: { Name: PARAMETER, Type: 'String', Value: publishedPolicy(config).value },
  });
  return config;
}

interface Harness {
  io: CliIO;
  stdout: () => string;
  stderr: () => string;
  deps: SelftestDeps;
  /** Sleeps the self-test asked for (the injected clock advances by each). */
  sleeps: number[];
  /** CloudTrail records waiting for "delivery" (delivered at the next sleep). */
  queued: Record<string, unknown>[];
  delivered: number;
}

/**
 * One self-test run's world. `functionConfig`: the policy the credential-event function runs with (null: no event
 * ever reaches it, as with no trail). The function gets the creation record one poll after the key is made.
 */
function harness(
  functionConfig: Config | null,
  extra: Partial<SelftestDeps> = {},
  start = Date.parse('2026-12-07T10:00:00Z'),
): Harness {
  let clock = start;
  org.now = () => new Date(clock);
  const fakeIam = () =>
    new IAMClient({
      region: 'us-east-1',
      endpoint,
      credentials: { accessKeyId: org.callerKeyId, secretAccessKey: org.callerSecret },
      maxAttempts: 1,
    });
  const out: string[] = [];
  const err: string[] = [];
  const h: Harness = {
    io: {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      cwd,
    },
    stdout: () => out.join(''),
    stderr: () => err.join(''),
    sleeps: [],
    queued: [],
    delivered: 0,
    deps: undefined as unknown as SelftestDeps,
  };
  const handler = functionConfig
    ? createCredentialEventHandler({
        config: functionConfig,
        policyVersion: policyVersion(functionConfig),
        decisionsTable: TABLES.decisionsTable,
        keysTable: TABLES.keysTable,
        approvalsTable: TABLES.approvalsTable,
        idempotencyTable: TABLES.idempotencyTable,
        topicArn: `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`,
        governedAccountId: ACCOUNT,
        iamFor: fakeIam,
        dynamo: db.client,
        sns: new SNSClient({ region: 'us-east-1' }),
        logger: new Logger({ serviceName: 'keyguard-credential-event' }),
        metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-credential-event' }),
        now: () => new Date(clock),
      })
    : null;
  // The leak function, when the config subscribes log groups: Bedrock (simulated) accepts a key only while IAM has
  // it Active, as the real one does.
  const bedrock: FetchLike = async (_url, init) => {
    const bearer = new Headers(init.headers).get('authorization') ?? '';
    const i = org.issuedKeySecrets.findIndex((k) => bearer === `Bearer ${k}`);
    const live = org.managementIam.keys.find((k) => k.keyId.endsWith(String(i + 1).padStart(5, '0')));
    return i >= 0 && live?.status === 'Active'
      ? new Response('{"modelSummaries":[]}', { status: 200 })
      : new Response('{"Message":"Authentication failed"}', { status: 403 });
  };
  const leakHandler =
    functionConfig && functionConfig.leakDetection.logGroups.length > 0
      ? createLeakHandler({
          config: functionConfig,
          policyVersion: policyVersion(functionConfig),
          decisionsTable: TABLES.decisionsTable,
          keysTable: TABLES.keysTable,
          approvalsTable: TABLES.approvalsTable,
          topicArn: `arn:aws:sns:us-east-1:${ACCOUNT}:keyguard-owner-notices`,
          governedAccountId: ACCOUNT,
          iamFor: fakeIam,
          cloudTrailFor: (region) => new CloudTrailClient({ region }),
          dynamo: db.client,
          sns: new SNSClient({ region: 'us-east-1' }),
          logger: new Logger({ serviceName: 'keyguard-leak' }),
          metrics: new Metrics({ namespace: 'BedrockKeyGuard', serviceName: 'keyguard-leak' }),
          verifier: new BedrockKeyProbe({
            region: 'us-east-1',
            fetch: bedrock,
            timeoutMs: 500,
            now: () => new Date(clock),
          }),
          undecided: new RecordedUndecidedLeaks(),
          now: () => new Date(clock),
        })
      : null;
  const logBatches: Array<{ awslogs: { data: string } }> = [];
  logs
    .on(PutLogEventsCommand)
    .callsFake((input: { logGroupName: string; logEvents: { message: string }[] }) => {
      // The subscription filter delivers the line to the leak function (at the next poll).
      logBatches.push(
        subscriptionBatch(
          input.logEvents.map((e) => e.message),
          { logGroup: input.logGroupName },
        ),
      );
      return { nextSequenceToken: '1' };
    });
  logs.on(CreateLogStreamCommand).resolves({});
  logs.on(DeleteLogStreamCommand).resolves({});
  org.onIamCall = ({ account, action, params }) => {
    if (action !== 'CreateServiceSpecificCredential' || !handler) return;
    const key = account.keys[account.keys.length - 1];
    if (!key) return;
    // The record CloudTrail writes for the call: metadata only (the secret is absent from it).
    h.queued.push(
      createCredentialRecord({
        userName: params.UserName ?? '',
        keyId: key.keyId,
        createDate: key.createdAt,
        eventTime: key.createdAt.replace(/\.\d{3}Z$/, 'Z'),
      }),
    );
  };
  const target = { region: 'us-east-1' };
  // Tagged as defaultSelftestDeps tags them, so a failure names its service and operation.
  h.deps = {
    iam: tagAwsErrors(fakeIam()),
    sts: tagAwsErrors(
      new STSClient({
        region: 'us-east-1',
        endpoint,
        credentials: { accessKeyId: org.callerKeyId, secretAccessKey: org.callerSecret },
      }),
    ),
    doc: db.doc,
    ssm: new SSMClient({ region: 'us-east-1' }),
    logs: new CloudWatchLogsClient({ region: 'us-east-1' }),
    stack: new DeployedStack('BedrockKeyGuard', false, target, h.io, () => new CloudFormationClient(target)),
    region: 'us-east-1',
    env: {},
    now: () => clock,
    sleep: async (ms) => {
      h.sleeps.push(ms);
      clock += ms;
      for (const record of h.queued.splice(0)) {
        const event = eventBridgeEvent({
          ...record,
          userIdentity: { ...(record.userIdentity as object), arn: CALLER_ARN },
        });
        await handler?.(event, lambdaContext());
        h.delivered++;
      }
      for (const batch of logBatches.splice(0)) {
        if (leakHandler) await leakHandler(batch, { getRemainingTimeInMillis: () => 55_000 });
      }
    },
    random: () => `t${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`,
    ...extra,
  };
  return h;
}

async function run(h: Harness, opts: SelftestOptions = {}): Promise<number> {
  const code = await runSelftest(opts, h.io, h.deps);
  allOutput.push(h.stdout(), h.stderr());
  return code;
}

function selftestUsers(): string[] {
  return [...org.managementIam.users.keys()].filter(isSelftestUser);
}

describe('keyguard selftest', () => {
  it('audit mode: the decision is a planned deactivation, the key stays Active, every check holds, all is cleaned up', async () => {
    // Prepare
    const config = deployedPolicy('audit');
    const h = harness(config);

    // Act
    const code = await run(h);

    // Assess
    const out = h.stdout();
    expect(code).toBe(0);
    expect(h.delivered).toBe(1);
    expect(out).toMatch(/mode audit \(policy p-[0-9a-f]{12}\)/);
    expect(out).toMatch(
      /ok {4}create {4}user keyguard-selftest-t\d{7}, Bedrock API key ACCA\w+ that never expires/,
    );
    expect(out).toMatch(
      /ok {4}decision {2}DEACTIVATE \(planned\) in mode audit, decided .*: event → decision 1\.0 s/,
    );
    expect(out).toContain('NEVER_EXPIRES found (high)');
    expect(out).toContain('deactivation planned, key left Active (audit mode changes nothing)');
    expect(out).toContain('owner notice recorded');
    expect(out).toContain(`owner resolved: ${CALLER_ARN} (from tag)`);
    expect(out).toMatch(/ok {4}cleanup {3}deleted user keyguard-selftest-t\d{7} and 1 key\(s\)/);
    expect(out).toContain('Self-test passed: event → decision 1.0 s');
    expect(selftestUsers()).toEqual([]);
    expect(org.managementIam.keys).toEqual([]);
  });

  it('enforce mode: the stack deactivated the key (Inactive in IAM) before the self-test deletes it', async () => {
    // Prepare
    const config = deployedPolicy('enforce');
    const h = harness(config);
    const statuses: string[] = [];
    const deleteCalls = () => org.calls('iam', 'DeleteServiceSpecificCredential').length;
    const before = deleteCalls();
    const deliver = h.deps.sleep;
    h.deps.sleep = async (ms, signal) => {
      await deliver?.(ms, signal);
      statuses.push(...org.managementIam.keys.map((k) => k.status ?? ''));
    };

    // Act
    const code = await run(h);

    // Assess
    expect(code).toBe(0);
    expect(statuses).toContain('Inactive');
    expect(h.stdout()).toContain('DEACTIVATE (applied) in mode enforce');
    expect(h.stdout()).toContain('key deactivated: Inactive in IAM (enforce)');
    expect(deleteCalls() - before).toBe(1);
    expect(selftestUsers()).toEqual([]);
  });

  it('times out naming the step and the likely causes when no event reaches the function, and still cleans up', async () => {
    // Prepare: the function never hears of the key (no trail, rule in the wrong region…)
    deployedPolicy('enforce');
    const h = harness(null);

    // Act
    const code = await run(h, { timeout: '2m' });

    // Assess
    const out = h.stdout();
    expect(code).toBe(1);
    expect(out).toMatch(/FAIL {2}decision {2}no decision on key ACCA\w+ within 2m/);
    expect(out).toContain('no CloudTrail trail logs management write events');
    expect(out).toContain('us-east-1');
    expect(h.stderr()).toContain('keyguard: selftest: step decision failed');
    // Backoff: 1 s growing to at most 15 s, never past the deadline, 2 minutes in all.
    expect(h.sleeps[0]).toBe(1000);
    expect(Math.max(...h.sleeps)).toBeLessThanOrEqual(15_000);
    expect(h.sleeps.reduce((a, b) => a + b, 0)).toBe(120_000);
    expect(out).toMatch(/ok {4}cleanup {3}deleted user keyguard-selftest-/);
    expect(selftestUsers()).toEqual([]);
  });

  it('a check that fails (the function runs another mode than the stack publishes) is named, and cleaned up after', async () => {
    // Prepare: the stack publishes enforce, the function still runs audit (a partial deployment)
    deployedPolicy('enforce');
    const h = harness(parseConfig({ mode: 'audit', fallbackOwner: 'security@example.com' }));

    // Act
    const code = await run(h);

    // Assess
    expect(code).toBe(1);
    expect(h.stdout()).toMatch(/FAIL {2}check {5}.*made in mode audit, the stack publishes mode enforce/);
    expect(h.stdout()).toContain('in enforce mode the key should be Inactive in IAM');
    expect(h.stdout()).not.toContain('Self-test passed');
    expect(h.stdout()).toMatch(/ok {4}cleanup {3}deleted user/);
    expect(selftestUsers()).toEqual([]);
  });

  it('an AWS failure while creating the key names the call and the policy to attach (exit 2), and the user made is deleted', async () => {
    // Prepare: the caller may create users but not keys
    deployedPolicy('audit');
    const h = harness(null);
    org.iamDenied.add('CreateServiceSpecificCredential');
    const created = org.calls('iam', 'CreateUser').length;
    let code: number;
    try {
      // Act
      code = await run(h);
    } finally {
      org.iamDenied.clear();
    }

    // Assess
    expect(code).toBe(2);
    expect(h.stderr()).toMatch(
      /^keyguard: selftest: IAM CreateServiceSpecificCredential \(region us-east-1, .*\): access denied/,
    );
    expect(h.stderr()).toContain('Grant iam:CreateServiceSpecificCredential');
    expect(h.stderr()).toContain('the managed policy of the stack output SelftestPolicyArn');
    expect(h.stdout()).toMatch(/FAIL {2}create {4}IAM CreateServiceSpecificCredential/);
    expect(org.calls('iam', 'CreateUser').length).toBe(created + 1);
    expect(h.stdout()).toMatch(/ok {4}cleanup {3}deleted user keyguard-selftest-t\d{7} and 0 key\(s\)/);
    expect(selftestUsers()).toEqual([]);
  });

  it('Ctrl-C while waiting stops the run, cleans up, exits 130 and removes its signal handler', async () => {
    // Prepare
    deployedPolicy('audit');
    const h = harness(null);
    const proc = new EventEmitter() as unknown as NodeJS.Process;
    h.deps.sleep = async (_ms, signal) => {
      proc.emit('SIGINT');
      if (signal.aborted) throw signal.reason;
    };

    // Act
    const code = await withInterrupt((signal) => runSelftest({}, h.io, { ...h.deps, signal }), proc);
    allOutput.push(h.stdout(), h.stderr());

    // Assess
    expect(code).toBe(130);
    expect(h.stdout()).toContain('stop  decision  interrupted: cleaning up');
    expect(h.stdout()).toMatch(/ok {4}cleanup {3}deleted user keyguard-selftest-/);
    expect(selftestUsers()).toEqual([]);
    expect((proc as unknown as EventEmitter).listenerCount('SIGINT')).toBe(0);
  });

  it('--keep leaves the user; the next run deletes that leftover, keeps its decisions, and leaves untagged look-alikes', async () => {
    // Prepare: a kept run, and a user with the prefix that is not a self-test user (no tag)
    const config = deployedPolicy('audit');
    const first = harness(config);
    expect(await run(first, { keep: true })).toBe(0);
    expect(first.stdout()).toMatch(/kept {2}cleanup {3}user keyguard-selftest-t\d{7} and its key \(--keep\)/);
    const [kept] = selftestUsers();
    const keptKey = org.managementIam.keys.find((k) => k.userName === kept)?.keyId ?? '';
    // Its tag says until when its run could still be going: 10:00 + --timeout 15 min + 10 min.
    expect(org.managementIam.users.get(kept ?? '')?.tags?.[SELFTEST_TAG]).toBe('2026-12-07T10:25:00.000Z');
    org.managementIam.user('keyguard-selftest-lookalike', { tags: { owner: 'someone@example.com' } });
    // Another operator's run, still going at 11:00 (its tag says until 11:20)
    org.managementIam.user('keyguard-selftest-running', {
      tags: { [SELFTEST_TAG]: '2026-12-07T11:20:00.000Z' },
    });

    // Act: an hour later (the kept run's time, 10:00 + 15 min + 10 min, has passed)
    const second = harness(config, {}, Date.parse('2026-12-07T11:00:00Z'));
    const code = await run(second);

    // Assess
    expect(code).toBe(0);
    expect(second.stdout()).toContain(
      `ok    leftovers deleted 1 self-test user(s) left by an earlier run (${kept}); their decisions stay in the audit`,
    );
    expect(second.stdout()).toContain(
      `note  leftovers  keyguard-selftest-lookalike has the self-test prefix but not the ${SELFTEST_TAG} tag`,
    );
    expect(second.stdout()).toContain(
      'note  leftovers  keyguard-selftest-running belongs to a run that may still be going (until 2026-12-07T11:20:00.000Z): left alone',
    );
    expect(selftestUsers().sort()).toEqual(['keyguard-selftest-lookalike', 'keyguard-selftest-running']);
    expect(org.managementIam.users.get(kept ?? '')).toBeUndefined();
    const history = await new DynamoAuditLog(db.doc, TABLES).decisionsForKey(ACCOUNT, keptKey);
    expect(history.length).toBeGreaterThan(0);
    expect(history.every((d) => isSelftestUser(d.userName))).toBe(true);
    org.managementIam.users.delete('keyguard-selftest-lookalike');
    org.managementIam.users.delete('keyguard-selftest-running');
  });

  it('--leak: writes the key to a subscribed log group, waits for the leak function’s LEAKED decision, deletes the stream', async () => {
    // Prepare
    const config = deployedPolicy('audit', { leakDetection: { logGroups: [LEAK_GROUP] } });
    const h = harness(config);

    // Act
    const code = await run(h, { leak: true });

    // Assess
    const out = h.stdout();
    expect(code).toBe(0);
    const put = logs.commandCalls(PutLogEventsCommand)[0]?.args[0].input;
    expect(put?.logGroupName).toBe(LEAK_GROUP);
    expect(put?.logStreamName).toMatch(/^keyguard-selftest-t\d{7}$/);
    expect(out).toMatch(
      /ok {4}leak {6}wrote the key \(not shown\) to log group \/aws\/lambda\/chatbot, stream keyguard-selftest-/,
    );
    expect(out).toMatch(/ok {4}leaked {4}LEAKED \(critical\) → DEACTIVATE, fingerprint \S+/);
    expect(logs.commandCalls(DeleteLogStreamCommand).map((c) => c.args[0].input)).toEqual([
      { logGroupName: LEAK_GROUP, logStreamName: put?.logStreamName },
    ]);
    expect(out).toContain('Self-test passed');
    expect(selftestUsers()).toEqual([]);
    // The one place the key goes on purpose is the log line: it is the key IAM issued.
    expect(org.issuedKeySecrets.some((k) => put?.logEvents?.[0]?.message?.endsWith(k))).toBe(true);
  });

  it('--leak with no subscribed log group is refused at the stack step, before any user is made', async () => {
    // Prepare
    deployedPolicy('audit');
    const h = harness(null);
    const before = org.calls('iam', 'CreateUser').length;

    // Act
    const code = await run(h, { leak: true });

    // Assess
    expect(code).toBe(2);
    expect(h.stdout()).toContain(
      'FAIL  stack     --leak: the deployed config has no leakDetection.logGroups',
    );
    expect(org.calls('iam', 'CreateUser').length).toBe(before);
  });

  it('never lets a key secret reach stdout, stderr, the function logs, the tables, notices or files', async () => {
    // Prepare: one more run, with --leak (the key is then read and written to a log group), so this test stands
    // alone too
    const h = harness(deployedPolicy('audit', { leakDetection: { logGroups: [LEAK_GROUP] } }));
    expect(await run(h, { leak: true })).toBe(0);
    const secrets = org.issuedKeySecrets;
    const tables = await Promise.all(
      [TABLES.decisionsTable, TABLES.keysTable, TABLES.idempotencyTable].map((t) => scanAll(db, t)),
    );
    const notices = sns.commandCalls(PublishCommand).map((c) => JSON.stringify(c.args[0].input));

    // Act: the CLI's output, the functions' logs and notices of every test in this file, and the tables
    const everything = [...allOutput, capture.text(), JSON.stringify(tables), ...notices].join('\n');

    // Assess
    expect(secrets.length).toBeGreaterThanOrEqual(1);
    expect(everything).toContain('keyguard-selftest-');
    expect(everything).toContain('LEAKED');
    expect(leakedFragments(everything, secrets)).toEqual([]);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('is a command of the CLI: a --stack that is not deployed fails the stack step (exit 2), and nothing is created', async () => {
    // Prepare: the CLI's own clients, pointed at the fake account; CloudFormation says there is no such stack
    cfn.reset();
    cfn.on(DescribeStacksCommand).callsFake((input: { StackName?: string }) => {
      throw Object.assign(new Error(`Stack with id ${input.StackName} does not exist`), {
        name: 'ValidationError',
        $metadata: { httpStatusCode: 400 },
      });
    });
    const saved = { ...process.env };
    Object.assign(process.env, org.env(endpoint));
    delete process.env.AWS_PROFILE;
    const before = org.requests.length;
    const out: string[] = [];
    const err: string[] = [];
    let code: number;
    try {
      // Act
      code = await main(['node', 'keyguard', 'selftest', '--stack', 'KeyGuardSandbox'], {
        stdout: { write: (t: string) => out.push(t) },
        stderr: { write: (t: string) => err.push(t) },
        cwd,
      });
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    allOutput.push(out.join(''), err.join(''));

    // Assess
    expect(code).toBe(2);
    expect(out.join('')).toMatch(/FAIL {2}stack {5}.*stack KeyGuardSandbox .*(not found|does not exist)/);
    expect(err.join('')).toContain('keyguard: selftest: step stack failed');
    expect(org.requests.length).toBe(before);
  });

  it('KEYGUARD_DECISIONS_TABLE and KEYGUARD_POLICY_PARAMETER win over the stack, which is then not read', async () => {
    // Prepare
    const h = harness(deployedPolicy('enforce'));
    h.deps.env = { KEYGUARD_DECISIONS_TABLE: TABLES.decisionsTable, KEYGUARD_POLICY_PARAMETER: PARAMETER };

    // Act
    const code = await run(h);

    // Assess
    expect(code).toBe(0);
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
    expect(h.stdout()).toContain('mode enforce');
    expect(h.stdout()).toContain('key deactivated: Inactive in IAM (enforce)');
  });

  it('refuses a --timeout that is not a duration, before touching AWS', async () => {
    // Prepare
    const h = harness(null);
    const calls = org.requests.length;

    // Act
    const code = await run(h, { timeout: 'soon' });

    // Assess
    expect(code).toBe(2);
    expect(h.stderr()).toContain('--timeout: "soon" is not a duration');
    expect(org.requests.length).toBe(calls);
  });
});
