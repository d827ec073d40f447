import { MAX_WORK_PER_CHAR } from '../../lambda/domain/leak-batch';
import { LeakStreamScanner } from '../../lambda/domain/leak-stream';
import { type DetectionWork, findLeakSpans, findLeaks } from '../../lambda/domain/leaks';
import { fingerprint } from '../../lambda/shared/redact';
import { handBuiltLongTermKey, handBuiltShortTermKey } from '../support/bedrock-tokens';
import { fakeLongTermKey, fakeShortTermKey } from '../support/secrets';

/**
 * Detection is linear in its input whatever the input holds (issue 10, item 2): the work it reports (characters
 * examined and decoded, DetectionWork) stays within a constant times the length of the text. Work is counted, not
 * timed, so these tests do not depend on the machine.
 */

const NOW = new Date('2026-11-20T09:41:02Z');
const b64 = (s: string) => Buffer.from(s).toString('base64');

function fill(unit: string, length: number): string {
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

function workOf(text: string): { work: number; findings: number } {
  const work: DetectionWork = { units: 0 };
  const findings = findLeakSpans(text, { now: NOW, work }).length;
  return { work: work.units, findings };
}

/** Units of text that, repeated, made detection read up to 8,192 characters per prefix. */
const ADVERSARIAL: Array<[string, string]> = [
  ['ABSK repeated', 'ABSK'],
  ['ABSK + one base64 character repeated', 'ABSKQ'],
  ['ABSK + a valid alias with no padding, repeated', `ABSK${b64(`alice-at-111122223333:${'x'.repeat(59)}`)}`],
  [
    'ABSK + a valid alias and a long printable secret',
    `ABSK${b64(`alice-at-111122223333:${'s'.repeat(3000)}`)}`,
  ],
  ['ABSK + base64 of printable text without an alias', `ABSK${b64('x'.repeat(600))}`],
  ['the short-term prefix repeated', 'bedrock-api-key-'],
  [
    'the short-term prefix + the URL start, then ABSK',
    `bedrock-api-key-${b64('bedrock.amazonaws.com/?')}ABSK`,
  ],
  [
    'the short-term prefix + a long printable URL',
    `bedrock-api-key-${b64(`bedrock.amazonaws.com/?${'a'.repeat(5000)}`)}`,
  ],
  ['ABSK with URL escapes', 'ABSK%2B%2f%3D'],
  ['ABSK with JSON unicode escapes', 'ABSK\\u002B\\u002f'],
  ['ABSK with nested JSON escapes', 'ABSK\\\\\\/\\\\\\\\\\\\\\/'],
  [
    'ABSK + alias + many escaped line breaks',
    `ABSK${b64('alice-at-111122223333:xx')}${'QUJD\\n'.repeat(80)}`,
  ],
  [
    'ABSK + alias + consecutive escaped line breaks',
    `ABSK${b64('alice-at-111122223333:xx')}${'\\n'.repeat(300)}`,
  ],
  [
    'the short-term prefix + escaped line breaks',
    `bedrock-api-key-${b64('bedrock.amazonaws.com/?aaa')}${'YWFh\\n'.repeat(80)}`,
  ],
  ['both prefixes interleaved', 'ABSKbedrock-api-key-ABSKABSK'],
  [
    'keys back to back with no line break (padded: each is a key)',
    `ABSK${b64(`alice-at-111122223333:${'x'.repeat(60)}`)}`,
  ],
  [
    'real keys back to back on one line',
    `${handBuiltLongTermKey('u', '111122223333', 'x'.repeat(60))} ${handBuiltShortTermKey()} `,
  ],
];

describe('findLeakSpans: work is linear in the text', () => {
  it.each(ADVERSARIAL)('%s: at most a constant times the length, at every size', (_name, unit) => {
    // Prepare
    const small = 16 * 1024;
    const large = 1024 * 1024;

    // Act
    const runs = [small, large].map((n) => ({ n, ...workOf(fill(unit, n)) }));

    // Assess: the text was read (the meter counts), and the work is within the same bound at every size.
    for (const r of runs) {
      expect(r.work).toBeGreaterThanOrEqual(r.n);
      expect(r.work).toBeLessThanOrEqual(MAX_WORK_PER_CHAR * r.n);
    }
  });

  it('spends linear work on prose full of prefixes and still finds the key at its end', () => {
    // Prepare
    const line =
      'mentions ABSK and bedrock-api-key- and ABSKQUJD and bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t\n';
    const key = fakeLongTermKey('prose');
    const text = line.repeat(Math.ceil((1024 * 1024) / line.length)) + key;
    const work: DetectionWork = { units: 0 };

    // Act
    const findings = findLeakSpans(text, { now: NOW, work });

    // Assess
    expect(findings.map((f) => f.fingerprint)).toEqual([fingerprint(key)]);
    expect(work.units).toBeGreaterThanOrEqual(text.length);
    expect(work.units).toBeLessThanOrEqual(MAX_WORK_PER_CHAR * text.length);
  });
});

describe('findLeaks: keys among dense prefixes', () => {
  const longKey = fakeLongTermKey('dense');
  const padded = handBuiltLongTermKey('padded', '111122223333', 'x'.repeat(59));
  const shortKey = fakeShortTermKey('dense');
  const dense = 'ABSK'.repeat(5000);
  const jsonSlash = (k: string) => k.replace(/\//g, '\\/');

  it.each([
    ['a long-term key between runs of ABSK, space-separated', `${dense} ${longKey} ${dense}`, longKey],
    ['a padded long-term key right between runs of ABSK', `${dense}${padded}${dense}`, padded],
    [
      'a long-term key right after the short-term prefix repeated',
      `${'bedrock-api-key-'.repeat(3000)}${longKey}\n`,
      longKey,
    ],
    [
      'a long-term key between runs of ABSK, in a JSON string with escaped line breaks',
      `{"m":"${dense}\\n${jsonSlash(longKey)}\\n${dense}"}`,
      longKey,
    ],
    ['a short-term key right after ABSK repeated', `${dense}${shortKey} ${dense}`, shortKey],
    [
      'a short-term key after its own prefix repeated',
      `${'bedrock-api-key-'.repeat(3000)}${shortKey}`,
      shortKey,
    ],
    [
      'a long-term key in a JSON string full of escaped prefixes',
      `{"m":"${'ABSK\\u002B'.repeat(3000)}\\n${jsonSlash(longKey)}\\n${'ABSK%2B'.repeat(3000)}"}`,
      longKey,
    ],
  ])('finds %s', (_name, text, key) => {
    // Act
    const findings = findLeaks(text, { now: NOW });

    // Assess
    expect(padded.endsWith('=')).toBe(true);
    expect(findings.map((f) => [f.fingerprint, f.column])).toEqual([
      [fingerprint(key), text.indexOf(jsonSlash(key)) + 1],
    ]);
  });

  it('does not take a key run into ABSK for a key (the run is not one key), as before', () => {
    // Prepare: an unpadded key directly followed by more base64 is a decoy (findLeaks: decoys).
    const unpadded = handBuiltLongTermKey('unpadded', '111122223333', 'x'.repeat(59));
    const text = `${dense}${unpadded}${dense}`;

    // Act / Assess
    expect(unpadded.endsWith('=')).toBe(false);
    expect(findLeaks(text, { now: NOW })).toEqual([]);
  });
});

describe('LeakStreamScanner: work is linear in the text', () => {
  it('spends linear work on one long line holding many keys', () => {
    // Prepare: one line, so every key shares it (the allow marker is looked for once per line).
    const key = `${handBuiltLongTermKey('u', '111122223333', 'x'.repeat(60))} `;
    const text = key.repeat(Math.ceil((512 * 1024) / key.length));
    const work: DetectionWork = { units: 0 };
    const scanner = new LeakStreamScanner({ now: NOW, overlap: 4096, work });

    // Act
    let found = 0;
    for (let i = 0; i < text.length; i += 16 * 1024)
      found += scanner.push(text.slice(i, i + 16 * 1024)).length;
    found += scanner.end().length;

    // Assess
    expect(found).toBe(text.length / key.length);
    expect(work.units).toBeGreaterThanOrEqual(text.length);
    expect(work.units).toBeLessThanOrEqual(MAX_WORK_PER_CHAR * text.length);
  });
});
