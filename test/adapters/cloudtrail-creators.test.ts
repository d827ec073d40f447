import { randomUUID } from 'node:crypto';
import {
  CloudTrailClient,
  type Event,
  LookupEventsCommand,
  ThrottlingException,
} from '@aws-sdk/client-cloudtrail';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CloudTrailCreatorLookup,
  EVENT_HISTORY_DAYS,
  LOOKUP_MIN_INTERVAL_MS,
} from '../../lambda/adapters/cloudtrail-creators';
import { ACCOUNT, cloudTrailRecord, createCredentialRecord } from '../support/events';

const ct = mockClient(CloudTrailClient);
const NOW = new Date('2026-11-20T12:00:00Z');
const DAY = 24 * 3600 * 1000;

/** A fake clock that only moves when the adapter sleeps, recording each sleep. */
function fakeTime(start = NOW) {
  let t = start.getTime();
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => new Date(t),
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

/** A LookupEvents history entry wrapping a CloudTrail record, as the API returns it (the record as a JSON string). */
function historyEvent(record: Record<string, unknown>): Event {
  return {
    EventId: String(record.eventID),
    EventName: String(record.eventName),
    EventSource: 'iam.amazonaws.com',
    EventTime: new Date(String(record.eventTime)),
    CloudTrailEvent: JSON.stringify(record),
  };
}

function created(userName: string, keyId: string, actorArn: string, extra: { errorCode?: string } = {}) {
  const rec = createCredentialRecord({ userName, keyId, errorCode: extra.errorCode });
  rec.userIdentity = {
    type: 'IAMUser',
    principalId: 'AIDAEXAMPLEPRINCIPAL2',
    arn: actorArn,
    accountId: ACCOUNT,
    userName: actorArn.split('/').pop(),
  };
  return rec;
}

function lookup(time = fakeTime(), minIntervalMs?: number) {
  const client = new CloudTrailClient({ region: 'us-east-1' });
  return new CloudTrailCreatorLookup(client, { now: time.now, sleep: time.sleep, minIntervalMs });
}

beforeEach(() => ct.reset());

describe('CloudTrailCreatorLookup', () => {
  it('asks only for CreateServiceSpecificCredential and follows NextToken across pages', async () => {
    // Prepare
    const bob = `arn:aws:iam::${ACCOUNT}:user/bob`;
    const carol = `arn:aws:sts::${ACCOUNT}:assumed-role/Platform/carol`;
    ct.on(LookupEventsCommand, { NextToken: undefined })
      .resolves({
        Events: [historyEvent(created('svc-a', 'ACCAEXAMPLEKEYAAAAAA1', bob))],
        NextToken: 't2',
      })
      .on(LookupEventsCommand, { NextToken: 't2' })
      .resolves({ Events: [historyEvent(created('svc-b', 'ACCAEXAMPLEKEYBBBBBB2', carol))] });
    const since = new Date(NOW.getTime() - 30 * DAY);

    // Act
    const creators = await lookup().creators(ACCOUNT, since, NOW);

    // Assess
    expect(creators).toEqual(
      new Map([
        ['ACCAEXAMPLEKEYAAAAAA1', bob],
        ['ACCAEXAMPLEKEYBBBBBB2', carol],
      ]),
    );
    expect(ct).toHaveReceivedCommandTimes(LookupEventsCommand, 2);
    const inputs = ct.commandCalls(LookupEventsCommand).map((c) => c.args[0].input);
    expect(inputs).toEqual([
      {
        LookupAttributes: [{ AttributeKey: 'EventName', AttributeValue: 'CreateServiceSpecificCredential' }],
        StartTime: since,
        EndTime: NOW,
        MaxResults: 50,
        NextToken: undefined,
      },
      {
        LookupAttributes: [{ AttributeKey: 'EventName', AttributeValue: 'CreateServiceSpecificCredential' }],
        StartTime: since,
        EndTime: NOW,
        MaxResults: 50,
        NextToken: 't2',
      },
    ]);
  });

  it('counts only successful creations of Bedrock keys in this account', async () => {
    // Prepare
    const bob = `arn:aws:iam::${ACCOUNT}:user/bob`;
    const codeCommit = createCredentialRecord({
      userName: 'git-user',
      keyId: 'ACCAEXAMPLECODECOMMIT',
      serviceName: 'codecommit.amazonaws.com',
    });
    const foreign = created('svc-f', 'ACCAEXAMPLEFOREIGN001', bob);
    foreign.recipientAccountId = '444455556666';
    const noKeyId = created('svc-x', 'ACCAEXAMPLEKEYXXXXXX9', bob);
    noKeyId.responseElements = null;
    ct.on(LookupEventsCommand).resolves({
      Events: [
        historyEvent(created('svc-ok', 'ACCAEXAMPLEKEYOK00001', bob)),
        historyEvent(
          created('svc-fail', 'ACCAEXAMPLEKEYFAILED1', bob, { errorCode: 'LimitExceededException' }),
        ),
        historyEvent(codeCommit),
        historyEvent(foreign),
        historyEvent(noKeyId),
        historyEvent(cloudTrailRecord({ eventName: 'CreateUser', requestParameters: { userName: 'u' } })),
        { EventId: randomUUID(), CloudTrailEvent: '{not json' },
        {
          EventId: randomUUID(),
          CloudTrailEvent: JSON.stringify({ eventName: 'CreateServiceSpecificCredential' }),
        },
        { EventId: randomUUID() },
      ],
    });

    // Act
    const creators = await lookup().creators(ACCOUNT, new Date(NOW.getTime() - DAY), NOW);

    // Assess
    expect(creators).toEqual(new Map([['ACCAEXAMPLEKEYOK00001', bob]]));
  });

  it('attributes a key to the user name or principal id when CloudTrail gives no ARN', async () => {
    // Prepare
    const rec = createCredentialRecord({ userName: 'svc-a', keyId: 'ACCAEXAMPLEKEYNOARN01' });
    rec.userIdentity = { type: 'IAMUser', principalId: 'AIDAEXAMPLE', accountId: ACCOUNT, userName: 'dave' };
    ct.on(LookupEventsCommand).resolves({ Events: [historyEvent(rec)] });

    // Act
    const creators = await lookup().creators(ACCOUNT, new Date(NOW.getTime() - DAY), NOW);

    // Assess
    expect(creators.get('ACCAEXAMPLEKEYNOARN01')).toBe('dave');
  });

  it('never keeps the secret a record might carry: only key id and creator come out', async () => {
    // Prepare
    const secret = `ABSK${'Q'.repeat(120)}`;
    const rec = createCredentialRecord({ userName: 'svc-a', keyId: 'ACCAEXAMPLEKEYSECRET1', secret });
    ct.on(LookupEventsCommand).resolves({ Events: [historyEvent(rec)] });

    // Act
    const creators = await lookup().creators(ACCOUNT, new Date(NOW.getTime() - DAY), NOW);

    // Assess
    expect(JSON.stringify([...creators])).not.toContain(secret);
    expect([...creators.keys()]).toEqual(['ACCAEXAMPLEKEYSECRET1']);
  });

  it('clamps the start to the 90 days of event history', async () => {
    // Prepare
    ct.on(LookupEventsCommand).resolves({ Events: [] });

    // Act
    await lookup().creators(ACCOUNT, new Date('2020-01-01T00:00:00Z'), NOW);

    // Assess
    expect(ct).toHaveReceivedCommandWith(LookupEventsCommand, {
      StartTime: new Date(NOW.getTime() - EVENT_HISTORY_DAYS * DAY),
      EndTime: NOW,
    });
  });

  it('makes no call for a window that lies entirely before event history, or is empty', async () => {
    // Prepare
    const finder = lookup();

    // Act
    const old = await finder.creators(
      ACCOUNT,
      new Date('2020-01-01T00:00:00Z'),
      new Date('2020-02-01T00:00:00Z'),
    );
    const empty = await finder.creators(ACCOUNT, NOW, NOW);

    // Assess
    expect(old.size).toBe(0);
    expect(empty.size).toBe(0);
    expect(ct).toHaveReceivedCommandTimes(LookupEventsCommand, 0);
  });

  it('paces calls to 2 per second: the first goes at once, each later one waits its turn', async () => {
    // Prepare
    const time = fakeTime();
    ct.on(LookupEventsCommand, { NextToken: undefined })
      .resolves({ Events: [], NextToken: 'a' })
      .on(LookupEventsCommand, { NextToken: 'a' })
      .resolves({ Events: [], NextToken: 'b' })
      .on(LookupEventsCommand, { NextToken: 'b' })
      .resolves({ Events: [] });
    const finder = lookup(time);

    // Act
    await finder.creators(ACCOUNT, new Date(NOW.getTime() - DAY), NOW);

    // Assess
    expect(ct).toHaveReceivedCommandTimes(LookupEventsCommand, 3);
    expect(time.sleeps).toEqual([LOOKUP_MIN_INTERVAL_MS, LOOKUP_MIN_INTERVAL_MS]);
    expect(LOOKUP_MIN_INTERVAL_MS).toBeGreaterThanOrEqual(500);
  });

  it('waits only for what is left of the interval, and not at all once it has passed', async () => {
    // Prepare
    const time = fakeTime();
    ct.on(LookupEventsCommand).resolves({ Events: [] });
    const finder = lookup(time, 1000);

    // Act
    await finder.creators(ACCOUNT, new Date(NOW.getTime() - DAY), NOW);
    time.advance(400);
    await finder.creators(ACCOUNT, new Date(NOW.getTime() - DAY), NOW);
    time.advance(5000);
    await finder.creators(ACCOUNT, new Date(NOW.getTime() - DAY), NOW);

    // Assess
    expect(time.sleeps).toEqual([600]);
    expect(ct).toHaveReceivedCommandTimes(LookupEventsCommand, 3);
  });

  it('paces concurrent callers of one instance one after the other', async () => {
    // Prepare
    const time = fakeTime();
    ct.on(LookupEventsCommand).resolves({ Events: [] });
    const finder = lookup(time, 500);
    const since = new Date(NOW.getTime() - DAY);

    // Act
    await Promise.all([
      finder.creators(ACCOUNT, since, NOW),
      finder.creators(ACCOUNT, since, NOW),
      finder.creators(ACCOUNT, since, NOW),
    ]);

    // Assess
    expect(time.sleeps).toEqual([500, 500]);
  });

  it('lets a throttling error that outlasts the SDK retries propagate', async () => {
    // Prepare
    ct.on(LookupEventsCommand).rejects(
      new ThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } }),
    );
    const client = new CloudTrailClient({ region: 'us-east-1', maxAttempts: 1 });
    const time = fakeTime();
    const finder = new CloudTrailCreatorLookup(client, { now: time.now, sleep: time.sleep });

    // Act
    const run = finder.creators(ACCOUNT, new Date(NOW.getTime() - DAY), NOW);

    // Assess
    await expect(run).rejects.toThrow('Rate exceeded');
  });
});
