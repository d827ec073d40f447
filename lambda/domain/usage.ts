import { boundString } from '../shared/bounded';
import { redactSecrets } from '../shared/redact';
import { accountOf, type CloudTrailRecord, implausibleTime, type RecordContext } from './cloudtrail';
import { parseAwsDate } from './dates';
import type { KeyMetadata } from './pipeline';
import type { KeyType } from './types';
import type { BearerUse, UsageAggregate, UseSubject } from './usage-types';

/**
 * Flow 3 (key usage), pure: which CloudTrail records are Bedrock calls made with an API key, whose key it was,
 * and the per-batch aggregate the usage store keeps (one write per subject, never one per call).
 *
 * Record shapes (see docs/bedrock-api-keys.md):
 * - bedrock-runtime calls are management events (`eventSource bedrock.amazonaws.com`) with
 *   `additionalEventData.callWithBearerToken: true` and the model in `requestParameters.modelId`;
 * - bedrock-mantle calls are data events (`eventSource bedrock-mantle.amazonaws.com`) with
 *   `requestParameters.callWithBearerToken` and `requestParameters.bearerTokenType` ("ABSK" documented,
 *   LONG_TERM/SHORT_TERM in IAM conditions).
 * Where each field sits is not settled by AWS, so both places (additionalEventData, requestParameters) and both
 * forms of the flag (boolean, string) are accepted. Any event name counts: a bearer-token call of any Bedrock
 * API is a use of the key. Only metadata is read; CloudTrail never logs the key itself.
 */

export const BEDROCK_SOURCES = ['bedrock.amazonaws.com', 'bedrock-mantle.amazonaws.com'] as const;

/**
 * The EventBridge `source` of Bedrock's CloudTrail events (mantle's is unverified: both are accepted, see the
 * usage forwarding rules). Only AWS services can put events whose source starts with `aws.` (PutEvents refuses
 * it), so an event with another source on the governance bus was written by someone, not recorded by CloudTrail.
 */
export const BEDROCK_EVENT_SOURCES = ['aws.bedrock', 'aws.bedrock-mantle'] as const;

/** Whether an EventBridge event comes from Bedrock itself (not from a custom rule or PutEvents). */
export function isBedrockEventSource(source: string): boolean {
  return (BEDROCK_EVENT_SOURCES as readonly string[]).includes(source);
}

export type UsageIgnoreReason =
  /** Not a Bedrock (runtime or mantle) event. */
  | 'not-bedrock'
  /** A Bedrock call signed with SigV4 (no bearer token): not an API key use. */
  | 'not-bearer-token'
  /** No account, region, time or identity to attribute the call to. */
  | 'incomplete-record'
  /** recipientAccountId and the envelope's account disagree (accountOf). */
  | 'account-mismatch'
  /** Dated implausibly far in the future: it would move the key's last use there for ever. */
  | 'future-event';

export interface UsageClassification {
  use: BearerUse | null;
  ignored: UsageIgnoreReason | null;
  /** A `bearerTokenType` value that is none of LONG_TERM, SHORT_TERM, ABSK (the type is then decided from the identity). */
  unknownTokenType: string | null;
  /** Why the record was ignored, for a person, when the reason alone does not say. */
  detail?: string;
}

function obj(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

/** true, "true" (any case) → true; false, "false" → false; anything else (absent) → null. */
function flag(v: unknown): boolean | null {
  if (v === true || (typeof v === 'string' && v.toLowerCase() === 'true')) return true;
  if (v === false || (typeof v === 'string' && v.toLowerCase() === 'false')) return false;
  return null;
}

/**
 * Identities become the usage table's sort key (`principal#<arn>`, at most 1024 bytes) and names are stored in
 * sets: longer values are cut with their hash (shared/bounded.ts), so distinct values stay distinct. Real ARNs and
 * model ids are far shorter.
 */
const IDENTITY_MAX_BYTES = 512;
const NAME_MAX_BYTES = 256;

function bounded(v: unknown, maxBytes: number): string | null {
  const s = str(v);
  return s === null ? null : boundString(s, maxBytes);
}

/** Caller-controlled text is stored and shown: bounded, with anything key-shaped redacted. */
const CALLER_TEXT_MAX = 512;

function callerText(v: unknown): string | null {
  const s = str(v);
  return s === null ? null : redactSecrets(s).slice(0, CALLER_TEXT_MAX);
}

/** ABSK (the documented mantle value: the long-term key's prefix) is LONG_TERM. */
export function tokenTypeOf(value: string): KeyType | null {
  const v = value.trim().toUpperCase();
  if (v === 'LONG_TERM' || v === 'ABSK') return 'LONG_TERM';
  if (v === 'SHORT_TERM') return 'SHORT_TERM';
  return null;
}

/** Classifies a record and says why it was ignored (for logs and metrics). */
export function describeUsage(record: CloudTrailRecord, context: RecordContext = {}): UsageClassification {
  const none = (
    ignored: UsageIgnoreReason,
    unknownTokenType: string | null = null,
    detail?: string,
  ): UsageClassification => ({
    use: null,
    ignored,
    unknownTokenType,
    ...(detail ? { detail } : {}),
  });
  const source = record.eventSource;
  if (source !== 'bedrock.amazonaws.com' && source !== 'bedrock-mantle.amazonaws.com')
    return none('not-bedrock');

  const extra = obj(record.additionalEventData) ?? {};
  const req = obj(record.requestParameters) ?? {};
  const bearerFlag = flag(extra.callWithBearerToken) ?? flag(req.callWithBearerToken);
  const rawType = str(extra.bearerTokenType) ?? str(req.bearerTokenType);
  const declaredKeyType = rawType ? tokenTypeOf(rawType) : null;
  const unknownTokenType = rawType && !declaredKeyType ? rawType : null;
  // An explicit false is a SigV4 call; an absent flag with a known token type is still a bearer-token call.
  const bearer = bearerFlag ?? (declaredKeyType !== null ? true : null);
  if (bearer !== true) return none('not-bearer-token', unknownTokenType);

  const id = obj(record.userIdentity) ?? {};
  const account = accountOf(record, context.envelopeAccount ?? null);
  if (account.problem === 'account-mismatch')
    return none('account-mismatch', unknownTokenType, account.detail);
  const accountId = account.accountId;
  const region = str(record.awsRegion);
  let eventTime: string;
  try {
    eventTime = parseAwsDate(record.eventTime);
  } catch {
    return none('incomplete-record', unknownTokenType);
  }
  const type = str(id.type);
  if (!accountId || !region || !type) return none('incomplete-record', unknownTokenType);
  const future = implausibleTime(eventTime, context.notAfter);
  if (future) return none('future-event', unknownTokenType, future);
  const issuer = obj(obj(obj(id.sessionContext)?.sessionIssuer));

  return {
    use: {
      accountId,
      region: boundString(region, NAME_MAX_BYTES),
      eventSource: source,
      eventName: record.eventName,
      eventId: record.eventID,
      // Normalised to toISOString(): times are compared as strings (in memory and in the usage store).
      eventTime,
      declaredKeyType,
      principal: {
        type: bounded(type, NAME_MAX_BYTES) as string,
        arn: bounded(id.arn, IDENTITY_MAX_BYTES),
        userName: type === 'IAMUser' ? bounded(id.userName, IDENTITY_MAX_BYTES) : null,
        sessionIssuerArn: bounded(issuer?.arn, IDENTITY_MAX_BYTES),
        accessKeyId: bounded(id.accessKeyId, NAME_MAX_BYTES),
      },
      // Runtime APIs name the model `modelId`; the OpenAI-compatible mantle API names it `model`.
      modelId: bounded(str(req.modelId) ?? str(req.model), NAME_MAX_BYTES),
      sourceIp: callerText(record.sourceIPAddress),
      userAgent: callerText(record.userAgent),
      errorCode: str(record.errorCode),
    },
    ignored: null,
    unknownTokenType,
  };
}

/** The bearer-token use a record shows, or null (SigV4 calls, other services, incomplete records). */
export function classifyUsage(record: CloudTrailRecord, context: RecordContext = {}): BearerUse | null {
  return describeUsage(record, context).use;
}

/** Whose key a use was, and of which kind. */
export interface Attribution {
  subject: UseSubject;
  keyType: KeyType;
}

/**
 * Attributes a use. The declared token type wins; without one, an IAM user holding Bedrock keys means a
 * long-term key (a user that also mints short-term keys from its own access keys is counted as long-term: the
 * record cannot tell them apart), an IAM user without Bedrock keys minted a short-term key, and any session
 * (assumed role, federated user) minted a short-term key.
 *
 * A long-term use is the key's when the user has exactly one Active Bedrock key (or exactly one key); otherwise
 * it is the user's, unattributed, and the sweep counts it for each of the user's keys, so that no key is called
 * UNUSED because its use was credited to a sibling.
 *
 * @param userKeys the Bedrock keys of the calling IAM user as IAM lists them now; null when the caller is not an
 *   IAM user (nothing was looked up).
 */
export function attributeUse(use: BearerUse, userKeys: ReadonlyArray<KeyMetadata> | null): Attribution {
  const p = use.principal;
  const userName = p.type === 'IAMUser' ? p.userName : null;
  const keys = userKeys ?? [];
  const keyType: KeyType = use.declaredKeyType ?? (userName && keys.length > 0 ? 'LONG_TERM' : 'SHORT_TERM');
  if (keyType === 'LONG_TERM' && userName) {
    const active = keys.filter((k) => k.status === 'Active');
    const one = active.length === 1 ? active[0] : keys.length === 1 ? keys[0] : undefined;
    return {
      keyType,
      subject: one ? { kind: 'key', keyId: one.keyId, userName } : { kind: 'user', userName },
    };
  }
  // A short-term key is a SigV4-presigned request: it belongs to the principal that signed it, the role of a
  // session (its session ARN changes with every session) or the user itself.
  const principalArn =
    p.sessionIssuerArn ?? p.arn ?? (p.accessKeyId ? `accessKeyId/${p.accessKeyId}` : 'unknown');
  return { keyType, subject: { kind: 'principal', principalArn } };
}

/** One subject's uses in a batch: what the store records, and the latest attempt (the trigger of any decision). */
export interface SubjectUsage {
  aggregate: UsageAggregate;
  /** The latest call in the batch (failed or not): its event names a decision's trigger. */
  latest: BearerUse;
  /**
   * Calls refused as unauthorised (see isDenied): what an Inactive key's calls get, unlike throttling or a bad
   * request. A denied call by a user whose Active key took the attribution may have been made with a sibling key
   * keyguard deactivated.
   */
  deniedCalls: number;
}

/**
 * An authorisation failure. Which code Bedrock returns for a deactivated key is not documented: AccessDenied,
 * AccessDeniedException, UnauthorizedException and Forbidden forms are all accepted.
 */
export function isDenied(errorCode: string | null): boolean {
  return errorCode !== null && /accessdenied|unauthori[sz]ed|forbidden/i.test(errorCode);
}

/** One subject of one account, as a map key. */
export function subjectId(accountId: string, s: UseSubject): string {
  switch (s.kind) {
    case 'key':
      return `${accountId}|key|${s.keyId}`;
    case 'user':
      return `${accountId}|user|${s.userName}`;
    case 'principal':
      return `${accountId}|principal|${s.principalArn}`;
  }
}

/** Later time wins; on a tie the larger event id, so the result does not depend on the order of the batch. */
function isLater(a: BearerUse, b: BearerUse): boolean {
  return a.eventTime > b.eventTime || (a.eventTime === b.eventTime && a.eventId > b.eventId);
}

/**
 * Merges a later aggregate of a subject into an earlier one so that one write of the result leaves the usage
 * store's item as the two writes would (adapters/usage-store.ts): counters and sets add, firstUsedAt keeps
 * the earliest, lastUsedAt and the last attempt (with its source IP and user agent) only move forward (on a
 * tie the stored one stays), keyType is the later write's.
 */
export function mergeAggregates(earlier: UsageAggregate, later: UsageAggregate): UsageAggregate {
  const attempt = later.lastAttemptAt > earlier.lastAttemptAt ? later : earlier;
  const used = [earlier.lastUsedAt, later.lastUsedAt].filter((t): t is string => t !== null).sort();
  return {
    ...later,
    calls: earlier.calls + later.calls,
    failedCalls: earlier.failedCalls + later.failedCalls,
    firstUsedAt: [earlier.firstUsedAt, later.firstUsedAt].sort()[0] ?? earlier.firstUsedAt,
    lastUsedAt: used[used.length - 1] ?? null,
    lastAttemptAt: attempt.lastAttemptAt,
    lastSourceIp: attempt.lastSourceIp,
    lastUserAgent: attempt.lastUserAgent,
    regions: [...new Set([...earlier.regions, ...later.regions])].sort(),
    models: [...new Set([...earlier.models, ...later.models])].sort(),
  };
}

/**
 * Aggregates a batch per subject: `calls` counts every call, `failedCalls` those with an error code (a
 * deactivated key's calls fail, and still show that someone holds it). `lastUsedAt` is the latest successful
 * call, `lastAttemptAt` the latest call of any outcome, and the source IP / user agent are those of the latest
 * call. Regions and models are sorted and distinct.
 */
export function aggregateUses(
  uses: ReadonlyArray<BearerUse>,
  attribution: (use: BearerUse) => Attribution,
): SubjectUsage[] {
  const bySubject = new Map<string, SubjectUsage & { regions: Set<string>; models: Set<string> }>();
  for (const use of uses) {
    const { subject, keyType } = attribution(use);
    const id = subjectId(use.accountId, subject);
    const failed = use.errorCode !== null;
    const current = bySubject.get(id);
    if (!current) {
      bySubject.set(id, {
        aggregate: {
          accountId: use.accountId,
          subject,
          keyType,
          calls: 1,
          failedCalls: failed ? 1 : 0,
          firstUsedAt: use.eventTime,
          lastUsedAt: failed ? null : use.eventTime,
          lastAttemptAt: use.eventTime,
          regions: [],
          models: [],
          lastSourceIp: use.sourceIp,
          lastUserAgent: use.userAgent,
        },
        latest: use,
        deniedCalls: isDenied(use.errorCode) ? 1 : 0,
        regions: new Set([use.region]),
        models: new Set(use.modelId ? [use.modelId] : []),
      });
      continue;
    }
    const a = current.aggregate;
    a.calls += 1;
    if (failed) a.failedCalls += 1;
    if (isDenied(use.errorCode)) current.deniedCalls += 1;
    if (use.eventTime < a.firstUsedAt) a.firstUsedAt = use.eventTime;
    if (!failed && (a.lastUsedAt === null || use.eventTime > a.lastUsedAt)) a.lastUsedAt = use.eventTime;
    if (isLater(use, current.latest)) {
      current.latest = use;
      a.lastAttemptAt = use.eventTime;
      a.lastSourceIp = use.sourceIp;
      a.lastUserAgent = use.userAgent;
    }
    current.regions.add(use.region);
    if (use.modelId) current.models.add(use.modelId);
  }
  return [...bySubject.values()].map(({ aggregate, latest, deniedCalls, regions, models }) => ({
    aggregate: { ...aggregate, regions: [...regions].sort(), models: [...models].sort() },
    latest,
    deniedCalls,
  }));
}

/** The UTC day (YYYY-MM-DD) of an ISO time. */
export function utcDay(iso: string): string {
  return iso.slice(0, 10);
}

/** User agents are free text set by the caller (already redacted when read): shortened for a notice. */
const USER_AGENT_MAX = 200;

/** Why a key the pipeline deactivated is in the news: who still holds it, where from (none of it is secret). */
export function deactivatedUseReason(u: SubjectUsage): string {
  const a = u.aggregate;
  const l = u.latest;
  const ua = l.userAgent ? l.userAgent.slice(0, USER_AGENT_MAX) : 'unknown';
  const outcome = a.failedCalls === a.calls ? 'all failed' : `${a.calls - a.failedCalls} succeeded`;
  return (
    `a key keyguard deactivated is still being used: ${a.calls} call(s) on ${utcDay(a.lastAttemptAt)} (${outcome}); ` +
    `latest ${l.eventName} at ${l.eventTime} in ${l.region} from ${l.sourceIp ?? 'unknown IP'} ` +
    `with user agent ${ua}${l.errorCode ? ` (${l.errorCode})` : ''}. Whoever holds it should move to its replacement.`
  );
}
