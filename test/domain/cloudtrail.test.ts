import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Classification,
  type CloudTrailRecord,
  CloudTrailRecordSchema,
  classifyRecord,
  EventBridgeEventSchema,
  EventShapeError,
  type KeyEvent,
  latestPlausibleTime,
} from '../../lambda/domain/cloudtrail';

const FIXTURES = join(__dirname, '..', 'fixtures', 'cloudtrail');
const ACCOUNT = '111122223333';

function fixture(name: string): unknown {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8'));
}

/** A CloudTrail record as a log file or replay holds it, validated the way the pipeline does. */
function record(name: string): CloudTrailRecord {
  return CloudTrailRecordSchema.parse(fixture(name));
}

/** The `detail` of an EventBridge envelope, validated the way the handler does. */
function detailOf(name: string): CloudTrailRecord {
  return EventBridgeEventSchema.parse(fixture(name)).detail;
}

/** Marks a field to remove in `variant`. */
const REMOVE = Symbol('remove');

/**
 * Derives a variant of a record: each change is a dotted path and its new value (or REMOVE).
 * Works on a deep copy, so the parsed fixture is never shared between tests.
 */
function variant(rec: CloudTrailRecord, changes: Record<string, unknown>): CloudTrailRecord {
  const copy: Record<string, unknown> = structuredClone(rec);
  for (const [path, value] of Object.entries(changes)) {
    const keys = path.split('.');
    const last = keys.pop() as string;
    let target = copy;
    for (const k of keys) {
      const next = target[k];
      if (next === null || typeof next !== 'object') throw new Error(`fixture has no object at ${path}`);
      target = next as Record<string, unknown>;
    }
    if (value === REMOVE) delete target[last];
    else target[last] = value;
  }
  return CloudTrailRecordSchema.parse(copy);
}

function relevantEvent(c: Classification): KeyEvent {
  if (!c.relevant) throw new Error(`expected a relevant record, got ignored (${c.reason})`);
  return c.event;
}

function shapeError(act: () => unknown): EventShapeError {
  try {
    act();
  } catch (err) {
    if (err instanceof EventShapeError) return err;
    throw err;
  }
  throw new Error('expected an EventShapeError, nothing was thrown');
}

/** A long-term key string as AWS formats it: ABSK + base64(`<user>-at-<account>:<60-char secret>`). */
function realisticLongTermKey(userName: string): string {
  const secret = 'q9Zt4WmR2xVb8NcLp6YhKd3Js7FgTa1Ue5Xo0QiPwErHn2BvMc4ZyLk8DsGj';
  return `ABSK${Buffer.from(`${userName}-at-${ACCOUNT}:${secret}`).toString('base64')}`;
}

const IAM_USER_BOB = {
  type: 'IAMUser',
  principalId: 'AIDABP5KNRLHNKEFMVVFQ',
  arn: `arn:aws:iam::${ACCOUNT}:user/dev-bob`,
  accountId: ACCOUNT,
  accessKeyId: 'AKIAMQEFDBCPEJW2NAPH',
  userName: 'dev-bob',
};

describe('EventBridgeEventSchema', () => {
  it('accepts an IAM CloudTrail event as EventBridge delivers it', () => {
    // Prepare
    const envelope = fixture('eventbridge-create-bedrock-credential-30d.json');
    // Act
    const parsed = EventBridgeEventSchema.safeParse(envelope);
    // Assess
    expect(parsed.success).toBe(true);
    expect(parsed.data?.['detail-type']).toBe('AWS API Call via CloudTrail');
    expect(parsed.data?.source).toBe('aws.iam');
    expect(parsed.data?.detail.eventName).toBe('CreateServiceSpecificCredential');
  });

  it('rejects an envelope without detail', () => {
    // Prepare
    const { detail: _removed, ...envelope } = fixture(
      'eventbridge-create-bedrock-credential-30d.json',
    ) as Record<string, unknown>;
    // Act
    const parsed = EventBridgeEventSchema.safeParse(envelope);
    // Assess
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.path.join('.'))).toContain('detail');
  });

  it('rejects an envelope whose detail is not a CloudTrail record', () => {
    // Prepare
    const envelope = fixture('eventbridge-create-bedrock-credential-30d.json') as Record<string, unknown>;
    const scheduled = { ...envelope, 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} };
    // Act
    const parsed = EventBridgeEventSchema.safeParse(scheduled);
    // Assess
    expect(parsed.success).toBe(false);
  });
});

describe('classifyRecord: CreateServiceSpecificCredential', () => {
  it('normalises a Bedrock key created with an expiry (text dates with the comma after the year)', () => {
    // Prepare
    const rec = detailOf('eventbridge-create-bedrock-credential-30d.json');
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event).toEqual({
      kind: 'credential',
      action: 'Create',
      meta: {
        eventId: 'b3ab6a1c-3a26-4a2a-b004-4f16c81b9272',
        eventName: 'CreateServiceSpecificCredential',
        eventTime: '2025-07-09T14:02:11.000Z',
        accountId: ACCOUNT,
        region: 'us-east-1',
        actor: `arn:aws:sts::${ACCOUNT}:assumed-role/AWSReservedSSO_PlatformAdmin_5f1c2d3e4a6b7c8d/alice@example.com`,
      },
      userName: 'svc-chatbot',
      keyId: 'ACCACGZMVM3QEJSJ53FAL',
      serviceName: 'bedrock.amazonaws.com',
      requestedStatus: null,
      created: {
        createdAt: '2025-07-09T14:02:11.000Z',
        expiresAt: '2025-08-08T14:02:11.000Z',
        status: 'Active',
        credentialAgeDays: 30,
      },
    });
  });

  it('normalises a never-expiring key (no credentialAgeDays, no expirationDate, date without the comma)', () => {
    // Prepare
    const rec = record('create-bedrock-credential-never-expires.json');
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event.kind).toBe('credential');
    if (event.kind !== 'credential') return;
    expect(event.keyId).toBe('ACCAGB6HJG7DJAKGQVN6E');
    expect(event.userName).toBe('dev-bob');
    expect(event.created).toEqual({
      createdAt: '2025-03-03T21:18:50.000Z',
      expiresAt: null,
      status: 'Active',
      credentialAgeDays: null,
    });
    expect(event.meta.actor).toBe(`arn:aws:iam::${ACCOUNT}:user/dev-bob`);
  });

  it('keeps a century-out expiry (the other "never expires" shape) in ISO form', () => {
    // Prepare
    const rec = record('create-bedrock-credential-century-expiry-iso.json');
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'credential') throw new Error('expected a credential event');
    expect(event.created?.createdAt).toBe('2025-05-12T08:15:30.000Z');
    expect(event.created?.expiresAt).toBe('2125-05-12T08:15:30.000Z');
    expect(new Date(event.created?.expiresAt ?? '').getUTCFullYear()).toBeGreaterThanOrEqual(2100);
    expect(event.created?.credentialAgeDays).toBeNull();
  });

  it.each([
    ['text form, with comma', 'Aug 8, 2025, 2:02:11 PM'],
    ['text form, without comma', 'Aug 8, 2025 2:02:11 PM'],
    ['ISO-8601 with Z', '2025-08-08T14:02:11Z'],
    ['ISO-8601 with offset', '2025-08-08T16:02:11+02:00'],
  ])('reads expirationDate in %s', (_label, expirationDate) => {
    // Prepare
    const rec = variant(detailOf('eventbridge-create-bedrock-credential-30d.json'), {
      'responseElements.serviceSpecificCredential.expirationDate': expirationDate,
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'credential') throw new Error('expected a credential event');
    expect(event.created?.expiresAt).toBe('2025-08-08T14:02:11.000Z');
  });

  it.each([
    ['text form', 'Jul 9, 2125, 2:02:11 PM', '2125-07-09T14:02:11.000Z'],
    ['ISO-8601', '2100-01-01T00:00:00Z', '2100-01-01T00:00:00.000Z'],
  ])('keeps an expirationDate with year >= 2100 (%s)', (_label, expirationDate, expected) => {
    // Prepare
    const rec = variant(detailOf('eventbridge-create-bedrock-credential-30d.json'), {
      'requestParameters.credentialAgeDays': REMOVE,
      'responseElements.serviceSpecificCredential.expirationDate': expirationDate,
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'credential') throw new Error('expected a credential event');
    expect(event.created?.expiresAt).toBe(expected);
    expect(event.created?.credentialAgeDays).toBeNull();
  });

  it('accepts credentialAgeDays given as a numeric string', () => {
    // Prepare
    const rec = variant(detailOf('eventbridge-create-bedrock-credential-30d.json'), {
      'requestParameters.credentialAgeDays': '30',
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'credential') throw new Error('expected a credential event');
    expect(event.created?.credentialAgeDays).toBe(30);
  });

  it('falls back to the event time when createDate is missing', () => {
    // Prepare
    const rec = variant(detailOf('eventbridge-create-bedrock-credential-30d.json'), {
      'responseElements.serviceSpecificCredential.createDate': REMOVE,
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'credential') throw new Error('expected a credential event');
    expect(event.created?.createdAt).toBe('2025-07-09T14:02:11.000Z');
  });

  it('rejects an unreadable expirationDate naming the field', () => {
    // Prepare
    const rec = variant(detailOf('eventbridge-create-bedrock-credential-30d.json'), {
      'responseElements.serviceSpecificCredential.expirationDate': 'Feb 30, 2026, 1:00:00 AM',
    });
    // Act
    const err = shapeError(() => classifyRecord(rec));
    // Assess
    expect(err.field).toBe('responseElements.serviceSpecificCredential.expirationDate');
    expect(err.eventId).toBe(rec.eventID);
    expect(err.message).toContain('responseElements.serviceSpecificCredential.expirationDate');
  });

  it('ignores a CodeCommit credential as not-bedrock', () => {
    // Prepare
    const rec = record('create-codecommit-credential.json');
    // Act
    const c = classifyRecord(rec);
    // Assess
    expect(c).toEqual({
      relevant: false,
      reason: 'not-bedrock',
      eventName: 'CreateServiceSpecificCredential',
      eventId: '5800a0ca-f2bc-43a2-b4aa-67b389186df7',
    });
  });

  it('ignores a failed call (LimitExceeded: a third key on one user) as failed-call', () => {
    // Prepare
    const rec = record('create-bedrock-credential-limit-exceeded.json');
    // Act
    const c = classifyRecord(rec);
    // Assess
    expect(c).toEqual({
      relevant: false,
      reason: 'failed-call',
      eventName: 'CreateServiceSpecificCredential',
      eventId: '7a1844c9-9bc5-4f90-8901-06627998d622',
    });
  });

  it.each(['AccessDenied', 'NoSuchEntityException'])(
    'ignores an Update that failed with %s as failed-call',
    (errorCode) => {
      // Prepare
      const rec = variant(record('update-bedrock-credential-inactive.json'), {
        errorCode: errorCode,
        errorMessage: 'the call failed',
      });
      // Act
      const c = classifyRecord(rec);
      // Assess
      expect(c.relevant).toBe(false);
      if (!c.relevant) expect(c.reason).toBe('failed-call');
    },
  );

  it.each([
    ['null', null],
    ['absent', undefined],
  ])('throws EventShapeError naming the key id field when responseElements is %s', (_label, value) => {
    // Prepare
    const rec = variant(detailOf('eventbridge-create-bedrock-credential-30d.json'), {
      responseElements: value === undefined ? REMOVE : value,
    });
    // Act
    const err = shapeError(() => classifyRecord(rec));
    // Assess
    expect(err.field).toBe('responseElements.serviceSpecificCredential.serviceSpecificCredentialId');
    expect(err.eventName).toBe('CreateServiceSpecificCredential');
    expect(err.eventId).toBe('b3ab6a1c-3a26-4a2a-b004-4f16c81b9272');
    expect(err.message).toContain('responseElements.serviceSpecificCredential.serviceSpecificCredentialId');
  });

  it('takes the user name from the request when the response omits it', () => {
    // Prepare
    const rec = variant(detailOf('eventbridge-create-bedrock-credential-30d.json'), {
      'responseElements.serviceSpecificCredential.userName': REMOVE,
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'credential') throw new Error('expected a credential event');
    expect(event.userName).toBe('svc-chatbot');
  });
});

describe('classifyRecord: key material never leaves the record', () => {
  it.each([
    ['CreateServiceSpecificCredential', 'eventbridge-create-bedrock-credential-30d.json', true],
    ['ResetServiceSpecificCredential', 'reset-bedrock-credential.json', false],
  ])('%s with an unredacted serviceCredentialSecret', (_name, file, envelope) => {
    // Prepare: the secret is built here, not stored in the fixture, so no secret scanner flags the repo
    const base = envelope ? detailOf(file) : record(file);
    const secret = realisticLongTermKey('svc-chatbot');
    const rec = variant(base, {
      'responseElements.serviceSpecificCredential.serviceCredentialSecret': secret,
      'responseElements.serviceSpecificCredential.servicePassword': secret,
    });
    expect(JSON.stringify(rec)).toContain(secret);
    // Act
    const c = classifyRecord(rec);
    // Assess
    expect(c.relevant).toBe(true);
    const json = JSON.stringify(c);
    expect(json).not.toContain(secret);
    expect(json).not.toContain(secret.slice(4, 40));
    expect(json).not.toMatch(/ABSK[A-Za-z0-9+/]{20,}/);
    expect(json).not.toContain('serviceCredentialSecret');
    expect(json).not.toContain('servicePassword');
  });

  it('the realistic key has the documented shape (132 chars, ABSK prefix, decodes to alias)', () => {
    // Prepare
    const key = realisticLongTermKey('BedrockAPIKey-q7xm');
    // Act
    const decoded = Buffer.from(key.slice(4), 'base64').toString('utf8');
    // Assess
    expect(key).toHaveLength(132);
    expect(key.startsWith('ABSK')).toBe(true);
    expect(decoded.startsWith(`BedrockAPIKey-q7xm-at-${ACCOUNT}:`)).toBe(true);
  });
});

describe('classifyRecord: ignored records', () => {
  it('ignores a Bedrock runtime call (not IAM) as not-iam', () => {
    // Prepare
    const rec = record('bedrock-invoke-model-bearer-token.json');
    // Act
    const c = classifyRecord(rec);
    // Assess
    expect(c).toEqual({
      relevant: false,
      reason: 'not-iam',
      eventName: 'InvokeModel',
      eventId: 'f6b2d8a1-3e47-4c90-a5d3-8c1e0b7f9246',
    });
  });

  it('ignores an IAM event it does not follow as unsupported-event', () => {
    // Prepare
    const rec = record('create-role.json');
    // Act
    const c = classifyRecord(rec);
    // Assess
    expect(c).toEqual({
      relevant: false,
      reason: 'unsupported-event',
      eventName: 'CreateRole',
      eventId: '7d29e4b0-c3a8-4f15-86d2-b0e1f7c5a493',
    });
  });

  it('classifies an unsupported event even when it lacks the fields a relevant one would need', () => {
    // Prepare
    const rec = variant(record('create-role.json'), {
      recipientAccountId: REMOVE,
      userIdentity: REMOVE,
    });
    // Act
    const c = classifyRecord(rec);
    // Assess
    expect(c.relevant).toBe(false);
    if (!c.relevant) expect(c.reason).toBe('unsupported-event');
  });
});

describe('classifyRecord: Update / Reset / Delete', () => {
  const cases = [
    ['Update', 'update-bedrock-credential-inactive.json', 'BedrockAPIKey-q7xm', 'ACCAPEZKCJKPSYDEST44S'],
    ['Reset', 'reset-bedrock-credential.json', 'svc-chatbot', 'ACCACGZMVM3QEJSJ53FAL'],
    ['Delete', 'delete-bedrock-credential.json', 'svc-chatbot', 'ACCACGZMVM3QEJSJ53FAL'],
  ] as const;

  it.each(cases)('%s with userName in the request', (action, file, userName, keyId) => {
    // Prepare
    const rec = record(file);
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event).toMatchObject({
      kind: 'credential',
      action,
      userName,
      keyId,
      // Only Create says which service a key belongs to; the rest must be checked in IAM.
      serviceName: null,
      created: null,
      meta: { eventId: rec.eventID, accountId: ACCOUNT, actor: rec.userIdentity?.arn },
    });
  });

  it('Update records the requested status', () => {
    // Prepare
    const rec = record('update-bedrock-credential-inactive.json');
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'credential') throw new Error('expected a credential event');
    expect(event.requestedStatus).toBe('Inactive');
  });

  it('Update without userName by an IAM user applies to the caller (real record)', () => {
    // Prepare
    const rec = record('update-own-bedrock-credential-no-username.json');
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event).toMatchObject({
      kind: 'credential',
      action: 'Update',
      userName: 'dev-bob',
      keyId: 'ACCAGB6HJG7DJAKGQVN6E',
      requestedStatus: 'Active',
    });
  });

  it.each(cases)('%s without userName by an IAM user applies to the caller', (action, file, _u, keyId) => {
    // Prepare
    const rec = variant(record(file), {
      'requestParameters.userName': REMOVE,
      userIdentity: IAM_USER_BOB,
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event).toMatchObject({ action, userName: 'dev-bob', keyId });
  });

  it.each(cases)('%s without userName by an assumed role is an EventShapeError', (_a, file) => {
    // Prepare: a role has no service-specific credentials, so the target user is unknowable
    const rec = variant(record(file), {
      'requestParameters.userName': REMOVE,
    });
    expect(rec.userIdentity?.type).toBe('AssumedRole');
    // Act
    const err = shapeError(() => classifyRecord(rec));
    // Assess
    expect(err.field).toBe('requestParameters.userName');
    expect(err.eventId).toBe(rec.eventID);
  });

  it.each(cases)('%s without serviceSpecificCredentialId is an EventShapeError naming it', (_a, file) => {
    // Prepare
    const rec = variant(record(file), {
      'requestParameters.serviceSpecificCredentialId': REMOVE,
    });
    // Act
    const err = shapeError(() => classifyRecord(rec));
    // Assess
    expect(err.field).toBe('requestParameters.serviceSpecificCredentialId');
  });
});

describe('classifyRecord: user tags', () => {
  it('TagUser with CloudTrail-shaped {key, value} tags', () => {
    // Prepare
    const rec = record('tag-user.json');
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event).toEqual({
      kind: 'user-tags',
      action: 'TagUser',
      meta: expect.objectContaining({ eventId: '2c85f1a9-6d3e-470b-9e14-f8a6d2b5c719', accountId: ACCOUNT }),
      userName: 'svc-chatbot',
      setTags: { owner: 'alice@example.com', purpose: 'support chatbot (prod)', 'review-cadence': '90d' },
      removedTagKeys: [],
    });
  });

  it('TagUser with SDK-shaped {Key, Value} tags', () => {
    // Prepare
    const rec = variant(record('tag-user.json'), {
      'requestParameters.tags': [
        { Key: 'owner', Value: 'alice@example.com' },
        { Key: 'purpose', Value: '' },
      ],
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'user-tags') throw new Error('expected a user-tags event');
    expect(event.setTags).toEqual({ owner: 'alice@example.com', purpose: '' });
  });

  it('TagUser skips malformed tag entries rather than inventing values', () => {
    // Prepare
    const rec = variant(record('tag-user.json'), {
      'requestParameters.tags': [
        { key: 'owner' },
        { value: 'orphan' },
        'owner=alice',
        null,
        { key: 'ok', value: 'yes' },
      ],
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'user-tags') throw new Error('expected a user-tags event');
    expect(event.setTags).toEqual({ ok: 'yes' });
  });

  it('UntagUser lists the removed keys and sets none', () => {
    // Prepare
    const rec = record('untag-user.json');
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event).toMatchObject({
      kind: 'user-tags',
      action: 'UntagUser',
      userName: 'svc-chatbot',
      setTags: {},
      removedTagKeys: ['purpose', 'review-cadence'],
    });
  });

  it.each([
    ['{key, value}', (k: string, v: string) => ({ key: k, value: v })],
    ['{Key, Value}', (k: string, v: string) => ({ Key: k, Value: v })],
  ])('CreateUser carries its tags in %s shape', (_label, tag) => {
    // Prepare
    const rec = variant(record('create-user-with-tags.json'), {
      'requestParameters.tags': [tag('owner', 'alice@example.com'), tag('cost-center', 'cc-4021')],
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event).toMatchObject({
      kind: 'user-tags',
      action: 'CreateUser',
      userName: 'svc-chatbot',
      setTags: { owner: 'alice@example.com', 'cost-center': 'cc-4021' },
      removedTagKeys: [],
    });
  });

  it('CreateUser without tags yields an empty tag set', () => {
    // Prepare
    const rec = variant(record('create-user-with-tags.json'), {
      'requestParameters.tags': REMOVE,
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    if (event.kind !== 'user-tags') throw new Error('expected a user-tags event');
    expect(event.setTags).toEqual({});
  });

  it('TagUser without userName is an EventShapeError', () => {
    // Prepare
    const rec = variant(record('tag-user.json'), {
      'requestParameters.userName': REMOVE,
    });
    // Act
    const err = shapeError(() => classifyRecord(rec));
    // Assess
    expect(err.field).toBe('requestParameters.userName');
    expect(err.eventName).toBe('TagUser');
  });
});

describe('classifyRecord: event metadata', () => {
  it('takes the account from recipientAccountId first', () => {
    // Prepare: a cross-account caller (its own account differs from the one recording the event)
    const rec = variant(record('tag-user.json'), {
      'userIdentity.accountId': '444455556666',
    });
    // Act
    const event = relevantEvent(classifyRecord(rec, { envelopeAccount: ACCOUNT }));
    // Assess
    expect(event.meta.accountId).toBe(ACCOUNT);
  });

  it('takes the envelope account before userIdentity.accountId when recipientAccountId is absent', () => {
    // Prepare: an event put on a foreign bus whose caller claims the governed account
    const rec = variant(record('tag-user.json'), {
      recipientAccountId: REMOVE,
      'userIdentity.accountId': ACCOUNT,
    });
    // Act
    const event = relevantEvent(classifyRecord(rec, { envelopeAccount: '777788889999' }));
    // Assess: it is the foreign account's event, never the governed account's
    expect(event.meta.accountId).toBe('777788889999');
  });

  it('falls back to userIdentity.accountId when there is neither recipientAccountId nor an envelope', () => {
    // Prepare
    const rec = variant(record('tag-user.json'), {
      recipientAccountId: REMOVE,
      'userIdentity.accountId': '444455556666',
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event.meta.accountId).toBe('444455556666');
  });

  it('ignores an event whose recipientAccountId and envelope account disagree, saying so', () => {
    // Prepare
    const rec = record('tag-user.json');
    // Act
    const c = classifyRecord(rec, { envelopeAccount: '777788889999' });
    // Assess
    expect(c).toMatchObject({
      relevant: false,
      reason: 'account-mismatch',
      detail: `recipientAccountId ${ACCOUNT} differs from the envelope account 777788889999`,
    });
  });

  it('ignores an event whose account cannot be established instead of failing', () => {
    // Prepare
    const rec = variant(record('tag-user.json'), {
      recipientAccountId: REMOVE,
      'userIdentity.accountId': REMOVE,
    });
    // Act
    const c = classifyRecord(rec);
    // Assess
    expect(c).toMatchObject({ relevant: false, reason: 'account-unknown' });
  });

  it('uses the caller ARN as actor', () => {
    // Prepare
    const rec = record('update-bedrock-credential-inactive.json');
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event.meta.actor).toBe(
      `arn:aws:sts::${ACCOUNT}:assumed-role/KeyGuard-CredentialEventRole/KeyGuard-CredentialEvent`,
    );
  });

  it('uses the user name, then the principal id, as actor when there is no ARN', () => {
    // Prepare
    const noArn = variant(record('update-own-bedrock-credential-no-username.json'), {
      'userIdentity.arn': REMOVE,
    });
    const onlyPrincipal = variant(record('tag-user.json'), {
      userIdentity: { type: 'AssumedRole', principalId: 'AROA6TDFB3R2OLFRTBWQC:alice@example.com' },
    });
    // Act
    const a = relevantEvent(classifyRecord(noArn));
    const b = relevantEvent(classifyRecord(onlyPrincipal));
    // Assess
    expect(a.meta.actor).toBe('dev-bob');
    expect(b.meta.actor).toBe('AROA6TDFB3R2OLFRTBWQC:alice@example.com');
  });

  it('has a null actor when the record has no userIdentity', () => {
    // Prepare
    const rec = variant(record('tag-user.json'), {
      userIdentity: REMOVE,
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event.meta.actor).toBeNull();
  });

  it('normalises eventTime and records the region', () => {
    // Prepare
    const rec = variant(record('delete-bedrock-credential.json'), {
      eventTime: 'Jul 12, 2025, 11:05:42 AM',
    });
    // Act
    const event = relevantEvent(classifyRecord(rec));
    // Assess
    expect(event.meta.eventTime).toBe('2025-07-12T11:05:42.000Z');
    expect(event.meta.region).toBe('us-east-1');
  });

  it('throws EventShapeError for an unreadable eventTime', () => {
    // Prepare
    const rec = variant(record('delete-bedrock-credential.json'), {
      eventTime: 'yesterday',
    });
    // Act
    const err = shapeError(() => classifyRecord(rec));
    // Assess
    expect(err.field).toBe('eventTime');
  });
});

describe('classifyRecord: event times that cannot be believed', () => {
  const now = new Date('2026-11-20T12:00:00Z');

  it('ignores an event dated more than a day after notAfter, naming the time', () => {
    // Prepare
    const rec = variant(record('tag-user.json'), { eventTime: '9999-12-31T23:59:59Z' });
    // Act
    const c = classifyRecord(rec, { notAfter: latestPlausibleTime(now) });
    // Assess
    expect(c).toMatchObject({
      relevant: false,
      reason: 'future-event',
      detail:
        'eventTime 9999-12-31T23:59:59.000Z is after 2026-11-21T12:00:00.000Z (implausibly far in the future)',
    });
  });

  it('accepts an event a few hours ahead of the clock (clocks differ)', () => {
    // Prepare
    const rec = variant(record('tag-user.json'), { eventTime: '2026-11-20T20:00:00Z' });
    // Act
    const c = classifyRecord(rec, { notAfter: latestPlausibleTime(now) });
    // Assess
    expect(c.relevant).toBe(true);
  });

  it('bounds by the log file delivery time when it is earlier than the run', () => {
    // Prepare / Act
    const bound = latestPlausibleTime(now, new Date('2026-11-01T10:05:00Z'));
    const later = latestPlausibleTime(now, new Date('2026-12-01T00:00:00Z'));
    // Assess
    expect(bound.toISOString()).toBe('2026-11-02T10:05:00.000Z');
    expect(later.toISOString()).toBe('2026-11-21T12:00:00.000Z');
  });
});
