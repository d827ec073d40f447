import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { DateFormatError, parseAwsDate, toIso } from '../../lambda/domain/dates';

/**
 * IAM dates reach us as ISO-8601 or as CloudTrail's text form, with and without the comma after the
 * year, always UTC (shared/docs/bedrock-api-keys.md). Every variant must parse to the same instant;
 * anything else must be rejected, never guessed.
 */
describe('parseAwsDate', () => {
  describe('ISO-8601', () => {
    it.each([
      ['with Z', '2025-07-09T14:02:11Z', '2025-07-09T14:02:11.000Z'],
      ['with milliseconds and Z', '2025-07-09T14:02:11.250Z', '2025-07-09T14:02:11.250Z'],
      ['with microseconds (truncated to ms)', '2025-07-09T14:02:11.250999Z', '2025-07-09T14:02:11.250Z'],
      ['with a positive offset', '2025-07-09T16:02:11+02:00', '2025-07-09T14:02:11.000Z'],
      ['with a negative offset', '2025-07-09T09:02:11-05:00', '2025-07-09T14:02:11.000Z'],
      ['with an offset without colon', '2025-07-09T19:32:11+0530', '2025-07-09T14:02:11.000Z'],
      ['with an offset that crosses midnight', '2025-07-10T01:02:11+11:00', '2025-07-09T14:02:11.000Z'],
      ['zone-less date-time (UTC)', '2025-07-09T14:02:11', '2025-07-09T14:02:11.000Z'],
      ['zone-less date-time with a space separator (UTC)', '2025-07-09 14:02:11', '2025-07-09T14:02:11.000Z'],
      [
        'zone-less date-time with fractional seconds (UTC)',
        '2025-07-09T14:02:11.5',
        '2025-07-09T14:02:11.500Z',
      ],
      ['date only (midnight UTC)', '2025-07-09', '2025-07-09T00:00:00.000Z'],
      ['surrounding whitespace', '  2025-07-09T14:02:11Z \n', '2025-07-09T14:02:11.000Z'],
      ['a century-out expiry', '2125-05-12T08:15:30Z', '2125-05-12T08:15:30.000Z'],
      ['29 February in a leap year', '2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
    ])('%s: %p', (_label, input, expected) => {
      // Prepare: input and expectation from the table
      // Act
      const iso = parseAwsDate(input);
      // Assess
      expect(iso).toBe(expected);
    });
  });

  describe('CloudTrail text form (UTC)', () => {
    it.each([
      ['without the comma after the year, PM', 'Jan 24, 2021 9:18:50 PM', '2021-01-24T21:18:50.000Z'],
      ['with the comma after the year, AM', 'Jan 15, 2024, 3:30:00 AM', '2024-01-15T03:30:00.000Z'],
      ['two-digit day and hour', 'Dec 31, 2025, 11:59:59 PM', '2025-12-31T23:59:59.000Z'],
      ['lower-case meridiem', 'Jul 9, 2025, 2:02:11 pm', '2025-07-09T14:02:11.000Z'],
      ['century-out expiry', 'May 12, 2125, 8:15:30 AM', '2125-05-12T08:15:30.000Z'],
      ['29 February in a leap year', 'Feb 29, 2024, 1:00:00 AM', '2024-02-29T01:00:00.000Z'],
    ])('%s: %p', (_label, input, expected) => {
      // Prepare: input and expectation from the table
      // Act
      const iso = parseAwsDate(input);
      // Assess
      expect(iso).toBe(expected);
    });

    it('reads both comma variants of the same instant identically', () => {
      // Prepare
      const withComma = 'Jan 15, 2024, 3:30:00 AM';
      const withoutComma = 'Jan 15, 2024 3:30:00 AM';
      // Act
      const a = parseAwsDate(withComma);
      const b = parseAwsDate(withoutComma);
      // Assess
      expect(a).toBe(b);
      expect(a).toBe(parseAwsDate('2024-01-15T03:30:00Z'));
    });

    it.each([
      ['12:00:00 AM is midnight', 'Jan 15, 2024, 12:00:00 AM', '2024-01-15T00:00:00.000Z'],
      ['12:59:59 AM is just before 1 AM', 'Jan 15, 2024, 12:59:59 AM', '2024-01-15T00:59:59.000Z'],
      ['12:00:00 PM is noon', 'Jan 15, 2024, 12:00:00 PM', '2024-01-15T12:00:00.000Z'],
      ['12:30:00 PM is after noon, same day', 'Jan 15, 2024 12:30:00 PM', '2024-01-15T12:30:00.000Z'],
      ['1:00:00 AM', 'Jan 15, 2024, 1:00:00 AM', '2024-01-15T01:00:00.000Z'],
      ['1:00:00 PM', 'Jan 15, 2024, 1:00:00 PM', '2024-01-15T13:00:00.000Z'],
      ['11:59:59 PM is the last second of the day', 'Jan 15, 2024, 11:59:59 PM', '2024-01-15T23:59:59.000Z'],
    ])('12-hour clock: %s', (_label, input, expected) => {
      // Prepare: input and expectation from the table
      // Act
      const iso = parseAwsDate(input);
      // Assess
      expect(iso).toBe(expected);
    });
  });

  describe('rejects what it cannot read unambiguously', () => {
    it.each([
      ['30 February (text form)', 'Feb 30, 2024, 1:00:00 AM'],
      ['29 February in a common year (text form)', 'Feb 29, 2023, 1:00:00 AM'],
      ['31 April (text form)', 'Apr 31, 2024 1:00:00 AM'],
      ['hour 13 on a 12-hour clock', 'Jan 15, 2024, 13:00:00 PM'],
      ['hour 0 on a 12-hour clock', 'Jan 15, 2024, 0:30:00 AM'],
      ['minute 60', 'Jan 15, 2024, 3:60:00 AM'],
      ['second 60', 'Jan 15, 2024, 3:30:60 AM'],
      ['unknown month', 'Foo 15, 2024, 3:30:00 AM'],
      ['text form without meridiem', 'Jan 15, 2024, 3:30:00'],
      ['30 February (ISO)', '2024-02-30T00:00:00Z'],
      ['29 February in a common year (ISO)', '2023-02-29T12:00:00Z'],
      ['31 June (ISO, date only)', '2025-06-31'],
      ['month 13 (ISO)', '2024-13-01T00:00:00Z'],
      ['hour 25 (ISO)', '2024-01-15T25:00:00Z'],
      ['garbage', 'not a date'],
      ['a bare number', '1720533731'],
      ['empty string', ''],
      ['whitespace only', '   '],
    ])('%s: %p', (_label, input) => {
      // Prepare: input from the table
      // Act
      const act = () => parseAwsDate(input);
      // Assess
      expect(act).toThrow(DateFormatError);
    });

    it('keeps the rejected value on the error and in its message', () => {
      // Prepare
      const input = 'Feb 30, 2024, 1:00:00 AM';
      // Act
      let caught: unknown;
      try {
        parseAwsDate(input);
      } catch (err) {
        caught = err;
      }
      // Assess
      expect(caught).toBeInstanceOf(DateFormatError);
      expect((caught as DateFormatError).value).toBe(input);
      expect((caught as DateFormatError).message).toContain(JSON.stringify(input));
      expect((caught as DateFormatError).name).toBe('DateFormatError');
    });
  });

  it('does not depend on the host time zone for zone-less and text-form dates', () => {
    // Prepare: a child process in a zone far from UTC (the Jest sandbox cannot change TZ)
    const inputs = ['2025-07-09T14:02:11', '2025-07-09 14:02:11', 'Jul 9, 2025, 2:02:11 PM', '2025-07-09'];
    const script = `const { parseAwsDate } = require(${JSON.stringify(join(__dirname, '../../lambda/domain/dates.ts'))});
      process.stdout.write(JSON.stringify(${JSON.stringify(inputs)}.map(parseAwsDate)));`;
    // Act
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], {
      env: { ...process.env, TZ: 'Pacific/Auckland' },
      encoding: 'utf8',
    });
    // Assess
    expect(JSON.parse(out)).toEqual([
      '2025-07-09T14:02:11.000Z',
      '2025-07-09T14:02:11.000Z',
      '2025-07-09T14:02:11.000Z',
      '2025-07-09T00:00:00.000Z',
    ]);
  });
});

describe('toIso', () => {
  it.each([
    ['null', null],
    ['undefined', undefined],
  ])('maps %s to null', (_label, input) => {
    // Prepare: input from the table
    // Act
    const iso = toIso(input);
    // Assess
    expect(iso).toBeNull();
  });

  it('formats a Date (as the SDK returns it) as UTC ISO', () => {
    // Prepare
    const date = new Date(Date.UTC(2025, 6, 9, 14, 2, 11));
    // Act
    const iso = toIso(date);
    // Assess
    expect(iso).toBe('2025-07-09T14:02:11.000Z');
  });

  it('parses strings in either accepted form', () => {
    // Prepare
    const text = 'Jul 9, 2025 2:02:11 PM';
    // Act
    const iso = toIso(text);
    // Assess
    expect(iso).toBe('2025-07-09T14:02:11.000Z');
  });

  it('rejects an unreadable string rather than returning null', () => {
    // Prepare
    const bad = 'Feb 30, 2024, 1:00:00 AM';
    // Act
    const act = () => toIso(bad);
    // Assess
    expect(act).toThrow(DateFormatError);
  });
});
