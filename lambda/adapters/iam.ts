import {
  type IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  NoSuchEntityException,
  type ServiceSpecificCredentialMetadata,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { toIso } from '../domain/dates';
import type { Enforcer, KeyDirectory, KeyMetadata } from '../domain/pipeline';
import { BEDROCK_SERVICE } from '../domain/types';

/**
 * IAM, read for key state and written only to deactivate. Every call names the Bedrock service, so a
 * CodeCommit/Keyspaces/CloudWatch Logs credential is never listed, and never changed.
 * `clientFor(accountId)` lets one deployment govern several accounts (organization mode) later.
 */

export type IamClientProvider = (accountId: string) => IAMClient | Promise<IAMClient>;

function isNoSuchEntity(err: unknown): boolean {
  return (
    err instanceof NoSuchEntityException ||
    (err as { name?: string } | null)?.name === 'NoSuchEntityException'
  );
}

/** One listed credential as key metadata; null unless it is a Bedrock key with an id and a user. */
export function toMetadata(c: ServiceSpecificCredentialMetadata): KeyMetadata | null {
  if (c.ServiceName !== BEDROCK_SERVICE || !c.ServiceSpecificCredentialId || !c.UserName) return null;
  const status = c.Status === 'Inactive' || c.Status === 'Expired' ? c.Status : 'Active';
  return {
    keyId: c.ServiceSpecificCredentialId,
    userName: c.UserName,
    status,
    createdAt: toIso(c.CreateDate),
    expiresAt: toIso(c.ExpirationDate),
    // The alias is what a leaked long-term key decodes to (`<user>-at-<account>`): kept only when IAM lists one.
    ...(c.ServiceCredentialAlias ? { alias: c.ServiceCredentialAlias } : {}),
  };
}

export class IamKeyDirectory implements KeyDirectory {
  constructor(private readonly clientFor: IamClientProvider) {}

  async listUserKeys(accountId: string, userName: string): Promise<KeyMetadata[]> {
    const iam = await this.clientFor(accountId);
    const out: KeyMetadata[] = [];
    let marker: string | undefined;
    try {
      do {
        const res = await iam.send(
          new ListServiceSpecificCredentialsCommand({
            UserName: userName,
            ServiceName: BEDROCK_SERVICE,
            Marker: marker,
          }),
        );
        for (const c of res.ServiceSpecificCredentials ?? []) {
          const m = toMetadata(c);
          if (m) out.push(m);
        }
        marker = res.IsTruncated ? res.Marker : undefined;
      } while (marker);
    } catch (err) {
      if (isNoSuchEntity(err)) return [];
      throw err;
    }
    return out;
  }

  async getKey(accountId: string, userName: string, keyId: string): Promise<KeyMetadata | null> {
    const keys = await this.listUserKeys(accountId, userName);
    return keys.find((k) => k.keyId === keyId) ?? null;
  }

  async getUserTags(accountId: string, userName: string): Promise<Record<string, string>> {
    const iam = await this.clientFor(accountId);
    const tags: Record<string, string> = {};
    let marker: string | undefined;
    try {
      do {
        const res = await iam.send(new ListUserTagsCommand({ UserName: userName, Marker: marker }));
        for (const t of res.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? '';
        marker = res.IsTruncated ? res.Marker : undefined;
      } while (marker);
    } catch (err) {
      if (isNoSuchEntity(err)) return {};
      throw err;
    }
    return tags;
  }
}

/**
 * Deactivation only: Status=Inactive is reversible. There is deliberately no delete here. The deployed role
 * may call UpdateServiceSpecificCredential only on Bedrock credentials (IAM condition), so even a bug here
 * could not touch another service's credential.
 */
export class IamEnforcer implements Enforcer {
  constructor(
    private readonly clientFor: IamClientProvider,
    private readonly directory: KeyDirectory,
  ) {}

  async deactivate(accountId: string, userName: string, keyId: string): Promise<boolean> {
    // Re-check immediately before acting: only an Active Bedrock key with this exact id is changed.
    const current = await this.directory.getKey(accountId, userName, keyId);
    if (current?.status !== 'Active') return false;
    const iam = await this.clientFor(accountId);
    try {
      await iam.send(
        new UpdateServiceSpecificCredentialCommand({
          UserName: userName,
          ServiceSpecificCredentialId: keyId,
          Status: 'Inactive',
        }),
      );
    } catch (err) {
      // Deleted between the check and the call: nothing left to deactivate.
      if (isNoSuchEntity(err)) return false;
      throw err;
    }
    return true;
  }
}
