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
import { describeLeak } from '../domain/evaluate';
import { findLeaks, type LeakFinding, type LongTermFacts, type ShortTermFacts } from '../domain/leaks';
import { decideKey, decisionIdFor, type KeyMetadata, type PipelineDeps } from '../domain/pipeline';
import type { Decision, LeakEvidence, LeakLocation } from '../domain/types';
import type { UsageSource } from '../domain/usage-types';
import type { Config } from '../shared/config';

/**
 * The leak function (log quarantine): a CloudWatch Logs subscription batch → every log event scanned with
 * findLeaks() → a leaked long-term key is matched to the governed account's inventory and goes through the same
 * pipeline as a credential event (LEAKED: deactivated in enforce mode, critical notice, audit decision); a leaked
 * short-term key still within its lifetime is traced to its signer with CloudTrail and reported. Nothing here
 * logs, stores or publishes a log message or a key: only fingerprints, redacted forms and locations.
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
   * Last use per key (the usage table), so that UNUSED is evaluated here as the sweep evaluates it.
   * @default none: UNUSED is not evaluated by this function
   */
  usage?: UsageSource;
  now?: () => Date;
}

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
    json = JSON.parse(gunzipSync(Buffer.from(outer.data.awslogs.data, 'base64')).toString('utf8'));
  } catch {
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

  async function longTerm(
    f: LeakFinding,
    facts: LongTermFacts,
    location: LeakLocation,
    evidence: LeakEvidence,
  ): Promise<FindingResult> {
    if (facts.accountId !== rt.governedAccountId) return ignored('foreign-account', f, location);
    const keys = await directory.listUserKeys(facts.accountId, facts.userName);
    if (keys.length === 0) return ignored('no-bedrock-keys', f, location);
    const { targets, certain } = targetsFor(keys, facts);
    const leak: LeakEvidence = certain ? evidence : { ...evidence, candidates: targets.map((k) => k.keyId) };
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
          decisionId: decisionIdFor('leak', location.timestamp, `${location.logEventId}/${f.fingerprint}`),
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
            : 'recorded';
    return {
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      logEventId: location.logEventId,
      outcome,
      keyIds: decisions.map((d) => d.keyId),
    };
  }

  async function shortTerm(
    f: LeakFinding,
    facts: ShortTermFacts,
    location: LeakLocation,
    evidence: LeakEvidence,
  ): Promise<FindingResult> {
    if (facts.expired) return ignored('expired', f, location);
    const at = now();
    const accountId = rt.governedAccountId;
    const decisionId = decisionIdFor('leak', location.timestamp, `${location.logEventId}/${f.fingerprint}`);
    const result = (outcome: FindingOutcome): FindingResult => ({
      kind: f.kind,
      fingerprint: f.fingerprint,
      redacted: f.redacted,
      logEventId: location.logEventId,
      outcome,
      keyIds: [facts.accessKeyId],
    });
    // A redelivered batch: this finding is already on record (and its notice sent).
    if (await audit.getDecision(accountId, facts.accessKeyId, decisionId)) return result('duplicate');

    // Calls made with the access key id around the signing show who holds it (the signer's session can be
    // older than the signing, by up to the longest session: 12 h).
    const issuer = await issuers.issuerOf(
      facts.accessKeyId,
      facts.region,
      new Date(Date.parse(facts.signedAt) - 12 * HOUR_MS),
      at,
    );
    const leak: LeakEvidence = { ...evidence, issuer };
    const decision: Decision = {
      decisionId,
      decidedAt: at.toISOString(),
      keyId: facts.accessKeyId,
      userName: issuer ? (issuer.split(':').pop() ?? issuer) : 'unknown',
      accountId,
      keyType: 'SHORT_TERM',
      status: 'Active',
      trigger: { kind: 'leak', eventId: location.logEventId, eventTime: location.timestamp },
      createdAt: facts.signedAt,
      expiresAt: facts.expiresAt,
      neverExpires: false,
      owner: issuer
        ? { value: issuer, source: 'creator' }
        : { value: rt.config.fallbackOwner, source: 'fallback' },
      violations: [
        {
          code: 'LEAKED',
          severity: 'critical',
          detail:
            `a short-term key signed by ${issuer ?? 'an unknown principal'} with access key id ${facts.accessKeyId} ` +
            `(region ${facts.region}) was found in ${describeLeak(evidence)}; it works until ${facts.expiresAt}`,
        },
      ],
      action: 'NOTIFY',
      applied: false,
      mode: rt.config.mode,
      deadline: null,
      policyVersion: rt.policyVersion,
      notice: 'first',
      leak,
    };
    // Notice first, then the record: a failure in between re-sends the notice on retry rather than losing it.
    await notifier.notify(decision);
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
      duplicate: recorded.duplicate,
    });
    return result(recorded.duplicate ? 'duplicate' : 'notified');
  }

  async function scan(data: LogsData): Promise<LeakResult> {
    if (data.messageType === 'CONTROL_MESSAGE') {
      logger.info('control message ignored', { logGroup: data.logGroup });
      return { status: 'ignored', reason: 'control-message' };
    }
    const findings: FindingResult[] = [];
    for (const e of data.logEvents) {
      const timestamp = new Date(e.timestamp).toISOString();
      for (const f of findLeaks(e.message, { now: now() })) {
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
        if (f.kind === 'LONG_TERM' && f.longTerm)
          findings.push(await longTerm(f, f.longTerm, location, evidence));
        else if (f.kind === 'SHORT_TERM' && f.shortTerm) {
          findings.push(await shortTerm(f, f.shortTerm, location, evidence));
        }
      }
    }
    logger.info('log batch scanned', {
      logGroup: data.logGroup,
      logStream: data.logStream,
      logEvents: data.logEvents.length,
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
