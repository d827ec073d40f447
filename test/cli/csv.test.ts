import { csvField, csvRecord } from '../../lambda/cli/csv';

/** Issue 10, item 5: CSV fields hold values someone else chose (tag values, user names, reasons). */

describe('csvField', () => {
  it('keeps RFC 4180 quoting: commas, quotes and line breaks quoted, quotes doubled', () => {
    // Act / Assess
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('two\r\nlines')).toBe('"two\r\nlines"');
    expect(csvField('')).toBe('');
  });

  it.each([
    ['=1+1', "'=1+1"],
    ['+1', "'+1"],
    ['-1', "'-1"],
    ['@SUM(A1)', "'@SUM(A1)"],
    [' =1+1', "' =1+1"],
    ['   @SUM(A1)', "'   @SUM(A1)"],
    ['\t=1+1', "'\t=1+1"],
    ['\u3000=1', "'\u3000=1"],
    ['\u00a0+1', "'\u00a0+1"],
    ['\uff1dHYPERLINK("x")', '"\'\uff1dHYPERLINK(""x"")"'],
    ['\uff0b1', "'\uff0b1"],
    ['\uff0d1', "'\uff0d1"],
    ['\uff20SUM(A1)', "'\uff20SUM(A1)"],
    ['\u200b=1', "'\\u200b=1"],
  ])('defuses the formula-like %j', (value, expected) => {
    // Act / Assess
    expect(csvField(value)).toBe(expected);
  });

  it('defuses a NUL or another control character in front, and shows it', () => {
    // Act / Assess
    expect(csvField('\x00=1+1')).toBe("'\\x00=1+1");
    expect(csvField('\x00plain')).toBe("'\\x00plain");
    expect(csvField('\r=1')).toBe("'\\r=1");
    expect(csvField('\x1b[2J')).toBe("'\\x1b[2J");
  });

  it('shows NUL, escape sequences, C1 and bidi characters inside a field as escapes', () => {
    // Act / Assess
    expect(csvField('a\x00b')).toBe('a\\x00b');
    expect(csvField('team\x1b[2J')).toBe('team\\x1b[2J');
    expect(csvField('x\x9b31m')).toBe('x\\x9b31m');
    expect(csvField('alice\u202egnp.exe')).toBe('alice\\u202egnp.exe');
    expect(csvField('tab\tinside')).toBe('tab\tinside');
    expect(csvField('over\rwritten')).toBe('over\\rwritten');
  });

  it('leaves ordinary values alone', () => {
    // Act / Assess
    expect(csvField('team-a@example.com')).toBe('team-a@example.com');
    expect(csvField('2026-11-20T09:00:00.000Z')).toBe('2026-11-20T09:00:00.000Z');
    expect(csvField('a=b')).toBe('a=b');
    expect(csvField('Zoë 山田')).toBe('Zoë 山田');
  });
});

describe('csvRecord', () => {
  it('joins fields with commas and ends the record with CRLF', () => {
    // Act / Assess
    expect(csvRecord(['a', 'b,c', ' =x'])).toBe('a,"b,c",\' =x\r\n');
  });
});
