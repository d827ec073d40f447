import { ConditionalCheckFailedException, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { ApprovalSource } from '../domain/pipeline';
import { type Approval, isViolationCode, type ViolationCode } from '../domain/types';
import { boundItem, boundString } from '../shared/bounded';
import * as z from '../shared/zod';

/**
 * The approvals table: explicit, expiring exceptions and reviews, written only by the approval function (which
 * `keyguard approve|review|approvals revoke` call through its IAM-authenticated URL) and read by the functions.
 *
 * pk = "<accountId>#<keyId>"; sk = `APPROVAL#<approvalId>` or `REVIEW#<reviewedAt>#<reviewId>` (reviews sort
 * chronologically). GSI byAccount (sparse: approvals only): approvalAccount = accountId, approvalId, so that
 * `approvals list` and `approvals revoke --approval <id>` find approvals without a scan.
 * Nothing is ever deleted: a revoked approval stays on record with revokedAt/revokedBy.
 */

export const APPROVALS_BY_ACCOUNT_INDEX = 'byAccount';
const APPROVAL_PREFIX = 'APPROVAL#';
const REVIEW_PREFIX = 'REVIEW#';
/** Attributes that identify an approval or review item (and its index): never cut by boundItem. */
const APPROVAL_KEYS = ['pk', 'sk', 'approvalAccount', 'accountId', 'keyId', 'approvalId', 'reviewId'];
/** Reasons and notes are written by people on purpose: kept up to 64 KB each (the item still fits 400 KB). */
const TEXT_MAX_BYTES = 64 * 1024;

/** CreateTable input matching the deployed table (the CDK tests check the two agree). */
export function approvalsTableDefinition(name: string): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'sk', AttributeType: 'S' },
      { AttributeName: 'approvalAccount', AttributeType: 'S' },
      { AttributeName: 'approvalId', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: APPROVALS_BY_ACCOUNT_INDEX,
        KeySchema: [
          { AttributeName: 'approvalAccount', KeyType: 'HASH' },
          { AttributeName: 'approvalId', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}

/** A review: a person confirmed the key is still needed (resets the review clock). */
export interface Review {
  reviewId: string;
  accountId: string;
  keyId: string;
  /** Principal ARN Lambda authenticated for the approval function URL's request. */
  reviewer: string;
  reviewedAt: string;
  note: string;
}

/** An approval as stored: the domain's Approval plus why it was revoked. */
export interface StoredApproval extends Approval {
  revokeReason: string | null;
}

export class ApprovalNotFoundError extends Error {
  constructor(readonly approvalId: string) {
    super(`approval ${approvalId} not found`);
    this.name = 'ApprovalNotFoundError';
  }
}

export class ApprovalAlreadyRevokedError extends Error {
  constructor(
    readonly approvalId: string,
    readonly revokedAt: string | null,
    readonly revokedBy: string | null,
  ) {
    super(
      `approval ${approvalId} was already revoked${revokedAt ? ` at ${revokedAt}` : ''}${revokedBy ? ` by ${revokedBy}` : ''}`,
    );
    this.name = 'ApprovalAlreadyRevokedError';
  }
}

export class ApprovalExistsError extends Error {
  constructor(readonly approvalId: string) {
    super(`approval ${approvalId} already exists`);
    this.name = 'ApprovalExistsError';
  }
}

function keyPk(accountId: string, keyId: string): string {
  return `${accountId}#${keyId}`;
}

function isConditionFailed(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException'
  );
}

const isoTime = z.string().check(z.refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO timestamp'));
const nonEmpty = () => z.string().check(z.minLength(1));

/**
 * The stored shape, checked on read: an item that does not parse is not an approval (it waives nothing), so
 * a malformed or hand-edited item can only make evaluation stricter, never looser.
 */
const ApprovalItemSchema = z.object({
  approvalId: nonEmpty(),
  accountId: nonEmpty(),
  keyId: nonEmpty(),
  covers: z.union([z.literal('ALL'), z.array(z.string())]),
  reason: z.string(),
  approver: nonEmpty(),
  approvedAt: isoTime,
  until: isoTime,
  revokedAt: z.nullish(isoTime),
  revokedBy: z.nullish(z.string()),
  revokeReason: z.nullish(z.string()),
});

const ReviewItemSchema = z.object({
  reviewId: nonEmpty(),
  accountId: nonEmpty(),
  keyId: nonEmpty(),
  reviewer: nonEmpty(),
  reviewedAt: isoTime,
  note: z.string(),
});

function toApproval(item: Record<string, unknown>): StoredApproval | null {
  const parsed = ApprovalItemSchema.safeParse(item);
  if (!parsed.success) return null;
  const a = parsed.data;
  // Codes this version does not know are dropped: an approval never covers more than it names.
  const covers: ViolationCode[] | 'ALL' = a.covers === 'ALL' ? 'ALL' : a.covers.filter(isViolationCode);
  return {
    approvalId: a.approvalId,
    accountId: a.accountId,
    keyId: a.keyId,
    covers,
    reason: a.reason,
    approver: a.approver,
    approvedAt: a.approvedAt,
    until: a.until,
    revokedAt: a.revokedAt ?? null,
    revokedBy: a.revokedBy ?? null,
    revokeReason: a.revokeReason ?? null,
  };
}

function toReview(item: Record<string, unknown>): Review | null {
  const parsed = ReviewItemSchema.safeParse(item);
  return parsed.success ? parsed.data : null;
}

function byApprovedAt(a: StoredApproval, b: StoredApproval): number {
  return a.approvedAt < b.approvedAt
    ? -1
    : a.approvedAt > b.approvedAt
      ? 1
      : a.approvalId < b.approvalId
        ? -1
        : 1;
}

export class DynamoApprovalsStore implements ApprovalSource {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Every approval (active or not) and the latest review of one key: what evaluation needs. */
  async recordsFor(
    accountId: string,
    keyId: string,
  ): Promise<{ approvals: Approval[]; lastReviewAt: string | null }> {
    const { approvals, reviews } = await this.recordsOfKey(accountId, keyId);
    let lastReviewAt: string | null = null;
    for (const r of reviews) {
      if (lastReviewAt === null || Date.parse(r.reviewedAt) > Date.parse(lastReviewAt))
        lastReviewAt = r.reviewedAt;
    }
    return {
      approvals: approvals.map(({ revokeReason: _r, ...a }) => a),
      lastReviewAt: lastReviewAt === null ? null : new Date(Date.parse(lastReviewAt)).toISOString(),
    };
  }

  /** Every approval and review of one key, oldest first (all pages). */
  async recordsOfKey(
    accountId: string,
    keyId: string,
  ): Promise<{ approvals: StoredApproval[]; reviews: Review[] }> {
    const items = await this.queryAll({
      TableName: this.tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': keyPk(accountId, keyId) },
      ConsistentRead: true,
    });
    const approvals: StoredApproval[] = [];
    const reviews: Review[] = [];
    for (const item of items) {
      const sk = typeof item.sk === 'string' ? item.sk : '';
      if (sk.startsWith(APPROVAL_PREFIX)) {
        const a = toApproval(item);
        if (a) approvals.push(a);
      } else if (sk.startsWith(REVIEW_PREFIX)) {
        const r = toReview(item);
        if (r) reviews.push(r);
      }
    }
    return { approvals: approvals.sort(byApprovedAt), reviews };
  }

  /** Records a new approval; never overwrites one (throws ApprovalExistsError). */
  async putApproval(approval: Approval): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          // Free text (reasons, names) bounded below DynamoDB's item limit; the keys are left as they are.
          Item: boundItem(
            {
              pk: keyPk(approval.accountId, approval.keyId),
              sk: `${APPROVAL_PREFIX}${approval.approvalId}`,
              approvalAccount: approval.accountId,
              ...approval,
            },
            `approval ${approval.approvalId}`,
            APPROVAL_KEYS,
            TEXT_MAX_BYTES,
          ),
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (err) {
      if (isConditionFailed(err)) throw new ApprovalExistsError(approval.approvalId);
      throw err;
    }
  }

  /** The approval with this id in this account, or null. */
  async getApproval(accountId: string, approvalId: string): Promise<StoredApproval | null> {
    const items = await this.queryAll({
      TableName: this.tableName,
      IndexName: APPROVALS_BY_ACCOUNT_INDEX,
      KeyConditionExpression: 'approvalAccount = :a AND approvalId = :id',
      ExpressionAttributeValues: { ':a': accountId, ':id': approvalId },
    });
    const first = items[0];
    return first ? toApproval(first) : null;
  }

  /**
   * Revokes an approval: only one that exists and is not revoked yet (conditional update, so two concurrent
   * revocations cannot both succeed). Returns the approval as revoked.
   */
  async revokeApproval(
    accountId: string,
    approvalId: string,
    by: { revokedAt: string; revokedBy: string; reason: string },
  ): Promise<StoredApproval> {
    const found = await this.getApproval(accountId, approvalId);
    if (!found) throw new ApprovalNotFoundError(approvalId);
    try {
      const res = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: keyPk(found.accountId, found.keyId), sk: `${APPROVAL_PREFIX}${approvalId}` },
          UpdateExpression: 'SET revokedAt = :at, revokedBy = :by, revokeReason = :why',
          ConditionExpression:
            'attribute_exists(pk) AND (attribute_not_exists(revokedAt) OR attribute_type(revokedAt, :nullType))',
          ExpressionAttributeValues: {
            ':at': by.revokedAt,
            ':by': boundString(by.revokedBy),
            ':why': boundString(by.reason, TEXT_MAX_BYTES),
            ':nullType': 'NULL',
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const revoked = res.Attributes ? toApproval(res.Attributes) : null;
      if (!revoked) throw new Error(`approval ${approvalId}: the revoked item could not be read back`);
      return revoked;
    } catch (err) {
      if (isConditionFailed(err)) {
        const now = await this.getApproval(accountId, approvalId);
        if (!now) throw new ApprovalNotFoundError(approvalId);
        throw new ApprovalAlreadyRevokedError(approvalId, now.revokedAt, now.revokedBy);
      }
      throw err;
    }
  }

  /** Records a review (sort key time-first, so a key's reviews sort chronologically). */
  async putReview(review: Review): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: boundItem(
          {
            pk: keyPk(review.accountId, review.keyId),
            sk: `${REVIEW_PREFIX}${review.reviewedAt}#${review.reviewId}`,
            ...review,
          },
          `review ${review.reviewId}`,
          APPROVAL_KEYS,
          TEXT_MAX_BYTES,
        ),
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  }

  /**
   * Approvals, oldest first: of one key (account and key), of one account (the byAccount index), or, with
   * neither, of every account (a scan: for the embedded store and tests; the approver role cannot scan).
   */
  async listApprovals(accountId?: string, keyId?: string): Promise<StoredApproval[]> {
    let items: Record<string, unknown>[];
    if (accountId !== undefined && keyId !== undefined) {
      return (await this.recordsOfKey(accountId, keyId)).approvals;
    }
    if (accountId !== undefined) {
      items = await this.queryAll({
        TableName: this.tableName,
        IndexName: APPROVALS_BY_ACCOUNT_INDEX,
        KeyConditionExpression: 'approvalAccount = :a',
        ExpressionAttributeValues: { ':a': accountId },
      });
    } else {
      items = [];
      let start: Record<string, unknown> | undefined;
      do {
        const res = await this.doc.send(
          new ScanCommand({
            TableName: this.tableName,
            FilterExpression: 'begins_with(sk, :p)',
            ExpressionAttributeValues: { ':p': APPROVAL_PREFIX },
            ExclusiveStartKey: start,
          }),
        );
        items.push(...(res.Items ?? []));
        start = res.LastEvaluatedKey;
      } while (start);
    }
    const out = items.map(toApproval).filter((a): a is StoredApproval => a !== null);
    return out.filter((a) => keyId === undefined || a.keyId === keyId).sort(byApprovedAt);
  }

  private async queryAll(input: QueryCommandInput): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await this.doc.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      out.push(...(res.Items ?? []));
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }
}
