import { gunzipSync } from 'node:zlib';
import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import { z } from 'zod';
import { DynamoApprovalsStore } from '../adapters/approvals-store';
import { DynamoAuditLog } from '../adapters/audit-store';
import { type CloudTrailClientProvider, CloudTrailIssuerLookup } from '../adapters/cloudtrail-issuers';
import { documentClient } from '../adapters/document-client';
import { type IamClientProvider, IamEnforcer, IamKeyDirectory } from '../adapters/iam';
import { SnsNotifier } from '../adapters/notifier';
import { HOUR_MS } from '../domain/dates';
import { describeLeak, resolveOwner } from '../domain/evaluate';
import { findBatchLeaks, MAX_BATCH_BYTES } from '../domain/leak-batch';
import { rejectedLeakDecision, shortTermLeakDecision } from '../domain/leak-decision';
import { type KeyCandidate, keyInText, type LeakVerifier } from '../domain/leak-verification';
import type { LeakFinding, LeakSpan, LongTermFacts, ShortTermFacts } from '../domain/leaks';
import { decideKey, decisionIdFor, type KeyMetadata, type PipelineDeps } from '../domain/pipeline';
import type {
  Decision,
  LeakEvidence,
  LeakLocation,
  LeakVerification,
  LeakVerificationResult,
} from '../domain/types';
import type { UsageSource } from '../domain/usage-types';
import type { Config } from '../shared/config';
import { fingerprint } from '../shared/redact';

/**
 * The leak function (log quarantine): a CloudWatch Logs subscription batch → every log event scanned with
 * findLeakSpans() → a leaked long-term key is matched to the governed account's inventory, verified (one
 * read-only call to Bedrock authenticated by the found key: is it a working key?) and goes through the same
 * pipeline as a credential event (LEAKED: deactivated in enforce mode only when verified, critical notice, audit
 * decision); a string Bedrock rejects (forged, or a dead key) is recorded and notified, never acted on; a leaked
 * short-term key still within its lifetime is traced to its signer with CloudTrail and reported. Nothing here
 * logs, stores or publishes a log message or a key: only fingerprints, redacted forms and locations; the key is
 * held in memory for the verification call only.
 * Failures are thrown, so Lambda retries the batch and then sends it to the failure destination.
 */

export interface LeakRuntime {
  config: Config;
  policyVersion: string;
  decisionsTable: string;
  keysTable: string;
  /** Approvals (read-only): only an approval naming LEAKED keeps a leaked key active. */
  approvalsTable: string;
  topicArn: string;
  /** The only account whose keys may be matched and deactivated; keys of other accounts are ignored. */
  governedAccountId: string;
  iamFor: IamClientProvider;
  /** CloudTrail client per region (event history is regional). */
  cloudTrailFor: CloudTrailClientProvider;
  dynamo: DynamoDBClient;
  sns: SNSClient;
  logger: Logger;
  metrics: Metrics;
  /**
   * Whether a found key is a working key (BedrockKeyProbe live). Asked at most once per distinct key per batch,
   * and only for a key that could be acted on (a key of the governed account, of a user that has keys).
   */
  verifier: LeakVerifier;
  /**
   * Last use per key (the usage table), so that UNUSED is evaluated here as the sweep evaluates it.
   * @default none: UNUSED is not evaluated by this function
   */
  usage?: UsageSource;
  now?: () => Date;
  /**
   * Time the checks of one batch may take together (ms). Past it, further keys in the batch are not checked
   * (UNVERIFIED: a critical notice, no automatic deactivation), so that a slow Bedrock and many distinct keys
   * cannot push a batch past the function's timeout and leave every finding in it undecided.
   * @default 20000 (a third of the function's 60 s)
   */
  verificationBudgetMs?: number;
  /** Monotonic milliseconds, for the budget. @default performance.now */
  clock?: () => number;
}

export const DEFAULT_VERIFICATION_BUDGET_MS = 20_000;

export class InvalidLogEventError extends Error {
  constructor(detail: string) {
    super(`event is not a CloudWatch Logs subscription event: ${detail}`);
    this.name = 'InvalidLogEventError';
  }
}

const SubscriptionEventSchema = z.object({ awslogs: z.object({ data: z.string().min(1) }) });

const LogsDataSchema = z.object({
  messageType: z.string(),
  owner: z.string(),
  logGroup: z.string(),
  logStream: z.string(),
  subscriptionFilters: z.array(z.string()),
  logEvents: z.array(z.object({ id: z.string().min(1), timestamp: z.number(), message: z.string() })),
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
  | 'expired'
  | 'foreign-account'
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
  | { status: 'scanned'; logGroup: string; logStream: string; logEvents: number; findings: FindingResult[] };

/** Only paths and expectations are reported: values could hold anything, including a key. */
function issuesOf(error: z.ZodError): string {
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

export function createLeakHandler(rt: LeakRuntime) {
  const { logger, metrics } = rt;
  const directory = new IamKeyDirectory(rt.iamFor);
  const audit = new DynamoAuditLog(documentClient(rt.dynamo), {
    decisionsTable: rt.decisionsTable,
    keysTable: rt.keysTable,
  });
  const notifier = new SnsNotifier(rt.sns, rt.topicArn, rt.config);
  const deps: PipelineDeps = {
    directory,
    audit,
    enforcer: new IamEnforcer(rt.iamFor, directory),
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
  const issuers = new CloudTrailIssuerLookup(rt.cloudTrailFor);
  const now = rt.now ?? (() => new Date());
  /**
   * Fingerprints of rejected strings already notified in the batch being scanned (reset per batch; a function
   * instance handles one batch at a time): a forged string repeated in many lines is recorded for each line but
   * notified once, so writing it a thousand times does not send a thousand notices.
   */
  let rejectedNotified = new Set<string>();
  /** Milliseconds spent on checks in the batch being scanned. */
  let verificationSpentMs = 0;
  const budgetMs = rt.verificationBudgetMs ?? DEFAULT_VERIFICATION_BUDGET_MS;
  const clock = rt.clock ?? (() => performance.now());

  function count(name: string, dimension: [string, string] | null): void {
    const m = metrics.singleMetric();
    if (dimension) m.addDimension(dimension[0], dimension[1]);
    m.addMetric(name, MetricUnit.Count, 1);
  }

  function ignored(
    reason: 'foreign-account' | 'no-bedrock-keys' | 'expired',
    f: LeakFinding,
    location: LeakLocation,
  ): FindingResult {
    logger.info('leaked key not acted on', {
      reason,
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      location,
    });
    count('IgnoredLeaks', ['reason', reason]);
    return {
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      logEventId: location.logEventId,
      outcome: reason,
      keyIds: [],
    };
  }

  /**
   * A leaked long-term key names its user and account, not its key id. The key decided on: the user's only key;
   * else the one whose alias matches; else the user's only Active key. Otherwise every candidate gets a critical
   * notice naming them all, and none is deactivated (keyguard will not guess).
   */
  function targetsFor(
    keys: KeyMetadata[],
    facts: LongTermFacts,
  ): { targets: KeyMetadata[]; certain: boolean } {
    if (keys.length === 1) return { targets: keys, certain: true };
    const byAlias = keys.filter((k) => k.alias === facts.alias);
    if (byAlias.length === 1) return { targets: byAlias, certain: true };
    const active = keys.filter((k) => k.status === 'Active');
    if (active.length === 1) return { targets: active, certain: true };
    return { targets: active.length > 1 ? active : keys, certain: false };
  }

  /** A finding already on record under this decision id for one of these keys (a redelivered batch). */
  async function onRecord(targets: KeyMetadata[], accountId: string, decisionId: string) {
    for (const meta of targets) {
      const d = await audit.getDecision(accountId, meta.keyId, decisionId);
      if (d) return d;
    }
    return null;
  }

  /**
   * A string Bedrock rejected: recorded and notified (medium) on each key it was matched to, never acted on, and
   * not remembered on the key (no leak history, no staged notices), so nothing later inherits it.
   */
  async function rejected(
    f: LeakFinding,
    facts: LongTermFacts,
    targets: KeyMetadata[],
    location: LeakLocation,
    leak: LeakEvidence,
    decisionId: string,
  ): Promise<FindingResult> {
    let duplicate = false;
    for (const meta of targets) {
      if (await audit.getDecision(facts.accountId, meta.keyId, decisionId)) {
        duplicate = true;
        continue;
      }
      const [userTags, known] = await Promise.all([
        directory.getUserTags(facts.accountId, facts.userName),
        audit.getKnownKey(facts.accountId, meta.keyId),
      ]);
      const built = rejectedLeakDecision({
        decisionId,
        now: now(),
        accountId: facts.accountId,
        userName: facts.userName,
        meta,
        owner: resolveOwner(
          { ...meta, accountId: facts.accountId, userTags, creator: known?.creator ?? null },
          rt.config,
        ),
        trigger: { kind: 'leak', eventId: location.logEventId, eventTime: location.timestamp },
        leak,
        where: describeLeak(leak),
        config: rt.config,
        policyVersion: rt.policyVersion,
      });
      const decision: Decision = rejectedNotified.has(f.fingerprint) ? { ...built, notice: null } : built;
      // Notice first, then the record: a failure in between re-sends the notice on retry rather than losing it.
      if (decision.notice) await notifier.notify(decision);
      const recorded = await audit.recordDecision(decision);
      duplicate ||= recorded.duplicate;
      logger.info('found key rejected by Bedrock: not acted on', {
        kind: f.kind,
        fingerprint: f.fingerprint,
        redacted: f.redacted,
        location,
        accountId: facts.accountId,
        userName: facts.userName,
        keyId: meta.keyId,
        decisionId,
        verification: leak.verification,
      });
    }
    rejectedNotified.add(f.fingerprint);
    return {
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      logEventId: location.logEventId,
      outcome: duplicate ? 'duplicate' : 'rejected',
      keyIds: targets.map((k) => k.keyId),
      verification: 'REJECTED',
    };
  }

  async function longTerm(
    f: LeakFinding,
    facts: LongTermFacts,
    location: LeakLocation,
    evidence: LeakEvidence,
    verify: () => Promise<LeakVerification>,
  ): Promise<FindingResult> {
    if (facts.accountId !== rt.governedAccountId) return ignored('foreign-account', f, location);
    const keys = await directory.listUserKeys(facts.accountId, facts.userName);
    if (keys.length === 0) return ignored('no-bedrock-keys', f, location);
    const { targets, certain } = targetsFor(keys, facts);
    const found: LeakEvidence = certain ? evidence : { ...evidence, candidates: targets.map((k) => k.keyId) };
    const decisionId = decisionIdFor('leak', location.timestamp, `${location.logEventId}/${f.fingerprint}`);
    // A redelivered finding is finished with the verification on record: it is not checked again (the key may
    // be Inactive by now, by keyguard's own deactivation, and would then be rejected).
    const earlier = await onRecord(targets, facts.accountId, decisionId);
    const verification = earlier ? (earlier.leak?.verification ?? null) : await verify();
    const leak: LeakEvidence = verification ? { ...found, verification } : found;
    if (verification?.result === 'REJECTED') return rejected(f, facts, targets, location, leak, decisionId);
    const decisions: Decision[] = [];
    let duplicate = false;
    for (const meta of targets) {
      const step = await decideKey(
        {
          accountId: facts.accountId,
          keyId: meta.keyId,
          userName: facts.userName,
          meta,
          trigger: { kind: 'leak', eventId: location.logEventId, eventTime: location.timestamp },
          decisionId,
          record: 'always',
          leak,
        },
        deps,
        { config: rt.config, policyVersion: rt.policyVersion, now: now() },
      );
      if (!step) continue;
      duplicate ||= step.duplicate;
      decisions.push(step.decision);
      logger.info('leaked key decided', {
        kind: f.kind,
        fingerprint: f.fingerprint,
        redacted: f.redacted,
        location,
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
    return {
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      logEventId: location.logEventId,
      outcome,
      keyIds: decisions.map((d) => d.keyId),
      ...(result ? { verification: result } : {}),
    };
  }

  async function shortTerm(
    f: LeakFinding,
    facts: ShortTermFacts,
    location: LeakLocation,
    evidence: LeakEvidence,
    verify: () => Promise<LeakVerification>,
  ): Promise<FindingResult> {
    // An expired key works nowhere: no check is needed (or made), and nothing is recorded.
    if (facts.expired) return ignored('expired', f, location);
    const at = now();
    const accountId = rt.governedAccountId;
    const decisionId = decisionIdFor('leak', location.timestamp, `${location.logEventId}/${f.fingerprint}`);
    const result = (outcome: FindingOutcome, checked?: LeakVerification | null): FindingResult => ({
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      logEventId: location.logEventId,
      outcome,
      keyIds: [facts.accessKeyId],
      ...(checked ? { verification: checked.result } : {}),
    });
    // A redelivered batch: this finding is already on record (and its notice sent).
    const earlier = await audit.getDecision(accountId, facts.accessKeyId, decisionId);
    if (earlier) return result('duplicate', earlier.leak?.verification);

    // Nothing is deactivated for a short-term key (it is no IAM credential), but the notice tells its signer to
    // revoke sessions or an access key: a string Bedrock rejects (forged, or already dead) must not say so.
    const verification = await verify();
    const rejected = verification.result === 'REJECTED';

    // Calls made with the access key id around the signing show who holds it (the signer's session can be
    // older than the signing, by up to the longest session: 12 h).
    const issuer = await issuers.issuerOf(
      facts.accessKeyId,
      facts.region,
      new Date(Date.parse(facts.signedAt) - 12 * HOUR_MS),
      at,
    );
    const leak: LeakEvidence = { ...evidence, issuer, verification };
    const decision = shortTermLeakDecision({
      decisionId,
      now: at,
      accountId,
      facts,
      issuer,
      trigger: { kind: 'leak', eventId: location.logEventId, eventTime: location.timestamp },
      leak,
      notify: !(rejected && rejectedNotified.has(f.fingerprint)),
      config: rt.config,
      policyVersion: rt.policyVersion,
    });
    // Notice first, then the record: a failure in between re-sends the notice on retry rather than losing it.
    if (decision.notice) await notifier.notify(decision);
    if (rejected) rejectedNotified.add(f.fingerprint);
    const recorded = await audit.recordDecision(decision);
    logger.info('leaked short-term key reported', {
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      location,
      accessKeyId: facts.accessKeyId,
      issuer,
      expiresAt: facts.expiresAt,
      decisionId,
      verification,
      duplicate: recorded.duplicate,
    });
    return result(recorded.duplicate ? 'duplicate' : rejected ? 'rejected' : 'notified', verification);
  }

  /**
   * Reads the key back from its log line (in memory only, for this call) and asks the verifier. Never throws:
   * a verifier failure is an UNVERIFIED answer.
   */
  async function verifyOnce(
    text: string,
    span: LeakSpan,
    candidate: (key: string) => KeyCandidate,
  ): Promise<LeakVerification> {
    const key = keyInText(text, span, fingerprint);
    let v: LeakVerification;
    if (verificationSpentMs >= budgetMs) {
      v = {
        result: 'UNVERIFIED',
        method: 'none',
        checkedAt: now().toISOString(),
        reason: `the checks of this batch took their whole budget (${budgetMs} ms): no call made`,
        principal: null,
      };
    } else if (key === null) {
      v = {
        result: 'UNVERIFIED',
        method: 'none',
        checkedAt: now().toISOString(),
        reason: 'the key could not be read back from its log line for the check',
        principal: null,
      };
    } else {
      const started = clock();
      try {
        v = await rt.verifier.verify(candidate(key));
      } catch (err) {
        v = {
          result: 'UNVERIFIED',
          method: 'none',
          checkedAt: now().toISOString(),
          reason: `the check failed: ${err instanceof Error ? err.name : 'unknown error'}`,
          principal: null,
        };
      } finally {
        verificationSpentMs += clock() - started;
      }
    }
    count('LeakVerifications', ['result', v.result]);
    logger.info('found key checked', {
      fingerprint: span.fingerprint,
      redacted: span.redacted,
      verification: v,
    });
    return v;
  }

  async function scan(data: LogsData): Promise<LeakResult> {
    rejectedNotified = new Set();
    verificationSpentMs = 0;
    if (data.messageType === 'CONTROL_MESSAGE') {
      logger.info('control message ignored', { logGroup: data.logGroup });
      return { status: 'ignored', reason: 'control-message' };
    }
    const findings: FindingResult[] = [];
    // One verification per distinct key per batch, however often the key is repeated.
    const verifications = new Map<string, Promise<LeakVerification>>();
    const verifierFor =
      (text: string, span: LeakSpan, candidate: (key: string) => KeyCandidate) =>
      (): Promise<LeakVerification> => {
        let answer = verifications.get(span.fingerprint);
        if (!answer) {
          answer = verifyOnce(text, span, candidate);
          verifications.set(span.fingerprint, answer);
        }
        return answer;
      };
    // Every message is scanned before any decision (bounded work: domain/leak-batch.ts).
    const batch = findBatchLeaks(data.logEvents, { now: now() });
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
        const evidence: LeakEvidence = { fingerprint: f.fingerprint, redacted: f.redacted, location };
        const longFacts = f.longTerm;
        if (f.kind === 'LONG_TERM' && longFacts) {
          const candidate = (key: string): KeyCandidate => ({
            kind: 'LONG_TERM',
            key,
            accountId: longFacts.accountId,
            userName: longFacts.userName,
          });
          findings.push(
            await longTerm(f, longFacts, location, evidence, verifierFor(e.message, span, candidate)),
          );
        } else if (f.kind === 'SHORT_TERM' && f.shortTerm) {
          const region = f.shortTerm.region;
          const candidate = (key: string): KeyCandidate => ({ kind: 'SHORT_TERM', key, region });
          findings.push(
            await shortTerm(f, f.shortTerm, location, evidence, verifierFor(e.message, span, candidate)),
          );
        }
      }
    }
    logger.info('log batch scanned', {
      logGroup: data.logGroup,
      logStream: data.logStream,
      logEvents: data.logEvents.length,
      scannedChars: batch.chars,
      detectionWork: batch.work,
      findings: findings.length,
    });
    return {
      status: 'scanned',
      logGroup: data.logGroup,
      logStream: data.logStream,
      logEvents: data.logEvents.length,
      findings,
    };
  }

  return async function handler(event: unknown): Promise<LeakResult> {
    try {
      return await scan(parseSubscriptionEvent(event));
    } catch (err) {
      // The error is logged by name and message only: none of them carries a log line.
      logger.error('log batch failed; Lambda retries it, then sends it to the failure destination', {
        error: err as Error,
      });
      throw err;
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}
