import * as z from '../shared/zod';
import { parseAwsDate } from './dates';
import { BEDROCK_SERVICE } from './types';

/**
 * CloudTrail records for the IAM calls that touch Bedrock keys, validated with zod and normalised into
 * `KeyEvent`s. Only metadata fields are ever read: `serviceCredentialSecret`/`servicePassword` may be in a
 * record (they should be redacted, but nothing guarantees it) and are never copied anywhere.
 */

/** Longest eventID accepted (CloudTrail's are 36-character UUIDs). */
const EVENT_ID_MAX = 128;

const optionalString = () => z.optional(z.string());
const nonEmpty = () => z.string().check(z.minLength(1));

const UserIdentitySchema = z.looseObject({
  type: optionalString(),
  arn: optionalString(),
  accountId: optionalString(),
  userName: optionalString(),
  principalId: optionalString(),
  invokedBy: optionalString(),
});

const Params = z.optional(z.nullable(z.record(z.string(), z.unknown())));

export const CloudTrailRecordSchema = z.looseObject({
  eventTime: nonEmpty(),
  eventSource: nonEmpty(),
  eventName: nonEmpty(),
  // Event ids are UUIDs; a decision's id (a table sort key, at most 1024 bytes) is built from it.
  eventID: z.string().check(z.minLength(1), z.maxLength(EVENT_ID_MAX)),
  awsRegion: optionalString(),
  recipientAccountId: optionalString(),
  userIdentity: z.optional(UserIdentitySchema),
  requestParameters: Params,
  responseElements: Params,
  errorCode: optionalString(),
  errorMessage: optionalString(),
});
export type CloudTrailRecord = z.infer<typeof CloudTrailRecordSchema>;

export const EventBridgeEventSchema = z.looseObject({
  id: nonEmpty(),
  'detail-type': nonEmpty(),
  source: nonEmpty(),
  account: nonEmpty(),
  time: optionalString(),
  region: optionalString(),
  detail: CloudTrailRecordSchema,
});
export type EventBridgeEvent = z.infer<typeof EventBridgeEventSchema>;

export const CREDENTIAL_EVENTS = [
  'CreateServiceSpecificCredential',
  'UpdateServiceSpecificCredential',
  'ResetServiceSpecificCredential',
  'DeleteServiceSpecificCredential',
] as const;
export const USER_TAG_EVENTS = ['TagUser', 'UntagUser'] as const;
/** Followed by replay to rebuild user tags; the live pipeline reads tags from IAM instead. */
export const USER_LIFECYCLE_EVENTS = ['CreateUser'] as const;
/**
 * Calls that give a user more access: another credential (an escalation path beside its Bedrock keys) or more
 * permissions. The live pipeline re-evaluates the user's keys on them; replay cannot (it has no user facts).
 */
export const USER_ACCESS_EVENTS = [
  'CreateAccessKey',
  'UpdateAccessKey',
  'CreateLoginProfile',
  'AttachUserPolicy',
  'PutUserPolicy',
  'AddUserToGroup',
] as const;
export type UserAccessEventName = (typeof USER_ACCESS_EVENTS)[number];
/** Calls whose UserName defaults to the calling IAM user when omitted. */
const SELF_DEFAULT_EVENTS: readonly string[] = ['CreateAccessKey', 'UpdateAccessKey', 'CreateLoginProfile'];

export interface EventMeta {
  eventId: string;
  eventName: string;
  /** ISO-8601, UTC. */
  eventTime: string;
  accountId: string;
  region: string | null;
  /** Who made the call: ARN when CloudTrail gives one, else user name or principal id. */
  actor: string | null;
}

export interface CreatedKeyFacts {
  createdAt: string | null;
  expiresAt: string | null;
  status: 'Active' | 'Inactive' | 'Expired';
  credentialAgeDays: number | null;
}

export type KeyEvent =
  | {
      kind: 'credential';
      action: 'Create' | 'Update' | 'Reset' | 'Delete';
      meta: EventMeta;
      userName: string;
      keyId: string;
      /** Known only on Create; Update/Reset/Delete do not carry it, so the service must be checked in IAM. */
      serviceName: string | null;
      /** The status an Update asked for. */
      requestedStatus: 'Active' | 'Inactive' | null;
      /** From the Create response, when present. */
      created: CreatedKeyFacts | null;
    }
  | {
      kind: 'user-tags';
      action: 'CreateUser' | 'TagUser' | 'UntagUser';
      meta: EventMeta;
      userName: string;
      setTags: Record<string, string>;
      removedTagKeys: string[];
    }
  | {
      kind: 'user-access';
      action: UserAccessEventName;
      meta: EventMeta;
      userName: string;
    };

export type IgnoreReason =
  /** Neither recipientAccountId nor the envelope's account nor userIdentity.accountId names an account. */
  | 'account-unknown'
  /** recipientAccountId and the envelope's account disagree: whose event it is cannot be established. */
  | 'account-mismatch'
  /** Dated implausibly far in the future (see latestPlausibleTime): acting on it would corrupt time marks. */
  | 'future-event'
  | 'not-iam'
  | 'unsupported-event'
  | 'failed-call'
  | 'not-bedrock'
  /** An access key or password of a principal that is not an IAM user (the root user): it holds no keys. */
  | 'not-iam-user'
  /** UpdateAccessKey to Inactive: less access, nothing to escalate. */
  | 'not-activation';

export type Classification =
  | { relevant: true; event: KeyEvent }
  | {
      relevant: false;
      reason: IgnoreReason;
      eventName: string;
      eventId: string;
      /** Why, for a person, when the reason alone does not say (an account or a time that cannot be trusted). */
      detail?: string;
    };

/**
 * Where a record came from and when it was read: what `classifyRecord` and `describeUsage` check the record's own
 * claims against.
 */
export interface RecordContext {
  /** The account of the EventBridge envelope (`account`), set by EventBridge; null for a log file's record. */
  envelopeAccount?: string | null;
  /** A record dated after this is not acted on (latestPlausibleTime); null: no check. */
  notAfter?: Date | null;
}

/**
 * Clocks differ by seconds and CloudTrail delivers within minutes: an event dated more than this after the run
 * (or after the log file holding it was delivered) is not a real event. Acting on it would move every "latest"
 * mark (the usage store's last use, replay's counted-through mark) to that date for ever.
 */
export const FUTURE_SLACK_MS = 24 * 3_600_000;

/** The latest eventTime believed: a day after `now`, or after the log file's delivery time when it is known. */
export function latestPlausibleTime(now: Date, deliveredAt: Date | null = null): Date {
  const base = deliveredAt && deliveredAt.getTime() < now.getTime() ? deliveredAt : now;
  return new Date(base.getTime() + FUTURE_SLACK_MS);
}

/** The account an event belongs to, or why it cannot be established. */
export type AccountOf =
  | { accountId: string; problem: null }
  | { accountId: null; problem: 'account-unknown' | 'account-mismatch'; detail: string };

/**
 * Whose event a record is: its recipientAccountId (the account that recorded it), else the EventBridge envelope's
 * account (the bus the event was put on), else userIdentity.accountId (the caller's own account, which differs for
 * cross-account callers, so it comes last). A recipientAccountId that disagrees with the envelope makes the
 * account unknown: an event is never acted on as an account it cannot be shown to belong to.
 */
export function accountOf(
  record: Pick<CloudTrailRecord, 'recipientAccountId' | 'userIdentity'>,
  envelopeAccount: string | null = null,
): AccountOf {
  const recipient = str(record.recipientAccountId);
  const envelope = str(envelopeAccount);
  if (recipient && envelope && recipient !== envelope) {
    return {
      accountId: null,
      problem: 'account-mismatch',
      detail: `recipientAccountId ${shownAccount(recipient)} differs from the envelope account ${shownAccount(envelope)}`,
    };
  }
  const accountId = recipient ?? envelope ?? str(record.userIdentity?.accountId);
  if (!accountId) {
    return {
      accountId: null,
      problem: 'account-unknown',
      detail: 'no recipientAccountId, envelope account or userIdentity.accountId',
    };
  }
  return { accountId, problem: null };
}

/** An account id as a message shows it: anything that is not one (it could hold anything) is not repeated. */
function shownAccount(v: string): string {
  return /^\d{12}$/.test(v) ? v : '(not an account id)';
}

/** Why an eventTime is not believed, or null when it is plausible. `eventTime` is ISO (parseAwsDate's). */
export function implausibleTime(eventTime: string, notAfter: Date | null | undefined): string | null {
  if (!notAfter || Date.parse(eventTime) <= notAfter.getTime()) return null;
  return `eventTime ${eventTime} is after ${notAfter.toISOString()} (implausibly far in the future)`;
}

/** A record that is relevant (right source and name) but lacks what is needed to act on it. */
export class EventShapeError extends Error {
  constructor(
    readonly eventId: string,
    readonly eventName: string,
    readonly field: string,
  ) {
    super(`${eventName} ${eventId}: missing or invalid ${field}`);
    this.name = 'EventShapeError';
  }
}

/**
 * IAM's limits are 64 characters for a user name and 128 for a credential id; anything longer is not a real
 * record, and would make a table key DynamoDB refuses (a decision's key holds them).
 */
const USER_NAME_MAX = 128;
const KEY_ID_MAX = 128;

/** Throws EventShapeError when an identifier is longer than IAM allows (the value is never repeated). */
function boundedId(record: CloudTrailRecord, field: string, value: string, max: number): void {
  if (value.length > max) {
    throw new EventShapeError(
      record.eventID,
      record.eventName,
      `${field} (${value.length} characters, at most ${max})`,
    );
  }
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

function obj(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function actorOf(record: CloudTrailRecord): string | null {
  const id = record.userIdentity;
  if (!id) return null;
  return str(id.arn) ?? str(id.userName) ?? str(id.principalId);
}

function metaOf(record: CloudTrailRecord, accountId: string): EventMeta {
  let eventTime: string;
  try {
    eventTime = parseAwsDate(record.eventTime);
  } catch {
    throw new EventShapeError(record.eventID, record.eventName, 'eventTime');
  }
  return {
    eventId: record.eventID,
    eventName: record.eventName,
    eventTime,
    accountId,
    region: str(record.awsRegion),
    actor: actorOf(record),
  };
}

/** IAM tag lists appear as `[{key, value}]` in CloudTrail; SDK-shaped `[{Key, Value}]` is accepted too. */
function tagsOf(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(v)) return out;
  for (const t of v) {
    const o = obj(t);
    const k = str(o?.key) ?? str(o?.Key);
    const val = o?.value ?? o?.Value;
    if (k !== null && typeof val === 'string') out[k] = val;
  }
  return out;
}

function dateField(record: CloudTrailRecord, v: unknown, field: string): string | null {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') throw new EventShapeError(record.eventID, record.eventName, field);
  try {
    return parseAwsDate(v);
  } catch {
    throw new EventShapeError(record.eventID, record.eventName, field);
  }
}

function credentialEvent(record: CloudTrailRecord, meta: EventMeta): Classification {
  const req = obj(record.requestParameters) ?? {};
  const action = record.eventName.replace('ServiceSpecificCredential', '') as
    | 'Create'
    | 'Update'
    | 'Reset'
    | 'Delete';
  const ignore = (reason: IgnoreReason): Classification => ({
    relevant: false,
    reason,
    eventName: record.eventName,
    eventId: record.eventID,
  });

  if (action === 'Create') {
    const serviceName = str(req.serviceName);
    if (serviceName !== BEDROCK_SERVICE) return ignore('not-bedrock');
    const cred = obj(obj(record.responseElements)?.serviceSpecificCredential);
    const keyId = str(cred?.serviceSpecificCredentialId);
    const userName = str(cred?.userName) ?? str(req.userName);
    if (!keyId)
      throw new EventShapeError(
        record.eventID,
        record.eventName,
        'responseElements.serviceSpecificCredential.serviceSpecificCredentialId',
      );
    if (!userName) throw new EventShapeError(record.eventID, record.eventName, 'requestParameters.userName');
    boundedId(
      record,
      'responseElements.serviceSpecificCredential.serviceSpecificCredentialId',
      keyId,
      KEY_ID_MAX,
    );
    boundedId(record, 'requestParameters.userName', userName, USER_NAME_MAX);
    const status = str(cred?.status);
    const age = req.credentialAgeDays;
    return {
      relevant: true,
      event: {
        kind: 'credential',
        action,
        meta,
        userName,
        keyId,
        serviceName,
        requestedStatus: null,
        created: {
          createdAt:
            dateField(record, cred?.createDate, 'responseElements.serviceSpecificCredential.createDate') ??
            meta.eventTime,
          expiresAt: dateField(
            record,
            cred?.expirationDate,
            'responseElements.serviceSpecificCredential.expirationDate',
          ),
          status: status === 'Inactive' || status === 'Expired' ? status : 'Active',
          credentialAgeDays:
            typeof age === 'number' ? age : typeof age === 'string' && /^\d+$/.test(age) ? Number(age) : null,
        },
      },
    };
  }

  const keyId = str(req.serviceSpecificCredentialId);
  if (!keyId)
    throw new EventShapeError(
      record.eventID,
      record.eventName,
      'requestParameters.serviceSpecificCredentialId',
    );
  // UserName is optional in the API: it defaults to the calling IAM user.
  const userName =
    str(req.userName) ?? (record.userIdentity?.type === 'IAMUser' ? str(record.userIdentity.userName) : null);
  if (!userName) throw new EventShapeError(record.eventID, record.eventName, 'requestParameters.userName');
  boundedId(record, 'requestParameters.serviceSpecificCredentialId', keyId, KEY_ID_MAX);
  boundedId(record, 'requestParameters.userName', userName, USER_NAME_MAX);
  const requested = str(req.status);
  return {
    relevant: true,
    event: {
      kind: 'credential',
      action,
      meta,
      userName,
      keyId,
      serviceName: null,
      requestedStatus: requested === 'Active' || requested === 'Inactive' ? requested : null,
      created: null,
    },
  };
}

function userAccessEvent(record: CloudTrailRecord, meta: EventMeta): Classification {
  const name = record.eventName as UserAccessEventName;
  const req = obj(record.requestParameters) ?? {};
  const ignore = (reason: IgnoreReason): Classification => ({
    relevant: false,
    reason,
    eventName: name,
    eventId: record.eventID,
  });
  if (name === 'UpdateAccessKey' && str(req.status) !== 'Active') return ignore('not-activation');
  let userName = str(req.userName);
  if (!userName && SELF_DEFAULT_EVENTS.includes(name)) {
    // UserName is optional here: it defaults to the caller. An IAM user acting on itself is named in
    // userIdentity; any other caller (the root user) made a credential of its own, not of a key's user.
    if (record.userIdentity?.type !== 'IAMUser') return ignore('not-iam-user');
    userName = str(record.userIdentity.userName);
  }
  if (!userName) throw new EventShapeError(record.eventID, name, 'requestParameters.userName');
  boundedId(record, 'requestParameters.userName', userName, USER_NAME_MAX);
  return { relevant: true, event: { kind: 'user-access', action: name, meta, userName } };
}

/**
 * Decides whether a CloudTrail record concerns Bedrock keys and normalises it. A relevant record whose account
 * cannot be established (accountOf) or that is dated after `context.notAfter` is ignored, with a detail saying why.
 * Throws EventShapeError when a relevant record lacks a field needed to act on it.
 */
export function classifyRecord(record: CloudTrailRecord, context: RecordContext = {}): Classification {
  const ignore = (reason: IgnoreReason, detail?: string): Classification => ({
    relevant: false,
    reason,
    eventName: record.eventName,
    eventId: record.eventID,
    ...(detail ? { detail } : {}),
  });
  if (record.eventSource !== 'iam.amazonaws.com') return ignore('not-iam');
  const name = record.eventName;
  const known =
    (CREDENTIAL_EVENTS as readonly string[]).includes(name) ||
    (USER_TAG_EVENTS as readonly string[]).includes(name) ||
    (USER_LIFECYCLE_EVENTS as readonly string[]).includes(name) ||
    (USER_ACCESS_EVENTS as readonly string[]).includes(name);
  if (!known) return ignore('unsupported-event');
  // A call that failed changed nothing in IAM.
  if (record.errorCode) return ignore('failed-call');

  const account = accountOf(record, context.envelopeAccount ?? null);
  if (account.accountId === null) return ignore(account.problem, account.detail);
  const meta = metaOf(record, account.accountId);
  const future = implausibleTime(meta.eventTime, context.notAfter);
  if (future) return ignore('future-event', future);
  if ((CREDENTIAL_EVENTS as readonly string[]).includes(name)) return credentialEvent(record, meta);
  if ((USER_ACCESS_EVENTS as readonly string[]).includes(name)) return userAccessEvent(record, meta);

  const req = obj(record.requestParameters) ?? {};
  const userName = str(req.userName);
  if (!userName) throw new EventShapeError(record.eventID, name, 'requestParameters.userName');
  boundedId(record, 'requestParameters.userName', userName, USER_NAME_MAX);
  const removed = Array.isArray(req.tagKeys)
    ? req.tagKeys.filter((k): k is string => typeof k === 'string')
    : [];
  return {
    relevant: true,
    event: {
      kind: 'user-tags',
      action: name as 'CreateUser' | 'TagUser' | 'UntagUser',
      meta,
      userName,
      setTags: name === 'UntagUser' ? {} : tagsOf(req.tags),
      removedTagKeys: name === 'UntagUser' ? removed : [],
    },
  };
}
