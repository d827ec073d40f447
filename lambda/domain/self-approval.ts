/**
 * "Never self-granted": whether the caller of `keyguard approve` / `keyguard review` is the key's owner or
 * creator. Pure. The caller is the principal ARN Lambda authenticated (the approval function URL's SigV4
 * signature: requestContext.authorizer.iam.userArn); owner and creator are whatever the keys table
 * holds (an owner tag value, often an email; a creator principal ARN from CloudTrail).
 *
 * Both sides are reduced to identity tokens and any shared token is a conflict:
 * - `arn:` tokens: the ARN itself, case-insensitive, with IAM paths dropped (an assumed-role ARN carries no
 *   path, `arn:aws:iam::1:role/team/Deployer` and `...:role/Deployer` are the same role). The caller's
 *   assumed-role session also yields its role (`arn:aws:sts::<a>:assumed-role/<R>/<s>` →
 *   `arn:aws:iam::<a>:role/<R>`), so an owner or creator named as a role is matched by any session of it.
 *   An owner or creator that is itself a session does NOT yield its role: colleagues share SSO and admin
 *   roles, and a different person's session of the same role is not self-approval.
 * - `name:` tokens, case-insensitive: an IAM user's name, a session name (SSO puts the user's name or email
 *   there), a federated user's name, and a plain owner value (an email or a name).
 */

export type SelfRole = 'owner' | 'creator';

export interface SelfApprovalConflict {
  role: SelfRole;
  /** The owner or creator value that matched. */
  value: string;
}

const ARN = /^arn:(aws[a-z-]*):(iam|sts)::(\d{12}):(.+)$/i;
const PRINCIPAL_ID_SESSION = /^AROA[A-Z0-9]{8,}:(.+)$/;

interface ParsedPrincipal {
  /** Tokens that identify exactly this principal. */
  own: string[];
  /** For an assumed-role session: its role's token. */
  role: string | null;
}

function lastSegment(path: string): string {
  const parts = path.split('/').filter((p) => p.length > 0);
  return parts[parts.length - 1] ?? path;
}

function arnToken(partition: string, service: string, account: string, resource: string): string {
  return `arn:arn:${partition}:${service}::${account}:${resource}`.toLowerCase();
}

function nameToken(name: string): string {
  return `name:${name.trim().toLowerCase()}`;
}

function parsePrincipal(value: string): ParsedPrincipal {
  const v = value.trim();
  const m = ARN.exec(v);
  if (!m) {
    // CloudTrail's principalId of a session, `AROA…:<session>` (the creator when no ARN was logged).
    const session = PRINCIPAL_ID_SESSION.exec(v);
    if (session?.[1]) return { own: [nameToken(v), nameToken(session[1])], role: null };
    return { own: v.length > 0 ? [nameToken(v)] : [], role: null };
  }
  const [, partition, service, account, resource] = m as unknown as [string, string, string, string, string];
  const slash = resource.indexOf('/');
  const type = (slash < 0 ? resource : resource.slice(0, slash)).toLowerCase();
  const rest = slash < 0 ? '' : resource.slice(slash + 1);
  if (service.toLowerCase() === 'sts' && type === 'assumed-role') {
    const [roleName = '', session = ''] = rest.split('/');
    return {
      own: [arnToken(partition, 'sts', account, `assumed-role/${roleName}/${session}`), nameToken(session)],
      role: arnToken(partition, 'iam', account, `role/${roleName}`),
    };
  }
  if (service.toLowerCase() === 'sts' && type === 'federated-user') {
    return {
      own: [arnToken(partition, 'sts', account, `federated-user/${rest}`), nameToken(rest)],
      role: null,
    };
  }
  if (type === 'user') {
    const name = lastSegment(rest);
    return { own: [arnToken(partition, 'iam', account, `user/${name}`), nameToken(name)], role: null };
  }
  if (type === 'role') {
    return { own: [arnToken(partition, 'iam', account, `role/${lastSegment(rest)}`)], role: null };
  }
  return { own: [arnToken(partition, service, account, resource)], role: null };
}

/** Every token the caller is known by (its own, plus its role when it is an assumed-role session). */
export function callerTokens(callerArn: string): Set<string> {
  const p = parsePrincipal(callerArn);
  return new Set([...p.own, ...(p.role ? [p.role] : [])]);
}

/** The tokens an owner or creator value stands for. */
export function subjectTokens(value: string): Set<string> {
  return new Set(parsePrincipal(value).own);
}

/** The first of owner/creator that is the caller, or null when the caller is neither. */
export function selfApprovalConflict(
  callerArn: string,
  key: { owner: string | null; creator: string | null },
): SelfApprovalConflict | null {
  const caller = callerTokens(callerArn);
  const subjects: Array<[SelfRole, string | null]> = [
    ['owner', key.owner],
    ['creator', key.creator],
  ];
  for (const [role, value] of subjects) {
    if (!value) continue;
    for (const t of subjectTokens(value)) {
      if (caller.has(t)) return { role, value };
    }
  }
  return null;
}

/**
 * IAM Identity Center's permission-set roles: AWS sets their sessions' names (the user's name), so two sessions of
 * one such role with different names are two people. Any other role's session name is chosen by whoever assumes
 * the role (`--role-session-name`).
 */
const IDENTITY_CENTER_ROLE = /^AWSReservedSSO_/;

/**
 * The creator's role, when the creator was a session of a role whose session names are the assumer's choice, and the
 * caller is a session of the same role: the caller may be the creator under another name, so it is treated as the
 * creator ("no principal approves a key it created", the principal being the role). Null otherwise.
 */
export function sharedRoleConflict(callerArn: string, creator: string | null): SelfApprovalConflict | null {
  if (!creator) return null;
  const caller = parsePrincipal(callerArn);
  const made = ARN.exec(creator.trim());
  if (!caller.role || !made) return null;
  const [, partition, service, account, resource] = made as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  const [type, roleName = ''] = resource.split('/');
  if (service.toLowerCase() !== 'sts' || type?.toLowerCase() !== 'assumed-role') return null;
  if (IDENTITY_CENTER_ROLE.test(roleName)) return null;
  return arnToken(partition, 'iam', account, `role/${roleName}`) === caller.role
    ? { role: 'creator', value: creator }
    : null;
}

/**
 * Whether the caller is one of `approvers` (IAM user or role ARNs): the same user, or a session of the same role.
 * Compared by ARN only (partition, account, type and name; IAM paths dropped, since a session ARN carries none),
 * never by a session's name.
 */
export function isListedApprover(callerArn: string, approvers: readonly string[]): boolean {
  const caller = [...callerTokens(callerArn)].filter((t) => t.startsWith('arn:'));
  return approvers.some((a) => {
    const listed = [...subjectTokens(a)].filter((t) => t.startsWith('arn:'));
    return listed.some((t) => caller.includes(t));
  });
}
