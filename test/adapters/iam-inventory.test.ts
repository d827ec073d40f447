import {
  CredentialReportNotReadyException,
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  type ServiceSpecificCredentialMetadata,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { IamKeyDirectory } from '../../lambda/adapters/iam';
import {
  AccountSnapshot,
  CredentialReportUnavailableError,
  listBedrockKeysPage,
  parseCredentialReport,
  SnapshotAccountError,
  SnapshotKeyDirectory,
} from '../../lambda/adapters/iam-inventory';
import { FakeIamAccount } from '../support/fake-iam-account';

const ACCOUNT = '111122223333';
const iam = mockClient(IAMClient);
const client = new IAMClient({ region: 'us-east-1' });
const noSleep = async () => undefined;

function cred(
  id: string,
  over: Partial<ServiceSpecificCredentialMetadata> = {},
): ServiceSpecificCredentialMetadata {
  return {
    UserName: 'svc-chatbot',
    Status: 'Active',
    CreateDate: new Date('2026-11-20T09:31:02Z'),
    ServiceSpecificCredentialId: id,
    ServiceName: 'bedrock.amazonaws.com',
    ...over,
  };
}

const enc = (doc: unknown) => encodeURIComponent(JSON.stringify(doc));
const REPORT_HEADER =
  'user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated';
const REPORT = [
  REPORT_HEADER,
  `<root_account>,arn:aws:iam::${ACCOUNT}:root,2020-01-01T00:00:00+00:00,not_supported,2026-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A`,
  `svc-admin,arn:aws:iam::${ACCOUNT}:user/svc-admin,2026-01-01T00:00:00+00:00,true,2026-11-01T00:00:00+00:00,2026-01-01T00:00:00+00:00,N/A,false,true,2026-01-01T00:00:00+00:00,N/A,N/A,N/A,true,2026-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A`,
  `svc-chatbot,arn:aws:iam::${ACCOUNT}:user/svc-chatbot,2026-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A`,
  `svc-ml,arn:aws:iam::${ACCOUNT}:user/svc-ml,2026-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,false,2026-01-01T00:00:00+00:00,N/A,N/A,N/A,true,2026-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A`,
].join('\n');

beforeEach(() => iam.reset());

describe('listBedrockKeysPage', () => {
  it('asks for ONE page of every user’s Bedrock keys (AllUsers, MaxItems 1000) and returns the next marker', async () => {
    // Prepare
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [
        cred('ACCAEXAMPLEKEYPAGE001'),
        cred('ACCAEXAMPLEKEYPAGE002', { UserName: 'other' }),
      ],
      IsTruncated: true,
      Marker: 'next-1',
    });
    // Act
    const page = await listBedrockKeysPage(client, 'marker-0');
    // Assess
    expect(iam).toHaveReceivedCommandTimes(ListServiceSpecificCredentialsCommand, 1);
    const input = iam.commandCalls(ListServiceSpecificCredentialsCommand)[0]?.args[0].input;
    expect(input).toEqual({
      AllUsers: true,
      ServiceName: 'bedrock.amazonaws.com',
      MaxItems: 1000,
      Marker: 'marker-0',
    });
    expect(input).not.toHaveProperty('UserName');
    expect(page.nextMarker).toBe('next-1');
    expect(page.keys.map((k) => [k.userName, k.keyId])).toEqual([
      ['svc-chatbot', 'ACCAEXAMPLEKEYPAGE001'],
      ['other', 'ACCAEXAMPLEKEYPAGE002'],
    ]);
  });

  it('starts without a marker, ends with null, and keeps only Bedrock keys whatever IAM returns', async () => {
    // Prepare
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [
        cred('ACCAEXAMPLECODECOMMIT', { ServiceName: 'codecommit.amazonaws.com' }),
        cred('ACCAEXAMPLEKEYBEDROCK', {
          ExpirationDate: new Date('2027-01-01T00:00:00Z'),
          Status: 'Inactive',
        }),
      ],
      IsTruncated: false,
    });
    // Act
    const page = await listBedrockKeysPage(client);
    // Assess
    expect(iam.commandCalls(ListServiceSpecificCredentialsCommand)[0]?.args[0].input.Marker).toBeUndefined();
    expect(page).toEqual({
      keys: [
        {
          keyId: 'ACCAEXAMPLEKEYBEDROCK',
          userName: 'svc-chatbot',
          status: 'Inactive',
          createdAt: '2026-11-20T09:31:02.000Z',
          expiresAt: '2027-01-01T00:00:00.000Z',
        },
      ],
      nextMarker: null,
    });
  });

  it('is retried by the SDK when IAM throttles (real client, fake HTTP handler)', async () => {
    // Prepare: the real IAMClient with its standard retry strategy; only the HTTP layer is replaced.
    iam.restore();
    const throttle =
      '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>';
    const ok = `<ListServiceSpecificCredentialsResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials><member><UserName>svc-chatbot</UserName><Status>Active</Status><CreateDate>2026-11-20T09:31:02Z</CreateDate><ServiceSpecificCredentialId>ACCAEXAMPLEKEYRETRY01</ServiceSpecificCredentialId><ServiceName>bedrock.amazonaws.com</ServiceName></member></ServiceSpecificCredentials><IsTruncated>true</IsTruncated><Marker>m-2</Marker></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>r-3</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>`;
    const bodies: string[] = [];
    const real = new IAMClient({
      region: 'us-east-1',
      maxAttempts: 6,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'test-secret' },
      requestHandler: {
        handle: async (request: { body?: unknown }) => {
          bodies.push(String(request.body));
          const first = bodies.length <= 2;
          return {
            response: {
              statusCode: first ? 400 : 200,
              reason: undefined,
              headers: { 'content-type': 'text/xml' },
              body: new TextEncoder().encode(first ? throttle : ok),
            },
          };
        },
      },
    });
    try {
      // Act
      const page = await listBedrockKeysPage(real);
      // Assess: two throttled attempts, then success; every attempt is the AllUsers request.
      expect(bodies).toHaveLength(3);
      for (const b of bodies) {
        expect(b).toContain('Action=ListServiceSpecificCredentials');
        expect(b).toContain('AllUsers=true');
        expect(b).toContain('MaxItems=1000');
        expect(b).toContain('ServiceName=bedrock.amazonaws.com');
      }
      expect(page).toEqual({
        keys: [expect.objectContaining({ keyId: 'ACCAEXAMPLEKEYRETRY01' })],
        nextMarker: 'm-2',
      });
    } finally {
      real.destroy();
    }
  });
});

describe('parseCredentialReport', () => {
  it('reads passwords and active access keys; N/A and not_supported mean no', () => {
    // Act
    const rows = parseCredentialReport(REPORT);
    // Assess
    expect(rows.get('<root_account>')).toEqual({
      user: '<root_account>',
      passwordEnabled: false,
      activeAccessKeys: 0,
    });
    expect(rows.get('svc-admin')).toEqual({ user: 'svc-admin', passwordEnabled: true, activeAccessKeys: 2 });
    expect(rows.get('svc-chatbot')).toEqual({
      user: 'svc-chatbot',
      passwordEnabled: false,
      activeAccessKeys: 0,
    });
    expect(rows.get('svc-ml')).toEqual({ user: 'svc-ml', passwordEnabled: false, activeAccessKeys: 1 });
  });

  it('accepts CRLF line ends and quoted fields, and refuses a report without the needed columns', () => {
    // Act
    const rows = parseCredentialReport(
      'user,password_enabled,access_key_1_active,access_key_2_active\r\n"a,b",TRUE,false,"true"\r\n',
    );
    // Assess
    expect(rows.get('a,b')).toEqual({ user: 'a,b', passwordEnabled: true, activeAccessKeys: 1 });
    expect(() => parseCredentialReport('user,arn\nx,y')).toThrow('column password_enabled is missing');
    expect(() => parseCredentialReport('')).toThrow('it is empty');
  });
});

describe('AccountSnapshot', () => {
  function mockDetailsPages() {
    iam
      .on(GetAccountAuthorizationDetailsCommand, { Marker: undefined })
      .resolves({
        UserDetailList: [
          {
            UserName: 'svc-admin',
            Tags: [{ Key: 'owner', Value: 'ops@example.com' }],
            AttachedManagedPolicies: [
              {
                PolicyName: 'AmazonBedrockLimitedAccess',
                PolicyArn: 'arn:aws:iam::aws:policy/AmazonBedrockLimitedAccess',
              },
            ],
            GroupList: ['admins'],
          },
          {
            UserName: 'svc-chatbot',
            Tags: [
              { Key: 'owner', Value: 'team@example.com' },
              { Key: 'purpose', Value: 'chatbot' },
            ],
            UserPolicyList: [
              {
                PolicyName: 'invoke-only',
                PolicyDocument: enc({
                  Version: '2012-10-17',
                  Statement: [{ Effect: 'Allow', Action: 'bedrock:InvokeModel', Resource: '*' }],
                }),
              },
            ],
          },
        ],
        GroupDetailList: [
          {
            GroupName: 'admins',
            AttachedManagedPolicies: [
              { PolicyName: 'AdministratorAccess', PolicyArn: 'arn:aws:iam::aws:policy/AdministratorAccess' },
            ],
          },
        ],
        IsTruncated: true,
        Marker: 'd-2',
      })
      .on(GetAccountAuthorizationDetailsCommand, { Marker: 'd-2' })
      .resolves({
        UserDetailList: [
          {
            UserName: 'svc-ml',
            AttachedManagedPolicies: [
              { PolicyName: 'team-bedrock', PolicyArn: `arn:aws:iam::${ACCOUNT}:policy/team-bedrock` },
              // A look-alike name that is not AWS managed is judged by its document, not its name.
              {
                PolicyName: 'AdministratorAccess',
                PolicyArn: `arn:aws:iam::${ACCOUNT}:policy/AdministratorAccess`,
              },
            ],
            UserPolicyList: [
              {
                PolicyName: 'wide',
                PolicyDocument: enc({
                  Version: '2012-10-17',
                  Statement: { Effect: 'Allow', Action: '*', Resource: '*' },
                }),
              },
            ],
          },
        ],
        Policies: [
          {
            Arn: `arn:aws:iam::${ACCOUNT}:policy/team-bedrock`,
            PolicyName: 'team-bedrock',
            DefaultVersionId: 'v2',
            PolicyVersionList: [
              {
                VersionId: 'v1',
                IsDefaultVersion: false,
                Document: enc({
                  Version: '2012-10-17',
                  Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
                }),
              },
              {
                VersionId: 'v2',
                IsDefaultVersion: true,
                Document: enc({
                  Version: '2012-10-17',
                  Statement: [{ Effect: 'Allow', Action: ['bedrock:*'], Resource: '*' }],
                }),
              },
            ],
          },
          {
            Arn: `arn:aws:iam::${ACCOUNT}:policy/AdministratorAccess`,
            PolicyName: 'AdministratorAccess',
            DefaultVersionId: 'v1',
            PolicyVersionList: [
              {
                VersionId: 'v1',
                IsDefaultVersion: true,
                Document: enc({
                  Version: '2012-10-17',
                  Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }],
                }),
              },
            ],
          },
        ],
        IsTruncated: false,
      });
  }

  function mockReport(csv = REPORT) {
    iam.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
    iam.on(GetCredentialReportCommand).resolves({
      Content: new TextEncoder().encode(csv),
      ReportFormat: 'text/csv',
      GeneratedTime: new Date('2026-11-20T08:00:00Z'),
    });
  }

  it('loads every page of users, groups and customer-managed policies in O(pages) calls', async () => {
    // Prepare
    mockDetailsPages();
    mockReport();
    // Act
    const snapshot = await AccountSnapshot.load(client, ACCOUNT, { sleep: noSleep });
    // Assess
    expect(iam).toHaveReceivedCommandTimes(GetAccountAuthorizationDetailsCommand, 2);
    for (const call of iam.commandCalls(GetAccountAuthorizationDetailsCommand)) {
      expect(call.args[0].input).toMatchObject({
        Filter: ['User', 'Group', 'LocalManagedPolicy'],
        MaxItems: 1000,
      });
    }
    expect(iam.commandCalls(GetAccountAuthorizationDetailsCommand)[1]?.args[0].input.Marker).toBe('d-2');
    expect(snapshot.calls).toEqual({
      GetAccountAuthorizationDetails: 2,
      GenerateCredentialReport: 1,
      GetCredentialReport: 1,
    });
    expect(snapshot.userCount).toBe(3);
    expect(snapshot.credentialReportGeneratedAt).toBe('2026-11-20T08:00:00.000Z');
    expect(snapshot.userTags(ACCOUNT, 'svc-chatbot')).toEqual({
      owner: 'team@example.com',
      purpose: 'chatbot',
    });
    expect(snapshot.userTags(ACCOUNT, 'nobody')).toBeNull();
  });

  it('finds broad grants through groups, AWS managed policies by ARN, and decoded inline/default-version documents', async () => {
    // Prepare
    mockDetailsPages();
    mockReport();
    const snapshot = await AccountSnapshot.load(client, ACCOUNT, { sleep: noSleep });
    // Act
    const admin = await snapshot.userFacts(ACCOUNT, 'svc-admin');
    const chatbot = await snapshot.userFacts(ACCOUNT, 'svc-chatbot');
    const ml = await snapshot.userFacts(ACCOUNT, 'svc-ml');
    // Assess
    expect(admin.permissions).toEqual([
      expect.objectContaining({ policy: 'AmazonBedrockLimitedAccess', via: 'user', severity: 'low' }),
      expect.objectContaining({ policy: 'AdministratorAccess', via: 'group:admins', severity: 'high' }),
    ]);
    expect(admin.otherCredentials).toEqual({ activeAccessKeys: 2, consolePassword: true });
    expect(chatbot).toEqual({
      permissions: [],
      otherCredentials: { activeAccessKeys: 0, consolePassword: false },
    });
    expect(ml.permissions).toEqual([
      {
        policy: 'team-bedrock',
        via: 'user',
        severity: 'high',
        reason: 'managed policy team-bedrock allows "bedrock:*"',
      },
      { policy: 'wide', via: 'user', severity: 'high', reason: 'inline policy wide allows "*"' },
    ]);
    expect(ml.otherCredentials).toEqual({ activeAccessKeys: 1, consolePassword: false });
  });

  it('knows nothing about users it has not loaded, and refuses another account', async () => {
    // Prepare
    mockDetailsPages();
    mockReport();
    const snapshot = await AccountSnapshot.load(client, ACCOUNT, { sleep: noSleep });
    // Act / Assess
    expect(await snapshot.userFacts(ACCOUNT, 'created-later')).toEqual({
      permissions: null,
      otherCredentials: null,
    });
    await expect(snapshot.userFacts('999999999999', 'svc-admin')).rejects.toThrow(SnapshotAccountError);
  });

  it('polls GenerateCredentialReport with growing waits until COMPLETE, then fetches the report once', async () => {
    // Prepare
    mockDetailsPages();
    mockReport();
    iam
      .on(GenerateCredentialReportCommand)
      .resolvesOnce({
        State: 'STARTED',
        Description: 'No report exists. Starting a new report generation task',
      })
      .resolvesOnce({ State: 'INPROGRESS' })
      .resolvesOnce({ State: 'INPROGRESS' })
      .resolves({ State: 'COMPLETE' });
    const waits: number[] = [];
    // Act
    const snapshot = await AccountSnapshot.load(client, ACCOUNT, {
      sleep: async (ms) => {
        waits.push(ms);
      },
      firstPollDelayMs: 1000,
      maxPollDelayMs: 3000,
    });
    // Assess
    expect(waits).toEqual([1000, 2000, 3000]);
    expect(iam).toHaveReceivedCommandTimes(GenerateCredentialReportCommand, 4);
    expect(iam).toHaveReceivedCommandTimes(GetCredentialReportCommand, 1);
    expect((await snapshot.userFacts(ACCOUNT, 'svc-admin')).otherCredentials).toEqual({
      activeAccessKeys: 2,
      consolePassword: true,
    });
  });

  it('generates again when the report is not ready when fetched, and gives up after the wait budget', async () => {
    // Prepare: ready on the second try
    mockDetailsPages();
    mockReport();
    iam
      .on(GetCredentialReportCommand)
      .rejectsOnce(new CredentialReportNotReadyException({ message: 'in progress', $metadata: {} }))
      .resolves({
        Content: new TextEncoder().encode(REPORT),
        GeneratedTime: new Date('2026-11-20T08:00:00Z'),
      });
    // Act
    const snapshot = await AccountSnapshot.load(client, ACCOUNT, { sleep: noSleep });
    // Assess
    expect(snapshot.calls.GenerateCredentialReport).toBe(2);
    expect(snapshot.calls.GetCredentialReport).toBe(2);

    // Prepare: never ready
    iam.reset();
    mockDetailsPages();
    iam.on(GenerateCredentialReportCommand).resolves({ State: 'INPROGRESS' });
    // Act / Assess
    await expect(
      AccountSnapshot.load(client, ACCOUNT, {
        sleep: noSleep,
        firstPollDelayMs: 1000,
        maxReportWaitMs: 5000,
      }),
    ).rejects.toThrow(CredentialReportUnavailableError);
    expect(iam).toHaveReceivedCommandTimes(GetCredentialReportCommand, 0);
  });

  it('propagates other IAM errors (e.g. AccessDenied) instead of guessing', async () => {
    // Prepare
    mockReport();
    iam.on(GetAccountAuthorizationDetailsCommand).rejects(
      Object.assign(new Error('not authorized to GetAccountAuthorizationDetails'), {
        name: 'AccessDenied',
      }),
    );
    // Act / Assess
    await expect(AccountSnapshot.load(client, ACCOUNT, { sleep: noSleep })).rejects.toThrow('not authorized');
  });
});

describe('SnapshotKeyDirectory', () => {
  it('answers tags from the snapshot and keys from the page; reads IAM live only for what they lack', async () => {
    // Prepare
    const fake = new FakeIamAccount(ACCOUNT)
      .user('known', { tags: { owner: 'a@example.com' } })
      .key({ keyId: 'ACCAEXAMPLEKEYKNOWN01', userName: 'known', createdAt: '2026-11-01T00:00:00Z' });
    fake.install(iam);
    const snapshot = await AccountSnapshot.load(client, ACCOUNT, { sleep: noSleep });
    fake.user('late', { tags: { owner: 'late@example.com' } });
    fake.key({ keyId: 'ACCAEXAMPLEKEYLATE001', userName: 'late', createdAt: '2026-11-02T00:00:00Z' });
    const directory = new SnapshotKeyDirectory(snapshot, new IamKeyDirectory(() => client));
    directory.usePage((await listBedrockKeysPage(client)).keys.filter((k) => k.userName === 'known'));
    iam.resetHistory();
    // Act
    const knownTags = await directory.getUserTags(ACCOUNT, 'known');
    const knownKey = await directory.getKey(ACCOUNT, 'known', 'ACCAEXAMPLEKEYKNOWN01');
    // Assess: nothing asked of IAM
    expect(iam.calls()).toHaveLength(0);
    expect(knownTags).toEqual({ owner: 'a@example.com' });
    expect(knownKey?.keyId).toBe('ACCAEXAMPLEKEYKNOWN01');
    // Act: a user created after the snapshot, a key not on the page
    const lateTags = await directory.getUserTags(ACCOUNT, 'late');
    const lateKey = await directory.getKey(ACCOUNT, 'late', 'ACCAEXAMPLEKEYLATE001');
    // Assess
    expect(lateTags).toEqual({ owner: 'late@example.com' });
    expect(lateKey?.keyId).toBe('ACCAEXAMPLEKEYLATE001');
    expect(iam).toHaveReceivedCommandWith(ListUserTagsCommand, { UserName: 'late' });
    expect(iam).toHaveReceivedCommandWith(ListServiceSpecificCredentialsCommand, {
      UserName: 'late',
      ServiceName: 'bedrock.amazonaws.com',
    });
    expect(directory.liveReads).toBe(2);
  });
});
