import {
  GetGroupPolicyCommand,
  GetLoginProfileCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetUserPolicyCommand,
  type IAMClient,
  type AttachedPolicy as IamAttachedPolicy,
  ListAccessKeysCommand,
  ListAttachedGroupPoliciesCommand,
  ListAttachedUserPoliciesCommand,
  ListGroupPoliciesCommand,
  ListGroupsForUserCommand,
  ListUserPoliciesCommand,
  NoSuchEntityException,
} from '@aws-sdk/client-iam';
import {
  type AttachedPolicy,
  assessPermissions,
  type InlinePolicy,
  type PolicyDocument,
  parsePolicyDocument,
  type UserPolicies,
} from '../domain/permissions';
import type { UserFactsSource } from '../domain/pipeline';
import type { OtherCredentials, PermissionFinding } from '../domain/types';
import type { IamClientProvider } from './iam';

/**
 * What the user behind a Bedrock key can do besides the key, read from IAM one user at a time (the event
 * path; the sweep reads the whole account in bulk instead): its managed and inline policies, directly and
 * through its groups, and its other credentials (active access keys, a console password). The analysis is
 * `assessPermissions` (domain); this adapter only fetches.
 *
 * Customer-managed policies are read at their default version; AWS managed policies are recognised by ARN and
 * never fetched. Every list call follows `Marker`. A user IAM no longer has yields `{ permissions: null,
 * otherCredentials: null }` (nothing checked); a group, inline policy or managed policy deleted while it is
 * being read is skipped. Only metadata is read: IAM never returns an access key secret or a password here.
 */

type UserFacts = { permissions: PermissionFinding[] | null; otherCredentials: OtherCredentials | null };

const AWS_MANAGED = /^arn:aws[a-z-]*:iam::aws:policy\//;

function isNoSuchEntity(err: unknown): boolean {
  return (
    err instanceof NoSuchEntityException ||
    (err as { name?: string } | null)?.name === 'NoSuchEntityException'
  );
}

/** The user went away while its facts were being read. */
class UserGoneError extends Error {
  constructor(userName: string) {
    super(`IAM user ${userName} no longer exists`);
    this.name = 'UserGoneError';
  }
}

/** Every item of a Marker-paginated IAM list. */
async function listAll<T>(
  page: (
    marker: string | undefined,
  ) => Promise<{ items: T[] | undefined; isTruncated?: boolean; marker?: string }>,
): Promise<T[]> {
  const out: T[] = [];
  let marker: string | undefined;
  do {
    const res = await page(marker);
    out.push(...(res.items ?? []));
    marker = res.isTruncated ? res.marker : undefined;
  } while (marker);
  return out;
}

/** Runs `read`, or returns `fallback` when the thing read is gone (NoSuchEntity). */
async function unlessGone<T>(read: () => Promise<T>, fallback: T): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (isNoSuchEntity(err)) return fallback;
    throw err;
  }
}

export class IamUserFacts implements UserFactsSource {
  constructor(private readonly clientFor: IamClientProvider) {}

  async userFacts(accountId: string, userName: string): Promise<UserFacts> {
    const iam = await this.clientFor(accountId);
    try {
      const [policies, otherCredentials] = await Promise.all([
        this.policies(iam, userName),
        this.otherCredentials(iam, userName),
      ]);
      return { permissions: assessPermissions(policies), otherCredentials };
    } catch (err) {
      if (err instanceof UserGoneError) return { permissions: null, otherCredentials: null };
      throw err;
    }
  }

  /** A user-scoped read: NoSuchEntity means the user is gone. */
  private async ofUser<T>(userName: string, read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (err) {
      if (isNoSuchEntity(err)) throw new UserGoneError(userName);
      throw err;
    }
  }

  private async policies(iam: IAMClient, userName: string): Promise<UserPolicies> {
    const documents = new Map<string, Promise<PolicyDocument | null>>();
    const managed = (p: IamAttachedPolicy, via: string): Promise<AttachedPolicy | null> => {
      if (!p.PolicyArn || !p.PolicyName) return Promise.resolve(null);
      const arn = p.PolicyArn;
      let doc = documents.get(arn);
      if (!doc) {
        doc = AWS_MANAGED.test(arn) ? Promise.resolve(null) : this.defaultVersion(iam, arn);
        documents.set(arn, doc);
      }
      return doc.then((document) => ({ name: p.PolicyName as string, arn, document, via }));
    };

    const [attached, inlineNames, groups] = await Promise.all([
      this.ofUser(userName, () =>
        listAll(async (Marker) => {
          const r = await iam.send(new ListAttachedUserPoliciesCommand({ UserName: userName, Marker }));
          return { items: r.AttachedPolicies, isTruncated: r.IsTruncated, marker: r.Marker };
        }),
      ),
      this.ofUser(userName, () =>
        listAll(async (Marker) => {
          const r = await iam.send(new ListUserPoliciesCommand({ UserName: userName, Marker }));
          return { items: r.PolicyNames, isTruncated: r.IsTruncated, marker: r.Marker };
        }),
      ),
      this.ofUser(userName, () =>
        listAll(async (Marker) => {
          const r = await iam.send(new ListGroupsForUserCommand({ UserName: userName, Marker }));
          return { items: r.Groups, isTruncated: r.IsTruncated, marker: r.Marker };
        }),
      ),
    ]);

    const userInline = inlineNames.map((name) =>
      unlessGone(async (): Promise<InlinePolicy | null> => {
        const r = await iam.send(new GetUserPolicyCommand({ UserName: userName, PolicyName: name }));
        const document = parsePolicyDocument(r.PolicyDocument);
        return document ? { name: `user/${name}`, document, via: 'user' } : null;
      }, null),
    );
    const userAttached = attached.map((p) => managed(p, 'user'));

    const groupParts = groups.map(async (g) => {
      const groupName = g.GroupName;
      if (!groupName) return { attached: [], inline: [] };
      const via = `group:${groupName}`;
      // A group deleted while it is being read grants nothing any more.
      return unlessGone(
        async () => {
          const [gAttached, gInline] = await Promise.all([
            listAll(async (Marker) => {
              const r = await iam.send(
                new ListAttachedGroupPoliciesCommand({ GroupName: groupName, Marker }),
              );
              return { items: r.AttachedPolicies, isTruncated: r.IsTruncated, marker: r.Marker };
            }),
            listAll(async (Marker) => {
              const r = await iam.send(new ListGroupPoliciesCommand({ GroupName: groupName, Marker }));
              return { items: r.PolicyNames, isTruncated: r.IsTruncated, marker: r.Marker };
            }),
          ]);
          const inline = await Promise.all(
            gInline.map((name) =>
              unlessGone(async (): Promise<InlinePolicy | null> => {
                const r = await iam.send(
                  new GetGroupPolicyCommand({ GroupName: groupName, PolicyName: name }),
                );
                const document = parsePolicyDocument(r.PolicyDocument);
                return document ? { name: `group/${name}`, document, via } : null;
              }, null),
            ),
          );
          return { attached: await Promise.all(gAttached.map((p) => managed(p, via))), inline };
        },
        { attached: [], inline: [] },
      );
    });

    const [ua, ui, gp] = await Promise.all([
      Promise.all(userAttached),
      Promise.all(userInline),
      Promise.all(groupParts),
    ]);
    return {
      attached: [...ua, ...gp.flatMap((g) => g.attached)].filter((p): p is AttachedPolicy => p !== null),
      inline: [...ui, ...gp.flatMap((g) => g.inline)].filter((p): p is InlinePolicy => p !== null),
    };
  }

  /** The default version's document of a customer-managed policy (null when the policy is gone). */
  private defaultVersion(iam: IAMClient, arn: string): Promise<PolicyDocument | null> {
    return unlessGone(async () => {
      const p = await iam.send(new GetPolicyCommand({ PolicyArn: arn }));
      const versionId = p.Policy?.DefaultVersionId;
      if (!versionId) return null;
      const v = await iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: versionId }));
      return parsePolicyDocument(v.PolicyVersion?.Document);
    }, null);
  }

  private async otherCredentials(iam: IAMClient, userName: string): Promise<OtherCredentials> {
    const [keys, consolePassword] = await Promise.all([
      this.ofUser(userName, () =>
        listAll(async (Marker) => {
          const r = await iam.send(new ListAccessKeysCommand({ UserName: userName, Marker }));
          return { items: r.AccessKeyMetadata, isTruncated: r.IsTruncated, marker: r.Marker };
        }),
      ),
      // NoSuchEntity here means "no console password" (or no user, which the other calls report).
      unlessGone(async () => {
        await iam.send(new GetLoginProfileCommand({ UserName: userName }));
        return true;
      }, false),
    ]);
    return { activeAccessKeys: keys.filter((k) => k.Status === 'Active').length, consolePassword };
  }
}
