import type { IAMClient } from '@aws-sdk/client-iam';
import { type AccountPlacement, type EffectivePolicy, effectivePolicy } from '../domain/org-policy';
import type { OrgSettings, Policy } from '../shared/config';
import type { IamClientProvider } from './iam';
import { MemberAccess } from './member-access';
import type { SnsNotifierOptions } from './notifier';
import { type AccountLocator, orgPlacementFromEnv, ungovernedReason } from './org-placement';
import { type OrgSettingsLoader, orgSettingsLoaderFromEnv } from './org-settings';

/**
 * Organization mode for a deciding function (issue 12): is an account governed, with which policy, and an IAM
 * client acting in it. Composes the organization settings (SSM), the account's place (Organizations) and the
 * member role (STS). One instance per container; everything it learns is cached there.
 */

export type Governance =
  | {
      governed: true;
      accountId: string;
      /** The account's name in Organizations; null when unknown (the hub outside the organization). */
      name: string | null;
      placement: AccountPlacement;
    }
  | { governed: false; accountId: string; reason: string };

export class GovernedAccounts {
  constructor(
    readonly settings: OrgSettings,
    readonly access: MemberAccess,
    private readonly locator: AccountLocator,
  ) {}

  /** Whether keyguard governs an account and, when it does, where the account sits (for its policy). */
  async check(accountId: string): Promise<Governance> {
    // Refused before any Organizations call: an excluded account, or a value that is not an account id.
    const early = this.access.ungovernedReason(accountId);
    if (early) return { governed: false, accountId, reason: early };
    // The hub's own account is always governed: Organizations is asked only when an OU override could apply to it
    // (so its events are decided even while the reader role is unavailable).
    if (accountId === this.access.hubAccountId && !this.settings.overrides.some((o) => o.ous)) {
      return { governed: true, accountId, name: null, placement: { accountId, ouPath: [] } };
    }
    const found = await this.locator.locate(accountId);
    const why = ungovernedReason(this.settings.organization, this.access.hubAccountId, accountId, found);
    if (why) return { governed: false, accountId, reason: why };
    return {
      governed: true,
      accountId,
      name: found?.name ?? null,
      placement: { accountId, ouPath: found?.ouPath ?? [] },
    };
  }

  /** The policy an account is decided with: account override, else nearest OU's, else the base policy. */
  policyFor<P extends Policy>(base: P, baseVersion: string, placement: AccountPlacement): EffectivePolicy<P> {
    return effectivePolicy(base, baseVersion, this.settings.overrides, placement);
  }

  /** An IAM client acting in a governed account (the hub's own credentials, or its member role). */
  readonly iamFor = (accountId: string): Promise<IAMClient> => this.access.iamFor(accountId);

  /** The account's name for notices; null when it cannot be had cheaply (it is optional there). */
  async accountName(accountId: string): Promise<string | null> {
    try {
      return (await this.locator.locate(accountId))?.name ?? null;
    } catch {
      // Only a label on a notice: a notice is never held back for it (the decision has already been made).
      return null;
    }
  }
}

/**
 * Organization mode of a hub function from its environment: null without ORG_SETTINGS_PARAMETER (single account,
 * as before). Otherwise a function giving the container's GovernedAccounts, built on first use (the settings are
 * read from SSM then; a failure to read them is retried by the next invocation, a bad value fails every one).
 */
export function governedAccountsFromEnv(
  env: NodeJS.ProcessEnv,
  options: { functionName: string; hubAccountId: string; hubIam: IAMClient },
): (() => Promise<GovernedAccounts>) | null {
  const loader: OrgSettingsLoader | null = orgSettingsLoaderFromEnv(env);
  if (!loader) return null;
  const locator = orgPlacementFromEnv(env, options.functionName);
  let built: { settings: OrgSettings; accounts: GovernedAccounts } | null = null;
  return async () => {
    const settings = await loader.get();
    if (built?.settings !== settings) {
      const access = new MemberAccess({
        organization: settings.organization,
        hubAccountId: options.hubAccountId,
        functionName: options.functionName,
        hubIam: options.hubIam,
      });
      built = { settings, accounts: new GovernedAccounts(settings, access, locator) };
    }
    return built.accounts;
  };
}

/**
 * Where a deciding function's IAM calls go and how its notices name accounts: in organization mode, to the account
 * the key is in through its member role, with the account's name on each notice; otherwise `own` (the function's
 * own account) and no names.
 */
export function accountAccess(
  organization: (() => Promise<GovernedAccounts>) | undefined,
  own: IamClientProvider,
): { iamFor: IamClientProvider; notifierOptions: SnsNotifierOptions } {
  if (!organization) return { iamFor: own, notifierOptions: {} };
  return {
    iamFor: async (accountId) => (await organization()).iamFor(accountId),
    notifierOptions: { accountName: async (accountId) => (await organization()).accountName(accountId) },
  };
}
