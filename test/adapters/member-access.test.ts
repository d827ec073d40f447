import { GetUserCommand, IAMClient } from '@aws-sdk/client-iam';
import { AssumeRoleCommand, STSClient, STSServiceException } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CREDENTIAL_REFRESH_MS,
  MEMBER_ACCOUNTS_CACHED,
  MemberAccess,
  MemberRoleError,
  sessionNameFor,
  UngovernedAccountError,
} from '../../lambda/adapters/member-access';
import { OrganizationSchema } from '../../lambda/shared/config';

const sts = mockClient(STSClient);
const iam = mockClient(IAMClient);
const HUB = '999999999999';
const MEMBER_A = '333333333333';
const MEMBER_B = '444444444444';
const EXCLUDED = '222222222222';
const T0 = new Date('2026-11-20T09:00:00Z');
const HOUR = 3_600_000;

const organization = OrganizationSchema.parse({
  id: 'o-a1b2c3d4e5',
  managementAccountId: '111111111111',
  targets: ['ou-ab12-cd34ef56'],
  excludeAccounts: [EXCLUDED],
  memberRoleName: 'KeyGuardMemberTest',
});

/** STS answers AssumeRole with credentials naming the account, valid for an hour from `issuedAt()`. */
function answerAssumeRole(issuedAt: () => Date) {
  let n = 0;
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
    n += 1;
    const account = input.RoleArn.split(':')[4];
    return {
      Credentials: {
        AccessKeyId: `ASIA${account}N${n}`,
        SecretAccessKey: 'secret-not-real',
        SessionToken: `token-${n}`,
        Expiration: new Date(issuedAt().getTime() + HOUR),
      },
    };
  });
}

function access(now: () => Date = () => T0, org = organization) {
  return new MemberAccess({
    organization: org,
    hubAccountId: HUB,
    functionName: 'credential-event',
    hubIam: new IAMClient({ region: 'us-east-1' }),
    sts: new STSClient({ region: 'us-east-1' }),
    now,
  });
}

/** The credentials the client that sent the n-th IAM call signs with. */
async function credentialsOfIamCall(n: number) {
  const call = iam.commandCalls(GetUserCommand)[n];
  const client = call?.thisValue as IAMClient;
  const provider = client.config.credentials as () => Promise<{ accessKeyId: string }>;
  return provider();
}

beforeEach(() => {
  sts.reset();
  iam.reset();
  iam.on(GetUserCommand).resolves({});
});

describe('MemberAccess', () => {
  it('acts in the hub account with the function credentials: no AssumeRole', async () => {
    // Prepare
    const hubIam = new IAMClient({ region: 'us-east-1' });
    const a = new MemberAccess({
      organization,
      hubAccountId: HUB,
      functionName: 'sweep',
      hubIam,
      sts: new STSClient({}),
    });

    // Act
    const client = await a.iamFor(HUB);

    // Assess
    expect(client).toBe(hubIam);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
  });

  it('assumes the member role of each account, with the function session name, and signs with its credentials', async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const a = access();

    // Act
    await (await a.iamFor(MEMBER_A)).send(new GetUserCommand({}));
    await (await a.iamFor(MEMBER_B)).send(new GetUserCommand({}));

    // Assess
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
    expect(sts.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input)).toEqual([
      {
        RoleArn: `arn:aws:iam::${MEMBER_A}:role/KeyGuardMemberTest`,
        RoleSessionName: 'keyguard-credential-event',
      },
      {
        RoleArn: `arn:aws:iam::${MEMBER_B}:role/KeyGuardMemberTest`,
        RoleSessionName: 'keyguard-credential-event',
      },
    ]);
    expect((await credentialsOfIamCall(0)).accessKeyId).toBe(`ASIA${MEMBER_A}N1`);
    expect((await credentialsOfIamCall(1)).accessKeyId).toBe(`ASIA${MEMBER_B}N2`);
  });

  it('caches credentials per account until five minutes before expiry, then assumes the role again', async () => {
    // Prepare
    let now = T0;
    answerAssumeRole(() => now);
    const a = access(() => now);

    // Act: three uses within the hour, one inside the refresh window, one after
    const first = await a.credentialsFor(MEMBER_A);
    now = new Date(T0.getTime() + 30 * 60_000);
    const second = await a.credentialsFor(MEMBER_A);
    await a.iamFor(MEMBER_A);
    now = new Date(T0.getTime() + HOUR - CREDENTIAL_REFRESH_MS - 1);
    const lastCached = await a.credentialsFor(MEMBER_A);
    const callsBeforeWindow = sts.commandCalls(AssumeRoleCommand).length;
    now = new Date(T0.getTime() + HOUR - CREDENTIAL_REFRESH_MS);
    const renewed = await a.credentialsFor(MEMBER_A);
    const renewedAgain = await a.credentialsFor(MEMBER_A);

    // Assess
    expect(second).toBe(first);
    expect(lastCached).toBe(first);
    expect(callsBeforeWindow).toBe(1);
    expect(renewed.accessKeyId).toBe(`ASIA${MEMBER_A}N2`);
    expect(renewedAgain).toBe(renewed);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
  });

  it('shares one AssumeRole between concurrent first uses of an account', async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const a = access();

    // Act
    const clients = await Promise.all([a.iamFor(MEMBER_A), a.iamFor(MEMBER_A), a.iamFor(MEMBER_A)]);

    // Assess
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    expect(new Set(clients).size).toBe(1);
  });

  it('turns AccessDenied into a MemberRoleError naming the account and role, and does not cache the failure', async () => {
    // Prepare
    sts
      .on(AssumeRoleCommand)
      .rejectsOnce(
        new STSServiceException({
          name: 'AccessDenied',
          $fault: 'client',
          $metadata: {},
          message:
            'User: arn:aws:sts::999999999999:assumed-role/hub/fn is not authorized to perform: sts:AssumeRole',
        }),
      )
      .resolves({
        Credentials: {
          AccessKeyId: 'ASIAAFTER',
          SecretAccessKey: 's',
          SessionToken: 't',
          Expiration: new Date(T0.getTime() + HOUR),
        },
      });
    const a = access();

    // Act
    const failure = await a.iamFor(MEMBER_A).catch((e: unknown) => e);
    const later = await a.credentialsFor(MEMBER_A);

    // Assess
    expect(failure).toBeInstanceOf(MemberRoleError);
    const e = failure as MemberRoleError;
    expect(e.accountId).toBe(MEMBER_A);
    expect(e.roleArn).toBe(`arn:aws:iam::${MEMBER_A}:role/KeyGuardMemberTest`);
    expect(e.code).toBe('AccessDenied');
    expect(e.message).toContain(`account ${MEMBER_A}`);
    expect(e.message).toContain(`arn:aws:iam::${MEMBER_A}:role/KeyGuardMemberTest`);
    expect(later.accessKeyId).toBe('ASIAAFTER');
  });

  it('lets other STS errors (throttling past retries) through unchanged, for Lambda to retry', async () => {
    // Prepare
    const throttled = new STSServiceException({
      name: 'Throttling',
      $fault: 'client',
      $metadata: {},
      message: 'Rate exceeded',
    });
    sts.on(AssumeRoleCommand).rejects(throttled);
    const a = access();

    // Act
    const failure = await a.iamFor(MEMBER_A).catch((e: unknown) => e);

    // Assess
    expect(failure).not.toBeInstanceOf(MemberRoleError);
    expect((failure as Error).name).toBe('Throttling');
  });

  it('refuses excluded accounts, non-account ids and, without an organization, any account but the hub', async () => {
    // Prepare
    const a = access();
    const single = access(() => T0, null as never);

    // Act
    const excluded = await a.iamFor(EXCLUDED).catch((e: unknown) => e);
    const bogus = await a.iamFor('12345').catch((e: unknown) => e);
    const other = await single.iamFor(MEMBER_A).catch((e: unknown) => e);

    // Assess
    expect(excluded).toBeInstanceOf(UngovernedAccountError);
    expect((excluded as Error).message).toContain('excludeAccounts');
    expect(bogus).toBeInstanceOf(UngovernedAccountError);
    expect(other).toBeInstanceOf(UngovernedAccountError);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
  });

  it('names sessions keyguard-<function> within STS rules', () => {
    expect(sessionNameFor('sweep')).toBe('keyguard-sweep');
    expect(sessionNameFor('a b/c'.repeat(20))).toMatch(/^keyguard-[\w+=,.@-]{1,55}$/);
  });

  it('builds the role ARN in the given partition', () => {
    const a = new MemberAccess({
      organization,
      hubAccountId: HUB,
      functionName: 'leak',
      partition: 'aws-cn',
    });
    expect(a.roleArnFor(MEMBER_A)).toBe(`arn:aws-cn:iam::${MEMBER_A}:role/KeyGuardMemberTest`);
  });
});

describe('MemberAccess retries', () => {
  it("retries throttling with the SDK's standard mode: member IAM clients and the default STS client alike", async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const a = new MemberAccess({
      organization,
      hubAccountId: HUB,
      functionName: 'sweep',
      hubIam: new IAMClient({ region: 'us-east-1' }),
      now: () => T0,
    });

    // Act
    const member = await a.iamFor(MEMBER_A);
    const stsClient = sts.commandCalls(AssumeRoleCommand)[0]?.thisValue as STSClient;

    // Assess
    for (const client of [member, stsClient]) {
      expect(await client.config.maxAttempts()).toBe(6);
      const mode = client.config.retryMode as unknown;
      expect(typeof mode === 'function' ? await (mode as () => Promise<string>)() : mode).toBe('standard');
    }
    expect(await member.config.region()).toBe('us-east-1');
  });
});

describe('MemberAccess cache bound (one IAM client and credentials per member account)', () => {
  const MEMBER_C = '555555555555';
  const bounded = (maxAccounts: number) =>
    new MemberAccess({
      organization,
      hubAccountId: HUB,
      functionName: 'credential-event',
      hubIam: new IAMClient({ region: 'us-east-1' }),
      sts: new STSClient({ region: 'us-east-1' }),
      now: () => T0,
      maxAccounts,
    });
  const assumedFor = () =>
    sts.commandCalls(AssumeRoleCommand).map((c) => (c.args[0].input.RoleArn ?? '').split(':')[4]);

  it('reuses a cached account and evicts the least recently used one, client and credentials together', async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const a = bounded(2);
    const clientA = await a.iamFor(MEMBER_A);
    const clientB = await a.iamFor(MEMBER_B);

    // Act: A is used again (B is now the least recently used), then C pushes one account out
    const againA = await a.iamFor(MEMBER_A);
    await a.iamFor(MEMBER_C);
    const afterC = await a.iamFor(MEMBER_A);
    const newB = await a.iamFor(MEMBER_B);

    // Assess: A kept its client and credentials; B was evicted and is assumed afresh, with a new client
    expect(againA).toBe(clientA);
    expect(afterC).toBe(clientA);
    expect(newB).not.toBe(clientB);
    expect(assumedFor()).toEqual([MEMBER_A, MEMBER_B, MEMBER_C, MEMBER_B]);
    expect(a.cachedAccounts()).toEqual([MEMBER_A, MEMBER_B].sort());
  });

  it('keeps at most maxAccounts accounts however many are reached, and an evicted client still signs', async () => {
    // Prepare
    answerAssumeRole(() => T0);
    const a = bounded(3);
    const accounts = Array.from({ length: 20 }, (_v, i) => String(100000000000 + i));

    // Act
    const clients: IAMClient[] = [];
    for (const id of accounts) clients.push(await a.iamFor(id));
    const cachedAfterAll = a.cachedAccounts();
    // The first client, evicted long ago, asks for credentials to sign a request
    const provider = (clients[0] as IAMClient).config.credentials as () => Promise<{ accessKeyId: string }>;
    const signing = await provider();

    // Assess: the three most recent are cached; the evicted client assumed its role again, which cached it anew
    expect(cachedAfterAll).toEqual(accounts.slice(17));
    expect(signing.accessKeyId).toBe(`ASIA${accounts[0]}N21`);
    expect(a.cachedAccounts()).toEqual([accounts[0], accounts[18], accounts[19]]);
  });

  it('defaults to a bound of MEMBER_ACCOUNTS_CACHED accounts', async () => {
    answerAssumeRole(() => T0);
    const a = access();
    for (let i = 0; i < MEMBER_ACCOUNTS_CACHED + 5; i += 1) await a.iamFor(String(100000000000 + i));
    expect(a.cachedAccounts()).toHaveLength(MEMBER_ACCOUNTS_CACHED);
  });
});
