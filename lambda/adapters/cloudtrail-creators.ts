import { type CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { CloudTrailRecordSchema, classifyRecord, EventShapeError } from '../domain/cloudtrail';
import { DAY_MS } from '../domain/dates';

/**
 * Who created each Bedrock key, from CloudTrail event history (`LookupEvents`), for keys older than the
 * deployment (the event path learns the creator from the Create event itself). Event history holds 90 days of
 * management events per region; IAM's are in us-east-1, so the client must be a us-east-1 client.
 *
 * Each event's `CloudTrailEvent` JSON goes through the same validation and classification as live events, so
 * only successful creations of Bedrock keys count; the creator is the event's actor (principal ARN, else user
 * name or principal id). Only the key id and the actor are taken from a record: nothing else (in particular
 * no `serviceCredentialSecret`, should a record ever carry one) is kept.
 *
 * `LookupEvents` is limited to 2 requests per second per account and region: calls are paced by this adapter
 * (one limiter per instance, shared by concurrent calls), and a throttled call is retried by the SDK client.
 */

/** How far back CloudTrail event history goes. */
export const EVENT_HISTORY_DAYS = 90;
/** 2 requests per second: the LookupEvents quota per account and region. */
export const LOOKUP_MIN_INTERVAL_MS = 500;
/** The largest page LookupEvents returns. */
const PAGE_SIZE = 50;

export interface CreatorLookupOptions {
  /** Least time between the starts of two LookupEvents calls. @default 500 (2 calls/s) */
  readonly minIntervalMs?: number;
  /** Wall clock, for the 90-day window and the pacing. @default () => new Date() */
  readonly now?: () => Date;
  /** Waits between calls. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class CloudTrailCreatorLookup {
  private readonly minIntervalMs: number;
  private readonly now: () => Date;
  private readonly sleep: (ms: number) => Promise<void>;
  /** When the last call was allowed to start (ms), and the queue of callers waiting for their turn. */
  private lastCallAt: number | null = null;
  private turn: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: CloudTrailClient,
    opts: CreatorLookupOptions = {},
  ) {
    this.minIntervalMs = opts.minIntervalMs ?? LOOKUP_MIN_INTERVAL_MS;
    this.now = opts.now ?? (() => new Date());
    this.sleep = opts.sleep ?? defaultSleep;
  }

  /**
   * keyId → creator principal, for the Bedrock keys created in `accountId` between `since` and `until`.
   * `since` is clamped to the start of event history (now − 90 days); an empty window makes no call.
   */
  async creators(accountId: string, since: Date, until: Date): Promise<Map<string, string>> {
    const oldest = this.now().getTime() - EVENT_HISTORY_DAYS * DAY_MS;
    const start = new Date(Math.max(since.getTime(), oldest));
    const out = new Map<string, string>();
    if (start.getTime() >= until.getTime()) return out;

    let nextToken: string | undefined;
    do {
      await this.pace();
      const res = await this.client.send(
        new LookupEventsCommand({
          LookupAttributes: [
            { AttributeKey: 'EventName', AttributeValue: 'CreateServiceSpecificCredential' },
          ],
          StartTime: start,
          EndTime: until,
          MaxResults: PAGE_SIZE,
          NextToken: nextToken,
        }),
      );
      for (const e of res.Events ?? []) {
        const found = creationOf(e.CloudTrailEvent, accountId);
        // Ids are unique; should history ever show one twice, the first (newest) answer stands.
        if (found && !out.has(found.keyId)) out.set(found.keyId, found.creator);
      }
      nextToken = res.NextToken;
    } while (nextToken);
    return out;
  }

  /** Resolves when the caller may make its call: at most one call per `minIntervalMs`, in arrival order. */
  private pace(): Promise<void> {
    const mine = this.turn.then(async () => {
      const now = this.now().getTime();
      const earliest = this.lastCallAt === null ? now : this.lastCallAt + this.minIntervalMs;
      if (earliest > now) await this.sleep(earliest - now);
      this.lastCallAt = Math.max(now, earliest);
    });
    // A failed wait must not block later callers.
    this.turn = mine.catch(() => undefined);
    return mine;
  }
}

/** The key id and creator of one history event, when it is a successful creation of a Bedrock key here. */
function creationOf(raw: string | undefined, accountId: string): { keyId: string; creator: string } | null {
  if (!raw) return null;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = CloudTrailRecordSchema.safeParse(json);
  if (!parsed.success) return null;
  let c: ReturnType<typeof classifyRecord>;
  try {
    c = classifyRecord(parsed.data, { envelopeAccount: accountId });
  } catch (err) {
    // A creation record without the fields that identify the key names no key to attribute.
    if (err instanceof EventShapeError) return null;
    throw err;
  }
  if (!c.relevant || c.event.kind !== 'credential' || c.event.action !== 'Create') return null;
  if (c.event.meta.accountId !== accountId || !c.event.meta.actor) return null;
  return { keyId: c.event.keyId, creator: c.event.meta.actor };
}
