import { createHash } from 'node:crypto';
import * as z from '../shared/zod';
import type { LeakKind, LongTermFacts, ShortTermFacts } from './leaks';

/**
 * `keyguard scan --quarantine` (issue 15): one EventBridge event per distinct key found (by fingerprint) on the
 * governance bus, for the leak function to decide as it decides a leak in a log group. The event carries what the
 * scan decoded and where it found the key, NEVER the key: so the function cannot ask Bedrock whether the key works,
 * and a report is only as trustworthy as whoever may put events with this source (the stack's ScanReporterPolicy).
 * The function therefore never deactivates a key on a report alone (see lambda/domain/leak-verification.ts,
 * SCAN_REPORT_CHECK). Shared by the CLI (which builds the events) and the function (which parses them). Pure.
 */

/** The event's `source`: the stack's rule matches it, ScanReporterPolicy allows PutEvents with it only. */
export const SCAN_REPORT_SOURCE = 'keyguard.scan';
/** The event's `detail-type`. */
export const SCAN_REPORT_DETAIL_TYPE = 'Bedrock API Key Found';
/** Locations carried in one event (the first ones in scan order); `locationCount` says how many there were. */
export const MAX_REPORT_LOCATIONS = 100;
/** A location's path (or permalink) is cut to this many characters. */
export const MAX_LOCATION_PATH = 1024;
/** PutEvents takes at most 10 entries per request (EventBridge API reference, PutEvents `Entries`). */
export const PUT_EVENTS_MAX_ENTRIES = 10;
/**
 * PutEvents: the entries of one request together must stay under 256 KB, counted as the UTF-8 bytes of Source,
 * DetailType, Detail and each Resources entry, plus 14 for Time (EventBridge User Guide, "Calculating PutEvents
 * event entry size").
 */
export const PUT_EVENTS_MAX_BYTES = 256 * 1024;

/** One place a key was found: a file (and commit, for git history) or `-` for standard input. */
export interface ReportLocation {
  path: string;
  line: number;
  column: number;
  commit?: string;
}

export interface ScanReportDetail {
  schemaVersion: 1;
  kind: LeakKind;
  fingerprint: string;
  redacted: string;
  longTerm?: Pick<LongTermFacts, 'alias' | 'userName' | 'accountId'>;
  shortTerm?: Pick<ShortTermFacts, 'accessKeyId' | 'region' | 'signedAt' | 'expiresAt'>;
  /** The first MAX_REPORT_LOCATIONS locations, in the order the scan found them. */
  locations: ReportLocation[];
  /** Every location the key was found in (>= locations.length). */
  locationCount: number;
  /** sha256 (hex) of every location, sorted: the location set, also when `locations` holds only the first ones. */
  locationSetDigest: string;
  scanner: { name: 'keyguard scan'; version: string };
  scannedAt: string;
}

/** A finding as the scan reports it (lambda/cli/scan.ts LocatedFinding). */
export interface ReportableFinding extends ReportLocation {
  kind: LeakKind;
  fingerprint: string;
  redacted: string;
  longTerm?: LongTermFacts;
  shortTerm?: ShortTermFacts;
}

function locationKey(l: ReportLocation): string {
  return JSON.stringify([l.commit ?? null, l.path, l.line, l.column]);
}

/** The digest of a location set (order and duplicates do not matter). */
export function locationSetDigest(locations: readonly ReportLocation[]): string {
  const keys = [...new Set(locations.map(locationKey))].sort();
  return createHash('sha256').update(keys.join('\n')).digest('hex');
}

function cut(path: string): string {
  return path.length <= MAX_LOCATION_PATH ? path : `${path.slice(0, MAX_LOCATION_PATH - 1)}…`;
}

/** One report per distinct key (fingerprint), in the order the keys were first found, with every location. */
export function buildScanReports(
  findings: readonly ReportableFinding[],
  scan: { version: string; scannedAt: string },
): ScanReportDetail[] {
  const byKey = new Map<
    string,
    { first: ReportableFinding; locations: ReportLocation[]; seen: Set<string> }
  >();
  for (const f of findings) {
    const location: ReportLocation = {
      path: cut(f.path),
      line: f.line,
      column: f.column,
      ...(f.commit ? { commit: f.commit } : {}),
    };
    const key = locationKey(location);
    const known = byKey.get(f.fingerprint);
    if (!known) byKey.set(f.fingerprint, { first: f, locations: [location], seen: new Set([key]) });
    else if (!known.seen.has(key)) {
      known.seen.add(key);
      known.locations.push(location);
    }
  }
  return [...byKey.values()].map(({ first: f, locations }) => ({
    schemaVersion: 1,
    kind: f.kind,
    fingerprint: f.fingerprint,
    redacted: f.redacted,
    ...(f.longTerm
      ? {
          longTerm: {
            alias: f.longTerm.alias,
            userName: f.longTerm.userName,
            accountId: f.longTerm.accountId,
          },
        }
      : {}),
    ...(f.shortTerm
      ? {
          shortTerm: {
            accessKeyId: f.shortTerm.accessKeyId,
            region: f.shortTerm.region,
            signedAt: f.shortTerm.signedAt,
            expiresAt: f.shortTerm.expiresAt,
          },
        }
      : {}),
    locations: locations.slice(0, MAX_REPORT_LOCATIONS),
    locationCount: locations.length,
    locationSetDigest: locationSetDigest(locations),
    scanner: { name: 'keyguard scan', version: scan.version },
    scannedAt: scan.scannedAt,
  }));
}

/** The size PutEvents counts for one entry (no Time, no Resources: the CLI sets neither). */
export function putEventsEntrySize(entry: { Source: string; DetailType: string; Detail: string }): number {
  return (
    Buffer.byteLength(entry.Source) + Buffer.byteLength(entry.DetailType) + Buffer.byteLength(entry.Detail)
  );
}

/** Entries cut into PutEvents requests: at most 10 each, and under 256 KB together. */
export function putEventsBatches<E extends { Source: string; DetailType: string; Detail: string }>(
  entries: readonly E[],
): E[][] {
  const batches: E[][] = [];
  let current: E[] = [];
  let size = 0;
  for (const e of entries) {
    const n = putEventsEntrySize(e);
    if (
      current.length > 0 &&
      (current.length === PUT_EVENTS_MAX_ENTRIES || size + n >= PUT_EVENTS_MAX_BYTES)
    ) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(e);
    size += n;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

// --- What the function accepts: anyone allowed to put events with this source could send anything -------------

const ACCOUNT = /^\d{12}$/;
/** IAM user names: letters, digits and +=,.@_- (1-64). */
const IAM_USER = /^[\w+=,.@-]{1,64}$/;
const ACCESS_KEY_ID = /^(AKIA|ASIA)[A-Z2-7]{16}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const FINGERPRINT = /^sha256:[0-9a-f]{16}$/;
/** A redacted form: the prefix, an ellipsis and at most the last 4 characters (shared/redact.ts). */
const REDACTED = /^(ABSK|bedrock-api-key-)…[A-Za-z0-9+/=]{0,4}$/;

const matching = (pattern: RegExp) => z.string().check(z.regex(pattern));
const positiveInt = () => z.number().check(z.int(), z.gte(1));

const LocationSchema = z.strictObject({
  path: z.string().check(z.minLength(1), z.maxLength(MAX_LOCATION_PATH)),
  line: positiveInt(),
  column: positiveInt(),
  commit: z.optional(matching(/^[0-9a-f]{40,64}$/)),
});

export const ScanReportDetailSchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    kind: z.enum(['LONG_TERM', 'SHORT_TERM']),
    fingerprint: matching(FINGERPRINT),
    redacted: matching(REDACTED),
    longTerm: z.optional(
      z.strictObject({
        alias: z.string().check(z.maxLength(200)),
        userName: matching(IAM_USER),
        accountId: matching(ACCOUNT),
      }),
    ),
    shortTerm: z.optional(
      z.strictObject({
        accessKeyId: matching(ACCESS_KEY_ID),
        region: matching(REGION),
        signedAt: z.iso.datetime(),
        expiresAt: z.iso.datetime(),
      }),
    ),
    locations: z.array(LocationSchema).check(z.minLength(1), z.maxLength(MAX_REPORT_LOCATIONS)),
    locationCount: positiveInt(),
    locationSetDigest: matching(/^[0-9a-f]{64}$/),
    scanner: z.strictObject({ name: z.literal('keyguard scan'), version: z.string().check(z.maxLength(64)) }),
    scannedAt: z.iso.datetime(),
  })
  .check(
    z.superRefine((d, ctx) => {
      if (d.kind === 'LONG_TERM' && (!d.longTerm || d.shortTerm))
        ctx.addIssue({ code: 'custom', path: ['longTerm'], message: 'a LONG_TERM report has longTerm only' });
      if (d.kind === 'SHORT_TERM' && (!d.shortTerm || d.longTerm))
        ctx.addIssue({
          code: 'custom',
          path: ['shortTerm'],
          message: 'a SHORT_TERM report has shortTerm only',
        });
      if (d.longTerm && d.longTerm.alias !== `${d.longTerm.userName}-at-${d.longTerm.accountId}`)
        ctx.addIssue({
          code: 'custom',
          path: ['longTerm', 'alias'],
          message: 'is not <userName>-at-<accountId>',
        });
      if (d.kind === 'LONG_TERM' && !d.redacted.startsWith('ABSK'))
        ctx.addIssue({
          code: 'custom',
          path: ['redacted'],
          message: 'is not the redacted form of a long-term key',
        });
      if (d.locationCount < d.locations.length)
        ctx.addIssue({
          code: 'custom',
          path: ['locationCount'],
          message: 'is less than the locations listed',
        });
    }),
  );

export class InvalidScanReportError extends Error {
  /** The fields out of shape (paths only, e.g. `detail.longTerm.alias`): a value could hold anything, even a key. */
  readonly fields: string[];
  constructor(detail: string, fields: string[] = []) {
    super(`event is not a keyguard scan report: ${detail}`);
    this.name = 'InvalidScanReportError';
    this.fields = fields;
  }
}

/** The EventBridge event's envelope, as Lambda receives it from a rule. */
const EnvelopeSchema = z.object({
  id: z.string().check(z.minLength(1)),
  source: z.literal(SCAN_REPORT_SOURCE),
  'detail-type': z.literal(SCAN_REPORT_DETAIL_TYPE),
  account: z.string(),
  time: z.string(),
  detail: z.unknown(),
});

export interface ScanReportEvent {
  /** EventBridge's id of this delivery (a repeated scan sends a new event with a new id). */
  eventId: string;
  /** The account that put the event (EventBridge sets it; the sender cannot). */
  senderAccount: string;
  receivedAt: string;
  detail: ScanReportDetail;
}

/** Whether an event is an EventBridge scan report (by its source), before it is validated. */
export function isScanReportEvent(raw: unknown): boolean {
  return (
    typeof raw === 'object' && raw !== null && (raw as { source?: unknown }).source === SCAN_REPORT_SOURCE
  );
}

/** Only paths and expectations are reported: values could hold anything. */
function issuesOf(error: z.core.$ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** The paths of the fields out of shape, under `prefix`, each once. */
function fieldsOf(error: z.core.$ZodError, prefix: string[] = []): string[] {
  return [...new Set(error.issues.map((i) => [...prefix, ...i.path.map(String)].join('.') || '(root)'))];
}

export function parseScanReportEvent(raw: unknown): ScanReportEvent {
  const envelope = EnvelopeSchema.safeParse(raw);
  if (!envelope.success) throw new InvalidScanReportError(issuesOf(envelope.error), fieldsOf(envelope.error));
  const detail = ScanReportDetailSchema.safeParse(envelope.data.detail);
  if (!detail.success) {
    throw new InvalidScanReportError(`detail: ${issuesOf(detail.error)}`, fieldsOf(detail.error, ['detail']));
  }
  return {
    eventId: envelope.data.id,
    senderAccount: envelope.data.account,
    receivedAt: envelope.data.time,
    detail: detail.data as ScanReportDetail,
  };
}
