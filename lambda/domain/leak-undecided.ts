import { redactSecrets } from '../shared/redact';
import type { LeakKind } from './leaks';
import type { LeakLocation, LeakVerificationResult } from './types';

/**
 * Findings of a log batch that the leak function did not decide (issue 11, item 11). The function has no
 * on-failure destination: Lambda's failure record of an asynchronous invocation carries the whole request, i.e.
 * the log lines with live keys. Instead each finding is decided on its own, a failure is retried a bounded number
 * of times, and what is still not decided is sent to the leak function's own queue as these records: fingerprint,
 * redacted form, what the string names, where it was seen and why it was not decided. Never the key, never a
 * log line. Pure: no I/O.
 */

/**
 * Why a finding was not decided:
 * - `error`: deciding it failed after the retries (IAM, DynamoDB, SNS, CloudTrail): `error` names the error;
 * - `deadline`: the invocation's remaining time was kept for the verified leaks (domain/leak-plan.ts);
 * - `bound`: over a per-batch bound (domain/leak-plan.ts; never a VERIFIED string).
 */
export type UndecidedReason = 'error' | 'deadline' | 'bound';

/** Where one sighting was (the log group and stream are the message's). */
export interface UndecidedSighting {
  logEventId: string;
  timestamp: string;
  line: number;
  column: number;
}

/** One distinct string not decided. */
export interface UndecidedLeak {
  kind: LeakKind;
  fingerprint: string;
  redacted: string;
  /** Long-term: the account and user the key names. */
  accountId?: string;
  userName?: string;
  /** Short-term: the access key id the key was signed with. */
  accessKeyId?: string;
  /** What the live check said, when the string was checked. */
  verification: LeakVerificationResult | null;
  reason: UndecidedReason;
  /** The error's name (`reason: 'error'`): its message is logged, not queued. */
  error?: string;
  /** Log events the string was seen in (all of them), and the first MAX_UNDECIDED_SIGHTINGS of them. */
  sightings: number;
  logEvents: UndecidedSighting[];
}

/** What the function sends for one log batch (split over several messages when large). */
export interface UndecidedLeakBatch {
  logGroup: string;
  logStream: string;
  leaks: UndecidedLeak[];
}

/** Port: where undecided findings are kept (lambda/adapters/undecided-leaks.ts). Throws when they could not be. */
export interface UndecidedLeakSink {
  record(batch: UndecidedLeakBatch): Promise<void>;
}

/** `type` of every message, for whoever reads the queue. */
export const UNDECIDED_MESSAGE_TYPE = 'keyguard.leak.undecided';
/** Sightings listed per string (the count is complete). */
export const MAX_UNDECIDED_SIGHTINGS = 20;
/**
 * Largest message body (UTF-8 bytes): below SQS's 256 KiB message limit, with room for the attributes. A string's
 * record is at most ~25 KB (20 sightings), so every message holds at least one.
 */
export const MAX_UNDECIDED_MESSAGE_BYTES = 200_000;

/** The sightings kept of a string's locations, in batch order. */
export function undecidedSightings(locations: readonly LeakLocation[]): UndecidedSighting[] {
  return locations.slice(0, MAX_UNDECIDED_SIGHTINGS).map((l) => ({
    logEventId: l.logEventId,
    timestamp: l.timestamp,
    line: l.line,
    column: l.column,
  }));
}

/**
 * The message bodies for one batch: JSON `{ type, version, logGroup, logStream, part, parts, leaks }`, records in
 * the order given, each body at most `maxBytes`. Every body also goes through redactSecrets: a record is built
 * from redacted fields only, and anything key-shaped in a name the log writer chose (a log stream) is redacted too.
 */
export function undecidedMessages(
  batch: UndecidedLeakBatch,
  maxBytes = MAX_UNDECIDED_MESSAGE_BYTES,
): string[] {
  const head = {
    type: UNDECIDED_MESSAGE_TYPE,
    version: 1,
    logGroup: batch.logGroup,
    logStream: batch.logStream,
  };
  const overhead = Buffer.byteLength(JSON.stringify({ ...head, part: 9999, parts: 9999, leaks: [] }));
  const parts: UndecidedLeak[][] = [];
  let current: UndecidedLeak[] = [];
  let size = overhead;
  for (const leak of batch.leaks) {
    const bytes = Buffer.byteLength(JSON.stringify(leak)) + 1;
    if (current.length > 0 && size + bytes > maxBytes) {
      parts.push(current);
      current = [];
      size = overhead;
    }
    current.push(leak);
    size += bytes;
  }
  if (current.length > 0) parts.push(current);
  return parts.map((leaks, i) =>
    redactSecrets(JSON.stringify({ ...head, part: i + 1, parts: parts.length, leaks })),
  );
}
