import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  CloudWatchLogsClient,
  CreateLogStreamCommand,
  DeleteLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateServiceSpecificCredentialCommand,
  CreateUserCommand,
  DeleteServiceSpecificCredentialCommand,
  DeleteUserCommand,
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUsersCommand,
  ListUserTagsCommand,
} from '@aws-sdk/client-iam';
import { SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type Command, Option } from 'commander';
import { DynamoAuditLog } from '../adapters/audit-store';
import { IAM_REGION } from '../adapters/clients';
import { documentClient } from '../adapters/document-client';
import type { Decision } from '../domain/types';
import { type Config, ConfigSchema } from '../shared/config';
import { isSelftestUser, SELFTEST_TAG, SELFTEST_USER_PREFIX } from '../shared/selftest';
import { visible } from '../shared/visible-text';
import { EXIT_AWS, exitCodesHelp, explainAwsFailure, tagAwsErrors } from './aws-errors';
import { DeployedPolicyError, readDeployedPolicy } from './deployed-policy';
import { messageOf } from './inputs';
import { type CliIO, EXIT_FAILURE, EXIT_INPUT, EXIT_OK, failure } from './io';
import {
  type AwsFlags,
  type AwsRun,
  addAwsOptions,
  awsRunOrFail,
  clientConfig,
  type DeployedStack,
  StackLookupError,
  stackValue,
} from './stack-outputs';

/**
 * `keyguard selftest`: proves a deployed stack works end to end in the caller's own (sandbox) account. It creates
 * a throwaway IAM user `keyguard-selftest-<random>` (tagged) with a Bedrock API key that never expires, the case the
 * stack must catch; waits for the stack's decision on that key in the decisions table; checks it (NEVER_EXPIRES,
 * the action of the deployed mode, the notice, the owner); and always deletes the key and the user (unless --keep),
 * also after a failure or Ctrl-C. Self-test users left over from an earlier run are deleted first; their decisions
 * stay in the audit (history), told apart by the user name prefix.
 *
 * The key's secret is never printed, logged or stored: it is not even read from the IAM response, except with --leak,
 * which writes it to a subscribed log group (the leak quarantine's test) and deletes that log stream afterwards.
 */

/** Default --timeout: how long to wait for the stack's decision. */
export const DEFAULT_TIMEOUT = '15m';
/** Exit code of a run stopped by Ctrl-C (after its cleanup), as shells report SIGINT. */
export const EXIT_INTERRUPTED = 130;
export { isSelftestUser, SELFTEST_TAG, SELFTEST_USER_PREFIX };

const BEDROCK = 'bedrock.amazonaws.com';
const FIRST_POLL_MS = 1000;
/** Beyond its waits, how long a run may take (its IAM calls, checks and cleanup). */
const RUN_MARGIN_MS = 10 * 60_000;
const MAX_POLL_MS = 15_000;

export interface SelftestOptions extends AwsFlags {
  timeout?: string;
  keep?: boolean;
  /** Also write the key to a subscribed log group and wait for the LEAKED decision. */
  leak?: boolean;
  /** The log group --leak writes to (default: the first of the deployed leakDetection.logGroups). */
  logGroup?: string;
}

export interface SelftestDeps {
  iam: IAMClient;
  sts: STSClient;
  /** Reads the decisions table. */
  doc: DynamoDBDocumentClient;
  /** Reads the effective policy parameter (absent: the mode is taken from the decision). */
  ssm?: SSMClient;
  stack: DeployedStack;
  /** Writes the key's line for --leak (in the stack's region, where the subscriptions are). */
  logs?: CloudWatchLogsClient;
  region: string;
  profile?: string;
  /** KEYGUARD_DECISIONS_TABLE and KEYGUARD_POLICY_PARAMETER win over the stack's outputs. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Milliseconds since the epoch. @default Date.now */
  now?: () => number;
  /** Waits `ms`, rejecting when `signal` aborts. @default timers/promises setTimeout */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Aborted on Ctrl-C: the run stops waiting, cleans up and exits 130. */
  signal?: AbortSignal;
  /** The random part of the user name (8 lowercase hex digits). */
  random?: () => string;
}

/** A step that did not hold: the step's name and the line that says what failed and its likely cause. */
class StepFailed extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
    this.name = 'StepFailed';
  }
}

/** "15m", "90s", "1h", "1h30m": milliseconds; null when not a duration of 1 s to 24 h. */
export function parseDuration(value: string): number | null {
  const m = /^(?:(\d{1,2})h)?(?:(\d{1,4})m)?(?:(\d{1,5})s)?$/.exec(value.trim());
  if (!m || value.trim() === '') return null;
  const ms = (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000;
  return ms >= 1000 && ms <= 24 * 3600 * 1000 ? ms : null;
}

function seconds(ms: number): string {
  return ms < 60_000
    ? `${(ms / 1000).toFixed(1)} s`
    : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

interface KeyFacts {
  keyId: string;
  createdAt: Date | null;
}

/** What the run made, for the cleanup. */
interface Made {
  userName?: string;
  keys: string[];
  /** The log stream --leak wrote the key to: always deleted, --keep or not (it holds the key). */
  logStream?: { group: string; stream: string };
}

interface DeployedFacts {
  mode: Config['mode'] | null;
  policyVersion: string | null;
  tags: Config['tags'];
  /** The subscribed log groups; null when the published policy leaves them out (or no policy is published). */
  leakLogGroups: string[] | null;
}

const DEFAULT_TAGS = ConfigSchema.parse({}).tags;

/** Runs the self-test; returns the exit code. Every line goes to stdout, failures also name their step. */
export async function runSelftest(opts: SelftestOptions, io: CliIO, deps: SelftestDeps): Promise<number> {
  const timeoutMs = parseDuration(opts.timeout ?? DEFAULT_TIMEOUT);
  if (timeoutMs === null) {
    failure(
      io,
      `--timeout: ${JSON.stringify(opts.timeout)} is not a duration of 1s to 24h (e.g. 15m, 90s, 1h)`,
    );
    return EXIT_INPUT;
  }
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }));
  const signal = deps.signal ?? new AbortController().signal;
  const random = deps.random ?? (() => randomBytes(4).toString('hex'));
  const out = (line: string) => io.stdout.write(`${line}\n`);
  const ok = (step: string, text: string, ms?: number) =>
    out(`  ok    ${step.padEnd(10)}${text}${ms !== undefined ? ` (${seconds(ms)})` : ''}`);
  const made: Made = { keys: [] };
  let step = 'stack';
  let code = EXIT_OK;
  let summary: string | null = null;
  let leakKey: string | null = null;
  /** How the decision and leak waits poll and report their step. */
  const waiting: WaitContext = {
    now,
    sleep,
    signal,
    setStep: (s) => {
      step = s;
    },
    timeout: opts.timeout ?? DEFAULT_TIMEOUT,
  };

  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<{ value: T; ms: number }> => {
    step = name;
    if (signal.aborted) throw new StepFailed(name, 'interrupted', EXIT_INTERRUPTED);
    const t0 = now();
    const value = await fn();
    return { value, ms: now() - t0 };
  };

  try {
    // 1. The stack: its decisions table and the policy it runs with.
    const { value: stackFacts, ms: stackMs } = await timed('stack', async () => {
      const env = deps.env ?? process.env;
      const table = await stackValue('decisionsTable', undefined, env, deps.stack, {
        flag: '--stack',
      });
      return { table: table as string, deployed: await deployedFacts(deps) };
    });
    const { table, deployed } = stackFacts;
    const logGroup = opts.leak ? leakLogGroup(opts, deployed) : null;
    // 2. Who runs it, in which account.
    const { value: who } = await timed('identity', async () => {
      const id = await deps.sts.send(new GetCallerIdentityCommand({}));
      return { account: id.Account ?? '', arn: id.Arn ?? '' };
    });
    out(
      `keyguard selftest: stack ${visible(deps.stack.name)} (${deps.region}), account ${who.account}, mode ` +
        `${deployed.mode ?? 'not published (read from the decision)'}` +
        `${deployed.policyVersion ? ` (policy ${deployed.policyVersion})` : ''}`,
    );
    ok('stack', `decisions table ${visible(table)}`, stackMs);

    // 3. Leftovers of earlier runs.
    const { value: leftovers, ms: leftoverMs } = await timed('leftovers', () =>
      cleanLeftovers(deps.iam, now()),
    );
    ok(
      'leftovers',
      leftovers.cleaned.length === 0
        ? 'none'
        : `deleted ${leftovers.cleaned.length} self-test user(s) left by an earlier run ` +
            `(${leftovers.cleaned.map(visible).join(', ')}); their decisions stay in the audit`,
      leftoverMs,
    );
    for (const name of leftovers.untagged) {
      out(
        `  note  leftovers  ${visible(name)} has the self-test prefix but not the ${SELFTEST_TAG} tag: left alone`,
      );
    }
    for (const r of leftovers.running) {
      out(
        `  note  leftovers  ${visible(r.name)} belongs to a run that may still be going (until ${r.until}): left alone`,
      );
    }

    // 4. The throwaway user and its never-expiring key.
    const userName = `${SELFTEST_USER_PREFIX}${random()}`;
    // The tag says until when this run may still be going: a later run deletes the user only after that.
    const runsUntil = new Date(now() + timeoutMs * (opts.leak ? 2 : 1) + RUN_MARGIN_MS).toISOString();
    const { value: key, ms: createMs } = await timed('create', async () => {
      await deps.iam.send(
        new CreateUserCommand({
          UserName: userName,
          Tags: [
            { Key: SELFTEST_TAG, Value: runsUntil },
            { Key: deployed.tags.owner, Value: who.arn.slice(0, 256) },
            { Key: deployed.tags.purpose, Value: 'keyguard selftest (throwaway, deleted by the self-test)' },
            { Key: deployed.tags.reviewCadence, Value: '1d' },
          ],
        }),
      );
      made.userName = userName;
      // No CredentialAgeDays: the key never expires. Only its metadata is read; the secret is left unread.
      const res = await deps.iam.send(
        new CreateServiceSpecificCredentialCommand({ UserName: userName, ServiceName: BEDROCK }),
      );
      const c = res.ServiceSpecificCredential;
      const facts: KeyFacts = {
        keyId: c?.ServiceSpecificCredentialId ?? '',
        createdAt: c?.CreateDate ?? null,
      };
      // --leak only: the key string, held until it is written to the log group.
      if (logGroup !== null) leakKey = apiKeyOf(c?.ServiceCredentialSecret, c?.ServiceCredentialAlias);
      if (!facts.keyId) throw new StepFailed('create', 'IAM returned no key id for the new key');
      made.keys.push(facts.keyId);
      return facts;
    });
    ok('create', `user ${userName}, Bedrock API key ${key.keyId} that never expires`, createMs);

    // 5. The stack's decision on it.
    const created = now();
    const decision = await waitForDecision(deps, table, who.account, key.keyId, created + timeoutMs, waiting);
    const seen = now() - created;
    const latency = key.createdAt ? Date.parse(decision.decidedAt) - key.createdAt.getTime() : null;
    ok(
      'decision',
      `${decision.action}${decision.applied ? ' (applied)' : ' (planned)'} in mode ${decision.mode}, decided ` +
        `${decision.decidedAt}${latency !== null ? `: event → decision ${seconds(Math.max(0, latency))}` : ''}`,
      seen,
    );

    // 6. The checks.
    step = 'check';
    const problems = await checkDecision(decision, deployed, deps.iam, userName, key.keyId, ok);
    if (problems.length > 0) throw new StepFailed('check', problems.join('; '));

    // 7. --leak: the key in a subscribed log group, and the leak function's decision.
    if (logGroup !== null) {
      const logs = deps.logs;
      const secret = leakKey;
      leakKey = null;
      if (!logs || !secret)
        throw new StepFailed('leak', 'IAM returned no secret for the key: nothing to leak');
      const stream = `${SELFTEST_USER_PREFIX}${random()}`;
      const { ms: writeMs } = await timed('leak', async () => {
        await logs.send(new CreateLogStreamCommand({ logGroupName: logGroup, logStreamName: stream }));
        made.logStream = { group: logGroup, stream };
        await logs.send(
          new PutLogEventsCommand({
            logGroupName: logGroup,
            logStreamName: stream,
            logEvents: [{ timestamp: now(), message: `keyguard selftest: leaked on purpose, ${secret}` }],
          }),
        );
      });
      const written = now();
      ok('leak', `wrote the key (not shown) to log group ${visible(logGroup)}, stream ${stream}`, writeMs);
      const leaked = await waitForLeak(
        deps,
        table,
        who.account,
        key.keyId,
        logGroup,
        written + timeoutMs,
        waiting,
      );
      const fingerprint = leaked.leak?.fingerprint ? `, fingerprint ${leaked.leak.fingerprint}` : '';
      ok(
        'leaked',
        `LEAKED (${leaked.violations.find((v) => v.code === 'LEAKED')?.severity}) → ${leaked.action}` +
          `${leaked.applied ? ' (applied)' : ''}${fingerprint}`,
        now() - written,
      );
    }
    summary =
      `Self-test passed${latency !== null ? `: event → decision ${seconds(Math.max(0, latency))}` : ''}` +
      ` (seen after ${seconds(seen)}).`;
  } catch (err) {
    code = await reportFailure(err, step, io, deps, out);
  } finally {
    leakKey = null;
    code = await cleanupLogStream(made, deps.logs, out, code);
    code = await cleanup(made, opts.keep === true, deps.iam, out, code);
  }
  if (code === EXIT_OK && summary) out(summary);
  return code;
}

async function deployedFacts(deps: SelftestDeps): Promise<DeployedFacts> {
  const env = deps.env ?? process.env;
  const parameter = deps.ssm ? await stackValue('policyParameter', undefined, env, deps.stack) : undefined;
  if (!parameter || !deps.ssm) {
    return { mode: null, policyVersion: null, tags: DEFAULT_TAGS, leakLogGroups: null };
  }
  const policy = await readDeployedPolicy(deps.ssm, parameter, 'stack output EffectivePolicyParameterName');
  return {
    mode: policy.config.mode,
    policyVersion: policy.policyVersion,
    tags: policy.config.tags,
    leakLogGroups: policy.omitted.includes('leakDetection.logGroups')
      ? null
      : policy.config.leakDetection.logGroups,
  };
}

/**
 * Self-test users of earlier runs (name prefix AND tag), deleted with their keys once the time their run could
 * still be going (the tag's value) has passed; those of a run still going (another operator's, or CI's) are left
 * alone, as are prefixed users without the tag. A tag value that is not a time counts as passed.
 */
async function cleanLeftovers(
  iam: IAMClient,
  nowMs: number,
): Promise<{ cleaned: string[]; untagged: string[]; running: Array<{ name: string; until: string }> }> {
  const names: string[] = [];
  let marker: string | undefined;
  do {
    const res = await iam.send(new ListUsersCommand({ ...(marker ? { Marker: marker } : {}) }));
    for (const u of res.Users ?? []) if (u.UserName && isSelftestUser(u.UserName)) names.push(u.UserName);
    marker = res.IsTruncated ? res.Marker : undefined;
  } while (marker);
  const cleaned: string[] = [];
  const untagged: string[] = [];
  const running: Array<{ name: string; until: string }> = [];
  for (const name of names) {
    const tags = await iam.send(new ListUserTagsCommand({ UserName: name }));
    const tag = (tags.Tags ?? []).find((t) => t.Key === SELFTEST_TAG);
    if (!tag) {
      untagged.push(name);
      continue;
    }
    const until = Date.parse(tag.Value ?? '');
    if (Number.isFinite(until) && until > nowMs) {
      running.push({ name, until: new Date(until).toISOString() });
      continue;
    }
    await deleteUserAndKeys(iam, name);
    cleaned.push(name);
  }
  return { cleaned, untagged, running };
}

/** Deletes every service-specific credential of a self-test user, then the user. */
async function deleteUserAndKeys(iam: IAMClient, userName: string): Promise<number> {
  const keys = await iam.send(new ListServiceSpecificCredentialsCommand({ UserName: userName }));
  let n = 0;
  for (const k of keys.ServiceSpecificCredentials ?? []) {
    if (!k.ServiceSpecificCredentialId) continue;
    await iam.send(
      new DeleteServiceSpecificCredentialCommand({
        UserName: userName,
        ServiceSpecificCredentialId: k.ServiceSpecificCredentialId,
      }),
    );
    n++;
  }
  await iam.send(new DeleteUserCommand({ UserName: userName }));
  return n;
}

interface WaitContext {
  now: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  signal: AbortSignal;
  setStep: (s: string) => void;
  timeout: string;
}

/**
 * Polls the key's decisions (backoff 1 s ×1.5 up to 15 s) until one satisfies `wanted`; null at the deadline, with
 * the decisions seen last in `seen`.
 */
async function pollDecisions(
  audit: DynamoAuditLog,
  account: string,
  keyId: string,
  wanted: (d: Decision) => boolean,
  deadline: number,
  w: WaitContext,
  step: string,
  seen: Decision[],
): Promise<Decision | null> {
  let wait = FIRST_POLL_MS;
  for (;;) {
    if (w.signal.aborted) throw new StepFailed(step, 'interrupted', EXIT_INTERRUPTED);
    const decisions = await audit.decisionsForKey(account, keyId);
    const found = decisions.find(wanted);
    if (found) return found;
    seen.splice(0, seen.length, ...decisions);
    const left = deadline - w.now();
    if (left <= 0) return null;
    try {
      await w.sleep(Math.min(wait, left), w.signal);
    } catch (err) {
      if (w.signal.aborted) throw new StepFailed(step, 'interrupted', EXIT_INTERRUPTED);
      throw err;
    }
    wait = Math.min(Math.round(wait * 1.5), MAX_POLL_MS);
  }
}

/** Waits for the decision made from the key's creation event. */
async function waitForDecision(
  deps: SelftestDeps,
  table: string,
  account: string,
  keyId: string,
  deadline: number,
  w: WaitContext,
): Promise<Decision> {
  w.setStep('decision');
  const audit = new DynamoAuditLog(deps.doc, { decisionsTable: table, keysTable: '' });
  const others: Decision[] = [];
  const fromEvent = await pollDecisions(
    audit,
    account,
    keyId,
    (d) => d.trigger.kind === 'event',
    deadline,
    w,
    'decision',
    others,
  );
  if (fromEvent) return fromEvent;
  const sweep = others[0];
  throw new StepFailed(
    'decision',
    sweep
      ? `no decision from the creation event on key ${keyId} within ${w.timeout}, but the ${sweep.trigger.kind} ` +
          `decided on it (${sweep.decidedAt}): the functions work, the events do not reach them. Most likely: no ` +
          'CloudTrail trail logs management write events in this account, or the rule is not in us-east-1 ' +
          '(IAM events reach only us-east-1’s default bus)'
      : `no decision on key ${keyId} within ${w.timeout} in table ${table} (account ${account}). Most likely: no ` +
          'CloudTrail trail logs management write events in this account (events reach EventBridge only through a ' +
          'trail); the stack is deployed outside us-east-1 or in another account than the key (check --stack, ' +
          '--region, --profile); or the credential-event function fails (see the stack output ' +
          'EventFailureQueueUrl and its logs). Delivery can take a few minutes: retry with a longer --timeout',
  );
}

/** Waits for the leak function's LEAKED decision on the key written to a subscribed log group. */
async function waitForLeak(
  deps: SelftestDeps,
  table: string,
  account: string,
  keyId: string,
  logGroup: string,
  deadline: number,
  w: WaitContext,
): Promise<Decision> {
  w.setStep('leaked');
  const audit = new DynamoAuditLog(deps.doc, { decisionsTable: table, keysTable: '' });
  const found = await pollDecisions(
    audit,
    account,
    keyId,
    (d) => d.trigger.kind === 'leak' && d.violations.some((v) => v.code === 'LEAKED'),
    deadline,
    w,
    'leaked',
    [],
  );
  if (found) return found;
  throw new StepFailed(
    'leaked',
    `no LEAKED decision on key ${keyId} within ${w.timeout} after writing it to log group ${visible(logGroup)}. ` +
      'Most likely: the log group is not in leakDetection.logGroups of the deployed config (no subscription filter ' +
      'on it), it is in another region than the stack, or the leak function fails (its logs; the stack output ' +
      'LeakUndecidedQueueUrl)',
  );
}

type Ok = (step: string, text: string, ms?: number) => void;

/** Each check of the decision; returns what did not hold (an `ok` line for each that did). */
async function checkDecision(
  d: Decision,
  deployed: DeployedFacts,
  iam: IAMClient,
  userName: string,
  keyId: string,
  ok: Ok,
): Promise<string[]> {
  const problems: string[] = [];
  const never = d.violations.find((v) => v.code === 'NEVER_EXPIRES');
  if (never) ok('check', `NEVER_EXPIRES found (${never.severity})`);
  else {
    problems.push(
      `the decision does not find NEVER_EXPIRES (violations: ${d.violations.map((v) => v.code).join(', ') || 'none'}): ` +
        'the key was read with an expiry date, or the stack runs an older version (redeploy)',
    );
  }
  const mode = deployed.mode ?? d.mode;
  if (deployed.mode && d.mode !== deployed.mode) {
    problems.push(
      `the decision was made in mode ${d.mode}, the stack publishes mode ${deployed.mode}: the credential-event ` +
        'function runs another policy than the one deployed (a failed or partial deployment: redeploy)',
    );
  }
  const status = (
    await iam.send(new ListServiceSpecificCredentialsCommand({ UserName: userName }))
  ).ServiceSpecificCredentials?.find((k) => k.ServiceSpecificCredentialId === keyId)?.Status;
  if (mode === 'enforce') {
    if (d.action === 'DEACTIVATE' && d.applied && status === 'Inactive') {
      ok('check', 'key deactivated: Inactive in IAM (enforce)');
    } else {
      problems.push(
        `in enforce mode the key should be Inactive in IAM, deactivated by the stack; the decision says ` +
          `${d.action}${d.applied ? ' applied' : ' not applied'} and IAM says ${status ?? 'no such key'}: the ` +
          'credential-event function may lack iam:UpdateServiceSpecificCredential (see its logs)',
      );
    }
  } else if (d.action === 'DEACTIVATE' && !d.applied && status === 'Active') {
    ok('check', 'deactivation planned, key left Active (audit mode changes nothing)');
  } else {
    problems.push(
      `in audit mode the deactivation should be planned and the key left Active; the decision says ${d.action}` +
        `${d.applied ? ' applied' : ' not applied'} and IAM says ${status ?? 'no such key'}`,
    );
  }
  if (d.notice) ok('check', `owner notice recorded (${d.notice})`);
  else
    problems.push(
      'no owner notice recorded on the decision: check the OwnerNoticeTopicArn topic and the function logs',
    );
  if (d.owner.value) ok('check', `owner resolved: ${visible(d.owner.value)} (from ${d.owner.source})`);
  else problems.push('the owner was not resolved (no owner tag, creator or fallbackOwner)');
  return problems;
}

async function reportFailure(
  err: unknown,
  step: string,
  io: CliIO,
  deps: SelftestDeps,
  out: (line: string) => void,
): Promise<number> {
  if (err instanceof StepFailed) {
    if (err.exitCode === EXIT_INTERRUPTED) {
      out(`  stop  ${err.step.padEnd(10)}interrupted: cleaning up`);
      return EXIT_INTERRUPTED;
    }
    out(`  FAIL  ${err.step.padEnd(10)}${err.message}`);
    failure(io, `selftest: step ${err.step} failed: ${err.message}`);
    return err.exitCode;
  }
  if (err instanceof StackLookupError || err instanceof DeployedPolicyError) {
    out(`  FAIL  ${step.padEnd(10)}${err.message}`);
    failure(io, `selftest: step ${step} failed: ${err.message}`);
    return EXIT_AWS;
  }
  if (deps.signal?.aborted) {
    out(`  stop  ${step.padEnd(10)}interrupted: cleaning up`);
    return EXIT_INTERRUPTED;
  }
  const aws = await explainAwsFailure(err, {
    command: 'selftest',
    service: 'AWS',
    operation: step,
    region: deps.region,
    profile: deps.profile,
    permissions: 'the managed policy of the stack output SelftestPolicyArn',
  });
  if (aws) {
    out(`  FAIL  ${step.padEnd(10)}${aws.line.trim().replace(/^keyguard: selftest: /, '')}`);
    io.stderr.write(aws.line);
    return aws.exitCode;
  }
  throw err;
}

/** The log group --leak writes to: --log-group, else the first subscribed group of the deployed policy. */
function leakLogGroup(opts: SelftestOptions, deployed: DeployedFacts): string {
  const given = opts.logGroup?.trim();
  if (given) return given;
  const first = deployed.leakLogGroups?.[0];
  if (first) return first;
  throw new StepFailed(
    'stack',
    deployed.leakLogGroups === null
      ? '--leak: the deployed policy does not list its leakDetection.logGroups (not published): name one with --log-group'
      : '--leak: the deployed config has no leakDetection.logGroups (no log group is subscribed): add one and ' +
          'redeploy, or leave out --leak',
    EXIT_INPUT,
  );
}

/**
 * The API key string of a new key: IAM's secret when it is already the `ABSK…` string, else `ABSK` +
 * base64("<alias>:<secret>") (docs: bedrock-api-keys.md). Null without a secret.
 */
export function apiKeyOf(secret: string | undefined, alias: string | undefined): string | null {
  if (!secret) return null;
  if (secret.startsWith('ABSK')) return secret;
  if (!alias) return null;
  return `ABSK${Buffer.from(`${alias}:${secret}`).toString('base64')}`;
}

/** Deletes the log stream --leak wrote the key to (kept by nobody: it holds the key). */
async function cleanupLogStream(
  made: Made,
  logs: CloudWatchLogsClient | undefined,
  out: (line: string) => void,
  code: number,
): Promise<number> {
  const written = made.logStream;
  if (!written || !logs) return code;
  try {
    await logs.send(
      new DeleteLogStreamCommand({ logGroupName: written.group, logStreamName: written.stream }),
    );
    out(`  ok    cleanup   deleted log stream ${written.stream} of ${visible(written.group)}`);
    return code;
  } catch (err) {
    out(
      `  FAIL  cleanup   could not delete log stream ${written.stream} of ${visible(written.group)} (it holds the ` +
        `key, deleted or deactivated): ${visible(messageOf(err))}`,
    );
    return code === EXIT_OK ? EXIT_FAILURE : code;
  }
}

/** Deletes what the run made (unless --keep); a cleanup failure turns a pass into exit 1 and names what is left. */
async function cleanup(
  made: Made,
  keep: boolean,
  iam: IAMClient,
  out: (line: string) => void,
  code: number,
): Promise<number> {
  if (!made.userName) return code;
  if (keep) {
    out(
      `  kept  cleanup   user ${made.userName} and its key (--keep); the next keyguard selftest deletes them, or: ` +
        `aws iam delete-service-specific-credential, then aws iam delete-user --user-name ${made.userName}`,
    );
    return code;
  }
  try {
    const n = await deleteUserAndKeys(iam, made.userName);
    out(`  ok    cleanup   deleted user ${made.userName} and ${n} key(s); its decisions stay in the audit`);
    return code;
  } catch (err) {
    out(
      `  FAIL  cleanup   could not delete user ${made.userName}: ${visible(messageOf(err))}. The next keyguard ` +
        'selftest deletes it (it carries the self-test tag)',
    );
    return code === EXIT_OK ? EXIT_FAILURE : code;
  }
}

const SELFTEST_HELP = `
What it does, in the account of your credentials (use a sandbox account):
  1. reads the stack's outputs (DecisionsTableName, EffectivePolicyParameterName) and who you are (STS)
  2. deletes self-test users left by an earlier run (named ${SELFTEST_USER_PREFIX}*, tagged ${SELFTEST_TAG}
     with a time that has passed: a run still going, e.g. another operator's, is left alone)
  3. creates user ${SELFTEST_USER_PREFIX}<random> (tagged) and on it a Bedrock API key that never expires;
     the key's secret is never printed or stored (read only with --leak, to write it to the log group)
  4. waits (up to --timeout) for the stack's decision on that key, printing the event → decision latency
  5. checks it: NEVER_EXPIRES; in enforce mode the key Inactive in IAM, in audit mode the deactivation
     planned; the owner notice recorded; the owner resolved
  6. with --leak: writes the key to a subscribed log group (leakDetection.logGroups, or --log-group) in a
     stream ${SELFTEST_USER_PREFIX}<random>, waits for the leak function's LEAKED decision, deletes the stream
  7. deletes the key and the user (also after a failure or Ctrl-C), unless --keep
The decisions it caused stay in the audit: they are on users named ${SELFTEST_USER_PREFIX}*.
Permissions: attach the managed policy of the stack output SelftestPolicyArn. Cost: nothing measurable.

${exitCodesHelp({ 1: 'a check failed or no decision arrived in time (the step and its likely cause are named)' })}
  130  interrupted (Ctrl-C), after the cleanup`;

/** The clients of a run, from its target (region, profile) and stack. */
export function defaultSelftestDeps(aws: AwsRun): SelftestDeps {
  const config = clientConfig(aws.target);
  return {
    iam: tagAwsErrors(new IAMClient(clientConfig(aws.target, IAM_REGION))),
    sts: tagAwsErrors(new STSClient(config)),
    doc: documentClient(tagAwsErrors(new DynamoDBClient(config))),
    ssm: tagAwsErrors(new SSMClient(config)),
    logs: tagAwsErrors(new CloudWatchLogsClient(config)),
    stack: aws.stack,
    region: aws.target.region,
    ...(aws.target.profile ? { profile: aws.target.profile } : {}),
  };
}

/**
 * Runs `fn` with an AbortSignal that Ctrl-C (SIGINT) aborts; the handler is removed after. A second Ctrl-C during
 * the cleanup ends the process at once (the default action, the handler being gone).
 */
export async function withInterrupt<T>(
  fn: (signal: AbortSignal) => Promise<T>,
  proc: NodeJS.Process = process,
): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  proc.once('SIGINT', onSigint);
  try {
    return await fn(controller.signal);
  } finally {
    proc.removeListener('SIGINT', onSigint);
  }
}

export function registerSelftestCommand(
  program: Command,
  io: CliIO,
  setExitCode: (n: number) => void,
  deps: (aws: AwsRun, signal: AbortSignal) => SelftestDeps = (aws, signal) => ({
    ...defaultSelftestDeps(aws),
    signal,
  }),
): Command {
  const cmd = program
    .command('selftest')
    .summary('prove a deployed stack works: a throwaway key, the stack’s decision on it, then cleanup')
    .description(
      'Creates a throwaway IAM user with a Bedrock API key that never expires, waits for the deployed stack to ' +
        'decide on it, checks the decision and deletes the user and key. Run it in a sandbox account.',
    )
    .addOption(
      new Option('--timeout <duration>', 'how long to wait for the decision (e.g. 90s, 15m, 1h)').default(
        DEFAULT_TIMEOUT,
      ),
    )
    .option('--keep', 'leave the user and key in place (the next selftest deletes them)')
    .option(
      '--leak',
      'also write the key to a subscribed log group (leakDetection.logGroups) and wait for the LEAKED decision',
    )
    .option(
      '--log-group <name>',
      'the log group --leak writes to (default: the first of leakDetection.logGroups)',
    )
    .addHelpText('after', SELFTEST_HELP);
  return addAwsOptions(cmd).action(async (opts: SelftestOptions) => {
    const aws = awsRunOrFail(opts, io);
    if (!aws) {
      setExitCode(EXIT_INPUT);
      return;
    }
    setExitCode(await withInterrupt((signal) => runSelftest(opts, io, deps(aws, signal))));
  });
}
