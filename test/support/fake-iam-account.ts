import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  type GetAccountAuthorizationDetailsCommandInput,
  GetCredentialReportCommand,
  type IAMClient,
  ListServiceSpecificCredentialsCommand,
  type ListServiceSpecificCredentialsCommandInput,
  ListUserTagsCommand,
  NoSuchEntityException,
  type ServiceSpecificCredentialMetadata,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import type { AwsStub } from 'aws-sdk-client-mock';

/**
 * An in-memory IAM account served through aws-sdk-client-mock: users (tags, policies, groups, access keys,
 * password), groups, customer-managed policies and service-specific credentials. The tests change it between
 * sweeps (add, delete, reactivate keys) and the mocked IAM answers from it, as IAM would.
 */

export interface FakeUser {
  tags?: Record<string, string>;
  inline?: Array<{ name: string; document: unknown }>;
  attached?: Array<{ name: string; arn: string }>;
  groups?: string[];
  activeAccessKeys?: 0 | 1 | 2;
  password?: boolean;
}

export interface FakeKey {
  keyId: string;
  userName: string;
  status?: 'Active' | 'Inactive' | 'Expired';
  createdAt: string;
  expiresAt?: string | null;
  serviceName?: string;
}

export const FULL_TAGS = { owner: 'team@example.com', purpose: 'chatbot', 'review-cadence': '1y' };

// biome-ignore lint/suspicious/noExplicitAny: aws-sdk-client-mock's stub is generic over the client's I/O types
type IamStub = AwsStub<any, any, any>;

export class FakeIamAccount {
  readonly users = new Map<string, FakeUser>();
  readonly groups = new Map<
    string,
    { inline?: Array<{ name: string; document: unknown }>; attached?: Array<{ name: string; arn: string }> }
  >();
  readonly localPolicies = new Map<string, unknown>();
  readonly keys: FakeKey[] = [];
  /** Keys the AllUsers listing misses (as if they moved between pages while they were read). */
  readonly hiddenFromListing = new Set<string>();
  /** Largest page the fake returns for ListServiceSpecificCredentials (IAM's is 1000). */
  keysPageSize = 1000;

  constructor(readonly accountId: string) {}

  user(name: string, u: FakeUser = { tags: FULL_TAGS }): this {
    this.users.set(name, u);
    return this;
  }

  key(k: FakeKey): this {
    if (!this.users.has(k.userName)) this.user(k.userName);
    this.keys.push({ status: 'Active', expiresAt: null, serviceName: 'bedrock.amazonaws.com', ...k });
    return this;
  }

  find(keyId: string): FakeKey {
    const k = this.keys.find((x) => x.keyId === keyId);
    if (!k) throw new Error(`no fake key ${keyId}`);
    return k;
  }

  remove(keyId: string): void {
    const i = this.keys.findIndex((x) => x.keyId === keyId);
    if (i >= 0) this.keys.splice(i, 1);
  }

  private metadata(k: FakeKey): ServiceSpecificCredentialMetadata {
    return {
      UserName: k.userName,
      Status: k.status,
      ServiceCredentialAlias: `${k.userName}-at-${this.accountId}`,
      CreateDate: new Date(k.createdAt),
      ...(k.expiresAt ? { ExpirationDate: new Date(k.expiresAt) } : {}),
      ServiceSpecificCredentialId: k.keyId,
      ServiceName: k.serviceName,
    };
  }

  listKeys(input: ListServiceSpecificCredentialsCommandInput) {
    if (input.UserName && !this.users.has(input.UserName)) {
      throw new NoSuchEntityException({ message: `user ${input.UserName} not found`, $metadata: {} });
    }
    const matching = this.keys.filter(
      (k) =>
        (input.AllUsers ? !this.hiddenFromListing.has(k.keyId) : k.userName === input.UserName) &&
        (!input.ServiceName || k.serviceName === input.ServiceName),
    );
    if (!input.AllUsers) return { ServiceSpecificCredentials: matching.map((k) => this.metadata(k)) };
    const start = input.Marker ? Number(input.Marker) : 0;
    const size = Math.min(input.MaxItems ?? 100, this.keysPageSize);
    const page = matching.slice(start, start + size);
    const more = start + size < matching.length;
    return {
      ServiceSpecificCredentials: page.map((k) => this.metadata(k)),
      IsTruncated: more,
      ...(more ? { Marker: String(start + size) } : {}),
    };
  }

  authorizationDetails(_input: GetAccountAuthorizationDetailsCommandInput) {
    const enc = (doc: unknown) => encodeURIComponent(JSON.stringify(doc));
    return {
      UserDetailList: [...this.users].map(([name, u]) => ({
        UserName: name,
        Arn: `arn:aws:iam::${this.accountId}:user/${name}`,
        Tags: Object.entries(u.tags ?? {}).map(([Key, Value]) => ({ Key, Value })),
        UserPolicyList: (u.inline ?? []).map((p) => ({
          PolicyName: p.name,
          PolicyDocument: enc(p.document),
        })),
        AttachedManagedPolicies: (u.attached ?? []).map((p) => ({ PolicyName: p.name, PolicyArn: p.arn })),
        GroupList: u.groups ?? [],
      })),
      GroupDetailList: [...this.groups].map(([name, g]) => ({
        GroupName: name,
        GroupPolicyList: (g.inline ?? []).map((p) => ({
          PolicyName: p.name,
          PolicyDocument: enc(p.document),
        })),
        AttachedManagedPolicies: (g.attached ?? []).map((p) => ({ PolicyName: p.name, PolicyArn: p.arn })),
      })),
      Policies: [...this.localPolicies].map(([arn, doc]) => ({
        Arn: arn,
        PolicyName: arn.split('/').pop(),
        DefaultVersionId: 'v1',
        PolicyVersionList: [{ VersionId: 'v1', IsDefaultVersion: true, Document: enc(doc) }],
      })),
      IsTruncated: false,
    };
  }

  credentialReportCsv(): string {
    const header =
      'user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated';
    const root = `<root_account>,arn:aws:iam::${this.accountId}:root,2020-01-01T00:00:00+00:00,not_supported,2026-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A`;
    const rows = [...this.users].map(([name, u]) => {
      const k = u.activeAccessKeys ?? 0;
      return [
        name,
        `arn:aws:iam::${this.accountId}:user/${name}`,
        '2026-01-01T00:00:00+00:00',
        u.password ? 'true' : 'false',
        'N/A',
        'N/A',
        'N/A',
        'false',
        k >= 1 ? 'true' : 'false',
        'N/A',
        'N/A',
        'N/A',
        'N/A',
        k >= 2 ? 'true' : 'false',
        'N/A',
        'N/A',
        'N/A',
        'N/A',
        'false',
        'N/A',
        'false',
        'N/A',
      ].join(',');
    });
    return [header, root, ...rows].join('\n');
  }

  /** Answers every IAM call the sweep makes from this account. */
  install(iam: IamStub): void {
    iam.on(ListServiceSpecificCredentialsCommand).callsFake((input) => this.listKeys(input));
    iam.on(GetAccountAuthorizationDetailsCommand).callsFake((input) => this.authorizationDetails(input));
    iam.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
    iam.on(GetCredentialReportCommand).callsFake(() => ({
      Content: new TextEncoder().encode(this.credentialReportCsv()),
      ReportFormat: 'text/csv',
      GeneratedTime: new Date('2026-11-20T08:00:00Z'),
    }));
    iam.on(ListUserTagsCommand).callsFake((input: { UserName: string }) => ({
      Tags: Object.entries(this.users.get(input.UserName)?.tags ?? {}).map(([Key, Value]) => ({
        Key,
        Value,
      })),
      IsTruncated: false,
    }));
    iam
      .on(UpdateServiceSpecificCredentialCommand)
      .callsFake((input: { ServiceSpecificCredentialId: string; Status: 'Active' | 'Inactive' }) => {
        this.find(input.ServiceSpecificCredentialId).status = input.Status;
        return {};
      });
  }
}

/** The typed IAM client stub aws-sdk-client-mock returns for IAMClient. */
export type { IAMClient };
