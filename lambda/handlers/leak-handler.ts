import { gunzipSync } from 'node:zlib';
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import { type AccessKeyAccountLookup, StsAccessKeyAccounts } from '../adapters/access-key-accounts';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { DynamoAuditLog } from '../adapters/audit-store';
import {
  type CloudTrailClientProvider,
  CloudTrailIssuerLookup,
  cloudTrailClientsWith,
  type IssuerLookup,
} from '../adapters/cloudtrail-issuers';
import { documentClient } from '../adapters/document-client';
import { accountAccess, type GovernedAccounts } from '../adapters/governed-accounts';
import { type IamClientProvider, IamEnforcer, IamKeyDirectory } from '../adapters/iam';
import { MemberRoleError } from '../adapters/member-access';
import { SnsNotifier } from '../adapters/notifier';
import { HOUR_MS } from '../domain/dates';
import { describeLeak, resolveOwner } from '../domain/evaluate';
import { findBatchLeaks, MAX_BATCH_BYTES } from '../domain/leak-batch';
import { leakGroupDecision, rejectedLeakDecision, shortTermLeakDecision } from '../domain/leak-decision';
import {
  type LeakGroup,
  leakTargets,
  notDecided,
  type PlanCandidate,
  planBatch,
  sightingsOf,
  VERIFICATION_CONCURRENCY,
  verificationOrder,
} from '../domain/leak-plan';
import {
  type UndecidedLeak,
  type UndecidedLeakSink,
  type UndecidedReason,
  undecidedSightings,
} from '../domain/leak-undecided';
import {
  type KeyCandidate,
  keyInText,
  type LeakVerifier,
  SCAN_REPORT_CHECK,
  SKIPPED_CHECK,
} from '../domain/leak-verification';
import type { LeakFinding, LeakSpan, LongTermFacts, ShortTermFacts } from '../domain/leaks';
import { decideKey, decisionIdFor, type KeyMetadata, type PipelineDeps } from '../domain/pipeline';
import {
  InvalidScanReportError,
  isScanReportEvent,
  parseScanReportEvent,
  type ScanReportEvent,
} from '../domain/scan-report';
import type {
  Decision,
  LeakEvidence,
  LeakLocation,
  LeakReport,
  LeakVerification,
  LeakVerificationResult,
  Trigger,
} from '../domain/types';
import type { UsageSource } from '../domain/usage-types';
import type { Policy } from '../shared/config';
import { fingerprint, redactSecrets } from '../shared/redact';
import * as z from '../shared/zod';

/**
 * The leak function (log quarantine): a CloudWatch Logs subscription batch → every log event scanned with
 * findLeakSpans() → a leaked long-term key is matched to the governed account's inventory, verified (one
 * read-only call to Bedrock authenticated by the found key: is it a working key?) and goes through the same
 * pipeline as a credential event (LEAKED: deactivated in enforce mode only when verified, critical notice, audit
 * decision); a string Bedrock rejects (forged, or a dead key) is recorded and notified, never acted on; a leaked
 * short-term key still within its lifetime is traced to its signer with CloudTrail and reported. The work per batch
 * is bounded whatever the batch holds (domain/leak-plan.ts): every distinct string is checked first (concurrently,
 * within a budget), verified leaks are decided first, forged strings are decided together per user, and what is
 * over a bound or out of time is logged and counted, never failing the batch. Nothing here
 * logs, stores or publishes a log message or a key: only fingerprints, redacted forms and locations; the key is
 * held in memory for the verification call only.
 *
 * Failures (issue 11, item 11): the function has NO on-failure destination, because Lambda's failure record of an
 * asynchronous invocation carries the whole request: the log lines, with live keys. So a failure never fails the
 * batch: each string (or group) is decided on its own, a failing one is tried again (DECISION_ATTEMPTS in all, with
 * backoff, while the invocation has time), and what is still not decided, like what is over a bound or out of time,
 * is sent to the function's own undecided-leaks queue as redacted records (domain/leak-undecided.ts) while the
 * other findings of the batch are decided. Only a batch that is no subscription event, or whose undecided records
 * cannot be queued, still throws: Lambda retries it, then drops it (AsyncEventsDropped, alarmed), storing nothing.
 * A `keyguard.scan` report out of shape is skipped instead (logged by its fields, counted in ScanReportsRefused): a
 * retry cannot mend it, and whoever may put reports could otherwise raise that alarm at will.
 */

export interface LeakRuntime {
  config: Policy;
  policyVersion: string;
  decisionsTable: string;
  keysTable: string;
  /** Approvals (read-only): only an approval naming LEAKED keeps a leaked key active. */
  approvalsTable: string;
  topicArn: string;
  /** The only account whose keys may be matched and deactivated; keys of other accounts are ignored. */
  governedAccountId: string;
  iamFor: IamClientProvider;
  /**
   * Organization mode (issue 12): a leaked long-term key is matched and acted on in the account it decodes to,
   * through that account's member role and with its effective policy, when keyguard governs the account; a key of
   * an account it does not govern is not acted on (outcome `ungoverned-account`, logged with why, counted).
   * @default none: only `governedAccountId`, with `iamFor`
   */
  organization?: () => Promise<GovernedAccounts>;
  /**
   * Organization mode: the account a short-term key's signer belongs to, from its access key id. A key of a governed
   * member account is traced in that account's event history through its member role; a key of an account keyguard
   * does not govern is not looked up (outcome `ungoverned-account`).
   * @default StsAccessKeyAccounts (sts:GetAccessKeyInfo with the function's credentials)
   */
  accessKeyAccounts?: AccessKeyAccountLookup;
  /** CloudTrail client per region (event history is regional), in the function's own account. */
  cloudTrailFor: CloudTrailClientProvider;
  /**
   * Timeout of one LookupEvents call (ms): a region that does not answer makes the signer unknown, not the batch fail.
   * @default LOOKUP_TIMEOUT_MS (3000)
   */
  issuerLookupTimeoutMs?: number;
  dynamo: DynamoDBClient;
  sns: SNSClient;
  logger: Logger;
  metrics: Metrics;
  /**
   * Whether a found key is a working key (BedrockKeyProbe live). Asked at most once per distinct key per batch,
   * and only for a key that could be acted on (a long-term key of the governed account, a live short-term key),
   * before the key's user is looked up: whatever the number of forged strings, IAM is asked once per user.
   */
  verifier: LeakVerifier;
  /**
   * Last use per key (the usage table), so that UNUSED is evaluated here as the sweep evaluates it.
   * @default none: UNUSED is not evaluated by this function
   */
  usage?: UsageSource;
  now?: () => Date;
  /**
   * Time the checks of one batch may take together (ms, wall clock). Past it, further keys in the batch are not checked
   * (UNVERIFIED: a critical notice, no automatic deactivation), so that a slow Bedrock and many distinct keys
   * cannot push a batch past the function's timeout and leave every finding in it undecided.
   * @default 20000 (a third of the function's 60 s)
   */
  verificationBudgetMs?: number;
  /** Monotonic milliseconds, for the budget. @default performance.now */
  clock?: () => number;
  /**
   * Time (ms) kept for decisions: once the invocation has less than this left, only verified leaks are still
   * decided (the rest is logged and counted), and checks stop when less than twice this is left.
   * @default 10000
   */
  deadlineReserveMs?: number;
  /** Checks in flight at once. @default VERIFICATION_CONCURRENCY (16) */
  verificationConcurrency?: number;
  /** Where findings not decided are kept: redacted records only (the SQS adapter in lambda/adapters/undecided-leaks.ts). */
  undecided: UndecidedLeakSink;
  /** Tries to decide one string (or group) before it is queued as undecided. @default DECISION_ATTEMPTS (3) */
  decisionAttempts?: number;
  /** Wait before the second try (ms), doubled for each further one. @default DECISION_RETRY_DELAY_MS (1000) */
  decisionRetryDelayMs?: number;
}

export const DEFAULT_VERIFICATION_BUDGET_MS = 20_000;
export const DEFAULT_DEADLINE_RESERVE_MS = 10_000;
/** Tries per string before it is queued as undecided (on top of the SDK's own retries of each call). */
export const DECISION_ATTEMPTS = 3;
/**
 * Organization mode: distinct short-term access key ids whose account is asked of STS while a batch is scanned (to
 * leave out keys of accounts keyguard does not govern before they are checked). A forged flood can name thousands of
 * ids: past this many, a key's account is asked only if the key is decided (the batch plan bounds those).
 */
export const SIGNER_ACCOUNT_LOOKUPS_PER_BATCH = 50;
export const DECISION_RETRY_DELAY_MS = 1000;

/** The shape of an EventBridge event id (a UUID) or a test's: anything else is not logged, it could hold a key. */
const EVENT_ID = /^[A-Za-z0-9-]{1,64}$/;

export class InvalidLogEventError extends Error {
  constructor(detail: string) {
    super(`event is not a CloudWatch Logs subscription event: ${detail}`);
    this.name = 'InvalidLogEventError';
  }
}

const SubscriptionEventSchema = z.object({ awslogs: z.object({ data: z.string().check(z.minLength(1)) }) });

const LogsDataSchema = z.object({
  messageType: z.string(),
  owner: z.string(),
  logGroup: z.string(),
  logStream: z.string(),
  subscriptionFilters: z.array(z.string()),
  logEvents: z.array(
    z.object({ id: z.string().check(z.minLength(1)), timestamp: z.number(), message: z.string() }),
  ),
});
type LogsData = z.infer<typeof LogsDataSchema>;

export type FindingOutcome =
  | 'deactivated'
  | 'deactivation-planned'
  | 'notified'
  | 'ambiguous'
  | 'recorded'
  /** Bedrock rejected the string: not a working key (forged, inactive, expired, deleted); nothing was done. */
  | 'rejected'
  /** Not verified (no telling answer): a critical notice, no automatic deactivation. */
  | 'unverified'
  | 'duplicate'
  /** Over a per-batch bound, or out of time: logged with counts and a metric, not decided (domain/leak-plan.ts). */
  | 'not-decided'
  /** Deciding it failed after the retries: logged, counted and queued (redacted) as undecided. */
  | 'failed'
  | 'expired'
  | 'foreign-account'
  /** Organization mode: the key's account is not governed (excluded, not a member, outside the targets). */
  | 'ungoverned-account'
  | 'no-bedrock-keys';

export interface FindingResult {
  kind: LeakFinding['kind'];
  fingerprint: string;
  redacted: string;
  logEventId: string;
  outcome: FindingOutcome;
  /** The long-term keys decided on, or the short-term key's access key id. */
  keyIds: string[];
  /** What the live check said, when the key was checked (or when its decision on record says). */
  verification?: LeakVerificationResult;
}

export type LeakResult =
  | { status: 'ignored'; reason: 'control-message' }
  /** A `keyguard scan --quarantine` report (one key, every place it was found): lambda/domain/scan-report.ts. */
  | { status: 'reported'; eventId: string; findings: FindingResult[] }
  /**
   * A `keyguard.scan` event out of shape, skipped (never thrown: a retry cannot mend it, and whoever may put reports
   * could otherwise raise the dropped-events alarm at will). Only the fields are named, never their values.
   */
  | { status: 'refused'; reason: 'malformed-report'; eventId?: string; fields: string[] }
  | { status: 'scanned'; logGroup: string; logStream: string; logEvents: number; findings: FindingResult[] };

/** Only paths and expectations are reported: values could hold anything, including a key. */
function issuesOf(error: z.core.$ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

export function parseSubscriptionEvent(raw: unknown): LogsData {
  const outer = SubscriptionEventSchema.safeParse(raw);
  if (!outer.success) throw new InvalidLogEventError(issuesOf(outer.error));
  let json: unknown;
  try {
    // Bounded (domain/leak-batch.ts): a payload no delivery can reach is refused before it costs memory or time.
    const raw = gunzipSync(Buffer.from(outer.data.awslogs.data, 'base64'), {
      maxOutputLength: MAX_BATCH_BYTES,
    });
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new InvalidLogEventError(`awslogs.data decompresses to more than ${MAX_BATCH_BYTES} bytes`);
    }
    throw new InvalidLogEventError('awslogs.data is not base64 of gzipped JSON');
  }
  const data = LogsDataSchema.safeParse(json);
  if (!data.success) throw new InvalidLogEventError(issuesOf(data.error));
  return data.data;
}

/** One sighting of a string: a log event holding it (a key repeated within one message is one sighting). */
interface Sighting {
  location: LeakLocation;
  /** Rank in the batch (results are returned in this order). */
  order: number;
}

/** A distinct string of the batch, with every log event it was found in. */
interface Candidate extends PlanCandidate {
  /** The finding at its first sighting. */
  finding: LeakFinding;
  /** Its first message and span there: the key is read back from them for the check, in memory only. */
  text: string;
  span: LeakSpan;
  sightings: Sighting[];
  verification?: LeakVerification;
  /** A scan report's key: its decision id (per key and location set) and what the scan reported. */
  decisionId?: string;
  report?: LeakReport;
}

/** The Lambda context's clock (absent in tests and local drivers: no deadline then). */
export interface LeakContext {
  getRemainingTimeInMillis(): number;
}

export function createLeakHandler(rt: LeakRuntime) {
  const { logger, metrics } = rt;
  const organization = rt.organization;
  // In organization mode IAM calls go to the key's account, through its member role.
  const { iamFor, notifierOptions } = accountAccess(organization, rt.iamFor);
  const directory = new IamKeyDirectory(iamFor);
  const audit = new DynamoAuditLog(documentClient(rt.dynamo), {
    decisionsTable: rt.decisionsTable,
    keysTable: rt.keysTable,
  });
  const notifier = new SnsNotifier(rt.sns, rt.topicArn, rt.config, notifierOptions);
  const deps: PipelineDeps = {
    directory,
    audit,
    enforcer: new IamEnforcer(iamFor, directory),
    notifier,
    approvals: new DynamoApprovalsStore(documentClient(rt.dynamo), rt.approvalsTable),
    // A leak decision about an idle key keeps its UNUSED (no false "resolved" for that code).
    ...(rt.usage ? { usage: rt.usage } : {}),
  };
  if (rt.config.usage.regions.length > 0 && !rt.usage) {
    // Not fatal: every other rule still applies. Loud, because the policy asks for UNUSED (the sweep's UNUSED
    // would be dropped by this function's decisions).
    logger.warn('usage.regions is set but this function has no usage table: UNUSED is not evaluated', {
      regions: rt.config.usage.regions,
    });
  }
  const lookupOptions = rt.issuerLookupTimeoutMs !== undefined ? { timeoutMs: rt.issuerLookupTimeoutMs } : {};
  const issuers = new CloudTrailIssuerLookup(rt.cloudTrailFor, lookupOptions);
  const accessKeyAccounts: AccessKeyAccountLookup | null = organization
    ? (rt.accessKeyAccounts ?? new StsAccessKeyAccounts())
    : null;
  /** Organization mode: each member account's event history, read through its member role. */
  const memberIssuers = new Map<string, CloudTrailIssuerLookup>();
  function issuersIn(accounts: GovernedAccounts, accountId: string): CloudTrailIssuerLookup {
    let lookup = memberIssuers.get(accountId);
    if (!lookup) {
      lookup = new CloudTrailIssuerLookup(
        cloudTrailClientsWith(() => accounts.access.credentialsFor(accountId)),
        lookupOptions,
      );
      memberIssuers.set(accountId, lookup);
    }
    return lookup;
  }
  /**
   * Who signed a short-term key, searched in the signer's account: the hub's own with the function's credentials, a
   * member account through its member role. Never throws: a role that cannot be assumed leaves the signer unknown.
   */
  async function signerIn(
    accountId: string,
    accessKeyId: string,
    region: string,
    since: Date,
    until: Date,
  ): Promise<IssuerLookup> {
    if (!organization || accountId === rt.governedAccountId) {
      return issuers.issuerOf(accessKeyId, region, since, until);
    }
    const accounts = await organization();
    try {
      // Assumed first, so that an unusable role is one clear reason rather than one failure per region.
      await accounts.access.credentialsFor(accountId);
    } catch (err) {
      const code =
        err instanceof MemberRoleError ? err.code : err instanceof Error ? err.name : 'unknown error';
      return {
        issuer: null,
        unknownReason: `account ${accountId}: its member role could not be assumed (${code.slice(0, 32)}), not looked up`,
      };
    }
    return issuersIn(accounts, accountId).issuerOf(accessKeyId, region, since, until);
  }
  const now = rt.now ?? (() => new Date());

  /** The policy a key's account is decided with (its notifier quotes that policy), or why it is not governed. */
  interface AccountPolicy {
    config: Policy;
    policyVersion: string;
    deps: PipelineDeps;
    notifier: SnsNotifier;
  }
  const base: AccountPolicy = { config: rt.config, policyVersion: rt.policyVersion, deps, notifier };
  const byVersion = new Map<string, AccountPolicy>([[rt.policyVersion, base]]);
  async function policyOf(accountId: string): Promise<AccountPolicy | { ungoverned: string }> {
    if (!organization) return accountId === rt.governedAccountId ? base : { ungoverned: 'foreign-account' };
    const accounts = await organization();
    const g = await accounts.check(accountId);
    if (!g.governed) return { ungoverned: g.reason };
    const effective = accounts.policyFor(rt.config, rt.policyVersion, g.placement);
    let p = byVersion.get(effective.policyVersion);
    if (!p) {
      const n = new SnsNotifier(rt.sns, rt.topicArn, effective.policy, notifierOptions);
      p = {
        config: effective.policy,
        policyVersion: effective.policyVersion,
        deps: { ...deps, notifier: n },
        notifier: n,
      };
      byVersion.set(effective.policyVersion, p);
    }
    return p;
  }
  const budgetMs = rt.verificationBudgetMs ?? DEFAULT_VERIFICATION_BUDGET_MS;
  const reserveMs = rt.deadlineReserveMs ?? DEFAULT_DEADLINE_RESERVE_MS;
  const concurrency = rt.verificationConcurrency ?? VERIFICATION_CONCURRENCY;
  const clock = rt.clock ?? (() => performance.now());
  const attempts = Math.max(1, rt.decisionAttempts ?? DECISION_ATTEMPTS);
  const retryDelayMs = rt.decisionRetryDelayMs ?? DECISION_RETRY_DELAY_MS;

  function count(name: string, dimension: [string, string] | null, value = 1): void {
    const m = metrics.singleMetric();
    if (dimension) m.addDimension(dimension[0], dimension[1]);
    m.addMetric(name, MetricUnit.Count, value);
  }

  /** State of the batch being scanned (a function instance handles one batch at a time). */
  interface BatchState {
    results: Array<FindingResult & { order: number }>;
    /** The user's Bedrock keys, listed once per batch. */
    userKeys: Map<string, Promise<KeyMetadata[]>>;
    /** The first log event naming each subject (a group decision's trigger: the same on every delivery). */
    firstOfSubject: Map<string, LeakLocation>;
    /** Time left in the invocation (ms). */
    remaining: () => number;
    /** Fingerprints with a result (decided or ignored): a retry decides only the others. */
    settled: Set<string>;
    /** Strings not decided, queued at the end of the batch (redacted records). */
    undecided: UndecidedLeak[];
    /** Organization mode: whether each account named by a key is governed (asked once per account per batch). */
    governance: Map<string, Promise<string | null>>;
    /** Organization mode: the account of each short-term key's access key id (null: STS could not tell). */
    signerAccounts: Map<string, Promise<string | null>>;
  }

  /** An empty batch state; its time left is the invocation's (unbounded without a Lambda context, in tests). */
  function newBatchState(context: LeakContext | undefined): BatchState {
    return {
      results: [],
      userKeys: new Map(),
      firstOfSubject: new Map(),
      remaining: () => (context ? context.getRemainingTimeInMillis() : Number.POSITIVE_INFINITY),
      settled: new Set(),
      undecided: [],
      governance: new Map(),
      signerAccounts: new Map(),
    };
  }

  /**
   * Why a key's account is not governed, or null. In organization mode a failure to tell (Organizations throttled
   * past retries, the reader denied) is null here: the key goes on to its decision, which asks again and, failing
   * still, is retried and queued as undecided like any failed decision (the batch itself never fails for it).
   */
  function ungovernedAccount(b: BatchState, accountId: string): Promise<string | null> {
    if (!organization) return Promise.resolve(accountId === rt.governedAccountId ? null : 'foreign-account');
    let answer = b.governance.get(accountId);
    if (!answer) {
      answer = organization()
        .then((accounts) => accounts.check(accountId))
        .then(
          (g) => (g.governed ? null : g.reason),
          () => null,
        );
      b.governance.set(accountId, answer);
    }
    return answer;
  }

  /**
   * Organization mode: the account a short-term key was signed in, or null when STS cannot tell now or the batch has
   * asked SIGNER_ACCOUNT_LOOKUPS_PER_BATCH ids already (the key goes on to its decision, which asks again and,
   * failing still, is retried and queued as undecided).
   */
  function signerAccount(b: BatchState, accessKeyId: string): Promise<string | null> {
    if (!accessKeyAccounts) return Promise.resolve(rt.governedAccountId);
    let answer = b.signerAccounts.get(accessKeyId);
    if (!answer && b.signerAccounts.size >= SIGNER_ACCOUNT_LOOKUPS_PER_BATCH) return Promise.resolve(null);
    if (!answer) {
      answer = accessKeyAccounts.accountOf(accessKeyId).then(
        (a) => a,
        () => null,
      );
      b.signerAccounts.set(accessKeyId, answer);
    }
    return answer;
  }

  /** A key of an account keyguard does not act in: as before for one account, with why in organization mode. */
  function ignoredAccount(
    b: BatchState,
    f: LeakFinding,
    sighting: Sighting,
    why: string,
    accountId = f.longTerm?.accountId ?? '?',
  ): void {
    if (!organization) ignored(b, 'foreign-account', f, sighting);
    else ignored(b, 'ungoverned-account', f, sighting, `account ${accountId}: ${why}`);
  }

  function settle(
    b: BatchState,
    c: Candidate,
    outcome: FindingOutcome,
    keyIds: string[],
    verification?: LeakVerificationResult | null,
  ): void {
    b.settled.add(c.fingerprint);
    for (const s of c.sightings) {
      b.results.push({
        kind: c.finding.kind,
        fingerprint: c.fingerprint,
        redacted: c.finding.redacted,
        logEventId: s.location.logEventId,
        outcome,
        keyIds,
        ...(verification ? { verification } : {}),
        order: s.order,
      });
    }
  }

  function ignored(
    b: BatchState,
    reason: 'foreign-account' | 'ungoverned-account' | 'no-bedrock-keys' | 'expired',
    f: LeakFinding,
    sighting: Sighting,
    detail?: string,
  ): void {
    logger.info('leaked key not acted on', {
      reason,
      ...(detail ? { detail } : {}),
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      location: sighting.location,
    });
    count('IgnoredLeaks', ['reason', reason]);
    b.settled.add(f.fingerprint);
    b.results.push({
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      logEventId: sighting.location.logEventId,
      outcome: reason,
      keyIds: [],
      order: sighting.order,
    });
  }

  function keysOf(b: BatchState, facts: LongTermFacts): Promise<KeyMetadata[]> {
    const id = `${facts.accountId}/${facts.userName}`;
    let keys = b.userKeys.get(id);
    if (!keys) {
      const listed = directory.listUserKeys(facts.accountId, facts.userName);
      // A failed listing is not remembered: the retry of the finding lists again.
      listed.catch(() => {
        if (b.userKeys.get(id) === listed) b.userKeys.delete(id);
      });
      b.userKeys.set(id, listed);
      keys = listed;
    }
    return keys;
  }

  /** A finding already on record under this decision id for one of these keys (a redelivered batch). */
  async function onRecord(targets: KeyMetadata[], accountId: string, decisionId: string) {
    for (const meta of targets) {
      const d = await audit.getDecision(accountId, meta.keyId, decisionId);
      if (d) return d;
    }
    return null;
  }

  /** The evidence of a string: its first sighting, and the counts when it was seen in several log events. */
  function evidenceOf(c: Candidate): LeakEvidence {
    const first = c.sightings[0] as Sighting;
    return {
      fingerprint: c.fingerprint,
      redacted: c.finding.redacted,
      location: first.location,
      ...(c.report ? { report: c.report } : {}),
      ...(c.sightings.length > 1
        ? {
            sightings: sightingsOf(
              c.sightings.map((s) => ({ fingerprint: c.fingerprint, logEventId: s.location.logEventId })),
            ),
          }
        : {}),
    };
  }

  function decisionIdOf(c: Candidate): string {
    if (c.decisionId) return c.decisionId;
    const loc = (c.sightings[0] as Sighting).location;
    return decisionIdFor('leak', loc.timestamp, `${loc.logEventId}/${c.fingerprint}`);
  }

  function triggerOf(location: LeakLocation): Trigger {
    return { kind: 'leak', eventId: location.logEventId, eventTime: location.timestamp };
  }

  /**
   * Strings naming one user decided together (domain/leak-plan.ts): all its rejected strings, or its unverified
   * ones past the per-user bound. One decision per key the strings name, one notice, nothing acted on and nothing
   * remembered on the key. The decision id is the user's first log event in the batch: a redelivery finds it.
   * `own`: one string a decision of its own (its id per string), from longTerm.
   */
  async function group(b: BatchState, g: LeakGroup<Candidate>, own?: { decisionId: string }): Promise<void> {
    const facts = (g.candidates[0] as Candidate).finding.longTerm as LongTermFacts;
    const policy = await policyOf(facts.accountId);
    if ('ungoverned' in policy) {
      for (const c of g.candidates)
        for (const s of c.sightings) ignoredAccount(b, c.finding, s, policy.ungoverned);
      return;
    }
    const keys = await keysOf(b, facts);
    if (keys.length === 0) {
      for (const c of g.candidates) for (const s of c.sightings) ignored(b, 'no-bedrock-keys', c.finding, s);
      return;
    }
    const { targets, certain } = leakTargets(keys, facts);
    const known = await Promise.all(targets.map((k) => audit.getKnownKey(facts.accountId, k.keyId)));
    let members = g.candidates;
    if (g.result === 'REJECTED' && !own) {
      // A redelivered batch: a key this batch got deactivated is rejected by now. The leak remembered on the key
      // says so, and the decision on record for this batch: that string is finished one by one with it. (A key
      // deactivated for an earlier batch's leak has no decision for this one: it is rejected now, with the rest.)
      const leaks = new Set(known.map((k) => k?.history?.leak?.fingerprint));
      const finished = new Set<string>();
      for (const c of members.filter((m) => leaks.has(m.fingerprint))) {
        if (!(await onRecord(targets, facts.accountId, decisionIdOf(c)))) continue;
        await longTerm(b, c);
        finished.add(c.fingerprint);
      }
      members = members.filter((m) => !finished.has(m.fingerprint));
      if (members.length === 0) return;
    }
    const first = members[0] as Candidate;
    const trigger = triggerOf(b.firstOfSubject.get(g.subject) ?? (first.sightings[0] as Sighting).location);
    const decisionId =
      own?.decisionId ??
      decisionIdFor(
        'leak',
        trigger.eventTime as string,
        `${trigger.eventId}/${g.result.toLowerCase()}/${facts.userName}`,
      );
    const base = evidenceOf(first);
    const leak = {
      ...base,
      ...(certain ? {} : { candidates: targets.map((k) => k.keyId) }),
      ...(first.verification ? { verification: first.verification } : {}),
      sightings: sightingsOf(
        members.flatMap((c) =>
          c.sightings.map((s) => ({ fingerprint: c.fingerprint, logEventId: s.location.logEventId })),
        ),
      ),
    };
    let duplicate = false;
    let notified = false;
    let userTags: Record<string, string> | null = null;
    for (const [i, meta] of targets.entries()) {
      if (await audit.getDecision(facts.accountId, meta.keyId, decisionId)) {
        duplicate = true;
        continue;
      }
      userTags ??= await directory.getUserTags(facts.accountId, facts.userName);
      const input = {
        decisionId,
        now: now(),
        accountId: facts.accountId,
        userName: facts.userName,
        meta,
        owner: resolveOwner(
          { ...meta, accountId: facts.accountId, userTags, creator: known[i]?.creator ?? null },
          policy.config,
        ),
        trigger,
        where: describeLeak(leak),
        config: policy.config,
        policyVersion: policy.policyVersion,
      };
      const built =
        g.result === 'REJECTED' && leak.sightings.strings === 1
          ? rejectedLeakDecision({ ...input, leak })
          : leakGroupDecision({
              ...input,
              leak,
              result: g.result,
              decidedOneByOne: g.oneByOne,
            });
      // One notice per group. Notice first, then the record: a failure in between re-sends it on retry.
      const decision: Decision = notified ? { ...built, notice: null } : built;
      if (decision.notice) {
        await policy.notifier.notify(decision);
        notified = true;
      }
      const recorded = await audit.recordDecision(decision);
      duplicate ||= recorded.duplicate;
      logger.info('found strings decided together: not acted on', {
        result: g.result,
        accountId: facts.accountId,
        userName: facts.userName,
        keyId: meta.keyId,
        decisionId,
        sightings: leak.sightings,
        duplicate: recorded.duplicate,
      });
    }
    const outcome: FindingOutcome = duplicate
      ? 'duplicate'
      : g.result === 'REJECTED'
        ? 'rejected'
        : 'unverified';
    for (const c of members) {
      settle(
        b,
        c,
        outcome,
        targets.map((k) => k.keyId),
        c.verification?.result,
      );
    }
  }

  async function longTerm(b: BatchState, c: Candidate): Promise<void> {
    const facts = c.finding.longTerm as LongTermFacts;
    const policy = await policyOf(facts.accountId);
    if ('ungoverned' in policy) {
      for (const s of c.sightings) ignoredAccount(b, c.finding, s, policy.ungoverned);
      return;
    }
    const keys = await keysOf(b, facts);
    if (keys.length === 0) {
      for (const s of c.sightings) ignored(b, 'no-bedrock-keys', c.finding, s);
      return;
    }
    const { targets, certain } = leakTargets(keys, facts);
    const evidence = evidenceOf(c);
    const found: LeakEvidence = certain ? evidence : { ...evidence, candidates: targets.map((k) => k.keyId) };
    const decisionId = decisionIdOf(c);
    // A redelivered finding is finished with the verification on record (the key may be Inactive by now, by
    // keyguard's own deactivation, and would then be rejected).
    const earlier = await onRecord(targets, facts.accountId, decisionId);
    const verification = earlier ? (earlier.leak?.verification ?? null) : (c.verification ?? null);
    const leak: LeakEvidence = verification ? { ...found, verification } : found;
    if (verification?.result === 'REJECTED') {
      // Not expected (rejected strings are decided in groups): a decision on record saying REJECTED.
      return group(
        b,
        { subject: c.subject, result: 'REJECTED', candidates: [c], oneByOne: 0 },
        { decisionId },
      );
    }
    const decisions: Decision[] = [];
    let duplicate = false;
    for (const meta of targets) {
      const step = await decideKey(
        {
          accountId: facts.accountId,
          keyId: meta.keyId,
          userName: facts.userName,
          meta,
          trigger: triggerOf(evidence.location),
          decisionId,
          record: 'always',
          leak,
        },
        policy.deps,
        { config: policy.config, policyVersion: policy.policyVersion, now: now() },
      );
      if (!step) continue;
      duplicate ||= step.duplicate;
      decisions.push(step.decision);
      logger.info('leaked key decided', {
        kind: c.finding.kind,
        fingerprint: c.fingerprint,
        redacted: c.finding.redacted,
        location: evidence.location,
        sightings: c.sightings.length,
        accountId: step.decision.accountId,
        userName: step.decision.userName,
        keyId: step.decision.keyId,
        decisionId: step.decision.decisionId,
        action: step.decision.action,
        applied: step.decision.applied,
        candidates: leak.candidates,
        verification: step.decision.leak?.verification,
        duplicate: step.duplicate,
        notified: step.notified,
      });
      if (step.decision.applied && !step.duplicate) metrics.addMetric('KeysDeactivated', MetricUnit.Count, 1);
    }
    const outcome: FindingOutcome = duplicate
      ? 'duplicate'
      : !certain
        ? 'ambiguous'
        : decisions.some((d) => d.applied)
          ? 'deactivated'
          : decisions.some((d) => d.action === 'DEACTIVATE')
            ? 'deactivation-planned'
            : verification?.result !== 'VERIFIED'
              ? 'unverified'
              : 'recorded';
    const result = decisions[0]?.leak?.verification?.result ?? verification?.result;
    settle(
      b,
      c,
      outcome,
      decisions.map((d) => d.keyId),
      result,
    );
  }

  async function shortTerm(b: BatchState, c: Candidate): Promise<void> {
    const facts = c.finding.shortTerm as ShortTermFacts;
    const at = now();
    // The signer's account (organization mode; throws when STS cannot tell: retried, then queued as undecided).
    const accountId = accessKeyAccounts
      ? await accessKeyAccounts.accountOf(facts.accessKeyId)
      : rt.governedAccountId;
    const policy = await policyOf(accountId);
    if ('ungoverned' in policy) {
      for (const s of c.sightings) ignoredAccount(b, c.finding, s, policy.ungoverned, accountId);
      return;
    }
    const decisionId = decisionIdOf(c);
    const evidence = evidenceOf(c);
    // A redelivered batch: this finding is already on record (and its notice sent).
    const earlier = await audit.getDecision(accountId, facts.accessKeyId, decisionId);
    if (earlier) {
      settle(b, c, 'duplicate', [facts.accessKeyId], earlier.leak?.verification?.result);
      return;
    }
    // Nothing is deactivated for a short-term key (it is no IAM credential), but the notice tells its signer to
    // revoke sessions or an access key: a string Bedrock rejects (forged, or already dead) must not say so.
    const verification = c.verification as LeakVerification;
    const rejected = verification.result === 'REJECTED';
    // Calls made with the access key id around the signing show who holds it (the signer's session can be
    // older than the signing, by up to the longest session: 12 h).
    // Never throws: a region not called or failing (forged, not enabled, denied, timed out) leaves the signer unknown.
    const { issuer, unknownReason } = await signerIn(
      accountId,
      facts.accessKeyId,
      facts.region,
      new Date(Date.parse(facts.signedAt) - 12 * HOUR_MS),
      at,
    );
    if (unknownReason) {
      logger.warn('short-term key signer not looked up everywhere', {
        fingerprint: c.fingerprint,
        accessKeyId: facts.accessKeyId,
        region: facts.region,
        reason: unknownReason,
      });
      count('IssuerLookupsFailed', null);
    }
    const leak: LeakEvidence = {
      ...evidence,
      issuer,
      ...(unknownReason ? { issuerUnknownReason: unknownReason } : {}),
      verification,
    };
    const decision = shortTermLeakDecision({
      decisionId,
      now: at,
      accountId,
      facts,
      issuer,
      trigger: triggerOf(evidence.location),
      leak,
      notify: true,
      config: policy.config,
      policyVersion: policy.policyVersion,
    });
    // Notice first, then the record: a failure in between re-sends the notice on retry rather than losing it.
    if (decision.notice) await policy.notifier.notify(decision);
    const recorded = await audit.recordDecision(decision);
    logger.info('leaked short-term key reported', {
      kind: c.finding.kind,
      fingerprint: c.fingerprint,
      redacted: c.finding.redacted,
      location: evidence.location,
      sightings: c.sightings.length,
      accessKeyId: facts.accessKeyId,
      accountId,
      issuer,
      issuerUnknownReason: unknownReason,
      expiresAt: facts.expiresAt,
      decisionId,
      verification,
      duplicate: recorded.duplicate,
    });
    settle(
      b,
      c,
      recorded.duplicate ? 'duplicate' : rejected ? 'rejected' : 'notified',
      [facts.accessKeyId],
      verification.result,
    );
  }

  function unverified(reason: string, method = 'none'): LeakVerification {
    return { result: 'UNVERIFIED', method, checkedAt: now().toISOString(), reason, principal: null };
  }

  /**
   * Reads the key back from its log line (in memory only, for this call) and asks the verifier, unless the
   * batch's checks have used their budget or the invocation's time is needed for the decisions. Never throws:
   * a verifier failure is an UNVERIFIED answer.
   */
  async function verifyOnce(b: BatchState, c: Candidate, startedAt: number): Promise<LeakVerification> {
    let v: LeakVerification;
    const key = keyInText(c.text, c.span, fingerprint);
    if (clock() - startedAt >= budgetMs) {
      v = unverified(
        `the checks of this batch took their whole budget (${budgetMs} ms): no call made`,
        SKIPPED_CHECK,
      );
    } else if (b.remaining() < 2 * reserveMs) {
      v = unverified(
        "the function's remaining time was kept for deciding the batch: no call made",
        SKIPPED_CHECK,
      );
    } else if (key === null) {
      v = unverified('the key could not be read back from its log line for the check');
    } else {
      const f = c.finding;
      const candidate: KeyCandidate =
        f.kind === 'LONG_TERM' && f.longTerm
          ? { kind: 'LONG_TERM', key, accountId: f.longTerm.accountId, userName: f.longTerm.userName }
          : { kind: 'SHORT_TERM', key, region: f.shortTerm?.region ?? '' };
      try {
        v = await rt.verifier.verify(candidate);
      } catch (err) {
        v = unverified(`the check failed: ${err instanceof Error ? err.name : 'unknown error'}`);
      }
    }
    count('LeakVerifications', ['result', v.result]);
    logger.info('found key checked', {
      fingerprint: c.fingerprint,
      redacted: c.finding.redacted,
      verification: v,
    });
    return v;
  }

  /** Strings not decided in this batch (over a bound, or out of time): logged with counts, and counted. */
  function notDecidedHere(b: BatchState, cs: Candidate[], reason: 'bound' | 'deadline'): void {
    if (cs.length === 0) return;
    const summary = notDecided(
      cs.map((c) => ({
        fingerprint: c.fingerprint,
        subject: c.subject,
        result: c.verification?.result ?? 'UNVERIFIED',
        findings: c.sightings.length,
      })),
    );
    logger.warn('leak findings not decided in this batch', { reason, ...summary });
    count('LeaksNotDecided', ['reason', reason], cs.length);
    for (const c of cs) {
      settle(b, c, 'not-decided', [], c.verification?.result);
      queueUndecided(b, c, reason);
    }
  }

  /** A redacted record of a string not decided, for the undecided-leaks queue: never the key, never the line. */
  function queueUndecided(b: BatchState, c: Candidate, reason: UndecidedReason, error?: string): void {
    const f = c.finding;
    b.undecided.push({
      kind: f.kind,
      fingerprint: c.fingerprint,
      redacted: f.redacted,
      ...(f.longTerm ? { accountId: f.longTerm.accountId, userName: f.longTerm.userName } : {}),
      ...(f.shortTerm ? { accessKeyId: f.shortTerm.accessKeyId } : {}),
      verification: c.verification?.result ?? null,
      reason,
      ...(error ? { error } : {}),
      sightings: c.sightings.length,
      logEvents: undecidedSightings(c.sightings.map((s) => s.location)),
    });
  }

  /** An error by name and message, the message redacted (an SDK error could echo anything it was given). */
  function describeError(err: unknown): { name: string; message: string } {
    return err instanceof Error
      ? { name: err.name, message: redactSecrets(err.message) }
      : { name: 'unknown error', message: '' };
  }

  /**
   * Decides `cs` (one string, or a group's strings) with `run`, trying again while some are not settled, up to
   * `attempts` tries and while the invocation has time; `run` gets the strings still to decide. What is still not
   * decided then is logged, counted and queued as undecided: one finding's failure never fails the batch.
   */
  async function attempt(
    b: BatchState,
    cs: Candidate[],
    run: (pending: Candidate[]) => Promise<void>,
  ): Promise<void> {
    let pending = cs;
    let lastError: { name: string; message: string } = { name: 'unknown error', message: '' };
    for (let i = 1; i <= attempts; i++) {
      try {
        await run(pending);
        return;
      } catch (err) {
        lastError = describeError(err);
        pending = pending.filter((c) => !b.settled.has(c.fingerprint));
        logger.warn('deciding a leak finding failed', {
          attempt: i,
          of: attempts,
          fingerprints: pending.map((c) => c.fingerprint),
          error: lastError,
        });
        if (pending.length === 0) return;
        const delay = retryDelayMs * 2 ** (i - 1);
        if (i === attempts || b.remaining() - delay < reserveMs) break;
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    logger.error('leak findings not decided: queued as undecided (redacted)', {
      reason: 'error',
      fingerprints: pending.map((c) => c.fingerprint),
      error: lastError,
    });
    count('LeaksNotDecided', ['reason', 'error'], pending.length);
    for (const c of pending) {
      settle(b, c, 'failed', [], c.verification?.result);
      queueUndecided(b, c, 'error', lastError.name);
    }
  }

  async function decide(b: BatchState, c: Candidate): Promise<void> {
    if (c.kind === 'LONG_TERM') await longTerm(b, c);
    else await shortTerm(b, c);
  }

  async function scan(data: LogsData, context: LeakContext | undefined): Promise<LeakResult> {
    if (data.messageType === 'CONTROL_MESSAGE') {
      logger.info('control message ignored', { logGroup: data.logGroup });
      return { status: 'ignored', reason: 'control-message' };
    }
    // Before anything can fail: if this invocation is dropped, this line says which log events to look at again.
    logger.info('log batch received', {
      logGroup: data.logGroup,
      logStream: data.logStream,
      logEvents: data.logEvents.length,
      firstEventAt: timeOf(data.logEvents[0]?.timestamp),
      lastEventAt: timeOf(data.logEvents.at(-1)?.timestamp),
    });
    const b = newBatchState(context);
    // Every message is scanned before any decision (bounded work: domain/leak-batch.ts).
    const batch = findBatchLeaks(data.logEvents, { now: now() });
    const candidates = new Map<string, Candidate>();
    let order = 0;
    for (const { event: e, spans } of batch.found) {
      const timestamp = new Date(e.timestamp).toISOString();
      for (const span of spans) {
        const { index: _index, end: _end, ...f } = span;
        count('LeaksFound', ['kind', f.kind]);
        const location: LeakLocation = {
          logGroup: data.logGroup,
          logStream: data.logStream,
          logEventId: e.id,
          timestamp,
          line: f.line,
          column: f.column,
        };
        const sighting: Sighting = { location, order: order++ };
        const subject = f.longTerm
          ? `${f.longTerm.accountId}/${f.longTerm.userName}`
          : f.shortTerm?.accessKeyId;
        if (!subject) continue;
        // Keys that cannot be acted on are not checked: another account's, an expired short-term key.
        const ungoverned = f.longTerm ? await ungovernedAccount(b, f.longTerm.accountId) : null;
        if (ungoverned) {
          ignoredAccount(b, f, sighting, ungoverned);
          continue;
        }
        if (f.shortTerm?.expired) {
          ignored(b, 'expired', f, sighting);
          continue;
        }
        if (f.shortTerm && accessKeyAccounts) {
          // Organization mode: a short-term key of an account keyguard does not govern is neither checked nor traced.
          const signedIn = await signerAccount(b, f.shortTerm.accessKeyId);
          const why = signedIn ? await ungovernedAccount(b, signedIn) : null;
          if (signedIn && why) {
            ignoredAccount(b, f, sighting, why, signedIn);
            continue;
          }
        }
        if (!b.firstOfSubject.has(subject)) b.firstOfSubject.set(subject, location);
        const known = candidates.get(f.fingerprint);
        if (known) known.sightings.push(sighting);
        else {
          candidates.set(f.fingerprint, {
            fingerprint: f.fingerprint,
            kind: f.kind,
            subject,
            order: sighting.order,
            finding: f,
            text: e.message,
            span,
            sightings: [sighting],
          });
        }
      }
    }
    // Each distinct string checked once, a bounded number at a time, round robin over users (domain/leak-plan.ts).
    const startedAt = clock();
    await eachBounded(verificationOrder([...candidates.values()]), concurrency, async (c) => {
      c.verification = await verifyOnce(b, c, startedAt);
    });
    const plan = planBatch([...candidates.values()], (c) => c.verification?.result ?? 'UNVERIFIED');
    // Verified leaks first, whatever the time: a retry finishes them if the invocation runs out.
    // Each string (or group) on its own: a failure is retried, then queued as undecided, never failing the rest.
    const one = (c: Candidate) => attempt(b, [c], async () => decide(b, c));
    for (const c of plan.verified) await one(c);
    const late: Candidate[] = [];
    for (const c of plan.individual) {
      if (b.remaining() < reserveMs) late.push(c);
      else await one(c);
    }
    for (const g of plan.groups) {
      if (b.remaining() < reserveMs) late.push(...g.candidates);
      else await attempt(b, g.candidates, (pending) => group(b, { ...g, candidates: pending }));
    }
    notDecidedHere(b, plan.overflow, 'bound');
    notDecidedHere(b, late, 'deadline');
    if (b.undecided.length > 0) {
      // Throws when the queue cannot take them: the batch fails then (retried, then dropped: nothing stored).
      await rt.undecided.record({ logGroup: data.logGroup, logStream: data.logStream, leaks: b.undecided });
      logger.info('undecided leak findings queued', { strings: b.undecided.length });
    }
    const findings = b.results.sort((x, y) => x.order - y.order).map(({ order: _o, ...r }) => r);
    logger.info('log batch scanned', {
      logGroup: data.logGroup,
      logStream: data.logStream,
      logEvents: data.logEvents.length,
      scannedChars: batch.chars,
      detectionWork: batch.work,
      findings: findings.length,
      distinctStrings: candidates.size,
      verified: plan.verified.length,
      groups: plan.groups.length,
    });
    return {
      status: 'scanned',
      logGroup: data.logGroup,
      logStream: data.logStream,
      logEvents: data.logEvents.length,
      findings,
    };
  }

  /**
   * A key reported by `keyguard scan --quarantine` (issue 15), decided as a key found in a log: the same account
   * checks, the same decision path (LEAKED, the several-candidates rule, short-term keys traced to their signer, one
   * notice, idempotent records), with one difference: the report does not carry the key, so it is never checked with
   * Bedrock and never deactivates a key by itself (SCAN_REPORT_CHECK). One decision per key per location set: the
   * decision id is the fingerprint and the digest of every place it was found, so a redelivered event or the same
   * scan again records nothing new, and a key found in a new place is decided again with every place.
   */
  async function reported(ev: ScanReportEvent, context: LeakContext | undefined): Promise<LeakResult> {
    const d = ev.detail;
    const at = now();
    logger.info('scan report received', {
      eventId: ev.eventId,
      senderAccount: ev.senderAccount,
      kind: d.kind,
      fingerprint: d.fingerprint,
      redacted: d.redacted,
      locationCount: d.locationCount,
      scanner: d.scanner,
    });
    count('LeaksReported', ['kind', d.kind]);
    const b = newBatchState(context);
    const first = d.locations[0] as (typeof d.locations)[number];
    const location: LeakLocation = {
      logGroup: 'keyguard scan',
      logStream: first.path,
      logEventId: ev.eventId,
      timestamp: d.scannedAt,
      line: first.line,
      column: first.column,
      file: { path: first.path, ...(first.commit ? { commit: first.commit } : {}) },
    };
    const signedAt = d.shortTerm ? Date.parse(d.shortTerm.signedAt) : 0;
    const expiresAt = d.shortTerm ? Date.parse(d.shortTerm.expiresAt) : 0;
    const finding: LeakFinding = {
      kind: d.kind,
      line: first.line,
      column: first.column,
      fingerprint: d.fingerprint,
      redacted: d.redacted,
      ...(d.longTerm ? { longTerm: { ...d.longTerm } } : {}),
      ...(d.shortTerm
        ? {
            shortTerm: {
              ...d.shortTerm,
              expiresInSeconds: Math.max(0, Math.round((expiresAt - signedAt) / 1000)),
              // Decided by the function's clock, not the report's: a forged report cannot keep a dead key alive.
              expired: expiresAt <= at.getTime(),
              // Not reported: whether the signer used temporary credentials does not change the decision.
              hasSessionToken: false,
            },
          }
        : {}),
    };
    const sighting: Sighting = { location, order: 0 };
    const subject = finding.longTerm
      ? `${finding.longTerm.accountId}/${finding.longTerm.userName}`
      : (finding.shortTerm?.accessKeyId as string);
    const report: LeakReport = {
      by: 'keyguard scan',
      scannerVersion: d.scanner.version,
      eventId: ev.eventId,
      scannedAt: d.scannedAt,
      locationCount: d.locationCount,
      locations: d.locations,
      locationSetDigest: d.locationSetDigest,
    };
    const c: Candidate = {
      fingerprint: d.fingerprint,
      kind: d.kind,
      subject,
      order: 0,
      finding,
      text: '',
      span: { ...finding, index: 0, end: 0 },
      sightings: [sighting],
      decisionId: decisionIdFor(
        'leak',
        'scan-report',
        `${d.fingerprint}/${d.locationSetDigest.slice(0, 32)}`,
      ),
      report,
      verification: {
        result: 'UNVERIFIED',
        method: SCAN_REPORT_CHECK,
        checkedAt: at.toISOString(),
        reason: `reported by keyguard scan ${d.scanner.version} (event ${ev.eventId}) without the key: not checked`,
        principal: null,
      },
    };
    const ungoverned = finding.longTerm ? await ungovernedAccount(b, finding.longTerm.accountId) : null;
    if (ungoverned) ignoredAccount(b, finding, sighting, ungoverned);
    else if (finding.shortTerm?.expired) ignored(b, 'expired', finding, sighting);
    else {
      b.firstOfSubject.set(subject, location);
      await attempt(b, [c], async () => decide(b, c));
    }
    if (b.undecided.length > 0) {
      await rt.undecided.record({ logGroup: 'keyguard scan', logStream: first.path, leaks: b.undecided });
    }
    return { status: 'reported', eventId: ev.eventId, findings: b.results.map(({ order: _o, ...r }) => r) };
  }

  /**
   * A malformed or forged scan report: logged naming its fields (never a value: any could hold a key) and the
   * EventBridge id when it has the shape of one, counted (ScanReportsRefused, reason malformed), then skipped.
   * Throwing would only have Lambda retry an event that can never pass, then drop it into the dropped-events alarm.
   */
  function refused(event: unknown, err: InvalidScanReportError): LeakResult {
    const id = (event as { id?: unknown }).id;
    const eventId = typeof id === 'string' && EVENT_ID.test(id) ? id : undefined;
    logger.warn('scan report refused: malformed, skipped', {
      ...(eventId ? { eventId } : {}),
      fields: err.fields,
    });
    count('ScanReportsRefused', ['reason', 'malformed']);
    return {
      status: 'refused',
      reason: 'malformed-report',
      ...(eventId ? { eventId } : {}),
      fields: err.fields,
    };
  }

  return async function handler(event: unknown, context?: LeakContext): Promise<LeakResult> {
    try {
      if (isScanReportEvent(event)) {
        let report: ScanReportEvent;
        try {
          report = parseScanReportEvent(event);
        } catch (err) {
          if (err instanceof InvalidScanReportError) return refused(event, err);
          throw err;
        }
        return await reported(report, context);
      }
      return await scan(parseSubscriptionEvent(event), context);
    } catch (err) {
      // The error is logged by name and message only: none of them carries a log line.
      // No failure destination (its record would hold the log lines): after Lambda's retries the event is dropped
      // and counted in AWS/Lambda AsyncEventsDropped, which is alarmed (lib/constructs/leak-quarantine.ts).
      logger.error('log batch failed; Lambda retries it, then drops it (no failure destination)', {
        error: describeError(err),
      });
      throw err;
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}

/** A log event's time (ISO), or null for an empty batch or a time out of range. */
function timeOf(ms: number | undefined): string | null {
  if (ms === undefined) return null;
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Runs `fn` on every item, at most `limit` at a time, in the order given. */
async function eachBounded<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
