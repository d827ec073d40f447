import { createHash } from 'node:crypto';
import type { Override, Policy } from '../shared/config';

/**
 * Which policy applies to an account of the organization (issue 12): an override naming the account, else the one
 * naming its nearest OU (the account's parent first, then up to the root), else the base policy. Each override has
 * its own version, derived from the base version and the override's settings, so a decision records exactly which
 * policy made it and an auditor can tell a sandbox OU's `enforce` from production's `audit`.
 */

/** Where an account sits: its id and its OUs from the root down (the parent last). */
export interface AccountPlacement {
  accountId: string;
  /** OU ids from the root down to the account's parent (root id itself not included). */
  ouPath: readonly string[];
}

export interface EffectivePolicy<P extends Policy> {
  policy: P;
  policyVersion: string;
  /** `account:<id>` or `ou:<id>` of the override that applied; null for the base policy. */
  appliedOverride: string | null;
}

/** The settings an override changes (without the accounts or OUs it names). */
function settingsOf(o: Override): Partial<Policy> {
  const { ous: _o, accounts: _a, ...settings } = o;
  return settings;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The version of the base policy with one override applied: `p-` and 12 hex digits, like policyVersion. */
export function overrideVersion(baseVersion: string, override: Override): string {
  const digest = createHash('sha256')
    .update(`${baseVersion}\n${canonical(settingsOf(override))}`)
    .digest('hex');
  return `p-${digest.slice(0, 12)}`;
}

/** The override that applies to an account, and why (`account:` or `ou:`), or null. */
export function overrideFor(
  overrides: readonly Override[],
  placement: AccountPlacement,
): { override: Override; applied: string } | null {
  const byAccount = overrides.find((o) => o.accounts?.includes(placement.accountId));
  if (byAccount) return { override: byAccount, applied: `account:${placement.accountId}` };
  for (const ou of [...placement.ouPath].reverse()) {
    const byOu = overrides.find((o) => o.ous?.includes(ou));
    if (byOu) return { override: byOu, applied: `ou:${ou}` };
  }
  return null;
}

/** The policy an account is decided with. */
export function effectivePolicy<P extends Policy>(
  base: P,
  baseVersion: string,
  overrides: readonly Override[],
  placement: AccountPlacement,
): EffectivePolicy<P> {
  const found = overrideFor(overrides, placement);
  if (!found) return { policy: base, policyVersion: baseVersion, appliedOverride: null };
  return {
    policy: { ...base, ...settingsOf(found.override) },
    policyVersion: overrideVersion(baseVersion, found.override),
    appliedOverride: found.applied,
  };
}
