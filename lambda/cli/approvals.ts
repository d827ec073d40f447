import { defaultProvider } from '@aws-sdk/credential-provider-node';
import {
  ApprovalClient,
  ApprovalForbiddenError,
  ApprovalTransportError,
  ApprovalUrlError,
  type CredentialsProvider,
  DEFAULT_REGION,
  parseApprovalsUrl,
  regionOf,
} from '../adapters/approval-client';
import {
  ApprovalError,
  type ApprovalRequest,
  type ApprovalResponse,
  type ApprovalView,
  coversText,
} from '../domain/approval-protocol';
import { isViolationCode, VIOLATION_CODES, type ViolationCode } from '../domain/types';
import { redactSecrets } from '../shared/redact';
import { visible } from '../shared/visible-text';
import { reportAwsFailure } from './aws-errors';
import { renderTable } from './format';
import { messageOf } from './inputs';
import { type CliIO, EXIT_FAILURE, EXIT_INPUT, EXIT_OK, failure } from './io';
import { type AwsRun, awsTarget, type DeployedStack, StackLookupError, stackValue } from './stack-outputs';

/**
 * `keyguard approve`, `keyguard approvals list|revoke` and `keyguard review` (flow 5 of design.md): explicit,
 * expiring, attributable exceptions and reviews. The CLI does not write any table: it sends the request to the
 * stack's approval function (an IAM-authenticated Lambda function URL, stack output ApprovalsUrl), signed with the
 * caller's own AWS credentials. The function applies the rules (approvers, no self-approval, maxApprovalDays) with
 * the caller's identity as AWS authenticated it, and records the approval and its audit decision. This module only
 * reads options, checks what it can without AWS (early feedback), and prints the answer.
 */

/**
 * Environment variables naming the stack's tables (the stack outputs print their values), for the read-only
 * commands (`keyguard audit`, `keyguard inventory`): the approval commands write through the function only.
 */
export const TABLE_ENV = {
  approvalsTable: 'KEYGUARD_APPROVALS_TABLE',
  keysTable: 'KEYGUARD_KEYS_TABLE',
  decisionsTable: 'KEYGUARD_DECISIONS_TABLE',
} as const;

/** Region of the stack (pinned to us-east-1), for the commands that read its tables; AWS_REGION overrides it. */
export { DEFAULT_REGION };

/** Environment variable giving the function URL (the stack output ApprovalsUrl). */
export const APPROVALS_URL_ENV = 'KEYGUARD_APPROVALS_URL';

/** How the commands reach AWS: injected so tests can sign with test credentials and call a local emulator. */
export interface ApprovalsDeps {
  credentials: CredentialsProvider;
  /** The profile the credentials come from (AWS_PROFILE), named when none can be loaded. */
  profile?: string;
  /** Signing region when the URL is not a Lambda function URL naming one. */
  fallbackRegion?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** The clock of `approvals list` (an approval's state). */
  now?: () => Date;
  /** The deployed stack, read for the URL (output ApprovalsUrl) when --url and its variable are not given. */
  stack?: DeployedStack;
}

/**
 * The standard SDK credential chain (SSO, environment, container and instance roles) of the run's profile
 * (--profile, else AWS_PROFILE), signing in the run's region (--region, else AWS_REGION, else us-east-1) when
 * the URL names none; and the run's deployed stack.
 */
export function defaultApprovalsDeps(env: NodeJS.ProcessEnv = process.env, aws?: AwsRun): ApprovalsDeps {
  const target = aws?.target ?? awsTarget({}, env);
  const { profile } = target;
  return {
    credentials: defaultProvider(profile ? { profile } : {}),
    ...(profile ? { profile } : {}),
    fallbackRegion: target.region,
    ...(aws ? { stack: aws.stack } : {}),
  };
}

interface CommonOptions {
  /** The approval function URL (stack output ApprovalsUrl); default KEYGUARD_APPROVALS_URL. */
  url?: string;
  /** Account of the key; default the caller's account. */
  account?: string;
}

export interface ApproveOptions extends CommonOptions {
  key?: string;
  reason?: string;
  until?: string;
  /** Comma-separated violation codes; default every code. */
  covers?: string;
}

export interface ListOptions extends CommonOptions {
  key?: string;
  json?: boolean;
}

export interface RevokeOptions extends CommonOptions {
  approval?: string;
  reason?: string;
}

export interface ReviewOptions extends CommonOptions {
  key?: string;
  note?: string;
}

/** A usage problem found before anything is sent: reported on stderr, exit code 2. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const ACCOUNT_ID = /^\d{12}$/;

/**
 * `--covers NEVER_EXPIRES,EXCEEDS_MAX_AGE`: known codes only (listed when one is not); omitted = every code
 * except LEAKED, which an approval covers only when it names it (see coversViolation).
 */
export function parseCovers(value: string | undefined): ViolationCode[] | 'ALL' {
  if (value === undefined) return 'ALL';
  const codes = value
    .split(',')
    .map((c) => c.trim().toUpperCase())
    .filter((c) => c.length > 0);
  if (codes.length === 0)
    throw new UsageError(`--covers: no violation code given; allowed: ${VIOLATION_CODES.join(', ')}`);
  const unknown = codes.filter((c) => !isViolationCode(c));
  if (unknown.length > 0) {
    throw new UsageError(
      `--covers: unknown violation code(s) ${unknown.join(', ')}; allowed: ${VIOLATION_CODES.join(', ')}`,
    );
  }
  return [...new Set(codes)] as ViolationCode[];
}

/**
 * Free text that is recorded: required; anything shaped like a Bedrock key is redacted before it leaves the
 * machine (the function redacts again: it cannot rely on its callers).
 */
function requiredText(option: string, value: string | undefined): string {
  const text = (value ?? '').trim();
  if (text.length === 0) throw new UsageError(`${option}: must not be empty (say why, for the audit)`);
  return redactSecrets(text);
}

function requiredValue(option: string, value: string | undefined): string {
  const v = (value ?? '').trim();
  if (v.length === 0) throw new UsageError(`${option}: required`);
  return v;
}

function accountOption(value: string | undefined): { accountId?: string } {
  if (value === undefined) return {};
  if (!ACCOUNT_ID.test(value))
    throw new UsageError(`--account: got ${JSON.stringify(value)}; allowed: 12 digits`);
  return { accountId: value };
}

async function client(opts: CommonOptions, deps: ApprovalsDeps): Promise<ApprovalClient> {
  let url: string;
  try {
    url = (await stackValue('approvalsUrl', opts.url, {}, deps.stack, { flag: '--url' })) ?? '';
  } catch (err) {
    if (err instanceof StackLookupError) throw new UsageError(err.message);
    throw err;
  }
  deps.stack?.announce();
  if (url.length === 0) {
    throw new UsageError(
      `--url: no approval function URL; pass --url or set ${APPROVALS_URL_ENV} to the stack output ApprovalsUrl`,
    );
  }
  return new ApprovalClient({
    url,
    credentials: deps.credentials,
    ...(deps.profile ? { profile: deps.profile } : {}),
    ...(deps.fallbackRegion ? { fallbackRegion: deps.fallbackRegion } : {}),
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    ...(deps.timeoutMs !== undefined ? { timeoutMs: deps.timeoutMs } : {}),
  });
}

/** Sends `request` and returns the answer of the expected action (the protocol pairs them). */
async function call<A extends ApprovalRequest['action']>(
  opts: CommonOptions,
  deps: ApprovalsDeps,
  request: Extract<ApprovalRequest, { action: A }>,
): Promise<Extract<ApprovalResponse, { action: A }>> {
  const response = await (await client(opts, deps)).send(request);
  if (response.action !== request.action) {
    throw new ApprovalTransportError(
      `the approval function answered a ${response.action} to a ${request.action}`,
    );
  }
  return response as Extract<ApprovalResponse, { action: A }>;
}

/** What the approval commands need, named when the function URL refuses the caller. */
const INVOKE_PERMISSIONS =
  "lambda:InvokeFunctionUrl and lambda:InvokeFunction on the approval function: attach the stack's managed " +
  'policy ApproverPolicy (stack output ApproverPolicyArn)';

/** Where a request goes, for the AWS failure line: the URL's origin and signing region, when the URL parses. */
function urlWhere(url: string | undefined, deps: ApprovalsDeps): { region: string; endpoint?: string } {
  const fallback = deps.fallbackRegion ?? DEFAULT_REGION;
  try {
    const parsed = parseApprovalsUrl(url ?? '');
    return { region: regionOf(parsed, fallback), endpoint: parsed.origin };
  } catch {
    return { region: fallback };
  }
}

/**
 * Runs a command body: usage problems and refusals exit 2 with their line; a failure of AWS (no credentials, an
 * unknown profile, the function URL's 403, an unreachable URL) is one line naming the call, region and profile and
 * what to do, exit 2 as in every command (lambda/cli/aws-errors.ts); the function's internal failures and anything
 * else exit 1.
 */
async function run(
  io: CliIO,
  command: string,
  opts: CommonOptions,
  deps: ApprovalsDeps,
  body: () => Promise<void>,
): Promise<number> {
  try {
    await body();
    return EXIT_OK;
  } catch (err) {
    if (err instanceof ApprovalError) {
      failure(io, messageOf(err));
      return err.kind === 'internal' ? EXIT_FAILURE : EXIT_INPUT;
    }
    if (err instanceof UsageError || err instanceof ApprovalUrlError) {
      failure(io, messageOf(err));
      return EXIT_INPUT;
    }
    // Lambda's 403 carries no reason the CLI reads (the body is not shown): it is an access-denied answer.
    // Lambda's 429 (the function URL throttled) is throttling, as any service's.
    const aws =
      err instanceof ApprovalForbiddenError
        ? Object.assign(
            new Error(
              'HTTP 403 Forbidden: the signature was refused or the caller may not invoke the function',
            ),
            { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } },
          )
        : err instanceof ApprovalTransportError && err.status === 429
          ? Object.assign(new Error('HTTP 429 Too Many Requests'), {
              name: 'TooManyRequestsException',
              $metadata: { httpStatusCode: 429 },
            })
          : err;
    const code = await reportAwsFailure(io, aws, {
      command,
      service: 'Lambda',
      operation: 'InvokeFunctionUrl',
      ...urlWhere(opts.url, deps),
      profile: deps.profile,
      permissions: INVOKE_PERMISSIONS,
    });
    if (code !== null) return code;
    failure(io, messageOf(err));
    return EXIT_FAILURE;
  }
}

/** `, deployed policy p-…, mode enforce`: what the function recorded the audit decision under (when it says). */
function recordedUnder(res: { policyVersion?: string | undefined; mode?: string | undefined }): string {
  if (res.policyVersion === undefined || res.mode === undefined) return '';
  return `, deployed policy ${visible(res.policyVersion)}, mode ${visible(res.mode)}`;
}

/** `keyguard approve`: returns the exit code. */
export async function runApprove(opts: ApproveOptions, io: CliIO, deps: ApprovalsDeps): Promise<number> {
  return run(io, 'approve', opts, deps, async () => {
    const keyId = requiredValue('--key', opts.key);
    const reason = requiredText('--reason', opts.reason);
    // Sent as typed: the function reads it against its own clock and maxApprovalDays.
    const until = requiredValue('--until', opts.until);
    const covers = parseCovers(opts.covers);
    const account = accountOption(opts.account);
    const res = await call(opts, deps, { action: 'approve', ...account, keyId, reason, until, covers });
    const a = res.approval;
    io.stdout.write(
      `Approved key ${visible(a.keyId)} (user ${visible(res.userName)}, account ${visible(a.accountId)}): ` +
        `${visible(coversText(a.covers))} until ${visible(a.until)}\n` +
        `  approval ${visible(a.approvalId)}, approver ${visible(a.approver)}\n` +
        `  audit decision ${visible(res.decisionId)}${recordedUnder(res)}\n`,
    );
  });
}

/** `keyguard approvals revoke`: returns the exit code. */
export async function runRevoke(opts: RevokeOptions, io: CliIO, deps: ApprovalsDeps): Promise<number> {
  return run(io, 'approvals revoke', opts, deps, async () => {
    const approvalId = requiredValue('--approval', opts.approval);
    const reason = requiredText('--reason', opts.reason);
    const account = accountOption(opts.account);
    const res = await call(opts, deps, { action: 'revoke', ...account, approvalId, reason });
    io.stdout.write(
      `Revoked approval ${visible(res.approval.approvalId)} of key ${visible(res.approval.keyId)} ` +
        `(account ${visible(res.approval.accountId)}); its violations apply again\n` +
        `  audit decision ${visible(res.decisionId)}${recordedUnder(res)}\n`,
    );
  });
}

/** `keyguard review`: returns the exit code. */
export async function runReview(opts: ReviewOptions, io: CliIO, deps: ApprovalsDeps): Promise<number> {
  return run(io, 'review', opts, deps, async () => {
    const keyId = requiredValue('--key', opts.key);
    const note = requiredText('--note', opts.note);
    const account = accountOption(opts.account);
    const res = await call(opts, deps, { action: 'review', ...account, keyId, note });
    io.stdout.write(
      `Reviewed key ${visible(res.keyId)} (user ${visible(res.userName)}, account ${visible(res.accountId)}) at ` +
        `${visible(res.reviewedAt)}; reviewer ${visible(res.reviewer)}\n` +
        `  audit decision ${visible(res.decisionId)}${recordedUnder(res)}\n`,
    );
  });
}

export type ApprovalState = 'active' | 'pending' | 'expired' | 'revoked';

/** As the evaluation reads an approval (isApprovalActive): in force from approvedAt until `until`, unless revoked. */
export function approvalState(
  a: Pick<ApprovalView, 'revokedAt' | 'approvedAt' | 'until'>,
  now: Date,
): ApprovalState {
  if (a.revokedAt !== null) return 'revoked';
  const t = now.getTime();
  if (Date.parse(a.approvedAt) > t) return 'pending';
  return t < Date.parse(a.until) ? 'active' : 'expired';
}

/** One approval as `approvals list --json` prints it (stable field order). */
export function approvalJson(a: ApprovalView, now: Date): string {
  return JSON.stringify({
    approvalId: a.approvalId,
    accountId: a.accountId,
    keyId: a.keyId,
    state: approvalState(a, now),
    covers: a.covers,
    reason: a.reason,
    approver: a.approver,
    approvedAt: a.approvedAt,
    until: a.until,
    revokedAt: a.revokedAt,
    revokedBy: a.revokedBy,
    revokeReason: a.revokeReason,
  });
}

/** `keyguard approvals list`: returns the exit code. */
export async function runListApprovals(opts: ListOptions, io: CliIO, deps: ApprovalsDeps): Promise<number> {
  return run(io, 'approvals list', opts, deps, async () => {
    const account = accountOption(opts.account);
    const key = opts.key?.trim() || undefined;
    const res = await call(opts, deps, { action: 'list', ...account, ...(key ? { keyId: key } : {}) });
    const now = (deps.now ?? (() => new Date()))();
    const list = res.approvals;
    if (opts.json) {
      for (const a of list) io.stdout.write(`${approvalJson(a, now)}\n`);
      return;
    }
    if (list.length === 0) {
      io.stdout.write(
        `No approvals${key ? ` for key ${visible(key)}` : ''} in account ${visible(res.accountId)}.\n`,
      );
      return;
    }
    const rows = list.map((a) => [
      a.approvalId,
      a.keyId,
      approvalState(a, now),
      a.covers === 'ALL' ? 'ALL' : a.covers.join(','),
      a.until,
      a.approver,
      a.revokedAt ? `${a.reason} (revoked by ${a.revokedBy ?? '?'}: ${a.revokeReason ?? ''})` : a.reason,
    ]);
    io.stdout.write(
      `${renderTable(['APPROVAL', 'KEY ID', 'STATE', 'COVERS', 'UNTIL', 'APPROVER', 'REASON'], rows, io.terminal)}\n`,
    );
  });
}
