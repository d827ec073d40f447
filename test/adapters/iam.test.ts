import {
  IAMClient,
  ListServiceSpecificCredentialsCommand,
  ListUserTagsCommand,
  NoSuchEntityException,
  type ServiceSpecificCredentialMetadata,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { IamEnforcer, IamKeyDirectory } from '../../lambda/adapters/iam';

const ACCOUNT = '111122223333';
const iam = mockClient(IAMClient);
const client = new IAMClient({ region: 'us-east-1' });
const directory = new IamKeyDirectory(() => client);

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

beforeEach(() => iam.reset());

describe('IamKeyDirectory', () => {
  it('asks IAM only for Bedrock credentials and follows Marker pagination', async () => {
    iam
      .on(ListServiceSpecificCredentialsCommand, { Marker: undefined })
      .resolves({
        ServiceSpecificCredentials: [cred('ACCAEXAMPLEKEYPAGE001')],
        IsTruncated: true,
        Marker: 'm2',
      })
      .on(ListServiceSpecificCredentialsCommand, { Marker: 'm2' })
      .resolves({
        ServiceSpecificCredentials: [
          cred('ACCAEXAMPLEKEYPAGE002', { ExpirationDate: new Date('2027-01-01T00:00:00Z') }),
        ],
        IsTruncated: false,
      });

    const keys = await directory.listUserKeys(ACCOUNT, 'svc-chatbot');

    expect(keys).toEqual([
      {
        keyId: 'ACCAEXAMPLEKEYPAGE001',
        userName: 'svc-chatbot',
        status: 'Active',
        createdAt: '2026-11-20T09:31:02.000Z',
        expiresAt: null,
      },
      {
        keyId: 'ACCAEXAMPLEKEYPAGE002',
        userName: 'svc-chatbot',
        status: 'Active',
        createdAt: '2026-11-20T09:31:02.000Z',
        expiresAt: '2027-01-01T00:00:00.000Z',
      },
    ]);
    for (const call of iam.commandCalls(ListServiceSpecificCredentialsCommand)) {
      expect(call.args[0].input).toMatchObject({
        UserName: 'svc-chatbot',
        ServiceName: 'bedrock.amazonaws.com',
      });
    }
  });

  it('drops anything IAM returns that is not a Bedrock credential', async () => {
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [
        cred('ACCAEXAMPLECODECOMMIT', { ServiceName: 'codecommit.amazonaws.com' }),
        cred('ACCAEXAMPLEKEYBEDROCK'),
      ],
    });

    const keys = await directory.listUserKeys(ACCOUNT, 'svc-chatbot');

    expect(keys.map((k) => k.keyId)).toEqual(['ACCAEXAMPLEKEYBEDROCK']);
  });

  it('finds one key by id, or null', async () => {
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [cred('ACCAEXAMPLEKEYFIND001')] });

    expect((await directory.getKey(ACCOUNT, 'svc-chatbot', 'ACCAEXAMPLEKEYFIND001'))?.keyId).toBe(
      'ACCAEXAMPLEKEYFIND001',
    );
    expect(await directory.getKey(ACCOUNT, 'svc-chatbot', 'ACCAEXAMPLEKEYOTHER01')).toBeNull();
  });

  it('reads all pages of user tags; a deleted user has no tags and no keys', async () => {
    iam
      .on(ListUserTagsCommand, { Marker: undefined })
      .resolves({ Tags: [{ Key: 'owner', Value: 'a@example.com' }], IsTruncated: true, Marker: 't2' })
      .on(ListUserTagsCommand, { Marker: 't2' })
      .resolves({ Tags: [{ Key: 'purpose', Value: 'chat' }], IsTruncated: false });

    expect(await directory.getUserTags(ACCOUNT, 'svc-chatbot')).toEqual({
      owner: 'a@example.com',
      purpose: 'chat',
    });

    iam.reset();
    iam.on(ListUserTagsCommand).rejects(new NoSuchEntityException({ message: 'gone', $metadata: {} }));
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .rejects(new NoSuchEntityException({ message: 'gone', $metadata: {} }));
    expect(await directory.getUserTags(ACCOUNT, 'ghost')).toEqual({});
    expect(await directory.listUserKeys(ACCOUNT, 'ghost')).toEqual([]);
  });

  it('propagates other errors (e.g. AccessDenied) instead of guessing', async () => {
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));

    await expect(directory.listUserKeys(ACCOUNT, 'svc-chatbot')).rejects.toThrow('not authorized');
  });
});

describe('IamEnforcer', () => {
  const enforcer = new IamEnforcer(() => client, directory);

  it('sets an Active Bedrock key Inactive, and reports that IAM changed', async () => {
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [cred('ACCAEXAMPLEKEYENFORCE')] });
    iam.on(UpdateServiceSpecificCredentialCommand).resolves({});

    const applied = await enforcer.deactivate(ACCOUNT, 'svc-chatbot', 'ACCAEXAMPLEKEYENFORCE');

    expect(applied).toBe(true);
    expect(iam).toHaveReceivedCommandWith(UpdateServiceSpecificCredentialCommand, {
      UserName: 'svc-chatbot',
      ServiceSpecificCredentialId: 'ACCAEXAMPLEKEYENFORCE',
      Status: 'Inactive',
    });
  });

  it('changes nothing when the key is already inactive, gone, or not a Bedrock key', async () => {
    iam.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [cred('ACCAEXAMPLEKEYINACTIV', { Status: 'Inactive' })],
    });

    expect(await enforcer.deactivate(ACCOUNT, 'svc-chatbot', 'ACCAEXAMPLEKEYINACTIV')).toBe(false);
    expect(await enforcer.deactivate(ACCOUNT, 'svc-chatbot', 'ACCAEXAMPLECODECOMMIT')).toBe(false);
    expect(iam).toHaveReceivedCommandTimes(UpdateServiceSpecificCredentialCommand, 0);
  });

  it('reports no change when the key vanishes between the check and the update', async () => {
    iam
      .on(ListServiceSpecificCredentialsCommand)
      .resolves({ ServiceSpecificCredentials: [cred('ACCAEXAMPLEKEYVANISH1')] });
    iam
      .on(UpdateServiceSpecificCredentialCommand)
      .rejects(new NoSuchEntityException({ message: 'gone', $metadata: {} }));

    expect(await enforcer.deactivate(ACCOUNT, 'svc-chatbot', 'ACCAEXAMPLEKEYVANISH1')).toBe(false);
  });
});

describe('SDK retry of IAM throttling (real client, fake HTTP handler)', () => {
  it('retries a Throttling response and then succeeds, with no error reaching the caller', async () => {
    // Prepare: the real IAMClient with its standard retry strategy; only the HTTP layer is replaced.
    iam.restore();
    const bodies = [
      {
        status: 400,
        xml: '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>',
      },
      {
        status: 400,
        xml: '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r-2</RequestId></ErrorResponse>',
      },
      {
        status: 200,
        xml: `<ListServiceSpecificCredentialsResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListServiceSpecificCredentialsResult><ServiceSpecificCredentials><member><UserName>svc-chatbot</UserName><Status>Active</Status><CreateDate>2026-11-20T09:31:02Z</CreateDate><ServiceSpecificCredentialId>ACCAEXAMPLEKEYRETRY01</ServiceSpecificCredentialId><ServiceName>bedrock.amazonaws.com</ServiceName></member></ServiceSpecificCredentials><IsTruncated>false</IsTruncated></ListServiceSpecificCredentialsResult><ResponseMetadata><RequestId>r-3</RequestId></ResponseMetadata></ListServiceSpecificCredentialsResponse>`,
      },
    ];
    let calls = 0;
    const real = new IAMClient({
      region: 'us-east-1',
      maxAttempts: 6,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'test-secret' },
      requestHandler: {
        handle: async () => {
          const b = bodies[Math.min(calls, bodies.length - 1)] as { status: number; xml: string };
          calls += 1;
          return {
            response: {
              statusCode: b.status,
              reason: undefined,
              headers: { 'content-type': 'text/xml' },
              body: new TextEncoder().encode(b.xml),
            },
          };
        },
      },
    });

    // Act
    const keys = await new IamKeyDirectory(() => real).listUserKeys(ACCOUNT, 'svc-chatbot');

    // Assess
    expect(calls).toBe(3);
    expect(keys.map((k) => k.keyId)).toEqual(['ACCAEXAMPLEKEYRETRY01']);
  });
});
