import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';
import { type ChainLink, nextLink, type StoredDecisionItem } from '../domain/audit-chain';
import type { SignedHead } from '../domain/audit-verify';
import { UNOWNED } from '../domain/notice';
import { type AuditLog, boundDecision, type KnownKey } from '../domain/pipeline';
import { type Action, canonicalDecision, type Decision, type ViolationCode } from '../domain/types';
import { boundItem } from '../shared/bounded';

/**
 * The audit store: an append-only decisions table and a keys table (current state per key), used by the
 * deployed functions and, against an embedded DynamoDB, by `keyguard replay`.
 *
 * decisions: pk = "<accountId>#<keyId>", sk = decisionId (time-prefixed, so a key's decisions sort
 *   chronologically); GSI byOwner: ownerKey (owner or "unowned") + decidedAt.
 *   Chain links (domain/audit-chain.ts) in a partition of their own per key: pk = "chain#<accountId>#<keyId>",
 *   sk = the sequence number, zero-padded (so the head is the last item of the partition). They carry neither
 *   ownerKey nor decidedAt, so the byOwner index never sees them; every read of decisions here skips them.
 * keys: accountId + keyId.
 *
 * Every write to the decisions table is a put conditional on the item not existing: decisions are never
 * overwritten, links never re-used.
 */

export interface AuditTableNames {
  decisionsTable: string;
  keysTable: string;
}

export const BY_OWNER_INDEX = 'byOwner';
/**
 * Sparse GSI over chain links only: chainHour (`<YYYY-MM-DDTHH>#<shard>`) + chainedAt, so the digest function
 * reads the links chained since the previous digest without scanning the table. Sixteen shards per hour spread
 * a sweep's burst of links over sixteen index partitions.
 */
export const BY_CHAIN_HOUR_INDEX = 'byChainHour';
export const CHAIN_HOUR_SHARDS = 16;

/** CreateTable inputs matching the deployed tables (the CDK tests check the two agree). */
export function auditTableDefinitions(names: AuditTableNames): CreateTableCommandInput[] {
  return [
    {
      TableName: names.decisionsTable,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'ownerKey', AttributeType: 'S' },
        { AttributeName: 'decidedAt', AttributeType: 'S' },
        { AttributeName: 'chainHour', AttributeType: 'S' },
        { AttributeName: 'chainedAt', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: BY_OWNER_INDEX,
          KeySchema: [
            { AttributeName: 'ownerKey', KeyType: 'HASH' },
            { AttributeName: 'decidedAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
        {
          IndexName: BY_CHAIN_HOUR_INDEX,
          KeySchema: [
            { AttributeName: 'chainHour', KeyType: 'HASH' },
            { AttributeName: 'chainedAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...CHAIN_HOUR_PROJECTION] },
        },
      ],
    },
    {
      TableName: names.keysTable,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'accountId', AttributeType: 'S' },
        { AttributeName: 'keyId', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'accountId', KeyType: 'HASH' },
        { AttributeName: 'keyId', KeyType: 'RANGE' },
      ],
    },
  ];
}

/** A stored item back as a decision (table keys and index attributes dropped). */
function toDecision(item: Record<string, unknown>): Decision {
  return canonicalDecision(item as unknown as Decision);
}

function decisionPk(accountId: string, keyId: string): string {
  return `${accountId}#${keyId}`;
}

/** Attributes the byChainHour index carries besides its keys and the table's. */
export const CHAIN_HOUR_PROJECTION = ['seq', 'hash', 'decisionId'] as const;

/** Prefix of the chain partitions (an account id is 12 digits, so no decision partition starts with it). */
export const CHAIN_PK_PREFIX = 'chain#';
/** The partition of the digest log: one item per signed digest (its hash, window and archive object). */
export const DIGEST_PK = 'digest#log';

/** `<YYYY-MM-DDTHH>#<shard>` of a link: the byChainHour partition it lands in. */
export function chainHour(pk: string, chainedAt: string, shard?: number): string {
  const s =
    shard ??
    Number.parseInt(createHash('sha256').update(pk).digest('hex').slice(0, 4), 16) % CHAIN_HOUR_SHARDS;
  return `${chainedAt.slice(0, 13)}#${s}`;
}

const SEQ_DIGITS = 12;

export function chainPk(accountId: string, keyId: string): string {
  return `${CHAIN_PK_PREFIX}${accountId}#${keyId}`;
}

function seqKey(seq: number): string {
  return String(seq).padStart(SEQ_DIGITS, '0');
}

/** Whether a stored item of the decisions table is a chain link or a digest record rather than a decision. */
function isChainItem(item: Record<string, unknown>): boolean {
  return typeof item.pk === 'string' && (item.pk.startsWith(CHAIN_PK_PREFIX) || item.pk === DIGEST_PK);
}

function isConditionalCheckFailed(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err as { name?: string } | null)?.name === 'ConditionalCheckFailedException'
  );
}

function addId(ids: Map<string, Set<string>>, pk: string, id: string): void {
  const set = ids.get(pk);
  if (set) set.add(id);
  else ids.set(pk, new Set([id]));
}

function toLink(item: Record<string, unknown>): ChainLink {
  return {
    seq: Number(item.seq),
    decisionId: String(item.decisionId),
    prevHash: String(item.prevHash),
    hash: String(item.hash),
    fields: (item.fields ?? {}) as Record<string, string>,
    chainedAt: String(item.chainedAt ?? ''),
    ...(Array.isArray(item.legacy) ? { legacy: item.legacy.map(String) } : {}),
    ...(item.legacyDigest ? { legacyDigest: item.legacyDigest as ChainLink['legacyDigest'] } : {}),
  };
}

/** How many times a writer re-reads the head after losing the race for the next sequence number. */
const CHAIN_ATTEMPTS = 25;

/** The chain of a key could not be extended: too many concurrent writers for the same key. */
export class ChainContentionError extends Error {
  constructor(accountId: string, keyId: string) {
    super(`audit chain of ${accountId}/${keyId}: lost the race for the next link ${CHAIN_ATTEMPTS} times`);
    this.name = 'ChainContentionError';
  }
}

/**
 * One entry of the digest log (small: the document itself, which lists up to every key, is in the archive).
 * The next digest chains to `digestHash` and starts its window at `windowEnd`.
 */
export interface DigestRecord {
  time: string;
  digestHash: string;
  windowEnd: string;
  objectKey: string;
}

function headOf(item: Record<string, unknown>): SignedHead {
  const pk = String(item.pk).slice(CHAIN_PK_PREFIX.length);
  const hash = pk.indexOf('#');
  return {
    accountId: pk.slice(0, hash),
    keyId: pk.slice(hash + 1),
    seq: Number(item.seq),
    hash: String(item.hash),
  };
}

/** A key the decisions table holds something about: its decision partition and/or its chain. */
export interface ChainedKey {
  accountId: string;
  keyId: string;
}

/**
 * Which decisions to read (`keyguard audit`, `keyguard report`). Every field narrows the result; together they
 * AND. Times are inclusive instants.
 */
export interface DecisionQuery {
  /** One key: a Query on its partition. */
  key?: { accountId: string; keyId: string };
  /** Keys of one owner (`unowned` for keys without one): a Query on byOwner unless `key` is set. */
  owner?: string;
  since?: Date;
  until?: Date;
  action?: Action;
  /** Decisions carrying this violation (waived ones do not count). */
  code?: ViolationCode;
}

/** The exact test of a query against one decision (the table reads narrow first; this decides). */
export function matchesQuery(d: Decision, q: DecisionQuery): boolean {
  if (q.key && (d.accountId !== q.key.accountId || d.keyId !== q.key.keyId)) return false;
  if (q.owner !== undefined && (d.owner.value ?? UNOWNED) !== q.owner) return false;
  const at = Date.parse(d.decidedAt);
  if (q.since && !(at >= q.since.getTime())) return false;
  if (q.until && !(at <= q.until.getTime())) return false;
  if (q.action && d.action !== q.action) return false;
  if (q.code && !d.violations.some((v) => v.code === q.code)) return false;
  return true;
}

/** Oldest first; ties by decision id, so the order is the same on every read. */
export function byDecidedAt(a: Decision, b: Decision): number {
  if (a.decidedAt !== b.decidedAt) return a.decidedAt < b.decidedAt ? -1 : 1;
  return a.decisionId < b.decisionId ? -1 : a.decisionId > b.decisionId ? 1 : 0;
}

/**
 * Stored times are ISO strings, compared as strings by DynamoDB. A second of slack on each side keeps a time
 * written without milliseconds (`…:02Z` sorts after `…:02.000Z`) inside the table-side bounds; `matchesQuery`
 * then applies the exact ones.
 */
const SLACK_MS = 1000;
const lowerBound = (d: Date) => new Date(d.getTime() - SLACK_MS).toISOString();
const upperBound = (d: Date) => new Date(d.getTime() + SLACK_MS).toISOString();

type ReadInput = {
  KeyConditionExpression?: string;
  IndexName?: string;
  FilterExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, unknown>;
};

/**
 * What a store that this process alone writes holds, read once (see DynamoAuditLog.soleWriter) and then kept up to
 * date by the log's own writes.
 */
interface SoleWriterIndex {
  /** Every known-key item, as stored, by `<accountId>#<keyId>`. */
  knownKeys: Map<string, KnownKey>;
  /** Per decision partition, the ids of the decisions in it. */
  decisionIds: Map<string, Set<string>>;
  /** The chain partitions holding at least one link. */
  chains: Set<string>;
  /** Per chain partition, its last link, once read or written. */
  heads: Map<string, ChainLink>;
}

/** An item as the document client gives it back (undefined values left out, at any depth), as a copy. */
function asStored<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** BatchWriteItem's limit of items per request. */
const BATCH_ITEMS = 25;
/** Requests per batch before items DynamoDB keeps leaving unprocessed make the flush fail. */
const BATCH_ATTEMPTS = 8;

/** Items a batch left unprocessed after every retry: the flush fails and they stay pending (never dropped). */
export class UnprocessedWritesError extends Error {
  constructor(table: string, count: number) {
    super(`${table}: ${count} item(s) still unprocessed after ${BATCH_ATTEMPTS} batch writes`);
    this.name = 'UnprocessedWritesError';
  }
}

/** Options of DynamoAuditLog.soleWriter. */
export interface SoleWriterOptions {
  /**
   * Keep the writes in memory and write them in batches (BatchWriteItem, 25 items a request) when something is
   * about to read the store, or on flush(). Their conditions (a decision or a link not existing yet) hold by
   * construction: the store is this process's alone and the index knows every decision id and each chain's head.
   */
  writeBehind?: boolean;
  /** Wait before retrying a batch's unprocessed items (attempt 0, 1, …); default 2^attempt ms capped at 200. */
  retryDelayMs?: (attempt: number) => number;
}

/** Writes kept for the next flush, in the order they are written then: decisions, then links, then keys. */
interface PendingWrites {
  decisions: Record<string, unknown>[];
  links: Record<string, unknown>[];
  /** The last put of each known key (a later put replaces the earlier one), by `<accountId>#<keyId>`. */
  keys: Map<string, Record<string, unknown>>;
  retryDelayMs: (attempt: number) => number;
}

const defaultRetryDelay = (attempt: number) => Math.min(200, 2 ** attempt);

export class DynamoAuditLog implements AuditLog {
  private index: SoleWriterIndex | null = null;
  private pending: PendingWrites | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly names: AuditTableNames,
  ) {}

  /**
   * For a store that only this process writes while it runs (`keyguard replay`'s local store, held by its lock):
   * reads the known keys and the keys of the decisions table once, then answers the reads that the pipeline makes
   * per decision from memory: a known key, whether a decision id is on record (its item is still read when it is),
   * a chain's head and a partition's decision ids. Writes still go to the store, conditions included. Returns
   * every known key. Never for a shared table (the deployed functions): another writer's items would be missed.
   */
  async soleWriter(options: SoleWriterOptions = {}): Promise<KnownKey[]> {
    const known = await this.allKnownKeys();
    const index: SoleWriterIndex = {
      knownKeys: new Map(known.map((k) => [decisionPk(k.accountId, k.keyId), k])),
      decisionIds: new Map(),
      chains: new Set(),
      heads: new Map(),
    };
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(
        new ScanCommand({
          TableName: this.names.decisionsTable,
          ProjectionExpression: '#pk, #sk',
          ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      for (const item of res.Items ?? []) {
        const pk = String(item.pk);
        if (pk === DIGEST_PK) continue;
        if (pk.startsWith(CHAIN_PK_PREFIX)) index.chains.add(pk);
        else addId(index.decisionIds, pk, String(item.sk));
      }
      start = res.LastEvaluatedKey;
    } while (start);
    this.index = index;
    if (options.writeBehind) {
      this.pending = {
        decisions: [],
        links: [],
        keys: new Map(),
        retryDelayMs: options.retryDelayMs ?? defaultRetryDelay,
      };
    }
    return known;
  }

  /** The document client, once the pending writes are in the store (every read and unbatched write goes here). */
  private async ready(): Promise<DynamoDBDocumentClient> {
    if (this.pending) await this.flush();
    return this.doc;
  }

  /**
   * Writes what writeBehind keeps in memory: the decisions, then their links, then the known keys (the order a
   * decision's own writes have, so a failure leaves what a process stopped between two of them would: the next
   * run chains a decision left unchained). A batch is removed from memory only once written; a failure throws
   * and leaves the rest pending.
   */
  async flush(): Promise<void> {
    const pending = this.pending;
    if (!pending) return;
    while (this.flushing) await this.flushing;
    if (pending.decisions.length + pending.links.length + pending.keys.size === 0) return;
    this.flushing = (async () => {
      for (const list of [pending.decisions, pending.links]) {
        while (list.length > 0) {
          const batch = list.slice(0, BATCH_ITEMS);
          await this.batchWrite(this.names.decisionsTable, batch);
          list.splice(0, batch.length);
        }
      }
      while (pending.keys.size > 0) {
        const batch = [...pending.keys].slice(0, BATCH_ITEMS);
        await this.batchWrite(
          this.names.keysTable,
          batch.map(([, item]) => item),
        );
        // A key put again meanwhile keeps its newer item pending.
        for (const [id, item] of batch) if (pending.keys.get(id) === item) pending.keys.delete(id);
      }
    })();
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  /** One BatchWriteItem of puts, retrying the items it leaves unprocessed. */
  private async batchWrite(table: string, items: Record<string, unknown>[]): Promise<void> {
    let requests = items.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 0; ; attempt++) {
      const res = await this.doc.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
      const left = (res.UnprocessedItems?.[table] ?? []) as typeof requests;
      if (left.length === 0) return;
      if (attempt + 1 >= BATCH_ATTEMPTS) throw new UnprocessedWritesError(table, left.length);
      requests = left;
      const wait = this.pending?.retryDelayMs(attempt) ?? 0;
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  async getDecision(accountId: string, keyId: string, decisionId: string): Promise<Decision | null> {
    if (this.index && !this.index.decisionIds.get(decisionPk(accountId, keyId))?.has(decisionId)) return null;
    const res = await (await this.ready()).send(
      new GetCommand({
        TableName: this.names.decisionsTable,
        Key: { pk: decisionPk(accountId, keyId), sk: decisionId },
        ConsistentRead: true,
      }),
    );
    return res.Item ? toDecision(res.Item) : null;
  }

  /**
   * Appends a decision and chains it. Idempotent per decision id: a decision already on record is returned as
   * it is (never overwritten) and, if an earlier attempt stopped before chaining it, chained now.
   */
  async recordDecision(given: Decision): Promise<{ decision: Decision; duplicate: boolean }> {
    // Bounded before it is stored and chained (a no-op for decisions the pipeline built: they are bounded already).
    const decision = boundDecision(given);
    const item: Record<string, unknown> = {
      pk: decisionPk(decision.accountId, decision.keyId),
      sk: decision.decisionId,
      ownerKey: decision.owner.value ?? UNOWNED,
      ...decision,
    };
    const pk = String(item.pk);
    if (this.pending && this.index && !this.index.decisionIds.get(pk)?.has(decision.decisionId)) {
      // Not on record (the index knows every decision id of this sole writer's store): the put's condition holds.
      this.pending.decisions.push(item);
      addId(this.index.decisionIds, pk, decision.decisionId);
      await this.chain(decision.accountId, decision.keyId, decision.decisionId, item, false);
      return { decision, duplicate: false };
    }
    try {
      // Append-only: never overwrite a decision already on record.
      await (await this.ready()).send(
        new PutCommand({
          TableName: this.names.decisionsTable,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
      const existing = await this.getDecisionItem(decision.accountId, decision.keyId, decision.decisionId);
      if (!existing) throw err;
      if (this.index) addId(this.index.decisionIds, String(item.pk), decision.decisionId);
      await this.chain(decision.accountId, decision.keyId, decision.decisionId, existing, true);
      return { decision: toDecision(existing), duplicate: true };
    }
    if (this.index) addId(this.index.decisionIds, String(item.pk), decision.decisionId);
    await this.chain(decision.accountId, decision.keyId, decision.decisionId, item, false);
    return { decision, duplicate: false };
  }

  /**
   * Appends a link sealing `item` to its key's chain. No transactions (the embedded store has none): the next
   * sequence number is claimed by a put conditional on that link not existing, so of two writers extending the
   * same head only one succeeds; the other re-reads the head and tries the next number. `mayBeChained`: the
   * decision may already be chained (a redelivery, or a concurrent writer of the same decision won the race),
   * so look before appending it again.
   */
  private async chain(
    accountId: string,
    keyId: string,
    decisionId: string,
    item: Record<string, unknown>,
    mayBeChained: boolean,
  ): Promise<void> {
    const pk = chainPk(accountId, keyId);
    let check = mayBeChained;
    for (let attempt = 0; attempt < CHAIN_ATTEMPTS; attempt++) {
      if (check && (await this.findLink(pk, decisionId))) return;
      const head = await this.chainHead(pk);
      // The first link seals the set of decisions recorded before chaining existed (domain/audit-chain.ts).
      const partition = head ? [] : await this.decisionIds(accountId, keyId);
      const link = nextLink(head, decisionId, item, new Date(), partition);
      if (this.pending && this.index) {
        // The head is this store's last link (kept by this sole writer, or read after a flush): the next sequence
        // number is free, so the put's condition holds.
        this.pending.links.push({
          pk,
          sk: seqKey(link.seq),
          chainHour: chainHour(pk, link.chainedAt),
          ...link,
        });
        this.index.chains.add(pk);
        this.index.heads.set(pk, toLink(asStored(link) as unknown as Record<string, unknown>));
        return;
      }
      try {
        await (await this.ready()).send(
          new PutCommand({
            TableName: this.names.decisionsTable,
            Item: { pk, sk: seqKey(link.seq), chainHour: chainHour(pk, link.chainedAt), ...link },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        );
        this.index?.chains.add(pk);
        this.index?.heads.set(pk, toLink(asStored(link) as unknown as Record<string, unknown>));
        return;
      } catch (err) {
        if (!isConditionalCheckFailed(err)) throw err;
        this.index?.heads.delete(pk);
        // Someone else took this sequence number, possibly for this very decision.
        check = true;
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5 * (attempt + 1))));
      }
    }
    throw new ChainContentionError(accountId, keyId);
  }

  /** The last link of a chain partition, or null (consistent read). */
  private async chainHead(pk: string): Promise<ChainLink | null> {
    const cached = this.index?.heads.get(pk);
    if (cached) return cached;
    if (this.index && !this.index.chains.has(pk)) return null;
    const res = await (await this.ready()).send(
      new QueryCommand({
        TableName: this.names.decisionsTable,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': pk },
        ScanIndexForward: false,
        Limit: 1,
        ConsistentRead: true,
      }),
    );
    const item = res.Items?.[0];
    const head = item ? toLink(item) : null;
    if (head) this.index?.heads.set(pk, head);
    return head;
  }

  private async findLink(pk: string, decisionId: string): Promise<boolean> {
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(
        new QueryCommand({
          TableName: this.names.decisionsTable,
          KeyConditionExpression: 'pk = :pk',
          FilterExpression: 'decisionId = :d',
          ExpressionAttributeValues: { ':pk': pk, ':d': decisionId },
          ProjectionExpression: 'sk',
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      if ((res.Items ?? []).length > 0) return true;
      start = res.LastEvaluatedKey;
    } while (start);
    return false;
  }

  /** A decision item exactly as stored (table keys included), or null. */
  private async getDecisionItem(
    accountId: string,
    keyId: string,
    decisionId: string,
  ): Promise<Record<string, unknown> | null> {
    const res = await (await this.ready()).send(
      new GetCommand({
        TableName: this.names.decisionsTable,
        Key: { pk: decisionPk(accountId, keyId), sk: decisionId },
        ConsistentRead: true,
      }),
    );
    return res.Item ?? null;
  }

  /** The ids of the decisions in a key's partition (keys only). */
  private async decisionIds(accountId: string, keyId: string): Promise<string[]> {
    if (this.index) return [...(this.index.decisionIds.get(decisionPk(accountId, keyId)) ?? [])];
    const items = await this.queryItems({
      TableName: this.names.decisionsTable,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': decisionPk(accountId, keyId) },
      ProjectionExpression: 'sk',
      ConsistentRead: true,
    });
    return items.map((i) => String(i.sk));
  }

  /** Every link of a key's chain, in sequence order (all pages). */
  async chainLinks(accountId: string, keyId: string): Promise<ChainLink[]> {
    const items = await this.queryItems({
      TableName: this.names.decisionsTable,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': chainPk(accountId, keyId) },
      ConsistentRead: true,
    });
    return items.map(toLink);
  }

  /** Every decision item of a key's partition exactly as stored (for verification; all pages). */
  async decisionItems(accountId: string, keyId: string): Promise<StoredDecisionItem[]> {
    const items = await this.queryItems({
      TableName: this.names.decisionsTable,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': decisionPk(accountId, keyId) },
      ConsistentRead: true,
    });
    return items as StoredDecisionItem[];
  }

  /**
   * Every key the decisions table holds decisions or a chain about, sorted (a scan reading only the table keys:
   * verification then reads each key's two partitions, so memory holds one key's record at a time).
   */
  async keysOnRecord(): Promise<ChainedKey[]> {
    const seen = new Map<string, ChainedKey>();
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(
        new ScanCommand({
          TableName: this.names.decisionsTable,
          ProjectionExpression: 'pk',
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of res.Items ?? []) {
        const raw = String(item.pk);
        if (raw === DIGEST_PK) continue;
        const pk = raw.startsWith(CHAIN_PK_PREFIX) ? raw.slice(CHAIN_PK_PREFIX.length) : raw;
        const hash = pk.indexOf('#');
        if (hash < 0 || seen.has(pk)) continue;
        seen.set(pk, { accountId: pk.slice(0, hash), keyId: pk.slice(hash + 1) });
      }
      start = res.LastEvaluatedKey;
    } while (start);
    return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, k]) => k);
  }

  /**
   * The links chained in [start, end) (byChainHour: one Query per hour and shard; eventually consistent, so the
   * digest function leaves a margin before `end`).
   */
  async linksChainedBetween(start: Date, end: Date): Promise<SignedHead[]> {
    const out: SignedHead[] = [];
    const from = start.toISOString();
    const to = end.toISOString();
    for (let h = Math.floor(start.getTime() / 3_600_000); h * 3_600_000 < end.getTime(); h++) {
      const hour = new Date(h * 3_600_000).toISOString();
      for (let shard = 0; shard < CHAIN_HOUR_SHARDS; shard++) {
        const items = await this.queryItems({
          TableName: this.names.decisionsTable,
          IndexName: BY_CHAIN_HOUR_INDEX,
          KeyConditionExpression: 'chainHour = :h AND chainedAt BETWEEN :from AND :to',
          ExpressionAttributeValues: { ':h': chainHour('', hour, shard), ':from': from, ':to': to },
        });
        for (const i of items) if (String(i.chainedAt) < to) out.push(headOf(i));
      }
    }
    return out;
  }

  /** Every link of the table (a scan, filtered in DynamoDB): the first digest, which has no predecessor. */
  async allLinks(): Promise<SignedHead[]> {
    const out: SignedHead[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(
        new ScanCommand({
          TableName: this.names.decisionsTable,
          FilterExpression: 'begins_with(pk, :chain)',
          ProjectionExpression: 'pk, seq, #hash',
          ExpressionAttributeNames: { '#hash': 'hash' },
          ExpressionAttributeValues: { ':chain': CHAIN_PK_PREFIX },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of res.Items ?? []) out.push(headOf(item));
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /** The newest entry of the digest log, or null (consistent read). */
  async latestDigest(): Promise<DigestRecord | null> {
    const res = await (await this.ready()).send(
      new QueryCommand({
        TableName: this.names.decisionsTable,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': DIGEST_PK },
        ScanIndexForward: false,
        Limit: 1,
        ConsistentRead: true,
      }),
    );
    const item = res.Items?.[0];
    return item
      ? {
          time: String(item.time),
          digestHash: String(item.digestHash),
          windowEnd: String(item.windowEnd),
          objectKey: String(item.objectKey),
        }
      : null;
  }

  /** Appends a digest to the digest log (conditional: a digest time is written once). */
  async recordDigest(record: DigestRecord): Promise<void> {
    await (await this.ready()).send(
      new PutCommand({
        TableName: this.names.decisionsTable,
        Item: { pk: DIGEST_PK, sk: record.time, ...record },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  }

  private async queryItems(
    input: ConstructorParameters<typeof QueryCommand>[0],
  ): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      for (const item of res.Items ?? []) out.push(item);
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }

  async getKnownKey(accountId: string, keyId: string): Promise<KnownKey | null> {
    if (this.index) {
      const known = this.index.knownKeys.get(decisionPk(accountId, keyId));
      return known ? asStored(known) : null;
    }
    const res = await (await this.ready()).send(
      new GetCommand({ TableName: this.names.keysTable, Key: { accountId, keyId }, ConsistentRead: true }),
    );
    return res.Item ? (res.Item as KnownKey) : null;
  }

  async putKnownKey(key: KnownKey): Promise<void> {
    const item = boundItem({ ...key }, `key ${key.accountId} ${key.keyId}`, ['accountId', 'keyId']);
    if (this.pending && this.index) {
      this.pending.keys.set(decisionPk(key.accountId, key.keyId), item);
      this.index.knownKeys.set(decisionPk(key.accountId, key.keyId), asStored(item) as unknown as KnownKey);
      return;
    }
    await (await this.ready()).send(new PutCommand({ TableName: this.names.keysTable, Item: item }));
    this.index?.knownKeys.set(decisionPk(key.accountId, key.keyId), asStored(item) as unknown as KnownKey);
  }

  /** Every key the store knows (all pages). For the embedded store of `keyguard replay`; a full scan. */
  async allKnownKeys(): Promise<KnownKey[]> {
    const out: KnownKey[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(
        new ScanCommand({ TableName: this.names.keysTable, ExclusiveStartKey: start, ConsistentRead: true }),
      );
      for (const item of res.Items ?? []) out.push(item as KnownKey);
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /** Every decision about one key, oldest first (all pages). */
  async decisionsForKey(accountId: string, keyId: string): Promise<Decision[]> {
    return this.queryAll({
      TableName: this.names.decisionsTable,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': decisionPk(accountId, keyId) },
    });
  }

  /** Every decision about keys of one owner (`null` for unowned keys), oldest first. */
  async decisionsForOwner(owner: string | null): Promise<Decision[]> {
    return this.queryAll({
      TableName: this.names.decisionsTable,
      IndexName: BY_OWNER_INDEX,
      KeyConditionExpression: 'ownerKey = :o',
      ExpressionAttributeValues: { ':o': owner ?? UNOWNED },
    });
  }

  /**
   * The decisions a query selects, sorted by decidedAt (all pages). With a key it reads that key's partition
   * (its sort key starts with the trigger time, which is never after decidedAt, so `until` also bounds the
   * sort key); with an owner the byOwner index (range key decidedAt); otherwise it scans the whole table.
   * Time and action are filtered in the table; the violation code, which sits inside a list of maps, here.
   */
  async findDecisions(q: DecisionQuery): Promise<Decision[]> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const keyConditions: string[] = [];
    const filters: string[] = [];
    let indexName: string | undefined;
    const timeFilter = (onKey: boolean) => {
      const target = onKey ? keyConditions : filters;
      names['#at'] = 'decidedAt';
      if (q.since && q.until) {
        values[':since'] = lowerBound(q.since);
        values[':until'] = upperBound(q.until);
        target.push('#at BETWEEN :since AND :until');
      } else if (q.since) {
        values[':since'] = lowerBound(q.since);
        target.push('#at >= :since');
      } else if (q.until) {
        values[':until'] = upperBound(q.until);
        target.push('#at <= :until');
      }
    };
    if (q.key) {
      names['#pk'] = 'pk';
      values[':pk'] = decisionPk(q.key.accountId, q.key.keyId);
      keyConditions.push('#pk = :pk');
      if (q.until) {
        names['#sk'] = 'sk';
        values[':skUntil'] = upperBound(q.until);
        keyConditions.push('#sk <= :skUntil');
      }
      if (q.since || q.until) timeFilter(false);
      if (q.owner !== undefined) {
        names['#owner'] = 'ownerKey';
        values[':owner'] = q.owner;
        filters.push('#owner = :owner');
      }
    } else if (q.owner !== undefined) {
      indexName = BY_OWNER_INDEX;
      names['#owner'] = 'ownerKey';
      values[':owner'] = q.owner;
      keyConditions.push('#owner = :owner');
      if (q.since || q.until) timeFilter(true);
    } else if (q.since || q.until) {
      timeFilter(false);
    }
    if (q.action) {
      names['#action'] = 'action';
      values[':action'] = q.action;
      filters.push('#action = :action');
    }
    const input: ReadInput = {
      ...(indexName ? { IndexName: indexName } : {}),
      ...(keyConditions.length ? { KeyConditionExpression: keyConditions.join(' AND ') } : {}),
      ...(filters.length ? { FilterExpression: filters.join(' AND ') } : {}),
      ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
      ...(Object.keys(values).length ? { ExpressionAttributeValues: values } : {}),
    };
    const read = keyConditions.length
      ? await this.queryAll({ TableName: this.names.decisionsTable, ...input })
      : await this.scanAll(input);
    return read.filter((d) => matchesQuery(d, q)).sort(byDecidedAt);
  }

  /** The accounts whose keys table holds this key id (a key id alone does not name its decisions' partition). */
  async accountsWithKey(keyId: string): Promise<string[]> {
    const accounts = new Set<string>();
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(
        new ScanCommand({
          TableName: this.names.keysTable,
          FilterExpression: '#k = :k',
          ExpressionAttributeNames: { '#k': 'keyId', '#a': 'accountId' },
          ExpressionAttributeValues: { ':k': keyId },
          ProjectionExpression: '#a',
          ExclusiveStartKey: start,
        }),
      );
      for (const item of res.Items ?? []) accounts.add(String(item.accountId));
      start = res.LastEvaluatedKey;
    } while (start);
    return [...accounts].sort();
  }

  private async scanAll(input: ReadInput): Promise<Decision[]> {
    const out: Decision[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(
        new ScanCommand({ TableName: this.names.decisionsTable, ...input, ExclusiveStartKey: start }),
      );
      for (const item of res.Items ?? []) if (!isChainItem(item)) out.push(toDecision(item));
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }

  private async queryAll(input: ConstructorParameters<typeof QueryCommand>[0]): Promise<Decision[]> {
    const out: Decision[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await (await this.ready()).send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      for (const item of res.Items ?? []) out.push(toDecision(item));
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }
}
