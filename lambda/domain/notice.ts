import type { Policy } from '../shared/config';
import { terminalSafe, visible } from '../shared/visible-text';
import { whereFound } from './evaluate';
import type { Decision, Severity, Violation } from './types';
import { topSeverity } from './types';

/** An owner notice: what SNS publishes. Built only from the decision, so it cannot hold key material. */
export interface Notice {
  subject: string;
  body: string;
  /** SNS message attributes subscriptions filter on; `account` is the key's account (organization mode). */
  attributes: { owner: string; severity: Severity | 'info'; action: Decision['action']; account: string };
}

/** SNS subjects must be printable ASCII and "less than 100 characters long" (Publish API reference). */
export const SUBJECT_MAX = 99;
export const UNOWNED = 'unowned';

/** SNS subjects are printable ASCII: anything else is shown as `?`. */
export function ascii(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/** What the owner should do about one violation of a key (also each entry of an owner digest). */
export function remedy(v: Violation, d: Decision, config: Policy): string {
  const u = d.userName;
  switch (v.code) {
    case 'NEVER_EXPIRES':
    case 'EXCEEDS_MAX_AGE':
      return (
        `Create a replacement key with an expiry of at most ${config.maxAgeDays} days ` +
        `(aws iam create-service-specific-credential --user-name ${u} --service-name bedrock.amazonaws.com ` +
        `--credential-age-days ${config.maxAgeDays}), move its users to it, then delete key ${d.keyId}.`
      );
    case 'LONG_TERM_NOT_ALLOWED':
      return (
        `Move the key's users to short-term keys (at most 12 h, generated from their own credentials), then ` +
        `delete key ${d.keyId} from user ${u}.`
      );
    case 'MISSING_OWNER':
      return `Tag the user: aws iam tag-user --user-name ${u} --tags Key=${config.tags.owner},Value=<owner email>`;
    case 'MISSING_PURPOSE':
      return `Tag the user: aws iam tag-user --user-name ${u} --tags Key=${config.tags.purpose},Value=<what the key is for>`;
    case 'MISSING_REVIEW_CADENCE':
      return `Tag the user: aws iam tag-user --user-name ${u} --tags Key=${config.tags.reviewCadence},Value=<e.g. 90d>`;
    case 'REVIEW_OVERDUE':
      return `Confirm the key is still needed: keyguard review --key ${d.keyId} --note "<why it is still needed>" (by someone other than its owner or creator).`;
    case 'EXPIRING_SOON':
      return `Create its replacement (--credential-age-days ${config.maxAgeDays} at most) before ${d.expiresAt ?? 'it expires'} and move its users to it.`;
    case 'BROAD_PERMISSIONS':
      return `Give user ${u} only what the key needs (e.g. bedrock:InvokeModel and bedrock:CallWithBearerToken on the models it uses); detach the broad policies.`;
    case 'USER_HAS_OTHER_CREDENTIALS':
      return `Remove them: aws iam list-access-keys --user-name ${u} / aws iam delete-login-profile --user-name ${u}. A Bedrock key user should hold nothing else.`;
    case 'LEAKED':
      if (d.leak?.verification?.result === 'REJECTED') return rejectedLeakRemedy(d);
      if (d.keyType === 'SHORT_TERM') return shortTermRevocation(d);
      if (d.leak?.candidates && d.leak.candidates.length > 1) {
        return (
          `Find out which of ${d.leak.candidates.join(', ')} leaked (the key's users know where it is configured), ` +
          `deactivate it (aws iam update-service-specific-credential --user-name ${u} --service-specific-credential-id <id> --status Inactive), ` +
          `create a replacement, and delete the old key once the replacement is live. Rotate the key wherever it was used.`
        );
      }
      return (
        (d.leak && d.leak.verification?.result !== 'VERIFIED' && !d.applied
          ? 'keyguard could not verify that the string found is the working key, so it did not deactivate it: check ' +
            'whether it is (compare it with the key its users have configured, or look for its use in CloudTrail). If it is, '
          : '') +
        `Treat the key as compromised: ${d.applied ? 'it is deactivated' : `deactivate it (aws iam update-service-specific-credential --user-name ${u} --service-specific-credential-id ${d.keyId} --status Inactive)`}, ` +
        `create a replacement (--credential-age-days ${config.maxAgeDays} at most), rotate it wherever the old key was used, ` +
        `and delete key ${d.keyId} once the replacement is live (aws iam delete-service-specific-credential --user-name ${u} --service-specific-credential-id ${d.keyId}). ` +
        'Remove the key from the log source and stop whatever printed it.'
      );
    case 'UNUSED':
      // Deleting is the fix (an idle key is standing access only an attacker still wants); a yearly job's key
      // is legitimate, and an approval covering UNUSED keeps it without the notices.
      return (
        `If nothing uses key ${d.keyId} any more, delete it (aws iam delete-service-specific-credential ` +
        `--user-name ${u} --service-specific-credential-id ${d.keyId}); if it is needed only rarely, ` +
        `get an approval (keyguard approve --key ${d.keyId} --covers UNUSED ...).`
      );
    case 'REACTIVATED_WITHOUT_APPROVAL':
      return `Get an approval first (keyguard approve --key ${d.keyId} ...), or replace the key with a compliant one.`;
    default:
      return 'See the decision record for details.';
  }
}

/**
 * A key-shaped string Bedrock rejected: nothing to revoke. It is either forged (anyone who can write to the log can
 * write one: the user name in it is public) or an old key that no longer works, printed by something that prints
 * keys. Both are worth knowing; neither needs the key replaced.
 */
function rejectedLeakRemedy(d: Decision): string {
  return (
    `No action is needed on the key: the string found is not a working key (Bedrock rejected it), so nothing was deactivated. ` +
    `Find out what wrote it: someone may be writing forged keys naming ${d.keyType === 'SHORT_TERM' ? 'this signer' : `user ${d.userName}`} into ` +
    'logs to get a key switched off, or an application printed an old, inactive key (then stop it printing keys: the next one may be live). ' +
    'Remove it from the log source.'
  );
}

/** The role name of an assumed-role session ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`). */
function assumedRole(arn: string): { account: string; role: string } | null {
  const m = /^arn:aws[a-z-]*:sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
  return m ? { account: m[1] as string, role: m[2] as string } : null;
}

function iamUser(arn: string): string | null {
  const m = /^arn:aws[a-z-]*:iam::\d{12}:user\/(?:.*\/)?([^/]+)$/.exec(arn);
  return m ? (m[1] as string) : null;
}

/**
 * How to revoke what a leaked short-term key was signed with. A short-term key is a presigned request: it stays
 * valid until it expires unless the signer's credentials are revoked (or bearer-token calls are denied to it).
 */
function shortTermRevocation(d: Decision): string {
  const issuer = d.leak?.issuer ?? null;
  const at = d.decidedAt;
  const denyOlder = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"${at}"}}}]}`;
  const role = issuer ? assumedRole(issuer) : null;
  if (role?.role.startsWith('AWSReservedSSO_')) {
    // IAM does not let anyone edit the roles IAM Identity Center creates for permission sets.
    return (
      `The signer is an IAM Identity Center session (role ${role.role}): revoke that user's active permission-set ` +
      'sessions in IAM Identity Center (and disable the user if the key was taken), since IAM does not allow editing ' +
      `this role. Until then the key works until ${d.expiresAt ?? 'it expires'}.`
    );
  }
  if (role) {
    return (
      `Revoke the sessions of role ${role.role} issued before now: in the IAM console, Roles → ${role.role} → ` +
      `"Revoke active sessions", or attach the same policy yourself: aws iam put-role-policy --role-name ${role.role} ` +
      `--policy-name AWSRevokeOlderSessions --policy-document '${denyOlder}'. ` +
      'It denies everything to sessions issued before now (the leaked key stops working); new sessions are unaffected. ' +
      `Until then the key works until ${d.expiresAt ?? 'it expires'}.`
    );
  }
  const user = issuer ? iamUser(issuer) : null;
  if (user) {
    return (
      `Deactivate the access key that signed it: aws iam update-access-key --user-name ${user} --access-key-id ${d.keyId} --status Inactive, ` +
      `then rotate that access key wherever it is used. Until then the key works until ${d.expiresAt ?? 'it expires'}.`
    );
  }
  return (
    `The signing principal was not found in CloudTrail event history: look up access key id ${d.keyId} ` +
    `(aws cloudtrail lookup-events --lookup-attributes AttributeKey=AccessKeyId,AttributeValue=${d.keyId}). ` +
    `If it is a role session, revoke the role's older sessions (a policy denying "*" with DateLessThan aws:TokenIssueTime ${at}: ` +
    `"Revoke active sessions" in the IAM console); if it is an IAM user's access key, deactivate and rotate it. ` +
    `Until then the key works until ${d.expiresAt ?? 'it expires'}.`
  );
}

/** What happened to the key, as the end of a sentence about it ("… needs attention"). */
export function headline(d: Decision): string {
  if (d.notice === 'resolved')
    return d.status === 'Deleted' ? 'is deleted: resolved' : 'is compliant again: resolved';
  if (d.action === 'DEACTIVATE') return d.applied ? 'deactivated' : 'must be deactivated';
  if (d.action === 'NOTIFY') return 'needs attention';
  // A usage decision about a key that is not Active: someone still holds (and tries) a key that was turned off.
  if (d.trigger.kind === 'usage' && d.status !== 'Active')
    return `is ${d.status.toLowerCase()} but still in use`;
  if (d.status !== 'Active') return `is ${d.status.toLowerCase()}`;
  return 'is compliant';
}

const STAGE_PREFIX: Record<NonNullable<Decision['notice']>, string> = {
  first: '',
  reminder: 'Reminder: ',
  final: 'FINAL WARNING: ',
  action: '',
  resolved: '',
  expiring: 'Expiring: ',
};

/**
 * The body of a notice: each line with its control and bidi characters shown as escapes (a user name or tag
 * holding a newline cannot add a line that reads as ours, nor reorder one), then the decision record as JSON,
 * whose strings escape them the same way (the parsed record is the decision, unchanged).
 */
function noticeBody(lines: readonly string[], d: Decision): string {
  return [...lines.map(visible), '', 'Decision record:', terminalSafe(JSON.stringify(d, null, 2))].join('\n');
}

/** The notice of a leaked short-term key: who signed it, where it was found, until when it works, how to revoke. */
function shortTermLeakNotice(d: Decision, config: Policy): Notice {
  const severity = topSeverity(d.violations);
  const owner = d.owner.value ?? UNOWNED;
  const issuer = d.leak?.issuer ?? null;
  const rejected = d.leak?.verification?.result === 'REJECTED';
  const subject = ascii(
    rejected
      ? `[keyguard] ${severity.toUpperCase()}: not a working key: short-term Bedrock API key naming ${d.keyId}`
      : `[keyguard] ${severity.toUpperCase()}: leaked short-term Bedrock API key signed with ${d.keyId}`,
  ).slice(0, SUBJECT_MAX);
  const lines: string[] = [];
  lines.push(
    rejected
      ? `A string shaped as a short-term Bedrock API key signed with access key id ${d.keyId} was found in a log, but Bedrock rejected it: it is forged, or a key that no longer works. Nothing needs revoking.`
      : `A short-term Bedrock API key signed with access key id ${d.keyId} was found in a log. Whoever reads that log can call Bedrock as its signer until it expires.`,
  );
  lines.push('');
  const missed = d.leak?.issuerUnknownReason;
  lines.push(
    `Signed by: ${issuer ?? `unknown (not found in CloudTrail event history${missed ? `; not searched everywhere: ${missed}` : ''})`}`,
  );
  if (d.leak) {
    lines.push(`Found in: ${whereFound(d.leak)}`);
    lines.push(`Key: ${d.leak.redacted} (fingerprint ${d.leak.fingerprint})`);
  }
  lines.push(`Signed at: ${d.createdAt ?? 'unknown'}   Expires: ${d.expiresAt ?? 'unknown'}`);
  lines.push('');
  for (const v of d.violations) {
    lines.push(`- ${v.code} (${v.severity}): ${v.detail}`);
    lines.push(`  Fix: ${remedy(v, d, config)}`);
  }
  return {
    subject,
    body: noticeBody(lines, d),
    attributes: { owner, severity, action: d.action, account: d.accountId },
  };
}

/** Builds the notice for a decision: subject, a body a person can act on, and filterable attributes. */
export function buildNotice(d: Decision, config: Policy): Notice {
  if (d.keyType === 'SHORT_TERM') return shortTermLeakNotice(d, config);
  const severity = topSeverity(d.violations);
  const owner = d.owner.value ?? UNOWNED;
  const stage = d.notice ? STAGE_PREFIX[d.notice] : '';
  const subject = ascii(
    `[keyguard] ${stage}${severity.toUpperCase()}: Bedrock API key ${d.keyId} on ${d.userName} ${headline(d)}`,
  ).slice(0, SUBJECT_MAX);

  const lines: string[] = [];
  lines.push(
    `Bedrock API key ${d.keyId} on IAM user ${d.userName} in account ${d.accountId} ${headline(d)}.`,
  );
  lines.push('');
  lines.push(`Owner: ${d.owner.value ?? '(none known)'} (from ${d.owner.source})`);
  lines.push(
    `Created: ${d.createdAt ?? 'unknown'}   Expires: ${d.neverExpires ? 'never' : (d.expiresAt ?? 'unknown')}`,
  );
  lines.push(
    `Mode: ${d.mode}   Action: ${d.action}${d.applied ? ' (applied)' : d.action === 'DEACTIVATE' ? ' (planned, not applied)' : ''}`,
  );
  if (d.deadline && d.action === 'NOTIFY') {
    const escalates =
      d.mode === 'enforce' ? 'the key will be deactivated' : 'the key will be reported for deactivation';
    lines.push(`Deadline: fix by ${d.deadline}; after that ${escalates}.`);
  }
  if (d.reason) lines.push(`Why: ${d.reason}`);
  lines.push('');
  if (d.violations.length > 0) {
    lines.push('What is wrong, and how to fix it:');
    for (const v of d.violations) {
      lines.push(`- ${v.code} (${v.severity}): ${v.detail}`);
      lines.push(`  Fix: ${remedy(v, d, config)}`);
    }
  } else if (d.notice === 'resolved') {
    lines.push(
      'Nothing is wrong any more: the earlier notices about this key are closed and its deadline is cleared.',
    );
  }
  for (const w of d.waived ?? []) {
    lines.push(`- ${w.code}: approved (approval ${w.approvalId}), not acted on while the approval lasts.`);
  }
  if (d.action === 'DEACTIVATE' && d.applied) {
    lines.push('');
    lines.push(
      'The key was deactivated, not deleted: nothing is lost, and its users get an authorization error. ' +
        'Replace it with a key that has an expiry; turning this one back on would bring the same violation back.',
    );
  }
  return {
    subject,
    body: noticeBody(lines, d),
    attributes: { owner, severity, action: d.action, account: d.accountId },
  };
}
