import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { CloudTrailRecordSchema, classifyRecord, EventShapeError } from '../../lambda/domain/cloudtrail';
import { LeakStreamScanner } from '../../lambda/domain/leak-stream';
import { findLeaks } from '../../lambda/domain/leaks';
import { describeUsage } from '../../lambda/domain/usage';
import { ConfigError, parseConfig } from '../../lambda/shared/config';
import { fingerprint, redactSecrets } from '../../lambda/shared/redact';
import { fakeLongTermKey, fakeShortTermKey, leakedFragments } from '../support/secrets';

/**
 * Property-based fuzzing of the three places attacker-written text enters the product: CloudTrail records,
 * config files and scanned text. Every run is seeded (a failure prints its seed and path, and the same seed
 * replays it) and bounded both in runs and in time (`interruptAfterTimeLimit`), so the suite stays fast on a
 * loaded machine; an interrupted run checks fewer cases but never fails for being slow.
 */
const RUN = (numRuns: number) => ({
  seed: 20261207,
  numRuns,
  interruptAfterTimeLimit: 15_000,
  markInterruptAsFailure: false,
});

const NOW = new Date('2026-11-20T09:41:02Z');

const FIXTURES = join(__dirname, '..', 'fixtures', 'cloudtrail');

/** The real-shaped CloudTrail records under test/fixtures (EventBridge envelopes unwrapped). */
function fixtureRecords(): Record<string, unknown>[] {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      const parsed = JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as Record<string, unknown>;
      return (parsed.detail as Record<string, unknown> | undefined) ?? parsed;
    });
}

/** Values an attacker can put in any JSON field: wrong types, huge and odd strings, deep nesting. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.constantFrom(
    '',
    '9999-12-31T23:59:59Z',
    '0000-00-00T00:00:00Z',
    'Jan 99, 2026, 3:30:00 AM',
    '\u202e\u0000\u001b[2J',
    'A'.repeat(100_000),
    -0,
    1e308,
    Number.MAX_SAFE_INTEGER + 2,
  ),
  fc.nat({ max: 3000 }).map((depth) => {
    let v: unknown = 'x';
    for (let i = 0; i < depth; i += 1) v = { a: v };
    return v;
  }),
);

/** A path into a record: an existing key at some depth, or a new one. */
function setAt(target: Record<string, unknown>, path: string[], value: unknown): void {
  let cur: Record<string, unknown> = target;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      cur[key] = value;
      return;
    }
    const next = cur[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
}

const FIELD_NAMES = [
  'eventTime',
  'eventSource',
  'eventName',
  'eventID',
  'recipientAccountId',
  'awsRegion',
  'errorCode',
  'userIdentity',
  'requestParameters',
  'responseElements',
  'additionalEventData',
  'type',
  'arn',
  'accountId',
  'userName',
  'serviceName',
  'serviceSpecificCredentialId',
  'serviceSpecificCredential',
  'expirationDate',
  'createDate',
  'status',
  'tags',
  'tagKeys',
  'callWithBearerToken',
  'bearerTokenType',
  'credentialAgeDays',
];

const mutation = fc.record({
  path: fc.array(fc.constantFrom(...FIELD_NAMES), { minLength: 1, maxLength: 3 }),
  value: hostileValue,
});

describe('fuzz: CloudTrail records', () => {
  const records = fixtureRecords();

  it('has real-shaped records to mutate', () => {
    expect(records.length).toBeGreaterThanOrEqual(10);
  });

  it('a mutated record is classified or refused with EventShapeError, never another error', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...records),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.option(fc.constantFrom('111122223333', '999988887777', ''), { nil: null }),
        (base, mutations, envelopeAccount) => {
          const record = structuredClone(base);
          for (const m of mutations) setAt(record, m.path, m.value);
          const parsed = CloudTrailRecordSchema.safeParse(record);
          if (!parsed.success) return true; // refused at the schema: the handlers log and skip it
          for (const classify of [
            () => classifyRecord(parsed.data, { envelopeAccount, notAfter: NOW }),
            () => describeUsage(parsed.data, { envelopeAccount, notAfter: NOW }),
          ]) {
            try {
              classify();
            } catch (err) {
              if (!(err instanceof EventShapeError)) throw err;
              expect(err.message.length).toBeLessThan(2000);
            }
          }
          return true;
        },
      ),
      RUN(2000),
    );
  });

  it('a relevant event is acted on only as the account it provably belongs to, and never from the future', () => {
    const outcomes = { acted: 0, refused: 0 };
    fc.assert(
      fc.property(
        fc.constantFrom(...records.filter((r) => r.eventSource === 'iam.amazonaws.com')),
        fc.option(fc.constantFrom('111122223333', '999988887777'), { nil: null }),
        fc.boolean(),
        fc.option(fc.constantFrom('2026-11-25T00:00:00Z', '9999-12-31T23:59:59Z'), { nil: null }),
        (base, envelopeAccount, dropRecipient, eventTime) => {
          const raw = structuredClone(base);
          if (dropRecipient) delete raw.recipientAccountId;
          if (eventTime) raw.eventTime = eventTime;
          const record = CloudTrailRecordSchema.parse(raw);
          let result: ReturnType<typeof classifyRecord>;
          try {
            result = classifyRecord(record, { envelopeAccount, notAfter: NOW });
          } catch (err) {
            if (err instanceof EventShapeError) return true;
            throw err;
          }
          if (!result.relevant) {
            outcomes.refused += 1;
            return true;
          }
          outcomes.acted += 1;
          const recipient = record.recipientAccountId;
          if (recipient && envelopeAccount) expect(recipient).toBe(envelopeAccount);
          expect(result.event.meta.accountId).toBe(
            recipient ?? envelopeAccount ?? record.userIdentity?.accountId,
          );
          expect(Date.parse(result.event.meta.eventTime)).toBeLessThanOrEqual(NOW.getTime());
          return true;
        },
      ),
      RUN(300),
    );
    // Both sides of the rule were exercised, so the property is not vacuous.
    expect(outcomes.acted).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });
});

describe('fuzz: config files', () => {
  const key = fakeLongTermKey('fuzz-config');

  /** Config-shaped input: the real keys with hostile values, unknown keys, wrong types. */
  const configInput = fc.oneof(
    hostileValue,
    fc.dictionary(
      fc.constantFrom(
        'mode',
        'maxAgeDays',
        'gracePeriodHours',
        'tags',
        'fallbackOwner',
        'allowLongTermKeys',
        'notifications',
        'leakDetection',
        'usage',
        'guardrails',
        'maxIdleDays',
        'expiryWarningDays',
        key,
      ),
      fc.oneof(hostileValue, fc.constant(key), fc.constant({ owner: key })),
      { maxKeys: 5 },
    ),
  );

  it('any input is a valid config or a ConfigError that never repeats a key', () => {
    fc.assert(
      fc.property(configInput, (input) => {
        try {
          parseConfig(input, 'fuzz.json');
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          expect(leakedFragments(err.message, [key])).toEqual([]);
        }
        return true;
      }),
      RUN(1500),
    );
  });
});

describe('fuzz: scanned text', () => {
  const keys = [
    fakeLongTermKey('fuzz-a'),
    fakeLongTermKey('fuzz-b', '444455556666'),
    fakeShortTermKey('fuzz-c'),
  ];

  /** How a key is written in the text: as is, URL-encoded or JSON-escaped (the contexts scan documents). */
  const ENCODINGS: ReadonlyArray<(k: string) => string> = [
    (k) => k,
    (k) => k.replace(/\+/g, '%2B').replace(/\//g, '%2F').replace(/=/g, '%3D'),
    (k) => k.replace(/\+/g, '\\u002B').replace(/\//g, '\\/').replace(/=/g, '\\u003D'),
  ];

  /** Noise that is hard for the detector: prefixes, base64 runs, escapes, controls, any Unicode. */
  const noise = fc
    .array(
      fc.oneof(
        fc.string({ unit: 'grapheme', maxLength: 20 }),
        fc.string({ unit: 'binary', maxLength: 20 }),
        fc.constantFrom('ABSK', 'bedrock-api-key-', 'YmVkcm9jay5hbWF6b25hd3MuY29t', '%2B', '\\u002B', '\\/'),
        fc.stringMatching(/^[A-Za-z0-9+/]{1,200}={0,2}$/),
      ),
      { maxLength: 30 },
    )
    .map((parts) => parts.join(''));

  /** Delimiters that end a key, as in gitleaks' rule. */
  const delimiter = fc.constantFrom(' ', '\n', '"', "'", '`', ';', '\t', '\r\n');

  it('every planted key is found once, with its fingerprint, in every encoding, whatever surrounds it', () => {
    fc.assert(
      fc.property(
        noise,
        delimiter,
        fc.constantFrom(...keys),
        fc.constantFrom(...ENCODINGS),
        delimiter,
        noise,
        (before, open, key, encode, close, after) => {
          const text = `${before}${open}${encode(key)}${close}${after}`;
          const found = findLeaks(text, { now: NOW }).map((f) => f.fingerprint);
          expect(found).toContain(fingerprint(key));
          expect(leakedFragments(JSON.stringify(findLeaks(text, { now: NOW })), keys)).toEqual([]);
          return true;
        },
      ),
      RUN(1500),
    );
  });

  it('redaction removes every planted key in every encoding, keeping the text around it', () => {
    fc.assert(
      fc.property(
        noise,
        delimiter,
        fc.constantFrom(...keys),
        fc.constantFrom(...ENCODINGS),
        delimiter,
        noise,
        (before, open, key, encode, close, after) => {
          const redacted = redactSecrets(`${before}${open}${encode(key)}${close}${after}`);
          expect(leakedFragments(redacted, keys)).toEqual([]);
          expect(redacted).toContain(fingerprint(key));
          return true;
        },
      ),
      RUN(1500),
    );
  });

  it('streaming in chunks finds exactly what scanning the whole text finds', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(noise, fc.constantFrom(...keys.map((k) => ` ${k}\n`))), { maxLength: 12 }),
        fc.integer({ min: 1, max: 97 }),
        (parts, chunk) => {
          const text = parts.join('');
          const whole = findLeaks(text, { now: NOW }).map((f) => [f.fingerprint, f.line, f.column]);
          // A small overlap makes every chunk boundary matter; keys here are shorter than it.
          const scanner = new LeakStreamScanner({ now: NOW, overlap: 4096 });
          const streamed = [];
          for (let i = 0; i < text.length; i += chunk)
            streamed.push(...scanner.push(text.slice(i, i + chunk)));
          streamed.push(...scanner.end());
          expect(streamed.map((f) => [f.fingerprint, f.line, f.column])).toEqual(whole);
          return true;
        },
      ),
      RUN(300),
    );
  });
});
