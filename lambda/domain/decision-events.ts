import { PUT_EVENTS_MAX_BYTES, putEventsEntrySize } from './scan-report';
import { canonicalDecision, type Decision } from './types';

/**
 * Decision events (issue 16 item 2): every decision recorded in the decisions table is also put on the governance
 * bus as one EventBridge event, so an ordinary rule can route it (a deactivation to PagerDuty, a SIEM, a ticket).
 * The detail is the decision exactly as `keyguard audit --json` prints it (canonicalDecision: the format of
 * docs/decisions.md, never key material). The DynamoDB record stays the source of truth; the events are a copy.
 */

/** `source` of every decision event. */
export const DECISION_EVENT_SOURCE = 'keyguard.decisions';
/** `detail-type` of every decision event (one event per decision). */
export const DECISION_EVENT_DETAIL_TYPE = 'Bedrock API Key Decision';

/**
 * A decision can be stored up to 300 KB (shared/bounded.ts) but an event carries less than 256 KB. A decision whose
 * detail would not fit keeps every field of the format except the leak evidence, and each violation's detail is cut
 * to this many characters; `detailTruncated` says so (the full decision is in the table and the archive).
 */
const TRUNCATED_TEXT_CHARS = 512;

export interface DecisionEventEntry {
  Source: string;
  DetailType: string;
  Detail: string;
  /** The decision's time, so rules and targets see when it was decided rather than when it was forwarded. */
  Time: Date;
}

function cut(s: string): string {
  return s.length <= TRUNCATED_TEXT_CHARS ? s : `${s.slice(0, TRUNCATED_TEXT_CHARS)}…`;
}

/** The PutEvents entry size of a decision event (Source, DetailType, Detail, plus 14 for Time). */
export function decisionEntrySize(entry: DecisionEventEntry): number {
  return putEventsEntrySize(entry) + 14;
}

/** Thrown when even the reduced detail of a decision does not fit in one event (cannot happen with bounded items). */
export class DecisionEventTooLargeError extends Error {
  constructor(
    readonly decisionId: string,
    readonly bytes: number,
  ) {
    super(
      `decision ${decisionId}: its event is ${bytes} bytes even reduced, over PutEvents' ${PUT_EVENTS_MAX_BYTES}`,
    );
    this.name = 'DecisionEventTooLargeError';
  }
}

/**
 * The event of one decision. Its detail is `JSON.stringify(canonicalDecision(d))`: the bytes `keyguard audit --json`
 * prints for it, the same for every delivery of the same decision.
 */
export function decisionEventEntry(decision: Decision): DecisionEventEntry {
  const canonical = canonicalDecision(decision);
  const entry = (detail: unknown): DecisionEventEntry => ({
    Source: DECISION_EVENT_SOURCE,
    DetailType: DECISION_EVENT_DETAIL_TYPE,
    Detail: JSON.stringify(detail),
    Time: new Date(canonical.decidedAt),
  });
  const full = entry(canonical);
  const fullSize = decisionEntrySize(full);
  if (fullSize < PUT_EVENTS_MAX_BYTES) return full;
  const { leak: _leak, ...rest } = canonical;
  const reduced = entry({
    ...rest,
    violations: rest.violations.map((v) => ({ ...v, detail: cut(v.detail) })),
    ...(rest.waived ? { waived: rest.waived.map((w) => ({ ...w, detail: cut(w.detail) })) } : {}),
    ...(rest.reason ? { reason: cut(rest.reason) } : {}),
    detailTruncated: { bytes: fullSize, omitted: canonical.leak ? ['leak'] : [] },
  });
  const reducedSize = decisionEntrySize(reduced);
  if (reducedSize >= PUT_EVENTS_MAX_BYTES)
    throw new DecisionEventTooLargeError(canonical.decisionId, reducedSize);
  return reduced;
}
