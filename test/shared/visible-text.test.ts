import fc from 'fast-check';
import { csvField } from '../../lambda/cli/csv';
import { guardedIO } from '../../lambda/cli/io';
import { mapVisible, terminalSafe, visible, visibleLines } from '../../lambda/shared/visible-text';

/** Issue 10, item 5: what reaches a terminal must not be able to drive it. */

const ESC = '\x1b';
const RLO = '\u202e';

describe('visible', () => {
  it('keeps ordinary text, other scripts, emoji and joiners as they are', () => {
    // Prepare
    const values = [
      'alice@example.com',
      'Zoë Ünal',
      'مريم',
      '山田',
      '👩‍💻 dev',
      'a\\nb (a literal backslash)',
    ];

    // Act
    const shown = values.map(visible);

    // Assess
    expect(shown).toEqual(values);
  });

  it('escapes line breaks, tabs, C0 controls, DEL and C1 controls', () => {
    // Prepare
    const value = `a\nb\rc\td\x00e${ESC}[2Jf\x7fg\x85h\x9b31mi\x9dj`;

    // Act
    const shown = visible(value);

    // Assess
    expect(shown).toBe('a\\nb\\rc\\td\\x00e\\x1b[2Jf\\x7fg\\x85h\\x9b31mi\\x9dj');
  });

  it('escapes every bidi override, embedding, isolate and mark, and invisible format characters', () => {
    // Prepare
    const bidi = [
      '\u202a',
      '\u202b',
      '\u202c',
      '\u202d',
      RLO,
      '\u2066',
      '\u2067',
      '\u2068',
      '\u2069',
      '\u200e',
      '\u200f',
      '\u061c',
    ];
    const invisible = ['\u200b', '\u2060', '\ufeff', '\u2028', '\u2029', '\u{e0041}', '\ud800'];

    // Act
    const shown = [...bidi, ...invisible].map((c) => visible(`x${c}y`));

    // Assess
    expect(shown).toEqual([
      'x\\u202ay',
      'x\\u202by',
      'x\\u202cy',
      'x\\u202dy',
      'x\\u202ey',
      'x\\u2066y',
      'x\\u2067y',
      'x\\u2068y',
      'x\\u2069y',
      'x\\u200ey',
      'x\\u200fy',
      'x\\u061cy',
      'x\\u200by',
      'x\\u2060y',
      'x\\ufeffy',
      'x\\u2028y',
      'x\\u2029y',
      'x\\u{e0041}y',
      'x\\ud800y',
    ]);
  });

  it('leaves a forged finding line on the line of the value that carried it', () => {
    // Prepare
    const path = 'notes.txt\nsrc/app.ts:1:1: LONG_TERM user alice account 111122223333 ABSK…7Q== fp';

    // Act
    const shown = visible(path);

    // Assess
    expect(shown.split('\n')).toHaveLength(1);
    expect(shown).toContain('notes.txt\\nsrc/app.ts:1:1');
  });
});

describe('visibleLines', () => {
  it('keeps the line breaks of a message and escapes the rest', () => {
    // Prepare
    const message = `invalid configuration\nconfig.json: owner: got "${ESC}]0;pwned${ESC}\\\\"\nsecond ${RLO}line`;

    // Act
    const shown = visibleLines(message);

    // Assess
    expect(shown.split('\n')).toEqual([
      'invalid configuration',
      'config.json: owner: got "\\x1b]0;pwned\\x1b\\\\"',
      'second \\u202eline',
    ]);
  });
});

describe('mapVisible', () => {
  it('renders plain runs and escapes apart, in order', () => {
    // Act
    const out = mapVisible(
      `<a${RLO}b\n`,
      (t) => t.toUpperCase(),
      (e) => `[${e}]`,
    );

    // Assess
    expect(out).toBe('<A[\\u202e]B[\\n]');
  });
});

describe('terminalSafe (the guard on every write)', () => {
  it('keeps line feeds, tabs and CRLF, escapes everything else as JSON \\u escapes', () => {
    // Prepare
    const chunk = `table\trow\r\nnext\rover${ESC}[2J${RLO}\x85\u{e0041}\n`;

    // Act
    const out = terminalSafe(chunk);

    // Assess
    expect(out).toBe('table\trow\r\nnext\\u000dover\\u001b[2J\\u202e\\u0085\\udb40\\udc41\n');
  });

  it('leaves JSON the same JSON: a decision with C1 and bidi characters parses back to the same value', () => {
    // Prepare
    const value = { userName: `bob${RLO}\x85\u2028\u{e0041}`, owner: `${ESC}[2J\n` };
    const json = JSON.stringify(value);

    // Act
    const out = terminalSafe(json);

    // Assess
    expect(out).not.toMatch(/[\u202e\x85\u2028]/);
    expect(JSON.parse(out)).toEqual(value);
  });

  it('guardedIO applies it to stdout and stderr and lets the program write its own control sequences', () => {
    // Prepare
    const written: string[] = [];
    const sink = { write: (s: string) => written.push(s), isTTY: true };
    const io = guardedIO({ cwd: '/', stdout: sink, stderr: sink });

    // Act
    io.stdout.write(`a${ESC}[2J\n`);
    io.stderr.write(`b${RLO}\n`);
    io.stderr.writeControl?.('\r\x1b[K');

    // Assess
    expect(written).toEqual(['a\\u001b[2J\n', 'b\\u202e\n', '\r\x1b[K']);
    expect(io.stderr.isTTY).toBe(true);
  });
});

describe('properties (seeded fast-check, bounded in runs and time)', () => {
  const RUN = { seed: 20261207, numRuns: 500, interruptAfterTimeLimit: 10_000 };
  /** Any text, with the characters that matter over-represented. */
  const hostile = fc
    .array(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 8 }),
        fc.constantFrom('\n', '\r', '\t', '\x00', ESC, '\x7f', '\x85', '\x9b', RLO, '\u2066', '\u200d'),
        fc.constantFrom('=', '+', '-', '@', '\uff1d', '\uff0b', '\uff0d', '\uff20', ' ', '\u3000', '\\'),
        fc.constantFrom('\ud800', '\udfff', '\u{e0041}', '👩‍💻'),
      ),
      { maxLength: 12 },
    )
    .map((parts) => parts.join(''));
  const UNSAFE_LEFT = /(?![\u200c\u200d])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

  it('visible() leaves nothing a terminal obeys, and no line break', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const shown = visible(s);
        return !UNSAFE_LEFT.test(shown) && !/[\n\r]/.test(shown);
      }),
      RUN,
    );
  });

  it('visible() changes nothing in text without such characters', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const safe = s.replace(new RegExp(UNSAFE_LEFT.source, 'gu'), '');
        return visible(safe) === safe;
      }),
      RUN,
    );
  });

  it('terminalSafe() keeps JSON the same value and leaves nothing a terminal obeys', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const out = terminalSafe(`${JSON.stringify({ s })}\n`);
        return JSON.parse(out).s === s && !UNSAFE_LEFT.test(out.slice(0, -1));
      }),
      RUN,
    );
  });

  it('csvField() never starts with a formula character after blanks or controls, and keeps RFC 4180 quoting', () => {
    const formula = /^["]?[\s\p{Cc}\p{Cf}]*[=+\-@\uff1d\uff0b\uff0d\uff20]/u;
    fc.assert(
      fc.property(hostile, (s) => {
        const f = csvField(s);
        const unquoted = f.startsWith('"') ? f.slice(1, -1).replace(/""/g, '"') : f;
        return (
          !formula.test(f) &&
          !UNSAFE_LEFT.test(f.replace(/[\r\n\t]/g, '')) &&
          (!/[",\r\n]/.test(unquoted) || (f.startsWith('"') && f.endsWith('"')))
        );
      }),
      RUN,
    );
  });
});
