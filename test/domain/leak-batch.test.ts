import { findBatchLeaks, MAX_WORK_PER_CHAR } from '../../lambda/domain/leak-batch';
import { fingerprint } from '../../lambda/shared/redact';
import { fakeLongTermKey, fakeShortTermKey } from '../support/secrets';

const NOW = new Date('2026-11-20T10:00:00Z');
const KiB = 1024;
const LONG = fakeLongTermKey('batch');
const SHORT = fakeShortTermKey('batch');

describe('findBatchLeaks', () => {
  it('scans every message of a batch within the linear bound and finds the keys among prefix-dense ones', () => {
    // Prepare
    const events = [
      { id: 'a', message: 'ABSK'.repeat(64 * KiB) },
      { id: 'b', message: `token ${LONG}` },
      { id: 'c', message: 'bedrock-api-key-'.repeat(16 * KiB) },
      { id: 'd', message: `${'ABSK%2B'.repeat(30 * KiB)} ${encodeURIComponent(SHORT)}` },
    ];
    const chars = events.reduce((n, e) => n + e.message.length, 0);

    // Act
    const batch = findBatchLeaks(events, { now: NOW });

    // Assess
    expect(batch.found.map((f) => [f.event.id, f.spans.map((s) => s.fingerprint)])).toEqual([
      ['b', [fingerprint(LONG)]],
      ['d', [fingerprint(SHORT)]],
    ]);
    expect(batch.chars).toBe(chars);
    expect(batch.work).toBeGreaterThanOrEqual(chars);
    expect(batch.work).toBeLessThanOrEqual(MAX_WORK_PER_CHAR * chars);
  });

  it('makes one finding of a key repeated in a message, counting its occurrences', () => {
    // Prepare
    const events = [
      { id: 'a', message: `${LONG} ${SHORT} ${LONG}\n${LONG}`.repeat(500) },
      { id: 'b', message: LONG },
    ];

    // Act
    const batch = findBatchLeaks(events, { now: NOW });

    // Assess
    expect(
      batch.found.map((f) => [f.event.id, f.spans.map((s) => [s.fingerprint, s.line, s.column])]),
    ).toEqual([
      [
        'a',
        [
          [fingerprint(LONG), 1, 1],
          [fingerprint(SHORT), 1, LONG.length + 2],
        ],
      ],
      ['b', [[fingerprint(LONG), 1, 1]]],
    ]);
    expect(batch.found[0]?.occurrences).toEqual(
      new Map([
        [fingerprint(LONG), 1500],
        [fingerprint(SHORT), 500],
      ]),
    );
  });
});
