import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FakeIamAccount, type FakeUser } from './fake-iam-account';

/**
 * A fake AWS Organization served over HTTP on loopback: Organizations (JSON 1.1), STS and IAM (query protocol,
 * XML), on one port, so that the real SDK clients of the CLI reach it through `AWS_ENDPOINT_URL_ORGANIZATIONS`,
 * `AWS_ENDPOINT_URL_STS` and `AWS_ENDPOINT_URL_IAM` and the standard credential chain (AWS_ACCESS_KEY_ID…).
 *
 * Requests are told apart as AWS tells them apart: Organizations by its `X-Amz-Target`, STS and IAM by the service
 * in the SigV4 credential scope. The caller is known by the access key id in the same scope: the management
 * account's key, or the temporary key STS issued for one account's member role (`ASIA<account id>XXXX`), whose
 * session token must come with it. Each account's IAM is a FakeIamAccount, so every account serves its own keys.
 * Signatures are not verified.
 */

export interface FakeMember {
  accountId: string;
  name: string;
  /** The root or OU the account sits in. */
  parent: string;
  state?: 'ACTIVE' | 'SUSPENDED' | 'PENDING_CLOSURE' | 'CLOSED';
  iam: FakeIamAccount;
  /** The role that exists there (AssumeRole of any other name is denied, as for a missing role). @default BedrockKeyGuardInventory */
  roleName?: string;
  /** AssumeRole of the member role is denied (its trust policy does not admit the caller). */
  denyAssumeRole?: boolean;
  /** The first N AssumeRole calls for this account are throttled. */
  throttleAssumeRole?: number;
  /** Every IAM call made with the member role's credentials is denied (a role without the read permissions). */
  denyIam?: boolean;
}

export interface RecordedRequest {
  service: 'organizations' | 'sts' | 'iam' | 'cloudformation';
  action: string;
  /** The account whose credentials signed the request. */
  callerAccount: string | null;
  params: Record<string, string>;
}

const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';
const IAM_NS = 'https://iam.amazonaws.com/doc/2010-05-08/';
const CFN_NS = 'http://cloudformation.amazonaws.com/doc/2010-05-15/';
/** The role `keyguard inventory --org` assumes by default (the spoke's read-only inventory role). */
const DEFAULT_ROLE = 'BedrockKeyGuardInventory';

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** An SDK-shaped value as query-protocol XML: lists as `<member>`, dates ISO-8601, blobs base64. */
function toXml(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map((v) => `<member>${toXml(v)}</member>`).join('');
  if (typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `<${k}>${toXml(v)}</${k}>`)
      .join('');
  }
  return esc(String(value));
}

class FakeAwsError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class FakeOrganization {
  readonly rootId = 'r-ab12';
  readonly orgId = 'o-a1b2c3d4e5';
  /** OU id → parent id (the root or an OU). */
  readonly ous = new Map<string, string>();
  readonly members = new Map<string, FakeMember>();
  readonly requests: RecordedRequest[] = [];
  /** Page size of every Organizations List call (small, so the CLI's pagination is exercised). */
  pageSize = 2;
  /** The management account's IAM (the caller's own account). */
  readonly managementIam: FakeIamAccount;
  readonly callerKeyId = 'AKIAFAKEMANAGEMENT01';
  readonly callerSecret = 'fake-management-secret-do-not-print';
  private readonly issued = new Map<string, { accountId: string; token: string }>();
  private readonly assumeCalls = new Map<string, number>();
  private server: Server | null = null;

  constructor(readonly managementAccountId: string) {
    this.managementIam = new FakeIamAccount(managementAccountId);
    // The management account sits under the root; no member role there unless a test gives it one.
    this.members.set(managementAccountId, {
      accountId: managementAccountId,
      name: 'management',
      parent: this.rootId,
      iam: this.managementIam,
      denyAssumeRole: true,
    });
  }

  ou(id: string, parent: string = this.rootId): this {
    this.ous.set(id, parent);
    return this;
  }

  member(m: FakeMember): this {
    this.members.set(m.accountId, m);
    return this;
  }

  /** Secrets and tokens the fake issued: none may ever appear in the CLI's output. */
  secrets(): string[] {
    const out = [this.callerSecret];
    for (const [, { token }] of this.issued) out.push(token);
    for (const id of this.members.keys()) out.push(this.secretOf(id));
    out.push(...this.issuedKeySecrets);
    return out;
  }

  private secretOf(accountId: string): string {
    return `fake-secret-${accountId}-do-not-print`;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** The environment the CLI needs to reach this organization through the SDK's own chains. */
  env(endpoint: string): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_ORGANIZATIONS: endpoint,
      AWS_ENDPOINT_URL_STS: endpoint,
      AWS_ENDPOINT_URL_IAM: endpoint,
      // keyguard inventory looks for the deployed stack's outputs: this organization has no such stack.
      AWS_ENDPOINT_URL_CLOUDFORMATION: endpoint,
      AWS_ACCESS_KEY_ID: this.callerKeyId,
      AWS_SECRET_ACCESS_KEY: this.callerSecret,
      AWS_REGION: 'us-east-1',
    };
  }

  calls(service: RecordedRequest['service'], action?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.service === service && (!action || r.action === action));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const auth = String(req.headers.authorization ?? '');
    const scope = /Credential=([^/]+)\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/.exec(auth);
    const keyId = scope?.[1] ?? '';
    const token = req.headers['x-amz-security-token'];
    let callerAccount: string | null = null;
    if (keyId === this.callerKeyId) callerAccount = this.managementAccountId;
    else {
      const issued = this.issued.get(keyId);
      if (issued && issued.token === token) callerAccount = issued.accountId;
    }
    const target = req.headers['x-amz-target'];
    try {
      if (typeof target === 'string' && target.startsWith('AWSOrganizationsV20161128.')) {
        const action = target.slice('AWSOrganizationsV20161128.'.length);
        const input = JSON.parse(body || '{}') as Record<string, string | number>;
        this.requests.push({
          service: 'organizations',
          action,
          callerAccount,
          params: Object.fromEntries(Object.entries(input).map(([k, v]) => [k, String(v)])),
        });
        if (callerAccount !== this.managementAccountId) {
          throw new FakeAwsError(
            400,
            'AccessDeniedException',
            'You don’t have permissions to access this resource.',
          );
        }
        this.json(res, 200, this.organizations(action, input));
        return;
      }
      const params = Object.fromEntries(new URLSearchParams(body));
      const action = params.Action ?? 'Unknown';
      if (scope?.[2] === 'cloudformation') {
        this.requests.push({ service: 'cloudformation', action, callerAccount, params });
        throw new FakeAwsError(
          400,
          'ValidationError',
          `Stack with id ${params.StackName ?? ''} does not exist`,
        );
      }
      const service = scope?.[2] === 'sts' ? 'sts' : 'iam';
      this.requests.push({ service, action, callerAccount, params });
      if (!callerAccount) {
        throw new FakeAwsError(
          403,
          'InvalidClientTokenId',
          'The security token included in the request is invalid.',
        );
      }
      const result =
        service === 'sts' ? this.sts(action, params, callerAccount) : this.iam(action, params, callerAccount);
      const ns = service === 'sts' ? STS_NS : IAM_NS;
      this.xml(
        res,
        200,
        `<${action}Response xmlns="${ns}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></${action}Response>`,
      );
    } catch (err) {
      if (!(err instanceof FakeAwsError)) throw err;
      if (typeof target === 'string') {
        this.json(res, err.status, { __type: err.code, Message: err.message });
      } else {
        const ns = scope?.[2] === 'sts' ? STS_NS : scope?.[2] === 'cloudformation' ? CFN_NS : IAM_NS;
        this.xml(
          res,
          err.status,
          `<ErrorResponse xmlns="${ns}"><Error><Type>Sender</Type><Code>${err.code}</Code><Message>${esc(err.message)}</Message></Error><RequestId>e-1</RequestId></ErrorResponse>`,
        );
      }
    }
  }

  private json(res: ServerResponse, status: number, value: unknown): void {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'r-1' });
    res.end(JSON.stringify(value));
  }

  private xml(res: ServerResponse, status: number, text: string): void {
    res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': 'r-1' });
    res.end(text);
  }

  private page<T>(
    items: readonly T[],
    input: Record<string, string | number>,
  ): { items: T[]; NextToken?: string } {
    const start = input.NextToken ? Number(input.NextToken) : 0;
    const size = Math.min(Number(input.MaxResults ?? this.pageSize), this.pageSize);
    const more = start + size < items.length;
    return { items: items.slice(start, start + size), ...(more ? { NextToken: String(start + size) } : {}) };
  }

  private accountJson(m: FakeMember) {
    return {
      Id: m.accountId,
      Arn: `arn:aws:organizations::${this.managementAccountId}:account/${this.orgId}/${m.accountId}`,
      Email: `aws+${m.accountId}@example.com`,
      Name: m.name,
      State: m.state ?? 'ACTIVE',
      JoinedMethod: 'CREATED',
      JoinedTimestamp: 1_767_225_600,
    };
  }

  private knownParent(id: string): void {
    if (id !== this.rootId && !this.ous.has(id)) {
      throw new FakeAwsError(
        400,
        'ParentNotFoundException',
        `We can't find a root or OU with the ParentId ${id}.`,
      );
    }
  }

  private organizations(action: string, input: Record<string, string | number>): unknown {
    switch (action) {
      case 'ListRoots':
        return {
          Roots: [
            {
              Id: this.rootId,
              Arn: `arn:aws:organizations::${this.managementAccountId}:root/${this.orgId}/${this.rootId}`,
              Name: 'Root',
              PolicyTypes: [],
            },
          ],
        };
      case 'ListChildren': {
        const parent = String(input.ParentId);
        this.knownParent(parent);
        const ids =
          input.ChildType === 'ORGANIZATIONAL_UNIT'
            ? [...this.ous].filter(([, p]) => p === parent).map(([id]) => id)
            : [...this.members.values()].filter((m) => m.parent === parent).map((m) => m.accountId);
        const { items, NextToken } = this.page(ids, input);
        return {
          Children: items.map((Id) => ({ Id, Type: input.ChildType })),
          ...(NextToken ? { NextToken } : {}),
        };
      }
      case 'ListAccountsForParent': {
        const parent = String(input.ParentId);
        this.knownParent(parent);
        const { items, NextToken } = this.page(
          [...this.members.values()].filter((m) => m.parent === parent),
          input,
        );
        return { Accounts: items.map((m) => this.accountJson(m)), ...(NextToken ? { NextToken } : {}) };
      }
      case 'ListAccounts': {
        const { items, NextToken } = this.page([...this.members.values()], input);
        return { Accounts: items.map((m) => this.accountJson(m)), ...(NextToken ? { NextToken } : {}) };
      }
      case 'DescribeAccount': {
        const m = this.members.get(String(input.AccountId));
        if (!m) {
          throw new FakeAwsError(
            400,
            'AccountNotFoundException',
            "You specified an account that doesn't exist.",
          );
        }
        return { Account: this.accountJson(m) };
      }
      case 'ListParents': {
        const child = String(input.ChildId);
        const parent = this.members.get(child)?.parent ?? this.ous.get(child);
        if (!parent) throw new FakeAwsError(400, 'ChildNotFoundException', `We can't find ${child}.`);
        return { Parents: [{ Id: parent, Type: parent === this.rootId ? 'ROOT' : 'ORGANIZATIONAL_UNIT' }] };
      }
      default:
        throw new FakeAwsError(
          400,
          'InvalidInputException',
          `the fake Organizations does not implement ${action}`,
        );
    }
  }

  private sts(action: string, params: Record<string, string>, callerAccount: string): string {
    switch (action) {
      case 'GetCallerIdentity':
        return toXml({
          UserId: 'AIDAFAKEADMIN',
          Account: callerAccount,
          Arn: `arn:aws:iam::${callerAccount}:user/org-admin`,
        });
      case 'AssumeRole': {
        const m = /^arn:aws:iam::(\d{12}):role\/(.+)$/.exec(params.RoleArn ?? '');
        const member = m ? this.members.get(m[1] as string) : undefined;
        const n = (this.assumeCalls.get(params.RoleArn ?? '') ?? 0) + 1;
        this.assumeCalls.set(params.RoleArn ?? '', n);
        if (member && n <= (member.throttleAssumeRole ?? 0)) {
          throw new FakeAwsError(400, 'Throttling', 'Rate exceeded');
        }
        if (!member || member.denyAssumeRole || m?.[2] !== (member.roleName ?? DEFAULT_ROLE)) {
          throw new FakeAwsError(
            403,
            'AccessDenied',
            `User: arn:aws:iam::${callerAccount}:user/org-admin is not authorized to perform: sts:AssumeRole on resource: ${params.RoleArn}`,
          );
        }
        const keyId = `ASIA${member.accountId}${String(n).padStart(4, '0')}`;
        const token = `fake-session-token-${member.accountId}-${n}`;
        this.issued.set(keyId, { accountId: member.accountId, token });
        return toXml({
          Credentials: {
            AccessKeyId: keyId,
            SecretAccessKey: this.secretOf(member.accountId),
            SessionToken: token,
            Expiration: new Date(Date.now() + 3_600_000),
          },
          AssumedRoleUser: {
            AssumedRoleId: `AROAFAKE:${params.RoleSessionName}`,
            Arn: `arn:aws:sts::${member.accountId}:assumed-role/${m?.[2]}/${params.RoleSessionName}`,
          },
        });
      }
      default:
        throw new FakeAwsError(400, 'InvalidAction', `the fake STS does not implement ${action}`);
    }
  }

  private iam(action: string, p: Record<string, string>, callerAccount: string): string {
    const account =
      callerAccount === this.managementAccountId ? this.managementIam : this.members.get(callerAccount)?.iam;
    if (!account) throw new FakeAwsError(403, 'AccessDenied', 'no such account');
    if (this.members.get(callerAccount)?.denyIam) {
      throw new FakeAwsError(
        403,
        'AccessDenied',
        `User: arn:aws:sts::${callerAccount}:assumed-role/member/keyguard-inventory is not authorized to perform: iam:${action}`,
      );
    }
    switch (action) {
      case 'ListServiceSpecificCredentials':
        return toXml(
          account.listKeys({
            ...(p.UserName ? { UserName: p.UserName } : {}),
            ...(p.ServiceName ? { ServiceName: p.ServiceName } : {}),
            ...(p.AllUsers ? { AllUsers: p.AllUsers === 'true' } : {}),
            ...(p.Marker ? { Marker: p.Marker } : {}),
            ...(p.MaxItems ? { MaxItems: Number(p.MaxItems) } : {}),
          }),
        );
      case 'GetAccountAuthorizationDetails':
        return toXml(account.authorizationDetails({}));
      case 'GenerateCredentialReport':
        return toXml({ State: 'COMPLETE', Description: 'ok' });
      case 'GetCredentialReport':
        return toXml({
          Content: new TextEncoder().encode(account.credentialReportCsv()),
          ReportFormat: 'text/csv',
          GeneratedTime: new Date('2026-11-20T08:00:00Z'),
        });
      case 'ListUserTags':
        return toXml({
          Tags: Object.entries(account.users.get(p.UserName ?? '')?.tags ?? {}).map(([Key, Value]) => ({
            Key,
            Value,
          })),
          IsTruncated: false,
        });
      default:
        return this.iamMore(account, action, p);
    }
  }

  /** Secrets of the Bedrock keys CreateServiceSpecificCredential issued: none may ever appear in output. */
  readonly issuedKeySecrets: string[] = [];
  /**
   * Called after each IAM call this fake served successfully, with its account, action, parameters and result:
   * a test delivers the CloudTrail record of a write from here (or queues it) to the functions under test.
   */
  onIamCall:
    | ((call: { account: FakeIamAccount; action: string; params: Record<string, string> }) => void)
    | null = null;
  /** The clock of the users and keys this fake creates (a test's injected clock). */
  now: () => Date = () => new Date();
  private keySeq = 0;

  private notFound(what: string): FakeAwsError {
    return new FakeAwsError(404, 'NoSuchEntity', `The ${what} cannot be found.`);
  }

  private userOf(account: FakeIamAccount, name: string | undefined): FakeUser {
    const u = account.users.get(name ?? '');
    if (!u) throw this.notFound(`user with name ${name}`);
    return u;
  }

  /** IAM's user writes and the reads of the functions' user facts (query parameters: Tags.member.N.Key…). */
  /** IAM actions (of iamWrite's) denied to every caller, as a missing permission would. */
  readonly iamDenied = new Set<string>();

  private iamMore(account: FakeIamAccount, action: string, p: Record<string, string>): string {
    if (this.iamDenied.has(action)) {
      throw new FakeAwsError(
        403,
        'AccessDenied',
        `User: arn:aws:iam::${account.accountId}:user/org-admin is not authorized to perform: iam:${action} on ` +
          `resource: arn:aws:iam::${account.accountId}:user/${p.UserName ?? ''} because no identity-based policy ` +
          'allows the iam:' +
          `${action} action`,
      );
    }
    const result = this.iamWrite(account, action, p);
    this.onIamCall?.({ account, action, params: p });
    return result;
  }

  private iamWrite(account: FakeIamAccount, action: string, p: Record<string, string>): string {
    const userArn = (name: string) => `arn:aws:iam::${account.accountId}:user/${name}`;
    switch (action) {
      case 'CreateUser': {
        const name = p.UserName ?? '';
        if (account.users.has(name)) {
          throw new FakeAwsError(409, 'EntityAlreadyExists', `User with name ${name} already exists.`);
        }
        const tags: Record<string, string> = {};
        for (let i = 1; p[`Tags.member.${i}.Key`] !== undefined; i++) {
          tags[p[`Tags.member.${i}.Key`] as string] = p[`Tags.member.${i}.Value`] ?? '';
        }
        account.user(name, { tags });
        return toXml({
          User: {
            Path: '/',
            UserName: name,
            UserId: `AIDA${name.length}FAKE`,
            Arn: userArn(name),
            CreateDate: this.now(),
          },
        });
      }
      case 'TagUser': {
        const u = this.userOf(account, p.UserName);
        u.tags = { ...(u.tags ?? {}) };
        for (let i = 1; p[`Tags.member.${i}.Key`] !== undefined; i++) {
          u.tags[p[`Tags.member.${i}.Key`] as string] = p[`Tags.member.${i}.Value`] ?? '';
        }
        return '';
      }
      case 'ListUsers': {
        const names = [...account.users.keys()];
        const start = p.Marker ? Number(p.Marker) : 0;
        const size = Number(p.MaxItems ?? this.pageSize);
        const more = start + size < names.length;
        return toXml({
          Users: names.slice(start, start + size).map((n) => ({
            Path: '/',
            UserName: n,
            UserId: `AIDA${n.length}FAKE`,
            Arn: userArn(n),
            CreateDate: new Date('2026-01-01T00:00:00Z'),
          })),
          IsTruncated: more,
          ...(more ? { Marker: String(start + size) } : {}),
        });
      }
      case 'CreateServiceSpecificCredential': {
        const name = p.UserName ?? '';
        this.userOf(account, name);
        const serviceName = p.ServiceName ?? '';
        if (account.keys.filter((k) => k.userName === name && k.serviceName === serviceName).length >= 2) {
          throw new FakeAwsError(409, 'LimitExceeded', 'Cannot exceed quota for CredentialsPerUser: 2');
        }
        this.keySeq += 1;
        const keyId = `ACCAFAKESELF${account.accountId.slice(-4)}${String(this.keySeq).padStart(5, '0')}`;
        const createdAt = this.now();
        const days = p.CredentialAgeDays ? Number(p.CredentialAgeDays) : null;
        const expiresAt = days ? new Date(createdAt.getTime() + days * 86_400_000).toISOString() : null;
        account.key({ keyId, userName: name, createdAt: createdAt.toISOString(), expiresAt, serviceName });
        const alias = `${name}-at-${account.accountId}`;
        const secret = `ABSK${Buffer.from(`${alias}:${createHash('sha256').update(keyId).digest('base64').slice(0, 43)}`).toString('base64')}`;
        this.issuedKeySecrets.push(secret);
        return toXml({
          ServiceSpecificCredential: {
            CreateDate: createdAt,
            ...(expiresAt ? { ExpirationDate: new Date(expiresAt) } : {}),
            ServiceName: serviceName,
            ServiceCredentialAlias: alias,
            ServiceCredentialSecret: secret,
            ServiceSpecificCredentialId: keyId,
            UserName: name,
            Status: 'Active',
          },
        });
      }
      case 'UpdateServiceSpecificCredential': {
        const k = account.keys.find((x) => x.keyId === p.ServiceSpecificCredentialId);
        if (!k) throw this.notFound(`Service Specific Credential ${p.ServiceSpecificCredentialId}`);
        k.status = p.Status as 'Active' | 'Inactive';
        return '';
      }
      case 'DeleteServiceSpecificCredential': {
        const k = account.keys.find((x) => x.keyId === p.ServiceSpecificCredentialId);
        if (!k) throw this.notFound(`Service Specific Credential ${p.ServiceSpecificCredentialId}`);
        account.remove(k.keyId);
        return '';
      }
      case 'DeleteUser': {
        const name = p.UserName ?? '';
        this.userOf(account, name);
        if (account.keys.some((k) => k.userName === name)) {
          throw new FakeAwsError(
            409,
            'DeleteConflict',
            'Cannot delete entity, must remove credentials first.',
          );
        }
        account.users.delete(name);
        return '';
      }
      case 'ListAttachedUserPolicies':
        return toXml({
          AttachedPolicies: (this.userOf(account, p.UserName).attached ?? []).map((a) => ({
            PolicyName: a.name,
            PolicyArn: a.arn,
          })),
          IsTruncated: false,
        });
      case 'ListUserPolicies':
        return toXml({
          PolicyNames: (this.userOf(account, p.UserName).inline ?? []).map((i) => i.name),
          IsTruncated: false,
        });
      case 'ListGroupsForUser':
        return toXml({ Groups: [], IsTruncated: false });
      case 'ListAccessKeys':
        return toXml({ AccessKeyMetadata: [], IsTruncated: false });
      case 'GetLoginProfile':
        if (!this.userOf(account, p.UserName).password)
          throw this.notFound(`Login Profile for User ${p.UserName}`);
        return toXml({ LoginProfile: { UserName: p.UserName, CreateDate: new Date() } });
      default:
        throw new FakeAwsError(400, 'InvalidAction', `the fake IAM does not implement ${action}`);
    }
  }
}
