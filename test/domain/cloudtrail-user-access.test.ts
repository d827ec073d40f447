import {
  type Classification,
  CloudTrailRecordSchema,
  classifyRecord,
  EventShapeError,
  type KeyEvent,
  USER_ACCESS_EVENTS,
} from '../../lambda/domain/cloudtrail';
import { ACCOUNT, ADMIN_ARN, cloudTrailRecord } from '../support/events';

/**
 * IAM calls that give a key's user more access (another credential, more permissions): classified as
 * `user-access` events naming the user whose Bedrock keys must be re-evaluated.
 */

function classify(raw: Record<string, unknown>): Classification {
  return classifyRecord(CloudTrailRecordSchema.parse(raw));
}

function relevant(c: Classification): KeyEvent {
  if (!c.relevant) throw new Error(`expected a relevant record, got ignored (${c.reason})`);
  return c.event;
}

/** A call made by IAM user `svc-chatbot` with its own access key (acting on itself). */
const SELF = {
  type: 'IAMUser',
  principalId: 'AIDAEXAMPLESVCCHAT01',
  arn: `arn:aws:iam::${ACCOUNT}:user/svc-chatbot`,
  accountId: ACCOUNT,
  accessKeyId: 'AKIAEXAMPLESVCCHAT01',
  userName: 'svc-chatbot',
};

const REQUESTS: Record<(typeof USER_ACCESS_EVENTS)[number], Record<string, unknown>> = {
  CreateAccessKey: { userName: 'svc-chatbot' },
  UpdateAccessKey: { userName: 'svc-chatbot', accessKeyId: 'AKIAEXAMPLEOTHERKEY1', status: 'Active' },
  CreateLoginProfile: { userName: 'svc-chatbot', passwordResetRequired: true },
  AttachUserPolicy: { userName: 'svc-chatbot', policyArn: 'arn:aws:iam::aws:policy/AdministratorAccess' },
  PutUserPolicy: {
    userName: 'svc-chatbot',
    policyName: 'wide',
    policyDocument: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
  },
  AddUserToGroup: { userName: 'svc-chatbot', groupName: 'admins' },
};

describe('classifyRecord: calls that give a user more access', () => {
  it.each(USER_ACCESS_EVENTS.map((n) => [n]))(
    'normalises %s on a user to a user-access event',
    (eventName) => {
      // Prepare
      const raw = cloudTrailRecord({
        eventName,
        requestParameters: REQUESTS[eventName],
        eventID: `ev-${eventName}`,
      });

      // Act
      const event = relevant(classify(raw));

      // Assess
      expect(event).toEqual({
        kind: 'user-access',
        action: eventName,
        userName: 'svc-chatbot',
        meta: {
          eventId: `ev-${eventName}`,
          eventName,
          eventTime: '2026-11-20T09:31:02.000Z',
          accountId: ACCOUNT,
          region: 'us-east-1',
          actor: ADMIN_ARN,
        },
      });
    },
  );

  it.each(USER_ACCESS_EVENTS.map((n) => [n]))('ignores a failed %s: it changed nothing', (eventName) => {
    // Prepare
    const raw = cloudTrailRecord({
      eventName,
      requestParameters: REQUESTS[eventName],
      errorCode: 'AccessDenied',
    });

    // Act
    const c = classify(raw);

    // Assess
    expect(c).toMatchObject({ relevant: false, reason: 'failed-call', eventName });
  });

  it.each([
    ['CreateAccessKey', {}],
    ['CreateLoginProfile', { passwordResetRequired: false }],
    ['UpdateAccessKey', { accessKeyId: 'AKIAEXAMPLEOTHERKEY1', status: 'Active' }],
  ])(
    'takes the user of a self-acting IAM user from userIdentity when %s has no userName',
    (eventName, req) => {
      // Prepare
      const raw = cloudTrailRecord({ eventName, requestParameters: req, userIdentity: SELF });

      // Act
      const event = relevant(classify(raw));

      // Assess
      expect(event).toMatchObject({ kind: 'user-access', action: eventName, userName: 'svc-chatbot' });
      expect(event.meta.actor).toBe(SELF.arn);
    },
  );

  it('prefers requestParameters.userName over the caller', () => {
    // Prepare
    const raw = cloudTrailRecord({
      eventName: 'CreateAccessKey',
      requestParameters: { userName: 'svc-batch' },
      userIdentity: SELF,
    });

    // Act
    const event = relevant(classify(raw));

    // Assess
    expect(event).toMatchObject({ userName: 'svc-batch' });
  });

  it('ignores a root user creating its own access key or password: no IAM user, no Bedrock keys', () => {
    // Prepare
    const root = {
      type: 'Root',
      principalId: ACCOUNT,
      arn: `arn:aws:iam::${ACCOUNT}:root`,
      accountId: ACCOUNT,
    };
    const raw = cloudTrailRecord({
      eventName: 'CreateAccessKey',
      requestParameters: null,
      userIdentity: root,
    });

    // Act
    const c = classify(raw);

    // Assess
    expect(c).toMatchObject({ relevant: false, reason: 'not-iam-user' });
  });

  it('ignores UpdateAccessKey that deactivates a key: less access is no escalation', () => {
    // Prepare
    const raw = cloudTrailRecord({
      eventName: 'UpdateAccessKey',
      requestParameters: { userName: 'svc-chatbot', accessKeyId: 'AKIAEXAMPLEOTHERKEY1', status: 'Inactive' },
    });

    // Act
    const c = classify(raw);

    // Assess
    expect(c).toMatchObject({ relevant: false, reason: 'not-activation' });
  });

  it.each(['AttachUserPolicy', 'PutUserPolicy', 'AddUserToGroup'] as const)(
    'rejects %s without a userName (it is required there)',
    (eventName) => {
      // Prepare
      const { userName: _omitted, ...rest } = REQUESTS[eventName];
      const raw = cloudTrailRecord({ eventName, requestParameters: rest, userIdentity: SELF });

      // Act
      const act = () => classify(raw);

      // Assess
      expect(act).toThrow(EventShapeError);
      expect(act).toThrow('requestParameters.userName');
    },
  );

  it('still ignores calls on roles and groups that are not in the list', () => {
    // Prepare
    const raw = cloudTrailRecord({
      eventName: 'AttachRolePolicy',
      requestParameters: { roleName: 'r', policyArn: 'arn:aws:iam::aws:policy/AdministratorAccess' },
    });

    // Act
    const c = classify(raw);

    // Assess
    expect(c).toMatchObject({ relevant: false, reason: 'unsupported-event' });
  });

  it('never copies a secret from the CreateAccessKey response into the event', () => {
    // Prepare
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const raw = cloudTrailRecord({
      eventName: 'CreateAccessKey',
      requestParameters: { userName: 'svc-chatbot' },
      responseElements: {
        accessKey: {
          accessKeyId: 'AKIAEXAMPLENEWKEY001',
          status: 'Active',
          userName: 'svc-chatbot',
          secretAccessKey: secret,
        },
      },
    });

    // Act
    const event = relevant(classify(raw));

    // Assess
    expect(JSON.stringify(event)).not.toContain(secret);
  });
});
