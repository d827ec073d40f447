import { type DetectionWork, findLeakSpans, type LeakSpan } from './leaks';

/**
 * Detection for one leak-function batch (a CloudWatch Logs subscription delivery), bounded so that the keys in a
 * batch are always decided within the function's timeout, whatever the rest of the batch holds:
 *
 * - The decompressed payload is at most MAX_BATCH_BYTES (the handler refuses a larger one before parsing it), so
 *   the text of all messages together is at most that many characters.
 * - Detection is linear (leaks.ts): at most MAX_WORK_PER_CHAR work units per character, prefix-dense text
 *   included. So a batch costs at most MAX_WORK_PER_CHAR × MAX_BATCH_BYTES units: measured on adversarial text
 *   (bench/scan-dense.ts), a few seconds at worst for a full batch, against the function's 60 s.
 * - Every message is scanned before any decision is taken, so the slow part (IAM, verification, the audit
 *   table, notices) starts with every finding of the batch known, none waiting behind a long scan.
 * - A key repeated within one message is one finding (its first occurrence, with the number of occurrences): the
 *   decision is per message and key anyway, and a message holding thousands of copies of one string must not
 *   cost thousands of decisions.
 */

/**
 * Largest decompressed payload accepted: 32 MiB, 32 times what one PutLogEvents call may carry (1 MiB of events),
 * so any delivery CloudWatch Logs makes fits; a larger one is not a delivery and is refused whole.
 */
export const MAX_BATCH_BYTES = 32 * 1024 * 1024;

/** Work units per character detection spends at most (asserted on adversarial inputs in the tests). */
export const MAX_WORK_PER_CHAR = 16;

export interface EventLeaks<E> {
  event: E;
  /** The distinct keys in the event's message, in order of first appearance. */
  spans: LeakSpan[];
  /** Occurrences of each key in the message, by fingerprint (1 for most). */
  occurrences: Map<string, number>;
}

export interface BatchLeaks<E> {
  /** Events holding at least one key, in batch order. */
  found: EventLeaks<E>[];
  /** Characters scanned (all messages) and the detection work spent on them. */
  chars: number;
  work: number;
}

/** Scans every message of a batch, before any decision (see above). */
export function findBatchLeaks<E extends { message: string }>(
  events: readonly E[],
  opts: { now: Date },
): BatchLeaks<E> {
  const work: DetectionWork = { units: 0 };
  const found: EventLeaks<E>[] = [];
  let chars = 0;
  for (const event of events) {
    chars += event.message.length;
    const spans: LeakSpan[] = [];
    const occurrences = new Map<string, number>();
    for (const span of findLeakSpans(event.message, { now: opts.now, work })) {
      const seen = occurrences.get(span.fingerprint) ?? 0;
      if (seen === 0) spans.push(span);
      occurrences.set(span.fingerprint, seen + 1);
    }
    if (spans.length > 0) found.push({ event, spans, occurrences });
  }
  return { found, chars, work: work.units };
}
