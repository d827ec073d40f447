import { ConditionalCheckFailedException, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { UsageAggregate, UsageSource, UseSubject } from '../domain/usage-types';
import { boundString } from '../shared/bounded';
import { requireEnv } from '../shared/env';

/**
 * The usage store (flow 3): last use per long-term key, per user (long-term use not attributable to one key)
 * and per principal (short-term keys), plus when tracking started for the account.
 *
 * Tracking starts with the first recorded use, not with a deployment or a sweep: until a use event has arrived
 * from the account, "unused" cannot be told from "not tracked" (a trail not logging read-only management events,
 * a misconfigured rule), and a start set by the sweep would make every key UNUSED after maxIdleDays, and
 * deactivated in enforce mode, when no event ever arrives.
 *
 * One item per subject: accountId (partition) + subject (sort):
 *   `key#<keyId>` | `user#<userName>` | `principal#<arn>` | `meta#tracking`.
 * Items are aggregates, never one row per call: a busy key makes thousands of calls an hour, and the key-usage
 * function writes each subject once per SQS batch. Counts are at-least-once: a batch that fails after some
 * writes is retried whole, so `calls`/`failedCalls` may count a retried batch twice. Times (lastUsedAt,
 * lastAttemptAt) are exact because they only ever move forward (a conditional max), so UNUSED never depends on
 * the counts.
 */

export const TRACKING_SUBJECT = 'meta#tracking';

/** CreateTable input matching the deployed table (the CDK tests check the two agree). */
export function usageTableDefinition(name: string): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'accountId', AttributeType: 'S' },
      { AttributeName: 'subject', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'accountId', KeyType: 'HASH' },
      { AttributeName: 'subject', KeyType: 'RANGE' },
    ],
  };
}

/** The sort key of a subject's item. */
export function subjectKey(subject: UseSubject): string {
  switch (subject.kind) {
    case 'key':
      return `key#${subject.keyId}`;
    case 'user':
      return `user#${subject.userName}`;
    case 'principal':
      return `principal#${subject.principalArn}`;
  }
}

/** A stored usage item, as read back (sets come back as arrays). */
export interface UsageRecord {
  accountId: string;
  subject: string;
  kind: UseSubject['kind'];
  keyType: string;
  keyId?: string;
  userName?: string;
  principalArn?: string;
  calls: number;
  failedCalls: number;
  firstUsedAt: string;
  lastUsedAt?: string;
  lastAttemptAt: string;
  lastSourceIp?: string | null;
  lastUserAgent?: string | null;
  regions: string[];
  models: string[];
}

/** A BatchGetItem kept returning unprocessed keys: the read is incomplete and must not be trusted. */
export class UsageReadIncompleteError extends Error {
  constructor(readonly unprocessed: number) {
    super(`usage store: ${unprocessed} keys still unprocessed after retries`);
    this.name = 'UsageReadIncompleteError';
  }
}

/** Longest model or region name kept in a subject's sets (UTF-8 bytes; real ones are far shorter). */
const SET_MEMBER_MAX_BYTES = 256;

/** DynamoDB's (and dynalite's) refusal of an item over 400 KB. */
function isItemTooLarge(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown } | null;
  return e?.name === 'ValidationException' && /item size/i.test(String(e.message));
}

function isConditionalCheckFailed(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException'
  );
}

/** DynamoDB allows at most 100 keys per BatchGetItem. */
const BATCH_GET_MAX = 100;
const BATCH_GET_ATTEMPTS = 5;

export class DynamoUsageStore implements UsageSource {
  /** Accounts whose tracking start this container has written (if_not_exists: it is set once per account). */
  private readonly trackingRecorded = new Set<string>();

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /**
   * One write per aggregate: counters and sets are added, firstUsedAt is set once, and the "last" fields move
   * only forward. The common case (this batch is newer than what is stored) is a single UpdateItem; when a late
   * batch is older, the counters are still added and each "last" group is set only where it is newer.
   *
   * Then, per account not yet known in this container, one more UpdateItem records the tracking start (the
   * batch's earliest use, failed calls included: they too prove that use events arrive) if none is stored.
   * Written after the uses, so a start on record means a use on record.
   */
  async recordUses(aggregates: ReadonlyArray<UsageAggregate>): Promise<void> {
    for (const a of aggregates) await this.recordOne(a);
    const earliest = new Map<string, string>();
    for (const a of aggregates) {
      const e = earliest.get(a.accountId);
      if (e === undefined || a.firstUsedAt < e) earliest.set(a.accountId, a.firstUsedAt);
    }
    for (const [accountId, firstUsedAt] of earliest) {
      if (this.trackingRecorded.has(accountId)) continue;
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { accountId, subject: TRACKING_SUBJECT },
          UpdateExpression: 'SET trackingSince = if_not_exists(trackingSince, :f)',
          ExpressionAttributeValues: { ':f': firstUsedAt },
        }),
      );
      this.trackingRecorded.add(accountId);
    }
  }

  /**
   * A subject's models and regions are sets that only grow. Should a subject's item reach DynamoDB's 400 KB limit
   * (thousands of distinct model names in its calls), its calls and times are still recorded, without the sets.
   */
  private async recordOne(a: UsageAggregate): Promise<void> {
    try {
      await this.recordWith(a);
    } catch (err) {
      if (!isItemTooLarge(err) || (a.models.length === 0 && a.regions.length === 0)) throw err;
      await this.recordWith({ ...a, models: [], regions: [] });
    }
  }

  private async recordWith(a: UsageAggregate): Promise<void> {
    const key = { accountId: a.accountId, subject: subjectKey(a.subject) };
    const counters = this.countersUpdate(a);
    const attemptSet = 'lastAttemptAt = :a, lastSourceIp = :ip, lastUserAgent = :ua';
    const attemptValues = {
      ':a': a.lastAttemptAt,
      ':ip': a.lastSourceIp === null ? null : boundString(a.lastSourceIp),
      ':ua': a.lastUserAgent === null ? null : boundString(a.lastUserAgent),
    };
    const attemptNewer = '(attribute_not_exists(lastAttemptAt) OR lastAttemptAt < :a)';
    const usedNewer = '(attribute_not_exists(lastUsedAt) OR lastUsedAt < :u)';
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: `${counters.set}, ${attemptSet}${a.lastUsedAt ? ', lastUsedAt = :u' : ''} ${counters.add}`,
          ConditionExpression: a.lastUsedAt ? `${attemptNewer} AND ${usedNewer}` : attemptNewer,
          ExpressionAttributeValues: {
            ...counters.values,
            ...attemptValues,
            ...(a.lastUsedAt ? { ':u': a.lastUsedAt } : {}),
          },
        }),
      );
      return;
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
    }
    // Out of order: something newer is stored. Counters first, then each "last" group only where newer.
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: key,
        UpdateExpression: `${counters.set} ${counters.add}`,
        ExpressionAttributeValues: counters.values,
      }),
    );
    await this.setIfNewer(key, attemptSet, attemptNewer, attemptValues);
    if (a.lastUsedAt) await this.setIfNewer(key, 'lastUsedAt = :u', usedNewer, { ':u': a.lastUsedAt });
  }

  private async setIfNewer(
    key: Record<string, string>,
    set: string,
    condition: string,
    values: Record<string, unknown>,
  ): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: `SET ${set}`,
          ConditionExpression: condition,
          ExpressionAttributeValues: values,
        }),
      );
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
    }
  }

  /** The parts of the update every write carries: identity of the subject, firstUsedAt, counters, sets. */
  private countersUpdate(a: UsageAggregate): { set: string; add: string; values: Record<string, unknown> } {
    const s = a.subject;
    const sets = ['kind = :kind', 'keyType = :kt', 'firstUsedAt = if_not_exists(firstUsedAt, :f)'];
    const values: Record<string, unknown> = {
      ':kind': s.kind,
      ':kt': a.keyType,
      ':f': a.firstUsedAt,
      ':calls': a.calls,
      ':failed': a.failedCalls,
    };
    if (s.kind === 'key') {
      sets.push('keyId = :kid', 'userName = :un');
      values[':kid'] = s.keyId;
      values[':un'] = s.userName;
    } else if (s.kind === 'user') {
      sets.push('userName = :un');
      values[':un'] = s.userName;
    } else {
      sets.push('principalArn = :pa');
      values[':pa'] = s.principalArn;
    }
    const adds = ['calls :calls', 'failedCalls :failed'];
    // A string set may not be empty: add only what the batch saw.
    if (a.regions.length > 0) {
      adds.push('regions :regions');
      values[':regions'] = new Set(a.regions.map((r) => boundString(r, SET_MEMBER_MAX_BYTES)));
    }
    if (a.models.length > 0) {
      adds.push('models :models');
      values[':models'] = new Set(a.models.map((m) => boundString(m, SET_MEMBER_MAX_BYTES)));
    }
    return { set: `SET ${sets.join(', ')}`, add: `ADD ${adds.join(', ')}`, values };
  }

  /** One subject's item, or null when it was never used. */
  async getUsage(accountId: string, subject: UseSubject): Promise<UsageRecord | null> {
    const items = await this.batchGet(accountId, [subjectKey(subject)]);
    const item = items.get(subjectKey(subject));
    return item ? toRecord(item) : null;
  }

  /**
   * Per key: the later of its own record and its user's unattributed record (a use by a user holding two keys
   * could have been either key, so neither is called unused). A key with neither record is absent from the map;
   * one with records but only failed calls maps to null.
   */
  async lastUsedFor(
    accountId: string,
    keys: ReadonlyArray<{ keyId: string; userName: string }>,
  ): Promise<Map<string, string | null>> {
    const wanted = new Set<string>();
    for (const k of keys) {
      wanted.add(subjectKey({ kind: 'key', keyId: k.keyId, userName: k.userName }));
      wanted.add(subjectKey({ kind: 'user', userName: k.userName }));
    }
    const items = await this.batchGet(accountId, [...wanted]);
    const out = new Map<string, string | null>();
    for (const k of keys) {
      const own = items.get(subjectKey({ kind: 'key', keyId: k.keyId, userName: k.userName }));
      const user = items.get(subjectKey({ kind: 'user', userName: k.userName }));
      if (!own && !user) continue;
      out.set(k.keyId, latest(lastUsedOf(own), lastUsedOf(user)));
    }
    return out;
  }

  /**
   * When tracking started for the account (its first recorded use), or null when no use was ever recorded.
   * Read-only: the sweep and the CLI never set it. Strongly consistent, like the last-use reads.
   */
  async trackingSince(accountId: string): Promise<string | null> {
    const res = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { accountId, subject: TRACKING_SUBJECT },
        ConsistentRead: true,
      }),
    );
    const since = res.Item?.trackingSince;
    return typeof since === 'string' ? since : null;
  }

  private async batchGet(
    accountId: string,
    subjects: string[],
  ): Promise<Map<string, Record<string, unknown>>> {
    const out = new Map<string, Record<string, unknown>>();
    for (let i = 0; i < subjects.length; i += BATCH_GET_MAX) {
      let pending: Array<Record<string, unknown>> = subjects
        .slice(i, i + BATCH_GET_MAX)
        .map((subject) => ({ accountId, subject }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt >= BATCH_GET_ATTEMPTS) throw new UsageReadIncompleteError(pending.length);
        const res = await this.doc.send(
          new BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } },
          }),
        );
        for (const item of res.Responses?.[this.tableName] ?? []) out.set(String(item.subject), item);
        pending = res.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    }
    return out;
  }
}

function lastUsedOf(item: Record<string, unknown> | undefined): string | null {
  return typeof item?.lastUsedAt === 'string' ? item.lastUsedAt : null;
}

function latest(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return a > b ? a : b;
}

function toRecord(item: Record<string, unknown>): UsageRecord {
  const asList = (v: unknown): string[] => (v instanceof Set ? [...(v as Set<string>)].sort() : []);
  return {
    ...(item as unknown as UsageRecord),
    regions: asList(item.regions),
    models: asList(item.models),
  };
}

/** The environment variable naming the usage table; the stack sets it only when `usage.regions` is not empty. */
export const USAGE_TABLE_ENV = 'USAGE_TABLE_NAME';

/**
 * The usage store a function reads (and the key-usage function writes): the table named by `USAGE_TABLE_NAME`,
 * or none when the variable is absent (usage not tracked). Set but blank is a broken deployment and fails the
 * cold start. Shared by every entry point, so all of them decide UNUSED from the same table.
 */
export function usageStoreFromEnv(
  env: NodeJS.ProcessEnv,
  doc: DynamoDBDocumentClient,
): DynamoUsageStore | undefined {
  if (env[USAGE_TABLE_ENV] === undefined) return undefined;
  return new DynamoUsageStore(doc, requireEnv(env, USAGE_TABLE_ENV));
}
