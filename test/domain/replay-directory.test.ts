import type { EventMeta, KeyEvent } from '../../lambda/domain/cloudtrail';
import { ReplayDirectory } from '../../lambda/domain/replay-directory';

const ACCOUNT = '111122223333';
const OTHER_ACCOUNT = '444455556666';
const KEY = 'ACCAEXAMPLEREPLAYDIR1';
const KEY2 = 'ACCAEXAMPLEREPLAYDIR2';

function meta(eventName: string, accountId = ACCOUNT): EventMeta {
  return {
    eventId: `id-${eventName}`,
    eventName,
    eventTime: '2026-11-20T09:31:02.000Z',
    accountId,
    region: 'us-east-1',
    actor: 'arn:aws:iam::111122223333:user/alice',
  };
}

function userEvent(
  action: 'CreateUser' | 'TagUser' | 'UntagUser',
  userName: string,
  setTags: Record<string, string> = {},
  removedTagKeys: string[] = [],
  accountId = ACCOUNT,
): KeyEvent {
  return { kind: 'user-tags', action, meta: meta(action, accountId), userName, setTags, removedTagKeys };
}

function createKey(
  userName: string,
  keyId: string,
  over: Partial<{ expiresAt: string | null; status: 'Active' | 'Inactive'; serviceName: string }> = {},
): KeyEvent {
  return {
    kind: 'credential',
    action: 'Create',
    meta: meta('CreateServiceSpecificCredential'),
    userName,
    keyId,
    serviceName: over.serviceName ?? 'bedrock.amazonaws.com',
    requestedStatus: null,
    created: {
      createdAt: '2026-11-20T09:31:02.000Z',
      expiresAt: over.expiresAt === undefined ? '2026-12-20T09:31:02.000Z' : over.expiresAt,
      status: over.status ?? 'Active',
      credentialAgeDays: 30,
    },
  };
}

function keyEvent(
  action: 'Update' | 'Reset' | 'Delete',
  userName: string,
  keyId: string,
  requestedStatus: 'Active' | 'Inactive' | null = null,
): KeyEvent {
  return {
    kind: 'credential',
    action,
    meta: meta(`${action}ServiceSpecificCredential`),
    userName,
    keyId,
    serviceName: null,
    requestedStatus,
    created: null,
  };
}

describe('ReplayDirectory', () => {
  it('starts empty: unknown users have no tags and no keys', async () => {
    // Prepare
    const dir = new ReplayDirectory();

    // Act
    const [tags, keys, key] = await Promise.all([
      dir.getUserTags(ACCOUNT, 'nobody'),
      dir.listUserKeys(ACCOUNT, 'nobody'),
      dir.getKey(ACCOUNT, 'nobody', KEY),
    ]);

    // Assess
    expect(tags).toEqual({});
    expect(keys).toEqual([]);
    expect(key).toBeNull();
  });

  it('takes user tags from CreateUser, merges TagUser and removes UntagUser keys', async () => {
    // Prepare
    const dir = new ReplayDirectory();

    // Act
    dir.apply(userEvent('CreateUser', 'svc-a', { owner: 'a@example.com', purpose: 'chat' }));
    const afterCreate = await dir.getUserTags(ACCOUNT, 'svc-a');
    dir.apply(userEvent('TagUser', 'svc-a', { owner: 'b@example.com', 'review-cadence': '90d' }));
    const afterTag = await dir.getUserTags(ACCOUNT, 'svc-a');
    dir.apply(userEvent('UntagUser', 'svc-a', {}, ['purpose', 'not-there']));
    const afterUntag = await dir.getUserTags(ACCOUNT, 'svc-a');

    // Assess
    expect(afterCreate).toEqual({ owner: 'a@example.com', purpose: 'chat' });
    expect(afterTag).toEqual({ owner: 'b@example.com', purpose: 'chat', 'review-cadence': '90d' });
    expect(afterUntag).toEqual({ owner: 'b@example.com', 'review-cadence': '90d' });
  });

  it('adds a Bedrock key on Create with the dates and status of the event', async () => {
    // Prepare
    const dir = new ReplayDirectory();

    // Act
    dir.apply(createKey('svc-a', KEY, { expiresAt: null, status: 'Inactive' }));

    // Assess
    expect(await dir.getKey(ACCOUNT, 'svc-a', KEY)).toEqual({
      keyId: KEY,
      userName: 'svc-a',
      status: 'Inactive',
      createdAt: '2026-11-20T09:31:02.000Z',
      expiresAt: null,
    });
    expect(await dir.listUserKeys(ACCOUNT, 'svc-a')).toHaveLength(1);
  });

  it('never holds a credential of another service', async () => {
    // Prepare
    const dir = new ReplayDirectory();

    // Act
    dir.apply(createKey('dev-bob', KEY, { serviceName: 'codecommit.amazonaws.com' }));

    // Assess
    expect(await dir.getKey(ACCOUNT, 'dev-bob', KEY)).toBeNull();
    expect(await dir.listUserKeys(ACCOUNT, 'dev-bob')).toEqual([]);
  });

  it('sets the requested status on Update, keeps metadata on Reset and removes the key on Delete', async () => {
    // Prepare
    const dir = new ReplayDirectory();
    dir.apply(createKey('svc-a', KEY));
    dir.apply(createKey('svc-a', KEY2));

    // Act
    dir.apply(keyEvent('Update', 'svc-a', KEY, 'Inactive'));
    const afterUpdate = await dir.getKey(ACCOUNT, 'svc-a', KEY);
    dir.apply(keyEvent('Reset', 'svc-a', KEY));
    const afterReset = await dir.getKey(ACCOUNT, 'svc-a', KEY);
    dir.apply(keyEvent('Delete', 'svc-a', KEY));

    // Assess
    expect(afterUpdate?.status).toBe('Inactive');
    expect(afterReset).toEqual(afterUpdate);
    expect(await dir.getKey(ACCOUNT, 'svc-a', KEY)).toBeNull();
    expect((await dir.listUserKeys(ACCOUNT, 'svc-a')).map((k) => k.keyId)).toEqual([KEY2]);
  });

  it('ignores Update, Reset and Delete of keys it never saw created', async () => {
    // Prepare
    const dir = new ReplayDirectory();
    dir.apply(createKey('svc-a', KEY));

    // Act
    dir.apply(keyEvent('Update', 'svc-a', KEY2, 'Inactive'));
    dir.apply(keyEvent('Delete', 'svc-b', KEY2));

    // Assess
    expect(await dir.getKey(ACCOUNT, 'svc-a', KEY2)).toBeNull();
    expect(await dir.listUserKeys(ACCOUNT, 'svc-b')).toEqual([]);
    expect((await dir.getKey(ACCOUNT, 'svc-a', KEY))?.status).toBe('Active');
  });

  it('keeps keys on a user when a late CreateUser replaces its tags', async () => {
    // Prepare
    const dir = new ReplayDirectory();
    dir.apply(userEvent('TagUser', 'svc-a', { owner: 'old@example.com' }));
    dir.apply(createKey('svc-a', KEY));

    // Act
    dir.apply(userEvent('CreateUser', 'svc-a', { purpose: 'chat' }));

    // Assess
    expect(await dir.getUserTags(ACCOUNT, 'svc-a')).toEqual({ purpose: 'chat' });
    expect(await dir.listUserKeys(ACCOUNT, 'svc-a')).toHaveLength(1);
  });

  it('keeps accounts apart', async () => {
    // Prepare
    const dir = new ReplayDirectory();

    // Act
    dir.apply(userEvent('TagUser', 'svc-a', { owner: 'other@example.com' }, [], OTHER_ACCOUNT));
    dir.apply(createKey('svc-a', KEY));

    // Assess
    expect(await dir.getUserTags(ACCOUNT, 'svc-a')).toEqual({});
    expect(await dir.getUserTags(OTHER_ACCOUNT, 'svc-a')).toEqual({ owner: 'other@example.com' });
    expect(await dir.getKey(OTHER_ACCOUNT, 'svc-a', KEY)).toBeNull();
  });

  it('returns copies: callers cannot change the state', async () => {
    // Prepare
    const dir = new ReplayDirectory();
    dir.apply(userEvent('CreateUser', 'svc-a', { owner: 'a@example.com' }));
    dir.apply(createKey('svc-a', KEY));

    // Act
    const tags = await dir.getUserTags(ACCOUNT, 'svc-a');
    tags.owner = 'mallory@example.com';
    const key = await dir.getKey(ACCOUNT, 'svc-a', KEY);
    if (key) key.status = 'Inactive';

    // Assess
    expect(await dir.getUserTags(ACCOUNT, 'svc-a')).toEqual({ owner: 'a@example.com' });
    expect((await dir.getKey(ACCOUNT, 'svc-a', KEY))?.status).toBe('Active');
  });
});

describe('ReplayDirectory: keys seeded from an earlier run', () => {
  const seeded = {
    keyId: KEY,
    userName: 'svc-seeded',
    status: 'Active' as const,
    createdAt: '2026-11-20T09:31:02.000Z',
    expiresAt: null,
  };
  function at(event: KeyEvent, eventTime: string): KeyEvent {
    return { ...event, meta: { ...event.meta, eventTime } };
  }

  it('shows a seeded key only to events at or after its creation time', async () => {
    const dir = new ReplayDirectory();
    dir.seed(ACCOUNT, seeded);

    dir.apply(at(userEvent('TagUser', 'svc-seeded', { owner: 'a@example.com' }), '2026-11-20T09:00:00.000Z'));
    const before = await dir.listUserKeys(ACCOUNT, 'svc-seeded');
    dir.apply(at(userEvent('TagUser', 'svc-seeded', { purpose: 'x' }), '2026-11-21T09:00:00.000Z'));
    const after = await dir.listUserKeys(ACCOUNT, 'svc-seeded');

    expect(before).toEqual([]);
    expect(after).toEqual([seeded]);
  });

  it('lets the logs win: a Create replaces the seeded key, an Update changes it, a Delete removes it', async () => {
    const dir = new ReplayDirectory();
    dir.seed(ACCOUNT, seeded);
    dir.seed(ACCOUNT, { ...seeded, keyId: KEY2 });

    dir.apply(at(createKey('svc-seeded', KEY), '2026-11-20T09:31:02.000Z'));
    dir.apply(at(keyEvent('Update', 'svc-seeded', KEY2, 'Inactive'), '2026-11-21T00:00:00.000Z'));

    expect(await dir.getKey(ACCOUNT, 'svc-seeded', KEY)).toMatchObject({
      expiresAt: '2026-12-20T09:31:02.000Z',
    });
    expect(await dir.getKey(ACCOUNT, 'svc-seeded', KEY2)).toMatchObject({ status: 'Inactive' });
    dir.apply(at(keyEvent('Delete', 'svc-seeded', KEY2), '2026-11-22T00:00:00.000Z'));
    expect(await dir.getKey(ACCOUNT, 'svc-seeded', KEY2)).toBeNull();
  });

  it('never replaces a key the logs already gave it', async () => {
    const dir = new ReplayDirectory();
    dir.apply(createKey('svc-seeded', KEY));

    dir.seed(ACCOUNT, { ...seeded, status: 'Inactive' });

    expect(await dir.getKey(ACCOUNT, 'svc-seeded', KEY)).toMatchObject({ status: 'Active' });
  });
});
