import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { DynamoAuditLog } from '../adapters/audit-store';
import { documentClient } from '../adapters/document-client';
import { IamEnforcer, IamKeyDirectory } from '../adapters/iam';
import {
  AccountSnapshot,
  listBedrockKeysPage,
  SnapshotKeyDirectory,
  type SnapshotOptions,
} from '../adapters/iam-inventory';
import { SnsNotifier } from '../adapters/notifier';
import {
  carriedCoverage,
  claimPendingNotice,
  DynamoSweepStateStore,
  failureReason,
  pendingNotices,
  type SweepCounters,
  SweepLeaseLostError,
  type SweepState,
  unseenKnownKeysPage,
  ZERO_COUNTERS,
} from '../adapters/sweep-state';
import { DAY_MS, HOUR_MS } from '../domain/dates';
import {
  buildAccountSummary,
  buildOwnerDigest,
  digestIdFor,
  NEXT_DIGEST,
  worstFirst,
} from '../domain/owner-digest';
import {
  type ApprovalSource,
  decideKey,
  decisionIdFor,
  type KeyMetadata,
  type KeyStep,
  type KeyStepResult,
  type PipelineDeps,
} from '../domain/pipeline';
import type { Decision } from '../domain/types';
import type { KeyUsage, UsageSource } from '../domain/usage-types';
import type { Policy } from '../shared/config';
import * as z from '../shared/zod';

/**
 * The inventory sweep (flow 2): every Bedrock key of the governed account, page by page, through the same
 * per-key pipeline as the credential events, then every key on record that IAM no longer has. One sweep may
 * span several invocations: its state (marker, phase, counters) and lease live in the SweepState table, the
 * marker is saved after each fully processed page, and an invocation that runs low on time saves, releases the
 * lease and returns; the next scheduled invocation continues from the marker. A page redone after a failure
 * is harmless: every decision of a sweep has the same id per key, so the pipeline finds it on record.
 */

/**
 * Who created a key, for keys with no known creator (CloudTrail LookupEvents of
 * CreateServiceSpecificCredential). The shape of `CloudTrailCreatorLookup`.
 */
export interface CreatorSource {
  creators(accountId: string, since: Date, until: Date): Promise<Map<string, string>>;
}

export interface SweepRuntime {
  config: Policy;
  policyVersion: string;
  decisionsTable: string;
  keysTable: string;
  sweepStateTable: string;
  topicArn: string;
  /** The only account this function sweeps. */
  governedAccountId: string;
  iam: IAMClient;
  dynamo: DynamoDBClient;
  sns: SNSClient;
  logger: Logger;
  metrics: Metrics;
  /**
   * Creator attribution for keys with no known creator: one look-up per invocation, over the CloudTrail event
   * history since the previous sweep (90 days on the first).
   * @default none: such keys keep owner source `tag` or `fallback`
   */
  creators?: CreatorSource;
  /** Approvals and reviews the evaluation honours. @default none */
  approvals?: ApprovalSource;
  /**
   * Last use per key, for UNUSED. Asked only when `config.usage.regions` is non-empty: with no region tracked
   * no use is ever recorded, so every key would look unused. Per invocation: one read of the tracking start
   * (the account's first recorded use, set by the key-usage function, never by the sweep: while no use has
   * ever been recorded, "unused" cannot be told from "not tracked", so UNUSED is not evaluated and a warning
   * with the `UsageNeverRecorded` metric says so), and, unless `maxIdleDays` is null, one last-use read per
   * page of keys (only the page's Active keys: no other key can be UNUSED). A failed read fails the sweep:
   * deciding without usage would drop UNUSED and send a false "resolved" notice.
   * @default none: UNUSED is not evaluated
   */
  usage?: UsageSource;
  /** Stop taking new pages when less than this much time is left. @default 90 s */
  safetyMarginMs?: number;
  /** A lease whose heartbeat is older than this may be taken over. @default 20 min */
  staleAfterMs?: number;
  /** Keys of a page evaluated at the same time. @default 8 */
  concurrency?: number;
  /** Gone-phase candidates read from the keys table per query page. @default 500 */
  gonePageSize?: number;
  snapshot?: SnapshotOptions;
  now?: () => Date;
  newSweepId?: (startedAt: Date) => string;
}

/** What the sweep needs besides the account it sweeps (see {@link SweepTarget}). */
export type SweeperRuntime = Omit<SweepRuntime, 'governedAccountId' | 'iam' | 'policyVersion' | 'creators'>;

/**
 * The account one sweep works on: its id, the IAM client that reads (and deactivates) in it (the function's own
 * for its account, the member role's in organization mode), and the policy it is decided with.
 */
export interface SweepTarget {
  accountId: string;
  /** The client, or how to get it (called once the lease is held: a failure is recorded on the coverage). */
  iam: IAMClient | (() => Promise<IAMClient>);
  config: Policy;
  policyVersion: string;
  /** Creator attribution (CloudTrail event history of this account). @default none */
  creators?: CreatorSource;
}

/**
 * A sweep request: the scheduled input, plus, from the organization sweep queue, the time the round was scheduled
 * (`round`, ISO): an account whose last sweep finished and started at or after it is not swept again (a message
 * delivered twice, or a round the scheduler sent twice, sweeps once).
 */
export type SweepRequest = SweepEvent & { round?: string };

export class InvalidSweepEventError extends Error {
  constructor(detail: string) {
    super(`sweep input is not {} or {"continue": true, "sweepId"?: "..."}: ${detail}`);
    this.name = 'InvalidSweepEventError';
  }
}

/** What EventBridge Scheduler sends: `{}` (start or continue) or `{"continue": true}` (continue only). */
export const SweepEventSchema = z.strictObject({
  sweepId: z.optional(z.string().check(z.minLength(1), z.maxLength(200))),
  continue: z.optional(z.boolean()),
});
export type SweepEvent = z.infer<typeof SweepEventSchema>;

export type SweepResult = {
  /** done: the sweep finished; paused: time ran short, state saved; locked: another invocation holds the
   * sweep; idle: a continue-only invocation found nothing to continue. */
  status: 'done' | 'paused' | 'locked' | 'idle';
  sweepId: string | null;
  phase: SweepState['phase'] | null;
  /** Totals of the whole sweep so far. */
  counters: SweepCounters;
  /** What this invocation added. */
  invocation: SweepCounters;
};

/** CloudTrail's event history covers 90 days. */
const CLOUDTRAIL_HISTORY_MS = 90 * DAY_MS;
/** CloudTrail can take minutes to show an event; the creator window overlaps the previous sweep by this much. */
const CREATOR_WINDOW_OVERLAP_MS = HOUR_MS;

function add(a: SweepCounters, b: SweepCounters): SweepCounters {
  return {
    keysSeen: a.keysSeen + b.keysSeen,
    decisionsRecorded: a.decisionsRecorded + b.decisionsRecorded,
    noticesSent: a.noticesSent + b.noticesSent,
    keysDeactivated: a.keysDeactivated + b.keysDeactivated,
    keysGone: a.keysGone + b.keysGone,
    messagesSent: (a.messagesSent ?? 0) + (b.messagesSent ?? 0),
  };
}

/**
 * Decisions read per owner digest: an entry takes 0.5 to 2 KB, so more than fit one SNS message. Keys beyond it are
 * counted in the digest's "… and N more keys" (their notices are recorded on their decisions all the same).
 */
const DIGEST_DECISIONS_MAX = 500;

function defaultSweepId(startedAt: Date): string {
  return `sweep-${startedAt.toISOString().replace(/[-:.]/g, '')}-${randomUUID().slice(0, 8)}`;
}

/** Runs `work` over `items` with at most `limit` at once; the first failure stops new work and is thrown. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async () => {
    while (failure === null && next < items.length) {
      const item = items[next] as T;
      next += 1;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw (failure as { error: unknown }).error;
}

/** Parses a scheduled sweep input; throws InvalidSweepEventError naming the field. */
export function parseSweepEvent(raw: unknown): SweepEvent {
  const parsed = SweepEventSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new InvalidSweepEventError(detail);
  }
  return parsed.data;
}

export function createAccountSweeper(rt: SweeperRuntime) {
  const { logger, metrics } = rt;
  const doc = documentClient(rt.dynamo);
  const store = new DynamoSweepStateStore(doc, rt.sweepStateTable);
  const audit = new DynamoAuditLog(doc, { decisionsTable: rt.decisionsTable, keysTable: rt.keysTable });
  const clock = rt.now ?? (() => new Date());
  const margin = rt.safetyMarginMs ?? 90_000;
  const staleAfter = rt.staleAfterMs ?? 20 * 60_000;
  const concurrency = rt.concurrency ?? 8;
  const newSweepId = rt.newSweepId ?? defaultSweepId;
  if (rt.config.usage.regions.length > 0 && !rt.usage) {
    // Not fatal: every other rule still needs the sweep. Loud, because the policy asks for UNUSED.
    logger.warn('usage.regions is set but the sweep has no usage table: UNUSED is not evaluated', {
      regions: rt.config.usage.regions,
    });
  }

  return async function sweepAccount(
    input: SweepRequest,
    target: SweepTarget,
    context: Context,
  ): Promise<SweepResult> {
    const account = target.accountId;
    const config = target.config;
    // A member role is assumed once the lease is held, so that its failure is recorded on the account's coverage.
    let iamClient: IAMClient | null = typeof target.iam === 'function' ? null : target.iam;
    const iamNow = (): IAMClient => {
      if (!iamClient) throw new Error(`the IAM client of account ${account} was used before it was resolved`);
      return iamClient;
    };
    const live = new IamKeyDirectory(iamNow);
    // The enforcer re-checks a key live right before deactivating it (never from the page or the snapshot).
    const enforcer = new IamEnforcer(iamNow, live);
    const notifier = new SnsNotifier(rt.sns, rt.topicArn, config);
    /** Per invocation: the snapshot, the directory and the deps, loaded when a key first needs them. */
    interface Session {
      deps: PipelineDeps;
      directory: SnapshotKeyDirectory;
      snapshot: AccountSnapshot;
    }

    async function openSession(): Promise<Session> {
      const t0 = Date.now();
      const snapshot = await AccountSnapshot.load(iamNow(), account, rt.snapshot);
      logger.info('IAM snapshot loaded', {
        users: snapshot.userCount,
        credentialReportGeneratedAt: snapshot.credentialReportGeneratedAt,
        calls: snapshot.calls,
        ms: Date.now() - t0,
      });
      const directory = new SnapshotKeyDirectory(snapshot, live);
      const deps: PipelineDeps = {
        directory,
        audit,
        enforcer,
        notifier,
        facts: snapshot,
        ...(rt.approvals ? { approvals: rt.approvals } : {}),
      };
      return { deps, directory, snapshot };
    }

    /** Decides one key and returns what it adds to the counters. */
    async function decideOne(
      state: SweepState,
      deps: PipelineDeps,
      now: Date,
      key: { keyId: string; userName: string },
      meta: KeyMetadata | null,
      creator: string | null,
      usage: KeyUsage | null,
    ): Promise<SweepCounters> {
      const step: KeyStep = {
        accountId: account,
        keyId: key.keyId,
        userName: key.userName,
        meta,
        trigger: { kind: 'sweep', eventId: state.sweepId, eventTime: state.startedAt },
        decisionId: decisionIdFor('sweep', state.startedAt, state.sweepId),
        record: 'on-change',
        sweepId: state.sweepId,
        creator,
        usage,
        // Notices go in the owners' digests (or the first sweep's summary), sent when the sweep's keys are done.
        digest: digestIdFor(state.sweepId, state.firstSweep === true),
      };
      const r: KeyStepResult | null = await decideKey(step, deps, {
        config: config,
        policyVersion: target.policyVersion,
        now,
      });
      const counted = { ...ZERO_COUNTERS, keysSeen: meta ? 1 : 0 };
      if (!r) return counted;
      // `duplicate` here can only be this sweep's own decision (the id is per sweep and key): a page redone after
      // a failure. Its counters were never saved, so it is counted now, once.
      const ours = r.recorded || r.duplicate;
      if (!ours) return counted;
      const d = r.decision;
      logger.info('decision recorded', {
        decisionId: d.decisionId,
        keyId: d.keyId,
        userName: d.userName,
        status: d.status,
        action: d.action,
        applied: d.applied,
        violations: d.violations.map((v) => v.code),
        notice: d.notice ?? null,
        duplicate: r.duplicate,
      });
      return {
        keysSeen: counted.keysSeen,
        decisionsRecorded: 1,
        noticesSent: d.notice ? 1 : 0,
        keysDeactivated: d.applied ? 1 : 0,
        keysGone: !meta && d.status === 'Deleted' ? 1 : 0,
        // Only a critical event's notice is published now; the others wait for the digest phase.
        messagesSent: d.notice && !d.noticeDigest ? 1 : 0,
      };
    }

    async function run(acquired: SweepState, holder: string, context: Context): Promise<SweepResult> {
      let saved = acquired;
      let state = acquired;
      let delta: SweepCounters = { ...ZERO_COUNTERS };
      let opening: Promise<Session> | null = null;
      const session = () => {
        opening ??= openSession();
        return opening;
      };
      let creators: Map<string, string> | null = null;
      const decisionId = decisionIdFor('sweep', state.startedAt, state.sweepId);
      const lowOnTime = () => context.getRemainingTimeInMillis() < margin;
      const result = (status: SweepResult['status']): SweepResult => ({
        status,
        sweepId: state.sweepId,
        phase: state.phase,
        counters: state.counters,
        invocation: delta,
      });
      const commit = async (next: SweepState, page: SweepCounters) => {
        const s: SweepState = {
          ...next,
          counters: add(next.counters, page),
          heartbeatAt: clock().toISOString(),
        };
        if (s.phase === 'done') {
          s.lastCompletedAt = s.finishedAt;
          s.lastCompletedSweepId = s.sweepId;
          await store.release(s, holder);
        } else await store.save(s, holder);
        saved = s;
        state = s;
        delta = add(delta, page);
      };

      /** One creator look-up per invocation, over the history since the previous sweep (bounded by 90 days). */
      const creatorsSince = (now: Date): Date => {
        const floor = now.getTime() - CLOUDTRAIL_HISTORY_MS;
        const since = state.previousStartedAt
          ? Date.parse(state.previousStartedAt) - CREATOR_WINDOW_OVERLAP_MS
          : floor;
        return new Date(Math.max(floor, since));
      };
      const creatorsFor = async (keys: readonly KeyMetadata[], now: Date): Promise<Map<string, string>> => {
        const source = target.creators;
        if (!source) return new Map();
        if (creators) return creators;
        const since = creatorsSince(now);
        // Keys older than the window cannot be attributed from CloudTrail: look up only when the page has newer ones.
        const needed = keys.some((k) => k.createdAt === null || Date.parse(k.createdAt) >= since.getTime());
        if (!needed) return new Map();
        const found = await source.creators(account, since, now);
        creators = found;
        logger.info('creators looked up', { since: since.toISOString(), found: found.size });
        return found;
      };

      /**
       * Usage of the given keys (null: usage not tracked, no use ever recorded, or UNUSED off); at most one
       * last-use read per call, and one tracking-start read per invocation.
       */
      let tracking: { since: string | null } | null = null;
      const usageFor = async (
        keys: ReadonlyArray<{ keyId: string; userName: string; status: KeyMetadata['status'] }>,
      ): Promise<Map<string, KeyUsage> | null> => {
        if (!rt.usage || config.usage.regions.length === 0) return null;
        if (tracking === null) {
          tracking = { since: await rt.usage.trackingSince(account) };
          if (tracking.since === null) {
            // Events may not be arriving (trail without read-only management events, rule not receiving them):
            // calling every key unused would deactivate the wrong keys. Loud, because the policy asks for UNUSED.
            logger.warn('no Bedrock API key use was ever recorded for the account: UNUSED is not evaluated', {
              regions: config.usage.regions,
            });
            metrics.addMetric('UsageNeverRecorded', MetricUnit.Count, 1);
          } else {
            logger.info('usage tracked', { trackingSince: tracking.since, regions: config.usage.regions });
          }
        }
        const since = tracking.since;
        if (since === null) return null;
        const active = keys.filter((k) => k.status === 'Active');
        if (config.maxIdleDays === null || active.length === 0) return null;
        const last = await rt.usage.lastUsedFor(
          account,
          active.map((k) => ({ keyId: k.keyId, userName: k.userName })),
        );
        return new Map(
          active.map((k) => [k.keyId, { lastUsedAt: last.get(k.keyId) ?? null, trackingSince: since }]),
        );
      };

      try {
        if (!iamClient && typeof target.iam === 'function') iamClient = await target.iam();
        while (state.phase === 'keys') {
          if (lowOnTime()) return await pause();
          const s = await session();
          const page = await listBedrockKeysPage(iamNow(), state.marker);
          const now = clock();
          s.directory.usePage(page.keys);
          const found = await creatorsFor(page.keys, now);
          const usage = await usageFor(page.keys);
          let counted = { ...ZERO_COUNTERS };
          await pool(page.keys, concurrency, async (meta) => {
            const creator = found.get(meta.keyId) ?? null;
            const c = await decideOne(
              state,
              s.deps,
              now,
              meta,
              meta,
              creator,
              usage?.get(meta.keyId) ?? null,
            );
            counted = add(counted, c);
          });
          await commit(
            {
              ...state,
              marker: page.nextMarker,
              phase: page.nextMarker ? 'keys' : 'gone',
              pages: state.pages + 1,
            },
            counted,
          );
          logger.info('page swept', {
            sweepId: state.sweepId,
            pages: state.pages,
            keys: page.keys.length,
            counted,
          });
        }

        while (state.phase === 'gone') {
          if (lowOnTime()) return await pause();
          const page = await unseenKnownKeysPage(
            doc,
            rt.keysTable,
            account,
            state.sweepId,
            decisionId,
            state.goneCursor,
            rt.gonePageSize,
          );
          const now = clock();
          // Not listed by this sweep: IAM may still have it (created or re-listed while pages were read), so ask
          // IAM for it once more before recording it as deleted.
          const metas = new Map<string, KeyMetadata | null>();
          await pool(page.keys, concurrency, async (key) => {
            metas.set(key.keyId, await live.getKey(account, key.userName, key.keyId));
          });
          // A key IAM still has keeps its usage, so it keeps UNUSED (no false "resolved" notice).
          const usage = await usageFor([...metas.values()].filter((m): m is KeyMetadata => m !== null));
          let counted = { ...ZERO_COUNTERS };
          await pool(page.keys, concurrency, async (key) => {
            const meta = metas.get(key.keyId) ?? null;
            const deps: PipelineDeps = meta
              ? (await session()).deps
              : {
                  directory: live,
                  audit,
                  enforcer,
                  notifier,
                  ...(rt.approvals ? { approvals: rt.approvals } : {}),
                };
            const c = await decideOne(state, deps, now, key, meta, null, usage?.get(key.keyId) ?? null);
            counted = add(counted, c);
          });
          await commit(
            { ...state, goneCursor: page.nextCursor, phase: page.nextCursor ? 'gone' : 'digest' },
            counted,
          );
        }

        while (state.phase === 'digest') {
          if (lowOnTime()) return await pause();
          if (await sendDigests()) return await pause();
        }
        logger.info('sweep finished', {
          sweepId: state.sweepId,
          startedAt: state.startedAt,
          finishedAt: state.finishedAt,
          pages: state.pages,
          invocations: state.invocations,
          counters: state.counters,
          invocation: delta,
        });
        return result('done');
      } catch (err) {
        logger.error(
          'sweep failed; progress up to the last saved page is kept, and the next invocation resumes',
          {
            sweepId: state.sweepId,
            phase: saved.phase,
            pages: saved.pages,
            error: err as Error,
          },
        );
        if (!(err instanceof SweepLeaseLostError)) {
          try {
            // The coverage record keeps why this attempt failed (the saved progress is kept as it was).
            const failure = { at: clock().toISOString(), sweepId: saved.sweepId, reason: failureReason(err) };
            await store.release({ ...saved, lastFailure: failure }, holder);
          } catch (releaseErr) {
            logger.error('could not release the sweep lease; it becomes stale and is taken over', {
              error: releaseErr as Error,
            });
          }
        }
        throw err;
      } finally {
        publish(delta);
      }

      /**
       * The digest phase: the notices this sweep left pending, one message per owner in owner order (the cursor
       * saved after each, so a resumed or retried phase sends each owner's digest once, or again only if it failed
       * between the publish and the save), or, on the account's first sweep, one summary to the fallback owner.
       * Returns true when time ran short before every owner was sent.
       */
      async function sendDigests(): Promise<boolean> {
        const digestId = digestIdFor(state.sweepId, state.firstSweep === true);
        await claimWaiting(digestId);
        const pending = await pendingNotices(doc, rt.keysTable, account, digestId);
        const finished = () => ({ ...state, phase: 'done' as const, finishedAt: clock().toISOString() });
        if (state.firstSweep) {
          const summary = buildAccountSummary({
            accountId: account,
            digestId,
            config,
            keysSeen: state.counters.keysSeen,
            keys: pending.map((k) => ({
              keyId: k.keyId,
              userName: k.userName,
              owner: k.pending.owner,
              codes: k.codes,
              kind: k.pending.kind,
              severity: k.pending.severity,
              deadline: k.pending.deadline,
              action: k.pending.action,
            })),
          });
          if (pending.length > 0) await notifier.publish(summary.notice);
          logger.info('first-deployment summary sent', {
            digestId,
            keys: pending.length,
            listed: summary.listed,
            sent: pending.length > 0,
          });
          await commit(finished(), { ...ZERO_COUNTERS, messagesSent: pending.length > 0 ? 1 : 0 });
          return false;
        }
        const byOwner = new Map<string, typeof pending>();
        for (const k of pending) byOwner.set(k.pending.owner, [...(byOwner.get(k.pending.owner) ?? []), k]);
        const cursor = state.digestCursor ?? null;
        const owners = [...byOwner.keys()].sort().filter((o) => cursor === null || o > cursor);
        for (const owner of owners) {
          if (lowOnTime()) return true;
          const keys = (byOwner.get(owner) ?? []).sort((a, b) =>
            worstFirst({ ...a.pending, keyId: a.keyId }, { ...b.pending, keyId: b.keyId }),
          );
          const loaded = keys.slice(0, DIGEST_DECISIONS_MAX);
          const decisions: Decision[] = [];
          await pool(loaded, concurrency, async (k) => {
            const d = await audit.getDecision(account, k.keyId, k.pending.decisionId);
            if (d) decisions.push(d);
          });
          const digest = buildOwnerDigest({
            owner,
            accountId: account,
            digestId,
            decisions,
            notLoaded: keys.length - decisions.length,
            config,
          });
          await notifier.publish(digest.notice);
          logger.info('owner digest sent', {
            digestId,
            owner,
            keys: keys.length,
            listed: digest.listed,
            omitted: digest.omitted,
          });
          await commit({ ...state, digestCursor: owner }, { ...ZERO_COUNTERS, messagesSent: 1 });
        }
        await commit(finished(), { ...ZERO_COUNTERS });
        return false;
      }

      /**
       * The notices of events and usage alerts that wait for the owner's next digest (NEXT_DIGEST) join this sweep's
       * digest, claimed before its first message (the owner cursor still unset; a resumed phase claims again, which
       * is idempotent): each is claimed while it is still the key's waiting notice, so it is listed in exactly one
       * digest. Once an owner's digest is sent, a notice marked later waits for the next sweep's.
       */
      async function claimWaiting(digestId: string): Promise<void> {
        if (state.digestCursor) return;
        const waiting = await pendingNotices(doc, rt.keysTable, account, NEXT_DIGEST);
        let claimed = 0;
        await pool(waiting, concurrency, async (k) => {
          if (
            await claimPendingNotice(
              doc,
              rt.keysTable,
              { accountId: account, keyId: k.keyId },
              k.pending,
              digestId,
            )
          )
            claimed++;
        });
        if (waiting.length > 0) logger.info('waiting notices claimed for the digest', { digestId, claimed });
      }

      async function pause(): Promise<SweepResult> {
        await store.release(saved, holder);
        state = { ...saved, holder: null };
        logger.info('sweep paused: low on time; the next invocation continues from the saved marker', {
          sweepId: state.sweepId,
          phase: state.phase,
          pages: state.pages,
          remainingMs: context.getRemainingTimeInMillis(),
          counters: state.counters,
          invocation: delta,
        });
        return result('paused');
      }
    }

    function publish(delta: SweepCounters): void {
      metrics.addMetric('KeysSwept', MetricUnit.Count, delta.keysSeen);
      metrics.addMetric('DecisionsRecorded', MetricUnit.Count, delta.decisionsRecorded);
      metrics.addMetric('NoticesSent', MetricUnit.Count, delta.noticesSent);
      metrics.addMetric('KeysDeactivated', MetricUnit.Count, delta.keysDeactivated);
      metrics.addMetric('KeysGone', MetricUnit.Count, delta.keysGone);
      metrics.addMetric('MessagesSent', MetricUnit.Count, delta.messagesSent ?? 0);
    }

    const holder = context.awsRequestId;
    const now = clock();
    const current = await store.get(account);
    const unfinished = current !== null && current.phase !== 'done';
    if (
      input.continue &&
      (!unfinished || (input.sweepId !== undefined && current.sweepId !== input.sweepId))
    ) {
      logger.info('nothing to continue', {
        requested: input.sweepId ?? null,
        current: current?.sweepId ?? null,
      });
      return {
        status: 'idle',
        sweepId: current?.sweepId ?? null,
        phase: current?.phase ?? null,
        counters: current?.counters ?? { ...ZERO_COUNTERS },
        invocation: { ...ZERO_COUNTERS },
      };
    }
    if (input.round && current?.phase === 'done' && current.startedAt >= input.round) {
      logger.info('account already swept this round', {
        round: input.round,
        sweepId: current.sweepId,
        startedAt: current.startedAt,
      });
      return {
        status: 'idle',
        sweepId: current.sweepId,
        phase: current.phase,
        counters: current.counters,
        invocation: { ...ZERO_COUNTERS },
      };
    }
    const next: SweepState = unfinished
      ? { ...current, holder, heartbeatAt: now.toISOString(), invocations: current.invocations + 1 }
      : {
          accountId: account,
          sweepId: newSweepId(now),
          startedAt: now.toISOString(),
          phase: 'keys',
          marker: null,
          goneCursor: null,
          counters: { ...ZERO_COUNTERS },
          pages: 0,
          invocations: 1,
          heartbeatAt: now.toISOString(),
          holder,
          finishedAt: null,
          previousStartedAt: current?.startedAt ?? null,
          // The account was never swept (no state item: it is written when the first sweep starts and kept, and an
          // unfinished sweep is always continued, never restarted): a first deployment, or an account newly
          // governed, gets one summary. An item from a version without coverage fields still counts as swept.
          firstSweep: current === null,
          digestCursor: null,
          ...carriedCoverage(current),
        };
    const staleBefore = new Date(now.getTime() - staleAfter).toISOString();
    if (!(await store.acquire(next, current, staleBefore))) {
      const busy = {
        sweepId: current?.sweepId ?? null,
        holder: current?.holder ?? null,
        heartbeatAt: current?.heartbeatAt ?? null,
      };
      // Routine for the continuation tick while a long sweep runs; worth a warning for a scheduled start.
      if (input.continue)
        logger.info('another invocation is running this sweep; this one does nothing', busy);
      else logger.warn('another invocation is running this sweep; this one does nothing', busy);
      metrics.addMetric('SweepLocked', MetricUnit.Count, 1);
      return {
        status: 'locked',
        sweepId: current?.sweepId ?? null,
        phase: current?.phase ?? null,
        counters: current?.counters ?? { ...ZERO_COUNTERS },
        invocation: { ...ZERO_COUNTERS },
      };
    }
    if (unfinished && current.holder && current.holder !== holder) {
      logger.warn('took over a sweep whose holder stopped sending heartbeats', {
        sweepId: current.sweepId,
        previousHolder: current.holder,
        heartbeatAt: current.heartbeatAt,
      });
    }
    logger.appendKeys({ sweepId: next.sweepId });
    logger.info(unfinished ? 'sweep continued' : 'sweep started', {
      startedAt: next.startedAt,
      phase: next.phase,
      pages: next.pages,
      invocations: next.invocations,
    });
    return await run(next, holder, context);
  };
}

/** The single-account sweep: the function's own account, with its own IAM client and the base policy. */
export function createSweepHandler(rt: SweepRuntime) {
  const sweep = createAccountSweeper(rt);
  const target: SweepTarget = {
    accountId: rt.governedAccountId,
    iam: rt.iam,
    config: rt.config,
    policyVersion: rt.policyVersion,
    ...(rt.creators ? { creators: rt.creators } : {}),
  };
  return async function handler(event: unknown, context: Context): Promise<SweepResult> {
    try {
      return await sweep(parseSweepEvent(event), target, context);
    } finally {
      rt.logger.resetKeys();
      rt.metrics.publishStoredMetrics();
    }
  };
}
