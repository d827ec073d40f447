import {
  MAX_UNDECIDED_SIGHTINGS,
  UNDECIDED_MESSAGE_TYPE,
  type UndecidedLeak,
  undecidedMessages,
  undecidedSightings,
} from '../../lambda/domain/leak-undecided';
import type { LeakLocation } from '../../lambda/domain/types';
import { fingerprint } from '../../lambda/shared/redact';
import { fakeLongTermKey, leakedFragments } from '../support/secrets';

const KEY = fakeLongTermKey('undecided');

function leak(i: number, events = 1): UndecidedLeak {
  return {
    kind: 'LONG_TERM',
    fingerprint: `sha256:${i.toString(16).padStart(16, '0')}`,
    redacted: `ABSK…${String(i).padStart(4, '0')}`,
    accountId: '111122223333',
    userName: `user-${i}`,
    verification: 'UNVERIFIED',
    reason: 'bound',
    sightings: events,
    logEvents: Array.from({ length: Math.min(events, MAX_UNDECIDED_SIGHTINGS) }, (_v, j) => ({
      logEventId: `${i}-${j}-${'9'.repeat(50)}`,
      timestamp: '2026-11-20T09:40:00.000Z',
      line: 1,
      column: 10,
    })),
  };
}

describe('undecidedMessages', () => {
  it('puts a small batch in one message with its log group and stream', () => {
    // Act
    const bodies = undecidedMessages({ logGroup: 'g', logStream: 's', leaks: [leak(1), leak(2)] });

    // Assess
    expect(bodies.map((b) => JSON.parse(b))).toEqual([
      {
        type: UNDECIDED_MESSAGE_TYPE,
        version: 1,
        logGroup: 'g',
        logStream: 's',
        part: 1,
        parts: 1,
        leaks: [leak(1), leak(2)],
      },
    ]);
  });

  it('splits a large batch into numbered parts under the size limit, losing and reordering nothing', () => {
    // Prepare: 2,000 strings seen 20 times each (a flood of forged keys)
    const leaks = Array.from({ length: 2000 }, (_v, i) => leak(i, 20));

    // Act
    const bodies = undecidedMessages({ logGroup: 'g', logStream: 's', leaks });

    // Assess
    expect(bodies.length).toBeGreaterThan(1);
    for (const b of bodies) expect(Buffer.byteLength(b)).toBeLessThanOrEqual(200_000);
    const parsed = bodies.map((b) => JSON.parse(b));
    expect(parsed.map((p) => [p.part, p.parts])).toEqual(bodies.map((_b, i) => [i + 1, bodies.length]));
    expect(parsed.flatMap((p) => p.leaks)).toEqual(leaks);
  });

  it('redacts anything key-shaped in a name the log writer chose', () => {
    // Act
    const [body] = undecidedMessages({ logGroup: 'g', logStream: `stream-${KEY}`, leaks: [leak(1)] });

    // Assess
    expect(leakedFragments(body ?? '', [KEY])).toEqual([]);
    expect(body).toContain(fingerprint(KEY));
    expect(JSON.parse(body ?? '{}').leaks).toEqual([leak(1)]);
  });
});

describe('undecidedSightings', () => {
  it('keeps the first 20 locations, without group or stream (the message has them)', () => {
    // Prepare
    const locations: LeakLocation[] = Array.from({ length: 25 }, (_v, i) => ({
      logGroup: 'g',
      logStream: 's',
      logEventId: `e-${i}`,
      timestamp: '2026-11-20T09:40:00.000Z',
      line: i + 1,
      column: 3,
    }));

    // Act
    const kept = undecidedSightings(locations);

    // Assess
    expect(kept).toHaveLength(MAX_UNDECIDED_SIGHTINGS);
    expect(kept[0]).toEqual({ logEventId: 'e-0', timestamp: '2026-11-20T09:40:00.000Z', line: 1, column: 3 });
    expect(kept.at(-1)?.logEventId).toBe('e-19');
  });
});
