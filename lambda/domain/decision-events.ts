import { ocsfDetectionFinding } from './ocsf';
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
/** `detail-type` of the same decision as an OCSF 1.5.0 Detection Finding (docs/ocsf.md). */
export const DECISION_EVENT_OCSF_DETAIL_TYPE = 'Bedrock API Key Decision (OCSF)';

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
 * The event of one decision with the detail `render` makes of it: the canonical decision (what `keyguard audit --json`
 * prints), or, when that would not fit in an event, the reduced one (no leak evidence, texts cut, `detailTruncated`).
 */
function fittedEntry(
  decision: Decision,
  detailType: string,
  render: (detail: Decision & { detailTruncated?: unknown }) => unknown,
): DecisionEventEntry {
  const canonical = canonicalDecision(decision);
  const entry = (detail: Decision & { detailTruncated?: unknown }): DecisionEventEntry => ({
    Source: DECISION_EVENT_SOURCE,
    DetailType: detailType,
    Detail: JSON.stringify(render(detail)),
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

/**
 * The event of one decision. Its detail is `JSON.stringify(canonicalDecision(d))`: the bytes `keyguard audit --json`
 * prints for it, the same for every delivery of the same decision.
 */
export function decisionEventEntry(decision: Decision): DecisionEventEntry {
  return fittedEntry(decision, DECISION_EVENT_DETAIL_TYPE, (detail) => detail);
}

/**
 * The OCSF event of one decision: the line `keyguard audit --format ocsf` prints for it (from the reduced decision
 * when the full one would not fit). `productVersion` is keyguard's version (metadata.product.version).
 */
export function ocsfDecisionEventEntry(decision: Decision, productVersion: string): DecisionEventEntry {
  return fittedEntry(decision, DECISION_EVENT_OCSF_DETAIL_TYPE, (detail) =>
    ocsfDetectionFinding(detail, productVersion),
  );
}

/**
 * The events of one decision, in the order they are put: always its keyguard event (the Security Hub findings and
 * the chat notices are rules on it), then, with `ocsf` (config `decisionEvents.ocsf`), its OCSF event beside it.
 */
export function decisionEventEntries(
  decision: Decision,
  options: { ocsf: boolean; productVersion: string },
): DecisionEventEntry[] {
  const entries = [decisionEventEntry(decision)];
  if (options.ocsf) entries.push(ocsfDecisionEventEntry(decision, options.productVersion));
  return entries;
}
