import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import {
  type AwsSecurityFinding,
  BatchImportFindingsCommand,
  type SecurityHubClient,
} from '@aws-sdk/client-securityhub';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { FindingsStateStore } from '../adapters/findings-state';
import { DECISION_EVENT_DETAIL_TYPE, DECISION_EVENT_SOURCE } from '../domain/decision-events';
import {
  FINDING_MAX_BYTES,
  type FindingState,
  type FindingTarget,
  findingBytes,
  findingId,
  importBatches,
  type KeyFinding,
  keyFinding,
  planFinding,
} from '../domain/security-hub';
import type { Decision } from '../domain/types';
import * as z from '../shared/zod';

/**
 * Security Hub findings (issue 16 item 1): SQS batches of decision events (the governance bus's rule
 * `keyguard.decisions` → queue) → one ASFF finding per key → BatchImportFindings into the custom-integration product
 * of this account and region (lambda/domain/security-hub.ts says what each field means).
 *
 * Per batch: the decisions are grouped by finding (a key's latest decision in the batch supersedes its earlier ones),
 * the findings' state is read, each decision is planned (imported, or skipped: nothing to show, or
 * older than the decision already imported), and the findings are imported 100 at a time and under the request size
 * limit. Findings BatchImportFindings reports in FailedFindings are sent again with backoff, `attempts` tries in all;
 * a finding still failed (or a call that fails after the SDK's retries) is counted (metric FindingsNotImported),
 * logged with its finding id, decision id and error code, and its message is reported as a batch item failure: SQS
 * delivers it again and, after the queue's receive count, moves it to the dead-letter queue, whose alarm tells the
 * owner-notice topic. A message that is not a decision event can never succeed: it is reported as failed too, so it
 * ends in the dead-letter queue rather than vanishing. Nothing here logs a message body.
 */

export interface SecurityHubFindingsRuntime {
  securityHub: Pick<SecurityHubClient, 'send'>;
  state: FindingsStateStore;
  target: FindingTarget;
  logger: Pick<Logger, 'info' | 'warn'>;
  metrics?: Pick<Metrics, 'addMetric' | 'publishStoredMetrics'>;
  /** Tries per failed finding, the first one included. @default 4 */
  attempts?: number;
  /** Wait before the second try (ms), doubled each further try. @default 500 */
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** What a finding needs of a decision event's detail (the decision format of docs/decisions.md). */
const DecisionDetailSchema = z.looseObject({
  decisionId: z.string().check(z.minLength(1)),
  decidedAt: z.iso.datetime(),
  keyId: z.string().check(z.minLength(1)),
  userName: z.string().check(z.minLength(1)),
  accountId: z.string().check(z.regex(/^\d{12}$/)),
  keyType: z.enum(['LONG_TERM', 'SHORT_TERM']),
  status: z.enum(['Active', 'Inactive', 'Expired', 'Deleted']),
  createdAt: z.nullable(z.string()),
  expiresAt: z.nullable(z.string()),
  neverExpires: z.boolean(),
  owner: z.object({ value: z.nullable(z.string()), source: z.enum(['tag', 'creator', 'fallback']) }),
  violations: z.array(
    z.object({
      code: z.string(),
      severity: z.enum(['low', 'medium', 'high', 'critical']),
      detail: z.string(),
    }),
  ),
  action: z.enum(['ALLOW', 'NOTIFY', 'DEACTIVATE', 'DELETE']),
  applied: z.boolean(),
  mode: z.enum(['audit', 'enforce']),
  deadline: z.nullable(z.string()),
  policyVersion: z.string(),
});

const DecisionEventSchema = z.looseObject({
  source: z.literal(DECISION_EVENT_SOURCE),
  'detail-type': z.literal(DECISION_EVENT_DETAIL_TYPE),
  detail: DecisionDetailSchema,
});

type Message = SQSEvent['Records'][number];

interface Planned {
  finding: KeyFinding;
  state: FindingState;
  /** Every message this finding answers for (the key's decisions in the batch). */
  messageIds: string[];
}

export function createSecurityHubFindingsHandler(
  rt: SecurityHubFindingsRuntime,
): (event: SQSEvent) => Promise<SQSBatchResponse> {
  const attempts = Math.max(1, rt.attempts ?? 4);
  const baseDelayMs = rt.baseDelayMs ?? 500;
  const sleep = rt.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  /** Imports one request's findings, sending failed ones again; returns those still failed with their error code. */
  async function importBatch(batch: Planned[]): Promise<Array<{ planned: Planned; errorCode: string }>> {
    let pending = batch;
    let failed: Array<{ planned: Planned; errorCode: string }> = [];
    for (let attempt = 1; attempt <= attempts && pending.length > 0; attempt++) {
      if (attempt > 1) await sleep(baseDelayMs * 2 ** (attempt - 2));
      let out: { FailedFindings?: Array<{ Id?: string; ErrorCode?: string }> };
      try {
        out = await rt.securityHub.send(
          new BatchImportFindingsCommand({ Findings: pending.map((p) => p.finding as AwsSecurityFinding) }),
        );
      } catch (err) {
        // The SDK has retried throttling and transient errors already: every finding of the call failed this try.
        const code = (err as Error).name || 'Error';
        failed = pending.map((planned) => ({ planned, errorCode: code }));
        continue;
      }
      const failedCodes = new Map<string, string>();
      for (const f of out.FailedFindings ?? []) if (f.Id) failedCodes.set(f.Id, f.ErrorCode ?? 'Unknown');
      failed = [];
      for (const p of pending) {
        const code = failedCodes.get(p.finding.Id);
        if (code !== undefined) failed.push({ planned: p, errorCode: code });
      }
      pending = failed.map((f) => f.planned);
    }
    return failed;
  }

  return async (event) => {
    const failures = new Set<string>();
    const latest = new Map<string, { decision: Decision; messageIds: string[] }>();
    for (const m of event.Records as Message[]) {
      let body: unknown;
      try {
        body = JSON.parse(m.body);
      } catch {
        body = undefined;
      }
      const parsed = DecisionEventSchema.safeParse(body);
      if (!parsed.success) {
        rt.logger.warn('message is not a decision event: left to the dead-letter queue', {
          messageId: m.messageId,
          issues: parsed.error.issues.map((i) => i.path.join('.')).slice(0, 5),
        });
        rt.metrics?.addMetric('FindingsNotImported', MetricUnit.Count, 1);
        failures.add(m.messageId);
        continue;
      }
      const d = parsed.data.detail as unknown as Decision;
      const id = findingId(d.accountId, d.keyId);
      const seen = latest.get(id);
      if (!seen) latest.set(id, { decision: d, messageIds: [m.messageId] });
      else {
        seen.messageIds.push(m.messageId);
        const newer =
          d.decidedAt > seen.decision.decidedAt ||
          (d.decidedAt === seen.decision.decidedAt && d.decisionId > seen.decision.decisionId);
        if (newer) seen.decision = d;
      }
    }

    const states = await rt.state.get([...latest.keys()]);
    const planned: Planned[] = [];
    let skipped = 0;
    for (const [id, { decision, messageIds }] of latest) {
      const prior = states.get(id) ?? null;
      const plan = planFinding(decision, prior);
      if (plan.kind === 'skip') {
        skipped++;
        continue;
      }
      const createdAt = prior?.createdAt ?? decision.decidedAt;
      const finding = keyFinding(decision, plan, createdAt, rt.target);
      if (findingBytes(finding) > FINDING_MAX_BYTES) {
        // Cannot happen with the cut fields; kept so a finding Security Hub would refuse is never sent silently.
        rt.logger.warn('finding over the 240 KB limit: not imported', {
          findingId: id,
          decisionId: decision.decisionId,
        });
        rt.metrics?.addMetric('FindingsNotImported', MetricUnit.Count, 1);
        for (const mid of messageIds) failures.add(mid);
        continue;
      }
      planned.push({
        finding,
        messageIds,
        state: {
          id,
          createdAt,
          updatedAt: decision.decidedAt,
          decisionId: decision.decisionId,
          recordState: plan.recordState,
        },
      });
    }

    let imported = 0;
    for (const batch of importBatches(planned, (p) => findingBytes(p.finding))) {
      const failed = await importBatch(batch);
      if (failed.length > 0) {
        rt.logger.warn('findings not imported after every try: their messages are retried', {
          failed: failed.map((f) => ({
            findingId: f.planned.finding.Id,
            decisionId: f.planned.state.decisionId,
            errorCode: f.errorCode,
          })),
          attempts,
        });
        rt.metrics?.addMetric('FindingsNotImported', MetricUnit.Count, failed.length);
        for (const f of failed) for (const mid of f.planned.messageIds) failures.add(mid);
      }
      const failedIds = new Set(failed.map((f) => f.planned.finding.Id));
      for (const p of batch) {
        if (failedIds.has(p.finding.Id)) continue;
        imported++;
        try {
          await rt.state.put(p.state);
        } catch (err) {
          // Imported, but its CreatedAt and order are not on record: the message comes again and imports it again.
          rt.logger.warn('finding imported but its state was not recorded: its messages are retried', {
            findingId: p.finding.Id,
            error: (err as Error).name,
          });
          for (const mid of p.messageIds) failures.add(mid);
        }
      }
    }
    rt.metrics?.addMetric('FindingsImported', MetricUnit.Count, imported);
    rt.metrics?.publishStoredMetrics();
    rt.logger.info('decision events read', {
      messages: event.Records.length,
      imported,
      skipped,
      failed: failures.size,
    });
    return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };
  };
}
