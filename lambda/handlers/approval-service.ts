import { randomUUID } from 'node:crypto';
import {
  ApprovalAlreadyRevokedError,
  ApprovalNotFoundError,
  type DynamoApprovalsStore,
  type StoredApproval,
} from '../adapters/approvals-store';
import type { DynamoAuditLog } from '../adapters/audit-store';
import {
  ApprovalError,
  type ApprovalRequest,
  type ApprovalResponse,
  coversText,
} from '../domain/approval-protocol';
import { DAY_MS } from '../domain/dates';
import { isNeverExpiring } from '../domain/evaluate';
import { decisionIdFor, type KnownKey } from '../domain/pipeline';
import {
  callerTokens,
  isListedApprover,
  selfApprovalConflict,
  sharedRoleConflict,
  subjectTokens,
} from '../domain/self-approval';
import type { Approval, Decision, OwnerSource, Trigger, ViolationCode } from '../domain/types';
import { redactSecrets } from '../shared/redact';
import { endOfDay, parseTimeInput } from '../shared/time-input';

/**
 * The rules of flow 5 (design.md): explicit, expiring, attributable approvals and reviews. They run in the approval
 * function, the only principal the approvals table lets write, so no caller can skip them. The caller is whoever
 * Lambda authenticated (the SigV4 signature of the function URL request): never a name the request gives.
 */

/** What the approval function decides with (its environment: APPROVAL_POLICY). */
export interface ApprovalPolicy {
  mode: 'audit' | 'enforce';
  maxApprovalDays: number;
  fallbackOwner: string | null;
  /** IAM users and roles that may approve (empty: every principal IAM lets invoke the function). */
  approvers: string[];
}

export interface ApprovalServiceDeps {
  policy: ApprovalPolicy;
  /** The whole config's version, recorded on every audit decision (POLICY_VERSION). */
  policyVersion: string;
  /**
   * The hub's account (the stack's own): the only account whose principals may call, and the only account whose keys
   * may be approved in a single-account deployment.
   */
  governedAccountId: string;
  /**
   * Organization mode: why keyguard does not govern an account, or null when it does (governed-accounts.ts: ACTIVE
   * accounts under organization.targets minus excludeAccounts, and the hub). Keys of governed member accounts may then
   * be approved too. Asked only for another account than the hub's, after the caller is admitted.
   * @default none: only keys of `governedAccountId`
   */
  ungovernedReason?: (accountId: string) => Promise<string | null>;
  approvals: DynamoApprovalsStore;
  audit: DynamoAuditLog;
  now?: () => Date;
  newId?: () => string;
}

/** The caller as Lambda authenticated it. */
export interface Caller {
  arn: string;
  accountId: string;
}

/**
 * An approval's end: a date `YYYY-MM-DD` is the end of that day, UTC (23:59:59.999Z); a timestamp must name its
 * zone (`Z` or an offset), so nobody's local clock changes the moment. It must be in the future and at most
 * `maxApprovalDays` from now. Returns the moment as an ISO string (UTC).
 */
export function parseUntil(value: string, now: Date, maxApprovalDays: number): string {
  const t = parseTimeInput(value);
  let until: Date;
  if (t.kind === 'date') until = endOfDay(t.start);
  else if (t.kind === 'instant') until = t.at;
  else if (t.kind === 'bad-date')
    throw new ApprovalError('invalid', `--until: ${JSON.stringify(value)} is not a calendar date`);
  else if (t.kind === 'bad-timestamp') {
    throw new ApprovalError('invalid', `--until: ${JSON.stringify(value)} is not a valid timestamp`);
  } else {
    throw new ApprovalError(
      'invalid',
      `--until: got ${JSON.stringify(value)}; allowed: a date YYYY-MM-DD (through the end of that day, UTC) or an ` +
        'ISO-8601 timestamp with a zone, e.g. 2027-03-31T17:00:00Z',
    );
  }
  if (until.getTime() <= now.getTime()) {
    throw new ApprovalError(
      'invalid',
      `--until: ${until.toISOString()} is not in the future (now ${now.toISOString()})`,
    );
  }
  const latest = new Date(now.getTime() + maxApprovalDays * DAY_MS);
  if (until.getTime() > latest.getTime()) {
    throw new ApprovalError(
      'invalid',
      `--until: ${until.toISOString()} is more than maxApprovalDays (${maxApprovalDays}) away; the latest allowed is ` +
        `${latest.toISOString()}`,
    );
  }
  return until.toISOString();
}

function view(a: StoredApproval): StoredApproval {
  return {
    approvalId: a.approvalId,
    accountId: a.accountId,
    keyId: a.keyId,
    covers: a.covers,
    reason: a.reason,
    approver: a.approver,
    approvedAt: a.approvedAt,
    until: a.until,
    revokedAt: a.revokedAt,
    revokedBy: a.revokedBy,
    revokeReason: a.revokeReason,
  };
}

export class ApprovalService {
  constructor(private readonly deps: ApprovalServiceDeps) {}

  async handle(caller: Caller, request: ApprovalRequest): Promise<ApprovalResponse> {
    this.admit(caller);
    const accountId = request.accountId ?? caller.accountId;
    await this.requireGoverned(accountId);
    switch (request.action) {
      case 'approve':
        return this.approve(caller, accountId, request);
      case 'revoke':
        return this.revoke(caller, accountId, request);
      case 'review':
        return this.review(caller, accountId, request);
      case 'list':
        return {
          action: 'list',
          accountId,
          approvals: (await this.deps.approvals.listApprovals(accountId, request.keyId)).map(view),
        };
    }
  }

  /**
   * Only principals of the hub's account, and only listed approvers when the policy lists any. In organization mode
   * too: the security team approves from the hub, and nobody in a member account (a key's own user or its creator
   * there included) approves anything.
   */
  private admit(caller: Caller): void {
    if (caller.accountId !== this.deps.governedAccountId) {
      throw new ApprovalError(
        'refused',
        this.deps.ungovernedReason
          ? `refused: ${caller.arn} is not a principal of the hub account ${this.deps.governedAccountId} ` +
              '(approvals of every governed account are made from the hub account)'
          : `refused: ${caller.arn} is not a principal of the governed account ${this.deps.governedAccountId}`,
      );
    }
    const { approvers } = this.deps.policy;
    if (approvers.length > 0 && !isListedApprover(caller.arn, approvers)) {
      throw new ApprovalError(
        'refused',
        `refused: ${caller.arn} is not an approver (config "approvers" lists ${approvers.length} principal(s))`,
      );
    }
  }

  /** Keys of the hub's account, and in organization mode of the accounts keyguard governs; never of another. */
  private async requireGoverned(accountId: string): Promise<void> {
    const hub = this.deps.governedAccountId;
    if (accountId === hub) return;
    if (!this.deps.ungovernedReason) {
      throw new ApprovalError(
        'not-found',
        `account ${accountId} is not governed by this stack (it governs ${hub})`,
      );
    }
    const why = await this.deps.ungovernedReason(accountId);
    if (why !== null) {
      throw new ApprovalError(
        'not-found',
        `account ${accountId} is not governed by this stack (${why}): only keys of the hub account ${hub} and of ` +
          "the organization's governed accounts can be approved, revoked, reviewed or listed",
      );
    }
  }

  private now(): Date {
    return (this.deps.now ?? (() => new Date()))();
  }

  private newId(): string {
    return (this.deps.newId ?? randomUUID)();
  }

  private async knownKey(accountId: string, keyId: string): Promise<KnownKey> {
    const known = await this.deps.audit.getKnownKey(accountId, keyId);
    if (!known) {
      throw new ApprovalError(
        'not-found',
        `key ${keyId} is not known in account ${accountId}: only keys keyguard has evaluated can be approved or ` +
          'reviewed (check the key id and --account)',
      );
    }
    return known;
  }

  private refuseSelf(caller: Caller, known: KnownKey, what: string): void {
    // The IAM user holding the key, in the key's account (a member account's, in organization mode): compared by
    // ARN and by name like an owner or creator, so the same name in the hub (a user, or a session named so) is it.
    const holder = `arn:aws:iam::${known.accountId}:user/${known.userName}`;
    const mine = callerTokens(caller.arn);
    if ([...subjectTokens(holder)].some((t) => mine.has(t))) {
      throw new ApprovalError(
        'refused',
        `refused: you (${caller.arn}) are the IAM user of key ${known.keyId} (user ${known.userName} in account ` +
          `${known.accountId}); nobody may ${what} a key they hold: ask another approver`,
      );
    }
    const conflict = selfApprovalConflict(caller.arn, known) ?? sharedRoleConflict(caller.arn, known.creator);
    if (conflict) {
      throw new ApprovalError(
        'refused',
        `refused: you (${caller.arn}) are the ${conflict.role} of key ${known.keyId} (${conflict.role} ` +
          `${conflict.value}); nobody may ${what} a key they own or created: ask another approver`,
      );
    }
  }

  /** The owner source is not kept on the key: it is inferred from the values that are. */
  private ownerSource(known: KnownKey): OwnerSource {
    if (known.owner === null) return 'fallback';
    if (known.creator !== null && known.owner === known.creator) return 'creator';
    if (this.deps.policy.fallbackOwner !== null && known.owner === this.deps.policy.fallbackOwner)
      return 'fallback';
    return 'tag';
  }

  /** The audit decision for an approval, revocation or review: the key as known, nothing acted on. */
  private auditDecision(
    known: KnownKey,
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
      owner: { value: known.owner, source: this.ownerSource(known) },
      violations: [],
      action: 'ALLOW',
      applied: false,
      mode: this.deps.policy.mode,
      deadline: null,
      policyVersion: this.deps.policyVersion,
      reason,
    };
  }

  /** The deployed policy the audit decisions are recorded under, answered to the CLI to print. */
  private recordedUnder(): { policyVersion: string; mode: ApprovalPolicy['mode'] } {
    return { policyVersion: this.deps.policyVersion, mode: this.deps.policy.mode };
  }

  /** Appends the audit decision; the approvals-table write it follows has happened, so a failure says so. */
  private async recordAudit(decision: Decision, what: string): Promise<void> {
    try {
      await this.deps.audit.recordDecision(decision);
    } catch (err) {
      throw new Error(
        `${what} is recorded, but its audit decision ${decision.decisionId} could not be written: ` +
          `${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  private async approve(
    caller: Caller,
    accountId: string,
    r: Extract<ApprovalRequest, { action: 'approve' }>,
  ): Promise<ApprovalResponse> {
    const now = this.now();
    const until = parseUntil(r.until, now, this.deps.policy.maxApprovalDays);
    const known = await this.knownKey(accountId, r.keyId);
    this.refuseSelf(caller, known, 'approve');
    const covers = r.covers === 'ALL' ? 'ALL' : ([...new Set(r.covers)] as ViolationCode[]);
    const reason = redactSecrets(r.reason);
    const approvedAt = now.toISOString();
    const approval: Approval = {
      approvalId: this.newId(),
      accountId,
      keyId: known.keyId,
      covers,
      reason,
      approver: caller.arn,
      approvedAt,
      until,
      revokedAt: null,
      revokedBy: null,
    };
    await this.deps.approvals.putApproval(approval);
    const decision = this.auditDecision(
      known,
      { kind: 'approval', eventId: approval.approvalId, eventName: 'Approve', eventTime: approvedAt },
      approval.approvalId,
      `approval ${approval.approvalId} by ${caller.arn} waives ${coversText(covers)} until ${until}: ${reason}`,
    );
    await this.recordAudit(decision, `approval ${approval.approvalId}`);
    return {
      action: 'approve',
      approval: { ...approval, revokeReason: null },
      userName: known.userName,
      decisionId: decision.decisionId,
      ...this.recordedUnder(),
    };
  }

  /** Revoking only ever makes evaluation stricter: any approver may revoke, the key's owner included. */
  private async revoke(
    caller: Caller,
    accountId: string,
    r: Extract<ApprovalRequest, { action: 'revoke' }>,
  ): Promise<ApprovalResponse> {
    const revokedAt = this.now().toISOString();
    const reason = redactSecrets(r.reason);
    let revoked: StoredApproval;
    try {
      revoked = await this.deps.approvals.revokeApproval(accountId, r.approvalId, {
        revokedAt,
        revokedBy: caller.arn,
        reason,
      });
    } catch (err) {
      if (err instanceof ApprovalNotFoundError) throw new ApprovalError('not-found', err.message);
      if (err instanceof ApprovalAlreadyRevokedError) throw new ApprovalError('conflict', err.message);
      throw err;
    }
    const known: KnownKey = (await this.deps.audit.getKnownKey(accountId, revoked.keyId)) ?? {
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
    const decision = this.auditDecision(
      known,
      { kind: 'approval', eventId: r.approvalId, eventName: 'RevokeApproval', eventTime: revokedAt },
      `${r.approvalId}.revoked`,
      `approval ${r.approvalId} (${coversText(revoked.covers)} until ${revoked.until}, by ${revoked.approver}) ` +
        `revoked by ${caller.arn}: ${reason}`,
    );
    await this.recordAudit(decision, `the revocation of approval ${r.approvalId}`);
    return {
      action: 'revoke',
      approval: view(revoked),
      decisionId: decision.decisionId,
      ...this.recordedUnder(),
    };
  }

  private async review(
    caller: Caller,
    accountId: string,
    r: Extract<ApprovalRequest, { action: 'review' }>,
  ): Promise<ApprovalResponse> {
    const known = await this.knownKey(accountId, r.keyId);
    this.refuseSelf(caller, known, 'review');
    const note = redactSecrets(r.note);
    const reviewedAt = this.now().toISOString();
    const reviewId = this.newId();
    await this.deps.approvals.putReview({
      reviewId,
      accountId,
      keyId: known.keyId,
      reviewer: caller.arn,
      reviewedAt,
      note,
    });
    const decision = this.auditDecision(
      known,
      { kind: 'review', eventId: reviewId, eventName: 'Review', eventTime: reviewedAt },
      reviewId,
      `reviewed by ${caller.arn} (the review clock restarts ${reviewedAt}): ${note}`,
    );
    await this.recordAudit(decision, `review ${reviewId}`);
    return {
      action: 'review',
      reviewId,
      accountId,
      keyId: known.keyId,
      userName: known.userName,
      reviewer: caller.arn,
      reviewedAt,
      decisionId: decision.decisionId,
      ...this.recordedUnder(),
    };
  }
}
