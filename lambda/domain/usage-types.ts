import type { KeyType } from './types';

/**
 * Flow 3 (key usage) vocabulary, shared by the `key-usage` function, the sweep (UNUSED) and replay. Pure data.
 * A use is one Bedrock call made with an API key (CloudTrail `callWithBearerToken`); it never holds key material.
 */

/** One Bedrock call made with a bearer token, as read from a CloudTrail record. */
export interface BearerUse {
  accountId: string;
  region: string;
  eventSource: 'bedrock.amazonaws.com' | 'bedrock-mantle.amazonaws.com';
  eventName: string;
  eventId: string;
  eventTime: string;
  /**
   * LONG_TERM / SHORT_TERM from `bearerTokenType` when the record carries it (ABSK means LONG_TERM); otherwise
   * null, and the key-usage function decides from the identity (an IAMUser holding Bedrock keys: long-term; an
   * assumed-role or federated session: short-term).
   */
  declaredKeyType: KeyType | null;
  principal: {
    /** CloudTrail userIdentity.type (IAMUser, AssumedRole, FederatedUser, ...). */
    type: string;
    arn: string | null;
    /** IAMUser only. */
    userName: string | null;
    /** Assumed-role sessions: the role's ARN (sessionContext.sessionIssuer.arn). */
    sessionIssuerArn: string | null;
    accessKeyId: string | null;
  };
  modelId: string | null;
  sourceIp: string | null;
  userAgent: string | null;
  /** The call failed (e.g. AccessDenied for a deactivated key); null when it succeeded. */
  errorCode: string | null;
}

/** How a use was attributed. */
export type UseSubject =
  /** A long-term key, when the user's key is known (the user holds exactly one Active Bedrock key). */
  | { kind: 'key'; keyId: string; userName: string }
  /** A long-term key of this user, not attributable to one key (the user holds two Active keys). */
  | { kind: 'user'; userName: string }
  /** Short-term keys minted by this principal (role ARN for sessions, user ARN otherwise). */
  | { kind: 'principal'; principalArn: string };

/** Uses aggregated per subject within one batch: one store write per subject, not per call. */
export interface UsageAggregate {
  accountId: string;
  subject: UseSubject;
  keyType: KeyType;
  calls: number;
  failedCalls: number;
  firstUsedAt: string;
  /** Latest successful call (null when every call in the batch failed). */
  lastUsedAt: string | null;
  lastAttemptAt: string;
  regions: string[];
  models: string[];
  lastSourceIp: string | null;
  lastUserAgent: string | null;
}

/** What the sweep needs to decide UNUSED for one key. */
export interface KeyUsage {
  /** Latest use that could have been this key (its own record, or its user's unattributed one). */
  lastUsedAt: string | null;
  /**
   * When usage tracking started for the account (its first recorded use): idleness is never measured from
   * before it. There is no KeyUsage without it: before any use is recorded, UNUSED is not evaluated.
   */
  trackingSince: string;
}

/** Read side of the usage store, as the sweep and the CLI use it. */
export interface UsageSource {
  /** Per key id; a key absent from the map has no usage record (never seen used). */
  lastUsedFor(
    accountId: string,
    keys: ReadonlyArray<{ keyId: string; userName: string }>,
  ): Promise<Map<string, string | null>>;
  /**
   * When usage tracking started for the account: the first use the usage store recorded, or null when it has
   * never recorded one (then "unused" cannot be told from "not tracked", and UNUSED is not evaluated).
   * Read-only: only recording a use sets it.
   */
  trackingSince(accountId: string): Promise<string | null>;
}
