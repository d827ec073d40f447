/**
 * An account-level finding (organization mode, issue 12): a governed account the sweep could not cover after every
 * retry (member role missing or not trusting the hub, access denied, throttled past retries). One notice goes to
 * the fallback owner, with the same filterable attributes as key notices (`account` names the account).
 */

export interface AccountFinding {
  accountId: string;
  /** The account's name in Organizations ('' when unknown). */
  accountName: string;
  ouPath: readonly string[];
  /** `Name: message` of the last error. */
  reason: string;
  /** Deliveries of the account's message, the last included. */
  attempts: number;
  /** When the round that asked for the sweep was scheduled (ISO). */
  round: string;
}

export interface AccountFindingNotice {
  subject: string;
  body: string;
  attributes: { owner: string; severity: 'high'; action: 'NOTIFY'; account: string };
}

/** SNS subjects: printable ASCII, under 100 characters. */
function asciiSubject(text: string): string {
  const ascii = text.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > 99 ? `${ascii.slice(0, 98)}~` : ascii;
}

export function accountFindingNotice(f: AccountFinding, fallbackOwner: string): AccountFindingNotice {
  const label = f.accountName ? `${f.accountId} (${f.accountName})` : f.accountId;
  const body = [
    `Bedrock Key Guard could not sweep account ${label} after ${f.attempts} attempts.`,
    '',
    `Reason: ${f.reason}`,
    `OU path: ${f.ouPath.length > 0 ? f.ouPath.join(' / ') : '(directly under the root)'}`,
    `Sweep round scheduled at: ${f.round}`,
    '',
    "Until it is fixed, this account's Bedrock API keys are not inventoried or decided by the sweep (credential",
    'events still are, if its spoke stack forwards them). Check that the spoke stack instance exists in the account',
    '(StackSet instance status), that the member role exists and trusts the hub, and whether IAM throttled it.',
    "The account's message is in the sweep dead-letter queue (stack output SweepDeadLetterQueueUrl); the next",
    'scheduled round tries the account again. Every other account was swept independently.',
  ].join('\n');
  return {
    subject: asciiSubject(`Bedrock Key Guard: account ${label} not swept`),
    body,
    attributes: { owner: fallbackOwner, severity: 'high', action: 'NOTIFY', account: f.accountId },
  };
}
