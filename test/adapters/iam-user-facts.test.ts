import {
  GetGroupPolicyCommand,
  GetLoginProfileCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetUserPolicyCommand,
  IAMClient,
  ListAccessKeysCommand,
  ListAttachedGroupPoliciesCommand,
  ListAttachedUserPoliciesCommand,
  ListGroupPoliciesCommand,
  ListGroupsForUserCommand,
  ListUserPoliciesCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { IamUserFacts } from '../../lambda/adapters/iam-user-facts';
import { answerPlainUser, noSuchEntity } from '../support/iam-facts';

const ACCOUNT = '111122223333';
const USER = 'svc-chatbot';
const iam = mockClient(IAMClient);
const facts = new IamUserFacts(() => new IAMClient({ region: 'us-east-1' }));
const AWS = (name: string) => ({ PolicyName: name, PolicyArn: `arn:aws:iam::aws:policy/${name}` });
const LOCAL = (name: string) => ({ PolicyName: name, PolicyArn: `arn:aws:iam::${ACCOUNT}:policy/${name}` });

/** IAM returns policy documents URL-encoded. */
function encoded(statement: Record<string, unknown>): string {
  return encodeURIComponent(JSON.stringify({ Version: '2012-10-17', Statement: [statement] }));
}

function group(name: string) {
  return {
    GroupName: name,
    Path: '/',
    GroupId: `AGPA${name.toUpperCase()}`,
    Arn: `arn:aws:iam::${ACCOUNT}:group/${name}`,
    CreateDate: new Date('2026-01-01T00:00:00Z'),
  };
}

function accessKey(id: string, status: 'Active' | 'Inactive') {
  return { UserName: USER, AccessKeyId: id, Status: status, CreateDate: new Date('2026-01-01T00:00:00Z') };
}

beforeEach(() => {
  iam.reset();
  answerPlainUser(iam);
});

describe('IamUserFacts', () => {
  it('reports nothing for a user with no policies and no other credentials', async () => {
    // Act
    const result = await facts.userFacts(ACCOUNT, USER);

    // Assess
    expect(result).toEqual({
      permissions: [],
      otherCredentials: { activeAccessKeys: 0, consolePassword: false },
    });
    expect(iam).toHaveReceivedCommandWith(ListAttachedUserPoliciesCommand, { UserName: USER });
    expect(iam).toHaveReceivedCommandWith(GetLoginProfileCommand, { UserName: USER });
  });

  it('recognises AWS managed policies by ARN without fetching them', async () => {
    // Prepare
    iam
      .on(ListAttachedUserPoliciesCommand)
      .resolves({ AttachedPolicies: [AWS('AdministratorAccess'), AWS('AmazonBedrockLimitedAccess')] });

    // Act
    const { permissions } = await facts.userFacts(ACCOUNT, USER);

    // Assess
    expect(permissions).toEqual([
      expect.objectContaining({ policy: 'AdministratorAccess', via: 'user', severity: 'high' }),
      expect.objectContaining({ policy: 'AmazonBedrockLimitedAccess', via: 'user', severity: 'low' }),
    ]);
    expect(iam).toHaveReceivedCommandTimes(GetPolicyCommand, 0);
    expect(iam).toHaveReceivedCommandTimes(GetPolicyVersionCommand, 0);
  });

  it("reads a customer-managed policy's default version and finds a bedrock:* grant in it", async () => {
    // Prepare
    const arn = LOCAL('team-bedrock').PolicyArn;
    iam.on(ListAttachedUserPoliciesCommand).resolves({ AttachedPolicies: [LOCAL('team-bedrock')] });
    iam.on(GetPolicyCommand, { PolicyArn: arn }).resolves({ Policy: { Arn: arn, DefaultVersionId: 'v3' } });
    iam.on(GetPolicyVersionCommand, { PolicyArn: arn, VersionId: 'v3' }).resolves({
      PolicyVersion: {
        VersionId: 'v3',
        Document: encoded({ Effect: 'Allow', Action: 'bedrock:*', Resource: '*' }),
      },
    });

    // Act
    const { permissions } = await facts.userFacts(ACCOUNT, USER);

    // Assess
    expect(permissions).toEqual([
      {
        policy: 'team-bedrock',
        via: 'user',
        severity: 'high',
        reason: 'managed policy team-bedrock allows "bedrock:*"',
      },
    ]);
  });

  it('finds broad inline statements of the user and of its groups, and managed policies through groups', async () => {
    // Prepare
    iam.on(ListUserPoliciesCommand).resolves({ PolicyNames: ['wide'] });
    iam.on(GetUserPolicyCommand, { UserName: USER, PolicyName: 'wide' }).resolves({
      UserName: USER,
      PolicyName: 'wide',
      PolicyDocument: encoded({ Effect: 'Allow', Action: '*', Resource: '*' }),
    });
    iam.on(ListGroupsForUserCommand).resolves({ Groups: [group('ml')] });
    iam.on(ListAttachedGroupPoliciesCommand, { GroupName: 'ml' }).resolves({
      AttachedPolicies: [AWS('AmazonBedrockLimitedAccess')],
    });
    iam
      .on(ListGroupPoliciesCommand, { GroupName: 'ml' })
      .resolves({ PolicyNames: ['ml-inline', 'ml-narrow'] });
    iam.on(GetGroupPolicyCommand, { GroupName: 'ml', PolicyName: 'ml-inline' }).resolves({
      GroupName: 'ml',
      PolicyName: 'ml-inline',
      PolicyDocument: encoded({ Effect: 'Allow', Action: ['s3:GetObject', 'bedrock:*'], Resource: '*' }),
    });
    iam.on(GetGroupPolicyCommand, { GroupName: 'ml', PolicyName: 'ml-narrow' }).resolves({
      GroupName: 'ml',
      PolicyName: 'ml-narrow',
      PolicyDocument: encoded({ Effect: 'Allow', Action: 'bedrock:InvokeModel', Resource: '*' }),
    });

    // Act
    const { permissions } = await facts.userFacts(ACCOUNT, USER);

    // Assess
    expect(permissions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ policy: 'AmazonBedrockLimitedAccess', via: 'group:ml', severity: 'low' }),
        expect.objectContaining({ policy: 'user/wide', via: 'user', severity: 'high' }),
        expect.objectContaining({ policy: 'group/ml-inline', via: 'group:ml', severity: 'high' }),
      ]),
    );
    expect(permissions).toHaveLength(3);
  });

  it('follows Marker on every list and fetches a policy attached twice only once', async () => {
    // Prepare
    const arn = LOCAL('shared').PolicyArn;
    iam
      .on(ListAttachedUserPoliciesCommand, { Marker: undefined })
      .resolves({ AttachedPolicies: [AWS('PowerUserAccess')], IsTruncated: true, Marker: 'u2' })
      .on(ListAttachedUserPoliciesCommand, { Marker: 'u2' })
      .resolves({ AttachedPolicies: [LOCAL('shared')], IsTruncated: false });
    iam
      .on(ListGroupsForUserCommand, { Marker: undefined })
      .resolves({ Groups: [group('a')], IsTruncated: true, Marker: 'g2' })
      .on(ListGroupsForUserCommand, { Marker: 'g2' })
      .resolves({ Groups: [group('b')], IsTruncated: false });
    iam.on(ListAttachedGroupPoliciesCommand).resolves({ AttachedPolicies: [LOCAL('shared')] });
    iam.on(ListGroupPoliciesCommand).resolves({ PolicyNames: [] });
    iam.on(GetPolicyCommand).resolves({ Policy: { Arn: arn, DefaultVersionId: 'v1' } });
    iam.on(GetPolicyVersionCommand).resolves({
      PolicyVersion: { Document: encoded({ Effect: 'Allow', Action: 's3:*', Resource: '*' }) },
    });
    iam
      .on(ListAccessKeysCommand, { Marker: undefined })
      .resolves({
        AccessKeyMetadata: [accessKey('AKIAEXAMPLE00000001', 'Active')],
        IsTruncated: true,
        Marker: 'k2',
      })
      .on(ListAccessKeysCommand, { Marker: 'k2' })
      .resolves({
        AccessKeyMetadata: [accessKey('AKIAEXAMPLE00000002', 'Active')],
        IsTruncated: false,
      });

    // Act
    const result = await facts.userFacts(ACCOUNT, USER);

    // Assess
    expect(result.permissions).toEqual([
      expect.objectContaining({ policy: 'PowerUserAccess', severity: 'high', via: 'user' }),
    ]);
    expect(result.otherCredentials).toEqual({ activeAccessKeys: 2, consolePassword: false });
    expect(iam).toHaveReceivedCommandTimes(ListAttachedUserPoliciesCommand, 2);
    expect(iam).toHaveReceivedCommandWith(ListAttachedGroupPoliciesCommand, { GroupName: 'a' });
    expect(iam).toHaveReceivedCommandWith(ListAttachedGroupPoliciesCommand, { GroupName: 'b' });
    expect(iam).toHaveReceivedCommandTimes(GetPolicyCommand, 1);
    expect(iam).toHaveReceivedCommandTimes(GetPolicyVersionCommand, 1);
  });

  it('counts only active access keys, and a login profile as a console password', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).resolves({
      AccessKeyMetadata: [
        accessKey('AKIAEXAMPLE00000001', 'Inactive'),
        accessKey('AKIAEXAMPLE00000002', 'Active'),
      ],
    });
    iam.on(GetLoginProfileCommand).resolves({
      LoginProfile: { UserName: USER, CreateDate: new Date('2026-01-01T00:00:00Z') },
    });

    // Act
    const { otherCredentials } = await facts.userFacts(ACCOUNT, USER);

    // Assess
    expect(otherCredentials).toEqual({ activeAccessKeys: 1, consolePassword: true });
  });

  it.each([
    ['ListAttachedUserPolicies', () => iam.on(ListAttachedUserPoliciesCommand).rejects(noSuchEntity())],
    ['ListUserPolicies', () => iam.on(ListUserPoliciesCommand).rejects(noSuchEntity())],
    ['ListGroupsForUser', () => iam.on(ListGroupsForUserCommand).rejects(noSuchEntity())],
    ['ListAccessKeys', () => iam.on(ListAccessKeysCommand).rejects(noSuchEntity())],
  ] as const)(
    'reports nothing checked for a user IAM no longer has (%s says NoSuchEntity)',
    async (_n, userIsGone) => {
      // Prepare
      userIsGone();

      // Act
      const result = await facts.userFacts(ACCOUNT, USER);

      // Assess
      expect(result).toEqual({ permissions: null, otherCredentials: null });
    },
  );

  it('skips a group, an inline policy or a managed policy deleted while it is read', async () => {
    // Prepare
    iam.on(ListUserPoliciesCommand).resolves({ PolicyNames: ['gone-inline'] });
    iam
      .on(GetUserPolicyCommand)
      .rejects(noSuchEntity('The user policy with name gone-inline cannot be found.'));
    iam.on(ListAttachedUserPoliciesCommand).resolves({ AttachedPolicies: [LOCAL('gone-policy')] });
    iam.on(GetPolicyCommand).rejects(noSuchEntity('Policy gone-policy was not found.'));
    iam.on(ListGroupsForUserCommand).resolves({ Groups: [group('gone'), group('admins')] });
    iam.on(ListAttachedGroupPoliciesCommand, { GroupName: 'gone' }).rejects(noSuchEntity('no group gone'));
    iam.on(ListGroupPoliciesCommand, { GroupName: 'gone' }).resolves({ PolicyNames: [] });
    iam
      .on(ListAttachedGroupPoliciesCommand, { GroupName: 'admins' })
      .resolves({ AttachedPolicies: [AWS('AdministratorAccess')] });
    iam.on(ListGroupPoliciesCommand, { GroupName: 'admins' }).resolves({ PolicyNames: [] });

    // Act
    const result = await facts.userFacts(ACCOUNT, USER);

    // Assess
    expect(result.permissions).toEqual([
      expect.objectContaining({ policy: 'AdministratorAccess', via: 'group:admins', severity: 'high' }),
    ]);
    expect(result.otherCredentials).toEqual({ activeAccessKeys: 0, consolePassword: false });
  });

  it('lets any other IAM error propagate (so the event is retried)', async () => {
    // Prepare
    const denied = Object.assign(new Error('User is not authorized to perform: iam:ListAccessKeys'), {
      name: 'AccessDenied',
    });
    iam.on(ListAccessKeysCommand).rejects(denied);

    // Act
    const run = facts.userFacts(ACCOUNT, USER);

    // Assess
    await expect(run).rejects.toThrow('not authorized to perform: iam:ListAccessKeys');
  });
});
