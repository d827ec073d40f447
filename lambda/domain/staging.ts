import type { Policy } from '../shared/config';
import { DAY_MS, HOUR_MS } from './dates';
import { leakToRemember } from './leak-verification';
import {
  type Decision,
  INFORMATIONAL_CODES,
  type KeyHistory,
  type NoticeKind,
  type NoticeState,
  type ViolationCode,
} from './types';

/**
 * Staged owner notices, never spam: first notice → reminder (half-way to the deadline) → final warning
 * (`finalWarningHours` before it) → action taken, each sent once per key and violation set; one "resolved"
 * notice when the violations go away; one reminder per `expiryWarningDays` threshold. Pure: the state it
 * returns is what the keys table keeps between evaluations, so a sweep that finds nothing new sends nothing.
 */

export interface NoticePlan {
  /** The notice to send now, or null. */
  notice: NoticeKind | null;
  /** The history to keep for the next evaluation. */
  history: KeyHistory;
}

function sameCodes(a: readonly ViolationCode[], b: readonly ViolationCode[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

function escalatingCodes(d: Decision): ViolationCode[] {
  return [...new Set(d.violations.map((v) => v.code).filter((c) => !INFORMATIONAL_CODES.includes(c)))].sort();
}

function stagedNotice(
  d: Decision,
  prev: NoticeState | null,
  config: Policy,
  now: Date,
): {
  kind: NoticeKind | null;
  state: NoticeState | null;
} {
  const codes = escalatingCodes(d);
  const at = now.toISOString();

  if (d.action === 'DEACTIVATE') {
    // Applied (enforce) or planned (audit): either way the owner hears once per violation set.
    if (prev?.stage === 'action' && sameCodes(prev.codes, codes)) return { kind: null, state: prev };
    return {
      kind: 'action',
      state: { codes, stage: 'action', firstNotifiedAt: prev?.firstNotifiedAt ?? at },
    };
  }

  if (d.status === 'Active' && codes.length > 0) {
    if (!prev || prev.stage === 'action' || !sameCodes(prev.codes, codes)) {
      return { kind: 'first', state: { codes, stage: 'first', firstNotifiedAt: at } };
    }
    const deadline = d.deadline ? Date.parse(d.deadline) : null;
    if (deadline === null) return { kind: null, state: prev };
    if (prev.stage !== 'final' && now.getTime() >= deadline - config.finalWarningHours * HOUR_MS) {
      return { kind: 'final', state: { ...prev, stage: 'final' } };
    }
    const halfway = Date.parse(prev.firstNotifiedAt) + (deadline - Date.parse(prev.firstNotifiedAt)) / 2;
    if (prev.stage === 'first' && now.getTime() >= halfway) {
      return { kind: 'reminder', state: { ...prev, stage: 'reminder' } };
    }
    return { kind: null, state: prev };
  }

  // No escalating violation left on an Active key, or the key is gone: one "resolved" notice.
  if (prev && prev.codes.length > 0 && (d.status === 'Active' || d.status === 'Deleted')) {
    return { kind: 'resolved', state: null };
  }
  // An inactive or expired key keeps its notice state: nothing is sent until it is Active again.
  return { kind: null, state: d.status === 'Active' ? null : prev };
}

/** Expiry reminders due now: thresholds reached and not yet sent (a late discovery sends one, not several). */
function dueExpiryThresholds(d: Decision, history: KeyHistory, config: Policy, now: Date): number[] {
  if (!d.violations.some((v) => v.code === 'EXPIRING_SOON') || !d.expiresAt) return [];
  const daysLeft = (Date.parse(d.expiresAt) - now.getTime()) / DAY_MS;
  return config.expiryWarningDays.filter((t) => daysLeft <= t && !history.expiryReminders.includes(t));
}

export function planNotice(d: Decision, history: KeyHistory, config: Policy, now: Date): NoticePlan {
  const staged = stagedNotice(d, history.notice, config, now);
  const expiring = dueExpiryThresholds(d, history, config, now);
  const kind: NoticeKind | null = staged.kind ?? (expiring.length > 0 ? 'expiring' : null);
  // A verified leak stays remembered over a later finding that could not be verified.
  const leak = leakToRemember(d.leak, history.leak);
  return {
    notice: kind,
    history: {
      deactivatedByUs: history.deactivatedByUs || d.applied,
      lastReviewAt: history.lastReviewAt,
      // The grace deadline lives while an Active key has escalating violations (evaluate() computes it).
      deadline: d.status === 'Active' ? d.deadline : null,
      notice: staged.state,
      // Any notice sent while the key is expiring soon mentions it, so the due thresholds count as sent.
      expiryReminders: kind
        ? [...history.expiryReminders, ...expiring].sort((a, b) => b - a)
        : history.expiryReminders,
      // A leak is remembered, so later evaluations (sweeps) keep LEAKED and never call the key resolved.
      ...(leak ? { leak } : {}),
    },
  };
}
