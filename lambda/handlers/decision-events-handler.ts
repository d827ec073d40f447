import type { Logger } from '@aws-lambda-powertools/logger';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { CHAIN_PK_PREFIX, DIGEST_PK } from '../adapters/audit-store';
import { type DecisionEventEntry, decisionEntrySize, decisionEventEntries } from '../domain/decision-events';
import { PUT_EVENTS_MAX_BYTES, PUT_EVENTS_MAX_ENTRIES } from '../domain/scan-report';
import type { Decision } from '../domain/types';

/**
 * Decision events (issue 16 item 2): the decisions table's stream (NEW_IMAGE) → one event per new decision on the
 * governance bus (source keyguard.decisions, detail-type 'Bedrock API Key Decision', detail = the decision), and with
 * `ocsf` its OCSF Detection Finding beside it (detail-type 'Bedrock API Key Decision (OCSF)'; issue 16 item 3).
 * Chain links and digest-log items are not decisions and are skipped; so are changes and removals (never made: the
 * table is append-only, and the archive function records them as anomalies).
 *
 * Nothing is dropped silently: PutEvents requests of at most 10 entries and under 256 KB, in stream order; entries
 * PutEvents rejects (FailedEntryCount) are put again with backoff, `attempts` tries in all; if one is still rejected
 * (or the call fails), the handler stops and reports that record as the batch item failure, so the stream retries
 * from it (records of a shard are ordered) and, after the event source mapping's retries, hands the range to the
 * on-failure queue. Delivery is at least once: a record retried after a partial failure may put a decision that
 * was already delivered again (consumers deduplicate on accountId + keyId + decisionId).
 */

export interface DecisionEventsRuntime {
  eventBridge: EventBridgeClient;
  /** ARN of the governance bus. */
  busArn: string;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** Tries per rejected entry, the first one included. @default 4 */
  attempts?: number;
  /** Wait before the second try (ms), doubled each further try. @default 200 */
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Also put each decision as an OCSF Detection Finding, beside its keyguard event (config decisionEvents.ocsf). */
  ocsf?: boolean;
  /** keyguard's version, named by OCSF events (metadata.product.version). @default '0.0.0' */
  productVersion?: string;
}

type StreamRecord = DynamoDBStreamEvent['Records'][number];

interface Pending {
  /** The stream record's sequence number (the batch item identifier). */
  seq: string;
  decisionId: string;
  entry: DecisionEventEntry & { EventBusName: string };
}

/** A new item of the decisions table that is a decision (not a chain link, not a digest-log entry). */
export function decisionOf(r: StreamRecord): Decision | null {
  if (r.eventName !== 'INSERT' || !r.dynamodb?.NewImage) return null;
  const item = unmarshall(r.dynamodb.NewImage as Record<string, AttributeValue>);
  const pk = item.pk;
  if (typeof pk !== 'string' || pk === DIGEST_PK || pk.startsWith(CHAIN_PK_PREFIX)) return null;
  if (typeof item.decisionId !== 'string' || item.sk !== item.decisionId) return null;
  return item as unknown as Decision;
}

/** Pending entries cut into PutEvents requests: at most 10 each and under 256 KB together, in order. */
function batches(pending: readonly Pending[]): Pending[][] {
  const out: Pending[][] = [];
  let current: Pending[] = [];
  let size = 0;
  for (const p of pending) {
    const n = decisionEntrySize(p.entry);
    if (
      current.length > 0 &&
      (current.length === PUT_EVENTS_MAX_ENTRIES || size + n >= PUT_EVENTS_MAX_BYTES)
    ) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += n;
  }
  if (current.length > 0) out.push(current);
  return out;
}

export function createDecisionEventsHandler(
  rt: DecisionEventsRuntime,
): (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse> {
  const attempts = Math.max(1, rt.attempts ?? 4);
  const baseDelayMs = rt.baseDelayMs ?? 200;
  const ocsf = rt.ocsf ?? false;
  const productVersion = rt.productVersion ?? '0.0.0';
  const sleep = rt.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const failAt = (seq: string): DynamoDBBatchResponse => ({ batchItemFailures: [{ itemIdentifier: seq }] });

  /** Puts one request's entries, retrying rejected ones; returns those still rejected, in order. */
  async function put(batch: Pending[]): Promise<Array<Pending & { errorCode: string }>> {
    let pending = batch;
    let rejected: Array<Pending & { errorCode: string }> = [];
    for (let attempt = 1; attempt <= attempts && pending.length > 0; attempt++) {
      if (attempt > 1) await sleep(baseDelayMs * 2 ** (attempt - 2));
      const out = await rt.eventBridge.send(new PutEventsCommand({ Entries: pending.map((p) => p.entry) }));
      rejected = [];
      pending.forEach((p, i) => {
        const answer = out.Entries?.[i];
        if (!answer?.EventId || answer.ErrorCode) {
          rejected.push({ ...p, errorCode: answer?.ErrorCode ?? 'NoEventId' });
        }
      });
      pending = rejected;
    }
    return rejected;
  }

  return async (event) => {
    const pending: Pending[] = [];
    for (const r of event.Records) {
      const seq = r.dynamodb?.SequenceNumber ?? '';
      const decision = decisionOf(r);
      if (!decision) continue;
      try {
        for (const entry of decisionEventEntries(decision, { ocsf, productVersion })) {
          pending.push({
            seq,
            decisionId: decision.decisionId,
            entry: { ...entry, EventBusName: rt.busArn },
          });
        }
      } catch (err) {
        rt.logger.warn('decision event could not be built', {
          eventID: r.eventID,
          error: (err as Error).name,
        });
        // Everything before this record is put first; the stream then retries from it.
        const delivered = await deliver(pending);
        return delivered ?? failAt(seq);
      }
    }
    return (await deliver(pending)) ?? { batchItemFailures: [] };
  };

  /** Puts every pending entry in order; on the first that cannot be put, the failure to report (null: all put). */
  async function deliver(pending: Pending[]): Promise<DynamoDBBatchResponse | null> {
    let sent = 0;
    for (const batch of batches(pending)) {
      let rejected: Awaited<ReturnType<typeof put>>;
      try {
        rejected = await put(batch);
      } catch (err) {
        rt.logger.warn('PutEvents failed: the stream retries from this record', {
          decisionId: batch[0]?.decisionId,
          error: (err as Error).name,
        });
        return failAt(batch[0]?.seq ?? '');
      }
      const first = rejected[0];
      if (first) {
        rt.logger.warn('decision events rejected after every try: the stream retries from the first', {
          rejected: rejected.map((r) => ({ decisionId: r.decisionId, errorCode: r.errorCode })),
          attempts,
        });
        return failAt(first.seq);
      }
      sent += batch.length;
    }
    if (sent > 0) rt.logger.info('decision events put', { count: sent });
    return null;
  }
}
