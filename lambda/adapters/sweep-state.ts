import { ConditionalCheckFailedException, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { PendingNotice } from '../domain/owner-digest';
import type { ViolationCode } from '../domain/types';

/**
 * The state of the running inventory sweep, one small item per governed account (partition key `accountId`).
 * It is also the sweep's lease: an invocation works on the sweep only while the item names it as `holder`, and
 * every write is conditional on that, so two invocations never sweep the same account at the same time. A
 * holder whose heartbeat is older than the stale limit (it was killed mid-way) may be taken over. The item also
 * holds the account's coverage record ({@link SweepCoverage}).
 */

/** keys: IAM's pages; gone: keys IAM no longer has; digest: the owners' digests (or the summary) are sent. */
export type SweepPhase = 'keys' | 'gone' | 'digest' | 'done';

export interface SweepCounters {
  /** Keys listed by IAM and evaluated (plus gone candidates found still present when re-checked). */
  keysSeen: number;
  decisionsRecorded: number;
  noticesSent: number;
  keysDeactivated: number;
  /** Keys on record that IAM no longer has, recorded as Deleted. */
  keysGone: number;
  /**
   * SNS messages the sweep published: critical notices sent at once, one digest per owner, or the first-deployment
   * summary (`noticesSent` counts the keys' notices, grouped or not). Absent on states saved before it existed.
   */
  messagesSent?: number;
}

export const ZERO_COUNTERS: SweepCounters = {
  keysSeen: 0,
  decisionsRecorded: 0,
  noticesSent: 0,
  keysDeactivated: 0,
  keysGone: 0,
  messagesSent: 0,
};

export interface SweepState {
  accountId: string;
  sweepId: string;
  startedAt: string;
  phase: SweepPhase;
  /** ListServiceSpecificCredentials marker of the next page to sweep (null: from the start / none left). */
  marker: string | null;
  /** Last keys-table key id the gone phase has checked (null: from the start). */
  goneCursor: string | null;
  counters: SweepCounters;
  /** Pages of keys fully processed. */
  pages: number;
  /** Invocations that worked on this sweep. */
  invocations: number;
  heartbeatAt: string;
  /** The invocation holding the lease (its Lambda request id), or null when released. */
  holder: string | null;
  finishedAt: string | null;
  /** Start of the sweep finished before this one (bounds the creator look-up window). */
  previousStartedAt: string | null;
  /** Coverage: when the last complete sweep of the account finished (absent: never). */
  lastCompletedAt?: string | null;
  /** Coverage: the id of that sweep. */
  lastCompletedSweepId?: string | null;
  /** Coverage: the last sweep attempt of the account that failed, and why (absent: none recorded). */
  lastFailure?: SweepFailure | null;
  /**
   * The account had never been swept when this one started (a first deployment, or an account newly governed): its
   * notices go in one summary to the fallback owner instead of one digest per owner. Fixed at the sweep's start.
   */
  firstSweep?: boolean;
  /** Digest phase: the last owner whose digest was sent (owners are sent in sorted order); null: none yet. */
  digestCursor?: string | null;
}

/** A failed sweep attempt: when, which sweep (null: none started), and the error's name and message. */
export interface SweepFailure {
  at: string;
  sweepId: string | null;
  reason: string;
}

/**
 * The coverage record of one account, kept on its sweep state item (so every sweep write carries it and no other
 * table or permission is needed): when it was last swept completely, and the last failure. The CLI reads it with
 * {@link DynamoSweepStateStore.coverage}. A failure newer than `lastCompletedAt` means the account is not covered
 * since then.
 */
export interface SweepCoverage {
  accountId: string;
  lastCompletedAt: string | null;
  lastCompletedSweepId: string | null;
  lastFailure: SweepFailure | null;
  /** The sweep in progress (phase keys or gone), if any. */
  running: { sweepId: string; startedAt: string; phase: SweepPhase } | null;
}

/** The longest failure reason kept (AWS error messages are short; this bounds a surprise). */
export const FAILURE_REASON_MAX = 500;

/** `Name: message` of an error, bounded; never more than the error said (AWS errors carry no key material). */
export function failureReason(err: unknown): string {
  const e = err as { name?: unknown; message?: unknown } | null;
  const name = typeof e?.name === 'string' ? e.name : 'Error';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const reason = `${name}: ${message}`;
  return reason.length > FAILURE_REASON_MAX ? `${reason.slice(0, FAILURE_REASON_MAX - 1)}…` : reason;
}

/** The coverage fields of a state item. */
export function coverageOf(state: SweepState): SweepCoverage {
  return {
    accountId: state.accountId,
    lastCompletedAt: state.lastCompletedAt ?? null,
    lastCompletedSweepId: state.lastCompletedSweepId ?? null,
    lastFailure: state.lastFailure ?? null,
    running:
      state.phase === 'done'
        ? null
        : { sweepId: state.sweepId, startedAt: state.startedAt, phase: state.phase },
  };
}

/** The coverage fields to carry from the previous state item into a new sweep's first item. */
export function carriedCoverage(
  previous: SweepState | null,
): Pick<SweepState, 'lastCompletedAt' | 'lastCompletedSweepId' | 'lastFailure'> {
  if (!previous) return {};
  return {
    ...(previous.lastCompletedAt !== undefined ? { lastCompletedAt: previous.lastCompletedAt } : {}),
    ...(previous.lastCompletedSweepId !== undefined
      ? { lastCompletedSweepId: previous.lastCompletedSweepId }
      : {}),
    ...(previous.lastFailure !== undefined ? { lastFailure: previous.lastFailure } : {}),
  };
}

export class SweepLeaseLostError extends Error {
  constructor(accountId: string, holder: string) {
    super(
      `invocation ${holder} no longer holds the sweep lease of account ${accountId} (taken over after a stale heartbeat)`,
    );
    this.name = 'SweepLeaseLostError';
  }
}

export function sweepStateTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: 'accountId', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'accountId', KeyType: 'HASH' }],
  };
}

function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException'
  );
}

export class DynamoSweepStateStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** The coverage record of each account (one Scan, paginated), sorted by account id: for the CLI. */
  async coverage(): Promise<SweepCoverage[]> {
    const out: SweepCoverage[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await this.doc.send(
        new ScanCommand({ TableName: this.tableName, ExclusiveStartKey: start, ConsistentRead: true }),
      );
      for (const item of res.Items ?? []) out.push(coverageOf(item as SweepState));
      start = res.LastEvaluatedKey;
    } while (start);
    return out.sort((a, b) => a.accountId.localeCompare(b.accountId));
  }

  async get(accountId: string): Promise<SweepState | null> {
    const res = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { accountId }, ConsistentRead: true }),
    );
    return res.Item ? (res.Item as SweepState) : null;
  }

  /**
   * Writes `next` (whose `holder` is the caller) if nobody else holds the lease: no item yet, no holder, the
   * same holder (a retry of the same Lambda request, whose earlier attempt has ended), or a heartbeat older than
   * `staleBefore`. `read` is the item the caller based `next` on (null: there was none): if anyone wrote the item
   * since, the write fails too. Returns false when the lease could not be taken.
   */
  async acquire(next: SweepState, read: SweepState | null, staleBefore: string): Promise<boolean> {
    const free = '(attribute_not_exists(holder) OR holder = :null OR holder = :me OR heartbeatAt < :stale)';
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: next,
          ...(read
            ? {
                ConditionExpression: `sweepId = :sweep AND invocations = :inv AND heartbeatAt = :beat AND ${free}`,
                ExpressionAttributeValues: {
                  ':sweep': read.sweepId,
                  ':inv': read.invocations,
                  ':beat': read.heartbeatAt,
                  ':null': null,
                  ':me': next.holder,
                  ':stale': staleBefore,
                },
              }
            : { ConditionExpression: 'attribute_not_exists(accountId)' }),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Saves progress (and the heartbeat) while holding the lease; throws SweepLeaseLostError otherwise. */
  async save(state: SweepState, holder: string): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...state, holder },
          ConditionExpression: 'holder = :me',
          ExpressionAttributeValues: { ':me': holder },
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) throw new SweepLeaseLostError(state.accountId, holder);
      throw err;
    }
  }

  /** Saves the state and gives the lease up, so the next invocation (or a retry) can continue at once. */
  async release(state: SweepState, holder: string): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...state, holder: null },
          ConditionExpression: 'holder = :me',
          ExpressionAttributeValues: { ':me': holder },
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) throw new SweepLeaseLostError(state.accountId, holder);
      throw err;
    }
  }
}

/** A key on record that the current sweep has not seen in IAM. */
export interface UnseenKey {
  keyId: string;
  userName: string;
}

/**
 * One page of the gone phase's candidates for `accountId` in the keys table: keys not recorded as Deleted that
 * this sweep has not seen, and keys this sweep's own decision recorded as Deleted (a page redone after a
 * failure finds them again, so they are counted once, on the attempt that saves the page). `limit` bounds the
 * items read, before the filter. `nextCursor` is the last key id read, or null after the last page.
 */
export async function unseenKnownKeysPage(
  doc: DynamoDBDocumentClient,
  keysTable: string,
  accountId: string,
  sweepId: string,
  decisionId: string,
  cursor: string | null,
  limit = 500,
): Promise<{ keys: UnseenKey[]; nextCursor: string | null }> {
  const res = await doc.send(
    new QueryCommand({
      TableName: keysTable,
      KeyConditionExpression: 'accountId = :a',
      FilterExpression:
        '(#status <> :deleted AND (attribute_not_exists(lastSweepId) OR lastSweepId <> :sweep)) OR ' +
        '(#status = :deleted AND lastDecisionId = :decision)',
      ProjectionExpression: 'keyId, userName',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: {
        ':a': accountId,
        ':deleted': 'Deleted',
        ':sweep': sweepId,
        ':decision': decisionId,
      },
      ExclusiveStartKey: cursor ? { accountId, keyId: cursor } : undefined,
      ConsistentRead: true,
      Limit: limit,
    }),
  );
  const keys = (res.Items ?? []).map((i) => ({ keyId: i.keyId as string, userName: i.userName as string }));
  const last = res.LastEvaluatedKey?.keyId;
  return { keys, nextCursor: typeof last === 'string' ? last : null };
}

/** A key whose notice waits in a digest: what the keys table holds for it. */
export interface PendingKey {
  keyId: string;
  userName: string;
  codes: ViolationCode[];
  pending: PendingNotice;
}

/**
 * Every key of `accountId` whose pending notice goes in digest `digestId` (all pages of the account's partition of
 * the keys table, filtered: the read covers the partition, what comes back is only the pending keys).
 */
export async function pendingNotices(
  doc: DynamoDBDocumentClient,
  keysTable: string,
  accountId: string,
  digestId: string,
): Promise<PendingKey[]> {
  const out: PendingKey[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const res = await doc.send(
      new QueryCommand({
        TableName: keysTable,
        KeyConditionExpression: 'accountId = :a',
        FilterExpression: '#p.#d = :digest',
        ProjectionExpression: 'keyId, userName, violationCodes, #p',
        ExpressionAttributeNames: { '#p': 'pendingNotice', '#d': 'digest' },
        ExpressionAttributeValues: { ':a': accountId, ':digest': digestId },
        ExclusiveStartKey: start,
        ConsistentRead: true,
      }),
    );
    for (const i of res.Items ?? []) {
      out.push({
        keyId: i.keyId as string,
        userName: i.userName as string,
        codes: (i.violationCodes as ViolationCode[] | undefined) ?? [],
        pending: i.pendingNotice as PendingNotice,
      });
    }
    start = res.LastEvaluatedKey;
  } while (start);
  return out;
}

/**
 * Claims a key's notice that waits for the owner's next digest (`NEXT_DIGEST`: an event or usage notice) for digest
 * `digestId`: only while it is still that notice (same decision, still waiting), so a newer notice written meanwhile
 * is left for the next digest, never overwritten. Returns whether it was claimed.
 */
export async function claimPendingNotice(
  doc: DynamoDBDocumentClient,
  keysTable: string,
  key: { accountId: string; keyId: string },
  pending: PendingNotice,
  digestId: string,
): Promise<boolean> {
  try {
    await doc.send(
      new UpdateCommand({
        TableName: keysTable,
        Key: { accountId: key.accountId, keyId: key.keyId },
        UpdateExpression: 'SET #p.#d = :digest',
        ConditionExpression: '#p.#d = :waiting AND #p.#id = :decision',
        ExpressionAttributeNames: { '#p': 'pendingNotice', '#d': 'digest', '#id': 'decisionId' },
        ExpressionAttributeValues: {
          ':digest': digestId,
          ':waiting': pending.digest,
          ':decision': pending.decisionId,
        },
      }),
    );
    return true;
  } catch (err) {
    if (isConditionFailure(err)) return false;
    throw err;
  }
}
