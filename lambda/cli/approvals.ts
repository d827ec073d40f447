import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  ApprovalAlreadyRevokedError,
  ApprovalNotFoundError,
  DynamoApprovalsStore,
  type StoredApproval,
} from '../adapters/approvals-store';
import { DynamoAuditLog } from '../adapters/audit-store';
import { documentClient } from '../adapters/document-client';
import { DAY_MS } from '../domain/dates';
import { isNeverExpiring } from '../domain/evaluate';
import { decisionIdFor, type KnownKey } from '../domain/pipeline';
import { selfApprovalConflict } from '../domain/self-approval';
import {
  type Approval,
  type Decision,
  isApprovalActive,
  isViolationCode,
  type OwnerSource,
  type Trigger,
  VIOLATION_CODES,
  type ViolationCode,
} from '../domain/types';
import { type Config, ConfigError, loadConfig, policyVersion } from '../shared/config';
import { redactSecrets } from '../shared/redact';
import { visible } from '../shared/visible-text';
import { renderTable } from './format';
import { messageOf } from './inputs';
import { type CliIO, EXIT_FAILURE, EXIT_INPUT, EXIT_OK, failure } from './io';
import { endOfDay, parseTimeInput } from '../shared/time-input';

/**
 * `keyguard approve`, `keyguard approvals list|revoke` and `keyguard review` (flow 5 of design.md): explicit,
 * expiring, attributable exceptions and reviews, written to the approvals table by an approver (the stack's
 * approver role, or a principal named in `approvers`). The approver is whoever STS GetCallerIdentity says
 * the caller is; it may be neither the key's owner nor its creator. Every approval, revocation and review
 * is also appended to the decisions table as an audit decision.
 */

/** Environment variables naming the tables (the stack outputs print their values). */
export const TABLE_ENV = {
  approvalsTable: 'KEYGUARD_APPROVALS_TABLE',
  keysTable: 'KEYGUARD_KEYS_TABLE',
  decisionsTable: 'KEYGUARD_DECISIONS_TABLE',
} as const;

/** Region of the stack's tables (the stack is pinned to us-east-1); AWS_REGION overrides it. */
export const DEFAULT_REGION = 'us-east-1';

/** AWS access, injected so tests can use a mocked STS and an embedded DynamoDB. */
export interface ApprovalsDeps {
  sts: STSClient;
  doc: DynamoDBDocumentClient;
  now?: () => Date;
  newId?: () => string;
}

/** Clients through the standard SDK credential and endpoint chain (profiles, SSO, env, AWS_ENDPOINT_URL_*). */
export function defaultApprovalsDeps(env: NodeJS.ProcessEnv = process.env): ApprovalsDeps {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || DEFAULT_REGION;
  return {
    sts: new STSClient({ region }),
    doc: documentClient(new DynamoDBClient({ region })),
  };
}

interface TableOptions {
  approvalsTable?: string;
  keysTable?: string;
  decisionsTable?: string;
}

interface CommonOptions extends TableOptions {
  /** Policy config file (maxApprovalDays, mode). */
  config?: string;
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

export interface ListOptions {
  approvalsTable?: string;
  account?: string;
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

/** A refusal or a usage problem: reported on stderr, exit code 2. */
class RefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedError';
  }
}

const ACCOUNT_ID = /^\d{12}$/;
/**
 * `--until`: a date `YYYY-MM-DD` means through the end of that day, UTC (23:59:59.999Z); a full ISO-8601
 * timestamp must name its zone (`Z` or an offset), so nobody's local clock changes the moment. The result must
 * be in the future and at most `maxApprovalDays` from now. Returns the moment as an ISO string (UTC).
 */
export function parseUntil(value: string, now: Date, maxApprovalDays: number): string {
  const t = parseTimeInput(value);
  let until: Date;
  if (t.kind === 'date') until = endOfDay(t.start);
  else if (t.kind === 'instant') until = t.at;
  else if (t.kind === 'bad-date')
    throw new RefusedError(`--until: ${JSON.stringify(value)} is not a calendar date`);
  else if (t.kind === 'bad-timestamp') {
    throw new RefusedError(`--until: ${JSON.stringify(value)} is not a valid timestamp`);
  } else {
    throw new RefusedError(
      `--until: got ${JSON.stringify(value)}; allowed: a date YYYY-MM-DD (through the end of that day, UTC) or an ` +
        'ISO-8601 timestamp with a zone, e.g. 2027-03-31T17:00:00Z',
    );
  }
  if (until.getTime() <= now.getTime()) {
    throw new RefusedError(`--until: ${until.toISOString()} is not in the future (now ${now.toISOString()})`);
  }
  const latest = new Date(now.getTime() + maxApprovalDays * DAY_MS);
  if (until.getTime() > latest.getTime()) {
    throw new RefusedError(
      `--until: ${until.toISOString()} is more than maxApprovalDays (${maxApprovalDays}) away; the latest allowed is ` +
        `${latest.toISOString()}`,
    );
  }
  return until.toISOString();
}

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
    throw new RefusedError(`--covers: no violation code given; allowed: ${VIOLATION_CODES.join(', ')}`);
  const unknown = codes.filter((c) => !isViolationCode(c));
  if (unknown.length > 0) {
    throw new RefusedError(
      `--covers: unknown violation code(s) ${unknown.join(', ')}; allowed: ${VIOLATION_CODES.join(', ')}`,
    );
  }
  return [...new Set(codes)] as ViolationCode[];
}

/** Free text that is stored and printed: required, and anything shaped like a Bedrock key is redacted. */
function requiredText(option: string, value: string | undefined): string {
  const text = (value ?? '').trim();
  if (text.length === 0) throw new RefusedError(`${option}: must not be empty (say why, for the audit)`);
  return redactSecrets(text);
}

function requiredValue(option: string, value: string | undefined): string {
  const v = (value ?? '').trim();
  if (v.length === 0) throw new RefusedError(`${option}: required`);
  return v;
}

function tableName(option: keyof TableOptions, flag: string, given: string | undefined): string {
  if (given && given.trim().length > 0) return given.trim();
  throw new RefusedError(
    `${flag}: no table name; pass ${flag} or set ${TABLE_ENV[option]} (the stack outputs print the names)`,
  );
}

function accountOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!ACCOUNT_ID.test(value))
    throw new RefusedError(`--account: got ${JSON.stringify(value)}; allowed: 12 digits`);
  return value;
}

function loadPolicy(path: string | undefined, io: CliIO): Config {
  try {
    return loadConfig(path, io.cwd).config;
  } catch (err) {
    if (err instanceof ConfigError) throw new RefusedError(err.message);
    throw err;
  }
}

interface Caller {
  arn: string;
  account: string;
}

/** The caller as STS sees it: the approver or reviewer of record. */
async function whoAmI(sts: STSClient): Promise<Caller> {
  const res = await sts.send(new GetCallerIdentityCommand({}));
  if (!res.Arn || !res.Account) throw new Error('STS GetCallerIdentity returned no Arn/Account');
  return { arn: res.Arn, account: res.Account };
}

/** The owner source is not kept on the key: it is inferred from the values that are. */
function ownerSource(known: KnownKey, config: Config): OwnerSource {
  if (known.owner === null) return 'fallback';
  if (known.creator !== null && known.owner === known.creator) return 'creator';
  if (config.fallbackOwner !== null && known.owner === config.fallbackOwner) return 'fallback';
  return 'tag';
}

/** The audit decision for an approval, revocation or review: the key as known, nothing acted on. */
function auditDecision(
  known: KnownKey,
  config: Config,
  trigger: Required<Pick<Trigger, 'kind' | 'eventId' | 'eventName' | 'eventTime'>>,
  triggerId: string,
  reason: string,
): Decision {
  return {
    decisionId: decisionIdFor(trigger.kind, trigger.eventTime, triggerId),
    decidedAt: trigger.eventTime,
    keyId: known.keyId,
    userName: known.userName,
    accountId: known.accountId,
    keyType: 'LONG_TERM',
    status: known.status,
    trigger,
    createdAt: known.createdAt,
    expiresAt: known.expiresAt,
    neverExpires: isNeverExpiring(known.expiresAt),
    owner: { value: known.owner, source: ownerSource(known, config) },
    violations: [],
    action: 'ALLOW',
    applied: false,
    mode: config.mode,
    deadline: null,
    policyVersion: policyVersion(config),
    reason,
  };
}

function coversText(covers: ViolationCode[] | 'ALL'): string {
  return covers === 'ALL' ? 'every violation code except LEAKED' : covers.join(', ');
}

function refuseSelf(callerArn: string, known: KnownKey, what: string): void {
  const conflict = selfApprovalConflict(callerArn, known);
  if (conflict) {
    throw new RefusedError(
      `refused: you (${callerArn}) are the ${conflict.role} of key ${known.keyId} (${conflict.role} ${conflict.value}); ` +
        `nobody may ${what} a key they own or created: ask another approver`,
    );
  }
}

async function knownKeyOrRefuse(
  audit: DynamoAuditLog,
  accountId: string,
  keyId: string,
  table: string,
): Promise<KnownKey> {
  const known = await audit.getKnownKey(accountId, keyId);
  if (!known) {
    throw new RefusedError(
      `key ${keyId} is not known in account ${accountId} (keys table ${table}): only keys keyguard has evaluated ` +
        'can be approved or reviewed (check the key id and --account)',
    );
  }
  return known;
}

/** Runs a command body: refusals and usage problems exit 2, anything else 1, each with one stderr line. */
async function run(io: CliIO, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return EXIT_OK;
  } catch (err) {
    if (
      err instanceof RefusedError ||
      err instanceof ApprovalNotFoundError ||
      err instanceof ApprovalAlreadyRevokedError
    ) {
      failure(io, err.message);
      return EXIT_INPUT;
    }
    failure(io, messageOf(err));
    return EXIT_FAILURE;
  }
}

function stores(deps: ApprovalsDeps, tables: { approvals: string; keys: string; decisions: string }) {
  return {
    approvals: new DynamoApprovalsStore(deps.doc, tables.approvals),
    audit: new DynamoAuditLog(deps.doc, { decisionsTable: tables.decisions, keysTable: tables.keys }),
  };
}

function allTables(opts: TableOptions) {
  return {
    approvals: tableName('approvalsTable', '--approvals-table', opts.approvalsTable),
    keys: tableName('keysTable', '--keys-table', opts.keysTable),
    decisions: tableName('decisionsTable', '--decisions-table', opts.decisionsTable),
  };
}

/** Records an audit decision; the approvals-table write it follows has already happened, so say so if it fails. */
async function recordAudit(audit: DynamoAuditLog, decision: Decision, what: string): Promise<void> {
  try {
    await audit.recordDecision(decision);
  } catch (err) {
    throw new Error(
      `${what} is recorded, but its audit decision ${decision.decisionId} could not be written: ${messageOf(err)}`,
    );
  }
}

/** `keyguard approve`: returns the exit code. */
export async function runApprove(opts: ApproveOptions, io: CliIO, deps: ApprovalsDeps): Promise<number> {
  return run(io, async () => {
    const keyId = requiredValue('--key', opts.key);
    const reason = requiredText('--reason', opts.reason);
    const untilArg = requiredValue('--until', opts.until);
    const covers = parseCovers(opts.covers);
    const account = accountOption(opts.account);
    const tables = allTables(opts);
    const config = loadPolicy(opts.config, io);
    const now = (deps.now ?? (() => new Date()))();
    const until = parseUntil(untilArg, now, config.maxApprovalDays);

    const caller = await whoAmI(deps.sts);
    const accountId = account ?? caller.account;
    const { approvals, audit } = stores(deps, tables);
    const known = await knownKeyOrRefuse(audit, accountId, keyId, tables.keys);
    refuseSelf(caller.arn, known, 'approve');

    const approvedAt = now.toISOString();
    const approval: Approval = {
      approvalId: (deps.newId ?? randomUUID)(),
      accountId,
      keyId,
      covers,
      reason,
      approver: caller.arn,
      approvedAt,
      until,
      revokedAt: null,
      revokedBy: null,
    };
    await approvals.putApproval(approval);
    const decision = auditDecision(
      known,
      config,
      { kind: 'approval', eventId: approval.approvalId, eventName: 'Approve', eventTime: approvedAt },
      approval.approvalId,
      `approval ${approval.approvalId} by ${caller.arn} waives ${coversText(covers)} until ${until}: ${reason}`,
    );
    await recordAudit(audit, decision, `approval ${approval.approvalId}`);
    io.stdout.write(
      `Approved key ${visible(keyId)} (user ${visible(known.userName)}, account ${visible(accountId)}): ` +
        `${coversText(covers)} until ${visible(until)}\n` +
        `  approval ${visible(approval.approvalId)}, approver ${visible(caller.arn)}\n` +
        `  audit decision ${visible(decision.decisionId)}\n`,
    );
  });
}

/** `keyguard approvals revoke`: returns the exit code. */
export async function runRevoke(opts: RevokeOptions, io: CliIO, deps: ApprovalsDeps): Promise<number> {
  return run(io, async () => {
    const approvalId = requiredValue('--approval', opts.approval);
    const reason = requiredText('--reason', opts.reason);
    const account = accountOption(opts.account);
    const tables = allTables(opts);
    const config = loadPolicy(opts.config, io);
    const now = (deps.now ?? (() => new Date()))();

    const caller = await whoAmI(deps.sts);
    const accountId = account ?? caller.account;
    const { approvals, audit } = stores(deps, tables);
    const revokedAt = now.toISOString();
    // Revoking only ever makes evaluation stricter: any approver may revoke, including the key's owner.
    const revoked = await approvals.revokeApproval(accountId, approvalId, {
      revokedAt,
      revokedBy: caller.arn,
      reason,
    });
    const known: KnownKey = (await audit.getKnownKey(accountId, revoked.keyId)) ?? {
      accountId,
      keyId: revoked.keyId,
      userName: '(unknown)',
      status: 'Deleted',
      createdAt: null,
      expiresAt: null,
      creator: null,
      owner: null,
      lastDecisionId: '',
      lastDecisionAt: '',
    };
    const decision = auditDecision(
      known,
      config,
      { kind: 'approval', eventId: approvalId, eventName: 'RevokeApproval', eventTime: revokedAt },
      `${approvalId}.revoked`,
      `approval ${approvalId} (${coversText(revoked.covers)} until ${revoked.until}, by ${revoked.approver}) ` +
        `revoked by ${caller.arn}: ${reason}`,
    );
    await recordAudit(audit, decision, `the revocation of approval ${approvalId}`);
    io.stdout.write(
      `Revoked approval ${visible(approvalId)} of key ${visible(revoked.keyId)} (account ${visible(accountId)}); ` +
        'its violations apply again\n' +
        `  audit decision ${visible(decision.decisionId)}\n`,
    );
  });
}

/** `keyguard review`: returns the exit code. */
export async function runReview(opts: ReviewOptions, io: CliIO, deps: ApprovalsDeps): Promise<number> {
  return run(io, async () => {
    const keyId = requiredValue('--key', opts.key);
    const note = requiredText('--note', opts.note);
    const account = accountOption(opts.account);
    const tables = allTables(opts);
    const config = loadPolicy(opts.config, io);
    const now = (deps.now ?? (() => new Date()))();

    const caller = await whoAmI(deps.sts);
    const accountId = account ?? caller.account;
    const { approvals, audit } = stores(deps, tables);
    const known = await knownKeyOrRefuse(audit, accountId, keyId, tables.keys);
    refuseSelf(caller.arn, known, 'review');

    const reviewedAt = now.toISOString();
    const reviewId = (deps.newId ?? randomUUID)();
    await approvals.putReview({ reviewId, accountId, keyId, reviewer: caller.arn, reviewedAt, note });
    const decision = auditDecision(
      known,
      config,
      { kind: 'review', eventId: reviewId, eventName: 'Review', eventTime: reviewedAt },
      reviewId,
      `reviewed by ${caller.arn} (the review clock restarts ${reviewedAt}): ${note}`,
    );
    await recordAudit(audit, decision, `review ${reviewId}`);
    io.stdout.write(
      `Reviewed key ${visible(keyId)} (user ${visible(known.userName)}, account ${visible(accountId)}) at ` +
        `${reviewedAt}; reviewer ${visible(caller.arn)}\n` +
        `  audit decision ${visible(decision.decisionId)}\n`,
    );
  });
}

export type ApprovalState = 'active' | 'pending' | 'expired' | 'revoked';

export function approvalState(a: StoredApproval, now: Date): ApprovalState {
  if (a.revokedAt !== null) return 'revoked';
  if (isApprovalActive(a, now)) return 'active';
  return Date.parse(a.approvedAt) > now.getTime() ? 'pending' : 'expired';
}

/** One approval as `approvals list --json` prints it (stable field order). */
export function approvalJson(a: StoredApproval, now: Date): string {
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
  return run(io, async () => {
    const table = tableName('approvalsTable', '--approvals-table', opts.approvalsTable);
    const account = accountOption(opts.account) ?? (await whoAmI(deps.sts)).account;
    const key = opts.key?.trim() || undefined;
    const now = (deps.now ?? (() => new Date()))();
    const list = await new DynamoApprovalsStore(deps.doc, table).listApprovals(account, key);
    if (opts.json) {
      for (const a of list) io.stdout.write(`${approvalJson(a, now)}\n`);
      return;
    }
    if (list.length === 0) {
      io.stdout.write(
        `No approvals${key ? ` for key ${visible(key)}` : ''} in account ${visible(account)}.\n`,
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
      `${renderTable(['APPROVAL', 'KEY ID', 'STATE', 'COVERS', 'UNTIL', 'APPROVER', 'REASON'], rows)}\n`,
    );
  });
}
